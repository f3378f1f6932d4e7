package websocket

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRegistryShutdown: connections read in a loop, served, and not read
// at all are each sent 1001 with the reason and closed; the shutdown
// returns once all are; new handshakes get 503 meanwhile.
func TestRegistryShutdown(t *testing.T) {
	t.Parallel()
	reg := &Registry{Reason: "maintenance"}
	ended := make(chan error, 10)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{Registry: reg, CloseTimeout: 500 * time.Millisecond})
		if err != nil {
			return
		}
		switch r.URL.Path {
		case "/loop":
			echo(c)
			ended <- c.closedErr("read")
		case "/serve":
			c.Serve(func(typ MessageType, p []byte) { c.Write(context.Background(), typ, p) }, func(err error) { ended <- err })
		default: // nobody reads: the close timeout ends it
		}
	}))
	defer s.Close()
	var clients []*Conn
	for _, path := range []string{"/loop", "/loop", "/serve", "/serve", "/idle"} {
		c := dialT(t, wsURL(s)+path, nil)
		clients = append(clients, c)
		if path != "/idle" {
			// A round trip: the connection is accepted and registered.
			handshakeEcho(t, c, "hello")
		}
	}
	for deadline := time.Now().Add(5 * time.Second); reg.Len() != 5; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("registry holds %d connections, want 5", reg.Len())
		}
	}
	// The clients read, answering the close.
	results := make(chan error, len(clients))
	for _, c := range clients {
		go func() {
			_, _, err := c.Read(context.Background())
			results <- err
		}()
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- reg.Shutdown(context.Background()) }()
	for range clients {
		var ce CloseError
		if err := <-results; !errors.As(err, &ce) || ce != (CloseError{StatusGoingAway, "maintenance"}) {
			t.Errorf("client Read: %v, want close 1001 maintenance", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	if n := reg.Len(); n != 0 {
		t.Errorf("registry holds %d after Shutdown", n)
	}
	for range 4 {
		if err := <-ended; CloseStatus(err) != StatusGoingAway {
			t.Errorf("server side ended with %v, want its own 1001", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := Dial(ctx, wsURL(s)+"/loop", nil)
	if !errors.Is(err, ErrHandshake) || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("Dial during shutdown: %v, want 503", err)
	}
	if !strings.HasSuffix(err.Error(), `: "server shutting down"`) {
		t.Errorf("Dial during shutdown says %q, want the server's reason", err)
	}
}

// TestRegistryShutdownDeadline: peers that never answer the close are
// sent it and dropped when the shutdown's context ends, whether it ends
// during the wait or had ended already (the one signal.NotifyContext
// handed the server, say). In the second case, before the close frames
// were queued and written at once, each went from a goroutine of its own,
// and the closes that followed beat most of them. A Reason that is not
// UTF-8 gives way to the default one.
func TestRegistryShutdownDeadline(t *testing.T) {
	t.Parallel()
	during := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 200*time.Millisecond)
	}
	for _, tc := range []struct {
		name   string
		reason string
		conns  int
		ctx    func() (context.Context, context.CancelFunc)
		want   error
	}{
		{"ending during the wait", "", 1, during, context.DeadlineExceeded},
		{"ended already", "", 8, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"reason not UTF-8", "caf\xe9", 1, during, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := &Registry{Reason: tc.reason}
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Accept(w, r, &AcceptOptions{Registry: reg, CloseTimeout: time.Minute})
				if err != nil {
					return
				}
				c.Serve(func(MessageType, []byte) {}, nil)
			}))
			defer s.Close()
			var clients []net.Conn // never answering
			for range tc.conns {
				clients = append(clients, rawClient(t, s.Listener.Addr().String()))
			}
			waitFor(t, "every connection to be registered", func() bool { return reg.Len() == tc.conns })
			ctx, cancel := tc.ctx()
			defer cancel()
			if err := reg.Shutdown(ctx); !errors.Is(err, tc.want) {
				t.Fatalf("Shutdown: %v, want the context's end", err)
			}
			for _, nc := range clients {
				expectFrame(t, nc, "\x88\x16\x03\xe9server shutting down")
				if _, err := readServerFrame(nc); err == nil {
					t.Fatal("a connection stayed open after the shutdown's deadline")
				}
			}
			if n := reg.Len(); n != 0 {
				t.Errorf("registry holds %d after Shutdown", n)
			}
		})
	}
}

// TestRegistryShutdownBehindWaitingWriter: a shutdown's close frame,
// queued while a Write waits for the frame lock, goes out when that Write
// takes the lock and, finding the close sent, refuses: the holder of the
// frame lock writes the queue. The Write's refusal let the lock go without
// writing the queue, and the close frame waited there until the close
// timeout closed the connection without it. The test holds the frame lock
// itself, as the writer the Write waits behind would.
func TestRegistryShutdownBehindWaitingWriter(t *testing.T) {
	t.Parallel()
	reg := new(Registry)
	nc, sc := stalledPair(t, &AcceptOptions{Registry: reg, CloseTimeout: 5 * time.Second})
	if !sc.frameMu.tryLock() {
		t.Fatal("frame lock taken on a new connection")
	}
	wrote := make(chan error, 1)
	go func() { wrote <- sc.Write(context.Background(), MessageText, []byte("late")) }()
	waitFor(t, "the Write to wait for the frame lock", func() bool {
		sc.frameMu.mu.Lock()
		defer sc.frameMu.mu.Unlock()
		return sc.frameMu.last != nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- reg.Shutdown(ctx) }()
	waitCloseQueued(t, sc)
	sc.frameMu.unlock() // to the Write
	if err := <-wrote; !errors.Is(err, ErrCloseSent) {
		t.Errorf("the waiting Write: %v, want ErrCloseSent", err)
	}
	nc.SetReadDeadline(time.Now().Add(2 * time.Second)) // well within the close timeout
	if got, err := readServerFrame(nc); err != nil || got != "\x88\x16\x03\xe9server shutting down" {
		t.Fatalf("frame %q, %v; want the shutdown's close frame", got, err)
	}
	if err := <-shut; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want its context's end (the peer never answers)", err)
	}
}

// startShutdown starts reg's shutdown with a context ending after d, and
// returns its result's channel once sc has its close to send.
func startShutdown(t *testing.T, reg *Registry, sc *Conn, d time.Duration) <-chan error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	shut := make(chan error, 1)
	go func() { shut <- reg.Shutdown(ctx) }()
	waitFor(t, "the shutdown to begin", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.endErr != nil
	})
	return shut
}

// heldBackPair is stalledPair with reg and a close timeout of 5 s, the
// message lock held by the test, as a Write under way would hold it, and
// the text message "a" enqueued behind it (the backlog).
func heldBackPair(t *testing.T, reg *Registry) (net.Conn, *Conn) {
	t.Helper()
	nc, sc := stalledPair(t, &AcceptOptions{Registry: reg, CloseTimeout: 5 * time.Second})
	if !sc.msgMu.tryLock() {
		t.Fatal("message lock taken on a new connection")
	}
	if err := sc.Enqueue(MessageText, []byte("a")); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return nc, sc
}

// TestRegistryShutdownBehindBacklog: messages that Enqueue and Broadcast
// took while another message was being written (they wait for it, in the
// backlog) go out before a shutdown's close frame, as the messages queued
// do. The close frame went into the queue at once, out with the message
// being written, and the backlog, joining the queue behind a close frame
// sent, was dropped. The test holds the message lock itself, as a Write
// under way would.
func TestRegistryShutdownBehindBacklog(t *testing.T) {
	t.Parallel()
	reg := new(Registry)
	nc, sc := heldBackPair(t, reg)
	pm, err := NewPreparedMessage(MessageText, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if n := pm.Broadcast(sc); n != 1 {
		t.Fatalf("Broadcast took %d connections, want 1", n)
	}
	shut := startShutdown(t, reg, sc, 500*time.Millisecond)
	if err := sc.Enqueue(MessageText, []byte("c")); err != nil {
		t.Fatalf("Enqueue while the close waits: %v", err)
	}
	sc.unlockMsg() // as the Write would, once its message is out
	if err := sc.Write(context.Background(), MessageText, []byte("late")); !errors.Is(err, ErrCloseSent) {
		t.Errorf("Write after the close frame: %v, want ErrCloseSent", err)
	}
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for _, want := range []string{"\x81\x01a", "\x81\x01b", "\x81\x01c", "\x88\x16\x03\xe9server shutting down"} {
		if got, err := readServerFrame(nc); err != nil || got != want {
			t.Fatalf("frame %q, %v; want %q", got, err, want)
		}
	}
	if err := <-shut; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want its context's end (the peer never answers)", err)
	}
}

// TestRegistryShutdownBehindLongWrite: messages that Enqueue took while
// a whole message was being written go out before a shutdown's close
// frame also when that message outlasts the wait for it (the shutdown's
// context, or half the close timeout): no part of it is on the wire, so
// nothing keeps them back. They were dropped, as behind a Writer's open
// message, though Enqueue had returned nil. The test holds the message
// lock itself, as a Write under way to a slow peer would.
func TestRegistryShutdownBehindLongWrite(t *testing.T) {
	t.Parallel()
	reg := new(Registry)
	nc, sc := heldBackPair(t, reg)
	shut := startShutdown(t, reg, sc, 200*time.Millisecond)
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for _, want := range []string{"\x81\x01a", "\x88\x16\x03\xe9server shutting down"} {
		if got, err := readServerFrame(nc); err != nil || got != want {
			t.Fatalf("frame %q, %v; want %q", got, err, want)
		}
	}
	<-shut
	sc.unlockMsg()
}

// TestRegistryShutdownBehindOpenWriter: a shutdown's close frame that
// waits for messages held back behind a Writer's open message goes out,
// between the message's frames, once the shutdown's context ends, or
// after half the close timeout: the message may never end. It waited
// for the message, and the connection was closed without it.
func TestRegistryShutdownBehindOpenWriter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		ctx          time.Duration
		closeTimeout time.Duration
	}{
		{"context ends", 300 * time.Millisecond, 5 * time.Second},
		{"half the close timeout", 10 * time.Second, 600 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := new(Registry)
			nc, sc := stalledPair(t, &AcceptOptions{Registry: reg, CloseTimeout: tc.closeTimeout})
			w, err := sc.Writer(context.Background(), MessageBinary)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(make([]byte, writeBufferSize)); err != nil { // a frame goes out
				t.Fatal(err)
			}
			if err := sc.Enqueue(MessageText, []byte("a")); err != nil { // held back for the message
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.ctx)
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- reg.Shutdown(ctx) }()
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			first := make([]byte, 4+writeBufferSize)
			if _, err := io.ReadFull(nc, first); err != nil || string(first[:4]) != "\x02\x7e\x10\x00" {
				t.Fatalf("first frame's header %q, %v; want the message's first fragment", first[:4], err)
			}
			if got, err := readServerFrame(nc); err != nil || got != "\x88\x16\x03\xe9server shutting down" {
				t.Fatalf("frame %q, %v; want the shutdown's close frame", got, err)
			}
			cancel()
			<-shut
		})
	}
}

// TestRegistryShutdownBehindJoinedByEnqueue: an Enqueue that takes the
// message lock and joins a backlog a shutdown's close frame waits for
// has the queue written. The close frame joined the queue, which nothing
// then wrote, until the close timeout closed the connection without it.
func TestRegistryShutdownBehindJoinedByEnqueue(t *testing.T) {
	t.Parallel()
	reg := new(Registry)
	nc, sc := heldBackPair(t, reg)
	shut := startShutdown(t, reg, sc, 500*time.Millisecond)
	// The Write lets go having looked for a backlog before there was one,
	// and an Enqueue takes the lock before its second look.
	sc.msgMu.unlock()
	if err := sc.Enqueue(MessageText, []byte("b")); !errors.Is(err, ErrCloseSent) {
		t.Errorf("Enqueue after the close frame: %v, want ErrCloseSent", err)
	}
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for _, want := range []string{"\x81\x01a", "\x88\x16\x03\xe9server shutting down"} {
		if got, err := readServerFrame(nc); err != nil || got != want {
			t.Fatalf("frame %q, %v; want %q", got, err, want)
		}
	}
	<-shut
}

// TestRegistryShutdownFromOnClose: a Shutdown called from the onClose of
// the last connection returns at once, that connection having closed.
// Had Shutdown waited for every onClose to return, it would wait for its
// own caller.
func TestRegistryShutdownFromOnClose(t *testing.T) {
	t.Parallel()
	reg := new(Registry)
	got := make(chan error, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{Registry: reg})
		if err != nil {
			return
		}
		c.Serve(func(MessageType, []byte) {}, func(error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got <- reg.Shutdown(ctx)
		})
	}))
	defer s.Close()
	c := dialT(t, wsURL(s), nil)
	waitFor(t, "the connection to be registered", func() bool { return reg.Len() == 1 })
	c.Close(StatusNormalClosure, "bye")
	if err := <-got; err != nil {
		t.Errorf("Shutdown from onClose: %v, want nil", err)
	}
}

// TestRegistryShutdownNothingLeft: with no connection to close, Shutdown
// returns nil whatever its context, the first time and again; it chose
// at random between nil and the context's error when that had ended.
func TestRegistryShutdownNothingLeft(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 100 {
		reg := new(Registry)
		for call := range 2 {
			if err := reg.Shutdown(ctx); err != nil {
				t.Fatalf("registry %d, call %d: Shutdown: %v, want nil", i, call, err)
			}
		}
	}
}

// TestDialRefusalSaysWhy: a refused handshake's error carries the first
// line of what the server said, and names the URL as given.
func TestDialRefusalSaysWhy(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "token expired\nsecond line", http.StatusForbidden)
	}))
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, client := range []*http.Client{nil, {}} {
		_, resp, err := Dial(ctx, wsURL(s), &DialOptions{HTTPClient: client})
		want := `websocket: handshake failed: server answered "403 Forbidden", not 101 Switching Protocols: "token expired"`
		if err == nil || err.Error() != want || !errors.Is(err, ErrHandshake) {
			t.Errorf("Dial: %v, want %q", err, want)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != "token expired\nsecond line\n" {
			t.Errorf("response body %q", b)
		}
	}
	url := "ws://127.0.0.1:1/path"
	_, _, err := Dial(ctx, url, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "websocket: dial "+url+": ") || strings.Contains(err.Error(), "http://") {
		t.Errorf("Dial of a closed port: %v, want the ws:// URL named once", err)
	}
}

// TestRegistryShutdownStalledWriter: a connection whose peer reads
// nothing, with a Write stuck on its full socket, cannot be sent its
// close frame; it is closed when its close timeout passes, so that the
// shutdown ends then, not when its context does.
func TestRegistryShutdownStalledWriter(t *testing.T) {
	t.Parallel()
	reg := new(Registry)
	nc, sc := stalledPair(t, &AcceptOptions{Registry: reg, CloseTimeout: 200 * time.Millisecond})
	nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	sc.tr.rw.(*net.TCPConn).SetWriteBuffer(4 << 10)
	wrote := make(chan error, 1)
	go func() { wrote <- sc.Write(context.Background(), MessageBinary, make([]byte, 8<<20)) }()
	for deadline := time.Now().Add(5 * time.Second); !sc.frameMu.taken(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the write never took the frame lock")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := reg.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v after %v, want nil within the close timeout", err, time.Since(start))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	// The close frame waited in the queue behind the Write: the end says
	// it never went out, not that the peer left it unanswered, names it by
	// its code, and carries no close code itself.
	const cause = "connection closed: the closing handshake timed out: close 1001 (going away) could not be sent"
	select {
	case err := <-wrote:
		if !errors.Is(err, ErrClosed) || CloseStatus(err) != -1 || err.Error() != "websocket: write: "+cause {
			t.Errorf("the stuck Write: %v (close status %d), want ErrClosed, no close code, and %q", err, CloseStatus(err), "websocket: write: "+cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stuck Write never returned")
	}
	if _, _, err := sc.Read(context.Background()); err == nil || err.Error() != "websocket: read: "+cause {
		t.Errorf("Read after the shutdown: %v, want %q", err, "websocket: read: "+cause)
	}
}

// hijackHook is a ResponseWriter that runs before as Accept takes the
// connection over, past Accept's check of the registry.
type hijackHook struct {
	http.ResponseWriter
	before func()
}

func (w *hijackHook) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *hijackHook) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.before()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// TestRegistryShutdownDuringHandshake: a shutdown that begins while a
// handshake is past its check of the registry sends that connection 1001
// too, and waits for it: Shutdown returns only once the peer has answered
// and the connection is closed.
func TestRegistryShutdownDuringHandshake(t *testing.T) {
	t.Parallel()
	reg := new(Registry)
	shut := make(chan error, 1)
	accepted := make(chan error, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &hijackHook{ResponseWriter: w, before: func() {
			go func() { shut <- reg.Shutdown(context.Background()) }()
			for deadline := time.Now().Add(5 * time.Second); !shuttingDown(reg) && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}}
		c, err := Accept(hw, r, &AcceptOptions{Registry: reg, CloseTimeout: 5 * time.Second})
		if err == nil {
			c.CloseNow()
		}
		accepted <- err
	}))
	defer s.Close()
	nc := rawClient(t, s.Listener.Addr().String())
	expectFrame(t, nc, "\x88\x16\x03\xe9server shutting down")
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the peer answered the close frame of a connection it let in", err)
	default:
	}
	if err := <-accepted; err == nil {
		t.Error("Accept took a connection in during the shutdown")
	}
	if _, err := io.WriteString(nc, clientFrame(0x88, "\x03\xe9")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return once the connection closed")
	}
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after Shutdown, the client reads %v, want io.EOF: the connection closed", err)
	}
	if n := reg.Len(); n != 0 {
		t.Errorf("registry holds %d after Shutdown", n)
	}
}

// shuttingDown reports whether reg's Shutdown has begun.
func shuttingDown(reg *Registry) bool {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return reg.shutting
}

// stuckWrite starts a Write of 8 MiB on sc, whose peer nc reads nothing,
// through socket buffers shrunk to 4 KiB, and returns once the Write has
// begun to write (waitWriting): what is queued behind it stays in the
// queue.
func stuckWrite(t *testing.T, nc net.Conn, sc *Conn) <-chan error {
	t.Helper()
	nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	sc.tr.rw.(*net.TCPConn).SetWriteBuffer(4 << 10)
	wrote := make(chan error, 1)
	go func() { wrote <- sc.Write(context.Background(), MessageBinary, make([]byte, 8<<20)) }()
	waitWriting(t, sc)
	return wrote
}

// TestShutdownCloseEnd: a connection that a shutdown ends reports the
// close frame the shutdown queued only once that frame went out; until
// then, whatever ends the connection is its end. Before, the queued frame
// counted as sent from the start: a connection that the shutdown's
// deadline closed, that the peer reset, or whose peer sent its own close,
// while the frame waited behind a Write stuck on the network, reported
// "close 1001 (going away)", a code never on the wire.
func TestShutdownCloseEnd(t *testing.T) {
	t.Parallel()
	const sent = "close 1001 (going away): server shutting down"
	for _, tc := range []struct {
		name   string
		stuck  bool          // the close frame waits behind a stuck Write
		wait   time.Duration // the shutdown's context
		end    func(t *testing.T, nc net.Conn)
		want   string // the end, as a later Read reports it
		status StatusCode
	}{
		// The frame went out, and the peer read it.
		{"sent, deadline", false, 200 * time.Millisecond, nil, "connection closed: " + sent, StatusGoingAway},
		{"sent, close timeout", false, 5 * time.Second, nil, "connection closed: the closing handshake timed out: no answer to " + sent, StatusAbnormalClosure},
		// The frame never went out.
		{"queued, deadline", true, 200 * time.Millisecond, nil, "connection closed: closed without a closing handshake", -1},
		{"queued, peer resets", true, 5 * time.Second, func(t *testing.T, nc net.Conn) {
			nc.(*net.TCPConn).SetLinger(0)
			nc.Close()
		}, "connection closed: connection lost: ", StatusAbnormalClosure},
		{"queued, peer closes", true, 5 * time.Second, func(t *testing.T, nc net.Conn) {
			io.WriteString(nc, clientFrame(0x88, "\x03\xe8peer"))
		}, "connection closed: close 1000 (normal closure): peer", StatusNormalClosure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := new(Registry)
			closeTimeout := 300 * time.Millisecond
			switch {
			case tc.name == "sent, deadline":
				closeTimeout = 5 * time.Second // the shutdown's context ends it first
			case tc.name == "queued, peer closes":
				// The peer's close comes first; the connection then waits
				// to send its own, until this passes.
				closeTimeout = time.Second
			case tc.stuck:
				closeTimeout = 5 * time.Second // the shutdown's context, or the peer, ends it first
			}
			nc, sc := stalledPair(t, &AcceptOptions{Registry: reg, CloseTimeout: closeTimeout})
			if tc.stuck {
				stuckWrite(t, nc, sc)
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.wait)
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- reg.Shutdown(ctx) }()
			waitCloseQueued(t, sc)
			if !tc.stuck {
				nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				expectFrame(t, nc, "\x88\x16\x03\xe9server shutting down")
			}
			if tc.end != nil {
				tc.end(t, nc)
				// Nothing else reads the connection: this Read takes in
				// what the peer did.
				sc.Read(context.Background())
			}
			<-shut
			waitFor(t, "the connection to close", sc.isClosed)
			_, _, err := sc.Read(context.Background())
			if err == nil || !strings.HasPrefix(err.Error(), "websocket: read: "+tc.want) || CloseStatus(err) != tc.status {
				t.Errorf("Read after the shutdown: %v (close status %d), want %q (%d)", err, CloseStatus(err), "websocket: read: "+tc.want+"...", tc.status)
			}
		})
	}
}

// TestRegistryShutdownBehindLetsGo: a connection whose shutdown's close
// frame waits behind an open message is let go of once it has closed,
// not held until half its close timeout, when the frame would have been
// queued: a timer of its own, never stopped, kept the Conn and all it
// holds reachable until then.
func TestRegistryShutdownBehindLetsGo(t *testing.T) {
	t.Parallel()
	reg := new(Registry)
	s, conns := acceptOne(t, &AcceptOptions{Registry: reg, CloseTimeout: 20 * time.Second})
	nc := stalledClient(t, s.Listener.Addr().String())
	sc := <-conns
	var freed atomic.Bool
	runtime.AddCleanup(sc, func(f *atomic.Bool) { f.Store(true) }, &freed)
	w, err := sc.Writer(context.Background(), MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, writeBufferSize)); err != nil { // a frame goes out
		t.Fatal(err)
	}
	if err := sc.Enqueue(MessageText, []byte("a")); err != nil { // held back for the message
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- reg.Shutdown(ctx) }()
	waitFor(t, "the shutdown's close frame to wait behind the message", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.endIntent == intentBehind
	})
	sc.CloseNow()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for deadline := time.Now().Add(3 * time.Second); !freed.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the Conn still reachable 3s after it closed (close timeout 20s)")
		}
		runtime.GC()
	}
	nc.Close()
}
