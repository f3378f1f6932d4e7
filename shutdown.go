package websocket

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Registry keeps the connections a server accepted, so that it can close
// them all when it shuts down: http.Server.Shutdown knows nothing of
// hijacked connections, nor of WebSockets over HTTP/2 streams, whose
// handlers it would wait for without telling the peers anything. Set
// AcceptOptions.Registry, and shut down with:
//
//	reg := new(websocket.Registry)
//	srv.RegisterOnShutdown(func() { reg.Shutdown(context.Background()) })
//	...
//	srv.Shutdown(ctx) // refuses new connections; starts reg's shutdown
//	reg.Shutdown(ctx) // waits for it: every WebSocket told and closed
//
// The zero value is ready to use. It is safe for concurrent use.
type Registry struct {
	// Reason is sent with StatusGoingAway in the close frames of a
	// shutdown, cut to fit; "" (or a Reason that is not UTF-8) means
	// "server shutting down".
	Reason string

	mu       sync.Mutex
	conns    map[*Conn]struct{}
	shutting bool          // Shutdown began: Accept refuses with 503
	pending  int           // handshakes let in (reserve) and not yet registered (add) or failed (release)
	empty    chan struct{} // closed once shutting and no connection or handshake is left
}

const defaultShutdownReason = "server shutting down"

// reason is what the close frames of a shutdown say, cut to fit: Reason,
// or the default one for an empty Reason or one that is not UTF-8.
func (r *Registry) reason() string {
	if r.Reason == "" || !utf8.ValidString(r.Reason) {
		return defaultShutdownReason
	}
	return fitReason(r.Reason)
}

// Len returns how many connections the registry holds: accepted and not
// yet closed.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// reserve lets a handshake in, reporting false when Accept must refuse
// it: a shutdown began. A handshake let in is waited for by Shutdown
// until add or release ends it, so that a connection it makes is told
// and closed before Shutdown returns.
func (r *Registry) reserve() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutting {
		return false
	}
	r.pending++
	return true
}

// release ends a handshake let in by reserve that made no connection.
func (r *Registry) release() {
	r.mu.Lock()
	r.pending--
	r.signalLocked()
	r.mu.Unlock()
}

// add takes in the connection of a handshake let in by reserve,
// reporting false when a shutdown began meanwhile: the caller then closes
// it, and the shutdown waits for it as for the others.
func (r *Registry) add(c *Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending--
	if r.conns == nil {
		r.conns = make(map[*Conn]struct{})
	}
	r.conns[c] = struct{}{}
	return !r.shutting
}

// remove lets go of a connection that closed.
func (r *Registry) remove(c *Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.signalLocked()
	r.mu.Unlock()
}

// signalLocked closes empty once a shutdown has nothing left to wait for.
//
// The caller holds r.mu.
func (r *Registry) signalLocked() {
	if r.shutting && len(r.conns) == 0 && r.pending == 0 {
		select {
		case <-r.empty:
		default:
			close(r.empty)
		}
	}
}

// Shutdown closes every connection of the registry gracefully: from the
// moment it is called, Accept refuses new WebSockets with 503 Service
// Unavailable; each connection is sent a close frame with
// StatusGoingAway and Reason, behind what was written to it before, and
// is closed once its peer answers, as CloseWrite would have it (a Read in
// progress, or Serve, returns the peer's close; a connection nobody reads
// is closed when its close timeout passes). A handshake already past that
// refusal completes, and its connection is closed in the same way, Accept
// returning an error. Shutdown waits for all of
// them, or until ctx ends: it then closes the rest without waiting and
// returns ctx's error. It returns nil once every connection has closed;
// the onClose of a connection given to Serve may be running still (a
// program that must wait for those counts them itself: were Shutdown to
// wait for them, one called from an onClose would wait for itself).
// With a ctx that has ended already, the close frames still go out first
// on plain TCP connections; over TLS or HTTP/2 they may not.
// Calling it again waits again.
func (r *Registry) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	first := !r.shutting
	if first {
		r.shutting = true
		r.empty = make(chan struct{})
	}
	conns := make([]*Conn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.signalLocked()
	empty := r.empty
	r.mu.Unlock()
	if first {
		// The close frames are queued and written without waiting, as
		// Broadcast writes: on a plain socket, each is on the wire (or
		// in its queue, behind a full socket or a writer at work) before
		// Shutdown goes on, even with a ctx that has ended already; over
		// TLS or HTTP/2, the queue's timer writes it, which a ctx that
		// has ended may not leave time for.
		ce, payload := r.goingAway()
		var flushes []*Conn
		for _, c := range conns {
			c.queueGoingAway(ce, payload, &flushes)
		}
		for _, c := range flushes {
			c.flushQueueNow()
		}
	}
	select {
	case <-empty:
		return nil
	default:
	}
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
	}
	r.mu.Lock()
	conns = conns[:0]
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.signalLocked()
	r.mu.Unlock()
	for _, c := range conns {
		// A close frame still waiting goes first, before the connection
		// is closed.
		c.goingAwayNow()
	}
	for _, c := range conns {
		if c.tr.serverStream() {
			// Closing waits for a write under way on a server's HTTP/2
			// stream, which a socket that takes nothing holds until
			// its connection ends (stream.quiesce).
			go c.CloseNow()
			continue
		}
		c.CloseNow()
	}
	select {
	case <-empty:
		if len(conns) == 0 {
			// Emptied as ctx ended: nothing was left to close.
			return nil
		}
	default:
	}
	return ctx.Err()
}

// goingAway returns the close of a shutdown, StatusGoingAway and its
// reason, and its payload.
func (r *Registry) goingAway() (CloseError, []byte) {
	ce := CloseError{StatusGoingAway, r.reason()}
	return ce, mustClosePayload(ce.Code, ce.Reason)
}

// queueGoingAway starts the closing handshake of a shutdown as CloseWrite
// would, without waiting: the close frame of ce, payload, goes in the write
// queue behind what is queued there (as a full queue's does, see
// failFullLocked), or, when Enqueue holds messages back for the message
// being written, behind those, as they join the queue; and the connection
// is closed once the peer answers it or the close timeout passes. A
// connection that has ended, or is ending on a close of its own, is left
// as it is. When the queue needs writing, c joins flushes.
func (c *Conn) queueGoingAway(ce CloseError, payload []byte, flushes *[]*Conn) {
	c.pendMu.Lock()
	behind := c.backlog.Load() != nil
	in := intentQueued
	if behind {
		in = intentBehind
	}
	if c.writableLocked("close") != nil || !c.setFirstEnd(ce, in) {
		c.pendMu.Unlock()
		return
	}
	if behind {
		// Messages that Enqueue or Broadcast took wait for the message
		// being written (msgMu): the close frame goes behind them, when
		// they join the queue as msgMu is let go (joinBacklogLocked),
		// or after half the close timeout without them (a Writer's
		// message may stay open), leaving the peer the other half to
		// answer.
		c.pendMu.Unlock()
		c.armGoingAwayTimeout()
		if c.msgMu.tryLock() {
			// Its holder let go after the look above.
			c.unlockMsg()
		}
		return
	}
	c.closeSent = true
	c.pushLocked(header{fin: true, op: opClose}, payload)
	if !c.flusher {
		*flushes = append(*flushes, c)
	}
	c.pendMu.Unlock()
	c.armCloseTimeout()
}

// armGoingAwayTimeout bounds the closing handshake of a shutdown whose
// close frame waits for the backlog, as armCloseTimeout does, with one
// timer that first, at half the close timeout, queues the frame
// (goingAwayNow), then closes the connection at its end. Being the close
// timer, it is stopped when the connection closes: a timer of its own,
// never stopped, kept the ended Conn reachable for half the close timeout.
func (c *Conn) armGoingAwayTimeout() {
	half := c.closeTimeout / 2
	var late atomic.Bool
	var t *time.Timer
	// Started far off and reset below, so that the function, which
	// reads t, cannot run before it is set.
	t = time.AfterFunc(math.MaxInt64, func() {
		if late.Swap(true) {
			c.closeTransport(errCloseTimeout)
			return
		}
		t.Reset(c.closeTimeout - half)
		if c.closing.Load() {
			// Closing stopped the timer before this Reset: nothing is
			// left to do, and the timer may not hold the Conn.
			t.Stop()
			return
		}
		c.goingAwayNow()
	})
	t.Reset(half)
	c.setCloseTimer(t)
}

// goingAwayNow queues a shutdown's close frame still waiting for the
// backlog (intentBehind) at once, and has it written: the message the
// backlog waits for may never end. The backlog goes first when no part
// of that message is on the wire (backlogBeforeCloseLocked); otherwise,
// as it cannot go in the middle of the message, it is dropped, as behind
// any close frame sent while a message was open.
func (c *Conn) goingAwayNow() {
	c.pendMu.Lock()
	if c.writableLocked("close") != nil {
		c.pendMu.Unlock()
		return
	}
	moved := c.backlogBeforeCloseLocked()
	if !c.queueBehindCloseLocked() && !moved {
		c.pendMu.Unlock()
		return
	}
	if b := c.backlog.Swap(nil); b != nil {
		putPend(b)
	}
	c.pendMu.Unlock()
	c.flushQueueNow()
}
