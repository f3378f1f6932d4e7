package websocket

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpServer is a loopback listener that runs serve on every connection it
// accepts. When the test ends, the listener and every connection are
// closed and every serve has returned.
type tcpServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	done  bool
}

func startTCPServer(t *testing.T, serve func(net.Conn)) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.done {
				s.mu.Unlock()
				nc.Close()
				return
			}
			s.conns = append(s.conns, nc)
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				serve(nc)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *tcpServer) addr() string { return s.ln.Addr().String() }

// closeConns closes the connections accepted so far.
func (s *tcpServer) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, nc := range s.conns {
		nc.Close()
	}
}

func (s *tcpServer) close() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.ln.Close()
	s.closeConns()
	s.wg.Wait()
}

// scriptedHandshake returns a serve function that reads a handshake
// request, sends it on reqs (when not nil), writes what respond makes of
// the Sec-WebSocket-Accept the request calls for (nothing when it returns
// ""), and then reads until the client goes away, as a server waiting for
// frames would.
func scriptedHandshake(reqs chan<- *http.Request, respond func(accept string) string) func(net.Conn) {
	return func(nc net.Conn) {
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if reqs != nil {
			reqs <- req
		}
		if resp := respond(acceptKey(req.Header.Get("Sec-WebSocket-Key"))); resp != "" {
			if _, err := io.WriteString(nc, resp); err != nil {
				return
			}
		}
		io.Copy(io.Discard, br)
	}
}

// response101 is a valid handshake response with accept and extra header
// lines.
func response101(accept string, extra ...string) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Accept: " + accept + "\r\n")
	for _, line := range extra {
		b.WriteString(line + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// dialResult is what Dial returned.
type dialResult struct {
	c    *Conn
	resp *http.Response
	err  error
}

// dialAsync runs Dial in a goroutine.
func dialAsync(ctx context.Context, rawURL string, opts *DialOptions) <-chan dialResult {
	done := make(chan dialResult, 1)
	go func() {
		c, resp, err := Dial(ctx, rawURL, opts)
		done <- dialResult{c, resp, err}
	}()
	return done
}

// awaitDial waits for a Dial started by dialAsync. If it is still blocked
// when limit is closed, the test fails, and the server's connections are
// closed to let it return.
func awaitDial(t *testing.T, s *tcpServer, done <-chan dialResult, limit <-chan struct{}) dialResult {
	t.Helper()
	var r dialResult
	select {
	case r = <-done:
	default:
		select {
		case r = <-done:
		case <-limit:
			t.Errorf("Dial still blocked after 10s")
			s.closeConns()
			r = <-done
		}
	}
	if r.c != nil {
		t.Cleanup(func() { r.c.CloseNow() })
	}
	return r
}

// dialBounded runs Dial against s and waits at most 10 seconds for it.
func dialBounded(t *testing.T, s *tcpServer, ctx context.Context, rawURL string, opts *DialOptions) dialResult {
	t.Helper()
	limit, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return awaitDial(t, s, dialAsync(ctx, rawURL, opts), limit.Done())
}

// nextRequest returns the next request the server read.
func nextRequest(t *testing.T, reqs <-chan *http.Request) *http.Request {
	t.Helper()
	select {
	case r := <-reqs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the server read no request within 10s")
		return nil
	}
}

// TestDialRequest checks the handshake request, sent by Dial itself (nil
// HTTPClient, a ws:// URL, no proxy) and through an HTTP client.
func TestDialRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		client *http.Client
	}{{"direct", nil}, {"client", &http.Client{}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testDialRequest(t, tc.client)
		})
	}
}

func testDialRequest(t *testing.T, client *http.Client) {
	reqs := make(chan *http.Request, 2)
	s := startTCPServer(t, scriptedHandshake(reqs, func(accept string) string {
		return response101(accept, "Sec-WebSocket-Protocol: superchat")
	}))
	opts := &DialOptions{
		HTTPClient: client,
		Header: http.Header{
			"Authorization": {"Bearer token"},
			"X-Multi":       {"one", "two"},
			"Origin":        {"https://example.com"},
		},
		Host:         "chat.example.com",
		Subprotocols: []string{"chat", "superchat"},
	}
	var keys []string
	for i := range 2 {
		r := dialBounded(t, s, context.Background(), "ws://"+s.addr()+"/chat?room=1", opts)
		if r.err != nil {
			t.Fatalf("Dial: %v", r.err)
		}
		if r.resp.StatusCode != 101 {
			t.Errorf("response status %d", r.resp.StatusCode)
		}
		if got := r.c.Subprotocol(); got != "superchat" {
			t.Errorf("Subprotocol() = %q, want superchat", got)
		}
		req := nextRequest(t, reqs)
		if req.Method != "GET" || req.RequestURI != "/chat?room=1" || req.Proto != "HTTP/1.1" {
			t.Errorf("request line %s %s %s, want GET /chat?room=1 HTTP/1.1", req.Method, req.RequestURI, req.Proto)
		}
		if req.Host != "chat.example.com" {
			t.Errorf("Host %q, want chat.example.com", req.Host)
		}
		for name, want := range map[string][]string{
			"Upgrade":                {"websocket"},
			"Connection":             {"Upgrade"},
			"Sec-Websocket-Version":  {"13"},
			"Sec-Websocket-Protocol": {"chat, superchat"},
			"Authorization":          {"Bearer token"},
			"X-Multi":                {"one", "two"},
			"Origin":                 {"https://example.com"},
			"User-Agent":             {"Go-http-client/1.1"},
		} {
			if got := req.Header.Values(name); !slices.Equal(got, want) {
				t.Errorf("dial %d: %s %q, want %q", i, name, got, want)
			}
		}
		if got := req.Header.Values("Sec-WebSocket-Extensions"); len(got) != 0 {
			t.Errorf("dial %d: Sec-WebSocket-Extensions %q offered", i, got)
		}
		k := req.Header.Values("Sec-WebSocket-Key")
		if len(k) != 1 {
			t.Fatalf("dial %d: Sec-WebSocket-Key %q", i, k)
		}
		if b, err := base64.StdEncoding.Strict().DecodeString(k[0]); err != nil || len(b) != 16 {
			t.Errorf("dial %d: Sec-WebSocket-Key %q is not base64 of 16 bytes", i, k[0])
		}
		keys = append(keys, k[0])
		r.c.CloseNow()
	}
	if keys[0] == keys[1] {
		t.Errorf("two dials sent the same key %q", keys[0])
	}
}

func TestDialNoSubprotocol(t *testing.T) {
	t.Parallel()
	reqs := make(chan *http.Request, 1)
	s := startTCPServer(t, scriptedHandshake(reqs, func(accept string) string { return response101(accept) }))
	r := dialBounded(t, s, context.Background(), "ws://"+s.addr(), &DialOptions{Subprotocols: []string{"chat"}})
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	if got := r.c.Subprotocol(); got != "" {
		t.Errorf("Subprotocol() = %q, want \"\"", got)
	}
	if req := nextRequest(t, reqs); req.RequestURI != "/" {
		t.Errorf("request target %q, want /", req.RequestURI)
	}
}

// countingTransport returns a transport whose dials are counted in n.
func countingTransport(n *atomic.Int32) *http.Transport {
	var d net.Dialer
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		return d.DialContext(ctx, network, addr)
	}}
}

func TestDialReservedHeader(t *testing.T) {
	t.Parallel()
	s := startTCPServer(t, scriptedHandshake(nil, func(accept string) string { return response101(accept) }))
	for _, name := range []string{
		"Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
		"Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "Sec-WebSocket-Accept",
		"sec-websocket-key", "CONNECTION",
	} {
		var dials atomic.Int32
		r := dialBounded(t, s, context.Background(), "ws://"+s.addr(), &DialOptions{
			HTTPClient: &http.Client{Transport: countingTransport(&dials)},
			Header:     http.Header{name: {"x"}},
		})
		if r.err == nil {
			t.Errorf("Dial with %s in Header succeeded", name)
			continue
		}
		if !strings.Contains(strings.ToLower(r.err.Error()), strings.ToLower(name)) {
			t.Errorf("Dial with %s in Header: error %q does not name it", name, r.err)
		}
		if n := dials.Load(); n != 0 {
			t.Errorf("Dial with %s in Header dialed %d times", name, n)
		}
	}
}

func TestDialResponseRefused(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("0123456789abcdef", 128) // 2 KiB
	tests := []struct {
		name     string
		offered  []string
		respond  func(accept string) string
		status   int
		keyword  string // the error must contain it
		wantBody string
	}{
		{
			name:     "200",
			respond:  func(string) string { return "HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\nnot a websocket server" },
			status:   200,
			keyword:  "200 OK",
			wantBody: "not a websocket server",
		},
		{
			name: "403 with a long body",
			respond: func(string) string {
				return fmt.Sprintf("HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n%s", len(long), long)
			},
			status:   403,
			keyword:  "403 Forbidden",
			wantBody: long[:1024],
		},
		{
			name:     "404",
			respond:  func(string) string { return "HTTP/1.1 404 Not Found\r\nContent-Length: 17\r\n\r\nno such endpoint\n" },
			status:   404,
			keyword:  "404 Not Found",
			wantBody: "no such endpoint\n",
		},
		{
			name: "Upgrade missing",
			respond: func(accept string) string {
				return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
			},
			status:  101,
			keyword: "Upgrade header",
		},
		{
			name: "Upgrade not websocket",
			respond: func(accept string) string {
				return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
			},
			status:  101,
			keyword: "Upgrade header",
		},
		{
			name: "Connection missing",
			respond: func(accept string) string {
				return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
			},
			status:  101,
			keyword: "Connection header",
		},
		{
			name:    "accept of another key",
			respond: func(string) string { return response101(sampleAccept) },
			status:  101,
			keyword: "Sec-WebSocket-Accept",
		},
		{
			name: "accept missing",
			respond: func(string) string {
				return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
			},
			status:  101,
			keyword: "Sec-WebSocket-Accept",
		},
		{
			name:    "accept twice",
			respond: func(accept string) string { return response101(accept, "Sec-WebSocket-Accept: "+accept) },
			status:  101,
			keyword: "Sec-WebSocket-Accept",
		},
		{
			name:    "subprotocol not offered",
			offered: []string{"chat"},
			respond: func(accept string) string { return response101(accept, "Sec-WebSocket-Protocol: superchat") },
			status:  101,
			keyword: "subprotocol",
		},
		{
			name:    "subprotocol when none offered",
			respond: func(accept string) string { return response101(accept, "Sec-WebSocket-Protocol: chat") },
			status:  101,
			keyword: "subprotocol",
		},
		{
			name:    "two subprotocols in one header",
			offered: []string{"a", "b"},
			respond: func(accept string) string { return response101(accept, "Sec-WebSocket-Protocol: a, b") },
			status:  101,
			keyword: "subprotocol",
		},
		{
			name:    "two subprotocol headers",
			offered: []string{"a", "b"},
			respond: func(accept string) string {
				return response101(accept, "Sec-WebSocket-Protocol: a", "Sec-WebSocket-Protocol: b")
			},
			status:  101,
			keyword: "Sec-WebSocket-Protocol",
		},
		{
			name:    "permessage-deflate",
			respond: func(accept string) string { return response101(accept, "Sec-WebSocket-Extensions: permessage-deflate") },
			status:  101,
			keyword: "extension",
		},
		{
			name:    "unknown extension",
			respond: func(accept string) string { return response101(accept, "Sec-WebSocket-Extensions: x-foo") },
			status:  101,
			keyword: "extension",
		},
		{
			// The parser's error had a prefix of its own, which made two.
			name: "malformed extension",
			respond: func(accept string) string {
				return response101(accept, "Sec-WebSocket-Extensions: permessage-deflate; =")
			},
			status:  101,
			keyword: `handshake failed: Sec-WebSocket-Extensions "permessage-deflate; =": parameter name expected at byte 20`,
		},
		{
			// §4.1: Upgrade must be "websocket"; more protocols make a stack.
			name: "Upgrade naming another protocol too",
			respond: func(accept string) string {
				return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
			},
			status:  101,
			keyword: `handshake failed: response Upgrade header "websocket, h2c" names "h2c" beside websocket`,
		},
		{
			name: "Upgrade lines naming another protocol too",
			respond: func(accept string) string {
				return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo/2\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
			},
			status:  101,
			keyword: `response Upgrade header "foo/2, WebSocket" names "foo/2" beside websocket`,
		},
		{
			// RFC 9110 §15.2.2: 101 is HTTP/1.1's; Upgrade has no
			// meaning in another version.
			name: "101 of HTTP/1.0",
			respond: func(accept string) string {
				return "HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
			},
			status:  101,
			keyword: `handshake failed: server answered in "HTTP/1.0", a 101 needs HTTP/1.1`,
		},
		{
			name: "101 of HTTP/2.0",
			respond: func(accept string) string {
				return "HTTP/2.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
			},
			status:  101,
			keyword: `handshake failed: server answered in "HTTP/2.0", a 101 needs HTTP/1.1`,
		},
		{
			// The error quoted all 100 KB of it.
			name: "huge Upgrade header",
			respond: func(accept string) string {
				return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + strings.Repeat("a", 100_000) + "\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
			},
			status:  101,
			keyword: `Upgrade header "` + strings.Repeat("a", maxQuoted) + `"... lacks`,
		},
	}
	// All the dials run at once, under one time limit.
	servers := make([]*tcpServer, len(tests))
	dials := make([]<-chan dialResult, len(tests))
	for i, tt := range tests {
		servers[i] = startTCPServer(t, scriptedHandshake(nil, tt.respond))
		dials[i] = dialAsync(context.Background(), "ws://"+servers[i].addr(), &DialOptions{Subprotocols: tt.offered})
	}
	limit, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := awaitDial(t, servers[i], dials[i], limit.Done())
			if r.err == nil {
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(r.err, ErrHandshake) {
				t.Errorf("error %v does not wrap ErrHandshake", r.err)
			}
			if !strings.Contains(r.err.Error(), tt.keyword) {
				t.Errorf("error %q does not mention %q", r.err, tt.keyword)
			}
			if n := strings.Count(r.err.Error(), "websocket:"); n != 1 {
				t.Errorf("error %q has %d prefixes", r.err, n)
			}
			if r.resp == nil {
				t.Fatal("no response returned")
			}
			if r.resp.StatusCode != tt.status {
				t.Errorf("response status %d, want %d", r.resp.StatusCode, tt.status)
			}
			if tt.status != 101 {
				body, err := io.ReadAll(r.resp.Body)
				if err != nil {
					t.Errorf("reading the body: %v", err)
				}
				if string(body) != tt.wantBody {
					t.Errorf("body %q (%d bytes), want %q (%d bytes)", body, len(body), tt.wantBody, len(tt.wantBody))
				}
			}
		})
	}
}

func TestDialURL(t *testing.T) {
	t.Parallel()
	plain := echoServer(t, nil, nil)
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		echo(c)
	}))
	t.Cleanup(secure.Close)
	plainAddr := plain.Listener.Addr().String()
	secureAddr := secure.Listener.Addr().String()

	for _, u := range []string{
		"ws://" + plainAddr,
		"ws://" + plainAddr + "/path?q=1",
		"http://" + plainAddr,
		"WS://" + plainAddr,
		"wss://" + secureAddr,
		"https://" + secureAddr + "/path",
	} {
		c, _, err := Dial(context.Background(), u, &DialOptions{HTTPClient: secure.Client()})
		if err != nil {
			t.Errorf("Dial(%q): %v", u, err)
			continue
		}
		handshakeEcho(t, c, u)
		c.CloseNow()
	}

	for _, u := range []string{
		"ftp://" + plainAddr,
		"wss+unix://" + plainAddr,
		plainAddr,
		"ws://" + plainAddr + "/#frag",
		"ws://" + plainAddr + "/#",
		"ws:///path",
		"ws://",
		"ws://%zz",
	} {
		var dials atomic.Int32
		c, resp, err := Dial(context.Background(), u, &DialOptions{HTTPClient: &http.Client{Transport: countingTransport(&dials)}})
		if err == nil {
			c.CloseNow()
			t.Errorf("Dial(%q) succeeded", u)
			continue
		}
		if resp != nil {
			t.Errorf("Dial(%q) returned a response", u)
		}
		if n := dials.Load(); n != 0 {
			t.Errorf("Dial(%q) dialed %d times", u, n)
		}
	}
}

// silentServer reads requests and never answers.
func silentServer(t *testing.T) *tcpServer {
	return startTCPServer(t, scriptedHandshake(nil, func(string) string { return "" }))
}

func TestDialContextEnds(t *testing.T) {
	t.Parallel()
	s := silentServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r := dialBounded(t, s, ctx, "ws://"+s.addr(), nil)
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Errorf("Dial: %v, want an error wrapping context.DeadlineExceeded", r.err)
	}
	if r.resp != nil {
		t.Errorf("Dial returned a response")
	}
}

func TestDialClientTimeoutBoundsHandshake(t *testing.T) {
	t.Parallel()
	s := silentServer(t)
	r := dialBounded(t, s, context.Background(), "ws://"+s.addr(), &DialOptions{
		HTTPClient: &http.Client{Timeout: 200 * time.Millisecond},
	})
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Errorf("Dial: %v, want an error wrapping context.DeadlineExceeded", r.err)
	}
}

func TestDialContextCanceledAfterDial(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	c, _, err := Dial(ctx, wsURL(s), nil)
	if err != nil {
		cancel()
		t.Fatalf("Dial: %v", err)
	}
	defer c.CloseNow()
	handshakeEcho(t, c, "before cancel")
	cancel()
	time.Sleep(50 * time.Millisecond)
	handshakeEcho(t, c, "after cancel")
}

func TestDialHTTPClientTransport(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	var dials atomic.Int32
	client := &http.Client{Transport: countingTransport(&dials)}
	for i := range 3 {
		c := dialT(t, wsURL(s), &DialOptions{HTTPClient: client})
		handshakeEcho(t, c, "counted")
		if n := dials.Load(); n != int32(i+1) {
			t.Errorf("after %d dials the transport dialed %d times", i+1, n)
		}
	}
}

// TestDialHTTPClientDeprecatedDial: a transport that sets only the
// deprecated Dial and DialTLS hooks dials through them, and the connection
// they return is known to the Conn, so that a Read its context cuts short
// moves a deadline and leaves the connection open.
func TestDialHTTPClientDeprecatedDial(t *testing.T) {
	t.Parallel()
	plain := echoServer(t, nil, nil)
	secure := httptest.NewTLSServer(plain.Config.Handler)
	t.Cleanup(secure.Close)
	tlsConfig := secure.Client().Transport.(*http.Transport).TLSClientConfig
	d := &net.Dialer{Timeout: 5 * time.Second}
	var dials, tlsDials atomic.Int32
	tr := &http.Transport{}
	//lint:ignore SA1019 the deprecated hooks are what this test is about
	tr.Dial, tr.DialTLS = func(network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.Dial(network, addr)
	}, func(network, addr string) (net.Conn, error) {
		tlsDials.Add(1)
		return tls.DialWithDialer(d, network, addr, tlsConfig)
	}
	client := &http.Client{Transport: tr}
	for _, tt := range []struct {
		url                string
		wantDials, wantTLS int32
	}{
		{wsURL(plain), 1, 0},
		{wsURL(secure), 1, 1},
	} {
		c := dialT(t, tt.url, &DialOptions{HTTPClient: client})
		if n, m := dials.Load(), tlsDials.Load(); n != tt.wantDials || m != tt.wantTLS {
			t.Errorf("%s: Dial called %d times, DialTLS %d, want %d and %d", tt.url, n, m, tt.wantDials, tt.wantTLS)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, _, err := c.Read(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrClosed) {
			t.Fatalf("%s: Read with a timeout: %v, want DeadlineExceeded without ErrClosed", tt.url, err)
		}
		handshakeEcho(t, c, "after the timeout")
	}
}

func TestDialHTTPClientTimeoutLongLived(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), &DialOptions{HTTPClient: &http.Client{Timeout: 300 * time.Millisecond}})
	handshakeEcho(t, c, "within the timeout")
	time.Sleep(500 * time.Millisecond)
	handshakeEcho(t, c, "after the timeout")

	// A read blocked across the client's timeout is not cut either.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, p, err := c.Read(ctx)
		if err == nil && string(p) != "late" {
			err = fmt.Errorf("got %q, want late", p)
		}
		done <- err
	}()
	time.Sleep(400 * time.Millisecond)
	if err := c.Write(ctx, MessageText, []byte("late")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Read: %v", err)
	}
}

// countingRoundTripper is a RoundTripper that is not an *http.Transport.
type countingRoundTripper struct {
	n  atomic.Int32
	rt http.RoundTripper
}

func (c *countingRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

func TestDialCustomRoundTripper(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	rt := &countingRoundTripper{rt: http.DefaultTransport}
	c := dialT(t, wsURL(s), &DialOptions{HTTPClient: &http.Client{Transport: rt}})
	if n := rt.n.Load(); n != 1 {
		t.Errorf("RoundTrip called %d times, want 1", n)
	}
	handshakeEcho(t, c, "round tripper")
	handshakeEcho(t, c, "again")
	if err := c.Close(StatusNormalClosure, ""); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// A context that ends after the calls that used it returned must not touch
// the connection, whatever carries it.
func TestDialContextEndsAfterCall(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		client *http.Client
	}{
		{name: "http.Transport", client: nil},
		{name: "custom RoundTripper", client: &http.Client{Transport: &countingRoundTripper{rt: http.DefaultTransport}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := echoServer(t, nil, nil)
			c := dialT(t, wsURL(s), &DialOptions{HTTPClient: tt.client})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := c.Write(ctx, MessageText, []byte("first")); err != nil {
				cancel()
				t.Fatalf("Write: %v", err)
			}
			_, p, err := c.Read(ctx)
			cancel()
			if err != nil || string(p) != "first" {
				t.Fatalf("Read: %q, %v", p, err)
			}
			time.Sleep(50 * time.Millisecond)
			handshakeEcho(t, c, "second, with another context")
		})
	}
}

func TestDialRedirect(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle("/old", http.RedirectHandler("/new", http.StatusFound))
	mux.HandleFunc("/new", acceptEcho)
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	c := dialT(t, wsURL(s)+"/old", nil)
	handshakeEcho(t, c, "redirected")
}

// Frames the server sends right behind its 101 response, in the same
// write, are read as the first message.
func TestDialFrameWithResponse(t *testing.T) {
	t.Parallel()
	s := startTCPServer(t, scriptedHandshake(nil, func(accept string) string {
		return response101(accept) + "\x81\x05Hello" + "\x82\x02\x01\x02"
	}))
	r := dialBounded(t, s, context.Background(), "ws://"+s.addr(), nil)
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	for _, want := range []struct {
		typ MessageType
		p   string
	}{{MessageText, "Hello"}, {MessageBinary, "\x01\x02"}} {
		typ, p, err := r.c.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if typ != want.typ || string(p) != want.p {
			t.Errorf("Read: %v %q, want %v %q", typ, p, want.typ, want.p)
		}
	}
}

// Interim responses before the 101 are skipped, up to five
// (maxInterimResponses), and the frame that follows the 101 is read;
// a sixth fails the handshake. Dial reading the response itself and an
// HTTP client reading it count the same.
func TestDialInterimResponses(t *testing.T) {
	t.Parallel()
	interim := "HTTP/1.1 100 Continue\r\n\r\n" + strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n", 4)
	five := startTCPServer(t, scriptedHandshake(nil, func(accept string) string {
		return interim + response101(accept) + "\x81\x02hi"
	}))
	six := startTCPServer(t, scriptedHandshake(nil, func(accept string) string {
		return strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 6) + response101(accept)
	}))
	for _, client := range []bool{false, true} {
		r := dialBounded(t, five, context.Background(), "ws://"+five.addr(), dialPath(client))
		if r.err != nil {
			t.Fatalf("five (HTTPClient %v): Dial: %v", client, r.err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		typ, p, err := r.c.Read(ctx)
		cancel()
		if err != nil || typ != MessageText || string(p) != "hi" {
			t.Errorf("five (HTTPClient %v): Read: %v %q %v, want text \"hi\"", client, typ, p, err)
		}

		r = dialBounded(t, six, context.Background(), "ws://"+six.addr(), dialPath(client))
		if r.err == nil {
			t.Errorf("six (HTTPClient %v): Dial succeeded", client)
			continue
		}
		if want := "websocket: handshake failed: server sent more than 5 interim responses"; r.err.Error() != want || !errors.Is(r.err, ErrHandshake) {
			t.Errorf("six (HTTPClient %v): Dial: %v, want %q", client, r.err, want)
		}
	}
}

// A trace of the caller's with a Got1xxResponse hook does not lift the
// bound: httptrace composes the hooks so that the older one's answer is
// the one that counts, so Dial's error alone was dropped and the HTTP
// client skipped any number of interim responses, resetting its bound on
// the header with each, for as long as the server sent them.
func TestDialInterimResponsesCallerTrace(t *testing.T) {
	t.Parallel()
	s := startTCPServer(t, func(nc net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(nc)); err != nil {
			return
		}
		for {
			if _, err := io.WriteString(nc, "HTTP/1.1 103 Early Hints\r\n\r\n"); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	var seen atomic.Int32
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(int, textproto.MIMEHeader) error {
			seen.Add(1)
			return nil
		},
	})
	r := dialBounded(t, s, ctx, "ws://"+s.addr(), dialPath(true))
	if want := "websocket: handshake failed: server sent more than 5 interim responses"; r.err == nil || r.err.Error() != want || !errors.Is(r.err, ErrHandshake) {
		t.Errorf("Dial: %v, want %q", r.err, want)
	}
	if n := seen.Load(); n < 1 {
		t.Errorf("the caller's Got1xxResponse ran %d times", n)
	}
}

// The count of interim responses starts again with each request: a
// redirect and the 101 after it, each behind four, are eight in all.
func TestDialInterimResponsesRedirect(t *testing.T) {
	t.Parallel()
	interim := strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 4)
	s := startTCPServer(t, func(nc net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(nc))
		if err != nil {
			return
		}
		if req.URL.Path == "/old" {
			io.WriteString(nc, interim+"HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		io.WriteString(nc, interim+response101(acceptKey(req.Header.Get("Sec-WebSocket-Key"))))
		io.Copy(io.Discard, nc)
	})
	for _, client := range []bool{false, true} {
		if r := dialBounded(t, s, context.Background(), "ws://"+s.addr()+"/old", dialPath(client)); r.err != nil {
			t.Errorf("HTTPClient %v: Dial: %v", client, r.err)
		}
	}
}

// A server that closes without a byte of answer fails Dial with io.EOF,
// and one that closes within its answer with io.ErrUnexpectedEOF, in the
// same words whether Dial reads the response itself or an HTTP client
// does.
func TestDialClosedBeforeAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sent string
		want error
	}{{"", io.EOF}, {"HTTP/1.1 101 Swi", io.ErrUnexpectedEOF}} {
		s := startTCPServer(t, func(nc net.Conn) {
			if _, err := http.ReadRequest(bufio.NewReader(nc)); err == nil {
				io.WriteString(nc, tc.sent)
			}
			nc.Close()
		})
		for _, client := range []bool{false, true} {
			r := dialBounded(t, s, context.Background(), "ws://"+s.addr()+"/x", dialPath(client))
			if want := fmt.Sprintf("websocket: dial ws://%s/x: %v", s.addr(), tc.want); r.err == nil || r.err.Error() != want || !errors.Is(r.err, tc.want) {
				t.Errorf("%q, then a close (HTTPClient %v): %v; want %q", tc.sent, client, r.err, want)
			}
		}
	}
}

func TestDialTLS(t *testing.T) {
	t.Parallel()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{Subprotocols: []string{"chat"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		echo(c)
	}))
	// The dial that distrusts the certificate makes the server log.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	c, resp, err := Dial(context.Background(), "wss"+strings.TrimPrefix(s.URL, "https"), &DialOptions{
		HTTPClient:   s.Client(),
		Subprotocols: []string{"chat"},
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.CloseNow()
	if resp.TLS == nil {
		t.Error("response has no TLS state")
	}
	if c.Subprotocol() != "chat" {
		t.Errorf("Subprotocol() = %q", c.Subprotocol())
	}
	handshakeEcho(t, c, "over TLS")
	if err := c.Close(StatusNormalClosure, "done"); err != nil {
		t.Errorf("Close: %v", err)
	}

	// Without the server's certificate, the handshake fails.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, _, err := Dial(ctx, "wss"+strings.TrimPrefix(s.URL, "https"), nil); err == nil {
		c.CloseNow()
		t.Error("Dial trusted an unknown certificate")
	}
}

// startProxy starts an HTTP proxy on loopback that tunnels CONNECT
// requests and forwards others, and reports each request it reads.
func startProxy(t *testing.T) (*url.URL, <-chan *http.Request) {
	t.Helper()
	return startProxyWith(t, "")
}

// startProxyWith is startProxy whose 200 to CONNECT carries the header
// lines extra.
func startProxyWith(t *testing.T, extra string) (*url.URL, <-chan *http.Request) {
	t.Helper()
	seen := make(chan *http.Request, 8)
	s := startTCPServer(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		seen <- req
		var d net.Dialer
		if req.Method == http.MethodConnect {
			up, err := d.Dial("tcp", req.RequestURI)
			if err != nil {
				io.WriteString(nc, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
				return
			}
			if _, err := io.WriteString(nc, "HTTP/1.1 200 Connection established\r\n"+extra+"\r\n"); err != nil {
				up.Close()
				return
			}
			splice(nc, br, up)
			return
		}
		up, err := d.Dial("tcp", req.URL.Host)
		if err != nil {
			io.WriteString(nc, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			return
		}
		if err := req.Write(up); err != nil {
			up.Close()
			return
		}
		splice(nc, br, up)
	})
	return &url.URL{Scheme: "http", Host: s.addr()}, seen
}

// splice copies between a client connection (read through cr) and an
// upstream connection until either side ends, and closes both.
func splice(client net.Conn, cr io.Reader, up net.Conn) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(up, cr)
		up.Close()
		client.Close()
	}()
	io.Copy(client, up)
	client.Close()
	up.Close()
	wg.Wait()
}

// TestDialProxy: through an HTTP proxy, the handshake goes through a
// tunnel the proxy opens with CONNECT (RFC 6455 §4.1), for wss:// and
// ws:// alike: the proxy sees CONNECT host:port with the proxy URL's user
// and password as Basic Proxy-Authorization, the server the handshake
// alone, without them.
func TestDialProxy(t *testing.T) {
	t.Parallel()
	t.Run("wss", func(t *testing.T) {
		t.Parallel()
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			echo(c)
		}))
		t.Cleanup(s.Close)
		proxy, seen := startProxy(t)
		tr := s.Client().Transport.(*http.Transport).Clone()
		tr.Proxy = http.ProxyURL(proxy)
		addr := s.Listener.Addr().String()
		c := dialT(t, "wss://"+addr+"/tunnel", &DialOptions{HTTPClient: &http.Client{Transport: tr}})
		if r := <-seen; r.Method+" "+r.RequestURI != "CONNECT "+addr {
			t.Errorf("proxy saw %s %s, want CONNECT %s", r.Method, r.RequestURI, addr)
		}
		handshakeEcho(t, c, "through the tunnel")
		if err := c.Close(StatusNormalClosure, ""); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Run("ws", func(t *testing.T) {
		t.Parallel()
		reqs := make(chan *http.Request, 1)
		s := startTCPServer(t, scriptedHandshake(reqs, func(accept string) string { return response101(accept) }))
		proxy, seen := startProxy(t)
		proxy.User = url.UserPassword("u", "se cret")
		for _, tt := range []struct {
			name  string
			proxy func(*http.Request) (*url.URL, error)
		}{
			{"ProxyURL", http.ProxyURL(proxy)},
			{"for http only", func(r *http.Request) (*url.URL, error) {
				if r.URL.Scheme != "http" {
					return nil, fmt.Errorf("proxy asked for %s", r.URL)
				}
				return proxy, nil
			}},
		} {
			client := &http.Client{Transport: &http.Transport{Proxy: tt.proxy}}
			r := dialBounded(t, s, context.Background(), "ws://"+s.addr()+"/chat?room=1", &DialOptions{HTTPClient: client})
			if r.err != nil {
				t.Fatalf("%s: Dial: %v", tt.name, r.err)
			}
			r.c.CloseNow()
			p := <-seen
			if got, want := p.Method+" "+p.RequestURI, "CONNECT "+s.addr(); got != want {
				t.Errorf("%s: proxy saw %q, want %q", tt.name, got, want)
			}
			if got, want := p.Header.Values("Proxy-Authorization"), []string{"Basic dTpzZSBjcmV0"}; !slices.Equal(got, want) { // u:se cret
				t.Errorf("%s: proxy got Proxy-Authorization %q, want %q", tt.name, got, want)
			}
			req := nextRequest(t, reqs)
			if req.Method != "GET" || req.RequestURI != "/chat?room=1" || req.Host != s.addr() {
				t.Errorf("%s: server got %s %s with Host %q, want GET /chat?room=1 with Host %q", tt.name, req.Method, req.RequestURI, req.Host, s.addr())
			}
			if v, ok := req.Header["Proxy-Authorization"]; ok {
				t.Errorf("%s: server got Proxy-Authorization %q", tt.name, v)
			}
		}
	})
}

// TestDialProxyTunnels: a ws:// handshake goes through a tunnel from an
// HTTPS proxy too, and each hop of a redirect through a tunnel of its own.
func TestDialProxyTunnels(t *testing.T) {
	t.Parallel()
	paths := make(chan string, 4)
	mux := http.NewServeMux()
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		paths <- r.RequestURI
		http.Redirect(w, r, "/new", http.StatusFound)
	})
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		paths <- r.RequestURI
		acceptEcho(w, r)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	// The proxy, over TLS, opens tunnels and refuses anything else.
	seen := make(chan string, 4)
	p := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Method + " " + r.Host
		if r.Method != http.MethodConnect {
			http.Error(w, "tunnels only", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		if _, err := io.WriteString(nc, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			up.Close()
			nc.Close()
			return
		}
		splice(nc, brw, up)
	}))
	t.Cleanup(p.Close)
	tr := p.Client().Transport.(*http.Transport).Clone()
	proxy, _ := url.Parse(p.URL)
	tr.Proxy = http.ProxyURL(proxy)
	c, resp := dialTR(t, wsURL(s)+"/old", &DialOptions{HTTPClient: &http.Client{Transport: tr}})
	handshakeEcho(t, c, "through two tunnels")
	c.CloseNow()
	if got := resp.Request.URL.Path; got != "/new" {
		t.Errorf("response to %s, want /new", got)
	}
	origin := s.Listener.Addr().String()
	for range 2 {
		if got, want := <-seen, "CONNECT "+origin; got != want {
			t.Errorf("proxy saw %q, want %q", got, want)
		}
	}
	for _, want := range []string{"/old", "/new"} {
		if got := <-paths; got != want {
			t.Errorf("server saw %s, want %s", got, want)
		}
	}
}

// TestDialResponseBodyOnSuccess: the response of a successful Dial has an
// empty Body, whatever sent the handshake, and closing it, as callers do
// with any response, leaves the connection open.
func TestDialResponseBodyOnSuccess(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	for _, tt := range []struct {
		name   string
		client *http.Client
	}{
		{"direct", nil},
		{"http.Transport", &http.Client{}},
		{"custom RoundTripper", &http.Client{Transport: &countingRoundTripper{rt: http.DefaultTransport}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := Dial(ctx, wsURL(s), &DialOptions{HTTPClient: tt.client})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.CloseNow()
			if resp.Body != http.NoBody {
				t.Errorf("response Body is a %T, want http.NoBody", resp.Body)
			}
			if err := resp.Body.Close(); err != nil {
				t.Errorf("closing the response Body: %v", err)
			}
			handshakeEcho(t, c, "after the Body was closed")
		})
	}
}

// TestDialOptionsInvalid: a header that cannot be sent as given, a
// subprotocol that is not a token or comes twice, or an HTTP2 mode that
// is none of the three, fails Dial with the
// same error before anything is sent, whatever would send the handshake.
func TestDialOptionsInvalid(t *testing.T) {
	t.Parallel()
	reqs := make(chan *http.Request, 16)
	s := startTCPServer(t, scriptedHandshake(reqs, func(accept string) string { return response101(accept) }))
	for _, tt := range []struct {
		name string
		opts DialOptions
		want string
	}{
		{"CRLF in a name", DialOptions{Header: http.Header{"X-A\r\nX-B": {"v"}}},
			`websocket: DialOptions.Header name "X-A\r\nX-B" is not a valid header name`},
		{"colon in a name", DialOptions{Header: http.Header{"X-A:": {"v"}}},
			`websocket: DialOptions.Header name "X-A:" is not a valid header name`},
		{"empty name", DialOptions{Header: http.Header{"": {"v"}}},
			`websocket: DialOptions.Header name "" is not a valid header name`},
		{"CRLF in a value", DialOptions{Header: http.Header{"X-A": {"ok", "v\r\nX-B: w"}}},
			`websocket: DialOptions.Header X-A has a value with control characters`},
		{"NUL in a value", DialOptions{Header: http.Header{"X-A": {"v\x00"}}},
			`websocket: DialOptions.Header X-A has a value with control characters`},
		{"empty subprotocol", DialOptions{Subprotocols: []string{"chat", ""}},
			`websocket: DialOptions.Subprotocols: "" is not a token (RFC 6455 §4.1)`},
		{"comma in a subprotocol", DialOptions{Subprotocols: []string{"a, b"}},
			`websocket: DialOptions.Subprotocols: "a, b" is not a token (RFC 6455 §4.1)`},
		{"CRLF in a subprotocol", DialOptions{Subprotocols: []string{"a\r\nX-B: w"}},
			`websocket: DialOptions.Subprotocols: "a\r\nX-B: w" is not a token (RFC 6455 §4.1)`},
		{"subprotocol twice", DialOptions{Subprotocols: []string{"chat", "v2", "chat"}},
			`websocket: DialOptions.Subprotocols names "chat" twice`},
		{"two Hosts in Header", DialOptions{Header: http.Header{"Host": {"a.example", "b.example"}}},
			`websocket: DialOptions.Header has 2 Host values`},
		{"Host in Header and another in Host", DialOptions{Header: http.Header{"host": {"a.example"}}, Host: "b.example"},
			`websocket: DialOptions.Header sets Host "a.example" and DialOptions.Host "b.example"`},
		// net/http sent these as an empty Host.
		{"space in Host", DialOptions{Host: "a b"},
			`websocket: DialOptions: Host "a b" is not a host, with an optional port`},
		{"slash in Header's Host", DialOptions{Header: http.Header{"Host": {"example.com/x"}}},
			`websocket: DialOptions: Host "example.com/x" is not a host, with an optional port`},
		{"HTTP2 out of range", DialOptions{HTTP2: 9},
			`websocket: DialOptions.HTTP2 is 9, not HTTP2Disabled, HTTP2Preferred or HTTP2Required`},
	} {
		for _, client := range []*http.Client{nil, {}} {
			opts := tt.opts
			opts.HTTPClient = client
			r := dialBounded(t, s, context.Background(), "ws://"+s.addr(), &opts)
			if r.err == nil || r.err.Error() != tt.want {
				t.Errorf("%s, HTTPClient %v: Dial: %v, want %s", tt.name, client, r.err, tt.want)
			}
			if r.resp != nil {
				t.Errorf("%s, HTTPClient %v: Dial returned a response", tt.name, client)
			}
		}
	}
	if n := len(reqs); n != 0 {
		t.Errorf("the server read %d requests, want 0", n)
	}
}

// TestDialRefusedByAccept: the reason our own Accept gives in its
// refusal's body joins Dial's error without a second prefix.
func TestDialRefusedByAccept(t *testing.T) {
	t.Parallel()
	s, errc := acceptServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := Dial(ctx, wsURL(s), &DialOptions{Header: http.Header{"Origin": {"https://evil.example"}}})
	acceptErr(t, errc)
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("Dial: %v, response %v, want a 403", err, resp)
	}
	want := `websocket: handshake failed: server answered "403 Forbidden", not 101 Switching Protocols: "origin \"https://evil.example\" not allowed"`
	if !errors.Is(err, ErrHandshake) || err.Error() != want {
		t.Errorf("Dial: %v\nwant %s", err, want)
	}
}

// TestDialURLUserinfo: the user and password in the URL go as Basic
// Authorization, as an HTTP client sends them, unless Header sets
// Authorization, whatever sends the handshake.
func TestDialURLUserinfo(t *testing.T) {
	t.Parallel()
	reqs := make(chan *http.Request, 1)
	s := startTCPServer(t, scriptedHandshake(reqs, func(accept string) string { return response101(accept) }))
	for _, tt := range []struct {
		userinfo string
		header   http.Header
		want     string
	}{
		{"user:pa%20ss@", nil, "Basic dXNlcjpwYSBzcw=="}, // user:pa ss
		{"user@", nil, "Basic dXNlcjo="},                 // user:
		{"user:pass@", http.Header{"Authorization": {"Bearer token"}}, "Bearer token"},
		{"user:pass@", http.Header{"authorization": {"Bearer token"}}, "Bearer token"},
		{"", nil, ""},
	} {
		for _, client := range []*http.Client{nil, {}} {
			r := dialBounded(t, s, context.Background(), "ws://"+tt.userinfo+s.addr()+"/", &DialOptions{HTTPClient: client, Header: tt.header})
			if r.err != nil {
				t.Fatalf("%s, HTTPClient %v: Dial: %v", tt.userinfo, client, r.err)
			}
			r.c.CloseNow()
			if got := nextRequest(t, reqs).Header.Values("Authorization"); !slices.Equal(got, []string{tt.want}) && (tt.want != "" || len(got) != 0) {
				t.Errorf("%q, HTTPClient %v: Authorization %q, want %q", tt.userinfo, client, got, tt.want)
			}
		}
	}
}

// TestDialHeaderHost: a Host in Header is sent as the request's Host,
// as DialOptions.Host is, whatever sends the handshake.
func TestDialHeaderHost(t *testing.T) {
	t.Parallel()
	reqs := make(chan *http.Request, 1)
	s := startTCPServer(t, scriptedHandshake(reqs, func(accept string) string { return response101(accept) }))
	for _, tt := range []struct {
		header http.Header
		host   string
		want   string
	}{
		{http.Header{"Host": {"chat.example.com"}}, "", "chat.example.com"},
		{http.Header{"host": {"chat.example.com:8080"}}, "", "chat.example.com:8080"},
		{http.Header{"Host": {"chat.example.com"}}, "chat.example.com", "chat.example.com"},
		{http.Header{"Host": {""}}, "", s.addr()},
		{nil, "", s.addr()},
		// What an authority may hold (RFC 3986 §3.2), which Dial checks.
		{nil, "[::1]:8080", "[::1]:8080"},
		{nil, "a_b-c.~x!$&'()*+,;=", "a_b-c.~x!$&'()*+,;="},
		{nil, "bücher.example", "xn--bcher-kva.example"}, // net/http's punycode
	} {
		for _, client := range []*http.Client{nil, {}} {
			r := dialBounded(t, s, context.Background(), "ws://"+s.addr()+"/", &DialOptions{HTTPClient: client, Header: tt.header, Host: tt.host})
			if r.err != nil {
				t.Fatalf("Header %v, Host %q, HTTPClient %v: Dial: %v", tt.header, tt.host, client, r.err)
			}
			r.c.CloseNow()
			req := nextRequest(t, reqs)
			if req.Host != tt.want {
				t.Errorf("Header %v, Host %q, HTTPClient %v: server got Host %q, want %q", tt.header, tt.host, client, req.Host, tt.want)
			}
			if n := len(req.Header.Values("Host")); n != 0 {
				t.Errorf("Header %v, Host %q, HTTPClient %v: %d Host headers besides the request's Host", tt.header, tt.host, client, n)
			}
		}
	}
}

// TestDialRedirectOnce: a redirect is followed from the response to the
// one request sent, whatever sent it: the server sees the first request
// once.
func TestDialRedirectOnce(t *testing.T) {
	t.Parallel()
	var old, moved atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		old.Add(1)
		http.Redirect(w, r, "/new?from=old", http.StatusFound)
	})
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		moved.Add(1)
		acceptEcho(w, r)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	for i, client := range []*http.Client{nil, {}} {
		c, resp := dialTR(t, wsURL(s)+"/old", &DialOptions{HTTPClient: client})
		handshakeEcho(t, c, "redirected")
		c.CloseNow()
		if got, want := resp.Request.URL.RequestURI(), "/new?from=old"; got != want {
			t.Errorf("HTTPClient %v: response to %s, want %s", client, got, want)
		}
		if o, m := old.Load(), moved.Load(); o != int32(i+1) || m != int32(i+1) {
			t.Errorf("HTTPClient %v: after %d dials the server saw /old %d times and /new %d", client, i+1, o, m)
		}
	}
}

// dialTR dials with a 10-second limit and returns the response too.
func dialTR(t *testing.T, rawURL string, opts *DialOptions) (*Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := Dial(ctx, rawURL, opts)
	if err != nil {
		t.Fatalf("Dial(%s): %v", rawURL, err)
	}
	return c, resp
}

// TestDialProxyRefuses: a proxy's refusal of CONNECT fails Dial with an
// error that names the proxy and its status, body or not, for wss:// and
// ws:// alike.
func TestDialProxyRefuses(t *testing.T) {
	t.Parallel()
	for _, answer := range []string{
		"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 5\r\n\r\nlogin",
		"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nnot there",
	} {
		p := startTCPServer(t, func(nc net.Conn) {
			br := bufio.NewReader(nc)
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(nc, answer)
		})
		tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", User: url.UserPassword("u", "secret"), Host: p.addr()})}
		for _, target := range []string{"wss://192.0.2.1:8443/x", "ws://192.0.2.1:8080/x", "ws://192.0.2.1/x"} {
			r := dialBounded(t, p, context.Background(), target, &DialOptions{HTTPClient: &http.Client{Transport: tr}})
			status, _, _ := strings.Cut(strings.TrimPrefix(answer, "HTTP/1.1 "), "\r\n")
			u, _ := url.Parse(target)
			hostport := u.Host
			if u.Port() == "" {
				hostport += ":80"
			}
			want := fmt.Sprintf("websocket: dial %s: proxy http://u:xxxxx@%s answered CONNECT %s with %q", target, p.addr(), hostport, status)
			if r.err == nil || r.err.Error() != want {
				t.Errorf("Dial: %v, want %s", r.err, want)
			}
			if r.resp != nil {
				t.Errorf("Dial %s returned a response", target)
			}
		}
	}
}

// TestDialProxyBadAnswer: a proxy whose answer to CONNECT is no HTTP
// response, or has a header without end, or ends early, fails Dial with
// an error that names it, and Dial reads no more than 1 MiB of it, for
// ws:// and wss:// alike. With net/http's tunnel, a wss:// Dial said
// "unexpected EOF" of a header over the limit, and the malformed answer
// without naming the proxy, as though the server had sent it.
func TestDialProxyBadAnswer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		answer string
		want   string
	}{
		{"SSH-2.0-OpenSSH_9.6\r\n", `proxy http://%s, CONNECT 192.0.2.1:8080: malformed HTTP response "SSH-2.0-OpenSSH_9.6"`},
		{"HTTP/1.1 200 OK\r\nX-A: " + strings.Repeat("a", 2<<20), `proxy http://%s answered CONNECT 192.0.2.1:8080 with a header of more than 1048576 bytes`},
		{"HTTP/1.1 200 OK\r\n", `proxy http://%s, CONNECT 192.0.2.1:8080: unexpected EOF`},
	} {
		p := startTCPServer(t, func(nc net.Conn) {
			if _, err := http.ReadRequest(bufio.NewReader(nc)); err != nil {
				return
			}
			io.WriteString(nc, tt.answer)
		})
		tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr()})}
		for _, target := range []string{"ws://192.0.2.1:8080/x", "wss://192.0.2.1:8080/x"} {
			r := dialBounded(t, p, context.Background(), target, &DialOptions{HTTPClient: &http.Client{Transport: tr}})
			if want := "websocket: dial " + target + ": " + fmt.Sprintf(tt.want, p.addr()); r.err == nil || r.err.Error() != want {
				t.Errorf("Dial: %v, want %s", r.err, want)
			}
		}
	}
}

// TestDialProxyHeaderLimit: the transport's MaxResponseHeaderBytes bounds
// a proxy's answer to CONNECT, as DialOptions.HTTPClient says, for ws://
// as net/http does for wss://: Dial's own tunnel applied 1 MiB whatever
// the transport said, so that a 4 KiB limit let 8 KiB through, and a
// 4 MiB limit refused 1 MiB and a bit.
func TestDialProxyHeaderLimit(t *testing.T) {
	t.Parallel()
	s := startTCPServer(t, scriptedHandshake(nil, func(accept string) string { return response101(accept) }))
	for _, tt := range []struct {
		limit int64
		pad   int
		ok    bool
	}{
		{4 << 10, 8 << 10, false},
		{4 << 20, 1<<20 + 100, true},
	} {
		proxy, _ := startProxyWith(t, "X-Pad: "+strings.Repeat("p", tt.pad)+"\r\n")
		tr := &http.Transport{Proxy: http.ProxyURL(proxy), MaxResponseHeaderBytes: tt.limit}
		r := dialBounded(t, s, context.Background(), "ws://"+s.addr()+"/x", &DialOptions{HTTPClient: &http.Client{Transport: tr}})
		if r.c != nil {
			r.c.CloseNow()
		}
		want := ""
		if !tt.ok {
			want = fmt.Sprintf("websocket: dial ws://%s/x: proxy %s answered CONNECT %s with a header of more than %d bytes", s.addr(), proxy, s.addr(), tt.limit)
		}
		if got := fmt.Sprint(r.err); (r.err == nil) != tt.ok || (!tt.ok && got != want) {
			t.Errorf("MaxResponseHeaderBytes %d, an answer with %d bytes of header: Dial: %v; want %q", tt.limit, tt.pad, r.err, want)
		}
	}
}

// TestDialProxyTLSHandshakeTimeout: the transport's TLSHandshakeTimeout
// bounds the TLS handshake with an HTTPS proxy for ws:// as net/http's
// does for wss://, with the same timeout error. Dial's own tunnel waited
// for the handshake until ctx ended, for good with context.Background.
func TestDialProxyTLSHandshakeTimeout(t *testing.T) {
	t.Parallel()
	// An HTTPS proxy that takes the connection and never answers.
	p := startTCPServer(t, func(nc net.Conn) { io.Copy(io.Discard, nc) })
	for _, target := range []string{"wss://192.0.2.1:8443/x", "ws://192.0.2.1:8080/x"} {
		tr := &http.Transport{
			Proxy:               http.ProxyURL(&url.URL{Scheme: "https", Host: p.addr()}),
			TLSHandshakeTimeout: 100 * time.Millisecond,
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r := dialBounded(t, p, ctx, target, &DialOptions{HTTPClient: &http.Client{Transport: tr}})
		cancel()
		var ne net.Error
		if r.err == nil || errors.Is(r.err, context.DeadlineExceeded) || !errors.As(r.err, &ne) || !ne.Timeout() || !strings.HasSuffix(r.err.Error(), "TLS handshake timeout") {
			t.Errorf("%s: Dial: %v; want a TLS handshake timeout", target, r.err)
		}
	}
}

// TestDialProxyEarlyBytes: bytes a proxy sends right after its 200 to
// CONNECT, in the same write, are the server's: here the start of its
// 101, whose end and a first frame come once the request is read.
func TestDialProxyEarlyBytes(t *testing.T) {
	t.Parallel()
	p := startTCPServer(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != http.MethodConnect {
			io.WriteString(nc, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
			return
		}
		if _, err := io.WriteString(nc, "HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"); err != nil {
			return
		}
		req, err = http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(nc, "Connection: Upgrade\r\nSec-WebSocket-Accept: "+acceptKey(req.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n\x81\x05early")
		io.Copy(io.Discard, br)
	})
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr()})}
	for i := range 20 {
		r := dialBounded(t, p, context.Background(), "ws://192.0.2.1:8080/x", &DialOptions{HTTPClient: &http.Client{Transport: tr}})
		if r.err != nil {
			t.Fatalf("dial %d: Dial: %v", i, r.err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		typ, msg, err := r.c.Read(ctx)
		cancel()
		if typ != MessageText || string(msg) != "early" || err != nil {
			t.Fatalf("dial %d: Read: %v %q %v, want a text message \"early\"", i, typ, msg, err)
		}
		r.c.CloseNow()
	}
}

// TestDialProxySilent: a proxy that never answers CONNECT holds Dial
// until ctx ends, and no longer; the connection to it is closed then.
func TestDialProxySilent(t *testing.T) {
	t.Parallel()
	gone := make(chan string, 2)
	p := startTCPServer(t, func(nc net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(nc))
		if err != nil {
			return
		}
		io.Copy(io.Discard, nc)
		gone <- req.Method + " " + req.RequestURI
	})
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr()})}
	for _, tt := range []struct{ url, target string }{
		{"wss://192.0.2.1:8443/x", "192.0.2.1:8443"},
		{"ws://192.0.2.1:8080/x", "192.0.2.1:8080"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		r := dialBounded(t, p, ctx, tt.url, &DialOptions{HTTPClient: &http.Client{Transport: tr}})
		cancel()
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("%s: Dial: %v, want context.DeadlineExceeded", tt.url, r.err)
		}
		select {
		case got := <-gone:
			if want := "CONNECT " + tt.target; got != want {
				t.Errorf("%s: proxy saw %q, want %q", tt.url, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the connection to the proxy still open 10s after Dial returned", tt.url)
		}
	}
}

// dialPath returns options that have Dial read the handshake's answer
// itself (nil, for ws://), or, with client, through an HTTP client of the
// caller's.
func dialPath(client bool) *DialOptions {
	if !client {
		return nil
	}
	return &DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{}}}
}

// TestDialRedirectOffTLS: a wss:// handshake redirected to http:// fails
// with ErrHandshake before anything goes in cleartext. It went on: the
// WebSocket was open without TLS, and the cleartext server, on another
// host, had the caller's X-Api-Key header.
func TestDialRedirectOffTLS(t *testing.T) {
	t.Parallel()
	var reached atomic.Bool
	plain := startTCPServer(t, func(nc net.Conn) {
		reached.Store(true)
		scriptedHandshake(nil, func(accept string) string { return response101(accept) })(nc)
	})
	_, port, _ := net.SplitHostPort(plain.addr())
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:"+port+"/plain", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https")+"/x",
		&DialOptions{HTTPClient: srv.Client(), Header: http.Header{"X-Api-Key": {"secret"}}})
	if err == nil {
		c.CloseNow()
	}
	want := `handshake failed: redirected from "` + srv.URL + `/x" to "http://localhost:` + port + `/plain", which leaves TLS`
	if !errors.Is(err, ErrHandshake) || !strings.Contains(fmt.Sprint(err), want) || strings.Count(err.Error(), "websocket:") != 1 {
		t.Errorf("Dial: %v, want ErrHandshake and %q", err, want)
	}
	if reached.Load() {
		t.Error("the cleartext server was reached")
	}
}

// TestDialPeerTextBounded: what a server or proxy sends is quoted in
// Dial's errors up to a bound: net/http's and textproto's errors quote
// whole lines, and Dial's own quoted a status or a refusal's first line
// whole, 200 KB to 400 KB of error for a 200 KB line.
func TestDialPeerTextBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("A", 200<<10)
	check := func(t *testing.T, what string, err error, handshake bool) {
		t.Helper()
		switch {
		case err == nil:
			t.Errorf("%s: Dial succeeded", what)
		case len(err.Error()) > 1024 || strings.Count(err.Error(), "websocket:") != 1:
			t.Errorf("%s: error of %d bytes: %.300s", what, len(err.Error()), err)
		case handshake != errors.Is(err, ErrHandshake):
			t.Errorf("%s: %.300s, wraps ErrHandshake: %v", what, err, !handshake)
		}
	}
	for name, answer := range map[string]string{
		"a proxy's status": "HTTP/1.1 407 " + long + "\r\n\r\n",
		"a proxy's answer": long + "\r\n\r\n",
	} {
		p := startTCPServer(t, func(nc net.Conn) {
			br := bufio.NewReader(nc)
			if _, err := http.ReadRequest(br); err == nil {
				io.WriteString(nc, answer)
				io.Copy(io.Discard, br)
			}
		})
		tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr()})}
		for _, target := range []string{"ws://192.0.2.1:8080/x", "wss://192.0.2.1:8443/x"} {
			r := dialBounded(t, p, context.Background(), target, &DialOptions{HTTPClient: &http.Client{Transport: tr}})
			check(t, name+", "+target, r.err, false)
		}
	}
	for name, answer := range map[string]string{
		"a status line":      long + "\r\n\r\n",
		"a header line":      "HTTP/1.1 101 Switching Protocols\r\n" + long + "\r\n\r\n",
		"a Location":         "HTTP/1.1 302 Found\r\nLocation: http://[" + long + "\r\nContent-Length: 0\r\n\r\n",
		"a refusal's body":   "HTTP/1.1 403 Forbidden\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("\x01", 1000),
		"not HTTP":           "SSH-2.0-OpenSSH_9.6\r\n\r\n",
		"a refusal's reason": "HTTP/1.1 403 " + long + "\r\nContent-Length: 0\r\n\r\n",
	} {
		s := startTCPServer(t, scriptedHandshake(nil, func(string) string { return answer }))
		for _, client := range []bool{false, true} {
			opts := dialPath(client)
			r := dialBounded(t, s, context.Background(), "ws://"+s.addr()+"/x", opts)
			// What is not HTTP is a failed handshake, whoever reads it
			// (Dial, or net/http for a client of the caller's); a
			// redirect to a Location that is not a URL is the HTTP
			// client's to refuse.
			handshake := name != "a Location"
			check(t, fmt.Sprintf("%s (HTTPClient %v)", name, client), r.err, handshake)
		}
	}
}

// TestDialMalformedAnswer: an answer that is not HTTP fails the handshake
// with the same error whoever reads it, Dial itself or net/http for a
// client of the caller's; one cut short by the connection's end is a
// failed read, not a malformed handshake. Over an HTTP client, Dial gave
// net/http's "transport connection broken", without ErrHandshake.
func TestDialMalformedAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ answer, want string }{
		{"garbage\r\n\r\n", `websocket: handshake failed: malformed HTTP response "garbage"`},
		{"HTTP/1.1 abc OK\r\n\r\n", `websocket: handshake failed: malformed HTTP status code "abc"`},
		{"HTTP/1.1 101 Switching Protocols\r\nBad Header\r\n\r\n", `websocket: handshake failed: malformed MIME header: missing colon: "Bad Header"`},
		{"HTTP/1.1 403 Forbidden\r\nContent-Length: x\r\n\r\n", `websocket: handshake failed: bad Content-Length "x"`},
		{"HTTP/1.1 101 Swi", ""},
	} {
		s := startTCPServer(t, func(nc net.Conn) {
			if _, err := http.ReadRequest(bufio.NewReader(nc)); err == nil {
				io.WriteString(nc, tc.answer)
			}
			nc.Close()
		})
		for _, client := range []bool{false, true} {
			r := dialBounded(t, s, context.Background(), "ws://"+s.addr()+"/x", dialPath(client))
			switch {
			case r.err == nil:
				t.Errorf("%q (HTTPClient %v): Dial succeeded", tc.answer, client)
			case tc.want == "" && errors.Is(r.err, ErrHandshake):
				t.Errorf("%q (HTTPClient %v): %v, a failed read taken for a failed handshake", tc.answer, client, r.err)
			case tc.want != "" && (r.err.Error() != tc.want || !errors.Is(r.err, ErrHandshake)):
				t.Errorf("%q (HTTPClient %v): %v, want ErrHandshake and %q", tc.answer, client, r.err, tc.want)
			}
		}
	}
}

// TestDialSlowRefusal: a refusal whose body comes slower than the
// handshake's context is kept, with the part of the body that came, as
// the HTTP client's path keeps it; Dial's own path returned the context's
// end without the response.
func TestDialSlowRefusal(t *testing.T) {
	t.Parallel()
	s := startTCPServer(t, func(nc net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(nc)); err != nil {
			return
		}
		io.WriteString(nc, "HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nno")
		time.Sleep(time.Second)
	})
	for _, client := range []bool{false, true} {
		opts := dialPath(client)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		r := dialBounded(t, s, ctx, "ws://"+s.addr()+"/x", opts)
		cancel()
		if !errors.Is(r.err, ErrHandshake) || r.resp == nil || r.resp.StatusCode != 403 {
			t.Errorf("HTTPClient %v: %v, response %v; want the 403, with ErrHandshake", client, r.err, r.resp != nil)
		}
	}
}

// TestDialURLPasswordHidden: an invalid URL's error does not show its
// password, as no other error of Dial does.
func TestDialURLPasswordHidden(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ws://user:s3cret@/x", "ws://user:s3cret@h/x#f", "ws://user:s3cret@h:port/x"} {
		if _, _, err := Dial(context.Background(), u, nil); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Dial(%q): %v", u, err)
		}
	}
}

// TestDialURLNamed: an invalid URL's error names the URL as the caller
// wrote it, as dialErr does, not the http:// URL that Dial maps it to.
func TestDialURLNamed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ url, want string }{
		{"ws:///path", `websocket: URL "ws:///path" has no host`},
		{"wss://user:s3cret@/x", `websocket: URL "wss://user:xxxxx@/x" has no host`},
		{"wss://example.com/x#f", `websocket: URL "wss://example.com/x#f" has a fragment`},
	} {
		if _, _, err := Dial(context.Background(), tt.url, nil); err == nil || err.Error() != tt.want {
			t.Errorf("Dial(%q): %v, want %s", tt.url, err, tt.want)
		}
	}
}

// TestDialProxyAnswerBounded: a proxy's answer to CONNECT for a wss://
// handshake, which net/http reads, is bounded as Dial's own reads are,
// to 1 MiB of header: the default client read 10 MiB of it (11 MB
// allocated). Not parallel: it counts the process's allocations.
func TestDialProxyAnswerBounded(t *testing.T) {
	p := startTCPServer(t, func(nc net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(nc)); err != nil {
			return
		}
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(nc, "HTTP/1.1 200 OK\r\n")
		chunk := []byte(strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 256))
		for range 160 { // 40 MB
			if _, err := nc.Write(chunk); err != nil {
				return
			}
		}
	})
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr()})}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := dialBounded(t, p, context.Background(), "wss://192.0.2.1:8443/x", &DialOptions{HTTPClient: &http.Client{Transport: tr}})
	runtime.ReadMemStats(&after)
	if r.err == nil {
		t.Fatal("Dial succeeded")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 5<<20 {
		t.Errorf("Dial allocated %d MB for a proxy's answer (%v)", got>>20, r.err)
	}
}

// TestDialRedirectPolicyFirst: the caller's redirect policy sees a
// redirect off TLS before Dial refuses it, so that it may stop there
// (http.ErrUseLastResponse: Dial returns the redirect, as it did) or
// keep the request on TLS (a policy that rewrites http to https: the
// handshake goes on). Dial's refusal came first, and took both away.
func TestDialRedirectPolicyFirst(t *testing.T) {
	t.Parallel()
	t.Run("ErrUseLastResponse", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		const target = "http://localhost:1/plain"
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target, http.StatusFound)
		}))
		defer srv.Close()
		var asked atomic.Int32
		client := srv.Client()
		client.CheckRedirect = func(*http.Request, []*http.Request) error {
			asked.Add(1)
			return http.ErrUseLastResponse
		}
		c, resp, err := Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https")+"/x", &DialOptions{HTTPClient: client})
		if c != nil {
			c.CloseNow()
		}
		if asked.Load() != 1 || resp == nil || resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != target || !errors.Is(err, ErrHandshake) {
			t.Errorf("policy asked %d times; Dial: %v, response %v; want the 302 with its Location, refused", asked.Load(), err, resp != nil)
		}
	})
	t.Run("rewritten to https", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, err := Accept(w, r, nil); err == nil {
				c.CloseNow()
			}
		}))
		defer ws.Close()
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://"+ws.Listener.Addr().String()+"/ws", http.StatusFound)
		}))
		defer srv.Close()
		client := srv.Client()
		client.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
			req.URL.Scheme = "https"
			return nil
		}
		c, _, err := Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https")+"/x", &DialOptions{HTTPClient: client})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		c.CloseNow()
	})
}

// TestDialCutResponse: a response cut by a reset in the middle of a line
// is a failed dial, not a failed handshake: bufio hands back the part of
// the line that came, whose missing colon is not the server's fault. So
// is one over TLS cut by the server's close_notify (it was taken for a
// malformed handshake on c5b9b66).
func TestDialCutResponse(t *testing.T) {
	t.Parallel()
	for _, sent := range []string{
		"HTTP/1.1 101 Swi",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websoc",
		"HTTP/1.1 101 Switching Protocols\r\nUpgr",
	} {
		s := startTCPServer(t, func(nc net.Conn) {
			if _, err := http.ReadRequest(bufio.NewReader(nc)); err != nil {
				return
			}
			nc.Write([]byte(sent))
			time.Sleep(50 * time.Millisecond)
			nc.(*net.TCPConn).SetLinger(0)
			nc.Close() // a reset
		})
		for _, client := range []bool{false, true} {
			opts := dialPath(client)
			r := dialBounded(t, s, context.Background(), "ws://"+s.addr()+"/x", opts)
			if r.err == nil || errors.Is(r.err, ErrHandshake) {
				t.Errorf("%q, then a reset (HTTPClient %v): %v; want a failed dial", sent, client, r.err)
			}
		}
		// Over TLS, cut by the server's close_notify: crypto/tls ends
		// the read, and the socket under it sees nothing fail.
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			nc, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			nc.Write([]byte(sent))
			time.Sleep(50 * time.Millisecond)
			nc.Close()
		}))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _, err := Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https")+"/x", &DialOptions{HTTPClient: srv.Client()})
		cancel()
		srv.Close()
		if err == nil || errors.Is(err, ErrHandshake) {
			t.Errorf("%q, then close_notify (wss, HTTPClient): %v; want a failed dial", sent, err)
		}
	}
}

// TestDialRedirectToWebSocketURL: a redirect whose Location is a
// WebSocket URL (ws:// or wss://, as a server that moved its endpoint
// names it) is followed as one to http:// or https://, the scheme Dial
// itself maps it to; and a wss:// handshake is still not sent to ws://.
func TestDialRedirectToWebSocketURL(t *testing.T) {
	t.Parallel()
	t.Run("ws", func(t *testing.T) {
		t.Parallel()
		mux := http.NewServeMux()
		var s *httptest.Server
		mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, wsURL(s)+"/new", http.StatusFound)
		})
		mux.HandleFunc("/new", acceptEcho)
		s = httptest.NewServer(mux)
		t.Cleanup(s.Close)
		for name, opts := range map[string]*DialOptions{"Dial's own": nil, "HTTPClient": {HTTPClient: &http.Client{}}} {
			c := dialT(t, wsURL(s)+"/old", opts)
			handshakeEcho(t, c, "redirected, "+name)
		}
	})
	t.Run("wss", func(t *testing.T) {
		t.Parallel()
		mux := http.NewServeMux()
		var s *httptest.Server
		mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "wss"+strings.TrimPrefix(s.URL, "https")+"/new", http.StatusFound)
		})
		mux.HandleFunc("/off", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "ws"+strings.TrimPrefix(s.URL, "https")+"/new", http.StatusFound)
		})
		mux.HandleFunc("/new", acceptEcho)
		s = httptest.NewTLSServer(mux)
		t.Cleanup(s.Close)
		base := "wss" + strings.TrimPrefix(s.URL, "https")
		c := dialT(t, base+"/old", &DialOptions{HTTPClient: s.Client()})
		handshakeEcho(t, c, "redirected")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := Dial(ctx, base+"/off", &DialOptions{HTTPClient: s.Client()})
		if err == nil {
			c.CloseNow()
		}
		if !errors.Is(err, ErrHandshake) || !strings.Contains(fmt.Sprint(err), "leaves TLS") {
			t.Errorf("Dial redirected from wss:// to ws://: %v, want ErrHandshake, leaving TLS", err)
		}
	})
}

// TestDialInternationalHost: a host name past ASCII is dialed under its
// punycode (IDNA) name, as net/http's client dials it and writes it in
// Host, whichever sends the handshake. Not parallel: it swaps the
// default transport's dial function, which Dial's own handshake uses.
func TestDialInternationalHost(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(acceptEcho))
	t.Cleanup(s.Close)
	dt := http.DefaultTransport.(*http.Transport)
	saved := dt.DialContext
	t.Cleanup(func() { dt.DialContext = saved })
	var mu sync.Mutex
	var addrs []string
	dt.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		addrs = append(addrs, addr)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, s.Listener.Addr().String())
	}
	for name, opts := range map[string]*DialOptions{"Dial's own": nil, "HTTPClient": {HTTPClient: &http.Client{}}} {
		mu.Lock()
		addrs = nil
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, _, err := Dial(ctx, "ws://bücher.example/", opts)
		cancel()
		if err != nil {
			t.Fatalf("%s: Dial: %v", name, err)
		}
		c.CloseNow()
		mu.Lock()
		if want := "xn--bcher-kva.example:80"; len(addrs) != 1 || addrs[0] != want {
			t.Errorf("%s: dialed %q, want [%q]", name, addrs, want)
		}
		mu.Unlock()
	}
}

// TestDialRedirectElsewhere: a redirect to a URL that is neither a
// WebSocket's nor HTTP's (ftp://) fails the handshake, with an error
// that says so and wraps ErrHandshake, through Dial's own handshake and
// an HTTP client alike. It was net/http's "unsupported protocol scheme",
// which did not.
func TestDialRedirectElsewhere(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ftp://example.com/ws", http.StatusFound)
	}))
	t.Cleanup(s.Close)
	for name, opts := range map[string]*DialOptions{"Dial's own": nil, "HTTPClient": {HTTPClient: &http.Client{}}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, _, err := Dial(ctx, wsURL(s)+"/old", opts)
		cancel()
		if err == nil {
			c.CloseNow()
		}
		want := fmt.Sprintf("websocket: dial %s/old: handshake failed: redirected from %q to \"ftp://example.com/ws\", not a WebSocket URL", wsURL(s), s.URL+"/old")
		if !errors.Is(err, ErrHandshake) || err.Error() != want {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
}

// TestDialRedirectedFailure: a redirected handshake that fails to reach
// the server redirected to, or whose TLS fails there, says where it was
// redirected: the error named the URL dialed alone, so that a ws:// URL
// failed with a certificate error, of a host the caller never named.
func TestDialRedirectedFailure(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(acceptEcho))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused certificate
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// The certificate names 127.0.0.1 and example.com, not localhost.
	to := "https://localhost:" + port + "/moved"
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "wss://user:secret@localhost:"+port+"/moved", http.StatusFound)
	}))
	t.Cleanup(s.Close)
	for name, opts := range map[string]*DialOptions{"Dial's own": nil, "HTTPClient": {HTTPClient: srv.Client()}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, _, err := Dial(ctx, wsURL(s)+"/old", opts)
		cancel()
		if err == nil {
			c.CloseNow()
		}
		want := fmt.Sprintf("websocket: dial %s/old: redirected to %q: tls: failed to verify certificate: ", wsURL(s), strings.Replace(to, "//", "//user:xxxxx@", 1))
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Count(err.Error(), "websocket:") != 1 {
			t.Errorf("%s: Dial: %v\nwant %s...", name, err, want)
		}
	}
}

// TestDialRedirectHeaders: a redirect to another host drops the
// Authorization and Cookie of DialOptions.Header and keeps the others, as
// DialOptions.Header says, whatever sent the first request; one to the
// same host, at another port, keeps them all.
func TestDialRedirectHeaders(t *testing.T) {
	t.Parallel()
	reqs := make(chan *http.Request, 1)
	s := startTCPServer(t, scriptedHandshake(reqs, func(accept string) string { return response101(accept) }))
	_, port, _ := net.SplitHostPort(s.addr())
	header := http.Header{"Authorization": {"Bearer t"}, "Cookie": {"a=b"}, "X-Other": {"1"}}
	for _, tt := range []struct {
		to   string
		kept bool
	}{
		{"ws://localhost:" + port + "/b", false},
		{"ws://127.0.0.1:" + port + "/b", true},
	} {
		r := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, tt.to, http.StatusTemporaryRedirect)
		}))
		for _, client := range []*http.Client{nil, {}} {
			d := dialBounded(t, s, context.Background(), wsURL(r)+"/a", &DialOptions{HTTPClient: client, Header: header})
			if d.err != nil {
				t.Fatalf("to %s, HTTPClient %v: Dial: %v", tt.to, client, d.err)
			}
			d.c.CloseNow()
			got := nextRequest(t, reqs).Header
			want := header.Clone()
			if !tt.kept {
				want.Del("Authorization")
				want.Del("Cookie")
			}
			for name := range header {
				if !slices.Equal(got[name], want[name]) {
					t.Errorf("to %s, HTTPClient %v: %s %q, want %q", tt.to, client, name, got[name], want[name])
				}
			}
		}
		r.Close()
	}
}

// TestDialProxyAsked: the transport's Proxy is asked for the http:// or
// https:// URL a ws:// or wss:// one stands for, as DialOptions.HTTPClient
// says, with or without DialOptions.HTTP2, so that HTTP_PROXY serves
// ws:// and HTTPS_PROXY wss://.
func TestDialProxyAsked(t *testing.T) {
	t.Parallel()
	for _, mode := range []HTTP2Mode{HTTP2Disabled, HTTP2Preferred} {
		for target, want := range map[string]string{
			"ws://192.0.2.1/x":       "http://192.0.2.1/x",
			"wss://192.0.2.1:8443/x": "https://192.0.2.1:8443/x",
		} {
			var asked []string
			stop := errors.New("stop")
			tr := &http.Transport{Proxy: func(r *http.Request) (*url.URL, error) {
				asked = append(asked, r.URL.String())
				return nil, stop
			}}
			_, _, err := Dial(context.Background(), target, &DialOptions{HTTPClient: &http.Client{Transport: tr}, HTTP2: mode})
			if !errors.Is(err, stop) {
				t.Errorf("HTTP2 %d, %s: Dial: %v, want the Proxy function's error", mode, target, err)
			}
			if len(asked) == 0 || asked[0] != want {
				t.Errorf("HTTP2 %d, %s: Proxy asked for %q, want %q first", mode, target, asked, want)
			}
		}
	}
}
