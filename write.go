package websocket

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/rfc6455/websocket/internal/flate"
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
	// maxQueuedPayload is the largest payload that joins the frame queue
	// (it is copied there); larger frames wait for the frame lock.
	maxQueuedPayload = 64 << 10
	// maxQueued bounds the queue; past it, writers wait their turn.
	maxQueued = 512 << 10
	// queueFlushDelay bounds how long queued frames wait for a reader
	// that holds input but does not come back to read it.
	queueFlushDelay = 500 * time.Microsecond
)

var (
	writeBufPool      = sync.Pool{New: func() any { b := make([]byte, writeBufferSize); return &b }}
	largeWriteBufPool = sync.Pool{New: func() any { b := make([]byte, largeWriteBufferSize); return &b }}
	pendPool          = sync.Pool{New: func() any { b := make([]byte, 0, writeBufferSize); return &b }}
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

func putPend(bp *[]byte) {
	if cap(*bp) <= 2*maxQueued {
		*bp = (*bp)[:0]
		pendPool.Put(bp)
	}
}

func checkMessageType(typ MessageType) error {
	if typ != MessageText && typ != MessageBinary {
		return fmt.Errorf("websocket: cannot write a message of type %v", typ)
	}
	return nil
}

// Write sends p as one message of type typ, in one frame. It is safe to
// call concurrently with other writes; messages never interleave.
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
// error and the connection stays usable. If it ends while the frame is
// partly written, nothing more can follow on the connection: it is closed.
// Text is sent as given; it is the caller's to make it UTF-8.
func (c *Conn) Write(ctx context.Context, typ MessageType, p []byte) error {
	if err := checkMessageType(typ); err != nil {
		return err
	}
	if err := c.lock(ctx, &c.msgMu, "write"); err != nil {
		return err
	}
	if c.deflate != nil && len(p) >= c.deflate.threshold {
		w := c.writer()
		w.start(ctx, typ)
		w.startDeflate()
		err := w.deflate(p)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		return err
	}
	defer c.msgMu.unlock()
	return c.writeFrame(ctx, header{fin: true, op: opcode(typ)}, p, "write")
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
		if queued, err := c.queueFrame(h, p, op); queued {
			return err
		}
	}
	if err := c.lock(ctx, &c.frameMu, op); err != nil {
		return err
	}
	c.pendMu.Lock()
	if c.closeSent || c.isClosed() {
		c.pendMu.Unlock()
		c.frameMu.unlock()
		return c.closedErr(op)
	}
	c.flusher = true
	h = c.keyLocked(h)
	pend := c.takePendLocked()
	c.pendMu.Unlock()
	err := c.writeFrameLocked(ctx, pend, h, p)
	c.flushUnlock(ctx)
	c.flushQueue(ctx) // in case a frame queued as we let go
	return err
}

// queueFrame appends the frame to the queue if a write is in progress or
// the reader holds input, reporting whether it did.
func (c *Conn) queueFrame(h header, p []byte, op string) (bool, error) {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	if c.closeSent || c.isClosed() {
		return true, c.closedErr(op)
	}
	if !c.flusher && !c.inputPending.Load() {
		return false, nil
	}
	if c.pend != nil && len(*c.pend)+len(p)+maxHeaderSize > maxQueued {
		return false, nil
	}
	if c.pend == nil {
		c.pend = pendPool.Get().(*[]byte)
		if !c.flusher {
			c.armFlushTimerLocked()
		}
	}
	*c.pend = appendFrame(*c.pend, c.keyLocked(h), p)
	return true, nil
}

// keyLocked completes h for this side: a client masks every frame.
func (c *Conn) keyLocked(h header) header {
	if c.rs.client {
		h.masked = true
		h.key = c.keys.next()
	}
	return h
}

func (c *Conn) takePendLocked() *[]byte {
	pend := c.pend
	c.pend = nil
	return pend
}

func (c *Conn) armFlushTimerLocked() {
	if c.pendTimer == nil {
		c.pendTimer = time.AfterFunc(queueFlushDelay, c.flushQueueLater)
		return
	}
	c.pendTimer.Reset(queueFlushDelay)
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
func (c *Conn) flushUnlock(ctx context.Context) error {
	var err error
	for {
		c.pendMu.Lock()
		pend := c.takePendLocked()
		if pend == nil || err != nil {
			c.flusher = false
			c.pendMu.Unlock()
			if pend != nil {
				putPend(pend)
			}
			break
		}
		c.pendMu.Unlock()
		err = c.writeQueueLocked(ctx, pend)
	}
	c.frameMu.unlock()
	return err
}

// beforeWaitLocked runs before the reader waits for input: from now on
// writes go out at once, and what queued behind the input goes now.
func (c *Conn) beforeWaitLocked(ctx context.Context) {
	if c.inputPending.Load() {
		c.inputPending.Store(false)
	}
	c.flushQueue(ctx)
}

// writeQueueLocked writes encoded frames.
func (c *Conn) writeQueueLocked(ctx context.Context, pend *[]byte) error {
	defer putPend(pend)
	if err := ctx.Err(); err != nil {
		return c.writeErrLocked(ctx, err, true)
	}
	c.writeWatch.watch(ctx)
	defer c.writeWatch.release()
	if _, err := c.tr.rw.Write(*pend); err != nil {
		return c.writeErrLocked(ctx, err, true)
	}
	return nil
}

// writeControl sends a ping or pong frame.
func (c *Conn) writeControl(ctx context.Context, op opcode, payload []byte, name string) error {
	return c.writeFrame(ctx, header{fin: true, op: op}, payload, name)
}

// appendFrame appends the frame h with payload p to b, masked if h is.
func appendFrame(b []byte, h header, p []byte) []byte {
	h.length = int64(len(p))
	b = appendHeader(b, h)
	n := len(b)
	b = append(b, p...)
	if h.masked {
		maskBytes(h.key, 0, b[n:])
	}
	return b
}

// writeFrameLocked writes the queued frames pend, if any, then the frame h
// with payload p, which it never modifies. A small frame is encoded behind
// the queued ones and both go out in one write; a large server payload
// goes out with the queue and its header in one writev; a large client
// payload is masked through a pooled buffer, a piece at a time.
func (c *Conn) writeFrameLocked(ctx context.Context, pend *[]byte, h header, p []byte) error {
	if err := ctx.Err(); err != nil {
		if pend != nil {
			// Queued frames were promised; they cannot go now.
			return c.writeErrLocked(ctx, err, true)
		}
		return fmt.Errorf("websocket: write: %w", err)
	}
	queued := pend != nil
	if len(p) <= maxQueuedPayload && (queued || !c.tr.writev || h.masked || len(p) < writevMin) {
		if pend == nil {
			pend = pendPool.Get().(*[]byte)
		}
		*pend = appendFrame(*pend, h, p)
		if !queued {
			defer putPend(pend)
			return c.writeBufLocked(ctx, *pend, false)
		}
		return c.writeQueueLocked(ctx, pend)
	}
	c.writeWatch.watch(ctx)
	defer c.writeWatch.release()
	h.length = int64(len(p))
	if !h.masked && c.tr.writev {
		v := vecPool.Get().(*vec)
		v.bufs = v.iov[:0]
		if pend != nil {
			v.bufs = append(v.bufs, *pend)
		}
		v.bufs = append(v.bufs, appendHeader(v.hdr[:0], h), p)
		n, err := v.bufs.WriteTo(c.tr.rw)
		v.iov, v.bufs = [3][]byte{}, nil
		vecPool.Put(v)
		if pend != nil {
			putPend(pend)
		}
		if err != nil {
			return c.writeErrLocked(ctx, err, queued || n > 0)
		}
		return nil
	}
	if pend != nil {
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
func (c *Conn) writeBufLocked(ctx context.Context, b []byte, torn bool) error {
	c.writeWatch.watch(ctx)
	defer c.writeWatch.release()
	n, err := c.tr.rw.Write(b)
	if err != nil {
		return c.writeErrLocked(ctx, err, torn || n > 0)
	}
	return nil
}

// writeErrLocked turns a failed write into what the caller gets. torn says
// whether part of the frame went out, in which case no frame can follow and
// the connection is closed.
func (c *Conn) writeErrLocked(ctx context.Context, err error, torn bool) error {
	if c.isClosed() {
		return c.closedErr("write")
	}
	if ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		cerr := fmt.Errorf("websocket: write: %w", ctx.Err())
		if torn {
			c.closeTransport(fmt.Errorf("%w, cutting a frame short", cerr))
			return &closedError{op: "write", cause: cerr}
		}
		return cerr
	}
	lost := &lostError{err}
	c.closeTransport(lost)
	return lost
}

// messageWriter writes one message in frames; see Conn.Writer. The Conn
// reuses it for every message.
type messageWriter struct {
	c    *Conn
	ctx  context.Context
	op   opcode  // opcode of the next frame: the message's, then continuation
	rsv  byte    // RSV bits of the next frame: RSV1 opens a compressed message
	bp   *[]byte // pooled buffer of payload not yet sent, or nil
	n    int     // bytes in bp
	d    *flate.Writer
	out  *[]byte // compressed output not yet sent, while d is set
	open bool
}

var errWriterClosed = errors.New("websocket: write to a closed message writer")

// compressedFrameSize is how much compressed output a message writer
// gathers before it sends a frame.
const compressedFrameSize = 16 << 10

var deflateOutPool = sync.Pool{New: func() any { b := make([]byte, 0, 2*compressedFrameSize); return &b }}

// Writer starts a message of type typ and returns a writer of its payload;
// closing the writer ends the message. Until then other messages wait, but
// pongs and close frames may go out between its frames. The writer sends a
// frame whenever it has gathered 4 KiB, or at once for a write of at least
// that much; Close sends the last one. With compression negotiated, a
// message that reaches 4 KiB, or the compression threshold by Close, is
// compressed, its frames going out as the compressed output gathers.
//
// ctx governs every write of the message. If a write fails after a frame of
// the message went out, the message cannot be completed and the connection
// is closed.
func (c *Conn) Writer(ctx context.Context, typ MessageType) (io.WriteCloser, error) {
	if err := checkMessageType(typ); err != nil {
		return nil, err
	}
	if err := c.lock(ctx, &c.msgMu, "write"); err != nil {
		return nil, err
	}
	w := c.writer()
	w.start(ctx, typ)
	return w, nil
}

// writer returns the connection's message writer, made on first use so
// that a connection that never needs one does not carry it. The caller
// holds msgMu.
func (c *Conn) writer() *messageWriter {
	if c.mw == nil {
		c.mw = &messageWriter{c: c}
	}
	return c.mw
}

func (w *messageWriter) start(ctx context.Context, typ MessageType) {
	w.ctx, w.op, w.rsv, w.open = ctx, opcode(typ), 0, true
}

func (w *messageWriter) Write(p []byte) (int, error) {
	if !w.open {
		return 0, errWriterClosed
	}
	total := len(p)
	for len(p) > 0 && w.d == nil {
		if w.n == 0 && len(p) >= writeBufferSize {
			if w.c.deflate != nil {
				w.startDeflate()
				break
			}
			if err := w.frame(false, p); err != nil {
				return 0, err
			}
			return total, nil
		}
		if w.bp == nil {
			w.bp = writeBufPool.Get().(*[]byte)
		}
		n := copy((*w.bp)[w.n:], p)
		w.n += n
		p = p[n:]
		if w.n == len(*w.bp) {
			if w.c.deflate != nil {
				w.startDeflate()
				break
			}
			if err := w.frame(false, *w.bp); err != nil {
				return total - len(p), err
			}
			w.n = 0
		}
	}
	if len(p) > 0 {
		if err := w.deflate(p); err != nil {
			return total - len(p), err
		}
	}
	return total, nil
}

// Close sends the last frame of the message and lets the next message go.
func (w *messageWriter) Close() error {
	if !w.open {
		return errWriterClosed
	}
	if w.d == nil && w.c.deflate != nil && w.n >= w.c.deflate.threshold {
		w.startDeflate()
	}
	var err error
	if w.d != nil {
		// RFC 7692 §7.2.1: end the output with a sync flush and strip the
		// 00 00 ff ff it ends with.
		out := w.d.Flush(*w.out)
		*w.out = out[:0]
		err = w.frame(true, out[:len(out)-len(flate.FlushTail)])
		w.c.releaseDeflater(w.d)
		if cap(*w.out) <= 8*compressedFrameSize {
			deflateOutPool.Put(w.out)
		}
		w.d, w.out = nil, nil
	} else {
		var p []byte
		if w.bp != nil {
			p = (*w.bp)[:w.n]
		}
		err = w.frame(true, p)
	}
	if w.bp != nil {
		writeBufPool.Put(w.bp)
		w.bp, w.n = nil, 0
	}
	w.open, w.ctx = false, nil
	w.c.msgMu.unlock()
	return err
}

// startDeflate turns the message into a compressed one, compressing what
// was gathered so far.
func (w *messageWriter) startDeflate() {
	w.d = w.c.takeDeflater()
	w.out = deflateOutPool.Get().(*[]byte)
	w.rsv = rsv1
	if w.n > 0 {
		*w.out = w.d.Append((*w.out)[:0], (*w.bp)[:w.n])
		w.n = 0
	}
}

// deflate compresses p, sending frames as the output gathers.
func (w *messageWriter) deflate(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), 4*compressedFrameSize)
		*w.out = w.d.Append(*w.out, p[:n])
		p = p[n:]
		if len(*w.out) >= compressedFrameSize {
			if err := w.frame(false, *w.out); err != nil {
				return err
			}
			*w.out = (*w.out)[:0]
		}
	}
	return nil
}

func (w *messageWriter) frame(fin bool, p []byte) error {
	err := w.c.writeFrame(w.ctx, header{fin: fin, rsv: w.rsv, op: w.op}, p, "write")
	if err != nil && (w.op == opContinuation || w.d != nil) {
		// The peer is inside the message, or our compressor has moved on
		// without it: no other message can follow.
		w.c.closeTransport(fmt.Errorf("websocket: message cut short: %w", err))
	}
	w.op, w.rsv = opContinuation, 0
	return err
}

// Ping sends a ping and waits for its pong. A pong arrives only while
// something reads the connection, so call Ping while another goroutine is
// in Read or Reader. If ctx ends first, Ping returns its error and the
// connection stays usable.
func (c *Conn) Ping(ctx context.Context) error {
	c.mu.Lock()
	if c.isClosed() {
		// closeTransport has woken the Pings it found waiting.
		c.mu.Unlock()
		return c.closedErr("ping")
	}
	if c.pings == nil {
		c.pings = &pingWaits{waiting: make(map[uint64]chan struct{})}
	}
	c.pings.seq++
	id := c.pings.seq
	ch := make(chan struct{})
	c.pings.waiting[id] = ch
	c.mu.Unlock()
	// forget reports whether the pong came: gotPong takes the entry out
	// before waking Ping, closeTransport leaves it in.
	forget := func() bool {
		c.mu.Lock()
		_, waiting := c.pings.waiting[id]
		delete(c.pings.waiting, id)
		c.mu.Unlock()
		return !waiting
	}
	var payload [8]byte
	binary.BigEndian.PutUint64(payload[:], id)
	if err := c.writeControl(ctx, opPing, payload[:], "ping"); err != nil {
		forget()
		return err
	}
	select {
	case <-ch:
		if forget() {
			return nil
		}
		return c.closedErr("ping")
	case <-ctx.Done():
		forget()
		return fmt.Errorf("websocket: ping: %w", ctx.Err())
	}
}

// pingWaits are the Pings waiting for their pongs, by the number each sent
// as its payload.
type pingWaits struct {
	seq     uint64
	waiting map[uint64]chan struct{} // closed by gotPong, or by closeTransport
}

// gotPong wakes the Ping that sent the payload p, if any.
func (c *Conn) gotPong(p []byte) {
	if len(p) != 8 {
		return
	}
	id := binary.BigEndian.Uint64(p)
	c.mu.Lock()
	if c.pings != nil {
		if ch, ok := c.pings.waiting[id]; ok {
			delete(c.pings.waiting, id)
			close(ch)
		}
	}
	c.mu.Unlock()
}
