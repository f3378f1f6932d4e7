package websocket

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// stallQueue enqueues 100-byte messages until one is refused with the
// socket full, the queue's writer waiting for the peer (outputStalled),
// at most 5 s.
func stallQueue(t testing.TB, c *Conn) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c.Enqueue(MessageBinary, make([]byte, 100)) != nil && c.tr.stalled() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refusal found the socket full in 5 s (%d bytes queued)", c.Buffered())
		}
	}
}

// stallThenRead stalls c's queue (stallQueue) and waits until the socket
// is full, then has the peer nc read all it is sent, and returns once the
// queue is written: the peer's read ends, with its error, when the
// connection does.
func stallThenRead(t *testing.T, nc net.Conn, c *Conn) <-chan error {
	t.Helper()
	stallQueue(t, c)
	// The writer waited once; the socket may still take in what the
	// peer's window lets through (loopback's ACKs come late under load),
	// until the window closes.
	waitFor(t, "poll to find the stalled queue's socket full", c.tr.outputBlocked)
	read := make(chan error, 1)
	go func() {
		nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := io.Copy(io.Discard, nc)
		read <- err
	}()
	waitFor(t, "the queue to be written", func() bool { return c.Buffered() == 0 })
	return read
}

// TestEnqueueStalledSocket: an Enqueue refused by a full queue whose
// writer waits for a peer that reads nothing finds the socket full, and
// the next refusals know it without asking the kernel again, nor yielding
// to the writer (BenchmarkBroadcastStalled); once the peer reads again
// and the writer takes the queue, that is forgotten.
func TestEnqueueStalledSocket(t *testing.T) {
	t.Parallel()
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "TCP", true: "TLS"}[tlsOn], func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPairOver(t, tlsOn)
			read := stallThenRead(t, nc, sc)
			if sc.tr.stalled() {
				t.Error("the socket still known as full once the writer took the queue again")
			}
			if err := sc.Enqueue(MessageBinary, make([]byte, 100)); err != nil {
				t.Errorf("Enqueue once the peer read: %v", err)
			}
			sc.CloseNow()
			if err := <-read; err != nil {
				t.Errorf("the peer's read: %v", err)
			}
		})
	}
}

// BenchmarkBroadcastStalled measures a Broadcast of a 1 KiB message to 100
// connections whose peers read nothing, every queue full: ns/conn is the
// cost of a refusal (2.6 us over TCP and 2.5 us over TLS when a refusal
// yielded to a writer that waited for the peer, 88 and 90 ns since).
func BenchmarkBroadcastStalled(b *testing.B) {
	const n = 100
	for _, tlsOn := range []bool{false, true} {
		b.Run(map[bool]string{false: "TCP", true: "TLS"}[tlsOn], func(b *testing.B) {
			conns := make([]*Conn, n)
			for i := range conns {
				_, conns[i] = stalledPairOver(b, tlsOn)
				stallQueue(b, conns[i])
			}
			pm, err := NewPreparedMessage(MessageText, make([]byte, 1<<10))
			if err != nil {
				b.Fatal(err)
			}
			took := 0
			b.ResetTimer()
			for range b.N {
				took += pm.Broadcast(conns...)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/conn")
			// A few take one now and then: the peer's socket takes in a
			// little of what the writer waits to write.
			b.ReportMetric(float64(took)/float64(b.N), "took/op")
		})
	}
}

// TestEnqueueStaleStall: a stall kept after the writer took the queue
// empty (makeRoom's poll before the peer read, the stall kept after) does
// not refuse, over TLS on one processor, a burst to a peer that reads all.
// Asked and kept with no lock held, it refused the 522nd 1000-byte message
// (12 runs in 12), with the queue full and nobody writing it. Not
// parallel: it sets GOMAXPROCS.
//
// A refusal while the writer holds the queue is no stale stall: the
// writer waits for a socket that the peer, on the same one processor,
// has not yet had the time to empty (1 run in 1,000). The burst then
// waits for the queue to be written and goes on.
func TestEnqueueStaleStall(t *testing.T) {
	nc, sc := stalledPairOver(t, true)
	read := stallThenRead(t, nc, sc) // makeRoom's poll, before the peer reads
	sc.tr.stall()                    // and its stall, once the writer took the queue empty
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 1000 // 1 MB: twice the queue's default limit
	for i := range n {
		for {
			err := sc.Enqueue(MessageBinary, fmt.Appendf(nil, "%-1000d", i))
			if err == nil {
				break
			}
			sc.pendMu.Lock()
			unwritten := sc.pend != nil && sc.inflight == 0 && !sc.flusher
			sc.pendMu.Unlock()
			if !errors.Is(err, ErrQueueFull) || unwritten {
				t.Fatalf("Enqueue %d of %d, to a peer that reads all, %d bytes queued, none taken by a writer: %v", i, n, sc.Buffered(), err)
			}
			waitFor(t, "the queue to be written", func() bool { return sc.Buffered() == 0 })
		}
	}
	waitFor(t, "the queue to be written", func() bool { return sc.Buffered() == 0 })
	sc.CloseNow()
	if err := <-read; err != nil {
		t.Errorf("the peer's read: %v", err)
	}
}
