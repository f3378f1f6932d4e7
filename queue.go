package websocket

// The write queue: small frames that find the connection busy are encoded
// into a shared buffer and go out together in one system call, written by
// whoever holds the frame lock before letting it go, by the reader before
// it waits for input, or by a timer. Conn.pendMu guards the queue.

import (
	"context"
	"sync"
	"time"
)

const (
	// maxQueuedPayload is the largest payload that joins the frame queue
	// (it is copied there); larger frames wait for the frame lock.
	maxQueuedPayload = 64 << 10
	// maxQueued bounds the queue; past it, writers wait their turn.
	maxQueued = 512 << 10
	// queueFlushDelay bounds how long queued frames wait for a reader
	// that holds input but does not come back to read it.
	queueFlushDelay = 500 * time.Microsecond
)

var pendPool = sync.Pool{New: func() any { b := make([]byte, 0, writeBufferSize); return &b }}

func putPend(bp *[]byte) {
	if cap(*bp) <= 2*maxQueued {
		*bp = (*bp)[:0]
		pendPool.Put(bp)
	}
}

// queueFrame appends the frame to the queue if a write is in progress or
// the reader holds input, reporting whether it did.
func (c *Conn) queueFrame(h header, p []byte, op string) (bool, error) {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	if err := c.writableLocked(op); err != nil {
		return true, err
	}
	if !c.flusher && !c.inputPending.Load() {
		return false, nil
	}
	if c.pend != nil && len(*c.pend)+len(p)+maxHeaderSize > maxQueued {
		return false, nil
	}
	if c.pend == nil {
		c.pend = pendPool.Get().(*[]byte)
		if !c.flusher {
			c.armFlushTimerLocked()
		}
	}
	*c.pend = appendFrame(*c.pend, c.keyLocked(h), p)
	return true, nil
}

// takePendLocked needs pendMu held.
func (c *Conn) takePendLocked() *[]byte {
	pend := c.pend
	c.pend = nil
	return pend
}

// armFlushTimerLocked needs pendMu held.
func (c *Conn) armFlushTimerLocked() {
	if c.pendTimer == nil {
		c.pendTimer = time.AfterFunc(queueFlushDelay, c.flushQueueLater)
		return
	}
	c.pendTimer.Reset(queueFlushDelay)
}

// flushQueueLater writes queued frames that waited too long for the reader.
func (c *Conn) flushQueueLater() {
	c.flushQueue(context.Background())
}

// flushQueue writes the queued frames, if any. It never waits for the
// frame lock: whoever holds it writes the queue before letting go.
func (c *Conn) flushQueue(ctx context.Context) {
	for {
		c.pendMu.Lock()
		if c.pend == nil || c.flusher {
			c.pendMu.Unlock()
			return
		}
		if !c.frameMu.tryLock() {
			c.pendMu.Unlock()
			return
		}
		c.flusher = true
		c.pendMu.Unlock()
		if c.flushUnlock(ctx) != nil {
			return
		}
	}
}

// flushUnlock writes the frames that queued while the caller held the
// frame lock, then releases it.
func (c *Conn) flushUnlock(ctx context.Context) error {
	var err error
	for {
		c.pendMu.Lock()
		pend := c.takePendLocked()
		if pend == nil || err != nil {
			c.flusher = false
			c.pendMu.Unlock()
			if pend != nil {
				putPend(pend)
			}
			break
		}
		c.pendMu.Unlock()
		err = c.writeQueueLocked(ctx, pend)
	}
	c.frameMu.unlock()
	return err
}

// beforeWaitLocked runs before the reader waits for input: from now on
// writes go out at once, and what queued behind the input goes now.
//
// The caller holds readMu.
func (c *Conn) beforeWaitLocked(ctx context.Context) {
	if c.inputPending.Load() {
		c.inputPending.Store(false)
	}
	c.flushQueue(ctx)
}

// writeQueueLocked writes encoded frames.
//
// The caller holds frameMu.
func (c *Conn) writeQueueLocked(ctx context.Context, pend *[]byte) error {
	defer putPend(pend)
	if err := ctx.Err(); err != nil {
		return c.writeErrLocked(ctx, err, true)
	}
	c.writeWatch.watch(ctx)
	defer c.writeWatch.release()
	if _, err := c.tr.rw.Write(*pend); err != nil {
		return c.writeErrLocked(ctx, err, true)
	}
	return nil
}
