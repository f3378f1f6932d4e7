package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

func TestWriteContextEndedBeforeWriting(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Write(ctx, MessageText, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a canceled context: %v, want Canceled", err)
	}
	if err := c.Write(context.Background(), MessageText, []byte("y")); err != nil {
		t.Fatalf("Write after: %v", err)
	}
	if _, p, err := c.Read(context.Background()); err != nil || string(p) != "y" {
		t.Fatalf("Read: %q, %v", p, err)
	}
}

// TestWriteContextEndsInsideFrameClosesConnection: a Write whose context
// ends once its frame has begun to go out closes the connection. The
// context ends once the first bytes of the frame have reached the socket
// (a timeout alone, 200 ms, once ran out under -race on a busy machine
// before any had, which rightly leaves the connection open).
func TestWriteContextEndsInsideFrameClosesConnection(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := echoServer(t, nil, func(c *Conn) { <-release }) // never reads
	defer close(release)
	tr, wire := wireTransport()
	c := dialT(t, wsURL(s), &DialOptions{HTTPClient: &http.Client{Transport: tr}})
	cc := <-wire
	big := make([]byte, 64<<20) // more than the socket buffers hold
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := cc.written.Load()
	go func() {
		for cc.written.Load() == before && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err := c.Write(ctx, MessageBinary, big)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Write: %v, want Canceled and ErrClosed", err)
	}
	if err := c.Write(context.Background(), MessageText, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after a cut frame: %v, want ErrClosed", err)
	}
}

func TestConcurrentWritersNeverInterleave(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	const writers, each = 8, 40
	ctx := context.Background()
	msg := func(w, i int) []byte {
		return bytes.Repeat(fmt.Appendf(nil, "<%d:%d>", w, i), 1+(w*37+i*101)%3000)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				p := msg(w, i)
				var err error
				if i%2 == 0 {
					err = c.Write(ctx, MessageBinary, p)
				} else {
					var mw io.WriteCloser
					if mw, err = c.Writer(ctx, MessageBinary); err == nil {
						for len(p) > 0 && err == nil {
							n := min(len(p), 777)
							_, err = mw.Write(p[:n])
							p = p[n:]
						}
						if cerr := mw.Close(); err == nil {
							err = cerr
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	next := make([]int, writers)
	for range writers * each {
		_, p, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		var w, i int
		if _, err := fmt.Sscanf(string(p), "<%d:%d>", &w, &i); err != nil || w >= writers {
			t.Fatalf("unexpected message %.40q", p)
		}
		if i != next[w] || !bytes.Equal(p, msg(w, i)) {
			t.Fatalf("message %d of writer %d arrived mangled or out of order (want %d)", i, w, next[w])
		}
		next[w]++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
}

// TestWriterClosedTwice: a message writer closed a second time, as a
// deferred Close after the Close whose error was checked does, or written
// to after its Close, returns an error and leaves alone the message that
// the connection has begun since, compressed or not. The connection reuses
// one writer for every message: the late Close ended the next message
// half way, and let go of the message lock its writer held, so that its
// rest was refused and, with writers on other goroutines, the peer got a
// new message inside it and failed the connection with 1002.
func TestWriterClosedTwice(t *testing.T) {
	t.Parallel()
	for _, mode := range []CompressionMode{CompressionDisabled, CompressionContextTakeover} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			opts := &AcceptOptions{Compression: mode, CompressionThreshold: 1}
			s := echoServer(t, opts, nil)
			c := dialT(t, wsURL(s), &DialOptions{Compression: mode, CompressionThreshold: 1})
			ctx := context.Background()
			first, err := c.Writer(ctx, MessageText)
			if err != nil {
				t.Fatalf("Writer: %v", err)
			}
			if _, err := io.WriteString(first, "one"); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if err := first.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			second, err := c.Writer(ctx, MessageText)
			if err != nil {
				t.Fatalf("Writer: %v", err)
			}
			if _, err := io.WriteString(second, "two, "); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if err := first.Close(); !errors.Is(err, errWriterClosed) {
				t.Errorf("second Close of the first writer = %v, want %v", err, errWriterClosed)
			}
			if n, err := io.WriteString(first, "stray"); n != 0 || !errors.Is(err, errWriterClosed) {
				t.Errorf("Write to the first writer after its Close = %d, %v, want 0, %v", n, err, errWriterClosed)
			}
			if _, err := io.WriteString(second, "whole"); err != nil {
				t.Fatalf("Write to the second writer: %v", err)
			}
			if err := second.Close(); err != nil {
				t.Fatalf("Close of the second writer: %v", err)
			}
			// A compressed Write uses the same writer inside.
			if err := c.Write(ctx, MessageText, []byte("three")); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if err := second.Close(); !errors.Is(err, errWriterClosed) {
				t.Errorf("second Close of the second writer = %v, want %v", err, errWriterClosed)
			}
			for _, want := range []string{"one", "two, whole", "three"} {
				typ, p, err := c.Read(ctx)
				if err != nil || typ != MessageText || string(p) != want {
					t.Fatalf("Read = %v, %q, %v; want text %q", typ, p, err, want)
				}
			}
		})
	}
}

// TestWriterAbandonedByClose: a message given up part way, its writer
// left open, is ended by Close, as Writer's documentation says to do:
// the close frame goes out between the message's frames, the peer's read
// returns that close and no message, and the writer then fails.
func TestWriterAbandonedByClose(t *testing.T) {
	t.Parallel()
	peerRead := make(chan error, 1)
	s := echoServer(t, nil, func(c *Conn) {
		typ, p, err := c.Read(context.Background())
		if err == nil {
			err = fmt.Errorf("got a %v message of %d bytes", typ, len(p))
		}
		peerRead <- err
	})
	c := dialT(t, wsURL(s), nil)
	w, err := c.Writer(context.Background(), MessageBinary)
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	// Two frames of 4 KiB go out, 1808 bytes stay gathered.
	if _, err := w.Write(make([]byte, 10000)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := c.Close(StatusBadGateway, "upstream lost"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-peerRead; !errors.Is(err, CloseError{StatusBadGateway, "upstream lost"}) {
		t.Errorf("peer's Read: %v, want close 1014 upstream lost", err)
	}
	if _, err := w.Write([]byte("more")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("writer's Close after Close: %v, want ErrClosed", err)
	}
}

// TestWriterFirstFrameFails: a message whose first frame never went out
// (its context had ended) sends nothing more, not even from Close, and
// the connection goes on.
func TestWriterFirstFrameFails(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, func(c *Conn) {
		ctx := context.Background()
		c.Write(ctx, MessageText, []byte("one"))
		c.Write(ctx, MessageText, []byte("two"))
		echo(c)
	})
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	if _, p, err := c.Read(ctx); err != nil || string(p) != "one" {
		t.Fatalf("Read %q, %v", p, err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	w, err := c.Writer(canceled, MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 100<<10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a canceled context: %v", err)
	}
	if _, err := w.Write([]byte("more")); !errors.Is(err, context.Canceled) {
		t.Fatalf("second Write of the failed message: %v", err)
	}
	if err := w.Close(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close of the failed message: %v", err)
	}
	if err := c.Write(ctx, MessageText, []byte("after")); err != nil {
		t.Fatalf("Write after the failed message: %v", err)
	}
	for _, want := range []string{"two", "after"} {
		if _, p, err := c.Read(ctx); err != nil || string(p) != want {
			t.Fatalf("Read %q, %v; want %q (a stray frame would have failed the connection)", p, err, want)
		}
	}
}

// TestWriterLaterFrameFails: a message whose context ends after a frame
// of it went out cannot be completed, so the connection is closed, and
// the write that closed it says so, as every later call does: its error
// wraps ErrClosed beside the context's, where a bare context error would
// tell the caller that the connection goes on.
func TestWriterLaterFrameFails(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, echo)
	c := dialT(t, wsURL(s), nil)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := c.Writer(ctx, MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 5000)); err != nil {
		t.Fatalf("Write of the first frame: %v", err)
	}
	cancel()
	const want = "websocket: write: connection closed: message cut short: write: context canceled"
	if _, err := w.Write(make([]byte, 5000)); !errors.Is(err, ErrClosed) || !errors.Is(err, context.Canceled) || err.Error() != want {
		t.Fatalf("Write after the context ended: %v, want %s", err, want)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) || err.Error() != want {
		t.Fatalf("Close of the cut message: %v, want %s", err, want)
	}
	if err := c.Write(context.Background(), MessageText, []byte("after")); !errors.Is(err, ErrClosed) || err.Error() != want {
		t.Fatalf("Write after the cut message: %v, want %s", err, want)
	}
}

// countedConn is a socket wrapped, by embedding, to count the bytes read
// and written through it.
type countedConn struct {
	*net.TCPConn
	read, written *atomic.Int64
}

func (c countedConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c countedConn) Write(p []byte) (int, error) {
	n, err := c.TCPConn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

type countedListener struct {
	net.Listener
	read, written atomic.Int64
}

func (l *countedListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countedConn{nc.(*net.TCPConn), &l.read, &l.written}, nil
}

// TestWrappedSocketSeesEveryByte: a socket wrapped to count its bytes,
// which offers the socket's own methods by embedding it, sees every byte
// a connection reads and writes, the large writes and the waits for
// input included.
func TestWrappedSocketSeesEveryByte(t *testing.T) {
	t.Parallel()
	conns := make(chan *Conn, 1)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := Accept(w, r, &AcceptOptions{KeepaliveInterval: -1}); err == nil {
			conns <- c
		}
	}))
	ln := &countedListener{Listener: s.Listener}
	s.Listener = ln
	s.Start()
	defer s.Close()
	nc := rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	defer sc.CloseNow()
	read, written := ln.read.Load(), ln.written.Load()
	msg := make([]byte, 8<<10)
	echoed := make(chan error, 1)
	go func() {
		typ, p, err := sc.Read(context.Background())
		if err == nil {
			err = sc.Write(context.Background(), typ, p)
		}
		echoed <- err
	}()
	time.Sleep(10 * time.Millisecond) // Read waits for the message
	frame := append([]byte{0x82, 0x80 | 126, byte(len(msg) >> 8), byte(len(msg)), 0, 0, 0, 0}, msg...)
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(nc, make([]byte, 4+len(msg))); err != nil {
		t.Fatal(err)
	}
	if r, w := ln.read.Load()-read, ln.written.Load()-written; r != int64(len(frame)) || w != int64(4+len(msg)) {
		t.Errorf("the wrapper saw %d bytes read and %d written; %d came in and %d went out", r, w, len(frame), 4+len(msg))
	}
}

// TestEndedContextLeavesQueue: a Write or Read whose context ended before
// it wrote anything, finding frames queued behind input the reader held,
// returns the context's error and leaves the connection usable, the
// queued frame going out after all.
func TestEndedContextLeavesQueue(t *testing.T) {
	t.Parallel()
	for _, call := range []string{"Write", "Read"} {
		t.Run(call, func(t *testing.T) {
			t.Parallel()
			s, conns := acceptOne(t, nil)
			nc := rawClient(t, s.Listener.Addr().String())
			sc := <-conns
			defer sc.CloseNow()
			// A message and the start of another in one write: reading
			// the first leaves the rest buffered, and writes queue
			// behind it.
			if _, err := io.WriteString(nc, clientFrame(0x81, "1")+clientFrame(0x81, "2")[:3]); err != nil {
				t.Fatal(err)
			}
			bg := context.Background()
			if _, p, err := sc.Read(bg); err != nil || string(p) != "1" {
				t.Fatalf("Read: %q, %v", p, err)
			}
			if err := sc.Write(bg, MessageText, []byte("queued")); err != nil {
				t.Fatal(err)
			}
			ended, cancel := context.WithCancel(bg)
			cancel()
			var err error
			if call == "Write" {
				err = sc.Write(ended, MessageBinary, make([]byte, 100<<10))
			} else {
				_, _, err = sc.Read(ended)
			}
			if !errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
				t.Fatalf("%s with an ended context: %v, want Canceled alone", call, err)
			}
			br := bufio.NewReader(nc)
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if got, err := readServerFrame(br); err != nil || got != "\x81\x06queued" {
				t.Fatalf("the queued frame: %q, %v", got, err)
			}
			if err := sc.Write(bg, MessageText, []byte("after")); err != nil {
				t.Fatalf("Write after: %v", err)
			}
			if got, err := readServerFrame(br); err != nil || got != "\x81\x05after" {
				t.Fatalf("after: %q, %v", got, err)
			}
		})
	}
}

// TestTLSWriteTimeoutCloses: over TLS, a write that its context ends
// before a byte of its frame went out still closes the connection, since
// crypto/tls writes nothing more after a write that failed: the end says
// so. The connection stayed open, said usable, and the next Write failed
// as "connection lost: i/o timeout". The close does not wait for TLS's
// close_notify alert, which could not go: it took 5 s (crypto/tls's bound
// on that alert), for a Write whose context allowed 100 ms. Both sides:
// a connection accepted over TLS, and one dialed to a wss URL through
// net/http's client; and each with a connection type that embeds the
// *tls.Conn (a listener's or a dialer's wrapper), which was taken for a
// plain socket.
func TestTLSWriteTimeoutCloses(t *testing.T) {
	t.Parallel()
	for _, side := range []string{"Accept", "Accept, listener wrapping TLS", "Dial", "Dial with DialTLSContext", "Dial with DialTLSContext wrapping TLS"} {
		t.Run(side, func(t *testing.T) {
			t.Parallel()
			var c *Conn // the side that writes to a peer that reads nothing
			if strings.HasPrefix(side, "Accept") {
				if side == "Accept" {
					c = stalledTLSConn(t)
				} else {
					addr, conns := acceptWrappedTLS(t)
					dialRawTLS(t, addr, 4<<10)
					c = <-conns
				}
				socketUnder(c.tr.rw).(*net.TCPConn).SetWriteBuffer(4 << 10)
			} else {
				s, conns := acceptOneTLS(t)
				client := s.Client()
				if strings.HasPrefix(side, "Dial with DialTLSContext") {
					// The client's dialer makes the TLS connection itself.
					client = &http.Client{Transport: &http.Transport{DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
						tc, err := tls.Dial(network, addr, &tls.Config{InsecureSkipVerify: true})
						if err != nil || side == "Dial with DialTLSContext" {
							return tc, err
						}
						return wrappedTLS{tc, new(atomic.Bool)}, nil
					}}}
				}
				dc, _, err := Dial(context.Background(), "wss"+strings.TrimPrefix(s.URL, "https"), &DialOptions{HTTPClient: client})
				if err != nil {
					t.Fatal(err)
				}
				c = dc
				sc := <-conns
				t.Cleanup(func() { sc.CloseNow() })
				sc.tr.rw.(*tls.Conn).NetConn().(*net.TCPConn).SetReadBuffer(4 << 10)
				socketUnder(c.tr.dl).(*net.TCPConn).SetWriteBuffer(4 << 10)
			}
			t.Cleanup(func() { c.CloseNow() })
			msg := make([]byte, 1000)
			for i := range 10000 {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				start := time.Now()
				err := c.Write(ctx, MessageBinary, msg)
				took := time.Since(start)
				cancel()
				if err == nil {
					continue
				}
				if took > 3*time.Second {
					t.Errorf("write %d took %v, with a context of 100 ms", i, took)
				}
				if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrClosed) || !c.isClosed() {
					t.Fatalf("write %d: %v (closed: %v), want the context's end and the connection closed", i, err, c.isClosed())
				}
				const want = "websocket: write: connection closed: write: context deadline exceeded, which ends a TLS connection's output"
				if next := c.Write(context.Background(), MessageBinary, msg); next == nil || next.Error() != want {
					t.Fatalf("the next Write: %v, want %q", next, want)
				}
				// A wrapper's own Close runs, for what it counts.
				w, ok := c.tr.rw.(wrappedTLS)
				if !ok {
					w, ok = c.tr.dl.(wrappedTLS)
				}
				if ok && !w.closed.Load() {
					t.Error("the connection closed without its wrapper's Close")
				}
				return
			}
			t.Fatal("10,000 writes to a peer that reads nothing all went")
		})
	}
}

// wrappedTLS is a connection type of a user's that embeds a *tls.Conn, as
// a listener's or a dialer's wrapper that counts its connections might,
// with a Close of its own.
type wrappedTLS struct {
	*tls.Conn
	closed *atomic.Bool
}

func (c wrappedTLS) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// acceptWrappedTLS serves Accept over TLS from a listener that hands out
// its connections as wrappedTLS (net/http then sees no TLS: r.TLS is nil),
// and returns its address and the accepted connections.
func acceptWrappedTLS(t *testing.T) (string, <-chan *Conn) {
	t.Helper()
	certs := httptest.NewTLSServer(nil)
	cert := certs.TLS.Certificates
	certs.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *Conn, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := Accept(w, r, nil); err == nil {
			t.Cleanup(func() { c.CloseNow() })
			conns <- c
		}
	})}
	go srv.Serve(wrappingListener{tls.NewListener(ln, &tls.Config{Certificates: cert})})
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), conns
}

type wrappingListener struct{ net.Listener }

// socketUnder returns the socket under x, a TLS connection or the socket.
func socketUnder(x any) net.Conn {
	if tc, ok := x.(interface{ NetConn() net.Conn }); ok {
		return tc.NetConn()
	}
	return x.(net.Conn)
}

func (l wrappingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrappedTLS{nc.(*tls.Conn), new(atomic.Bool)}, nil
}

// TestCutWriteError: a Write or a Ping whose context ends while its write
// is under way, behind queued frames a peer reading nothing leaves stuck,
// closes the connection; its error names it once, and says the context
// ended and a frame was cut ("websocket: write: connection closed: write:
// context deadline exceeded" before, and a Ping's said "write" too). The
// calls after it find the write's end.
func TestCutWriteError(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"write", "ping"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: 8 << 20})
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			if op == "ping" {
				// The ping waits for the frame lock before the queue
				// fills behind it: one that finds frames queued joins
				// them (TestPingBehindWaitingQueue).
				queueBehindHeldLock(t, nc, sc, func() {
					go func() { done <- sc.Ping(ctx) }()
					awaitFrameLockWaiter(t, sc, op)
				})
			} else {
				// The Write holds the message lock while it waits for the
				// frame lock, which would hold the Enqueues back behind
				// its frame: it comes once the queue is full.
				queueBehindHeldLock(t, nc, sc, nil)
				go func() { done <- sc.Write(ctx, MessageText, []byte("late")) }()
				awaitFrameLockWaiter(t, sc, op)
			}
			sc.frameMu.unlock()
			err := <-done
			want := "websocket: " + op + ": connection closed: context deadline exceeded, cutting a frame short"
			if err == nil || err.Error() != want || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrClosed) {
				t.Fatalf("%s: %v, want %q, the context's end and ErrClosed", op, err, want)
			}
			const end = "websocket: read: connection closed: write: context deadline exceeded, cutting a frame short"
			if _, _, err := sc.Read(context.Background()); err == nil || err.Error() != end {
				t.Errorf("Read after: %v, want %q", err, end)
			}
		})
	}
}

// TestWriterReadFrom: io.Copy into a Writer goes through its ReadFrom,
// which sends each read as Write would (a read of 4 KiB or more as a frame
// of its own, a short one gathered for the last frame), returns a read's
// error with the message left open, and says so once the writer is
// closed.
func TestWriterReadFrom(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, nil)
	errBoom := errors.New("boom")
	ctx := context.Background()
	w, err := sc.Writer(ctx, MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.(io.ReaderFrom); !ok {
		t.Fatalf("the writer, a %T, has no ReadFrom", w)
	}
	chunk := func(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }
	var sources []io.Reader
	var want []byte
	for i := range 5 {
		sources = append(sources, bytes.NewReader(chunk('a'+byte(i), 20000)))
		want = append(append(want, frameHeader(map[bool]byte{true: 0x02, false: 0x00}[i == 0], 20000)...), chunk('a'+byte(i), 20000)...)
	}
	sources = append(sources, strings.NewReader("tail"), iotest.ErrReader(errBoom))
	got := make(chan []byte, 1)
	size := len(want) + len(frameHeader(0x80, 4+2400)) + 4 + 2400
	go func() {
		b := make([]byte, size)
		_, err := io.ReadFull(nc, b)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	// struct{ io.Reader } hides MultiReader's WriteTo, which io.Copy
	// would prefer.
	n, err := io.Copy(w, struct{ io.Reader }{io.MultiReader(sources...)})
	if n != 5*20000+4 || err != errBoom {
		t.Fatalf("io.Copy = %d, %v; want %d, %v", n, err, 5*20000+4, errBoom)
	}
	if n, err := io.Copy(w, struct{ io.Reader }{bytes.NewReader(chunk('z', 2400))}); n != 2400 || err != nil {
		t.Fatalf("io.Copy after the read error = %d, %v; want 2400, nil", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want = append(append(append(want, frameHeader(0x80, 4+2400)...), "tail"...), chunk('z', 2400)...)
	if b := <-got; !bytes.Equal(b, want) {
		t.Errorf("wire bytes differ from the frames wanted (%d bytes, %d wanted)", len(b), len(want))
	}
	if n, err := w.(io.ReaderFrom).ReadFrom(strings.NewReader("late")); n != 0 || !errors.Is(err, errWriterClosed) {
		t.Errorf("ReadFrom after Close = %d, %v; want 0, %v", n, err, errWriterClosed)
	}
}
