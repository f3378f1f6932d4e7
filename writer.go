package websocket

import (
	"cmp"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/rfc6455/websocket/internal/flate"
)

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
	// onWire (atomic; set and cleared by the holder of msgMu) is set while
	// the message may stand part-sent on the wire, its frames going out
	// one by one: a Writer open, or a compressed Write past its first
	// frame. Nothing but control frames may go between them, so what
	// Enqueue held back behind it cannot go before a close frame
	// (msgOnWire).
	onWire atomic.Bool
	// failed is the error of a frame that could not be sent: the message
	// ends there, and Close sends nothing more.
	failed error
}

var errWriterClosed = errors.New("websocket: write to a closed message writer")

// errInvalidWrite is the error of a copy into a writer that returned a
// count below 0 or above what it was given (copyPooled), as io.Copy's is.
var errInvalidWrite = errors.New("websocket: invalid write result")

// compressedFrameSize is how much compressed output a message writer
// gathers before it sends a frame.
const compressedFrameSize = 16 << 10

var deflateOutPool = sync.Pool{New: func() any { b := make([]byte, 0, 2*compressedFrameSize); return &b }}

// putDeflateOut gives a compressed output buffer back, emptied: what a
// failed message left in it must not reach the next message, on any
// connection.
func putDeflateOut(bp *[]byte) {
	*bp = (*bp)[:0]
	if cap(*bp) <= 8*compressedFrameSize {
		deflateOutPool.Put(bp)
	}
}

// Writer starts a message of type typ and returns a writer of its payload;
// closing the writer ends the message. Until then other messages wait, but
// pongs and close frames may go out between its frames. The writer sends a
// frame whenever it has gathered 4 KiB. A write of at least that much that
// finds nothing gathered goes out at once, as one frame; one that finds
// bytes gathered fills their frame first, and the rest of it goes as a
// write of its own would. Close sends the last one. With compression
// negotiated, a message that reaches 4 KiB, or the compression threshold
// by Close, is compressed, its frames going out as the compressed output
// gathers. io.Copy into the writer reads into a pooled buffer (the
// writer's ReadFrom), allocating none per message.
//
// ctx governs every write of the message. If a write fails after a frame of
// the message went out, the message cannot be completed and the connection
// is closed, the write's error wrapping ErrClosed (in a browser, which
// sends a message only whole, the message is dropped and the connection
// stays usable). Once the connection has closed, a write fails, with an
// error wrapping ErrClosed unless the message had failed already, and the
// writer lets go of its compressor and buffers, though it is left open.
//
// Once the writer is closed, its Write and Close return an error and touch
// nothing, whatever message the connection has gone on to: a deferred
// Close after the Close whose error was checked, as with a file, is
// harmless. But Close sends what was written as the whole message, even
// when the source of the message failed part way (a relay whose read of
// the other side broke off): a message once begun cannot be taken back, and
// to give it up, close the connection, with Close, whose close frame goes
// out between the message's frames and ends the peer's read of it.
func (c *Conn) Writer(ctx context.Context, typ MessageType) (io.WriteCloser, error) {
	if err := checkMessageType(typ); err != nil {
		return nil, err
	}
	if err := c.lockMsg(ctx, "write"); err != nil {
		return nil, err
	}
	c.pendMu.Lock()
	err := c.writableLocked("write")
	c.pendMu.Unlock()
	if err != nil {
		c.unlockMsg()
		return nil, err
	}
	w := c.writer()
	w.start(ctx, typ)
	w.onWire.Store(true)
	return &messageHandle{w}, nil
}

// messageHandle is the writer of one message, which Writer returns. The
// connection reuses its messageWriter for every message, so a writer
// closed and then called again (a deferred Close, as with a file) would
// write into, or end, the message another goroutine has begun since, and
// let go of the message lock it holds. Closing the handle lets go of the
// messageWriter.
type messageHandle struct {
	w *messageWriter // nil once closed
}

func (h *messageHandle) Write(p []byte) (int, error) {
	if h.w == nil {
		return 0, errWriterClosed
	}
	return h.w.Write(p)
}

func (h *messageHandle) Close() error {
	w := h.w
	if w == nil {
		return errWriterClosed
	}
	h.w = nil
	return w.Close()
}

// ReadFrom writes what it reads from r until io.EOF, as Write would: io.Copy
// into the writer uses it, with a pooled buffer rather than a new 32 KiB
// one for every message. Each read goes to Write as it comes, so that a
// read of at least 4 KiB goes out as a frame of its own, as io.Copy's would.
// It returns the bytes written, and the error of the read (not io.EOF) or
// of the write that stopped it; the message stays open either way.
func (h *messageHandle) ReadFrom(r io.Reader) (int64, error) {
	if h.w == nil {
		return 0, errWriterClosed
	}
	return copyPooled(h.w, r)
}

// copyPooled copies from r to w until io.EOF, as io.Copy does, but
// through a pooled buffer of the size io.Copy would allocate (a compressed
// output buffer's): the Writer's ReadFrom and the Reader's WriteTo, which
// io.Copy calls, each give it their own Write or Read.
func copyPooled(w io.Writer, r io.Reader) (int64, error) {
	bp := deflateOutPool.Get().(*[]byte)
	defer putDeflateOut(bp)
	buf := (*bp)[:cap(*bp)]
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			if m < 0 || m > n {
				// A writer that counts what it was not given: io.Copy
				// stops so, counting nothing of that write.
				m, werr = 0, cmp.Or(werr, errInvalidWrite)
			}
			total += int64(m)
			switch {
			case werr != nil:
				return total, werr
			case m < n:
				return total, io.ErrShortWrite
			}
		}
		switch {
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// writer returns the connection's message writer, made on first use so
// that a connection that never needs one does not carry it. The caller
// holds msgMu.
func (c *Conn) writer() *messageWriter {
	w := c.mw.Load()
	if w == nil {
		w = &messageWriter{c: c}
		c.mw.Store(w)
	}
	return w
}

// msgOnWire reports whether a message may stand part-sent on the wire
// (messageWriter.onWire): then nothing Enqueue held back behind it may go
// before a close frame, which goes between its frames.
func (c *Conn) msgOnWire() bool {
	w := c.mw.Load()
	return w != nil && w.onWire.Load()
}

func (w *messageWriter) start(ctx context.Context, typ MessageType) {
	w.ctx, w.op, w.rsv, w.open = ctx, opcode(typ), 0, true
}

func (w *messageWriter) Write(p []byte) (int, error) {
	if !w.open {
		return 0, errWriterClosed
	}
	if w.failed == nil && w.c.isClosed() {
		w.failed = w.c.closedErr("write")
	}
	if w.failed != nil {
		// A writer left open on a closed connection holds nothing.
		if w.c.isClosed() {
			w.drop()
		}
		return 0, w.failed
	}
	n, err := w.write(p)
	if err != nil && w.c.isClosed() {
		w.drop()
	}
	return n, err
}

// drop lets go of what a message that cannot go on holds: its compressor
// and buffers. The caller holds msgMu, as the open writer does.
func (w *messageWriter) drop() {
	if w.d != nil {
		w.c.releaseDeflater(w.d)
		putDeflateOut(w.out)
		w.d, w.out = nil, nil
	}
	if w.bp != nil {
		writeBufPool.Put(w.bp)
		w.bp, w.n = nil, 0
	}
	w.c.releaseClosedDeflater()
}

func (w *messageWriter) write(p []byte) (int, error) {
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
	if w.d == nil && w.c.deflate != nil && w.n >= w.c.deflate.threshold && w.failed == nil {
		w.startDeflate()
	}
	err := w.failed
	switch {
	case err != nil:
		w.drop()
	case w.d != nil:
		// RFC 7692 §7.2.1: end the output with a sync flush and strip the
		// 00 00 ff ff it ends with.
		out := w.d.Flush(*w.out)
		*w.out = out[:0]
		err = w.frame(true, out[:len(out)-len(flate.FlushTail)])
		w.c.releaseDeflater(w.d)
		putDeflateOut(w.out)
		w.d, w.out = nil, nil
	default:
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
	w.open, w.ctx, w.failed = false, nil, nil
	w.onWire.Store(false)
	w.c.unlockMsg()
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
	if !fin {
		// Set before the frame can be queued or written (writeClose).
		w.onWire.Store(true)
	}
	err := w.c.writeFrame(w.ctx, header{fin: fin, rsv: w.rsv, op: w.op}, p, "write")
	if err != nil && !isCloseSent(err) && !w.c.isClosed() {
		switch {
		case w.op == opContinuation && w.c.tr.browser:
			// The browser sends a message once its last frame is
			// written: nothing of this one went out, the next message
			// replaces it (browserSocket), and the connection stays
			// usable, as it does for a Write whose context ends.
		case w.op == opContinuation:
			// The peer is inside the message: no other message can
			// follow. (After our close frame none can anyway, and the
			// connection stays open for reading.) The write says so,
			// as the calls after it do.
			w.c.closeTransport(opErr("message cut short", err))
			err = w.c.closedErr("write")
		case w.d != nil && w.c.deflate.sendTakeover:
			// Nothing of the message went out, but our compressor has
			// taken it in: it starts afresh, as a message that refers to
			// no history decodes whatever history the peer holds.
			w.d.Reset()
		}
	}
	if err != nil {
		// Nothing of this frame went out (or the connection is closed):
		// the message cannot go on.
		w.failed = err
		return err
	}
	w.op, w.rsv = opContinuation, 0
	return nil
}
