package websocket

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// TestKeepaliveBehindKernelBuffer: a ping written behind output that the
// kernel holds already (a Write that returned, its message in the
// socket's buffer) reaches the peer only as fast as the peer reads that
// output; a peer that reads it slowly, and answers the ping once it gets
// to it, is not failed meanwhile. It was, a timeout after the ping,
// nothing in the library's own writes showing that the peer read on.
// Where the peer stops reading, the kernel's queue stops shrinking, and
// the keepalive fails it as before (TestKeepaliveCloseUnsent).
func TestKeepaliveBehindKernelBuffer(t *testing.T) {
	t.Parallel()
	msg := make([]byte, 256<<10)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	written := make(chan error, 1)
	ended := make(chan error, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{KeepaliveInterval: kaInterval, KeepaliveTimeout: time.Second})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.tr.rw.(*net.TCPConn).SetWriteBuffer(1 << 20)
		written <- c.Write(context.Background(), MessageBinary, msg)
		_, _, err = c.Read(context.Background())
		ended <- err
	}))
	t.Cleanup(s.Close)
	nc := rawClient(t, s.Listener.Addr().String())
	nc.(*net.TCPConn).SetReadBuffer(64 << 10)
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	select {
	case err := <-written:
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the Write did not return: the socket's buffers cannot hold the message")
	}
	// 8 KiB each 60 ms: the message takes about 2 s to read, where a
	// ping unanswered fails the connection in 1.1 s. (The kernel moves
	// it in bursts: over loopback, the peer's window opens by a segment
	// of 64 KiB, every 480 ms here, two to a timeout.)
	want := append(frameHeader(0x82, len(msg)), msg...)
	got := make([]byte, len(want))
	start := time.Now()
	for off := 0; off < len(got); {
		n, err := io.ReadFull(nc, got[off:min(len(got), off+8<<10)])
		off += n
		if err != nil {
			t.Fatalf("after %d bytes in %v: %v", off, time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(60 * time.Millisecond)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the message arrived altered")
	}
	// The ping written behind it comes next; the peer answers and closes.
	expectFrame(t, nc, pingFrame)
	io.WriteString(nc, clientFrame(0x8A, "")+clientFrame(0x88, "\x03\xe8"))
	expectFrame(t, nc, "\x88\x02\x03\xe8")
	if err := <-ended; CloseStatus(err) != StatusNormalClosure {
		t.Fatalf("Read: %v; want the peer's close 1000", err)
	}
}

// TestKeepaliveSilentPeerDelayedAck: a peer whose host acknowledges what
// it receives, late as hosts do (delayed ACKs: the peer's socket in
// TCP_QUICKACK 0), but whose program never reads nor answers, is dropped
// an interval and a timeout after its last input, as a peer that
// acknowledges at once is (TestKeepaliveSilentPeer). The acknowledgement
// of the ping itself, which came after the ping went out, was taken for
// a peer reading on (outputTaken), for a timeout more.
func TestKeepaliveSilentPeerDelayedAck(t *testing.T) {
	t.Parallel()
	// A timeout long beside how late a turn comes on a loaded machine
	// under the race detector (up to 4 s seen; TestKeepaliveSilentPeer),
	// so that the timeout more that the bug brings stands out.
	const timeout = 4 * time.Second
	s := kaServerEvery(t, kaInterval, timeout, func(c *Conn) { c.Read(context.Background()) })
	start := time.Now()
	nc := rawClient(t, s.Listener.Addr().String())
	sc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	sc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0) })
	if serr != nil {
		t.Fatal(serr)
	}
	expectFrame(t, nc, pingFrame)
	expectFrame(t, nc, closeKeepalive)
	gone := time.Since(start)
	t.Logf("silent peer dropped %v after the start of its handshake (interval %v + timeout %v)", gone.Round(time.Millisecond), kaInterval, timeout)
	if gone > kaInterval+timeout+timeout/2 {
		t.Errorf("dropped after %v, want about %v: the ping's own acknowledgement counted as output taken", gone, kaInterval+timeout)
	}
}
