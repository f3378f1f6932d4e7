//go:build !race

package websocket

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

// TestIdleHeap measures the heap an idle connection holds, each having
// echoed one message, beyond what a handler that hijacks the connection
// and keeps only the net.Conn holds: with Serve, and with the README's
// Read/Write loop on the request's context. Both ends are in this
// process; the client is the same raw socket in every case, so it cancels
// out. The bounds leave some room over what was measured (779 and 3,741
// bytes); the Read loop's includes net/http's request state, held while
// the handler runs.
func TestIdleHeap(t *testing.T) {
	const n = 1000
	bare := func(w http.ResponseWriter, r *http.Request, held chan<- net.Conn) {
		nc, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		io.WriteString(nc, sample101)
		var frame [8]byte
		if _, err := io.ReadFull(nc, frame[:]); err != nil {
			nc.Close()
			return
		}
		io.WriteString(nc, "\x82\x02"+string(frame[6:]))
		held <- nc
	}
	idleHeap(t, n, "", bare) // what grows once, the first time, is not counted
	hijack := idleHeap(t, n, "", bare)
	for _, tc := range []struct {
		name    string
		bound   int64
		handler func(w http.ResponseWriter, r *http.Request, held chan<- net.Conn)
	}{
		{"Serve", 900, serveEcho},
		{"Read loop", 4096, readLoopEcho},
	} {
		// The lower of two runs, as what grows once (pools, the parker's
		// tables) is counted by the first.
		got := min(idleHeap(t, n, "", tc.handler), idleHeap(t, n, "", tc.handler)) - hijack
		t.Logf("%s: %d bytes of heap per idle connection beyond a bare hijack (%d)", tc.name, got, hijack)
		if got > tc.bound {
			t.Errorf("%s: %d bytes of heap per idle connection beyond a bare hijack, over %d", tc.name, got, tc.bound)
		}
	}
}

// TestStalledMessageHeap: a peer that starts a message and stops sending
// has a connection hold at most about twice what it sent beyond an idle
// connection, whatever the frame claims: not the read buffer, nor a
// chunk sized for more than arrived. Before the chunks grew with what
// arrived, a Read loop held 64 KiB more for a 1-byte fragment and 96 KiB
// more for a 1 MiB frame with 3 bytes sent; Serve 36 KiB more for the
// latter; and before the rest of a frame had to be justified by what
// arrived, a Read loop held 64 KiB for 3 bytes of a 64 KiB frame.
func TestStalledMessageHeap(t *testing.T) {
	const n = 500
	// A 1 MiB binary frame, masked with a zero key, of which 3 bytes come.
	bigFrame := "\x82\xff\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00abc"
	// A 65,535-byte frame, of which 3 bytes come.
	midFrame := "\x82\xfe\xff\xff\x00\x00\x00\x00abc"
	for _, h := range []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request, held chan<- net.Conn)
	}{{"Serve", serveEcho}, {"Read loop", readLoopEcho}} {
		idleHeap(t, n, "", h.handler) // what grows once
		idle := idleHeap(t, n, "", h.handler)
		for _, stall := range []struct{ name, after string }{
			{"1-byte fragment", clientFrame(0x02, "x")},
			{"3 bytes of a 1 MiB frame", bigFrame},
			{"3 bytes of a 64 KiB frame", midFrame},
		} {
			got := idleHeap(t, n, stall.after, h.handler) - idle
			t.Logf("%s, %s: %d bytes of heap per connection beyond an idle one (%d)", h.name, stall.name, got, idle)
			if got > 2*minReadChunk {
				t.Errorf("%s, %s: %d bytes of heap per connection beyond an idle one, over %d", h.name, stall.name, got, 2*minReadChunk)
			}
		}
	}
}

// serveEcho serves the connection, echoing every message.
func serveEcho(w http.ResponseWriter, r *http.Request, _ chan<- net.Conn) {
	c, err := Accept(w, r, nil)
	if err != nil {
		return
	}
	c.Serve(func(typ MessageType, p []byte) {
		c.Write(context.Background(), typ, p)
	}, func(error) { c.CloseNow() })
}

// readLoopEcho echoes every message in the README's Read/Write loop.
func readLoopEcho(w http.ResponseWriter, r *http.Request, _ chan<- net.Conn) {
	c, err := Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, p, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, p); err != nil {
			return
		}
	}
}

// idleHeap opens n connections to a server running handler, each echoing
// one 2-byte message and then sending after, and returns the heap held per connection once they
// are idle, after a collection. A handler that keeps its connection
// itself sends it on held. It returns once the server and the
// connections are gone, so that the next measurement starts afresh.
func idleHeap(t *testing.T, n int, after string, handler func(http.ResponseWriter, *http.Request, chan<- net.Conn)) int64 {
	t.Helper()
	held := idleConns(t, n, after, handler)
	// The server's ends go on their own once the clients close: wait
	// until the heap stops shrinking.
	var ms runtime.MemStats
	last := uint64(math.MaxUint64)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc+uint64(n)*8 > last {
			break
		}
		last = ms.HeapAlloc
	}
	return held
}

// idleConns is idleHeap's measurement; it closes the server and the
// connections before it returns.
func idleConns(t *testing.T, n int, after string, handler func(http.ResponseWriter, *http.Request, chan<- net.Conn)) int64 {
	t.Helper()
	held := make(chan net.Conn, n)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler(w, r, held)
	}))
	defer s.Close()
	clients := make([]net.Conn, 0, n)
	defer func() {
		for _, nc := range clients {
			nc.Close()
		}
		for range len(held) {
			(<-held).Close()
		}
	}()
	var before, now runtime.MemStats
	// Two collections empty the pools, which would otherwise lend what
	// this run takes from them.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		// Not rawClient, whose cleanup would keep the client's end.
		nc := dialRaw(t, s.Listener.Addr().String())
		clients = append(clients, nc)
		if _, err := io.WriteString(nc, clientFrame(0x82, "hi")); err != nil {
			t.Fatal(err)
		}
		if got, err := readServerFrame(nc); err != nil || got != "\x82\x02hi" {
			t.Fatalf("echo: %q, %v", got, err)
		}
		if _, err := io.WriteString(nc, after); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // the handlers go idle
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&now)
	return (int64(now.HeapAlloc) - int64(before.HeapAlloc)) / int64(n)
}
