package websocket

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/rfc6455/websocket/internal/flate"
)

// Sending without waiting: Enqueue and EnqueuePrepared put a whole message
// in the connection's write queue and return; a goroutine of the queue's
// timer writes it. Broadcast fills many queues and has a few goroutines
// write them, each queue in one system call that never waits (the timer
// takes over what a full socket leaves). A PreparedMessage is encoded once for many
// connections, compressed once per window size however many receive it,
// with context takeover or without: a connection that keeps its
// compression context adds the message's text to its window (the peer's
// decoder holds it too) rather than compressing it again.

// Enqueue sends p as one message of type typ without waiting: it copies p
// into the connection's write queue and returns, the message going out as
// soon as the connection can write it, after the messages written before
// it. A message enqueued while another message is being written waits
// for that message's end, or for the close frame of a Close or CloseWrite
// called meanwhile, which it goes before; it is dropped if the close
// frame goes out while that message is open on the wire (Close while a
// Writer is open, or while a compressed Write is part way out): nothing
// may follow a close frame, and a message may not go between another's
// frames. If the queue has no room for it (see Buffered and
// AcceptOptions.WriteQueueLimit), Enqueue drops it and returns an error
// wrapping ErrQueueFull, or, with AcceptOptions.CloseOnQueueFull, fails
// the connection with StatusPolicyViolation: its close frame goes behind
// what is queued, and the connection is closed once the peer's close frame
// answers it (read as Close's is, by whatever reads the connection), or
// the close timeout passes. A message that the queue could not take even
// empty, larger than the limit less 14 bytes (the most a frame's header
// takes, which the queue counts for each message), is refused with
// ErrQueueFull either way: send it with Write.
//
// With compression negotiated, the message is compressed when the
// connection is not writing another message at that moment, and sent
// uncompressed otherwise, as RFC 7692 allows for any message. If writing
// fails later, the connection is closed, and its next call reports it.
func (c *Conn) Enqueue(typ MessageType, p []byte) error {
	if err := checkMessageType(typ); err != nil {
		return err
	}
	h := header{fin: true, op: opcode(typ)}
	if !c.msgMu.tryLock() {
		return c.enqueueFrame(h, p, false, nil)
	}
	if c.deflate == nil || len(p) < c.deflate.threshold || c.isClosed() {
		// (Closed, it is refused: no compressing first.)
		defer c.unlockMsg()
		return c.enqueueFrame(h, p, true, nil)
	}
	d := c.takeDeflater()
	out := deflateOutPool.Get().(*[]byte)
	z := (*out)[:0]
	var err error
	for q := p; len(q) > 0 && err == nil; {
		n := min(len(q), 4*compressedFrameSize)
		z = d.Append(z, q[:n])
		q = q[n:]
		if len(z) > int(c.queueLimit) {
			// Larger than the limit compressed, so refused whatever the
			// queue holds: compressing the rest would be work lost.
			err = errQueueFull
		}
	}
	if err == nil {
		z = d.Flush(z)
	}
	c.releaseDeflater(d)
	if err == nil {
		h.rsv = rsv1
		err = c.enqueueFrame(h, z[:len(z)-len(flate.FlushTail)], true, nil)
	}
	if err != nil && c.deflate.sendTakeover {
		// The compressor took in p, or part of it, the peer never will:
		// start afresh (a message that refers to no history decodes
		// whatever history the peer holds).
		d.Reset()
	}
	*out = z[:0]
	putDeflateOut(out)
	c.unlockMsg()
	return err
}

// PreparedMessage is a message encoded once for sending to many
// connections (see Broadcast): its payload, and its compressed form for
// each window size that the connections it is sent on compress with, made
// on first use. It is safe for concurrent use. Make it with
// NewPreparedMessage: a zero PreparedMessage, or a nil one, is refused by
// WritePrepared and EnqueuePrepared with an error, and Broadcast sends it
// to no connection.
type PreparedMessage struct {
	typ  MessageType
	data []byte
	comp [maxWindowBits - minWindowBits + 1]struct {
		once sync.Once
		p    []byte // the compressed payload, without the 00 00 ff ff tail
	}
}

// NewPreparedMessage prepares a message of type typ with payload data,
// which it copies.
func NewPreparedMessage(typ MessageType, data []byte) (*PreparedMessage, error) {
	if err := checkMessageType(typ); err != nil {
		return nil, err
	}
	return &PreparedMessage{typ: typ, data: append([]byte(nil), data...)}, nil
}

// errNotPrepared is what sending a PreparedMessage that NewPreparedMessage
// did not make returns: a nil one, or the zero value, which has no type.
var errNotPrepared = errors.New("websocket: write: the PreparedMessage was not made by NewPreparedMessage")

// check reports whether pm can be sent.
func (pm *PreparedMessage) check() error {
	if pm == nil || checkMessageType(pm.typ) != nil {
		return errNotPrepared
	}
	return nil
}

// compressed returns the payload compressed from no history with windows
// of 2^bits bytes, as any connection that compresses with those windows
// may send it, taking over its context or not.
func (pm *PreparedMessage) compressed(bits int) []byte {
	e := &pm.comp[bits-minWindowBits]
	e.once.Do(func() {
		d := pooledDeflater(bits)
		z := d.Flush(d.Append(nil, pm.data))
		poolDeflater(d, bits)
		e.p = z[:len(z)-len(flate.FlushTail)]
	})
	return e.p
}

// frameFor returns the header and payload pm goes out with on c, and
// whether c's compressor must remember its text. The caller holds msgMu
// when holdsMsgMu is set. Without it, pm goes out compressed only if c
// compresses each message on its own: with context takeover, its
// compressor, which another message holds, would have to remember pm's
// text in the order the messages go out.
func (pm *PreparedMessage) frameFor(c *Conn, holdsMsgMu bool) (header, []byte, bool) {
	h := header{fin: true, op: opcode(pm.typ)}
	p := c.deflate
	if p == nil || len(pm.data) < p.threshold || !holdsMsgMu && p.sendTakeover {
		return h, pm.data, false
	}
	h.rsv = rsv1
	return h, pm.compressed(p.sendBits), p.sendTakeover
}

// remember adds the text of a prepared message that went out compressed
// to the connection's compression context. The caller holds msgMu.
func (c *Conn) remember(data []byte) {
	d := c.takeDeflater()
	d.Remember(data)
	c.releaseDeflater(d)
}

// WritePrepared sends pm, as Write would send its payload, with the
// compression prepared once for every connection. It waits as Write does.
func (c *Conn) WritePrepared(ctx context.Context, pm *PreparedMessage) error {
	if err := pm.check(); err != nil {
		return err
	}
	if err := c.lockMsg(ctx, "write"); err != nil {
		return err
	}
	defer c.unlockMsg()
	h, p, remember := pm.frameFor(c, true)
	err := c.writeFrame(ctx, h, p, "write")
	if remember && err == nil {
		// An error means nothing went out, or the connection closed.
		c.remember(pm.data)
	}
	return err
}

// EnqueuePrepared sends pm without waiting, as Enqueue does. While the
// connection writes another message, pm goes out compressed all the same
// (its compressed form is made once) if the connection compresses each
// message on its own, and uncompressed, as Enqueue's message would, if it
// keeps its compression context.
func (c *Conn) EnqueuePrepared(pm *PreparedMessage) error {
	if err := pm.check(); err != nil {
		return err
	}
	return c.enqueuePrepared(pm, nil)
}

// enqueuePrepared is EnqueuePrepared; with flushes, a connection whose
// queue now needs writing joins flushes instead of having its timer
// write it (see enqueueFrame).
func (c *Conn) enqueuePrepared(pm *PreparedMessage, flushes *[]*Conn) error {
	if !c.msgMu.tryLock() {
		h, p, _ := pm.frameFor(c, false)
		return c.enqueueFrame(h, p, false, nil)
	}
	defer c.unlockMsg()
	h, p, remember := pm.frameFor(c, true)
	if err := c.enqueueFrame(h, p, true, flushes); err != nil {
		return err
	}
	if remember {
		c.remember(pm.data)
	}
	return nil
}

// Broadcast sends pm to every connection of conns without waiting for any
// (EnqueuePrepared), so that a slow or stalled receiver never holds up the
// others: a connection whose queue is full misses the message (or, with
// AcceptOptions.CloseOnQueueFull, is failed), and a closed one is skipped,
// as is a nil one. A message larger than a connection's queue limit less
// 14 bytes (as its frame goes out: compressed, if it is) is refused by
// that connection whatever its options, which fails nothing: with the
// default limit, one of over 512 KiB reaches no one, and goes out with
// WritePrepared. It returns how many connections took the message: none
// when pm was not made by NewPreparedMessage.
func (pm *PreparedMessage) Broadcast(conns ...*Conn) int {
	if pm.check() != nil {
		return 0
	}
	bp := flushListPool.Get().(*[]*Conn)
	flushes := (*bp)[:0]
	n := 0
	for _, c := range conns {
		if c != nil && c.enqueuePrepared(pm, &flushes) == nil {
			n++
		}
	}
	if len(flushes) == 0 {
		*bp = flushes
		flushListPool.Put(bp)
		return n
	}
	// A goroutine per flushPerGoroutine connections, at most one per CPU.
	workers := min(runtime.GOMAXPROCS(0), (len(flushes)+flushPerGoroutine-1)/flushPerGoroutine)
	per := (len(flushes) + workers - 1) / workers
	var left atomic.Int32
	left.Store(int32((len(flushes) + per - 1) / per))
	for i := 0; i < len(flushes); i += per {
		part := flushes[i:min(i+per, len(flushes))]
		go func() {
			for _, c := range part {
				c.flushQueueNow()
			}
			if left.Add(-1) == 0 {
				clear(flushes)
				*bp = flushes[:0]
				flushListPool.Put(bp)
			}
		}()
	}
	return n
}

// flushPerGoroutine is how many connections' queues a goroutine of
// Broadcast writes, at least: below it, another goroutine costs more
// than it saves.
const flushPerGoroutine = 128

var flushListPool = sync.Pool{New: func() any { return new([]*Conn) }}
