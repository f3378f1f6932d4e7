//go:build !js

package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// A ws:// handshake through an HTTP proxy goes through a tunnel. RFC 6455
// §4.1: a client configured to use a proxy "SHOULD connect to that proxy
// and ask it to open a TCP connection to the host given by /host/ and the
// port given by /port/". net/http's transport does that for https:// URLs
// only; an http:// request it sends to the proxy to forward, as GET
// http://host/path, and a forward proxy need not pass the Upgrade on.
// Dial opens the tunnel itself for https:// URLs too, so that a proxy's
// answer is judged as for ws://: net/http's own reports an answer over
// its header limit as "unexpected EOF", one that is not HTTP as though
// the server had sent it, and drops what the proxy sent after it.

// tunnelHTTP makes t, a transport of handshakeClient's own, reach the
// URLs its Proxy sends to an HTTP or HTTPS proxy through a tunnel the
// proxy opens with CONNECT: http:// ones, and https:// ones unless t has
// a TLS dial function of the caller's, which net/http would call for the
// server's address in place of the tunnel (there net/http opens the
// tunnel). It returns the dial function for t's DialContext, given the
// one t had: the transport, told there is no proxy, asks it for the
// server's address, and it dials the tunnel instead, over which the
// transport runs TLS for https:// as over a connection of its own. Other
// proxies (SOCKS) tunnel already, and are left to the transport.
//
// The proxy for the next dial passes from t.Proxy to the dial function:
// handshakeClient's transport keeps no connection alive, and a handshake
// sends one request at a time (the redirects follow one another), so
// each request's call of Proxy is followed by its own dial, before the
// next request's.
func tunnelHTTP(t *http.Transport, dial dialFunc) dialFunc {
	proxyFor := t.Proxy
	//lint:ignore SA1019 the caller's transport may still set the deprecated DialTLS, which it would use
	tlsDialer := t.DialTLSContext != nil || t.DialTLS != nil
	var next atomic.Pointer[url.URL]
	t.Proxy = func(req *http.Request) (*url.URL, error) {
		p, err := proxyFor(req)
		tunnel := req.URL.Scheme == "http" || req.URL.Scheme == "https" && !tlsDialer
		if err == nil && p != nil && tunnel && (p.Scheme == "http" || p.Scheme == "https") {
			next.Store(p)
			return nil, nil
		}
		next.Store(nil)
		return p, err
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if p := next.Swap(nil); p != nil {
			return dialTunnel(ctx, t, dial, p, addr)
		}
		return dial(ctx, network, addr)
	}
}

// dialTunnel asks proxy to open a tunnel to addr, as t would for an
// https:// URL: with t's ProxyConnectHeader or GetProxyConnectHeader, the
// user and password of the proxy URL as Basic Proxy-Authorization, and
// t's OnProxyConnectResponse to judge the answer, which must be 200.
// ctx, the transport's context for the dial, bounds the exchange: net/http
// detaches it from the request's, and ends it when Dial, given up, calls
// CloseIdleConnections.
func dialTunnel(ctx context.Context, t *http.Transport, dial dialFunc, proxy *url.URL, addr string) (net.Conn, error) {
	hdr := t.ProxyConnectHeader
	if t.GetProxyConnectHeader != nil {
		var err error
		if hdr, err = t.GetProxyConnectHeader(ctx, proxy, addr); err != nil {
			return nil, err
		}
	}
	hdr = hdr.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	if u := proxy.User; u != nil {
		password, _ := u.Password()
		hdr.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+password)))
	}
	nc, err := dialProxy(ctx, t, dial, proxy)
	if err != nil {
		return nil, &net.OpError{Op: "proxyconnect", Net: "tcp", Err: err}
	}
	// net/http gives the exchange a minute at most, so that a proxy that
	// never answers holds no dial for good when ctx has no end.
	ctx, cancel := context.WithTimeoutCause(ctx, proxyConnectTimeout, errProxySilent)
	defer cancel()
	// As in handshakeDirect, the end of ctx interrupts the exchange.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(longAgo) })
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: hdr}
	err = req.Write(nc)
	var resp *http.Response
	// The transport's limit, as net/http's for a wss:// handshake.
	limit := t.MaxResponseHeaderBytes
	if limit <= 0 {
		limit = maxResponseHeader
	}
	head := &io.LimitedReader{R: nc, N: limit}
	br := bufio.NewReaderSize(head, 1024)
	if err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	switch {
	case err != nil && head.N == 0:
		err = fmt.Errorf("proxy %s answered CONNECT %s with a header of more than %d bytes", proxy.Redacted(), addr, limit)
	case err != nil:
		err = fmt.Errorf("proxy %s, CONNECT %s: %w", proxy.Redacted(), addr, clippedError{err})
	}
	if err == nil && t.OnProxyConnectResponse != nil {
		err = t.OnProxyConnectResponse(ctx, proxy, req, resp)
	}
	if err == nil {
		err = proxyRefused(proxy, req, resp)
	}
	if !stop() || ctx.Err() != nil {
		err = ctx.Err()
		if context.Cause(ctx) == errProxySilent {
			err = fmt.Errorf("proxy %s did not answer CONNECT %s within %v: %w", proxy.Redacted(), addr, proxyConnectTimeout, os.ErrDeadlineExceeded)
		}
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		p, _ := br.Peek(n)
		return &earlyConn{Conn: nc, early: bytes.Clone(p), sent: make(chan struct{})}, nil
	}
	return nc, nil
}

// proxyConnectTimeout bounds a proxy's answer to CONNECT, as net/http's
// transport bounds it. A variable for tests alone.
var proxyConnectTimeout = time.Minute

// errProxySilent is the cause of the end of proxyConnectTimeout.
var errProxySilent = errors.New("proxy silent")

// proxyRefused returns the error for a proxy's answer to CONNECT other
// than 200, which names the proxy (its password redacted), the target and
// the status, where net/http's says the reason phrase alone ("Forbidden").
func proxyRefused(proxy *url.URL, req *http.Request, resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return fmt.Errorf("proxy %s answered CONNECT %s with %s", proxy.Redacted(), req.Host, quoted(resp.Status))
}

// dialProxy connects to proxy with t's dial function, and for an https
// proxy with TLS, as t would: t's DialTLSContext when it has one, or else
// t's TLS configuration, for the proxy's name.
func dialProxy(ctx context.Context, t *http.Transport, dial dialFunc, proxy *url.URL) (net.Conn, error) {
	port := proxy.Port()
	if port == "" {
		port = "80"
		if proxy.Scheme == "https" {
			port = "443"
		}
	}
	addr := net.JoinHostPort(proxy.Hostname(), port)
	if proxy.Scheme != "https" {
		return dial(ctx, "tcp", addr)
	}
	if t.DialTLSContext != nil {
		return t.DialTLSContext(ctx, "tcp", addr)
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{}
	if t.TLSClientConfig != nil {
		cfg = t.TLSClientConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = proxy.Hostname()
	}
	cfg.NextProtos = nil // CONNECT is HTTP/1.1's
	tc := tls.Client(nc, cfg)
	// The transport's TLSHandshakeTimeout bounds the handshake, as it
	// does net/http's with a proxy.
	if err := underTimeout(ctx, t.TLSHandshakeTimeout, errTLSHandshakeTimeout, tc.HandshakeContext); err != nil {
		nc.Close()
		return nil, err
	}
	return tc, nil
}

// earlyConn is a tunnel on which the proxy sent bytes after its answer to
// CONNECT, in the same read: the server's, to be read first. They are
// held back until the handshake request is written, as net/http's
// transport takes bytes that come on a connection before it sent a
// request for an unsolicited response, and drops the connection.
type earlyConn struct {
	net.Conn
	early  []byte        // the reader's alone
	sent   chan struct{} // closed by the first Write, or by Close
	once   sync.Once
	closed atomic.Bool
}

func (c *earlyConn) Read(p []byte) (int, error) {
	if len(c.early) == 0 {
		return c.Conn.Read(p)
	}
	<-c.sent
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n := copy(p, c.early)
	c.early = c.early[n:]
	return n, nil
}

func (c *earlyConn) Write(p []byte) (int, error) {
	c.once.Do(func() { close(c.sent) })
	return c.Conn.Write(p)
}

func (c *earlyConn) Close() error {
	c.closed.Store(true)
	c.once.Do(func() { close(c.sent) })
	return c.Conn.Close()
}
