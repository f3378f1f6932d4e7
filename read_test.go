package websocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadContextWhileIdleKeepsConnection(t *testing.T) {
	t.Parallel()
	result := make(chan handlerResult, 2)
	s := echoServer(t, nil, func(c *Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, _, err := c.Read(ctx)
		cancel()
		result <- handlerResult{err: err}
		_, p, err := c.Read(context.Background())
		result <- handlerResult{err: err, msg: p}
	})
	c := dialT(t, wsURL(s), nil)
	if r := <-result; !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("idle Read with a timeout: %v, want DeadlineExceeded", r.err)
	}
	if err := c.Write(context.Background(), MessageText, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if r := <-result; r.err != nil || string(r.msg) != "after" {
		t.Fatalf("Read after the timeout: %q, %v", r.msg, r.err)
	}
}

func TestReadContextInsideMessageFails(t *testing.T) {
	t.Parallel()
	result := make(chan handlerResult, 1)
	s := echoServer(t, nil, func(c *Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, _, err := c.Read(ctx)
		result <- handlerResult{err: err}
	})
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	w, err := c.Writer(ctx, MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, writeBufferSize)); err != nil { // one frame goes out
		t.Fatal(err)
	}
	// The server's Read returns once the client answered its close.
	if _, _, err := c.Read(ctx); CloseStatus(err) != StatusPolicyViolation {
		t.Fatalf("client Read: %v, want the server's close 1008", err)
	}
	r := <-result
	var pe *ProtocolError
	if !errors.As(r.err, &pe) || pe.Code != StatusPolicyViolation || !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("server Read: %v, want a *ProtocolError 1008 wrapping DeadlineExceeded", r.err)
	}
	w.Close()
}

func TestReadLimit(t *testing.T) {
	t.Parallel()
	result := make(chan handlerResult, 1)
	s := echoServer(t, nil, func(c *Conn) {
		c.SetReadLimit(1000)
		ctx := context.Background()
		_, p, err := c.Read(ctx)
		if err == nil {
			_, p, err = c.Read(ctx)
		}
		result <- handlerResult{err: err, msg: p}
	})
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	if err := c.Write(ctx, MessageBinary, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, MessageBinary, make([]byte, 1001)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); CloseStatus(err) != StatusMessageTooBig {
		t.Fatalf("client Read: %v, want the server's close 1009", err)
	}
	r := <-result
	var pe *ProtocolError
	if !errors.As(r.err, &pe) || pe.Code != StatusMessageTooBig || !errors.Is(r.err, ErrMessageTooBig) {
		t.Fatalf("server Read: %v, want a *ProtocolError 1009 wrapping ErrMessageTooBig", r.err)
	}
}

func TestReaderDiscardsUnreadRest(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	first := bytes.Repeat([]byte("1"), 100000)
	for _, p := range [][]byte{first, []byte("second")} {
		if err := c.Write(ctx, MessageText, p); err != nil {
			t.Fatal(err)
		}
	}
	_, r, err := c.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "1111111111" {
		t.Fatalf("partial read: %q, %v", buf, err)
	}
	typ, r2, err := c.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := io.ReadAll(r2)
	if typ != MessageText || err != nil || string(p) != "second" {
		t.Fatalf("next message: %v %q %v", typ, p, err)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("stale reader: %d, %v; want 0, EOF", n, err)
	}
}

// TestReadAllocatesOnce: Read returns a large message at the cost of one
// allocation of its size, whether it comes in one frame or in fragments:
// no allocation per growth step, nothing allocated ahead of the bytes.
func TestReadAllocatesOnce(t *testing.T) {
	const size = 1 << 20
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	for _, tc := range []struct {
		name      string
		fragments int
	}{{"one frame", 1}, {"16 fragments", 16}, {"1000 fragments", 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			var in []byte
			for i, rest := 0, payload; i < tc.fragments; i++ {
				n := len(rest) / (tc.fragments - i)
				op := opContinuation
				if i == 0 {
					op = opBinary
				}
				in = appendFrame(in, header{fin: i == tc.fragments-1, op: op, masked: true, key: [4]byte{1, 2, 3, 4}}, rest[:n])
				rest = rest[n:]
			}
			// Each round reads the message twice and measures the second
			// read, so that the chunks' pool holds what the first put
			// back; and takes the least of a few rounds, since a
			// collection may still empty the pool, or the race detector
			// drop what was put.
			least := uint64(math.MaxUint64)
			for range 8 {
				c := newConn(&connConfig{tr: transport{rw: &trickle{in: append(slices.Clip(in), in...), most: 16 << 10}}, closeTimeout: time.Second})
				if _, p, err := c.Read(context.Background()); err != nil || !bytes.Equal(p, payload) {
					t.Fatalf("Read: %d bytes, %v", len(p), err)
				}
				var p []byte
				var err error
				allocated := fuzzAllocated(true, func() { _, p, err = c.Read(context.Background()) })
				if err != nil || !bytes.Equal(p, payload) {
					t.Fatalf("second Read: %d bytes, %v", len(p), err)
				}
				least = min(least, allocated)
			}
			t.Logf("reading a message of %d bytes allocated %d bytes", size, least)
			if least > size+fuzzAllocSlack {
				t.Errorf("reading a message of %d bytes allocated %d bytes, want about its size", size, least)
			}
		})
	}
}

// trickle is a transport that gives in away in reads of at most most
// bytes, as a socket does, and takes every write. With repeat, it starts
// over from the beginning of in instead of ending.
type trickle struct {
	in     []byte
	most   int
	repeat bool
	off    int // the next byte of in to read
}

func (t *trickle) Read(p []byte) (int, error) {
	if t.off == len(t.in) {
		if !t.repeat || len(t.in) == 0 {
			return 0, io.EOF
		}
		t.off = 0
	}
	n := copy(p[:min(len(p), t.most)], t.in[t.off:])
	t.off += n
	return n, nil
}

func (t *trickle) Write(p []byte) (int, error) { return len(p), nil }
func (t *trickle) Close() error                { return nil }

// BenchmarkRead measures Read and ReadAppend on a server's connection
// whose frames are already buffered, 64 masked binary messages repeated
// from memory: the library's own cost per message, without the kernel's.
func BenchmarkRead(b *testing.B) {
	for _, size := range []int{16, 1 << 10, 16 << 10} {
		payload := make([]byte, size)
		var stream []byte
		for range 64 {
			stream = appendFrame(stream, header{fin: true, op: opBinary, masked: true, key: [4]byte{1, 2, 3, 4}, length: int64(size)}, payload)
		}
		for _, api := range []string{"Read", "ReadAppend"} {
			b.Run(fmt.Sprintf("%s/%d", api, size), func(b *testing.B) {
				c := newConn(&connConfig{tr: transport{rw: &trickle{in: stream, most: len(stream), repeat: true}}})
				ctx := context.Background()
				var buf []byte
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					var p []byte
					var err error
					if api == "Read" {
						_, p, err = c.Read(ctx)
					} else {
						_, p, err = c.ReadAppend(ctx, buf[:0])
						buf = p
					}
					if err != nil || len(p) != size {
						b.Fatalf("%d bytes, %v", len(p), err)
					}
				}
			})
		}
	}
}

// TestIdleReadOnSocket: a Read loop on a plain TCP connection waits for
// each message holding no buffer (not even the small array a wait inside
// a read needs), reads a burst of small messages that arrived together,
// and reports a reset in the words of a read of the socket.
func TestIdleReadOnSocket(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
	nc := rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	ended := make(chan error, 1)
	go func() {
		for {
			typ, p, err := sc.Read(context.Background())
			if err != nil {
				ended <- err
				return
			}
			if err := sc.Write(context.Background(), typ, p); err != nil {
				ended <- err
				return
			}
		}
	}()
	var burst strings.Builder
	for i := range 8 {
		burst.WriteString(clientFrame(0x81, fmt.Sprintf("message %d", i)))
	}
	for round := range 3 {
		if _, err := io.WriteString(nc, burst.String()); err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			got, err := readServerFrame(nc)
			want := string([]byte{0x81, 9}) + fmt.Sprintf("message %d", i)
			if err != nil || got != want {
				t.Fatalf("round %d, echo %d: %q, %v; want %q", round, i, got, err, want)
			}
		}
	}
	local, remote := sc.tr.rw.(net.Conn).LocalAddr(), sc.tr.rw.(net.Conn).RemoteAddr()
	nc.(*net.TCPConn).SetLinger(0)
	nc.Close()
	err := <-ended
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("Read after the reset: %v, want ECONNRESET", err)
	}
	if sc.tr.raw == nil {
		return // this system waits inside a read (serve_wait_other.go)
	}
	want := fmt.Sprintf("websocket: connection lost: read tcp %v->%v: read: connection reset by peer", local, remote)
	if err.Error() != want {
		t.Errorf("Read after the reset: %v\nwant %s", err, want)
	}
	if sc.rb.idle != nil || sc.rb.pooled != nil {
		t.Errorf("the connection's read buffer holds an idle array (%t) or a pooled buffer (%t)", sc.rb.idle != nil, sc.rb.pooled != nil)
	}
}

// TestReadAfterWriteContextEnded: a Read with a context whose end a Write
// already saw returns the context's error at once, without waiting for
// the peer.
func TestReadAfterWriteContextEnded(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
	rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	defer sc.CloseNow()
	ctx, cancel := context.WithCancel(context.Background())
	if err := sc.Write(ctx, MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(50 * time.Millisecond) // the context's callbacks run
	done := make(chan error, 1)
	go func() {
		_, _, err := sc.Read(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Read: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		sc.CloseNow()
		<-done
		t.Fatal("Read with an ended context still waited after 5s")
	}
}

// TestPingLeavesNoPooledBuffer: a Ping on a connection nobody reads, whose
// pong comes with a small message behind it, leaves the message for the
// next reader without holding a pooled read buffer meanwhile.
func TestPingLeavesNoPooledBuffer(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
	nc := rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	defer sc.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A pong alone first: nothing is left, and nothing is kept for it.
	if err := answerPing(t, ctx, sc, nc, ""); err != nil {
		t.Fatal(err)
	}
	if err := sc.readMu.lock(nil); err != lockTaken {
		t.Fatal("the read lock:", err)
	}
	idle, pooled := sc.rb.idle != nil, sc.rb.pooled != nil
	sc.readMu.unlock()
	if idle || pooled {
		t.Errorf("after a Ping answered alone: idle array %t, pooled buffer %t; want neither", idle, pooled)
	}
	if err := answerPing(t, ctx, sc, nc, clientFrame(0x81, "hello")); err != nil {
		t.Fatal(err)
	}
	if err := sc.readMu.lock(nil); err != lockTaken {
		t.Fatal("the read lock:", err)
	}
	pooled, held := sc.rb.pooled != nil, string(sc.rb.bytes())
	sc.readMu.unlock()
	if want := clientFrame(0x81, "hello"); pooled || held != want {
		t.Errorf("after the Ping: %q held, in a pooled buffer: %t; want %q in none", held, pooled, want)
	}
	if _, p, err := sc.Read(ctx); err != nil || string(p) != "hello" {
		t.Fatalf("Read after the Ping: %q, %v", p, err)
	}
}

// TestAwaitRawErrorWords: a wait on the socket that ends in an error
// reports it as a read of the socket would.
func TestAwaitRawErrorWords(t *testing.T) {
	t.Parallel()
	nc, peer := socketPair(t, "tcp4", "127.0.0.1:0")
	rc := rawConn(nc)
	if rc == nil {
		t.Skip("this system waits inside a read (serve_wait_other.go)")
	}
	nc.SetReadDeadline(longAgo)
	var rb readBuffer
	got := awaitRaw(nc, rc, &rb, false, nil)
	_, want := nc.Read(make([]byte, 1))
	if got == nil || got.Error() != want.Error() || !errors.Is(got, os.ErrDeadlineExceeded) {
		t.Errorf("past the deadline, the wait says %v; a read says %v", got, want)
	}
	nc.SetReadDeadline(time.Time{})
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close()
	if got := awaitRaw(nc, rc, &rb, false, nil); !errors.Is(got, syscall.ECONNRESET) {
		t.Errorf("after a reset, the wait says %v, want ECONNRESET", got)
	}
	if rb.pooled != nil || rb.buf != nil {
		t.Error("the failed waits left a buffer in the read buffer")
	}
}

// TestRestOfFrameReadWhole: on a socket, a read that waited for the rest
// of a frame, holding no buffer, then takes all that came, up to the read
// buffer's size, as a read into the buffer would: not the 512 bytes
// (wakeReadSize) of a wake between messages, which made a message read
// through small slices take a system call per 512 bytes.
func TestRestOfFrameReadWhole(t *testing.T) {
	t.Parallel()
	// A Unix socket: what the peer writes is in the socket when its
	// write returns.
	nc, peer := socketPair(t, "unix", t.TempDir()+"/s")
	sc := newConn(&connConfig{tr: netTransport(peer)})
	defer sc.CloseNow()
	if sc.tr.raw == nil {
		t.Skip("this system waits inside a read (serve_wait_other.go)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A 20,000-byte binary frame masked with a zero key, of which the
	// first byte comes with the header.
	if _, err := io.WriteString(nc, "\x82\xfe\x4e\x20\x00\x00\x00\x00a"); err != nil {
		t.Fatal(err)
	}
	typ, rd, err := sc.Reader(ctx)
	if err != nil || typ != MessageBinary {
		t.Fatalf("Reader: %v, %v", typ, err)
	}
	buf := make([]byte, 100)
	if n, err := rd.Read(buf); n != 1 || err != nil {
		t.Fatalf("first Read: %d, %v; want 1 byte", n, err)
	}
	if _, err := nc.Write(bytes.Repeat([]byte("b"), 19999)); err != nil {
		t.Fatal(err)
	}
	if n, err := rd.Read(buf); n != 100 || err != nil {
		t.Fatalf("second Read: %d, %v; want 100 bytes", n, err)
	}
	if err := sc.readMu.lock(nil); err != lockTaken {
		t.Fatal("the read lock:", err)
	}
	held := sc.rb.len()
	sc.readMu.unlock()
	if held != 19899 {
		t.Errorf("after the wait for the rest of the frame, %d bytes buffered; want 19899", held)
	}
}

// TestRestJustifiedByKernel: the last frame of a message whose rest is
// over maxReadChunk gets room for all of it at once when what the kernel
// holds for the socket, with what arrived, is at least half of it, and
// not when the kernel holds less, nor without asking it; and the message
// is then read whole.
func TestRestJustifiedByKernel(t *testing.T) {
	t.Parallel()
	const size = 200_000
	payload := bytes.Repeat([]byte("0123456789"), size/10)
	for _, tc := range []struct {
		name  string
		sent  int  // bytes of the payload in the socket before the read
		asked bool // what restJustifiedLocked(0, true) says on Linux
	}{{"60% sent", 120_000, true}, {"30% sent", 60_000, false}} {
		// A Unix socket: what the peer writes is in the socket when its
		// write returns.
		nc, peer := socketPair(t, "unix", t.TempDir()+"/s")
		sc := newConn(&connConfig{tr: netTransport(peer)})
		defer sc.CloseNow()
		if sc.tr.inputQueued() < 0 {
			t.Skip("this system does not tell a socket's input queue (queued_other.go)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A binary frame of size bytes, masked with a zero key.
		frame := appendFrame(nil, header{fin: true, op: opBinary, masked: true}, payload)
		if _, err := nc.Write(frame[:len(frame)-size+tc.sent]); err != nil {
			t.Fatal(err)
		}
		if typ, err := sc.beginRead(ctx, false); err != nil || typ != MessageBinary {
			t.Fatalf("%s: beginRead: %v, %v", tc.name, typ, err)
		}
		without, asked := sc.restJustifiedLocked(0, false), sc.restJustifiedLocked(0, true)
		buffered, queued := sc.rb.len(), sc.tr.inputQueued()
		if without || asked != tc.asked {
			t.Errorf("%s (%d bytes buffered, %d queued): rest justified %v without asking the kernel, %v asking it; want false, %v",
				tc.name, buffered, queued, without, asked, tc.asked)
		}
		go nc.Write(frame[len(frame)-size+tc.sent:])
		// The header was read: this Read takes the message's payload.
		p, rest, err := sc.readWholeLocked(ctx)
		if rest {
			p, err = sc.readRestLocked(ctx, p, 0)
		}
		sc.readUnlock()
		if err != nil || !bytes.Equal(p, payload) {
			t.Errorf("%s: read %d bytes, %v; want the %d sent", tc.name, len(p), err, size)
		}
		if tc.asked && (!rest || cap(p) != size) {
			t.Errorf("%s: read with rest %v into a slice of capacity %d; want the rest read in place, capacity %d", tc.name, rest, cap(p), size)
		}
	}
}

// TestLargeMessagesOverSocket: large messages, in one frame or with a
// large last fragment, written to a TCP socket in pieces of random sizes
// with pauses between some, come out of Read, ReadAppend (from a small
// buffer) and Reader whole and exact, whatever the kernel holds when the
// read asks it.
func TestLargeMessagesOverSocket(t *testing.T) {
	t.Parallel()
	nc, peer := socketPair(t, "tcp", "127.0.0.1:0")
	sc := newConn(&connConfig{tr: netTransport(peer)})
	defer sc.CloseNow()
	rng := rand.New(rand.NewPCG(1, 2))
	type message struct {
		payload   []byte
		fragments int
	}
	var msgs []message
	for _, size := range []int{64<<10 + 1, 100_000, 300_000, 1 << 20} {
		for fragments := 1; fragments <= 3; fragments += 2 {
			p := make([]byte, size)
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			msgs = append(msgs, message{p, fragments})
		}
	}
	var in []byte
	for _, m := range msgs {
		key := [4]byte{byte(rng.Uint32()), 2, 3, 4}
		rest := m.payload
		for i := range m.fragments {
			n := len(rest)
			if i < m.fragments-1 {
				n = rng.IntN(1000)
			}
			op := opContinuation
			if i == 0 {
				op = opBinary
			}
			in = appendFrame(in, header{fin: i == m.fragments-1, op: op, masked: true, key: key}, rest[:n])
			rest = rest[n:]
		}
	}
	pieces := rand.New(rand.NewPCG(3, 4))
	go func() {
		for len(in) > 0 {
			n := min(len(in), 1+pieces.IntN(64<<10))
			if _, err := nc.Write(in[:n]); err != nil {
				return
			}
			in = in[n:]
			if pieces.IntN(4) == 0 {
				time.Sleep(time.Duration(pieces.IntN(2000)) * time.Microsecond)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, m := range msgs {
		var p []byte
		var err error
		switch way := []string{"Read", "ReadAppend", "Reader"}[i%3]; way {
		case "Read":
			_, p, err = sc.Read(ctx)
		case "ReadAppend":
			_, p, err = sc.ReadAppend(ctx, make([]byte, 0, 100))
		case "Reader":
			var r io.Reader
			if _, r, err = sc.Reader(ctx); err == nil {
				p, err = io.ReadAll(r)
			}
		}
		if err != nil || !bytes.Equal(p, m.payload) {
			t.Fatalf("message %d (%d bytes, %d fragments): %d bytes, %v; equal %v", i, len(m.payload), m.fragments, len(p), err, bytes.Equal(p, m.payload))
		}
	}
}

// TestRestNotJustifiedByRecords: over TLS the kernel's queue, records
// and all, does not count toward the rest of a frame: a peer that sends
// a byte of payload per record queues about 23 bytes for each, and had a
// 192 KiB frame allocated whole for 6,000 bytes of it.
func TestRestNotJustifiedByRecords(t *testing.T) {
	t.Parallel()
	s, conns := acceptOneTLS(t)
	tc := dialRawTLS(t, s.Listener.Addr().String(), 0)
	sc := <-conns
	defer sc.CloseNow()
	const size, sent = 192 << 10, 6000
	// Room in the server's socket for every record.
	sc.tr.tlsSocket().(*net.TCPConn).SetReadBuffer(1 << 20)
	if _, err := tc.Write(appendHeader(nil, header{fin: true, op: opBinary, masked: true, length: size})); err != nil {
		t.Fatal(err)
	}
	for range sent {
		if _, err := tc.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if typ, err := sc.beginRead(ctx, false); err != nil || typ != MessageBinary {
		t.Fatalf("beginRead: %v, %v", typ, err)
	}
	defer sc.readUnlock()
	// Enough records in the server's socket to justify the rest, were
	// they counted.
	waitFor(t, "the records to arrive", func() bool { return sc.tr.inputQueued() >= size/2 })
	queued := sc.tr.inputQueued()
	if sc.restJustifiedLocked(0, true) {
		t.Errorf("%d bytes of the frame's payload sent, %d bytes buffered and %d queued: rest of %d bytes justified", sent, sc.rb.len(), queued, size)
	}
}

// TestGrowDoubles: a buffer that a message outgrows doubles, inside a
// fragmented message, for a compressed one, and for a last frame whose
// rest is more than what arrived, rather than growing by the frame's
// claim; the last frame of a message gets room for exactly its rest when
// what arrived is as much, or the rest is at most minReadChunk. Before,
// ReadAppend and Serve, whose buffers start at 4 KiB, held 68 KiB for 4
// KiB of a frame claiming 1 MiB, and 64 KiB for 3 bytes of a 64 KiB frame.
func TestGrowDoubles(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fin        bool
		compressed bool
		frameLeft  int64
		have       int
		wantCap    int
	}{
		{"1 MiB frame", true, false, 1 << 20, 4096, 8192},
		{"1 MiB frame, 64 KiB in", true, false, 1 << 20, 64 << 10, 128 << 10},
		{"64 KiB fragment", false, false, 64 << 10, 4096, 8192},
		{"compressed", true, true, 1 << 20, 4096, 8192},
		{"empty, 1 MiB frame", true, false, 1 << 20, 0, 512},
		{"last frame, 64 KiB left, 4 KiB in", true, false, 64 << 10, 4096, 8192},
		{"last frame, 64 KiB left, 64 KiB in", true, false, 64 << 10, 64 << 10, 128 << 10},
		{"last frame, 1 MiB left, 1 MiB in", true, false, 1 << 20, 1 << 20, 2 << 20},
		{"last frame, 4 KiB left", true, false, 4096, 100, 4196},
		{"last frame, 100 left", true, false, 100, 4096, 4196},
	} {
		c := newConn(&connConfig{tr: transport{rw: &trickle{}}})
		c.frame.fin, c.msgCompressed, c.frameLeft = tc.fin, tc.compressed, tc.frameLeft
		dst := make([]byte, tc.have)
		got := c.growLocked(dst, 0)
		if len(got) != tc.have || cap(got) != tc.wantCap {
			t.Errorf("%s: grown to len %d cap %d, want len %d cap %d", tc.name, len(got), cap(got), tc.have, tc.wantCap)
		}
	}
}

// BenchmarkEchoTLS measures an echo over TLS, whose reads wait inside a
// read rather than on the socket: a client's Write and ReadAppend against
// a server that echoes with Serve, or with a Read or ReadAppend loop.
func BenchmarkEchoTLS(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20} {
		payload := make([]byte, size)
		for _, api := range []string{"Serve", "Read", "ReadAppend"} {
			b.Run(fmt.Sprintf("%s/%d", api, size), func(b *testing.B) {
				ctx := context.Background()
				c := dialTLSEcho(b, api)
				var buf []byte
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if err := c.Write(ctx, MessageBinary, payload); err != nil {
						b.Fatal(err)
					}
					_, p, err := c.ReadAppend(ctx, buf[:0])
					if err != nil || len(p) != size {
						b.Fatalf("%d bytes, %v", len(p), err)
					}
					buf = p
				}
			})
		}
	}
}

// dialTLSEcho starts a TLS server that echoes with api (echoLoop), and
// dials it; both end with the benchmark.
func dialTLSEcho(b *testing.B, api string) *Conn {
	s := httptest.NewTLSServer(echoLoop(api, nil))
	b.Cleanup(s.Close)
	c, _, err := Dial(context.Background(), "wss://"+s.Listener.Addr().String(), &DialOptions{HTTPClient: s.Client()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.CloseNow() })
	return c
}

// BenchmarkEchoTLSPipelined measures an echo over TLS of 16 messages of
// 1 KiB sent together, then read: the server writes the replies queued
// behind input as far as the socket takes them at once, and, since a TLS
// stream cannot be written so, by the queue's timer, a goroutine per
// batch (goroutines/op counts both ends').
func BenchmarkEchoTLSPipelined(b *testing.B) {
	const k, size = 16, 1 << 10
	payload := make([]byte, size)
	for _, api := range []string{"Serve", "Read", "ReadAppend"} {
		b.Run(fmt.Sprintf("%s/%dx%d", api, k, size), func(b *testing.B) {
			ctx := context.Background()
			c := dialTLSEcho(b, api)
			var buf []byte
			b.SetBytes(k * size)
			b.ReportAllocs()
			started := goroutinesCreated(b)
			for b.Loop() {
				for range k {
					if err := c.Enqueue(MessageBinary, payload); err != nil {
						b.Fatal(err)
					}
				}
				for range k {
					_, p, err := c.ReadAppend(ctx, buf[:0])
					if err != nil || len(p) != size {
						b.Fatalf("%d bytes, %v", len(p), err)
					}
					buf = p
				}
			}
			b.ReportMetric(float64(goroutinesCreated(b)-started)/float64(b.N), "goroutines/op")
		})
	}
}

// TestWaitReadsIntoIdleArray: over a transport that Serve cannot await
// (TLS, an HTTP/2 stream), a read that will likely wait is offered the
// idle array, not a pooled buffer: between messages, for the rest of a
// frame, and for the rest of a header, unless the read before took all
// the room it had, which says input is waiting. Each row lists the room
// the transport's reads were offered; the last read finds the end of the
// stream.
func TestWaitReadsIntoIdleArray(t *testing.T) {
	// A 1 MiB binary frame, masked with a zero key, and 3 bytes of it.
	bigFrame := "\x82\xff\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00abc"
	for _, tc := range []struct {
		name  string
		reads []string
		want  []int
	}{
		{"3 bytes of a frame", []string{bigFrame}, []int{idleReadSize, idleReadSize}},
		{"2 bytes of a header", []string{bigFrame[:2]}, []int{idleReadSize, idleReadSize - 2}},
		{"a full idle read", []string{bigFrame + strings.Repeat("x", idleReadSize-len(bigFrame))},
			[]int{idleReadSize, readBufferSize}},
		{"a full pooled read", []string{bigFrame + strings.Repeat("x", idleReadSize-len(bigFrame)), strings.Repeat("x", readBufferSize)},
			[]int{idleReadSize, readBufferSize, readBufferSize}},
		{"a short pooled read", []string{bigFrame + strings.Repeat("x", idleReadSize-len(bigFrame)), "xyz"},
			[]int{idleReadSize, readBufferSize, idleReadSize}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &scriptedReads{reads: tc.reads}
			c := newConn(&connConfig{tr: transport{rw: tr}})
			if _, p, err := c.Read(context.Background()); err == nil {
				t.Fatalf("Read: %d bytes, no error; want the end of the stream", len(p))
			}
			if !slices.Equal(tr.offered, tc.want) {
				t.Errorf("reads offered %v bytes, want %v", tr.offered, tc.want)
			}
		})
	}
}

// scriptedReads is a transport whose reads return reads in turn, each in
// one read if it fits, then the end of the stream. It notes the room each
// read was offered, and takes every write.
type scriptedReads struct {
	reads   []string
	offered []int
}

func (s *scriptedReads) Read(p []byte) (int, error) {
	s.offered = append(s.offered, len(p))
	if len(s.reads) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.reads[0])
	if s.reads[0] = s.reads[0][n:]; s.reads[0] == "" {
		s.reads = s.reads[1:]
	}
	return n, nil
}

func (s *scriptedReads) Write(p []byte) (int, error) { return len(p), nil }
func (s *scriptedReads) Close() error                { return nil }

// failingWriter takes up to room bytes, then fails.
type failingWriter struct{ room int }

var errWriterFull = errors.New("writer full")

func (w *failingWriter) Write(p []byte) (int, error) {
	n := min(len(p), w.room)
	w.room -= n
	if n < len(p) {
		return n, errWriterFull
	}
	return n, nil
}

// TestReaderWriteTo: io.Copy from a message's reader goes through its
// WriteTo, which copies the message across its frames and stops at
// its end, or returns a write's error having written what the writer
// took; the next Reader then discards the rest and reads the message
// after.
func TestReaderWriteTo(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, nil)
	message := clientFrame(0x01, "hello ") + clientFrame(0x00, "relayed ") + clientFrame(0x80, "world")
	if _, err := io.WriteString(nc, message+message+clientFrame(0x82, "next")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, r, err := sc.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(io.WriterTo); !ok {
		t.Fatalf("the reader, a %T, has no WriteTo", r)
	}
	var got bytes.Buffer
	// struct{ io.Writer } hides bytes.Buffer's ReadFrom, which io.Copy
	// would use if the reader had no WriteTo.
	if n, err := io.Copy(struct{ io.Writer }{&got}, r); n != 19 || err != nil || got.String() != "hello relayed world" {
		t.Fatalf("io.Copy = %d, %v, %q; want 19, nil, %q", n, err, got.String(), "hello relayed world")
	}
	typ, r, err := sc.Reader(ctx)
	if err != nil || typ != MessageText {
		t.Fatalf("Reader = %v, %v; want text", typ, err)
	}
	if n, err := io.Copy(&failingWriter{room: 8}, r); n != 8 || err != errWriterFull {
		t.Fatalf("io.Copy into a writer with room for 8 bytes = %d, %v; want 8, %v", n, err, errWriterFull)
	}
	typ, p, err := sc.Read(ctx)
	if err != nil || typ != MessageBinary || string(p) != "next" {
		t.Fatalf("Read after = %v, %q, %v; want binary %q", typ, p, err, "next")
	}
}

// countingWriter takes what it is given and says it took extra bytes
// more, as a broken writer might.
type countingWriter struct{ extra int }

func (w countingWriter) Write(p []byte) (int, error) { return len(p) + w.extra, nil }

// TestReaderWriteToInvalidWrite: a writer that claims to have taken more
// than it was given, or a negative count, stops the reader's WriteTo
// with an error, as it stops io.Copy, rather than having its count
// added to what the copy returns.
func TestReaderWriteToInvalidWrite(t *testing.T) {
	t.Parallel()
	nc, sc := stalledPair(t, nil)
	if _, err := io.WriteString(nc, clientFrame(0x81, "hello")+clientFrame(0x81, "world")+clientFrame(0x82, "next")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, extra := range []int{1, -6} {
		_, r, err := sc.Reader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := io.Copy(countingWriter{extra}, r); n != 0 || !errors.Is(err, errInvalidWrite) {
			t.Errorf("io.Copy into a writer that counts %d more = %d, %v; want 0, %v", extra, n, err, errInvalidWrite)
		}
	}
	if typ, p, err := sc.Read(ctx); err != nil || typ != MessageBinary || string(p) != "next" {
		t.Fatalf("Read after = %v, %q, %v; want binary %q", typ, p, err, "next")
	}
}
