package websocket

// This file holds the two primitives that let a context end a blocked call
// without ending the connection: ctxMutex, a lock whose waiters give up when
// their context ends or the connection closes, and ctxWatch, which
// interrupts a blocked read or write on the transport.

import (
	"context"
	"sync"
	"time"
)

// lock takes mu for op, giving up when ctx ends or the connection closes.
func (c *Conn) lock(ctx context.Context, mu *ctxMutex, op string) error {
	switch mu.lock(ctx.Done()) {
	case lockTaken:
		return nil
	case lockCanceled:
		c.afterPassOn(mu)
		return opErr(op, ctx.Err())
	}
	return c.closedErr(op)
}

// afterPassOn does for mu what its holders do as they let go, for a
// waiter whose context ended: one handed the lock as it gave up passes it
// on (ctxMutex.lock) without doing so, and whoever left work to the
// holder (the timer that found the frame lock taken, an Enqueue that
// found the message lock taken, a Ping waiting for the reader to let go)
// would wait on. A waiter never handed the lock finds it done already,
// or arms what would have run anyway.
func (c *Conn) afterPassOn(mu *ctxMutex) {
	switch mu {
	case &c.frameMu:
		c.armIfUnwritten()
	case &c.msgMu:
		if c.backlog.Load() != nil && c.msgMu.tryLock() {
			c.unlockMsg()
		}
	case &c.readMu:
		if c.pingDeferred.Load() {
			c.wakeDeferredPings()
		}
	}
}

// ctxMutex is a lock whose waiters give up when their context ends or the
// connection closes. It is three words while nobody waits; a waiter takes
// a pooled entry in a queue, and unlock hands the lock to the first one.
type ctxMutex struct {
	mu     sync.Mutex
	held   bool
	closed bool // the connection closed: waiters give up
	// last is the newest waiter, nil when none wait; the queue is a ring,
	// last.next being the oldest.
	last *lockWaiter
}

// lockWaiter is a goroutine waiting in a ctxMutex's queue. ch receives
// exactly one value while the entry is queued: true when the lock is handed
// over, false when the connection closed.
type lockWaiter struct {
	ch   chan bool
	next *lockWaiter
}

var lockWaiters = sync.Pool{New: func() any { return &lockWaiter{ch: make(chan bool, 1)} }}

// Results of ctxMutex.lock.
const (
	lockTaken = iota
	lockCanceled
	lockClosed
)

// tryLock takes the lock if it is free.
func (l *ctxMutex) tryLock() bool {
	l.mu.Lock()
	ok := !l.held
	l.held = true
	l.mu.Unlock()
	return ok
}

// lock takes the lock, waiting until it is free, done is closed, or the
// connection closes. A free lock is taken even once the connection closed.
func (l *ctxMutex) lock(done <-chan struct{}) int {
	l.mu.Lock()
	if !l.held {
		l.held = true
		l.mu.Unlock()
		return lockTaken
	}
	if l.closed {
		l.mu.Unlock()
		return lockClosed
	}
	w := lockWaiters.Get().(*lockWaiter)
	if l.last == nil {
		w.next = w
	} else {
		w.next, l.last.next = l.last.next, w
	}
	l.last = w
	l.mu.Unlock()
	result := lockClosed
	select {
	case taken := <-w.ch:
		if taken {
			result = lockTaken
		}
	case <-done:
		result = lockCanceled
		l.mu.Lock()
		queued := l.remove(w)
		l.mu.Unlock()
		if !queued && <-w.ch {
			// Handed the lock as done closed: pass it on.
			l.unlock()
		}
	}
	lockWaiters.Put(w)
	return result
}

// remove takes w out of the queue, reporting whether it was there.
func (l *ctxMutex) remove(w *lockWaiter) bool {
	if l.last == nil {
		return false
	}
	prev := l.last
	for {
		p := prev.next
		if p == w {
			break
		}
		if p == l.last {
			return false
		}
		prev = p
	}
	switch {
	case w.next == w:
		l.last = nil
	case w == l.last:
		l.last = prev
		fallthrough
	default:
		prev.next = w.next
	}
	w.next = nil
	return true
}

// unlock releases the lock, or hands it to the first waiter.
func (l *ctxMutex) unlock() {
	l.mu.Lock()
	if l.last == nil {
		l.held = false
		l.mu.Unlock()
		return
	}
	w := l.last.next
	l.remove(w)
	l.mu.Unlock()
	w.ch <- true
}

// close wakes every waiter with lockClosed and makes later waits fail at
// once.
func (l *ctxMutex) close() {
	l.mu.Lock()
	l.closed = true
	for l.last != nil {
		w := l.last.next
		l.remove(w)
		w.ch <- false
	}
	l.mu.Unlock()
}

// ctxWatch lets the end of a context interrupt a blocked read or write:
// it moves the transport's deadline into the past, or, on a transport
// without deadlines, closes the connection. It keeps watching the same
// context across calls, so a long-lived context costs one registration,
// not one per message; and reads and writes with the same context (a
// handler's r.Context(), say) share one registration, which is a few
// hundred bytes of the context's.
type ctxWatch struct {
	mu   sync.Mutex
	c    *Conn
	gen  uint64      // numbers the registrations, so that a late callback can tell it is stale
	dirs [2]watchDir // watchRead, watchWrite
	dead bool        // the connection is closed: watch nothing more
}

// The directions of a ctxWatch.
const (
	watchRead  = 0
	watchWrite = 1
)

// watchDir is what one direction of a ctxWatch watches.
type watchDir struct {
	done   <-chan struct{} // Done of the context watched, nil when none
	stop   func() bool     // ends the registration this direction holds, nil when none
	id     uint64          // the number of that registration
	fired  bool            // the deadline was moved into the past
	shared bool            // done is the other direction's too, and its registration serves both
}

// hasDeadline reports whether the transport has deadlines to move.
func (w *ctxWatch) hasDeadline() bool { return w.c.tr.dl != nil }

func (w *ctxWatch) setDeadline(dir int, t time.Time) {
	if dir == watchWrite {
		w.c.tr.dl.SetWriteDeadline(t)
	} else {
		w.c.tr.dl.SetReadDeadline(t)
	}
}

var longAgo = time.Unix(1, 0)

// watch arranges for the end of ctx to interrupt the transport in the
// direction dir.
func (w *ctxWatch) watch(dir int, ctx context.Context) {
	d := ctx.Done()
	w.mu.Lock()
	wd := &w.dirs[dir]
	if d == wd.done || w.dead {
		w.mu.Unlock()
		return
	}
	w.unwatchLocked(dir)
	if d != nil {
		wd.done = d
		if o := &w.dirs[1-dir]; o.done == d {
			// The other direction holds a registration for d: it is
			// never shared itself, since unwatchLocked hands a shared
			// registration over.
			wd.shared = true
			if o.fired {
				// d ended already: the registration will not fire again.
				wd.fired = true
				if w.hasDeadline() {
					w.setDeadline(dir, longAgo)
				}
			}
		} else {
			w.gen++
			id := w.gen
			wd.id = id
			if w.hasDeadline() {
				wd.stop = context.AfterFunc(ctx, func() { w.fire(d, id, nil) })
			} else {
				// The end of ctx ends the connection, whose end says
				// why when ctx is the library's own (closeCause).
				wd.stop = context.AfterFunc(ctx, func() { w.fire(d, id, ctx) })
			}
		}
	}
	w.mu.Unlock()
}

// fire runs when the context of registration id, whose Done is d, ends: it
// interrupts every direction watching d. On a transport without
// deadlines it closes the connection, ctx being the context.
func (w *ctxWatch) fire(d <-chan struct{}, id uint64, ctx context.Context) {
	w.mu.Lock()
	live := false
	for i := range w.dirs {
		live = live || w.dirs[i].stop != nil && w.dirs[i].id == id
	}
	if !live || w.dead {
		w.mu.Unlock()
		return
	}
	writing := false
	for i := range w.dirs {
		if wd := &w.dirs[i]; wd.done == d {
			wd.fired = true
			writing = writing || i == watchWrite
			if w.hasDeadline() {
				w.setDeadline(i, longAgo)
			}
		}
	}
	w.mu.Unlock()
	if !w.hasDeadline() {
		w.c.closeCause(ctx, writing)
	}
}

// closeCause closes a connection on a transport without deadlines when
// ctx, the context of a blocked call, ends, writing set if a write was
// blocked. The end names the call and the context's error, as a cut write
// on a socket does (writeErrLocked); the library's own contexts say what
// ran out rather than naming a context the caller never passed.
func (c *Conn) closeCause(ctx context.Context, writing bool) {
	switch cause := context.Cause(ctx); {
	case cause == errCloseTimeout:
		c.closeTransport(errCloseTimeout)
	case cause == errPingTimeout && writing:
		c.closeTransport(opErr("write", errPingTimeout))
	case cause == errPingTimeout && c.ka != nil:
		// The keepalive read for the ping's answer, which did not come
		// within the timeout: the peer is silent, unless a close frame
		// went out meanwhile, whose handshake the read goes on with.
		c.failKeepalive(clock() - c.ka.last())
	default:
		op := "read"
		if writing {
			op = "write"
		}
		why := ctx.Err()
		if cause == errNetDeadline {
			why = cause // a NetConn's deadline (netDeadline)
		}
		end := opErr(op, &cutError{why, ", which closes a transport without deadlines", ctx.Done()})
		if !writing && c.tr.cutInput(end) {
			// A server's HTTP/2 stream, whose write side is free: the
			// reader, woken, sends a close frame before closing
			// (readErrLocked).
			return
		}
		c.closeTransport(end)
	}
}

// unwatchLocked stops dir's watch, clearing a deadline it set. A
// registration the other direction shares becomes the other's.
//
// The caller holds w.mu.
func (w *ctxWatch) unwatchLocked(dir int) {
	wd := &w.dirs[dir]
	if wd.fired && w.hasDeadline() {
		w.setDeadline(dir, time.Time{})
	}
	if wd.stop != nil {
		if o := &w.dirs[1-dir]; o.shared {
			o.stop, o.id, o.shared = wd.stop, wd.id, false
		} else {
			wd.stop()
		}
	}
	*wd = watchDir{}
}

// release ends a call's watch on a transport without deadlines, where a
// context that ends after the call must not close the connection. With
// deadlines, the watch stays for the next call with the same context.
func (w *ctxWatch) release(dir int) {
	if !w.hasDeadline() {
		w.pause(dir)
	}
}

// pause stops watching in direction dir, so that the caller may set
// deadlines of its own.
func (w *ctxWatch) pause(dir int) {
	w.mu.Lock()
	w.unwatchLocked(dir)
	w.mu.Unlock()
}

// watch has the end of ctx interrupt the transport in direction dir
// (ctxWatch.watch). The connection's ctxWatch is made for the first
// context that can end: a connection that never sees one, Serve's or one
// read and written with context.Background, goes without its 96 bytes.
func (c *Conn) watch(dir int, ctx context.Context) {
	w := c.watches.Load()
	if w == nil {
		if ctx.Done() == nil {
			return
		}
		w = &ctxWatch{c: c}
		if !c.watches.CompareAndSwap(nil, w) {
			w = c.watches.Load() // the other direction's, or deadWatch
		}
	}
	w.watch(dir, ctx)
}

// releaseWatch is ctxWatch.release, for a connection that has a watch.
func (c *Conn) releaseWatch(dir int) {
	if w := c.watches.Load(); w != nil && w != deadWatch {
		w.release(dir)
	}
}

// pauseWatch is ctxWatch.pause, for a connection that has a watch.
func (c *Conn) pauseWatch(dir int) {
	if w := c.watches.Load(); w != nil && w != deadWatch {
		w.pause(dir)
	}
}

// killWatch stops the connection's watch for good, and has every later
// watch do nothing: a watch made while it runs is either the one it
// kills, or finds deadWatch in its place.
func (c *Conn) killWatch() {
	if w := c.watches.Swap(deadWatch); w != nil && w != deadWatch {
		w.kill()
	}
}

// deadWatch stands for the watch of every closed connection: it watches
// nothing.
var deadWatch = &ctxWatch{dead: true}

// kill stops watching for good; called when the connection closes.
func (w *ctxWatch) kill() {
	w.mu.Lock()
	if !w.dead {
		w.dead = true
		for i := range w.dirs {
			if stop := w.dirs[i].stop; stop != nil {
				stop()
			}
			w.dirs[i] = watchDir{}
		}
	}
	w.mu.Unlock()
}
