package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestReaderAfterFailure: a Reader whose message failed part way (bad
// UTF-8, its context ending) reports the connection's end on the next
// Read, not io.EOF, which made the cut message read as whole.
func TestReaderAfterFailure(t *testing.T) {
	t.Parallel()
	t.Run("bad UTF-8", func(t *testing.T) {
		t.Parallel()
		nc, sc := stalledPair(t, &AcceptOptions{CloseTimeout: 200 * time.Millisecond})
		io.WriteString(nc, clientFrame(0x01, "abc")+clientFrame(0x80, "\xff"))
		_, r, err := sc.Reader(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 3)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(make([]byte, 10)); CloseStatus(err) != StatusInvalidFramePayloadData {
			t.Fatalf("Read of the bad byte: %v, want 1007", err)
		}
		if n, err := r.Read(make([]byte, 10)); err == nil || err == io.EOF || !errors.Is(err, ErrClosed) {
			t.Errorf("Read after the failure: %d, %v; want the connection's end", n, err)
		}
	})
	t.Run("context", func(t *testing.T) {
		t.Parallel()
		nc, sc := stalledPair(t, &AcceptOptions{CloseTimeout: 200 * time.Millisecond})
		io.WriteString(nc, clientFrame(0x02, "abc"))
		ctx, cancel := context.WithCancel(context.Background())
		_, r, err := sc.Reader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 3)); err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := r.Read(make([]byte, 10)); CloseStatus(err) != StatusPolicyViolation {
			t.Fatalf("Read as the context ends: %v, want 1008", err)
		}
		if n, err := r.Read(make([]byte, 10)); err == nil || err == io.EOF || !errors.Is(err, ErrClosed) {
			t.Errorf("Read after the failure: %d, %v; want the connection's end", n, err)
		}
	})
}

// TestReadContextEndedBefore: a Read given a context that has ended
// returns its error and leaves the connection as it is, even with a
// message's header buffered. It took the header, waited for the rest,
// and failed the connection with 1008.
func TestReadContextEndedBefore(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, &AcceptOptions{CloseTimeout: 200 * time.Millisecond})
	b := []byte(clientFrame(0x82, "one"))
	b = append(b, maskedHeader(0x82, 1000)...)
	nc.Write(append(b, make([]byte, 10)...))
	if _, p, err := sc.Read(context.Background()); err != nil || string(p) != "one" {
		t.Fatalf("Read: %q, %v", p, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := sc.Read(ctx); err == nil || err.Error() != "websocket: read: context canceled" || !errors.Is(err, context.Canceled) {
		t.Errorf("Read with an ended context: %v, want websocket: read: context canceled", err)
	}
	nc.Write(make([]byte, 990))
	if _, p, err := sc.Read(context.Background()); err != nil || len(p) != 1000 {
		t.Errorf("Read of the message after: %d bytes, %v", len(p), err)
	}
}

// TestReadContextInsideMessagePrompt: a Read whose context ends inside a
// message (the peer stalled) fails the connection with 1008 and returns
// at once, not after waiting the close timeout for a peer that sends
// nothing more: 5.1 s for a 100 ms context.
func TestReadContextInsideMessagePrompt(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, nil) // the default close timeout, 5 s
	nc.Write(append(maskedHeader(0x82, 1000), make([]byte, 10)...))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := sc.Read(ctx)
	if CloseStatus(err) != StatusPolicyViolation {
		t.Fatalf("Read: %v, want 1008", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Read with a 100 ms context returned after %v", took.Round(time.Millisecond))
	}
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if got, err := readServerFrame(nc); err != nil || got != "\x88\x25\x03\xf0read context ended inside a message" {
		t.Errorf("the peer got %q, %v; want the 1008 close frame", got, err)
	}
}

// TestReadPongContextEnds: a Read whose context ends while the pong it
// owes waits for the frame lock (the queue full, a writer stuck on a peer
// that reads nothing) returns its context's error and leaves the
// connection open, the pong queued. It closed the connection as lost.
func TestReadPongContextEnds(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: 1024, KeepaliveInterval: -1})
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	go func() {
		big := make([]byte, 4<<20)
		for range 16 {
			if sc.Write(wctx, MessageBinary, big) != nil {
				return
			}
		}
	}()
	// The queue full to the last bytes, with no room for the pong.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := sc.Enqueue(MessageBinary, make([]byte, 200)); errors.Is(err, ErrQueueFull) {
			break
		}
	}
	for range 2000 {
		if err := sc.Enqueue(MessageBinary, nil); err != nil {
			break
		}
	}
	io.WriteString(nc, clientFrame(0x89, "hi"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, _, err := sc.Read(ctx); err == nil || err.Error() != "websocket: read: context deadline exceeded" {
		t.Errorf("Read: %v, want websocket: read: context deadline exceeded", err)
	}
	if sc.isClosed() {
		t.Error("the connection was closed by a Read whose context ended between messages")
	}
}

// TestReadContextEndsBehindQueue: a Read whose context ends while it
// waits for a message leaves the connection usable, although the reader,
// before it waits, writes the frames that queued behind its input to a
// peer slow to take them. That write ran under the Read's context, whose
// end cut a writer's frame short and closed the connection ("write:
// context deadline exceeded, cutting a frame short"). Each try leaves
// room for the queue's timer to write them first.
func TestReadContextEndsBehindQueue(t *testing.T) {
	t.Parallel()
	for try := range 3 {
		nc, sc := stalledPair(t, nil)
		nc.(*net.TCPConn).SetReadBuffer(4 << 10)
		sc.tr.rw.(*net.TCPConn).SetWriteBuffer(4 << 10)
		// Two messages in one write: reading the first leaves the second
		// buffered, so writes queue behind the input.
		if _, err := io.WriteString(nc, clientFrame(0x81, "1")+clientFrame(0x81, "2")); err != nil {
			t.Fatal(err)
		}
		bg := context.Background()
		if _, p, err := sc.Read(bg); err != nil || string(p) != "1" {
			t.Fatalf("Read: %q, %v", p, err)
		}
		big := make([]byte, 32<<10)
		for range 2 {
			if err := sc.Write(bg, MessageBinary, big); err != nil {
				t.Fatal(err)
			}
		}
		if _, p, err := sc.Read(bg); err != nil || string(p) != "2" {
			t.Fatalf("Read: %q, %v", p, err)
		}
		ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
		_, _, err := sc.Read(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrClosed) || sc.isClosed() {
			t.Fatalf("try %d: Read with a context that ends while it waits: %v, want DeadlineExceeded and the connection open; Write after: %v",
				try, err, sc.Write(bg, MessageText, []byte("x")))
		}
		// The queue goes out whole once the peer reads.
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		want := append(frameHeader(0x82, len(big)), big...)
		got := make([]byte, len(want))
		for i := range 2 {
			if _, err := io.ReadFull(nc, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("try %d: message %d on the wire: %v, or not the message written", try, i, err)
			}
		}
	}
}

// TestReadPongNotCut: the pong a Read owes for a ping between messages is
// not written under the Read's context, whose end, with part of the pong
// taken by a peer slow to read, cut the frame short and closed the
// connection ("write: context deadline exceeded, cutting a frame
// short"): a read whose context ends leaves the connection usable. The
// pong goes whole once the peer reads on, and the connection with it.
func TestReadPongNotCut(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer b.Close()
	sc := newConn(&connConfig{tr: netTransport(a), closeTimeout: time.Second})
	defer sc.CloseNow()
	go io.WriteString(b, clientFrame(0x89, "hi"))
	// The pong's first byte, and no more until the Read has ended.
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	first := make([]byte, 1)
	read := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(b, first)
		read <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, _, err := sc.Read(ctx)
	if err := <-read; err != nil || first[0] != 0x8a {
		t.Fatalf("the pong's first byte: %#x, %v", first[0], err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrClosed) || sc.isClosed() {
		t.Fatalf("Read with a context that ends: %v, want DeadlineExceeded and the connection open", err)
	}
	go sc.Write(context.Background(), MessageText, []byte("after"))
	rest := make([]byte, len("\x8a\x02hi\x81\x05after")-1)
	if _, err := io.ReadFull(b, rest); err != nil || string(first)+string(rest) != "\x8a\x02hi\x81\x05after" {
		t.Fatalf("on the wire: %q, %v; want the pong whole and the message after", string(first)+string(rest), err)
	}
}

// TestReadPingFloodBounded: a peer that reads nothing and pings on, while
// a writer is stuck on it with the frame lock and the program reads with
// contexts that end, gets at most one pong queued past the write queue's
// limit. Each such Read queued one more: the queue grew to 70485 bytes in
// 3 s with a limit of 4096.
func TestReadPingFloodBounded(t *testing.T) {
	t.Parallel()
	const limit = 4 << 10
	nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: limit, KeepaliveInterval: -1})
	nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	sc.tr.rw.(*net.TCPConn).SetWriteBuffer(4 << 10)
	go func() {
		big := make([]byte, 1<<20)
		for sc.Write(context.Background(), MessageBinary, big) == nil {
		}
	}()
	waitFor(t, "the writer to stall", func() bool {
		sc.pendMu.Lock()
		defer sc.pendMu.Unlock()
		return sc.flusher
	})
	time.Sleep(200 * time.Millisecond)
	stop := make(chan struct{})
	pinged := make(chan struct{})
	defer func() { close(stop); <-pinged }()
	go func() {
		defer close(pinged)
		ping := clientFrame(0x89, strings.Repeat("p", 125))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := io.WriteString(nc, ping); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
		}
	}()
	most := 0
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		_, _, err := sc.Read(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || sc.isClosed() {
			t.Fatalf("Read: %v, want DeadlineExceeded and the connection open", err)
		}
		most = max(most, sc.Buffered())
	}
	if most > limit+2*(125+maxHeaderSize) {
		t.Errorf("the queue held up to %d bytes, with a limit of %d", most, limit)
	}
}

// TestReadPongPastLimitAnswersNewest: past the write queue's limit, held
// by a writer stuck on a peer that reads nothing, a Read whose context
// ends queues the pong of the newest ping, in place of the one it queued
// for an older ping (RFC 6455 §5.5.3 lets a pong answer only the latest).
// The older pong stayed and the newer was dropped: a peer whose keepalive
// matches its pings' payloads (python-websockets) saw its newest ping
// unanswered once it read on.
func TestReadPongPastLimitAnswersNewest(t *testing.T) {
	t.Parallel()
	const limit = 4 << 10
	nc, sc := stalledPair(t, &AcceptOptions{WriteQueueLimit: limit, KeepaliveInterval: -1})
	sc.tr.rw.(*net.TCPConn).SetWriteBuffer(4 << 10)
	wrote := make(chan error, 1)
	go func() { wrote <- sc.Write(context.Background(), MessageBinary, make([]byte, 1<<20)) }()
	waitFor(t, "the writer to stall", func() bool {
		sc.pendMu.Lock()
		defer sc.pendMu.Unlock()
		return sc.flusher
	})
	queued, _ := fillQueue(t, sc)
	// Pings of 125 bytes, past the room the queue has left.
	ping := func(name string) string { return name + strings.Repeat(".", 125-len(name)) }
	// The pong the queue ends with, past its limit.
	lastQueued := func() string {
		sc.pendMu.Lock()
		defer sc.pendMu.Unlock()
		at := lastPong(sc.pend)
		if at < 0 {
			return ""
		}
		return string((*sc.pend)[at+2:])
	}
	for _, name := range []string{"one", "two", "three"} {
		if _, err := io.WriteString(nc, clientFrame(0x89, ping(name))); err != nil {
			t.Fatal(err)
		}
		// Reads, each ended by its context, until the ping is read
		// and its pong queued (one Read, unless the machine is busy).
		for tries := 0; lastQueued() != ping(name); tries++ {
			if tries == 10 {
				t.Fatalf("the pong of %q not queued after 10 Reads", name)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			_, _, err := sc.Read(ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || sc.isClosed() {
				t.Fatalf("Read: %v, want DeadlineExceeded and the connection open", err)
			}
		}
	}
	// The peer reads on: every frame the server sent, until 300 ms pass
	// without one.
	var pongs []string
	messages := 0
	br := bufio.NewReader(nc)
	for {
		nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		b, err := br.Peek(2)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		hb := make([]byte, headerSize(b[1]))
		if _, err := io.ReadFull(br, hb); err != nil {
			t.Fatal(err)
		}
		h, _, err := parseHeader(hb)
		if err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, h.length)
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		switch h.op {
		case opPong:
			pongs = append(pongs, string(payload))
		case opBinary:
			messages++
		}
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the stuck Write: %v", err)
	}
	if messages != 1+queued {
		t.Errorf("%d messages, want %d", messages, 1+queued)
	}
	if len(pongs) != 1 || pongs[0] != ping("three") {
		t.Errorf("pongs %q, want one, for the newest ping, \"three\"", pongs)
	}
}

// TestReadPongFullQueueNotCut: a Read whose context can end, owing a pong
// while the write queue is full to its limit, does not write the queue and
// its pong itself under that context: over TLS, whose writes cannot resume
// once a deadline cuts them, the context's end closed the connection
// ("cutting a frame short"), where a read whose context ends leaves it
// usable. The queue is full and the frame lock free, as when a writer
// lets go with the queue unwritten (its context ended), before the
// queue's timer takes it; the peer reads nothing until the Read has
// ended, then reads every queued message, the pong, and what follows.
func TestReadPongFullQueueNotCut(t *testing.T) {
	t.Parallel()
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "TCP", true: "TLS"}[tlsOn], func(t *testing.T) {
			t.Parallel()
			nc, sc := stalledPairOver(t, tlsOn)
			sock := sc.tr.rw
			if tlsOn {
				sock = sc.tr.rw.(*tls.Conn).NetConn()
			}
			sock.(*net.TCPConn).SetWriteBuffer(4 << 10)
			testReadPongFullQueueNotCut(t, nc, sc)
		})
	}
}

func testReadPongFullQueueNotCut(t *testing.T, nc net.Conn, sc *Conn) {
	// Held, the frame lock keeps the queue's timer from writing it.
	if sc.frameMu.lock(nil) != lockTaken {
		t.Fatal("frame lock not taken")
	}
	queued, _ := fillQueue(t, sc)
	// Then empty messages, until the queue has no room for a pong.
	empty := 0
	for sc.Enqueue(MessageBinary, nil) == nil {
		empty++
	}
	if _, err := io.WriteString(nc, clientFrame(0x89, "hi")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	read := make(chan error, 1)
	go func() {
		_, _, err := sc.Read(ctx)
		read <- err
	}()
	time.Sleep(50 * time.Millisecond)
	sc.frameMu.unlock()
	if err := <-read; !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrClosed) || sc.isClosed() {
		t.Fatalf("Read with a context that ends: %v, want DeadlineExceeded and the connection open", err)
	}
	go sc.Write(context.Background(), MessageText, []byte("after"))
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	var messages, empties, pongs int
	for {
		hb := make([]byte, 2)
		if _, err := io.ReadFull(br, hb); err != nil {
			t.Fatalf("after %d messages and %d pongs: %v", messages, pongs, err)
		}
		payload := make([]byte, hb[1])
		if _, err := io.ReadFull(br, payload); err != nil {
			sc.pendMu.Lock()
			fl := sc.flusher
			sc.pendMu.Unlock()
			t.Fatalf("frame %#x %d after %d messages and %d pongs: %v; closed %v buffered %d flusher %v", hb[0], hb[1], messages, pongs, err, sc.isClosed(), sc.Buffered(), fl)
		}
		switch {
		case hb[0] == 0x82 && len(payload) == 100 && empties == 0:
			messages++
			continue
		case hb[0] == 0x82 && len(payload) == 0:
			empties++
			continue
		case hb[0] == 0x8a && string(payload) == "hi":
			pongs++
			continue
		case hb[0] == 0x81 && string(payload) == "after":
		default:
			t.Fatalf("frame %#x %q on the wire", hb[0], payload)
		}
		break
	}
	if messages != queued || empties != empty || pongs != 1 {
		t.Errorf("%d messages, %d empty ones and %d pongs before the message after, want %d, %d and 1", messages, empties, pongs, queued, empty)
	}
}
