package websocket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
)

const (
	// writeBufferSize is the size of the pooled buffers frames are built in,
	// and what a message writer gathers before it sends a frame.
	writeBufferSize = 4 << 10
	// largeWriteBufferSize is the buffer a large payload is copied (and, by
	// a client, masked) through, a piece at a time.
	largeWriteBufferSize = 64 << 10
	// writevMin is the smallest server payload sent straight from the
	// caller's slice, with its header, in one writev, when it does not
	// join a queue.
	writevMin = 2 << 10
)

var (
	writeBufPool      = sync.Pool{New: func() any { b := make([]byte, writeBufferSize); return &b }}
	largeWriteBufPool = sync.Pool{New: func() any { b := make([]byte, largeWriteBufferSize); return &b }}
)

func getWriteBuf(n int) *[]byte {
	if n <= writeBufferSize {
		return writeBufPool.Get().(*[]byte)
	}
	return largeWriteBufPool.Get().(*[]byte)
}

func putWriteBuf(bp *[]byte) {
	if len(*bp) == writeBufferSize {
		writeBufPool.Put(bp)
	} else {
		largeWriteBufPool.Put(bp)
	}
}

func checkMessageType(typ MessageType) error {
	if typ != MessageText && typ != MessageBinary {
		return fmt.Errorf("websocket: cannot write a message of type %v", typ)
	}
	return nil
}

// Write sends p as one message of type typ, in one frame; compressed (see
// CompressionThreshold), in a frame each time 16 KiB or more of compressed
// output has gathered. It is safe to call concurrently with other writes;
// messages never interleave.
//
// Writes coalesce: a message of up to 64 KiB that finds another write in
// progress, or the connection holding received input not yet read, joins
// a queue that goes out in one system call, written by the writer in
// progress, or by the reader before it waits for more input, or within
// half a millisecond at most. Write then returns once p is copied, before
// it reaches the network; if writing it fails later, the connection is
// closed and the next call reports it. A message with nothing in its way
// goes out at once.
//
// If ctx ends before any byte of the frame was written, Write returns ctx's
// error and the connection stays usable, unless the frame's write to the
// network had begun over TLS: crypto/tls writes nothing more after a write
// that failed, so the connection is closed. If ctx ends while the frame is
// partly written, or between the frames of a compressed message, nothing
// more can follow on the connection: it is closed.
// Text is sent as given; it is the caller's to make it UTF-8.
func (c *Conn) Write(ctx context.Context, typ MessageType, p []byte) error {
	if err := checkMessageType(typ); err != nil {
		return err
	}
	if err := c.lockMsg(ctx, "write"); err != nil {
		return err
	}
	if c.deflate != nil && len(p) >= c.deflate.threshold {
		return c.writeDeflated(ctx, typ, p)
	}
	defer c.unlockMsg()
	return c.writeFrame(ctx, header{fin: true, op: opcode(typ)}, p, "write")
}

// writeDeflated is Write's compressed message, apart so that an
// uncompressed Write does not carry its locals on the stack.
//
// The caller holds the message lock, which it lets go.
func (c *Conn) writeDeflated(ctx context.Context, typ MessageType, p []byte) error {
	w := c.writer()
	w.start(ctx, typ)
	w.startDeflate()
	err := w.deflate(p)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeFrame sends one frame, or queues it to join the next write.
//
// A frame of at most maxQueuedPayload bytes joins the queue when another
// writer holds the frame lock (it writes the queue before letting go), or
// when the reader holds input not yet consumed (it writes the queue before
// waiting for more, and a timer bounds the wait). Such a frame is copied,
// and the call returns before it is written; a failure to write it later
// closes the connection, which the next call reports. Otherwise the frame
// is written under the frame lock, together with whatever was queued.
func (c *Conn) writeFrame(ctx context.Context, h header, p []byte, op string) error {
	if len(p) <= maxQueuedPayload {
		if queued, err := c.queueFrame(h, p, op, false); queued {
			return err
		}
	}
	if err := c.lock(ctx, &c.frameMu, op); err != nil {
		return err
	}
	c.pendMu.Lock()
	if err := c.writableLocked(op); err != nil {
		c.refuseUnlock(ctx)
		return err
	}
	c.flusher = true
	h = c.keyLocked(h)
	pend := c.takePendWithLocked(h, p)
	c.pendMu.Unlock()
	err := c.writeFrameLocked(ctx, pend, h, p)
	c.flushUnlock(ctx)
	c.flushQueue(ctx) // in case a frame queued as we let go
	if err != nil && op != "write" {
		err = asOp(err, op)
	}
	return err
}

// refuseUnlock lets go of pendMu and the frame lock for a writer that
// found no frame may be sent, and then writes the queue: a close frame
// queued while it waited for the lock (a shutdown's, a full queue's)
// counted on the holder to write the queue before letting go.
func (c *Conn) refuseUnlock(ctx context.Context) {
	c.pendMu.Unlock()
	c.frameMu.unlock()
	c.flushQueue(ctx)
}

// writableLocked returns why no frame may be sent now, or nil.
//
// The caller holds pendMu.
func (c *Conn) writableLocked(op string) error {
	switch {
	case c.isClosed():
		return c.closedErr(op)
	case c.closeSent:
		return &closeSentError{op: op}
	}
	return nil
}

// takePendWithLocked takes the queue for a writer that sends the frame h
// with payload p behind it, counting the frame among those being written
// when writeFrameLocked copies it behind them.
//
// The caller holds pendMu.
func (c *Conn) takePendWithLocked(h header, p []byte) *[]byte {
	pend := c.takePendLocked()
	if pend != nil && len(p) <= maxQueuedPayload {
		h.length = int64(len(p))
		c.inflight += int32(h.size() + len(p))
	}
	return pend
}

// keyLocked completes h for this side: a client masks every frame.
//
// The caller holds pendMu.
func (c *Conn) keyLocked(h header) header {
	if c.rs.client {
		h.masked = true
		h.key = c.keys.next()
	}
	return h
}

// writeFrameLocked writes the queued frames pend, if any, then the frame h
// with payload p, which it never modifies. A small frame is encoded behind
// the queued ones and both go out in one write; a large server payload
// goes out with the queue and its header in one writev; a large client
// payload is masked through a pooled buffer, a piece at a time.
//
// The caller holds frameMu.
func (c *Conn) writeFrameLocked(ctx context.Context, pend *[]byte, h header, p []byte) error {
	if err := ctx.Err(); err != nil {
		if pend != nil {
			// Nothing went out: the queued frames wait for the next
			// writer, or the timer flushUnlock arms.
			c.requeue(pend)
		}
		return opErr("write", err)
	}
	queued := pend != nil
	if len(p) <= maxQueuedPayload && (queued || !c.tr.writev || h.masked || len(p) < writevMin) {
		if !queued {
			return c.writeSmallLocked(ctx, h, p)
		}
		if cap(*pend)-len(*pend) < maxHeaderSize+len(p) && !c.fitsLocked(len(*pend), len(p)) {
			// A queue at its limit (a peer that reads slowly, a flood
			// of pings): it goes first, and the frame after it, rather
			// than both in a copy of the queue twice its size.
			if err := c.writePendLocked(ctx, pend); err != nil {
				return err
			}
			return c.writeSmallLocked(ctx, h, p)
		}
		*pend = appendFrame(*pend, h, p)
		// ctx was checked above: the frame is ours, and must not be
		// left in the queue.
		return c.writePendLocked(ctx, pend)
	}
	c.watch(watchWrite, ctx)
	defer c.releaseWatch(watchWrite)
	if k := c.ka; k != nil && len(p) > largeWriteBufferSize {
		// Only a frame that goes in more than one piece holds a ping
		// back for long (pingHeldBack); a smaller one is not worth the
		// clock's reading, twice a message.
		k.startWrite()
		defer k.endWrite()
	}
	h.length = int64(len(p))
	if !h.masked && c.tr.writev {
		return c.writevLocked(ctx, pend, h, p)
	}
	return c.writePiecesLocked(ctx, pend, h, p)
}

// The ways writeFrameLocked writes a frame are methods of their own, so
// that the stack of a goroutine that writes (often a handler's, which
// keeps the size its deepest call grew it to) holds one of them at a
// time.

// writeSmallLocked encodes a small frame in a pooled buffer and writes it.
//
// The caller holds frameMu.
func (c *Conn) writeSmallLocked(ctx context.Context, h header, p []byte) error {
	pend := pendPool.Get().(*[]byte)
	defer putPend(pend)
	*pend = appendFrame(*pend, h, p)
	return c.writeBufLocked(ctx, *pend, false)
}

// A large payload goes out in two writes, its frame's first 4 KiB, then
// the rest, rather than in one writev. On loopback TCP, echoing 1 MiB
// messages, the one writev cost the server 10-17% more CPU per message
// than gobwas/ws, which writes so (through a 4 KiB bufio.Writer); the
// kernel's transmit work, run from the socket's backlog inside the send,
// was most of the difference (perf), and the two writes bring it near
// parity (1.02-1.07 times gobwas's CPU on one connection, in two runs).
const (
	splitWriteMin  = 64 << 10
	splitWriteHead = 4 << 10
)

// writevLocked writes the queued frames pend, if any, h's header and the
// payload p in one writev; a payload over splitWriteMin, in two writes:
// the writev takes the first splitWriteHead bytes of the frame, a plain
// write the rest.
//
// The caller holds frameMu and watches ctx for writing (watchWrite).
func (c *Conn) writevLocked(ctx context.Context, pend *[]byte, h header, p []byte) error {
	v := vecPool.Get().(*vec)
	v.bufs = v.iov[:0]
	if pend != nil {
		v.bufs = append(v.bufs, *pend)
	}
	hdr := appendHeader(v.hdr[:0], h)
	var rest []byte
	if len(p) > splitWriteMin {
		p, rest = p[:splitWriteHead-len(hdr)], p[splitWriteHead-len(hdr):]
	}
	v.bufs = append(v.bufs, hdr, p)
	n, err := v.bufs.WriteTo(c.tr.rw)
	if err == nil && rest != nil {
		var m int
		m, err = c.writeOutLocked(rest)
		n += int64(m)
	}
	v.iov, v.bufs = [3][]byte{}, nil
	vecPool.Put(v)
	if pend != nil {
		putPend(pend)
	}
	if err != nil {
		return c.writeErrLocked(ctx, err, pend != nil || n > 0)
	}
	return nil
}

// writeOutLocked writes what follows the head of a large frame, or a
// large run of queued frames. With keepalive on, the transport's taking
// each part of it is noted (pingHeldBack): by the system calls themselves
// on a plain Unix socket, a piece of largeWriteBufferSize at a time on
// others (on loopback, writing 1 MiB in pieces of 256 KiB rather than at
// once cost 25-30% more CPU per echoed message, in the kernel's work per
// call).
//
// The caller holds frameMu.
func (c *Conn) writeOutLocked(p []byte) (int, error) {
	k := c.ka
	switch {
	case k == nil:
		return c.tr.rw.Write(p)
	case c.tr.raw != nil:
		return writeTracked(c.tr.rw.(net.Conn), c.tr.raw, p, k)
	}
	n := 0
	for n < len(p) {
		m, err := c.tr.rw.Write(p[n:min(len(p), n+largeWriteBufferSize)])
		n += m
		if err != nil {
			return n, err
		}
		k.wrote()
	}
	return n, nil
}

// writePiecesLocked writes the queued frames pend, if any, then the frame
// h, its payload copied (and masked) through a pooled buffer a piece at a
// time.
//
// The caller holds frameMu and watches ctx for writing (watchWrite).
func (c *Conn) writePiecesLocked(ctx context.Context, pend *[]byte, h header, p []byte) error {
	queued := pend != nil
	if queued {
		if err := c.writeQueueLocked(ctx, pend); err != nil {
			return err
		}
	}
	bp := getWriteBuf(maxHeaderSize + len(p))
	defer putWriteBuf(bp)
	buf := *bp
	start := maxHeaderSize - h.size()
	appendHeader(buf[start:start], h)
	off, pos, first := maxHeaderSize, 0, true
	for {
		n := copy(buf[off:], p)
		p = p[n:]
		if h.masked {
			pos = maskBytes(h.key, pos, buf[off:off+n])
		}
		m, err := c.tr.rw.Write(buf[start : off+n])
		if err != nil {
			return c.writeErrLocked(ctx, err, queued || !first || m > 0)
		}
		if len(p) == 0 {
			return nil
		}
		if c.ka != nil {
			c.ka.wrote()
		}
		start, off, first = 0, 0, false
	}
}

// vec is the scratch of one writev: the queued frames, a header and a
// payload. Pooled rather than kept in every Conn.
type vec struct {
	hdr  [maxHeaderSize]byte
	iov  [3][]byte
	bufs net.Buffers
}

var vecPool = sync.Pool{New: func() any { return new(vec) }}

// writeBufLocked writes one encoded frame; torn says whether anything
// before it was promised to the peer already.
//
// The caller holds frameMu.
func (c *Conn) writeBufLocked(ctx context.Context, b []byte, torn bool) error {
	c.watch(watchWrite, ctx)
	defer c.releaseWatch(watchWrite)
	n, err := c.tr.rw.Write(b)
	if err != nil {
		return c.writeErrLocked(ctx, err, torn || n > 0)
	}
	return nil
}

// writeErrLocked turns a failed write into what the caller gets. torn says
// whether part of the frame went out, in which case no frame can follow and
// the connection is closed.
//
// The caller holds frameMu.
func (c *Conn) writeErrLocked(ctx context.Context, err error, torn bool) error {
	if c.isClosed() || err == errStreamQuiesced {
		return c.closedErrFor(ctx, "write")
	}
	if ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		why := ctx.Err()
		cut := ", cutting a frame short"
		switch {
		case torn:
		case errors.Is(err, net.ErrClosed):
			// The timeout ended the transport: a stream of an HTTP/2
			// connection whose socket did not take its frame, which
			// may have gone in part (h2.ErrWriteStalled).
			torn, cut = true, ", which ended the HTTP/2 connection"
		case c.tr.overTLS():
			// crypto/tls takes any failed write, a timeout too, as the
			// end of its output: nothing more could go.
			torn, cut = true, ", which ends a TLS connection's output"
		}
		if !torn {
			return opErr("write", why)
		}
		c.tr.loseOutput()
		// The library's own deadlines say what ran out rather than a
		// context the caller never passed.
		switch cause := context.Cause(ctx); cause {
		case errCloseTimeout:
			// Close's, CloseWrite's or keepalive's: the close frame was
			// cut short, so it was not sent.
			c.closeTransport(errCloseTimeout)
			return c.closedErr("write")
		case errPingTimeout, errNetDeadline:
			// The keepalive's ping, or a NetConn's deadline
			// (netDeadline).
			why = cause
		}
		// The end names the write, for the calls that find it; this
		// call's error is a write's already.
		ce := &cutError{why, cut, nil}
		c.closeTransport(opErr("write", ce))
		return &closedError{op: "write", cause: ce}
	}
	lost := &lostError{err: err}
	c.tr.loseOutput()
	c.closeTransport(lost)
	return lost
}
