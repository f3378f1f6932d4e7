package websocket

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// AcceptOptions configures Accept. The zero value (or nil) accepts
// same-origin requests, chooses no subprotocol, and bounds the closing
// handshake at 5 seconds.
type AcceptOptions struct {
	// Subprotocols the server speaks, in order of preference: the first
	// that the client also offered is chosen (RFC 6455 §4.2.2). If none is,
	// the response names none and Conn.Subprotocol returns "". Each must
	// be a token (RFC 6455 §4.1), as a client can name no other: a server
	// given one that is not answers every handshake with 500.
	Subprotocols []string

	// OriginPatterns widens the default same-origin policy: a browser
	// request whose Origin host differs from the request's Host is accepted
	// when the host matches one of these patterns, in path.Match syntax
	// ("example.com", "*.example.com", "localhost:*"). A pattern holding
	// "://" is matched against scheme://host instead. Matching ignores case.
	OriginPatterns []string

	// InsecureSkipOriginCheck accepts requests from any origin. It exposes
	// the endpoint to cross-site WebSocket hijacking: any web page a user
	// visits may connect with the user's cookies. Prefer OriginPatterns.
	InsecureSkipOriginCheck bool

	// ResponseHeader holds extra headers for the 101 response, such as
	// Set-Cookie. Names must be valid header names, values may not hold
	// CR, LF or other control characters, and the headers the handshake
	// sets itself (Upgrade, Connection, Sec-WebSocket-*) may not appear.
	// Headers a handler or middleware set on the ResponseWriter before
	// Accept are sent too, before these, but for the handshake's own and
	// invalid ones, which are left out. Over HTTP/2, Keep-Alive,
	// Proxy-Connection and TE, of either, are left out too (RFC 9113
	// §8.2.2).
	ResponseHeader http.Header

	// CloseTimeout bounds the closing handshake; 0 (or less) means 5
	// seconds. Over HTTP/2, closing also waits for a write stuck on a
	// socket that takes nothing, until the HTTP/2 connection ends
	// (http.HTTP2Config's WriteByteTimeout bounds that; see the package
	// documentation).
	CloseTimeout time.Duration

	// Registry, if set, takes in every connection accepted, so that
	// Registry.Shutdown can close them all; while it shuts down, Accept
	// refuses with 503 Service Unavailable.
	Registry *Registry

	// KeepaliveInterval is how long the connection may receive nothing
	// before it sends a ping; KeepaliveTimeout, how long it then waits for
	// anything at all (the pong, or any other frame) before it fails the
	// connection with StatusInternalError, every call returning an error
	// that wraps ErrKeepaliveTimeout. 0 means 20 seconds each (so does a
	// negative KeepaliveTimeout): a peer that vanished is noticed within
	// 40 seconds, and a quiet connection sends a frame every 20, inside
	// the 60-second idle timeouts common among load balancers, proxies
	// and NATs. A negative KeepaliveInterval turns keepalive off. It costs
	// no goroutine or timer of its own (one timer serves every
	// connection's keepalive), and works whether the connection is read by
	// Read, by Serve, or not at all (see the package documentation,
	// Keepalive); but only a read answers the peer's close (CloseRead).
	KeepaliveInterval time.Duration
	KeepaliveTimeout  time.Duration

	// WriteQueueLimit bounds, in bytes, what the connection holds of
	// messages written but not yet handed to the network (Buffered): the
	// queue where small writes gather to go out together, and what Enqueue
	// and Broadcast leave there. 0 (or less) means 512 KiB: the queue
	// always has a limit. Past it, Write waits for
	// the network (until its context ends) and Enqueue refuses the message
	// with ErrQueueFull, or, with CloseOnQueueFull, fails the connection
	// with StatusPolicyViolation, as does then a pong owed to a ping that
	// finds the queue full (a message that no queue could take,
	// larger than the limit less 14 bytes, a frame header's most, is
	// refused either way): its close frame goes behind what the queue
	// holds, and the connection's end, which wraps ErrQueueFull, carries
	// 1008 only once that frame went out (a peer that reads nothing at
	// all never lets it). So a peer that stops reading holds at most this
	// many bytes, besides what the kernel's socket buffers hold; in
	// memory, up to twice as much while part of the queue is being
	// written to it (the write holds the buffer it writes from whole, and
	// the queue fills again beside it), with a goroutine blocked in that
	// write until the connection ends (the keepalive drops such a peer).
	WriteQueueLimit  int
	CloseOnQueueFull bool

	// Compression accepts a client's permessage-deflate offer (RFC 7692),
	// the first one that can be honoured; off by default.
	Compression CompressionMode

	// CompressionThreshold is the smallest message, in bytes, sent
	// compressed; 0 (or less) means 128. Smaller ones rarely shrink.
	CompressionThreshold int

	// CompressionWindowBits bounds LZ77 windows to 2^bits bytes, 8 to 15
	// (0 means 15): our compressor's, and the client's when its offer lets
	// the server ask (9 bits at least, unless the client names 8: zlib
	// cannot compress with 8). Smaller windows cost less memory per
	// connection with context takeover, and compress less.
	CompressionWindowBits int
}

// websocketGUID is the value RFC 6455 §1.3 appends to the key.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// The handshake's header names as net/http's header maps hold them
// (http.CanonicalHeaderKey of RFC 6455's spelling), so that looking one up
// converts nothing.
const (
	hdrKey        = "Sec-Websocket-Key"
	hdrVersion    = "Sec-Websocket-Version"
	hdrAccept     = "Sec-Websocket-Accept"
	hdrProtocol   = "Sec-Websocket-Protocol"
	hdrExtensions = "Sec-Websocket-Extensions"
)

// appendAcceptKey appends Sec-WebSocket-Accept for a Sec-WebSocket-Key
// (RFC 6455 §4.2.2), base64(SHA-1(key + GUID)), to b. A key of the
// length a valid one has costs no allocation.
func appendAcceptKey(b []byte, key string) []byte {
	var in [24 + len(websocketGUID)]byte
	sum := sha1.Sum(append(append(in[:0], key...), websocketGUID...))
	return base64.StdEncoding.AppendEncode(b, sum[:])
}

// handshakeError is a refused opening handshake: the HTTP status to answer
// with, and why.
type handshakeError struct {
	status  int
	msg     string
	version bool // the version asked for is not ours: the answer names ours
}

func (e *handshakeError) Error() string { return "websocket: " + e.msg }
func (e *handshakeError) Unwrap() error { return ErrHandshake }

// errResponseWritten is Accept's error when the handler already answered.
var errResponseWritten = errors.New("websocket: accept: a response was already written to the ResponseWriter; call Accept before writing anything")

func refuse(status int, format string, args ...any) *handshakeError {
	return &handshakeError{status: status, msg: fmt.Sprintf(format, args...)}
}

// Accept completes the opening handshake of RFC 6455 §4.2 on a request to
// an http.Handler and returns the connection. A request that is not a
// valid WebSocket handshake, or comes from an origin not allowed, is
// answered with an HTTP error (405, 426, 400 or 403, with a body that says
// why) and Accept returns an error wrapping ErrHandshake; so is one over
// HTTP/3 (RFC 9220), with 505 HTTP Version Not Supported. Options that
// cannot work (a malformed origin pattern, a subprotocol that is not a
// token, compression window bits outside 8 to 15, a response header Accept
// may not set) are answered with 500 Internal Server Error, on every
// request, and Accept returns the error.
//
// Accept hijacks the connection through http.ResponseController, so
// handler wrappers that implement Unwrap work. Deadlines the server set on
// the connection are cleared. The request's context is not tied to the
// returned Conn. Call Accept before anything is written to w: once a
// status or body was written, the client has its answer, and Accept
// returns an error without touching the connection. (It can tell for
// net/http's own ResponseWriters, through wrappers that implement Unwrap;
// with another writer, the client would get that response and then the
// 101.)
//
// With AcceptOptions.Registry set, a handshake that comes while the
// registry shuts down is refused with 503 Service Unavailable.
//
// Over HTTP/2, Accept takes an extended CONNECT (RFC 8441) instead, answers
// it with 200, and the Conn runs over the request's stream, which ends
// when the handler returns: the handler must keep running (reading, or in
// Serve) until it is done with the Conn, and return only once it has
// closed it (CloseNow, or a call that found it closed), which ends any
// write still under way on another goroutine. Go's HTTP/2 server offers
// extended CONNECT when the program runs with GODEBUG=http2xconnect=1. A
// context that ends during a blocked call over HTTP/2 closes the
// connection, since the stream has no deadlines to interrupt the call
// with. The stream is the request's body and w as the handler got them: a
// wrapper that limits the body (http.MaxBytesReader) ends the connection's
// input at its limit, and RemoteAddr is r.RemoteAddr, as any middleware
// before the handler left it.
func Accept(w http.ResponseWriter, r *http.Request, opts *AcceptOptions) (*Conn, error) {
	if opts == nil {
		opts = &noAcceptOptions
	}
	// Each step is a function of its own, so that the stack holds one
	// step's locals at a time: a handler that goes on to wait in Read
	// keeps the stack that Accept's deepest call grew it to, and past 4
	// KiB that is 8 KiB for as long as it waits (TestStackRoom).
	a, comp, err := negotiate(w, r, opts)
	if err != nil {
		return nil, err
	}
	a.deflate, a.extensions = comp.accept(r.Header)
	var c *Conn
	if r.ProtoMajor == 2 {
		c, err = acceptStream(w, r, a.subprotocol, a.deflate, a.extensions, opts)
	} else {
		var nc net.Conn
		var brw *bufio.ReadWriter
		if nc, brw, err = takeOver(w, a, opts); err == nil {
			c = startConn(nc, brw, a, opts)
		}
	}
	if err != nil {
		opts.release()
		return nil, err
	}
	return opts.register(c.started())
}

// noAcceptOptions stands for nil options; nothing writes to it.
var noAcceptOptions AcceptOptions

// accepted is what negotiate agreed with the client.
type accepted struct {
	key         string // Sec-WebSocket-Key, over HTTP/1.1
	subprotocol string
	extensions  string // the Sec-WebSocket-Extensions answer
	deflate     *deflateParams
}

// negotiate checks the request against RFC 6455 (or RFC 8441 over HTTP/2)
// and opts and picks the subprotocol, answering a refusal with its HTTP
// status itself. It returns the compression that opts configure, which
// the caller lets pick from the client's offers.
func negotiate(w http.ResponseWriter, r *http.Request, opts *AcceptOptions) (accepted, compression, error) {
	var a accepted
	if responseStarted(w) {
		return a, compression{}, errResponseWritten
	}
	overHTTP2 := r.ProtoMajor == 2
	var herr *handshakeError
	switch {
	case r.ProtoMajor > 2:
		// An HTTP/3 server's request (RFC 9220's extended CONNECT): its
		// stream is neither a socket to hijack nor an HTTP/2 stream.
		herr = refuse(http.StatusHTTPVersionNotSupported, "handshake over %s: WebSockets are served over HTTP/1.1 and HTTP/2 only", quoted(r.Proto))
	case overHTTP2:
		herr = checkConnectRequest(r)
	default:
		a.key, herr = checkRequest(r)
	}
	if herr == nil {
		if err := checkServerOptions(opts); err != nil {
			http.Error(w, "websocket: server misconfigured", http.StatusInternalServerError)
			return a, compression{}, err
		}
		herr = checkOrigin(r, opts)
	}
	if herr == nil && opts.Registry != nil && !opts.Registry.reserve() {
		herr = refuse(http.StatusServiceUnavailable, "server shutting down")
	}
	if herr != nil {
		switch {
		case herr.status == http.StatusMethodNotAllowed && overHTTP2:
			w.Header().Set("Allow", http.MethodConnect)
		case herr.status == http.StatusMethodNotAllowed:
			w.Header().Set("Allow", http.MethodGet)
		case herr.status == http.StatusUpgradeRequired:
			// RFC 9110 §15.5.22: a 426 names the protocol to upgrade
			// to, and §7.8 puts the upgrade option in Connection beside
			// it.
			w.Header()["Upgrade"] = []string{"websocket"}
			w.Header()["Connection"] = []string{"Upgrade"}
			fallthrough
		case herr.version:
			w.Header()[hdrVersion] = []string{"13"}
		}
		http.Error(w, herr.Error(), herr.status)
		return a, compression{}, herr
	}
	a.subprotocol = chooseSubprotocol(r.Header, opts.Subprotocols)
	comp, err := newCompression(opts.Compression, opts.CompressionThreshold, opts.CompressionWindowBits)
	if err != nil {
		opts.release()
		http.Error(w, "websocket: server misconfigured", http.StatusInternalServerError)
		return a, compression{}, err
	}
	return a, comp, nil
}

// takeOver answers an HTTP/1.1 handshake with 101 on the hijacked
// connection, which it returns.
func takeOver(w http.ResponseWriter, a accepted, opts *AcceptOptions) (net.Conn, *bufio.ReadWriter, error) {
	names, err := extraHeaderNames(opts.ResponseHeader)
	if err != nil {
		http.Error(w, "websocket: server misconfigured", http.StatusInternalServerError)
		return nil, nil, err
	}
	set := w.Header()
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		if !errors.Is(err, http.ErrHijacked) {
			// Taken over already (a second Accept, say), the connection
			// has no response left to write.
			http.Error(w, "websocket: cannot take over the connection", http.StatusInternalServerError)
		}
		if errors.Is(err, http.ErrNotSupported) {
			// A middleware's wrapper (http.TimeoutHandler's, a
			// logger's): named, which "feature not supported" is not.
			return nil, nil, opErr(fmt.Sprintf("hijack: the ResponseWriter (%T) does not reach net/http's (no Hijack or Unwrap method)", w), err)
		}
		return nil, nil, opErr("hijack", err)
	}
	// net/http may have set deadlines from Server.ReadTimeout and
	// WriteTimeout; they were meant for the request, not the connection.
	nc.SetDeadline(time.Time{})
	// The response is built in the hijacked writer's buffer, which net/http
	// made and nothing else will use.
	resp := responseHead(brw.Writer.AvailableBuffer(), a, set, opts.ResponseHeader, names)
	if _, err := nc.Write(resp); err != nil {
		nc.Close()
		return nil, nil, opErr("writing the handshake response", err)
	}
	return nc, brw, nil
}

// startConn makes the Conn of a hijacked connection, taking over what
// the client sent past its handshake.
func startConn(nc net.Conn, brw *bufio.ReadWriter, a accepted, opts *AcceptOptions) *Conn {
	var buffered []byte
	if n := brw.Reader.Buffered(); n > 0 {
		buffered, _ = brw.Reader.Peek(n)
	}
	cfg := connConfig{
		subprotocol: a.subprotocol,
		deflate:     a.deflate,
		tr:          netTransport(nc),
		buffered:    buffered,
	}
	cfg.apply(opts)
	c := newConn(&cfg)
	dropBuffers(brw)
	return c
}

// dropBuffers lets go of the buffers of a hijacked connection, once their
// bytes are copied: net/http keeps them referenced for as long as the
// handler runs, which for a handler that reads in a loop is the life of
// the WebSocket, 8 KiB per connection that nothing will use again.
func dropBuffers(brw *bufio.ReadWriter) {
	*brw.Reader = bufio.Reader{}
	*brw.Writer = bufio.Writer{}
}

// apply completes a server's connConfig with what opts say of the
// connection.
func (cfg *connConfig) apply(opts *AcceptOptions) {
	cfg.closeTimeout = opts.CloseTimeout
	cfg.keepaliveInterval, cfg.keepaliveTimeout = opts.KeepaliveInterval, opts.KeepaliveTimeout
	cfg.queueLimit, cfg.closeOnFull = opts.WriteQueueLimit, opts.CloseOnQueueFull
	cfg.reg = opts.Registry
}

// register adds an accepted connection to the options' registry. A
// shutdown that began during the handshake closes it at once, as it would
// have, had it come a moment earlier, and waits for it to close.
func (opts *AcceptOptions) register(c *Conn) (*Conn, error) {
	reg := opts.Registry
	if reg == nil || reg.add(c) {
		return c, nil
	}
	ce, _ := reg.goingAway()
	if c.tr.serverStream() {
		// The stream ends with the handler, which returns on this
		// error: the Conn is done with its ResponseWriter first.
		c.Close(ce.Code, ce.Reason)
	} else {
		go c.Close(ce.Code, ce.Reason)
	}
	return nil, refuse(http.StatusServiceUnavailable, "server shutting down")
}

// release ends, in the options' registry, a handshake that negotiate let
// in and that failed.
func (opts *AcceptOptions) release() {
	if opts.Registry != nil {
		opts.Registry.release()
	}
}

// checkRequest checks an opening handshake (RFC 6455 §4.2.1) and returns
// its key.
func checkRequest(r *http.Request) (string, *handshakeError) {
	if r.Method != http.MethodGet {
		return "", refuse(http.StatusMethodNotAllowed, "handshake method is %s, not GET", quoted(r.Method))
	}
	if !r.ProtoAtLeast(1, 1) {
		return "", refuse(http.StatusBadRequest, "handshake over %s, not HTTP/1.1 or later", r.Proto)
	}
	if herr := checkTarget(r, false); herr != nil {
		return "", herr
	}
	if herr := checkHost(r); herr != nil {
		return "", herr
	}
	// The frames start right after the request head (RFC 6455 §4.2.2),
	// so content would be taken for frames.
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		return "", refuse(http.StatusBadRequest, "handshake request has content")
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return "", refuse(http.StatusBadRequest, "Connection header %s lacks the upgrade token", quoted(r.Header["Connection"]...))
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return "", refuse(http.StatusBadRequest, "Upgrade header %s lacks the websocket token", quoted(r.Header["Upgrade"]...))
	}
	if herr := checkVersion(r.Header, false); herr != nil {
		return "", herr
	}
	keys := r.Header[hdrKey]
	if len(keys) != 1 {
		return "", refuse(http.StatusBadRequest, "request has %d Sec-WebSocket-Key headers, want 1", len(keys))
	}
	// §4.1: "The request MUST include a header field with the name
	// |Sec-WebSocket-Key|. The value of this header field MUST be a nonce
	// consisting of a randomly selected 16-byte value that has been
	// base64-encoded".
	if !validKey(keys[0]) {
		return "", refuse(http.StatusBadRequest, "Sec-WebSocket-Key %s is not base64 of 16 bytes", quoted(keys[0]))
	}
	return keys[0], nil
}

// checkTarget checks the request's target as the client sent it,
// r.RequestURI, which handler wrappers such as http.StripPrefix leave
// alone (a request made rather than received has none, and passes). RFC
// 6455 §4.1 has it name the resource: a path, or over HTTP/1.1 an
// absolute http or https URI; over HTTP/2, :path is the path alone (RFC
// 8441 §4, RFC 9113 §8.3.1). Go's servers take * too, and over HTTP/2 a
// whole URI.
func checkTarget(r *http.Request, overHTTP2 bool) *handshakeError {
	target := r.RequestURI
	if target == "" || target[0] == '/' {
		return nil
	}
	if !overHTTP2 {
		// RFC 9110 §4.2.1: an http URI with an empty host is invalid, and
		// RFC 6455 §4.1 wants the host that the ws URI names.
		if u, err := url.ParseRequestURI(target); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Opaque == "" && u.Host != "" {
			return nil
		}
		return refuse(http.StatusBadRequest, "request target %s is neither a path nor an http or https URI with a host", quoted(target))
	}
	return refuse(http.StatusBadRequest, "extended CONNECT with :path %s, not an absolute path", quoted(target))
}

// checkHost refuses a request that names no host: RFC 6455 §4.2.1 wants
// "A |Host| header field containing the server's authority" (over
// HTTP/2, :authority), and the origin check compares with it. net/http
// lets an empty Host through, as RFC 9112 §3.2 allows when the target
// has no authority.
func checkHost(r *http.Request) *handshakeError {
	if r.Host == "" {
		return refuse(http.StatusBadRequest, "request names no host")
	}
	return nil
}

// checkVersion checks Sec-WebSocket-Version, over HTTP/1.1 and HTTP/2.
// One version other than 13, or none, asks for a version we do not speak:
// 426 names ours (RFC 6455 §4.4). Over HTTP/2 it is 400: RFC 9110
// §15.5.22 has a 426 carry an Upgrade header, which HTTP/2 does not have
// (RFC 9113 §8.2.2), and RFC 6455 §4.2.2 asks for an appropriate error,
// 426 being an example. Several lines are a malformed request, as
// several keys are.
func checkVersion(h http.Header, overHTTP2 bool) *handshakeError {
	switch v := h[hdrVersion]; {
	case len(v) > 1:
		return refuse(http.StatusBadRequest, "request has %d Sec-WebSocket-Version headers, want 1", len(v))
	case len(v) == 0 || v[0] != "13":
		status := http.StatusUpgradeRequired
		if overHTTP2 {
			status = http.StatusBadRequest
		}
		herr := refuse(status, "Sec-WebSocket-Version %s is not 13", quoted(v...))
		herr.version = true
		return herr
	}
	return nil
}

// strictBase64 is the encoding of Sec-WebSocket-Key, made once: Strict
// returns a copy of the whole encoding, which would sit on the stack.
var strictBase64 = base64.StdEncoding.Strict()

// validKey reports whether a Sec-WebSocket-Key is base64 of 16 bytes.
func validKey(key string) bool {
	if len(key) != 24 { // the length of base64 of 16 bytes, padded
		return false
	}
	var nonce [18]byte // what 24 characters decode to at most
	n, err := strictBase64.Decode(nonce[:], []byte(key))
	return err == nil && n == 16
}

// checkServerOptions reports a pattern of AcceptOptions.OriginPatterns
// that path.Match cannot use, or a subprotocol that is not a token (RFC
// 6455 §4.1), which no request could name. It runs on every handshake, so
// that a bad option is found by the first request, not by the first from
// another origin or offering subprotocols; as for the other options that
// cannot work, the client is told only that the server is misconfigured,
// and the error does not wrap ErrHandshake: it is the server's, not the
// request's.
func checkServerOptions(opts *AcceptOptions) error {
	for _, pattern := range opts.OriginPatterns {
		if _, err := path.Match(pattern, ""); err != nil {
			return fmt.Errorf("websocket: bad origin pattern %q: %v", pattern, err)
		}
	}
	for _, p := range opts.Subprotocols {
		if !validHeaderName(p) {
			return fmt.Errorf("websocket: AcceptOptions.Subprotocols: %q is not a token (RFC 6455 §4.1)", p)
		}
	}
	return nil
}

// checkOrigin applies the origin policy of AcceptOptions. Requests without
// an Origin header do not come from browsers and are let through.
func checkOrigin(r *http.Request, opts *AcceptOptions) *handshakeError {
	if opts.InsecureSkipOriginCheck {
		return nil
	}
	origins := r.Header["Origin"]
	switch len(origins) {
	case 0:
		return nil
	case 1:
	default:
		return refuse(http.StatusForbidden, "request has %d Origin headers", len(origins))
	}
	u, err := url.Parse(origins[0])
	if err != nil || u.Host == "" {
		return refuse(http.StatusForbidden, "origin %s not allowed", quoted(origins[0]))
	}
	if sameHost(u, r.Host) {
		return nil
	}
	for _, pattern := range opts.OriginPatterns {
		target := u.Host
		if strings.Contains(pattern, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(pattern), strings.ToLower(target)); ok {
			return nil
		}
	}
	return refuse(http.StatusForbidden, "origin %s not allowed", quoted(origins[0]))
}

// sameHost reports whether origin names the host and port of host, the
// request's Host, ignoring case. A port that is absent stands for the
// default of the origin's scheme (80 for http, 443 for https) on either
// side: a browser leaves it out of Origin, and some clients and proxies
// write it in Host.
func sameHost(origin *url.URL, host string) bool {
	if strings.EqualFold(origin.Host, host) {
		return true
	}
	var port string
	switch strings.ToLower(origin.Scheme) {
	case "http", "ws":
		port = "80"
	case "https", "wss":
		port = "443"
	default:
		return false
	}
	orDefault := func(p string) string {
		if p == "" {
			return port
		}
		return p
	}
	h := url.URL{Host: host}
	return strings.EqualFold(origin.Hostname(), h.Hostname()) && orDefault(origin.Port()) == orDefault(h.Port())
}

// chooseSubprotocol picks the first of ours that the client offered. It
// reads the offer in place: a list of a million names costs no more than
// any header of its length.
func chooseSubprotocol(h http.Header, ours []string) string {
	best := len(ours)
	for t := range listElements(h[hdrProtocol]) {
		if i := slices.Index(ours[:best], t); i >= 0 {
			best = i
		}
	}
	if best == len(ours) {
		return ""
	}
	return ours[best]
}

// reservedHeaders are set by the handshake itself (canonical form).
var reservedHeaders = []string{
	"Connection", "Upgrade", "Content-Length", "Transfer-Encoding",
	hdrAccept, hdrProtocol, hdrExtensions, hdrKey, hdrVersion,
}

// responseHead appends the 101 response to b. The header fields the
// handler set on its ResponseWriter before Accept come first, as net/http
// would write them (over HTTP/2 it does), but for those the handshake sets
// itself and those that are not valid: none may split the response. Then
// come the extra headers (AcceptOptions.ResponseHeader), whose names, in
// order, are those extraHeaderNames checked.
func responseHead(b []byte, a accepted, set, extra http.Header, names []string) []byte {
	appendField := func(name, v string) {
		b = append(b, name...)
		b = append(b, ": "...)
		b = append(b, v...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = appendAcceptKey(b, a.key)
	b = append(b, "\r\n"...)
	if a.subprotocol != "" {
		appendField("Sec-WebSocket-Protocol", a.subprotocol)
	}
	if a.extensions != "" {
		appendField("Sec-WebSocket-Extensions", a.extensions)
	}
	if len(set) > 0 {
		for _, name := range slices.Sorted(maps.Keys(set)) {
			if !validHeaderName(name) || reservedHeader(name) {
				continue
			}
			for _, v := range set[name] {
				if validHeaderValue(v) {
					appendField(name, v)
				}
			}
		}
	}
	for _, name := range names {
		for _, v := range extra[name] {
			appendField(name, v)
		}
	}
	return append(b, "\r\n"...)
}

// reservedHeader reports whether the handshake sets the header name
// itself.
func reservedHeader(name string) bool {
	return slices.Contains(reservedHeaders, http.CanonicalHeaderKey(name))
}

// extraHeaderNames checks AcceptOptions.ResponseHeader and returns its
// names in order.
func extraHeaderNames(extra http.Header) ([]string, error) {
	names := make([]string, 0, len(extra))
	for name := range extra {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !validHeaderName(name) {
			return nil, fmt.Errorf("websocket: ResponseHeader name %q is not a valid header name", name)
		}
		if reservedHeader(name) {
			return nil, fmt.Errorf("websocket: ResponseHeader may not set %s", name)
		}
		for _, v := range extra[name] {
			if !validHeaderValue(v) {
				return nil, fmt.Errorf("websocket: ResponseHeader %s has a value with control characters", name)
			}
		}
	}
	return names, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHeaderValue reports whether s holds no control characters but
// horizontal tab (RFC 9110 §5.5).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7F {
			return false
		}
	}
	return true
}

// headerHasToken reports whether the token list h[name] holds token,
// ignoring case; name is in canonical form.
func headerHasToken(h http.Header, name, token string) bool {
	for t := range listElements(h[name]) {
		if strings.EqualFold(t, token) {
			return true
		}
	}
	return false
}

// listElements yields the elements of the comma-separated lists values,
// without the spaces and tabs around them; empty ones do not count (RFC
// 9110 §5.6.1).
func listElements(values []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, v := range values {
			for t := range strings.SplitSeq(v, ",") {
				if t = strings.Trim(t, " \t"); t != "" && !yield(t) {
					return
				}
			}
		}
	}
}
