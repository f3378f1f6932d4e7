package websocket

import (
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// transport is the byte stream a Conn runs over: a hijacked net.Conn, a
// TLS connection, an HTTP/2 stream, or a browser's WebSocket.
type transport struct {
	rw io.ReadWriteCloser
	// dl sets deadlines, nil when the transport has none; then the end of a
	// context interrupts a blocked call by closing the connection.
	dl deadliner
	// writev is set when w is a socket that net.Buffers writes with one
	// system call.
	writev bool
	// browser is set when the transport is a browser's WebSocket, which
	// sends no ping (Ping fails at once) and sends a message only whole,
	// once its last frame is written: a message abandoned between its
	// frames leaves nothing on the wire.
	browser bool
	// closeInOrder is set when closing ends the stream in order after
	// all that was written, whatever the peer sends meanwhile, as a
	// server's HTTP/2 stream ends with END_STREAM (RFC 8441 §5), where
	// closing a socket with input unread would reset it.
	closeInOrder bool
	// halfClose is set when rw half-closes the stream (halfCloser); a
	// flag rather than a method value, which would cost an allocation per
	// connection.
	halfClose bool
	// flags (atomic; a word rather than atomic types, so that the
	// transport may be built and returned by value): tlsStream, set as it
	// is built, outputLost, once a write failed, and outputStalled.
	flags uint32
	// raw is the socket, when the stream is a plain one whose input Serve
	// can await without reading (serve_wait_unix.go); nil otherwise.
	raw syscall.RawConn
}

const (
	// tlsStream: the stream is crypto/tls's, over a socket (tlsSocket).
	tlsStream uint32 = 1 << iota
	// outputLost: a write failed, or was cut short; nothing more can be
	// written (see close).
	outputLost
	// outputStalled: the socket had no room for output when a full queue
	// asked (makeRoom), and no writer has taken the queue since.
	outputStalled
)

// overTLS reports whether the stream is crypto/tls's over a socket, which
// writes nothing more after a write that failed, a timeout too.
func (t *transport) overTLS() bool { return atomic.LoadUint32(&t.flags)&tlsStream != 0 }

// tlsSocket returns the socket under a TLS stream, or nil: the stream
// itself for a connection accepted over TLS, or the connection an HTTP
// client dialed, on which Dial sets deadlines.
func (t *transport) tlsSocket() net.Conn {
	if tc, ok := t.rw.(tlsConn); ok {
		return tc.NetConn()
	}
	if nc, ok := t.dl.(net.Conn); ok && t.overTLS() {
		if tc, ok := nc.(tlsConn); ok {
			// An HTTP client whose DialTLSContext made the TLS
			// connection: what it dialed is that connection.
			return tc.NetConn()
		}
		return nc
	}
	return nil
}

// loseOutput records that a write failed, or was cut short: nothing more
// can be written.
func (t *transport) loseOutput() { atomic.OrUint32(&t.flags, outputLost) }

// lost reports whether loseOutput was called.
func (t *transport) lost() bool { return atomic.LoadUint32(&t.flags)&outputLost != 0 }

// stall records that the socket had no room for output (outputStalled).
func (t *transport) stall() { atomic.OrUint32(&t.flags, outputStalled) }

// stalled reports whether stall was called since the last unstall.
func (t *transport) stalled() bool { return atomic.LoadUint32(&t.flags)&outputStalled != 0 }

// unstall forgets a stall: a writer takes the queue again.
func (t *transport) unstall() {
	if t.stalled() {
		atomic.AndUint32(&t.flags, ^outputStalled)
	}
}

// tlsAlertWait bounds the wait for TLS's close_notify alert as a TLS
// stream closes: crypto/tls would wait up to 5 s for a peer that reads
// nothing to take it.
const tlsAlertWait = 100 * time.Millisecond

// close closes the stream. A TLS stream sends its close_notify alert
// first, if its socket takes it within tlsAlertWait (it does at once
// unless the peer stopped reading), and none at all once a failed write
// ended its output, since none could follow a record cut short: its
// socket is then closed under it.
func (t *transport) close() {
	if !t.overTLS() {
		t.rw.Close()
		return
	}
	nc := t.tlsSocket()
	switch {
	case nc == nil:
		t.rw.Close()
	case t.lost():
		nc.Close()
		// Then the stream's own Close, which writes nothing now that its
		// socket is closed: a type that embeds the *tls.Conn (a
		// listener's wrapper that counts its connections) may do more.
		t.rw.Close()
	default:
		withAlertWait(nc, t.rw.Close)
	}
}

// withAlertWait runs end, the Close or CloseWrite of a TLS stream over the
// socket nc, which sends TLS's close_notify alert first: if end has not
// returned within tlsAlertWait, the socket is closed, which fails the
// alert's write and ends the wait. (The stream's Close then closes the
// socket again, which a net.Conn allows.)
func withAlertWait(nc net.Conn, end func() error) {
	done := make(chan struct{})
	go func() {
		end()
		close(done)
	}()
	wait := time.NewTimer(tlsAlertWait)
	select {
	case <-done:
	case <-wait.C:
		nc.Close()
		<-done
	}
	wait.Stop()
}

// quiesce ends a write under way on a server's HTTP/2 stream, and waits
// for it (stream.quiesce); other transports have nothing to do.
func (t *transport) quiesce() {
	if s, ok := t.rw.(*stream); ok {
		s.quiesce()
	}
}

// cutInput ends the input of a server's HTTP/2 stream for good
// (stream.cutInput), end being what the read's context ending means; it
// reports false on other transports, and when the stream had ended.
func (t *transport) cutInput(end error) bool {
	s, ok := t.rw.(*stream)
	return ok && s.cutInput(end)
}

// inputCut returns the end that cutInput recorded, nil if none.
func (t *transport) inputCut() error {
	if s, ok := t.rw.(*stream); ok {
		return s.inputCut()
	}
	return nil
}

// serverStream reports whether t is a server's HTTP/2 stream, whose
// handler must not return while a write of the Conn's is under way.
func (t *transport) serverStream() bool {
	_, ok := t.rw.(*stream)
	return ok
}

// halfCloser is a stream that can end its output and go on reading.
type halfCloser interface{ CloseWrite() error }

// closeWrite half-closes the stream; the caller has checked halfClose.
// A TLS stream's half-close is its close_notify alert, bounded as in
// close, and skipped once a failed write ended its output.
func (t *transport) closeWrite() {
	hc := t.rw.(halfCloser)
	if t.overTLS() {
		if nc := t.tlsSocket(); nc != nil {
			if !t.lost() {
				withAlertWait(nc, hc.CloseWrite)
			}
			return
		}
	}
	hc.CloseWrite()
}

// addrSource is what a transport that knows its addresses offers: a
// net.Conn, or an HTTP/2 stream.
type addrSource interface {
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
}

// addrs returns the addresses of the connection under the transport: the
// stream itself, or the socket it sets deadlines on.
func (t *transport) addrs() addrSource {
	if a, ok := t.rw.(addrSource); ok {
		return a
	}
	if a, ok := t.dl.(addrSource); ok {
		return a
	}
	return nil
}

type deadliner interface {
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// tlsConn is a *tls.Conn, or a type that embeds one (a listener's
// wrapper that counts bytes, say): its writes are crypto/tls's.
type tlsConn interface {
	ConnectionState() tls.ConnectionState
	NetConn() net.Conn
}

// netTransport is the transport of a net.Conn.
func netTransport(nc net.Conn) transport {
	t := transport{rw: nc, dl: nc}
	if _, ok := nc.(tlsConn); ok {
		t.flags = tlsStream
	}
	_, t.writev = plainSocket(nc)
	t.raw = rawConn(nc)
	_, t.halfClose = nc.(halfCloser)
	return t
}

// plainSocket returns nc as a syscall.Conn when it is one of the net
// package's own sockets, whose system calls (writev, a wait for input
// without a read) may stand in for its methods. A type that wraps a socket
// to count or shape its bytes may offer them too, by embedding
// *net.TCPConn, while its own Read and Write must see every byte; and a
// TLS connection may hold decrypted input the socket no longer shows.
func plainSocket(nc net.Conn) (syscall.Conn, bool) {
	switch nc := nc.(type) {
	case *net.TCPConn:
		return nc, true
	case *net.UnixConn:
		return nc, true
	}
	return nil, false
}
