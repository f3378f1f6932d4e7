package bench_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rfc6455/websocket/bench/echo"
	"github.com/rfc6455/websocket/bench/loadgen"
)

// startEcho runs lib's echo server on a loopback port until the test ends.
func startEcho(tb testing.TB, lib string) *echo.Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := echo.Start(lib, ln)
	if err != nil {
		ln.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// dial opens a load generator connection to s, closed when the test ends.
func dial(tb testing.TB, s *echo.Server, bufSize int) *loadgen.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := loadgen.Dial(ctx, &net.Dialer{}, s.Addr(), bufSize)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func payload(n int) []byte {
	p := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(p)
	return p
}

// TestEcho sends a few hundred messages of every size that matters to the
// framing through each server, pipelined and one at a time, on several
// connections, and checks every echoed byte. It is what the end-to-end
// command does, in miniature.
func TestEcho(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 1, 16, 125, 126, 1024, 4095, 4096, 4097, 16 << 10, 65535, 65536, 65537, 1 << 20}
	for _, lib := range echo.Libs {
		t.Run(lib, func(t *testing.T) {
			t.Parallel()
			s := startEcho(t, lib)
			for _, n := range sizes {
				m := loadgen.NewMessage(payload(n), 4)
				count := int64(max(2, min(100, (4<<20)/(n+1))))
				for i := range 2 {
					c := dial(t, s, 16<<10)
					c.SetDeadline(time.Now().Add(20 * time.Second))
					var echoed atomic.Int64
					done := make(chan struct{})
					if err := c.Pipeline(m, done, &echoed, count); err != nil {
						t.Fatalf("%d-byte messages, connection %d, pipelined: %v", n, i, err)
					}
					if got := echoed.Load(); got != count {
						t.Errorf("%d-byte messages: %d echoes, want %d", n, got, count)
					}
					if n <= 64<<10 {
						rtts := make([]time.Duration, 0, 10)
						if err := c.RoundTrips(m, done, &echoed, 20, &rtts); err != nil {
							t.Fatalf("%d-byte messages, connection %d, one at a time: %v", n, i, err)
						}
						if len(rtts) != 10 {
							t.Errorf("%d round-trip times kept, want the 10 there was room for", len(rtts))
						}
					}
					c.Close()
				}
			}
		})
	}
}

// TestEchoChecks shows that the load generator notices a server that
// echoes something else than what was sent.
func TestEchoChecks(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A server that answers the handshake, then sends the scripted bytes.
	tests := []struct {
		name  string
		head  string // the response head, if not a correct 101
		reply string // bytes sent after the head
		err   string // what Dial or ReadEcho returns
	}{
		{name: "refused", head: "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", err: `status "HTTP/1.1 403 Forbidden", want 101`},
		{name: "wrong accept", head: "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\n\r\n", err: "Sec-WebSocket-Accept"},
		{name: "changed byte", reply: "\x82\x03abd", err: "echo differs from what was sent within bytes 0-3"},
		{name: "short", reply: "\x82\x02ab", err: "echo holds 2 bytes, want 3"},
		{name: "long", reply: "\x82\x04abcd", err: "echo is longer than the 3 bytes sent"},
		{name: "text", reply: "\x81\x03abc", err: "echo starts with opcode 1, want 2 (binary)"},
		{name: "masked", reply: "\x82\x83\x00\x00\x00\x00abc", err: "server sent a masked frame"},
		{name: "close", reply: "\x88\x04\x03\xe8ok", err: `server closed the connection: 1000 "ok"`},
		{name: "fragments", reply: "\x02\x01a\x00\x01b\x80\x01c", err: ""},
		{name: "bad continuation", reply: "\x02\x01a\x82\x02bc", err: "echo goes on with opcode 2, want 0 (continuation)"},
	}
	for _, tt := range tests {
		errc := make(chan error, 1)
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			defer nc.Close()
			buf := make([]byte, 4096)
			n, err := nc.Read(buf)
			if err != nil {
				errc <- err
				return
			}
			head := tt.head
			if head == "" {
				head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
					acceptKey(string(buf[:n])) + "\r\n\r\n"
			}
			_, err = nc.Write([]byte(head + tt.reply))
			// Wait for the client to hang up.
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			for err == nil {
				_, err = nc.Read(buf)
			}
			errc <- nil
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := loadgen.Dial(ctx, &net.Dialer{}, ln.Addr().String(), 4096)
		cancel()
		if err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			err = c.ReadEcho([]byte("abc"))
			c.Close()
		}
		if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: %v, want an error holding %q", tt.name, err, tt.err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("%s: server: %v", tt.name, err)
		}
	}
}

// acceptKey returns the Sec-WebSocket-Accept answer to the key in an HTTP
// request head (RFC 6455 §4.2.2).
func acceptKey(req string) string {
	var key string
	for _, line := range strings.Split(req, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Key") {
			key = strings.TrimSpace(v)
		}
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}
