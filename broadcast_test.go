package websocket

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// acceptOne starts a server that accepts one connection with opts and
// hands it to the test.
func acceptOne(t testing.TB, opts *AcceptOptions) (*httptest.Server, <-chan *Conn) {
	t.Helper()
	conns := make(chan *Conn, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, opts)
		if err != nil {
			return
		}
		conns <- c
	}))
	t.Cleanup(s.Close)
	return s, conns
}

// TestEnqueueDelivers: messages enqueued in a burst, and mixed with
// Writes from the same goroutine, arrive exactly once and in order, the
// close frame after them.
func TestEnqueueDelivers(t *testing.T) {
	t.Parallel()
	for _, mode := range []CompressionMode{CompressionDisabled, CompressionNoContextTakeover, CompressionContextTakeover} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			s, conns := acceptOne(t, &AcceptOptions{Compression: mode, WriteQueueLimit: 8 << 20})
			c := dialT(t, wsURL(s), &DialOptions{Compression: mode})
			sc := <-conns
			defer sc.CloseNow()
			const n = 1000
			go func() {
				ctx := context.Background()
				for i := range n {
					msg := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i%300))
					var err error
					if i%10 == 9 {
						err = sc.Write(ctx, MessageText, []byte(msg))
					} else {
						err = sc.Enqueue(MessageText, []byte(msg))
					}
					if err != nil {
						t.Errorf("message %d: %v", i, err)
						return
					}
				}
				sc.Close(StatusNormalClosure, "done")
			}()
			ctx := context.Background()
			for i := range n {
				_, p, err := c.Read(ctx)
				want := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i%300))
				if err != nil || string(p) != want {
					t.Fatalf("Read %d: %.40q, %v; want %.40q", i, p, err, want)
				}
			}
			if _, _, err := c.Read(ctx); CloseStatus(err) != StatusNormalClosure {
				t.Fatalf("after the messages: %v, want the close", err)
			}
		})
	}
}

// stalledClient is a raw client that reads nothing until told.
func stalledClient(t testing.TB, addr string) net.Conn {
	t.Helper()
	nc := rawClient(t, addr)
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	return nc
}

// stalledPair accepts a connection with opts from a raw client that reads
// nothing until the test reads from it, and returns both ends; the
// accepted Conn is closed at the end of the test.
func stalledPair(t testing.TB, opts *AcceptOptions) (net.Conn, *Conn) {
	t.Helper()
	s, conns := acceptOne(t, opts)
	nc := stalledClient(t, s.Listener.Addr().String())
	sc := <-conns
	t.Cleanup(func() { sc.CloseNow() })
	return nc, sc
}

// fillQueue enqueues 100-byte messages numbered from 0 until the queue
// refuses one, and returns how many it took and the refusal.
func fillQueue(t *testing.T, c *Conn) (int, error) {
	t.Helper()
	return fillQueueFrom(t, c, 0)
}

// fillQueueFrom is fillQueue numbering the messages from first; it returns
// how many it took.
func fillQueueFrom(t *testing.T, c *Conn, first int) (int, error) {
	t.Helper()
	for i := range 1 << 20 {
		msg := fmt.Sprintf("%-100d", first+i)
		if err := c.Enqueue(MessageBinary, []byte(msg)); err != nil {
			return i, err
		}
	}
	t.Fatal("the queue took a million messages from a peer that reads nothing")
	return 0, nil
}

// TestEnqueueQueueFull: against a peer that stops reading, Enqueue never
// waits, the queue stays within its limit, the message that finds it full
// is refused with ErrQueueFull, and every message that was taken arrives
// once the peer reads again.
func TestEnqueueQueueFull(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: limit})
	start := time.Now()
	taken, err := fillQueue(t, sc)
	if !errors.Is(err, ErrQueueFull) || errors.Is(err, ErrClosed) {
		t.Fatalf("refusal: %v, want ErrQueueFull alone", err)
	}
	if err.Error() != "websocket: write: write queue full" {
		t.Errorf("refusal says %q", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("filling the queue took %v: Enqueue waited", d)
	}
	// A write of the queue that had not run yet when it filled (on a
	// loaded machine) may since have handed the socket what it still
	// took: fill the room it made, until the socket takes no more.
	for deadline := time.Now().Add(5 * time.Second); ; {
		b := sc.Buffered()
		if b > limit {
			t.Fatalf("Buffered %d, over the limit %d", b, limit)
		}
		if b >= limit-200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Buffered %d with the queue full, want just under %d", b, limit)
		}
		more, err := fillQueueFrom(t, sc, taken)
		if !errors.Is(err, ErrQueueFull) {
			t.Fatalf("refusal: %v, want ErrQueueFull", err)
		}
		taken += more
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	for i := range taken {
		got, err := readServerFrame(br)
		if want := "\x82\x64" + fmt.Sprintf("%-100d", i); err != nil || got != want {
			t.Fatalf("message %d of %d: %q, %v", i, taken, got, err)
		}
	}
	// The connection goes on.
	if err := sc.Enqueue(MessageText, []byte("more")); err != nil {
		t.Fatalf("Enqueue once drained: %v", err)
	}
	if got, err := readServerFrame(br); err != nil || got != "\x81\x04more" {
		t.Fatalf("after the refusal: %q, %v", got, err)
	}
	// The writer lets go of its count just after its write returns.
	for deadline := time.Now().Add(5 * time.Second); sc.Buffered() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Buffered %d once all was read, want 0", sc.Buffered())
		}
	}
}

// TestBroadcastQueueFull: Broadcast to a peer that stops reading writes
// what the socket takes at once and leaves the rest, cut anywhere in a
// frame, to the queue; once the queue is full the peer misses messages,
// and when it reads again, every message Broadcast reported taken
// arrives, whole and in order.
func TestBroadcastQueueFull(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: limit})
	// Small socket buffers fill long before the queue does.
	nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	sc.tr.rw.(*net.TCPConn).SetWriteBuffer(4 << 10)
	var taken []int
	for i := range 1 << 20 {
		pm, err := NewPreparedMessage(MessageBinary, []byte(fmt.Sprintf("%-100d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if pm.Broadcast(sc) == 1 {
			taken = append(taken, i)
		}
		if i-len(taken) >= 100 {
			break // the queue has refused 100 messages: it stays full
		}
	}
	if len(taken) == 1<<20 {
		t.Fatal("a peer that reads nothing took a million messages")
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	for _, i := range taken {
		got, err := readServerFrame(br)
		if want := "\x82\x64" + fmt.Sprintf("%-100d", i); err != nil || got != want {
			t.Fatalf("message %d: %q, %v", i, got, err)
		}
	}
	if err := sc.Enqueue(MessageText, []byte("more")); err != nil {
		t.Fatalf("Enqueue once drained: %v", err)
	}
	if got, err := readServerFrame(br); err != nil || got != "\x81\x04more" {
		t.Fatalf("after the broadcasts: %q, %v", got, err)
	}
}

// TestEnqueueCloseOnFull: with CloseOnQueueFull, a full queue fails the
// connection with 1008; the close frame follows every message taken, and
// the connection is closed within the close timeout. So it does when the
// messages were taken while a whole message was being written (a Write
// under way, "behind a Write"): Enqueue held them back behind it, and
// they were dropped when the close frame went first, though each Enqueue
// returned nil (a healthy but slowed receiver of a broadcast, cut with
// 1008, missed every message held behind its onMessage's Write).
func TestEnqueueCloseOnFull(t *testing.T) {
	t.Parallel()
	for _, behindWrite := range []bool{false, true} {
		t.Run(fmt.Sprintf("behind a Write %v", behindWrite), func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: 32 << 10, CloseOnQueueFull: true, CloseTimeout: time.Second})
			if behindWrite && !sc.msgMu.tryLock() {
				t.Fatal("msgMu taken on a new connection")
			}
			taken, err := fillQueue(t, sc)
			if !errors.Is(err, ErrQueueFull) || !errors.Is(err, ErrClosed) || CloseStatus(err) != StatusPolicyViolation {
				t.Fatalf("refusal: %v, want ErrQueueFull, ErrClosed and 1008", err)
			}
			if err := sc.Enqueue(MessageText, []byte("late")); !errors.Is(err, ErrClosed) {
				t.Fatalf("Enqueue after the failure: %v", err)
			}
			if behindWrite {
				sc.unlockMsg()
			}
			br := bufio.NewReaderSize(nc, 64<<10)
			for i := range taken {
				if got, err := readServerFrame(br); err != nil || got[2:] != fmt.Sprintf("%-100d", i) {
					t.Fatalf("message %d of %d: %q, %v", i, taken, got, err)
				}
			}
			want := "\x88" + string(rune(2+len(queueFullReason))) + "\x03\xf0" + queueFullReason
			if got, err := readServerFrame(br); err != nil || got != want {
				t.Fatalf("after the messages: %q, %v; want the close frame %q", got, err, want)
			}
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("after the close frame: %v, want the end of the stream", err)
			}
			// The close frame went out, unanswered: the end is the failure.
			const end = "websocket: read: connection closed: " + queueFullReason + ": connection failed with 1008 (policy violation)"
			if _, _, err := sc.Read(context.Background()); err == nil || err.Error() != end || !errors.Is(err, ErrQueueFull) || CloseStatus(err) != StatusPolicyViolation {
				t.Errorf("Read at the end: %v (close status %d), want ErrQueueFull, 1008, and %q", err, CloseStatus(err), end)
			}
		})
	}
}

// TestQueueFullCloseUnsent: a full queue's close frame, queued behind a
// Write stuck on a peer that reads nothing, never goes out: when the close
// timeout closes the connection, its end says so, and carries the queue's
// failure without a close code. It reported 1008, which the peer never
// got.
func TestQueueFullCloseUnsent(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: 32 << 10, CloseOnQueueFull: true, CloseTimeout: 300 * time.Millisecond})
	wrote := stuckWrite(t, nc, sc)
	if _, err := fillQueue(t, sc); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("refusal: %v, want ErrQueueFull", err)
	}
	const cause = "connection closed: " + queueFullReason + ": the closing handshake timed out: the close frame could not be sent"
	if err := <-wrote; err == nil || err.Error() != "websocket: write: "+cause || !errors.Is(err, ErrQueueFull) || CloseStatus(err) != -1 {
		t.Errorf("the stuck Write: %v (close status %d), want ErrQueueFull, no close code, and %q", err, CloseStatus(err), "websocket: write: "+cause)
	}
	if _, _, err := sc.Read(context.Background()); err == nil || err.Error() != "websocket: read: "+cause {
		t.Errorf("Read at the end: %v, want %q", err, "websocket: read: "+cause)
	}
}

const broadcastLimit = 64 << 10

// TestBroadcast: one prepared message goes to connections with every kind
// of compression, compressed once per window size; a connection that
// reads nothing does not hold the others up; and a connection that keeps
// its compression context can refer back to the broadcast text.
func TestBroadcast(t *testing.T) {
	t.Parallel()
	type peer struct {
		name string
		opts *DialOptions
	}
	peers := []peer{
		{"plain", nil},
		{"no takeover", &DialOptions{Compression: CompressionNoContextTakeover}},
		{"takeover", &DialOptions{Compression: CompressionContextTakeover}},
		{"takeover 10 bits", &DialOptions{Compression: CompressionContextTakeover, CompressionWindowBits: 10}},
	}
	var mu sync.Mutex
	var served []*Conn
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{Compression: CompressionContextTakeover, WriteQueueLimit: broadcastLimit})
		if err != nil {
			return
		}
		mu.Lock()
		served = append(served, c)
		mu.Unlock()
	}))
	defer s.Close()
	// The handler records a connection after Accept has answered, so the
	// next dial waits for it: served[i] is then peers[i]'s.
	waitServed := func(n int) {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			mu.Lock()
			got := len(served)
			mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d connections accepted in 10s, want %d", got, n)
			}
		}
	}
	var clients []*Conn
	var wire []*countingConn
	for _, p := range peers {
		opts := p.opts
		if opts == nil {
			opts = &DialOptions{}
		}
		tr, cc := wireTransport()
		opts.HTTPClient = &http.Client{Transport: tr}
		clients = append(clients, dialT(t, wsURL(s), opts))
		wire = append(wire, <-cc)
		waitServed(len(clients))
	}
	stalled := stalledClient(t, s.Listener.Addr().String())
	waitServed(len(peers) + 1)
	defer func() {
		for _, c := range served {
			c.CloseNow()
		}
	}()
	stalledConn := served[len(peers)] // accepted last
	// Small socket buffers, or the kernel could take in all 4.3 MB of the
	// broadcasts (the send buffer grows up to 4 MiB) and the stalled
	// peer's queue would never fill.
	stalled.(*net.TCPConn).SetReadBuffer(16 << 10)
	stalledConn.tr.rw.(*net.TCPConn).SetWriteBuffer(16 << 10)
	// Random hex: it compresses to about half by its letters alone, and
	// holds no repeats, so that the same text again shrinks to a few bytes
	// only by referring to the broadcast copy.
	raw := make([]byte, 4300)
	rand.Read(raw)
	text := []byte(hex.EncodeToString(raw))
	pm, err := NewPreparedMessage(MessageText, text)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 500
	// The readers read as the broadcasts go out; the stalled peer never.
	var readers sync.WaitGroup
	perMessage := make([]int64, len(peers))
	for i, p := range peers {
		readers.Add(1)
		go func() {
			defer readers.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			before := wire[i].read.Load()
			for r := range rounds {
				_, got, err := clients[i].Read(ctx)
				if err != nil || !bytes.Equal(got, text) {
					t.Errorf("%s: broadcast %d: %d bytes, %v", p.name, r, len(got), err)
					return
				}
			}
			perMessage[i] = (wire[i].read.Load() - before) / rounds
		}()
	}
	start := time.Now()
	full := 0
	for range rounds {
		if n := pm.Broadcast(served...); n < len(peers) {
			t.Fatalf("Broadcast reached %d connections, want at least the %d readers", n, len(peers))
		} else if n == len(peers) {
			full++
		}
		// Flow control, as a server would do it: the readers' queues
		// drain before the next message; the stalled one's never does.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Microsecond) {
			drained := true
			for _, c := range served {
				if c != stalledConn && c.Buffered() > broadcastLimit/2 {
					drained = false
				}
			}
			if drained {
				break
			}
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("%d broadcasts took %v: one waited for the stalled peer", rounds, d)
	}
	if full == 0 {
		t.Error("the stalled peer's queue never filled")
	}
	readers.Wait()
	for i, p := range peers {
		compressed := p.opts != nil
		if compressed && perMessage[i] > int64(len(text))*6/10 {
			t.Errorf("%s: %d bytes a message on the wire for %d of text, want it compressed", p.name, perMessage[i], len(text))
		}
		if !compressed && perMessage[i] < int64(len(text)) {
			t.Errorf("%s: %d bytes a message on the wire, want the text whole", p.name, perMessage[i])
		}
	}
	if pm.comp[15-minWindowBits].p == nil || pm.comp[10-minWindowBits].p == nil {
		t.Error("the 15- and 10-bit compressed forms were not made")
	}
	for bits := minWindowBits; bits <= maxWindowBits; bits++ {
		if bits != 15 && bits != 10 && pm.comp[bits-minWindowBits].p != nil {
			t.Errorf("a %d-bit compressed form was made that no connection uses", bits)
		}
	}
	// With takeover, the broadcast text is in the connection's window:
	// the same text written on its own refers back to it (as much of it
	// as the window holds).
	for i, p := range peers {
		if p.opts == nil || p.opts.Compression != CompressionContextTakeover {
			continue
		}
		again := text
		if bits := p.opts.CompressionWindowBits; bits != 0 {
			again = text[len(text)-(1<<bits)+100:]
		}
		sc := served[i]
		before := wire[i].read.Load()
		if err := sc.Write(context.Background(), MessageText, again); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, got, err := clients[i].Read(ctx)
		cancel()
		if err != nil || !bytes.Equal(got, again) {
			t.Fatalf("%s: Write after the broadcasts: %d bytes, %v", p.name, len(got), err)
		}
		// 258 bytes at most a back-reference, a few bits each, and a
		// block header.
		if n := wire[i].read.Load() - before; n > int64(len(again))/50+20 {
			t.Errorf("%s: %d bytes of broadcast text again took %d bytes on the wire, want back-references", p.name, len(again), n)
		}
	}
	stalled.Close()
}

// TestEnqueueRaces sends one frame from each of two goroutines at once,
// round after round for a few seconds, to a peer that reads each round's
// two frames before the next; a frame left in the queue or the backlog
// with nobody to write it stalls the round. The races it looks for (a
// backlog set as the holder of msgMu let it go; Broadcast's writer letting
// the frame lock go as a timer found it taken) take thousands to a hundred
// thousand rounds to show: without their fixes, it failed 2 runs of 3.
func TestEnqueueRaces(t *testing.T) {
	t.Parallel()
	pm, err := NewPreparedMessage(MessageText, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		send func(c *Conn) error
	}{
		{"Enqueue", func(c *Conn) error { return c.Enqueue(MessageText, []byte("b")) }},
		{"Broadcast", broadcastTo(pm)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, sc := stalledPair(t, nil)
			br := bufio.NewReader(nc)
			errc := make(chan error, 1)
			rounds := 0
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); rounds++ {
				go func() { errc <- sc.Enqueue(MessageText, []byte("e")) }()
				if err := tc.send(sc); err != nil {
					t.Fatal(err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				got := make(map[string]int)
				for range 2 {
					f, err := readServerFrame(br)
					if err != nil {
						t.Fatalf("round %d: %d of 2 frames (%v), then %v; %d bytes still buffered", rounds, len(got), got, err, sc.Buffered())
					}
					got[f]++
				}
				if got["\x81\x01e"] != 1 || got["\x81\x01b"] != 1 {
					t.Fatalf("round %d: frames %v", rounds, got)
				}
			}
			t.Logf("%d rounds", rounds)
		})
	}
}

// TestBacklogAfterCloseFrame: a message Enqueue held back behind an open
// Writer never follows the close frame on the wire, whether the close
// frame came from CloseWrite or from a full queue.
func TestBacklogAfterCloseFrame(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"CloseWrite", "full"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: 4 << 10, CloseOnQueueFull: true})
			w, err := sc.Writer(context.Background(), MessageBinary)
			if err != nil {
				t.Fatal(err)
			}
			if err := sc.Enqueue(MessageText, []byte("held back")); err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			want := "\x88\x02\x03\xe8"
			if how == "CloseWrite" {
				if err := sc.CloseWrite(StatusNormalClosure, ""); err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
			} else {
				var err error
				for i := 0; err == nil && i < 1000; i++ {
					err = sc.Enqueue(MessageBinary, make([]byte, 100))
				}
				if CloseStatus(err) != StatusPolicyViolation {
					t.Fatalf("filling the queue: %v", err)
				}
				want = "\x88" + string(rune(2+len(queueFullReason))) + "\x03\xf0" + queueFullReason
			}
			if err := w.Close(); err == nil {
				t.Errorf("Writer.Close after the close frame: nil error")
			}
			br := bufio.NewReader(nc)
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if got, err := readServerFrame(br); err != nil || got != want {
				t.Fatalf("first frame: %q, %v; want the close frame %q", got, err, want)
			}
			nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if b, err := br.ReadByte(); err == nil {
				rest, _ := br.Peek(br.Buffered())
				t.Fatalf("after the close frame: %.60q", append([]byte{b}, rest...))
			}
		})
	}
}

// TestBacklogBeforeCloseFrame: a message Enqueue held back behind a
// whole message being written (a Write under way, or an Enqueue
// compressing; no Writer open) goes out before the close frame of a Close
// or CloseWrite that comes before that message is done. It was dropped:
// Enqueue had returned nil, and a chat server that enqueued a last line
// and closed lost the line whenever a broadcast held the message lock.
func TestBacklogBeforeCloseFrame(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"CloseWrite", "Close"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPair(t, nil)
			if !sc.msgMu.tryLock() { // as a Write under way
				t.Fatal("msgMu taken on a new connection")
			}
			if err := sc.Enqueue(MessageText, []byte("last line")); err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			closed := make(chan error, 1)
			if how == "CloseWrite" {
				closed <- sc.CloseWrite(StatusNormalClosure, "")
			} else {
				go func() { closed <- sc.Close(StatusNormalClosure, "") }()
				waitCloseQueued(t, sc)
			}
			sc.unlockMsg()
			br := bufio.NewReader(nc)
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			for _, want := range []string{"\x81\x09last line", "\x88\x02\x03\xe8"} {
				if got, err := readServerFrame(br); err != nil || got != want {
					t.Fatalf("got %q, %v; want %q", got, err, want)
				}
			}
			nc.Write([]byte("\x88\x82\x00\x00\x00\x00\x03\xe8"))
			if err := <-closed; err != nil {
				t.Errorf("%s: %v", how, err)
			}
		})
	}
}

// TestEnqueueRefusedAfterBacklog: an Enqueue that takes the message lock,
// joins to the queue what an earlier Enqueue held back, and is itself
// refused as too large, has the queue written. Over TLS, which has no
// socket to write the queue to at once before refusing, the backlog's
// message waited in the queue until the next write.
func TestEnqueueRefusedAfterBacklog(t *testing.T) {
	t.Parallel()
	s, conns := acceptOneTLS(t)
	nc := dialRawTLS(t, s.Listener.Addr().String(), 0)
	sc := <-conns
	if !sc.msgMu.tryLock() { // as a Write under way
		t.Fatal("message lock taken on a new connection")
	}
	if err := sc.Enqueue(MessageText, []byte("a")); err != nil {
		t.Fatal(err)
	}
	// The Write lets go having looked for a backlog before there was one.
	sc.msgMu.unlock()
	if err := sc.Enqueue(MessageBinary, make([]byte, defaultQueueLimit)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Enqueue of a message over the limit: %v, want ErrQueueFull", err)
	}
	nc.SetReadDeadline(time.Now().Add(time.Second))
	if got, err := readServerFrame(nc); err != nil || got != "\x81\x01a" {
		t.Errorf("frame %q, %v; want the held-back message", got, err)
	}
}

// TestEnqueueOrderAfterBacklog: messages that one goroutine enqueues one
// after the other arrive in that order, even when the first was held back
// behind another message whose writer let msgMu go just after its last
// look at the backlog, and the second then found msgMu free. The test
// plays that writer itself, taking msgMu and letting it go as unlockMsg
// does between its two looks.
func TestEnqueueOrderAfterBacklog(t *testing.T) {
	t.Parallel()
	pm, err := NewPreparedMessage(MessageText, []byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		second func(c *Conn) error
	}{
		{"Enqueue", func(c *Conn) error { return c.Enqueue(MessageText, []byte("second")) }},
		{"EnqueuePrepared", func(c *Conn) error { return c.EnqueuePrepared(pm) }},
		{"Broadcast", broadcastTo(pm)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPair(t, nil)
			if !sc.msgMu.tryLock() {
				t.Fatal("msgMu taken on a new connection")
			}
			if err := sc.Enqueue(MessageText, []byte("first")); err != nil {
				t.Fatalf("first Enqueue: %v", err)
			}
			sc.msgMu.unlock() // after the holder's last look at the backlog
			if err := tc.second(sc); err != nil {
				t.Fatalf("second: %v", err)
			}
			br := bufio.NewReader(nc)
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			for _, want := range []string{"\x81\x05first", "\x81\x06second"} {
				if got, err := readServerFrame(br); err != nil || got != want {
					t.Fatalf("got %q, %v; want %q", got, err, want)
				}
			}
		})
	}
}

// TestQueueHeldWithinLimit: what the queue of a connection whose peer
// reads nothing holds in memory, its buffers' capacity and not only the
// bytes in them, stays within WriteQueueLimit: neither the growth of a
// slice nor a pooled buffer that a connection with a higher limit grew
// takes it past. The pool is primed with such buffers first.
func TestQueueHeldWithinLimit(t *testing.T) {
	for _, limit := range []int{16 << 10, 48 << 10, 64 << 10, 100 << 10} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			for range 8 {
				b := make([]byte, 0, 2*defaultQueueLimit)
				putPend(&b)
			}
			_, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: limit})
			if _, err := fillQueue(t, sc); !errors.Is(err, ErrQueueFull) {
				t.Fatalf("filling the queue: %v", err)
			}
			sc.pendMu.Lock()
			held := 0
			if sc.pend != nil {
				held += cap(*sc.pend)
			}
			if b := sc.backlog.Load(); b != nil {
				held += cap(*b)
			}
			buffered := sc.bufferedLocked()
			sc.pendMu.Unlock()
			if held > limit {
				t.Errorf("the queue holds buffers of %d bytes (%d of them queued), past the limit of %d", held, buffered, limit)
			}
		})
	}
}

// TestBufferedAfterClose: once the frames a connection held are written,
// or dropped as the connection closed, Buffered reports 0: after CloseWrite
// whose close frame took the queue with it and was read, after CloseNow on
// a queue that nobody was writing yet, and after CloseNow on a queue that a
// writer was stuck writing to a peer that read nothing. The first two hold
// the frame lock while the queue fills and stop its timer, so that nobody
// writes the queue before the close.
func TestBufferedAfterClose(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"CloseWrite", "CloseNow", "CloseNow while writing"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: 64 << 10})
			nc.(*net.TCPConn).SetReadBuffer(4 << 10)
			sc.tr.rw.(*net.TCPConn).SetWriteBuffer(4 << 10)
			if how != "CloseNow while writing" {
				// Nobody writes the queue: the timer finds the frame
				// lock taken, and is stopped before it is let go.
				sc.frameMu.tryLock()
			}
			taken, err := fillQueue(t, sc)
			if !errors.Is(err, ErrQueueFull) {
				t.Fatalf("filling the queue: %v", err)
			}
			if how != "CloseNow while writing" {
				sc.pendMu.Lock()
				sc.pendTimer.Stop()
				sc.pendMu.Unlock()
				sc.frameMu.unlock()
			} else {
				// Have the queue's timer write it, and get stuck.
				sc.pendMu.Lock()
				sc.armFlushTimerLocked(0)
				sc.pendMu.Unlock()
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
					sc.pendMu.Lock()
					writing := sc.flusher && sc.inflight > 0
					sc.pendMu.Unlock()
					if writing {
						break
					}
					if sc.Buffered() == 0 {
						// The socket took it all: fill the queue again.
						fillQueue(t, sc)
					}
					if time.Now().After(deadline) {
						t.Fatal("nobody writes the queue")
					}
				}
			}
			if how != "CloseWrite" {
				sc.CloseNow()
			} else {
				done := make(chan error, 1)
				go func() { done <- sc.CloseWrite(StatusNormalClosure, "") }()
				br := bufio.NewReaderSize(nc, 64<<10)
				for i := range taken {
					if _, err := readServerFrame(br); err != nil {
						t.Fatalf("message %d of %d: %v", i, taken, err)
					}
				}
				if got, err := readServerFrame(br); err != nil || got != "\x88\x02\x03\xe8" {
					t.Fatalf("after the messages: %q, %v; want the close frame", got, err)
				}
				if err := <-done; err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
			}
			// A writer stuck on the network lets go of its count as
			// its write fails, just after CloseNow returns.
			for deadline := time.Now().Add(5 * time.Second); sc.Buffered() != 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("Buffered %d after %s, want 0", sc.Buffered(), how)
				}
			}
		})
	}
}

// TestBufferedCountsWritersFrame: a Write that finds frames queued copies
// its own frame behind them and sends both in one write; while that write
// is stuck on a peer that reads nothing, Buffered counts the copy too (and
// so does the queue limit, which is checked against Buffered). The test
// fills the socket's buffers first, and holds the frame lock
// while a 100-byte message queues and the Write comes to wait for it.
func TestBufferedCountsWritersFrame(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: 128 << 10})
	nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	tc := sc.tr.rw.(*net.TCPConn)
	tc.SetWriteBuffer(4 << 10)
	// Fill the socket's buffers, so that the Write cannot finish.
	tc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	for {
		if _, err := tc.Write(make([]byte, 4<<10)); err != nil {
			break
		}
	}
	tc.SetWriteDeadline(time.Time{})
	sc.frameMu.tryLock()
	if err := sc.Enqueue(MessageBinary, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sc.Write(context.Background(), MessageBinary, make([]byte, 60000)) }()
	awaitFrameLockWaiter(t, sc, "the Write")
	sc.frameMu.unlock()
	const want = 2 + 100 + 4 + 60000 // both frames, headers included
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		sc.pendMu.Lock()
		writing := sc.flusher && sc.inflight > 0
		sc.pendMu.Unlock()
		if writing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Write does not write")
		}
	}
	if got := sc.Buffered(); got != want {
		t.Errorf("Buffered %d while the Write is stuck, want %d", got, want)
	}
	sc.CloseNow()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("the Write stuck at CloseNow: %v", err)
	}
}

// broadcastTo returns a send that broadcasts pm to its connection alone,
// failing when the connection did not take it.
func broadcastTo(pm *PreparedMessage) func(c *Conn) error {
	return func(c *Conn) error {
		if pm.Broadcast(c) != 1 {
			return errors.New("Broadcast did not take the message")
		}
		return nil
	}
}

// TestBroadcastSkipsNil: a nil connection among those Broadcast is given
// is skipped and not counted, as a closed one is; the others take the
// message.
func TestBroadcastSkipsNil(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, nil)
	pm, err := NewPreparedMessage(MessageText, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		conns []*Conn
		want  int
	}{
		{"none", nil, 0},
		{"nil alone", []*Conn{nil}, 0},
		{"nil around one", []*Conn{nil, sc, nil}, 1},
	} {
		if n := pm.Broadcast(tc.conns...); n != tc.want {
			t.Errorf("%s: Broadcast reached %d connections, want %d", tc.name, n, tc.want)
		}
	}
	br := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := readServerFrame(br); err != nil || got != "\x81\x02hi" {
		t.Fatalf("got %q, %v; want the one broadcast", got, err)
	}
}

// TestPreparedNotMade: a PreparedMessage that NewPreparedMessage did not
// make, the zero value or nil, is refused by WritePrepared and
// EnqueuePrepared and sent by Broadcast to no one: nothing goes out (the
// zero value has no type, and went out as a continuation frame, which the
// peer fails the connection for), and the connection goes on.
func TestPreparedNotMade(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, nil)
	const want = "websocket: write: the PreparedMessage was not made by NewPreparedMessage"
	for _, tc := range []struct {
		name string
		pm   *PreparedMessage
	}{{"zero", new(PreparedMessage)}, {"nil", nil}} {
		if err := sc.WritePrepared(context.Background(), tc.pm); err == nil || err.Error() != want {
			t.Errorf("%s: WritePrepared: %v, want %s", tc.name, err, want)
		}
		if err := sc.EnqueuePrepared(tc.pm); err == nil || err.Error() != want {
			t.Errorf("%s: EnqueuePrepared: %v, want %s", tc.name, err, want)
		}
		if n := tc.pm.Broadcast(sc); n != 0 {
			t.Errorf("%s: Broadcast reached %d connections, want 0", tc.name, n)
		}
	}
	if err := sc.Write(context.Background(), MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := readServerFrame(br); err != nil || got != "\x81\x02hi" {
		t.Fatalf("got %q, %v; want the written message alone", got, err)
	}
}

// TestEnqueueLargerThanLimit: a message that could not fit the write queue
// even empty is the caller's to send another way, not a sign that the peer
// reads slowly: Enqueue and Broadcast refuse it with ErrQueueFull and,
// even with CloseOnQueueFull, leave the connection as it was. One that
// fits the empty queue exactly is taken.
func TestEnqueueLargerThanLimit(t *testing.T) {
	t.Parallel()
	const limit = 4 << 10
	for _, closeFull := range []bool{false, true} {
		t.Run(fmt.Sprint("CloseOnQueueFull=", closeFull), func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: limit, CloseOnQueueFull: closeFull})
			big := make([]byte, limit-maxHeaderSize+1)
			err := sc.Enqueue(MessageBinary, big)
			if !errors.Is(err, ErrQueueFull) || errors.Is(err, ErrClosed) {
				t.Fatalf("Enqueue of %d bytes: %v, want ErrQueueFull alone", len(big), err)
			}
			pm, err := NewPreparedMessage(MessageBinary, big)
			if err != nil {
				t.Fatal(err)
			}
			if n := pm.Broadcast(sc); n != 0 {
				t.Fatalf("Broadcast of %d bytes reached %d connections, want 0", len(big), n)
			}
			if err := sc.Enqueue(MessageBinary, big[:len(big)-1]); err != nil {
				t.Fatalf("Enqueue of %d bytes: %v", len(big)-1, err)
			}
			br := bufio.NewReaderSize(nc, 8<<10)
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			want := "\x82\x7e" + string([]byte{byte((len(big) - 1) >> 8), byte(len(big) - 1)}) + string(big[:len(big)-1])
			got := make([]byte, len(want))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
				t.Fatalf("first frame: %.20q, %v; want the message that fits", got, err)
			}
		})
	}
}

// hookRaw is a socket's RawConn that takes no bytes: its Write runs hook
// first, as if another goroutine did something while the write was in
// the kernel, and leaves the callback uncalled.
type hookRaw struct{ hook func() }

func (r hookRaw) Control(func(uintptr)) error   { return nil }
func (r hookRaw) Read(func(uintptr) bool) error { return nil }
func (r hookRaw) Write(func(uintptr) bool) error {
	r.hook()
	return nil
}

// TestQueuePutBackWithinLimit: frames taken from the queue that did not
// go out, put back at its head in front of what queued meanwhile, stay in
// a buffer within WriteQueueLimit, as the queue's growth does elsewhere:
// after Broadcast's non-blocking write took none of them (a message
// enqueued while it was in the kernel), and after a write whose context
// had ended. Each row puts back 32,640 bytes of frames held in 32 KiB
// (the queue's growth from 4 KiB) in front of 4,004 more, under a limit
// of 40 KiB.
func TestQueuePutBackWithinLimit(t *testing.T) {
	t.Parallel()
	const limit = 40 << 10
	for _, how := range []string{"Broadcast's write", "requeue"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			_, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: limit})
			// Nobody writes the queue until the test has looked at it:
			// the frame lock is taken while it fills, and the queue's
			// timer, put in place before anything queues, waits for the
			// test to end. (A timer of the queue's own, stopped later,
			// may have fired already, and write the queue once the lock
			// is let go.)
			if !sc.frameMu.tryLock() {
				t.Fatal("the frame lock is taken on a new connection")
			}
			gate := make(chan struct{})
			defer close(gate)
			sc.pendMu.Lock()
			if sc.pendTimer != nil {
				sc.pendMu.Unlock()
				t.Fatal("the queue's timer is set on a new connection")
			}
			sc.pendTimer = time.AfterFunc(time.Hour, func() { <-gate; sc.flushQueueLater() })
			sc.pendMu.Unlock()
			for i := range 320 {
				if err := sc.Enqueue(MessageBinary, []byte(fmt.Sprintf("%-100d", i))); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					// The queue took a pooled buffer, which another test
					// may have grown (the other row's is 40 KiB): it goes
					// on in a new one of the pool's size instead.
					sc.pendMu.Lock()
					b := make([]byte, len(*sc.pend), writeBufferSize)
					copy(b, *sc.pend)
					sc.pend = &b
					sc.pendMu.Unlock()
				}
			}
			sc.pendMu.Lock()
			taken := len(*sc.pend)
			if c := cap(*sc.pend); c != 32<<10 || taken != 320*102 {
				sc.pendMu.Unlock()
				t.Fatalf("the queue holds %d bytes in %d, want %d in %d", taken, c, 320*102, 32<<10)
			}
			sc.pendMu.Unlock()
			late := make([]byte, 4000)
			enqueueLate := func() {
				if err := sc.Enqueue(MessageBinary, late); err != nil {
					t.Errorf("Enqueue while the queue was out: %v", err)
				}
			}
			if how == "requeue" {
				sc.pendMu.Lock()
				pend := sc.takePendLocked()
				sc.pendMu.Unlock()
				enqueueLate()
				sc.requeue(pend)
				sc.frameMu.unlock()
			} else {
				sc.frameMu.unlock()
				ran := false
				sc.tr.raw = hookRaw{func() { ran = true; enqueueLate() }}
				sc.flushQueueNow()
				if !ran {
					t.Skip("writeNow does not write on this platform")
				}
			}
			sc.pendMu.Lock()
			if sc.pend == nil {
				sc.pendMu.Unlock()
				t.Fatal("the queue went out, or was dropped")
			}
			got, held := len(*sc.pend), cap(*sc.pend)
			sc.pendMu.Unlock()
			if want := taken + 4 + len(late); got != want {
				t.Errorf("the queue holds %d bytes, want %d", got, want)
			}
			if held > limit {
				t.Errorf("the queue holds its %d bytes in a buffer of %d, past the limit of %d", got, held, limit)
			}
		})
	}
}

// TestCloseRacingFullQueue: a queue that fills while Close waits for the
// frame lock does not fail the connection with 1008 behind Close's back:
// the connection is closing already, so the message that finds the queue
// full is refused with ErrQueueFull alone, Close's close frame goes
// behind the messages taken, and the close code the connection reports
// afterwards is the one that went on the wire. The test plays a writer
// that holds the frame lock and writes the queue before letting go.
func TestCloseRacingFullQueue(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: 4 << 10, CloseOnQueueFull: true, CloseTimeout: 5 * time.Second})
	if !sc.frameMu.tryLock() {
		t.Fatal("frame lock taken on a new connection")
	}
	sc.pendMu.Lock()
	sc.flusher = true
	sc.pendMu.Unlock()
	closed := make(chan error, 1)
	go func() { closed <- sc.Close(StatusNormalClosure, "bye") }()
	awaitFrameLockWaiter(t, sc, "Close")
	taken, refusal := fillQueue(t, sc)
	sc.flushUnlock(context.Background())
	br := bufio.NewReader(nc)
	for i := range taken {
		if got, err := readServerFrame(br); err != nil || got[2:] != fmt.Sprintf("%-100d", i) {
			t.Fatalf("message %d of %d: %q, %v", i, taken, got, err)
		}
	}
	frame, err := readServerFrame(br)
	if err != nil || len(frame) < 4 || frame[0] != 0x88 {
		t.Fatalf("after the messages: %q, %v; want a close frame", frame, err)
	}
	if _, err := io.WriteString(nc, clientFrame(0x88, frame[2:])); err != nil {
		t.Fatal(err)
	}
	if err := await(t, closed, "the end of Close"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	sent := StatusCode(frame[2])<<8 | StatusCode(frame[3])
	later := CloseStatus(sc.Write(context.Background(), MessageText, []byte("late")))
	if refused := CloseStatus(refusal); refused != -1 && refused != sent || later != sent {
		t.Errorf("close %d on the wire; the refused Enqueue reports %d, a later Write %d", sent, refused, later)
	}
	if frame != "\x88\x05\x03\xe8bye" {
		t.Errorf("close frame %q, want Close's", frame)
	}
	if !errors.Is(refusal, ErrQueueFull) || errors.Is(refusal, ErrClosed) {
		t.Errorf("refusal: %v, want ErrQueueFull alone", refusal)
	}
}

// awaitFrameLockWaiter waits until a call, what, waits for c's frame
// lock, at most 5 s.
func awaitFrameLockWaiter(t *testing.T, c *Conn, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); c.frameMu.queued() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not wait for the frame lock", what)
		}
	}
}

// TestEnqueueBurst: a burst of Enqueues is written while it lasts, the
// socket's buffers filling before the queue: the queue refuses only once
// the socket takes nothing more. Each Enqueue re-armed the queue's timer,
// which kept it from firing while the burst lasted, so nothing was
// written: a 64 KiB queue refused its 66th 1000-byte message with the
// socket empty, and with CloseOnQueueFull failed a peer that read all it
// was sent with 1008. That failed every burst; a burst whose writer the
// system preempts with the queue in hand may still be refused, which a
// busy machine does once in a few hundred (see burstYields): each subtest
// fails when three bursts in a row are refused.
func TestEnqueueBurst(t *testing.T) {
	t.Parallel()
	const limit, tries = 64 << 10, 3
	msg := func(i int) []byte { return fmt.Appendf(nil, "%-1000d", i) }
	t.Run("stalled peer", func(t *testing.T) {
		t.Parallel()
		for try := 1; ; try++ {
			nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: limit})
			taken := 0
			for ; taken < 1<<20; taken++ {
				if err := sc.Enqueue(MessageBinary, msg(taken)); err != nil {
					if !errors.Is(err, ErrQueueFull) {
						t.Fatalf("Enqueue %d: %v, want ErrQueueFull", taken, err)
					}
					break
				}
			}
			// Loopback's buffers take far more than 32 KiB from a peer
			// that reads nothing.
			if taken*1000 < limit+32<<10 {
				t.Logf("burst %d: the queue refused message %d, having taken %d bytes, holding %d", try, taken, taken*1000, sc.Buffered())
				if try == tries {
					t.Fatalf("%d bursts in a row refused early", tries)
				}
				continue
			}
			br := bufio.NewReaderSize(nc, 64<<10)
			for i := range taken {
				got := make([]byte, 4+1000)
				if _, err := io.ReadFull(br, got); err != nil || string(got) != "\x82\x7e\x03\xe8"+string(msg(i)) {
					t.Fatalf("message %d of %d: %.20q, %v", i, taken, got, err)
				}
			}
			return
		}
	})
	t.Run("CloseOnQueueFull", func(t *testing.T) {
		t.Parallel()
		s, conns := acceptOne(t, &AcceptOptions{WriteQueueLimit: limit, CloseOnQueueFull: true})
		const n = 100 // 100 KB: the queue and the socket hold it, read or not
		burst := func(sc *Conn) error {
			for i := range n {
				if err := sc.Enqueue(MessageBinary, msg(i)); err != nil {
					return fmt.Errorf("Enqueue %d of %d, to a peer that reads: %w", i, n, err)
				}
			}
			return nil
		}
		for try := 1; ; try++ {
			c := dialT(t, wsURL(s), nil)
			sc := <-conns
			if err := burst(sc); err != nil {
				sc.CloseNow()
				t.Logf("burst %d: %v", try, err)
				if try == tries {
					t.Fatalf("%d bursts in a row refused early", tries)
				}
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range n {
				if _, p, err := c.Read(ctx); err != nil || string(p) != string(msg(i)) {
					t.Fatalf("message %d of %d: %.20q, %v", i, n, p, err)
				}
			}
			sc.CloseNow()
			return
		}
	})
}

// TestEnqueueBurstOneProcessor: on one processor, over TLS, a burst of
// Enqueues to a peer that reads all it is sent is taken whole. Over TLS
// the queue cannot be written without waiting, as a plain socket's is
// before the queue refuses: nothing wrote it while the burst lasted,
// since the timer's goroutine had no processor to run on, and the queue
// refused the 522nd 1000-byte message with the socket empty (with
// CloseOnQueueFull, failing the peer with 1008). The burst now yields
// before a refusal, a few times at most: once was not enough under -race
// beside other tests (2 runs in 30 refused the 522nd message). A writer
// whose thread the system deschedules in its write call still leaves the
// burst refused, 8 runs in 600 beside three busy loops on two processors,
// as TestEnqueueBurst's may be: the test fails when three bursts in a row
// are refused. Not parallel: it sets GOMAXPROCS.
func TestEnqueueBurstOneProcessor(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const tries = 3
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "TCP", true: "TLS"}[tlsOn], func(t *testing.T) {
			for try := 1; ; try++ {
				refused := enqueueBurstOneProcessor(t, tlsOn)
				if refused == nil {
					return
				}
				t.Logf("burst %d: %v", try, refused)
				if try == tries {
					t.Fatalf("%d bursts in a row refused early", tries)
				}
			}
		})
	}
}

// enqueueBurstOneProcessor is one burst of TestEnqueueBurstOneProcessor:
// it returns the refusal of a message, if the queue refused one, and
// fails the test if the peer did not get every message taken.
func enqueueBurstOneProcessor(t *testing.T, tlsOn bool) error {
	conns := make(chan *Conn, 1)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := Accept(w, r, &AcceptOptions{CloseOnQueueFull: true}); err == nil {
			conns <- c
		}
	}))
	var nc net.Conn
	if tlsOn {
		s.StartTLS()
		defer s.Close()
		nc = dialRawTLS(t, s.Listener.Addr().String(), 0)
	} else {
		s.Start()
		defer s.Close()
		nc = rawClient(t, s.Listener.Addr().String())
	}
	sc := <-conns
	defer sc.CloseNow()
	const n, size = 1000, 1000 // 1 MB: twice the queue's default limit
	got := make(chan error, 1)
	go func() {
		br := bufio.NewReader(nc)
		for i := range n {
			frame := make([]byte, 4+size)
			if _, err := io.ReadFull(br, frame); err != nil {
				got <- err
				return
			}
			if want := "\x82\x7e\x03\xe8" + fmt.Sprintf("%-1000d", i); string(frame) != want {
				got <- fmt.Errorf("message %d: %.20q", i, frame)
				return
			}
		}
		got <- nil
	}()
	for i := range n {
		if err := sc.Enqueue(MessageBinary, fmt.Appendf(nil, "%-1000d", i)); err != nil {
			return fmt.Errorf("Enqueue %d of %d, to a peer that reads all: %w", i, n, err)
		}
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the peer still reading after 10 s")
	}
	return nil
}

// TestEnqueueCompressedTooLarge: a message that compressed would not fit
// the queue even empty is refused without being compressed whole: Enqueue
// never waits. 64 MiB of random bytes took 1.4 s and 319 MiB of
// allocations to be refused. The compressor is left fit for the next
// message, with context takeover too.
func TestEnqueueCompressedTooLarge(t *testing.T) {
	big := make([]byte, 64<<20)
	rand.Read(big)
	for _, mode := range []CompressionMode{CompressionNoContextTakeover, CompressionContextTakeover} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			s, conns := acceptOne(t, &AcceptOptions{Compression: mode})
			c := dialT(t, wsURL(s), &DialOptions{Compression: mode})
			defer c.CloseNow()
			sc := <-conns
			defer sc.CloseNow()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := sc.Enqueue(MessageBinary, big)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrQueueFull) {
				t.Fatalf("Enqueue of 64 MiB: %v, want ErrQueueFull", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
				t.Errorf("refusing 64 MiB allocated %d MiB", n>>20)
			}
			msg := bytes.Repeat([]byte("compressible "), 100)
			if err := sc.Enqueue(MessageText, msg); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
				t.Fatalf("the next message: %.40q, %v", p, err)
			}
		})
	}
}

// TestBacklogDroppedOnClose: what Enqueue held back behind an open Writer
// is dropped when the connection closes; it was held, and counted by
// Buffered, for as long as the Conn lived unless the Writer was closed.
func TestBacklogDroppedOnClose(t *testing.T) {
	t.Parallel()
	_, sc := stalledPair(t, nil)
	w, err := sc.Writer(context.Background(), MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := sc.Enqueue(MessageBinary, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if sc.Buffered() < 1000 || sc.backlog.Load() == nil {
		t.Fatalf("Buffered %d with a message held back", sc.Buffered())
	}
	sc.CloseNow()
	if n := sc.Buffered(); n != 0 || sc.backlog.Load() != nil {
		t.Errorf("after CloseNow, Buffered %d, backlog held: %v", n, sc.backlog.Load() != nil)
	}
}

// TestEnqueueClosedCompressed: Enqueue of a message to compress, on a
// connection with context takeover that has closed, is refused with
// ErrClosed. It panicked: the refusal reset the connection's compressor,
// which closing had dropped.
func TestEnqueueClosedCompressed(t *testing.T) {
	t.Parallel()
	s := echoServer(t, &AcceptOptions{Compression: CompressionContextTakeover}, nil)
	c := dialT(t, wsURL(s), &DialOptions{Compression: CompressionContextTakeover})
	msg := []byte(strings.Repeat("abc", 1000))
	if err := c.Write(context.Background(), MessageText, msg); err != nil {
		t.Fatal(err)
	}
	c.CloseNow()
	if err := c.Enqueue(MessageText, msg); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after CloseNow: %v, want ErrClosed", err)
	}
}

// TestBroadcastCountsExact: three goroutines send numbered messages at
// once to receivers with every kind of compression, each by Broadcast,
// EnqueuePrepared and Enqueue in turn, while the server closes the
// receivers one after the other part way through. Every message is
// received exactly as many times as the sends reported it taken, each
// receiver gets each sender's messages in the order they were sent, and
// nothing follows the close (a receiver's Read ends with 1000).
func TestBroadcastCountsExact(t *testing.T) {
	t.Parallel()
	dials := []*DialOptions{
		nil,
		{Compression: CompressionNoContextTakeover},
		{Compression: CompressionContextTakeover},
		{Compression: CompressionContextTakeover, CompressionWindowBits: 9},
		{Compression: CompressionNoContextTakeover, CompressionWindowBits: 10},
	}
	s, conns := acceptOne(t, &AcceptOptions{Compression: CompressionContextTakeover, CompressionThreshold: 16})
	var clients, servers []*Conn
	for _, o := range dials {
		clients = append(clients, dialT(t, wsURL(s), o))
		servers = append(servers, <-conns) // accepted in the order dialed
	}
	defer func() {
		for _, c := range servers {
			c.CloseNow()
		}
	}()
	const senders, per = 3, 300
	var taken, got [senders][per]atomic.Int32
	var readers sync.WaitGroup
	for i, c := range clients {
		readers.Add(1)
		go func() {
			defer readers.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			last := [senders]int{-1, -1, -1}
			for {
				_, p, err := c.Read(ctx)
				if err != nil {
					if CloseStatus(err) != StatusNormalClosure {
						t.Errorf("receiver %d: %v, want the close 1000", i, err)
					}
					return
				}
				var s, q int
				if _, err := fmt.Sscanf(string(p), "%d %d", &s, &q); err != nil || s < 0 || s >= senders || q <= last[s] || q >= per {
					t.Errorf("receiver %d: message %.30q after sender %d's message %d", i, p, s, last[s])
					return
				}
				last[s] = q
				got[s][q].Add(1)
			}
		}()
	}
	// Each sender sends half its messages, then the rest as the
	// receivers close, all at once.
	var sends, halfway sync.WaitGroup
	closing := make(chan struct{})
	for s := range senders {
		sends.Add(1)
		halfway.Add(1)
		go func() {
			defer sends.Done()
			for q := range per {
				if q == per/2 {
					halfway.Done()
					<-closing
				}
				msg := fmt.Appendf(nil, "%d %d %s", s, q, strings.Repeat("broadcast ", q%20))
				pm, err := NewPreparedMessage(MessageText, msg)
				if err != nil {
					t.Error(err)
					return
				}
				n := 0
				switch q % 3 {
				case 0:
					n = pm.Broadcast(servers...)
				case 1:
					for _, c := range servers {
						if c.EnqueuePrepared(pm) == nil {
							n++
						}
					}
				case 2:
					for _, c := range servers {
						if c.Enqueue(MessageText, msg) == nil {
							n++
						}
					}
				}
				taken[s][q].Store(int32(n))
			}
		}()
	}
	halfway.Wait()
	var closes sync.WaitGroup
	for _, c := range servers {
		closes.Add(1)
		go func() {
			defer closes.Done()
			if err := c.Close(StatusNormalClosure, ""); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	close(closing)
	sends.Wait()
	closes.Wait()
	readers.Wait()
	partly := 0
	for s := range senders {
		for q := range per {
			if n := taken[s][q].Load(); n > 0 && int(n) < len(servers) {
				partly++
			}
			if n, m := taken[s][q].Load(), got[s][q].Load(); n != m {
				t.Errorf("sender %d's message %d: taken by %d receivers, received by %d", s, q, n, m)
			}
		}
	}
	t.Logf("%d messages taken by some receivers only, as they closed", partly)
}

// TestPreparedBehindOpenMessage: a PreparedMessage sent while another
// message is open (a Writer here) waits behind it and goes out compressed
// when the connection compresses without context takeover, since its
// compressed form depends on nothing the connection holds; with context
// takeover the connection's compressor, busy with the open message, would
// have to remember its text, so it goes out uncompressed.
func TestPreparedBehindOpenMessage(t *testing.T) {
	t.Parallel()
	text := strings.Repeat("prepared once, sent to many; ", 20)
	for _, tc := range []struct {
		mode CompressionMode
		b0   byte // the prepared message's first header byte
	}{
		{CompressionNoContextTakeover, 0xc1},
		{CompressionContextTakeover, 0x81},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			t.Parallel()
			s, conns := acceptOne(t, &AcceptOptions{Compression: tc.mode})
			nc := deflateClient(t, s.Listener.Addr().String())
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			sc := <-conns
			defer sc.CloseNow()
			pm, err := NewPreparedMessage(MessageText, []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			w, err := sc.Writer(context.Background(), MessageBinary)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("open"))
			if err := sc.EnqueuePrepared(pm); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(nc)
			if f, err := readServerFrame(br); err != nil || f != "\x82\x04open" {
				t.Fatalf("the open message: %q, %v", f, err)
			}
			var head [2]byte
			if _, err := io.ReadFull(br, head[:]); err != nil {
				t.Fatal(err)
			}
			if head[0] != tc.b0 || head[1] > 126 {
				t.Fatalf("the prepared message's header %x, want %02x and a payload under 64 KiB", head, tc.b0)
			}
			size := int(head[1])
			if size == 126 {
				var ext [2]byte
				if _, err := io.ReadFull(br, ext[:]); err != nil {
					t.Fatal(err)
				}
				size = int(ext[0])<<8 | int(ext[1])
			}
			payload := make([]byte, size)
			if _, err := io.ReadFull(br, payload); err != nil {
				t.Fatal(err)
			}
			if tc.b0&0x40 != 0 {
				if payload, err = io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(payload), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")))); err != nil {
					t.Fatal(err)
				}
			}
			if string(payload) != text {
				t.Fatalf("the prepared message: %q, want %q", payload, text)
			}
		})
	}
}
