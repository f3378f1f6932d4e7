package websocket

// Close without loss: every message a side sent before its close frame is
// delivered before the close, in order and once, whichever side closes, in
// both roles, through the write queue (queue.go), and to Read, Reader and
// Serve alike. The peer is raw: it handshakes, frames, masks and
// compresses (with compress/flate) on its own, and checks every frame it
// receives to the byte.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lossWait bounds every wait of these tests.
const lossWait = 10 * time.Second

// lossFrame is a frame as it crosses the wire.
type lossFrame struct {
	b0      byte   // FIN, RSV1-3 and the opcode
	key     []byte // the masking key, nil when unmasked
	payload []byte // unmasked
}

// wire is the frame laid out as RFC 6455 §5.2 lays it out, its length in
// the minimal encoding and its payload masked with key.
func (f lossFrame) wire() []byte {
	mask := byte(0)
	if f.key != nil {
		mask = 0x80
	}
	b := []byte{f.b0}
	switch n := len(f.payload); {
	case n <= 125:
		b = append(b, mask|byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, mask|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, mask|127), uint64(n))
	}
	b = append(b, f.key...)
	start := len(b)
	b = append(b, f.payload...)
	if f.key != nil {
		for i := range f.payload {
			b[start+i] ^= f.key[i&3]
		}
	}
	return b
}

// lossMsg is a data message, as one side sent it or the other received it.
type lossMsg struct {
	typ        MessageType
	data       []byte
	compressed bool // sent, or received, with RSV1
	frames     int  // received in this many frames
}

func (m lossMsg) String() string {
	return fmt.Sprintf("%v %d bytes %s (compressed=%v)", m.typ, len(m.data), trim(m.data), m.compressed)
}

// lossTail is the end of a sync flush, which RFC 7692 §7.2.1 strips from
// every compressed message.
var lossTail = []byte{0, 0, 0xff, 0xff}

// lossPeer is the raw end of a connection with ours: a client when ours
// is the server, a server when ours is the client (from Dial). With
// compression it has negotiated permessage-deflate with context takeover
// and 32 KiB windows both ways.
type lossPeer struct {
	nc     net.Conn
	br     *bufio.Reader
	client bool   // the peer is the client: it masks, ours does not
	keys   uint32 // masking keys used so far

	deflate bool
	fw      *flate.Writer // compresses what the peer sends, across messages
	fout    bytes.Buffer
	window  []byte // the last 32 KiB our messages inflated to

	pings, pongs [][]byte // payloads of the pings sent, the pongs received
}

// frame is the wire form of a frame the peer sends: masked with a fresh
// key when it is the client.
func (p *lossPeer) frame(b0 byte, payload []byte) []byte {
	f := lossFrame{b0: b0, payload: payload}
	if p.client {
		p.keys++
		f.key = binary.BigEndian.AppendUint32(nil, 0x9e3779b9*p.keys|0x01010101)
	}
	return f.wire()
}

// message is the wire form of m in frags frames (at least one), split as
// evenly as they come, some of them empty when the payload is short, with
// a ping between each two when ping is set. A compressed message is
// compressed first, and split after.
func (p *lossPeer) message(m lossMsg, frags int, ping bool) []byte {
	payload := m.data
	b0 := byte(m.typ)
	if m.compressed {
		payload = p.compress(m.data)
		b0 |= 0x40 // RSV1
	}
	frags = max(frags, 1)
	var b []byte
	for i := range frags {
		if i == frags-1 {
			b0 |= 0x80 // FIN
		}
		b = append(b, p.frame(b0, payload[i*len(payload)/frags:(i+1)*len(payload)/frags])...)
		b0 = 0 // continuation
		if ping && i < frags-1 {
			pp := fmt.Appendf(nil, "ping %d", len(p.pings))
			p.pings = append(p.pings, pp)
			b = append(b, p.frame(0x89, pp)...)
		}
	}
	return b
}

// compress compresses one message, with the window of the ones before.
func (p *lossPeer) compress(data []byte) []byte {
	p.fout.Reset()
	p.fw.Write(data)
	p.fw.Flush()
	return bytes.Clone(bytes.TrimSuffix(p.fout.Bytes(), lossTail))
}

// inflate decompresses one of our compressed messages, with the window of
// the ones before.
func (p *lossPeer) inflate(payload []byte) ([]byte, error) {
	r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(lossTail)), p.window)
	out, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != io.ErrUnexpectedEOF { // the stream ends at the sync flush
		return nil, fmt.Errorf("compressed message %s does not end at a sync flush: %v", trim(payload), err)
	}
	p.window = append(p.window, out...)
	if n := len(p.window) - 32<<10; n > 0 {
		p.window = append([]byte(nil), p.window[n:]...)
	}
	return out, nil
}

// readFrame reads our next frame, which must be masked if and only if
// ours is the client, and laid out to the byte as wire lays it out.
func (p *lossPeer) readFrame() (lossFrame, error) {
	p.nc.SetReadDeadline(time.Now().Add(lossWait))
	head := make([]byte, 2, 14)
	if _, err := io.ReadFull(p.br, head); err != nil {
		return lossFrame{}, err
	}
	n := uint64(head[1] & 0x7f)
	masked := head[1]&0x80 != 0
	ext := map[uint64]int{126: 2, 127: 8}[n]
	if masked {
		ext += 4
	}
	head = head[:2+ext]
	if _, err := io.ReadFull(p.br, head[2:]); err != nil {
		return lossFrame{}, err
	}
	switch n {
	case 126:
		n = uint64(binary.BigEndian.Uint16(head[2:]))
	case 127:
		n = binary.BigEndian.Uint64(head[2:])
	}
	if n > 16<<20 {
		return lossFrame{}, fmt.Errorf("frame header %x declares %d bytes", head, n)
	}
	raw := make([]byte, len(head)+int(n))
	copy(raw, head)
	if _, err := io.ReadFull(p.br, raw[len(head):]); err != nil {
		return lossFrame{}, err
	}
	f := lossFrame{b0: head[0], payload: bytes.Clone(raw[len(head):])}
	if masked {
		f.key = bytes.Clone(head[len(head)-4:])
		for i := range f.payload {
			f.payload[i] ^= f.key[i&3]
		}
	}
	switch {
	case masked == p.client:
		return f, fmt.Errorf("ours (client=%v) sent a frame with masked=%v: %s", !p.client, masked, trim(raw))
	case !bytes.Equal(raw, f.wire()):
		return f, fmt.Errorf("frame %s is not laid out as %s", trim(raw), trim(f.wire()))
	}
	return f, nil
}

// lossRecv is what the peer read from ours up to our close frame.
type lossRecv struct {
	msgs    []lossMsg
	partial *lossMsg // a message cut short by the close frame, as it came
	close   []byte   // the close frame's payload
}

// readUntilClose reads our frames up to our close frame, checking the
// rules of RFC 6455 §5.4 and §5.5 and RFC 7692 §6, and reassembles and
// inflates the messages; it calls each, when not nil, with how many
// messages were read so far.
func (p *lossPeer) readUntilClose(each func(n int)) (lossRecv, error) {
	var r lossRecv
	var cur *lossMsg
	for {
		f, err := p.readFrame()
		if err != nil {
			return r, fmt.Errorf("after %d messages: %w", len(r.msgs), err)
		}
		op, fin, rsv := f.b0&0x0f, f.b0&0x80 != 0, f.b0&0x70
		switch {
		case op >= 8 && (!fin || rsv != 0 || len(f.payload) > 125):
			return r, fmt.Errorf("malformed control frame %#x %q", f.b0, f.payload)
		case op == 8:
			r.partial, r.close = cur, f.payload
			return r, nil
		case op == 0xA:
			p.pongs = append(p.pongs, f.payload)
			continue
		case op >= 8:
			return r, fmt.Errorf("unexpected control frame %#x %q", f.b0, f.payload)
		case op == 0 && (cur == nil || rsv != 0):
			return r, fmt.Errorf("continuation frame %#x without a message open, or with RSV bits", f.b0)
		case op == 1 || op == 2:
			if cur != nil || rsv&^0x40 != 0 || rsv != 0 && !p.deflate {
				return r, fmt.Errorf("frame %#x: a message open already, or RSV bits not negotiated", f.b0)
			}
			cur = &lossMsg{typ: MessageType(op), compressed: rsv != 0}
		case op != 0:
			return r, fmt.Errorf("frame with reserved opcode %#x", f.b0)
		}
		cur.data = append(cur.data, f.payload...)
		cur.frames++
		if !fin {
			continue
		}
		if cur.compressed {
			if cur.data, err = p.inflate(cur.data); err != nil {
				return r, err
			}
		}
		r.msgs = append(r.msgs, *cur)
		cur = nil
		if each != nil {
			each(len(r.msgs))
		}
	}
}

// send writes b to ours.
func (p *lossPeer) send(b []byte) error {
	p.nc.SetWriteDeadline(time.Now().Add(lossWait))
	_, err := p.nc.Write(b)
	return err
}

// finish ends the connection once the close frames are exchanged: ours
// closes TCP first when it is the server (RFC 6455 §7.1.1), with nothing
// after its close frame; as a client it waits for the server, which
// half-closes to see ours close with nothing after its close frame either.
func (p *lossPeer) finish() error {
	if !p.client {
		p.nc.(*net.TCPConn).CloseWrite()
	}
	p.nc.SetReadDeadline(time.Now().Add(lossWait))
	b, err := io.ReadAll(p.br)
	if err != nil || len(b) > 0 {
		return fmt.Errorf("after the close frames: %s, %v; want the end of the stream", trim(b), err)
	}
	return nil
}

// checkPongs checks that every ping was answered, in order.
func (p *lossPeer) checkPongs() error {
	if len(p.pongs) != len(p.pings) {
		return fmt.Errorf("%d pongs for %d pings", len(p.pongs), len(p.pings))
	}
	for i := range p.pings {
		if !bytes.Equal(p.pongs[i], p.pings[i]) {
			return fmt.Errorf("pong %d %q answers ping %q", i, p.pongs[i], p.pings[i])
		}
	}
	return nil
}

// lossPair connects a raw peer to ours, as its client when ourServer is
// set and as its server otherwise, with compression when deflate is set.
// The bytes early makes are sent with the handshake, in the same write,
// so that ours holds them unread from the start. handle runs with our Conn
// in a goroutine of its own, which closes it (CloseNow) once handle
// returns, and then closes the channel returned. Everything is torn down
// when the test ends.
func lossPair(t *testing.T, ourServer, deflate bool, early func(*lossPeer) []byte, handle func(*Conn)) (*lossPeer, <-chan struct{}) {
	t.Helper()
	mode := CompressionDisabled
	if deflate {
		mode = CompressionContextTakeover
	}
	p := &lossPeer{client: ourServer, deflate: deflate}
	if deflate {
		p.fw, _ = flate.NewWriter(&p.fout, flate.DefaultCompression)
	}
	done := make(chan struct{})
	run := func(c *Conn) {
		defer close(done)
		defer c.CloseNow()
		handle(c)
	}
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(lossWait):
			t.Errorf("our side still running %v after the test", lossWait)
		}
	})
	if ourServer {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := Accept(w, r, &AcceptOptions{Compression: mode, KeepaliveInterval: -1})
			if err != nil {
				close(done)
				return
			}
			run(c)
		}))
		t.Cleanup(s.Close)
		nc, err := net.DialTimeout("tcp", s.Listener.Addr().String(), lossWait)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		p.nc, p.br = nc, bufio.NewReader(nc)
		req, resp := rawUpgradeRequest, sample101
		if deflate {
			ext := "Sec-WebSocket-Extensions: permessage-deflate\r\n"
			req = strings.TrimSuffix(req, "\r\n") + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
			resp = strings.TrimSuffix(resp, "\r\n") + ext + "\r\n"
		}
		var b []byte
		if early != nil {
			b = early(p)
		}
		if err := p.send(append([]byte(req), b...)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(resp))
		p.nc.SetReadDeadline(time.Now().Add(lossWait))
		if _, err := io.ReadFull(p.br, got); err != nil || string(got) != resp {
			t.Fatalf("handshake response %q, %v; want %q", got, err, resp)
		}
		return p, done
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type dialed struct {
		c   *Conn
		err error
	}
	dc := make(chan dialed, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), lossWait)
		defer cancel()
		c, _, err := Dial(ctx, "ws://"+ln.Addr().String()+"/", &DialOptions{Compression: mode, KeepaliveInterval: -1})
		dc <- dialed{c, err}
	}()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(lossWait))
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	p.nc, p.br = nc, bufio.NewReader(nc)
	p.nc.SetReadDeadline(time.Now().Add(lossWait))
	req, err := http.ReadRequest(p.br)
	if err != nil {
		t.Fatal(err)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n"
	if offer := req.Header.Get("Sec-WebSocket-Extensions"); deflate {
		if offer != "permessage-deflate; client_max_window_bits" {
			t.Fatalf("Dial offered %q", offer)
		}
		resp += "Sec-WebSocket-Extensions: permessage-deflate\r\n"
	}
	b := []byte(resp + "\r\n")
	if early != nil {
		b = append(b, early(p)...)
	}
	if err := p.send(b); err != nil {
		t.Fatal(err)
	}
	d := <-dc // bounded by Dial's context
	if d.err != nil {
		t.Fatalf("Dial: %v", d.err)
	}
	go run(d.c)
	return p, done
}

// lossAwait waits for ours to be done with the connection.
func lossAwait(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(lossWait):
		t.Fatalf("our side still running after %v", lossWait)
	}
}

// lossRoles names the role of ours.
var lossRoles = []struct {
	name      string
	ourServer bool
}{{"server", true}, {"client", false}}

// lossText is text that compresses, different for every seed.
func lossText(seed, n int) []byte {
	b := make([]byte, 0, n+40)
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "message %d, line %d; ", seed, i%17)
	}
	return b[:n]
}

// lossBytes is binary data that barely compresses, different for every
// seed.
func lossBytes(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// lossBurst is a burst of messages a side sends before its close frame;
// the peer sends message i in 1 + i%frags frames.
type lossBurst struct {
	name    string
	deflate bool
	msgs    []lossMsg
	frags   int
	ping    bool // the peer sends a ping between each two frames
}

func lossBursts() []lossBurst {
	var bursts []lossBurst
	for _, n := range []int{1, 2, 3, 10, 127, 1000} {
		b := lossBurst{name: fmt.Sprintf("%d small", n), frags: 1}
		for i := range n {
			b.msgs = append(b.msgs, lossMsg{typ: MessageType(1 + i%2), data: lossText(i, i%40)})
		}
		bursts = append(bursts, b)
	}
	large := lossBurst{name: "large", frags: 1}
	for i, n := range []int{0, 125, 126, 2047, 2048, 65535, 65536, 65537, 70000, 1 << 20} {
		large.msgs = append(large.msgs, lossMsg{typ: MessageBinary, data: lossBytes(i, n)})
	}
	frag := lossBurst{name: "fragmented", frags: 7, ping: true}
	for i := range 40 {
		frag.msgs = append(frag.msgs, lossMsg{typ: MessageType(1 + i%2), data: lossText(i, (i*i*37)%9000)})
	}
	comp := lossBurst{name: "compressed", deflate: true, frags: 1}
	compFrag := lossBurst{name: "compressed fragmented", deflate: true, frags: 5, ping: true}
	for i := range 60 {
		m := lossMsg{typ: MessageText, data: lossText(i, (i*i*53)%5000), compressed: i%3 != 2}
		if i%4 == 1 {
			m = lossMsg{typ: MessageBinary, data: lossBytes(i, (i*i*53)%5000), compressed: i%3 != 2}
		}
		comp.msgs = append(comp.msgs, m)
		compFrag.msgs = append(compFrag.msgs, m)
	}
	comp.msgs = append(comp.msgs,
		lossMsg{typ: MessageText, data: lossText(60, 300<<10), compressed: true},
		lossMsg{typ: MessageBinary, data: lossBytes(61, 100<<10), compressed: true},
		lossMsg{typ: MessageBinary, data: nil, compressed: true})
	return append(bursts, large, frag, comp, compFrag)
}

// wire is the burst's wire form, from p.
func (b lossBurst) wire(p *lossPeer) []byte {
	var w []byte
	for i, m := range b.msgs {
		w = append(w, p.message(m, 1+i%b.frags, b.ping)...)
	}
	return w
}

// lossReaders are the ways ours reads: "Serve parked" is Serve on a
// connection quiet long enough to be parked (serveLinger) before the
// burst comes.
var lossReaders = []string{"Read", "Reader", "Serve", "Serve parked"}

// lossEcho reads messages with read (one of lossReaders) and echoes each
// with Write until reading ends. It returns what it read, the error that
// ended reading, and the first error of an echo.
func lossEcho(c *Conn, read string) (got []lossMsg, end, echoErr error) {
	ctx := context.Background()
	var mu sync.Mutex // Serve calls took from one goroutine or another
	took := func(typ MessageType, p []byte) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, lossMsg{typ: typ, data: bytes.Clone(p)})
		if err := c.Write(ctx, typ, p); err != nil && echoErr == nil {
			echoErr = err
		}
	}
	switch read {
	case "Read":
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return got, err, echoErr
			}
			took(typ, p)
		}
	case "Reader":
		buf := make([]byte, 100) // much less than most messages
		for {
			typ, r, err := c.Reader(ctx)
			if err != nil {
				return got, err, echoErr
			}
			var p []byte
			for {
				n, err := r.Read(buf)
				p = append(p, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					return got, err, echoErr
				}
			}
			took(typ, p)
		}
	}
	ended := make(chan error, 1)
	c.Serve(took, func(err error) { ended <- err })
	select {
	case end = <-ended:
	case <-time.After(lossWait):
		end = errors.New("Serve did not call onClose")
	}
	mu.Lock()
	defer mu.Unlock()
	return got, end, echoErr
}

// sameMsgs compares messages received with messages sent: the same, in
// the same order, once each. Received by the peer (frames > 0), a message
// of ours is compressed if and only if compression was negotiated and it
// has at least 128 bytes, and, when oneFrame is set (it was written with
// Write), uncompressed it came in one frame.
func sameMsgs(got, want []lossMsg, deflate, oneFrame bool) error {
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		switch {
		case g.typ != w.typ || !bytes.Equal(g.data, w.data):
			return fmt.Errorf("message %d of %d is %v, want %v", i, len(want), g, w)
		case g.frames == 0:
		case g.compressed != (deflate && len(w.data) >= defaultCompressionThreshold):
			return fmt.Errorf("message %d of %d compressed=%v; %d bytes, compression negotiated=%v", i, len(want), g.compressed, len(w.data), deflate)
		case oneFrame && !g.compressed && g.frames != 1:
			return fmt.Errorf("message %d of %d came in %d frames, not one", i, len(want), g.frames)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d messages, want %d", len(got), len(want))
	}
	return nil
}

// wantCloseError checks that err is the peer's close frame ce.
func wantCloseError(err error, ce CloseError) error {
	var got CloseError
	var pe *ProtocolError
	if !errors.As(err, &got) || errors.As(err, &pe) || got != ce {
		return fmt.Errorf("ended with %v, want the peer's close %v", err, ce)
	}
	return nil
}

// TestCloseLossPeerCloses: a peer sends a burst of messages and its close
// frame in one TCP write. Ours delivers every message, in order, before
// the CloseError, by Read, by Reader and by Serve; and the echo it writes
// of each (most of them queued behind the unread input) reaches the peer
// before ours answers the close frame.
func TestCloseLossPeerCloses(t *testing.T) {
	t.Parallel()
	for _, role := range lossRoles {
		for _, read := range lossReaders {
			for _, b := range lossBursts() {
				t.Run(role.name+"/"+read+"/"+b.name, func(t *testing.T) {
					t.Parallel()
					var got []lossMsg
					var end, echoErr error
					p, done := lossPair(t, role.ourServer, b.deflate, nil, func(c *Conn) {
						got, end, echoErr = lossEcho(c, read)
					})
					burst := append(b.wire(p), p.frame(0x88, []byte("\x03\xe8bye"))...)
					if read == "Serve parked" {
						time.Sleep(3 * serveLinger)
					}
					wrote := make(chan error, 1)
					go func() { wrote <- p.send(burst) }()
					rec, err := p.readUntilClose(nil)
					if err != nil {
						t.Fatal(err)
					}
					if err := sameMsgs(rec.msgs, b.msgs, b.deflate, true); err != nil {
						t.Errorf("echoes: %v", err)
					}
					if rec.partial != nil || string(rec.close) != "\x03\xe8" {
						t.Errorf("close frame %q after a partial message %v; want the echo of 1000", rec.close, rec.partial)
					}
					if err := p.checkPongs(); err != nil {
						t.Error(err)
					}
					if err := p.finish(); err != nil {
						t.Error(err)
					}
					if err := <-wrote; err != nil {
						t.Errorf("sending the burst: %v", err)
					}
					lossAwait(t, done)
					if err := sameMsgs(got, b.msgs, b.deflate, true); err != nil {
						t.Errorf("delivered: %v", err)
					}
					if err := wantCloseError(end, CloseError{StatusNormalClosure, "bye"}); err != nil {
						t.Error(err)
					}
					if echoErr != nil {
						t.Errorf("echo: %v", echoErr)
					}
				})
			}
		}
	}
}

// lossWriteBursts are bursts for ours to write: messages of Write and,
// when pieces is set, of Writer, in pieces of those sizes.
func lossWriteBursts() []lossBurst {
	var bursts []lossBurst
	for _, b := range lossBursts() {
		switch b.name {
		case "1 small", "10 small", "1000 small", "large", "compressed":
			bursts = append(bursts, b)
		case "fragmented", "compressed fragmented":
			b.frags = 0 // written with Writer
			bursts = append(bursts, b)
		}
	}
	return bursts
}

// lossPieces are the sizes of the writes a Writer message is written in,
// cyclically.
var lossPieces = []int{100, 5000, 0, 3, 9000, 50}

// lossWriter writes p as one message with Writer, in pieces of the sizes
// of lossPieces, from the piece first on.
func lossWriter(c *Conn, typ MessageType, p []byte, first int) error {
	w, err := c.Writer(context.Background(), typ)
	if err != nil {
		return err
	}
	for i := first; len(p) > 0; i++ {
		n := min(lossPieces[i%len(lossPieces)], len(p))
		if _, err := w.Write(p[:n]); err != nil {
			w.Close()
			return err
		}
		p = p[n:]
	}
	return w.Close()
}

// lossEarly is what the peer sends with the handshake: two messages, so
// that ours, having read the first, holds the second unread, and what it
// writes then joins the write queue.
func lossEarly(p *lossPeer) []byte {
	return append(p.message(lossMsg{typ: MessageText, data: []byte("early 0")}, 1, false),
		p.message(lossMsg{typ: MessageText, data: []byte("early 1")}, 1, false)...)
}

// TestCloseLossOurClose: ours writes a burst, most of it queued behind
// unread input, then calls Close or CloseWrite. Every message reaches the
// peer before the close frame, in order, once; with CloseWrite, ours then
// reads the message the peer had sent before it saw the close frame, and
// the peer's close.
func TestCloseLossOurClose(t *testing.T) {
	t.Parallel()
	for _, role := range lossRoles {
		for _, closer := range []string{"Close", "CloseWrite"} {
			for _, b := range lossWriteBursts() {
				t.Run(role.name+"/"+closer+"/"+b.name, func(t *testing.T) {
					t.Parallel()
					var errs []error
					fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
					p, done := lossPair(t, role.ourServer, b.deflate, lossEarly, func(c *Conn) {
						ctx := context.Background()
						if _, m, err := c.Read(ctx); err != nil || string(m) != "early 0" {
							fail("first Read: %q, %v", m, err)
							return
						}
						for i, m := range b.msgs {
							var err error
							if b.frags == 0 {
								err = lossWriter(c, m.typ, m.data, i)
							} else {
								err = c.Write(ctx, m.typ, m.data)
							}
							if err != nil {
								fail("writing message %d: %v", i, err)
								return
							}
						}
						if closer == "Close" {
							if err := c.Close(StatusGoingAway, "done"); err != nil {
								fail("Close: %v", err)
							}
							return
						}
						if err := c.CloseWrite(StatusGoingAway, "done"); err != nil {
							fail("CloseWrite: %v", err)
							return
						}
						if _, m, err := c.Read(ctx); err != nil || string(m) != "early 1" {
							fail("Read after CloseWrite: %q, %v; want early 1", m, err)
						}
						_, _, err := c.Read(ctx)
						if err := wantCloseError(err, CloseError{StatusNormalClosure, "ok"}); err != nil {
							fail("last Read: %v", err)
						}
					})
					rec, err := p.readUntilClose(nil)
					if err != nil {
						t.Fatal(err)
					}
					if err := sameMsgs(rec.msgs, b.msgs, b.deflate, b.frags > 0); err != nil {
						t.Error(err)
					}
					if rec.partial != nil || string(rec.close) != "\x03\xe9done" {
						t.Errorf("close frame %q after a partial message %v; want 1001 done", rec.close, rec.partial)
					}
					if err := p.send(p.frame(0x88, []byte("\x03\xe8ok"))); err != nil {
						t.Fatal(err)
					}
					if err := p.finish(); err != nil {
						t.Error(err)
					}
					lossAwait(t, done)
					if err := errors.Join(errs...); err != nil {
						t.Error(err)
					}
				})
			}
		}
	}
}

// lossRaceRuns is how many times each racing case runs, within
// lossRaceBudget; at least lossRaceMinRuns do, however long they take.
const (
	lossRaceRuns    = 40
	lossRaceMinRuns = 5
	lossRaceBudget  = 2 * time.Second
)

// lossRaceWriters are the writers that race a close: their message sizes,
// the last one writing with Writer (in lossPieces), the others with Write.
// Each sends up to lossRaceMax numbered messages, until a write fails.
var lossRaceWriters = []int{20, 3000, 70000, 5200}

const lossRaceMax = 1000

// lossRaceMsg is message seq of writer g.
func lossRaceMsg(g, seq int) lossMsg {
	n := lossRaceWriters[g]
	data := fmt.Appendf(nil, "w%d:%d:", g, seq)
	if g%2 == 0 {
		data = append(data, lossText(seq, n)...)
	} else {
		data = append(data, lossBytes(seq, n)...)
	}
	return lossMsg{typ: MessageType(1 + g%2), data: data[:n]}
}

// lossRaceID returns the writer and number a message of lossRaceMsg
// starts with.
func lossRaceID(data []byte) (g, seq int, ok bool) {
	f := strings.SplitN(string(data[:min(len(data), 16)]), ":", 3)
	if len(f) < 3 || !strings.HasPrefix(f[0], "w") {
		return 0, 0, false
	}
	g, err1 := strconv.Atoi(f[0][1:])
	seq, err2 := strconv.Atoi(f[1])
	return g, seq, err1 == nil && err2 == nil && g >= 0 && g < len(lossRaceWriters)
}

// TestCloseLossConcurrentWriters races a close against writers of every
// kind (small messages, which queue; medium ones, sent by a server with
// writev; large ones, which wait for the frame lock; and Writer messages
// in several frames), with compression and without: ours calls Close or
// CloseWrite, or the peer sends its close, once a varying number of
// messages were written. Every Write that returned nil has its message on
// the wire before the close frame, in its writer's order, exactly once;
// every write that failed has not (a Writer message may be cut short by
// the close frame, but then its write failed).
func TestCloseLossConcurrentWriters(t *testing.T) {
	t.Parallel()
	for _, role := range lossRoles {
		for _, closer := range []string{"Close", "CloseWrite", "peer"} {
			for _, deflate := range []bool{false, true} {
				name := role.name + "/" + closer
				if deflate {
					name += "/compressed"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					start := time.Now()
					var st lossRaceStats
					run := 0
					for ; run < lossRaceRuns && (run < lossRaceMinRuns || time.Since(start) < lossRaceBudget); run++ {
						lossRace(t, role.ourServer, deflate, closer, (run*7)%45, &st)
						if t.Failed() {
							t.Logf("in run %d", run)
							return
						}
					}
					t.Logf("%d runs in %v: %d writes returned nil, %d failed, %d messages cut short", run, time.Since(start).Round(time.Millisecond), st.ok, st.failed, st.partial)
				})
			}
		}
	}
}

// lossRaceStats counts what the races of a case came to.
type lossRaceStats struct{ ok, failed, partial int }

// lossRace runs one race: the close comes once after messages were
// written (ours closing) or read by the peer (the peer closing).
func lossRace(t *testing.T, ourServer, deflate bool, closer string, after int, st *lossRaceStats) {
	early := func(p *lossPeer) []byte {
		return p.message(lossMsg{typ: MessageText, data: []byte("early")}, 1, false)
	}
	var (
		results  = make([][]error, len(lossRaceWriters)) // each writer's write results
		closeErr error
		readErr  []error // what ours read after the writes, or while they ran
	)
	p, done := lossPair(t, ourServer, deflate, early, func(c *Conn) {
		ctx := context.Background()
		var written atomic.Int32
		reached := make(chan struct{})
		var once sync.Once
		if after == 0 {
			once.Do(func() { close(reached) })
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		for g := range lossRaceWriters {
			wg.Go(func() {
				for seq := range lossRaceMax {
					m := lossRaceMsg(g, seq)
					var err error
					if g == len(lossRaceWriters)-1 {
						err = lossWriter(c, m.typ, m.data, seq)
					} else {
						err = c.Write(ctx, m.typ, m.data)
					}
					results[g] = append(results[g], err)
					if err != nil {
						return
					}
					if int(written.Add(1)) == after {
						once.Do(func() { close(reached) })
					}
				}
			})
		}
		read := func() {
			for {
				_, m, err := c.Read(ctx)
				if err != nil {
					readErr = append(readErr, err)
					return
				}
				readErr = append(readErr, fmt.Errorf("read %q", m))
			}
		}
		if closer == "peer" {
			read()
			return
		}
		select {
		case <-reached:
		case <-time.After(lossWait):
			closeErr = errors.New("the writers never wrote enough")
			return
		}
		if closer == "Close" {
			closeErr = c.Close(StatusGoingAway, "done")
			return
		}
		closeErr = c.CloseWrite(StatusGoingAway, "done")
		read()
	})
	var each func(int)
	if closer == "peer" {
		sendClose := func() { p.send(p.frame(0x88, []byte("\x03\xe8bye"))) }
		if after == 0 {
			sendClose()
		}
		each = func(n int) {
			if n == after {
				sendClose()
			}
		}
	}
	rec, err := p.readUntilClose(each)
	if err != nil {
		t.Fatal(err)
	}
	wantClose := "\x03\xe9done"
	if closer == "peer" {
		wantClose = "\x03\xe8"
	} else if err := p.send(p.frame(0x88, []byte("\x03\xe8ok"))); err != nil {
		t.Fatal(err)
	}
	if string(rec.close) != wantClose {
		t.Errorf("close frame %q, want %q", rec.close, wantClose)
	}
	if err := p.finish(); err != nil {
		t.Error(err)
	}
	lossAwait(t, done)

	// What each writer had on the wire, in order.
	onWire := make([][]int, len(lossRaceWriters))
	for _, m := range rec.msgs {
		g, seq, ok := lossRaceID(m.data)
		if want := lossRaceMsg(g, seq); !ok || m.typ != want.typ || !bytes.Equal(m.data, want.data) {
			t.Fatalf("got %v, which no writer wrote", m)
		}
		onWire[g] = append(onWire[g], seq)
	}
	failed := false
	for g, res := range results {
		ok := 0
		for _, err := range res {
			if err == nil {
				ok++
			} else if !errors.Is(err, ErrClosed) {
				t.Errorf("writer %d: write %d failed with %v, want an error wrapping ErrClosed", g, ok, err)
			}
		}
		failed = failed || ok < len(res)
		st.ok += ok
		st.failed += len(res) - ok
		if len(onWire[g]) != ok {
			t.Errorf("writer %d: %d writes returned nil, %d messages on the wire before the close frame: %v", g, ok, len(onWire[g]), onWire[g])
			continue
		}
		for i, seq := range onWire[g] {
			if seq != i {
				t.Errorf("writer %d: messages on the wire in the order %v", g, onWire[g])
				break
			}
		}
	}
	if rec.partial != nil {
		st.partial++
	}
	if rec.partial != nil && !failed {
		t.Errorf("a message cut short by the close frame, %v, but no write failed", rec.partial)
	}
	if rec.partial != nil {
		if g, seq, ok := lossRaceID(rec.partial.data); ok && !rec.partial.compressed && seq < len(results[g]) && results[g][seq] == nil {
			t.Errorf("writer %d: message %d cut short by the close frame, but its write returned nil", g, seq)
		}
	}

	switch closer {
	case "Close":
		if closeErr != nil {
			t.Errorf("Close: %v", closeErr)
		}
	case "CloseWrite":
		if closeErr != nil {
			t.Errorf("CloseWrite: %v", closeErr)
		}
		fallthrough
	case "peer":
		ce := CloseError{StatusNormalClosure, "ok"}
		if closer == "peer" {
			ce.Reason = "bye"
		}
		if len(readErr) != 2 || readErr[0].Error() != `read "early"` || wantCloseError(readErr[1], ce) != nil {
			t.Errorf("reads: %v; want early, then the peer's close %v", readErr, ce)
		}
	}
}
