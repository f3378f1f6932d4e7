//go:build !js

package websocket

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/godebugtest"
	"github.com/rfc6455/websocket/internal/hpack"
)

func TestHTTP2Stalls(t *testing.T) {
	t.Parallel()
	godebugtest.Run(t, xconnect, "TestOverHTTP2Stalls")
}

// TestOverHTTP2Stalls checks how a server's Conn over HTTP/2 ends when
// its writes wait for a flow-control window, or its peer falls silent,
// with a raw HTTP/2 client. TestHTTP2Stalls runs it.
func TestOverHTTP2Stalls(t *testing.T) {
	if !godebugtest.Has(xconnect) {
		t.Skip("needs GODEBUG=" + xconnect + "; TestHTTP2Stalls runs it so")
	}
	t.Run("stalled write", testHTTP2StalledWrite)
	t.Run("write after a reset", testHTTP2WriteAfterReset)
	t.Run("keepalive", testHTTP2KeepaliveEnds)
	t.Run("keepalive under Close", testHTTP2KeepaliveUnderClose)
	t.Run("stuck socket", testHTTP2StuckSocket)
	t.Run("Serve ends before the write", testHTTP2ServeBeforeWrite)
	t.Run("reset after CloseNow", testHTTP2ResetAfterClose)
	t.Run("Accept refused by a shutdown", testHTTP2RefusedByShutdown)
	t.Run("NetConn closed", testHTTP2NetConnClosed)
	t.Run("NetConn closed while writing", testHTTP2NetConnClosedWriting)
	t.Run("no Unwrap", testHTTP2NoUnwrap)
	t.Run("read as the stream resets", testHTTP2ReadAtReset)
	t.Run("read context", testHTTP2ReadContext)
	t.Run("read context, close frame", testHTTP2ReadContextCloseFrame)
	t.Run("read context under Close", testHTTP2ReadContextUnderClose)
	t.Run("read context after CloseWrite", testHTTP2ReadContextAfterCloseWrite)
	t.Run("shared context", testHTTP2SharedContext)
	t.Run("request context ended", testHTTP2RequestContextEnded)
	t.Run("reset after a queued response", testHTTP2ResetAfterQueuedResponse)
	t.Run("path refusals", testHTTP2PathRefusals)
}

// testHTTP2SharedContext: a Read and a Write blocked with the same
// context (a handler's request context, say) on a server's stream: its
// end closes the connection, and each call says so once. The Read named
// the Write ("read: connection closed: write: context canceled, ...").
func testHTTP2SharedContext(t *testing.T) {
	errs := make(chan [2]error, 1)
	p := stallingH2Accept(t, nil, func(c *Conn) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		read, wrote := make(chan error, 1), make(chan error, 1)
		go func() {
			_, _, err := c.Read(ctx)
			read <- err
		}()
		go func() { wrote <- c.Write(ctx, MessageText, []byte("x")) }()
		awaitStreamWrite(t, c)
		waitFor(t, "the Read to wait with its context", func() bool {
			w := c.watches.Load()
			if w == nil {
				return false
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.dirs[watchRead].done == ctx.Done()
		})
		cancel()
		errs <- [2]error{<-read, <-wrote}
	})
	var got [2]error
	select {
	case got = <-errs:
	case <-time.After(5 * time.Second):
		t.Fatal("the calls are still under way after 5 s")
	}
	for i, op := range []string{"read", "write"} {
		want := "websocket: " + op + ": connection closed: context canceled, which closes a transport without deadlines"
		if err := got[i]; err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want %q", op, err, want)
		}
	}
	p.streamEnd()
}

// testHTTP2ReadContext: a Read whose context ends on a server's stream,
// which has no deadlines, closes the connection; its error says so once,
// and the calls after it find the read's end, named so: a Write with no
// context of its own said its context had ended.
func testHTTP2ReadContext(t *testing.T) {
	p, errs := stallingH2ReadThenWrite(t)
	for _, want := range []string{
		"websocket: read: connection closed: context deadline exceeded, which closes a transport without deadlines",
		"websocket: write: connection closed: read: context deadline exceeded, which closes a transport without deadlines",
	} {
		select {
		case err := <-errs:
			if err == nil || err.Error() != want || !errors.Is(err, ErrClosed) {
				t.Errorf("%v, want %q", err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the Read is still under way after 5 s")
		}
	}
	p.streamEnd()
}

// testHTTP2ReadContextCloseFrame: a Read whose context ends on a
// server's stream, with the write side free, sends a close frame before
// the stream ends, as a read whose context ends inside a message does on
// a socket: 1001 between messages, 1008 inside one (the message is lost).
// The stream ended with no close frame, the client seeing 1006.
func testHTTP2ReadContextCloseFrame(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sent    []byte // what the client sends before the Read's context ends
		code    StatusCode
		reason  string
		readErr string
	}{
		{"between messages", nil, StatusGoingAway, "read context ended",
			"websocket: read: connection closed: context deadline exceeded, which closes a transport without deadlines"},
		{"inside a message", maskedFrame(0x01, []byte("abc")), StatusPolicyViolation, "read context ended inside a message",
			"websocket: read context ended inside a message: connection failed with 1008 (policy violation)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, errs := stallingH2ReadThenWrite(t)
			p.write(0x8, 0, 1, binary.BigEndian.AppendUint32(nil, 1<<20)) // the stream's window
			if tc.sent != nil {
				p.write(0x0, 0, 1, tc.sent)
			}
			var readErr error
			select {
			case readErr = <-errs:
			case <-time.After(5 * time.Second):
				t.Fatal("the Read is still under way after 5 s")
			}
			if readErr == nil || readErr.Error() != tc.readErr || !errors.Is(readErr, context.DeadlineExceeded) {
				t.Errorf("Read: %v, want %q", readErr, tc.readErr)
			}
			if err := <-errs; !errors.Is(err, ErrClosed) {
				t.Errorf("Write after it: %v, want ErrClosed", err)
			}
			data, code := p.streamEnd()
			want := append([]byte{0x88, byte(2 + len(tc.reason))}, mustClosePayload(tc.code, tc.reason)...)
			if !bytes.Equal(data, want) || code != -1 {
				t.Errorf("the stream carried %q, then ended with %d, want %q and END_STREAM (-1)", data, code, want)
			}
		})
	}
}

// testHTTP2ReadContextUnderClose: once Close has begun, a Read whose
// context ends inside a message, which Close drops, fails nothing: the
// stream carries Close's frame alone, and the Read does not report the
// 1008 that could not follow it.
func testHTTP2ReadContextUnderClose(t *testing.T) {
	errs := make(chan error, 2)
	sent := make(chan struct{})
	p := stallingH2Accept(t, &AcceptOptions{CloseTimeout: 2 * time.Second}, func(c *Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		read := make(chan error, 1)
		go func() {
			_, _, err := c.Read(ctx)
			read <- err
		}()
		<-sent
		time.Sleep(50 * time.Millisecond) // for the Read to take the frame (else it fails nothing either)
		errs <- c.Close(StatusNormalClosure, "")
		errs <- <-read
	})
	p.write(0x8, 0, 1, binary.BigEndian.AppendUint32(nil, 1<<20)) // the stream's window
	p.write(0x0, 0, 1, maskedFrame(0x01, []byte("abc")))
	close(sent)
	for _, what := range []string{"Close", "Read"} {
		select {
		case err := <-errs:
			if CloseStatus(err) == StatusPolicyViolation {
				t.Errorf("%s: %v, a 1008 that was not sent", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still under way after 5 s", what)
		}
	}
	data, code := p.streamEnd()
	if want := "\x88\x02\x03\xe8"; string(data) != want || code != -1 {
		t.Errorf("the stream carried %q, then ended with %d, want %q and END_STREAM (-1)", data, code, want)
	}
}

// testHTTP2ReadContextAfterCloseWrite: after CloseWrite, a Read whose
// context ends inside a message on a server's stream, which cuts the
// input for good, closes the connection with 1006, as on a socket
// (TestCloseWriteReadContextEndsInsideMessage): the stream carries
// CloseWrite's frame alone, and neither the Read nor the calls after it
// report the 1008 that could not follow it, or the close 1000 that was
// never answered.
func testHTTP2ReadContextAfterCloseWrite(t *testing.T) {
	const ended = "read context ended inside a message: context deadline exceeded, with no answer to close 1000 (normal closure)"
	errs := make(chan error, 3)
	p := stallingH2Accept(t, &AcceptOptions{CloseTimeout: 2 * time.Second}, func(c *Conn) {
		if err := c.CloseWrite(StatusNormalClosure, ""); err != nil {
			t.Errorf("CloseWrite: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, _, err := c.Read(ctx)
		errs <- err
		_, _, err = c.Read(context.Background())
		errs <- err
		errs <- c.Close(StatusNormalClosure, "")
	})
	p.write(0x8, 0, 1, binary.BigEndian.AppendUint32(nil, 1<<20)) // the stream's window
	p.write(0x0, 0, 1, append(maskedHeader(0x82, 10), "abc"...))
	for _, want := range []string{
		"websocket: " + ended,
		"websocket: read: connection closed: " + ended,
		"websocket: close: connection closed: " + ended,
	} {
		select {
		case err := <-errs:
			if err == nil || err.Error() != want || CloseStatus(err) != StatusAbnormalClosure || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%v (close status %d), want %q (1006)", err, CloseStatus(err), want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the calls are still under way after 5 s")
		}
	}
	data, code := p.streamEnd()
	if want := "\x88\x02\x03\xe8"; string(data) != want || code != -1 {
		t.Errorf("the stream carried %q, then ended with %d, want %q and END_STREAM (-1)", data, code, want)
	}
}

// stallingH2ReadThenWrite is stallingH2Accept with a handler that reads
// with a context that ends after 300 ms, then writes, sending the two
// calls' errors on the channel returned.
func stallingH2ReadThenWrite(t *testing.T) (*h2Pipe, <-chan error) {
	t.Helper()
	errs := make(chan error, 2)
	p := stallingH2Accept(t, nil, func(c *Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, _, err := c.Read(ctx)
		errs <- err
		errs <- c.Write(context.Background(), MessageText, []byte("late"))
	})
	return p, errs
}

// stallingH2Client opens a WebSocket stream (an extended CONNECT, stream
// 1) on a cleartext HTTP/2 server whose handler is h, as a raw client
// that gives the stream no flow-control window (SETTINGS_INITIAL_WINDOW_SIZE
// 0) until the test sends one: the server's writes wait for it, as for a
// browser tab that stopped taking messages. It returns once the 200 came.
func stallingH2Client(t *testing.T, h http.HandlerFunc) *h2Pipe {
	t.Helper()
	return stallingH2ClientOn(t, nil, h)
}

// stallingH2ClientOn is stallingH2Client on a server that server, if not
// nil, configures before it starts.
func stallingH2ClientOn(t *testing.T, server func(*http.Server), h http.HandlerFunc) *h2Pipe {
	t.Helper()
	addr := newH2OriginOn(t, false, server, h).Listener.Addr().String()
	p := dialH2Pipe(t, addr, 0)
	if status := p.request(addr, "/ws"); status != 0x88 { // :status 200, indexed
		t.Fatalf("response HEADERS begin with %#x, want :status 200", status)
	}
	return p
}

// request answers the server's SETTINGS, opens stream 1 with a WebSocket's
// extended CONNECT to path at authority, and returns the first byte of
// the response's HEADERS: the status, as Go's server encodes the common
// ones, by its index in HPACK's static table (0x88 for 200, 0x8c for 400).
func (p *h2Pipe) request(authority, path string) byte {
	p.t.Helper()
	for {
		typ, flags, _, _ := p.frame()
		if typ == 0x4 && flags&1 == 0 {
			break
		}
	}
	p.write(0x4, 1, 0, nil)
	p.connect(1, authority, path)
	for {
		typ, _, id, payload := p.frame()
		if typ == 0x1 && id == 1 {
			if len(payload) == 0 {
				p.t.Fatal("empty response HEADERS")
			}
			return payload[0]
		}
	}
}

// testHTTP2PathRefusals: an extended CONNECT must carry the target's path
// in :path (RFC 8441 §4), which RFC 9113 §8.3.1 makes an absolute path
// with its query; Go's server takes * or a whole URI there too, and
// Accept refuses them with 400. A request to /ws reaches Accept through
// http.StripPrefix, which leaves r.URL.Path empty: the path checked is
// the one sent.
func testHTTP2PathRefusals(t *testing.T) {
	accepted := make(chan string, 1)
	accept := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := Accept(w, r, nil); err == nil {
			accepted <- r.RequestURI
			c.CloseNow()
		}
	})
	addr := newH2OriginOn(t, false, nil, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/ws") {
			http.StripPrefix("/ws", accept).ServeHTTP(w, r)
			return
		}
		accept(w, r)
	}).Listener.Addr().String()
	for _, tc := range []struct {
		path   string
		status byte
	}{
		{"*", 0x8c},
		{"http://" + addr + "/ws", 0x8c},
		{"/ws?room=1", 0x88},
	} {
		if got := dialH2Pipe(t, addr, 1<<16).request(addr, tc.path); got != tc.status {
			t.Errorf(":path %q: response HEADERS begin with %#x, want %#x", tc.path, got, tc.status)
		}
	}
	if got := <-accepted; got != "/ws?room=1" {
		t.Errorf("accepted %q, want /ws?room=1", got)
	}
}

// dialH2Pipe connects to the HTTP/2 server at addr and sends the
// preface, with SETTINGS_INITIAL_WINDOW_SIZE window.
func dialH2Pipe(t *testing.T, addr string, window uint32) *h2Pipe {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { nc.Close() })
	p := &h2Pipe{t, nc}
	io.WriteString(nc, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	p.write(0x4, 0, 0, binary.BigEndian.AppendUint32([]byte{0, 4}, window))
	return p
}

// connect opens stream id with a WebSocket's extended CONNECT to path
// at authority.
func (p *h2Pipe) connect(id uint32, authority, path string) {
	p.t.Helper()
	var block []byte
	for _, f := range []hpack.Field{
		{Name: ":method", Value: "CONNECT"}, {Name: ":protocol", Value: "websocket"},
		{Name: ":scheme", Value: "http"}, {Name: ":authority", Value: authority},
		{Name: ":path", Value: path}, {Name: "sec-websocket-version", Value: "13"},
	} {
		block = hpack.AppendField(block, f)
	}
	p.write(0x1, 0x4, id, block) // HEADERS, END_HEADERS
}

// stallingH2Accept is stallingH2Client with a handler that accepts the
// WebSocket with opts and hands it to h, closing it once h returns.
func stallingH2Accept(t *testing.T, opts *AcceptOptions, h func(*Conn)) *h2Pipe {
	t.Helper()
	return stallingH2Client(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, opts)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.CloseNow()
		h(c)
	})
}

// streamEnd opens the stream's window (and the connection's) and reads
// the stream's frames to its end, returning the DATA it carried and the
// code of the RST_STREAM that ended it, -1 for END_STREAM.
func (p *h2Pipe) streamEnd() ([]byte, int) {
	p.t.Helper()
	p.write(0x8, 0, 1, binary.BigEndian.AppendUint32(nil, 1<<20))
	var data []byte
	for {
		typ, flags, id, payload := p.frame()
		switch {
		case id != 1:
		case typ == 0x0:
			data = append(data, payload...)
			if flags&1 != 0 {
				return data, -1
			}
		case typ == 0x3:
			return data, int(binary.BigEndian.Uint32(payload))
		}
	}
}

// testHTTP2ResetAfterQueuedResponse: the 200 of a stream accepted while
// the HTTP/2 connection's writer is busy goes out before the reset of a
// CloseNow with a write under way. Go's HTTP/2 server waits for the
// response's HEADERS to be written only when the handler set a field:
// Accept with none returned with the frame still queued, and the reset,
// which the server's scheduler sends ahead of queued frames, ended the
// stream first and had the frame dropped, so the client saw its extended
// CONNECT reset without an answer (Dial failed, "the server reset the
// stream": TestOverHTTP2Stalls/NetConn_closed_while_writing did, now and
// then). Here another stream's writes fill the socket, the client reading
// nothing until the second stream's write is under way, or a second has
// passed (Accept waits for its 200 to go out).
func testHTTP2ResetAfterQueuedResponse(t *testing.T) {
	writing, handled := make(chan struct{}), make(chan struct{})
	o := newH2Origin(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/fill" {
			defer close(handled)
		}
		c, err := Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.CloseNow()
		if r.URL.Path == "/fill" {
			for c.Write(context.Background(), MessageBinary, make([]byte, 1<<20)) == nil {
			}
			return
		}
		go func() {
			for c.Write(context.Background(), MessageText, []byte("hello")) == nil {
			}
		}()
		awaitStreamWrite(t, c)
		close(writing)
	})
	addr := o.Listener.Addr().String()
	p := dialH2Pipe(t, addr, 1<<31-1)
	p.write(0x8, 0, 0, binary.BigEndian.AppendUint32(nil, 1<<30)) // the connection's window
	p.connect(1, addr, "/fill")
	time.Sleep(500 * time.Millisecond) // for the server's writes to fill the socket
	p.connect(3, addr, "/ws")
	select {
	case <-writing:
	case <-time.After(time.Second):
	}
	var got []uint8 // the second stream's frames: HEADERS (1), then DATA (0) and RST_STREAM (3)
	for len(got) == 0 || got[len(got)-1] != 0x3 {
		if typ, _, id, _ := p.frame(); id == 3 {
			got = append(got, typ)
		}
	}
	<-handled
	if got[0] != 0x1 {
		t.Fatalf("the second stream's frames: %v, want its response HEADERS (1) first", got)
	}
}

// testHTTP2StalledWrite: a server's write that waits for a flow-control
// window the client never gives ends when its context does (its error
// wrapping the context's error, where it wrapped nothing, and then the
// cause given to the context in its place), or a NetConn's write
// deadline (a net.Error whose Timeout is true, where it was neither), Close ends
// within its close timeout, and CloseNow ends a Write another goroutine
// is blocked in before it returns, so that the handler may return: each
// resets the stream (RST_STREAM INTERNAL_ERROR). Each waited for as long
// as the HTTP/2 connection lived; and a handler that returned after
// CloseNow had net/http flush the blocked Write's bytes a second time,
// racing with it, the message going out twice once the window came.
func testHTTP2StalledWrite(t *testing.T) {
	for _, how := range []string{"context", "cause", "NetConn", "Close", "CloseNow"} {
		t.Run(how, func(t *testing.T) {
			type result struct {
				err  error
				took time.Duration
			}
			res := make(chan result, 2)
			p := stallingH2Accept(t, &AcceptOptions{CloseTimeout: 300 * time.Millisecond}, func(c *Conn) {
				var err error
				start := time.Now()
				switch how {
				case "context", "cause":
					ctx, cancel := context.WithTimeoutCause(context.Background(), 300*time.Millisecond, errors.New("a cause of the caller's"))
					if how == "context" {
						ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
					}
					defer cancel()
					err = c.Write(ctx, MessageText, []byte("hello"))
				case "NetConn":
					nc := NetConn(c, MessageText)
					nc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
					_, err = nc.Write([]byte("hello"))
				case "Close":
					err = c.Close(StatusNormalClosure, "")
				default:
					wrote := make(chan error, 1)
					go func() { wrote <- c.Write(context.Background(), MessageText, []byte("hello")) }()
					awaitStreamWrite(t, c)
					start = time.Now()
					c.CloseNow()
					// What CloseNow promises is that the stream is no
					// longer written to once it returns; the Write's
					// return to its goroutine may come a moment later.
					s := c.tr.rw.(*stream)
					s.mu.Lock()
					writing := s.writing
					s.mu.Unlock()
					if writing {
						err = errors.New("the stream was still being written to when CloseNow returned")
						break
					}
					select {
					case err = <-wrote:
					case <-time.After(time.Second):
						err = errors.New("the Write had not returned 1 s after CloseNow")
					}
				}
				res <- result{err, time.Since(start)}
			})
			select {
			case r := <-res:
				want := map[string]string{
					"context":  "websocket: write: connection closed: context deadline exceeded, which closes a transport without deadlines",
					"cause":    "websocket: write: connection closed: context deadline exceeded, which closes a transport without deadlines",
					"NetConn":  "websocket: write: i/o timeout, which closes a transport without deadlines: connection closed",
					"Close":    "websocket: close: connection closed: the closing handshake timed out: close 1000 (normal closure) could not be sent",
					"CloseNow": "websocket: write: connection closed: closed without a closing handshake",
				}[how]
				if r.err == nil || r.err.Error() != want {
					t.Errorf("%s: %v, want %q", how, r.err, want)
				}
				// A context's end is the call's error as it is over TCP,
				// and a deadline's keeps net.Conn's promise.
				if (how == "context" || how == "cause") && !errors.Is(r.err, context.DeadlineExceeded) {
					t.Errorf("%s: %v, want it to wrap the context's end", how, r.err)
				}
				if ne, ok := r.err.(net.Error); how == "NetConn" && (!ok || !ne.Timeout() || !errors.Is(r.err, os.ErrDeadlineExceeded) || !errors.Is(r.err, ErrClosed)) {
					t.Errorf("%s: %T %v, want a net.Error whose Timeout is true, wrapping os.ErrDeadlineExceeded and ErrClosed", how, r.err, r.err)
				}
				if r.took > 2*time.Second {
					t.Errorf("%s took %v", how, r.took)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s still under way after 5 s", how)
			}
			data, code := p.streamEnd()
			if len(data) != 0 || code != 2 {
				t.Fatalf("the stream carried %q, then ended with %d, want nothing and RST_STREAM INTERNAL_ERROR (2)", data, code)
			}
		})
	}
}

// testHTTP2WriteAfterReset: a handler that only writes learns that the
// client reset its stream from an error that does not blame its own
// return.
func testHTTP2WriteAfterReset(t *testing.T) {
	ended := make(chan error, 1)
	p := stallingH2Accept(t, nil, func(c *Conn) {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.Write(ctx, MessageText, []byte("tick"))
			cancel()
			if err != nil {
				ended <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	p.write(0x8, 0, 1, binary.BigEndian.AppendUint32(nil, 1<<20))
	for {
		if typ, _, id, payload := p.frame(); typ == 0x0 && id == 1 {
			if !bytes.Equal(payload, []byte("\x81\x04tick")) {
				t.Fatalf("DATA % x, want a text frame with tick", payload)
			}
			break
		}
	}
	p.write(0x3, 0, 1, binary.BigEndian.AppendUint32(nil, 8)) // RST_STREAM CANCEL
	const want = "websocket: connection lost: the HTTP/2 stream ended: the peer reset it, its connection was lost, or its handler returned"
	select {
	case err := <-ended:
		if err.Error() != want {
			t.Fatalf("Write: %v, want %q", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write still succeeding 5 s after the client reset the stream")
	}
}

// testHTTP2KeepaliveEnds: over HTTP/2, where the stream has no deadlines,
// a server's keepalive that waits for the answer to its ping, nobody else
// reading, ends the connection as keepalive does over TCP: a close frame
// with 1011, and an end that says the peer was silent; and a ping that
// waits for a flow-control window ends it saying that the ping could not
// be written. Both ended as "a context ended during I/O on a transport
// without deadlines", naming a context nobody passed.
func testHTTP2KeepaliveEnds(t *testing.T) {
	for _, how := range []string{"unanswered", "unwritten"} {
		t.Run(how, func(t *testing.T) {
			ended := make(chan error, 1)
			p := stallingH2Accept(t, &AcceptOptions{KeepaliveInterval: kaInterval, KeepaliveTimeout: kaTimeout}, func(c *Conn) {
				// A handler that waits for the end without reading: the
				// keepalive reads the ping's answer itself.
				waitFor(t, "the connection to close", c.isClosed)
				ended <- c.Write(context.Background(), MessageText, []byte("late"))
			})
			want := "websocket: write: connection closed: write: keepalive timeout: the ping could not be written in time"
			if how == "unanswered" {
				p.write(0x8, 0, 1, binary.BigEndian.AppendUint32(nil, 1<<20))
				if typ, _, id, payload := p.frame(); typ != 0x0 || id != 1 || !bytes.Equal(payload, []byte("\x89\x00")) {
					t.Fatalf("frame of type %d on stream %d: % x, want DATA with a ping", typ, id, payload)
				}
				if typ, _, id, payload := p.frame(); typ != 0x0 || id != 1 || !bytes.Equal(payload, []byte("\x88\x13\x03\xf3keepalive timeout")) {
					t.Fatalf("frame of type %d on stream %d: % x, want DATA with a close frame, 1011", typ, id, payload)
				}
			}
			select {
			case err := <-ended:
				if how == "unanswered" {
					if !errors.Is(err, ErrKeepaliveTimeout) || CloseStatus(err) != StatusInternalError || !strings.HasSuffix(err.Error(), "ping unanswered (sent close 1011)") {
						t.Fatalf("Write at the end: %v, want keepalive's end with 1011 sent", err)
					}
				} else if err == nil || err.Error() != want || !errors.Is(err, ErrKeepaliveTimeout) {
					t.Fatalf("Write at the end: %v, want %q", err, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the connection still open 5 s after keepalive's timeout")
			}
		})
	}
}

// testHTTP2KeepaliveUnderClose: over HTTP/2, where the stream has no
// deadlines, Close's frame goes out while the keepalive reads for its
// ping's answer (nobody else reading); the ping's timeout passes, and
// the keepalive leaves the connection to Close's handshake, whose close
// timeout bounds it: the peer's answer, coming after the ping's timeout,
// completes it, and a peer that never answers gets the close timeout's
// error, 1006. The keepalive's read, cut short, closed the connection at
// the ping's timeout, and Close reported "close 1000" as if answered.
func testHTTP2KeepaliveUnderClose(t *testing.T) {
	for _, answer := range []bool{true, false} {
		t.Run(fmt.Sprintf("answer=%v", answer), func(t *testing.T) {
			conns, closed := make(chan *Conn, 1), make(chan error, 1)
			p := stallingH2Accept(t, &AcceptOptions{KeepaliveInterval: time.Hour, KeepaliveTimeout: 200 * time.Millisecond, CloseTimeout: time.Second}, func(c *Conn) {
				conns <- c
				pingNow(c)
				// The keepalive holds the read lock once its ping is out.
				waitFor(t, "the keepalive to read for its ping's answer", c.readMu.taken)
				closed <- c.Close(StatusNormalClosure, "bye")
			})
			c := <-conns
			p.write(0x8, 0, 1, binary.BigEndian.AppendUint32(nil, 1<<20))
			for _, want := range []string{"\x89\x00", "\x88\x05\x03\xe8bye"} {
				if typ, _, id, payload := p.frame(); typ != 0x0 || id != 1 || string(payload) != want {
					t.Fatalf("frame of type %d on stream %d: %q, want DATA %q", typ, id, payload, want)
				}
			}
			waitFor(t, "the ping's timeout", func() bool {
				w := c.watches.Load()
				w.mu.Lock()
				defer w.mu.Unlock()
				return w.dirs[watchRead].fired || c.isClosed()
			})
			if answer {
				p.write(0x0, 0, 1, maskedFrame(0x88, []byte("\x03\xe8bye")))
			}
			var err error
			select {
			case err = <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("Close still under way after 5 s")
			}
			const timedOut = "websocket: close: connection closed: the closing handshake timed out: no answer to close 1000 (normal closure): bye"
			switch {
			case answer && err != nil:
				t.Errorf("Close: %v, want nil: the peer answered", err)
			case !answer && (err == nil || err.Error() != timedOut || CloseStatus(err) != StatusAbnormalClosure):
				t.Errorf("Close: %v (%d), want %q, 1006", err, CloseStatus(err), timedOut)
			}
			// Nothing follows Close's frame: no close 1011.
			if data, code := p.streamEnd(); len(data) != 0 || code != -1 {
				t.Errorf("after Close's frame, the stream carried %q, then ended with %d, want nothing and END_STREAM (-1)", data, code)
			}
		})
	}
}

// testHTTP2StuckSocket: the client grants every window and then reads
// nothing, so that Go's HTTP/2 server's writer blocks in the socket with
// a Write of the Conn under way, and the reset that would end it cannot go
// out. Close (300 ms close timeout), CloseNow and keepalive's end wait
// for that write, however long: they returned after 100 ms once, and the
// handler with them, while the write went on in the response writer's
// state, which net/http then handed to another stream (it reset the next
// test's stream before its response went out). The write, and they,
// end with the HTTP/2 connection: when the client goes, or when the
// server's WriteByteTimeout passes. Registry.Shutdown (300 ms context)
// does not wait for them, while the handler's CloseNow does.
func testHTTP2StuckSocket(t *testing.T) {
	for _, how := range []string{"Close", "CloseNow", "Shutdown", "keepalive", "WriteByteTimeout"} {
		t.Run(how, func(t *testing.T) {
			took := make(chan time.Duration, 1)
			busy := make(chan int32, 1) // calls into the ResponseWriter under way as the handler returns
			reg := new(Registry)
			var ww atomic.Pointer[watchedWriter]
			var server func(*http.Server)
			if how == "WriteByteTimeout" {
				server = func(s *http.Server) { s.HTTP2 = &http.HTTP2Config{WriteByteTimeout: 1500 * time.Millisecond} }
			}
			p := stallingH2ClientOn(t, server, func(rw http.ResponseWriter, r *http.Request) {
				w := &watchedWriter{ResponseWriter: rw}
				ww.Store(w)
				defer w.returned(busy)
				opts := &AcceptOptions{CloseTimeout: 300 * time.Millisecond, Registry: reg}
				if how == "keepalive" {
					opts.KeepaliveInterval, opts.KeepaliveTimeout = time.Hour, 300*time.Millisecond
				}
				c, err := Accept(w, r, opts)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.CloseNow()
				var wrote atomic.Int64
				go func() {
					msg := make([]byte, 64<<10)
					for c.Write(context.Background(), MessageBinary, msg) == nil {
						wrote.Add(1)
					}
				}()
				for last := int64(-1); ; {
					time.Sleep(200 * time.Millisecond)
					if n := wrote.Load(); n == last && n > 0 {
						break
					} else {
						last = n
					}
				}
				start := time.Now()
				switch how {
				case "Close", "WriteByteTimeout":
					c.Close(StatusNormalClosure, "")
				case "CloseNow":
					c.CloseNow()
				case "Shutdown":
					ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
					if err := reg.Shutdown(ctx); err != context.DeadlineExceeded {
						t.Errorf("Shutdown: %v, want %v", err, context.DeadlineExceeded)
					}
					cancel()
				default:
					pingNow(c)
					c.Read(context.Background())
				}
				took <- time.Since(start)
			})
			p.write(0x8, 0, 0, binary.BigEndian.AppendUint32(nil, 1<<30))
			p.write(0x8, 0, 1, binary.BigEndian.AppendUint32(nil, 1<<30))
			switch how {
			case "Shutdown", "WriteByteTimeout":
				// Shutdown does not wait for the write; the server ends
				// its connection when the write timeout passes.
				select {
				case d := <-took:
					if d > 3*time.Second {
						t.Errorf("%s took %v", how, d)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("%s still under way 10 s after the socket stalled", how)
				}
			default:
				select {
				case d := <-took:
					t.Errorf("%s returned after %v, the write still under way", how, d)
				case <-time.After(1500 * time.Millisecond):
				}
			}
			if how != "WriteByteTimeout" {
				select {
				case n := <-busy:
					t.Fatalf("the handler returned with %d calls into its ResponseWriter under way, the client still there", n)
				case <-time.After(500 * time.Millisecond):
				}
				p.nc.Close()
			}
			checkReturn(t, &ww, busy)
		})
	}
}

// testHTTP2ReadAtReset: a handler that reads while another goroutine's
// Write waits for a window the client does not give finds the end the
// connection recorded when it closes (CloseNow, or keepalive's ping that
// cannot be written), not the reset of its stream, which closing brings
// about, as a lost connection.
func testHTTP2ReadAtReset(t *testing.T) {
	for _, how := range []string{"CloseNow", "keepalive"} {
		t.Run(how, func(t *testing.T) {
			read := make(chan error, 1)
			stallingH2Accept(t, &AcceptOptions{KeepaliveInterval: time.Hour, KeepaliveTimeout: kaTimeout}, func(c *Conn) {
				go c.Write(context.Background(), MessageText, []byte("hello"))
				go func() {
					awaitStreamWrite(t, c)
					if how == "CloseNow" {
						c.CloseNow()
					} else {
						pingNow(c) // queued behind the Write; the read for its answer is not
					}
				}()
				_, _, err := c.Read(context.Background())
				read <- err
			})
			want := "websocket: read: connection closed: closed without a closing handshake"
			select {
			case err := <-read:
				if how == "keepalive" {
					if !errors.Is(err, ErrKeepaliveTimeout) || CloseStatus(err) == StatusAbnormalClosure {
						t.Errorf("Read: %v, want keepalive's end", err)
					}
				} else if err == nil || err.Error() != want {
					t.Errorf("Read: %v, want %q", err, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Read still under way 5 s later")
			}
		})
	}
}

// awaitStreamWrite waits until a Write is under way on c's HTTP/2 stream.
func awaitStreamWrite(t *testing.T, c *Conn) {
	t.Helper()
	s := c.tr.rw.(*stream)
	waitFor(t, "the Write to wait for a window", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.writing
	})
}

// watchedWriter is a ResponseWriter (a middleware's, say) that counts the
// calls into it under way, and those begun once the handler returned;
// its FlushError takes linger more once the one it wraps returned, and its
// SetWriteDeadline, for a deadline set, resetDelay before it calls the
// one it wraps.
type watchedWriter struct {
	http.ResponseWriter
	linger, resetDelay time.Duration
	onFlush            func()
	busy, late         atomic.Int32
	resetting, done    atomic.Bool
}

func (w *watchedWriter) enter() {
	w.busy.Add(1)
	if w.done.Load() {
		w.late.Add(1)
	}
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	w.enter()
	defer w.busy.Add(-1)
	return w.ResponseWriter.Write(p)
}

func (w *watchedWriter) FlushError() error {
	w.enter()
	defer w.busy.Add(-1)
	if f := w.onFlush; f != nil {
		w.onFlush = nil
		f()
	}
	err := http.NewResponseController(w.ResponseWriter).Flush()
	time.Sleep(w.linger)
	return err
}

func (w *watchedWriter) SetWriteDeadline(d time.Time) error {
	w.enter()
	defer w.busy.Add(-1)
	if !d.IsZero() {
		w.resetting.Store(true)
		time.Sleep(w.resetDelay)
	}
	return http.NewResponseController(w.ResponseWriter).SetWriteDeadline(d)
}

func (w *watchedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// returned records, as the handler returns, the calls under way.
func (w *watchedWriter) returned(busy chan<- int32) {
	w.done.Store(true)
	busy <- w.busy.Load()
}

// checkReturn fails unless the handler returned with no call into w
// under way, and none began in the second after.
func checkReturn(t *testing.T, w *atomic.Pointer[watchedWriter], busy <-chan int32) {
	t.Helper()
	select {
	case n := <-busy:
		if n != 0 {
			t.Errorf("the handler returned with %d calls into its ResponseWriter under way", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler still under way after 5 s")
	}
	time.Sleep(time.Second)
	if n := w.Load().late.Load(); n != 0 {
		t.Errorf("%d calls into the ResponseWriter began after the handler returned", n)
	}
}

// testHTTP2ServeBeforeWrite: Serve over HTTP/2, whose handler returns
// with it and closes nothing (as the docs have it), while another
// goroutine's Write waits for a window and a third closes the Conn:
// Serve's read ended on the reset with errStreamQuiesced, which it
// reported as the end without waiting for the Write (stream.quiesce).
func testHTTP2ServeBeforeWrite(t *testing.T) {
	busy := make(chan int32, 1)
	var ww atomic.Pointer[watchedWriter]
	stallingH2Client(t, func(rw http.ResponseWriter, r *http.Request) {
		w := &watchedWriter{ResponseWriter: rw, linger: 300 * time.Millisecond}
		ww.Store(w)
		defer w.returned(busy)
		c, err := Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		go c.Write(context.Background(), MessageText, []byte("hello"))
		go func() {
			awaitStreamWrite(t, c)
			c.CloseNow()
		}()
		c.Serve(func(MessageType, []byte) {}, nil)
	})
	checkReturn(t, &ww, busy)
}

// testHTTP2ResetAfterClose: CloseNow on another goroutine resets the
// stream of a Write that waits for a window; the window comes as the
// reset is under way, the Write ends, and the handler's CloseNow found
// no write under way and returned, the reset still going on.
func testHTTP2ResetAfterClose(t *testing.T) {
	busy := make(chan int32, 1)
	resetting := make(chan struct{})
	var ww atomic.Pointer[watchedWriter]
	p := stallingH2Client(t, func(rw http.ResponseWriter, r *http.Request) {
		w := &watchedWriter{ResponseWriter: rw, resetDelay: 300 * time.Millisecond}
		ww.Store(w)
		defer w.returned(busy)
		c, err := Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		wrote := make(chan error, 1)
		go func() { wrote <- c.Write(context.Background(), MessageText, []byte("hello")) }()
		awaitStreamWrite(t, c)
		go c.CloseNow()
		waitFor(t, "the reset to begin", w.resetting.Load)
		close(resetting)
		<-wrote
		c.CloseNow()
	})
	<-resetting
	p.write(0x8, 0, 1, binary.BigEndian.AppendUint32(nil, 1<<20)) // the window comes
	checkReturn(t, &ww, busy)
}

// testHTTP2RefusedByShutdown: a shutdown that begins during Accept over
// HTTP/2 has Accept return an error, the handler with it, once the Conn
// is closed: Accept left a goroutine closing it, whose close frame went
// into the ResponseWriter of a handler that returned.
func testHTTP2RefusedByShutdown(t *testing.T) {
	busy := make(chan int32, 1)
	reg := new(Registry)
	var ww atomic.Pointer[watchedWriter]
	stallingH2Client(t, func(rw http.ResponseWriter, r *http.Request) {
		w := &watchedWriter{ResponseWriter: rw}
		ww.Store(w)
		defer w.returned(busy)
		w.onFlush = func() {
			// The handshake is past the registry's refusal: a shutdown
			// begins now.
			go reg.Shutdown(context.Background())
			waitFor(t, "the shutdown to begin", func() bool {
				reg.mu.Lock()
				defer reg.mu.Unlock()
				return reg.shutting
			})
		}
		_, err := Accept(w, r, &AcceptOptions{Registry: reg, CloseTimeout: 300 * time.Millisecond})
		if err == nil {
			t.Error("Accept succeeded, the shutdown begun")
		}
		// The handler logs the refusal, say, before it returns.
		time.Sleep(100 * time.Millisecond)
	})
	checkReturn(t, &ww, busy)
}

// testHTTP2NetConnClosed: a handler copies from a NetConn that another
// goroutine closes, and returns once the copy ends. Over HTTP/2 the Read
// that Close interrupts returns only once Close is done with the stream
// (here its close frame waits for a window, until the close timeout); it
// returned at once, with the close frame's write under way.
func testHTTP2NetConnClosed(t *testing.T) {
	busy := make(chan int32, 1)
	var ww atomic.Pointer[watchedWriter]
	stallingH2Client(t, func(rw http.ResponseWriter, r *http.Request) {
		w := &watchedWriter{ResponseWriter: rw}
		ww.Store(w)
		defer w.returned(busy)
		c, err := Accept(w, r, &AcceptOptions{CloseTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Error(err)
			return
		}
		nc := NetConn(c, MessageBinary)
		go func() {
			time.Sleep(100 * time.Millisecond)
			nc.Close()
		}()
		if _, err := io.Copy(io.Discard, nc); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read: %v, want net.ErrClosed", err)
		}
		// The handler logs the end, say, before it returns.
		time.Sleep(50 * time.Millisecond)
	})
	checkReturn(t, &ww, busy)
}

// testHTTP2NetConnClosedWriting: a NetConn closed while a Write is under
// way on a server's stream ends the Write's context, and with it the
// connection, as its close frame goes: Close's error names the close.
// The close frame's write, finding the stream quiesced by the closing
// under way, reported "websocket: write: connection closed: ...", in
// about half the runs.
func testHTTP2NetConnClosedWriting(t *testing.T) {
	for i := range 20 {
		closed := make(chan error, 1)
		o := newH2Origin(t, false, func(w http.ResponseWriter, r *http.Request) {
			c, err := Accept(w, r, nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.CloseNow()
			nc := NetConn(c, MessageBinary)
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				for {
					if _, err := nc.Write(make([]byte, 1000)); err != nil {
						return
					}
				}
			}()
			time.Sleep(time.Duration(i%4) * time.Millisecond)
			closed <- nc.Close()
			<-wrote
		})
		c, _ := o.dial(t, nil)
		go func() {
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		select {
		case err := <-closed:
			if err != nil && !strings.HasPrefix(err.Error(), "websocket: close: ") {
				t.Fatalf("run %d: Close: %q, want an error of Close's", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
	}
}

// testHTTP2NoUnwrap: a ResponseWriter wrapper that does not reach
// net/http's (no Unwrap, as http.TimeoutHandler's) is refused with 500
// before a 200 goes out, Accept's error wrapping http.ErrNotSupported:
// closing could not reset a stream whose write waits for a window, and
// would wait for it forever. The 200 went out, and the client's first
// Read found the stream ended; with a Flush of its own, CloseNow waited.
func testHTTP2NoUnwrap(t *testing.T) {
	for name, wrap := range map[string]func(http.ResponseWriter) http.ResponseWriter{
		"opaque":      func(w http.ResponseWriter) http.ResponseWriter { return opaqueWriter{w} },
		"Flush alone": func(w http.ResponseWriter) http.ResponseWriter { return flushingWriter{w} },
	} {
		t.Run(name, func(t *testing.T) {
			accepted := make(chan error, 1)
			o := newH2Origin(t, false, func(w http.ResponseWriter, r *http.Request) {
				c, err := Accept(wrap(w), r, nil)
				if err == nil {
					c.CloseNow()
				}
				accepted <- err
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, resp, err := Dial(ctx, o.url+"/ws", &o.opts)
			if err == nil {
				c.CloseNow()
			}
			if !errors.Is(err, ErrHandshake) || resp == nil || resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("Dial: %v, want ErrHandshake with a 500", err)
			}
			if err := <-accepted; !errors.Is(err, http.ErrNotSupported) {
				t.Errorf("Accept: %v, want an error wrapping http.ErrNotSupported", err)
			}
		})
	}
}

// flushingWriter wraps a ResponseWriter with a Flush of its own and no
// Unwrap.
type flushingWriter struct{ http.ResponseWriter }

func (w flushingWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }
