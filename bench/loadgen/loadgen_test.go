package loadgen

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAppendFrame(t *testing.T) {
	t.Parallel()
	// RFC 6455 §5.7: a single-frame masked text message, "Hello".
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	if got, want := string(AppendFrame(nil, 1, []byte("Hello"), key)), "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"; got != want {
		t.Errorf("Hello frame = %q, want %q", got, want)
	}
	// The header of each length encoding, at its boundaries.
	zero := [4]byte{}
	for _, tt := range []struct {
		n    int
		head string
	}{
		{0, "\x82\x80"},
		{125, "\x82\xfd"},
		{126, "\x82\xfe\x00\x7e"},
		{65535, "\x82\xfe\xff\xff"},
		{65536, "\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00"},
	} {
		p := bytes.Repeat([]byte{'x'}, tt.n)
		f := AppendFrame([]byte("prefix"), 2, p, zero)
		want := "prefix" + tt.head + "\x00\x00\x00\x00" + strings.Repeat("x", tt.n)
		if string(f) != want {
			t.Errorf("%d-byte frame starts %q, want %q", tt.n, f[:min(len(f), 20)], want[:min(len(want), 20)])
		}
	}
}

func TestNewMessage(t *testing.T) {
	t.Parallel()
	m := NewMessage([]byte("abc"), 3)
	if m.InFlight() != 3 || len(m.frames) != 3*(2+4+3) || m.first != 0 {
		t.Fatalf("InFlight %d, frames of %d bytes, first pass %d; want 3, 27 and 0", m.InFlight(), len(m.frames), m.first)
	}
	// Each copy unmasks to the payload.
	for i := range 3 {
		f := m.frames[9*i : 9*i+9]
		if f[0] != 0x82 || f[1] != 0x83 {
			t.Errorf("copy %d header %q, want \"\\x82\\x83\"", i, f[:2])
		}
		for j := range 3 {
			if got := f[6+j] ^ f[2+j]; got != "abc"[j] {
				t.Errorf("copy %d byte %d unmasks to %q, want %q", i, j, got, "abc"[j])
			}
		}
	}
}

// TestAnswerPings sends pings to AnswerPings and checks each pong's bytes,
// then that anything else ends it with an error saying what came.
func TestAnswerPings(t *testing.T) {
	t.Parallel()
	pong := func(p string) string { return string(AppendFrame(nil, 10, []byte(p), pongKey)) }
	tests := []struct {
		name, in, out, err string
	}{
		{"pings", "\x89\x03abc\x89\x00", pong("abc") + pong(""), "EOF"},
		{"data", "\x89\x01a\x82\x01x", pong("a"), "unexpected frame, opcode 2"},
		{"close", "\x88\x04\x03\xe9ok", "", `server closed the connection: 1001 "ok"`},
		{"pong", "\x8a\x00", "", "unexpected control frame, opcode 10"},
		{"fragmented ping", "\x09\x00", "", "unexpected control frame, opcode 9"},
		{"masked", "\x89\x80\x00\x00\x00\x00", "", "server sent a masked frame"},
	}
	for _, tt := range tests {
		client, server := net.Pipe()
		deadline := time.Now().Add(10 * time.Second)
		client.SetDeadline(deadline)
		server.SetDeadline(deadline)
		c := &Conn{nc: client, size: 512}
		var pings atomic.Int64
		errc := make(chan error, 1)
		go func() { errc <- c.AnswerPings(make(chan struct{}), &pings) }()
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			server.Write([]byte(tt.in))
		}()
		got := make([]byte, len(tt.out))
		if _, err := io.ReadFull(server, got); err != nil {
			t.Fatalf("%s: reading the pongs: %v", tt.name, err)
		}
		if string(got) != tt.out {
			t.Errorf("%s: client sent %q, want %q", tt.name, got, tt.out)
		}
		// The server hangs up once the client took in all it wrote (one
		// read does, into 512 bytes): a client still reading meets the end.
		<-wrote
		server.Close()
		if err := <-errc; err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: AnswerPings returned %v, want an error holding %q", tt.name, err, tt.err)
		}
		if want := int64(strings.Count(tt.out, "\x8a")); pings.Load() != want {
			t.Errorf("%s: %d pings counted, want %d", tt.name, pings.Load(), want)
		}
		client.Close()
		server.Close()
	}
}

// TestAnswerPingsDone shows that closing done, then the connection, ends
// AnswerPings without an error.
func TestAnswerPingsDone(t *testing.T) {
	t.Parallel()
	client, server := net.Pipe()
	defer server.Close()
	c := &Conn{nc: client, size: 512}
	done := make(chan struct{})
	errc := make(chan error, 1)
	var pings atomic.Int64
	go func() { errc <- c.AnswerPings(done, &pings) }()
	close(done)
	client.Close()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("AnswerPings after done: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AnswerPings did not return within 10s of its connection's close")
	}
}

// TestNewMessagesCompressed unmasks and inflates, with compress/flate and
// the history a server would hold, every frame a connection sends for
// three passes through a cycle, in each mode, and checks each is the
// payload of its turn; Send writes them in that order.
func TestNewMessagesCompressed(t *testing.T) {
	t.Parallel()
	// 15,000 bytes: from the second pass on, with context takeover, each
	// text is in the window already.
	payloads := JSONMessages(5, 3000, 7)
	for _, comp := range []Compression{Deflate, DeflateTakeover} {
		const inFlight = 3
		m, err := NewMessages(1, payloads, comp, inFlight)
		if err != nil {
			t.Fatal(err)
		}
		if wantFirst := map[Compression]int{Deflate: 0, DeflateTakeover: 5}[comp]; m.first != wantFirst {
			t.Errorf("%s: first pass of %d frames, want %d", comp, m.first, wantFirst)
		}
		client, server := net.Pipe()
		client.SetDeadline(time.Now().Add(10 * time.Second))
		server.SetDeadline(time.Now().Add(10 * time.Second))
		c := &Conn{nc: client, size: 512, comp: comp}
		const n = 15
		go func() {
			for range n / inFlight {
				if err := c.Send(m, inFlight); err != nil {
					t.Errorf("%s: Send: %v", comp, err)
					return
				}
			}
		}()
		var history []byte
		for i := range n {
			var h [4]byte
			if _, err := io.ReadFull(server, h[:2]); err != nil {
				t.Fatalf("%s: message %d: %v", comp, i, err)
			}
			if h[0] != 0xc1 || h[1]&0x80 == 0 || h[1] == 0xff {
				t.Fatalf("%s: message %d starts %q, want a masked final compressed text frame under 64 KiB", comp, i, h[:2])
			}
			size := int(h[1] & 0x7f)
			if size == 126 {
				if _, err := io.ReadFull(server, h[2:4]); err != nil {
					t.Fatal(err)
				}
				size = int(h[2])<<8 | int(h[3])
			}
			z := make([]byte, size)
			var key [4]byte
			if _, err := io.ReadFull(server, key[:]); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(server, z); err != nil {
				t.Fatal(err)
			}
			for j := range z {
				z[j] ^= key[j&3]
			}
			var dict []byte
			if comp == DeflateTakeover {
				dict = history[max(0, len(history)-32768):]
			}
			got, err := io.ReadAll(flate.NewReaderDict(io.MultiReader(bytes.NewReader(z), strings.NewReader(deflateTail)), dict))
			if err != nil {
				t.Fatalf("%s: message %d inflates with an error: %v", comp, i, err)
			}
			if want := payloads[i%len(payloads)]; !bytes.Equal(got, want) {
				t.Fatalf("%s: message %d inflates to %d bytes %.40q..., want payload %d, %.40q...", comp, i, len(got), got, i%len(payloads), want)
			}
			if len(z) >= len(got)/2 {
				t.Errorf("%s: message %d compressed to %d bytes from %d, want less than half", comp, i, len(z), len(got))
			}
			history = append(history, got...)
		}
		client.Close()
		server.Close()
	}
}

// TestJSONMessages checks the texts' sizes, that they are JSON, the same
// for the same seed, and how well they compress, on their own and after
// one another.
func TestJSONMessages(t *testing.T) {
	t.Parallel()
	for _, size := range []int{64, 100, 1 << 10, 16 << 10} {
		a, b := JSONMessages(16, size, 1), JSONMessages(16, size, 1)
		var total, alone, after int
		var history []byte
		for i, p := range a {
			if len(p) != size || !json.Valid(p) {
				t.Fatalf("%d bytes: text %d is %d bytes, valid JSON %v: %q", size, i, len(p), json.Valid(p), p)
			}
			if !bytes.Equal(p, b[i]) {
				t.Fatalf("%d bytes: text %d differs between two calls", size, i)
			}
			if i > 0 && bytes.Equal(p, a[i-1]) {
				t.Fatalf("%d bytes: text %d is the same as the one before", size, i)
			}
			total += len(p)
			alone += deflatedSize(p, nil)
			after += deflatedSize(p, history[max(0, len(history)-32768):])
			history = append(history, p...)
		}
		ratio, ratioAfter := float64(total)/float64(alone), float64(total)/float64(after)
		t.Logf("%d bytes: compress %.2f× alone, %.2f× after one another", size, ratio, ratioAfter)
		if size >= 1<<10 && (ratio < 2 || ratio > 6 || ratioAfter < 4 || ratioAfter > 8) {
			t.Errorf("%d bytes: compress %.2f× alone and %.2f× after one another, want 2-6× and 4-8×", size, ratio, ratioAfter)
		}
	}
}

func deflatedSize(p, dict []byte) int {
	var b bytes.Buffer
	w, _ := flate.NewWriterDict(&b, flate.DefaultCompression, dict)
	w.Write(p)
	w.Flush()
	return b.Len() - 4
}
