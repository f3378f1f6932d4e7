package websocket

import (
	"context"
	"math"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rfc6455/websocket/internal/flate"
)

// Life of a Read, the functions a message passes through, in order:
//
//  1. Conn.Read, ReadAppend or Reader (read.go) takes readMu, a lock a
//     context can cancel (context.go), and calls nextMessageLocked.
//  2. readFrameLocked (read.go) parses frame headers out of readBuffer
//     (readbuf.go), filling it from the transport (transport.go) when it
//     runs dry; while it waits with nothing buffered it reads into a small
//     array of the Conn's own, so an idle connection holds no pooled buffer.
//     Before it waits, beforeWaitLocked writes the frames queued behind the
//     input (queue.go).
//  3. parseHeader and checkHeader (frame.go) decode and check each header
//     against RFC 6455; controlLocked (control.go) answers a ping, wakes the
//     Ping its pong answers, or takes in a close frame (close.go) in place.
//  4. startFrameLocked (read.go) checks the first data frame against the
//     read limit, and readRestLocked or messageReader.Read pull its payload
//     through readMessageLocked and readRawLocked, which copies it out of
//     readBuffer, or reads a large payload straight into the caller's
//     slice, and unmasks it there (mask.go).
//  5. checkTextLocked feeds text to the UTF-8 validator (utf8.go) before the
//     caller sees a byte; endMessageLocked checks the message's end.
//  6. A compressed message takes inflateLocked (inflate.go) instead of
//     readRawLocked: the decoder of internal/flate reads the same raw
//     payload through inflateSource, followed by the 00 00 ff ff tail RFC
//     7692 has the sender strip, and the read limit and the UTF-8 check
//     apply to what it inflates to. The source hands over buffered bytes
//     only; when they run out, the decoder steps back to the start of
//     the symbol or block header it was in, and readMessageLocked waits
//     for input (inflateWaitLocked) before calling again.
//  7. A protocol violation anywhere on the way goes to failLocked
//     (close.go), which sends the close code and tears the connection down.
//
// Life of a Write:
//
//  1. Conn.Write (write.go) or Conn.Writer (writer.go) takes msgMu for the
//     whole message, so messages never interleave.
//  2. writeFrame (write.go) sends each frame. A small frame that finds the
//     frame lock taken, or the reader holding input it has yet to hand out,
//     joins the queue instead (queueFrame, queue.go): the holder of frameMu,
//     the reader before it waits, or a timer writes the queue in one system
//     call.
//  3. Otherwise writeFrame takes frameMu, which pongs, pings (control.go)
//     and the close frame (close.go) take too, so control frames can go out
//     between the fragments of a long message, and writeFrameLocked
//     encodes the frame (appendFrame, frame.go; masked by a client,
//     mask.go) behind the queued ones into a pooled buffer, or sends a
//     large server payload with its header by writev, without a copy.
//  4. flushUnlock (queue.go) writes what queued meanwhile and lets frameMu go.
//  5. A compressed message goes through the message writer (writer.go),
//     which runs it through the encoder of internal/flate and sends the
//     output in frames as it accumulates (compress.go holds the encoders
//     between messages).
//  6. A write that fails or is cut short by its context goes to
//     writeErrLocked, which closes the connection if part of a frame
//     went out.
//
// Contexts: a call whose context ends while it is blocked on the transport
// is interrupted by moving the transport's deadline into the past (ctxWatch,
// context.go); on transports without deadlines the connection is closed
// instead.

// Conn is a WebSocket connection, from Accept or Dial.
//
// See the package documentation for what may be called concurrently.
//
// Every field says what guards it: immutable (set by newConn, never
// changed), atomic, its own lock, or one of the Conn's locks: readMu (the
// reader), msgMu (the message being written), frameMu (the frame being
// written), pendMu (the write queue) and mu (the end of the connection).
// The fields are ordered for size, not by lock.
type Conn struct {
	subprotocol  string         // immutable
	deflate      *deflateParams // negotiated compression, nil when none: immutable but for the compressor it holds (msgMu)
	tr           transport      // immutable
	closeTimeout time.Duration  // immutable
	ka           *keepalive     // immutable: nil when keepalive is off

	// readMu is the read lock: held by Read, Reader's reads, and the close
	// handshake while they read from the transport.
	readMu        ctxMutex
	rb            readBuffer      // readMu
	frame         header          // readMu: the data frame being read
	frameLeft     int64           // readMu: payload bytes of frame not yet read
	msgSize       int64           // readMu: declared payload bytes of the message so far (countedLocked)
	inflate       *inflater       // pointer immutable, contents readMu: the peer's compression, when negotiated
	readerCtx     context.Context // readMu: the context of the message reader Reader returned
	readLimit     atomic.Int64    // atomic
	rs            readState       // client and rsvOK immutable, inMessage readMu
	msgOp         opcode          // readMu: opcode of the message being read
	msgOpen       bool            // readMu: a message has started and not been read to its end
	msgCompressed bool            // readMu: the message being read is compressed (RSV1)
	utf8          utf8Validator   // readMu: state of the text message being read
	maskPos       uint8           // readMu: position in frame.key of the next payload byte
	discard       atomic.Bool     // atomic: set once Close starts; reads then deliver nothing more
	pingDeferred  atomic.Bool     // atomic, set and cleared under mu: a Ping waits for the reader to let go (deferPing)

	// watches holds the contexts of the read and write in progress, under
	// its own lock; watch makes it for the first context that can end.
	watches atomic.Pointer[ctxWatch]

	// msgMu is held by a message writer from its first frame to its last.
	msgMu ctxMutex
	mw    atomic.Pointer[messageWriter] // made on first use, under msgMu; atomic for msgOnWire

	// frameMu is held while frames are written to the transport.
	frameMu ctxMutex

	// pendMu guards the write queue (queue.go) and what a frame needs
	// when it is encoded.
	pendMu     sync.Mutex
	pend       *[]byte     // pendMu: encoded frames not yet written, nil when none
	flusher    bool        // pendMu: a frameMu holder writes pend before letting go
	closeSent  bool        // pendMu: a close frame was sent; nothing may follow it
	closeFull  bool        // immutable: a full queue fails the connection with 1008
	endIntent  intent      // mu, not pendMu (kept here in padding): endErr is a close frame yet to go out
	queueLimit int32       // immutable: the most bytes Buffered may reach
	keys       *maskKeys   // pendMu: mask keys, client only
	pendTimer  *time.Timer // pendMu: writes pend that no reader or writer did
	// backlog (pendMu; atomic, so that letting msgMu go checks it without
	// pendMu) holds the messages queued by Enqueue while another message
	// was being written: they join pend when msgMu is let go.
	backlog atomic.Pointer[[]byte]
	// inputPending (atomic) is set while the reader holds input it has
	// not consumed: the caller will soon read again, and the reader
	// writes queued frames before it waits for more.
	inputPending atomic.Bool
	inflight     int32 // pendMu: bytes of queued frames being written now

	// mu guards the end of the connection.
	mu        sync.Mutex
	endErr    error       // mu: why the connection ended or is ending; set once, unless endIntent says it is a close yet to be sent, or it is our close, sent, whose answer a timeout or a loss forestalls (setTimedOut, setLost)
	closeRcvd *CloseError // mu: the peer's close frame, once received
	pings     *pingWaits  // mu: made by the first Ping

	srv        atomic.Pointer[server]     // atomic: set by Serve
	closed     atomic.Bool                // atomic: set when the transport is closed
	closing    atomic.Bool                // atomic: closeTransport has begun
	reg        *Registry                  // immutable: the registry of an accepted connection, or nil
	closeTimer atomic.Pointer[time.Timer] // atomic: bounds a close handshake started by CloseWrite
}

// MessageType is the type of a data message (RFC 6455 §5.6).
type MessageType int

const (
	// MessageText is a message of UTF-8 text, checked on arrival.
	MessageText MessageType = 1 // the opcode of a text frame
	// MessageBinary is a message of bytes.
	MessageBinary MessageType = 2 // the opcode of a binary frame
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

// connConfig is what newConn makes a Conn from: the outcome of a
// handshake, on either side.
type connConfig struct {
	client       bool
	subprotocol  string
	deflate      *deflateParams // nil without compression; the Conn's own from then on
	tr           transport
	buffered     []byte // bytes read past the handshake
	closeTimeout time.Duration
	queueLimit   int  // 0 for the default
	closeOnFull  bool // a full queue fails the connection with 1008
	reg          *Registry
	// keepalive's interval (negative: off) and timeout, 0 for the defaults
	keepaliveInterval, keepaliveTimeout time.Duration
}

const (
	defaultReadLimit    = 32 << 20
	defaultCloseTimeout = 5 * time.Second
)

func newConn(cfg *connConfig) *Conn {
	c := &Conn{
		subprotocol:  cfg.subprotocol,
		deflate:      cfg.deflate,
		tr:           cfg.tr,
		closeTimeout: cfg.closeTimeout,
	}
	if c.closeTimeout <= 0 {
		c.closeTimeout = defaultCloseTimeout
	}
	c.queueLimit = defaultQueueLimit
	if cfg.queueLimit > 0 {
		c.queueLimit = int32(min(cfg.queueLimit, math.MaxInt32))
	}
	c.closeFull = cfg.closeOnFull
	c.reg = cfg.reg
	c.rs.client = cfg.client // immutable: read without readMu
	if c.deflate != nil {
		// RFC 7692 §6: RSV1 marks the first frame of a compressed message.
		c.rs.rsvOK = rsv1
		in := &inflater{src: inflateSource{c: c}}
		in.fr = flate.NewReader(&in.src, c.deflate.recvBits, c.deflate.recvTakeover)
		c.inflate = in
	}
	c.readLimit.Store(defaultReadLimit)
	if cfg.client {
		c.keys = new(maskKeys)
	}
	if len(cfg.buffered) > 0 {
		c.rb.preload(cfg.buffered)
		c.inputPending.Store(true)
	}
	c.ka = newKeepalive(c, cfg.keepaliveInterval, cfg.keepaliveTimeout)
	return c
}

// started arms the keepalive of a connection newConn made, and returns
// it. The constructors call it last, from their own frame: arming a timer
// takes the runtime's timer code, deep on the stack, and a handler's
// goroutine keeps the stack its peak grew.
func (c *Conn) started() *Conn {
	if c.ka != nil {
		c.ka.start()
	}
	return c
}

// Subprotocol returns the subprotocol chosen in the opening handshake, or ""
// if none was.
func (c *Conn) Subprotocol() string { return c.subprotocol }

// LocalAddr returns the local address of the connection the WebSocket runs
// over (over HTTP/2, the address of the HTTP/2 connection), or nil when
// the transport does not say.
func (c *Conn) LocalAddr() net.Addr {
	if a := c.tr.addrs(); a != nil {
		return a.LocalAddr()
	}
	return nil
}

// RemoteAddr returns the peer's address, as LocalAddr returns ours. Behind
// a proxy it is the proxy's: the client's own address is for the proxy to
// report, in a header such as Forwarded.
func (c *Conn) RemoteAddr() net.Addr {
	if a := c.tr.addrs(); a != nil {
		return a.RemoteAddr()
	}
	return nil
}

// SetReadLimit sets the largest message, in bytes, that reads accept
// (default 32 MiB). A message that would exceed it fails the connection with
// StatusMessageTooBig before its excess is read. A negative n removes the
// limit; 0 is a limit of 0, which only empty messages meet. It is safe to
// call at any time; a message already being read keeps the limit it
// started with only for frames already accepted.
func (c *Conn) SetReadLimit(n int64) {
	c.readLimit.Store(n)
}

// intent says that the connection's end, as recorded, is a close frame
// that has yet to go out: until it does, the end is only what the
// connection means to say, and any other end (the peer's close, a lost
// connection, CloseNow) takes its place, since the frame may never go.
type intent uint8

const (
	noIntent      intent = iota // the end, if any, is what happened
	intentWritten               // Close's, CloseWrite's or keepalive's frame, confirmed by writeClose as it sends one
	intentQueued                // a frame queued behind others (a shutdown's, a full queue's), confirmed once the queue is written (confirmQueuedCloseLocked)
	intentBehind                // a shutdown's frame to be queued behind Enqueue's backlog as it joins the queue (joinBacklogLocked), then intentQueued
)

// setEnd records why the connection ends, if nothing has yet. A close
// yet to be sent gives way: it may never go.
func (c *Conn) setEnd(err error) {
	c.mu.Lock()
	if c.endErr == nil || c.endIntent != noIntent {
		c.endErr, c.endIntent = err, noIntent
	}
	c.mu.Unlock()
}

// setTimedOut records that the closing handshake ran out of time, in
// place of the close recorded as the connection's end: sent and
// unanswered, or never sent. Another end (the peer's close, a failure)
// stays.
func (c *Conn) setTimedOut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ce, ok := c.endErr.(CloseError); {
	case c.endErr == nil:
		c.endErr = &closeTimeoutError{}
	case c.endIntent != noIntent:
		c.endErr = unsentEnd(c.endErr)
	case ok && c.closeRcvd == nil:
		c.endErr = &closeTimeoutError{sent: &ce}
	}
	c.endIntent = noIntent
}

// setLost records that the connection was lost, as setEnd would, but in
// place of our close frame, too, if it was sent and the peer's answer never
// came, which lost then names: without the peer's close frame, the
// connection's close code is StatusAbnormalClosure (RFC 6455 §7.1.5), not
// ours, as when the close timeout passes (setTimedOut).
func (c *Conn) setLost(lost *lostError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ce, ok := c.endErr.(CloseError); ok && c.endIntent == noIntent && c.closeRcvd == nil {
		lost.unanswered = &ce
		c.endErr = lost
		return
	}
	if c.endErr == nil || c.endIntent != noIntent {
		c.endErr, c.endIntent = lost, noIntent
	}
}

// setBroken records that the peer broke the protocol, pe, after our close
// frame went out and before its answer came, in place of that close: pe's
// close frame could not follow ours, and the closing handshake failed,
// which the end then says, as setLost does for a connection lost before
// the answer. Another end (a keepalive's failure, say) stays.
func (c *Conn) setBroken(pe *ProtocolError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ce, ok := c.endErr.(CloseError); ok && c.endIntent == noIntent && c.closeRcvd == nil {
		c.endErr = &brokenCloseError{violation: pe, sent: ce}
	}
}

// setFirstEnd records why the connection ends if nothing has yet, not
// even a close still to be sent, and reports whether it did; in says
// whether err is such a close, and how it is confirmed as sent.
func (c *Conn) setFirstEnd(err error, in intent) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endErr != nil {
		return false
	}
	c.endErr, c.endIntent = err, in
	return true
}

// closedErr is the error for an operation on an ended connection.
func (c *Conn) closedErr(op string) error {
	c.mu.Lock()
	err := c.endErr
	c.mu.Unlock()
	return &closedError{op: op, cause: err}
}

// closedErrFor is closedErr for a call with context ctx: when the end of
// ctx closed the connection (closeCause), the call says so once, rather
// than name itself, or the other direction's call it shared ctx with.
func (c *Conn) closedErrFor(ctx context.Context, op string) error {
	c.mu.Lock()
	end := c.endErr
	c.mu.Unlock()
	if oe, ok := end.(*opError); ok {
		if ce, ok := oe.err.(*cutError); ok && ce.done != nil && ce.done == ctx.Done() {
			end = ce
		}
	}
	return &closedError{op: op, cause: end}
}

func (c *Conn) isClosed() bool { return c.closed.Load() }

// closeAwait closes the transport, as closeTransport(cause) does, and
// returns once the connection is marked closed, though another call
// closes it: one whose context ended the close frame's write on an HTTP/2
// stream (closeCause), past the wait for that write, which this call
// waits for too (quiesce), marks it at once. A call the caller makes
// next then finds the connection closed, not its close frame sent.
func (c *Conn) closeAwait(cause error) {
	if !c.closeTransport(cause) {
		for !c.isClosed() {
			runtime.Gosched()
		}
	}
}

// closeTransport closes the transport once, recording cause if the
// connection had no end recorded yet. It reports whether this call closed
// it.
func (c *Conn) closeTransport(cause error) bool {
	if !c.closing.CompareAndSwap(false, true) {
		// Another call closes it: once this one returns, no write is
		// under way on an HTTP/2 stream either.
		c.tr.quiesce()
		return false
	}
	lost, isLost := cause.(*lostError)
	switch {
	case cause == errCloseTimeout:
		c.setTimedOut()
	case isLost:
		c.setLost(lost)
	case cause != nil:
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
	if c.pend != nil && !c.flusher {
		// Nobody is writing the queue, and the timer that would have is
		// stopped: nothing of it can go out now. (A writer at work drops
		// what is left when its write fails.)
		putPend(c.pend)
		c.pend = nil
	}
	if b := c.backlog.Swap(nil); b != nil {
		// Held back behind a message still open: it could only go once
		// that message ends, and nothing goes now.
		putPend(b)
	}
	c.pendMu.Unlock()
	c.killWatch()
	c.stopKeepalive()
	// A write under way on a server's HTTP/2 stream ends, and is waited
	// for, before any call may find the connection closed and let its
	// handler return (stream.quiesce).
	c.tr.quiesce()
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
	c.tr.close()
	if c.reg != nil {
		c.reg.remove(c)
	}
	c.releaseCompression()
	return true
}
