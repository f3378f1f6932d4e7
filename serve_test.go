package websocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// serveServer starts a server whose handler accepts and returns after
// handing the connection to Serve, which echoes; closed receives what
// onClose got.
func serveServer(t *testing.T, tlsServer bool, opts *AcceptOptions) (url string, closed chan error, client *http.Client) {
	t.Helper()
	closed = make(chan error, 8)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, opts)
		if err != nil {
			return
		}
		c.Serve(func(typ MessageType, p []byte) {
			if string(p) == "close please" {
				c.Close(StatusGoingAway, "asked to")
				return
			}
			c.Write(context.Background(), typ, p)
		}, func(err error) {
			c.CloseNow()
			closed <- err
		})
	})
	var s *httptest.Server
	if tlsServer {
		s = httptest.NewTLSServer(h)
		client = s.Client()
	} else {
		s = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return "ws" + strings.TrimPrefix(s.URL, "http"), closed, client
}

func TestServeEcho(t *testing.T) {
	t.Parallel()
	for _, tlsServer := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsServer), func(t *testing.T) {
			t.Parallel()
			url, closed, client := serveServer(t, tlsServer, nil)
			c := dialT(t, url, &DialOptions{HTTPClient: client})
			ctx := context.Background()
			for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
				msg := bytes.Repeat([]byte{'s'}, n)
				if err := c.Write(ctx, MessageBinary, msg); err != nil {
					t.Fatal(err)
				}
				if _, got, err := c.Read(ctx); err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("echo of %d bytes: %d bytes, %v", n, len(got), err)
				}
			}
			if err := c.Close(StatusNormalClosure, "bye"); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := <-closed; CloseStatus(err) != StatusNormalClosure {
				t.Fatalf("onClose got %v, want the client's close 1000", err)
			}
		})
	}
}

// TestServeIdleHandsOver: once a served connection has been quiet for a
// while, no goroutine is left serving it, and serving goes on when input
// comes, a message or a ping alone. Not parallel: servedIdle looks at
// every goroutine, and another test's serving goroutine would hide the
// hand-over of this one.
func TestServeIdleHandsOver(t *testing.T) {
	url, closed, _ := serveServer(t, false, nil)
	c := dialT(t, url, nil)
	if c.tr.raw == nil {
		// The server's socket is as plain as the client's.
		t.Skip("Serve cannot await input without reading here (wait_other.go): the serving goroutine stays")
	}
	ctx := context.Background()
	for round := range 4 {
		if round%2 == 0 {
			if err := c.Write(ctx, MessageText, []byte("ping")); err != nil {
				t.Fatal(err)
			}
			if _, p, err := c.Read(ctx); err != nil || string(p) != "ping" {
				t.Fatalf("round %d: %q, %v", round, p, err)
			}
		} else if err := c.Ping(ctx); err != nil {
			// Answered by the serving goroutine, which must then wait
			// for input again, not in a read for a message.
			t.Fatalf("round %d: Ping: %v", round, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !servedIdle(t) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the serving goroutine did not hand over while idle", round)
			}
			time.Sleep(serveLinger)
		}
	}
	c.CloseNow()
	if err := <-closed; err == nil {
		t.Fatal("onClose got nil")
	}
}

// servedIdle reports whether the served connection is waiting for input
// without its serving goroutine: parked in the epoll set that
// (*parker).loop watches, or, elsewhere, in a small goroutine in
// (*server).await.
func servedIdle(t *testing.T) bool {
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	if strings.Contains(stacks, "(*server).wait(") || strings.Contains(stacks, "(*server).run(") {
		return false
	}
	return strings.Contains(stacks, "(*parker).loop") || strings.Contains(stacks, "(*server).await")
}

func TestServeCloseFromHandler(t *testing.T) {
	t.Parallel()
	url, closed, _ := serveServer(t, false, nil)
	c := dialT(t, url, nil)
	ctx := context.Background()
	if err := c.Write(ctx, MessageText, []byte("close please")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); CloseStatus(err) != StatusGoingAway {
		t.Fatalf("client Read: %v, want the server's close 1001", err)
	}
	if err := <-closed; !errors.Is(err, ErrClosed) {
		t.Fatalf("onClose got %v, want ErrClosed", err)
	}
}

// TestServeNilCallbacks: Serve refuses a nil onMessage, leaving the
// connection as it was, and serves with a nil onClose, its end then
// reported to no one: the connection ends as any served one does, after
// the close handshake or when the peer drops it, with no serving goroutine
// left behind.
func TestServeNilCallbacks(t *testing.T) {
	t.Parallel()
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop=%v", drop), func(t *testing.T) {
			t.Parallel()
			refused := make(chan error, 1)
			served := make(chan *Conn, 1)
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Accept(w, r, nil)
				if err != nil {
					return
				}
				refused <- c.Serve(nil, nil)
				if err := c.Serve(func(typ MessageType, p []byte) {
					c.Write(context.Background(), typ, p)
				}, nil); err != nil {
					c.CloseNow()
					return
				}
				served <- c
			}))
			t.Cleanup(s.Close)
			c := dialT(t, wsURL(s), nil)
			if err := <-refused; err == nil || err.Error() != "websocket: serve: onMessage is nil" {
				t.Fatalf("Serve(nil, nil) = %v, want websocket: serve: onMessage is nil", err)
			}
			sc := <-served
			handshakeEcho(t, c, "echo")
			srv := sc.srv.Load()
			run, await := fmt.Sprintf("(*server).run(%p", srv), fmt.Sprintf("(*server).await(%p", srv)
			if drop {
				c.CloseNow()
			} else if err := c.Close(StatusNormalClosure, ""); err != nil {
				t.Fatalf("Close: %v", err)
			}
			// Ended: the transport closed, and no goroutine left serving
			// it, past the (nil) onClose.
			waitFor(t, "the served connection to end", func() bool {
				buf := make([]byte, 1<<20)
				stacks := string(buf[:runtime.Stack(buf, true)])
				return sc.closed.Load() && !strings.Contains(stacks, run) && !strings.Contains(stacks, await)
			})
		})
	}
}

// TestServeCloseWhileParked: Close and CloseNow from another goroutine
// while the connection waits for input end serving.
func TestServeCloseWhileParked(t *testing.T) {
	t.Parallel()
	for _, handshake := range []bool{true, false} {
		t.Run(fmt.Sprintf("handshake=%v", handshake), func(t *testing.T) {
			t.Parallel()
			served := make(chan *Conn, 1)
			closed := make(chan error, 1)
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Accept(w, r, &AcceptOptions{CloseTimeout: 2 * time.Second})
				if err != nil {
					return
				}
				c.Serve(func(MessageType, []byte) {}, func(err error) { closed <- err })
				served <- c
			}))
			t.Cleanup(s.Close)
			client := dialT(t, wsURL(s), nil)
			readErr := make(chan error, 1)
			go func() {
				_, _, err := client.Read(context.Background())
				readErr <- err
			}()
			sc := <-served
			time.Sleep(3 * serveLinger) // let the serving goroutine hand over; the test holds either way
			if handshake {
				if err := sc.Close(StatusGoingAway, ""); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if err := <-readErr; CloseStatus(err) != StatusGoingAway {
					t.Fatalf("client Read: %v, want 1001", err)
				}
			} else {
				sc.CloseNow()
				if err := <-readErr; CloseStatus(err) != StatusAbnormalClosure {
					t.Fatalf("client Read: %v, want 1006", err)
				}
			}
			// Either the serving goroutine read the client's answer to the
			// close (CloseStatus 1001) or it found the connection closed.
			if err := <-closed; !errors.Is(err, ErrClosed) && !(handshake && CloseStatus(err) == StatusGoingAway) {
				t.Fatalf("onClose got %v, want the end of the connection", err)
			}
		})
	}
}

// TestServePipelinedWithHandshake: frames sent in the same write as the
// handshake request are served.
func TestServePipelinedWithHandshake(t *testing.T) {
	t.Parallel()
	url, closed, _ := serveServer(t, false, nil)
	nc, err := net.Dial("tcp", strings.TrimPrefix(url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	frames := "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58" + "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
	if _, err := nc.Write([]byte(rawUpgradeRequest + frames)); err != nil {
		t.Fatal(err)
	}
	want := sample101 + "\x81\x05Hello\x81\x05Hello"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(nc, got); err != nil || string(got) != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	nc.Close()
	<-closed
}

// recordingListener hands out the countingConn of each connection it
// accepts.
type recordingListener struct {
	countingListener
	conns chan *countingConn
}

func (l recordingListener) Accept() (net.Conn, error) {
	nc, err := l.countingListener.Accept()
	if err == nil {
		l.conns <- nc.(*countingConn)
	}
	return nc, err
}

// TestWritesCoalesce: replies to a burst of messages the server read in
// one go leave in few writes, not one each.
func TestWritesCoalesce(t *testing.T) {
	t.Parallel()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		echo(c)
	}))
	conns := make(chan *countingConn, 1)
	s.Listener = recordingListener{countingListener{s.Listener}, conns}
	s.Start()
	t.Cleanup(s.Close)
	nc, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write([]byte(rawUpgradeRequest)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(sample101))
	if _, err := io.ReadFull(nc, got); err != nil || string(got) != sample101 {
		t.Fatalf("handshake: %q, %v", got, err)
	}
	sc := <-conns
	handshakeWrites := sc.writes.Load()
	const n = 100
	burst := strings.Repeat("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", n)
	if _, err := nc.Write([]byte(burst)); err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("\x81\x05Hello", n)
	got = make([]byte, len(want))
	if _, err := io.ReadFull(nc, got); err != nil || string(got) != want {
		t.Fatalf("echoes: %q, %v", got, err)
	}
	if w := sc.writes.Load() - handshakeWrites; w > n/10 {
		t.Errorf("%d echoes took %d writes, want them coalesced into at most %d", n, w, n/10)
	}
}

// TestPongsCoalesce: pings that arrive together are answered in few
// writes, with a Read loop and with Serve, between messages and inside
// one. Each pong went out in a write of its own: 10,000 six-byte pings
// cost the server 10,000 system calls, some 90 times the CPU per byte
// received of a data message.
func TestPongsCoalesce(t *testing.T) {
	t.Parallel()
	const pings = 10000
	for _, served := range []bool{false, true} {
		for _, inside := range []bool{false, true} {
			t.Run(fmt.Sprintf("Serve=%v/inside=%v", served, inside), func(t *testing.T) {
				t.Parallel()
				got := make(chan error, 1)
				s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					c, err := Accept(w, r, nil)
					if err != nil {
						return
					}
					t.Cleanup(func() { c.CloseNow() })
					if served {
						c.Serve(func(MessageType, []byte) { got <- nil }, func(err error) {})
						return
					}
					_, _, err = c.Read(context.Background())
					got <- err
				}))
				conns := make(chan *countingConn, 1)
				s.Listener = recordingListener{countingListener{s.Listener}, conns}
				s.Start()
				t.Cleanup(s.Close)
				nc := rawClient(t, s.Listener.Addr().String())
				nc.SetDeadline(time.Now().Add(20 * time.Second))
				sc := <-conns
				before := sc.writes.Load()
				var burst []byte
				if inside {
					burst = maskedFrame(0x02, []byte("x"))
				}
				for range pings {
					burst = append(burst, maskedFrame(0x89, nil)...)
				}
				if inside {
					burst = append(burst, maskedFrame(0x80, []byte("y"))...)
				} else {
					burst = append(burst, maskedFrame(0x82, []byte("y"))...)
				}
				start := time.Now()
				if _, err := nc.Write(burst); err != nil {
					t.Fatal(err)
				}
				if err := <-got; err != nil {
					t.Fatal(err)
				}
				want := strings.Repeat("\x8a\x00", pings)
				pongs := make([]byte, len(want))
				if _, err := io.ReadFull(nc, pongs); err != nil || string(pongs) != want {
					t.Fatalf("pongs: %v, or not %d empty pongs", err, pings)
				}
				// The queue's timer writes what queued every
				// queueFlushDelay while the reader works through the
				// pings: a few dozen writes here, a few hundred under the
				// race detector. On a machine so loaded that the reader
				// takes seconds over them, the timer fires that many more
				// times: twice its firings are allowed, which a pong
				// written for each ping still exceeds unless the 10,000
				// took over 2.5 s.
				elapsed := time.Since(start)
				limit := max(pings/4, int64(2*elapsed/queueFlushDelay))
				if w := sc.writes.Load() - before; w > limit {
					t.Errorf("%d pings that arrived together were answered in %d writes in %v, want at most %d", pings, w, elapsed, limit)
				}
			})
		}
	}
}

// TestQueuedWriteGoesOutWithoutReader: a reply queued behind input the
// reader holds goes out even if the reader does not come back.
func TestQueuedWriteGoesOutWithoutReader(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := echoServer(t, nil, func(c *Conn) {
		ctx := context.Background()
		typ, p, err := c.Read(ctx) // the second message stays buffered
		if err != nil {
			return
		}
		c.Write(ctx, typ, p)
		<-release // no more reads until the test has the reply
	})
	defer close(release)
	c := dialT(t, wsURL(s), nil)
	w, err := c.Writer(context.Background(), MessageText)
	if err != nil {
		t.Fatal(err)
	}
	w.Close() // an empty first message...
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// ...then a second one, sent right after so that both arrive together.
	c.Write(ctx, MessageText, []byte("second"))
	if _, p, err := c.Read(ctx); err != nil || len(p) != 0 {
		t.Fatalf("reply: %q, %v; want the empty echo before the server reads again", p, err)
	}
}

// TestServeAfterReadWithContext: a context that an earlier Read used, and
// that ends once Serve has started, does not disturb Serve.
func TestServeAfterReadWithContext(t *testing.T) {
	t.Parallel()
	got := make(chan string, 2)
	s := echoServer(t, nil, func(c *Conn) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, p, err := c.Read(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		got <- string(p)
		done := make(chan struct{})
		c.Serve(func(_ MessageType, p []byte) { got <- string(p) }, func(error) { close(done) })
		cancel()
		<-done
	})
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	c.Write(ctx, MessageText, []byte("hello"))
	if p := <-got; p != "hello" {
		t.Fatal(p)
	}
	time.Sleep(50 * time.Millisecond) // Serve waits, its context long gone
	c.Write(ctx, MessageText, []byte("served"))
	select {
	case p := <-got:
		if p != "served" {
			t.Fatal(p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve never delivered the message sent after the first Read's context ended")
	}
	c.Close(StatusNormalClosure, "")
}

// TestServePingAsOnMessageReturns: a Ping from another goroutine, started
// as onMessage returns, whether it reads for itself or leaves the reading
// to Serve, never strands the message its pong came with: onMessage gets
// every message, in order, and every Ping ends with nil or
// errPingBehindMessage.
func TestServePingAsOnMessageReturns(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
	nc := rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	got := make(chan string, 1)
	sc.Serve(func(_ MessageType, p []byte) { got <- string(p) }, func(error) {})
	if _, err := io.WriteString(nc, clientFrame(0x81, "message 0")); err != nil {
		t.Fatal(err)
	}
	const rounds = 200
	for round := range rounds {
		var m string
		select {
		case m = <-got: // onMessage is returning
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the message behind the pong never reached onMessage", round)
		}
		if want := fmt.Sprintf("message %d", round); m != want {
			t.Fatalf("round %d: onMessage got %q, want %q", round, m, want)
		}
		if round == rounds-1 {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := answerPing(t, ctx, sc, nc, clientFrame(0x81, fmt.Sprintf("message %d", round+1)))
		cancel()
		if err != nil && !errors.Is(err, errPingBehindMessage) {
			t.Fatalf("round %d: Ping: %v", round, err)
		}
	}
}

// TestServePingFromElsewhere: a Ping from another goroutine on a served
// connection, parked or waiting, answered by its pong and a message in one
// write, leaves the reading to Serve: the Ping ends and onMessage gets the
// message, every time.
func TestServePingFromElsewhere(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
	nc := rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	got := make(chan string, 1)
	sc.Serve(func(_ MessageType, p []byte) { got <- string(p) }, func(error) {})
	for round := range 10 {
		if round%2 == 0 {
			time.Sleep(3 * serveLinger) // parked
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		msg := fmt.Sprintf("message %d", round)
		if err := answerPing(t, ctx, sc, nc, clientFrame(0x81, msg)); err != nil {
			t.Fatalf("round %d: Ping: %v", round, err)
		}
		select {
		case m := <-got:
			if m != msg {
				t.Fatalf("round %d: onMessage got %q, want %q", round, m, msg)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the message behind the pong never reached onMessage", round)
		}
		cancel()
	}
}

// TestServeLookMeetsInput: the timer's look, which cuts a long wait
// short, runs on a goroutine of its own under the read lock. When input
// ends the wait while look holds that lock (the wait then ends at once,
// and the serving goroutine's read waits for the lock), look can flag the
// wait as cut and move the read deadline into the past after the serving
// goroutine has looked for the flag. The test takes look's place: it
// takes the read lock and gives up the timer while it sees the goroutine
// waiting, as look does, lets a message end the wait, and only then flags
// the wait and moves the deadline. The message must be served, not lost
// to a read past the deadline that ends the connection (it was, every
// time).
func TestServeLookMeetsInput(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
	nc := rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	if sc.tr.raw == nil {
		t.Skip("Serve waits in a read here: there is no look")
	}
	got := make(chan string, 1)
	closed := make(chan error, 1)
	sc.Serve(func(_ MessageType, p []byte) { got <- string(p) }, func(err error) { closed <- err })
	srv := sc.srv.Load()
	deadline := time.Now().Add(5 * time.Second)
	for round := 0; ; round++ {
		if time.Now().After(deadline) {
			t.Fatal("never caught the serving goroutine waiting")
		}
		msg := fmt.Sprintf("message %d", round)
		locked := false
		if srv.waiting.Load() && sc.readMu.tryLock() {
			// As look does: take the lock, then give up the timer.
			srv.armed.Store(false)
			locked = true
		}
		if locked && !srv.waiting.Load() {
			// The wait ended (the real look cut it): wake it with a message.
			sc.readMu.unlock()
			locked = false
		}
		if _, err := io.WriteString(nc, clientFrame(0x82, msg)); err != nil {
			t.Fatal(err)
		}
		if locked {
			for srv.waiting.Load() {
				if time.Now().After(deadline) {
					sc.readMu.unlock()
					t.Fatal("the message never ended the wait")
				}
				time.Sleep(time.Millisecond)
			}
			// What look does once it has seen the wait under the lock.
			srv.interrupted.Store(true)
			sc.tr.dl.SetReadDeadline(longAgo)
			sc.readMu.unlock()
		}
		select {
		case m := <-got:
			if m != msg {
				t.Fatalf("onMessage got %q, want %q", m, msg)
			}
		case err := <-closed:
			t.Fatalf("round %d (look's place taken: %v): serving ended with %v, the message lost", round, locked, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the message never reached onMessage", round)
		}
		if locked {
			break
		}
	}
	sc.CloseNow()
	<-closed
}

// TestServeResetWords: a reset ends serving with the socket's error, as
// it ends a Read (TestIdleReadOnSocket), whether it finds the connection
// waiting on its goroutine or parked. The wait for input reads the error,
// which a socket reports once; the read after it found only the end of
// the stream, and onClose got "connection lost: EOF" every time.
func TestServeResetWords(t *testing.T) {
	t.Parallel()
	for _, parked := range []bool{false, true} {
		s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
		nc := rawClient(t, s.Listener.Addr().String())
		sc := <-conns
		closed := make(chan error, 1)
		sc.Serve(func(MessageType, []byte) {}, func(err error) { closed <- err })
		if parked {
			time.Sleep(3 * serveLinger)
		}
		local, remote := sc.tr.rw.(net.Conn).LocalAddr(), sc.tr.rw.(net.Conn).RemoteAddr()
		nc.(*net.TCPConn).SetLinger(0)
		nc.Close()
		var err error
		select {
		case err = <-closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("parked=%v: serving never ended after the reset", parked)
		}
		sc.CloseNow()
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("parked=%v: onClose got %v, want ECONNRESET", parked, err)
		}
		if sc.tr.raw == nil {
			continue // this system waits inside a read (serve_wait_other.go)
		}
		want := fmt.Sprintf("websocket: connection lost: read tcp %v->%v: read: connection reset by peer", local, remote)
		if err.Error() != want {
			t.Errorf("parked=%v: onClose got %v\nwant %s", parked, err, want)
		}
	}
}

// TestServeLookFindsLockTaken: when the timer's look finds the read lock
// held (by a Ping or keepalive asking whether Serve reads its pong, or
// here by the test, for longer), it looks again later, and the connection
// still hands its waiting over once quiet. It used to give the timer up,
// leaving the serving goroutine waiting until input came (every run).
func TestServeLookFindsLockTaken(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
	rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	if sc.tr.raw == nil {
		t.Skip("Serve waits in a read here: there is no look")
	}
	closed := make(chan error, 1)
	sc.Serve(func(MessageType, []byte) {}, func(err error) { closed <- err })
	defer func() {
		sc.CloseNow()
		<-closed
	}()
	srv := sc.srv.Load()
	deadline := time.Now().Add(5 * time.Second)
	for !srv.waiting.Load() || !sc.readMu.tryLock() {
		if time.Now().After(deadline) {
			t.Fatal("never caught the serving goroutine waiting")
		}
		time.Sleep(100 * time.Microsecond)
	}
	time.Sleep(3 * serveLinger) // look finds the lock taken
	sc.readMu.unlock()
	for srv.waiting.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the serving goroutine still waits on its own, long after the lock was let go")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestServeEnqueueStalledPeer: a peer that sends requests and reads none
// of the replies, which onMessage enqueues, fills the queue and is failed
// with 1008 (CloseOnQueueFull). Serve wrote the queue itself with a write
// that waited, so that it read only as fast as its peer read: the queue
// never filled, and the connection was never failed nor closed (no 1008
// after 38040 replies enqueued in 5 s).
func TestServeEnqueueStalledPeer(t *testing.T) {
	t.Parallel()
	testEnqueueStalled(t, enqueueServe, false)
}

// TestReadLoopEnqueueStalledPeer is TestServeEnqueueStalledPeer for a
// loop that Reads with context.Background() and Enqueues each reply: the
// reader wrote the queue before it waited for input, with a write that
// waited on the peer, so that the loop read only as fast as its peer
// read, never filled the queue, and only keepalive ended it.
func TestReadLoopEnqueueStalledPeer(t *testing.T) {
	t.Parallel()
	testEnqueueStalled(t, enqueueReadLoop, false)
}

// TestEnqueueStalledPinger is TestServeEnqueueStalledPeer and
// TestReadLoopEnqueueStalledPeer with a peer that also pings, a ping of
// 125 bytes behind each request, and reads nothing: a pong that found the
// queue full waited for the queue's writer, and so for the peer, under
// the reader's context.Background(), and the reader, stopped, enqueued no
// more, so that CloseOnQueueFull never failed the connection (no 1008
// after about 1,320 replies in 15 s, over TCP and TLS, with Serve and a
// Read loop alike).
func TestEnqueueStalledPinger(t *testing.T) {
	t.Parallel()
	t.Run("Serve", func(t *testing.T) { t.Parallel(); testEnqueueStalled(t, enqueueServe, true) })
	t.Run("Read", func(t *testing.T) { t.Parallel(); testEnqueueStalled(t, enqueueReadLoop, true) })
}

// enqueueServe and enqueueReadLoop serve a connection the two ways a
// server reads requests and enqueues replies, reply Enqueueing one and
// reporting whether the queue took it: Serve, and a loop of Reads with
// context.Background().
func enqueueServe(c *Conn, reply func() bool) {
	c.Serve(func(MessageType, []byte) { reply() }, func(error) { c.CloseNow() })
}

func enqueueReadLoop(c *Conn, reply func() bool) {
	defer c.CloseNow()
	for {
		if _, _, err := c.Read(context.Background()); err != nil || !reply() {
			return
		}
	}
}

// testEnqueueStalled runs testEnqueueStalledPinger with serve over TCP
// and over TLS, each a subtest.
func testEnqueueStalled(t *testing.T, serve func(c *Conn, reply func() bool), pings bool) {
	for _, overTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "TCP", true: "TLS"}[overTLS], func(t *testing.T) {
			t.Parallel()
			testEnqueueStalledPinger(t, overTLS, pings, serve)
		})
	}
}

// testEnqueueStalledPinger runs serve on each connection accepted, over
// TLS if overTLS, with a small queue and CloseOnQueueFull, where reply
// Enqueues a reply of 100 bytes and reports whether the queue took it.
// The peer sends requests in bursts, with a ping behind each if pings,
// and reads nothing: serve must go on reading them, so that the replies
// fill the queue and the connection fails with 1008.
func testEnqueueStalledPinger(t *testing.T, overTLS, pings bool, serve func(c *Conn, reply func() bool)) {
	var taken atomic.Int32
	failed := make(chan error, 1)
	opts := &AcceptOptions{WriteQueueLimit: 16 << 10, CloseOnQueueFull: true, CloseTimeout: 5 * time.Second}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, opts)
		if err != nil {
			return
		}
		serve(c, func() bool {
			if err := c.Enqueue(MessageBinary, []byte(fmt.Sprintf("%-100d", taken.Load()))); err != nil {
				if errors.Is(err, ErrCloseSent) {
					// Failed by a pong that found the queue full: the
					// connection's end says why.
					c.mu.Lock()
					err = c.endErr
					c.mu.Unlock()
				}
				select {
				case failed <- err:
				default:
				}
				return false
			}
			taken.Add(1)
			return true
		})
	}))
	// The server's send buffer is small, not the peer's receive buffer:
	// at 4 KiB, loopback dropped segments to the peer that carried the
	// acknowledgements of its requests, and both ends backed off for 13
	// s before sending again (ss: rto 13056, backoff 6), the server
	// waiting for requests that did not come.
	s.Listener = smallSendBuffer{s.Listener}
	var nc net.Conn
	if overTLS {
		s.StartTLS()
		t.Cleanup(s.Close)
		nc = dialRawTLS(t, s.Listener.Addr().String(), 0)
	} else {
		s.Start()
		t.Cleanup(s.Close)
		nc = stalledClient(t, s.Listener.Addr().String())
	}
	stop := make(chan struct{})
	sent := make(chan struct{})
	defer func() { close(stop); nc.Close(); <-sent }()
	go func() {
		defer close(sent)
		// Requests in bursts, until the server stops reading them.
		request := clientFrame(0x82, "r")
		if pings {
			request += clientFrame(0x89, strings.Repeat("p", 125))
		}
		burst := strings.Repeat(request, 20)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			// A deadline well past the wait below: a server that
			// stops reading fails the test, not the sender.
			nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.WriteString(nc, burst); err != nil {
				return
			}
		}
	}()
	select {
	case err := <-failed:
		if CloseStatus(err) != StatusPolicyViolation || !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Enqueue refused with %v, want 1008 for a full queue", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no 1008 after %d replies enqueued to a peer that reads none", taken.Load())
	}
}

// TestServeBusyLooksBackOff: while Serve's goroutine stays in one read, a
// peer having sent half a frame and then nothing, the timer that looks
// for a quiet connection runs less and less often: it ran every 20 ms
// for as long as the frame stayed half sent (48 times a second per
// connection), each run a goroutine. The frame's end, when it comes, is
// served. Not parallel: it counts the goroutines the process starts.
func TestServeBusyLooksBackOff(t *testing.T) {
	const n = 50
	peers := make([]net.Conn, n)
	got := make(chan int, n)
	for i := range peers {
		s, conns := acceptOne(t, nil)
		peers[i] = rawClient(t, s.Listener.Addr().String())
		sc := <-conns
		t.Cleanup(func() { sc.CloseNow() })
		sc.Serve(func(_ MessageType, p []byte) { got <- len(p) }, func(error) {})
		// A masked binary frame of 100 bytes, 10 of them sent.
		if _, err := peers[i].Write(append([]byte{0x82, 0x80 | 100, 1, 2, 3, 4}, make([]byte, 10)...)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	before := goroutinesCreated(t)
	time.Sleep(time.Second)
	// The looks at 620 and 1260 ms from the frame's start, a goroutine
	// each: 2 per connection, where every 20 ms made 50.
	if started := goroutinesCreated(t) - before; started > 10*n {
		t.Errorf("%d goroutines started in 1 s with %d connections each in the middle of a frame, want at most %d", started, n, 10*n)
	}
	for _, nc := range peers {
		if _, err := nc.Write(make([]byte, 90)); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case size := <-got:
			if size != 100 {
				t.Fatalf("a message of %d bytes served, want 100", size)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a frame completed was not served within 5 s")
		}
	}
}

// TestServeQuietAfterBusy: a connection that goes quiet after a long
// stretch in one read (half a frame sent, then nothing for 3 s, the
// timer's period grown to its longest) is let go within that period and
// one more of the shortest (about 1.3 s; 2 s allowed for a busy
// machine). A period left long after a wait, or grown one step past
// serveLingerMax, let it go after 2.1 s.
func TestServeQuietAfterBusy(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
	nc := rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	if sc.tr.raw == nil {
		t.Skip("Serve waits in a read on this system: nothing looks for a quiet connection")
	}
	got := make(chan int, 1)
	closed := make(chan error, 1)
	sc.Serve(func(_ MessageType, p []byte) { got <- len(p) }, func(err error) { closed <- err })
	defer func() { sc.CloseNow(); <-closed }()
	srv := sc.srv.Load()
	if _, err := nc.Write(append([]byte{0x82, 0x80 | 100, 1, 2, 3, 4}, make([]byte, 10)...)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // looks at about 1.26, 2.54 and 3.82 s
	if _, err := nc.Write(make([]byte, 90)); err != nil {
		t.Fatal(err)
	}
	if size := <-got; size != 100 {
		t.Fatalf("a message of %d bytes served, want 100", size)
	}
	start := time.Now()
	waitFor(t, "the serving goroutine to wait", srv.waiting.Load)
	for srv.waiting.Load() {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the serving goroutine still waits 5 s after the connection went quiet")
		}
		time.Sleep(time.Millisecond)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("let go %v after the connection went quiet, want within about %v", d, serveLingerMax+serveLinger)
	}
}
