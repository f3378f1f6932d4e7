package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/internal/leakcheck"
)

func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

// testRate paces the soak under the race detector, which makes each
// message cost ten times as much: 300 clients at one message a second
// each keep the test under a core.
const testRate = 300

// TestSoak runs the soak as CI does: 300 clients for 45 seconds, through
// the same code as the command, and requires a clean summary, with every
// kind of connection ending seen.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak takes a minute")
	}
	cfg := config{
		clients:     300,
		duration:    45 * time.Second,
		rate:        testRate,
		compression: 0.25,
		// Longer than the command's 2 s: CI runs this beside the other
		// packages' tests under the race detector, where a client may
		// wait over 2 s for a core, and be taken for a dead peer.
		keepalive: 5 * time.Second,
	}
	var out lockedBuffer
	r := run(context.Background(), cfg, &out)
	t.Logf("output:\n%s%s\n%s", out.String(), r.details(), r)
	if !r.ok() {
		t.Fatalf("soak failed: %s", strings.Join(r.problems, "; "))
	}
	if r.ran < cfg.duration {
		t.Errorf("ran %v, want %v", r.ran, cfg.duration)
	}
	for _, c := range []struct {
		n    int64
		what string
	}{
		{r.compressed, "compressed connections"},
		{r.fragmented, "fragmented messages"},
		{r.pings, "pings"},
		{r.shortStalls, "short stalls"},
		{r.closes, "normal closes"},
		{r.resets, "resets"},
		{r.reaped, "stalls reaped"},
	} {
		if c.n == 0 {
			t.Errorf("no %s: the soak did not exercise them", c.what)
		}
	}
}

// lockedBuffer is a bytes.Buffer that the soak's goroutines may write
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestHeader(t *testing.T) {
	t.Parallel()
	msg := make([]byte, headerLen+5)
	copy(msg[headerLen:], "hello")
	h := header{conn: 0x01020304, seq: 0x0a0b0c0d0e0f1011, sum: 0x3610a686} // CRC-32 of "hello"
	putHeader(msg, h)
	if got, want := string(msg[:headerLen]), "010203040a0b0c0d0e0f10113610a686"; got != want {
		t.Fatalf("header %q, want %q", got, want)
	}
	got, body, err := parse(msg)
	if err != nil || got != h || string(body) != "hello" {
		t.Fatalf("parse = %+v, %q, %v; want %+v, \"hello\", nil", got, body, err, h)
	}
	// Any byte changed is seen: in the body by the checksum, in the
	// header by the checksum or the number it reads.
	for i := range msg {
		bad := bytes.Clone(msg)
		bad[i] ^= 0x01
		if g, _, err := parse(bad); err == nil && g == h {
			t.Errorf("byte %d flipped: parse = %+v, nil", i, g)
		}
	}
	for _, short := range []string{"", "0102", strings.Repeat("z", headerLen)} {
		if _, _, err := parse([]byte(short)); err == nil {
			t.Errorf("parse(%q) succeeded", short)
		}
	}
}

func TestFillBody(t *testing.T) {
	t.Parallel()
	// Text bodies are UTF-8 of exactly the size asked, at every size up to
	// a few words and at the largest.
	for _, n := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 127, 128, 4096, maxBody} {
		for range 20 {
			b := make([]byte, n)
			fillBody(websocket.MessageText, b)
			if !utf8.Valid(b) {
				t.Fatalf("%d-byte text body is not UTF-8: %q", n, b)
			}
			if n > 0 && bytes.IndexByte(b, 0) >= 0 {
				t.Fatalf("%d-byte text body left a byte unwritten: %q", n, b)
			}
		}
	}
	for range 1000 {
		if n := pickSize(); n < 0 || n > maxBody {
			t.Fatalf("pickSize() = %d, want 0 to %d", n, maxBody)
		}
	}
}
