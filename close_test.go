package websocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// handlerResult carries what a server handler saw back to the test.
type handlerResult struct {
	err error
	msg []byte
}

func TestServerCloseHandshake(t *testing.T) {
	t.Parallel()
	done := make(chan error, 1)
	s := echoServer(t, nil, func(c *Conn) {
		done <- c.Close(StatusGoingAway, "restarting")
	})
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	_, _, err := c.Read(ctx)
	var ce CloseError
	if !errors.As(err, &ce) || ce != (CloseError{StatusGoingAway, "restarting"}) {
		t.Fatalf("client Read: %v, want CloseError 1001 restarting", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server Close: %v, want nil after the client's answer", err)
	}
	err = c.Write(ctx, MessageText, []byte("late"))
	if !errors.Is(err, ErrClosed) || CloseStatus(err) != StatusGoingAway {
		t.Fatalf("Write after the peer closed: %v (status %v), want ErrClosed and 1001", err, CloseStatus(err))
	}
	if err := c.Close(StatusNormalClosure, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Close after the handshake: %v, want ErrClosed", err)
	}
}

func TestCloseWriteDeliversRemainingMessages(t *testing.T) {
	t.Parallel()
	served := make(chan error, 1)
	s := echoServer(t, nil, func(c *Conn) {
		ctx := context.Background()
		if _, _, err := c.Read(ctx); err != nil {
			served <- err
			return
		}
		for i := range 3 {
			if err := c.Write(ctx, MessageText, fmt.Appendf(nil, "m%d", i)); err != nil {
				served <- err
				return
			}
		}
		_, _, err := c.Read(ctx)
		served <- err
	})
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	if err := c.Write(ctx, MessageText, []byte("go")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(StatusNormalClosure, "done sending"); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if err := c.Write(ctx, MessageText, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after CloseWrite: %v, want ErrClosed", err)
	}
	for i := range 3 {
		_, p, err := c.Read(ctx)
		if err != nil || string(p) != fmt.Sprintf("m%d", i) {
			t.Fatalf("Read %d after CloseWrite: %q, %v", i, p, err)
		}
	}
	if _, _, err := c.Read(ctx); CloseStatus(err) != StatusNormalClosure {
		t.Fatalf("last Read: %v, want the server's close 1000", err)
	}
	if err := <-served; CloseStatus(err) != StatusNormalClosure {
		t.Fatalf("server Read: %v, want CloseError 1000", err)
	}
}

func TestCloseTimesOutOnSilentPeer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := echoServer(t, nil, func(c *Conn) { <-release }) // never reads
	defer close(release)
	c := dialT(t, wsURL(s), &DialOptions{CloseTimeout: 200 * time.Millisecond})
	err := c.Close(StatusNormalClosure, "")
	if err == nil || !errors.Is(err, ErrClosed) {
		t.Fatalf("Close with a silent peer: %v, want an error wrapping ErrClosed", err)
	}
	if _, _, err := c.Read(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
}

func TestCloseWhileReading(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	readErr := readAsync(c)
	time.Sleep(20 * time.Millisecond) // let the reader block; the test holds either way
	if err := c.Close(StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-readErr; CloseStatus(err) != StatusNormalClosure && !errors.Is(err, ErrClosed) {
		t.Fatalf("concurrent Read: %v, want the close", err)
	}
}

func TestCloseNowUnblocksRead(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	readErr := readAsync(c)
	if err := c.CloseNow(); err != nil {
		t.Fatalf("CloseNow: %v", err)
	}
	if err := <-readErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Read: %v, want ErrClosed", err)
	}
	if err := c.CloseNow(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second CloseNow: %v, want ErrClosed", err)
	}
}

func TestCloseArguments(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	for _, tc := range []struct {
		code   StatusCode
		reason string
	}{
		{StatusAbnormalClosure, ""},
		{StatusTLSHandshake, ""},
		{999, ""},
		{5000, ""},
		{StatusNoStatusRcvd, "reason without a code"},
		{StatusNormalClosure, string(bytes.Repeat([]byte("r"), 124))},
		{StatusNormalClosure, "\xff"},
	} {
		if err := c.Close(tc.code, tc.reason); err == nil || errors.Is(err, ErrClosed) {
			t.Errorf("Close(%v, %q) = %v, want an argument error", tc.code, tc.reason, err)
		}
	}
	// The connection is untouched by the refused calls.
	if err := c.Write(context.Background(), MessageText, []byte("still open")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if _, p, err := c.Read(context.Background()); err != nil || string(p) != "still open" {
		t.Fatalf("Read: %q, %v", p, err)
	}
}

// TestCloseUnansweredReported: a Close, or CloseWrite, whose close frame
// went out and was never answered ends the connection when the close
// timeout passes, and says so: Close's error, and a Read's, name the
// timeout and the close that went unanswered, and carry
// StatusAbnormalClosure, the code of a connection closed with no close
// frame from the peer (RFC 6455 §7.1.5). They said "close 1000 (normal
// closure)", as a handshake that completed would.
func TestCloseUnansweredReported(t *testing.T) {
	t.Parallel()
	const cause = "connection closed: the closing handshake timed out: no answer to close 1000 (normal closure): bye"
	for _, how := range []string{"Close", "CloseWrite"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPair(t, &AcceptOptions{CloseTimeout: 100 * time.Millisecond})
			var err error
			if how == "Close" {
				err = sc.Close(StatusNormalClosure, "bye")
			} else {
				if err := sc.CloseWrite(StatusNormalClosure, "bye"); err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
				_, _, err = sc.Read(context.Background())
				how = "Read after CloseWrite"
			}
			op := "close"
			if how != "Close" {
				op = "read"
			}
			if err == nil || err.Error() != "websocket: "+op+": "+cause || !errors.Is(err, ErrClosed) || CloseStatus(err) != StatusAbnormalClosure {
				t.Fatalf("%s: %v (close status %d), want ErrClosed, 1006, and %q", how, err, CloseStatus(err), "websocket: "+op+": "+cause)
			}
			if later := sc.Write(context.Background(), MessageText, []byte("late")); later == nil || later.Error() != "websocket: write: "+cause {
				t.Errorf("Write after %s: %v, want %q", how, later, "websocket: write: "+cause)
			}
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if got, err := readServerFrame(nc); err != nil || got != "\x88\x05\x03\xe8bye" {
				t.Errorf("on the wire: %q, %v; want the close frame", got, err)
			}
		})
	}
}

// TestCloseLostUnanswered: a peer that closes TCP when our close frame
// comes, without its own, has lost the connection before the closing
// handshake ended. Close's error, a Read's beside it or after CloseWrite,
// and every later call's, say so, naming the close that went unanswered,
// and carry StatusAbnormalClosure, the code of a connection closed with
// no close frame from the peer (RFC 6455 §7.1.5), as when the close
// timeout passes. Close and later calls said "connection closed: close
// 4003 (private use): bye" with our 4003, as a handshake that completed
// would; a Read after CloseWrite said 1006, and the calls after it 4003.
func TestCloseLostUnanswered(t *testing.T) {
	t.Parallel()
	const lost = "connection lost: EOF, with no answer to close 4003 (private use): bye"
	for _, how := range []string{"Close", "CloseWrite", "Close beside a Read"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPair(t, nil)
			var read <-chan error
			var closed chan error
			if how == "CloseWrite" {
				if err := sc.CloseWrite(4003, "bye"); err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
				read = readAsync(sc)
			} else {
				if how == "Close beside a Read" {
					read = readAsync(sc)
				}
				closed = make(chan error, 1)
				go func() { closed <- sc.Close(4003, "bye") }()
			}
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if got, err := readServerFrame(nc); err != nil || got != "\x88\x05\x0f\xa3bye" {
				t.Fatalf("on the wire: %q, %v; want the close frame", got, err)
			}
			nc.Close()
			// Beside a Read, the loss may come before Close has seen its
			// frame go: then the end cannot name it, and says only that
			// the connection was lost.
			check := func(what string, err error, prefix string) {
				t.Helper()
				want := prefix + lost
				if got := fmt.Sprint(err); how == "Close beside a Read" && got == prefix+"connection lost: EOF" {
					want = got
				}
				if err == nil || err.Error() != want || !errors.Is(err, io.EOF) || CloseStatus(err) != StatusAbnormalClosure {
					t.Errorf("%s: %v (close status %d), want io.EOF, 1006, and %q", what, err, CloseStatus(err), want)
				}
			}
			if closed != nil {
				err := <-closed
				check("Close", err, "websocket: close: connection closed: ")
				if !errors.Is(err, ErrClosed) {
					t.Errorf("Close: %v, want ErrClosed", err)
				}
			}
			if read != nil {
				err := <-read
				if how == "CloseWrite" {
					// The read meets the loss itself.
					check("Read", err, "websocket: ")
				} else if !errors.Is(err, io.EOF) || CloseStatus(err) != StatusAbnormalClosure {
					t.Errorf("Read beside Close: %v (close status %d), want io.EOF and 1006", err, CloseStatus(err))
				}
			}
			check("Write after", sc.Write(context.Background(), MessageText, []byte("late")), "websocket: write: connection closed: ")
		})
	}
}

// TestCloseUnsentNotReported: a Close whose close frame never went out
// (a writer stuck on a peer that reads nothing holds the frame lock past
// the close timeout, as when the write queue is full) does not leave the
// connection reporting that close: later calls say why it ended, and
// carry no close code that was not on the wire. The test holds the frame
// lock itself, as that writer would.
func TestCloseUnsentNotReported(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"Close", "CloseWrite"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPair(t, &AcceptOptions{CloseTimeout: 100 * time.Millisecond})
			if !sc.frameMu.tryLock() {
				t.Fatal("frame lock taken on a new connection")
			}
			var err error
			if how == "Close" {
				err = sc.Close(StatusNormalClosure, "bye")
			} else {
				err = sc.CloseWrite(StatusNormalClosure, "bye")
			}
			// The close timeout is the connection's, not a context of the
			// caller's: the error does not say context.DeadlineExceeded.
			const cause = "connection closed: the closing handshake timed out: close 1000 (normal closure) could not be sent"
			if err == nil || err.Error() != "websocket: close: "+cause || !errors.Is(err, ErrClosed) ||
				errors.Is(err, context.DeadlineExceeded) || CloseStatus(err) != -1 {
				t.Fatalf("%s: %v (close status %d), want ErrClosed, no close code, and %q", how, err, CloseStatus(err), "websocket: close: "+cause)
			}
			later := sc.Write(context.Background(), MessageText, []byte("late"))
			if !errors.Is(later, ErrClosed) || CloseStatus(later) != -1 {
				t.Errorf("Write after %s: %v (close status %d), want ErrClosed and no close code", how, later, CloseStatus(later))
			}
			if want := "websocket: write: " + cause; later.Error() != want {
				t.Errorf("Write after %s: %q, want %q", how, later, want)
			}
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if b, err := io.ReadAll(nc); len(b) != 0 {
				t.Errorf("on the wire: %q, %v; want nothing", b, err)
			}
		})
	}
}

// queueBehindHeldLock fills sc's queue with 2 MB of messages while the
// test holds the frame lock, through socket buffers shrunk to 4 KiB to a
// peer, nc, that reads nothing: whoever takes the lock next writes them
// all, in front of its own frame, and is stuck there. It returns with the
// lock still held. A waiter that is not nil runs once the lock is held,
// before the queue fills.
func queueBehindHeldLock(t *testing.T, nc net.Conn, sc *Conn, waiter func()) {
	t.Helper()
	nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	sc.tr.rw.(*net.TCPConn).SetWriteBuffer(4 << 10)
	if !sc.frameMu.tryLock() {
		t.Fatal("frame lock taken on a new connection")
	}
	if waiter != nil {
		waiter()
	}
	sc.pendMu.Lock()
	sc.flusher = true // the queue's timer leaves the queue to the holder
	sc.pendMu.Unlock()
	for range 40 {
		if err := sc.Enqueue(MessageBinary, make([]byte, 50<<10)); err != nil {
			t.Fatal(err)
		}
	}
	sc.pendMu.Lock()
	sc.flusher = false
	sc.pendMu.Unlock()
}

// TestCloseCutShort: a close frame written behind queued messages that a
// peer reading nothing leaves stuck is cut short by the close timeout,
// and the end says that the close frame could not be sent. So does a
// keepalive ping cut short, naming the keepalive. Both said "write:
// context deadline exceeded, cutting a frame short": a context the caller
// never passed.
func TestCloseCutShort(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"Close", "CloseWrite", "keepalive"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			opts := &AcceptOptions{WriteQueueLimit: 8 << 20, CloseTimeout: 300 * time.Millisecond}
			var waiter func()
			var sc *Conn
			done := make(chan error, 1)
			if how == "keepalive" {
				// The ping's time runs from before it waits for the frame
				// lock: the test starts the turn itself (pingNow) once
				// the lock is held, and the queue fills behind it (a ping
				// that finds frames queued joins them,
				// TestPingBehindWaitingQueue).
				opts.KeepaliveInterval, opts.KeepaliveTimeout = time.Hour, time.Second
				waiter = func() {
					close(done)
					pingNow(sc)
					awaitFrameLockWaiter(t, sc, how)
				}
			}
			nc, sc := stalledPair(t, opts)
			queueBehindHeldLock(t, nc, sc, waiter)
			switch how {
			case "Close":
				go func() { done <- sc.Close(StatusNormalClosure, "bye") }()
			case "CloseWrite":
				go func() { done <- sc.CloseWrite(StatusNormalClosure, "bye") }()
			}
			awaitFrameLockWaiter(t, sc, how)
			sc.frameMu.unlock()
			cause := "connection closed: the closing handshake timed out: close 1000 (normal closure) could not be sent"
			status := StatusCode(-1)
			if how == "keepalive" {
				cause = "connection closed: write: keepalive timeout: the ping could not be written in time, cutting a frame short"
			}
			if err := <-done; how != "keepalive" && (err == nil || err.Error() != "websocket: close: "+cause) {
				t.Errorf("%s: %v, want %q", how, err, "websocket: close: "+cause)
			}
			waitFor(t, "the connection to close", sc.isClosed)
			_, _, err := sc.Read(context.Background())
			if err == nil || err.Error() != "websocket: read: "+cause || CloseStatus(err) != status || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Read at the end: %v (close status %d), want %q, no close code", err, CloseStatus(err), "websocket: read: "+cause)
			}
			if how == "keepalive" && !errors.Is(err, ErrKeepaliveTimeout) {
				t.Errorf("Read at the end: %v, want ErrKeepaliveTimeout", err)
			}
		})
	}
}

// TestFailBehindPendingClose: a protocol violation read while Close's
// frame waits for the frame lock, behind a Write stuck on a peer that
// stopped reading, would fail the connection with 1002; but Close's 1000
// goes out first, and nothing can follow it, so no call names a 1002
// never sent: the end is the closing handshake that 1000 began, failed
// by the violation (TestFailAfterCloseSent).
func TestFailBehindPendingClose(t *testing.T) {
	t.Parallel()
	// Close's frame must outwait the Write, which ends as fast as the
	// peer reads 32 MiB: it took over 5 s in a CI run under -race beside
	// other load, and Close gave up.
	nc, sc := stalledPair(t, &AcceptOptions{CloseTimeout: 30 * time.Second})
	wrote := make(chan error, 1)
	// 32 MiB fill the socket buffers; the peer drains them in a fraction
	// of a second once it reads.
	go func() { wrote <- sc.Write(context.Background(), MessageBinary, make([]byte, 32<<20)) }()
	waitFor(t, "the Write to take the frame lock", sc.frameMu.taken)
	closed := make(chan error, 1)
	go func() { closed <- sc.Close(StatusNormalClosure, "bye") }()
	awaitFrameLockWaiter(t, sc, "Close")
	read := make(chan error, 1)
	go func() {
		_, _, err := sc.Read(context.Background())
		read <- err
	}()
	io.WriteString(nc, clientFrame(0x83, "")) // a reserved opcode
	// The read's failure waits for the frame lock behind Close's.
	time.Sleep(200 * time.Millisecond)
	got, ok := closeFrameAfterData(nc)
	if !ok || got != "\x03\xe8bye" {
		t.Fatalf("close frame %q (%v), want Close's", got, ok)
	}
	// The framing was lost with the violation: the server half-closes and
	// reads to the end of the stream, which the peer now gives.
	nc.Close()
	const want = "connection closed: the closing handshake failed: reserved opcode 3 received before the answer to close 1000 (normal closure): bye"
	if err := <-read; err == nil || err.Error() != "websocket: read: "+want || CloseStatus(err) != StatusAbnormalClosure {
		t.Fatalf("Read: %v (%d), want %q, 1006", err, CloseStatus(err), "websocket: read: "+want)
	}
	<-wrote
	if err := <-closed; err == nil || err.Error() != "websocket: close: "+want || CloseStatus(err) != StatusAbnormalClosure {
		t.Errorf("Close: %v (%d), want %q, 1006", err, CloseStatus(err), "websocket: close: "+want)
	}
	waitFor(t, "the connection to close", sc.isClosed)
	if _, _, err := sc.Read(context.Background()); err == nil || err.Error() != "websocket: read: "+want || CloseStatus(err) != StatusAbnormalClosure {
		t.Errorf("Read at the end: %v (%d), want %q, 1006", err, CloseStatus(err), "websocket: read: "+want)
	}
}

// TestFailAfterCloseSent: the peer breaks the protocol after our close
// frame went out (Close's, with a Read beside it; CloseWrite's), before
// its answer: the read finds the violation, whose close frame cannot
// follow ours, so the wire carries our close alone, the server
// half-closing; and the closing handshake failed. The read, Close and
// every later call say so, naming the close that went, with
// StatusAbnormalClosure, no close frame having come from the peer. The
// read returned a *ProtocolError claiming its 1002 (or 1007) sent, and
// the calls after it "close 1000", as if the handshake had completed.
func TestFailAfterCloseSent(t *testing.T) {
	t.Parallel()
	for _, v := range []struct{ name, frame, reason string }{
		{"reserved opcode", clientFrame(0x83, ""), "reserved opcode 3 received"},
		{"text not UTF-8", clientFrame(0x81, "\xff"), "text message is not valid UTF-8"},
		{"ping over 125 bytes", string(maskedFrame(0x89, make([]byte, 126))), "ping frame payload over 125 bytes"},
	} {
		for _, how := range []string{"Close", "CloseWrite"} {
			t.Run(v.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				nc, sc := stalledPair(t, &AcceptOptions{KeepaliveInterval: -1, CloseTimeout: time.Minute})
				read := readAsync(sc)
				waitFor(t, "the Read to take the read lock", sc.readMu.taken)
				closed := make(chan error, 1)
				go func() {
					if how == "Close" {
						closed <- sc.Close(StatusNormalClosure, "bye")
					} else {
						closed <- sc.CloseWrite(StatusNormalClosure, "bye")
					}
				}()
				if got, err := readServerFrame(nc); err != nil || got != "\x88\x05\x03\xe8bye" {
					t.Fatalf("on the wire: %q, %v; want the close frame", got, err)
				}
				io.WriteString(nc, v.frame+clientFrame(0x88, "\x03\xe8"))
				nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				if rest, err := io.ReadAll(nc); err != nil || len(rest) != 0 {
					t.Errorf("after the close frame: %q, %v; want the end of the stream", rest, err)
				}
				nc.Close()
				const end = "connection closed: the closing handshake failed: "
				want := end + v.reason + " before the answer to close 1000 (normal closure): bye"
				check := func(what string, err error, op string) {
					t.Helper()
					var pe *ProtocolError
					if err == nil || err.Error() != "websocket: "+op+": "+want || CloseStatus(err) != StatusAbnormalClosure || !errors.Is(err, ErrClosed) || errors.As(err, &pe) {
						t.Errorf("%s: %v (close status %d), want %q, 1006", what, err, CloseStatus(err), "websocket: "+op+": "+want)
					}
				}
				check("Read", <-read, "read")
				err := <-closed
				if how == "Close" {
					check("Close", err, "close")
				} else if err != nil {
					t.Errorf("CloseWrite: %v", err)
				}
				_, _, err = sc.Read(context.Background())
				check("Read at the end", err, "read")
				check("Close at the end", sc.Close(StatusNormalClosure, ""), "close")
			})
		}
	}
}

// TestFailWhenNoCloseGoes: a protocol violation read while keepalive's
// close waits for the frame lock, behind a Write stuck on a peer that
// stopped reading, with a close timeout shorter than keepalive's wait:
// neither close frame goes out, and the connection's end is the
// violation, without a code. It was the broken pipe of tearing down.
// The test starts keepalive's turn (pingNow) once the Write holds the
// frame lock: with a 100 ms interval, a Write that a loaded machine
// started late found the connection failed already (a local CI run).
func TestFailWhenNoCloseGoes(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, &AcceptOptions{CloseTimeout: 200 * time.Millisecond, KeepaliveInterval: time.Hour, KeepaliveTimeout: kaTimeout})
	wrote := make(chan error, 1)
	go func() { wrote <- sc.Write(context.Background(), MessageBinary, make([]byte, 32<<20)) }()
	waitFor(t, "the Write to take the frame lock", sc.frameMu.taken)
	pingNow(sc)
	read := make(chan error, 1)
	go func() {
		_, _, err := sc.Read(context.Background())
		read <- err
	}()
	waitFor(t, "keepalive to fail", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		_, ok := sc.endErr.(*keepaliveError)
		return ok
	})
	io.WriteString(nc, clientFrame(0x83, "")) // a reserved opcode
	const want = "websocket: read: connection closed: reserved opcode 3 received: the closing handshake timed out: the close frame could not be sent"
	// The read says so too, rather than the 1002 that could not be sent.
	if err := <-read; err == nil || err.Error() != want || CloseStatus(err) != -1 {
		t.Fatalf("Read: %v (%d), want %q, no close code", err, CloseStatus(err), want)
	}
	<-wrote
	waitFor(t, "the connection to close", sc.isClosed)
	if _, _, err := sc.Read(context.Background()); err == nil || err.Error() != want || CloseStatus(err) != -1 {
		t.Errorf("Read at the end: %v (%d), want %q, no close code", err, CloseStatus(err), want)
	}
}

// TestCloseInvalidAnswer: a peer that answers our close with a close
// frame that breaks the rules (§5.5.1, §7.4) ends the connection as a
// protocol error, whether Close reads that answer itself or a Read beside
// it does: Close does not report a completed handshake, and later calls
// name the violation.
func TestCloseInvalidAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, payload, want string }{
		{"one byte", "\x03", "close frame payload of 1 byte"},
		{"code 1005", "\x03\xed", "invalid close code 1005"},
		{"reason not UTF-8", "\x03\xe8\xff", "close reason is not valid UTF-8"},
	} {
		for _, reading := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/reading=%v", tc.name, reading), func(t *testing.T) {
				t.Parallel()
				nc, sc := stalledPair(t, nil)
				var read <-chan error
				if reading {
					read = readAsync(sc)
				}
				closed := make(chan error, 1)
				go func() { closed <- sc.Close(StatusNormalClosure, "bye") }()
				if got, err := readServerFrame(nc); err != nil || got != "\x88\x05\x03\xe8bye" {
					t.Fatalf("on the wire: %q, %v; want the close frame", got, err)
				}
				nc.Write(maskedFrame(0x88, []byte(tc.payload)))
				err := <-closed
				var pe *ProtocolError
				if !errors.Is(err, ErrClosed) || !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Close: %v, want ErrClosed and a protocol error saying %q", err, tc.want)
				}
				if read != nil {
					if err := <-read; !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
						t.Fatalf("Read beside Close: %v, want a protocol error saying %q", err, tc.want)
					}
				}
				if err := sc.Write(context.Background(), MessageText, []byte("late")); !errors.As(err, &pe) {
					t.Errorf("Write after: %v, want the protocol error", err)
				}
				// Nothing follows our close frame; the server closes.
				nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				if n, err := nc.Read(make([]byte, 1)); err != io.EOF {
					t.Errorf("after the close frame: %d bytes, %v; want EOF", n, err)
				}
			})
		}
	}
}

// TestCloseReaderContextEndsInDiscardedMessage: a Read whose context
// ends inside a message that arrived once Close had begun, which Close
// drops unread, returns the context's error and leaves the closing
// handshake to Close, which reads the rest and the peer's answer. The
// Read failed the connection as for a message it was delivering: it
// claimed 1008, which could not follow the close frame sent, and closed
// the connection at its context's end, cutting Close short without the
// peer's answer (Close reported "close 1000" as the end, the handshake
// never completed).
func TestCloseReaderContextEndsInDiscardedMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, first, rest string }{
		{"inside a frame", string(maskedHeader(0x82, 10)) + "abc", "defghij"},
		{"between fragments", clientFrame(0x02, "abc"), clientFrame(0x80, "def")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1, CloseTimeout: 3 * time.Second})
			nc := rawClient(t, s.Listener.Addr().String())
			sc := <-conns
			defer sc.CloseNow()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			read := make(chan error, 1)
			go func() {
				_, _, err := sc.Read(ctx)
				read <- err
			}()
			waitFor(t, "the Read to wait", sc.readMu.taken)
			closed := make(chan error, 1)
			go func() { closed <- sc.Close(StatusNormalClosure, "") }()
			expectFrame(t, nc, "\x88\x02\x03\xe8")
			io.WriteString(nc, tc.first)
			time.Sleep(50 * time.Millisecond) // the Read takes the message in
			cancel()
			select {
			case err := <-read:
				if !errors.Is(err, context.Canceled) || CloseStatus(err) != -1 || err.Error() != "websocket: read: context canceled" {
					t.Errorf("Read: %v (close status %d), want the context's end alone", err, CloseStatus(err))
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the Read still waits 2 s after its context ended")
			}
			io.WriteString(nc, tc.rest+clientFrame(0x88, "\x03\xe8"))
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close: %v, want nil: the peer answered", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close still waits 5 s after the peer's answer")
			}
		})
	}
}

// TestCloseWriteReadContextEndsInsideMessage: after CloseWrite, a read
// whose context ends inside a message, which cannot be delivered, ends
// the connection: no close frame can follow ours, so none goes, and
// without the peer's answer the close code is 1006 (RFC 6455 §7.1.5),
// which the read and every later call report, naming the close that went
// unanswered. The read reported a 1008 that was never sent, and the calls
// after it reported our close 1000 as the end, as of a closing handshake
// that completed.
func TestCloseWriteReadContextEndsInsideMessage(t *testing.T) {
	t.Parallel()
	const (
		ended = "read context ended inside a message: context deadline exceeded, with no answer to close 1000 (normal closure)"
		later = "connection closed: " + ended
	)
	read := func(ctx context.Context, c *Conn) error {
		_, _, err := c.Read(ctx)
		return err
	}
	for _, tc := range []struct {
		name       string
		read       func(context.Context, *Conn) error
		compressed bool
	}{
		{"Read", read, false},
		// The decoder waits for the rest of the frame.
		{"Read, compressed", read, true},
		{"ReadAppend", func(ctx context.Context, c *Conn) error {
			_, _, err := c.ReadAppend(ctx, make([]byte, 0, 64))
			return err
		}, false},
		{"Reader", func(ctx context.Context, c *Conn) error {
			_, r, err := c.Reader(ctx)
			if err != nil {
				return fmt.Errorf("Reader: %w", err)
			}
			var b [2]byte
			if n, err := io.ReadFull(r, b[:]); n != 2 || err != nil {
				return fmt.Errorf("read %d bytes, %v, want the 2 that came", n, err)
			}
			n, err := io.ReadAll(r)
			if len(n) != 1 {
				return fmt.Errorf("read %q more, want the 1 byte that came", n)
			}
			// The reader reports the end again, not io.EOF.
			if _, again := r.Read(b[:]); again == nil || again.Error() != "websocket: read: "+later {
				return fmt.Errorf("the reader's next Read: %v, want %q", again, "websocket: read: "+later)
			}
			return err
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := &AcceptOptions{KeepaliveInterval: -1, CloseTimeout: 3 * time.Second}
			dial, first := rawClient, string(maskedHeader(0x82, 10))+"abc"
			if tc.compressed {
				opts.Compression = CompressionContextTakeover
				// RSV1, and the first 3 bytes of "hello hello hello" deflated.
				dial, first = deflateClient, string(maskedHeader(0xc2, 10))+"\xca\x48\xcd"
			}
			s, conns := acceptOne(t, opts)
			nc := dial(t, s.Listener.Addr().String())
			sc := <-conns
			defer sc.CloseNow()
			if err := sc.CloseWrite(StatusNormalClosure, ""); err != nil {
				t.Fatalf("CloseWrite: %v", err)
			}
			expectFrame(t, nc, "\x88\x02\x03\xe8")
			io.WriteString(nc, first)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			err := tc.read(ctx, sc)
			if err == nil || err.Error() != "websocket: "+ended || CloseStatus(err) != StatusAbnormalClosure || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("read: %v (close status %d), want %q (1006)", err, CloseStatus(err), "websocket: "+ended)
			}
			// No close frame of the failure's follows ours: the
			// connection is closed.
			nc.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := nc.Read(make([]byte, 16)); n != 0 || err != io.EOF {
				t.Errorf("the peer read %d bytes, %v, want io.EOF", n, err)
			}
			for op, err := range map[string]error{
				"read":  func() error { _, _, err := sc.Read(context.Background()); return err }(),
				"write": sc.Write(context.Background(), MessageText, []byte("x")),
				"close": sc.Close(StatusNormalClosure, ""),
			} {
				if want := "websocket: " + op + ": " + later; err == nil || err.Error() != want || CloseStatus(err) != StatusAbnormalClosure {
					t.Errorf("%s: %v (close status %d), want %q (1006)", op, err, CloseStatus(err), want)
				}
			}
		})
	}
}
