package websocket

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Keepalive: a connection that has received nothing for an interval sends
// a ping, and one that then receives nothing for a timeout is failed with
// StatusInternalError (1011), as a peer that has gone away without a word
// (a sleeping laptop, a dropped mobile link, a crashed host behind a NAT)
// never closes its end. Any input counts as a sign of life, not only the
// pong.
//
// It runs on a timer per connection, not a goroutine: the timer fires at
// most once an interval while the connection is busy, and looks at when
// input last arrived. When nobody reads the connection (no Read in
// progress, no Serve), the timer's goroutine reads the control frames that
// answer the ping itself, stopping at the first data message, which it
// leaves for the next Read.

const (
	// defaultKeepaliveInterval and defaultKeepaliveTimeout: a dead peer is
	// noticed within 40 s, and a connection that carries nothing still
	// sends a frame every 20 s, well inside the 60 s idle timeouts of
	// common load balancers, proxies and NATs.
	defaultKeepaliveInterval = 20 * time.Second
	defaultKeepaliveTimeout  = 20 * time.Second
	// keepaliveCloseWait bounds the write of the close frame to a peer
	// that does not answer.
	keepaliveCloseWait = time.Second
)

// ErrKeepaliveTimeout is wrapped by the error of every call on a
// connection that keepalive failed: the peer sent nothing, not even the
// pong, within the keepalive timeout of a ping.
var ErrKeepaliveTimeout = errors.New("websocket: keepalive timeout")

// keepaliveError is the end of a connection whose peer went silent. It
// wraps ErrKeepaliveTimeout and the close frame sent.
type keepaliveError struct {
	silent time.Duration // how long the peer had sent nothing
}

const keepaliveReason = "keepalive timeout"

func (e *keepaliveError) Error() string {
	return fmt.Sprintf("websocket: keepalive timeout: nothing from the peer for %v, ping unanswered (sent close 1011)", e.silent.Round(time.Millisecond))
}

func (e *keepaliveError) Unwrap() []error {
	return []error{ErrKeepaliveTimeout, CloseError{StatusInternalError, keepaliveReason}}
}

// keepalive is the state of a connection's keepalive. The timer's
// callback runs alone (it rearms the timer only as it ends), so the fields
// without a guard are its own.
type keepalive struct {
	c         *Conn
	interval  time.Duration // immutable
	timeout   time.Duration // immutable
	timer     *time.Timer   // immutable once set
	lastInput atomic.Int64  // clock() when input last arrived
	pingAt    time.Duration // when the last keepalive ping went out, 0 when none is unanswered
}

// last returns when input last arrived.
func (k *keepalive) last() time.Duration { return time.Duration(k.lastInput.Load()) }

// keepaliveSettings resolves the options: 0 means the default, a negative
// interval turns keepalive off.
func keepaliveSettings(interval, timeout time.Duration) (time.Duration, time.Duration) {
	if interval == 0 {
		interval = defaultKeepaliveInterval
	}
	if timeout <= 0 {
		timeout = defaultKeepaliveTimeout
	}
	return interval, timeout
}

// clockStart is what the monotonic times of input are counted from.
var clockStart = time.Now()

// clock returns the monotonic time since clockStart.
func clock() time.Duration { return time.Since(clockStart) }

// newKeepalive makes a connection's keepalive, nil when interval is not
// positive; start arms it.
func newKeepalive(c *Conn, interval, timeout time.Duration) *keepalive {
	interval, timeout = keepaliveSettings(interval, timeout)
	if interval <= 0 {
		return nil
	}
	k := &keepalive{c: c, interval: interval, timeout: timeout}
	k.lastInput.Store(int64(clock()))
	return k
}

// start makes and arms the timer, once the Conn is made (Conn.started).
func (k *keepalive) start() {
	// Made far off and then reset, so that fire, which reads k.timer,
	// cannot run before it is set.
	k.timer = time.AfterFunc(math.MaxInt64, k.fire)
	k.timer.Reset(k.interval)
}

// gotInput notes that bytes arrived from the peer.
func (c *Conn) gotInput() {
	if k := c.ka; k != nil {
		k.lastInput.Store(int64(clock()))
	}
}

// fire runs on the timer: it pings a connection that has been quiet for an
// interval, fails one whose ping went unanswered for the timeout, and
// rearms itself for the next moment either can happen.
func (k *keepalive) fire() {
	c := k.c
	if c.isClosed() {
		return
	}
	now := clock()
	last := k.last()
	if k.pingAt != 0 && last >= k.pingAt {
		k.pingAt = 0 // something came after the ping
	}
	switch {
	case k.pingAt == 0 && now-last < k.interval:
		k.timer.Reset(k.interval - (now - last))
	case k.pingAt == 0:
		k.pingAt = now
		k.ping()
		k.fireAgain()
	case now-k.pingAt < k.timeout:
		k.awaitAnswer(now)
	default:
		c.failKeepalive(now - last)
	}
}

// fireAgain rearms the timer at once, so that fire looks at what the ping
// brought (an answer read by ping itself), or waits for it.
func (k *keepalive) fireAgain() {
	now := clock()
	if k.last() >= k.pingAt {
		k.timer.Reset(0)
		return
	}
	k.awaitAnswer(now)
}

// awaitAnswer rearms the timer while the ping is unanswered: for the rest
// of the timeout, but no longer than an interval, so that when the answer
// comes the next ping still goes out an interval after it, however long
// the timeout.
func (k *keepalive) awaitAnswer(now time.Duration) {
	k.timer.Reset(max(min(k.timeout-(now-k.pingAt), k.interval), 0))
}

// ping sends the keepalive ping, and reads its answer when no reader
// would: nobody is reading, no Serve is, and no message is half read.
func (k *keepalive) ping() {
	c := k.c
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	if err := c.writeControl(ctx, opPing, nil, "ping"); err != nil {
		return // the connection is closed, or its writes are stuck: the timeout decides
	}
	if !c.readMu.tryLock() {
		return
	}
	if c.srv.Load() != nil {
		// Serve reads the pong (asked under the lock, as in awaitPong).
		c.readMu.unlock()
		return
	}
	if !c.msgOpen && !c.isClosed() {
		c.awaitControlLocked(ctx, func() bool {
			return k.last() >= k.pingAt
		})
	}
	c.readUnlock()
}

// failKeepalive fails a connection whose peer has been silent: it sends a
// close frame with 1011, without waiting for an answer that would not
// come, and closes the connection.
func (c *Conn) failKeepalive(silent time.Duration) {
	err := &keepaliveError{silent: silent}
	c.setEnd(err)
	ctx, cancel := context.WithTimeout(context.Background(), keepaliveCloseWait)
	c.writeClose(ctx, mustClosePayload(StatusInternalError, keepaliveReason))
	cancel()
	c.closeTransport(err)
}

// stopKeepalive stops the timer of a connection that closed.
func (c *Conn) stopKeepalive() {
	if k := c.ka; k != nil && k.timer != nil {
		k.timer.Stop()
	}
}
