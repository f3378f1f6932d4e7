//go:build !js

package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Dial opens a WebSocket connection to rawURL (ws, wss, http or https)
// with the opening handshake of RFC 6455 §4.1, sent through net/http.
// A user and password in the URL go as Basic authorization, unless
// DialOptions.Header sets Authorization, as net/http's client sends them.
//
// ctx bounds the handshake; once Dial returns, it no longer governs the
// connection. On a refused or malformed handshake, Dial returns an error
// wrapping ErrHandshake that says which check failed, together with the
// response, whose Body holds up to 1 KiB of what the server sent. On
// success the response's Body is empty (http.NoBody): the connection it
// came on belongs to the Conn, and closing the Body does not touch it.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Conn, *http.Response, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	u, err := dialURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	if err := checkDialOptions(opts); err != nil {
		return nil, nil, err
	}
	comp, err := newCompression(opts.Compression, opts.CompressionThreshold, opts.CompressionWindowBits)
	if err != nil {
		return nil, nil, err
	}
	if opts.HTTP2 != HTTP2Disabled {
		if c, resp, err, done := dialHTTP2(ctx, rawURL, u, opts, comp); done {
			return c, resp, err
		}
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])

	base := opts.HTTPClient
	if base == nil {
		base = http.DefaultClient
	}
	if base.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, base.Timeout)
		defer cancel()
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: %w", err)
	}
	// Names go in canonical form, as Header.Add puts them, for the checks
	// by name that follow (withURLAuth, net/http's client) to see them.
	for name, values := range opts.Header {
		if name = http.CanonicalHeaderKey(name); name != "Host" { // the request's Host, below
			req.Header[name] = append(req.Header[name], values...)
		}
	}
	if host := dialHost(opts); host != "" {
		req.Host = host
	}
	req.Header["Upgrade"] = []string{"websocket"}
	req.Header["Connection"] = []string{"Upgrade"}
	req.Header[hdrKey] = []string{key}
	req.Header[hdrVersion] = []string{"13"}
	if len(opts.Subprotocols) > 0 {
		req.Header[hdrProtocol] = []string{strings.Join(opts.Subprotocols, ", ")}
	}
	if offer := comp.offer(); offer != "" {
		req.Header[hdrExtensions] = []string{offer}
	}

	var (
		resp     *http.Response
		tr       transport
		buffered []byte
		direct   net.Conn // the connection of a 101 that Dial read itself
	)
	var redirect *http.Response
	if dial, ok := directDial(opts, req); ok {
		resp, direct, buffered, err = handshakeDirect(ctx, dial, req)
		if errors.Is(err, ErrHandshake) {
			return nil, nil, err
		}
		if err != nil {
			return nil, nil, dialErr(rawURL, err)
		}
		if direct != nil {
			tr = netTransport(direct)
		}
		if isRedirect(resp) {
			redirect, resp = resp, nil
		}
	}
	if resp == nil {
		client, conns := handshakeClient(base)
		if t, ok := client.Transport.(*http.Transport); ok {
			defer t.CloseIdleConnections()
		}
		if redirect != nil {
			// The client follows the redirect from the response Dial
			// already has, rather than send the request again.
			client.Transport = &answered{resp: redirect, next: client.Transport}
		}
		// The last redirect followed, named in an error that comes after
		// it: that the server could not be reached, or its certificate
		// has another name, is said of the URL redirected to.
		var redirected *url.URL
		check := client.CheckRedirect
		client.CheckRedirect = func(r *http.Request, via []*http.Request) error {
			err := check(r, via)
			if err == nil {
				redirected = r.URL
			}
			return err
		}
		counted, stop := countInterim(req.Context())
		defer stop()
		resp, err = client.Do(req.WithContext(counted))
		if context.Cause(counted) == errTooManyInterim {
			if err == nil {
				resp.Body.Close()
			}
			return nil, nil, errTooManyInterim
		}
		if cause := brokenAnswer(err, conns); cause != nil {
			return nil, nil, fmt.Errorf("%w: %s", ErrHandshake, clippedError{cause})
		}
		if err != nil {
			return nil, nil, dialErr(rawURL, afterRedirect(redirected, brokenCause(err)))
		}
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			tr = transport{rw: rwc}
			if nc := conns.last(); nc != nil {
				tr.dl = nc
			}
			if _, ok := tr.dl.(tlsConn); ok || resp.TLS != nil {
				// (A DialTLSContext's connection that embeds a
				// *tls.Conn leaves resp.TLS nil.)
				tr.flags = tlsStream
			}
		}
	}
	subprotocol, deflate, err := checkResponse(resp, key, opts.Subprotocols, comp)
	if err != nil {
		body := keepBody(resp) // closes the HTTP client's connection, the body of its 101
		if direct != nil {
			direct.Close()
		}
		return nil, resp, withRefusal(err, string(body))
	}
	if tr.rw == nil {
		resp.Body.Close()
		return nil, resp, fmt.Errorf("websocket: the HTTP client's response body (%T) is not writable", resp.Body)
	}
	// The HTTP client's 101 has the connection as its Body; a caller who
	// closes it as any response body must not close the WebSocket.
	resp.Body = http.NoBody
	return newConn(&connConfig{
		client:            true,
		subprotocol:       subprotocol,
		deflate:           deflate,
		tr:                tr,
		buffered:          buffered,
		closeTimeout:      opts.CloseTimeout,
		keepaliveInterval: opts.KeepaliveInterval,
		keepaliveTimeout:  opts.KeepaliveTimeout,
		queueLimit:        opts.WriteQueueLimit,
		closeOnFull:       opts.CloseOnQueueFull,
	}).started(), resp, nil
}

// checkDialOptions checks the request headers and subprotocols the
// caller gave before anything is sent, so that whatever sends the
// handshake (Dial itself, which would drop a bad header name and turn CR
// and LF in a value into spaces, or an HTTP client, which refuses both)
// Dial fails the same way.
func checkDialOptions(opts *DialOptions) error {
	for name, values := range opts.Header {
		if !validHeaderName(name) {
			return fmt.Errorf("websocket: DialOptions.Header name %q is not a valid header name", name)
		}
		if slices.Contains(reservedHeaders, http.CanonicalHeaderKey(name)) {
			return fmt.Errorf("websocket: DialOptions.Header may not set %s", name)
		}
		for _, v := range values {
			if !validHeaderValue(v) {
				return fmt.Errorf("websocket: DialOptions.Header %s has a value with control characters", name)
			}
		}
	}
	if opts.HTTP2 < HTTP2Disabled || opts.HTTP2 > HTTP2Required {
		return fmt.Errorf("websocket: DialOptions.HTTP2 is %d, not HTTP2Disabled, HTTP2Preferred or HTTP2Required", int(opts.HTTP2))
	}
	var hosts []string
	for name, values := range opts.Header {
		if http.CanonicalHeaderKey(name) == "Host" {
			hosts = append(hosts, values...)
		}
	}
	switch {
	case len(hosts) > 1:
		return fmt.Errorf("websocket: DialOptions.Header has %d Host values", len(hosts))
	case len(hosts) == 1 && hosts[0] != "" && opts.Host != "" && hosts[0] != opts.Host:
		return fmt.Errorf("websocket: DialOptions.Header sets Host %q and DialOptions.Host %q", hosts[0], opts.Host)
	}
	// net/http would send a Host it cannot take as an empty one, which
	// names no server.
	if host := dialHost(opts); !validHostHeader(host) {
		return fmt.Errorf("websocket: DialOptions: Host %q is not a host, with an optional port", host)
	}
	// RFC 6455 §4.1: the subprotocols offered "MUST be non-empty strings
	// with characters in the range U+0021 to U+007E not including
	// separator characters ... and MUST all be unique strings."
	for i, p := range opts.Subprotocols {
		if !validHeaderName(p) {
			return fmt.Errorf("websocket: DialOptions.Subprotocols: %q is not a token (RFC 6455 §4.1)", p)
		}
		if slices.Contains(opts.Subprotocols[:i], p) {
			return fmt.Errorf("websocket: DialOptions.Subprotocols names %q twice", p)
		}
	}
	return nil
}

// validHostHeader reports whether host is made of the characters an
// authority may hold (RFC 3986 §3.2: unreserved, percent-encoded,
// sub-delims, the colon of a port and the brackets of an IPv6 address),
// or of bytes past ASCII, which net/http turns into punycode. Another
// character, a space or a slash, would have net/http send the Host empty.
func validHostHeader(host string) bool {
	for i := 0; i < len(host); i++ {
		switch b := host[i]; {
		case b >= 0x80, 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("-._~%!$&'()*+,;=:[]", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// dialHost returns the Host the handshake asks for, "" for the URL's:
// DialOptions.Host, or else a Host in DialOptions.Header, which net/http
// would not send (it writes Request.Host, and a Host key not spelled so
// as a second Host header). checkDialOptions has seen that there is one
// Host at most.
func dialHost(opts *DialOptions) string {
	if opts.Host != "" {
		return opts.Host
	}
	for name, values := range opts.Header {
		if http.CanonicalHeaderKey(name) == "Host" && len(values) > 0 {
			return values[0]
		}
	}
	return ""
}

// directDial returns the dial function for a handshake that Dial can send
// itself rather than through an HTTP client, which saves the client's
// per-request machinery (a transport of its own, since connections are
// not shared; two goroutines; its bookkeeping), about half of what a
// handshake costs. That is when the client would have done just that:
// the default client, unmodified, for a ws:// URL that no proxy applies
// to. The default transport's dial function is used, so a program that
// replaced it still has its way, as one that set the transport's bounds on
// the response does.
func directDial(opts *DialOptions, req *http.Request) (dialFunc, bool) {
	return directDialVia(http.DefaultClient, http.DefaultTransport, opts, req)
}

// directDialVia is directDial with dc as the default client, and rt as
// the default transport.
func directDialVia(dc *http.Client, rt http.RoundTripper, opts *DialOptions, req *http.Request) (dialFunc, bool) {
	// A host past ASCII is dialed under its IDNA name, which net/http's
	// client makes and the standard library offers no other way to.
	if opts.HTTPClient != nil || req.URL.Scheme != "http" || !isASCII(req.URL.Host) {
		return nil, false
	}
	if dc.Transport != nil || dc.CheckRedirect != nil || dc.Jar != nil || dc.Timeout != 0 {
		return nil, false
	}
	t, ok := rt.(*http.Transport)
	//lint:ignore SA1019 a program may still set the deprecated Dial, and the transport would use it
	if !ok || t.Dial != nil || t.OnProxyConnectResponse != nil || t.GetProxyConnectHeader != nil {
		return nil, false
	}
	if t.ResponseHeaderTimeout != 0 || t.MaxResponseHeaderBytes != 0 {
		// Bounds on the response that the client applies, and a
		// handshake of Dial's own would not.
		return nil, false
	}
	if t.Proxy != nil {
		if p, err := t.Proxy(req); err != nil || p != nil {
			return nil, false
		}
	}
	if t.DialContext != nil {
		return t.DialContext, true
	}
	var d net.Dialer
	return d.DialContext, true
}

// maxResponseHeader bounds the response header that handshakeDirect
// reads: as much as a net/http server reads of a request's header. A 101
// takes a few hundred bytes; a server that sends header lines without end
// must not have Dial keep them all until ctx ends.
const maxResponseHeader = http.DefaultMaxHeaderBytes

// maxInterimResponses is how many 1xx responses other than 101 Dial skips
// before the response to its request, whether it reads the response
// itself or an HTTP client does.
const maxInterimResponses = 5

// errTooManyInterim is Dial's error for a server that sent more than
// maxInterimResponses.
var errTooManyInterim = fmt.Errorf("%w: server sent more than %d interim responses", ErrHandshake, maxInterimResponses)

// countInterim returns ctx with a trace that fails a request answered by
// more than maxInterimResponses interim responses, as handshakeDirect
// does: an HTTP client alone skips any number of them, within its bound
// on the response header. The count starts again with each request, a
// redirect's included. Hooks of a trace that ctx already has still run;
// as httptrace composes hooks, the answer of the caller's Got1xxResponse
// is the one the client acts on, so the hook also cancels the returned
// context, with errTooManyInterim as its cause, and the caller checks
// that cause whatever the client returned. stop releases the context.
func countInterim(ctx context.Context) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	var n atomic.Int32
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { n.Store(0) },
		Got1xxResponse: func(int, textproto.MIMEHeader) error {
			if n.Add(1) > maxInterimResponses {
				cancel(errTooManyInterim)
				return errTooManyInterim
			}
			return nil
		},
	}), func() { cancel(nil) }
}

// handshakeDirect sends req on a connection of its own and reads the
// response, bounded by ctx and maxResponseHeader. For a 101 it returns the response, the
// connection and the bytes that came after the response's header; for
// anything else, the response alone, its body kept (keepBody) and the
// connection closed. A redirect among those is for the HTTP client to
// follow (answered).
func handshakeDirect(ctx context.Context, dial dialFunc, req *http.Request) (*http.Response, net.Conn, []byte, error) {
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, nil, err
	}
	// The end of ctx interrupts the exchange; ctx's deadline is not copied
	// to the connection, so that the error is always ctx's.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(longAgo) })
	bw := bufio.NewWriterSize(nc, 512)
	err = withURLAuth(req).Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	var resp *http.Response
	rec := &readRecorder{r: nc}
	head := &io.LimitedReader{R: rec, N: maxResponseHeader}
	br := bufio.NewReaderSize(head, 1024)
	// Interim responses (100 Continue, 103 Early Hints) may come before
	// the one that answers; a few are skipped, within the header limit.
	for interim := 0; err == nil; interim++ {
		resp, err = http.ReadResponse(br, req)
		switch {
		case err == nil:
		case head.N == 0:
			err = fmt.Errorf("%w: response header exceeds %d bytes", ErrHandshake, maxResponseHeader)
		case rec.n == 0 && rec.err == io.EOF:
			// The server closed without a byte of answer: io.EOF, as
			// net/http's client says it, where ReadResponse would say
			// the answer was cut short.
			err = io.EOF
		case malformed(err) && rec.err != nil:
			// A read failed: bufio hands back the part of a line that
			// came before it without an error, and what is said of that
			// cut line is not the server's fault.
			if err = rec.err; err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
		case malformed(err):
			err = fmt.Errorf("%w: %s", ErrHandshake, clippedError{err})
		}
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if interim == maxInterimResponses {
			err = errTooManyInterim
		}
	}
	refused := err == nil && resp.StatusCode != http.StatusSwitchingProtocols
	if refused {
		// While ctx still bounds the exchange: a refusal whose body is
		// slow to come is kept with what came.
		keepBody(resp)
	}
	if stopped := stop(); !refused && (!stopped || ctx.Err() != nil) {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	if !refused {
		nc.SetDeadline(time.Time{})
		var buffered []byte
		if n := br.Buffered(); n > 0 {
			p, _ := br.Peek(n)
			buffered = bytes.Clone(p)
		}
		resp.Body = http.NoBody
		return resp, nc, buffered, nil
	}
	nc.Close()
	return resp, nil, nil, nil
}

// isASCII reports whether s holds only ASCII bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isRedirect reports whether the HTTP client would follow resp, a
// refusal handshakeDirect read, as a redirect.
func isRedirect(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return resp.Header.Get("Location") != ""
	}
	return false
}

// readRecorder keeps the first error of its reader's reads, and counts
// the bytes read.
type readRecorder struct {
	r   io.Reader
	n   int64
	err error
}

func (r *readRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}

// malformed reports whether err, from http.ReadResponse, says that what
// came is not an HTTP response, rather than that reading failed.
func malformed(err error) bool {
	if _, ok := asType[net.Error](err); ok {
		return false
	}
	return !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) &&
		!errors.Is(err, os.ErrDeadlineExceeded)
}

// httpBroken starts net/http's error for a connection whose response it
// could not read, wrapping why.
const httpBroken = "net/http: HTTP/1.x transport connection broken: "

// httpBrokenCause returns, when err is net/http's client failing for a
// connection whose response it could not read (httpBroken), the URL
// error and why it could not; nil and nil otherwise.
func httpBrokenCause(err error) (*url.Error, error) {
	ue, ok := err.(*url.Error)
	if !ok || !strings.HasPrefix(ue.Err.Error(), httpBroken) {
		return nil, nil
	}
	return ue, errors.Unwrap(ue.Err)
}

// brokenAnswer returns why net/http's client could not read the response
// to the handshake, when what the server sent was not HTTP (a status line,
// a header line, a header too long) rather than a failed read: the error
// Dial's own reading gives as a malformed handshake. Otherwise nil; so
// too when a read of the connection failed (a line cut short), or the
// transport is not one whose reads conns sees.
func brokenAnswer(err error, conns *dialedConns) error {
	ue, cause := httpBrokenCause(err)
	if cause == nil {
		return nil
	}
	if u, err := url.Parse(ue.URL); err != nil || u.Scheme != "http" {
		// net/http ran TLS over the connection it dialed: a read that
		// crypto/tls failed (close_notify, an alert, a bad record)
		// never reaches that connection, and bufio hands the line it
		// cut short back as a whole one.
		return nil
	}
	if malformed(cause) && conns.answerIntact() {
		return cause
	}
	return nil
}

// brokenCause returns the failed read under net/http's error for a
// connection broken before the response came whole ("unexpected EOF", a
// reset), which is the error Dial gives when it reads the response
// itself; err otherwise. A cause that says the answer was malformed is
// left wrapped: brokenAnswer has found that a failed read may be what
// cut it.
func brokenCause(err error) error {
	if _, cause := httpBrokenCause(err); cause != nil && !malformed(cause) {
		return cause
	}
	return err
}

// afterRedirect returns err, the failure of a request an HTTP client sent
// after following a redirect to u, as one that names u, where
// net/http's *url.Error, which dialErr drops, named it alone. With u nil
// (no redirect followed), it returns err.
func afterRedirect(u *url.URL, err error) error {
	if u == nil {
		return err
	}
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err
	}
	return fmt.Errorf("redirected to %s: %w", quoted(u.Redacted()), err)
}

// answered is a RoundTripper whose first round trip returns resp, the
// answer to a request already sent, and whose others go to next.
type answered struct {
	resp *http.Response
	next http.RoundTripper
}

func (a *answered) RoundTrip(req *http.Request) (*http.Response, error) {
	if resp := a.resp; resp != nil {
		a.resp = nil
		resp.Request = req
		return resp, nil
	}
	return a.next.RoundTrip(req)
}

// withURLAuth returns req with the Authorization header that an HTTP
// client sends for the user and password in the URL (Basic, RFC 7617)
// when req has none of its own, as Request.Write alone would not.
func withURLAuth(req *http.Request) *http.Request {
	u := req.URL.User
	if u == nil || req.Header.Get("Authorization") != "" {
		return req
	}
	r := *req
	r.Header = req.Header.Clone()
	password, _ := u.Password()
	r.SetBasicAuth(u.Username(), password)
	return &r
}

// checkResponse checks the server's handshake response (RFC 6455 §4.1)
// and returns the subprotocol and compression it chose.
func checkResponse(resp *http.Response, key string, offered []string, comp compression) (string, *deflateParams, error) {
	fail := func(format string, args ...any) (string, *deflateParams, error) {
		return "", nil, fmt.Errorf("%w: %s", ErrHandshake, fmt.Sprintf(format, args...))
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fail("server answered %s, not 101 Switching Protocols", quoted(resp.Status))
	}
	if resp.ProtoMajor != 1 || resp.ProtoMinor < 1 {
		// RFC 9110 §7.8: Upgrade is HTTP/1.1's; a 101 in another
		// version switches nothing.
		return fail("server answered in %s, a 101 needs HTTP/1.1", quoted(resp.Proto))
	}
	if !headerHasToken(resp.Header, "Upgrade", "websocket") {
		return fail("response Upgrade header %s lacks the websocket token", quoted(resp.Header["Upgrade"]...))
	}
	// §4.1: an Upgrade with a value other than "websocket" fails the
	// connection; one that names more protocols switches to a stack of
	// them (RFC 9110 §7.8).
	if other := otherToken(resp.Header["Upgrade"], "websocket"); other != "" {
		return fail("response Upgrade header %s names %s beside websocket", quoted(resp.Header["Upgrade"]...), quoted(other))
	}
	if !headerHasToken(resp.Header, "Connection", "upgrade") {
		return fail("response Connection header %s lacks the upgrade token", quoted(resp.Header["Connection"]...))
	}
	var buf [28]byte
	if got, want := resp.Header[hdrAccept], appendAcceptKey(buf[:0], key); len(got) != 1 || got[0] != string(want) {
		return fail("Sec-WebSocket-Accept %s, want %q", quoted(got...), want)
	}
	return checkNegotiated(resp.Header, offered, comp)
}

// otherToken returns the first element of the comma-separated lists
// values that is not token (in any case), "" when there is none.
func otherToken(values []string, token string) string {
	for t := range listElements(values) {
		if !strings.EqualFold(t, token) {
			return t
		}
	}
	return ""
}

// checkNegotiated checks the subprotocol and extensions a server chose,
// over HTTP/1.1 or HTTP/2, and returns them.
func checkNegotiated(h http.Header, offered []string, comp compression) (string, *deflateParams, error) {
	fail := func(format string, args ...any) (string, *deflateParams, error) {
		return "", nil, fmt.Errorf("%w: %s", ErrHandshake, fmt.Sprintf(format, args...))
	}
	var subprotocol string
	switch p := h[hdrProtocol]; len(p) {
	case 0:
	case 1:
		if !slices.Contains(offered, p[0]) {
			return fail("server chose subprotocol %s, which was not offered", quoted(p[0]))
		}
		subprotocol = p[0]
	default:
		return fail("server sent %d Sec-WebSocket-Protocol headers", len(p))
	}
	deflate, err := comp.check(h)
	if err != nil {
		return fail("%s", errText(err))
	}
	return subprotocol, deflate, nil
}

// withRefusal adds to err, a refused handshake's, the first line of the
// response's body: the server's own words on why it refused, when it gave
// any. Those of our own Accept lose their prefix, which err has.
func withRefusal(err error, body string) error {
	line, _, _ := strings.Cut(body, "\n")
	if line = strings.TrimSpace(line); line == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, quoted(strings.TrimPrefix(line, "websocket: ")))
}

// keepBody replaces the body of a refused handshake with up to 1 KiB of it,
// and closes the connection. The body of a 101 response is the connection
// itself, where nothing more is to be read.
func keepBody(resp *http.Response) []byte {
	var b []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

// dialedConns records the connections a handshake's transport dials, so
// that the Conn can set deadlines on the last one, which carries the 101
// response (redirects may dial several; keep-alives are off).
type dialedConns struct {
	mu sync.Mutex
	nc net.Conn
	rf *readFailConn // mu: what the transport reads nc through, nil if not one
}

func (d *dialedConns) add(nc net.Conn, rf *readFailConn) {
	d.mu.Lock()
	d.nc, d.rf = nc, rf
	d.mu.Unlock()
}

// answerIntact reports whether the last connection was read through a
// readFailConn, and no read of it failed or met its end.
func (d *dialedConns) answerIntact() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rf != nil && !d.rf.failed.Load()
}

// readFailConn is a connection the handshake's transport dialed, which
// notes when a read fails: net/http, like bufio under it, hands back a
// line that the connection's end cut short as a whole one, and what it
// then says of the line (a missing colon) is not the server's fault
// (brokenAnswer).
type readFailConn struct {
	net.Conn
	failed atomic.Bool
}

func (c *readFailConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.failed.Store(true)
	}
	return n, err
}

func (d *dialedConns) last() net.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nc
}

type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// keepTLS returns a redirect policy that refuses to leave TLS: a wss://
// handshake redirected to http:// would go on, and the WebSocket after
// it, in cleartext, with the caller's headers. It takes ws:// and wss://
// for the HTTP URLs they stand for, and refuses other schemes. Other
// redirects are left to check, or to net/http's default policy when it is
// nil.
func keepTLS(check func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		// A Location may name a WebSocket URL, which net/http's transport
		// does not know: it goes to the HTTP URL Dial maps it to.
		switch req.URL.Scheme {
		case "ws":
			req.URL.Scheme = "http"
		case "wss":
			req.URL.Scheme = "https"
		}
		// The caller's policy sees every redirect first, and may stop at
		// it (http.ErrUseLastResponse, which net/http compares as is) or
		// rewrite the request; what it leaves is checked.
		var err error
		switch {
		case check != nil:
			err = check(req, via)
		case len(via) >= maxRedirects:
			err = fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		switch {
		case err != nil:
		case req.URL.Scheme != "http" && req.URL.Scheme != "https":
			err = fmt.Errorf("%w: redirected from %s to %s, not a WebSocket URL", ErrHandshake, quoted(via[0].URL.Redacted()), quoted(req.URL.Redacted()))
		case via[0].URL.Scheme == "https" && req.URL.Scheme != "https":
			err = fmt.Errorf("%w: redirected from %s to %s, which leaves TLS", ErrHandshake, quoted(via[0].URL.Redacted()), quoted(req.URL.Redacted()))
		}
		return err
	}
}

// maxRedirects is net/http's default limit, which keepTLS keeps.
const maxRedirects = 10

// handshakeClient returns a copy of base for one handshake. When base's
// transport is an *http.Transport, the copy uses a clone of it that records
// the connections it dials, keeps none alive, and reaches a URL through a
// proxy's tunnel of Dial's own (tunnelHTTP). With another RoundTripper, the
// Conn runs without deadlines.
func handshakeClient(base *http.Client) (*http.Client, *dialedConns) {
	client := *base
	client.Timeout = 0
	client.CheckRedirect = keepTLS(base.CheckRedirect)
	conns := &dialedConns{}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return &client, conns
	}
	t = t.Clone()
	t.DisableKeepAlives = true
	if t.MaxResponseHeaderBytes == 0 {
		// As Dial's own reads, and a proxy's answer to CONNECT, which
		// net/http reads for a wss:// handshake, rather than 10 MB.
		t.MaxResponseHeaderBytes = maxResponseHeader
	}
	// record notes each connection dialed, and when net/http runs TLS
	// (or nothing) over it, has net/http read it through a readFailConn;
	// a TLS connection of the caller's DialTLSContext goes as it is,
	// net/http taking its TLS state from its type.
	record := func(dial dialFunc, tls bool) dialFunc {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := dial(ctx, network, addr)
			if err != nil {
				return nc, err
			}
			if tls {
				conns.add(nc, nil)
				return nc, nil
			}
			rf := &readFailConn{Conn: nc}
			conns.add(nc, rf)
			return rf, nil
		}
	}
	//lint:ignore SA1019 the caller's transport may still set the deprecated hooks, which it would use
	oldDial, dialTLS := t.Dial, t.DialTLS
	var dial dialFunc
	switch {
	case t.DialContext != nil:
		dial = t.DialContext
	case oldDial != nil:
		dial = func(_ context.Context, network, addr string) (net.Conn, error) {
			return oldDial(network, addr)
		}
	default:
		var d net.Dialer
		dial = d.DialContext
	}
	if t.Proxy != nil {
		dial = tunnelHTTP(t, dial)
	}
	t.DialContext = record(dial, false)
	if t.DialTLSContext != nil {
		t.DialTLSContext = record(t.DialTLSContext, true)
	} else if dialTLS != nil {
		t.DialTLSContext = record(func(_ context.Context, network, addr string) (net.Conn, error) {
			return dialTLS(network, addr)
		}, true)
	}
	// net/http reports a proxy's refusal of CONNECT with the reason phrase
	// alone ("Forbidden"), which names neither the proxy nor the status.
	hook := t.OnProxyConnectResponse
	t.OnProxyConnectResponse = func(ctx context.Context, proxy *url.URL, req *http.Request, resp *http.Response) error {
		if hook != nil {
			if err := hook(ctx, proxy, req, resp); err != nil {
				return err
			}
		}
		return proxyRefused(proxy, req, resp)
	}
	client.Transport = t
	return &client, conns
}
