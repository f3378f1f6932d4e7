// Command echo serves a WebSocket echo endpoint at /ws and, at /, a page
// from which a person can open a connection, send messages, watch them
// come back and close the connection again.
//
//	go run ./examples/echo -addr 127.0.0.1:8080 -compression takeover
//
// -compression sets how the server answers a client's offer of
// permessage-deflate (RFC 7692): off, no-takeover or takeover (the
// default). Browsers always offer it; the page shows what was settled.
//
// -tls serves HTTPS with a certificate made up at start (browsers warn
// about it), and HTTP/2 with it: a browser that loaded the page over
// HTTP/2 opens its WebSocket on the same connection, as a stream (RFC
// 8441). Go's HTTP/2 server offers that only under
// GODEBUG=http2xconnect=1, which the command sets for itself by starting
// again with it; the log says which protocol each connection came over.
//
// A message may be up to 1 MiB (maxMessage); a larger one closes the
// connection with 1009 (message too big).
//
// Stop it with Ctrl-C: open connections are closed with 1001 (going away);
// a second Ctrl-C ends it at once.
package main

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/examples/internal/cmdline"
	"github.com/rfc6455/websocket/examples/internal/signals"
)

//go:embed index.html
var indexHTML []byte

// writeTimeout bounds each echo write, so that a peer that stops reading
// cannot hold a handler forever.
const writeTimeout = 10 * time.Second

// maxMessage is the largest message the server reads: a larger one
// closes the connection with 1009 (message too big) as soon as its
// length is known. The library's default, 32 MiB, is meant for programs
// that move files; an echo holds each message while it sends it back, so
// a limit sized to what the page sends keeps each connection's cost
// small.
const maxMessage = 1 << 20

// shutdownReason is sent with StatusGoingAway to the connections still
// open when the server stops.
const shutdownReason = "server shutting down"

func main() {
	opts, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	if opts.tls && !strings.Contains(os.Getenv("GODEBUG"), xconnect) {
		// net/http reads the setting once, as the program starts.
		env := append(os.Environ(), "GODEBUG="+strings.Trim(os.Getenv("GODEBUG")+","+xconnect, ","))
		exe, err := os.Executable()
		if err == nil {
			err = syscall.Exec(exe, os.Args, env)
		}
		log.Fatalf("starting again with GODEBUG=%s: %v", xconnect, err)
	}

	ctx := signals.Context() // a second signal kills at once
	err = run(ctx, opts, log.Printf, func(url string) {
		fmt.Printf("echo server: open %s in a browser\n", url)
	})
	if err != nil {
		log.Fatal(err)
	}
}

// parseFlags parses the command's arguments with fs, flags only
// (cmdline.Parse).
func parseFlags(fs *flag.FlagSet, args []string) (options, error) {
	opts := options{compression: websocket.CompressionContextTakeover}
	fs.StringVar(&opts.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.TextVar(&opts.compression, "compression", opts.compression, "permessage-deflate: off, no-takeover or takeover")
	fs.BoolVar(&opts.tls, "tls", false, "serve HTTPS and HTTP/2, with a certificate made up at start")
	return opts, cmdline.Parse(fs, args)
}

// xconnect is the GODEBUG setting under which Go's HTTP/2 server offers
// WebSockets over HTTP/2 (extended CONNECT, RFC 8441).
const xconnect = "http2xconnect=1"

// options are the command's settings.
type options struct {
	addr        string
	compression websocket.CompressionMode
	tls         bool          // HTTPS and HTTP/2, with a made-up certificate
	idle        time.Duration // idleTimeout when 0
}

// idleTimeout is how long an HTTP connection may wait for its next
// request (a browser keeps the page's open) before the server closes it.
// A WebSocket is no request in waiting: over HTTP/1.1 its connection is
// the handler's, and over HTTP/2 it is a stream under way.
const idleTimeout = 2 * time.Minute

// run serves as opts say until ctx ends, then shuts down: it stops
// accepting, closes the WebSocket connections with StatusGoingAway, and
// waits for HTTP requests in flight. ready is called with the page's URL
// once the listener is open. logf reports connections as they come and
// go.
func run(ctx context.Context, opts options, logf func(format string, args ...any), ready func(url string)) error {
	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return err
	}
	s := &server{logf: logf, compression: opts.compression}
	hs := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cmp.Or(opts.idle, idleTimeout),
		// Over HTTP/2 (with -tls), a connection whose socket takes
		// nothing for this long ends, and with it the WebSockets on it,
		// whose closing waits for a write stuck there.
		HTTP2: &http.HTTP2Config{WriteByteTimeout: 30 * time.Second},
	}
	scheme := "http"
	if opts.tls {
		cert, err := madeUpCertificate()
		if err != nil {
			ln.Close()
			return err
		}
		// With a TLSConfig of its own, the server still offers h2 and
		// http/1.1 by ALPN.
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		scheme = "https"
	}
	served := make(chan error, 1)
	go func() {
		if opts.tls {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	ready(pageURL(scheme, ln.Addr()))

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Shutdown neither knows about nor waits for hijacked connections:
	// the registry closes those, meanwhile. Shutdown itself may take a few
	// seconds: it gives connections on which no request has arrived yet
	// (browsers open some ahead of need) 5 seconds before closing them.
	var closing sync.WaitGroup
	closing.Go(func() { s.conns.closeAll(websocket.StatusGoingAway, shutdownReason) })
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = hs.Shutdown(shutdownCtx)
	if err != nil {
		// Over HTTP/2, a WebSocket whose closing waits for a write stuck
		// on a socket that takes nothing holds its connection until
		// WriteByteTimeout: end the connections left now.
		hs.Close()
	}
	closing.Wait()
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// pageURL is the URL a browser should open to reach a server listening on
// a. A wildcard address is reached through localhost.
func pageURL(scheme string, a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return scheme + "://" + a.String() + "/"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// madeUpCertificate makes a self-signed certificate for localhost and the
// loopback addresses, valid for a day.
func madeUpCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "echo example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// server serves the page and the echo endpoint.
type server struct {
	logf        func(format string, args ...any) // immutable
	compression websocket.CompressionMode        // immutable
	conns       registry
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", servePage)
	// Any method: Accept answers the wrong ones with 405.
	mux.HandleFunc("/ws", s.serveEcho)
	return mux
}

func servePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(indexHTML)
}

// serveEcho accepts a WebSocket connection from the same origin (the
// default policy) and sends every message back as it came.
func (s *server) serveEcho(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Compression: s.compression})
	if err != nil {
		// Accept has answered with the HTTP error already.
		s.logf("echo: refused %s: %v", r.RemoteAddr, err)
		return
	}
	if !s.conns.add(c) {
		c.Close(websocket.StatusGoingAway, shutdownReason)
		return
	}
	c.SetReadLimit(maxMessage)
	s.logf("echo: %s connected over %s", r.RemoteAddr, r.Proto)
	err = echo(c)
	c.CloseNow()
	// Log before remove: once the last handler is removed, run may
	// return, and logf may no longer be usable.
	s.logf("echo: %s gone: %v", r.RemoteAddr, err)
	s.conns.remove(c)
}

// echo sends each message back until reading or writing fails, and
// returns why it stopped.
func echo(c *websocket.Conn) error {
	for {
		typ, p, err := c.Read(context.Background())
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err = c.Write(ctx, typ, p)
		cancel()
		if err != nil {
			return err
		}
	}
}

// registry tracks the WebSocket connections being served, so that
// shutdown can close them and wait for their handlers.
type registry struct {
	mu       sync.Mutex
	conns    map[*websocket.Conn]struct{} // guarded by mu
	shutdown bool                         // guarded by mu; once set, add refuses
	handlers sync.WaitGroup               // one count per registered connection
}

// add registers c and reports whether it may be served; after closeAll
// it may not.
func (r *registry) add(c *websocket.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutdown {
		return false
	}
	if r.conns == nil {
		r.conns = make(map[*websocket.Conn]struct{})
	}
	r.conns[c] = struct{}{}
	r.handlers.Add(1)
	return true
}

// remove unregisters c once its handler is done with it.
func (r *registry) remove(c *websocket.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	r.handlers.Done()
}

// closeAll refuses further connections, runs the closing handshake with
// code and reason on every registered connection at once, and waits for
// their handlers to finish. Each handshake is bounded by the connection's
// close timeout (over HTTP/2, a socket that takes nothing holds it until
// the server's WriteByteTimeout, or until run closes the server).
func (r *registry) closeAll(code websocket.StatusCode, reason string) {
	r.mu.Lock()
	r.shutdown = true
	conns := make([]*websocket.Conn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()

	var closing sync.WaitGroup
	for _, c := range conns {
		closing.Go(func() { c.Close(code, reason) })
	}
	closing.Wait()
	r.handlers.Wait()
}
