//go:build !js

package websocket

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rfc6455/websocket/internal/h2"
	"github.com/rfc6455/websocket/internal/hpack"
)

// WebSockets over HTTP/2, the client's side: Dial opens a stream with an
// extended CONNECT (RFC 8441 §4) on an HTTP/2 connection to the origin,
// over TLS with ALPN h2 for wss:// and over cleartext with prior
// knowledge (h2c) for ws://. WebSockets to one origin, dialed with the
// same HTTP client transport, share one connection as far as the
// server's SETTINGS_MAX_CONCURRENT_STREAMS allows (a Dial waits up to a
// second for the connection another is dialing, then dials its own); the
// connection closes when its last WebSocket ends. A stream the server
// did not process (refused by a GOAWAY, as a server shutting down sends,
// or by REFUSED_STREAM) is opened again, on a new connection if need be,
// up to h2DialTries streams in all; so is a request that waits on a
// pooled connection that has gone silent (probeSilent). The HTTP/2
// client is internal/h2, for the reasons its package documentation
// gives.

// h2Conns holds the HTTP/2 connections that Dial shares between
// WebSockets, as http.DefaultTransport holds its idle connections. A
// connection leaves it, and closes, when its last stream ends.
var h2Conns = h2Pool{conns: map[h2Key][]*h2.ClientConn{}, dialing: map[h2Key]*h2Dial{}}

// h2Refusals remembers, for h2RefusalTTL, the origins that did not take
// WebSockets over HTTP/2 when asked (no h2 by ALPN, no HTTP/2 over
// cleartext, no extended CONNECT), so that HTTP2Preferred dials to them
// go straight to HTTP/1.1 instead of paying for a connection that cannot
// serve each time. HTTP2Required asks again every time, and a success
// forgets the refusal.
var h2Refusals = refusals{until: map[h2Key]time.Time{}}

// h2RefusalTTL is how long a refusal is believed: long enough to spare a
// client that dials often the probe, short enough that a server that
// gains HTTP/2 support is noticed within minutes.
const h2RefusalTTL = 5 * time.Minute

type refusals struct {
	mu    sync.Mutex
	until map[h2Key]time.Time // mu
}

// refused reports whether key refused less than h2RefusalTTL ago.
func (r *refusals) refused(key h2Key) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	until, ok := r.until[key]
	if ok && time.Now().After(until) {
		delete(r.until, key)
		ok = false
	}
	return ok
}

// set records a refusal by key, or forgets it (refused false). Expired
// entries go on the way, so that a program dialing many origins through
// many transports does not accumulate them.
func (r *refusals) set(key h2Key, refused bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !refused {
		delete(r.until, key)
		return
	}
	now := time.Now()
	for k, until := range r.until {
		if now.After(until) {
			delete(r.until, k)
		}
	}
	r.until[key] = now.Add(h2RefusalTTL)
}

// h2Key names the connections one Dial may share: the same origin,
// reached through the same transport (its TLS configuration and dialer).
type h2Key struct {
	scheme, addr string
	tr           *http.Transport
}

type h2Pool struct {
	mu      sync.Mutex
	conns   map[h2Key][]*h2.ClientConn // mu
	dialing map[h2Key]*h2Dial          // mu: the dial under way for a key
}

// h2Dial is a connection being dialed, which other Dials to the key wait
// for rather than dialing their own, for up to h2DialShareWait.
type h2Dial struct {
	done chan struct{}
	err  error // set before done is closed
}

// h2DialShareWait bounds how long a Dial waits for the connection
// another Dial to the key is dialing before it dials one of its own: a
// server that never answers that one (a dead backend), dialed by a caller
// without a deadline, must not hold up every Dial to the origin.
const h2DialShareWait = time.Second

// get returns a connection for key with a stream reserved on it (see
// h2.ClientConn.Reserve), dialing one with dial when none has room, and
// whether it was in the pool already.
func (p *h2Pool) get(ctx context.Context, key h2Key, dial func(context.Context) (net.Conn, error)) (cc *h2.ClientConn, pooled bool, err error) {
	// The dial this one stopped waiting for. The dial that replaces it
	// is waited for in turn, so that the Dials stuck behind one make one
	// connection, not one each.
	var gaveUp *h2Dial
	for {
		p.mu.Lock()
		live := p.conns[key][:0]
		var found *h2.ClientConn
		for _, cc := range p.conns[key] {
			if cc.Err() != nil {
				continue
			}
			live = append(live, cc)
			if found == nil && cc.Reserve() {
				found = cc
			}
		}
		if len(live) == 0 {
			delete(p.conns, key)
		} else {
			p.conns[key] = live
		}
		if found != nil {
			p.mu.Unlock()
			return found, true, nil
		}
		if d := p.dialing[key]; d != nil && d != gaveUp {
			p.mu.Unlock()
			wait := time.NewTimer(h2DialShareWait)
			select {
			case <-d.done:
				wait.Stop()
				if d.err != nil && !errors.Is(d.err, context.Canceled) && !errors.Is(d.err, context.DeadlineExceeded) {
					return nil, false, d.err
				}
			case <-wait.C:
				gaveUp = d
			case <-ctx.Done():
				wait.Stop()
				return nil, false, ctx.Err()
			}
			continue
		}
		d := &h2Dial{done: make(chan struct{})}
		p.dialing[key] = d
		p.mu.Unlock()
		cc, err := p.dial(ctx, key, dial)
		p.mu.Lock()
		if p.dialing[key] == d {
			delete(p.dialing, key)
		}
		if err == nil {
			p.conns[key] = append(p.conns[key], cc)
		}
		d.err = err
		close(d.done)
		p.mu.Unlock()
		return cc, false, err
	}
}

// dial opens a connection for key and waits for the server's SETTINGS,
// which must offer extended CONNECT.
func (p *h2Pool) dial(ctx context.Context, key h2Key, dial func(context.Context) (net.Conn, error)) (*h2.ClientConn, error) {
	nc, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	// onIdle may run before NewClientConn returns: a GOAWAY that comes at
	// once leaves the new connection idle. It finds no connection then,
	// and the Reserve below fails, which closes it.
	var made atomic.Pointer[h2.ClientConn]
	// ctx bounds the preface's write too, which a transport that takes
	// nothing would hold.
	stop := context.AfterFunc(ctx, func() { nc.SetWriteDeadline(longAgo) })
	cc, err := h2.NewClientConnConfig(nc, func() { p.idle(key, made.Load()) }, h2Config(key.tr))
	if !stop() {
		if err == nil {
			cc.Close()
		}
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	made.Store(cc)
	if !cc.Reserve() {
		// Ended, or a GOAWAY came: no stream to be had.
		if err = cc.Err(); err == nil {
			err = h2.ErrUnavailable
		}
	} else {
		// The server's SETTINGS are the first it owes: the transport's
		// ResponseHeaderTimeout bounds the wait, as it bounds the
		// answer over HTTP/1.1.
		err = underTimeout(ctx, key.tr.ResponseHeaderTimeout, errResponseHeaderTimeout, cc.WaitSettings)
	}
	if err != nil {
		cc.Close()
		ce, connErr := asType[*h2.ConnError](err)
		switch {
		case errors.Is(err, h2.ErrNotHTTP2):
			return nil, fmt.Errorf("%w: %v", ErrHTTP2Unavailable, errText(err))
		case key.scheme == "http" && (connErr && ce.Remote || socketBroke(err)):
			// Without TLS, nothing said the server speaks HTTP/2: it
			// ended the connection (a server of HTTP/1.1 dropping what
			// it cannot parse resets it, having left the preface
			// unread) before its SETTINGS.
			return nil, fmt.Errorf("%w: the server does not speak HTTP/2 over cleartext: %v", ErrHTTP2Unavailable, err)
		}
		return nil, err
	}
	if !cc.ExtendedConnect() {
		cc.Close()
		return nil, fmt.Errorf("%w: the server does not offer extended CONNECT (no SETTINGS_ENABLE_CONNECT_PROTOCOL)", ErrHTTP2Unavailable)
	}
	return cc, nil
}

// socketBroke reports whether err is a failure of the socket itself, a
// reset by the peer say, rather than a timeout (the context's end, or
// the transport's ResponseHeaderTimeout, report theirs otherwise).
func socketBroke(err error) bool {
	oe, ok := asType[*net.OpError](err)
	return ok && !oe.Timeout()
}

// h2Config returns what t says of its HTTP/2 connections: its
// MaxResponseHeaderBytes bounds a response's header, as over HTTP/1.1
// (1 MiB, http.DefaultMaxHeaderBytes, if unset); its HTTP2 field's
// SendPingTimeout, PingTimeout and WriteByteTimeout bound a connection
// gone silent or stuck as net/http's own client has them do, and its
// MaxReceiveBufferPerStream, if valid (under 4 MiB), what each
// WebSocket's stream holds unread (h2.StreamWindow, 256 KiB, if not).
// The rest of HTTP2 does not apply: the connection's window (credited as
// data arrives, so bounding nothing held) and the frame sizes are the
// client's own.
func h2Config(t *http.Transport) h2.Config {
	var cfg h2.Config
	if n := t.MaxResponseHeaderBytes; n > 0 {
		cfg.HeaderLimit = uint32(min(n, 1<<32-1))
	}
	if c := t.HTTP2; c != nil {
		cfg.SendPingTimeout = c.SendPingTimeout
		cfg.PingTimeout = c.PingTimeout
		cfg.WriteByteTimeout = c.WriteByteTimeout
		if n := c.MaxReceiveBufferPerStream; n > 0 && n < 4<<20 {
			cfg.StreamWindow = uint32(n)
		}
	}
	return cfg
}

// idle takes cc out of the pool and closes it, if it is still idle.
func (p *h2Pool) idle(key h2Key, cc *h2.ClientConn) {
	p.mu.Lock()
	if cc == nil || !cc.Idle() {
		p.mu.Unlock()
		return
	}
	conns := p.conns[key]
	for i, c := range conns {
		if c == cc {
			p.conns[key] = append(conns[:i:i], conns[i+1:]...)
			break
		}
	}
	if len(p.conns[key]) == 0 {
		delete(p.conns, key)
	}
	p.mu.Unlock()
	go cc.Close()
}

// h2DialTries bounds how many streams one Dial opens, when the server
// refuses them unprocessed, or its connection has gone silent.
const h2DialTries = 4

// h2ProbeAfter is how long a Dial waits for the answer to its request on
// a pooled connection before it asks whether the connection still lives
// with a PING; h2ProbeWait, how long it then waits for the PING's answer
// before it takes the connection for dead.
const (
	h2ProbeAfter = time.Second
	h2ProbeWait  = 2 * time.Second
)

// The states of a probeSilent watch.
const (
	probeWaiting int32 = iota
	probeAnswered
	probeStale
)

// errSilentConn fails a Dial whose every try met a silent connection.
var errSilentConn = errors.New("http2: the connection went silent: a PING went unanswered")

// probeSilent watches a Dial's wait for the answer to its request, on
// stream s of the pooled connection cc: a connection whose peer has gone
// (a NAT or a firewall that dropped it, a host gone, a server whose
// reading hangs) would hold every Dial to the origin until its
// WebSockets' keepalive dropped them all. If the answer has not come
// within h2ProbeAfter, it pings cc; if the PING is not answered within
// h2ProbeWait either, it retires cc from the pool (its streams go on, as
// their keepalive decides), sets stale, and resets s, for the Dial to go
// again on another connection, unless the Dial has set state to
// probeAnswered first. It returns what stops the watch.
func probeSilent(ctx context.Context, cc *h2.ClientConn, s *h2.Stream, state *atomic.Int32) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait := time.NewTimer(h2ProbeAfter)
		defer wait.Stop()
		select {
		case <-wait.C:
		case <-ctx.Done():
			return
		}
		pctx, pcancel := context.WithTimeout(ctx, h2ProbeWait)
		err := cc.Ping(pctx)
		pcancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) && state.CompareAndSwap(probeWaiting, probeStale) {
			cc.Retire()
			s.Close()
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// dialHTTP2 dials a WebSocket over HTTP/2. done is false when Dial is to
// go on over HTTP/1.1 instead: opts.HTTP2 is HTTP2Preferred and the
// server does not take WebSockets over HTTP/2.
func dialHTTP2(ctx context.Context, rawURL string, u *url.URL, opts *DialOptions, comp compression) (c *Conn, resp *http.Response, err error, done bool) {
	fail := func(err error) (*Conn, *http.Response, error, bool) {
		if errors.Is(err, ErrHTTP2Unavailable) && opts.HTTP2 == HTTP2Preferred {
			return nil, nil, nil, false
		}
		return nil, nil, err, true
	}
	base := opts.HTTPClient
	if base == nil {
		base = http.DefaultClient
	}
	if base.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, base.Timeout)
		defer cancel()
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return fail(fmt.Errorf("%w: the HTTP client's transport is a %T, not an *http.Transport", ErrHTTP2Unavailable, rt))
	}
	if t.Proxy != nil {
		p, err := t.Proxy(&http.Request{Method: http.MethodConnect, URL: u, Header: http.Header{}, Host: u.Host})
		if err != nil {
			// Not that a proxy applies: which one is unknown, and
			// HTTP/1.1 would fail the same way.
			return nil, nil, dialErr(rawURL, err), true
		}
		if p != nil {
			return fail(fmt.Errorf("%w: a proxy applies to %s", ErrHTTP2Unavailable, u.Host))
		}
	}
	fields, req, err := connectFields(u, opts, comp, base.Jar)
	if err != nil {
		return nil, nil, err, true
	}
	key := h2Key{scheme: u.Scheme, addr: hostPort(u), tr: t}
	if opts.HTTP2 == HTTP2Preferred && h2Refusals.refused(key) {
		return nil, nil, nil, false
	}
	var s *h2.Stream
	var status int
	var respFields []hpack.Field
	for try := 1; ; try++ {
		cc, pooled, err := h2Conns.get(ctx, key, func(ctx context.Context) (net.Conn, error) { return dialH2(ctx, t, key, u.Hostname()) })
		if err != nil {
			if errors.Is(err, ErrHTTP2Unavailable) {
				h2Refusals.set(key, true)
				return fail(err)
			}
			return nil, nil, dialErr(rawURL, err), true
		}
		h2Refusals.set(key, false)
		s, err = cc.OpenStream(fields, true)
		var probe atomic.Int32 // probeSilent's: probeWaiting, probeAnswered or probeStale
		if err == nil {
			// The end of ctx cancels the handshake and resets the stream;
			// so does the transport's ResponseHeaderTimeout, as over
			// HTTP/1.1.
			err = underTimeout(ctx, t.ResponseHeaderTimeout, errResponseHeaderTimeout, func(ctx context.Context) (err error) {
				if pooled {
					defer probeSilent(ctx, cc, s, &probe)()
				}
				status, respFields, err = s.Response(ctx)
				if err == nil && !probe.CompareAndSwap(probeWaiting, probeAnswered) {
					err = errSilentConn // the answer came as the probe gave up
				}
				return err
			})
			if err != nil {
				s.Close()
			}
		}
		if err == nil {
			break
		}
		if probe.Load() == probeStale {
			if try < h2DialTries && ctx.Err() == nil {
				continue // on another connection: the pool has retired this one
			}
			err = errSilentConn
		}
		// RFC 9113 §8.7: a stream the server did not process, refused by
		// its GOAWAY or its RST_STREAM, or kept from opening by a GOAWAY
		// that came after the pool reserved it, goes again: the pool has
		// another connection for it, or dials one.
		if h2.Unprocessed(err) && try < h2DialTries && ctx.Err() == nil {
			continue
		}
		if se, ok := asType[*h2.StreamError](err); ok && !se.Remote {
			// The server's answer broke the rules (a malformed header,
			// a flood of informational responses): a handshake failed.
			return nil, nil, fmt.Errorf("%w: %s", ErrHandshake, errText(err)), true
		}
		return nil, nil, dialErr(rawURL, err), true
	}
	resp = &http.Response{
		Status:     strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode: status,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     http.Header{},
		Body:       http.NoBody,
		Request:    req,
	}
	for _, f := range respFields {
		resp.Header.Add(f.Name, f.Value)
	}
	if base.Jar != nil {
		if rc := resp.Cookies(); len(rc) > 0 {
			base.Jar.SetCookies(u, rc)
		}
	}
	if isRedirect(resp) && opts.HTTP2 == HTTP2Preferred {
		// Dial does not follow redirects over HTTP/2; over HTTP/1.1 the
		// client's redirect policy does, as for HTTP2Disabled.
		s.Close()
		return nil, nil, nil, false
	}
	// RFC 8441 §5: the server accepts with a 2xx, and there is no
	// Sec-WebSocket-Accept to check.
	if status < 200 || status > 299 {
		body := streamBody(ctx, s)
		s.Close()
		resp.Body = io.NopCloser(strings.NewReader(body))
		err := fmt.Errorf("%w: server answered %s, not 200", ErrHandshake, quoted(resp.Status))
		return nil, resp, withRefusal(err, body), true
	}
	subprotocol, deflate, err := checkNegotiated(resp.Header, opts.Subprotocols, comp)
	if err != nil {
		s.Close()
		return nil, resp, err, true
	}
	return newConn(&connConfig{
		client:            true,
		subprotocol:       subprotocol,
		deflate:           deflate,
		tr:                transport{rw: s, dl: s},
		closeTimeout:      opts.CloseTimeout,
		keepaliveInterval: opts.KeepaliveInterval,
		keepaliveTimeout:  opts.KeepaliveTimeout,
		queueLimit:        opts.WriteQueueLimit,
		closeOnFull:       opts.CloseOnQueueFull,
	}).started(), resp, nil, true
}

// connectFields returns the header list of the extended CONNECT (RFC 8441
// §4, §5) and the request it stands for, for the response's Request.
func connectFields(u *url.URL, opts *DialOptions, comp compression, jar http.CookieJar) ([]hpack.Field, *http.Request, error) {
	authority := u.Host
	if host := dialHost(opts); host != "" {
		authority = host
	}
	path := u.RequestURI()
	fields := []hpack.Field{
		{Name: ":method", Value: http.MethodConnect},
		{Name: ":protocol", Value: "websocket"},
		{Name: ":scheme", Value: u.Scheme},
		{Name: ":authority", Value: authority},
		{Name: ":path", Value: path},
	}
	header := http.Header{}
	for name, values := range opts.Header {
		name = strings.ToLower(name)
		if name == "host" {
			continue // :authority, from dialHost
		}
		for _, v := range values {
			f := hpack.Field{Name: name, Value: v}
			if err := h2.CheckRequestField(f); err != nil {
				return nil, nil, fmt.Errorf("websocket: DialOptions.Header cannot go over HTTP/2: %v", errText(err))
			}
			fields = append(fields, f)
			header.Add(name, v)
		}
	}
	add := func(name, value string) {
		fields = append(fields, hpack.Field{Name: name, Value: value})
		header.Set(name, value)
	}
	// The user and password in the URL go as Basic authorization, as over
	// HTTP/1.1 (withURLAuth), unless Header has its own.
	if ui := u.User; ui != nil && header.Get("Authorization") == "" {
		password, _ := ui.Password()
		add("authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(ui.Username()+":"+password)))
	}
	// §5: no Sec-WebSocket-Key; the version, subprotocols and extensions
	// go as over HTTP/1.1.
	add("sec-websocket-version", "13")
	if len(opts.Subprotocols) > 0 {
		add("sec-websocket-protocol", strings.Join(opts.Subprotocols, ", "))
	}
	if offer := comp.offer(); offer != "" {
		add("sec-websocket-extensions", offer)
	}
	if jar != nil {
		var cookies []string
		for _, c := range jar.Cookies(u) {
			cookies = append(cookies, c.Name+"="+c.Value)
		}
		if len(cookies) > 0 {
			add("cookie", strings.Join(cookies, "; "))
		}
	}
	req := &http.Request{Method: http.MethodConnect, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2, Header: header, Host: authority}
	return fields, req, nil
}

// hostPort returns u's host with the scheme's port when it has none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// dialH2 dials a connection for HTTP/2 with t's dialer and TLS
// configuration: TLS with ALPN h2 for https, plain TCP for h2c.
func dialH2(ctx context.Context, t *http.Transport, key h2Key, host string) (net.Conn, error) {
	// The deprecated DialTLS and Dial stand in for the others when only
	// they are set, as net/http has them.
	dialTLS := t.DialTLSContext
	//lint:ignore SA1019 net/http still dials with it
	if old := t.DialTLS; dialTLS == nil && old != nil {
		dialTLS = func(_ context.Context, network, addr string) (net.Conn, error) { return old(network, addr) }
	}
	if key.scheme == "https" && dialTLS != nil {
		nc, err := dialTLS(ctx, "tcp", key.addr)
		if err != nil {
			return nil, err
		}
		cs, ok := nc.(interface{ ConnectionState() tls.ConnectionState })
		if !ok || cs.ConnectionState().NegotiatedProtocol != "h2" {
			nc.Close()
			return nil, fmt.Errorf("%w: the transport's DialTLSContext gave a connection without ALPN h2", ErrHTTP2Unavailable)
		}
		return nc, nil
	}
	dial := t.DialContext
	//lint:ignore SA1019 net/http still dials with it
	if old := t.Dial; dial == nil && old != nil {
		dial = func(_ context.Context, network, addr string) (net.Conn, error) { return old(network, addr) }
	}
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", key.addr)
	if err != nil || key.scheme == "http" {
		return nc, err
	}
	cfg := &tls.Config{}
	if t.TLSClientConfig != nil {
		cfg = t.TLSClientConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"h2", "http/1.1"}
	tc := tls.Client(nc, cfg)
	// The transport's TLSHandshakeTimeout bounds the handshake, as
	// net/http's client bounds it over HTTP/1.1.
	if err := underTimeout(ctx, t.TLSHandshakeTimeout, errTLSHandshakeTimeout, tc.HandshakeContext); err != nil {
		nc.Close()
		return nil, err
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		tc.Close()
		return nil, fmt.Errorf("%w: the server chose %q by ALPN, not h2", ErrHTTP2Unavailable, p)
	}
	return tc, nil
}

// underTimeout runs op with ctx bounded by d, a timeout of the HTTP
// client's transport (none when d is 0 or less), and returns op's error,
// or timeout, the error that says so, when d ran out before ctx ended.
func underTimeout(ctx context.Context, d time.Duration, timeout error, op func(context.Context) error) error {
	if d <= 0 {
		return op(ctx)
	}
	bounded, cancel := context.WithTimeoutCause(ctx, d, timeout)
	defer cancel()
	err := op(bounded)
	if err != nil && ctx.Err() == nil && context.Cause(bounded) == timeout {
		return timeout
	}
	return err
}

// errTLSHandshakeTimeout is the error of a TLS handshake that took longer
// than the transport's TLSHandshakeTimeout, net/http's words for it.
var errTLSHandshakeTimeout error = transportTimeout("net/http: TLS handshake timeout")

// errResponseHeaderTimeout is the error of a handshake whose answer took
// longer than the transport's ResponseHeaderTimeout, net/http's words.
var errResponseHeaderTimeout error = transportTimeout("net/http: timeout awaiting response headers")

// transportTimeout is a timeout of the HTTP client's transport: a
// net.Error whose Timeout is true, as net/http's own.
type transportTimeout string

func (e transportTimeout) Error() string { return string(e) }
func (transportTimeout) Timeout() bool   { return true }
func (transportTimeout) Temporary() bool { return true }

// streamBody reads up to 1 KiB of a refusal's body, within ctx.
func streamBody(ctx context.Context, s *h2.Stream) string {
	stop := context.AfterFunc(ctx, func() { s.SetReadDeadline(longAgo) })
	defer stop()
	b, _ := io.ReadAll(io.LimitReader(s, 1<<10))
	return string(b)
}
