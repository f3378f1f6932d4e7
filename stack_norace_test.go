//go:build !race

package websocket

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStackRoom checks that a handler that accepts, echoes and then waits
// in Read keeps a 4 KiB goroutine stack. A goroutine keeps the stack its
// deepest call grew it to: once past 4 KiB it is 8 KiB, and it cannot
// shrink while the handler waits, as the net/http frames under it alone
// take more than a quarter of it. Here each handler holds 256 bytes of its
// own, and 100 of them wait in Read, each after echoing the row's message
// (none for the first row); their stacks must stay near 4 KiB each. A
// call of Accept, Read or Write deeper than a 4 KiB stack allows under
// such a handler grows nearly every one of them to 8 KiB.
//
// Not covered, since it does not hold: a compressed frame whose payload
// comes apart from its header (python-websockets writes them so) has
// Read wait for it inside the inflater, about 800 bytes deeper than a 4
// KiB stack allows under such a handler.
//
// Each row runs in a process of its own: the goroutines of a test that
// ran before leave their stacks for new ones to take, which the figure
// would not count.
func TestStackRoom(t *testing.T) {
	json := []byte(strings.Repeat(`{"user":"ann","text":"hello there, how are you?","n":12345}`, 70))
	large := bytes.Repeat([]byte("0123456789abcdef"), 4<<10)
	for _, tc := range []struct {
		name string
		mode CompressionMode
		msg  []byte
	}{
		{"no message", CompressionDisabled, nil},
		{"4 KiB", CompressionDisabled, json},
		{"64 KiB", CompressionDisabled, large},
		{"4 KiB, compressed, context takeover", CompressionContextTakeover, json},
		{"4 KiB, compressed, no context takeover", CompressionNoContextTakeover, json},
		{"64 KiB, compressed, context takeover", CompressionContextTakeover, large},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if os.Getenv(stackRoomRow) == "" {
				runAlone(t)
				return
			}
			perConn := stackPerConn(t, tc.mode, tc.msg)
			t.Logf("goroutine stacks: %d bytes per connection", perConn)
			if perConn > 6<<10 {
				t.Errorf("goroutine stacks take %d bytes per connection, want about 4 KiB: a call outgrew a 4 KiB stack under a handler of 256 bytes", perConn)
			}
		})
	}
}

// stackRoomRow is set in the environment of the process that runs a row of
// TestStackRoom.
const stackRoomRow = "WEBSOCKET_TEST_STACK_ROOM_ROW"

// runAlone runs the subtest t in a new process of this test binary and
// fails t unless it passed there, logging its figure. The process has one
// processor (GOMAXPROCS=1): each processor caches stacks of its own, in
// spans of 32 KiB that StackInuse counts whole, so with 16 processors
// even handlers that never read take over 6 KiB per connection.
func runAlone(t *testing.T) {
	t.Helper()
	parent, row, _ := strings.Cut(t.Name(), "/")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+parent+"$/^"+regexp.QuoteMeta(row)+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), stackRoomRow+"=1", "GOMAXPROCS=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()+" ") {
		t.Fatalf("%s in a process of its own: %v\n%s", t.Name(), err, out)
	}
	for line := range strings.Lines(string(out)) {
		if _, figure, ok := strings.Cut(line, "goroutine stacks: "); ok {
			t.Log("goroutine stacks: " + strings.TrimSpace(figure))
		}
	}
}

// stackPerConn is the growth of the goroutine stacks per connection once
// 100 paddedHandlers wait in Read, each having echoed msg if not nil.
func stackPerConn(t *testing.T, mode CompressionMode, msg []byte) int64 {
	const n = 100
	h := &paddedHandler{opts: &AcceptOptions{Compression: mode}, ready: make(chan struct{}, 2*n)}
	s := httptest.NewServer(h)
	defer h.wg.Wait()
	defer s.Close()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	conns := make([]*Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	awaitReady := func() {
		select {
		case <-h.ready:
		case <-ctx.Done():
			t.Fatal("the handler did not get ready within 10s")
		}
	}
	for range n {
		c := dialT(t, wsURL(s), &DialOptions{Compression: mode})
		conns = append(conns, c)
		awaitReady() // for its first message
		if msg != nil {
			if err := c.Write(ctx, MessageBinary, msg); err != nil {
				t.Fatal(err)
			}
			if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
				t.Fatalf("echo: %d bytes, %v", len(p), err)
			}
			awaitReady() // for the next, having echoed it
		}
	}
	time.Sleep(50 * time.Millisecond) // the last handler, ready, reaches Read
	runtime.ReadMemStats(&after)
	return (int64(after.StackInuse) - int64(before.StackInuse)) / n
}

// paddedHandler holds 256 bytes on its frame, accepts, echoes messages and
// waits in Read, saying on ready that it waits for its first message, and
// again after each echo.
type paddedHandler struct {
	opts  *AcceptOptions
	ready chan struct{}
	wg    sync.WaitGroup
}

func (h *paddedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.wg.Add(1)
	defer h.wg.Done()
	var pad [256]byte
	c, err := Accept(w, r, h.opts)
	runtime.KeepAlive(&pad)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	for {
		h.ready <- struct{}{}
		typ, p, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return
		}
	}
}
