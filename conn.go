package websocket

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rfc6455/websocket/internal/flate"
)

// Life of a Read
//
// Read and Reader take readMu, a lock a context can cancel. readFrameLocked
// (read.go) parses headers straight out of readBuffer, which holds what the
// transport delivered; it answers pings, notes pongs and handles a close
// frame in place, and returns at the first data frame header, checked by
// checkHeader (frame.go) and against the read limit. readRawLocked then
// copies the payload out of readBuffer, or reads a large payload straight
// into the caller's slice, and unmasks it there (mask.go); text goes to the
// UTF-8 validator (utf8.go) before the caller sees a byte. A compressed
// message (compress.go) is read through compress/flate instead, whose
// input, inflateSource, is that same raw payload followed by the
// 00 00 ff ff tail that RFC 7692 has the sender strip; the read limit and
// the UTF-8 check then apply to what it inflates to. While waiting for
// a message on an empty buffer, the connection reads into a small array of
// its own, so an idle connection holds no pooled buffer.
//
// Life of a Write
//
// Write and Writer take msgMu for the whole message, so messages never
// interleave; each frame then takes frameMu, which pongs, pings and the
// close frame take too, so control frames can go out between the fragments
// of a long message. A frame is encoded (header, then the payload copied
// and, by a client, masked) into a pooled buffer; a large server payload
// goes out with its header in one writev instead, without a copy. A small
// frame that finds another write in progress, or the reader holding input
// it has yet to hand out, joins a queue instead of waiting: the writer in
// progress, or the reader before it waits for input, writes the queue in
// one system call, so a burst of small messages costs one write. A compressed
// message goes through the message writer, which runs it through the
// deflater (internal/flate) and sends the output in frames as it accumulates.
//
// Contexts: a call whose context ends while it is blocked on the transport
// is interrupted by moving the transport's deadline into the past (ctxWatch);
// on transports without deadlines the connection is closed instead.

// Conn is a WebSocket connection, from Accept or Dial.
//
// See the package documentation for what may be called concurrently.
type Conn struct {
	// Immutable after construction.
	subprotocol  string
	deflate      *deflateParams // negotiated compression, nil when none
	tr           transport
	closeTimeout time.Duration

	// readMu is the read lock: held by Read, Reader's reads, and the close
	// handshake while they read from the transport. Fields below it up to
	// writing are guarded by it.
	readMu        ctxMutex
	rb            readBuffer
	frame         header    // the data frame being read
	frameLeft     int64     // payload bytes of frame not yet read
	maskPos       int       // position in frame.key of the next payload byte
	msgSize       int64     // declared payload bytes of the message so far
	inflate       *inflater // the peer's compression, when negotiated
	mr            messageReader
	readWatch     ctxWatch
	readLimit     atomic.Int64
	rs            readState
	msgOp         opcode        // opcode of the message being read
	msgOpen       bool          // a message has started and not been read to its end
	msgCompressed bool          // the message being read is compressed (RSV1)
	utf8          utf8Validator // state of the text message being read
	// discard is set once Close starts: reads then deliver nothing more.
	discard atomic.Bool

	// msgMu is held by a message writer from its first frame to its last.
	// Fields below it up to frameMu are guarded by it.
	msgMu    ctxMutex
	mw       *messageWriter // made on first use
	def      *flate.Writer  // our compressor, kept across messages with context takeover
	defTimer *time.Timer    // lets def shrink once the connection goes quiet

	// frameMu is held while frames are written to the transport. Fields
	// below it up to pendMu are guarded by it.
	frameMu    ctxMutex
	writeWatch ctxWatch

	// pendMu guards the frames queued to join the next write (see
	// write.go), and the fields below it up to inputPending.
	pendMu    sync.Mutex
	pend      *[]byte     // encoded frames not yet written, nil when none
	flusher   bool        // a frameMu holder writes pend before letting go
	closeSent bool        // a close frame was sent: nothing may follow it
	keys      *maskKeys   // client only
	pendTimer *time.Timer // writes pend that no reader or writer did
	// inputPending is set while the reader holds input it has not
	// consumed: the caller will soon read again, and the reader writes
	// queued frames before it waits for more.
	inputPending atomic.Bool

	// mu guards endErr, closeRcvd and pings.
	mu        sync.Mutex
	endErr    error       // why the connection ended or is ending; set once
	closeRcvd *CloseError // the peer's close frame, once received
	pings     *pingWaits  // made by the first Ping

	srv        atomic.Pointer[server] // set by Serve
	closed     atomic.Bool            // set when the transport is closed
	closeOnce  sync.Once
	closeTimer atomic.Pointer[time.Timer] // bounds a close handshake started by CloseWrite
}

// MessageType is the type of a data message (RFC 6455 §5.6).
type MessageType int

const (
	// MessageText is a message of UTF-8 text, checked on arrival.
	MessageText MessageType = MessageType(opText)
	// MessageBinary is a message of bytes.
	MessageBinary MessageType = MessageType(opBinary)
)

func (t MessageType) String() string {
	switch t {
	case MessageText:
		return "text"
	case MessageBinary:
		return "binary"
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// transport is the byte stream a Conn runs over: a hijacked net.Conn, the
// body of a client's 101 response, or any other full-duplex stream.
type transport struct {
	rw io.ReadWriteCloser
	// dl sets deadlines, nil when the transport has none; then the end of a
	// context interrupts a blocked call by closing the connection.
	dl deadliner
	// writev is set when w is a socket that net.Buffers writes with one
	// system call.
	writev bool
	// closeWrite half-closes the stream, nil when it cannot.
	closeWrite func() error
	// raw is the socket, when the stream is a plain one whose input Serve
	// can await without reading (wait_unix.go); nil otherwise.
	raw syscall.RawConn
}

type deadliner interface {
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// netTransport is the transport of a net.Conn.
func netTransport(nc net.Conn) transport {
	t := transport{rw: nc, dl: nc}
	if _, ok := nc.(syscall.Conn); ok {
		t.writev = true
	}
	t.raw = rawConn(nc)
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		t.closeWrite = cw.CloseWrite
	}
	return t
}

// connConfig is what Accept and Dial settle before a Conn starts.
type connConfig struct {
	client       bool
	subprotocol  string
	deflate      *deflateParams // nil without compression
	tr           transport
	buffered     []byte // bytes read past the handshake
	closeTimeout time.Duration
}

const (
	defaultReadLimit    = 32 << 20
	defaultCloseTimeout = 5 * time.Second
)

func newConn(cfg connConfig) *Conn {
	c := &Conn{
		subprotocol:  cfg.subprotocol,
		deflate:      cfg.deflate,
		tr:           cfg.tr,
		closeTimeout: cfg.closeTimeout,
	}
	if c.closeTimeout <= 0 {
		c.closeTimeout = defaultCloseTimeout
	}
	c.rs.client = cfg.client // immutable: read without readMu
	if c.deflate != nil {
		// RFC 7692 §6: RSV1 marks the first frame of a compressed message.
		c.rs.rsvOK = rsv1
		c.inflate = &inflater{src: inflateSource{c: c}}
	}
	c.readLimit.Store(defaultReadLimit)
	c.mr.c = c
	if cfg.client {
		c.keys = new(maskKeys)
	}
	if len(cfg.buffered) > 0 {
		c.rb.preload(cfg.buffered)
		c.inputPending.Store(true)
	}
	c.readWatch.c = c
	c.writeWatch.c, c.writeWatch.write = c, true
	return c
}

// Subprotocol returns the subprotocol chosen in the opening handshake, or ""
// if none was.
func (c *Conn) Subprotocol() string { return c.subprotocol }

// SetReadLimit sets the largest message, in bytes, that reads accept
// (default 32 MiB). A message that would exceed it fails the connection with
// StatusMessageTooBig before its excess is read. A negative n removes the
// limit. It is safe to call at any time; a message already being read keeps
// the limit it started with only for frames already accepted.
func (c *Conn) SetReadLimit(n int64) {
	c.readLimit.Store(n)
}

// lock takes mu for op, giving up when ctx ends or the connection closes.
func (c *Conn) lock(ctx context.Context, mu *ctxMutex, op string) error {
	switch mu.lock(ctx.Done()) {
	case lockTaken:
		return nil
	case lockCanceled:
		return fmt.Errorf("websocket: %s: %w", op, ctx.Err())
	}
	return c.closedErr(op)
}

// ctxMutex is a lock whose waiters give up when their context ends or the
// connection closes. It is three words while nobody waits; a waiter takes
// a pooled entry in a queue, and unlock hands the lock to the first one.
type ctxMutex struct {
	mu     sync.Mutex
	held   bool
	closed bool // the connection closed: waiters give up
	// last is the newest waiter, nil when none wait; the queue is a ring,
	// last.next being the oldest.
	last *lockWaiter
}

// lockWaiter is a goroutine waiting in a ctxMutex's queue. ch receives
// exactly one value while the entry is queued: true when the lock is handed
// over, false when the connection closed.
type lockWaiter struct {
	ch   chan bool
	next *lockWaiter
}

var lockWaiters = sync.Pool{New: func() any { return &lockWaiter{ch: make(chan bool, 1)} }}

// Results of ctxMutex.lock.
const (
	lockTaken = iota
	lockCanceled
	lockClosed
)

// tryLock takes the lock if it is free.
func (l *ctxMutex) tryLock() bool {
	l.mu.Lock()
	ok := !l.held
	l.held = true
	l.mu.Unlock()
	return ok
}

// lock takes the lock, waiting until it is free, done is closed, or the
// connection closes. A free lock is taken even once the connection closed.
func (l *ctxMutex) lock(done <-chan struct{}) int {
	l.mu.Lock()
	if !l.held {
		l.held = true
		l.mu.Unlock()
		return lockTaken
	}
	if l.closed {
		l.mu.Unlock()
		return lockClosed
	}
	w := lockWaiters.Get().(*lockWaiter)
	if l.last == nil {
		w.next = w
	} else {
		w.next, l.last.next = l.last.next, w
	}
	l.last = w
	l.mu.Unlock()
	result := lockClosed
	select {
	case taken := <-w.ch:
		if taken {
			result = lockTaken
		}
	case <-done:
		result = lockCanceled
		l.mu.Lock()
		queued := l.remove(w)
		l.mu.Unlock()
		if !queued && <-w.ch {
			// Handed the lock as done closed: pass it on.
			l.unlock()
		}
	}
	lockWaiters.Put(w)
	return result
}

// remove takes w out of the queue, reporting whether it was there.
func (l *ctxMutex) remove(w *lockWaiter) bool {
	if l.last == nil {
		return false
	}
	prev := l.last
	for {
		p := prev.next
		if p == w {
			break
		}
		if p == l.last {
			return false
		}
		prev = p
	}
	switch {
	case w.next == w:
		l.last = nil
	case w == l.last:
		l.last = prev
		fallthrough
	default:
		prev.next = w.next
	}
	w.next = nil
	return true
}

// unlock releases the lock, or hands it to the first waiter.
func (l *ctxMutex) unlock() {
	l.mu.Lock()
	if l.last == nil {
		l.held = false
		l.mu.Unlock()
		return
	}
	w := l.last.next
	l.remove(w)
	l.mu.Unlock()
	w.ch <- true
}

// close wakes every waiter with lockClosed and makes later waits fail at
// once.
func (l *ctxMutex) close() {
	l.mu.Lock()
	l.closed = true
	for l.last != nil {
		w := l.last.next
		l.remove(w)
		w.ch <- false
	}
	l.mu.Unlock()
}

// setEnd records why the connection ends, if nothing has yet.
func (c *Conn) setEnd(err error) {
	c.mu.Lock()
	if c.endErr == nil {
		c.endErr = err
	}
	c.mu.Unlock()
}

// closedErr is the error for an operation on an ended connection.
func (c *Conn) closedErr(op string) error {
	c.mu.Lock()
	err := c.endErr
	c.mu.Unlock()
	return &closedError{op: op, cause: err}
}

func (c *Conn) isClosed() bool { return c.closed.Load() }

// closeTransport closes the transport once, recording cause if the
// connection had no end recorded yet. It reports whether this call closed
// it.
func (c *Conn) closeTransport(cause error) bool {
	closed := false
	c.closeOnce.Do(func() {
		closed = true
		if cause != nil {
			c.setEnd(cause)
		}
		c.setEnd(errClosedLocally)
		if t := c.closeTimer.Load(); t != nil {
			t.Stop()
		}
		c.pendMu.Lock()
		if c.pendTimer != nil {
			c.pendTimer.Stop()
		}
		c.pendMu.Unlock()
		c.readWatch.kill()
		c.writeWatch.kill()
		// Marked closed before the transport, so that a call the
		// transport's closing wakes up finds the connection closed.
		c.closed.Store(true)
		c.readMu.close()
		c.msgMu.close()
		c.frameMu.close()
		c.mu.Lock()
		if c.pings != nil {
			for _, ch := range c.pings.waiting {
				close(ch)
			}
		}
		c.mu.Unlock()
		if s := c.srv.Load(); s != nil {
			s.unpark()
		}
		c.tr.rw.Close()
	})
	return closed
}

// ctxWatch lets the end of a context interrupt a blocked read or write:
// it moves the transport's deadline into the past, or, on a transport
// without deadlines, closes the connection. It keeps watching the same
// context across calls, so a long-lived context costs one registration,
// not one per message.
type ctxWatch struct {
	mu    sync.Mutex
	c     *Conn
	done  <-chan struct{} // Done of the context watched, nil when none
	stop  func() bool
	gen   uint64 // counts registrations, so a late callback can tell it is stale
	write bool   // the watch interrupts writes, not reads
	fired bool   // the deadline was moved into the past
	dead  bool   // the connection is closed: watch nothing more
}

// hasDeadline reports whether the transport has deadlines to move.
func (w *ctxWatch) hasDeadline() bool { return w.c.tr.dl != nil }

func (w *ctxWatch) setDeadline(t time.Time) {
	if w.write {
		w.c.tr.dl.SetWriteDeadline(t)
	} else {
		w.c.tr.dl.SetReadDeadline(t)
	}
}

var longAgo = time.Unix(1, 0)

// watch arranges for the end of ctx to interrupt the transport.
func (w *ctxWatch) watch(ctx context.Context) {
	d := ctx.Done()
	w.mu.Lock()
	if d == w.done || w.dead {
		w.mu.Unlock()
		return
	}
	w.unwatchLocked()
	if d != nil {
		w.done = d
		gen := w.gen
		w.stop = context.AfterFunc(ctx, func() { w.fire(gen) })
	}
	w.mu.Unlock()
}

func (w *ctxWatch) fire(gen uint64) {
	w.mu.Lock()
	if w.gen != gen || w.dead {
		w.mu.Unlock()
		return
	}
	w.fired = true
	if w.hasDeadline() {
		w.setDeadline(longAgo)
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	w.c.closeTransport(errContextClosed)
}

// unwatchLocked drops the registration and clears a deadline it set.
func (w *ctxWatch) unwatchLocked() {
	if w.stop != nil {
		w.stop()
		w.stop = nil
	}
	w.gen++
	w.done = nil
	if w.fired {
		w.fired = false
		if w.hasDeadline() {
			w.setDeadline(time.Time{})
		}
	}
}

// release ends a call's watch on a transport without deadlines, where a
// context that ends after the call must not close the connection. With
// deadlines, the watch stays for the next call with the same context.
func (w *ctxWatch) release() {
	if !w.hasDeadline() {
		w.pause()
	}
}

// pause stops watching, so that the caller may set deadlines of its own.
func (w *ctxWatch) pause() {
	w.mu.Lock()
	w.unwatchLocked()
	w.mu.Unlock()
}

// kill stops watching for good; called when the connection closes.
func (w *ctxWatch) kill() {
	w.mu.Lock()
	if !w.dead {
		w.dead = true
		if w.stop != nil {
			w.stop()
			w.stop = nil
		}
		w.gen++
	}
	w.mu.Unlock()
}
