package websocket_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
)

// TestHostileClient attacks Dial and the client's reads with a raw
// server, one row at a time; see hostile_test.go for the harness. After
// each row, a fresh Dial to the library's own server must still echo.
func TestHostileClient(t *testing.T) {
	s := newHostileServer(t)
	runHostile(t, s, clientRows())
}

// rawServerConn is the raw server's end of one connection, its opening
// handshake request read.
type rawServerConn struct {
	nc  *net.TCPConn
	br  *bufio.Reader
	req *http.Request
}

// serveRaw starts a raw server that takes one connection, reads its
// request and hands it to script. It returns the URL to dial and a
// channel that delivers script's error once the connection is closed.
func serveRaw(t *testing.T, script func(c *rawServerConn) error) (string, <-chan error) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			defer ln.Close()
			ln.SetDeadline(time.Now().Add(hostileWait))
			nc, err := ln.AcceptTCP()
			if err != nil {
				return err
			}
			defer nc.Close()
			c := &rawServerConn{nc: nc, br: bufio.NewReader(nc)}
			nc.SetReadDeadline(time.Now().Add(hostileWait))
			if c.req, err = http.ReadRequest(c.br); err != nil {
				return fmt.Errorf("reading the handshake: %w", err)
			}
			return script(c)
		}()
	}()
	return "ws://" + ln.Addr().String() + "/", done
}

func awaitScript(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("raw server: %v", err)
		}
	case <-time.After(hostileWait):
		t.Fatalf("the raw server's script did not end within %v", hostileWait)
	}
}

func (c *rawServerConn) write(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(hostileWait))
	_, err := c.nc.Write(b)
	return err
}

// response101 is a 101 answering the request, with extra header lines;
// a line "-Name" leaves out a header of the standard set.
func (c *rawServerConn) response101(lines ...string) string {
	std := []string{
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Accept: " + acceptValue(c.req.Header.Get("Sec-WebSocket-Key")),
	}
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	for _, l := range std {
		name, _, _ := strings.Cut(l, ":")
		omit := false
		for _, x := range lines {
			omit = omit || strings.EqualFold(x, "-"+name)
		}
		if !omit {
			b.WriteString(l + "\r\n")
		}
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "-") {
			b.WriteString(l + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// readFrame reads a frame of the client's, which must come masked, and
// returns it unmasked.
func (c *rawServerConn) readFrame() (byte, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(hostileWait))
	var h [14]byte
	if _, err := io.ReadFull(c.br, h[:2]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 == 0 {
		return 0, nil, fmt.Errorf("the client sent an unmasked frame (%#x %#x)", h[0], h[1])
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, h[2:4]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err := io.ReadFull(c.br, h[2:10]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(h[2:10])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("the client declared a frame of %d bytes", n)
	}
	var key [4]byte
	if _, err := io.ReadFull(c.br, key[:]); err != nil {
		return 0, nil, err
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= key[i&3]
	}
	return h[0], payload, nil
}

// expectClose reads the client's close frame, which must carry code and
// a reason containing why; the raw server then closes TCP first, as
// RFC 6455 §7.1.1 has servers do.
func (c *rawServerConn) expectClose(code websocket.StatusCode, why string) error {
	b0, payload, err := c.readFrame()
	if err != nil {
		return fmt.Errorf("awaiting close %d: %w", code, err)
	}
	return checkClose(b0, payload, code, why)
}

// expectGone checks that the client closed the connection, sending
// nothing. A client that closes with the raw server's bytes unread
// resets the connection.
func (c *rawServerConn) expectGone() error {
	err := expectEOF(c.nc, c.br)
	if err != nil && errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	return err
}

func (c *rawServerConn) reset() {
	c.nc.SetLinger(0)
	c.nc.Close()
}

// clientOpts are the options of the client under attack: its close
// timeout outlasts the raw server's waits.
func clientOpts() *websocket.DialOptions {
	return &websocket.DialOptions{CloseTimeout: hostileCloseTimeout}
}

// readFails is a row in which the raw server accepts the handshake
// (with the extra 101 lines), sends frames, and the client's read must
// fail the connection with code: its close frame, with a reason saying
// why, reaches the raw server, and Read returns a *ProtocolError with
// code.
func readFails(name string, code websocket.StatusCode, why string, opts *websocket.DialOptions, frames string, lines ...string) hostileRow {
	return hostileRow{name: name, run: func(t *testing.T) {
		url, done := serveRaw(t, func(c *rawServerConn) error {
			if err := c.write([]byte(c.response101(lines...) + frames)); err != nil {
				return err
			}
			return c.expectClose(code, why)
		})
		ctx, cancel := context.WithTimeout(context.Background(), hostileWait)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, url, opts)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer conn.CloseNow()
		conn.SetReadLimit(hostileLimit)
		_, p, err := conn.Read(ctx)
		if err == nil {
			t.Fatalf("Read returned a message of %d bytes", len(p))
		}
		awaitScript(t, done)
		wantFailed(t, err, code)
	}}
}

// dialFails is a row in which the raw server answers the handshake with
// the 101 that response returns followed by extra, and Dial must fail
// with an error wrapping ErrHandshake and close the connection.
func dialFails(name string, opts *websocket.DialOptions, response func(c *rawServerConn) string, extra ...[]byte) hostileRow {
	return hostileRow{name: name, run: func(t *testing.T) {
		url, done := serveRaw(t, func(c *rawServerConn) error {
			if err := c.write([]byte(response(c))); err != nil {
				return err
			}
			for _, b := range extra {
				if err := c.write(b); err != nil {
					if isReset(err) || errors.Is(err, syscall.EPIPE) {
						return nil // the client stopped reading and closed
					}
					return err
				}
			}
			return c.expectGone()
		})
		ctx, cancel := context.WithTimeout(context.Background(), hostileWait)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, url, opts)
		if err == nil {
			conn.CloseNow()
			t.Fatal("Dial succeeded")
		}
		if !errors.Is(err, websocket.ErrHandshake) {
			t.Fatalf("Dial: %v, want ErrHandshake", err)
		}
		awaitScript(t, done)
	}}
}

func clientRows() []hostileRow {
	deflateOpts := clientOpts()
	deflateOpts.Compression = websocket.CompressionNoContextTakeover
	deflated := "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	chat := clientOpts()
	chat.Subprotocols = []string{"chat"}
	bomb := zeroBomb(64)
	pad := []byte(strings.Join(padLines(1100), "\r\n") + "\r\n")
	len64 := func(b0 byte, n uint64) string {
		return string(binary.BigEndian.AppendUint64([]byte{b0, 127}, n))
	}

	rows := []hostileRow{
		readFails("client/2^40 declared, no payload sent", websocket.StatusMessageTooBig, "read limit", clientOpts(), len64(0x82, 1<<40)),
		readFails("client/64-bit length 2^63 (top bit set)", websocket.StatusProtocolError, "most significant bit", clientOpts(), len64(0x82, 1<<63)),
		withAlloc(4<<20, readFails("client/64 KiB inflating to 64 MiB", websocket.StatusMessageTooBig, "read limit", deflateOpts,
			string(appendLen([]byte{0xC2}, 0, uint64(len(bomb))))+string(bomb), deflated)),
		readFails("client/masked server frame", websocket.StatusProtocolError, "masked frame from the server", clientOpts(),
			"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"),
		readFails("client/reserved opcode 0xB", websocket.StatusProtocolError, "reserved opcode", clientOpts(), "\x8b\x00"),
		readFails("client/RSV1 without compression", websocket.StatusProtocolError, "reserved bits", clientOpts(), "\xc1\x05Hello"),
		readFails("client/close code 1005 sent", websocket.StatusProtocolError, "invalid close code", clientOpts(), "\x88\x02\x03\xed"),

		dialFails("client/extension not offered", clientOpts(), func(c *rawServerConn) string {
			return c.response101("Sec-WebSocket-Extensions: permessage-deflate")
		}),
		dialFails("client/unknown extension in answer to permessage-deflate", deflateOpts, func(c *rawServerConn) string {
			return c.response101("Sec-WebSocket-Extensions: x-frobnicate")
		}),
		dialFails("client/subprotocol not offered", clientOpts(), func(c *rawServerConn) string {
			return c.response101("Sec-WebSocket-Protocol: chat")
		}),
		dialFails("client/subprotocol other than those offered", chat, func(c *rawServerConn) string {
			return c.response101("Sec-WebSocket-Protocol: superchat")
		}),
		dialFails("client/wrong Sec-WebSocket-Accept", clientOpts(), func(c *rawServerConn) string {
			return c.response101("-Sec-WebSocket-Accept", "Sec-WebSocket-Accept: "+rfcAccept)
		}),
		dialFails("client/Sec-WebSocket-Accept missing", clientOpts(), func(c *rawServerConn) string {
			return c.response101("-Sec-WebSocket-Accept")
		}),
		// The header lines of a 101 that would go on past 1 MiB, made
		// here, outside the row's memory accounting.
		withAlloc(4<<20, dialFails("client/1 MiB of response headers", clientOpts(), func(c *rawServerConn) string {
			return strings.TrimSuffix(c.response101(), "\r\n")
		}, pad, []byte("\r\n"))),

		{name: "client/response header lines without end", run: func(t *testing.T) {
			url, done := serveRaw(t, func(c *rawServerConn) error {
				if err := c.write([]byte("HTTP/1.1 101 Switching Protocols\r\n")); err != nil {
					return err
				}
				for {
					if err := c.write(pad); err != nil {
						if isReset(err) || errors.Is(err, syscall.EPIPE) {
							return nil
						}
						return err
					}
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), hostileWait)
			defer cancel()
			conn, _, err := websocket.Dial(ctx, url, clientOpts())
			if err == nil {
				conn.CloseNow()
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(err, websocket.ErrHandshake) {
				t.Fatalf("Dial: %v, want ErrHandshake", err)
			}
			awaitScript(t, done)
		}, alloc: 4 << 20},
		{name: "client/101 one byte a second, cut by Dial's context", run: func(t *testing.T) {
			trickle(t, context.Background(), clientOpts())
		}},
		{name: "client/101 one byte a second, cut by HTTPClient.Timeout", run: func(t *testing.T) {
			opts := clientOpts()
			opts.HTTPClient = &http.Client{Timeout: time.Second}
			trickle(t, context.Background(), opts)
		}},

		{name: "client/reset mid-frame", run: func(t *testing.T) {
			url, done := serveRaw(t, func(c *rawServerConn) error {
				// A ping, then part of a frame; the pong shows the client
				// has read them.
				if err := c.write([]byte(c.response101() + "\x89\x04sync\x82\x7e\x10\x00" + strings.Repeat("x", 100))); err != nil {
					return err
				}
				b0, payload, err := c.readFrame()
				if err != nil || b0 != 0x8A || string(payload) != "sync" {
					return fmt.Errorf("awaiting the pong: %#x %q %v", b0, payload, err)
				}
				c.reset()
				return nil
			})
			readLost(t, url, done, isReset)
		}},
		{name: "client/end of stream mid-frame", run: func(t *testing.T) {
			url, done := serveRaw(t, func(c *rawServerConn) error {
				return c.write([]byte(c.response101() + "\x82\x7e\x10\x00" + strings.Repeat("x", 100)))
			})
			readLost(t, url, done, func(err error) bool { return errors.Is(err, io.EOF) })
		}},
		{name: "client/reset mid-handshake", run: func(t *testing.T) {
			url, done := serveRaw(t, func(c *rawServerConn) error {
				// The status line and one header: a cut within a line
				// would read as a malformed header instead.
				r := c.response101()
				r = r[:strings.Index(r, "Upgrade: websocket\r\n")+len("Upgrade: websocket\r\n")]
				if err := c.write([]byte(r)); err != nil {
					return err
				}
				c.reset()
				return nil
			})
			ctx, cancel := context.WithTimeout(context.Background(), hostileWait)
			defer cancel()
			conn, _, err := websocket.Dial(ctx, url, clientOpts())
			if err == nil {
				conn.CloseNow()
				t.Fatal("Dial succeeded")
			}
			if !isReset(err) || errors.Is(err, websocket.ErrHandshake) {
				t.Fatalf("Dial: %v, want the connection reset", err)
			}
			awaitScript(t, done)
		}},
	}
	return rows
}

// trickle has the raw server send a 101 one byte a second; Dial, under
// ctx and opts, must give up after a second, whichever bounds it (a
// context of a second for a background ctx without HTTPClient.Timeout).
func trickle(t *testing.T, ctx context.Context, opts *websocket.DialOptions) {
	url, done := serveRaw(t, func(c *rawServerConn) error {
		r := c.response101()
		for i := range len(r) {
			if err := c.write([]byte{r[i]}); err != nil {
				return fmt.Errorf("after %d bytes: %w", i, err)
			}
			c.nc.SetReadDeadline(time.Now().Add(time.Second))
			var b [1]byte
			n, err := c.br.Read(b[:])
			switch {
			case n > 0:
				return fmt.Errorf("the client sent %q", b[:n])
			case isReset(err):
				return nil // the client closed, a byte perhaps unread
			case !errors.Is(err, os.ErrDeadlineExceeded):
				return err
			}
		}
		return errors.New("the whole 101 went out a byte a second")
	})
	// Timed from before the deadline is set, so that the deadline's
	// second is all counted.
	start := time.Now()
	if opts.HTTPClient == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Second)
		defer cancel()
	}
	conn, _, err := websocket.Dial(ctx, url, opts)
	took := time.Since(start)
	if err == nil {
		conn.CloseNow()
		t.Fatal("Dial succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) || took < time.Second || took > 2*time.Second {
		t.Fatalf("Dial returned after %v: %v; want the deadline of a second", took, err)
	}
	awaitScript(t, done)
	t.Logf("Dial gave up after %v: %v", took.Round(time.Millisecond), err)
}

// isReset reports whether err is what a read meets after a TCP reset:
// ECONNRESET, or, when the reset arrived before the read began, the end
// of the stream (Linux reports either), which net/http makes
// io.ErrUnexpectedEOF within a response.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// readLost dials url; the client's read must end with the connection
// lost (1006, reported), its error satisfying cause.
func readLost(t *testing.T, url string, done <-chan error, cause func(error) bool) {
	ctx, cancel := context.WithTimeout(context.Background(), hostileWait)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, clientOpts())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.CloseNow()
	_, _, err = conn.Read(ctx)
	awaitScript(t, done)
	wantLost(t, err)
	if !cause(err) {
		t.Fatalf("Read: %v, want it to wrap the cause of the loss", err)
	}
}
