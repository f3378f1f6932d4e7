// Package loadgen is the client side of the echo benchmarks: a WebSocket
// client written directly on TCP, the same for every server, that costs as
// little as possible per message. It sends masked binary frames built once
// (the same mask key every time, which a server cannot tell), keeps several
// messages in flight, and checks every echoed byte against what it sent.
//
// It is a measuring instrument, not a general client: it speaks only the
// part of RFC 6455 an echo needs, and treats anything else the server sends
// (a ping, a close frame, a masked or compressed frame) as a failure,
// except an idle connection's pings, which AnswerPings answers.
package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// Message is the message a connection sends over and over, prepared once.
type Message struct {
	Payload []byte // what the server must send back
	frame   int    // length of one masked frame
	batch   []byte // InFlight masked frames back to back
}

// NewMessage prepares a binary message of payload, to be sent up to
// inFlight at a time.
func NewMessage(payload []byte, inFlight int) *Message {
	var key [4]byte
	rand.Read(key[:])
	f := AppendFrame(nil, 2, payload, key)
	m := &Message{Payload: payload, frame: len(f)}
	m.batch = make([]byte, 0, len(f)*inFlight)
	for range inFlight {
		m.batch = append(m.batch, f...)
	}
	return m
}

// InFlight reports how many copies of the frame the message holds.
func (m *Message) InFlight() int { return len(m.batch) / m.frame }

// AppendFrame appends to dst one final frame with opcode op, carrying
// payload masked with key, as a client sends it (RFC 6455 §5.2, §5.3).
func AppendFrame(dst []byte, op byte, payload []byte, key [4]byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, 0x80|op, 0x80|byte(n))
	case n < 1<<16:
		dst = append(dst, 0x80|op, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|op, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, key[:]...)
	for i, b := range payload {
		dst = append(dst, b^key[i&3])
	}
	return dst
}

// Conn is a client connection after its opening handshake.
type Conn struct {
	nc   net.Conn
	size int    // size of buf when it is allocated
	buf  []byte // read buffer; nil while released
	r, w int    // buf[r:w] holds bytes read and not yet parsed
}

// Dial connects to the echo server at addr (host:port) with d and performs
// the opening handshake, within ctx. Reads go through a buffer of bufSize
// bytes.
func Dial(ctx context.Context, d *net.Dialer, addr string, bufSize int) (*Conn, error) {
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &Conn{nc: nc, size: max(bufSize, 512)}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if err := c.handshake(addr); err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func (c *Conn) handshake(host string) error {
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET / HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.nc.Write([]byte(req)); err != nil {
		return err
	}
	// The response head, up to the blank line; bytes after it are the
	// first frames and stay buffered.
	var end int
	for {
		if i := bytes.Index(c.buffered(), []byte("\r\n\r\n")); i >= 0 {
			end = c.r + i + 4
			break
		}
		if c.w-c.r >= 8<<10 {
			return errors.New("response head over 8 KiB")
		}
		if err := c.fill(); err != nil {
			return err
		}
	}
	head := string(c.buf[c.r:end])
	c.r = end
	if len(head) < 13 || head[:13] != "HTTP/1.1 101 " {
		line, _, _ := strings.Cut(head, "\r\n")
		return fmt.Errorf("status %q, want 101", line)
	}
	sum := sha1.Sum([]byte(key + acceptGUID))
	want := base64.StdEncoding.EncodeToString(sum[:])
	if got := header(head, "sec-websocket-accept"); got != want {
		return fmt.Errorf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if got := header(head, "sec-websocket-extensions"); got != "" {
		return fmt.Errorf("server chose extensions %q that were not offered", got)
	}
	return nil
}

// header returns the value of the first header field named name (in lower
// case) in an HTTP response head.
func header(head, name string) string {
	_, rest, _ := strings.Cut(head, "\r\n")
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\r\n")
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (c *Conn) buffered() []byte { return c.buf[c.r:c.w] }

// fill reads more bytes into the buffer, moving what is unparsed to its
// front first if the buffer is full.
func (c *Conn) fill() error {
	if c.buf == nil {
		c.buf = make([]byte, c.size)
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	} else if c.w == len(c.buf) {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	n, err := c.nc.Read(c.buf[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = errors.New("read returned no bytes")
	}
	return err
}

// need makes at least n bytes available in buf[r:w].
func (c *Conn) need(n int) error {
	for c.w-c.r < n {
		if err := c.fill(); err != nil {
			return err
		}
	}
	return nil
}

// Release drops the read buffer if nothing is buffered, so an idle
// connection holds none; the next read allocates it again.
func (c *Conn) Release() {
	if c.r == c.w {
		c.buf, c.r, c.w = nil, 0, 0
	}
}

// Close closes the TCP connection, without a closing handshake.
func (c *Conn) Close() error { return c.nc.Close() }

// SetDeadline bounds every read and write, as net.Conn.SetDeadline does.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// Send writes n copies of m's frame in one write; n is at most m.InFlight().
func (c *Conn) Send(m *Message, n int) error {
	_, err := c.nc.Write(m.batch[:n*m.frame])
	return err
}

// ReadEcho reads one message and checks that it is a binary message holding
// exactly want, in one frame or several.
func (c *Conn) ReadEcho(want []byte) error {
	off := 0
	for first := true; ; first = false {
		if err := c.need(2); err != nil {
			return err
		}
		b0, b1 := c.buf[c.r], c.buf[c.r+1]
		fin, op := b0&0x80 != 0, b0&0x0f
		if b1&0x80 != 0 {
			return errors.New("server sent a masked frame")
		}
		if b0&0x70 != 0 {
			return fmt.Errorf("server set reserved bits %#x", b0&0x70)
		}
		hlen, n := 2, int64(b1&0x7f)
		switch n {
		case 126:
			hlen = 4
		case 127:
			hlen = 10
		}
		if err := c.need(hlen); err != nil {
			return err
		}
		switch hlen {
		case 4:
			n = int64(binary.BigEndian.Uint16(c.buf[c.r+2:]))
		case 10:
			n = int64(binary.BigEndian.Uint64(c.buf[c.r+2:]))
		}
		c.r += hlen
		switch {
		case op >= 8:
			return c.control(op, n)
		case first && op != 2:
			return fmt.Errorf("echo starts with opcode %d, want 2 (binary)", op)
		case !first && op != 0:
			return fmt.Errorf("echo goes on with opcode %d, want 0 (continuation)", op)
		case n < 0 || n > int64(len(want)-off):
			return fmt.Errorf("echo is longer than the %d bytes sent", len(want))
		}
		for end := off + int(n); off < end; {
			if c.r == c.w {
				if err := c.fill(); err != nil {
					return err
				}
			}
			k := min(end-off, c.w-c.r)
			if !bytes.Equal(c.buf[c.r:c.r+k], want[off:off+k]) {
				return fmt.Errorf("echo differs from what was sent within bytes %d-%d", off, off+k)
			}
			c.r += k
			off += k
		}
		if fin {
			if off != len(want) {
				return fmt.Errorf("echo holds %d bytes, want %d", off, len(want))
			}
			return nil
		}
	}
}

// control reports a control frame, which an echo never expects.
func (c *Conn) control(op byte, n int64) error {
	if op == 8 && n >= 2 && n <= 125 && c.need(int(n)) == nil {
		code := binary.BigEndian.Uint16(c.buf[c.r:])
		return fmt.Errorf("server closed the connection: %d %q", code, c.buf[c.r+2:c.r+int(n)])
	}
	return fmt.Errorf("unexpected control frame, opcode %d, %d bytes", op, n)
}

// Pipeline keeps up to m.InFlight() copies of m in flight on c, sending
// more as echoes arrive, until done is closed, max echoes have arrived, or
// the connection fails. Each echo is counted in echoed. A failure after
// done was closed (the connection closed under it) is not reported.
func (c *Conn) Pipeline(m *Message, done <-chan struct{}, echoed *atomic.Int64, max int64) error {
	var err error
	if len(m.batch) <= 64<<10 {
		err = c.pipeline(m, done, echoed, max)
	} else {
		err = c.pipeline2(m, done, echoed, max)
	}
	if isDone(done) {
		return nil
	}
	return err
}

// pipeline reads and writes in one goroutine: it sends what it may each
// time it has read every whole echo buffered, so that one write carries
// as many messages as one read brought echoes. This cannot deadlock, since
// all the frames in flight fit in the socket buffers (64 KiB do on Linux).
func (c *Conn) pipeline(m *Message, done <-chan struct{}, echoed *atomic.Int64, max int64) error {
	may := int64(m.InFlight()) // messages that may be sent now
	var sent int64
	echo := len(m.Payload) + 2 // bytes of an echo in one frame
	if len(m.Payload) >= 126 {
		echo += 2
	}
	for got := int64(0); got < max && !isDone(done); got++ {
		if may > 0 && sent < max && c.w-c.r < echo {
			k := min(may, max-sent)
			if err := c.Send(m, int(k)); err != nil {
				return err
			}
			sent += k
			may -= k
		}
		if err := c.ReadEcho(m.Payload); err != nil {
			return err
		}
		echoed.Add(1)
		may++
	}
	return nil
}

// pipeline2 reads in the calling goroutine and writes in another, so that
// a server that streams a large echo back while it still receives cannot
// block both sides.
func (c *Conn) pipeline2(m *Message, done <-chan struct{}, echoed *atomic.Int64, max int64) error {
	var credit atomic.Int64 // messages that may be sent
	credit.Store(int64(m.InFlight()))
	wake := make(chan struct{}, 1)
	quit := make(chan struct{})
	werr := make(chan error, 1)
	go func() {
		for sent := int64(0); sent < max; {
			k := credit.Swap(0)
			if k == 0 {
				select {
				case <-wake:
					continue
				case <-done:
				case <-quit:
				}
				break
			}
			k = min(k, max-sent)
			if err := c.Send(m, int(k)); err != nil {
				werr <- err
				return
			}
			sent += k
		}
		werr <- nil
	}()
	var err error
	for got := int64(0); got < max; got++ {
		if err = c.ReadEcho(m.Payload); err != nil {
			break
		}
		echoed.Add(1)
		credit.Add(1)
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	if err != nil {
		// The writer may be blocked in a write the server no longer
		// reads: closing the connection releases it.
		c.nc.Close()
	}
	close(quit)
	if e := <-werr; err == nil {
		err = e
	}
	return err
}

func isDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// RoundTrips sends m one at a time, waiting for each echo before sending
// the next, until done is closed, max echoes have arrived, or the
// connection fails. It appends the round-trip time of each message to
// *rtts while it has room (cap), and counts each echo in echoed.
// A failure after done was closed is not reported.
//
// The message is written and read by one goroutine, so it must fit in the
// socket buffers (64 KiB does on Linux): a server that streams a larger echo
// back before it has read all of it could block both sides otherwise.
func (c *Conn) RoundTrips(m *Message, done <-chan struct{}, echoed *atomic.Int64, max int64, rtts *[]time.Duration) error {
	for got := int64(0); got < max && !isDone(done); got++ {
		t0 := time.Now()
		err := c.Send(m, 1)
		if err == nil {
			err = c.ReadEcho(m.Payload)
		}
		if err != nil {
			if isDone(done) {
				return nil
			}
			return err
		}
		if len(*rtts) < cap(*rtts) {
			*rtts = append(*rtts, time.Since(t0))
		}
		echoed.Add(1)
	}
	return nil
}

// pongKey masks every pong.
var pongKey = [4]byte{0x5a, 0x17, 0xc3, 0x2e}

// AnswerPings reads until done is closed or the connection fails,
// answering every ping with a pong that carries its payload (RFC 6455
// §5.5.3), as an idle client does for a server that checks it is still
// there. It counts the pings answered in pings. Anything but a ping is an
// error; a failure after done was closed (the connection closed under it)
// is not reported.
func (c *Conn) AnswerPings(done <-chan struct{}, pings *atomic.Int64) error {
	var pong []byte
	err := func() error {
		for {
			if err := c.need(2); err != nil {
				return err
			}
			b0, b1 := c.buf[c.r], c.buf[c.r+1]
			op, n := b0&0x0f, int64(b1&0x7f)
			if b1&0x80 != 0 {
				return errors.New("server sent a masked frame")
			}
			c.r += 2
			if op != 9 || b0&0xf0 != 0x80 || n > 125 {
				if op < 8 {
					return fmt.Errorf("unexpected frame, opcode %d, on an idle connection", op)
				}
				return c.control(op, n)
			}
			if err := c.need(int(n)); err != nil {
				return err
			}
			pong = AppendFrame(pong[:0], 10, c.buf[c.r:c.r+int(n)], pongKey)
			c.r += int(n)
			if _, err := c.nc.Write(pong); err != nil {
				return err
			}
			pings.Add(1)
		}
	}()
	if isDone(done) {
		return nil
	}
	return err
}
