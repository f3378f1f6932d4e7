package websocket

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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
		// Between a message's frames, the pong is queued, and
		// written by the reader from nextDataFrameLocked, once
		// errPongQueued has taken it there: written from here, under
		// the message's read, it would take a handler waiting in Read
		// past a 4 KiB stack (TestStackRoom).
		//
		// With more input buffered (a flood of pings read at once), the
		// pong joins the queue, as frames written while the reader holds
		// input do, and goes out with the others before the reader waits
		// (beforeWaitLocked), or by the queue's timer: one write for
		// them all rather than a system call per ping.
		var queued bool
		var err error
		atHand := !c.rb.isEmpty()
		if atHand && !c.inputPending.Load() {
			c.inputPending.Store(true)
		}
		switch {
		case c.msgOpen:
			queued, err = c.queueFrame(header{fin: true, op: opPong}, payload, "pong", !atHand)
		case !atHand && ctx.Done() != nil:
			// A blocking write that the end of the read's context cut
			// short would close the connection, which a read whose
			// context ends leaves usable: the pong joins the queue and
			// goes as the socket takes it at once, the rest by the
			// queue's timer (as beforeWaitLocked has the queue go). A
			// queue full to its limit, of a peer that reads nothing,
			// holds the pong back until its writer is done
			// (pongInTurn), so that a flood of pings is not read
			// faster than its pongs go.
			if queued, err = c.queueFrame(header{fin: true, op: opPong}, payload, "pong", true); queued && err == nil {
				c.flushQueueNow()
				return nil
			}
		}
		switch {
		case !queued && err == nil && c.failFullForPong(len(payload)):
			// The queue is full, of a peer that reads too slowly: the
			// connection fails with 1008, its close frame queued, and no
			// pong may follow it.
			return nil
		case !queued && ctx.Done() != nil:
			err = c.pongInTurn(ctx, payload)
		case !queued:
			err = c.writeControl(ctx, opPong, payload, "pong")
		case err == nil:
			return errPongQueued
		}
		if err != nil && !errors.Is(err, ErrClosed) {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				// The pong waited, the queue full, for a writer at work
				// until ctx ended: queue it past the limit (it is small)
				// for that writer or the timer to send, and let the
				// read end as any read whose context ends.
				c.pendMu.Lock()
				// One pong past the limit at most: a peer that reads
				// nothing, and pings each time a Read's context ends
				// while a writer is stuck on it, would grow the queue
				// without bound. RFC 6455 §5.5.3 lets a pong answer only
				// the latest of the pings not answered yet: the pong
				// queued past the limit last gives way to this one, a
				// peer whose keepalive waits for its newest ping's
				// payload (python-websockets) would miss it otherwise.
				if c.writableLocked("pong") == nil {
					held := c.bufferedLocked()
					if at := lastPong(c.pend); held > int(c.queueLimit) && at >= 0 {
						*c.pend = (*c.pend)[:at]
						held = c.bufferedLocked()
					}
					if held <= int(c.queueLimit) {
						c.pushLocked(header{fin: true, op: opPong}, payload)
						if !c.flusher {
							c.armFlushTimerLocked(0)
						}
					}
				}
				c.pendMu.Unlock()
			}
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

// pongInTurn sends a pong owed by a read whose context can end, that
// found the write queue full, without writing it under that context:
// a write that the context's end cut short would close the connection
// (over TLS, whose writes cannot resume), which a read whose context ends
// leaves usable. The pong waits, under ctx, for the frame lock, which
// the writer at work on the queue holds until it has written it all, so
// that a flood of pings is read no faster than their pongs go; then it
// joins the queue, past its limit if it must (by one frame: the next
// pong waits for the lock again), and a writer of the queue's, under no
// context, writes it all.
func (c *Conn) pongInTurn(ctx context.Context, payload []byte) error {
	if queued, err := c.queueFrame(header{fin: true, op: opPong}, payload, "pong", false); queued {
		return err
	}
	if err := c.lock(ctx, &c.frameMu, "pong"); err != nil {
		return err
	}
	c.pendMu.Lock()
	if err := c.writableLocked("pong"); err != nil {
		c.refuseUnlock(ctx)
		return err
	}
	c.pushLocked(header{fin: true, op: opPong}, payload)
	c.flusher = true
	c.pendMu.Unlock()
	go c.flushUnlock(context.Background())
	return nil
}

// lastPong returns where the last frame in the queue pend starts if it
// is a pong, else -1.
func lastPong(pend *[]byte) int {
	if pend == nil {
		return -1
	}
	last, op := -1, opcode(0)
	for b, at := *pend, 0; at < len(b); {
		var h header
		n, err := h.parse(b[at:])
		if n == 0 || err != nil {
			return -1
		}
		last, op = at, h.op
		at += n + int(h.length)
	}
	if op != opPong {
		return -1
	}
	return last
}

// writeControl sends a ping or pong frame.
func (c *Conn) writeControl(ctx context.Context, op opcode, payload []byte, name string) error {
	return c.writeFrame(ctx, header{fin: true, op: op}, payload, name)
}

// Ping sends a ping and waits for its pong. If ctx ends first, Ping
// returns its error and the connection stays usable (as Write's does: not
// over TLS when the ping's write to the network had begun). The pong of a
// later ping, keepalive's included, answers it too: RFC 6455 §5.5.3 lets
// a peer answer only the latest of the pings it has.
//
// The pong is read by whatever reads the connection: a Read in progress,
// or Serve. When nothing does, Ping reads it itself, acting on the control
// frames that come first. A data message that comes before the pong is
// left for the next Read, and once that Read has taken it, Ping reads on
// if nothing else does; so does a Ping whose pong a Read in progress did
// not see before it returned.
// Under Serve, a Ping called from onMessage finds the connection's reading
// paused; it reads the pong itself likewise, but a message that comes
// before the pong can only be read once onMessage returns, so Ping then
// fails at once, with an error that says so, rather than wait for ctx.
//
// Keepalive (AcceptOptions.KeepaliveInterval) pings on its own; Ping is
// for measuring a round trip, or checking the peer at a moment of the
// caller's choosing.
//
// In a browser (GOOS=js), Ping fails at once with an error wrapping
// errors.ErrUnsupported: a page cannot send pings.
func (c *Conn) Ping(ctx context.Context) error {
	if c.tr.browser {
		return errNoPing
	}
	if err := ctx.Err(); err != nil {
		return opErr("ping", err) // rather than the write's own
	}
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
	if err := c.awaitPong(ctx, ch); err != nil {
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

// errNoPing is what Ping returns on a transport that cannot send pings.
var errNoPing = fmt.Errorf("websocket: ping: a browser's WebSocket cannot send pings; the browser answers the server's pings itself (%w)", errors.ErrUnsupported)

// errPingBehindMessage fails a Ping made while Serve's onMessage runs,
// when a message came before the pong.
var errPingBehindMessage = errors.New("websocket: ping: a message came before the pong, and Serve reads it only once onMessage returns")

// awaitPong reads the answer to a Ping when nothing else reads the
// connection, until ch is closed by the pong, or a data message is next.
// The pong is left to a reader at work, and behind a message, to the
// Read that takes the message; but when that reader lets go of the
// connection without having seen the pong (a Read that returns the
// message sent before it, and no Read after), awaitPong tries again.
func (c *Conn) awaitPong(ctx context.Context, ch <-chan struct{}) error {
	var left <-chan struct{}
	for {
		if c.readMu.tryLock() {
			var err error
			if left, err = c.readPongLocked(ctx, ch); left == nil {
				return err
			}
		} else if left == nil {
			// A reader is at work. Ask it to wake us when it lets go,
			// then try once more: it may have let go before it could
			// see the request.
			left = c.deferPing()
			continue
		}
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return nil // Ping reports it
		case <-left:
			left = nil
		}
	}
}

// readPongLocked is awaitPong's read, made holding readMu, which it lets
// go. When a message must be read before the pong, by a Read or by the
// Reader whose message is open, it returns the channel that wakes Ping
// once that reader lets go of the connection (deferPing).
func (c *Conn) readPongLocked(ctx context.Context, ch <-chan struct{}) (<-chan struct{}, error) {
	if s := c.srv.Load(); s != nil && !s.inCallback.Load() {
		// Serve reads the pong, and what comes with it: a read of ours
		// could take a message from under a parked connection. Asked
		// under the read lock, so that Serve cannot go from onMessage to
		// its wait between the question and the read: while this read
		// holds the lock, Serve's wait ends at once and its read waits
		// for the lock, then serves what was left.
		c.readMu.unlock()
		return nil, nil
	}
	if c.isClosed() {
		c.readUnlock()
		return nil, nil // closeTransport closed ch
	}
	err := errScanData
	if !c.msgOpen {
		err = c.awaitControlLocked(ctx, func() bool {
			select {
			case <-ch:
				return true
			default:
				return false
			}
		})
	}
	if err == errScanData {
		if s := c.srv.Load(); s != nil && s.inCallback.Load() {
			c.readUnlock()
			return nil, errPingBehindMessage
		}
		// Asked for before the lock goes, and without waking ourselves,
		// so that no reader can come and go unseen in between.
		left := c.deferPing()
		c.readRelease()
		return left, nil
	}
	c.readUnlock()
	if err != nil && ctx.Err() != nil {
		return nil, opErr("ping", ctx.Err())
	}
	// Otherwise the pong came, or the read ended the connection (the
	// peer's close, or a violation), which closed ch: the caller reports
	// it.
	return nil, nil
}

// deferPing returns a channel that readUnlock closes when the reader at
// work lets go of the connection, for a Ping that leaves its pong to that
// reader.
func (c *Conn) deferPing() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pings.readerLeft == nil {
		c.pings.readerLeft = make(chan struct{})
	}
	c.pingDeferred.Store(true)
	return c.pings.readerLeft
}

// wakeDeferredPings wakes the Pings that left their pongs to a reader
// that has now let go (deferPing).
func (c *Conn) wakeDeferredPings() {
	c.mu.Lock()
	if c.pingDeferred.Load() {
		c.pingDeferred.Store(false)
		close(c.pings.readerLeft)
		c.pings.readerLeft = nil
	}
	c.mu.Unlock()
}

// pingWaits are the Pings waiting for their pongs, by the number each sent
// as its payload (gotPong wakes those numbered up to a pong's).
type pingWaits struct {
	seq        uint64
	keepalive  uint64                   // seq as keepalive's last ping went out, 0 once its pong came
	waiting    map[uint64]chan struct{} // closed by gotPong, or by closeTransport
	readerLeft chan struct{}            // made by deferPing, closed by wakeDeferredPings
}

// gotPong wakes the Ping that sent the payload p, if any, and every
// Ping numbered before it: RFC 6455 §5.5.3 lets a peer that has several
// pings to answer send a pong for "only the most recently processed Ping
// frame", so the pong of a later ping answers the earlier ones too. (Two
// Pings at once may reach the wire in the other order than their
// numbers; the earlier-numbered one then ends with the pong of a ping
// sent just before its own, from a peer shown alive since it began.)
// An empty pong answers keepalive's latest ping, and so the Pings
// numbered before it went out.
func (c *Conn) gotPong(p []byte) {
	if len(p) != 8 && len(p) != 0 {
		return
	}
	c.mu.Lock()
	var id uint64
	if len(p) == 8 {
		id = binary.BigEndian.Uint64(p)
	} else if c.pings != nil {
		id, c.pings.keepalive = c.pings.keepalive, 0
	}
	// Once the connection is marked closed, closeTransport closes (or
	// has closed) every channel still waiting, which Ping's forget tells
	// from a pong by the entry left in: a pong read from what was
	// buffered by then must not close it again.
	if c.pings != nil && !c.isClosed() && id <= c.pings.seq {
		for n, ch := range c.pings.waiting {
			if n <= id {
				delete(c.pings.waiting, n)
				close(ch)
			}
		}
	}
	c.mu.Unlock()
}
