// Package echo holds the echo servers that the benchmarks compare, one per
// library, each written the way that library's own users write one: the
// handshake, then every binary or text message sent back as it came.
//
// The servers differ only in the library; none of them is tuned beyond what
// the library's documentation suggests, and all accept messages of at least
// 16 MiB. With Options.Compression, those that can negotiate
// permessage-deflate in that mode (Supports) do; each compresses as its
// defaults say.
package echo

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/lxzan/gws"
	ours "github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/bench/internal/oursecho"
)

// The library names, as flags and tables spell them.
const (
	Ours       = "ours"        // Accept, then Serve with a callback that writes each message back
	OursLoop   = "ours-loop"   // Accept, then ReadAppend and Write in a loop
	OursRead   = "ours-read"   // Accept, then Read and Write in a loop, as the README shows
	OursStream = "ours-stream" // Accept, then Reader, Writer and io.CopyBuffer
	Gorilla    = "gorilla"     // Upgrader, then ReadMessage and WriteMessage
	Coder      = "coder"       // Accept, then Reader, Writer and io.CopyBuffer
	Gobwas     = "gobwas"      // Upgrade, then ReadHeader and WriteHeader over 4 KiB bufio
	// GobwasFresh is gobwas's loop with a new slice per message, made at
	// the size the header claims and dropped once echoed: the least that
	// any API handing out a slice of its own per message costs, as our
	// Read does (which waits for bytes before it allocates).
	GobwasFresh = "gobwas-fresh"
	Gws         = "gws"  // Server with an OnMessage callback
	Nbio        = "nbio" // nbhttp engine (non-blocking), Upgrader with an OnMessage callback
	// NetHTTPFloor is no library: a net/http handler that answers the
	// handshake, hijacks, lets go of net/http's buffers and echoes frames
	// by hand, checking nothing, with no buffer held between messages.
	// What it holds idle is the least that any loop reading inside a
	// net/http handler can hold: idle runs only.
	NetHTTPFloor = "nethttp-floor"
)

// Libs lists every server, ours first, in the order tables show them.
var Libs = []string{Ours, OursLoop, OursRead, OursStream, Gorilla, Coder, Gobwas, GobwasFresh, Gws, Nbio, NetHTTPFloor}

// IsOurs reports whether lib is one of this project's own servers, as
// opposed to a peer it is compared with.
func IsOurs(lib string) bool {
	return lib == Ours || lib == OursLoop || lib == OursRead || lib == OursStream
}

// UsesNetHTTP reports whether lib's server reads the opening handshake
// with net/http (an http.Handler), as opposed to an HTTP parser of its own.
func UsesNetHTTP(lib string) bool {
	return IsOurs(lib) || lib == Gorilla || lib == Coder
}

// IsReference reports whether lib is a yardstick rather than a library:
// shown beside the others, never their best peer.
func IsReference(lib string) bool { return lib == NetHTTPFloor }

// Supports reports whether lib's echo server negotiates permessage-deflate
// in mode. gorilla and nbio compress without context takeover only (they
// answer an offer of takeover with server_no_context_takeover and
// client_no_context_takeover); the gobwas server here is the library's
// low-level frame loop, which does not compress.
func Supports(lib string, mode ours.CompressionMode) bool {
	switch mode {
	case ours.CompressionDisabled:
		return true
	case ours.CompressionNoContextTakeover:
		return lib != Gobwas && lib != GobwasFresh && lib != NetHTTPFloor
	case ours.CompressionContextTakeover:
		return lib != Gobwas && lib != GobwasFresh && lib != Gorilla && lib != Nbio && lib != NetHTTPFloor
	}
	return false
}

// Options configure an echo server; nil means the defaults.
type Options struct {
	// Accept holds our servers' options (keepalive, say); the other
	// libraries ignore it. Its Compression is overridden by the field
	// below.
	Accept *ours.AcceptOptions

	// Compression is the permessage-deflate mode every server accepts
	// offers in, off by default. A server that does not support the mode
	// (Supports) runs without compression.
	Compression ours.CompressionMode
}

func (o *Options) compression() ours.CompressionMode {
	if o == nil {
		return ours.CompressionDisabled
	}
	return o.Compression
}

// acceptOptions returns the options our servers accept with.
func (o *Options) acceptOptions() *ours.AcceptOptions {
	if o == nil {
		return nil
	}
	var a ours.AcceptOptions
	if o.Accept != nil {
		a = *o.Accept
	}
	a.Compression = o.Compression
	return &a
}

// Server is an echo server started by Start.
type Server struct {
	ln     net.Listener
	opts   *Options            // immutable
	accept *ours.AcceptOptions // our servers' options, from opts; immutable
	wg     sync.WaitGroup      // the server's goroutines

	mu    sync.Mutex
	close func()                // stops an http.Server; guarded by mu
	conns map[net.Conn]struct{} // every accepted connection still open; guarded by mu
}

// Serve runs lib's echo server on ln with opts (nil for the defaults)
// until ln fails; it is the body of a server process, which ends by
// exiting. Connections are not tracked.
func Serve(lib string, ln net.Listener, opts *Options) error {
	s := &Server{ln: ln, opts: opts, accept: opts.acceptOptions()}
	return s.run(lib)
}

// Start runs lib's echo server on ln with opts (nil for the defaults) in
// the background, tracking its connections so that Close can end them.
// Tests and in-process benchmarks use it.
func Start(lib string, ln net.Listener, opts *Options) (*Server, error) {
	if !slices.Contains(Libs, lib) {
		return nil, fmt.Errorf("echo: unknown library %q (want one of %v)", lib, Libs)
	}
	s := &Server{ln: ln, opts: opts, accept: opts.acceptOptions(), conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(lib)
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops accepting, closes every connection, and waits for the
// server's goroutines to end.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	stop := s.close
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.wg.Wait()
}

// track records c as open until untrack forgets it, if the server tracks
// its connections.
func (s *Server) track(c net.Conn) {
	if s.conns == nil {
		return
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) untrack(c net.Conn) {
	if s.conns == nil {
		return
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// goroutine runs f in a goroutine that Close waits for.
func (s *Server) goroutine(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func (s *Server) run(lib string) error {
	dropNbioDefaultEngine.Do(stopNbioDefaultEngine)
	switch lib {
	case Ours:
		return s.serveHTTP(oursecho.Serve(s.accept))
	case OursLoop:
		return s.serveHTTP(s.oursHandler)
	case OursRead:
		return s.serveHTTP(oursecho.Read(s.accept))
	case OursStream:
		return s.serveHTTP(s.oursStreamHandler)
	case Gorilla:
		return s.serveHTTP(s.gorillaHandler())
	case Coder:
		return s.serveHTTP(s.coderHandler)
	case Gobwas:
		return s.serveGobwas(false)
	case GobwasFresh:
		return s.serveGobwas(true)
	case Gws:
		return s.serveGws()
	case Nbio:
		return s.serveNbio()
	case NetHTTPFloor:
		return s.serveHTTP(FloorHandler)
	}
	return fmt.Errorf("echo: unknown library %q (want one of %v)", lib, Libs)
}

// serveHTTP serves h with net/http, for the libraries that accept from an
// http.Handler.
func (s *Server) serveHTTP(h http.HandlerFunc) error {
	srv := &http.Server{Handler: h, ErrorLog: discardLog}
	if s.conns != nil {
		// The connection rides in the request's context, so that the
		// handler can forget it once a hijacked connection ends.
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			s.track(c)
			return context.WithValue(ctx, connKey{}, c)
		}
		srv.ConnState = func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				s.untrack(c)
			}
		}
		srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.wg.Add(1)
			defer s.wg.Done()
			defer s.untrack(r.Context().Value(connKey{}).(net.Conn))
			h(w, r)
		})
	}
	s.mu.Lock()
	s.close = func() { srv.Close() }
	s.mu.Unlock()
	err := srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// copyBufs holds the buffers of io.CopyBuffer, taken for one message, so an
// idle connection holds none.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func copyMessage(w io.Writer, r io.Reader) error {
	buf := copyBufs.Get().(*[]byte)
	_, err := io.CopyBuffer(w, r, *buf)
	copyBufs.Put(buf)
	return err
}

func (s *Server) oursHandler(w http.ResponseWriter, r *http.Request) {
	c, err := ours.Accept(w, r, s.accept)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	var buf []byte
	for {
		typ, p, err := c.ReadAppend(ctx, buf[:0])
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return
		}
		buf = p
	}
}

func (s *Server) oursStreamHandler(w http.ResponseWriter, r *http.Request) {
	c, err := ours.Accept(w, r, s.accept)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return
		}
		wr, err := c.Writer(ctx, typ)
		if err != nil {
			return
		}
		if err := copyMessage(wr, rd); err != nil {
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
	}
}

// gorillaHandler upgrades with the zero Upgrader, which reads and writes
// through the buffers net/http had for the connection, or with
// EnableCompression, which compresses without context takeover only.
func (s *Server) gorillaHandler() http.HandlerFunc {
	u := &gorilla.Upgrader{}
	if Supports(Gorilla, s.opts.compression()) && s.opts.compression() != ours.CompressionDisabled {
		u.EnableCompression = true
	}
	return func(w http.ResponseWriter, r *http.Request) { gorillaEcho(u, w, r) }
}

func gorillaEcho(u *gorilla.Upgrader, w http.ResponseWriter, r *http.Request) {
	c, err := u.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	for {
		typ, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(typ, p); err != nil {
			return
		}
	}
}

func (s *Server) coderHandler(w http.ResponseWriter, r *http.Request) {
	var opts *coder.AcceptOptions
	switch s.opts.compression() {
	case ours.CompressionNoContextTakeover:
		opts = &coder.AcceptOptions{CompressionMode: coder.CompressionNoContextTakeover}
	case ours.CompressionContextTakeover:
		opts = &coder.AcceptOptions{CompressionMode: coder.CompressionContextTakeover}
	}
	c, err := coder.Accept(w, r, opts)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(64 << 20)
	ctx := r.Context()
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return
		}
		wr, err := c.Writer(ctx, typ)
		if err != nil {
			return
		}
		if err := copyMessage(wr, rd); err != nil {
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
	}
}

// FloorHandler is NetHTTPFloor's handler: the opening handshake and the
// frames by hand, over the hijacked connection alone. It offers no
// extension, and echoes each frame as it came, a ping as a pong.
func FloorHandler(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer nc.Close()
	if brw.Reader.Buffered() > 0 {
		return // the load generator waits for the 101 before it sends
	}
	*brw.Reader, *brw.Writer = bufio.Reader{}, bufio.Writer{}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if _, err := io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
		base64.StdEncoding.EncodeToString(sum[:])+"\r\n\r\n"); err != nil {
		return
	}
	var head [14]byte
	for {
		if _, err := io.ReadFull(nc, head[:2]); err != nil {
			return
		}
		ext := 0
		switch head[1] & 0x7f {
		case 126:
			ext = 2
		case 127:
			ext = 8
		}
		if _, err := io.ReadFull(nc, head[2:6+ext]); err != nil {
			return
		}
		n := uint64(head[1] & 0x7f)
		switch ext {
		case 2:
			n = uint64(binary.BigEndian.Uint16(head[2:]))
		case 8:
			n = binary.BigEndian.Uint64(head[2:])
		}
		if n > 16<<20 {
			return
		}
		key := head[2+ext : 6+ext]
		out := make([]byte, 2+ext+int(n))
		copy(out, head[:2+ext])
		out[1] &^= 0x80 // unmasked
		p := out[2+ext:]
		if _, err := io.ReadFull(nc, p); err != nil {
			return
		}
		for i := range p {
			p[i] ^= key[i&3]
		}
		switch head[0] & 0x0f {
		case 0x9:
			out[0] = out[0]&^0x0f | 0xa // a ping's pong
		case 0xa:
			continue
		}
		if _, err := nc.Write(out); err != nil || head[0]&0x0f == 0x8 {
			return
		}
	}
}

// serveGobwas accepts raw TCP connections and echoes frame by frame, the
// library's low-level style: a header, the payload read into a buffer the
// connection reuses (or, with fresh, into a new one each time), unmasked,
// written back behind a header and flushed.
func (s *Server) serveGobwas(fresh bool) error {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return err
		}
		s.track(nc)
		s.goroutine(func() {
			defer s.untrack(nc)
			defer nc.Close()
			gobwasEcho(nc, fresh)
		})
	}
}

func gobwasEcho(nc net.Conn, fresh bool) {
	if _, err := ws.Upgrade(nc); err != nil {
		return
	}
	br := bufio.NewReaderSize(nc, 4096)
	bw := bufio.NewWriterSize(nc, 4096)
	var buf []byte
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return
		}
		if int64(cap(buf)) < h.Length || fresh {
			buf = make([]byte, h.Length)
		}
		p := buf[:h.Length]
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
			h.Masked = false
		}
		switch h.OpCode {
		case ws.OpClose:
			ws.WriteHeader(bw, h)
			bw.Write(p)
			bw.Flush()
			return
		case ws.OpPing:
			h.OpCode = ws.OpPong
		case ws.OpPong:
			continue
		}
		if err := ws.WriteHeader(bw, h); err != nil {
			return
		}
		if _, err := bw.Write(p); err != nil {
			return
		}
		if err := bw.Flush(); err != nil {
			return
		}
		if fresh {
			// As a loop whose message goes out of scope: the slice is
			// not held while the next header is awaited.
			buf = nil
		}
	}
}

type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	_ = c.WriteMessage(m.Opcode, m.Bytes())
}

func (gwsEcho) OnPing(c *gws.Conn, p []byte) { _ = c.WritePong(p) }

// serveGws runs the library's own server, which reads the HTTP request
// itself and calls back per message. With context takeover its windows
// default to 2^12 bytes; they are set to 2^15 here, the size every other
// server uses, so that all compress with the same parameters.
func (s *Server) serveGws() error {
	var opt gws.ServerOption
	switch mode := s.opts.compression(); mode {
	case ours.CompressionNoContextTakeover, ours.CompressionContextTakeover:
		takeover := mode == ours.CompressionContextTakeover
		opt.PermessageDeflate = gws.PermessageDeflate{Enabled: true,
			ServerContextTakeover: takeover, ClientContextTakeover: takeover,
			ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
	}
	srv := gws.NewServer(gwsEcho{}, &opt)
	srv.OnError = func(net.Conn, error) {}
	upgrade := srv.OnRequest
	srv.OnRequest = func(nc net.Conn, br *bufio.Reader, r *http.Request) {
		s.wg.Add(1)
		defer s.wg.Done()
		s.track(nc)
		defer s.untrack(nc)
		upgrade(nc, br, r)
	}
	if s.conns == nil {
		return srv.RunListener(s.ln)
	}
	// RunListener retries a failed Accept forever; endListener ends its
	// goroutine instead once Close has closed the listener.
	return srv.RunListener(endListener{s.ln})
}

// nbioQuiet silences nbio's logging, which writes to standard output,
// where a server process reports to wsbench.
var nbioQuiet sync.Once

// dropNbioDefaultEngine frees the engine that nbio's websocket package
// builds when it is initialized, in every process that links it. Its two
// task queues are 64K-entry channels of funcs, 1 MiB of pointers that
// every garbage collection scanned: in a server that allocates per
// message, ours-read and gorilla for instance, that cost 0.3-0.6 ms per
// collection, a third of the server's CPU at 1 MiB, charged to nbio's
// presence in the binary and not to the library measured. serveNbio gives
// its Upgrader the engine it runs instead.
var dropNbioDefaultEngine sync.Once

// stopNbioDefaultEngine starts and stops nbws.DefaultEngine, since only
// its stop ends the task queues' goroutines, and forgets it. nbio panics
// when an engine that never started is stopped, and its poller clears the
// stop flag when it begins, so the engine gets time to start; if its stop
// still hangs, the server goes on with the queues, and says so.
func stopNbioDefaultEngine() {
	nbioQuiet.Do(func() { logging.SetLevel(logging.LevelNone) })
	e := nbws.DefaultEngine
	nbws.DefaultEngine = nil
	if e == nil || e.Start() != nil {
		return
	}
	time.Sleep(50 * time.Millisecond)
	stopped := make(chan struct{})
	go func() {
		e.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		log.Print("echo: nbio's default engine did not stop; its task queues stay in the heap")
	}
}

// serveNbio runs an nbhttp engine, nbio's own HTTP server on its
// non-blocking poller (no goroutine per connection), on ln, with the
// library's Upgrader and an OnMessage callback that writes each message
// back, as its examples do. Payloads go back to the engine's pool after
// each callback (ReleaseWebsocketPayload, as in its benchmarks).
func (s *Server) serveNbio() error {
	nbioQuiet.Do(func() { logging.SetLevel(logging.LevelNone) })
	u := nbws.NewUpgrader()
	u.MessageLengthLimit = 64 << 20
	if Supports(Nbio, s.opts.compression()) && s.opts.compression() != ours.CompressionDisabled {
		u.EnableCompression(true)
	}
	u.OnMessage(func(c *nbws.Conn, typ nbws.MessageType, p []byte) {
		_ = c.WriteMessage(typ, p)
	})
	ended := make(chan error, 1)
	ln := &signalListener{Listener: s.ln, ended: ended}
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network: "tcp",
		Addrs:   []string{s.ln.Addr().String()},
		Listen:  func(string, string) (net.Listener, error) { return ln, nil },
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = u.Upgrade(w, r, nil)
		}),
		ReleaseWebsocketPayload: true,
	})
	u.Engine = engine
	if err := engine.Start(); err != nil {
		return err
	}
	// The engine stops once, here or in Close, whichever comes first;
	// stopping closes every connection.
	stop := sync.OnceFunc(engine.Stop)
	s.mu.Lock()
	s.close = stop
	s.mu.Unlock()
	err := <-ended
	stop()
	if s.conns != nil {
		return nil // Close ended it
	}
	return err
}

// signalListener reports its first failed Accept on ended.
type signalListener struct {
	net.Listener
	ended chan error
	once  sync.Once
}

func (l *signalListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		l.once.Do(func() { l.ended <- err })
	}
	return c, err
}

type endListener struct{ net.Listener }

func (l endListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		runtime.Goexit()
	}
	return c, err
}

type connKey struct{}

// discardLog silences net/http's logging of connections the load generator
// drops at the end of a run.
var discardLog = log.New(io.Discard, "", 0)
