package websocket

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestCloseReadAnswersClose: a server that only writes, with CloseRead,
// answers the client's close frame: the client's Close returns at once
// with the handshake done, the context CloseRead returned ends with the
// client's close as its cause, and the server's next Write says so.
// Without CloseRead the client's Close waited out its timeout.
func TestCloseReadAnswersClose(t *testing.T) {
	t.Parallel()
	done := make(chan closeReadResult, 1)
	s := httptest.NewServer(closeReadTicker(done))
	defer s.Close()
	testCloseReadAnswersClose(t, dialT(t, wsURL(s), &DialOptions{CloseTimeout: 10 * time.Second}), done)
}

// closeReadResult is what a closeReadTicker's connection ended with: the
// cause of CloseRead's context, and what a Write returned after.
type closeReadResult struct {
	cause, write error
}

// closeReadTicker accepts and writes "tick" every 10 ms under CloseRead,
// until the context it returned ends.
func closeReadTicker(done chan<- closeReadResult) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := c.CloseRead(context.Background())
		for ctx.Err() == nil {
			if c.Write(context.Background(), MessageText, []byte("tick")) != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
		<-ctx.Done()
		done <- closeReadResult{context.Cause(ctx), c.Write(context.Background(), MessageText, []byte("late"))}
	}
}

func testCloseReadAnswersClose(t *testing.T, c *Conn, done <-chan closeReadResult) {
	if _, p, err := c.Read(context.Background()); err != nil || string(p) != "tick" {
		t.Fatalf("Read: %q, %v", p, err)
	}
	start := time.Now()
	if err := c.Close(StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	r := <-done
	if ce, ok := asType[CloseError](r.cause); !ok || ce != (CloseError{StatusNormalClosure, "bye"}) {
		t.Errorf("the context's cause: %v, want the client's close 1000 bye", r.cause)
	}
	if CloseStatus(r.write) != StatusNormalClosure || !errors.Is(r.write, ErrClosed) {
		t.Errorf("Write after: %v, want ErrClosed with the client's 1000", r.write)
	}
}

// TestCloseReadPingsAndData: under CloseRead, pings are answered, and the
// first frame of a data message fails the connection with 1008 at its
// header, although it claims a gigabyte that never comes.
func TestCloseReadPingsAndData(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, nil)
	nc := rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	ctx := sc.CloseRead(context.Background())
	io.WriteString(nc, clientFrame(0x89, "p1"))
	if got, err := readServerFrame(nc); err != nil || got != "\x8a\x02p1" {
		t.Fatalf("pong: %q, %v", got, err)
	}
	nc.Write(maskedHeader(0x82, 1<<30))
	const reason = "data message on a connection that reads none"
	if got, err := readServerFrame(nc); err != nil || got != "\x88"+string(rune(2+len(reason)))+"\x03\xf0"+reason {
		t.Fatalf("close frame: %q, %v", got, err)
	}
	io.WriteString(nc, clientFrame(0x88, "\x03\xf0"))
	nc.Close()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the context did not end")
	}
	if pe, ok := asType[*ProtocolError](context.Cause(ctx)); !ok || pe.Code != StatusPolicyViolation {
		t.Errorf("the context's cause: %v, want a ProtocolError with 1008", context.Cause(ctx))
	}
}

// TestCloseReadTwice: CloseRead on a connection read already ends its
// context at once, and the connection stays its reader's; a read says
// that CloseRead reads it, not Serve, which the program never called.
func TestCloseReadTwice(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, nil)
	nc := rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	first := sc.CloseRead(context.Background())
	second := sc.CloseRead(context.Background())
	if !errors.Is(context.Cause(second), errServeTwice) {
		t.Errorf("the second CloseRead's cause: %v, want %v", context.Cause(second), errServeTwice)
	}
	const want = "websocket: read: the connection is read by CloseRead, which alone reads it"
	if _, _, err := sc.Read(context.Background()); err == nil || err.Error() != want {
		t.Errorf("Read after CloseRead: %v, want %s", err, want)
	}
	if _, _, err := sc.ReadAppend(context.Background(), nil); err == nil || err.Error() != want {
		t.Errorf("ReadAppend after CloseRead: %v, want %s", err, want)
	}
	if _, _, err := sc.Reader(context.Background()); err == nil || err.Error() != want {
		t.Errorf("Reader after CloseRead: %v, want %s", err, want)
	}
	if first.Err() != nil {
		t.Fatalf("the first CloseRead's context ended: %v", context.Cause(first))
	}
	io.WriteString(nc, clientFrame(0x88, "\x03\xe8"))
	if got, err := readServerFrame(nc); err != nil || got != "\x88\x02\x03\xe8" {
		t.Fatalf("close frame: %q, %v", got, err)
	}
	<-first.Done()
}

// TestCloseReadCloseCrossingData: a data message the peer sent before it
// saw our close frame, read under CloseRead after Close has begun, is
// dropped as Close drops it, and Close returns once the peer's close comes.
// It failed the connection with 1008, and Close waited out its timeout
// (over TLS, where CloseRead's goroutine is in a read when Close begins).
func TestCloseReadCloseCrossingData(t *testing.T) {
	t.Parallel()
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "TCP", true: "TLS"}[tlsOn], func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPairOver(t, tlsOn)
			ctx := sc.CloseRead(context.Background())
			// CloseRead's goroutine waits for input by now, in a read
			// over TLS.
			time.Sleep(50 * time.Millisecond)
			closed := make(chan error, 1)
			go func() { closed <- sc.Close(StatusNormalClosure, "bye") }()
			if got, err := readServerFrame(nc); err != nil || got != "\x88\x05\x03\xe8bye" {
				t.Fatalf("close frame: %q, %v", got, err)
			}
			io.WriteString(nc, clientFrame(0x81, "sent before the close")+clientFrame(0x88, "\x03\xe8"))
			start := time.Now()
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close: %v, want nil: the peer answered the close", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Close did not return")
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("Close returned %v after the peer's close", d)
			}
			<-ctx.Done()
			if _, failed := asType[*ProtocolError](context.Cause(ctx)); failed {
				t.Errorf("the context's cause: %v, want no failure", context.Cause(ctx))
			}
		})
	}
}

// TestCloseReadDuringRead: a Read in progress when CloseRead is called
// gets its message, as it would have; the next data message fails the
// connection with 1008. The Read failed the connection itself.
func TestCloseReadDuringRead(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, nil)
	nc := rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	type result struct {
		p   string
		err error
	}
	read := make(chan result, 1)
	go func() {
		_, p, err := sc.Read(context.Background())
		read <- result{string(p), err}
	}()
	waitFor(t, "the Read to wait", func() bool {
		if !sc.readMu.tryLock() {
			return true
		}
		sc.readMu.unlock()
		return false
	})
	ctx := sc.CloseRead(context.Background())
	io.WriteString(nc, clientFrame(0x81, "hi"))
	if r := <-read; r.err != nil || r.p != "hi" {
		t.Fatalf("the Read in progress: %q, %v; want hi", r.p, r.err)
	}
	io.WriteString(nc, clientFrame(0x81, "next"))
	const reason = "data message on a connection that reads none"
	if got, err := readServerFrame(nc); err != nil || got != "\x88"+string(rune(2+len(reason)))+"\x03\xf0"+reason {
		t.Fatalf("close frame: %q, %v", got, err)
	}
	nc.Close()
	<-ctx.Done()
}
