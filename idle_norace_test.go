//go:build !race

package websocket

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// TestIdleHeap measures the heap an idle connection holds, each having
// echoed one message, beyond what a handler that hijacks the connection
// holds without the library: with Serve, beyond a handler that keeps only
// the net.Conn and returns; with the README's Read/Write loop on the
// request's context, beyond a handler that waits in a read of the
// hijacked socket, and so holds net/http's request state as any handler
// that reads in a loop does (2,450 bytes more than the first). Both ends
// are in this process; the client is the same raw socket in every case,
// so it cancels out. The bounds leave some room over what was measured
// (636-643 and 1,187-1,189 bytes; the Read loop's is mostly the Conn and
// the registration of the request's context, which a handler that reads
// without a context does not make).
func TestIdleHeap(t *testing.T) {
	const n = 1000
	hijackEcho := func(w http.ResponseWriter) net.Conn {
		nc, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return nil
		}
		dropBuffers(brw)
		io.WriteString(nc, sample101)
		var frame [8]byte
		if _, err := io.ReadFull(nc, frame[:]); err != nil {
			nc.Close()
			return nil
		}
		io.WriteString(nc, "\x82\x02"+string(frame[6:]))
		return nc
	}
	bare := func(w http.ResponseWriter, r *http.Request, held chan<- net.Conn) {
		if nc := hijackEcho(w); nc != nil {
			held <- nc
		}
	}
	waiting := func(w http.ResponseWriter, r *http.Request, _ chan<- net.Conn) {
		if nc := hijackEcho(w); nc != nil {
			nc.Read(make([]byte, 1)) // until the client closes
			nc.Close()
		}
	}
	idleHeap(t, n, heapDial{}, "", bare) // what grows once, the first time, is not counted
	for _, tc := range []struct {
		name, base  string
		bound       int64
		handler     func(w http.ResponseWriter, r *http.Request, held chan<- net.Conn)
		baseHandler func(w http.ResponseWriter, r *http.Request, held chan<- net.Conn)
	}{
		{"Serve", "a bare hijack", 800, serveEcho, bare},
		{"Read loop", "a handler waiting in a read", 1400, readLoopEcho, waiting},
	} {
		// The lower of two runs, as what grows once (pools, the parker's
		// tables) is counted by the first.
		base := min(idleHeap(t, n, heapDial{}, "", tc.baseHandler), idleHeap(t, n, heapDial{}, "", tc.baseHandler))
		got := min(idleHeap(t, n, heapDial{}, "", tc.handler), idleHeap(t, n, heapDial{}, "", tc.handler)) - base
		t.Logf("%s: %d bytes of heap per idle connection beyond %s (%d)", tc.name, got, tc.base, base)
		if got > tc.bound {
			t.Errorf("%s: %d bytes of heap per idle connection beyond %s, over %d", tc.name, got, tc.base, tc.bound)
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
// arrived, a Read loop held 64 KiB for 3 bytes of a 64 KiB frame. The
// same holds over TLS, where a read waits inside a read of the stream:
// before such a wait for the rest of a frame took the idle array, it held
// the 32 KiB read buffer (33 KiB more for Serve, 36 KiB for a Read loop,
// for 3 bytes of a frame); and 2 bytes of a header held it on any
// transport (37 KiB more for Serve on a plain socket).
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
		for _, tr := range []struct {
			name string
			via  heapDial
		}{{"", heapDial{}}, {"TLS, ", heapDial{overTLS: true}}} {
			idleHeap(t, n, tr.via, "", h.handler) // what grows once
			idle := idleHeap(t, n, tr.via, "", h.handler)
			for _, stall := range []struct{ name, after string }{
				{"1-byte fragment", clientFrame(0x02, "x")},
				{"3 bytes of a 1 MiB frame", bigFrame},
				{"3 bytes of a 64 KiB frame", midFrame},
				{"2 bytes of a 14-byte header", bigFrame[:2]},
			} {
				got := idleHeap(t, n, tr.via, stall.after, h.handler) - idle
				t.Logf("%s, %s%s: %d bytes of heap per connection beyond an idle one (%d)", h.name, tr.name, stall.name, got, idle)
				if got > 2*minReadChunk {
					t.Errorf("%s, %s%s: %d bytes of heap per connection beyond an idle one, over %d", h.name, tr.name, stall.name, got, 2*minReadChunk)
				}
			}
		}
	}
}

// TestStalledCompressedHeap: a peer that starts a compressed message and
// stops sending, inside a frame or between two, has a connection hold,
// beyond an idle one, what the decoder keeps while it waits (under 1 KiB:
// flate.Reader.Pause gives its 12.5 KiB of buffers and tables back)
// besides what an uncompressed message holds (see
// TestStalledMessageHeap); and once the message has output, its 32 KiB
// window and at most about twice that output. Measured (Serve, Read loop;
// over TCP, then TLS): 3 bytes of a compressed 1 MiB frame, 5,292 and
// 5,296 bytes, 895 and 5,296; a first fragment of 3 bytes, the same;
// 1,000 bytes, which inflate to 14,868, 54,448 and 50,423, 50,069 and
// 50,422. Before the decoder paused: 17,954 and 17,968, 13,568 and 17,968;
// 17,878 and 17,967, 13,568 and 17,967; 67,067 and 63,095, 62,742 and
// 63,094.
func TestStalledCompressedHeap(t *testing.T) {
	const (
		n       = 500
		decoder = 1 << 10
		window  = 32 << 10
	)
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, flate.BestSpeed)
	for i := range 2000 {
		fmt.Fprintf(zw, "line %d of a message that compresses\n", i)
	}
	zw.Flush()
	// A compressed 1 MiB binary frame, masked with a zero key.
	bigFrame := "\xc2\xff\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00"
	opts := &AcceptOptions{Compression: CompressionContextTakeover}
	for _, h := range []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request, held chan<- net.Conn)
	}{{"Serve", heapEcho("Serve", opts)}, {"Read loop", heapEcho("Read", opts)}} {
		for _, tr := range []struct {
			name string
			via  heapDial
		}{{"", heapDial{deflate: true}}, {"TLS, ", heapDial{deflate: true, overTLS: true}}} {
			idleHeap(t, n, tr.via, "", h.handler) // what grows once
			idle := idleHeap(t, n, tr.via, "", h.handler)
			for _, stall := range []struct {
				name  string
				sent  int
				frame string
			}{
				{"3 bytes of a compressed 1 MiB frame", 3, bigFrame},
				{"1000 bytes of a compressed 1 MiB frame", 1000, bigFrame},
				// The decoder waits for the next frame.
				{"a first fragment of 3 compressed bytes", 3, "\x42\x83\x00\x00\x00\x00"},
			} {
				out, _ := io.ReadAll(flate.NewReader(bytes.NewReader(z.Bytes()[:stall.sent])))
				bound := int64(2*minReadChunk + decoder)
				if len(out) > 0 {
					bound += int64(window + 2*len(out))
				}
				got := idleHeap(t, n, tr.via, stall.frame+z.String()[:stall.sent], h.handler) - idle
				t.Logf("%s, %s%s (%d inflated): %d bytes of heap per connection beyond an idle one (%d)", h.name, tr.name, stall.name, len(out), got, idle)
				if got > bound {
					t.Errorf("%s, %s%s: %d bytes of heap per connection beyond an idle one, over %d", h.name, tr.name, stall.name, got, bound)
				}
			}
		}
	}
}

// serveEcho serves the connection, echoing every message; readLoopEcho
// echoes every message in the README's Read/Write loop.
var serveEcho, readLoopEcho = heapEcho("Serve", nil), heapEcho("Read", nil)

// heapEcho is echoLoop as a handler of idleConns.
func heapEcho(loop string, opts *AcceptOptions) func(http.ResponseWriter, *http.Request, chan<- net.Conn) {
	h := echoLoop(loop, opts)
	return func(w http.ResponseWriter, r *http.Request, _ chan<- net.Conn) { h.ServeHTTP(w, r) }
}

// heapDial is how idleConns's clients reach the server: over TLS, and
// offering permessage-deflate, which the handler must accept for the
// opening handshake to end as expected.
type heapDial struct{ overTLS, deflate bool }

// idleHeap opens n connections to a server running handler, as via says,
// each echoing one 2-byte message and then sending
// after, and returns the heap held per connection once they are idle,
// after a collection. A handler that keeps its connection
// itself sends it on held. It returns once the server and the
// connections are gone, so that the next measurement starts afresh.
func idleHeap(t *testing.T, n int, via heapDial, after string, handler func(http.ResponseWriter, *http.Request, chan<- net.Conn)) int64 {
	t.Helper()
	goroutines := runtime.NumGoroutine()
	held := idleConns(t, n, via, after, handler)
	// The server's ends go on their own once the clients close: wait for
	// their goroutines to end, which a loaded machine may delay past the
	// heap's first pause in shrinking, then until the heap stops
	// shrinking.
	waitFor(t, "the server's goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines })
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
func idleConns(t *testing.T, n int, via heapDial, after string, handler func(http.ResponseWriter, *http.Request, chan<- net.Conn)) int64 {
	t.Helper()
	held := make(chan net.Conn, n)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler(w, r, held)
	}))
	dial := func() (net.Conn, error) { return net.Dial("tcp", s.Listener.Addr().String()) }
	if via.overTLS {
		s.StartTLS()
		conf := s.Client().Transport.(*http.Transport).TLSClientConfig
		dial = func() (net.Conn, error) { return tls.Dial("tcp", s.Listener.Addr().String(), conf) }
	} else {
		s.Start()
	}
	defer s.Close()
	req, resp := rawUpgradeRequest, sample101
	if via.deflate {
		req = strings.TrimSuffix(req, "\r\n") + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
		resp = strings.TrimSuffix(resp, "\r\n") + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
	}
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
		nc, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, nc)
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, len(resp))
		if _, err := io.WriteString(nc, req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(nc, got); err != nil || string(got) != resp {
			t.Fatalf("handshake: %q, %v", got, err)
		}
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
	// The handlers go idle: a Read loop's registers its context's watch
	// as it begins to wait, the others let go of what the echo took.
	// Measured until two measures 50 ms apart agree, as a loaded machine
	// may keep some handlers from getting there for a while.
	var last uint64
	for deadline := time.Now().Add(3 * time.Second); ; last = now.HeapAlloc {
		time.Sleep(50 * time.Millisecond)
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&now)
		if last != 0 && max(now.HeapAlloc, last)-min(now.HeapAlloc, last) < uint64(n)*8 || time.Now().After(deadline) {
			break
		}
	}
	return (int64(now.HeapAlloc) - int64(before.HeapAlloc)) / int64(n)
}

// TestClosedConnHoldsNoCompression: a connection with context takeover
// lets go of its compression state when it closes, though the Conn stays
// referenced (a program's map of connections, until its cleanup runs):
// its windows, the decoder of a Reader left half read, and the
// compressor of a Writer whose Write failed on the closed connection and
// that the program left open, or closed: each closed Conn held 66.2 KiB
// after an 8 KiB echo, 79.3 with the Reader half read, 235.8 with the
// Writer left open; with a Writer that had taken 100 bytes (no
// compressor of its own), 203.8 left open after its write failed, 33.9
// closed after it, and 34.0 closed with no write. A closed Conn without
// them holds about 2.
func TestClosedConnHoldsNoCompression(t *testing.T) {
	ctx := context.Background()
	msg := flatetest.Corpus("json", 8<<10)[0]
	s := echoServer(t, &AcceptOptions{Compression: CompressionContextTakeover}, nil)
	opts := &DialOptions{Compression: CompressionContextTakeover}
	for _, how := range []string{"echo", "half read", "writer left open", "short writer left open", "short writer closed", "short writer closed unwritten"} {
		warm := dialT(t, wsURL(s), opts)
		warm.Write(ctx, MessageText, msg)
		warm.Read(ctx)
		warm.CloseNow()
		time.Sleep(3 * deflateIdleDelay)
		before := flatetest.LiveHeap()
		const n = 50
		conns := make([]*Conn, n)
		for i := range conns {
			c := dialT(t, wsURL(s), opts)
			if err := c.Write(ctx, MessageText, msg); err != nil {
				t.Fatal(err)
			}
			var left io.WriteCloser
			switch how {
			case "writer left open", "short writer left open", "short writer closed", "short writer closed unwritten":
				w, err := c.Writer(ctx, MessageText)
				if err != nil {
					t.Fatal(err)
				}
				p := msg
				if how != "writer left open" {
					p = msg[:100] // buffered: the writer takes no compressor
				}
				if _, err := w.Write(p); err != nil {
					t.Fatal(err)
				}
				left = w
			case "half read":
				_, r, err := c.Reader(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.Read(make([]byte, 100)); err != nil {
					t.Fatal(err)
				}
			default:
				if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
					t.Fatalf("echo: %v", err)
				}
			}
			c.CloseNow()
			if how == "short writer closed unwritten" {
				if err := left.Close(); !errors.Is(err, ErrClosed) {
					t.Fatalf("Close of a writer of a closed Conn: %v, want ErrClosed", err)
				}
				left = nil
			}
			if left != nil {
				// It fails, and the program leaves it open.
				if _, err := left.Write(msg); !errors.Is(err, ErrClosed) {
					t.Fatalf("Write on a writer of a closed Conn: %v, want ErrClosed", err)
				}
				if how == "short writer closed" {
					left.Close()
				}
			}
			conns[i] = c
		}
		time.Sleep(3 * deflateIdleDelay)
		per := float64(flatetest.LiveHeap()-before) / n
		if per > 8<<10 {
			t.Errorf("%s: each closed Conn holds %.1f KiB", how, per/1024)
		}
		runtime.KeepAlive(conns)
	}
}
