// Package loadgen is the client side of the echo benchmarks: a WebSocket
// client written directly on TCP, the same for every server, that costs as
// little as possible per message. It sends masked frames built once (the
// same mask key every time, which a server cannot tell), keeps several
// messages in flight, and checks every echoed byte against what it sent.
//
// It can offer permessage-deflate (RFC 7692), with or without context
// takeover: then its frames are compressed ahead of time too, a cycle of
// different messages each compressed as a client with that mode would
// compress it in that place of the stream, and it inflates every echo to
// check it, keeping the server's window if the server keeps its own.
//
// It is a measuring instrument, not a general client: it speaks only the
// part of RFC 6455 an echo needs, and treats anything else the server sends
// (a ping, a close frame, a masked frame, a compressed frame on a connection
// that did not negotiate compression) as a failure, except an idle
// connection's pings, which AnswerPings answers.
package loadgen

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Compression is what a connection offers in its opening handshake.
type Compression int

const (
	// Uncompressed offers no extension.
	Uncompressed Compression = iota
	// Deflate offers permessage-deflate without context takeover in
	// either direction: "permessage-deflate; server_no_context_takeover;
	// client_no_context_takeover".
	Deflate
	// DeflateTakeover offers permessage-deflate with context takeover in
	// both directions and 2^15-byte windows on the client's side, the
	// bare "permessage-deflate"; a server that answers with either
	// no_context_takeover parameter is refused.
	DeflateTakeover
)

func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Deflate:
		return "permessage-deflate without context takeover"
	case DeflateTakeover:
		return "permessage-deflate with context takeover"
	}
	return "Compression(" + strconv.Itoa(int(c)) + ")"
}

// Offer returns the Sec-WebSocket-Extensions header a connection sends.
func (c Compression) Offer() string {
	switch c {
	case Deflate:
		return "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	case DeflateTakeover:
		return "permessage-deflate"
	}
	return ""
}

// windowSize is the LZ77 window of permessage-deflate without
// max_window_bits parameters, 2^15 bytes (RFC 7692 §7.1.2).
const windowSize = 1 << 15

// deflateTail ends a message's compressed bytes for the inflater: the
// 0x00 0x00 0xff 0xff that RFC 7692 §7.2.2 has the receiver append, then an
// empty final stored block, so that the inflater reports the end (io.EOF)
// rather than running out of input.
const deflateTail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

// Message is what a connection sends over and over, prepared once: one
// payload, or a cycle of payloads sent in turn, each in one frame.
type Message struct {
	Payload  []byte   // the first payload
	payloads [][]byte // the cycle; the echo of the i-th message sent must be payloads[i % len]
	op       byte     // opcode of every message
	comp     Compression
	inFlight int

	// frames holds every frame, masked, back to back: first the frames
	// of a first pass through the cycle, if they differ from the later
	// passes' (with context takeover the first pass has less history to
	// refer to), then the steady pass repeated often enough that any
	// inFlight consecutive messages lie side by side. off[k] is where
	// frame k starts, off[len] the end.
	frames []byte
	off    []int
	first  int // frames of the first pass at the front; 0 if none
}

// NewMessage prepares an uncompressed binary message of payload, to be
// sent up to inFlight at a time.
func NewMessage(payload []byte, inFlight int) *Message {
	m, err := NewMessages(2, [][]byte{payload}, Uncompressed, inFlight)
	if err != nil {
		panic(err) // uncompressed messages cannot fail
	}
	return m
}

// NewMessages prepares a cycle of messages with opcode op (1 text, 2
// binary), sent in turn, up to inFlight at a time, on connections that
// negotiated comp. Compressed frames are what a client compressing at
// compress/flate's default level, with a 2^15-byte window, sends: each
// message on its own for Deflate; for DeflateTakeover, each with the
// stream's history before it as its dictionary, which for a connection's
// first pass through the cycle is what it sent so far and later the cycle
// itself.
func NewMessages(op byte, payloads [][]byte, comp Compression, inFlight int) (*Message, error) {
	if len(payloads) == 0 || inFlight < 1 || (op != 1 && op != 2) {
		return nil, errors.New("loadgen: a message needs payloads, a positive number in flight, and opcode 1 or 2")
	}
	var key [4]byte
	rand.Read(key[:])
	m := &Message{Payload: payloads[0], payloads: payloads, op: op, comp: comp, inFlight: inFlight}
	steady := make([][]byte, len(payloads))
	var firstPass [][]byte
	var err error
	switch comp {
	case Uncompressed:
		for i, p := range payloads {
			steady[i] = appendFrame(nil, 0x80|op, p, key)
		}
	case Deflate:
		for i, p := range payloads {
			if steady[i], err = compressedFrame(op, p, nil, key); err != nil {
				return nil, err
			}
		}
	case DeflateTakeover:
		var cycle []byte
		for _, p := range payloads {
			cycle = append(cycle, p...)
		}
		// History enough for a full window before any message of a
		// steady pass.
		var past []byte
		for len(past) < windowSize {
			past = append(past, cycle...)
		}
		var sent []byte // the first pass's history
		firstPass = make([][]byte, len(payloads))
		for i, p := range payloads {
			if firstPass[i], err = compressedFrame(op, p, lastWindow(sent), key); err != nil {
				return nil, err
			}
			if steady[i], err = compressedFrame(op, p, lastWindow(past), key); err != nil {
				return nil, err
			}
			sent = append(sent, p...)
			past = append(past, p...)
		}
	default:
		return nil, fmt.Errorf("loadgen: unknown compression %d", comp)
	}
	add := func(f []byte) {
		m.off = append(m.off, len(m.frames))
		m.frames = append(m.frames, f...)
	}
	for _, f := range firstPass {
		add(f)
	}
	m.first = len(firstPass)
	n := len(steady)
	for range (n - 1 + inFlight + n - 1) / n {
		for _, f := range steady {
			add(f)
		}
	}
	m.off = append(m.off, len(m.frames))
	return m, nil
}

func lastWindow(b []byte) []byte { return b[max(0, len(b)-windowSize):] }

// compressedFrame returns a masked final frame with RSV1 set carrying p
// compressed with dict as history (RFC 7692 §7.2.1).
func compressedFrame(op byte, p, dict []byte, key [4]byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := flate.NewWriterDict(&b, flate.DefaultCompression, dict)
	if err != nil {
		return nil, err
	}
	w.Write(p)
	w.Flush()
	z, ok := bytes.CutSuffix(b.Bytes(), []byte("\x00\x00\xff\xff"))
	if !ok {
		return nil, errors.New("loadgen: flushed DEFLATE data does not end in 00 00 ff ff")
	}
	return appendFrame(nil, 0xc0|op, z, key), nil
}

// InFlight reports how many messages may be sent at once.
func (m *Message) InFlight() int { return m.inFlight }

// Size returns the length of the i-th payload of the cycle (modulo its
// length).
func (m *Message) Size(i int) int { return len(m.payloads[i%len(m.payloads)]) }

// FrameBytes returns the mean length of the frames a connection sends,
// headers included, over a steady pass through the cycle.
func (m *Message) FrameBytes() float64 {
	n := len(m.payloads)
	return float64(m.off[m.first+n]-m.off[m.first]) / float64(n)
}

// PayloadBytes returns the mean length of the payloads of the cycle.
func (m *Message) PayloadBytes() float64 {
	var t int
	for _, p := range m.payloads {
		t += len(p)
	}
	return float64(t) / float64(len(m.payloads))
}

// inFlightBytes returns the most bytes that inFlight messages in a row
// take.
func (m *Message) inFlightBytes() int {
	most := 0
	for i := 0; i+m.inFlight < len(m.off); i++ {
		most = max(most, m.off[i+m.inFlight]-m.off[i])
	}
	return most
}

// frame returns the index in m.frames of the frame of message i of a
// connection.
func (m *Message) frame(i int64) int {
	n := int64(len(m.payloads))
	if i < int64(m.first) {
		return int(i)
	}
	return m.first + int((i-int64(m.first))%n)
}

// AppendFrame appends to dst one final frame with opcode op, carrying
// payload masked with key, as a client sends it (RFC 6455 §5.2, §5.3).
func AppendFrame(dst []byte, op byte, payload []byte, key [4]byte) []byte {
	return appendFrame(dst, 0x80|op, payload, key)
}

// appendFrame appends a masked frame whose first byte is b0.
func appendFrame(dst []byte, b0 byte, payload []byte, key [4]byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, b0, 0x80|byte(n))
	case n < 1<<16:
		dst = append(dst, b0, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, b0, 0x80|127)
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

	// Messages sent and echoes read, numbering each connection's
	// messages for Message's cycle: the sender alone touches sent, the
	// reader alone got.
	sent, got int64
	wire      atomic.Int64 // bytes of echo frames read, headers included

	// Compression, as negotiated.
	comp           Compression
	extensions     string // the server's Sec-WebSocket-Extensions
	serverTakeover bool   // the server keeps its window across messages
	zbuf           []byte // an echo's compressed payload
	zr             bytes.Reader
	fr             io.ReadCloser // the inflater, made at the first compressed echo
	out            []byte        // an echo, inflated
	window         []byte        // the server's history, with serverTakeover
}

// Dial connects to the echo server at addr (host:port) with d and performs
// the opening handshake, offering comp, within ctx. Reads go through a
// buffer of bufSize bytes.
func Dial(ctx context.Context, d *net.Dialer, addr string, bufSize int, comp Compression) (*Conn, error) {
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &Conn{nc: nc, size: max(bufSize, 512), comp: comp}
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

// Extensions returns the server's Sec-WebSocket-Extensions, the
// parameters it chose ("" if none).
func (c *Conn) Extensions() string { return c.extensions }

// EchoBytes returns how many bytes of echo frames, headers included, the
// connection has read.
func (c *Conn) EchoBytes() int64 { return c.wire.Load() }

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func (c *Conn) handshake(host string) error {
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET / HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n"
	if offer := c.comp.Offer(); offer != "" {
		req += "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	req += "\r\n"
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
	c.extensions = header(head, "sec-websocket-extensions")
	return c.checkExtensions()
}

// checkExtensions checks the server's answer to the offer (RFC 7692 §7.1)
// and that it keeps to what this client compresses for: no extension
// unless offered; permessage-deflate in the mode offered, with nothing
// asked of the client's window, since the frames are compressed ahead of
// time with 2^15-byte windows.
func (c *Conn) checkExtensions() error {
	if c.comp == Uncompressed {
		if c.extensions != "" {
			return fmt.Errorf("server chose extensions %q that were not offered", c.extensions)
		}
		return nil
	}
	if c.extensions == "" {
		return fmt.Errorf("server declined %s", c.comp)
	}
	params := strings.Split(c.extensions, ";")
	if strings.TrimSpace(params[0]) != "permessage-deflate" || strings.Contains(c.extensions, ",") {
		return fmt.Errorf("server chose extensions %q, want permessage-deflate alone", c.extensions)
	}
	var serverNoTakeover, clientNoTakeover bool
	for _, p := range params[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		switch {
		case name == "server_no_context_takeover" && !hasValue:
			serverNoTakeover = true
		case name == "client_no_context_takeover" && !hasValue:
			clientNoTakeover = true
		case name == "server_max_window_bits":
			if bits, err := strconv.Atoi(strings.Trim(value, `"`)); err != nil || bits < 8 || bits > 15 {
				return fmt.Errorf("server chose %q: server_max_window_bits is not 8 to 15", c.extensions)
			}
		default:
			// client_max_window_bits among them: not offered, so the
			// server may not ask for it (RFC 7692 §7.1.2.2).
			return fmt.Errorf("server chose %q: parameter %q was not offered", c.extensions, strings.TrimSpace(p))
		}
	}
	switch c.comp {
	case Deflate:
		if !serverNoTakeover {
			return fmt.Errorf("server chose %q without server_no_context_takeover, which was offered", c.extensions)
		}
	case DeflateTakeover:
		if serverNoTakeover || clientNoTakeover {
			return fmt.Errorf("server chose %q: it declines context takeover", c.extensions)
		}
	}
	c.serverTakeover = !serverNoTakeover
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

// Send writes the next n messages of m's cycle in one write; n is at most
// m.InFlight(). A connection sends one Message all its life, or
// uncompressed ones only.
func (c *Conn) Send(m *Message, n int) error {
	if n < 0 || n > m.inFlight {
		return fmt.Errorf("loadgen: %d messages sent at once, at most %d", n, m.inFlight)
	}
	if m.comp != Uncompressed && m.comp != c.comp {
		return fmt.Errorf("loadgen: a message compressed for %s, on a connection with %s", m.comp, c.comp)
	}
	i := m.frame(c.sent)
	c.sent += int64(n)
	_, err := c.nc.Write(m.frames[m.off[i]:m.off[i+n]])
	return err
}

// ReadEcho reads one message, in one frame or several, and checks that it
// is the echo of the next message of m's cycle: the same opcode and
// exactly the same bytes, once inflated if the server compressed it.
func (c *Conn) ReadEcho(m *Message) error {
	want := m.payloads[c.got%int64(len(m.payloads))]
	c.got++
	// A compressed echo may be a little longer than the payload (RFC 1951
	// stored blocks), never more.
	maxZ := len(want) + len(want)/64 + 64
	off, wire := 0, 0
	var compressed bool
	for first := true; ; first = false {
		if err := c.need(2); err != nil {
			return err
		}
		b0, b1 := c.buf[c.r], c.buf[c.r+1]
		fin, op := b0&0x80 != 0, b0&0x0f
		if b1&0x80 != 0 {
			return errors.New("server sent a masked frame")
		}
		if first && op < 8 && b0&0x70 == 0x40 && c.comp != Uncompressed {
			compressed = true
			c.zbuf = c.zbuf[:0]
		} else if b0&0x70 != 0 {
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
		wire += hlen
		switch {
		case op >= 8:
			return c.control(op, n)
		case first && op != m.op:
			return fmt.Errorf("echo starts with opcode %d, want %d (%s)", op, m.op, opName(m.op))
		case !first && op != 0:
			return fmt.Errorf("echo goes on with opcode %d, want 0 (continuation)", op)
		case compressed && (n < 0 || n > int64(maxZ-len(c.zbuf))):
			return fmt.Errorf("compressed echo is longer than %d bytes, for %d sent", maxZ, len(want))
		case !compressed && (n < 0 || n > int64(len(want)-off)):
			return fmt.Errorf("echo is longer than the %d bytes sent", len(want))
		}
		wire += int(n)
		for left := int(n); left > 0; {
			if c.r == c.w {
				if err := c.fill(); err != nil {
					return err
				}
			}
			k := min(left, c.w-c.r)
			if compressed {
				c.zbuf = append(c.zbuf, c.buf[c.r:c.r+k]...)
			} else {
				if !bytes.Equal(c.buf[c.r:c.r+k], want[off:off+k]) {
					return fmt.Errorf("echo differs from what was sent within bytes %d-%d", off, off+k)
				}
				off += k
			}
			c.r += k
			left -= k
		}
		if !fin {
			continue
		}
		c.wire.Add(int64(wire))
		if compressed {
			return c.inflateEcho(want)
		}
		// An uncompressed message stays out of the server's LZ77 window.
		if off != len(want) {
			return fmt.Errorf("echo holds %d bytes, want %d", off, len(want))
		}
		return nil
	}
}

func opName(op byte) string {
	if op == 1 {
		return "text"
	}
	return "binary"
}

// inflateEcho inflates the compressed echo in zbuf, with the server's
// history if it keeps it, and checks that it is want.
func (c *Conn) inflateEcho(want []byte) error {
	c.zbuf = append(c.zbuf, deflateTail...)
	c.zr.Reset(c.zbuf)
	var dict []byte
	if c.serverTakeover {
		dict = lastWindow(c.window)
	}
	if c.fr == nil {
		c.fr = flate.NewReaderDict(&c.zr, dict)
	} else if err := c.fr.(flate.Resetter).Reset(&c.zr, dict); err != nil {
		return err
	}
	if cap(c.out) < len(want)+1 {
		c.out = make([]byte, len(want)+1)
	}
	out := c.out[:len(want)+1]
	n := 0
	for {
		k, err := c.fr.Read(out[n:])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("inflating the echo: %w", err)
		}
		if n == len(out) {
			return fmt.Errorf("echo inflates to more than the %d bytes sent", len(want))
		}
	}
	if n != len(want) {
		return fmt.Errorf("echo inflates to %d bytes, want %d", n, len(want))
	}
	if !bytes.Equal(out[:n], want) {
		i := 0
		for out[i] == want[i] {
			i++
		}
		return fmt.Errorf("echo inflates to other bytes than were sent, from byte %d", i)
	}
	if c.serverTakeover {
		c.remember(want)
	}
	return nil
}

// remember adds an echoed message to the server's history, of which it
// keeps the last window's worth.
func (c *Conn) remember(p []byte) {
	if len(p) >= windowSize {
		c.window = append(c.window[:0], p[len(p)-windowSize:]...)
		return
	}
	if c.window == nil {
		c.window = make([]byte, 0, 2*windowSize)
	}
	if len(c.window)+len(p) > cap(c.window) {
		keep := windowSize - len(p)
		c.window = c.window[:copy(c.window, c.window[len(c.window)-keep:])]
	}
	c.window = append(c.window, p...)
}

// frameBuffered reports whether a whole frame is buffered.
func (c *Conn) frameBuffered() bool {
	b := c.buffered()
	if len(b) < 2 {
		return false
	}
	h, n := 2, uint64(b[1]&0x7f)
	switch n {
	case 126:
		if h = 4; len(b) < h {
			return false
		}
		n = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if h = 10; len(b) < h {
			return false
		}
		n = binary.BigEndian.Uint64(b[2:])
	}
	return uint64(len(b)-h) >= n
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
	if m.inFlightBytes() <= 64<<10 {
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
	for got := int64(0); got < max && !isDone(done); got++ {
		if may > 0 && sent < max && !c.frameBuffered() {
			k := min(may, max-sent)
			if err := c.Send(m, int(k)); err != nil {
				return err
			}
			sent += k
			may -= k
		}
		if err := c.ReadEcho(m); err != nil {
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
		if err = c.ReadEcho(m); err != nil {
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
			err = c.ReadEcho(m)
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
