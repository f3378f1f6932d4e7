package websocket

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
	// caller's slice, with its header, in one writev.
	writevMin = 1 << 10
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

// Write sends p as one message of type typ, in one frame. It is safe to
// call concurrently with other writes; messages never interleave.
//
// If ctx ends before any byte of the frame was written, Write returns ctx's
// error and the connection stays usable. If it ends while the frame is
// partly written, nothing more can follow on the connection: it is closed.
// Text is sent as given; it is the caller's to make it UTF-8.
func (c *Conn) Write(ctx context.Context, typ MessageType, p []byte) error {
	if err := checkMessageType(typ); err != nil {
		return err
	}
	if err := c.lock(ctx, c.msgMu, "write"); err != nil {
		return err
	}
	defer unlock(c.msgMu)
	return c.writeFrame(ctx, header{fin: true, op: opcode(typ)}, p, "write")
}

// writeFrame sends one frame under the frame lock.
func (c *Conn) writeFrame(ctx context.Context, h header, p []byte, op string) error {
	if err := c.lock(ctx, c.frameMu, op); err != nil {
		return err
	}
	defer unlock(c.frameMu)
	if c.closeSent || c.isClosed() {
		return c.closedErr(op)
	}
	return c.writeFrameLocked(ctx, h, p)
}

// writeControl sends a ping or pong frame.
func (c *Conn) writeControl(ctx context.Context, op opcode, payload []byte, name string) error {
	return c.writeFrame(ctx, header{fin: true, op: op}, payload, name)
}

// writeFrameLocked writes the frame h with payload p, which it never
// modifies. The payload is copied behind the header in a pooled buffer and
// masked there by a client; a large server payload goes out with its
// header in one writev instead.
func (c *Conn) writeFrameLocked(ctx context.Context, h header, p []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("websocket: write: %w", err)
	}
	c.writeWatch.watch(ctx)
	defer c.writeWatch.release()
	h.length = int64(len(p))
	if c.client {
		h.masked = true
		h.key = c.keys.next()
	}
	if !h.masked && c.tr.writev && len(p) >= writevMin {
		c.iov[0] = appendHeader(c.hdr[:0], h)
		c.iov[1] = p
		c.bufs = c.iov[:]
		n, err := c.bufs.WriteTo(c.tr.w)
		c.iov[1] = nil
		if err != nil {
			return c.writeErrLocked(ctx, err, n > 0)
		}
		return nil
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
		m, err := c.tr.w.Write(buf[start : off+n])
		if err != nil {
			return c.writeErrLocked(ctx, err, !first || m > 0)
		}
		if len(p) == 0 {
			return nil
		}
		start, off, first = 0, 0, false
	}
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
	bp   *[]byte // pooled buffer of payload not yet sent, or nil
	n    int     // bytes in bp
	open bool
}

var errWriterClosed = errors.New("websocket: write to a closed message writer")

// Writer starts a message of type typ and returns a writer of its payload;
// closing the writer ends the message. Until then other messages wait, but
// pongs and close frames may go out between its frames. The writer sends a
// frame whenever it has gathered 4 KiB, or at once for a write of at least
// that much; Close sends the last one.
//
// ctx governs every write of the message. If a write fails after a frame of
// the message went out, the message cannot be completed and the connection
// is closed.
func (c *Conn) Writer(ctx context.Context, typ MessageType) (io.WriteCloser, error) {
	if err := checkMessageType(typ); err != nil {
		return nil, err
	}
	if err := c.lock(ctx, c.msgMu, "write"); err != nil {
		return nil, err
	}
	c.mw.ctx, c.mw.op, c.mw.open = ctx, opcode(typ), true
	return &c.mw, nil
}

func (w *messageWriter) Write(p []byte) (int, error) {
	if !w.open {
		return 0, errWriterClosed
	}
	total := len(p)
	for len(p) > 0 {
		if w.n == 0 && len(p) >= writeBufferSize {
			if err := w.frame(false, p); err != nil {
				return total - len(p), err
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
			if err := w.frame(false, *w.bp); err != nil {
				return total - len(p), err
			}
			w.n = 0
		}
	}
	return total, nil
}

// Close sends the last frame of the message and lets the next message go.
func (w *messageWriter) Close() error {
	if !w.open {
		return errWriterClosed
	}
	var p []byte
	if w.bp != nil {
		p = (*w.bp)[:w.n]
	}
	err := w.frame(true, p)
	if w.bp != nil {
		writeBufPool.Put(w.bp)
		w.bp, w.n = nil, 0
	}
	w.open, w.ctx = false, nil
	unlock(w.c.msgMu)
	return err
}

func (w *messageWriter) frame(fin bool, p []byte) error {
	err := w.c.writeFrame(w.ctx, header{fin: fin, op: w.op}, p, "write")
	if err != nil && w.op == opContinuation {
		// The peer is inside the message; no other message can follow.
		w.c.closeTransport(fmt.Errorf("websocket: message cut short: %w", err))
	}
	w.op = opContinuation
	return err
}

// Ping sends a ping and waits for its pong. A pong arrives only while
// something reads the connection, so call Ping while another goroutine is
// in Read or Reader. If ctx ends first, Ping returns its error and the
// connection stays usable.
func (c *Conn) Ping(ctx context.Context) error {
	c.pingMu.Lock()
	if c.pings == nil {
		c.pings = make(map[uint64]chan struct{})
	}
	c.pingSeq++
	id := c.pingSeq
	ch := make(chan struct{})
	c.pings[id] = ch
	c.pingMu.Unlock()
	defer func() {
		c.pingMu.Lock()
		delete(c.pings, id)
		c.pingMu.Unlock()
	}()
	var payload [8]byte
	binary.BigEndian.PutUint64(payload[:], id)
	if err := c.writeControl(ctx, opPing, payload[:], "ping"); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("websocket: ping: %w", ctx.Err())
	case <-c.closed:
		return c.closedErr("ping")
	}
}

// gotPong wakes the Ping that sent the payload p, if any.
func (c *Conn) gotPong(p []byte) {
	if len(p) != 8 {
		return
	}
	id := binary.BigEndian.Uint64(p)
	c.pingMu.Lock()
	if ch, ok := c.pings[id]; ok {
		delete(c.pings, id)
		close(ch)
	}
	c.pingMu.Unlock()
}
