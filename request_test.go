package websocket

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestIsUpgradeRequest: requests that ask for a WebSocket over HTTP/1.1
// (tokens in any case, among others) and over HTTP/2 (extended CONNECT),
// and requests that do not.
func TestIsUpgradeRequest(t *testing.T) {
	t.Parallel()
	h1 := func(method string, header ...string) *http.Request {
		r := httptest.NewRequest(method, "/ws", nil)
		for i := 0; i < len(header); i += 2 {
			r.Header.Add(header[i], header[i+1])
		}
		return r
	}
	h2 := func(method, protocol string) *http.Request {
		r := httptest.NewRequest(method, "/ws", nil)
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
		if protocol != "" {
			r.Header.Set(":protocol", protocol)
		}
		return r
	}
	h3 := func() *http.Request {
		r := h2("CONNECT", "websocket")
		r.Proto, r.ProtoMajor = "HTTP/3.0", 3
		return r
	}
	for _, tt := range []struct {
		name string
		r    *http.Request
		want bool
	}{
		{"HTTP/1.1 upgrade", h1("GET", "Connection", "Upgrade", "Upgrade", "websocket"), true},
		{"tokens among others, in other cases", h1("GET", "Connection", "keep-alive, UPGRADE", "Upgrade", "h2c, WebSocket"), true},
		{"tokens in repeated fields", h1("GET", "Connection", "keep-alive", "Connection", "upgrade", "Upgrade", "websocket"), true},
		{"no Upgrade", h1("GET", "Connection", "Upgrade"), false},
		{"Upgrade to another protocol", h1("GET", "Connection", "Upgrade", "Upgrade", "h2c"), false},
		{"no upgrade token in Connection", h1("GET", "Connection", "keep-alive", "Upgrade", "websocket"), false},
		{"token as part of another", h1("GET", "Connection", "upgrades", "Upgrade", "websockets"), false},
		{"POST", h1("POST", "Connection", "Upgrade", "Upgrade", "websocket"), false},
		{"plain GET", h1("GET"), false},
		{"HTTP/2 extended CONNECT", h2("CONNECT", "websocket"), true},
		{"HTTP/2 extended CONNECT, protocol in another case", h2("CONNECT", "WebSocket"), true},
		{"HTTP/2 CONNECT of a tunnel", h2("CONNECT", ""), false},
		{"HTTP/2 extended CONNECT of another protocol", h2("CONNECT", "webtransport"), false},
		{"HTTP/2 GET", h2("GET", ""), false},
		{"HTTP/2 GET with HTTP/1.1's upgrade fields", func() *http.Request {
			r := h2("GET", "")
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			return r
		}(), false},
		// RFC 9220: asked for, though Accept refuses it
		// (TestAcceptHTTP3).
		{"HTTP/3 extended CONNECT", h3(), true},
	} {
		if got := IsUpgradeRequest(tt.r); got != tt.want {
			t.Errorf("%s: IsUpgradeRequest = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestAcceptHTTP3: an extended CONNECT over HTTP/3 (RFC 9220), as an
// HTTP/3 server hands it to a handler, is refused with 505, the response
// saying why, rather than checked as an HTTP/1.1 handshake and refused as a
// method other than GET.
func TestAcceptHTTP3(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("CONNECT", "https://example.com/ws", nil)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/3.0", 3, 0
	r.Header.Set(":protocol", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	w := httptest.NewRecorder()
	c, err := Accept(w, r, nil)
	if c != nil || !errors.Is(err, ErrHandshake) {
		t.Fatalf("Accept = %v, %v; want no Conn and an error wrapping ErrHandshake", c, err)
	}
	const why = `websocket: handshake over "HTTP/3.0": WebSockets are served over HTTP/1.1 and HTTP/2 only`
	if err.Error() != why {
		t.Errorf("Accept's error %q, want %q", err, why)
	}
	if w.Code != http.StatusHTTPVersionNotSupported || strings.TrimSpace(w.Body.String()) != why {
		t.Errorf("response %d %q, want 505 %q", w.Code, w.Body, why)
	}
}

// TestSubprotocols: the client's offers in its order, across fields and
// lists, without empty elements; nil without any.
func TestSubprotocols(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("GET", "/ws", nil)
	if got := Subprotocols(r); got != nil {
		t.Errorf("Subprotocols without the field = %q, want nil", got)
	}
	r.Header.Add("Sec-WebSocket-Protocol", "v2.chat, ,v1.chat")
	r.Header.Add("Sec-WebSocket-Protocol", " mqtt\t")
	if got, want := Subprotocols(r), []string{"v2.chat", "v1.chat", "mqtt"}; !slices.Equal(got, want) {
		t.Errorf("Subprotocols = %q, want %q", got, want)
	}
}

// pageOrSocket serves a page to a request that is no WebSocket handshake
// and, to one that is, a connection that answers its first message with
// the subprotocols the client offered and the one agreed, choosing the
// offer that comes last.
func pageOrSocket(w http.ResponseWriter, r *http.Request) {
	if !IsUpgradeRequest(r) {
		io.WriteString(w, "page over "+r.Proto)
		return
	}
	offered := Subprotocols(r)
	var opts AcceptOptions
	if len(offered) > 0 {
		opts.Subprotocols = offered[len(offered)-1:]
	}
	c, err := Accept(w, r, &opts)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := c.Read(ctx); err != nil {
		return
	}
	c.Write(ctx, MessageText, []byte(strings.Join(offered, " ")+" => "+c.Subprotocol()))
	c.Close(StatusNormalClosure, "")
}

// testPageOrSocket dials url with the subprotocols offered, checks what
// pageOrSocket answers, then gets the page with client.
func testPageOrSocket(t *testing.T, client *http.Client, url string, opts DialOptions, proto string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts.Subprotocols = []string{"v2.chat", "v1.chat"}
	c, _, err := Dial(ctx, url, &opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, MessageText, []byte("?")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.Read(ctx); err != nil || string(p) != "v2.chat v1.chat => v1.chat" || c.Subprotocol() != "v1.chat" {
		t.Errorf("answer %q, %v, subprotocol %q; want %q and v1.chat", p, err, c.Subprotocol(), "v2.chat v1.chat => v1.chat")
	}
	page := strings.Replace(strings.Replace(url, "ws", "http", 1), "/ws", "/", 1)
	resp, err := client.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "page over "+proto {
		t.Errorf("GET %s: %q, %v; want %q", page, b, err, "page over "+proto)
	}
}

// TestPageAndSocketOnePath: one handler serves its page and, by
// IsUpgradeRequest, its WebSocket at the same address over HTTP/1.1,
// picking the subprotocol from Subprotocols. TestDialOverHTTP2 does the
// same over HTTP/2.
func TestPageAndSocketOnePath(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.HandlerFunc(pageOrSocket))
	defer s.Close()
	testPageOrSocket(t, s.Client(), wsURL(s)+"/ws", DialOptions{}, "HTTP/1.1")
}

// TestSubprotocolsOnlyTokens: an offer that is not a token (RFC 6455
// §4.1), here one with a slash, is not among Subprotocols: a handler that
// accepts what the client offers, as AcceptOptions.Subprotocols, would
// have Accept refuse every such request as a misconfigured server (500),
// whose options must be tokens.
func TestSubprotocolsOnlyTokens(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("GET", "/ws", nil)
	r.Header.Add("Sec-WebSocket-Protocol", "chat/2, v1.chat, \"v0\", caf\xc3\xa9")
	if got, want := Subprotocols(r), []string{"v1.chat"}; !slices.Equal(got, want) {
		t.Errorf("Subprotocols = %q, want %q", got, want)
	}
	accepted := make(chan error, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{Subprotocols: Subprotocols(r)})
		accepted <- err
		if err == nil {
			c.CloseNow()
		}
	}))
	defer s.Close()
	nc := sendRequest(t, s.Listener.Addr().String(), strings.Replace(rawUpgradeRequest, "\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat/2, v1.chat\r\n\r\n", 1))
	defer nc.Close()
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-accepted; err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "v1.chat" {
		t.Fatalf("Accept: %v; response %d with subprotocol %q, want 101 with v1.chat", err, resp.StatusCode, resp.Header.Get("Sec-WebSocket-Protocol"))
	}
}
