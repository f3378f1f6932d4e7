package websocket

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// WebSockets over HTTP/2 (RFC 8441): the client opens a stream with an
// extended CONNECT whose :protocol is "websocket", the server answers 200,
// and the frames of RFC 6455 then travel in the stream's DATA frames: the
// request body in, the response body out. There is no key and no
// Sec-WebSocket-Accept (§5); subprotocols, extensions and origins are
// negotiated as over HTTP/1.1.
//
// Go's HTTP/2 server announces extended CONNECT only when the program
// runs with GODEBUG=http2xconnect=1 (Go 1.24 and later); browsers then
// open WebSockets on the HTTP/2 connection that served the page. The
// client's side is dial_h2.go.

// checkConnectRequest checks an opening handshake over HTTP/2 (RFC 8441
// §4, §5).
func checkConnectRequest(r *http.Request) *handshakeError {
	if r.Method != http.MethodConnect {
		return refuse(http.StatusMethodNotAllowed, "handshake over %s is an extended CONNECT (RFC 8441), not %s", r.Proto, quoted(r.Method))
	}
	// §4: "a new pseudo-header field :protocol [...] The value of the
	// :protocol pseudo-header field [is] websocket", a token of the
	// HTTP Upgrade Token Registry, which RFC 9110 §7.8 has recipients
	// compare ignoring case, as Accept does Upgrade's over HTTP/1.1.
	if p := r.Header.Get(":protocol"); !strings.EqualFold(p, "websocket") {
		return refuse(http.StatusBadRequest, "CONNECT with :protocol %s, not websocket", quoted(p))
	}
	if herr := checkTarget(r, true); herr != nil {
		return herr
	}
	if herr := checkHost(r); herr != nil {
		return herr
	}
	// RFC 9110 §9.3.6: "A CONNECT request message does not have
	// content." A content-length would have Go's HTTP/2 server cut the
	// WebSocket's input at that many bytes (and reset the stream past
	// them), as over HTTP/1.1 content is refused.
	if cl, ok := r.Header["Content-Length"]; ok {
		return refuse(http.StatusBadRequest, "extended CONNECT has a content-length (%s): a WebSocket's stream has none", quoted(cl...))
	}
	return checkVersion(r.Header, true)
}

// acceptStream answers an extended CONNECT that passed the checks and
// returns the Conn over its stream.
func acceptStream(w http.ResponseWriter, r *http.Request, subprotocol string, deflate *deflateParams, extensions string, opts *AcceptOptions) (*Conn, error) {
	names, err := extraHeaderNames(opts.ResponseHeader)
	if err != nil {
		http.Error(w, "websocket: server misconfigured", http.StatusInternalServerError)
		return nil, err
	}
	// What the handler set goes out as it is, as over HTTP/1.1 (see
	// responseHead), but for fields the handshake sets itself and those
	// of an HTTP/1.1 connection (connectionField).
	h := w.Header()
	for name := range h {
		if reservedHeader(name) || connectionField(name) {
			delete(h, name)
		}
	}
	for _, name := range names {
		if connectionField(name) {
			continue
		}
		for _, v := range opts.ResponseHeader[name] {
			h.Add(name, v)
		}
	}
	if subprotocol != "" {
		h[hdrProtocol] = []string{subprotocol}
	}
	if extensions != "" {
		h[hdrExtensions] = []string{extensions}
	}
	if len(h) == 0 {
		// Go's HTTP/2 server waits for the response's HEADERS to be
		// written only when the handler set a field: without one, the
		// frame could still be queued as Accept returned, and a reset
		// (stream.reset, a close with a write under way), which the
		// server sends ahead of queued frames, then ended the stream
		// before its 200, the client seeing its handshake reset. Date is
		// a field the server sends anyway.
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	rc := http.NewResponseController(w)
	// Server.ReadTimeout and WriteTimeout were meant for the request, not
	// the connection; over HTTP/2 they apply per stream.
	rc.SetReadDeadline(time.Time{})
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		// A wrapper that does not reach net/http's writer (no Unwrap):
		// closing could not end a write under way (stream.reset), and
		// would wait for it however long. Refused before the 200 goes
		// out, as over HTTP/1.1 such a writer cannot hijack.
		http.Error(w, "websocket: server misconfigured", http.StatusInternalServerError)
		return nil, opErr("accepting over HTTP/2: the ResponseWriter does not reach net/http's", err)
	}
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, opErr("sending the handshake response", err)
	}
	s := &stream{body: r.Body, w: w, rc: rc, ctx: r.Context(), remote: streamRemote(r.RemoteAddr)}
	cfg := connConfig{
		subprotocol: subprotocol,
		deflate:     deflate,
		tr:          transport{rw: s, closeInOrder: true},
	}
	cfg.apply(opts)
	return newConn(&cfg), nil
}

// connectionField reports whether name is a field of an HTTP/1.1
// connection that the handshake does not set itself (those are
// reservedHeader's): Keep-Alive, Proxy-Connection, or TE, which HTTP/2
// has in requests alone. RFC 9113 §8.2.2: "An endpoint MUST NOT generate
// an HTTP/2 message containing connection-specific header fields"; a
// client treats the response as malformed (Node.js's resets the stream,
// as this package's Dial does for the first two), and Go's HTTP/2 server
// sends them as they are. Over HTTP/2 they are left out, as they mean
// nothing there; over HTTP/1.1 they go.
func connectionField(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Keep-Alive", "Proxy-Connection", "Te":
		return true
	}
	return false
}

// errStreamEnded is the error of a write to a stream that has ended, in
// place of net/http's ("http2: stream closed", "client disconnected", or
// a panic once the handler has returned), which says no more of why.
var errStreamEnded = errors.New("the HTTP/2 stream ended: the peer reset it, its connection was lost, or its handler returned")

// stream is the transport of a server's WebSocket over an HTTP/2 stream:
// the request body in, the response writer out, each write flushed. It
// has no deadlines to offer: Go's HTTP/2 server closes the request body
// for good when a read deadline passes and resets the stream when a write
// deadline does, so a context that ends during a blocked call closes the
// connection. The stream lives as long as the handler that accepted it
// runs: closing it closes the request body, which ends the handler's
// reads, and the handler's return ends it on the wire. A write under way
// as the connection closes, which may be waiting for a flow-control
// window that never comes, is ended by resetting the stream, and waited
// for (quiesce) before any call finds the connection closed: the handler
// may then return, which net/http forbids while another goroutine writes
// to its ResponseWriter.
type stream struct {
	body   io.ReadCloser
	w      http.ResponseWriter
	rc     *http.ResponseController
	ctx    context.Context // the request's, for its values alone: its end is no sign of the stream's (see reset)
	remote net.Addr        // the HTTP/2 connection's peer

	mu      sync.Mutex
	writing bool          // mu: a Write is under way
	closed  bool          // mu: quiesce was called; no Write begins
	wrote   chan struct{} // mu: made by a quiesce that waits for the Write under way, closed as it returns
	cut     error         // mu: the end a read's context brought, once cutInput ended the request body
}

// LocalAddr returns the address the HTTP/2 connection was accepted on.
func (s *stream) LocalAddr() net.Addr {
	a, _ := s.ctx.Value(http.LocalAddrContextKey).(net.Addr)
	return a
}

// RemoteAddr returns the HTTP/2 connection's peer.
func (s *stream) RemoteAddr() net.Addr { return s.remote }

// streamRemote turns a request's RemoteAddr into a *net.TCPAddr, as a
// socket's would be, or keeps the text when it is not an IP and a port.
func streamRemote(s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return streamAddr(s)
}

// streamAddr is an address known only as the text net/http gives for it.
type streamAddr string

func (a streamAddr) Network() string { return "tcp" }
func (a streamAddr) String() string  { return string(a) }

// Read reads the request body. Once quiesce has reset the stream, the
// body's error is that reset's, which the Conn reports as its end.
func (s *stream) Read(p []byte) (int, error) {
	n, err := s.body.Read(p)
	if err != nil {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			// The caller reports the connection closed: like every
			// such call, only once the write under way has ended.
			s.quiesce()
			err = errStreamQuiesced
		}
	}
	return n, err
}

func (s *stream) Write(p []byte) (n int, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, errStreamQuiesced
	}
	s.writing = true
	s.mu.Unlock()
	defer func() {
		if s.endWrite() && err != nil {
			err = errStreamQuiesced
		}
	}()
	// net/http panics on a write after the handler returned, which a
	// handler that returns without closing the Conn, while another
	// goroutine writes, may still bring about.
	defer func() {
		if recover() != nil {
			n, err = 0, errStreamEnded
		}
	}()
	if n, err = s.w.Write(p); err == nil {
		err = s.rc.Flush()
	}
	if err != nil {
		err = errStreamEnded
	}
	return n, err
}

// errStreamQuiesced is the error of a write that the connection's
// closing ended or refused (quiesce): the Conn reports its end instead.
var errStreamQuiesced = errors.New("the HTTP/2 stream was closed with the connection")

// endWrite marks the end of a Write, waking a quiesce that waits for it,
// and reports whether one had begun.
func (s *stream) endWrite() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing = false
	if s.wrote != nil {
		close(s.wrote)
		s.wrote = nil
	}
	return s.closed
}

// quiesce has no Write begin from now on, and ends the Write under way,
// if any, by resetting the stream (RST_STREAM INTERNAL_ERROR, which Go's
// HTTP/2 server sends for a write deadline in the past), and waits for
// it: the write returns once the reset is written. Every caller waits,
// however long, so that none lets the handler return while the write goes
// on: net/http hands the response writer's state to another stream once
// its handler returns, and a write still in it would then write into that
// stream, or reset it. The reset cannot go out while the HTTP/2
// connection's socket takes nothing (a peer gone silent): the write then
// ends with that connection, which the server's
// http.HTTP2Config.WriteByteTimeout ends once its socket has taken nothing
// for that long.
func (s *stream) quiesce() {
	s.mu.Lock()
	s.closed = true
	if !s.writing {
		s.mu.Unlock()
		return
	}
	if s.wrote == nil {
		s.wrote = make(chan struct{})
		// Under mu, so that the Write, whose end (endWrite) waits for
		// mu, cannot end, nor any quiesce return, while the reset, a
		// call into the ResponseWriter, is under way.
		s.reset()
	}
	wrote := s.wrote
	s.mu.Unlock()
	<-wrote
}

// cutInput ends the request body for good, waking the read blocked on
// it, by a read deadline in the past, which Go's HTTP/2 server turns at
// once into the body's end and leaves the response writer as it was; end
// is what the read's context ending means for the connection, which the
// reader, woken, takes from inputCut. It reports whether the body was
// ended: not once the connection closed, nor after the handler returned.
func (s *stream) cutInput(end error) (ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	defer func() {
		if recover() != nil {
			ok = false // the handler returned: the stream has ended
		}
	}()
	if s.rc.SetReadDeadline(longAgo) != nil {
		return false
	}
	s.cut = end
	return true
}

// inputCut returns the end that cutInput recorded, nil if none.
func (s *stream) inputCut() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cut
}

// Close is called once, by the Conn's closeTransport, which has quiesced
// the stream already.
func (s *stream) Close() error { return s.body.Close() }

// reset resets the stream at once. It is called only while a Write is
// under way, so while the handler runs (closing waits for the write
// before the handler may return), whatever the request's context says:
// a middleware's timeout, or the server's BaseContext ended at shutdown,
// ends that context while the stream goes on, and a reset skipped then
// left the write, and the closing, waiting for a window the client never
// gave. A stream that the peer reset meanwhile gets our RST_STREAM too,
// which RFC 9113 §5.1 has the peer ignore.
func (s *stream) reset() {
	defer func() { recover() }() // the handler returned: the stream has ended
	s.rc.SetWriteDeadline(time.Now().Add(-time.Second))
}
