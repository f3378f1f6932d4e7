//go:build !js

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
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/godebugtest"
)

// TestDialHTTP2 runs TestDialOverHTTP2 in a child process whose HTTP/2
// server offers extended CONNECT (GODEBUG=http2xconnect=1).
func TestDialHTTP2(t *testing.T) {
	t.Parallel()
	godebugtest.Run(t, xconnect, "TestDialOverHTTP2")
}

// TestDialOverHTTP2: Dial over HTTP/2 against Go's HTTP/2 server, over
// TLS and h2c. TestDialHTTP2 runs it.
func TestDialOverHTTP2(t *testing.T) {
	if !godebugtest.Has(xconnect) {
		t.Skip("needs GODEBUG=" + xconnect + "; TestDialHTTP2 runs it so")
	}
	for _, tls := range []bool{true, false} {
		name := "h2c"
		if tls {
			name = "h2"
		}
		t.Run(name, func(t *testing.T) {
			t.Run("handshake", func(t *testing.T) { testDialH2Handshake(t, tls) })
			t.Run("100 on one connection", func(t *testing.T) { testDialH2Many(t, tls) })
			t.Run("reset by the server", func(t *testing.T) { testDialH2Reset(t, tls) })
			t.Run("context", func(t *testing.T) { testDialH2Context(t, tls) })
			t.Run("refused", func(t *testing.T) { testDialH2Refused(t, tls) })
			t.Run("ServeMux patterns", func(t *testing.T) { testDialH2Mux(t, tls) })
			t.Run("URL userinfo", func(t *testing.T) { testDialH2Userinfo(t, tls) })
			t.Run("Host in Header", func(t *testing.T) { testDialH2HeaderHost(t, tls) })
			t.Run("redirect", func(t *testing.T) { testDialH2Redirect(t, tls) })
			t.Run("page and socket at one path", func(t *testing.T) { testDialH2PageAndSocket(t, tls) })
		})
	}
}

// h2Origin is a Go HTTP/2 server for Dial: over TLS with a certificate
// made for the test, or cleartext (h2c) beside HTTP/1.1. conns counts the
// TCP connections it accepted.
type h2Origin struct {
	*httptest.Server
	url   string
	opts  DialOptions
	conns atomic.Int32
}

func newH2Origin(t *testing.T, tls bool, h http.HandlerFunc) *h2Origin {
	t.Helper()
	return newH2OriginOn(t, tls, nil, h)
}

// newH2OriginOn is newH2Origin with a server that server, if not nil,
// configures before it starts.
func newH2OriginOn(t *testing.T, tls bool, server func(*http.Server), h http.HandlerFunc) *h2Origin {
	t.Helper()
	o := &h2Origin{Server: httptest.NewUnstartedServer(h)}
	if server != nil {
		server(o.Config)
	}
	o.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			o.conns.Add(1)
		}
	}
	if tls {
		o.EnableHTTP2 = true
		o.StartTLS()
		o.url = "wss" + strings.TrimPrefix(o.URL, "https")
		o.opts.HTTPClient = o.Client()
	} else {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		o.Config.Protocols = &p
		o.Start()
		o.url = wsURL(o.Server)
	}
	o.opts.HTTP2 = HTTP2Required
	t.Cleanup(o.Close)
	return o
}

// dial dials the origin with its options and the changes of edit.
func (o *h2Origin) dial(t *testing.T, edit func(*DialOptions)) (*Conn, *http.Response) {
	t.Helper()
	opts := o.opts
	if edit != nil {
		edit(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := Dial(ctx, o.url+"/ws", &opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, resp
}

func testDialH2Handshake(t *testing.T, tls bool) {
	got := make(chan *http.Request, 1)
	o := newH2Origin(t, tls, func(w http.ResponseWriter, r *http.Request) {
		got <- r
		c, err := Accept(w, r, &AcceptOptions{
			Subprotocols:   []string{"chat"},
			Compression:    CompressionContextTakeover,
			OriginPatterns: []string{"app.example"},
		})
		if err != nil {
			return
		}
		defer c.CloseNow()
		echo(c)
	})
	c, resp := o.dial(t, func(opts *DialOptions) {
		opts.Subprotocols = []string{"other", "chat"}
		opts.Compression = CompressionContextTakeover
		opts.Header = http.Header{"Origin": {"https://app.example"}, "X-Token": {"abc"}}
	})
	r := <-got
	if r.ProtoMajor != 2 || r.Method != http.MethodConnect || r.Header.Get(":protocol") != "websocket" {
		t.Errorf("server got %s %s with :protocol %q, want an extended CONNECT over HTTP/2", r.Proto, r.Method, r.Header.Get(":protocol"))
	}
	if k, ok := r.Header["Sec-Websocket-Key"]; ok {
		t.Errorf("Sec-WebSocket-Key %q sent over HTTP/2 (RFC 8441 §5 drops it)", k)
	}
	for name, want := range map[string]string{
		"Sec-Websocket-Version":    "13",
		"Sec-Websocket-Protocol":   "other, chat",
		"Sec-Websocket-Extensions": "permessage-deflate; client_max_window_bits",
		"Origin":                   "https://app.example",
		"X-Token":                  "abc",
	} {
		if v := r.Header.Values(name); len(v) != 1 || v[0] != want {
			t.Errorf("server got %s %q, want %q", name, v, want)
		}
	}
	if r.URL.Path != "/ws" {
		t.Errorf("server got path %q, want /ws", r.URL.Path)
	}
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" {
		t.Errorf("response %q %s, want 200 over HTTP/2.0", resp.Status, resp.Proto)
	}
	if c.Subprotocol() != "chat" {
		t.Errorf("subprotocol %q, want chat", c.Subprotocol())
	}
	if !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Errorf("extensions %q, want permessage-deflate", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	ctx := context.Background()
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
		msg := bytes.Repeat([]byte("ab"), n/2)
		if err := c.Write(ctx, MessageBinary, msg); err != nil {
			t.Fatalf("Write %d bytes: %v", len(msg), err)
		}
		if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("echo of %d bytes: %d bytes, %v", len(msg), len(p), err)
		}
	}
	if err := c.Close(StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := o.conns.Load(); n != 1 {
		t.Errorf("%d TCP connections, want 1", n)
	}
}

// testDialH2Many: 100 WebSockets open at once share one connection, and
// each gets back its own sequence of messages. None starts its messages
// before all are dialed: the connection closes when its last WebSocket
// ends, so one that ran its course before another was dialed would leave
// that one a new connection.
func testDialH2Many(t *testing.T, tls bool) {
	o := newH2Origin(t, tls, acceptEcho)
	const conns, msgs = 100, 20
	var wg, dialed sync.WaitGroup
	dialed.Add(conns)
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			opts := o.opts
			c, _, err := Dial(ctx, o.url, &opts)
			dialed.Done()
			if err != nil {
				errs <- err
				return
			}
			defer c.CloseNow()
			dialed.Wait()
			for j := range msgs {
				msg := fmt.Sprintf("conn %d message %d %s", i, j, strings.Repeat("x", j*100))
				if err := c.Write(ctx, MessageText, []byte(msg)); err != nil {
					errs <- err
					return
				}
				_, p, err := c.Read(ctx)
				if err != nil {
					errs <- err
					return
				}
				if string(p) != msg {
					errs <- fmt.Errorf("conn %d got %.40q, want %.40q", i, p, msg)
					return
				}
			}
			if err := c.Close(StatusNormalClosure, ""); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := o.conns.Load(); n != 1 {
		t.Errorf("%d TCP connections for %d WebSockets, want 1", n, conns)
	}
}

// testDialH2Reset: a stream the server resets ends that Conn alone.
func testDialH2Reset(t *testing.T, tls bool) {
	o := newH2Origin(t, tls, func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		if r.URL.Query().Get("reset") == "" {
			echo(c)
			return
		}
		c.Read(context.Background())
		panic(http.ErrAbortHandler) // resets the stream
	})
	keep, _ := o.dial(t, nil)
	opts := o.opts
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	doomed, _, err := Dial(ctx, o.url+"/?reset=1", &opts)
	if err != nil {
		t.Fatal(err)
	}
	defer doomed.CloseNow()
	if err := doomed.Write(ctx, MessageText, []byte("reset me")); err != nil {
		t.Fatal(err)
	}
	_, _, err = doomed.Read(ctx)
	if err == nil || !strings.Contains(err.Error(), "reset the stream") || CloseStatus(err) != StatusAbnormalClosure {
		t.Errorf("Read of the reset stream: %v, want the reset and 1006", err)
	}
	for i := range 3 {
		msg := fmt.Sprint("still here ", i)
		if err := keep.Write(ctx, MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, p, err := keep.Read(ctx); err != nil || string(p) != msg {
			t.Fatalf("the other stream: %q, %v", p, err)
		}
	}
	if n := o.conns.Load(); n != 1 {
		t.Errorf("%d TCP connections, want 1", n)
	}
}

// testDialH2Context: a context that ends during a blocked Read cancels
// the Read alone; the stream, and the Conn, go on.
func testDialH2Context(t *testing.T, tls bool) {
	o := newH2Origin(t, tls, acceptEcho)
	c, _ := o.dial(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := c.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with an ending context: %v, want DeadlineExceeded", err)
	}
	bg := context.Background()
	if err := c.Write(bg, MessageText, []byte("after")); err != nil {
		t.Fatalf("Write after a canceled Read: %v", err)
	}
	if _, p, err := c.Read(bg); err != nil || string(p) != "after" {
		t.Fatalf("Read after a canceled Read: %q, %v", p, err)
	}
}

// testDialH2Refused: a refusal is ErrHandshake with the server's status
// and words, those of our own Accept without a second prefix, as over
// HTTP/1.1 (TestDialRefusedByAccept); the connection stays for others.
func testDialH2Refused(t *testing.T, tls bool) {
	o := newH2Origin(t, tls, func(w http.ResponseWriter, r *http.Request) {
		Accept(w, r, nil)
	})
	opts := o.opts
	opts.Header = http.Header{"Origin": {"https://elsewhere.example"}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := Dial(ctx, o.url, &opts)
	if !errors.Is(err, ErrHandshake) || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("Dial: %v, %v; want ErrHandshake and a 403 response", err, resp)
	}
	want := `websocket: handshake failed: server answered "403 Forbidden", not 200: "origin \"https://elsewhere.example\" not allowed"`
	if err.Error() != want {
		t.Errorf("Dial: %v\nwant %s", err, want)
	}
}

// TestDialHTTP2Unavailable: a server that does not offer extended
// CONNECT (Go's, without GODEBUG=http2xconnect=1; or one without h2c)
// gives an error with HTTP2Required, HTTP/1.1 with HTTP2Preferred.
func TestDialHTTP2Unavailable(t *testing.T) {
	t.Parallel()
	if godebugtest.Has(xconnect) || strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		t.Skip("the server offers extended CONNECT here")
	}
	for _, tt := range []struct {
		name string
		tls  bool
		h2c  bool
		why  string
	}{
		{"h2 without extended CONNECT", true, true, "does not offer extended CONNECT"},
		{"h2c without extended CONNECT", false, true, "does not offer extended CONNECT"},
		{"HTTP/1.1 only", false, false, "does not speak HTTP/2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := acceptEcho
			var o *h2Origin
			if tt.h2c || tt.tls {
				o = newH2Origin(t, tt.tls, h)
			} else {
				o = &h2Origin{Server: httptest.NewUnstartedServer(http.HandlerFunc(h))}
				o.Config.ConnState = func(_ net.Conn, st http.ConnState) {
					if st == http.StateNew {
						o.conns.Add(1)
					}
				}
				o.Start()
				o.url = wsURL(o.Server)
				t.Cleanup(o.Close)
			}
			// Each origin has a transport of its own: the HTTP client of
			// the TLS server, a fresh one for the others, so that the
			// refusals other tests meet are not this one's.
			opts := o.opts
			if opts.HTTPClient == nil {
				opts.HTTPClient = &http.Client{Transport: &http.Transport{}}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conns := func(step string, want int32) {
				t.Helper()
				// The server counts a connection when it accepts it,
				// which may come after the client gave up on it.
				deadline := time.Now().Add(2 * time.Second)
				for o.conns.Load() < want && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				if got := o.conns.Load(); got != want {
					t.Errorf("%s: the server accepted %d connections in all, want %d", step, got, want)
				}
			}
			preferred := func(step string) {
				t.Helper()
				opts.HTTP2 = HTTP2Preferred
				c, resp, err := Dial(ctx, o.url, &opts)
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				defer c.CloseNow()
				if resp.ProtoMajor != 1 || resp.StatusCode != http.StatusSwitchingProtocols {
					t.Errorf("%s: fell back to %s %q, want HTTP/1.1 101", step, resp.Proto, resp.Status)
				}
				handshakeEcho(t, c, "over HTTP/1.1")
				c.Close(StatusNormalClosure, "")
			}
			required := func(step string) {
				t.Helper()
				opts.HTTP2 = HTTP2Required
				_, _, err := Dial(ctx, o.url, &opts)
				if !errors.Is(err, ErrHTTP2Unavailable) || !strings.Contains(err.Error(), tt.why) {
					t.Fatalf("%s: %v, want ErrHTTP2Unavailable saying %q", step, err, tt.why)
				}
			}
			// The first dial asks, and falls back on a second connection.
			preferred("HTTP2Preferred, first")
			conns("HTTP2Preferred, first", 2)
			// The refusal is remembered: HTTP/1.1 at once.
			preferred("HTTP2Preferred, again")
			conns("HTTP2Preferred, again", 3)
			// HTTP2Required asks every time.
			required("HTTP2Required")
			conns("HTTP2Required", 4)
			// Once the refusal is old, HTTP2Preferred asks again.
			h2Refusals.mu.Lock()
			for k := range h2Refusals.until {
				if k.tr == opts.HTTPClient.Transport {
					h2Refusals.until[k] = time.Now().Add(-time.Second)
				}
			}
			h2Refusals.mu.Unlock()
			preferred("HTTP2Preferred, refusal expired")
			conns("HTTP2Preferred, refusal expired", 6)
			opts.HTTPClient.CloseIdleConnections()
		})
	}
}

// TestDialHTTP2PrefaceDropped: an HTTP/1.1 server that drops a request it
// cannot parse closes the connection on Dial's HTTP/2 preface over
// cleartext, with the rest of the preface unread, which the client meets
// as a reset (ECONNRESET) rather than an end. That is a server without
// HTTP/2 as much as one answering 400 is: HTTP2Preferred goes on over
// HTTP/1.1, HTTP2Required fails with ErrHTTP2Unavailable. A reset failed
// both as a lost connection, where a server closing after reading it all
// (an end of the stream) was taken for one without HTTP/2.
func TestDialHTTP2PrefaceDropped(t *testing.T) {
	t.Parallel()
	s := httptest.NewUnstartedServer(http.HandlerFunc(acceptEcho))
	var dropped atomic.Int32
	s.Listener = prefaceDropper{s.Listener, &dropped}
	s.Start()
	t.Cleanup(s.Close)
	opts := DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{}}, HTTP2: HTTP2Preferred}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := Dial(ctx, wsURL(s), &opts)
	if err != nil {
		t.Fatalf("HTTP2Preferred: %v, want a fall back to HTTP/1.1", err)
	}
	defer c.CloseNow()
	if resp.Proto != "HTTP/1.1" || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("HTTP2Preferred: %s %q, want HTTP/1.1 101", resp.Proto, resp.Status)
	}
	handshakeEcho(t, c, "over HTTP/1.1")
	c.Close(StatusNormalClosure, "")
	// HTTP2Required asks again, and says why it cannot have HTTP/2.
	opts.HTTP2 = HTTP2Required
	_, _, err = Dial(ctx, wsURL(s), &opts)
	if want := "websocket: HTTP/2 unavailable: the server does not speak HTTP/2 over cleartext: "; !errors.Is(err, ErrHTTP2Unavailable) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("HTTP2Required: %v, want an error starting %q", err, want)
	}
	if n := dropped.Load(); n != 2 {
		t.Errorf("%d connections dropped on the preface, want 2", n)
	}
	opts.HTTPClient.CloseIdleConnections()
}

// prefaceDropper is a listener that closes every connection opening with
// HTTP/2's preface once it has read its first 4 bytes, and hands the
// others on, those bytes put back.
type prefaceDropper struct {
	net.Listener
	dropped *atomic.Int32
}

func (l prefaceDropper) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		head := make([]byte, 4)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(nc, head); err != nil || string(head) == "PRI " {
			// Counted before the close the client sees, which may end
			// its Dial and the test's count at once.
			l.dropped.Add(1)
			nc.Close()
			continue
		}
		nc.SetReadDeadline(time.Time{})
		return &prefixedConn{nc, head}, nil
	}
}

// prefixedConn is a connection whose first reads return head.
type prefixedConn struct {
	net.Conn
	head []byte
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// testDialH2Mux: which ServeMux patterns an extended CONNECT matches. "GET
// /ws" does not (CONNECT is another method): register "/ws", or "GET /ws"
// and "CONNECT /ws" both.
func testDialH2Mux(t *testing.T, tls bool) {
	accept := acceptEcho
	mux := http.NewServeMux()
	mux.HandleFunc("/any", accept)
	mux.HandleFunc("GET /get", accept)
	mux.HandleFunc("GET /both", accept)
	mux.HandleFunc("CONNECT /both", accept)
	o := newH2Origin(t, tls, mux.ServeHTTP)
	for _, tt := range []struct {
		path   string
		status int
	}{
		{"/any", http.StatusOK},
		{"/get", http.StatusMethodNotAllowed},
		{"/both", http.StatusOK},
	} {
		opts := o.opts
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := Dial(ctx, o.url+tt.path, &opts)
		cancel()
		if resp == nil || resp.StatusCode != tt.status {
			t.Errorf("%s: %v, %v; want status %d", tt.path, resp, err, tt.status)
		}
		if c != nil {
			handshakeEcho(t, c, "via "+tt.path)
			c.Close(StatusNormalClosure, "")
		}
	}
}

// testDialH2PageAndSocket: one handler serves its page and, by
// IsUpgradeRequest, its WebSocket at the same address over HTTP/2 as over
// HTTP/1.1 (TestPageAndSocketOnePath). Over h2c, the page's GET comes
// over HTTP/1.1.
func testDialH2PageAndSocket(t *testing.T, tls bool) {
	o := newH2Origin(t, tls, pageOrSocket)
	proto := "HTTP/1.1"
	if tls {
		proto = "HTTP/2.0"
	}
	testPageOrSocket(t, o.Client(), o.url+"/ws", o.opts, proto)
}

// testDialH2Redirect: a handshake redirected over HTTP/2 (ServeMux sends
// /ws to /ws/) fails with HTTP2Required, which does not follow redirects;
// with HTTP2Preferred, Dial goes on over HTTP/1.1, whose client follows
// it, as with HTTP2Disabled. It failed as with HTTP2Required.
func testDialH2Redirect(t *testing.T, tls bool) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws/", acceptEcho)
	o := newH2Origin(t, tls, mux.ServeHTTP)
	// The redirect's status is the ServeMux's: 307 since Go 1.26, which
	// keeps CONNECT's method; 301 before.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodConnect, "/ws", nil))
	redirected := fmt.Sprintf(`websocket: handshake failed: server answered "%d %s", not 200`, rec.Code, http.StatusText(rec.Code))
	for _, tt := range []struct {
		mode  HTTP2Mode
		proto string // "" for a failed Dial
	}{
		{HTTP2Disabled, "HTTP/1.1"},
		{HTTP2Preferred, "HTTP/1.1"},
		{HTTP2Required, ""},
	} {
		opts := o.opts
		opts.HTTP2 = tt.mode
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := Dial(ctx, o.url+"/ws", &opts)
		cancel()
		if tt.proto == "" {
			if err == nil || err.Error() != redirected {
				t.Errorf("HTTP2 mode %v: Dial: %v, want %s", tt.mode, err, redirected)
			}
			continue
		}
		if err != nil {
			t.Errorf("HTTP2 mode %d: Dial: %v", tt.mode, err)
			continue
		}
		if resp.Proto != tt.proto || resp.Request.URL.Path != "/ws/" {
			t.Errorf("HTTP2 mode %d: answered over %s for %s, want %s for /ws/", tt.mode, resp.Proto, resp.Request.URL.Path, tt.proto)
		}
		handshakeEcho(t, c, "redirected")
		c.Close(StatusNormalClosure, "")
	}
}

// testDialH2Userinfo: the user and password in the URL go as Basic
// Authorization over HTTP/2 too, unless Header sets Authorization (in
// any case of its name), as over HTTP/1.1 (TestDialURLUserinfo).
func testDialH2Userinfo(t *testing.T, tls bool) {
	got := make(chan []string, 1)
	o := newH2Origin(t, tls, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Values("Authorization")
		acceptEcho(w, r)
	})
	scheme, host, _ := strings.Cut(o.url, "://")
	for _, tt := range []struct {
		userinfo string
		header   http.Header
		want     []string
	}{
		{"user:pa%20ss@", nil, []string{"Basic dXNlcjpwYSBzcw=="}}, // user:pa ss
		{"user@", nil, []string{"Basic dXNlcjo="}},                 // user:
		{"user:pass@", http.Header{"Authorization": {"Bearer token"}}, []string{"Bearer token"}},
		{"user:pass@", http.Header{"authorization": {"Bearer token"}}, []string{"Bearer token"}},
		{"", nil, nil},
	} {
		opts := o.opts
		opts.Header = tt.header
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, _, err := Dial(ctx, scheme+"://"+tt.userinfo+host+"/ws", &opts)
		cancel()
		if err != nil {
			t.Fatalf("%q: Dial: %v", tt.userinfo, err)
		}
		c.CloseNow()
		if a := <-got; !slices.Equal(a, tt.want) {
			t.Errorf("%q, Header %v: server got Authorization %q, want %q", tt.userinfo, tt.header, a, tt.want)
		}
	}
}

// testDialH2HeaderHost: a Host in Header is sent as :authority, as
// DialOptions.Host is, as over HTTP/1.1 (TestDialHeaderHost).
func testDialH2HeaderHost(t *testing.T, tls bool) {
	got := make(chan *http.Request, 1)
	o := newH2Origin(t, tls, func(w http.ResponseWriter, r *http.Request) {
		got <- r
		acceptEcho(w, r)
	})
	origin := o.Listener.Addr().String()
	for _, tt := range []struct {
		header http.Header
		host   string
		want   string
	}{
		{http.Header{"Host": {"chat.example.com"}}, "", "chat.example.com"},
		{http.Header{"host": {"chat.example.com:8443"}}, "", "chat.example.com:8443"},
		{http.Header{"Host": {"chat.example.com"}}, "chat.example.com", "chat.example.com"},
		{nil, "", origin},
	} {
		c, _ := o.dial(t, func(opts *DialOptions) { opts.Header, opts.Host = tt.header, tt.host })
		c.CloseNow()
		r := <-got
		if r.Host != tt.want {
			t.Errorf("Header %v, Host %q: server got Host %q, want %q", tt.header, tt.host, r.Host, tt.want)
		}
		if v, ok := r.Header["Host"]; ok {
			t.Errorf("Header %v, Host %q: server got a Host field %q besides :authority", tt.header, tt.host, v)
		}
	}
}

// TestDialHTTP2Proxy: a proxy rules HTTP/2 out, HTTP2Preferred going
// through the proxy's tunnel over HTTP/1.1 and HTTP2Required failing with
// ErrHTTP2Unavailable; but a Proxy function that fails (as
// http.ProxyFromEnvironment does for a malformed HTTPS_PROXY) fails Dial
// with its error in every mode. HTTP2Required said "a proxy applies".
func TestDialHTTP2Proxy(t *testing.T) {
	t.Parallel()
	s := startTCPServer(t, scriptedHandshake(nil, func(accept string) string { return response101(accept) }))
	proxy, seen := startProxy(t)
	for _, mode := range []HTTP2Mode{HTTP2Preferred, HTTP2Required} {
		tr := &http.Transport{Proxy: http.ProxyURL(proxy)}
		r := dialBounded(t, s, context.Background(), "ws://"+s.addr()+"/x", &DialOptions{HTTPClient: &http.Client{Transport: tr}, HTTP2: mode})
		switch mode {
		case HTTP2Preferred:
			if r.err != nil || r.resp.ProtoMajor != 1 {
				t.Fatalf("HTTP2Preferred: Dial: %v, want HTTP/1.1 through the proxy", r.err)
			}
			r.c.CloseNow()
			if p := <-seen; p.Method != http.MethodConnect || p.RequestURI != s.addr() {
				t.Errorf("HTTP2Preferred: proxy saw %s %s, want CONNECT %s", p.Method, p.RequestURI, s.addr())
			}
		case HTTP2Required:
			if want := "websocket: HTTP/2 unavailable: a proxy applies to " + s.addr(); !errors.Is(r.err, ErrHTTP2Unavailable) || r.err.Error() != want {
				t.Errorf("HTTP2Required: Dial: %v, want %s", r.err, want)
			}
		}
	}
	for _, mode := range []HTTP2Mode{HTTP2Disabled, HTTP2Preferred, HTTP2Required} {
		for _, target := range []string{"ws://" + s.addr() + "/x", "wss://" + s.addr() + "/x"} {
			tr := &http.Transport{Proxy: func(*http.Request) (*url.URL, error) {
				return nil, errors.New("no proxy configuration")
			}}
			r := dialBounded(t, s, context.Background(), target, &DialOptions{HTTPClient: &http.Client{Transport: tr}, HTTP2: mode})
			if want := "websocket: dial " + target + ": no proxy configuration"; r.err == nil || r.err.Error() != want || errors.Is(r.err, ErrHTTP2Unavailable) {
				t.Errorf("HTTP2 %d, %s: Dial: %v, want %s", mode, target, r.err, want)
			}
		}
	}
	if n := len(seen); n != 0 {
		t.Errorf("the proxy saw %d more requests", n)
	}
}

func TestHTTP2ModeText(t *testing.T) {
	t.Parallel()
	for m, name := range map[HTTP2Mode]string{HTTP2Disabled: "disabled", HTTP2Preferred: "preferred", HTTP2Required: "required"} {
		b, err := m.MarshalText()
		if err != nil || string(b) != name || m.String() != name {
			t.Errorf("%d: MarshalText %q, %v, String %q; want %q", int(m), b, err, m.String(), name)
		}
		var got HTTP2Mode
		if err := got.UnmarshalText(b); err != nil || got != m {
			t.Errorf("round trip of %v through %q: %v, %v", m, b, got, err)
		}
	}
	if s := HTTP2Mode(7).String(); s != "HTTP2Mode(7)" {
		t.Errorf("HTTP2Mode(7).String() = %q", s)
	}
	if _, err := HTTP2Mode(7).MarshalText(); err == nil {
		t.Error("HTTP2Mode(7).MarshalText accepted")
	}
	var m HTTP2Mode
	if err := m.UnmarshalText([]byte("h2")); err == nil || err.Error() != `websocket: HTTP/2 mode "h2" is not disabled, preferred or required` {
		t.Errorf(`UnmarshalText("h2"): %v`, err)
	}
}
