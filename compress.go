package websocket

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/rfc6455/websocket/internal/flate"
)

// CompressionMode selects permessage-deflate (RFC 7692), negotiated in the
// opening handshake when both sides want it.
type CompressionMode int

const (
	// CompressionDisabled negotiates no compression (the default).
	CompressionDisabled CompressionMode = iota
	// CompressionNoContextTakeover compresses each message on its own, in
	// both directions: no compression state outlives a message, so an
	// idle connection holds none.
	CompressionNoContextTakeover
	// CompressionContextTakeover keeps each direction's LZ77 window across
	// messages, as far as the peer allows: small, similar messages shrink
	// much better, at the cost of a window per direction per connection
	// (2^CompressionWindowBits bytes each).
	CompressionContextTakeover
)

// MarshalText returns the mode's short name: off, no-takeover or takeover.
func (m CompressionMode) MarshalText() ([]byte, error) {
	switch m {
	case CompressionDisabled:
		return []byte("off"), nil
	case CompressionNoContextTakeover:
		return []byte("no-takeover"), nil
	case CompressionContextTakeover:
		return []byte("takeover"), nil
	}
	return nil, fmt.Errorf("websocket: unknown compression mode %d", int(m))
}

// UnmarshalText parses a short name, so that a mode can come from a flag
// (flag.TextVar) or a configuration file.
func (m *CompressionMode) UnmarshalText(b []byte) error {
	switch string(b) {
	case "off":
		*m = CompressionDisabled
	case "no-takeover":
		*m = CompressionNoContextTakeover
	case "takeover":
		*m = CompressionContextTakeover
	default:
		return fmt.Errorf("websocket: compression mode %q is not off, no-takeover or takeover", b)
	}
	return nil
}

func (m CompressionMode) String() string {
	switch m {
	case CompressionDisabled:
		return "disabled"
	case CompressionNoContextTakeover:
		return "no context takeover"
	case CompressionContextTakeover:
		return "context takeover"
	}
	return "CompressionMode(" + strconv.Itoa(int(m)) + ")"
}

// deflaterPools hold deflaters without history, one pool per window size,
// for connections that compress without context takeover. A pooled
// deflater keeps its scratch, so that the next message pays nothing to
// set up.
var deflaterPools [maxWindowBits - minWindowBits + 1]sync.Pool

// deflateIdleDelay is how long a connection with context takeover goes
// without sending a compressed message before its compressor lets go of
// everything but its window. Setting up again costs a few microseconds
// and more, so a busy connection keeps it.
const deflateIdleDelay = 100 * time.Millisecond

// deflateIdleAtOnceBits is the largest window whose compressor idles at
// the end of every message instead. A window that small is chosen to
// save memory, and restoring it costs little: 3 us more per message at
// 2^10 when connections take turns with one scratch, against 23 us at
// 2^15 (BenchmarkWriterIdle in internal/flate, the /rebuild rows). Busy
// connections would otherwise each hold a scratch of about 100 KiB, which
// a quiet server keeps in its pool until a collection it may never run:
// 500 connections with a 2^10 window grew the server by 25.5 KiB each,
// and by 12.8 KiB once they idled at once (bench/cmd/compmem).
const deflateIdleAtOnceBits = 10

// takeDeflater returns the compressor for a message: the connection's own
// with context takeover, a pooled one without. The caller holds msgMu.
func (c *Conn) takeDeflater() *flate.Writer {
	p := c.deflate
	if p.def != nil {
		return p.def
	}
	if p.sendTakeover {
		p.def = flate.NewWriter(p.sendBits)
		return p.def
	}
	return pooledDeflater(p.sendBits)
}

// pooledDeflater returns a deflater without history for windows of 2^bits
// bytes; poolDeflater puts it back.
func pooledDeflater(bits int) *flate.Writer {
	if d, ok := deflaterPools[bits-minWindowBits].Get().(*flate.Writer); ok {
		return d
	}
	return flate.NewWriter(bits)
}

func poolDeflater(d *flate.Writer, bits int) {
	d.Reset()
	deflaterPools[bits-minWindowBits].Put(d)
}

// releaseDeflater puts away the compressor of a message that ended. The
// caller holds msgMu.
func (c *Conn) releaseDeflater(d *flate.Writer) {
	p := c.deflate
	if !p.sendTakeover {
		poolDeflater(d, p.sendBits)
		return
	}
	if c.isClosed() {
		// Nothing more goes out: the window is of no use.
		d.Release()
		p.def = nil
		return
	}
	if p.sendBits <= deflateIdleAtOnceBits {
		d.Idle()
		return
	}
	if p.defTimer == nil {
		// Started far off and reset below, so that idleDeflater, which
		// reads p.defTimer, cannot run before it is set.
		p.defTimer = time.AfterFunc(math.MaxInt64, c.idleDeflater)
	}
	p.defTimer.Reset(deflateIdleDelay)
}

// idleDeflater shrinks the compressor of a connection that has gone quiet
// to its window. If a message is being written, it tries again later: a
// message that compresses nothing would not rearm the timer, and the
// compressor would keep its working state until the next one that does.
// Once the connection is closed, it tries no more.
func (c *Conn) idleDeflater() {
	p := c.deflate
	if !c.msgMu.tryLock() {
		if !c.isClosed() {
			p.defTimer.Reset(deflateIdleDelay)
		}
		return
	}
	if p.def != nil {
		p.def.Idle()
	}
	c.unlockMsg()
}

// releaseCompression lets go of the compression state of a connection
// that closed: its compressor's window and scratch, and its decompressor's
// history and working state, which no message will use. What a message
// writer or a reader holds under its lock at that moment is let go by it
// (releaseClosedDeflater, readRelease).
func (c *Conn) releaseCompression() {
	if c.deflate == nil {
		return
	}
	if c.msgMu.tryLock() {
		c.releaseClosedDeflater()
		c.msgMu.unlock()
	}
	if c.readMu.tryLock() {
		c.releaseInflateLocked()
		c.readMu.unlock()
	}
}

// releaseClosedDeflater drops the compressor of a closed connection,
// which releaseCompression leaves to the holder of msgMu when it finds it
// held (a Writer left open, an Enqueue at work). The caller holds msgMu.
func (c *Conn) releaseClosedDeflater() {
	if p := c.deflate; p != nil && p.def != nil && c.isClosed() {
		p.def.Release()
		p.def = nil
	}
}

// releaseInflateLocked drops the decompressor's state once the connection
// is closed. The caller holds readMu.
func (c *Conn) releaseInflateLocked() {
	if in := c.inflate; in != nil {
		in.open = false
		in.fr.Release()
	}
}
