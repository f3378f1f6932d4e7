package websocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
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
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		readErr <- err
	}()
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
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		readErr <- err
	}()
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

func TestReadContextWhileIdleKeepsConnection(t *testing.T) {
	t.Parallel()
	result := make(chan handlerResult, 2)
	s := echoServer(t, nil, func(c *Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, _, err := c.Read(ctx)
		cancel()
		result <- handlerResult{err: err}
		_, p, err := c.Read(context.Background())
		result <- handlerResult{err: err, msg: p}
	})
	c := dialT(t, wsURL(s), nil)
	if r := <-result; !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("idle Read with a timeout: %v, want DeadlineExceeded", r.err)
	}
	if err := c.Write(context.Background(), MessageText, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if r := <-result; r.err != nil || string(r.msg) != "after" {
		t.Fatalf("Read after the timeout: %q, %v", r.msg, r.err)
	}
}

func TestReadContextInsideMessageFails(t *testing.T) {
	t.Parallel()
	result := make(chan handlerResult, 1)
	s := echoServer(t, nil, func(c *Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, _, err := c.Read(ctx)
		result <- handlerResult{err: err}
	})
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	w, err := c.Writer(ctx, MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, writeBufferSize)); err != nil { // one frame goes out
		t.Fatal(err)
	}
	// The server's Read returns once the client answered its close.
	if _, _, err := c.Read(ctx); CloseStatus(err) != StatusPolicyViolation {
		t.Fatalf("client Read: %v, want the server's close 1008", err)
	}
	r := <-result
	var pe *ProtocolError
	if !errors.As(r.err, &pe) || pe.Code != StatusPolicyViolation || !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("server Read: %v, want a *ProtocolError 1008 wrapping DeadlineExceeded", r.err)
	}
	w.Close()
}

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

func TestWriteContextEndsInsideFrameClosesConnection(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := echoServer(t, nil, func(c *Conn) { <-release }) // never reads
	defer close(release)
	c := dialT(t, wsURL(s), nil)
	big := make([]byte, 64<<20) // more than the socket buffers hold
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := c.Write(ctx, MessageBinary, big)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Write: %v, want DeadlineExceeded and ErrClosed", err)
	}
	if err := c.Write(context.Background(), MessageText, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after a cut frame: %v, want ErrClosed", err)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		readErr <- err
	}()
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

func TestReadLimit(t *testing.T) {
	t.Parallel()
	result := make(chan handlerResult, 1)
	s := echoServer(t, nil, func(c *Conn) {
		c.SetReadLimit(1000)
		ctx := context.Background()
		_, p, err := c.Read(ctx)
		if err == nil {
			_, p, err = c.Read(ctx)
		}
		result <- handlerResult{err: err, msg: p}
	})
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	if err := c.Write(ctx, MessageBinary, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, MessageBinary, make([]byte, 1001)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); CloseStatus(err) != StatusMessageTooBig {
		t.Fatalf("client Read: %v, want the server's close 1009", err)
	}
	r := <-result
	var pe *ProtocolError
	if !errors.As(r.err, &pe) || pe.Code != StatusMessageTooBig || !errors.Is(r.err, ErrMessageTooBig) {
		t.Fatalf("server Read: %v, want a *ProtocolError 1009 wrapping ErrMessageTooBig", r.err)
	}
}

func TestReaderDiscardsUnreadRest(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	first := bytes.Repeat([]byte("1"), 100000)
	for _, p := range [][]byte{first, []byte("second")} {
		if err := c.Write(ctx, MessageText, p); err != nil {
			t.Fatal(err)
		}
	}
	_, r, err := c.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "1111111111" {
		t.Fatalf("partial read: %q, %v", buf, err)
	}
	typ, r2, err := c.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := io.ReadAll(r2)
	if typ != MessageText || err != nil || string(p) != "second" {
		t.Fatalf("next message: %v %q %v", typ, p, err)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("stale reader: %d, %v; want 0, EOF", n, err)
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
