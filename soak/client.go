package main

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rfc6455/websocket"
)

const (
	dialTimeout  = 10 * time.Second
	writeTimeout = 10 * time.Second
	pingTimeout  = 10 * time.Second
	// ackTimeout bounds the wait for echoes while the connection is up:
	// a message not echoed by then is lost.
	ackTimeout = 20 * time.Second
	// closeTimeout bounds the client's closing handshake: after
	// CloseWrite, the echoes still in flight come before the server's
	// close frame, which the default 5 s could not wait for when the
	// soak ran beside other tests under the race detector (echoes then
	// lagged 4 s behind).
	closeTimeout = 10 * time.Second
	// endTimeout bounds the wait for a connection's reader to end once the
	// connection is closing: the closing handshake and more.
	endTimeout = closeTimeout + 5*time.Second
	// maxInFlight bounds the messages a connection has sent and not yet
	// seen echoed; a client that reaches it waits for echoes.
	maxInFlight = 32
	// meanMessages is the mean number of messages a connection carries.
	meanMessages = 40
)

// clientStats are the clients' counters.
type clientStats struct {
	open        atomic.Int64 // connections open now
	connections atomic.Int64 // connections opened
	compressed  atomic.Int64 // of which negotiated permessage-deflate

	sent         atomic.Int64 // messages written (the write returned nil)
	fragmented   atomic.Int64 // of which written in pieces through a Writer
	acknowledged atomic.Int64 // messages whose echo came back intact, in order

	lost       atomic.Int64 // sent, not echoed, and the connection did not end abnormally
	duplicated atomic.Int64 // echoes of a message already echoed
	reordered  atomic.Int64 // echoes that skipped a message still due
	corrupted  atomic.Int64 // echoes that do not match what was sent

	closes         atomic.Int64 // connections closed with the closing handshake
	resets         atomic.Int64 // connections that vanished with a TCP reset
	reaped         atomic.Int64 // connections stalled past keepalive, and closed by the server
	unacknowledged atomic.Int64 // messages in flight when a connection was reset or reaped
	shortStalls    atomic.Int64 // stalls shorter than keepalive, survived
	pings          atomic.Int64 // pings answered
}

// ending is how a connection is to end.
type ending int

const (
	endClose      ending = iota // wait for every echo, then Close
	endCloseWrite               // CloseWrite with messages in flight: every one must still come back
	endReset                    // vanish with messages in flight: a TCP reset
	endStall                    // stop reading and writing until keepalive reaps the connection
)

func pickEnding() ending {
	switch x := rand.IntN(100); {
	case x < 45:
		return endClose
	case x < 85:
		return endCloseWrite
	case x < 95:
		return endReset
	default:
		return endStall
	}
}

// client is one simulated user, opening one connection after another
// until the run ends.
type client struct {
	s     *soak
	url   string
	sock  *lastConn
	hc    *http.Client
	mean  time.Duration // mean time between two messages
	timer *time.Timer
	buf   []byte // the message being sent
}

func newClient(s *soak, url string) *client {
	sock := &lastConn{}
	t := &http.Transport{DialContext: sock.dial, MaxResponseHeaderBytes: 64 << 10}
	return &client{
		s:     s,
		url:   url,
		sock:  sock,
		hc:    &http.Client{Transport: t},
		mean:  time.Duration(float64(time.Second) * float64(s.cfg.clients) / s.cfg.rate),
		timer: time.NewTimer(time.Hour),
	}
}

// run opens connections one after another until ctx ends.
func (cl *client) run(ctx context.Context) {
	defer cl.timer.Stop()
	defer cl.hc.CloseIdleConnections()
	// Spread the start over a second, so that not all clients dial at once.
	if !cl.sleep(ctx, rand.N(time.Second)) {
		return
	}
	for ctx.Err() == nil {
		if !cl.session(ctx) {
			cl.sleep(ctx, time.Second) // after a failure, do not spin
		}
		cl.sleep(ctx, rand.N(200*time.Millisecond))
	}
}

// sleep waits for d, and reports false if ctx ended first.
func (cl *client) sleep(ctx context.Context, d time.Duration) bool {
	return cl.wait(ctx, nil, d)
}

// wait waits for d, and reports false if ctx ended or done was closed
// first.
func (cl *client) wait(ctx context.Context, done <-chan struct{}, d time.Duration) bool {
	cl.timer.Reset(d)
	select {
	case <-cl.timer.C:
		return true
	case <-ctx.Done():
	case <-done:
	}
	cl.timer.Stop()
	return false
}

// session runs one connection: it dials, sends the connection's messages
// at the client's pace, with pings and stalls now and then, and ends the
// connection as planned, or normally if ctx ends first. It reports false
// after an unexpected failure, which it has logged.
func (cl *client) session(ctx context.Context) bool {
	cc, err := cl.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return true
		}
		cl.s.log.errorf("dial: %v", err)
		return false
	}
	defer cl.s.cst.open.Add(-1)
	defer cc.c.CloseNow()
	st := &cl.s.cst
	end := pickEnding()
	n := 0
	if rand.IntN(20) != 0 { // and some connections carry nothing
		n = 1 + rand.IntN(2*meanMessages)
	}
	for range n {
		if !cl.wait(ctx, cc.done, time.Duration(min(rand.ExpFloat64(), 10)*float64(cl.mean))) {
			break
		}
		if !cc.waitInFlight(maxInFlight) {
			return cc.broken(fmt.Sprintf("%d messages not echoed within %v", cc.unacked(), ackTimeout))
		}
		switch x := rand.IntN(100); {
		case x < 3:
			pctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
			err := cc.c.Ping(pctx)
			cancel()
			if err != nil {
				return cc.broken(fmt.Sprintf("Ping: %v", err))
			}
			st.pings.Add(1)
		case x < 4:
			// Half the keepalive interval at most: the connection must
			// survive.
			ka := cl.s.cfg.keepalive
			d := ka/10 + rand.N(max(ka*2/5, 1))
			if !cl.stall(cc, d) {
				return false
			}
			st.shortStalls.Add(1)
			continue
		}
		var err error
		if cl.buf, err = cc.send(cl.buf, nil); err != nil {
			return cc.broken(fmt.Sprintf("write: %v", err))
		}
		cl.buf = keep(cl.buf)
	}
	select {
	case <-cc.done:
		return cc.broken("the connection ended")
	default:
	}
	switch end {
	case endClose:
		if !cc.waitInFlight(1) {
			return cc.broken(fmt.Sprintf("%d messages not echoed within %v", cc.unacked(), ackTimeout))
		}
		err := cc.c.Close(websocket.StatusNormalClosure, "")
		if !cc.wait() {
			return cc.broken("the reader went on after Close")
		}
		if err != nil {
			return cc.broken(fmt.Sprintf("Close: %v", err))
		}
		st.closes.Add(1)
	case endCloseWrite:
		if err := cc.c.CloseWrite(websocket.StatusNormalClosure, ""); err != nil {
			return cc.broken(fmt.Sprintf("CloseWrite: %v", err))
		}
		if !cc.wait() {
			return cc.broken("no close frame from the server after CloseWrite")
		}
		if websocket.CloseStatus(cc.readErr) != websocket.StatusNormalClosure || errors.Is(cc.readErr, websocket.ErrClosed) {
			return cc.broken("after CloseWrite")
		}
		if n := cc.unacked(); n > 0 {
			st.lost.Add(int64(n))
			cl.s.log.faultf("connection %08x: %d messages written before CloseWrite not echoed before the server's close frame", cc.id, n)
			return false
		}
		st.closes.Add(1)
	case endReset:
		cc.raw.SetLinger(0) // close sends a reset, at once
		cc.raw.Close()
		if !cc.wait() {
			return cc.broken("the reader went on after a reset")
		}
		st.unacknowledged.Add(int64(cc.unacked()))
		st.resets.Add(1)
	case endStall:
		// Past the keepalive interval and timeout, with room to spare:
		// the server must give up on the connection. The room is a
		// keepalive interval: with 2 s, a server's timers late on a
		// loaded machine had its ping answered when the reader resumed.
		d := 3*cl.s.cfg.keepalive + rand.N(2*time.Second)
		if !cl.stall(cc, d) {
			return false
		}
		if !cc.wait() {
			cl.s.log.errorf("connection %08x: still open after a stall of %v: keepalive did not end it", cc.id, d)
			return false
		}
		// Keepalive's close frame (1011) ends the read, or the reset
		// that our answer to its ping drew from the closed socket, if
		// that comes first; the server counts what keepalive ended.
		st.unacknowledged.Add(int64(cc.unacked()))
		st.reaped.Add(1)
	}
	return true
}

// stall sends a message and stops reading once its echo has come back,
// for d, sending nothing either; it reports false after a failure, which
// it has logged.
func (cl *client) stall(cc *clientConn, d time.Duration) bool {
	resume := make(chan struct{})
	var err error
	if cl.buf, err = cc.send(cl.buf, &stall{d: d, resume: resume}); err != nil {
		return cc.broken(fmt.Sprintf("write: %v", err))
	}
	cl.buf = keep(cl.buf)
	t := time.NewTimer(d + ackTimeout)
	defer t.Stop()
	select {
	case <-resume:
		return true
	case <-cc.done:
		return cc.broken("the connection ended before a stall")
	case <-t.C:
		return cc.broken(fmt.Sprintf("no echo to stall after within %v", ackTimeout))
	}
}

// dial opens a connection, offering compression to the configured share
// of them, with random settings.
func (cl *client) dial(ctx context.Context) (*clientConn, error) {
	opts := &websocket.DialOptions{
		HTTPClient:        cl.hc,
		KeepaliveInterval: -1, // a stalled client must be silent
		CloseTimeout:      closeTimeout,
	}
	offered := rand.Float64() < cl.s.cfg.compression
	if offered {
		opts.Compression = websocket.CompressionNoContextTakeover
		if rand.IntN(2) == 0 {
			opts.Compression = websocket.CompressionContextTakeover
		}
		opts.CompressionWindowBits = 8 + rand.IntN(8)
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(dctx, cl.url, opts)
	raw := cl.sock.take()
	if err != nil {
		if raw != nil {
			raw.Close()
		}
		return nil, err
	}
	tcp, ok := raw.(*net.TCPConn)
	if !ok {
		c.CloseNow()
		return nil, fmt.Errorf("the transport dialed %T, not a TCP connection", raw)
	}
	cl.s.track(c)
	st := &cl.s.cst
	st.open.Add(1)
	st.connections.Add(1)
	if strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		st.compressed.Add(1)
	} else if offered {
		cl.s.log.errorf("compression offered with %d-bit windows, not negotiated", opts.CompressionWindowBits)
	}
	cc := &clientConn{
		desc:  resp.Header.Get("Sec-WebSocket-Extensions"),
		s:     cl.s,
		c:     c,
		raw:   tcp,
		id:    cl.s.ids.Add(1),
		done:  make(chan struct{}),
		acked: make(chan struct{}, 1),
	}
	go cc.read()
	return cc, nil
}

// lastConn is a transport's dial function that keeps the connection it
// dialed last: the public API gives no access to the socket under a Conn,
// and a client vanishing needs it to send a reset.
type lastConn struct {
	mu sync.Mutex
	c  net.Conn // guarded by mu
}

func (l *lastConn) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		l.mu.Lock()
		if l.c != nil {
			l.c.Close() // a dial whose handshake failed
		}
		l.c = c
		l.mu.Unlock()
	}
	return c, err
}

// take returns the connection dialed last, and forgets it.
func (l *lastConn) take() net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.c
	l.c = nil
	return c
}

// clientConn is the client's side of one connection: the session's
// goroutine writes, and a reader goroutine checks the echoes.
type clientConn struct {
	desc  string // the extensions negotiated
	s     *soak
	c     *websocket.Conn
	raw   *net.TCPConn  // the socket under c, to reset
	id    uint32        // immutable
	next  uint64        // the number of the next message; the writer's own
	done  chan struct{} // closed when the reader ends
	acked chan struct{} // signalled when an echo arrives
	// readErr is why the reader ended; set before done is closed.
	readErr error

	mu       sync.Mutex
	inflight []record // sent and not yet echoed, oldest first; guarded by mu
	due      uint64   // the number the next echo must carry; guarded by mu
	stall    *stall   // what to do after an echo; guarded by mu
}

// record is what the echo of a message must match.
type record struct {
	seq uint64
	typ websocket.MessageType
	n   int // body length
	sum uint32
}

// stall asks the reader to stop for d after the echo of message seq, and
// then to close resume.
type stall struct {
	seq    uint64
	d      time.Duration
	resume chan struct{}
}

// send writes a message of random type and size, whole or in pieces,
// built in buf, whose grown form it returns. With st, the reader stalls
// once the message's echo arrives.
func (cc *clientConn) send(buf []byte, st *stall) ([]byte, error) {
	typ := websocket.MessageBinary
	if rand.IntN(2) == 0 {
		typ = websocket.MessageText
	}
	n := pickSize()
	buf = slices.Grow(buf[:0], headerLen+n)[:headerLen+n]
	fillBody(typ, buf[headerLen:])
	h := header{conn: cc.id, seq: cc.next, sum: crc32.ChecksumIEEE(buf[headerLen:])}
	putHeader(buf, h)
	cc.next++
	// Recorded first: the echo may be read before the write returns.
	cc.mu.Lock()
	cc.inflight = append(cc.inflight, record{seq: h.seq, typ: typ, n: n, sum: h.sum})
	if st != nil {
		st.seq = h.seq
		cc.stall = st
	}
	cc.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	var err error
	pieces := rand.IntN(5) == 0
	if pieces {
		err = writePieces(ctx, cc.c, typ, buf)
	} else {
		err = cc.c.Write(ctx, typ, buf)
	}
	if err != nil {
		// Not sent: forget it (the caller ends the connection anyway).
		cc.mu.Lock()
		if k := len(cc.inflight) - 1; k >= 0 && cc.inflight[k].seq == h.seq {
			cc.inflight = cc.inflight[:k]
		}
		cc.mu.Unlock()
		return buf, err
	}
	cc.s.cst.sent.Add(1)
	if pieces {
		cc.s.cst.fragmented.Add(1)
	}
	return buf, nil
}

// read checks every echo until the connection ends, stalling where asked.
func (cc *clientConn) read() {
	defer close(cc.done)
	var buf []byte
	for {
		typ, p, err := cc.c.ReadAppend(context.Background(), buf[:0])
		if err != nil {
			cc.readErr = err
			return
		}
		st, err := cc.check(typ, p)
		if err != nil {
			cc.readErr = err
			cc.c.CloseNow()
			return
		}
		if st != nil {
			time.Sleep(st.d) // reading nothing, answering no ping
			close(st.resume)
		}
		buf = keep(p)
	}
}

// check checks an echo against the oldest message in flight, counts it,
// and returns the stall to make after it, if any. It returns an error,
// having counted and logged it, when the echo is not the one due.
func (cc *clientConn) check(typ websocket.MessageType, msg []byte) (*stall, error) {
	st := &cc.s.cst
	h, body, err := parse(msg)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	var r record
	if len(cc.inflight) > 0 {
		r = cc.inflight[0]
	}
	switch {
	case err != nil:
		st.corrupted.Add(1)
		err = fmt.Errorf("echo of message %d, %d bytes (%d sent): %w", h.seq, len(msg)-min(len(msg), headerLen), r.n, err)
	case h.conn != cc.id:
		st.corrupted.Add(1)
		err = fmt.Errorf("echo of message %d of connection %08x", h.seq, h.conn)
	case h.seq < cc.due:
		st.duplicated.Add(1)
		err = fmt.Errorf("echo of message %d again, after %d", h.seq, cc.due-1)
	case len(cc.inflight) == 0:
		st.corrupted.Add(1)
		err = fmt.Errorf("echo of message %d, never sent", h.seq)
	case h.seq > r.seq:
		st.reordered.Add(1)
		err = fmt.Errorf("echo of message %d where %d was due", h.seq, r.seq)
	case typ != r.typ || len(body) != r.n || h.sum != r.sum:
		st.corrupted.Add(1)
		err = fmt.Errorf("echo of message %d: %v of %d bytes (checksum %08x), sent %v of %d (%08x)", h.seq, typ, len(body), h.sum, r.typ, r.n, r.sum)
	}
	if err != nil {
		err = fmt.Errorf("connection %08x: %w", cc.id, err)
		cc.s.log.faultf("%v", err)
		return nil, err
	}
	cc.inflight = cc.inflight[1:]
	cc.due = h.seq + 1
	st.acknowledged.Add(1)
	select {
	case cc.acked <- struct{}{}:
	default:
	}
	if s := cc.stall; s != nil && s.seq == h.seq {
		cc.stall = nil
		return s, nil
	}
	return nil, nil
}

// unacked reports how many messages are in flight.
func (cc *clientConn) unacked() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.inflight)
}

// waitInFlight waits, at most ackTimeout, until fewer than max messages
// are in flight; it reports false if they are not, or the reader ended.
func (cc *clientConn) waitInFlight(max int) bool {
	t := time.NewTimer(ackTimeout)
	defer t.Stop()
	for cc.unacked() >= max {
		select {
		case <-cc.acked:
		case <-cc.done:
			return cc.unacked() < max
		case <-t.C:
			return false
		}
	}
	return true
}

// wait waits, at most endTimeout, for the reader to end.
func (cc *clientConn) wait() bool {
	t := time.NewTimer(endTimeout)
	defer t.Stop()
	select {
	case <-cc.done:
		return true
	case <-t.C:
		return false
	}
}

// broken ends a connection that failed unexpectedly: its messages in
// flight are lost. It logs what happened, and returns false.
func (cc *clientConn) broken(what string) bool {
	cc.c.CloseNow()
	reader := "still reading"
	if cc.wait() {
		reader = fmt.Sprintf("reader ended: %v", cc.readErr)
	}
	n := cc.unacked()
	cc.s.cst.lost.Add(int64(n))
	cc.s.log.errorf("connection %08x [%s]: %s (%s); %d messages in flight lost", cc.id, cc.desc, what, reader, n)
	return false
}
