package websocket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The NetConn tests use the package's exported API only, over real
// connections on loopback.

// waitLimit bounds every wait of these tests.
const waitLimit = 5 * time.Second

// connPair dials a server whose handler hands its Conn to the test and
// keeps it open until the test ends.
func connPair(t *testing.T) (client, server *Conn) {
	t.Helper()
	conns := make(chan *Conn, 1)
	release := make(chan struct{})
	s := echoServer(t, nil, func(c *Conn) {
		conns <- c
		<-release
	})
	client = dialT(t, wsURL(s), nil)
	t.Cleanup(func() { close(release) }) // before the server closes
	return client, await(t, conns, "the server's Conn")
}

// await returns what ch delivers, failing the test after waitLimit.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("no %s after %v", what, waitLimit)
		panic("unreachable")
	}
}

// ioResult is what a Read or Write started in the background returned,
// and when.
type ioResult struct {
	p   []byte
	n   int
	err error
	at  time.Time
}

// readBackground calls nc.Read once, in a goroutine of its own.
func readBackground(nc net.Conn, size int) <-chan ioResult {
	ch := make(chan ioResult, 1)
	go func() {
		p := make([]byte, size)
		n, err := nc.Read(p)
		ch <- ioResult{p: p[:n], n: n, err: err, at: time.Now()}
	}()
	return ch
}

// writeUntilError writes 256 KiB messages, at most max of them, until a
// Write fails, in a goroutine of its own; it hands over the failing
// Write's result, or a nil error if none failed.
func writeUntilError(nc net.Conn, max int) <-chan ioResult {
	ch := make(chan ioResult, 1)
	go func() {
		p := make([]byte, 256<<10)
		for range max {
			if n, err := nc.Write(p); err != nil {
				ch <- ioResult{n: n, err: err, at: time.Now()}
				return
			}
		}
		ch <- ioResult{at: time.Now()}
	}()
	return ch
}

// checkTimeout fails the test unless err is the timeout of a NetConn's
// call op: a net.Error whose Timeout is true, wrapping
// os.ErrDeadlineExceeded, and, when it closed the connection, ErrClosed.
func checkTimeout(t *testing.T, err error, op string) {
	t.Helper()
	ne, ok := err.(net.Error)
	if !ok || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %T %v, want a net.Error with Timeout() wrapping os.ErrDeadlineExceeded", err, err)
	}
	want := "websocket: " + op + ": i/o timeout"
	if errors.Is(err, ErrClosed) {
		want += ", cutting a frame short: connection closed"
	}
	if err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// TestNetConnStream: Read returns the payloads of successive messages as
// one stream, empty messages included, up to io.EOF at the peer's close;
// each Write is one message.
func TestNetConnStream(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	sizes := []int{0, 1, 125, 126, 127, 0, 65535, 65536, 65537, 100000, 3}
	var want []byte
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i, n := range sizes {
			p := randomBytes(uint64(i), n)
			if err := server.Write(ctx, MessageBinary, p); err != nil {
				done <- err
				return
			}
		}
		done <- server.Close(StatusNormalClosure, "")
	}()
	for i, n := range sizes {
		want = append(want, randomBytes(uint64(i), n)...)
	}
	nc := NetConn(client, MessageBinary)
	nc.SetReadDeadline(time.Now().Add(waitLimit))
	var got bytes.Buffer
	n, err := io.Copy(&got, nc)
	if err != nil || !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("io.Copy: %d bytes, %v; want the %d bytes of %d messages and nil", n, err, len(want), len(sizes))
	}
	if err := await(t, done, "end of the server's writes"); err != nil {
		t.Fatalf("server: %v", err)
	}
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read after the end: %v, want io.EOF again", err)
	}
}

// TestNetConnWriteIsOneMessage: each Write sends exactly its p as one
// message of the NetConn's type, an empty p as an empty message.
func TestNetConnWriteIsOneMessage(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	nc := NetConn(client, MessageText)
	writes := []string{"hello", "", strings.Repeat("x", 70000), "!"}
	for _, w := range writes {
		if n, err := nc.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(w), n, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for _, w := range writes {
		typ, p, err := server.Read(ctx)
		if err != nil || typ != MessageText || string(p) != w {
			t.Fatalf("server Read: %v message of %d bytes, %v; want text of %d bytes", typ, len(p), err, len(w))
		}
	}
}

// TestNetConnOtherType: a message of the other type fails the connection
// with 1003, and Read says why, now and on every later call.
func TestNetConnOtherType(t *testing.T) {
	t.Parallel()
	for _, typ := range []MessageType{MessageText, MessageBinary} {
		other := MessageText + MessageBinary - typ
		t.Run(typ.String(), func(t *testing.T) {
			t.Parallel()
			client, server := connPair(t)
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			if err := server.Write(ctx, typ, []byte("ok")); err != nil {
				t.Fatal(err)
			}
			if err := server.Write(ctx, other, []byte("wrong")); err != nil {
				t.Fatal(err)
			}
			peer := readAsync(server)
			nc := NetConn(client, typ)
			if got := readFull(t, nc, 2); string(got) != "ok" {
				t.Fatalf("Read %q, want ok", got)
			}
			wantReason := "got a " + other.String() + " message, expected " + typ.String()
			for range 2 {
				_, err := nc.Read(make([]byte, 10))
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Code != StatusUnsupportedData || pe.Reason != wantReason {
					t.Fatalf("Read: %v, want a *ProtocolError 1003 %q", err, wantReason)
				}
			}
			err := await(t, peer, "the server's read")
			if ce, ok := err.(CloseError); !ok || ce.Code != StatusUnsupportedData || ce.Reason != wantReason {
				t.Fatalf("server Read: %v, want the close frame 1003 %q", err, wantReason)
			}
		})
	}
}

// TestNetConnBrokenMessage: a message that breaks the protocol part way
// fails the connection as Conn's reads do, and Read returns the error, not
// the bytes before the fault.
func TestNetConnBrokenMessage(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := server.Write(ctx, MessageText, []byte("ok\xff")); err != nil {
		t.Fatal(err)
	}
	peer := readAsync(server)
	nc := NetConn(client, MessageText)
	nc.SetReadDeadline(time.Now().Add(waitLimit))
	n, err := nc.Read(make([]byte, 10))
	var pe *ProtocolError
	if n != 0 || !errors.As(err, &pe) || pe.Code != StatusInvalidFramePayloadData {
		t.Fatalf("Read = %d, %v; want a *ProtocolError 1007", n, err)
	}
	if err := await(t, peer, "the server's read"); CloseStatus(err) != StatusInvalidFramePayloadData {
		t.Fatalf("server Read: %v, want the close frame 1007", err)
	}
}

// TestNetConnPeerClose: the peer's close 1000, 1001 or without a code ends the stream with
// io.EOF, after the bytes sent before it; any other end is an error.
func TestNetConnPeerClose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		code StatusCode // 0: the server drops the connection
		eof  bool
		want StatusCode // CloseStatus of the error
	}{
		{"1000", StatusNormalClosure, true, 0},
		{"1001", StatusGoingAway, true, 0},
		{"no code", StatusNoStatusRcvd, true, 0}, // as a browser's close()
		{"1011", StatusInternalError, false, StatusInternalError},
		{"4000", 4000, false, 4000},
		{"dropped", 0, false, StatusAbnormalClosure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, server := connPair(t)
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			if err := server.Write(ctx, MessageBinary, []byte("last words")); err != nil {
				t.Fatal(err)
			}
			closed := make(chan error, 1)
			go func() {
				if tc.code == 0 {
					closed <- server.CloseNow()
					return
				}
				reason := "bye"
				if tc.code == StatusNoStatusRcvd {
					reason = "" // a close frame without a code has no reason
				}
				closed <- server.Close(tc.code, reason)
			}()
			nc := NetConn(client, MessageBinary)
			nc.SetReadDeadline(time.Now().Add(waitLimit))
			got, err := io.ReadAll(nc)
			if string(got) != "last words" {
				t.Fatalf("read %q, want the message sent before the close", got)
			}
			switch {
			case tc.eof && err != nil:
				t.Fatalf("ReadAll: %v, want io.EOF (nil from ReadAll)", err)
			case !tc.eof && (err == nil || CloseStatus(err) != tc.want):
				t.Fatalf("ReadAll: %v, want an error with close status %v", err, tc.want)
			}
			if err := await(t, closed, "the server's close"); err != nil {
				t.Fatalf("server close: %v", err)
			}
			if err := nc.Close(); tc.code != 0 && err != nil {
				t.Fatalf("Close after the peer's close: %v, want nil", err)
			}
		})
	}
}

// TestNetConnReadTimeoutKeepsConnection: a Read whose deadline passes
// returns a timeout and leaves the connection as it was, between messages
// or inside one: the next Read goes on from the same byte.
func TestNetConnReadTimeoutKeepsConnection(t *testing.T) {
	t.Parallel()
	for _, mid := range []bool{false, true} {
		name := map[bool]string{false: "between messages", true: "inside a message"}[mid]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			client, server := connPair(t)
			first := randomBytes(1, 5000) // one frame: a Writer sends 4 KiB or more at once
			proceed := make(chan struct{})
			sent := make(chan error, 1)
			go func() {
				sent <- func() error {
					ctx := context.Background()
					w, err := server.Writer(ctx, MessageBinary)
					if err != nil {
						return err
					}
					if _, err := w.Write(first); err != nil {
						return err
					}
					if !mid {
						if err := w.Close(); err != nil {
							return err
						}
					}
					select {
					case <-proceed:
					case <-time.After(waitLimit):
						return errors.New("not told to proceed")
					}
					if mid {
						if _, err := w.Write([]byte("tail")); err != nil {
							return err
						}
						if err := w.Close(); err != nil {
							return err
						}
					}
					return server.Write(ctx, MessageBinary, []byte("after"))
				}()
			}()
			nc := NetConn(client, MessageBinary)
			if got := readFull(t, nc, len(first)); !bytes.Equal(got, first) {
				t.Fatal("first fragment: wrong bytes")
			}
			start := time.Now()
			nc.SetReadDeadline(start.Add(50 * time.Millisecond))
			n, err := nc.Read(make([]byte, 100))
			if n != 0 {
				t.Fatalf("Read %d bytes, want none", n)
			}
			checkTimeout(t, err, "read")
			if d := time.Since(start); d < 50*time.Millisecond || d > waitLimit {
				t.Fatalf("Read timed out after %v, want 50ms", d)
			}
			close(proceed)
			want := "after"
			if mid {
				want = "tailafter"
			}
			if got := readFull(t, nc, len(want)); string(got) != want {
				t.Fatalf("after the timeout: %q, want %q", got, want)
			}
			if err := await(t, sent, "the server's writes"); err != nil {
				t.Fatalf("server: %v", err)
			}
			// The connection was not failed: it carries messages both ways.
			if _, err := nc.Write([]byte("still here")); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			if _, p, err := server.Read(ctx); err != nil || string(p) != "still here" {
				t.Fatalf("server Read: %q, %v", p, err)
			}
		})
	}
}

// TestNetConnDeadlineMovedWhileBlocked: a blocked Read follows its
// deadline wherever another goroutine moves it.
func TestNetConnDeadlineMovedWhileBlocked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		initial time.Duration // 0: no deadline
		moveTo  time.Duration // from the move; 0: no deadline, <0: the moment of the move
		expires bool          // the Read times out at the new deadline
	}{
		{"set to now", 0, -1, true},
		{"set in 50ms", 0, 50 * time.Millisecond, true},
		{"moved earlier", time.Hour, 50 * time.Millisecond, true},
		// The first deadline leaves the move, 20ms after the Read began,
		// a wide margin on a loaded machine.
		{"removed", 500 * time.Millisecond, 0, false},
		{"moved later", 500 * time.Millisecond, time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, server := connPair(t)
			nc := NetConn(client, MessageBinary)
			set := time.Now()
			if tc.initial != 0 {
				nc.SetReadDeadline(set.Add(tc.initial))
			}
			read := readBackground(nc, 10)
			time.Sleep(20 * time.Millisecond) // let Read block
			moved := time.Now()
			switch {
			case tc.moveTo < 0:
				nc.SetReadDeadline(moved)
			case tc.moveTo == 0:
				nc.SetReadDeadline(time.Time{})
			default:
				nc.SetReadDeadline(moved.Add(tc.moveTo))
			}
			if tc.expires {
				r := await(t, read, "the end of Read")
				checkTimeout(t, r.err, "read")
				if d := r.at.Sub(moved); d < max(tc.moveTo, 0) {
					t.Fatalf("Read returned %v after the move, want %v", d, tc.moveTo)
				}
				return
			}
			// Past the first deadline, the Read still waits, and gets the
			// message that comes.
			select {
			case r := <-read:
				t.Fatalf("Read returned %d, %v before any message", r.n, r.err)
			case <-time.After(time.Until(set.Add(tc.initial + 100*time.Millisecond))):
			}
			if err := server.Write(context.Background(), MessageBinary, []byte("late")); err != nil {
				t.Fatal(err)
			}
			if r := await(t, read, "the end of Read"); r.err != nil || string(r.p) != "late" {
				t.Fatalf("Read: %q, %v; want late", r.p, r.err)
			}
		})
	}
}

// stalledPeer dials a server that reads nothing, so that writes fill the
// socket buffers and block.
func stalledPeer(t *testing.T) net.Conn {
	client, _ := connPair(t)
	return NetConn(client, MessageBinary)
}

// TestNetConnWriteDeadline: a Write blocked by a peer that stops reading
// returns a timeout when the deadline passes, set before it began or moved
// earlier while it is blocked.
func TestNetConnWriteDeadline(t *testing.T) {
	t.Parallel()
	t.Run("set before", func(t *testing.T) {
		t.Parallel()
		nc := stalledPeer(t)
		start := time.Now()
		nc.SetWriteDeadline(start.Add(300 * time.Millisecond))
		r := await(t, writeUntilError(nc, 400), "a failed Write")
		checkTimeout(t, r.err, "write")
		if d := r.at.Sub(start); d < 300*time.Millisecond || d > waitLimit {
			t.Fatalf("Write failed after %v, want 300ms", d)
		}
		checkAfterCut(t, nc, r.err)
	})
	t.Run("moved earlier", func(t *testing.T) {
		t.Parallel()
		nc := stalledPeer(t)
		nc.SetWriteDeadline(time.Now().Add(time.Hour))
		wrote := writeUntilError(nc, 400)
		time.Sleep(300 * time.Millisecond) // long enough to fill the buffers
		moved := time.Now()
		nc.SetWriteDeadline(moved.Add(50 * time.Millisecond))
		r := await(t, wrote, "a failed Write")
		checkTimeout(t, r.err, "write")
		if d := r.at.Sub(moved); d < 50*time.Millisecond {
			t.Fatalf("Write failed %v after the move, want 50ms", d)
		}
		checkAfterCut(t, nc, r.err)
	})
}

// checkAfterCut checks, when err, a Write's timeout, closed the connection
// by cutting a frame short, that the next Write says so, in the words of
// a deadline rather than of the context that stands for it.
func checkAfterCut(t *testing.T, nc net.Conn, err error) {
	t.Helper()
	if !errors.Is(err, ErrClosed) {
		return
	}
	nc.SetWriteDeadline(time.Time{})
	_, err = nc.Write([]byte("x"))
	const want = "websocket: write: connection closed: write: i/o timeout, cutting a frame short"
	if !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) || err.Error() != want {
		t.Fatalf("Write after a cut frame: %v, want ErrClosed and net.ErrClosed, and %q", err, want)
	}
	// Not a timeout of its own: a loop that goes on after one would
	// spin on the closed connection (it did on 4be6380).
	if ne, ok := asType[net.Error](err); errors.Is(err, os.ErrDeadlineExceeded) || ok && ne.Timeout() {
		t.Fatalf("Write after a cut frame, with no deadline set: %v is a timeout", err)
	}
}

// TestNetConnWriteTimeoutKeepsConnection: a Write that times out waiting
// its turn sends nothing and leaves the connection usable.
func TestNetConnWriteTimeoutKeepsConnection(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	nc := NetConn(client, MessageBinary)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	w, err := client.Writer(ctx, MessageBinary) // holds the message lock
	if err != nil {
		t.Fatal(err)
	}
	nc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := nc.Write([]byte("timed out"))
	if n != 0 {
		t.Fatalf("Write = %d, want 0", n)
	}
	checkTimeout(t, err, "write")
	if errors.Is(err, ErrClosed) {
		t.Fatalf("Write: %v; nothing was written, the connection should be open", err)
	}
	io.WriteString(w, "held")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	nc.SetWriteDeadline(time.Time{})
	if _, err := nc.Write([]byte("next")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"held", "next"} {
		if _, p, err := server.Read(ctx); err != nil || string(p) != want {
			t.Fatalf("server Read: %q, %v; want %q", p, err, want)
		}
	}
}

// TestNetConnClose: Close closes the WebSocket with 1000 and completes the
// handshake; later calls fail with net.ErrClosed.
func TestNetConnClose(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	peer := readAsync(server)
	nc := NetConn(client, MessageBinary)
	if err := nc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := await(t, peer, "the server's read")
	if ce, ok := err.(CloseError); !ok || ce != (CloseError{Code: StatusNormalClosure}) {
		t.Fatalf("server Read: %v, want the close frame 1000", err)
	}
	if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := nc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	if err := nc.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
}

// TestNetConnEmptyRead: a Read into an empty slice returns 0 and nil at
// once, its deadline past or not, as a TCP connection's does, until
// Close; it returned a timeout once the deadline had passed.
func TestNetConnEmptyRead(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	peer := readAsync(server) // answers the close
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcpClient, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, nc := range []net.Conn{NetConn(client, MessageBinary), tcpClient} {
		name := map[bool]string{true: "NetConn", false: "TCP"}[nc != tcpClient]
		if n, err := nc.Read(nil); n != 0 || err != nil {
			t.Errorf("%s: Read(nil): %d, %v; want 0, nil", name, n, err)
		}
		nc.SetReadDeadline(time.Now().Add(-time.Second))
		if n, err := nc.Read([]byte{}); n != 0 || err != nil {
			t.Errorf("%s: Read of nothing past the deadline: %d, %v; want 0, nil", name, n, err)
		}
		nc.Close()
		if _, err := nc.Read(nil); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: Read(nil) after Close: %v, want net.ErrClosed", name, err)
		}
	}
	await(t, peer, "the server's read")
}

// TestNetConnCloseAfterPeerClose: Close returns nil once the peer's
// close completed the handshake, even before the read that met it has
// recorded it. A NetConn read that meets the peer's close frame answers it
// in the Conn, then notes it; a Close in between returned "websocket:
// close: connection closed: close 1000 (normal closure)". Here the Conn
// meets the frame in a Read of its own, which leaves that state for good.
func TestNetConnCloseAfterPeerClose(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	nc := NetConn(client, MessageBinary)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- server.Close(StatusNormalClosure, "") }()
	if _, _, err := client.Read(ctx); CloseStatus(err) != StatusNormalClosure {
		t.Fatalf("the Conn's Read: %v, want the close frame 1000", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("the peer's Close: %v", err)
	}
	if err := nc.Close(); err != nil {
		t.Errorf("Close after the peer's close was answered: %v, want nil", err)
	}
}

// TestNetConnCloseInterrupts: Close makes a blocked Read and a blocked
// Write return at once.
func TestNetConnCloseInterrupts(t *testing.T) {
	t.Parallel()
	t.Run("Read", func(t *testing.T) {
		t.Parallel()
		client, server := connPair(t)
		go echo(server) // answers the close
		nc := NetConn(client, MessageBinary)
		read := readBackground(nc, 10)
		time.Sleep(20 * time.Millisecond)
		start := time.Now()
		if err := nc.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		r := await(t, read, "the end of Read")
		if !errors.Is(r.err, net.ErrClosed) || r.at.Sub(start) > time.Second {
			t.Fatalf("Read returned %v after %v, want net.ErrClosed at once", r.err, r.at.Sub(start))
		}
	})
	t.Run("Write", func(t *testing.T) {
		t.Parallel()
		nc := stalledPeer(t)
		wrote := writeUntilError(nc, 400)
		time.Sleep(300 * time.Millisecond) // long enough to fill the buffers
		start := time.Now()
		nc.Close() // the blocked Write is cut short
		// If the cut Write had sent nothing, the connection is still whole
		// and Close tries the handshake, which the stalled peer bounds by
		// the close timeout; if it had, Close returns at once.
		if d := time.Since(start); d > defaultCloseTimeout+time.Second {
			t.Fatalf("Close took %v, want it within the close timeout", d)
		}
		r := await(t, wrote, "a failed Write")
		if !errors.Is(r.err, net.ErrClosed) || r.at.Sub(start) > time.Second {
			t.Fatalf("Write returned %v after %v, want net.ErrClosed at once", r.err, r.at.Sub(start))
		}
	})
}

// TestNetConnAddrs: the NetConn's addresses are its Conn's.
func TestNetConnAddrs(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	nc, sc := NetConn(client, MessageBinary), NetConn(server, MessageBinary)
	for _, pair := range [][2]net.Addr{
		{nc.LocalAddr(), sc.RemoteAddr()},
		{nc.RemoteAddr(), sc.LocalAddr()},
	} {
		if pair[0] == nil || pair[1] == nil || pair[0].String() != pair[1].String() {
			t.Errorf("addresses %v and %v, want the same", pair[0], pair[1])
		}
		if _, ok := pair[0].(*net.TCPAddr); !ok {
			t.Errorf("address %v is %T, want *net.TCPAddr", pair[0], pair[0])
		}
	}
	if nc.LocalAddr().String() == nc.RemoteAddr().String() {
		t.Errorf("LocalAddr and RemoteAddr both %v", nc.LocalAddr())
	}
}

// A NetConn over a connection without addresses (a browser's, a bare
// io.ReadWriter's) returns an address that says so, never nil, since
// users of a net.Conn, net/http among them, call its String.
func TestNetConnNoAddrs(t *testing.T) {
	t.Parallel()
	c := newConn(&connConfig{tr: transport{rw: &trickle{}}, closeTimeout: time.Second})
	defer c.CloseNow()
	if c.LocalAddr() != nil || c.RemoteAddr() != nil {
		t.Fatalf("the Conn has addresses %v and %v, want none", c.LocalAddr(), c.RemoteAddr())
	}
	nc := NetConn(c, MessageBinary)
	for name, a := range map[string]net.Addr{"LocalAddr": nc.LocalAddr(), "RemoteAddr": nc.RemoteAddr()} {
		if a == nil || a.Network() != "websocket" || a.String() != "unknown" {
			t.Errorf("%s: %#v, want network websocket, string unknown", name, a)
		}
	}
}

// TestNetConnInvalidType: a NetConn of a type that is not a data message
// type fails its calls and leaves the connection alone.
func TestNetConnInvalidType(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	nc := NetConn(client, 0)
	if _, err := nc.Read(make([]byte, 1)); err == nil || !strings.HasPrefix(err.Error(), "websocket: ") {
		t.Errorf("Read: %v, want an error", err)
	}
	if _, err := nc.Write([]byte("x")); err == nil || !strings.HasPrefix(err.Error(), "websocket: ") {
		t.Errorf("Write: %v, want an error", err)
	}
	go echo(server)
	handshakeEcho(t, client, "usable")
}

// TestNetConnConformance runs the checks a net.Conn must pass, over a pair
// of NetConns, client and server.
func TestNetConnConformance(t *testing.T) {
	t.Parallel()
	pair := func(t *testing.T) (net.Conn, net.Conn) {
		client, server := connPair(t)
		return NetConn(client, MessageBinary), NetConn(server, MessageBinary)
	}

	t.Run("BasicIO", func(t *testing.T) {
		t.Parallel()
		c1, c2 := pair(t)
		echoed := make(chan error, 1)
		go func() {
			_, err := io.Copy(c2, c2) // ends when c1 closes
			echoed <- err
		}()
		want := randomBytes(7, 1<<20)
		written := make(chan error, 1)
		go func() {
			r := rand.New(rand.NewPCG(1, 2))
			for p := want; len(p) > 0; {
				n := min(len(p), 1+r.IntN(20000))
				if _, err := c1.Write(p[:n]); err != nil {
					written <- err
					return
				}
				p = p[n:]
			}
			written <- nil
		}()
		if got := readFull(t, c1, len(want)); !bytes.Equal(got, want) {
			t.Fatal("echoed bytes differ")
		}
		if err := await(t, written, "the end of the writes"); err != nil {
			t.Fatal(err)
		}
		if err := c1.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := await(t, echoed, "the end of the echo"); err != nil {
			t.Fatalf("echo's io.Copy: %v, want nil at the close", err)
		}
	})

	t.Run("PingPong", func(t *testing.T) {
		t.Parallel()
		c1, c2 := pair(t)
		const rounds = 100
		play := func(c net.Conn, first bool) error {
			c.SetDeadline(time.Now().Add(waitLimit))
			var v uint64
			if first {
				if err := binary.Write(c, binary.BigEndian, v); err != nil {
					return err
				}
			}
			for {
				if err := binary.Read(c, binary.BigEndian, &v); err != nil {
					return err
				}
				if v == rounds {
					return nil
				}
				v++
				if err := binary.Write(c, binary.BigEndian, v); err != nil {
					return err
				}
				if v == rounds {
					return nil
				}
			}
		}
		other := make(chan error, 1)
		go func() { other <- play(c2, false) }()
		if err := play(c1, true); err != nil {
			t.Fatal(err)
		}
		if err := await(t, other, "the other player"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RacyRead", func(t *testing.T) {
		t.Parallel()
		c1, c2 := pair(t)
		const total = 1 << 20
		go func() {
			c2.Write(make([]byte, total))
			io.Copy(io.Discard, c2) // answers c1's close
		}()
		c1.SetReadDeadline(time.Now().Add(waitLimit))
		var mu sync.Mutex
		read := 0
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				p := make([]byte, 1+i*1000)
				for {
					n, err := c1.Read(p)
					mu.Lock()
					read += n
					mu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
		// Once all is in, Close ends the Reads still waiting.
		waitGroup(t, &wg, func() {
			mu.Lock()
			done := read >= total
			mu.Unlock()
			if done {
				c1.Close()
			}
		})
		if read != total {
			t.Fatalf("read %d bytes, want %d", read, total)
		}
	})

	t.Run("RacyWrite", func(t *testing.T) {
		t.Parallel()
		c1, c2 := pair(t)
		const writers, writes = 8, 50
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				p := bytes.Repeat([]byte{byte(i)}, 1+i*1000)
				for range writes {
					if _, err := c1.Write(p); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		total := 0
		for i := range writers {
			total += writes * (1 + i*1000)
		}
		got := readFull(t, c2, total)
		waitGroup(t, &wg, nil)
		// Messages never interleave: the stream is made of whole writes.
		for len(got) > 0 {
			n := 1 + int(got[0])*1000
			if len(got) < n || !bytes.Equal(got[:n], bytes.Repeat(got[:1], n)) {
				t.Fatalf("a write of %d bytes was split or mixed", n)
			}
			got = got[n:]
		}
	})

	t.Run("PastTimeout", func(t *testing.T) {
		t.Parallel()
		c1, c2 := pair(t)
		if _, err := c2.Write([]byte("waiting")); err != nil {
			t.Fatal(err)
		}
		c1.SetDeadline(time.Now().Add(-time.Second))
		start := time.Now()
		n, err := c1.Read(make([]byte, 10))
		if n != 0 {
			t.Fatalf("Read = %d, want 0", n)
		}
		checkTimeout(t, err, "read")
		n, err = c1.Write([]byte("not sent"))
		if n != 0 {
			t.Fatalf("Write = %d, want 0", n)
		}
		checkTimeout(t, err, "write")
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("past deadline: the calls took %v, want them at once", d)
		}
		// Nothing was lost or sent: after the deadline is lifted, both
		// directions carry on from where they were.
		c1.SetDeadline(time.Time{})
		if got := readFull(t, c1, 7); string(got) != "waiting" {
			t.Fatalf("Read %q, want waiting", got)
		}
		if _, err := c1.Write([]byte("sent")); err != nil {
			t.Fatal(err)
		}
		if got := readFull(t, c2, 4); string(got) != "sent" {
			t.Fatalf("peer read %q, want sent", got)
		}
	})

	t.Run("FutureTimeout", func(t *testing.T) {
		t.Parallel()
		c1, _ := pair(t)
		start := time.Now()
		c1.SetDeadline(start.Add(100 * time.Millisecond))
		_, err := c1.Read(make([]byte, 10))
		checkTimeout(t, err, "read")
		if d := time.Since(start); d < 100*time.Millisecond || d > waitLimit {
			t.Fatalf("Read timed out after %v, want 100ms", d)
		}
	})

	t.Run("ConcurrentMethods", func(t *testing.T) {
		t.Parallel()
		c1, c2 := pair(t)
		go io.Copy(io.Discard, c2) // ends when c1 closes
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					if _, err := c1.Read(make([]byte, 100)); errors.Is(err, net.ErrClosed) {
						return
					}
				}
			})
			wg.Go(func() {
				for {
					if _, err := c1.Write([]byte("data")); errors.Is(err, net.ErrClosed) {
						return
					}
				}
			})
			wg.Go(func() {
				for range 100 {
					c1.SetDeadline(time.Now().Add(time.Millisecond))
					c1.SetReadDeadline(time.Now().Add(-time.Millisecond))
					c1.SetWriteDeadline(time.Time{})
					_ = c1.LocalAddr()
					_ = c1.RemoteAddr()
				}
			})
		}
		time.Sleep(100 * time.Millisecond)
		c1.Close()
		waitGroup(t, &wg, nil)
	})
}

// waitGroup waits for wg, calling poll every 10ms meanwhile, and fails the
// test after waitLimit.
func waitGroup(t *testing.T, wg *sync.WaitGroup, poll func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	deadline := time.After(waitLimit)
	for {
		select {
		case <-done:
			return
		case <-deadline:
			t.Fatalf("goroutines still running after %v", waitLimit)
		case <-time.After(10 * time.Millisecond):
			if poll != nil {
				poll()
			}
		}
	}
}

// TestNetConnTextSplitRune: a text NetConn is a UTF-8 stream that Writes
// may break anywhere, as bufio.Writer and io.Copy do; every message it
// sends is whole UTF-8, the bytes of a character cut at the end of a Write
// going at the start of the next Write's message.
func TestNetConnTextSplitRune(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	nc := NetConn(client, MessageText)
	writes := []string{
		"a\xc3",         // é cut after its first byte
		"\xa9b\xe2\x82", // € cut after two
		"",              // an empty message; the held bytes wait
		"\xac",          // the rest of €: a message of its own
		"\xf0",          // the first byte of 😀, nothing more
		"\x9f\x98",      // still not whole
		"\x80!",         // 😀 whole
	}
	for _, w := range writes {
		if n, err := nc.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for _, want := range []string{"a", "éb", "", "€", "😀!"} {
		typ, p, err := server.Read(ctx)
		if err != nil || typ != MessageText || string(p) != want {
			t.Fatalf("server Read: %v %q, %v; want text %q", typ, p, err, want)
		}
	}

	// Through bufio on both sides, a long text of two-byte characters
	// after one ASCII byte: every 4 KiB flush cuts a character.
	sc := NetConn(server, MessageText)
	text := "a" + strings.Repeat("é", 10000)
	sent := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(nc)
		w.WriteString(text)
		if err := w.Flush(); err != nil {
			sent <- err
			return
		}
		sent <- nc.Close()
	}()
	sc.SetReadDeadline(time.Now().Add(waitLimit))
	got, err := io.ReadAll(sc)
	if err != nil || string(got) != text {
		t.Fatalf("ReadAll: %d bytes, %v; want the %d bytes sent and nil", len(got), err, len(text))
	}
	if err := await(t, sent, "the end of the writes"); err != nil {
		t.Fatalf("writer: %v", err)
	}
}

// TestNetConnReadLimit: a NetConn reads a message a buffer at a time, so
// the read limit, which bounds what a whole-message read holds, does not
// stop it: a peer's Write larger than the limit comes through whole.
func TestNetConnReadLimit(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	client.SetReadLimit(1000)
	want := randomBytes(3, 5000)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := server.Write(ctx, MessageBinary, want); err != nil {
		t.Fatal(err)
	}
	nc := NetConn(client, MessageBinary)
	if got := readFull(t, nc, len(want)); !bytes.Equal(got, want) {
		t.Fatal("wrong bytes")
	}
}

// TestNetConnEndedWrapsNetErrClosed: once the connection under a NetConn
// has ended, its Reads and Writes fail with an error that wraps
// net.ErrClosed, as net.Conn users test for, besides ErrClosed and what
// ended it: after the peer's close (Reads return io.EOF first, as the
// stream's end), after the Conn itself was closed (Close too), and for a
// Write the closing cuts short. After the NetConn's own Close, setting a deadline
// fails with net.ErrClosed too, as it does on a net.TCPConn.
func TestNetConnEndedWrapsNetErrClosed(t *testing.T) {
	t.Parallel()
	checkClosed := func(t *testing.T, what string, err error) {
		t.Helper()
		if !errors.Is(err, net.ErrClosed) || !errors.Is(err, ErrClosed) {
			t.Errorf("%s: %v, want net.ErrClosed and ErrClosed", what, err)
		}
		if strings.Count(err.Error(), "websocket:") != 1 {
			t.Errorf("%s: %q, want one websocket: prefix", what, err)
		}
	}
	t.Run("peer closed", func(t *testing.T) {
		t.Parallel()
		client, server := connPair(t)
		closed := make(chan error, 1)
		go func() { closed <- server.Close(StatusNormalClosure, "bye") }()
		nc := NetConn(client, MessageBinary)
		nc.SetDeadline(time.Now().Add(waitLimit))
		if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("Read at the peer's close: %v, want io.EOF", err)
		}
		if err := await(t, closed, "the server's close"); err != nil {
			t.Fatalf("server close: %v", err)
		}
		_, err := nc.Write([]byte("x"))
		checkClosed(t, "Write after the peer's close", err)
		if CloseStatus(err) != StatusNormalClosure {
			t.Errorf("Write after the peer's close: %v, want it to carry the close 1000", err)
		}
	})
	t.Run("Conn closed", func(t *testing.T) {
		t.Parallel()
		client, _ := connPair(t)
		nc := NetConn(client, MessageBinary)
		client.CloseNow()
		_, err := nc.Write([]byte("x"))
		checkClosed(t, "Write", err)
		_, err = nc.Read(make([]byte, 1))
		checkClosed(t, "Read", err)
		checkClosed(t, "Close", nc.Close())
	})
	t.Run("Conn closed during Write", func(t *testing.T) {
		t.Parallel()
		client, _ := connPair(t)
		nc := NetConn(client, MessageBinary)
		wrote := writeUntilError(nc, 400)
		time.Sleep(300 * time.Millisecond) // long enough to fill the buffers
		client.CloseNow()
		r := await(t, wrote, "a failed Write")
		checkClosed(t, "Write", r.err)
	})
	t.Run("deadline after Close", func(t *testing.T) {
		t.Parallel()
		client, server := connPair(t)
		go echo(server) // answers the close
		nc := NetConn(client, MessageBinary)
		if err := nc.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		for name, set := range map[string]func(time.Time) error{
			"SetDeadline": nc.SetDeadline, "SetReadDeadline": nc.SetReadDeadline, "SetWriteDeadline": nc.SetWriteDeadline,
		} {
			if err := set(time.Now()); !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s after Close: %v, want net.ErrClosed", name, err)
			}
		}
	})
}
