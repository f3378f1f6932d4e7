package bench_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/lxzan/gws"
	ours "github.com/rfc6455/websocket"
)

// peerCfg configures the other library's end.
type peerCfg struct {
	comp         string      // one of the library's compression settings (peerLib.comps), "" for none
	subprotocols []string    // offered (client) or spoken, in order of preference (server)
	header       http.Header // extra request (client) or response (server) headers
}

// peerLib is another library, in both roles.
type peerLib struct {
	name  string
	raw   bool     // its connections are rawPeers
	comps []string // the compression settings it can offer or answer with
	dial  func(ctx context.Context, url string, cfg peerCfg) (peerConn, peerInfo, error)
	// serve starts its server; each connection is handed to onConn. The
	// server takes only requests with X-Interop: request and Origin
	// http://peer.example, as ours does.
	serve func(t *testing.T, cfg peerCfg, onConn func(peerConn, peerInfo)) (url string)
}

var peerLibs = []peerLib{
	{name: "gorilla", comps: []string{"", "on"}, dial: gorillaDial, serve: gorillaServe},
	{name: "coder", comps: []string{"", "nocontext", "takeover"}, dial: coderDial, serve: coderServe},
	{name: "gobwas", raw: true, comps: gobwasComps, dial: gobwasDial, serve: gobwasServe},
	{name: "gws", comps: []string{"", "nocontext", "takeover", "takeover15"}, dial: gwsDial, serve: gwsServe},
	{name: "nbio", comps: []string{"", "on"}, dial: nbioDial, serve: nbioServe},
}

// chanConn delivers a connection's events on a channel, the last once.
type chanConn struct {
	ev    chan peerEvent
	once  sync.Once
	pongs chan string
}

func newChanConn() chanConn {
	return chanConn{ev: make(chan peerEvent, 16), pongs: make(chan string, 4)}
}

func (c *chanConn) events() <-chan peerEvent { return c.ev }

func (c *chanConn) end(e peerEvent) {
	c.once.Do(func() {
		c.ev <- e
		close(c.ev)
	})
}

// waitPongs checks that pongs answered the pings p1 and p2, in order.
func (c *chanConn) waitPongs(p1, p2 string) error {
	for _, want := range []string{p1, p2} {
		select {
		case got := <-c.pongs:
			if got != want {
				return fmt.Errorf("pong %q answered ping %q", got, want)
			}
		case <-time.After(interopWait):
			return fmt.Errorf("no pong answered ping %q", want)
		}
	}
	return nil
}

// inThirds writes p in three parts, the last one i == 2, with a ping
// after each of the first two.
func inThirds(p []byte, write func(i int, part []byte) error, ping func(i int) error) error {
	n := len(p) / 3
	for i, part := range [][]byte{p[:n], p[n : 2*n], p[2*n:]} {
		if err := write(i, part); err != nil {
			return err
		}
		if i < 2 {
			if err := ping(i); err != nil {
				return err
			}
		}
	}
	return nil
}

func interopCheckRequest(r *http.Request) bool {
	return r.Header.Get("X-Interop") == "request" && r.Header.Get("Origin") == "http://peer.example"
}

// netHTTPServer serves h on loopback until the test ends.
func netHTTPServer(t *testing.T, h http.HandlerFunc) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "ws://" + ln.Addr().String() + "/ws"
}

// gorilla/websocket

type gorillaConn struct {
	chanConn
	c *gorilla.Conn
}

func newGorillaConn(c *gorilla.Conn) *gorillaConn {
	g := &gorillaConn{chanConn: newChanConn(), c: c}
	c.SetPongHandler(func(s string) error { g.pongs <- s; return nil })
	go func() {
		defer c.Close()
		for {
			typ, p, err := c.ReadMessage()
			if err != nil {
				var ce *gorilla.CloseError
				if errors.As(err, &ce) {
					g.end(peerEvent{closed: true, code: ce.Code, reason: ce.Text})
				} else {
					g.end(peerEvent{err: err})
				}
				return
			}
			g.ev <- peerEvent{typ: ours.MessageType(typ), p: p}
		}
	}()
	return g
}

func (g *gorillaConn) write(typ ours.MessageType, p []byte) error {
	return g.c.WriteMessage(int(typ), p)
}

func (g *gorillaConn) fragPing(typ ours.MessageType, p []byte, ping1, ping2 string) error {
	w, err := g.c.NextWriter(int(typ))
	if err != nil {
		return err
	}
	err = inThirds(p, func(_ int, part []byte) error {
		_, err := w.Write(part)
		return err
	}, func(i int) error {
		return g.c.WriteControl(gorilla.PingMessage, []byte([]string{ping1, ping2}[i]), time.Now().Add(interopWait))
	})
	if err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return g.waitPongs(ping1, ping2)
}

func (g *gorillaConn) closeWith(code int, reason string) error {
	return g.c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(code, reason), time.Now().Add(interopWait))
}

func (g *gorillaConn) abort() { g.c.NetConn().Close() }

func gorillaDial(ctx context.Context, url string, cfg peerCfg) (peerConn, peerInfo, error) {
	d := gorilla.Dialer{Subprotocols: cfg.subprotocols, EnableCompression: cfg.comp != ""}
	c, resp, err := d.DialContext(ctx, url, cfg.header)
	if err != nil {
		return nil, peerInfo{}, err
	}
	return newGorillaConn(c), peerInfo{c.Subprotocol(), resp.Header.Get("Sec-WebSocket-Extensions"), resp.Header, ""}, nil
}

func gorillaServe(t *testing.T, cfg peerCfg, onConn func(peerConn, peerInfo)) string {
	u := gorilla.Upgrader{Subprotocols: cfg.subprotocols, EnableCompression: cfg.comp != "",
		CheckOrigin: func(r *http.Request) bool { return true }}
	return netHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		if !interopCheckRequest(r) {
			http.Error(w, "refused", http.StatusForbidden)
			return
		}
		c, err := u.Upgrade(w, r, cfg.header)
		if err != nil {
			return
		}
		// gorilla does not say what it answered; it answers this or nothing.
		ext := ""
		if cfg.comp != "" && strings.Contains(r.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
			ext = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
		}
		onConn(newGorillaConn(c), peerInfo{c.Subprotocol(), ext, r.Header, r.Header.Get("Sec-WebSocket-Extensions")})
	})
}

// coder/websocket

type coderConn struct {
	chanConn
	c *coder.Conn
}

func newCoderConn(c *coder.Conn) *coderConn {
	k := &coderConn{chanConn: newChanConn(), c: c}
	c.SetReadLimit(64 << 20)
	go func() {
		for {
			typ, p, err := c.Read(context.Background())
			if err != nil {
				var ce coder.CloseError
				if errors.As(err, &ce) {
					k.end(peerEvent{closed: true, code: int(ce.Code), reason: ce.Reason})
				} else {
					k.end(peerEvent{err: err})
				}
				c.CloseNow()
				return
			}
			k.ev <- peerEvent{typ: ours.MessageType(typ), p: p}
		}
	}()
	return k
}

func (k *coderConn) write(typ ours.MessageType, p []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	return k.c.Write(ctx, coder.MessageType(typ), p)
}

// fragPing sends coder's own pings, whose payloads it chooses and checks.
func (k *coderConn) fragPing(typ ours.MessageType, p []byte, _, _ string) error {
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	w, err := k.c.Writer(ctx, coder.MessageType(typ))
	if err != nil {
		return err
	}
	err = inThirds(p, func(_ int, part []byte) error {
		_, err := w.Write(part)
		return err
	}, func(int) error { return k.c.Ping(ctx) })
	if err != nil {
		return err
	}
	return w.Close()
}

func (k *coderConn) closeWith(code int, reason string) error {
	go k.c.Close(coder.StatusCode(code), reason)
	return nil
}

func (k *coderConn) abort() { k.c.CloseNow() }

func coderComp(comp string) coder.CompressionMode {
	switch comp {
	case "nocontext":
		return coder.CompressionNoContextTakeover
	case "takeover":
		return coder.CompressionContextTakeover
	}
	return coder.CompressionDisabled
}

func coderDial(ctx context.Context, url string, cfg peerCfg) (peerConn, peerInfo, error) {
	c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{HTTPHeader: cfg.header, Subprotocols: cfg.subprotocols, CompressionMode: coderComp(cfg.comp)})
	if err != nil {
		return nil, peerInfo{}, err
	}
	return newCoderConn(c), peerInfo{c.Subprotocol(), resp.Header.Get("Sec-WebSocket-Extensions"), resp.Header, ""}, nil
}

func coderServe(t *testing.T, cfg peerCfg, onConn func(peerConn, peerInfo)) string {
	return netHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		if !interopCheckRequest(r) {
			http.Error(w, "refused", http.StatusForbidden)
			return
		}
		for k, v := range cfg.header {
			w.Header()[k] = v
		}
		c, err := coder.Accept(w, r, &coder.AcceptOptions{Subprotocols: cfg.subprotocols, InsecureSkipVerify: true, CompressionMode: coderComp(cfg.comp)})
		if err != nil {
			return
		}
		onConn(newCoderConn(c), peerInfo{c.Subprotocol(), w.Header().Get("Sec-WebSocket-Extensions"), r.Header, r.Header.Get("Sec-WebSocket-Extensions")})
	})
}

// gws

type gwsConn struct {
	chanConn
	c      *gws.Conn
	server bool
}

type gwsHandler struct{ g *gwsConn }

func (h gwsHandler) OnOpen(*gws.Conn) {}
func (h gwsHandler) OnClose(_ *gws.Conn, err error) {
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		code := int(ce.Code)
		if code == 0 {
			code = 1005
		}
		h.g.end(peerEvent{closed: true, code: code, reason: string(ce.Reason)})
	} else {
		h.g.end(peerEvent{err: err})
	}
}
func (h gwsHandler) OnPing(c *gws.Conn, p []byte) { c.WritePong(p) }
func (h gwsHandler) OnPong(_ *gws.Conn, p []byte) { h.g.pongs <- string(p) }
func (h gwsHandler) OnMessage(_ *gws.Conn, m *gws.Message) {
	p := bytes.Clone(m.Bytes())
	m.Close()
	h.g.ev <- peerEvent{typ: ours.MessageType(m.Opcode), p: p}
}

func (g *gwsConn) write(typ ours.MessageType, p []byte) error {
	return g.c.WriteMessage(gws.Opcode(typ), p)
}

func (g *gwsConn) fragPing(ours.MessageType, []byte, string, string) error {
	return errors.ErrUnsupported // gws writes every message as one frame
}

func (g *gwsConn) closeWith(code int, reason string) error {
	if code == 1005 {
		// gws always sends a code (1000 for 0): write the frame
		// by hand, gws writing nothing else meanwhile.
		f := []byte("\x88\x00")
		if !g.server {
			f = []byte("\x88\x80\x00\x00\x00\x00")
		}
		_, err := g.c.NetConn().Write(f)
		return err
	}
	return g.c.WriteClose(uint16(code), []byte(reason))
}

func (g *gwsConn) abort() { g.c.NetConn().Close() }

func gwsDeflate(comp string) gws.PermessageDeflate {
	switch comp {
	case "nocontext":
		return gws.PermessageDeflate{Enabled: true}
	case "takeover":
		return gws.PermessageDeflate{Enabled: true, ServerContextTakeover: true, ClientContextTakeover: true}
	case "takeover15":
		return gws.PermessageDeflate{Enabled: true, ServerContextTakeover: true, ClientContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
	}
	return gws.PermessageDeflate{}
}

func gwsDial(ctx context.Context, url string, cfg peerCfg) (peerConn, peerInfo, error) {
	g := &gwsConn{chanConn: newChanConn()}
	h := cfg.header.Clone()
	if len(cfg.subprotocols) > 0 {
		h.Set("Sec-WebSocket-Protocol", strings.Join(cfg.subprotocols, ", "))
	}
	c, resp, err := gws.NewClient(gwsHandler{g}, &gws.ClientOption{Addr: url, RequestHeader: h,
		PermessageDeflate: gwsDeflate(cfg.comp), ReadMaxPayloadSize: 64 << 20, WriteMaxPayloadSize: 64 << 20})
	if err != nil {
		return nil, peerInfo{}, err
	}
	g.c = c
	go c.ReadLoop()
	return g, peerInfo{c.SubProtocol(), resp.Header.Get("Sec-WebSocket-Extensions"), resp.Header, ""}, nil
}

func gwsServe(t *testing.T, cfg peerCfg, onConn func(peerConn, peerInfo)) string {
	return netHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		if !interopCheckRequest(r) {
			http.Error(w, "refused", http.StatusForbidden)
			return
		}
		g := &gwsConn{chanConn: newChanConn(), server: true}
		u := gws.NewUpgrader(gwsHandler{g}, &gws.ServerOption{SubProtocols: cfg.subprotocols, ResponseHeader: cfg.header,
			PermessageDeflate: gwsDeflate(cfg.comp), ReadMaxPayloadSize: 64 << 20, WriteMaxPayloadSize: 64 << 20})
		c, err := u.Upgrade(w, r)
		if err != nil {
			return
		}
		g.c = c
		// gws does not say what it answered: ask it again.
		ext := ""
		if cfg.comp != "" && strings.Contains(r.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
			d := gwsDeflate(cfg.comp)
			ext = gwsAnswer(d, r.Header.Get("Sec-WebSocket-Extensions"))
		}
		go c.ReadLoop()
		onConn(g, peerInfo{c.SubProtocol(), ext, r.Header, r.Header.Get("Sec-WebSocket-Extensions")})
	})
}

// gwsAnswer is what gws v1.8.9 answers to an offer: its own settings,
// less the context takeover the offer declines.
func gwsAnswer(d gws.PermessageDeflate, offer string) string {
	s := "permessage-deflate"
	if !d.ServerContextTakeover || strings.Contains(offer, "server_no_context_takeover") {
		s += "; server_no_context_takeover"
	}
	if !d.ClientContextTakeover || strings.Contains(offer, "client_no_context_takeover") {
		s += "; client_no_context_takeover"
	}
	sb, cb := d.ServerMaxWindowBits, d.ClientMaxWindowBits
	if sb == 0 {
		sb = map[bool]int{true: 12, false: 15}[d.ServerContextTakeover]
	}
	if cb == 0 {
		cb = map[bool]int{true: 12, false: 15}[d.ClientContextTakeover]
	}
	if sb != 15 {
		s += "; server_max_window_bits=" + strconv.Itoa(sb)
	}
	if cb != 15 {
		s += "; client_max_window_bits=" + strconv.Itoa(cb)
	}
	return s
}

// nbio

var nbioOnce sync.Once

type nbioConn struct {
	chanConn
	c *nbws.Conn
}

func nbioUpgrader(cfg peerCfg, g func(*nbws.Conn) *nbioConn) *nbws.Upgrader {
	nbioOnce.Do(func() { logging.SetLevel(logging.LevelNone) })
	u := nbws.NewUpgrader()
	u.MessageLengthLimit = 64 << 20
	u.Subprotocols = cfg.subprotocols
	u.CheckOrigin = func(*http.Request) bool { return true }
	if cfg.comp != "" {
		u.EnableCompression(true)
	}
	u.OnMessage(func(c *nbws.Conn, typ nbws.MessageType, p []byte) {
		g(c).ev <- peerEvent{typ: ours.MessageType(typ), p: bytes.Clone(p)}
	})
	u.SetPongHandler(func(c *nbws.Conn, s string) { g(c).pongs <- s })
	u.SetCloseHandler(func(c *nbws.Conn, code int, reason string) {
		g(c).end(peerEvent{closed: true, code: code, reason: reason})
		if code == 1005 {
			c.WriteMessage(nbws.CloseMessage, nil)
		} else {
			c.WriteMessage(nbws.CloseMessage, append([]byte{byte(code >> 8), byte(code)}, reason...))
		}
	})
	u.OnClose(func(c *nbws.Conn, err error) {
		if err == nil {
			err = io.EOF
		}
		g(c).end(peerEvent{err: err})
	})
	return u
}

func (n *nbioConn) write(typ ours.MessageType, p []byte) error {
	return n.c.WriteMessage(nbws.MessageType(typ), p)
}

func (n *nbioConn) fragPing(typ ours.MessageType, p []byte, ping1, ping2 string) error {
	err := inThirds(p, func(i int, part []byte) error {
		return n.c.WriteFrame(nbws.MessageType(typ), i == 0, i == 2, part)
	}, func(i int) error {
		return n.c.WriteMessage(nbws.PingMessage, []byte([]string{ping1, ping2}[i]))
	})
	if err != nil {
		return err
	}
	return n.waitPongs(ping1, ping2)
}

func (n *nbioConn) closeWith(code int, reason string) error {
	if code == 1005 {
		return n.c.WriteMessage(nbws.CloseMessage, nil)
	}
	return n.c.WriteClose(code, reason)
}

func (n *nbioConn) abort() { n.c.UnderlayerConn().Close() }

// nbioEngine runs an nbhttp engine until the test ends.
func nbioEngine(t *testing.T, cfg nbhttp.Config) *nbhttp.Engine {
	e := nbhttp.NewEngine(cfg)
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

func nbioDial(ctx context.Context, url string, cfg peerCfg) (peerConn, peerInfo, error) {
	n := &nbioConn{chanConn: newChanConn()}
	u := nbioUpgrader(cfg, func(*nbws.Conn) *nbioConn { return n })
	d := nbws.Dialer{Engine: ctx.Value(nbioEngineKey{}).(*nbhttp.Engine), Upgrader: u, Subprotocols: cfg.subprotocols,
		EnableCompression: cfg.comp != "", DialTimeout: interopWait}
	c, resp, err := d.Dial(url, cfg.header)
	if err != nil {
		return nil, peerInfo{}, err
	}
	n.c = c
	// nbio's response has lost its header by now, and its client does
	// not say what it settled.
	_ = resp
	return n, peerInfo{c.Subprotocol(), "?", nil, ""}, nil
}

type nbioEngineKey struct{}

func nbioServe(t *testing.T, cfg peerCfg, onConn func(peerConn, peerInfo)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[*nbws.Conn]*nbioConn{}
	u := nbioUpgrader(cfg, func(c *nbws.Conn) *nbioConn {
		mu.Lock()
		defer mu.Unlock()
		return conns[c]
	})
	e := nbioEngine(t, nbhttp.Config{
		Network: "tcp",
		Addrs:   []string{ln.Addr().String()},
		Listen:  func(string, string) (net.Listener, error) { return ln, nil },
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !interopCheckRequest(r) {
				http.Error(w, "refused", http.StatusForbidden)
				return
			}
			n := &nbioConn{chanConn: newChanConn()}
			mu.Lock()
			c, err := u.Upgrade(w, r, cfg.header)
			if err == nil {
				n.c = c
				conns[c] = n
			}
			mu.Unlock()
			if err != nil {
				return
			}
			// nbio does not say what it answered; it answers this to
			// any offer of permessage-deflate, or nothing.
			offer := r.Header.Get("Sec-WebSocket-Extensions")
			ext := ""
			if cfg.comp != "" && strings.Contains(offer, "permessage-deflate") {
				ext = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
			}
			onConn(n, peerInfo{c.Subprotocol(), ext, r.Header, offer})
		}),
	})
	u.Engine = e
	return "ws://" + ln.Addr().String() + "/ws"
}

// gobwas/ws, driven frame by frame: it offers or answers whatever
// permessage-deflate parameters the test names, and compresses and
// decompresses with compress/flate as they say.

// gobwasComps are the offers gobwas makes as a client, and the answers it
// gives as a server (to any offer, whatever it says: the test's rows pick
// answers that suit our offers).
var gobwasComps = []string{
	"",
	"permessage-deflate",
	"permessage-deflate; client_max_window_bits",
	"permessage-deflate; client_max_window_bits=10",
	"permessage-deflate; server_max_window_bits=10",
	"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
	"permessage-deflate; server_no_context_takeover",
	"permessage-deflate; client_no_context_takeover",
	"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
	"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9",
	"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8, permessage-deflate",
}

type gobwasConn struct {
	chanConn
	nc     net.Conn
	client bool
	wmu    sync.Mutex
	br     *bufio.Reader

	cutClose atomic.Bool // cut TCP when a close frame comes

	// Settled permessage-deflate, from the answer.
	deflate     bool
	sendHuffman bool   // the window we may use is under 2^15: send no back-references
	recvKeep    bool   // the peer keeps its window across messages
	recvDict    []byte // the peer's window as recvKeep keeps it; nil without
}

func newGobwasConn(nc net.Conn, br *bufio.Reader, client bool, answer string) (*gobwasConn, error) {
	g := &gobwasConn{chanConn: newChanConn(), nc: nc, br: br, client: client}
	if g.br == nil {
		g.br = bufio.NewReader(nc)
	}
	if answer != "" {
		opts, ok := httphead.ParseOptions([]byte(answer), nil)
		if !ok || len(opts) != 1 || string(opts[0].Name) != "permessage-deflate" {
			return nil, fmt.Errorf("answer %q is not one permessage-deflate", answer)
		}
		g.deflate = true
		// The peer's no_context_takeover, and our window's size.
		recvNo, sendBits := "server_no_context_takeover", "client_max_window_bits"
		if !client {
			recvNo, sendBits = "client_no_context_takeover", "server_max_window_bits"
		}
		_, noKeep := opts[0].Parameters.Get(recvNo)
		g.recvKeep = !noKeep
		if v, ok := opts[0].Parameters.Get(sendBits); ok && string(v) != "15" {
			g.sendHuffman = true
		}
	}
	go g.readLoop()
	return g, nil
}

func (g *gobwasConn) readLoop() {
	defer g.nc.Close()
	var msg []byte
	var msgOp ws.OpCode
	var compressed bool
	for {
		h, err := ws.ReadHeader(g.br)
		if err != nil {
			g.end(peerEvent{err: err})
			return
		}
		if h.Masked == g.client {
			g.end(peerEvent{err: fmt.Errorf("frame masked: %v", h.Masked)})
			return
		}
		if h.Length > 64<<20 {
			g.end(peerEvent{err: fmt.Errorf("frame of %d bytes", h.Length)})
			return
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(g.br, p); err != nil {
			g.end(peerEvent{err: err})
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		if h.Rsv != 0 && (!g.deflate || h.Rsv != ws.Rsv(true, false, false) || h.OpCode != ws.OpText && h.OpCode != ws.OpBinary) {
			g.end(peerEvent{err: fmt.Errorf("reserved bits %#x on opcode %d", h.Rsv, h.OpCode)})
			return
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := g.writeFrame(ws.OpPong, true, false, p); err != nil {
				g.end(peerEvent{err: err})
				return
			}
			continue
		case ws.OpPong:
			select {
			case g.pongs <- string(p):
			default:
			}
			continue
		case ws.OpClose:
			if g.cutClose.Load() {
				g.nc.Close()
				g.end(peerEvent{err: errors.New("close frame came; TCP cut")})
				return
			}
			ev := peerEvent{closed: true, code: 1005}
			if len(p) >= 2 {
				ev.code = int(p[0])<<8 | int(p[1])
				ev.reason = string(p[2:])
			}
			g.writeFrame(ws.OpClose, true, false, p[:min(len(p), 2)])
			if !g.client {
				g.nc.Close()
			}
			g.end(ev)
			// A client waits for the server to close TCP.
			io.Copy(io.Discard, g.br)
			return
		case ws.OpText, ws.OpBinary:
			msgOp, msg, compressed = h.OpCode, p, h.Rsv1()
		case ws.OpContinuation:
			msg = append(msg, p...)
		}
		if !h.Fin {
			continue
		}
		if compressed {
			if msg, err = g.inflate(msg); err != nil {
				g.end(peerEvent{err: err})
				return
			}
		}
		g.ev <- peerEvent{typ: ours.MessageType(msgOp), p: msg}
	}
}

func (g *gobwasConn) inflate(z []byte) ([]byte, error) {
	r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(z), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")), g.recvDict)
	p, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("inflating: %w", err)
	}
	if g.recvKeep {
		g.recvDict = append(g.recvDict, p...)
		g.recvDict = g.recvDict[max(0, len(g.recvDict)-32768):]
	}
	return p, nil
}

func (g *gobwasConn) writeFrame(op ws.OpCode, fin, rsv1 bool, p []byte) error {
	h := ws.Header{Fin: fin, OpCode: op, Length: int64(len(p)), Masked: g.client}
	if rsv1 {
		h.Rsv = ws.Rsv(true, false, false)
	}
	if g.client {
		rand.Read(h.Mask[:])
		p = bytes.Clone(p)
		ws.Cipher(p, h.Mask, 0)
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.nc.SetWriteDeadline(time.Now().Add(interopWait))
	if err := ws.WriteHeader(g.nc, h); err != nil {
		return err
	}
	_, err := g.nc.Write(p)
	return err
}

// compress returns p deflated on its own, as every message of gobwas's
// is (context takeover or not, the peer can read it).
func (g *gobwasConn) compress(p []byte) []byte {
	var b bytes.Buffer
	level := flate.BestSpeed
	if g.sendHuffman {
		level = flate.HuffmanOnly
	}
	w, _ := flate.NewWriter(&b, level)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte("\x00\x00\xff\xff"))
}

// payload returns what goes on the wire for a message of p: p compressed
// if permessage-deflate was settled (the empty message too).
func (g *gobwasConn) payload(p []byte) []byte {
	if g.deflate {
		return g.compress(p)
	}
	return p
}

func (g *gobwasConn) write(typ ours.MessageType, p []byte) error {
	return g.writeFrame(ws.OpCode(typ), true, g.deflate, g.payload(p))
}

func (g *gobwasConn) fragPing(typ ours.MessageType, p []byte, ping1, ping2 string) error {
	err := inThirds(g.payload(p), func(i int, part []byte) error {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpCode(typ)
		}
		return g.writeFrame(op, i == 2, g.deflate && i == 0, part)
	}, func(i int) error {
		return g.writeFrame(ws.OpPing, true, false, []byte([]string{ping1, ping2}[i]))
	})
	if err != nil {
		return err
	}
	return g.waitPongs(ping1, ping2)
}

func (g *gobwasConn) closeWith(code int, reason string) error {
	var p []byte
	if code != 1005 {
		p = append([]byte{byte(code >> 8), byte(code)}, reason...)
	}
	return g.writeFrame(ws.OpClose, true, false, p)
}

func (g *gobwasConn) abort() { g.nc.Close() }

func gobwasDial(ctx context.Context, url string, cfg peerCfg) (peerConn, peerInfo, error) {
	var resp = http.Header{}
	d := ws.Dialer{Protocols: cfg.subprotocols, Header: ws.HandshakeHeaderHTTP(cfg.header),
		OnHeader: func(k, v []byte) error { resp.Add(string(k), string(v)); return nil }}
	if cfg.comp != "" {
		opts, ok := httphead.ParseOptions([]byte(cfg.comp), nil)
		if !ok {
			return nil, peerInfo{}, fmt.Errorf("offer %q does not parse", cfg.comp)
		}
		d.Extensions = opts
	}
	nc, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return nil, peerInfo{}, err
	}
	var exts []string
	for _, o := range hs.Extensions {
		exts = append(exts, optionString(o))
	}
	answer := strings.Join(exts, ", ")
	g, err := newGobwasConn(nc, br, true, answer)
	if err != nil {
		nc.Close()
		return nil, peerInfo{}, err
	}
	return g, peerInfo{hs.Protocol, answer, resp, ""}, nil
}

func gobwasServe(t *testing.T, cfg peerCfg, onConn func(peerConn, peerInfo)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				req := http.Header{}
				answered, offer := "", ""
				u := ws.Upgrader{
					Protocol: func(p []byte) bool {
						for _, s := range cfg.subprotocols {
							if s == string(p) {
								return true
							}
						}
						return false
					},
					OnHeader: func(k, v []byte) error { req.Add(string(k), string(v)); return nil },
					Header:   ws.HandshakeHeaderHTTP(cfg.header),
					Negotiate: func(o httphead.Option) (httphead.Option, error) {
						if offer != "" {
							offer += ", "
						}
						offer += optionString(o)
						if cfg.comp == "" || answered != "" || string(o.Name) != "permessage-deflate" {
							return httphead.Option{}, nil
						}
						opts, _ := httphead.ParseOptions([]byte(cfg.comp), nil)
						answered = optionString(opts[0])
						return opts[0], nil
					},
				}
				nc.SetDeadline(time.Now().Add(interopWait))
				hs, err := u.Upgrade(nc)
				nc.SetDeadline(time.Time{})
				if err != nil || req.Get("X-Interop") != "request" || req.Get("Origin") != "http://peer.example" {
					nc.Close()
					return
				}
				g, err := newGobwasConn(nc, nil, false, answered)
				if err != nil {
					nc.Close()
					return
				}
				onConn(g, peerInfo{hs.Protocol, answered, req, offer})
			}()
		}
	}()
	return "ws://" + ln.Addr().String() + "/ws"
}

// optionString writes o as a header would.
func optionString(o httphead.Option) string {
	s := string(o.Name)
	o.Parameters.ForEach(func(k, v []byte) bool {
		s += "; " + string(k)
		if len(v) > 0 {
			s += "=" + string(v)
		}
		return true
	})
	return s
}

func (g *gobwasConn) cutMid() error {
	if err := g.writeFrame(ws.OpBinary, false, false, []byte("first")); err != nil {
		return err
	}
	g.nc.Close()
	return nil
}

func (g *gobwasConn) cutOnClose() { g.cutClose.Store(true) }
