// Package echo holds the echo servers that the benchmarks compare, one per
// library, each written the way that library's own users write one: the
// handshake, then every binary or text message sent back as it came.
//
// The servers differ only in the library; none of them is tuned beyond what
// the library's documentation suggests, and all accept messages of at least
// 16 MiB.
package echo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"
	ours "github.com/rfc6455/websocket"
)

// The library names, as flags and tables spell them.
const (
	Ours       = "ours"        // Accept, then Serve with a callback that writes each message back
	OursLoop   = "ours-loop"   // Accept, then ReadAppend and Write in a loop
	OursStream = "ours-stream" // Accept, then Reader, Writer and io.CopyBuffer
	Gorilla    = "gorilla"     // Upgrader, then ReadMessage and WriteMessage
	Coder      = "coder"       // Accept, then Reader, Writer and io.CopyBuffer
	Gobwas     = "gobwas"      // Upgrade, then ReadHeader and WriteHeader over 4 KiB bufio
	Gws        = "gws"         // Server with an OnMessage callback
)

// Libs lists every server, ours first, in the order tables show them.
var Libs = []string{Ours, OursLoop, OursStream, Gorilla, Coder, Gobwas, Gws}

// IsOurs reports whether lib is one of this project's own servers, as
// opposed to a peer it is compared with.
func IsOurs(lib string) bool { return lib == Ours || lib == OursLoop || lib == OursStream }

// Server is an echo server started by Start.
type Server struct {
	ln     net.Listener
	accept *ours.AcceptOptions // our servers' options; nil for the defaults
	wg     sync.WaitGroup      // the server's goroutines

	mu    sync.Mutex
	close func()                // stops an http.Server; guarded by mu
	conns map[net.Conn]struct{} // every accepted connection still open; guarded by mu
}

// Serve runs lib's echo server on ln until ln fails; it is the body of a
// server process, which ends by exiting. Connections are not tracked.
// Our servers accept with accept (nil for the defaults); the other
// libraries ignore it.
func Serve(lib string, ln net.Listener, accept *ours.AcceptOptions) error {
	s := &Server{ln: ln, accept: accept}
	return s.run(lib)
}

// Start runs lib's echo server on ln in the background, tracking its
// connections so that Close can end them. Tests and in-process benchmarks
// use it.
func Start(lib string, ln net.Listener) (*Server, error) {
	if !slices.Contains(Libs, lib) {
		return nil, fmt.Errorf("echo: unknown library %q (want one of %v)", lib, Libs)
	}
	s := &Server{ln: ln, conns: make(map[net.Conn]struct{})}
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
	switch lib {
	case Ours:
		return s.serveHTTP(s.oursServeHandler)
	case OursLoop:
		return s.serveHTTP(s.oursHandler)
	case OursStream:
		return s.serveHTTP(s.oursStreamHandler)
	case Gorilla:
		return s.serveHTTP(gorillaHandler)
	case Coder:
		return s.serveHTTP(coderHandler)
	case Gobwas:
		return s.serveGobwas()
	case Gws:
		return s.serveGws()
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

// oursServeHandler hands the connection to Serve and returns, so that
// net/http lets go of the request, and an idle connection holds no
// goroutine of its own (Serve parks it).
func (s *Server) oursServeHandler(w http.ResponseWriter, r *http.Request) {
	c, err := ours.Accept(w, r, s.accept)
	if err != nil {
		return
	}
	ctx := context.Background()
	c.Serve(func(typ ours.MessageType, p []byte) {
		if err := c.Write(ctx, typ, p); err != nil {
			c.CloseNow()
		}
	}, func(error) { c.CloseNow() })
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

// gorillaUpgrader is the zero Upgrader, which reads and writes through the
// buffers net/http had for the connection.
var gorillaUpgrader = gorilla.Upgrader{}

func gorillaHandler(w http.ResponseWriter, r *http.Request) {
	c, err := gorillaUpgrader.Upgrade(w, r, nil)
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

func coderHandler(w http.ResponseWriter, r *http.Request) {
	c, err := coder.Accept(w, r, nil)
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

// serveGobwas accepts raw TCP connections and echoes frame by frame, the
// library's low-level style: a header, the payload read into a buffer the
// connection reuses, unmasked, written back behind a header and flushed.
func (s *Server) serveGobwas() error {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return err
		}
		s.track(nc)
		s.goroutine(func() {
			defer s.untrack(nc)
			defer nc.Close()
			gobwasEcho(nc)
		})
	}
}

func gobwasEcho(nc net.Conn) {
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
		if int64(cap(buf)) < h.Length {
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
	}
}

type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	_ = c.WriteMessage(m.Opcode, m.Bytes())
}

func (gwsEcho) OnPing(c *gws.Conn, p []byte) { _ = c.WritePong(p) }

// serveGws runs the library's own server, which reads the HTTP request
// itself and calls back per message.
func (s *Server) serveGws() error {
	srv := gws.NewServer(gwsEcho{}, nil)
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
