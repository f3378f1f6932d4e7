package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rfc6455/websocket"
)

// serverWriteTimeout bounds each echo, so that a client that stops
// reading for good cannot hold a connection's writer forever.
const serverWriteTimeout = 10 * time.Second

// serverStats are the server's counters.
type serverStats struct {
	accepted   atomic.Int64 // connections accepted
	delivered  atomic.Int64 // messages received intact and in order
	duplicated atomic.Int64 // messages whose number came again on the connection
	reordered  atomic.Int64 // messages whose number skipped ahead
	corrupted  atomic.Int64 // messages with a bad header, checksum or connection id
	normal     atomic.Int64 // connections ended by a close frame with 1000
	keepalive  atomic.Int64 // connections ended by keepalive (ErrKeepaliveTimeout)
	abnormal   atomic.Int64 // connections ended otherwise (resets, mostly)
}

// server is the soak's echo server. Each connection it accepts is echoed
// in one of three ways, in turn: a Read/Write loop, a Reader/Writer loop
// that writes each echo in several pieces, and Serve.
type server struct {
	sk    *soak
	st    *serverStats
	log   *eventLog
	srv   *http.Server
	ln    net.Listener
	opts  websocket.AcceptOptions
	wg    sync.WaitGroup // the http.Server's Serve goroutine
	mu    sync.Mutex
	conns map[*websocket.Conn]struct{} // open connections; guarded by mu
	peak  int                          // the most open at once; guarded by mu
}

// startServer listens on addr and serves until close.
func startServer(addr string, sk *soak) (*server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &server{
		sk:  sk,
		st:  &sk.sst,
		log: sk.log,
		ln:  ln,
		opts: websocket.AcceptOptions{
			KeepaliveInterval: sk.cfg.keepalive,
			KeepaliveTimeout:  sk.cfg.keepalive,
			// Whatever the client offers, with any window size it asks.
			Compression: websocket.CompressionContextTakeover,
		},
		conns: make(map[*websocket.Conn]struct{}),
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Go(func() { s.srv.Serve(ln) })
	return s, nil
}

// addr is the address the server listens on.
func (s *server) addr() string { return s.ln.Addr().String() }

// open reports how many connections are open.
func (s *server) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// peakOpen reports the most connections that were open at once.
func (s *server) peakOpen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// waitIdle waits up to d for every connection to end, and reports how
// many are still open.
func (s *server) waitIdle(d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		n := s.open()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// close stops the server and closes the connections still open.
func (s *server) close() {
	s.srv.Close()
	s.wg.Wait()
	s.closeConns()
}

// closeConns closes the connections still open, and waits up to 10
// seconds for them to end.
func (s *server) closeConns() {
	s.mu.Lock()
	for c := range s.conns {
		c.CloseNow()
	}
	s.mu.Unlock()
	s.waitIdle(10 * time.Second)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &s.opts)
	if err != nil {
		s.log.errorf("server: accept: %v", err)
		return
	}
	s.sk.track(c)
	c.SetReadLimit(headerLen + maxBody)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.peak = max(s.peak, len(s.conns))
	s.mu.Unlock()
	n := s.st.accepted.Add(1)
	sc := &serverConn{s: s, c: c}
	switch n % 3 {
	case 0:
		sc.how = "Read/Write"
		defer sc.end(sc.readWrite())
	case 1:
		sc.how = "Reader/Writer"
		defer sc.end(sc.readerWriter())
	default:
		sc.how = "Serve"
		// Serve owns the connection from here: the handler returns.
		err := c.Serve(func(typ websocket.MessageType, p []byte) {
			if !sc.check(p) {
				c.CloseNow()
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), serverWriteTimeout)
			defer cancel()
			if err := c.Write(ctx, typ, p); err != nil {
				c.CloseNow()
			}
		}, sc.end)
		if err != nil {
			sc.end(fmt.Errorf("server: Serve: %w", err))
		}
	}
}

// serverConn is the server's side of one connection.
type serverConn struct {
	s     *server
	c     *websocket.Conn
	how   string // how it echoes: Read/Write, Reader/Writer or Serve
	known bool   // a message has arrived, so conn is set
	conn  uint32 // the id the client gave the connection
	next  uint64 // the number the next message must carry
}

// readWrite echoes with Read and Write until the connection ends, and
// returns the error that ended it.
func (sc *serverConn) readWrite() error {
	var buf []byte
	for {
		typ, p, err := sc.c.ReadAppend(context.Background(), buf[:0])
		if err != nil {
			return err
		}
		if !sc.check(p) {
			return errors.New("server: bad message")
		}
		if err := sc.write(typ, p, false); err != nil {
			return err
		}
		buf = keep(p)
	}
}

// readerWriter echoes with Reader and Writer, in pieces, until the
// connection ends, and returns the error that ended it.
func (sc *serverConn) readerWriter() error {
	var b bytes.Buffer
	for {
		typ, r, err := sc.c.Reader(context.Background())
		if err != nil {
			return err
		}
		b.Reset()
		if _, err := b.ReadFrom(r); err != nil {
			return err
		}
		if !sc.check(b.Bytes()) {
			return errors.New("server: bad message")
		}
		if err := sc.write(typ, b.Bytes(), true); err != nil {
			return err
		}
		if b.Cap() > 8<<10 {
			b = bytes.Buffer{}
		}
	}
}

// write echoes p, in one Write, or in pieces through a Writer.
func (sc *serverConn) write(typ websocket.MessageType, p []byte, pieces bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), serverWriteTimeout)
	defer cancel()
	if !pieces {
		return sc.c.Write(ctx, typ, p)
	}
	return writePieces(ctx, sc.c, typ, p)
}

// check checks a message that arrived: its header, its checksum, and that
// it carries the number after the last one's. It reports false, having
// counted and logged the fault, when something is wrong.
func (sc *serverConn) check(msg []byte) bool {
	st := sc.s.st
	h, _, err := parse(msg)
	switch {
	case err != nil:
		st.corrupted.Add(1)
		sc.s.log.faultf("server (%s): connection %08x: message %d of %d bytes: %v", sc.how, h.conn, h.seq, len(msg), err)
		return false
	case sc.known && h.conn != sc.conn:
		st.corrupted.Add(1)
		sc.s.log.faultf("server (%s): connection %08x: message %d from connection %08x", sc.how, sc.conn, h.seq, h.conn)
		return false
	case h.seq < sc.next:
		st.duplicated.Add(1)
		sc.s.log.faultf("server (%s): connection %08x: message %d again, after %d", sc.how, h.conn, h.seq, sc.next-1)
		return false
	case h.seq > sc.next:
		st.reordered.Add(1)
		sc.s.log.faultf("server (%s): connection %08x: message %d where %d was due", sc.how, h.conn, h.seq, sc.next)
		return false
	}
	sc.known, sc.conn, sc.next = true, h.conn, h.seq+1
	st.delivered.Add(1)
	return true
}

// end records how the connection ended and forgets it.
func (sc *serverConn) end(err error) {
	sc.c.CloseNow()
	st := sc.s.st
	switch {
	case errors.Is(err, websocket.ErrKeepaliveTimeout):
		st.keepalive.Add(1)
	case websocket.CloseStatus(err) == websocket.StatusNormalClosure && !errors.Is(err, websocket.ErrClosed):
		st.normal.Add(1)
	default:
		st.abnormal.Add(1)
	}
	sc.s.mu.Lock()
	delete(sc.s.conns, sc.c)
	sc.s.mu.Unlock()
}
