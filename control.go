package websocket

import (
	"context"
	"encoding/binary"
	"errors"
)

// controlLocked acts on a control frame (RFC 6455 §5.5).
//
// The caller holds readMu.
func (c *Conn) controlLocked(ctx context.Context, op opcode, payload []byte) error {
	switch op {
	case opPing:
		// §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
		// Pong frame in response, unless it already received a Close
		// frame." Once our close is sent, no frame may follow it.
		err := c.writeControl(ctx, opPong, payload, "pong")
		if err != nil && !errors.Is(err, ErrClosed) {
			return err
		}
		return nil
	case opPong:
		c.gotPong(payload)
		return nil
	default:
		return c.gotCloseLocked(payload)
	}
}

// writeControl sends a ping or pong frame.
func (c *Conn) writeControl(ctx context.Context, op opcode, payload []byte, name string) error {
	return c.writeFrame(ctx, header{fin: true, op: op}, payload, name)
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
		return opErr("ping", ctx.Err())
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
