package websocket

import (
	stdflate "compress/flate"
	"context"
	"fmt"
	"io"
	"math"
	"sync"

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

var flateReaderPool sync.Pool

// inflater holds the state of the peer's compression between messages.
// It is guarded by the read lock.
type inflater struct {
	fr     io.ReadCloser // compress/flate's reader, borrowed for a message
	src    inflateSource
	out    int64  // bytes the current message inflated to so far
	window []byte // ring of the last 2^recvBits bytes inflated, with context takeover
	wpos   int    // where the ring's next byte goes
	wfull  bool   // the ring has wrapped
}

// inflateSource feeds compress/flate the raw payload of the message being
// read, frame after frame, then the 00 00 ff ff tail, then io.EOF. It is
// an io.ByteReader, so that flate reads no further than it needs.
type inflateSource struct {
	c    *Conn
	ctx  context.Context
	tail int   // bytes of flate.FlushTail handed out
	err  error // the error that stopped a frame read, already handled
}

func (s *inflateSource) Read(p []byte) (int, error) {
	c := s.c
	for c.frameLeft == 0 {
		if !c.frame.fin {
			if err := c.nextFrameLocked(s.ctx); err != nil {
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
	n, err := c.readRawLocked(s.ctx, p)
	if err != nil {
		s.err = err
	}
	return n, err
}

func (s *inflateSource) ReadByte() (byte, error) {
	c := s.c
	if c.frameLeft > 0 && !c.rb.isEmpty() {
		b := c.rb.readByte()
		if c.frame.masked {
			b ^= c.frame.key[c.maskPos]
			c.maskPos = (c.maskPos + 1) & 3
		}
		c.frameLeft--
		return b, nil
	}
	var one [1]byte
	for {
		n, err := s.Read(one[:])
		if n == 1 {
			return one[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// inflateLocked reads the next inflated bytes of the current message into
// p, returning io.EOF at its end. The read limit and the UTF-8 check apply
// to the inflated bytes as they come out.
//
// The caller holds readMu.
func (c *Conn) inflateLocked(ctx context.Context, p []byte) (int, error) {
	in := c.inflate
	if in.fr == nil {
		c.startInflateLocked()
	}
	if len(p) == 0 {
		return 0, nil
	}
	limit := c.readLimit.Load()
	if limit >= 0 && int64(len(p)) > limit-in.out+1 {
		p = p[:limit-in.out+1] // one byte past the limit shows it crossed
	}
	// The source reads with ctx until this call returns: the frames left
	// after a final block are read below.
	in.src.ctx = ctx
	defer func() { in.src.ctx = nil }()
	n, err := in.fr.Read(p)
	if in.src.err != nil {
		// Reading a frame failed, and failed or closed the connection:
		// that is the end, whatever was inflated before it.
		err = in.src.err
		c.endInflateLocked()
		return 0, err
	}
	if n > 0 {
		in.out += int64(n)
		if limit >= 0 && in.out > limit {
			c.endInflateLocked()
			pe := protocolErr(StatusMessageTooBig, fmt.Sprintf("message inflates past the read limit of %d bytes", limit))
			pe.err = ErrMessageTooBig
			return 0, c.failLocked(pe)
		}
		if err := c.checkTextLocked(p[:n]); err != nil {
			c.endInflateLocked()
			return 0, err
		}
		if c.deflate.recvTakeover {
			in.remember(p[:n])
		}
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF || (err == io.ErrUnexpectedEOF && in.src.tail == len(flate.FlushTail)):
		// The stream ended where the message did (or with a final block,
		// after which what is left of the message is dropped).
		if err == io.EOF {
			for c.frameLeft > 0 || !c.frame.fin {
				var scratch [256]byte
				if _, err := in.src.Read(scratch[:]); err != nil {
					c.endInflateLocked()
					return 0, err
				}
			}
		}
		c.endInflateLocked()
		if err := c.endMessageLocked(); err != io.EOF {
			return 0, err
		}
		return n, io.EOF
	default:
		c.endInflateLocked()
		pe := protocolErr(StatusInvalidFramePayloadData, "invalid compressed data: "+err.Error())
		pe.err = err
		return 0, c.failLocked(pe)
	}
}

// startInflateLocked borrows a flate reader for a new message, primed with
// the window of earlier messages under context takeover.
//
// The caller holds readMu.
func (c *Conn) startInflateLocked() {
	in := c.inflate
	in.src.tail, in.src.err, in.out = 0, nil, 0
	var dict []byte
	var bp *[]byte
	if c.deflate.recvTakeover && (in.wpos > 0 || in.wfull) {
		if !in.wfull {
			dict = in.window[:in.wpos]
		} else {
			// Lay the ring out in order.
			bp = getWriteBuf(len(in.window))
			dict = (*bp)[:0]
			dict = append(dict, in.window[in.wpos:]...)
			dict = append(dict, in.window[:in.wpos]...)
		}
	}
	if fr, ok := flateReaderPool.Get().(io.ReadCloser); ok {
		fr.(stdflate.Resetter).Reset(&in.src, dict)
		in.fr = fr
	} else {
		in.fr = stdflate.NewReaderDict(&in.src, dict)
	}
	if bp != nil {
		putWriteBuf(bp)
	}
}

// idleSource is what pooled flate readers read from, so that they keep no
// Conn alive. Nothing reads it.
var idleSource = &inflateSource{}

// endInflateLocked returns the flate reader of a message that ended.
//
// The caller holds readMu.
func (c *Conn) endInflateLocked() {
	in := c.inflate
	if in.fr != nil {
		in.fr.(stdflate.Resetter).Reset(idleSource, nil)
		flateReaderPool.Put(in.fr)
		in.fr = nil
	}
}

// remember adds inflated bytes to the window ring.
func (in *inflater) remember(p []byte) {
	if in.window == nil {
		in.window = make([]byte, 1<<in.src.c.deflate.recvBits)
	}
	w := len(in.window)
	if len(p) >= w {
		copy(in.window, p[len(p)-w:])
		in.wpos, in.wfull = 0, true
		return
	}
	n := copy(in.window[in.wpos:], p)
	if n < len(p) {
		copy(in.window, p[n:])
		in.wfull = true
	}
	in.wpos += len(p)
	if in.wpos >= w {
		in.wpos -= w
		in.wfull = true
	}
}
