package websocket

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// It runs on one timer for all connections, not a goroutine or a timer
// each (keepaliveTimers): a connection's turn comes at most once an
// interval while it is busy, and looks at when input last arrived. When
// nobody reads the connection (no Read in progress, no Serve), the
// goroutine of its turn reads the control frames that answer the ping
// itself, stopping at the first data message, which it leaves for the next
// Read. Input it cannot read past that message still counts where the
// kernel says how much it holds unread (inputQueued): a queue that grew
// since the ping went out holds input that came after the ping.
//
// Output counts too while the ping waits behind a frame being written, or
// a backlog of queued frames (pingHeldBack), or, where the kernel says how
// much of our output it holds (outputQueued), behind output written
// already: a peer slowly taking in a large message cannot answer a ping
// it has not been sent, and the transport, or the kernel, handing on
// more of what goes before the ping shows that it reads. Output that
// stops moving for the timeout fails the connection as silence does; so
// does a peer whose host takes in the ping, and nothing before it, but
// whose program never answers.

const (
	// defaultKeepaliveInterval and defaultKeepaliveTimeout: a dead peer is
	// noticed within 40 s, and a connection that carries nothing still
	// sends a frame every 20 s, well inside the 60 s idle timeouts of
	// common load balancers, proxies and NATs.
	defaultKeepaliveInterval = 20 * time.Second
	defaultKeepaliveTimeout  = 20 * time.Second
	// pingAloneMax is the most the kernel holds of our output once the
	// keepalive's ping is written when it holds nothing but the ping: a
	// client's masked empty ping is 6 bytes, under 40 in a TLS record.
	pingAloneMax = 64
	// keepaliveCloseWait bounds the write of the close frame to a peer
	// that does not answer.
	keepaliveCloseWait = time.Second
)

// ErrKeepaliveTimeout is wrapped by the error of every call on a
// connection that keepalive failed: the peer sent nothing, not even the
// pong, within the keepalive timeout of a ping.
var ErrKeepaliveTimeout = errors.New("websocket: keepalive timeout")

// errPingTimeout ends a connection whose keepalive ping was cut short:
// the peer read nothing of it within the keepalive timeout.
var errPingTimeout = fmt.Errorf("%w: the ping could not be written in time", ErrKeepaliveTimeout)

// keepaliveError is the end of a connection whose peer went silent. It
// wraps ErrKeepaliveTimeout and the close frame sent, if it could be.
type keepaliveError struct {
	silent time.Duration // how long the peer had sent nothing
	unsent bool          // the close frame could not be sent
}

const keepaliveReason = "keepalive timeout"

func (e *keepaliveError) Error() string {
	sent := "sent close 1011"
	if e.unsent {
		sent = "close 1011 could not be sent"
	}
	return fmt.Sprintf("websocket: keepalive timeout: nothing from the peer for %v, ping unanswered (%s)", e.silent.Round(time.Millisecond), sent)
}

func (e *keepaliveError) Unwrap() []error {
	if e.unsent {
		return []error{ErrKeepaliveTimeout}
	}
	return []error{ErrKeepaliveTimeout, CloseError{StatusInternalError, keepaliveReason}}
}

// keepalive is the state of a connection's keepalive. Its turns (fire)
// run one at a time (each schedules the next only as it ends), so the
// fields without a guard are theirs.
type keepalive struct {
	c         *Conn
	interval  time.Duration // immutable
	timeout   time.Duration // immutable
	lastInput atomic.Int64  // clock() when input last arrived
	pingAt    time.Duration // when the last keepalive ping went out, 0 when none is unanswered
	slot      int32         // keepaliveTimers.mu: the index of its turn in the heap, -1 when none is scheduled
	queued    int32         // the kernel's unread input as the last ping went out (inputQueued), -1 if unknown
	sent      int32         // the kernel's output not yet taken by the peer once the ping went out, or at the turn that last found it shrunk (outputQueued), -1 if unknown
	// writing is when the write of a large frame began (clock), or of a
	// large run of queued frames, when its oldest was queued; 0 when none
	// is under way. moved is when the transport last took a piece of it;
	// began and ended, when the last such write that ended began and
	// ended. Set by the writer, under the frame lock (pingHeldBack).
	writing atomic.Int64
	moved   atomic.Int64
	began   atomic.Int64
	ended   atomic.Int64
	// pendSince (Conn.pendMu) is when the oldest frame of the write
	// queue was queued; takenSince (Conn.frameMu), that of the queue taken
	// to be written (Conn.pendStartLocked).
	pendSince, takenSince time.Duration
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
	k := &keepalive{c: c, interval: interval, timeout: timeout, slot: -1, queued: -1, sent: -1}
	k.lastInput.Store(int64(clock()))
	return k
}

// start schedules the first turn, once the Conn is made (Conn.started).
func (k *keepalive) start() { keepaliveTimers.schedule(k, k.interval) }

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
	if c.isClosed() || c.closeFrameSent() {
		// Once our close frame is sent, or queued, no ping may follow
		// it, and the close timeout bounds the rest, however long it is
		// set: the keepalive, failing a peer silent meanwhile, ended the
		// handshake early and reported the close as normal.
		return
	}
	now := clock()
	last := k.last()
	if k.pingAt != 0 && last >= k.pingAt {
		k.pingAt = 0 // something came after the ping
	}
	switch {
	case k.pingAt == 0 && now-last < k.interval:
		keepaliveTimers.schedule(k, k.interval-(now-last))
	case k.pingAt == 0:
		k.pingAt = now
		k.ping()
		k.fireAgain()
	case now-k.pingAt < k.timeout:
		k.awaitAnswer(now)
	case k.queuedSincePing():
		// Nobody has read it, but input came after the ping: the peer
		// lives, and the next ping goes out an interval from now.
		k.lastInput.Store(int64(now))
		k.pingAt = 0
		keepaliveTimers.schedule(k, k.interval)
	case k.outputTaken():
		// The ping waits in the kernel's buffer behind output the peer
		// is still taking in: the timeout counts again from now.
		k.pingAt = now
		k.awaitAnswer(now)
	case k.pingHeldBack(now):
		// The ping waits behind a frame the peer is still taking in,
		// or went out after one: the timeout counts from then.
		k.awaitAnswer(now)
	default:
		c.failKeepalive(now - last)
	}
}

// closeFrameSent reports whether our close frame was sent, or queued.
func (c *Conn) closeFrameSent() bool {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	return c.closeSent
}

// queuedSincePing reports whether the kernel holds more unread input for
// the connection than it did just before the ping went out: input that
// only arrival since explains, as nothing but a read takes input from the
// queue (and a read since then would have counted as the answer itself,
// gotInput). It is how a pong counts when it waits unread behind a
// message nobody has read, or a Reader left half read.
func (k *keepalive) queuedSincePing() bool {
	return k.queued >= 0 && k.c.tr.inputQueued() > k.queued
}

// outputTaken reports whether the kernel holds less of our output than
// when the ping went out, or than at the last turn that asked: the peer
// took in some of what the kernel held before the ping, which it must
// take before it can see the ping, let alone answer. A peer whose host
// is gone takes nothing, and one that stopped reading takes no more than
// its buffers hold, so this holds for a timeout only while output moves.
func (k *keepalive) outputTaken() bool {
	before, n := k.sent, k.c.tr.outputQueued()
	k.sent = n
	return n >= 0 && n < before
}

// pingHeldBack reports whether the ping was held back behind a frame
// whose write began before it (the frame lock kept the ping queued): a
// write still under way whose pieces the transport took since the ping
// (a socket takes more only as the peer reads, past what its buffers
// hold), or one that ended, letting the ping go, less than a timeout ago.
// It moves pingAt to the last piece taken, or to that end, for the
// timeout to count from.
func (k *keepalive) pingHeldBack(now time.Duration) bool {
	if w := time.Duration(k.writing.Load()); w != 0 && w <= k.pingAt {
		// The timeout counts from the last piece taken, not from now:
		// a write that stalls just after a turn is failed a timeout
		// after it stalled, not two.
		if m := time.Duration(k.moved.Load()); m > k.pingAt {
			k.pingAt = m
			return true
		}
	}
	began, ended := time.Duration(k.began.Load()), time.Duration(k.ended.Load())
	if began <= k.pingAt && ended >= k.pingAt && now-ended < k.timeout {
		k.pingAt = ended
		return true
	}
	return false
}

// startWrite notes that the write of a large frame begins, endWrite that
// it ended, and wrote that the transport took a piece of it.
func (k *keepalive) startWrite() { k.startWriteAt(0) }

// startWriteAt is startWrite for the write of a queue whose oldest frame
// was queued at since (now if 0): what queued after it, a ping too, waits
// behind it.
func (k *keepalive) startWriteAt(since time.Duration) {
	if since <= 0 {
		since = max(clock(), 1)
	}
	k.moved.Store(int64(since))
	k.writing.Store(int64(since))
}

func (k *keepalive) endWrite() {
	k.began.Store(k.writing.Load())
	k.ended.Store(int64(clock()))
	k.writing.Store(0)
}

func (k *keepalive) wrote() { k.moved.Store(int64(clock())) }

// fireAgain schedules the next turn at once, so that fire looks at what
// the ping brought (an answer read by ping itself), or waits for it.
func (k *keepalive) fireAgain() {
	now := clock()
	if k.last() >= k.pingAt {
		keepaliveTimers.schedule(k, 0)
		return
	}
	k.awaitAnswer(now)
}

// awaitAnswer schedules the next turn while the ping is unanswered: for
// the rest of the timeout, but no longer than an interval, so that when
// the answer comes the next ping still goes out an interval after it,
// however long the timeout.
func (k *keepalive) awaitAnswer(now time.Duration) {
	keepaliveTimers.schedule(k, max(min(k.timeout-(now-k.pingAt), k.interval), 0))
}

// ping sends the keepalive ping, and reads its answer when no reader
// would: nobody is reading, no Serve is, and no message is half read.
func (k *keepalive) ping() {
	c := k.c
	// Taken before the ping goes out, so that its answer cannot be in it
	// (queuedSincePing).
	k.queued = c.tr.inputQueued()
	k.sent = -1 // until the ping is out: an earlier ping's does not count
	c.mu.Lock()
	if c.pings != nil {
		// A peer may answer only this ping (RFC 6455 §5.5.3): its empty
		// pong then answers the Pings sent before it too (gotPong).
		c.pings.keepalive = c.pings.seq
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeoutCause(context.Background(), k.timeout, errPingTimeout)
	defer cancel()
	if err := c.writeControl(ctx, opPing, nil, "ping"); err != nil {
		return // the connection is closed, or its writes are stuck: the timeout decides
	}
	if k.sent = c.tr.outputQueued(); k.sent <= pingAloneMax {
		// Nothing the peer must read before the ping waits in the
		// kernel, only the ping itself, whose acknowledgement (late:
		// hosts delay theirs) says that the peer's host lives, not its
		// program: outputTaken counts no output for this ping.
		k.sent = -1
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
//
// When another close frame went first (Close's, sent after fire looked,
// or while the keepalive read for its ping's answer), it leaves the
// connection to the handshake that frame began, as fire does once it
// finds the frame sent: that close's timeout bounds it, and the peer's
// answer, if it comes, completes it. (Closing at once ended that
// handshake early, and reported its close as the end, as if it had been
// answered.) On a transport without deadlines, where the ping's timeout
// cut nothing short (closeCause), the keepalive's read goes on for that
// answer, until the close timeout closes the connection.
func (c *Conn) failKeepalive(silent time.Duration) {
	err := &keepaliveError{silent: silent}
	// A close recorded already (Close's waiting for the frame lock, a
	// shutdown's queued) stays the end if its frame goes first.
	c.setFirstEnd(err, intentWritten)
	ctx, cancel := context.WithTimeoutCause(context.Background(), keepaliveCloseWait, errCloseTimeout)
	var end error = err
	werr := c.writeClose(ctx, mustClosePayload(StatusInternalError, keepaliveReason), err)
	cancel()
	if werr != nil {
		if isCloseSent(werr) {
			return
		}
		// The close frame did not go (a write stuck on a peer that reads
		// nothing held the frame lock): the end says so, with no code.
		end = unsentEnd(err)
	}
	c.closeTransport(end)
}

// stopKeepalive cancels the next turn of a connection that is closing.
func (c *Conn) stopKeepalive() {
	if k := c.ka; k != nil {
		keepaliveTimers.cancel(k)
	}
}

// keepaliveTimers holds the next turn of every connection's keepalive in a
// heap by time due, with one runtime timer armed for the earliest: a
// connection pays a slot of the heap (16 bytes) rather than a timer of its
// own (a 128-byte timer and the callback's closure), which on an idle
// connection is a tenth of its heap. Each turn runs on a goroutine of its
// own, as a timer's callback would, since it may wait on the connection.
var keepaliveTimers turnHeap

// turnHeap is a min-heap of keepalive turns and the timer that starts
// them.
type turnHeap struct {
	mu    sync.Mutex
	turns []turn
	timer *time.Timer   // made by the first schedule
	armed time.Duration // when timer fires, 0 when it is not armed
}

// turn is a keepalive due at a time (clock()).
type turn struct {
	due time.Duration
	k   *keepalive
}

// schedule has k's next turn run after d, in place of any it had. It
// schedules nothing for a connection that is closing, whose
// stopKeepalive has run or will: the heap never keeps one.
func (h *turnHeap) schedule(k *keepalive, d time.Duration) {
	now := clock()
	due := now + d
	h.mu.Lock()
	defer h.mu.Unlock()
	if k.c.closing.Load() {
		return
	}
	if k.slot < 0 {
		k.slot = int32(len(h.turns))
		h.turns = append(h.turns, turn{due, k})
		h.up(int(k.slot))
	} else {
		i := int(k.slot)
		h.turns[i].due = due
		h.up(i)
		h.down(int(k.slot))
	}
	if h.armed == 0 || due < h.armed {
		h.arm(due, now)
	}
}

// cancel drops k's next turn, if one is scheduled. The timer stays armed:
// firing early with nothing due costs one wake-up.
func (h *turnHeap) cancel(k *keepalive) {
	h.mu.Lock()
	if k.slot >= 0 {
		h.remove(int(k.slot))
	}
	h.mu.Unlock()
}

// arm sets the timer for due, now being clock().
//
// The caller holds h.mu.
func (h *turnHeap) arm(due, now time.Duration) {
	h.armed = max(due, 1)
	if h.timer == nil {
		h.timer = time.AfterFunc(due-now, h.run)
	} else {
		h.timer.Reset(due - now)
	}
}

// run is the timer's callback: it starts every turn that is due, the last
// on its own goroutine (the timer started it for this), and arms the timer
// for the next.
func (h *turnHeap) run() {
	h.mu.Lock()
	h.armed = 0
	now := clock()
	var last *keepalive
	for len(h.turns) > 0 && h.turns[0].due <= now {
		if last != nil {
			go last.fire()
		}
		last = h.turns[0].k
		h.remove(0)
	}
	if len(h.turns) > 0 {
		h.arm(h.turns[0].due, now)
	}
	h.mu.Unlock()
	if last != nil {
		last.fire()
	}
}

// remove takes the turn at index i out of the heap. A heap that emptied
// by most of its length gives its memory back.
//
// The caller holds h.mu.
func (h *turnHeap) remove(i int) {
	h.turns[i].k.slot = -1
	last := len(h.turns) - 1
	moved := h.turns[last].k
	if i != last {
		h.turns[i] = h.turns[last]
		moved.slot = int32(i)
	}
	h.turns[last] = turn{}
	h.turns = h.turns[:last]
	if i != last {
		h.up(i)
		h.down(int(moved.slot))
	}
	if c := cap(h.turns); c > 64 && last < c/4 {
		h.turns = append(make([]turn, 0, c/2), h.turns...)
	}
}

// up moves the turn at i towards the root while it is due before its
// parent.
//
// The caller holds h.mu.
func (h *turnHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h.turns[p].due <= h.turns[i].due {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down moves the turn at i away from the root while a child is due before
// it.
//
// The caller holds h.mu.
func (h *turnHeap) down(i int) {
	for {
		least := i
		for _, ch := range [2]int{2*i + 1, 2*i + 2} {
			if ch < len(h.turns) && h.turns[ch].due < h.turns[least].due {
				least = ch
			}
		}
		if least == i {
			return
		}
		h.swap(i, least)
		i = least
	}
}

func (h *turnHeap) swap(i, j int) {
	h.turns[i], h.turns[j] = h.turns[j], h.turns[i]
	h.turns[i].k.slot = int32(i)
	h.turns[j].k.slot = int32(j)
}
