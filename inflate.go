package websocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/rfc6455/websocket/internal/flate"
)

// compressedLimit bounds the compressed size of a message whose inflated
// size the read limit bounds: DEFLATE's stored blocks grow incompressible
// data by 5 bytes in 65535, so this leaves ample room for any honest
// message.
func compressedLimit(limit int64) int64 {
	if limit > math.MaxInt64/2 {
		return limit
	}
	return limit + limit/256 + 1024
}

// inflater holds the state of the peer's compression between messages.
// It is guarded by the read lock.
type inflater struct {
	fr   *flate.Reader // the peer's stream, whose history outlives a message with context takeover
	src  inflateSource
	open bool  // a message is being inflated
	out  int64 // bytes the current message inflated to so far
}

// inflateSource feeds the decoder the raw payload of the message being
// read, frame after frame, then the 00 00 ff ff tail, then io.EOF. With
// pend, it neither waits for input that is not buffered yet nor reads the
// next frame: it says so (flate.ErrInputPending), and inflateLocked's
// caller does either, from a frame far shallower than the decoder's, so
// that a handler waiting there keeps a small stack.
type inflateSource struct {
	c    *Conn
	ctx  context.Context
	tail int   // bytes of flate.FlushTail handed out
	err  error // the error that stopped a frame read, already handled
	pend bool
}

func (s *inflateSource) Read(p []byte) (int, error) {
	c := s.c
	for c.frameLeft == 0 {
		if !c.frame.fin {
			if s.pend {
				// Anything but the next frame's header, buffered whole,
				// is for readMessageLocked, outside the decoder.
				if !c.startBufferedFrameLocked() {
					return 0, flate.ErrInputPending
				}
				continue
			}
			if err := c.nextDataFrameLocked(s.ctx); err != nil {
				s.err = err
				return 0, err
			}
			continue
		}
		if s.tail == len(flate.FlushTail) {
			return 0, io.EOF
		}
		n := copy(p, flate.FlushTail[s.tail:])
		s.tail += n
		return n, nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	if s.pend {
		// Buffered bytes only, taken here rather than in readRawLocked,
		// whose frame would add to the decoder's depth.
		if c.rb.isEmpty() {
			return 0, flate.ErrInputPending
		}
		return c.takeBufferedLocked(p), nil
	}
	n, err := c.readRawLocked(s.ctx, p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// startBufferedFrameLocked starts the next frame of the message being
// inflated, reporting whether it did: only when the read buffer holds its
// header whole, and the header is a continuation that is sure to pass
// checkHeader and the read limit. The decoder is then spared a return and
// a new start at each frame. Anything else (a header not all here, a
// control frame to act on, a header to refuse) is for readMessageLocked,
// outside the decoder, whose depth a wait, a pong or a close frame would
// add to: even here, under a dynamic block header's decoding, a handler
// waiting in Read has the least room (TestStackRoom).
//
// The caller holds readMu.
func (c *Conn) startBufferedFrameLocked() bool {
	var h header
	n, err := h.parse(c.rb.bytes())
	if n == 0 || err != nil || h.op != opContinuation || h.rsv != 0 || h.masked == c.rs.client {
		return false
	}
	if _, ok := c.frameFitsLocked(h); !ok {
		return false
	}
	c.rb.consume(n)
	c.setFrameLocked(h)
	return true
}

// inflateLocked reads the next inflated bytes of the current message into
// p, returning io.EOF at its end. The read limit and the UTF-8 check apply
// to the inflated bytes as they come out. When it needs input that has not
// come, it returns flate.ErrInputPending, having inflated nothing: the
// caller waits for input (inflateWaitLocked) and calls again.
//
// The caller holds readMu.
func (c *Conn) inflateLocked(ctx context.Context, p []byte) (int, error) {
	in := c.inflate
	if !in.open {
		in.open = true
		in.src.tail, in.src.err, in.out = 0, nil, 0
	}
	if len(p) == 0 {
		return 0, nil
	}
	limit := c.readLimit.Load()
	// One byte past the limit shows it crossed. The byte is taken off
	// len(p) rather than added to the room left, which would overflow
	// with a limit of math.MaxInt64; and a limit lowered under what the
	// message inflated to already leaves no room, not less than none.
	if room := max(limit-in.out, 0); limit >= 0 && int64(len(p))-1 > room {
		p = p[:room+1]
	}
	// While the decoder reads, the source reads with ctx, and says when
	// input has not come rather than wait for it.
	in.src.ctx, in.src.pend = ctx, true
	n, err := in.fr.Read(p)
	in.src.ctx, in.src.pend = nil, false
	if err == flate.ErrInputPending {
		return 0, err
	}
	return c.inflatedLocked(ctx, p[:n], err, limit)
}

// inflatedLocked is the rest of inflateLocked, once the decoder returned
// p (what it inflated) and err, limit being the read limit: apart, so
// that its locals and calls do not take room on inflateLocked's frame,
// which is on the stack while the decoder runs.
//
// The caller holds readMu.
func (c *Conn) inflatedLocked(ctx context.Context, p []byte, err error, limit int64) (int, error) {
	in := c.inflate
	n := len(p)
	if in.src.err != nil {
		// Reading a frame failed, and failed or closed the connection:
		// that is the end, whatever was inflated before it.
		err = in.src.err
		c.dropInflateLocked()
		return 0, err
	}
	if n > 0 {
		in.out += int64(n)
		if limit >= 0 && in.out > limit {
			return 0, c.inflateFailLocked(StatusMessageTooBig, limit, ErrMessageTooBig)
		}
		if err := c.checkTextLocked(p[:n]); err != nil {
			c.dropInflateLocked()
			return 0, err
		}
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.ErrUnexpectedEOF && in.fr.EndedInBlock(),
		(err == io.EOF || err == io.ErrUnexpectedEOF) && in.fr.PastData() < in.src.tail:
		// The tail appended to the message did not end its last block,
		// but went into it as data; or it went into a block, as data or
		// its end code, that then ended: the message was cut inside a
		// block.
		return 0, c.inflateFailLocked(StatusInvalidFramePayloadData, limit, errInflateCut)
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		// The stream ended where the message did: the decoder ran out of
		// input after the empty stored block of the message's tail,
		// which it reports as an unexpected end since a message ends
		// with a sync flush, not a final block; or a final block ended
		// it, after which what is left of the message is dropped. The
		// decoder has ended the stream either way, keeping its history
		// under context takeover.
		in.open = false
		if err == io.EOF {
			if err := c.dropAfterFinalLocked(ctx); err != nil {
				return 0, err
			}
		}
		if err := c.endMessageLocked(); err != io.EOF {
			return 0, err
		}
		return n, io.EOF
	default:
		return 0, c.inflateFailLocked(StatusInvalidFramePayloadData, limit, err)
	}
}

// dropAfterFinalLocked reads and drops what is left of a message after its
// final block.
//
// The caller holds readMu.
func (c *Conn) dropAfterFinalLocked(ctx context.Context) error {
	src := &c.inflate.src
	src.ctx = ctx
	defer func() { src.ctx = nil }()
	for c.frameLeft > 0 || !c.frame.fin {
		var scratch [256]byte
		if _, err := src.Read(scratch[:]); err != nil {
			return err
		}
	}
	return nil
}

// inflateWaitLocked waits for more of the message being inflated, after
// inflateLocked returned flate.ErrInputPending within a frame. A handler
// waiting for a compressed message's next bytes waits here, no deeper
// than for a plain one's, rather than inside the decoder.
//
// The caller holds readMu.
func (c *Conn) inflateWaitLocked(ctx context.Context) error {
	if err := c.fillLocked(ctx, false); err != nil {
		return c.readErrLocked(ctx, err, true)
	}
	return nil
}

// errInflateCut is the corruption of a compressed message whose data
// ends inside a DEFLATE block.
var errInflateCut = errors.New("message ends inside a block")

// inflateFailLocked fails the connection over the message being
// inflated, with code, err being the cause: the read limit, limit,
// crossed, or input that is not DEFLATE. It is apart from inflateLocked so
// that its locals do not sit on the stack of every compressed read.
//
// The caller holds readMu.
func (c *Conn) inflateFailLocked(code StatusCode, limit int64, err error) error {
	reason := "invalid compressed data: " + err.Error()
	if code == StatusMessageTooBig {
		reason = fmt.Sprintf("message inflates past the read limit of %d bytes", limit)
	}
	c.dropInflateLocked()
	pe := protocolErr(code, reason)
	pe.err = err
	return c.failLocked(pe)
}

// dropInflateLocked ends the message being inflated when the connection
// fails in its middle: the decoder gives back its working state, which it
// may still hold, and its history, which no longer matters.
//
// The caller holds readMu.
func (c *Conn) dropInflateLocked() {
	c.inflate.open = false
	c.inflate.fr.Reset()
}
