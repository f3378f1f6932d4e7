package websocket

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestPing(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	readErr := readAsync(c)
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	c.CloseNow()
	<-readErr
}

func TestPingContextWithoutPong(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := echoServer(t, nil, func(c *Conn) { <-release }) // never reads: no pong
	defer close(release)
	c := dialT(t, wsURL(s), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping: %v, want DeadlineExceeded", err)
	}
}

// TestPingEndedContext: a Ping whose context has ended sends nothing and
// says so as a ping's error, which said "websocket: write: context
// canceled"; the connection goes on.
func TestPingEndedContext(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Ping(ctx); err == nil || err.Error() != "websocket: ping: context canceled" || !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping with an ended context: %v", err)
	}
	readErr := readAsync(c)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping after: %v", err)
	}
	c.CloseNow()
	<-readErr
}

// TestPongAtClose: a pong read from what was buffered after CloseNow
// marked the connection closed, while Pings wait, neither panics nor
// leaves a Ping waiting. closeTransport closes the waiting Pings'
// channels and leaves their entries in, which the reader's gotPong then
// closed a second time: "close of closed channel", on Serve's goroutine
// a crash of the whole program (5 runs in 5 within 208 connections).
func TestPongAtClose(t *testing.T) {
	t.Parallel()
	for _, served := range []bool{false, true} {
		t.Run(map[bool]string{false: "Read", true: "Serve"}[served], func(t *testing.T) {
			t.Parallel()
			conns := make(chan *Conn, 1)
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Accept(w, r, &AcceptOptions{KeepaliveInterval: -1})
				if err != nil {
					return
				}
				if served {
					conns <- c // served on after the handler returns
					return
				}
				defer c.CloseNow()
				echo(c)
			}))
			t.Cleanup(s.Close)
			ctx := context.Background()
			end := time.Now().Add(3 * time.Second)
			for i := 0; i < 300 && time.Now().Before(end); i++ {
				c := dialT(t, wsURL(s), &DialOptions{KeepaliveInterval: -1})
				pinger := c // the client reads its own pongs
				if served {
					pinger = <-conns // Serve's goroutine reads them
					if err := pinger.Serve(func(MessageType, []byte) {}, nil); err != nil {
						t.Fatal(err)
					}
				}
				var wg sync.WaitGroup
				wg.Go(func() {
					for {
						if _, _, err := c.Read(ctx); err != nil {
							return
						}
					}
				})
				for range 4 {
					wg.Go(func() {
						for pinger.Ping(ctx) == nil {
						}
					})
				}
				time.Sleep(time.Duration(i%20) * 100 * time.Microsecond)
				pinger.CloseNow()
				c.CloseNow()
				wg.Wait()
			}
		})
	}
}

func TestPingEndsWhenConnectionCloses(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := echoServer(t, nil, func(c *Conn) { <-release }) // never reads: no pong
	defer close(release)
	c := dialT(t, wsURL(s), nil)
	pingErr := make(chan error, 1)
	go func() { pingErr <- c.Ping(context.Background()) }()
	time.Sleep(20 * time.Millisecond) // let the ping go out
	c.CloseNow()
	select {
	case err := <-pingErr:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Ping: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Ping still waiting after CloseNow")
	}
	if err := c.Ping(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after CloseNow: %v, want ErrClosed", err)
	}
}

// TestPingAfterReaderLetsGo: a Ping whose pong comes after a message, in
// writes of their own, ends when the pong comes, although the one Read
// that took the message has returned and no Read follows: whether that
// Read was in progress when Ping began (Ping left the pong to it), or
// Ping found the message itself and left it for that Read.
func TestPingAfterReaderLetsGo(t *testing.T) {
	t.Parallel()
	for _, readFirst := range []bool{true, false} {
		s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
		nc := rawClient(t, s.Listener.Addr().String())
		sc := <-conns
		read := make(chan string, 1)
		startRead := func() {
			go func() {
				_, p, err := sc.Read(context.Background())
				if err != nil {
					read <- err.Error()
					return
				}
				read <- string(p)
			}()
		}
		deadline := time.Now().Add(5 * time.Second)
		waitFor := func(what string, cond func() bool) {
			for !cond() {
				if time.Now().After(deadline) {
					t.Fatalf("readFirst=%v: %s never happened", readFirst, what)
				}
				time.Sleep(time.Millisecond)
			}
		}
		if readFirst {
			startRead()
			waitFor("the Read taking the read lock", func() bool {
				if sc.readMu.tryLock() {
					sc.readMu.unlock()
					return false
				}
				return true
			})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pinged := make(chan error, 1)
		go func() { pinged <- sc.Ping(ctx) }()
		ping, err := readServerFrame(nc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(nc, clientFrame(0x81, "hello")); err != nil {
			t.Fatal(err)
		}
		if !readFirst {
			// Ping reads the message's header, and leaves it to a Read.
			waitFor("Ping leaving the message to a Read", sc.pingDeferred.Load)
			startRead()
		}
		if m := <-read; m != "hello" {
			t.Fatalf("readFirst=%v: Read got %q, want hello", readFirst, m)
		}
		if _, err := io.WriteString(nc, clientFrame(0x8A, ping[2:])); err != nil {
			t.Fatal(err)
		}
		if err := <-pinged; err != nil {
			t.Fatalf("readFirst=%v: Ping: %v, want its pong", readFirst, err)
		}
		cancel()
		sc.CloseNow()
	}
}

// TestPongBetweenFragments: a ping between the fragments of a message is
// answered while the message is being read, whether its rest comes with
// the ping or later (the pong must not wait for it), with each way of
// reading. The reader queues such a pong and writes it from
// readMessageLocked rather than where it read the ping
// (controlLocked), which only the stack's depth tells apart.
func TestPongBetweenFragments(t *testing.T) {
	t.Parallel()
	first, ping, rest := clientFrame(0x02, "abc"), clientFrame(0x89, "p1"), clientFrame(0x80, "def")
	const pong = "\x8a\x02p1"
	for _, how := range []string{"Read", "Reader", "Serve"} {
		for _, wait := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, rest later %v", how, wait), func(t *testing.T) {
				t.Parallel()
				s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
				nc := rawClient(t, s.Listener.Addr().String())
				sc := <-conns
				defer sc.CloseNow()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				got := make(chan string, 1)
				switch how {
				case "Read":
					go func() {
						_, p, err := sc.Read(ctx)
						got <- fmt.Sprintf("%q %v", p, err)
					}()
				case "Reader":
					go func() {
						_, r, err := sc.Reader(ctx)
						if err != nil {
							got <- err.Error()
							return
						}
						p, err := io.ReadAll(r)
						got <- fmt.Sprintf("%q %v", p, err)
					}()
				case "Serve":
					sc.Serve(func(_ MessageType, p []byte) { got <- fmt.Sprintf("%q <nil>", p) }, func(error) {})
				}
				msg := first + ping
				if !wait {
					msg += rest
				}
				if _, err := io.WriteString(nc, msg); err != nil {
					t.Fatal(err)
				}
				if f, err := readServerFrame(nc); err != nil || f != pong {
					t.Fatalf("the server sent %q, %v; want the pong %q", f, err, pong)
				}
				if wait {
					if _, err := io.WriteString(nc, rest); err != nil {
						t.Fatal(err)
					}
				}
				if m, want := <-got, `"abcdef" <nil>`; m != want {
					t.Errorf("read %s, want %s", m, want)
				}
			})
		}
	}
}

// TestPingAnsweredByLaterPong: a pong answers the Ping that sent its
// payload and every Ping sent before it, as RFC 6455 §5.5.3 lets a peer
// answer only the latest of the pings it has not answered yet. Only the
// Ping numbered alike woke: with two Pings at once and a peer that
// answered the latest alone, the other waited for its context to end,
// and failed, though the peer had answered a ping sent after it. A pong
// for the earlier ping still leaves the later one waiting.
func TestPingAnsweredByLaterPong(t *testing.T) {
	t.Parallel()
	for _, answer := range []string{"latest only", "earliest first"} {
		t.Run(answer, func(t *testing.T) {
			t.Parallel()
			s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
			nc := rawClient(t, s.Listener.Addr().String())
			sc := <-conns
			defer sc.CloseNow()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			pinged := make(chan error, 2)
			for range 2 {
				go func() { pinged <- sc.Ping(ctx) }()
			}
			var pings [2]string
			for i := range pings {
				f, err := readServerFrame(nc)
				if err != nil || len(f) != 10 || f[0] != 0x89 {
					t.Fatalf("ping %d: %q, %v", i, f, err)
				}
				pings[i] = f[2:]
			}
			if pings[0] > pings[1] {
				pings[0], pings[1] = pings[1], pings[0]
			}
			if answer == "earliest first" {
				io.WriteString(nc, clientFrame(0x8A, pings[0]))
				if err := <-pinged; err != nil {
					t.Fatalf("the Ping answered: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
				select {
				case err := <-pinged:
					t.Fatalf("the later Ping returned %v on the earlier one's pong", err)
				default:
				}
			}
			io.WriteString(nc, clientFrame(0x8A, pings[1]))
			waiting := 2
			if answer == "earliest first" {
				waiting = 1
			}
			for range waiting {
				select {
				case err := <-pinged:
					if err != nil {
						t.Fatalf("Ping: %v, want nil: the pong of a ping sent after it came", err)
					}
				case <-time.After(2 * time.Second):
					t.Fatal("a Ping still waits 2 s after the pong of a ping sent after it")
				}
			}
		})
	}
}

// TestPingBehindWaitingQueue: a Ping that finds Enqueued frames waiting
// for the queue's timer, with nobody writing them yet, joins them rather
// than writing them all under its own context: to a peer that reads
// slowly, the end of that context cut a frame of the queue short and
// failed the connection ("cutting a frame short"), where a Ping's context
// ending leaves it usable (the keepalive's ping, with the timeout for its
// context, failed a slow reader so). The peer then reads every message
// whole, and the ping after them.
func TestPingBehindWaitingQueue(t *testing.T) {
	nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: 4 << 20, KeepaliveInterval: -1})
	sc.tr.rw.(*net.TCPConn).SetWriteBuffer(64 << 10)
	nc.(*net.TCPConn).SetReadBuffer(64 << 10)
	msg := bytes.Repeat([]byte("backlog "), 16<<10) // 128 KiB
	const n = 16                                    // 2 MiB, beyond what the sockets hold
	// On one processor, the queue's timer cannot run between the
	// Enqueues and the Ping, which finds the queue waiting for it.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for range n {
		if err := sc.Enqueue(MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := sc.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrClosed) {
		t.Fatalf("Ping = %v; want the context's deadline, the connection open", err)
	}
	runtime.GOMAXPROCS(2)
	br := bufio.NewReader(nc)
	want := append(frameHeader(0x82, len(msg)), msg...)
	got := make([]byte, len(want))
	for i := range n {
		if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d of %d: %v (the bytes differ: %v)", i+1, n, err, !bytes.Equal(got, want))
		}
	}
	ping, err := readServerFrame(br)
	if err != nil || len(ping) != 10 || ping[0] != 0x89 || ping[1] != 8 {
		t.Fatalf("after the messages: %x, %v; want the ping, with its 8 bytes", ping, err)
	}
	if err := sc.Write(context.Background(), MessageText, []byte("after")); err != nil {
		t.Fatalf("Write after: %v", err)
	}
}
