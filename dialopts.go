package websocket

// What Dial takes, in every build: the options, the check of the URL and
// the form of its errors. Dial itself is in dial.go, and in dial_js.go for
// browsers.

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DialOptions configures Dial. The zero value (or nil) dials as
// http.DefaultClient would, offers no subprotocol, and bounds the closing
// handshake at 5 seconds.
//
// In a browser (GOOS=js), where Dial uses the browser's WebSocket, only
// Subprotocols, CloseTimeout and the write queue's options apply (see the
// package documentation, Browsers).
type DialOptions struct {
	// HTTPClient sends the opening handshake, so that its proxies, TLS
	// configuration, cookie jar and redirect policy apply. nil means
	// http.DefaultClient. Its Timeout, if set, bounds the handshake only.
	// Through an HTTP or HTTPS proxy, ws:// as wss://, the handshake goes
	// through a tunnel the proxy opens with CONNECT (RFC 6455 §4.1), when
	// the client's transport is an *http.Transport. Its Proxy is asked
	// for the http:// or https:// URL that a ws:// or wss:// one stands
	// for, so that http.ProxyFromEnvironment takes HTTP_PROXY for ws://
	// and HTTPS_PROXY for wss://.
	//
	// With nil, a ws:// handshake that no proxy applies to is sent by Dial
	// itself over a connection from http.DefaultTransport's dial function,
	// as the default client would send it, only cheaper; a redirect in
	// answer is then followed by the default client. Either way, Dial
	// reads at most 1 MiB of response header (http.DefaultMaxHeaderBytes),
	// a proxy's answer to CONNECT included, unless the client's
	// *http.Transport sets MaxResponseHeaderBytes, and skips at most five
	// interim (1xx) responses before the answer (through an HTTP client,
	// the bound on the header holds for each). The client's redirect
	// policy applies, but a wss:// handshake is never redirected off TLS.
	// A redirect may name an http(s):// or ws(s):// URL; one elsewhere
	// fails the handshake.
	//
	// A Transport that is not an *http.Transport (one wrapped for
	// tracing, logging or retries) hides the connection from Dial: the
	// header limit is then its own (net/http's is 10 MB), a ws:// proxy is
	// not tunnelled, and the Conn has no deadlines, so that a context's
	// end that cuts short a blocked read or write closes the connection
	// (see Concurrency in the package documentation).
	HTTPClient *http.Client

	// Header holds extra request headers, such as Authorization or Origin.
	// A Host here is sent as Host below is; the two may not differ.
	// A redirect to another host, unless a subdomain of the first, drops
	// the credentials here (Authorization, Cookie, Proxy-Authorization),
	// as net/http's client does with any request's; the port does not
	// count.
	// The headers the handshake sets itself (Upgrade, Connection,
	// Sec-WebSocket-*) may not appear; offer subprotocols with Subprotocols.
	Header http.Header

	// Host, if set, is sent as the Host header instead of the URL's host: a
	// host with an optional port, as a URL's would be; Dial fails on another.
	Host string

	// Subprotocols to offer, in order of preference: each a token (RFC
	// 6455 §4.1), none twice.
	Subprotocols []string

	// CloseTimeout bounds the closing handshake; 0 (or less) means 5
	// seconds.
	CloseTimeout time.Duration

	// KeepaliveInterval, KeepaliveTimeout, WriteQueueLimit and
	// CloseOnQueueFull work as in AcceptOptions: keepalive pings a quiet
	// server every 20 seconds by default and drops a silent one, and the
	// write queue holds at most 512 KiB unsent.
	KeepaliveInterval time.Duration
	KeepaliveTimeout  time.Duration
	WriteQueueLimit   int
	CloseOnQueueFull  bool

	// Compression offers permessage-deflate (RFC 7692); off by default.
	// The server may decline, leaving the connection uncompressed.
	Compression CompressionMode

	// CompressionThreshold is the smallest message, in bytes, sent
	// compressed; 0 (or less) means 128.
	CompressionThreshold int

	// CompressionWindowBits bounds LZ77 windows to 2^bits bytes, 8 to 15
	// (0 means 15): our compressor's, and the server's, which the offer
	// asks for with server_max_window_bits. A server that cannot keep it
	// declines the offer, or should: zlib cannot compress with 8, and a
	// server built on it may fail the handshake instead (python-websockets
	// answers 500), so 9 is the smallest window that such servers take.
	// A server that ignores the parameter and answers without it (or with
	// a larger window) accepted no offer that was made, and Dial fails the
	// handshake, as RFC 7692 requires, saying so: several servers do, and
	// against them the default, 15, is what connects with compression.
	CompressionWindowBits int

	// HTTP2 asks for the WebSocket over HTTP/2 (RFC 8441) rather than
	// HTTP/1.1: see HTTP2Mode, and the package documentation, HTTP/2.
	HTTP2 HTTP2Mode
}

// dialURL checks a WebSocket URL (RFC 6455 §3) and maps it to the HTTP URL
// the handshake is sent to.
func dialURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Not the URL, which may hold a password.
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("websocket: invalid URL: %w", err)
	}
	// The URL as the caller wrote it, for the errors (as dialErr).
	shown := u.Redacted()
	switch strings.ToLower(u.Scheme) {
	case "ws", "http":
		u.Scheme = "http"
	case "wss", "https":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("websocket: URL scheme %q is not ws, wss, http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("websocket: URL %q has no host", shown)
	}
	// §3: "Fragment identifiers are meaningless in the context of WebSocket
	// URIs and MUST NOT be used on these URIs."
	if u.Fragment != "" || strings.Contains(rawURL, "#") {
		return nil, fmt.Errorf("websocket: URL %q has a fragment", shown)
	}
	return u, nil
}

// dialErr reports a failure to reach the server, naming the URL as the
// caller gave it (net/http's *url.Error names the http:// URL the
// handshake went to, and is dropped from the chain for that).
func dialErr(rawURL string, err error) error {
	shown := rawURL
	if u, perr := url.Parse(rawURL); perr == nil {
		shown = u.Redacted()
	}
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err
	}
	return opErr("dial "+shown, clippedError{err})
}

// HTTP2Mode says whether Dial opens its WebSocket over HTTP/2 (RFC 8441).
type HTTP2Mode int

const (
	// HTTP2Disabled dials over HTTP/1.1, the default.
	HTTP2Disabled HTTP2Mode = iota
	// HTTP2Preferred dials over HTTP/2 when the server offers WebSockets
	// there, and over HTTP/1.1 when it does not: it does not choose h2 by
	// ALPN (wss://), does not answer HTTP/2 with prior knowledge (ws://),
	// or does not announce SETTINGS_ENABLE_CONNECT_PROTOCOL. Such a refusal
	// is remembered for five minutes per origin and HTTP client
	// transport, in which Dial goes straight to HTTP/1.1. A redirect
	// answered over HTTP/2 is followed over HTTP/1.1 too.
	HTTP2Preferred
	// HTTP2Required dials over HTTP/2 or fails with an error wrapping
	// ErrHTTP2Unavailable that says why not; it follows no redirect.
	HTTP2Required
)

func (m HTTP2Mode) String() string {
	switch m {
	case HTTP2Disabled:
		return "disabled"
	case HTTP2Preferred:
		return "preferred"
	case HTTP2Required:
		return "required"
	}
	return "HTTP2Mode(" + strconv.Itoa(int(m)) + ")"
}

// MarshalText returns the mode's name, as String does.
func (m HTTP2Mode) MarshalText() ([]byte, error) {
	if m < HTTP2Disabled || m > HTTP2Required {
		return nil, fmt.Errorf("websocket: unknown HTTP/2 mode %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText parses a mode's name (disabled, preferred or required),
// so that it can come from a flag (flag.TextVar) or a configuration file.
func (m *HTTP2Mode) UnmarshalText(b []byte) error {
	for _, v := range []HTTP2Mode{HTTP2Disabled, HTTP2Preferred, HTTP2Required} {
		if string(b) == v.String() {
			*m = v
			return nil
		}
	}
	return fmt.Errorf("websocket: HTTP/2 mode %q is not disabled, preferred or required", b)
}
