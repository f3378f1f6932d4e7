//go:build !race

package websocket

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStackRoom checks that a handler that accepts, echoes and then waits
// in Read keeps a 4 KiB goroutine stack. A goroutine keeps the stack its
// deepest call grew it to: once past 4 KiB it is 8 KiB, and it cannot
// shrink while the handler waits, as the net/http frames under it alone
// take more than a quarter of it. Here each handler holds 256 bytes of its
// own, and 100 of them wait in Read, each after echoing the row's message
// (none for the first row); their stacks must stay near 4 KiB each. A
// call of Accept, Read or Write deeper than a 4 KiB stack allows under
// such a handler grows nearly every one of them to 8 KiB.
//
// In the last five rows, raw clients write each message in two writes, 5
// ms apart, so that the handler's Read waits for the rest with the message
// begun (and being inflated, when compressed): a compressed frame cut in
// halves (python-websockets writes a frame's header and payload apart); a
// message of two fragments with a pong between them (unsolicited, as RFC
// 6455 §5.5.3 allows), cut inside the pong; two fragments with a ping
// between them, cut after it, whose pong the handler's Read sends; and
// 32 fragments, whose headers the decoder meets at every depth.
//
// Each row runs in a process of its own: the goroutines of a test that
// ran before leave their stacks for new ones to take, which the figure
// would not count.
//
// With context takeover, each side's compressor arms a timer after a
// message (deflateIdleDelay, releaseDeflater) whose function runs on a
// goroutine of its own; the test stops both timers once the echo is done.
// Left to fire, the timers of the last 100 ms of connections came due
// together whenever the process lost the processor that long on a busy
// machine, and up to 200 such goroutines, each with a stack and none of
// them a handler's, were counted with the handlers (up to 8,519 bytes per
// connection, with every handler at 4 KiB).
func TestStackRoom(t *testing.T) {
	ping := maskedFrame(0x80|byte(opPing), []byte("are you there?"))
	pong := maskedFrame(0x80|byte(opPong), []byte("still here"))
	json := []byte(strings.Repeat(`{"user":"ann","text":"hello there, how are you?","n":12345}`, 70))
	large := bytes.Repeat([]byte("0123456789abcdef"), 4<<10)
	for _, tc := range []struct {
		name  string
		mode  CompressionMode
		msg   []byte
		split func(*testing.T, []byte) [][]byte // the raw client's writes, nil for Dial
	}{
		{"no message", CompressionDisabled, nil, nil},
		{"4 KiB", CompressionDisabled, json, nil},
		{"64 KiB", CompressionDisabled, large, nil},
		{"4 KiB, compressed, context takeover", CompressionContextTakeover, json, nil},
		{"4 KiB, compressed, no context takeover", CompressionNoContextTakeover, json, nil},
		{"64 KiB, compressed, context takeover", CompressionContextTakeover, large, nil},
		{"4 KiB, compressed, payload in two writes", CompressionContextTakeover, json, frameHalves},
		{"4 KiB, compressed, two fragments, a pong between cut short", CompressionContextTakeover, json, fragmentsAround(true, pong, 4)},
		{"4 KiB, not compressed, two fragments, a ping between", CompressionContextTakeover, json, fragmentsAround(false, ping, 0)},
		{"4 KiB, compressed, two fragments, a ping between", CompressionContextTakeover, json, fragmentsAround(true, ping, 0)},
		{"4 KiB, compressed, 32 fragments in two writes", CompressionContextTakeover, json, fragments(32)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if os.Getenv(stackRoomRow) == "" {
				runAlone(t)
				return
			}
			perConn := stackPerConn(t, tc.mode, tc.msg, tc.split)
			t.Logf("goroutine stacks: %d bytes per connection", perConn)
			if perConn > 6<<10 {
				t.Errorf("goroutine stacks take %d bytes per connection, want about 4 KiB: a call outgrew a 4 KiB stack under a handler of 256 bytes", perConn)
			}
		})
	}
}

// stackRoomRow is set in the environment of the process that runs a row of
// TestStackRoom.
const stackRoomRow = "WEBSOCKET_TEST_STACK_ROOM_ROW"

// runAlone runs the subtest t in a new process of this test binary and
// fails t unless it passed there, logging its figure. The process has one
// processor (GOMAXPROCS=1): each processor caches stacks of its own, in
// spans of 32 KiB that StackInuse counts whole, so with 16 processors
// even handlers that never read take over 6 KiB per connection.
func runAlone(t *testing.T) {
	t.Helper()
	parent, row, _ := strings.Cut(t.Name(), "/")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+parent+"$/^"+regexp.QuoteMeta(row)+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), stackRoomRow+"=1", "GOMAXPROCS=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()+" ") {
		t.Fatalf("%s in a process of its own: %v\n%s", t.Name(), err, out)
	}
	for line := range strings.Lines(string(out)) {
		if _, figure, ok := strings.Cut(line, "goroutine stacks: "); ok {
			t.Log("goroutine stacks: " + strings.TrimSpace(figure))
		}
	}
}

// stackPerConn is the growth of the goroutine stacks per connection once
// 100 paddedHandlers wait in Read, each having echoed msg if not nil;
// with split, raw clients send it in the writes split makes.
func stackPerConn(t *testing.T, mode CompressionMode, msg []byte, split func(*testing.T, []byte) [][]byte) int64 {
	const n = 100
	h := &paddedHandler{opts: &AcceptOptions{Compression: mode}, ready: make(chan *Conn, 2*n)}
	s := httptest.NewServer(h)
	defer h.wg.Wait()
	defer s.Close()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	conns := make([]*Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	awaitReady := func() *Conn {
		select {
		case c := <-h.ready:
			return c
		case <-ctx.Done():
			t.Fatal("the handler did not get ready within 10s")
			return nil
		}
	}
	var parts [][]byte
	if split != nil {
		parts = split(t, msg)
	}
	for range n {
		if split != nil {
			nc := deflateRawClient(t, s.Listener.Addr().String())
			defer nc.Close()
			awaitReady()
			for i, part := range parts {
				if i > 0 {
					time.Sleep(5 * time.Millisecond)
				}
				if _, err := nc.Write(part); err != nil {
					t.Fatal(err)
				}
			}
			stopIdleTimer(awaitReady())
			continue
		}
		c := dialT(t, wsURL(s), &DialOptions{Compression: mode})
		conns = append(conns, c)
		awaitReady() // for its first message
		if msg != nil {
			if err := c.Write(ctx, MessageBinary, msg); err != nil {
				t.Fatal(err)
			}
			if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
				t.Fatalf("echo: %d bytes, %v", len(p), err)
			}
			stopIdleTimer(awaitReady()) // for the next, having echoed it
			stopIdleTimer(c)
		}
	}
	time.Sleep(50 * time.Millisecond) // the last handler, ready, reaches Read
	runtime.ReadMemStats(&after)
	return (int64(after.StackInuse) - int64(before.StackInuse)) / n
}

// stopIdleTimer stops the timer that c's compressor armed after its last
// message, if it did, so that it starts no goroutine. The caller is the
// goroutine that wrote that message, or one that heard from it since.
func stopIdleTimer(c *Conn) {
	if p := c.deflate; p != nil && p.defTimer != nil {
		p.defTimer.Stop()
	}
}

// deflateRawClient opens a connection to the server at addr as a raw
// client that offers permessage-deflate and checks that the server took
// it.
func deflateRawClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	req := strings.Replace(rawUpgradeRequest, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1)
	nc := sendRequest(t, addr, req)
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		nc.Close()
		t.Fatalf("handshake: %v, %v", resp, err)
	}
	return nc
}

// compressedPayload is msg compressed as a message's payload (RFC 7692
// §7.2.1).
func compressedPayload(t *testing.T, msg []byte) []byte {
	var b bytes.Buffer
	fw, err := flate.NewWriter(&b, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(msg)
	fw.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// frameHalves is msg compressed in one binary frame from a client, in two
// halves.
func frameHalves(t *testing.T, msg []byte) [][]byte {
	frame := maskedFrame(0x80|rsv1|byte(opBinary), compressedPayload(t, msg))
	return [][]byte{frame[:len(frame)/2], frame[len(frame)/2:]}
}

// fragments returns the writes of a client that sends msg compressed, in
// n fragments, cut in halves.
func fragments(n int) func(*testing.T, []byte) [][]byte {
	return func(t *testing.T, msg []byte) [][]byte {
		p := compressedPayload(t, msg)
		var b []byte
		for i := range n {
			b0 := byte(opContinuation)
			if i == 0 {
				b0 = rsv1 | byte(opBinary)
			}
			if i == n-1 {
				b0 |= 0x80
			}
			b = append(b, maskedFrame(b0, p[i*len(p)/n:(i+1)*len(p)/n])...)
		}
		return [][]byte{b[:len(b)/2], b[len(b)/2:]}
	}
}

// fragmentsAround returns the writes of a client that sends msg,
// compressed or not, in two binary fragments with the control frame ctl
// between them: two pieces, the first ending back bytes before ctl's end.
func fragmentsAround(compress bool, ctl []byte, back int) func(*testing.T, []byte) [][]byte {
	return func(t *testing.T, msg []byte) [][]byte {
		p, rsv := msg, byte(0)
		if compress {
			p, rsv = compressedPayload(t, msg), rsv1
		}
		b := maskedFrame(rsv|byte(opBinary), p[:len(p)/2])
		b = append(b, ctl...)
		cut := len(b) - back
		b = append(b, maskedFrame(0x80|byte(opContinuation), p[len(p)/2:])...)
		return [][]byte{b[:cut], b[cut:]}
	}
}

// paddedHandler holds 256 bytes on its frame, accepts, echoes messages and
// waits in Read, saying on ready that it waits for its first message, and
// again after each echo, with its Conn.
type paddedHandler struct {
	opts  *AcceptOptions
	ready chan *Conn
	wg    sync.WaitGroup
}

func (h *paddedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.wg.Add(1)
	defer h.wg.Done()
	var pad [256]byte
	c, err := Accept(w, r, h.opts)
	runtime.KeepAlive(&pad)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	for {
		h.ready <- c
		typ, p, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return
		}
	}
}
