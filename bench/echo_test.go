package bench_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ours "github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/bench/echo"
	"github.com/rfc6455/websocket/bench/loadgen"
)

// startEcho runs lib's echo server with opts (nil for the defaults) on a
// loopback port until the test ends.
func startEcho(tb testing.TB, lib string, opts *echo.Options) *echo.Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := echo.Start(lib, ln, opts)
	if err != nil {
		ln.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// dial opens a load generator connection to s, offering comp, closed when
// the test ends.
func dial(tb testing.TB, s *echo.Server, bufSize int, comp loadgen.Compression) *loadgen.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := loadgen.Dial(ctx, &net.Dialer{}, s.Addr(), bufSize, comp)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// skipRacy skips a test of nbio under the race detector, which reports
// data races inside nbio's own engine (between its listener and poller
// goroutines, in v1.6.8; the library marks its functions go:norace).
func skipRacy(t *testing.T, lib string) {
	if raceEnabled && lib == echo.Nbio {
		t.Skip("the race detector reports data races inside nbio's engine")
	}
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
			skipRacy(t, lib)
			s := startEcho(t, lib, nil)
			for _, n := range sizes {
				if n == 0 && lib == echo.Nbio {
					// nbio v1.6.8 never calls OnMessage for an empty
					// message (Conn.Parse hands on only a message that
					// has bytes), so it echoes none.
					continue
				}
				m := loadgen.NewMessage(payload(n), 4)
				count := int64(max(2, min(100, (4<<20)/(n+1))))
				for i := range 2 {
					c := dial(t, s, 16<<10, loadgen.Uncompressed)
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
// echoes something else than what was sent, or answers its offer of
// compression with what it did not ask for.
func TestEchoChecks(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// deflated returns a final text frame with RSV1 set carrying p
	// compressed on its own (RFC 7692 §7.2.1).
	deflated := func(p string) string {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, flate.BestSpeed)
		w.Write([]byte(p))
		w.Flush()
		z := strings.TrimSuffix(b.String(), "\x00\x00\xff\xff")
		return "\xc1" + string(rune(len(z))) + z
	}
	const none, nc, tk = loadgen.Uncompressed, loadgen.Deflate, loadgen.DeflateTakeover
	// A server that answers the handshake, then sends the scripted bytes.
	tests := []struct {
		name  string
		comp  loadgen.Compression
		head  string // the response head, if not a correct 101
		ext   string // the Sec-WebSocket-Extensions it answers with
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
		{name: "extension not offered", ext: "permessage-deflate", err: `server chose extensions "permessage-deflate" that were not offered`},
		{name: "compressed, not negotiated", reply: deflated("abc"), err: "server set reserved bits 0x40"},
		{name: "declined", comp: nc, err: "server declined permessage-deflate without context takeover"},
		{name: "other extension", comp: nc, ext: "x-webkit-deflate-frame", err: `server chose extensions "x-webkit-deflate-frame", want permessage-deflate alone`},
		{name: "no server_no_context_takeover", comp: nc, ext: "permessage-deflate; client_no_context_takeover", err: "without server_no_context_takeover, which was offered"},
		{name: "client window not offered", comp: tk, ext: "permessage-deflate; client_max_window_bits=12", err: `parameter "client_max_window_bits=12" was not offered`},
		{name: "takeover declined", comp: tk, ext: "permessage-deflate; server_no_context_takeover; client_no_context_takeover", err: "it declines context takeover"},
		{name: "server window 16", comp: tk, ext: "permessage-deflate; server_max_window_bits=16", err: "server_max_window_bits is not 8 to 15"},
		{name: "compressed", comp: nc, ext: "permessage-deflate; server_no_context_takeover", reply: deflated("abc"), err: ""},
		{name: "compressed, smaller server window", comp: tk, ext: "permessage-deflate; server_max_window_bits=10", reply: deflated("abc"), err: ""},
		{name: "compressed, uncompressed echo", comp: nc, ext: "permessage-deflate; server_no_context_takeover", reply: "\x81\x03abc", err: ""},
		{name: "compressed, changed byte", comp: nc, ext: "permessage-deflate; server_no_context_takeover", reply: deflated("abd"), err: "echo inflates to other bytes than were sent, from byte 2"},
		{name: "compressed, long", comp: nc, ext: "permessage-deflate; server_no_context_takeover", reply: deflated("abcd"), err: "echo inflates to more than the 3 bytes sent"},
		{name: "compressed, garbage", comp: nc, ext: "permessage-deflate; server_no_context_takeover", reply: "\xc1\x02\xff\xff", err: "inflating the echo"},
		{name: "compressed continuation", comp: nc, ext: "permessage-deflate; server_no_context_takeover", reply: "\x01\x01a\xc0\x02bc", err: "server set reserved bits 0x40"},
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
			if got, want := strings.Contains(string(buf[:n]), "\r\nSec-WebSocket-Extensions: "+tt.comp.Offer()+"\r\n"), tt.comp != none; got != want {
				errc <- fmt.Errorf("request %q offers %q: %v, want %v", buf[:n], tt.comp.Offer(), got, want)
				return
			}
			head := tt.head
			if head == "" {
				head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
					acceptKey(string(buf[:n])) + "\r\n"
				if tt.ext != "" {
					head += "Sec-WebSocket-Extensions: " + tt.ext + "\r\n"
				}
				head += "\r\n"
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
		c, err := loadgen.Dial(ctx, &net.Dialer{}, ln.Addr().String(), 4096, tt.comp)
		cancel()
		if err == nil {
			m := loadgen.NewMessage([]byte("abc"), 1)
			if tt.comp != none {
				m, err = loadgen.NewMessages(1, [][]byte{[]byte("abc")}, tt.comp, 1)
				if err != nil {
					t.Fatal(err)
				}
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			err = c.ReadEcho(m)
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

// TestEchoCompressed sends cycles of JSON texts, compressed, through each
// server that compresses in the mode, pipelined and one at a time, past
// the end of the first cycle, and checks every inflated echo, that the
// echoes were compressed, and the parameters negotiated. A server that
// does not support the mode must refuse it in the handshake.
func TestEchoCompressed(t *testing.T) {
	t.Parallel()
	modes := []struct {
		comp loadgen.Compression
		mode ours.CompressionMode
	}{{loadgen.Deflate, ours.CompressionNoContextTakeover}, {loadgen.DeflateTakeover, ours.CompressionContextTakeover}}
	for _, lib := range echo.Libs {
		for _, md := range modes {
			t.Run(lib+"/"+md.mode.String(), func(t *testing.T) {
				t.Parallel()
				skipRacy(t, lib)
				s := startEcho(t, lib, &echo.Options{Compression: md.mode})
				if !echo.Supports(lib, md.mode) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					c, err := loadgen.Dial(ctx, &net.Dialer{}, s.Addr(), 4096, md.comp)
					if err == nil {
						c.Close()
						t.Fatalf("Dial offering %s succeeded with %q, want a refusal", md.comp, c.Extensions())
					}
					if want := "declin"; !strings.Contains(err.Error(), want) {
						t.Errorf("Dial offering %s: %v, want an error holding %q", md.comp, err, want)
					}
					return
				}
				for _, n := range []int{100, 1 << 10, 16 << 10} {
					texts := loadgen.JSONMessages(8, n, 2)
					m, err := loadgen.NewMessages(1, texts, md.comp, 4)
					if err != nil {
						t.Fatal(err)
					}
					c := dial(t, s, 16<<10, md.comp)
					c.SetDeadline(time.Now().Add(20 * time.Second))
					if md.comp == loadgen.Deflate && !strings.Contains(c.Extensions(), "server_no_context_takeover") ||
						md.comp == loadgen.DeflateTakeover && strings.Contains(c.Extensions(), "no_context_takeover") {
						t.Errorf("negotiated %q for %s", c.Extensions(), md.comp)
					}
					var echoed atomic.Int64
					done := make(chan struct{})
					if err := c.Pipeline(m, done, &echoed, 20); err != nil {
						t.Fatalf("%d-byte texts, pipelined: %v", n, err)
					}
					rtts := make([]time.Duration, 0, 10)
					if err := c.RoundTrips(m, done, &echoed, 10, &rtts); err != nil {
						t.Fatalf("%d-byte texts, one at a time: %v", n, err)
					}
					if got := echoed.Load(); got != 30 {
						t.Errorf("%d-byte texts: %d echoes, want 30", n, got)
					}
					// Every server compresses 1 KiB and more (none has a
					// threshold above 512 B); 100 B may go either way.
					if got := c.EchoBytes(); n >= 1<<10 && got >= int64(30*n) {
						t.Errorf("%d-byte texts: %d bytes of echoes for %d sent, want them compressed", n, got, 30*n)
					}
					c.Close()
				}
			})
		}
	}
}
