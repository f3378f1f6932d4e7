package websocket

// The write queue: small frames that find the connection busy are encoded
// into a shared buffer and go out together in one system call, written by
// whoever holds the frame lock before letting it go, by the reader before
// it waits for input, or by a timer. Conn.pendMu guards the queue.

import (
	"context"
	"runtime"
	"sync"
	"time"
)

const (
	// maxQueuedPayload is the largest payload that joins the frame queue
	// (it is copied there); larger frames wait for the frame lock.
	maxQueuedPayload = 64 << 10
	// defaultQueueLimit bounds the queue unless the options say otherwise
	// (AcceptOptions.WriteQueueLimit): past it, Write waits its turn and
	// Enqueue refuses.
	defaultQueueLimit = 512 << 10
	// queueFlushDelay bounds how long queued frames wait for a reader
	// that holds input but does not come back to read it.
	queueFlushDelay = 500 * time.Microsecond
)

var pendPool = sync.Pool{New: func() any { b := make([]byte, 0, writeBufferSize); return &b }}

func putPend(bp *[]byte) {
	if cap(*bp) <= 2*defaultQueueLimit {
		*bp = (*bp)[:0]
		pendPool.Put(bp)
	}
}

// appendQueuedLocked appends the frame h with payload p to the encoded
// frames *bp, taking a buffer for them when bp is nil, and returns the
// buffer. No buffer of the queue is taken from the pool, or grown, with
// room past the queue limit: a peer that stops reading holds its
// connection's limit in memory, not the slack of a slice's growth, nor a
// buffer another connection, with a higher limit, grew. (A write of the
// queue that waits for such a peer holds the buffer it writes from whole,
// room and all, beside the queue that fills again behind it: up to twice
// the limit in all.)
//
// The caller holds pendMu.
func (c *Conn) appendQueuedLocked(bp *[]byte, h header, p []byte) *[]byte {
	if bp == nil {
		bp = pendPool.Get().(*[]byte)
		if cap(*bp) > int(c.queueLimit) {
			b := make([]byte, 0, min(writeBufferSize, int(c.queueLimit)))
			bp = &b
		}
	}
	c.growQueuedLocked(bp, maxHeaderSize+len(p))
	*bp = appendFrame(*bp, c.keyLocked(h), p)
	return bp
}

// growQueuedLocked makes room for n more bytes in *bp: twice the room it
// had, or what n needs, but no more than the queue limit unless n needs
// it.
//
// The caller holds pendMu.
func (c *Conn) growQueuedLocked(bp *[]byte, n int) {
	b := *bp
	if cap(b)-len(b) >= n {
		return
	}
	size := min(max(2*cap(b), len(b)+n), max(int(c.queueLimit), len(b)+n))
	nb := make([]byte, len(b), size)
	copy(nb, b)
	*bp = nb
}

// queueFrame appends the frame to the queue if a write is in progress or
// the reader holds input, reporting whether it did. With byReader, it
// appends the frame whatever the writers and the reader do, arming no
// timer: the reader, which calls it (the pong of a ping between a
// message's frames, see controlLocked), writes the queue itself.
func (c *Conn) queueFrame(h header, p []byte, op string, byReader bool) (bool, error) {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	if err := c.writableLocked(op); err != nil {
		return true, err
	}
	// A ping that finds frames waiting for the timer, nobody writing
	// them yet, joins them whatever the limit: written by its caller, it
	// would write them all under its own context (the keepalive's, its
	// timeout), whose end, with the peer reading slowly, would cut a
	// frame of theirs short and fail the connection. The timer, armed
	// for them, writes it.
	behind := h.op == opPing && c.pend != nil && !c.flusher
	if !byReader && !c.flusher && !c.inputPending.Load() && !behind {
		return false, nil
	}
	if !behind && !c.fitsLocked(c.bufferedLocked(), len(p)) {
		return false, nil
	}
	if !byReader && c.pend == nil && !c.flusher {
		c.armFlushTimerLocked(queueFlushDelay)
	}
	c.pushLocked(h, p)
	return true, nil
}

// Buffered returns how many bytes of messages written to the connection
// it holds without having handed them to the network: the write queue,
// messages that Enqueue holds back while another message is being
// written, and queued frames being written right now, with the frame of
// the writer that copied its own behind them. While the peer
// reads, it stays near zero; a peer that stops reading makes it grow up to
// the queue limit (AcceptOptions.WriteQueueLimit), past which Write waits
// and Enqueue refuses. A Write blocked on the network with a large
// message holds the caller's slice, which does not count.
func (c *Conn) Buffered() int {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	return c.bufferedLocked()
}

// bufferedLocked needs pendMu held.
func (c *Conn) bufferedLocked() int {
	n := int(c.inflight)
	if c.pend != nil {
		n += len(*c.pend)
	}
	if b := c.backlog.Load(); b != nil {
		n += len(*b)
	}
	return n
}

// fitsLocked reports whether a frame of n bytes of payload fits the queue
// beside what it holds (held, as bufferedLocked counts it), its header
// counted at the most a header takes.
func (c *Conn) fitsLocked(held, n int) bool {
	return held+n+maxHeaderSize <= int(c.queueLimit)
}

// pendStartLocked notes when a frame goes into an empty queue: a ping
// queued behind it is held back by the queue's write, whenever it begins
// (keepalive.pingHeldBack).
//
// The caller holds pendMu.
func (c *Conn) pendStartLocked() {
	if c.pend == nil && c.ka != nil {
		c.ka.pendSince = max(clock(), 1)
	}
}

// pushLocked adds a frame to the write queue, noting when it goes into
// an empty one (pendStartLocked).
//
// The caller holds pendMu.
func (c *Conn) pushLocked(h header, p []byte) {
	c.pendStartLocked()
	c.pend = c.appendQueuedLocked(c.pend, h, p)
}

// takePendLocked takes the queue for the caller to write.
//
// The caller holds pendMu.
func (c *Conn) takePendLocked() *[]byte {
	pend := c.pend
	c.pend = nil
	c.tr.unstall()
	if c.ka != nil {
		c.ka.takenSince = c.ka.pendSince
	}
	c.inflight = 0
	if pend != nil {
		c.inflight = int32(len(*pend))
	}
	return pend
}

// armFlushTimerLocked has the queue written after d, by a goroutine of
// the timer's, unless a writer or the reader writes it first.
//
// The caller holds pendMu.
func (c *Conn) armFlushTimerLocked(d time.Duration) {
	if c.pendTimer == nil {
		c.pendTimer = time.AfterFunc(d, c.flushQueueLater)
		return
	}
	c.pendTimer.Reset(d)
}

// lockMsg takes msgMu for a message, first moving into the queue what
// Enqueue held back behind the previous one, so that it goes out before
// this message.
func (c *Conn) lockMsg(ctx context.Context, op string) error {
	if err := c.lock(ctx, &c.msgMu, op); err != nil {
		return err
	}
	if c.backlog.Load() != nil {
		c.pendMu.Lock()
		c.joinBacklogLocked()
		if c.pend != nil && !c.flusher {
			// As unlockMsg does: this message's frames may only join
			// the queue, behind input the reader holds.
			c.armFlushTimerLocked(0)
		}
		c.pendMu.Unlock()
	}
	return nil
}

// unlockMsg lets msgMu go, first moving into the queue what Enqueue held
// back behind the message, and having it written.
func (c *Conn) unlockMsg() {
	for {
		if c.backlog.Load() != nil {
			c.pendMu.Lock()
			c.joinBacklogLocked()
			if c.pend != nil && !c.flusher {
				c.armFlushTimerLocked(0)
			}
			c.pendMu.Unlock()
		}
		c.releaseClosedDeflater()
		c.msgMu.unlock()
		if c.deflate != nil && c.isClosed() && c.msgMu.tryLock() {
			// Closed after the look above, by a closeTransport that
			// found msgMu still held and left the compressor to us.
			c.releaseClosedDeflater()
			c.msgMu.unlock()
		}
		// An Enqueue that set the backlog after the look above found
		// msgMu still held, and left the backlog to its holder.
		if c.backlog.Load() == nil || !c.msgMu.tryLock() {
			return
		}
	}
}

// burstYields bounds how often an Enqueue that finds the queue full
// yields to its writer before it refuses (enqueueFrame): over TLS on one
// processor, a single yield left the 522nd 1000-byte message refused, 2
// runs in 30 under -race, the writer's goroutine not yet run, or
// preempted with the queue in hand. Over a plain socket, a writer
// preempted with the queue in hand had a burst refused with the socket
// empty, 17 runs in 900 beside three busy loops on two processors.
const burstYields = 16

// makeRoom makes room in the full queue for a frame of n bytes if it can
// without waiting for the peer: over a plain socket it writes what the
// socket takes at once; while someone else writes the queue, or on a
// transport with no write that cannot wait (TLS, HTTP/2), it yields the
// processor to that writer, or to the timer's. It returns once the frame
// fits, nobody writes the queue, the socket has no room, or burstYields
// yields have passed.
//
// A socket with no room means a writer waiting for the peer to read,
// which yielding would not hurry: asking the kernel costs a system call
// (1.4 us here), so the answer is kept (outputStalled) until a writer
// takes the queue again. A Broadcast to stalled connections paid 2.6 us
// per connection for the yields, where a refusal had cost 75 ns.
func (c *Conn) makeRoom(n int) {
	for i := 0; ; i++ {
		if c.tr.raw != nil && c.flushQueueNow() {
			return // the socket took only part
		}
		c.pendMu.Lock()
		done := c.fitsLocked(c.bufferedLocked(), n) || c.pend == nil && !c.flusher
		// Only a writer that holds the queue can wait for the peer:
		// frames nobody took yet wait for the timer, which yielding
		// runs. The socket is asked, and the answer kept, under pendMu,
		// so that no writer takes the queue (which forgets a stall)
		// between the two: a stall kept once the writer had taken the
		// queue empty refused a whole burst to a peer that read all.
		if !done && i == 0 && c.flusher && (c.tr.stalled() || c.tr.outputBlocked()) {
			c.tr.stall()
			done = true
		}
		c.pendMu.Unlock()
		if done || i == burstYields {
			return
		}
		runtime.Gosched()
	}
}

// joinBacklogLocked moves the backlog to the end of the queue, and a
// shutdown's close frame that waited for it behind it.
//
// The caller holds pendMu, and msgMu.
func (c *Conn) joinBacklogLocked() {
	if c.moveBacklogLocked() {
		c.queueBehindCloseLocked()
	}
}

// moveBacklogLocked moves the backlog to the end of the queue, and
// reports whether there was one to move. The caller holds msgMu, or knows
// that its holder has no message part-sent (msgOnWire), so that the
// backlog's messages cannot go between that message's frames.
//
// The caller holds pendMu.
func (c *Conn) moveBacklogLocked() bool {
	b := c.backlog.Swap(nil)
	if b == nil {
		return false
	}
	if c.closeSent {
		// Our close frame went out while the message the backlog waited
		// behind was open, and nothing may follow a close frame (RFC
		// 6455 §5.5.1): the backlog is dropped, as the connection ends.
		putPend(b)
		return false
	}
	if c.pend == nil {
		c.pendStartLocked()
		c.pend = b
	} else {
		c.growQueuedLocked(c.pend, len(*b))
		*c.pend = append(*c.pend, *b...)
		putPend(b)
	}
	return true
}

// backlogBeforeCloseLocked moves the backlog to the end of the queue
// ahead of a close frame about to join it or go out (writeClose,
// failFullLocked, goingAwayNow), and reports whether there was one to
// move. What Enqueue held back behind a whole message being written (a
// Write, an Enqueue compressing) was accepted, and goes first: only a
// message part-sent on the wire (msgOnWire) keeps it back, to be dropped
// behind the close frame.
//
// The caller holds pendMu.
func (c *Conn) backlogBeforeCloseLocked() bool {
	return !c.msgOnWire() && c.moveBacklogLocked()
}

// queueBehindCloseLocked queues a shutdown's close frame that waited for
// the backlog (intentBehind), and reports whether there was one.
//
// The caller holds pendMu.
func (c *Conn) queueBehindCloseLocked() bool {
	c.mu.Lock()
	ce, behind := c.endErr.(CloseError)
	behind = behind && c.endIntent == intentBehind
	if behind {
		c.endIntent = intentQueued
	}
	c.mu.Unlock()
	if behind {
		c.closeSent = true
		c.pushLocked(header{fin: true, op: opClose}, mustClosePayload(ce.Code, ce.Reason))
	}
	return behind
}

// enqueueFrame appends the frame of a whole message to the queue, never
// waiting: to the queue itself when the caller holds msgMu, else to the
// backlog, which joins the queue when msgMu is let go. Past the queue
// limit it refuses the frame, or fails the connection, as the connection
// was set up to do; a frame larger than the limit it only refuses. The
// queue's timer writes the frame, unless flushes is given: then the
// connection joins it, for the caller to write its queue (Broadcast, with
// flushQueueNow).
func (c *Conn) enqueueFrame(h header, p []byte, holdsMsgMu bool, flushes *[]*Conn) error {
	c.pendMu.Lock()
	if err := c.writableLocked("write"); err != nil {
		c.pendMu.Unlock()
		return err
	}
	// A queue that holds frames has had the timer armed for them, but
	// for the backlog, which nothing armed for yet.
	armed := c.pend != nil
	if holdsMsgMu {
		// What Enqueue held back behind the previous holder of msgMu
		// goes first: that holder may have let go after its last look.
		c.joinBacklogLocked()
		if !armed && c.pend != nil && !c.flusher {
			// The backlog brought frames into the empty queue, for
			// which nothing armed the timer; nor will the caller's
			// unlockMsg, which finds no backlog, whether this frame is
			// queued, refused, or the close a shutdown queued behind
			// the backlog forbids it.
			c.armFlushTimerLocked(0)
			armed = true
		}
		if err := c.writableLocked("write"); err != nil {
			c.pendMu.Unlock()
			return err
		}
	}
	if !c.fitsLocked(c.bufferedLocked(), len(p)) && holdsMsgMu && (c.pend != nil || c.flusher) {
		// The queue may be full only because nothing has written it
		// yet: a burst of Enqueues can outrun the timer, which runs
		// on this CPU once the burst lets it, and the writer it
		// starts, which may be preempted with the queue in hand.
		c.pendMu.Unlock()
		c.makeRoom(len(p))
		c.pendMu.Lock()
		if err := c.writableLocked("write"); err != nil {
			c.pendMu.Unlock()
			return err
		}
		armed = c.pend != nil // the timer, or a writer, has what is left
	}
	if !c.fitsLocked(c.bufferedLocked(), len(p)) {
		// A message that the empty queue could not hold says nothing of
		// how fast the peer reads: it is refused, not held against the
		// connection.
		if c.closeFull && c.fitsLocked(0, len(p)) {
			return c.failFullLocked()
		}
		c.pendMu.Unlock()
		return errQueueFull
	}
	if holdsMsgMu {
		c.pushLocked(h, p)
		switch {
		case c.flusher:
		case flushes != nil:
			*flushes = append(*flushes, c)
		case !armed:
			// Only the first frame into an empty queue arms the timer:
			// one armed again by each frame of a burst would not fire
			// while the burst lasts, a timer reset before it fired being
			// a timer put off.
			c.armFlushTimerLocked(0)
		}
		c.pendMu.Unlock()
		return nil
	}
	c.backlog.Store(c.appendQueuedLocked(c.backlog.Load(), h, p))
	c.pendMu.Unlock()
	// The holder of msgMu may have let it go before the backlog was set:
	// then nobody would move it.
	if c.msgMu.tryLock() {
		c.unlockMsg()
	}
	return nil
}

// errQueueFull is what Enqueue returns when the queue has no room.
var errQueueFull = opErr("write", ErrQueueFull)

// queueFullReason is the reason of the close frame a full queue sends.
const queueFullReason = "write queue full: the peer reads too slowly"

// failFullLocked fails a connection whose queue is full: its close frame,
// 1008, goes behind what is queued, and the connection is closed when the
// peer's close frame answers it, or the close timeout passes. A
// connection that is ending already (Close waits for the frame lock, say)
// is not failed: its own close frame is still to go, and the message is
// only refused. The end is recorded, and the close frame queued, under
// pendMu, so that no other close frame can go first while the connection
// reports 1008. It unlocks pendMu.
//
// The caller holds pendMu, and found no close frame sent.
func (c *Conn) failFullLocked() error {
	pe := protocolErr(StatusPolicyViolation, queueFullReason)
	pe.err = ErrQueueFull
	if !c.setFirstEnd(pe, intentQueued) {
		c.pendMu.Unlock()
		return errQueueFull
	}
	c.backlogBeforeCloseLocked()
	c.closeSent = true
	c.pushLocked(header{fin: true, op: opClose}, mustClosePayload(pe.Code, pe.Reason))
	if !c.flusher {
		c.armFlushTimerLocked(0)
	}
	c.pendMu.Unlock()
	c.armCloseTimeout()
	return &closedError{op: "write", cause: pe}
}

// failFullForPong fails the connection, as an Enqueue that finds the
// queue full would, when it was set up so (CloseOnQueueFull) and the pong
// of n bytes of payload owed to a ping finds the queue full even once the
// socket took what it could at once (makeRoom); it reports whether it
// did. Otherwise the pong would wait for the queue's writer, and so for a
// peer that reads nothing, holding up the reader: a loop that enqueues
// its replies, or Serve, would read no more, fill the queue no further,
// and never fail a peer that pings.
func (c *Conn) failFullForPong(n int) bool {
	if !c.closeFull {
		return false
	}
	full := func() bool {
		return c.writableLocked("pong") == nil && !c.fitsLocked(c.bufferedLocked(), n) && c.fitsLocked(0, n)
	}
	c.pendMu.Lock()
	if !full() || c.pend == nil && !c.flusher {
		c.pendMu.Unlock()
		return false
	}
	c.pendMu.Unlock()
	c.makeRoom(n)
	c.pendMu.Lock()
	if !full() {
		c.pendMu.Unlock()
		return false
	}
	// A connection that is ending already is not failed (failFullLocked):
	// its pong goes as it would have.
	return c.failFullLocked() != errQueueFull
}

// flushQueueLater writes queued frames that waited too long for the reader.
func (c *Conn) flushQueueLater() {
	c.flushQueue(context.Background())
}

// flushQueue writes the queued frames, if any. It never waits for the
// frame lock: whoever holds it writes the queue before letting go.
func (c *Conn) flushQueue(ctx context.Context) {
	for {
		c.pendMu.Lock()
		if c.pend == nil || c.flusher {
			c.pendMu.Unlock()
			return
		}
		if !c.frameMu.tryLock() {
			c.pendMu.Unlock()
			return
		}
		c.flusher = true
		c.pendMu.Unlock()
		if c.flushUnlock(ctx) != nil {
			return
		}
	}
}

// flushUnlock writes the frames that queued while the caller held the
// frame lock, then releases it.
//
// A caller whose context ended leaves the queue to the timer, armed once
// the frame lock is free (see armIfUnwritten for why not before).
func (c *Conn) flushUnlock(ctx context.Context) error {
	var err error
	for {
		c.pendMu.Lock()
		if err != nil {
			c.flusher = false
			c.inflight = 0 // the frames taken went, or were dropped
			if c.pend != nil && c.isClosed() {
				putPend(c.pend)
				c.pend = nil
			}
			c.pendMu.Unlock()
			break
		}
		pend := c.takePendLocked()
		if pend == nil {
			c.confirmQueuedCloseLocked()
			c.flusher = false
			c.pendMu.Unlock()
			break
		}
		c.pendMu.Unlock()
		err = c.writeQueueLocked(ctx, pend)
	}
	c.frameMu.unlock()
	if err != nil {
		c.armIfUnwritten()
	}
	return err
}

// armIfUnwritten arms the queue's timer if the queue holds frames that
// nobody is writing. It is called once the frame lock is free: a timer
// armed while it was held may have fired, found the lock taken and given
// up, leaving the queue to a holder that was about to let go.
func (c *Conn) armIfUnwritten() {
	c.pendMu.Lock()
	if c.pend != nil && !c.flusher {
		c.armFlushTimerLocked(0)
	}
	c.pendMu.Unlock()
}

// confirmQueuedCloseLocked confirms a queued close frame as the
// connection's end once the queue is written out: the frame is the last
// ever queued, so a queue emptied, by a holder of the frame lock, after a
// close frame was sent holds it no more. (A write that failed, or was cut
// short, ended the connection otherwise, or put the rest back.)
//
// The caller holds frameMu and pendMu, and wrote the queue.
func (c *Conn) confirmQueuedCloseLocked() {
	if !c.closeSent || c.pend != nil {
		return
	}
	c.mu.Lock()
	if c.endIntent == intentQueued {
		c.endIntent = noIntent
	}
	c.mu.Unlock()
}

// requeue puts back at the head of the queue frames taken from it that
// nothing of went out.
//
// The caller holds frameMu.
func (c *Conn) requeue(pend *[]byte) {
	c.pendMu.Lock()
	c.requeueLocked(pend)
	c.pendMu.Unlock()
}

// requeueLocked puts pend, what is left to write of frames taken from the
// queue, back at its head, in front of what queued meanwhile: in pend's
// buffer, grown no further than the queue's own growth would.
//
// The caller holds frameMu, and pendMu.
func (c *Conn) requeueLocked(pend *[]byte) {
	c.inflight = 0
	if c.ka != nil {
		c.ka.pendSince = c.ka.takenSince
	}
	if c.pend != nil {
		c.growQueuedLocked(pend, len(*c.pend))
		*pend = append(*pend, *c.pend...)
		putPend(c.pend)
	}
	c.pend = pend
}

// flushQueueNow writes the queued frames without waiting: on a plain
// socket, in one non-blocking system call, leaving to the queue's timer
// what the socket does not take at once; on other transports, it has the
// timer write them all. A holder of the frame lock writes them itself.
// It reports whether it wrote, and the socket took only part.
func (c *Conn) flushQueueNow() (full bool) {
	c.pendMu.Lock()
	switch {
	case c.pend == nil || c.flusher:
		// Nothing to write, or a writer writes it.
		c.pendMu.Unlock()
		return false
	case c.tr.raw == nil || c.isClosed():
		c.armFlushTimerLocked(0)
		c.pendMu.Unlock()
		return false
	case !c.frameMu.tryLock():
		// Whoever holds the frame lock writes the queue before letting go.
		c.pendMu.Unlock()
		return false
	}
	c.flusher = true
	pend := c.takePendLocked()
	c.pendMu.Unlock()
	n := writeNow(c.tr.raw, *pend)
	c.pendMu.Lock()
	c.inflight = 0
	full = n < len(*pend)
	if full {
		// The rest goes first, before what queued meanwhile.
		*pend = (*pend)[:copy(*pend, (*pend)[n:])]
		c.requeueLocked(pend)
	} else {
		putPend(pend)
		c.confirmQueuedCloseLocked()
	}
	c.flusher = false
	c.pendMu.Unlock()
	c.frameMu.unlock()
	// Armed only now that the frame lock is free, for the rest of a
	// partial write or a frame queued once flusher was cleared.
	c.armIfUnwritten()
	return full
}

// beforeWaitLocked runs before the reader waits for input: from now on
// writes go out at once, and what queued behind the input goes now.
//
// The caller holds readMu.
func (c *Conn) beforeWaitLocked(ctx context.Context) {
	if c.inputPending.Load() {
		c.inputPending.Store(false)
	}
	c.flushQueueAsReader(ctx)
}

// flushQueueAsReader writes the queue for a reader with context ctx.
// With a context that can end, under Serve, and over a socket, plain or
// TLS, it writes what the socket takes at once and leaves the rest to the
// queue's timer (on TLS, all of it): the frames are writers', not the
// reader's, and a blocking write of them that the end of the read's
// context cut short would close the connection, which a read whose
// context ends while it waits leaves usable; and a reader must not wait
// on a peer that reads nothing, so that a loop that enqueues its replies
// goes on reading, the queue fills, and CloseOnQueueFull fails the peer
// (see server.run). A Read with context.Background() over another
// transport (an HTTP/2 stream) writes the queue itself.
//
// The caller holds readMu.
func (c *Conn) flushQueueAsReader(ctx context.Context) {
	if ctx.Done() != nil || c.srv.Load() != nil || c.tr.raw != nil || c.tr.overTLS() {
		c.flushQueueNow()
		return
	}
	c.flushQueue(ctx)
}

// writeQueueLocked writes frames taken from the queue; when the caller's
// context has ended, it puts them back instead.
//
// The caller holds frameMu.
func (c *Conn) writeQueueLocked(ctx context.Context, pend *[]byte) error {
	if err := ctx.Err(); err != nil {
		// The caller's context ended before anything went out: the
		// frames are not the caller's, and wait for another writer.
		c.requeue(pend)
		return opErr("write", err)
	}
	return c.writePendLocked(ctx, pend)
}

// writePendLocked writes encoded frames, and gives their buffer back.
//
// The caller holds frameMu.
func (c *Conn) writePendLocked(ctx context.Context, pend *[]byte) error {
	defer putPend(pend)
	c.watch(watchWrite, ctx)
	defer c.releaseWatch(watchWrite)
	var err error
	if k := c.ka; k != nil && len(*pend) > largeWriteBufferSize && k.writing.Load() == 0 {
		// A ping that queues meanwhile waits behind all of it (unless
		// this is the queue ahead of a large frame, whose write is
		// noted as a whole).
		k.startWriteAt(k.takenSince)
		_, err = c.writeOutLocked(*pend)
		k.endWrite()
	} else {
		_, err = c.tr.rw.Write(*pend)
	}
	if err != nil {
		return c.writeErrLocked(ctx, err, true)
	}
	return nil
}
