package websocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The error contract: every exported sentinel is returned where its
// documentation says, and every message carries one "websocket:" prefix.

// checkMessage fails the test unless err's message is want, with one prefix.
func checkMessage(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: nil error, want %q", what, want)
	}
	if got := err.Error(); got != want {
		t.Errorf("%s: %q, want %q", what, got, want)
	}
	if n := strings.Count(err.Error(), "websocket:"); n != 1 {
		t.Errorf("%s: %q has %d websocket: prefixes, want 1", what, err, n)
	}
}

func TestErrClosed(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	if err := c.CloseNow(); err != nil {
		t.Fatalf("CloseNow: %v", err)
	}
	ctx := context.Background()
	err := c.Write(ctx, MessageText, []byte("x"))
	if !errors.Is(err, ErrClosed) || errors.Is(err, ErrCloseSent) {
		t.Errorf("Write after CloseNow: %v, want ErrClosed alone", err)
	}
	checkMessage(t, "Write after CloseNow", err, "websocket: write: connection closed: closed without a closing handshake")
	if _, _, err := c.Read(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after CloseNow: %v, want ErrClosed", err)
	}
	if _, err := c.Writer(ctx, MessageBinary); !errors.Is(err, ErrClosed) {
		t.Errorf("Writer after CloseNow: %v, want ErrClosed", err)
	}
	if err := c.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after CloseNow: %v, want ErrClosed", err)
	}
}

// TestErrClosedCarriesPeerClose checks the message of a call made after the
// peer closed: the peer's close frame follows once, without a second prefix.
func TestErrClosedCarriesPeerClose(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, func(c *Conn) { c.Close(StatusGoingAway, "bye") })
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	_, _, err := c.Read(ctx)
	var ce CloseError
	if !errors.As(err, &ce) || ce != (CloseError{StatusGoingAway, "bye"}) {
		t.Fatalf("Read: %v, want the server's CloseError 1001 bye", err)
	}
	err = c.Write(ctx, MessageText, []byte("x"))
	if !errors.Is(err, ErrClosed) || CloseStatus(err) != StatusGoingAway {
		t.Errorf("Write after the peer closed: %v, want ErrClosed with close 1001", err)
	}
	checkMessage(t, "Write after the peer closed", err, "websocket: write: connection closed: close 1001 (going away): bye")
}

// TestErrCloseSent: after CloseWrite, the calls that would send a frame
// fail with ErrCloseSent (and ErrClosed), while reading goes on; once the
// connection is closed they report ErrClosed alone.
func TestErrCloseSent(t *testing.T) {
	t.Parallel()
	for _, mode := range []CompressionMode{CompressionDisabled, CompressionContextTakeover} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			s := echoServer(t, &AcceptOptions{Compression: mode}, func(c *Conn) {
				ctx := context.Background()
				if _, _, err := c.Read(ctx); CloseStatus(err) != StatusNormalClosure {
					t.Errorf("server Read: %v, want close 1000", err)
				}
				<-release
			})
			c := dialT(t, wsURL(s), &DialOptions{Compression: mode})
			ctx := context.Background()
			if err := c.CloseWrite(StatusNormalClosure, ""); err != nil {
				t.Fatalf("CloseWrite: %v", err)
			}
			big := []byte(strings.Repeat("compressible ", 1000))
			for _, tc := range []struct {
				name string
				call func() error
				want string
			}{
				{"Write", func() error { return c.Write(ctx, MessageText, []byte("x")) }, "websocket: write: close frame already sent"},
				{"Write compressible", func() error { return c.Write(ctx, MessageText, big) }, "websocket: write: close frame already sent"},
				{"Writer", func() error { _, err := c.Writer(ctx, MessageBinary); return err }, "websocket: write: close frame already sent"},
				{"Ping", func() error { return c.Ping(ctx) }, "websocket: ping: close frame already sent"},
				{"CloseWrite", func() error { return c.CloseWrite(StatusNormalClosure, "") }, "websocket: close: close frame already sent"},
			} {
				err := tc.call()
				if !errors.Is(err, ErrCloseSent) || !errors.Is(err, ErrClosed) {
					t.Errorf("%s after CloseWrite: %v, want ErrCloseSent and ErrClosed", tc.name, err)
				}
				checkMessage(t, tc.name+" after CloseWrite", err, tc.want)
			}
			if c.isClosed() {
				t.Fatal("the calls after CloseWrite closed the connection")
			}
			close(release) // the server's handler returns: its close 1000 goes out
			if _, _, err := c.Read(ctx); CloseStatus(err) != StatusNormalClosure {
				t.Fatalf("Read after CloseWrite: %v, want the server's close 1000", err)
			}
			err := c.Write(ctx, MessageText, []byte("x"))
			if !errors.Is(err, ErrClosed) || errors.Is(err, ErrCloseSent) {
				t.Errorf("Write once closed: %v, want ErrClosed alone", err)
			}
		})
	}
}

func TestErrMessageTooBig(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer b.Close()
	c := newConn(&connConfig{tr: netTransport(a), closeTimeout: 100 * time.Millisecond})
	defer c.CloseNow()
	c.SetReadLimit(10)
	go func() {
		// A masked binary frame declaring 11 bytes, then whatever comes back.
		b.Write([]byte{0x82, 0x80 | 11, 0, 0, 0, 0})
		io.Copy(io.Discard, b)
	}()
	_, _, err := c.Read(context.Background())
	var pe *ProtocolError
	if !errors.Is(err, ErrMessageTooBig) || !errors.As(err, &pe) || pe.Code != StatusMessageTooBig {
		t.Fatalf("Read: %v, want a *ProtocolError 1009 wrapping ErrMessageTooBig", err)
	}
	checkMessage(t, "Read past the limit", err, "websocket: message exceeds the read limit of 10 bytes: connection failed with 1009 (message too big)")
}

func TestProtocolErrorMessage(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer b.Close()
	c := newConn(&connConfig{tr: netTransport(a), closeTimeout: 100 * time.Millisecond})
	defer c.CloseNow()
	go func() {
		b.Write([]byte{0x81, 0x80 | 1, 0, 0, 0, 0, 0xff}) // text, not UTF-8
		io.Copy(io.Discard, b)
	}()
	_, _, err := c.Read(context.Background())
	if CloseStatus(err) != StatusInvalidFramePayloadData {
		t.Fatalf("Read: %v, want a failure with 1007", err)
	}
	checkMessage(t, "Read of invalid UTF-8", err, "websocket: text message is not valid UTF-8: connection failed with 1007 (invalid frame payload data)")
	err = c.Write(context.Background(), MessageText, nil)
	checkMessage(t, "Write after the failure", err, "websocket: write: connection closed: text message is not valid UTF-8: connection failed with 1007 (invalid frame payload data)")
}

func TestErrHandshake(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/forbidden" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		_, err := Accept(w, r, nil)
		if !errors.Is(err, ErrHandshake) {
			t.Errorf("Accept of a plain GET: %v, want ErrHandshake", err)
		}
	}))
	defer s.Close()
	resp, err := http.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET answered %d, want 400", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err = Dial(ctx, wsURL(s)+"/forbidden", nil)
	if !errors.Is(err, ErrHandshake) || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("Dial refused with 403: %v, want ErrHandshake and the response", err)
	}
	if n := strings.Count(err.Error(), "websocket:"); n != 1 {
		t.Errorf("Dial refused: %q has %d prefixes, want 1", err, n)
	}
}

func TestContextErrorMessage(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := c.Read(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a canceled context: %v", err)
	}
	checkMessage(t, "Read with a canceled context", err, "websocket: read: context canceled")
}

// TestMessageTypeIsOpcode: the public message types are the opcodes of the
// frames that start their messages.
func TestMessageTypeIsOpcode(t *testing.T) {
	if MessageText != MessageType(opText) || MessageBinary != MessageType(opBinary) {
		t.Errorf("MessageText, MessageBinary = %d, %d; want the opcodes %d, %d", MessageText, MessageBinary, opText, opBinary)
	}
}

// TestCloseTimeoutMessages: the end of a connection whose closing
// handshake timed out says which close went unanswered, or which could
// not be sent and why the connection was ending, and carries a close code
// only when one was on the wire.
func TestCloseTimeoutMessages(t *testing.T) {
	t.Parallel()
	ka := &keepaliveError{silent: 1500 * time.Millisecond}
	full := protocolErr(StatusPolicyViolation, queueFullReason)
	full.err = ErrQueueFull
	for _, tc := range []struct {
		end    error
		want   string
		status StatusCode
		is     error
	}{
		{&closeTimeoutError{sent: &CloseError{StatusGoingAway, "bye"}}, "the closing handshake timed out: no answer to close 1001 (going away): bye", StatusAbnormalClosure, nil},
		{&closeTimeoutError{}, "the closing handshake timed out: the close frame could not be sent", -1, nil},
		{unsentEnd(CloseError{StatusNormalClosure, ""}), "the closing handshake timed out: close 1000 (normal closure) could not be sent", -1, nil},
		{unsentEnd(CloseError{StatusGoingAway, "server shutting down"}), "the closing handshake timed out: close 1001 (going away) could not be sent", -1, nil},
		{unsentEnd(full), queueFullReason + ": the closing handshake timed out: the close frame could not be sent", -1, ErrQueueFull},
		{unsentEnd(ka), "keepalive timeout: nothing from the peer for 1.5s, ping unanswered (close 1011 could not be sent)", -1, ErrKeepaliveTimeout},
	} {
		err := &closedError{op: "read", cause: tc.end}
		checkMessage(t, tc.want, err, "websocket: read: connection closed: "+tc.want)
		if CloseStatus(err) != tc.status {
			t.Errorf("%s: close status %d, want %d", tc.want, CloseStatus(err), tc.status)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: does not wrap %v", tc.want, tc.is)
		}
	}
	if ka.unsent {
		t.Error("the message changed the keepalive's own end")
	}
}

// TestCloseErrorQuotesReason: a peer's close reason shows as it is when
// it is printable, and quoted when it holds a line break, an escape
// sequence or another control character, which in a log could pass for
// lines of the program's own.
func TestCloseErrorQuotesReason(t *testing.T) {
	for _, tt := range []struct{ reason, want string }{
		{"bye", "websocket: close 1000 (normal closure): bye"},
		{"héllo ✓ <b>", "websocket: close 1000 (normal closure): héllo ✓ <b>"},
		{"bye\n2026/12/05 10:00:00 echo: 10.0.0.1:1 connected", `websocket: close 1000 (normal closure): "bye\n2026/12/05 10:00:00 echo: 10.0.0.1:1 connected"`},
		{"\x1b[2Jcleared", `websocket: close 1000 (normal closure): "\x1b[2Jcleared"`},
		{"tab\there", `websocket: close 1000 (normal closure): "tab\there"`},
	} {
		if got := (CloseError{StatusNormalClosure, tt.reason}).Error(); got != tt.want {
			t.Errorf("reason %q: %s, want %s", tt.reason, got, tt.want)
		}
	}
}

// TestCloseErrorAsPointer: errors.As finds the CloseError for a
// *CloseError target too, in a read's error as in the errors that wrap it:
// such a target compiles and passes go vet, as *CloseError implements
// error, and it never matched.
func TestCloseErrorAsPointer(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, func(c *Conn) {
		c.Read(context.Background())
		c.Close(StatusGoingAway, "restarting")
	})
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	if err := c.Write(ctx, MessageText, []byte("go")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	_, _, readErr := c.Read(ctx)
	_, _, laterErr := c.Read(ctx)
	want := CloseError{StatusGoingAway, "restarting"}
	failed := &ProtocolError{Code: StatusMessageTooBig, Reason: "too big", err: ErrMessageTooBig}
	for _, tc := range []struct {
		name string
		err  error
		want CloseError
	}{
		{"Read", readErr, want},
		{"a later Read", laterErr, want},
		{"wrapped", fmt.Errorf("session: %w", readErr), want},
		{"a ProtocolError", failed, CloseError{StatusMessageTooBig, "too big"}},
	} {
		var p *CloseError
		if !errors.As(tc.err, &p) || p == nil || *p != tc.want {
			t.Errorf("%s: errors.As(%v, *CloseError) = %v; want %v", tc.name, tc.err, p, tc.want)
		}
		var v CloseError
		if !errors.As(tc.err, &v) || v != tc.want {
			t.Errorf("%s: errors.As(%v, CloseError) = %v; want %v", tc.name, tc.err, v, tc.want)
		}
	}
	var p *CloseError
	if errors.As(fmt.Errorf("x: %w", io.EOF), &p) || p != nil {
		t.Errorf("errors.As found a CloseError in an error without one: %v", p)
	}
	var pe *ProtocolError
	if errors.As(readErr, &pe) {
		t.Errorf("errors.As found a ProtocolError in %v", readErr)
	}
}

// TestQuoted: an error quotes at most maxQuoted bytes of what the peer sent.
func TestQuoted(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxQuoted)
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		{nil, `""`},
		{[]string{"a\nb"}, `"a\nb"`},
		{[]string{"a", "b"}, `"a, b"`},
		{[]string{long}, `"` + long + `"`},
		{[]string{long + "y"}, `"` + long + `"...`},
		{[]string{long[2:], "y"}, `"` + long[2:] + `, "...`},
		{[]string{long, "y"}, `"` + long + `"...`},
		{[]string{long + long, long}, `"` + long + `"...`},
	} {
		if got := quoted(tc.lines...); got != tc.want {
			t.Errorf("quoted(%q) = %s, want %s", tc.lines, got, tc.want)
		}
	}
}
