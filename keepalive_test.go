package websocket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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

const (
	kaInterval = 100 * time.Millisecond
	kaTimeout  = 150 * time.Millisecond
	// pingFrame is a server's keepalive ping; closeKeepalive its close
	// frame for a silent peer: 1011, "keepalive timeout".
	pingFrame      = "\x89\x00"
	closeKeepalive = "\x88\x13\x03\xf3keepalive timeout"
)

// kaServer starts a server whose connections have keepalive at kaInterval
// and kaTimeout, and hands each to handle.
func kaServer(t *testing.T, handle func(*Conn)) *httptest.Server {
	return kaServerEvery(t, kaInterval, kaTimeout, handle)
}

// kaServerEvery is kaServer with another interval and timeout.
func kaServerEvery(t *testing.T, interval, timeout time.Duration, handle func(*Conn)) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{KeepaliveInterval: interval, KeepaliveTimeout: timeout})
		if err != nil {
			return
		}
		handle(c)
	}))
	t.Cleanup(s.Close)
	return s
}

// expectFrame reads one server frame and checks it is want.
func expectFrame(t *testing.T, nc net.Conn, want string) {
	t.Helper()
	got, err := readServerFrame(nc)
	if err != nil || got != want {
		t.Fatalf("frame %q, %v; want %q", got, err, want)
	}
}

// TestKeepaliveAnswered: a quiet connection is pinged once per interval;
// a peer that answers keeps it open, whatever reads it on our side.
func TestKeepaliveAnswered(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"Read", "Serve", "no reader"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ended := make(chan error, 1)
			// A timeout long enough for a loaded machine to read the pong.
			s := kaServerEvery(t, kaInterval, 2*time.Second, func(c *Conn) {
				switch mode {
				case "Read":
					_, _, err := c.Read(context.Background())
					ended <- err
				case "Serve":
					c.Serve(func(MessageType, []byte) {}, func(err error) { ended <- err })
				default:
					<-c.ctxDone() // nothing reads: keepalive reads its pongs
					ended <- c.closedErr("read")
				}
			})
			// The quiet counts from before the handshake, which the
			// server's keepalive counts from (newKeepalive, in Accept),
			// then from before each pong: taken after rawClient returned,
			// a handshake slow to come back on a loaded machine made the
			// first ping look early.
			quiet := time.Now()
			nc := rawClient(t, s.Listener.Addr().String())
			start := time.Now()
			for i := range 4 {
				expectFrame(t, nc, pingFrame)
				if q := time.Since(quiet); q < kaInterval {
					t.Fatalf("ping %d after %v of quiet, want one per %v of quiet", i, q, kaInterval)
				}
				d := time.Since(start)
				// An answered ping brings the next an interval later,
				// not when its timeout would have ended.
				if d > kaInterval*time.Duration(i+1)+time.Second {
					t.Fatalf("ping %d after %v, want one per %v of quiet, the timeout (2s) aside", i, d, kaInterval)
				}
				quiet = time.Now() // the server reads the pong after it
				nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := nc.Write([]byte(clientFrame(0x8A, ""))); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case err := <-ended:
				t.Fatalf("connection ended while the peer answered: %v", err)
			default:
			}
			if mode == "no reader" {
				// Nothing would read a close frame: drop the connection,
				// which the next keepalive ping finds.
				nc.Close()
				if err := <-ended; !errors.Is(err, ErrClosed) {
					t.Fatalf("end: %v, want the connection closed", err)
				}
				return
			}
			nc.Write([]byte(clientFrame(0x88, "\x03\xe8")))
			expectFrame(t, nc, "\x88\x02\x03\xe8")
			if err := <-ended; CloseStatus(err) != StatusNormalClosure {
				t.Fatalf("end: %v, want the peer's close 1000", err)
			}
		})
	}
}

// ctxDone returns a channel closed once the connection has ended, for tests
// that hold a connection without reading it.
func (c *Conn) ctxDone() <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for !c.isClosed() {
			time.Sleep(5 * time.Millisecond)
		}
		close(ch)
	}()
	return ch
}

// TestKeepaliveSilentPeer: a peer that answers no ping is sent a close
// frame with 1011 and dropped within interval + timeout, and every call on
// the connection says why.
func TestKeepaliveSilentPeer(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"Read", "Serve", "no reader"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ended := make(chan error, 1)
			s := kaServer(t, func(c *Conn) {
				switch mode {
				case "Read":
					_, _, err := c.Read(context.Background())
					ended <- err
				case "Serve":
					c.Serve(func(MessageType, []byte) {}, func(err error) { ended <- err })
				default:
					<-c.ctxDone()
					ended <- c.Write(context.Background(), MessageText, []byte("x"))
				}
			})
			// The server's clock starts as it answers the handshake,
			// inside rawClient.
			start := time.Now()
			nc := rawClient(t, s.Listener.Addr().String())
			expectFrame(t, nc, pingFrame)
			expectFrame(t, nc, closeKeepalive)
			if _, err := readServerFrame(nc); err == nil {
				t.Fatal("the connection stayed open after the keepalive close")
			}
			gone := time.Since(start)
			t.Logf("silent peer dropped %v after the start of its handshake (interval %v + timeout %v)", gone.Round(time.Millisecond), kaInterval, kaTimeout)
			// The upper bound only tells a drop from none: a loaded
			// machine under the race detector delayed it by 4 s.
			if gone < (kaInterval+kaTimeout)*9/10 || gone > kaInterval+kaTimeout+5*time.Second {
				t.Errorf("dropped after %v, want about %v", gone, kaInterval+kaTimeout)
			}
			err := <-ended
			if !errors.Is(err, ErrKeepaliveTimeout) || CloseStatus(err) != StatusInternalError {
				t.Fatalf("%s: %v, want ErrKeepaliveTimeout with 1011", mode, err)
			}
			if n := strings.Count(err.Error(), "websocket:"); n != 1 || !strings.Contains(err.Error(), "keepalive timeout: nothing from the peer for") {
				t.Errorf("error %q does not say why once", err)
			}
		})
	}
}

// TestKeepaliveSilentPeerAnswersClose: a peer that answers no ping but
// answers the keepalive's close frame at once (a client whose reading
// resumed just then, a suspended browser tab say) still ends the
// connection with ErrKeepaliveTimeout, for the Read in progress and every
// later call, as for a peer that answers nothing. The Read that took the
// answer returned it as the peer's own close, and when it came before the
// keepalive noted its frame as sent, every later call did too.
func TestKeepaliveSilentPeerAnswersClose(t *testing.T) {
	t.Parallel()
	// The answer races the keepalive's own closing: 40 connections at
	// once meet it a few times.
	const conns = 40
	type ends struct{ read, write error }
	ended := make(chan ends, conns)
	s := kaServer(t, func(c *Conn) {
		_, _, err := c.Read(context.Background())
		ended <- ends{err, c.Write(context.Background(), MessageText, []byte("x"))}
	})
	var wg sync.WaitGroup
	for range conns {
		nc := rawClient(t, s.Listener.Addr().String())
		wg.Go(func() {
			if got, err := readServerFrame(nc); err != nil || got != pingFrame {
				t.Errorf("frame %q, %v; want the ping", got, err)
				return
			}
			if got, err := readServerFrame(nc); err != nil || got != closeKeepalive {
				t.Errorf("frame %q, %v; want the keepalive's close", got, err)
				return
			}
			io.WriteString(nc, clientFrame(0x88, "\x03\xf3"))
		})
	}
	wg.Wait()
	for range conns {
		e := <-ended
		for name, err := range map[string]error{"Read": e.read, "a later Write": e.write} {
			if !errors.Is(err, ErrKeepaliveTimeout) || CloseStatus(err) != StatusInternalError {
				t.Errorf("%s: %v, want ErrKeepaliveTimeout with 1011", name, err)
			}
		}
	}
}

// TestKeepaliveAnyInput: messages count as signs of life; no ping goes out
// while they arrive more often than the interval.
func TestKeepaliveAnyInput(t *testing.T) {
	t.Parallel()
	got := make(chan string, 100)
	const interval = time.Second // long beside the gaps, however slow the machine
	s := kaServerEvery(t, interval, kaTimeout, func(c *Conn) {
		c.Serve(func(_ MessageType, p []byte) { got <- string(p) }, func(error) { close(got) })
	})
	nc := rawClient(t, s.Listener.Addr().String())
	start := time.Now()
	for range 8 {
		if _, err := nc.Write([]byte(clientFrame(0x81, "hi"))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval / 5)
	}
	if time.Since(start) < interval {
		t.Fatal("the messages took less than an interval: nothing was shown")
	}
	nc.Write([]byte(clientFrame(0x88, "\x03\xe8")))
	// The first frame back must be the close echo: no ping came between.
	expectFrame(t, nc, "\x88\x02\x03\xe8")
	n := 0
	for range got {
		n++
	}
	if n != 8 {
		t.Errorf("served %d messages, want 8", n)
	}
}

// TestKeepaliveLeavesMessage: with nobody reading, keepalive reads its
// pong but leaves a message that came before it for the next Read.
func TestKeepaliveLeavesMessage(t *testing.T) {
	t.Parallel()
	read := make(chan string, 1)
	proceed := make(chan struct{})
	s := kaServer(t, func(c *Conn) {
		<-proceed
		_, p, err := c.Read(context.Background())
		if err != nil {
			read <- err.Error()
			return
		}
		read <- string(p)
		c.Close(StatusNormalClosure, "")
	})
	nc := rawClient(t, s.Listener.Addr().String())
	expectFrame(t, nc, pingFrame)
	nc.Write([]byte(clientFrame(0x81, "first") + clientFrame(0x8A, "")))
	time.Sleep(kaInterval / 2)
	close(proceed)
	if p := <-read; p != "first" {
		t.Fatalf("Read %q, want the message sent before the pong", p)
	}
}

// TestKeepaliveBehindUnreadMessage: with nobody reading, a message the
// peer sent stands before its pongs, which the keepalive's read of its
// answer cannot pass: the kernel's queue of unread input, growing after
// the ping, counts as the answer. A peer that answers every ping stays
// connected (before, it was dropped with 1011, "nothing from the peer",
// an interval and a timeout after its message), and the message waits
// whole for the Read that comes at last; a peer that stops answering is
// dropped as any silent one. The same holds for a message a Reader left
// half read, and over TLS, where the socket's queue holds records. (Linux
// only: elsewhere the kernel is not asked.)
func TestKeepaliveBehindUnreadMessage(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the keepalive asks the kernel for its input queue on Linux only")
	}
	for _, overTLS := range []bool{false, true} {
		for _, halfRead := range []bool{false, true} {
			for _, answer := range []bool{true, false} {
				t.Run(fmt.Sprintf("tls=%v/halfRead=%v/answer=%v", overTLS, halfRead, answer), func(t *testing.T) {
					t.Parallel()
					keepaliveBehindUnread(t, overTLS, halfRead, answer)
				})
			}
		}
	}
}

// keepaliveBehindUnread is one case of TestKeepaliveBehindUnreadMessage.
func keepaliveBehindUnread(t *testing.T, overTLS, halfRead, answer bool) {
	proceed := make(chan struct{})
	read := make(chan string, 1)
	ended := make(chan error, 1)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// A second for each answer: under load, the test's peer may be
		// kept from running for a few hundred milliseconds.
		c, err := Accept(w, req, &AcceptOptions{KeepaliveInterval: kaInterval, KeepaliveTimeout: time.Second})
		if err != nil {
			return
		}
		var r io.Reader
		var head []byte
		if halfRead {
			// The first fragment read; the rest left in the
			// socket while the pings go.
			_, mr, err := c.Reader(context.Background())
			if err != nil {
				read <- err.Error()
				return
			}
			head = make([]byte, 3)
			if _, err := io.ReadFull(mr, head); err != nil {
				read <- err.Error()
				return
			}
			r = mr
		}
		select {
		case <-proceed:
		case <-c.ctxDone():
			ended <- c.Write(context.Background(), MessageText, []byte("x"))
			return
		}
		var p []byte
		if halfRead {
			p, err = io.ReadAll(r)
			p = append(head, p...)
		} else {
			_, p, err = c.Read(context.Background())
		}
		if err != nil {
			read <- err.Error()
			return
		}
		read <- string(p)
		c.Close(StatusNormalClosure, "")
	}))
	var nc net.Conn
	if overTLS {
		s.StartTLS()
		nc = dialRawTLS(t, s.Listener.Addr().String(), 0)
	} else {
		s.Start()
		nc = rawClient(t, s.Listener.Addr().String())
	}
	t.Cleanup(s.Close)
	first := clientFrame(0x81, "subscribe")
	if halfRead {
		first = clientFrame(0x01, "sub")
	}
	if _, err := nc.Write([]byte(first)); err != nil {
		t.Fatal(err)
	}
	if !answer {
		// The message itself, which the first ping's wait may
		// read, counts as input after that ping: a second
		// ping may go out before the drop.
		for pings := 0; ; pings++ {
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := readServerFrame(nc)
			if err == nil && got == closeKeepalive {
				break
			}
			if err != nil || got != pingFrame || pings == 2 {
				t.Fatalf("frame %q, %v after %d pings; want a ping or two, then %q", got, err, pings, closeKeepalive)
			}
		}
		if err := <-ended; !errors.Is(err, ErrKeepaliveTimeout) {
			t.Fatalf("after the drop: %v, want ErrKeepaliveTimeout", err)
		}
		return
	}
	// Three pings, each answered: well past the interval and
	// timeout that dropped the peer before.
	for i := range 3 {
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := readServerFrame(nc)
		if err != nil || got != pingFrame {
			t.Fatalf("frame %d: %q, %v; want a ping (the connection must stay up)", i, got, err)
		}
		nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write([]byte(clientFrame(0x8A, ""))); err != nil {
			t.Fatal(err)
		}
	}
	if halfRead {
		nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write([]byte(clientFrame(0x80, "scribe"))); err != nil {
			t.Fatal(err)
		}
	}
	close(proceed)
	if p := <-read; p != "subscribe" {
		t.Fatalf("read %q, want the message sent before the pings", p)
	}
}

// TestKeepaliveCloseUnsent: a silent peer that reads nothing either,
// with a Write stuck on its full socket, gets neither the ping nor the
// close frame: the end says that close 1011 could not be sent, and
// carries no close code. It said "sent close 1011", with 1011.
func TestKeepaliveCloseUnsent(t *testing.T) {
	t.Parallel()
	// The test starts the keepalive's turn itself once the Write is
	// stuck: a turn due an interval after the handshake, late on a
	// loaded machine, failed the connection before the Write began, and
	// the close frame went out.
	s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: time.Hour, KeepaliveTimeout: kaTimeout})
	nc := stalledClient(t, s.Listener.Addr().String())
	sc := <-conns
	t.Cleanup(func() { sc.CloseNow() })
	wrote := stuckWrite(t, nc, sc)
	pingNow(sc)
	const want = "websocket: write: connection closed: keepalive timeout: nothing from the peer for "
	const unsent = ", ping unanswered (close 1011 could not be sent)"
	select {
	case err := <-wrote:
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), unsent) ||
			!errors.Is(err, ErrKeepaliveTimeout) || CloseStatus(err) != -1 {
			t.Fatalf("the stuck Write: %v (close status %d), want ErrKeepaliveTimeout, no close code, and %q...%q", err, CloseStatus(err), want, unsent)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck Write never returned")
	}
}

// closeFrameAfterData reads a server's frames from nc, of any length,
// skipping data frames, and returns the payload of the close frame, or
// ok false when the stream ends, or fails, first.
func closeFrameAfterData(nc net.Conn) (payload string, ok bool) {
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(nc, 64<<10)
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return "", false
		}
		n := int64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return "", false
			}
			n = int64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return "", false
			}
			n = int64(binary.BigEndian.Uint64(b[:]))
		}
		if h[0]&0x0f == 8 {
			p := make([]byte, n)
			if _, err := io.ReadFull(br, p); err != nil {
				return "", false
			}
			return string(p), true
		}
		if _, err := io.CopyN(io.Discard, br, n); err != nil {
			return "", false
		}
	}
}

// TestKeepaliveBehindOtherClose: a keepalive that fails while another
// close waits to go out (Close's, waiting for the frame lock behind a
// Write stuck on a peer that stopped reading; a shutdown's, queued there)
// does not take its place: whichever close frame goes out is the
// connection's end, and none that did not go out is. (Once the shutdown's
// close is queued, the keepalive stands down altogether.) Keepalive confirmed
// its own 1011 when Close's 1000 went out, and reported 'close 1011 could
// not be sent' when the shutdown's 1001 did.
func TestKeepaliveBehindOtherClose(t *testing.T) {
	t.Parallel()
	for _, other := range []string{"Close", "shutdown"} {
		t.Run(other, func(t *testing.T) {
			t.Parallel()
			reg := new(Registry)
			// The test starts the keepalive's turn itself (pingNow) once
			// the Write holds the frame lock: a ping that came first, on
			// a loaded machine, would fail the connection before the
			// Write began.
			nc, sc := stalledPair(t, &AcceptOptions{Registry: reg, CloseTimeout: 5 * time.Second,
				KeepaliveInterval: time.Hour, KeepaliveTimeout: kaTimeout})
			wrote := make(chan error, 1)
			// 32 MiB fill the socket buffers; the peer drains them in a
			// fraction of a second once it reads.
			go func() { wrote <- sc.Write(context.Background(), MessageBinary, make([]byte, 32<<20)) }()
			waitWriting(t, sc)
			want := map[string]StatusCode{"\x03\xe8bye": StatusNormalClosure, "\x03\xe9server shutting down": StatusGoingAway,
				"\x03\xf3keepalive timeout": StatusInternalError}
			if other == "Close" {
				go sc.Close(StatusNormalClosure, "bye")
				// The ping goes to the queue behind the Write; its
				// answer does not come within kaTimeout, and the
				// keepalive fails and waits a second for the frame
				// lock, behind Close. The peer reads again once it
				// does.
				pingNow(sc)
				time.Sleep(kaTimeout)
				waitFor(t, "keepalive's close to wait for the frame lock", func() bool { return sc.frameMu.queued() == 2 })
			} else {
				// The shutdown's close, queued behind the Write, has
				// the keepalive stand down: no ping may follow it, and
				// the close timeout bounds the rest.
				go reg.Shutdown(context.Background())
				waitFor(t, "the shutdown's close to be queued", sc.closeFrameSent)
				pingNow(sc)
				time.Sleep(2 * kaTimeout)
				if n := sc.frameMu.queued(); n != 0 {
					t.Errorf("%d waiting for the frame lock once the shutdown's close was queued, want none", n)
				}
			}
			got, ok := closeFrameAfterData(nc)
			<-wrote
			if ok {
				io.WriteString(nc, clientFrame(0x88, got))
			}
			// The Read takes the answer, when Close does not, and
			// returns once the connection is closed.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err := sc.Read(ctx)
			waitFor(t, "the connection to close", sc.isClosed)
			if !ok {
				if CloseStatus(err) > 0 && CloseStatus(err) != StatusAbnormalClosure {
					t.Errorf("no close frame went out, yet the end is %v (%d)", err, CloseStatus(err))
				}
				t.Logf("no close frame went out (a stall under load): %v", err)
				return
			}
			if status, known := want[got]; !known || CloseStatus(err) != status {
				t.Errorf("close frame %q went out, yet the end is %v (%d)", got, err, CloseStatus(err))
			}
		})
	}
}

// TestDialKeepalive: a client pings a silent server and fails the
// connection with a masked close 1011.
func TestDialKeepalive(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames := make(chan []byte, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		req := make([]byte, 4096)
		n, _ := nc.Read(req)
		key := ""
		for _, line := range strings.Split(string(req[:n]), "\r\n") {
			if name, value, ok := strings.Cut(line, ": "); ok && strings.EqualFold(name, "Sec-WebSocket-Key") {
				key = value
			}
		}
		nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(key) + "\r\n\r\n"))
		var all []byte
		buf := make([]byte, 512)
		for {
			n, err := nc.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				frames <- all
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := Dial(ctx, "ws://"+ln.Addr().String(), &DialOptions{KeepaliveInterval: kaInterval, KeepaliveTimeout: kaTimeout})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(context.Background())
	if !errors.Is(err, ErrKeepaliveTimeout) {
		t.Fatalf("Read: %v, want ErrKeepaliveTimeout", err)
	}
	got := <-frames
	// A masked ping, then a masked close: 1011 "keepalive timeout".
	if len(got) != 6+6+19 || got[0] != 0x89 || got[1] != 0x80 || got[6] != 0x88 || got[7] != 0x80|19 {
		t.Fatalf("client sent % x, want a masked empty ping and a masked close of 19 bytes", got)
	}
	var key [4]byte
	copy(key[:], got[8:12])
	payload := got[12:]
	maskBytes(key, 0, payload)
	if string(payload) != "\x03\xf3keepalive timeout" {
		t.Fatalf("close payload %q", payload)
	}
}

// TestKeepaliveOff: a negative interval sends no ping.
func TestKeepaliveOff(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{KeepaliveInterval: -1})
		if err != nil {
			return
		}
		if c.ka != nil {
			t.Error("keepalive armed with a negative interval")
		}
		c.Read(context.Background())
	}))
	defer s.Close()
	nc := rawClient(t, s.Listener.Addr().String())
	nc.SetReadDeadline(time.Now().Add(3 * kaInterval))
	if f, err := readServerFrame(nc); err == nil {
		t.Fatalf("got %q with keepalive off", f)
	}
	c := newConn(&connConfig{tr: netTransport(nc)})
	if c.ka == nil || c.ka.interval != defaultKeepaliveInterval || c.ka.timeout != defaultKeepaliveTimeout {
		t.Error("keepalive is not on by default at 20 s and 20 s")
	}
	c.CloseNow()
}

// TestPingWithoutReader: Ping reads its own pong when nothing else reads,
// and leaves a message that comes first for Read.
func TestPingWithoutReader(t *testing.T) {
	t.Parallel()
	greet := make(chan bool, 1)
	s := echoServer(t, nil, func(c *Conn) {
		if <-greet {
			c.Write(context.Background(), MessageText, []byte("hello"))
		}
		echo(c)
	})
	c := dialT(t, wsURL(s), &DialOptions{KeepaliveInterval: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	greet <- false
	for range 3 {
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("Ping with no reader: %v", err)
		}
	}

	c2 := dialT(t, wsURL(s), &DialOptions{KeepaliveInterval: -1})
	greet <- true
	time.Sleep(50 * time.Millisecond) // let the message arrive before the pong
	pinged := make(chan error, 1)
	go func() { pinged <- c2.Ping(ctx) }()
	_, p, err := c2.Read(ctx)
	if err != nil || string(p) != "hello" {
		t.Fatalf("Read %q, %v; want the message that came before the pong", p, err)
	}
	readErr := readAsync(c2) // this Read sees the pong
	if err := <-pinged; err != nil {
		t.Fatalf("Ping: %v", err)
	}
	c2.CloseNow()
	<-readErr
}

// TestServeContract: a served connection refuses the other ways of reading
// it, and a second Serve; a Ping from onMessage reads its own pong, and
// fails at once when a message comes first.
func TestServeContract(t *testing.T) {
	t.Parallel()
	results := make(chan string, 10)
	s := echoServer(t, nil, func(c *Conn) {
		done := make(chan struct{})
		err := c.Serve(func(_ MessageType, p []byte) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if string(p) == "ping" || string(p) == "ping behind" {
				if err := c.Ping(ctx); err != nil {
					results <- err.Error()
				} else {
					results <- "pong"
				}
			}
		}, func(error) { close(done) })
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := c.Serve(func(MessageType, []byte) {}, nil); err == nil || err.Error() != "websocket: serve: the connection is served already" {
			t.Errorf("second Serve: %v", err)
		}
		if _, _, err := c.Read(context.Background()); err != errServed {
			t.Errorf("Read during Serve: %v", err)
		}
		if _, _, err := c.ReadAppend(context.Background(), nil); err != errServed {
			t.Errorf("ReadAppend during Serve: %v", err)
		}
		if _, _, err := c.Reader(context.Background()); err != errServed {
			t.Errorf("Reader during Serve: %v", err)
		}
		results <- "checked"
		<-done
	})
	c := dialT(t, wsURL(s), &DialOptions{KeepaliveInterval: -1})
	if r := <-results; r != "checked" {
		t.Fatal(r)
	}
	ctx := context.Background()
	readErr := readAsync(c) // answers pings
	c.Write(ctx, MessageText, []byte("ping"))
	if r := <-results; r != "pong" {
		t.Fatalf("Ping in onMessage: %s", r)
	}
	c.Write(ctx, MessageText, []byte("ping behind"))
	c.Write(ctx, MessageText, []byte("in the way"))
	r := <-results
	if r != "pong" && r != errPingBehindMessage.Error() {
		t.Fatalf("Ping in onMessage with a message behind: %s", r)
	}
	c.Close(StatusNormalClosure, "")
	<-readErr
}

// TestKeepaliveManyConns: connections with as many intervals share the
// keepalive timer, and each is pinged on its own schedule, never before
// an interval of quiet, while others come and go: a third are dropped by
// their peer after the first ping, which takes their turns out of the
// middle of the heap. A turn lost or misplaced leaves a connection
// unpinged, and its client waits until its deadline.
func TestKeepaliveManyConns(t *testing.T) {
	t.Parallel()
	const n = 24
	interval := func(i int) time.Duration { return 40*time.Millisecond + time.Duration(i)*7*time.Millisecond }
	var accepted atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(accepted.Add(1)) - 1
		c, err := Accept(w, r, &AcceptOptions{KeepaliveInterval: interval(i), KeepaliveTimeout: 5 * time.Second})
		if err != nil {
			return
		}
		if i%2 == 0 {
			c.Read(context.Background())
			return
		}
		done := make(chan struct{})
		c.Serve(func(MessageType, []byte) {}, func(error) { close(done) })
		<-done
	}))
	defer s.Close()
	var wg sync.WaitGroup
	for i := range n {
		// One at a time, so that the i-th client is the i-th accepted.
		// The quiet counts from before the handshake, which the server's
		// keepalive counts from.
		quiet := time.Now()
		nc := rawClient(t, s.Listener.Addr().String())
		wg.Go(func() {
			pings := 3
			if i%3 == 2 {
				pings = 1
			}
			for p := range pings {
				got, err := readServerFrame(nc)
				if err != nil || got != pingFrame {
					t.Errorf("conn %d (every %v), ping %d: %q, %v", i, interval(i), p, got, err)
					return
				}
				if d := time.Since(quiet); d < interval(i) {
					t.Errorf("conn %d: ping %d after %v of quiet, want %v", i, p, d, interval(i))
				}
				quiet = time.Now()
				nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := nc.Write([]byte(clientFrame(0x8A, ""))); err != nil {
					t.Error(err)
					return
				}
			}
			if i%3 == 2 {
				nc.Close()
			}
		})
	}
	wg.Wait()
}

// TestTurnHeap: whatever keepalive turns are scheduled, rescheduled and
// cancelled, the heap stays one: each turn is due no earlier than its
// parent, knows its own slot, and the timer is armed no later than the
// earliest. It gives back its memory once emptied.
func TestTurnHeap(t *testing.T) {
	var h turnHeap
	rng := rand.New(rand.NewPCG(1, 2))
	ks := make([]*keepalive, 500)
	for i := range ks {
		// Marked closed, so that a turn run finds nothing to do.
		ks[i] = &keepalive{c: &Conn{}, slot: -1}
		ks[i].c.closed.Store(true)
	}
	check := func(step int) {
		t.Helper()
		h.mu.Lock() // the timer may run the turns due at the end
		defer h.mu.Unlock()
		for i, tu := range h.turns {
			if int(tu.k.slot) != i {
				t.Fatalf("step %d: the turn at %d says it is at %d", step, i, tu.k.slot)
			}
			if p := (i - 1) / 2; i > 0 && h.turns[p].due > tu.due {
				t.Fatalf("step %d: the turn at %d is due at %v, before its parent's %v", step, i, tu.due, h.turns[p].due)
			}
		}
		scheduled := 0
		for _, k := range ks {
			if k.slot >= 0 {
				scheduled++
			}
		}
		if scheduled != len(h.turns) {
			t.Fatalf("step %d: %d keepalives hold a slot, the heap has %d turns", step, scheduled, len(h.turns))
		}
		if len(h.turns) > 0 && (h.armed == 0 || h.armed > h.turns[0].due) {
			t.Fatalf("step %d: the timer is armed for %v, the first turn is due at %v", step, h.armed, h.turns[0].due)
		}
	}
	for step := range 20000 {
		k := ks[rng.IntN(len(ks))]
		switch rng.IntN(7) {
		case 0, 1:
			h.cancel(k)
		case 2:
			// Run as the timer would, early: nothing is due, and the
			// timer is armed again for the first turn.
			h.run()
		default:
			// Hours away: the timer never fires during the test.
			h.schedule(k, time.Hour+time.Duration(rng.IntN(1000))*time.Second)
		}
		check(step)
	}
	// Turns due now leave the heap when the timer runs (at once, or in
	// the call here, whichever comes first); the others stay.
	kept := 0
	for i, k := range ks {
		if i%5 != 0 && k.slot >= 0 {
			kept++
		}
	}
	for i, k := range ks {
		if i%5 == 0 {
			h.schedule(k, -time.Second)
		}
	}
	h.run()
	check(-2)
	h.mu.Lock()
	if len(h.turns) != kept {
		t.Errorf("%d turns after the timer ran, want the %d not due", len(h.turns), kept)
	}
	for i, k := range ks {
		if i%5 == 0 && k.slot >= 0 {
			t.Errorf("a turn due is still in the heap after the timer ran")
			break
		}
	}
	h.mu.Unlock()
	for _, k := range ks {
		h.cancel(k)
	}
	check(-1)
	if len(h.turns) != 0 || cap(h.turns) > 64 {
		t.Fatalf("emptied heap: %d turns, room for %d", len(h.turns), cap(h.turns))
	}
	h.timer.Stop()
}

// pingNow has c's keepalive turn come at once, as if the peer had been
// silent for an interval: it sends the ping, on a goroutine of the
// timer's. The interval must be long enough that no turn of its own runs.
func pingNow(c *Conn) {
	c.ka.lastInput.Store(int64(clock() - c.ka.interval))
	keepaliveTimers.schedule(c.ka, 0)
}

// TestKeepaliveServeDuringPingRead: a handler that does something slow
// before it calls Serve leaves the connection unread for an interval, so
// the keepalive pings and reads the answer itself; Serve called during that
// read took that read's deadline away, and a peer silent from then on was
// never dropped: the keepalive's read and Serve's wait behind it waited
// for good, and onClose never ran. The peer is now dropped at the
// keepalive's timeout.
func TestKeepaliveServeDuringPingRead(t *testing.T) {
	t.Parallel()
	ended := make(chan error, 1)
	s := kaServerEvery(t, 50*time.Millisecond, 300*time.Millisecond, func(c *Conn) {
		time.Sleep(120 * time.Millisecond) // the ping goes out at 50 ms
		if err := c.Serve(func(MessageType, []byte) {}, func(err error) { ended <- err }); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	nc := rawClient(t, s.Listener.Addr().String())
	expectFrame(t, nc, pingFrame)
	// Silent from here on.
	if err := await(t, ended, "onClose for a silent peer (keepalive 50 ms, timeout 300 ms)"); !errors.Is(err, ErrKeepaliveTimeout) {
		t.Errorf("onClose: %v, want ErrKeepaliveTimeout", err)
	}
}

// smallSendBuffer sets each accepted connection's send buffer to 64 KiB,
// so that a large Write waits for the peer to read rather than fill the
// kernel's buffers.
type smallSendBuffer struct{ net.Listener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetWriteBuffer(64 << 10)
	}
	return nc, err
}

// TestKeepaliveSlowDownload: a peer that takes one large message in
// slowly, sending nothing meanwhile, cannot answer a ping queued behind
// it; while it reads on, the keepalive waits for it rather than fail it,
// and once it stops reading, the keepalive fails it as a silent peer.
func TestKeepaliveSlowDownload(t *testing.T) {
	t.Parallel()
	// Taken a piece (64 KiB) at a time over TLS, the message must move
	// a piece per timeout.
	const slowTimeout = 500 * time.Millisecond
	for _, overTLS := range []bool{false, true} {
		for _, stops := range []bool{false, true} {
			t.Run(fmt.Sprintf("TLS=%v/stops=%v", overTLS, stops), func(t *testing.T) {
				t.Parallel()
				slowDownload(t, overTLS, stops, slowTimeout)
			})
		}
	}
}

func slowDownload(t *testing.T, overTLS, stops bool, timeout time.Duration) {
	msg := make([]byte, 4<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	type end struct{ write, read error }
	ended := make(chan end, 1)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{KeepaliveInterval: kaInterval, KeepaliveTimeout: timeout})
		if err != nil {
			return
		}
		werr := c.Write(context.Background(), MessageBinary, msg)
		_, _, rerr := c.Read(context.Background())
		ended <- end{werr, rerr}
	}))
	s.Listener = smallSendBuffer{s.Listener}
	// The peer's receive buffer is small too. What that buffer holds, the
	// peer reads on without the server's socket taking anything: the
	// keepalive sees the message move only as the peer's kernel makes
	// room, in pieces that grow with the buffer. With 128 KiB (which the
	// kernel doubles), a peer that a busy machine slowed to 300-500 KB/s
	// had those pieces more than the timeout apart while its own reads
	// were never more than 170-240 ms apart, and was failed: 16 of 24
	// downloads beside two busy loops, under -race. With 32 KiB, 1 of 24,
	// whose reads paused 1.2 s, longer than the timeout.
	const rcvbuf = 32 << 10
	var nc net.Conn
	if overTLS {
		s.StartTLS()
		nc = dialRawTLS(t, s.Listener.Addr().String(), rcvbuf)
	} else {
		s.Start()
		nc = rawClient(t, s.Listener.Addr().String())
		nc.(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	t.Cleanup(s.Close)
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	var h [10]byte
	if _, err := io.ReadFull(nc, h[:]); err != nil || h[0] != 0x82 || h[1] != 127 || binary.BigEndian.Uint64(h[2:]) != uint64(len(msg)) {
		t.Fatalf("header %x, %v; want a 4 MiB binary frame", h, err)
	}
	// 16 KiB each 4 ms or more: over a second, where a ping unanswered
	// fails the connection in 0.6 s.
	start := time.Now()
	got := make([]byte, len(msg))
	for off := 0; off < len(got); {
		if stops && off == 1<<20 {
			stopped := time.Now()
			var e end
			select {
			case e = <-ended:
			case <-time.After(10 * time.Second):
				t.Fatal("the Write to a peer that stopped reading never returned")
			}
			t.Logf("the Write failed %v after the peer stopped reading: %v", time.Since(stopped).Round(time.Millisecond), e.write)
			if !errors.Is(e.write, ErrKeepaliveTimeout) {
				t.Fatalf("Write: %v; want ErrKeepaliveTimeout", e.write)
			}
			return
		}
		n, err := io.ReadFull(nc, got[off:min(len(got), off+16<<10)])
		off += n
		if err != nil {
			t.Fatalf("after %d bytes in %v: %v", off, time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(4 * time.Millisecond)
	}
	t.Logf("message read in %v (keepalive interval %v, timeout %v)", time.Since(start).Round(time.Millisecond), kaInterval, timeout)
	if !bytes.Equal(got, msg) {
		t.Fatal("the message arrived altered")
	}
	// The ping queued behind it comes next; the peer answers and closes.
	expectFrame(t, nc, pingFrame)
	io.WriteString(nc, clientFrame(0x8A, "")+clientFrame(0x88, "\x03\xe8"))
	expectFrame(t, nc, "\x88\x02\x03\xe8")
	e := <-ended
	if e.write != nil || CloseStatus(e.read) != StatusNormalClosure {
		t.Fatalf("Write: %v; Read: %v; want nil and the peer's close 1000", e.write, e.read)
	}
}

// TestKeepaliveSlowQueue: a ping queued behind a backlog of Enqueued
// messages reaches the peer only as fast as the peer reads the backlog;
// a peer that reads steadily and answers each ping at once is not failed
// for the time the backlog takes.
func TestKeepaliveSlowQueue(t *testing.T) {
	t.Parallel()
	// The timeout is what the peer's reads may pause, as seen by the
	// server, without failing the premise of a peer that reads steadily:
	// under -race beside other tests and a busy loop, the peer's 8 ms
	// sleeps stretched to pauses of up to 474 ms, and with a 500 ms
	// timeout the server's own lag on top of such a pause failed 1
	// connection in 20 or so. 1 s is twice that pause. The backlog must
	// hold the ping up well past the timeout, or the test would pass
	// with the keepalive counting no progress at all: 4 MiB, which at
	// the peer's pace of at most 2 MB/s is over two seconds.
	const (
		timeout = time.Second
		backlog = 4 << 20
	)
	ended := make(chan error, 1)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{KeepaliveInterval: kaInterval, KeepaliveTimeout: timeout, WriteQueueLimit: backlog})
		if err != nil {
			return
		}
		read := readAsync(c) // the pongs, and the closing handshake
		msg := make([]byte, 256<<10)
		// 1.5 s, and at least the backlog (16 messages) taken, 10 s at
		// most: on a machine busy with other tests, the peer took longer
		// than 1.5 s to read what the queue held.
		start, taken := time.Now(), 0
		for d := time.Since(start); d < 1500*time.Millisecond || taken < backlog/len(msg) && d < 10*time.Second; d = time.Since(start) {
			if err := c.Enqueue(MessageBinary, msg); errors.Is(err, ErrQueueFull) {
				time.Sleep(5 * time.Millisecond)
			} else if err != nil {
				ended <- err
				return
			} else {
				taken++
			}
		}
		if err := c.Close(StatusNormalClosure, ""); err != nil {
			ended <- err
			return
		}
		<-read
		ended <- nil
	}))
	s.Listener = smallSendBuffer{s.Listener}
	s.Start()
	t.Cleanup(s.Close)
	nc := rawClient(t, s.Listener.Addr().String())
	// A small receive buffer, as TestKeepaliveSlowDownload's, so that the
	// server sees its output move in pieces of 64 KiB at most.
	nc.(*net.TCPConn).SetReadBuffer(32 << 10)
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	// 16 KiB each 8 ms or more: the 4 MiB backlog takes over two
	// seconds, where a ping unanswered fails the connection in 1.1 s.
	br := bufio.NewReaderSize(nc, 16<<10)
	buf := make([]byte, 16<<10)
	pings, data := 0, 0
	for {
		var h [10]byte
		if _, err := io.ReadFull(br, h[:2]); err != nil {
			t.Fatalf("after %d bytes of data and %d pings: %v", data, pings, err)
		}
		n := int(h[1])
		switch n {
		case 126:
			io.ReadFull(br, h[2:4])
			n = int(binary.BigEndian.Uint16(h[2:4]))
		case 127:
			io.ReadFull(br, h[2:10])
			n = int(binary.BigEndian.Uint64(h[2:10]))
		}
		payload := make([]byte, 0, min(n, 125))
		for left := n; left > 0; {
			m, err := br.Read(buf[:min(left, len(buf))])
			if err != nil {
				t.Fatalf("after %d bytes of data and %d pings: %v", data, pings, err)
			}
			if h[0]&0x08 != 0 {
				payload = append(payload, buf[:m]...)
			}
			left -= m
			time.Sleep(8 * time.Millisecond)
		}
		switch h[0] {
		case 0x82:
			data += n
			continue
		case 0x89:
			pings++
			io.WriteString(nc, clientFrame(0x8A, string(payload)))
			continue
		}
		if h[0] != 0x88 || string(payload) != "\x03\xe8" {
			t.Fatalf("frame %x %q after %d bytes of data and %d pings, want the close 1000", h[0], payload, data, pings)
		}
		break
	}
	io.WriteString(nc, clientFrame(0x88, "\x03\xe8"))
	if err := <-ended; err != nil {
		t.Fatalf("the server: %v", err)
	}
	t.Logf("%d KiB of data and %d pings read", data>>10, pings)
	if data < backlog {
		t.Errorf("%d bytes of data: the backlog never held up a ping", data)
	}
}

// TestKeepaliveAfterCloseWrite: a peer silent after CloseWrite has the
// close timeout to answer, however much longer than the keepalive's
// interval and timeout, and then fails the handshake as unanswered (1006).
// The keepalive, whose ping cannot follow our close frame, failed it
// after its own timeout, the end reading "close 1000 (normal closure)".
func TestKeepaliveAfterCloseWrite(t *testing.T) {
	t.Parallel()
	const closeTimeout = 2 * time.Second // over 5 keepalive turns
	s, conns := acceptOne(t, &AcceptOptions{CloseTimeout: closeTimeout, KeepaliveInterval: kaInterval, KeepaliveTimeout: kaTimeout})
	stalledClient(t, s.Listener.Addr().String())
	sc := <-conns
	t.Cleanup(func() { sc.CloseNow() })
	start := time.Now()
	if err := sc.CloseWrite(StatusNormalClosure, ""); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := sc.Read(ctx)
	took := time.Since(start)
	const want = "websocket: read: connection closed: the closing handshake timed out: no answer to close 1000 (normal closure)"
	if err == nil || err.Error() != want || CloseStatus(err) != StatusAbnormalClosure || errors.Is(err, ErrKeepaliveTimeout) {
		t.Fatalf("Read after %v: %v (close status %d), want %q (1006)", took, err, CloseStatus(err), want)
	}
	if took < closeTimeout {
		t.Errorf("the handshake ended after %v, before the close timeout (%v)", took, closeTimeout)
	}
}

// TestPingAnsweredByKeepalivePong: a peer that answers only the latest
// ping it has (RFC 6455 §5.5.3), keepalive's empty one, ends a Ping sent
// before it; a peer's empty pong with no keepalive ping before it ends
// none.
func TestPingAnsweredByKeepalivePong(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"latest only", "unsolicited"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			conns := make(chan *Conn, 1)
			done := make(chan struct{})
			interval := kaInterval
			if mode == "unsolicited" {
				interval = time.Hour
			}
			s := kaServerEvery(t, interval, 5*time.Second, func(c *Conn) {
				conns <- c
				<-done
			})
			nc := rawClient(t, s.Listener.Addr().String())
			sc := <-conns
			defer close(done)
			defer sc.CloseNow()
			wait := 5 * time.Second
			if mode == "unsolicited" {
				wait = 300 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			pinged := make(chan error, 1)
			go func() { pinged <- sc.Ping(ctx) }()
			ping, err := readServerFrame(nc)
			if err != nil || len(ping) != 10 || ping[:2] != "\x89\x08" {
				t.Fatalf("frame %q, %v; want Ping's ping, 8 bytes", ping, err)
			}
			if mode == "latest only" {
				// Ping's ping stays unanswered; keepalive's comes next.
				expectFrame(t, nc, pingFrame)
			}
			nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(nc, clientFrame(0x8A, "")); err != nil {
				t.Fatal(err)
			}
			err = <-pinged
			if mode == "latest only" && err != nil {
				t.Fatalf("Ping: %v, want it answered by the pong to keepalive's later ping", err)
			}
			if mode == "unsolicited" && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Ping: %v, want its context's end: an empty pong answers no ping of Ping's", err)
			}
		})
	}
}
