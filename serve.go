package websocket

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Serve hands each message the connection receives to onMessage, one at a
// time and in order, from a goroutine of its own, and returns at once. When
// reading ends, onClose gets the error that ended it (a CloseError when the
// peer closed) and serving is over. p is valid only until onMessage
// returns.
//
// Serve is for servers that keep many connections open. While no message
// is arriving, a connection served this way holds no buffer and, on a
// plain TCP connection, once it has been quiet for a few milliseconds, no
// goroutine either: on Linux the connection is parked in an epoll set that
// one goroutine watches for all such connections, and the goroutine that
// ran onMessage ends, letting its stack go; when input comes, a fresh
// goroutine serves it. On other Unix systems a small goroutine waits for
// the input instead; elsewhere (Windows), the serving goroutine waits in
// a read, as a Read loop would.
//
// An http.Handler that calls Serve and returns also lets net/http drop all
// it held for the request (whose context then ends: do not use it in
// onMessage).
//
// onMessage may write and close, and so may other goroutines, as always.
// Nothing else may read the connection: once Serve is called, Read,
// ReadAppend, Reader and a second Serve return an error; call Serve when
// no Read is in progress. While onMessage runs, the connection reads
// nothing more, so a slow onMessage slows its own peer, not other
// connections. Nor is the keepalive's pong read then: the connection is
// failed if onMessage holds it past KeepaliveTimeout, unless input that
// reached the kernel meanwhile shows the peer alive (on Linux over TCP
// and TLS; see the package documentation, Keepalive). A peer that sends
// and never reads can so keep an onMessage blocked in a Write for as long
// as it sends: bound its writes with a context, or use Enqueue, which
// never waits. A Ping from onMessage reads its own pong, and fails at
// once if a message comes first (see Ping); keepalive is the way to watch
// a served peer.
//
// Serve owns the connection until onClose: an http.Handler calls Serve and
// returns, without closing the connection on its way out (no defer
// CloseNow), and onClose need not close it either. onClose may be nil;
// onMessage may not, and Serve returns an error for it, serving nothing.
// Except over HTTP/2 (below), the callbacks run on goroutines of Serve's,
// outside the handler: a panic in one is not recovered, as net/http
// recovers a handler's, and ends the program.
//
// A connection accepted over HTTP/2 (RFC 8441) lives only as long as its
// handler runs: Serve then serves from the calling goroutine and returns
// once onClose has returned.
func (c *Conn) Serve(onMessage func(typ MessageType, p []byte), onClose func(err error)) error {
	if onMessage == nil {
		return errServeNoHandler
	}
	if onClose == nil {
		onClose = func(error) {}
	}
	s := &server{c: c, onMessage: onMessage, onClose: onClose}
	if !c.srv.CompareAndSwap(nil, s) {
		return errServeTwice
	}
	if _, ok := c.tr.rw.(*stream); ok {
		s.start()
		return nil
	}
	go s.start()
	return nil
}

// CloseRead is for a program that only writes to the connection: it has
// the connection read as Serve does, so that the peer's pings and its
// close frame are answered, and returns a context that ends once the
// connection has, its cause (context.Cause) the error that ended it (a
// CloseError when the peer closed), or once ctx ends, with the reading
// going on. A connection that nothing reads answers no close frame: the
// peer's Close waits out its timeout, and the writes that follow it fail
// as a lost connection rather than with the peer's close.
//
// A data message from the peer fails the connection with
// StatusPolicyViolation as soon as its first frame's header is read,
// none of its payload held: it would be lost otherwise. Once our close
// frame is out (Close, CloseWrite), one that the peer sent before it saw
// ours is dropped instead, as Close drops it. A program that would
// rather drop the peer's messages calls Serve with an onMessage that
// ignores them.
//
// As with Serve, nothing else may read the connection once CloseRead is
// called (a Read in progress then gets its message, and is the last),
// and the connection holds no buffer and, on Linux, no goroutine while
// the peer is quiet. If the connection cannot be served (Serve or
// CloseRead was called before), the context returned has ended already,
// with the error.
//
// Unlike Serve, CloseRead leaves the connection to its caller, who
// closes it when done writing (defer c.CloseNow() after Accept). Over
// HTTP/2, where CloseRead returns at once too, the handler must close it
// before it returns: the reading answers pings on the handler's stream,
// which net/http takes back once the handler has returned.
func (c *Conn) CloseRead(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	s := &server{c: c, onMessage: func(MessageType, []byte) {}, onClose: cancel, noData: true}
	if !c.srv.CompareAndSwap(nil, s) {
		cancel(errServeTwice)
		return ctx
	}
	go s.start()
	return ctx
}

// start serves the connection. An earlier Read's context must not reach
// Serve's waits, which read the socket without a watch of their own: its
// watch is stopped, but under the read lock, so as not to take the
// deadline of a read still under way (keepalive's, reading the answer to
// its ping on a connection nobody read), which then waited without end on
// a silent peer, Serve's wait queued behind it.
func (s *server) start() {
	c := s.c
	if c.readMu.lock(nil) == lockTaken {
		c.pauseWatch(watchRead)
		// Set under the read lock: a Read in progress as CloseRead was
		// called reads its message as it would have.
		s.refusing = s.noData
		c.readUnlock()
	}
	s.run()
}

var (
	errServeTwice     = errors.New("websocket: serve: the connection is served already")
	errServeNoHandler = errors.New("websocket: serve: onMessage is nil")
)

const (
	// serveBufSize is the size of the pooled buffers Serve reads messages
	// into; larger messages grow them, and buffers past maxServeBuf are
	// left to the garbage collector rather than pooled.
	serveBufSize = 4 << 10
	maxServeBuf  = 8 << 20
	// serveLinger is how long a served connection stays quiet before the
	// goroutine waiting on its grown stack hands the waiting over to a
	// small one. The check runs on a timer that fires once per period
	// while the connection is busy, so it costs nothing per message.
	serveLinger = 20 * time.Millisecond
	// serveLingerMax bounds the period of a timer that finds the
	// goroutine busy in one read or onMessage period after period: a
	// connection that goes quiet after that is let go within it and
	// one serveLinger more.
	serveLingerMax = 1280 * time.Millisecond
)

var serveBufPool = sync.Pool{New: func() any { b := make([]byte, 0, serveBufSize); return &b }}

// server is the state of a Serve call.
type server struct {
	c         *Conn
	onMessage func(MessageType, []byte)
	onClose   func(error)

	// timer looks for a long wait once per serveLinger while armed. It is
	// made by the first wait and dropped when the connection parks
	// unarmed, so a parked connection holds none; only the serving
	// goroutine sets it, and look uses it only while armed.
	timer       *time.Timer
	waits       atomic.Uint64 // counts the waits for input
	seen        uint32        // waits' low bits, when the timer last looked; the timer's own
	slow        uint8         // the timer's own: the periods it found the goroutine busy with no new wait, each doubling the next, up to serveLingerMax
	noData      bool          // immutable: a data message fails the connection (CloseRead)
	refusing    bool          // readMu: noData, once the reader in progress at the start is done
	armed       atomic.Bool   // timer is pending
	waiting     atomic.Bool   // the serving goroutine waits for input
	interrupted atomic.Bool   // the timer cut a wait short with a past deadline
	inCallback  atomic.Bool   // onMessage runs

	//lint:ignore U1000 empty on systems without epoll
	parkState // how a quiet connection is parked (serve_park_*.go)
}

// run reads and hands out messages until the connection ends, waiting for
// input between them, until a wait goes on long enough for the timer to
// cut it short; then it starts a fresh goroutine that waits on and carries
// on, and returns.
func (s *server) run() {
	c := s.c
	ctx := context.Background()
	for {
		if c.tr.raw != nil && !c.inputPending.Load() {
			// Nothing buffered: what onMessage wrote goes out now, as
			// far as the socket takes it at once, the rest by the
			// queue's timer. A write that waited here would stop the
			// reading of a peer that reads nothing, so that its queue
			// would never fill (CloseOnQueueFull) and nothing would end
			// the connection.
			c.flushQueueNow()
			if !s.wait() {
				// Quiet for a while: park the connection, or leave the
				// waiting to a small goroutine, and let this stack go,
				// and the timer too unless it is still armed (a close
				// handshake's deadline, not the timer, cut the wait).
				if !s.armed.Load() {
					s.timer = nil
				}
				if !s.park() {
					go s.await()
				}
				return
			}
		}
		bp := serveBufPool.Get().(*[]byte)
		typ, p, err := c.readAppend(ctx, (*bp)[:0], c.tr.raw != nil)
		if err == errScanStopped {
			// Pings or pongs, and nothing after them: wait again.
			serveBufPool.Put(bp)
			continue
		}
		if err != nil {
			serveBufPool.Put(bp)
			if s.armed.Load() {
				s.timer.Stop()
			}
			s.onClose(err)
			return
		}
		s.inCallback.Store(true)
		s.onMessage(typ, p)
		s.inCallback.Store(false)
		if cap(p) <= maxServeBuf {
			*bp = p[:0]
			serveBufPool.Put(bp)
		}
	}
}

// wait waits for input on the serving goroutine, reporting false when the
// timer cut the wait short.
func (s *server) wait() bool {
	s.waits.Add(1)
	if s.armed.CompareAndSwap(false, true) {
		if s.timer == nil {
			// Started far off and reset below, so that look, which
			// reads s.timer, cannot run before it is set.
			s.timer = time.AfterFunc(math.MaxInt64, s.look)
		}
		s.timer.Reset(serveLinger)
	}
	s.waiting.Store(true)
	got := s.awaitInput()
	s.waiting.Store(false)
	if !s.armed.Load() || s.interrupted.Load() {
		// The timer has given up on this wait, and may be cutting it short
		// under the read lock even now: it saw the wait before input ended
		// it (look holding the lock makes the wait end at once). Under the
		// lock, its deadline is set if it is to be: clear it before
		// anything reads again, or the next read fails.
		if s.c.readMu.lock(nil) == lockTaken {
			if s.interrupted.Load() {
				s.c.tr.dl.SetReadDeadline(time.Time{})
				s.interrupted.Store(false)
			}
			s.c.readMu.unlock()
		}
	}
	return got
}

// look runs on the timer: a wait that has lasted a whole period is cut
// short; otherwise it looks again a period later while the connection is
// busy.
func (s *server) look() {
	if s.c.isClosed() {
		// Serving is over, or about to be: look no more, so that
		// nothing keeps the connection from being freed.
		return
	}
	n := s.waits.Load()
	if uint32(n) != s.seen || !s.waiting.Load() {
		// Busy. With no wait since the last look (a read or onMessage
		// that lasts, as when a peer sends half a frame and then
		// nothing, or input read back to back), the goroutine is
		// looked at less and less often: a look every 20 ms for as
		// long as a frame stayed half sent cost 48 timer runs, each a
		// goroutine, a second per connection.
		if uint32(n) != s.seen {
			s.seen, s.slow = uint32(n), 0
		} else if serveLinger<<s.slow < serveLingerMax {
			s.slow++
		}
		s.timer.Reset(serveLinger << s.slow)
		return
	}
	// Under the read lock, so as not to disturb a close handshake. A
	// lock held for a moment (a Ping asking whether Serve reads its
	// pong) is tried again a period later: a timer given up on would
	// leave the goroutine waiting until input came.
	if !s.c.readMu.tryLock() {
		s.timer.Reset(serveLinger)
		return
	}
	s.slow = 0 // before armed is cleared, after which a wait may arm it
	s.armed.Store(false)
	switch {
	case s.waits.Load() != n:
		// A wait began since n was read. It counted itself before
		// looking at armed: if it found the timer still armed, it armed
		// nothing, and giving the timer up would leave it waiting, its
		// stack held, until input came. Arm it for that wait, unless
		// the wait did.
		if s.armed.CompareAndSwap(false, true) {
			s.timer.Reset(serveLinger)
		}
	case s.waiting.Load():
		s.interrupted.Store(true)
		s.c.tr.dl.SetReadDeadline(longAgo)
	}
	s.c.readMu.unlock()
}

// await waits until the socket has input (or fails), then serves.
func (s *server) await() {
	s.awaitInput()
	s.run()
}
