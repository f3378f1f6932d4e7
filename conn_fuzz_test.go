package websocket

// Connections fed arbitrary bytes by the peer: FuzzServerConn and
// FuzzClientConn, and the transport and checks they run on.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzTransport is the transport of a Conn under fuzzing: reads serve the
// peer's bytes in chunks whose sizes come from the plan, then io.EOF;
// writes are recorded. It notes what a Conn must never do to it.
type fuzzTransport struct {
	mu         sync.Mutex
	plan       *fuzzPlan
	in         []byte
	zero       bool // the last read returned nothing
	out        []byte
	closed     bool
	halfClosed int
	misuse     []string
	// Deadlines, when the transport offers them: an operation past its
	// deadline fails, as on a net.Conn.
	readDeadline, writeDeadline time.Time
}

func (ft *fuzzTransport) SetReadDeadline(t time.Time) error {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.readDeadline = t
	return nil
}

func (ft *fuzzTransport) SetWriteDeadline(t time.Time) error {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.writeDeadline = t
	return nil
}

func fuzzPast(deadline time.Time) bool { return !deadline.IsZero() && !time.Now().Before(deadline) }

func (ft *fuzzTransport) Read(p []byte) (int, error) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if ft.closed {
		ft.misuse = append(ft.misuse, "read after Close")
		return 0, net.ErrClosed
	}
	if fuzzPast(ft.readDeadline) {
		return 0, os.ErrDeadlineExceeded
	}
	if len(ft.in) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	b := ft.plan.next()
	if b == 0 && !ft.zero {
		ft.zero = true
		return 0, nil // allowed by io.Reader, if discouraged
	}
	ft.zero = false
	n := int(b)
	if b >= 0x80 {
		n = 64 * int(b-0x7F)
	}
	n = min(max(n, 1), len(p), len(ft.in))
	copy(p, ft.in[:n])
	ft.in = ft.in[n:]
	if len(ft.in) == 0 && b&1 == 1 {
		return n, io.EOF // the last bytes come with io.EOF
	}
	return n, nil
}

func (ft *fuzzTransport) Write(p []byte) (int, error) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	switch {
	case ft.closed:
		ft.misuse = append(ft.misuse, "write after Close")
	case ft.halfClosed > 0:
		ft.misuse = append(ft.misuse, "write after CloseWrite")
	case fuzzPast(ft.writeDeadline):
		return 0, os.ErrDeadlineExceeded
	}
	ft.out = append(ft.out, p...)
	return len(p), nil
}

func (ft *fuzzTransport) Close() error {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if ft.closed {
		ft.misuse = append(ft.misuse, "Close called twice")
	}
	ft.closed = true
	return nil
}

func (ft *fuzzTransport) CloseWrite() error {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.halfClosed++
	return nil
}

// fuzzPeerMessage is a data message of the peer's byte stream.
type fuzzPeerMessage struct {
	typ      MessageType
	payload  []byte // what the stream holds of it, unmasked
	complete bool
}

// fuzzPeer is what the peer's byte stream holds, read frame by frame up to
// the close frame or the first frame whose opcode breaks the rules of
// message fragmentation (RFC 6455 §5.4), where any Conn must stop.
type fuzzPeer struct {
	msgs     []fuzzPeerMessage
	pings    [][]byte // payloads of whole ping frames
	close    []byte   // payload of the close frame, if any
	hasClose bool
}

func fuzzParsePeer(stream []byte) fuzzPeer {
	var s fuzzPeer
	r := bytes.NewReader(stream)
	open := false
	for {
		h, err := readHeader(r)
		if err != nil {
			return s
		}
		payload := make([]byte, min(h.length, int64(r.Len())))
		io.ReadFull(r, payload)
		if h.masked {
			maskBytes(h.key, 0, payload)
		}
		whole := int64(len(payload)) == h.length
		switch h.op {
		case opText, opBinary:
			if open {
				return s
			}
			s.msgs = append(s.msgs, fuzzPeerMessage{typ: MessageType(h.op), payload: payload})
			open = true
		case opContinuation:
			if !open {
				return s
			}
			m := &s.msgs[len(s.msgs)-1]
			m.payload = append(m.payload, payload...)
		case opPing:
			if whole {
				s.pings = append(s.pings, payload)
			}
		case opPong:
		case opClose:
			if whole {
				s.close, s.hasClose = payload, true
			}
			return s
		default:
			return s
		}
		if !whole {
			return s
		}
		if open && h.fin && !h.op.isControl() {
			s.msgs[len(s.msgs)-1].complete = true
			open = false
		}
	}
}

// fuzzWritten is what a Conn wrote.
type fuzzWritten struct {
	pongs    [][]byte
	close    []byte
	hasClose bool
}

// fuzzParseWritten parses what a Conn wrote while only reading: whole
// frames, masked if and only if the Conn is a client, all of them pongs
// but the last, which may be a close frame with a payload a peer accepts.
func fuzzParseWritten(out []byte, client bool) (fuzzWritten, error) {
	var w fuzzWritten
	r := bytes.NewReader(out)
	for r.Len() > 0 {
		if w.hasClose {
			return w, errors.New("wrote a frame after the close frame")
		}
		h, err := readHeader(r)
		if err != nil {
			return w, fmt.Errorf("wrote bytes that do not parse as a frame: %v", err)
		}
		switch {
		case h.masked != client:
			return w, fmt.Errorf("client=%v wrote a frame with masked=%v", client, h.masked)
		case !h.fin || h.rsv != 0 || h.length > maxControlPayload:
			return w, fmt.Errorf("wrote a malformed control frame header %+v", h)
		case int64(r.Len()) < h.length:
			return w, fmt.Errorf("wrote a frame cut short: %d of %d payload bytes", r.Len(), h.length)
		}
		p := make([]byte, h.length)
		io.ReadFull(r, p)
		if h.masked {
			maskBytes(h.key, 0, p)
		}
		switch h.op {
		case opPong:
			w.pongs = append(w.pongs, p)
		case opClose:
			if _, err := parseClosePayload(p); err != nil {
				return w, fmt.Errorf("wrote close payload %q that a peer must reject: %v", p, err)
			}
			w.close, w.hasClose = p, true
		default:
			return w, fmt.Errorf("wrote a %v frame without being asked to", h.op)
		}
	}
	return w, nil
}

// fuzzReadLimits are the read limits a plan chooses from; -1 is none.
var fuzzReadLimits = []int64{1 << 16, 125, 0, 1, 4096, -1}

// fuzzAllocSlack is what reading a message may allocate beyond the
// message and the buffers its pools make (see fuzzAllocated): error
// values, smaller pooled objects made afresh, and the like.
const fuzzAllocSlack = 24 << 10

// pooledMade counts the bytes of the read buffers and message chunks
// (read.go) that their pools have made. How many reading a message makes
// depends on the scheduler, not on the peer: a buffer put back on one P
// is not found from another until a collection moves it, a collection
// may empty a pool, and the race detector has a pool drop a share of what
// it is given. They are reused, not held per message, so fuzzAllocated
// leaves them out; reading a message takes one read buffer at a time,
// and chunks no larger than what arrived before each.
var pooledMade atomic.Int64

func init() {
	countMade := func(pool *sync.Pool) {
		made := pool.New
		pool.New = func() any {
			b := made().(*[]byte)
			pooledMade.Add(int64(len(*b)))
			return b
		}
	}
	countMade(&readBufPool)
	for i := range readChunkPools {
		countMade(&readChunkPools[i])
	}
}

// fuzzAllocated returns the bytes allocated while f ran, less the
// buffers pooledMade counts, if measure is set. runtime.ReadMemStats
// stops the world, which costs more than the rest of a session, so only
// some sessions measure.
func fuzzAllocated(measure bool, f func()) uint64 {
	if !measure {
		f()
		return 0
	}
	var before, after runtime.MemStats
	made := pooledMade.Load()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	all := after.TotalAlloc - before.TotalAlloc
	return all - min(all, uint64(pooledMade.Load()-made))
}

// fuzzReadMessage reads the next message with Read, or with Reader in
// pieces sized by plan, leaving its rest unread if choice says so; done
// reports that the message was read to its end. It appends to msg, which
// has room for the message.
func fuzzReadMessage(c *Conn, choice byte, plan *fuzzPlan, scratch, msg []byte) (typ MessageType, _ []byte, done bool, err error) {
	ctx := context.Background()
	if choice&1 == 0 {
		typ, p, err := c.Read(ctx)
		return typ, append(msg, p...), err == nil, err
	}
	typ, r, err := c.Reader(ctx)
	if err != nil {
		return 0, msg, false, err
	}
	for {
		buf := scratch[:int(plan.next())+1]
		n, err := r.Read(buf)
		msg = append(msg, buf[:n]...)
		switch {
		case err == io.EOF:
			return typ, msg, true, nil
		case err != nil:
			return typ, msg, false, err
		case choice&2 != 0:
			return typ, msg, false, nil // the next read discards the rest
		}
	}
}

// fuzzConnSession feeds stream, as the peer's bytes, to a Conn of the
// given role that reads messages until it fails, with read calls and chunk
// sizes chosen by plan. It returns the first property broken.
func fuzzConnSession(client bool, planBytes, stream []byte) error {
	plan := &fuzzPlan{p: planBytes}
	limit := fuzzReadLimits[int(plan.next())%len(fuzzReadLimits)]
	options := plan.next()
	ft := &fuzzTransport{plan: plan, in: stream}
	tr := transport{rw: ft}
	if options&1 != 0 {
		tr.halfClose = true
	}
	if options&2 != 0 {
		tr.dl = ft
	}
	// The close timeout never passes: the transport never blocks.
	c := newConn(&connConfig{client: client, tr: tr, closeTimeout: time.Minute})
	return fuzzReadSession(c, ft, fuzzSession{client: client, limit: limit, measure: options&4 != 0}, stream)
}

// fuzzSession is how a Conn under fuzzing is read and judged.
type fuzzSession struct {
	client  bool
	limit   int64 // the read limit
	measure bool  // measure what reading each message allocates
	// writesFailed, when set, reports whether the transport failed
	// writes of the Conn on purpose: then close frames may be missing,
	// and the connection may end lost, with errStreamEnded.
	writesFailed func() bool
}

// fuzzReader reads the messages of a Conn under fuzzing, each as
// fuzzReadMessage does with the plan's next choice, checking what reading
// it allocates (when measure is set) and that it stays within the read
// limit (negative: none).
type fuzzReader struct {
	c       *Conn
	plan    *fuzzPlan
	measure bool
	allowed uint64 // bytes reading a message may allocate
	limit   int64
	scratch []byte
	msg     []byte // has room for any message delivered
}

// next reads message i: its type, what was delivered of it, whether it
// was read to its end, and the error the read ended with; broken is the
// property reading it broke, if any.
func (r *fuzzReader) next(i int) (typ MessageType, msg []byte, done bool, err, broken error) {
	choice := r.plan.next()
	if a := fuzzAllocated(r.measure, func() { typ, r.msg, done, err = fuzzReadMessage(r.c, choice, r.plan, r.scratch, r.msg[:0]) }); a > r.allowed {
		broken = fmt.Errorf("reading message %d allocated %d bytes; read limit %d, allowed %d", i, a, r.limit, r.allowed)
	} else if r.limit >= 0 && int64(len(r.msg)) > r.limit {
		broken = fmt.Errorf("message %d: delivered %d bytes over the read limit %d", i, len(r.msg), r.limit)
	}
	return typ, r.msg, done, err, broken
}

// fuzzAfterEnd checks a Conn whose reading ended with err: reading again
// says so, with the same status; its transport ft is closed and was
// never misused; and what it wrote parses (fuzzParseWritten), pongs
// answering pings, in order. It returns what was written.
func fuzzAfterEnd(c *Conn, ft *fuzzTransport, client bool, err error, pings [][]byte) (fuzzWritten, error) {
	_, _, err2 := c.Read(context.Background())
	if !errors.Is(err2, ErrClosed) || CloseStatus(err2) != CloseStatus(err) {
		return fuzzWritten{}, fmt.Errorf("Read after %v returned %v (status %v), want ErrClosed with the same status", err, err2, CloseStatus(err2))
	}
	ft.mu.Lock()
	closed, misuse, out := ft.closed, ft.misuse, ft.out
	ft.mu.Unlock()
	switch {
	case !closed:
		return fuzzWritten{}, fmt.Errorf("transport left open after %v", err)
	case len(misuse) > 0:
		return fuzzWritten{}, fmt.Errorf("transport misused: %v", misuse)
	}
	w, werr := fuzzParseWritten(out, client)
	if werr != nil {
		return w, fmt.Errorf("after %v: %v", err, werr)
	}
	if len(w.pongs) > len(pings) {
		return w, fmt.Errorf("%d pongs for %d pings", len(w.pongs), len(pings))
	}
	for i, p := range w.pongs {
		if !bytes.Equal(p, pings[i]) {
			return w, fmt.Errorf("pong %d carries %q, want the ping's %q", i, p, pings[i])
		}
	}
	return w, nil
}

// fuzzReadSession reads c, whose transport ft serves stream as the peer's
// bytes, message after message until reading fails, with read calls and
// chunk sizes chosen by ft's plan, and returns the first property broken.
func fuzzReadSession(c *Conn, ft *fuzzTransport, s fuzzSession, stream []byte) error {
	plan, client, limit, measure := ft.plan, s.client, s.limit, s.measure
	peer := fuzzParsePeer(stream)
	defer c.CloseNow()
	c.SetReadLimit(limit)

	// Reads allocate up to about twice the message they return (the buffer
	// grows by doubling); without a limit, what arrived and the bounded
	// allocation made for a frame ahead of its bytes.
	allowed := uint64(fuzzAllocSlack + 3*limit)
	if limit < 0 {
		allowed = uint64(fuzzAllocSlack + minReadChunk + 3*len(stream))
	}
	r := fuzzReader{c: c, plan: plan, measure: measure, allowed: allowed, limit: limit, scratch: make([]byte, 256), msg: make([]byte, 0, len(stream))}
	started := 0
	var err error
	for ; err == nil; started++ {
		if started > len(stream) {
			return fmt.Errorf("more messages than bytes in the stream")
		}
		typ, msg, done, rerr, broken := r.next(started)
		if err = rerr; broken != nil {
			return broken
		}
		if err != nil && typ == 0 {
			break // the read ended before a message started
		}
		if started >= len(peer.msgs) {
			return fmt.Errorf("delivered message %d (%v, %q); the stream holds %d", started, typ, msg, len(peer.msgs))
		}
		want := peer.msgs[started]
		switch {
		case typ != want.typ:
			return fmt.Errorf("message %d: type %v, want %v", started, typ, want.typ)
		case !bytes.HasPrefix(want.payload, msg):
			return fmt.Errorf("message %d: delivered %q, which does not start %q", started, msg, want.payload)
		case done && (!want.complete || len(msg) != len(want.payload)):
			return fmt.Errorf("message %d: delivered %q whole; the stream holds %q (complete=%v)", started, msg, want.payload, want.complete)
		case typ == MessageText && firstBad(msg) >= 0:
			return fmt.Errorf("message %d: delivered invalid UTF-8 %q", started, msg)
		case typ == MessageText && done && !utf8.Valid(msg):
			return fmt.Errorf("message %d: delivered %q whole, which is not valid UTF-8", started, msg)
		}
	}

	w, werr := fuzzAfterEnd(c, ft, client, err, peer.pings)
	if werr != nil {
		return werr
	}
	ft.mu.Lock()
	halfClosed := ft.halfClosed
	ft.mu.Unlock()
	if halfClosed > 1 || halfClosed > 0 && client {
		return fmt.Errorf("client=%v half-closed the transport %d times", client, halfClosed)
	}

	// The end is one the protocol allows, and the close frame sent fits it
	// (or, when writes failed, is missing).
	var (
		pe *ProtocolError
		ce CloseError
	)
	failed := s.writesFailed != nil && s.writesFailed()
	switch {
	case errors.As(err, &pe):
		if pe.Code != StatusProtocolError && pe.Code != StatusInvalidFramePayloadData && pe.Code != StatusMessageTooBig {
			return fmt.Errorf("failed with %v: %v", pe.Code, err)
		}
		if pe.Code == StatusMessageTooBig && !errors.Is(err, ErrMessageTooBig) {
			return fmt.Errorf("failed with 1009 without ErrMessageTooBig: %v", err)
		}
		if (w.hasClose || !failed) && (!w.hasClose || len(w.close) < 2 || StatusCode(binary.BigEndian.Uint16(w.close)) != pe.Code ||
			!strings.HasPrefix(pe.Reason, string(w.close[2:]))) {
			return fmt.Errorf("failed with %v but sent close payload %q", err, w.close)
		}
	case CloseStatus(err) == StatusAbnormalClosure:
		// Lost: no close frame can carry 1006.
		if !errors.Is(err, io.EOF) && !(failed && errors.Is(err, errStreamEnded)) {
			return fmt.Errorf("read ended with %v (status %v), want io.EOF with 1006", err, CloseStatus(err))
		}
		if w.hasClose {
			return fmt.Errorf("sent close payload %q on a lost connection", w.close)
		}
	case errors.As(err, &ce):
		if !peer.hasClose {
			return fmt.Errorf("read ended with %v; the stream holds no close frame", err)
		}
		if !fuzzValidCloseCode(ce.Code) && ce.Code != StatusNoStatusRcvd {
			return fmt.Errorf("read ended with the peer's close code %v, which no peer may send", ce.Code)
		}
		want, perr := parseClosePayload(peer.close)
		if perr != nil || ce != want {
			return fmt.Errorf("read ended with %v; the peer's close payload is %q", err, peer.close)
		}
		echo := []byte{}
		if ce.Code != StatusNoStatusRcvd {
			echo = binary.BigEndian.AppendUint16(nil, uint16(ce.Code))
		}
		if (w.hasClose || !failed) && (!w.hasClose || !bytes.Equal(w.close, echo)) {
			return fmt.Errorf("peer closed with %v; we sent close payload %q (sent=%v), want %q", ce, w.close, w.hasClose, echo)
		}
		for i, m := range peer.msgs {
			if m.complete && i >= started {
				return fmt.Errorf("peer closed after message %d, which was never delivered", i)
			}
		}
	default:
		return fmt.Errorf("read ended with %v (status %v), not an end the protocol allows", err, CloseStatus(err))
	}
	return nil
}

// fuzzConn runs fuzzConnSession and fails t if it breaks a property or
// does not finish.
func fuzzConn(t *testing.T, client bool, plan, stream []byte) {
	fuzzBounded(t, func() error { return fuzzConnSession(client, plan, stream) })
}

// fuzzBounded runs session and fails t if it returns an error or does
// not finish.
func fuzzBounded(t *testing.T, session func() error) {
	const bound = 10 * time.Second // for what takes microseconds
	done := make(chan error, 1)
	go func() { done <- session() }()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-timer.C:
		t.Fatalf("reading did not end within %v", bound)
	}
}

// fuzzFrame encodes a frame, masked with a fixed key if masked.
func fuzzFrame(fin bool, op opcode, masked bool, payload string) string {
	return string(fuzzAppendFrame(nil, fin, 0, op, masked, []byte(payload)))
}

// fuzzAppendFrame appends a frame with RSV bits rsv to b, masked with a
// fixed key if masked.
func fuzzAppendFrame(b []byte, fin bool, rsv byte, op opcode, masked bool, payload []byte) []byte {
	h := header{fin: fin, rsv: rsv, op: op, masked: masked, key: [4]byte{0x37, 0xfa, 0x21, 0x3d}, length: int64(len(payload))}
	b = appendHeader(b, h)
	n := len(b)
	b = append(b, payload...)
	if masked {
		maskBytes(h.key, 0, b[n:])
	}
	return b
}

// fuzzConnSeeds are peer streams for both roles: well-formed traffic and
// each way of breaking it.
func fuzzConnSeeds(masked bool) []string {
	fr := func(fin bool, op opcode, payload string) string { return fuzzFrame(fin, op, masked, payload) }
	return []string{
		fr(true, opText, "Hello") + fr(true, opClose, "\x03\xe8bye"),
		fr(false, opText, "Hel") + fr(true, opPing, "p") + fr(true, opContinuation, "lo") + fr(true, opBinary, strings.Repeat("b", 300)) + fr(true, opClose, ""),
		fr(true, opText, "ok") + fr(true, opText, "\xce\xba\xff rest"),
		fr(true, opBinary, strings.Repeat("x", 70000))[:200], // claims 70000 bytes
		fr(true, opClose, "\x03"),
		fr(true, opClose, "\x03\xed"),
		fr(true, opClose, "\x0f\xa0\xc0"),
		fr(true, opcode(3), ""),
		fr(true, opContinuation, "x"),
		fr(false, opPing, ""),
		fr(true, opText, "ab")[:4],
		fuzzFrame(true, opText, !masked, "wrong masking"),
	}
}

// FuzzServerConn and FuzzClientConn feed stream, as the peer's bytes, to a
// Conn of either role, and check everything it delivers, writes and
// reports (see fuzzConnSession). The plan drives the session: its first
// byte picks the read limit from fuzzReadLimits; its second gives the
// transport a half-close (bit 0) and deadlines (bit 1), and has the
// session measure allocations (bit 2); then, cyclically, how each message
// is read (bit 0: with Reader; bit 1: leaving its rest unread), the size
// of each Reader buffer, and the size of each transport read (0: an empty
// read; up to 0x7F: that many bytes; above: 64 per step over 0x7F).
//
// Regression seeds in testdata/fuzz: ctx-watch-closes-transport (a close
// handshake's own context, ended, closed a transport without deadlines
// while it was being drained) and
// reader-skips-utf8-end-check-on-empty-final-frame (a text message ending
// inside a character was delivered whole by Reader when its last frame was
// empty).
func FuzzServerConn(f *testing.F) {
	for i, s := range fuzzConnSeeds(true) {
		f.Add([]byte{byte(i), 0xFF, 0x80 + byte(i)}, []byte(s))
	}
	f.Fuzz(func(t *testing.T, plan, stream []byte) { fuzzConn(t, false, plan, stream) })
}

func FuzzClientConn(f *testing.F) {
	for i, s := range fuzzConnSeeds(false) {
		f.Add([]byte{byte(i), 0x06, 0x03}, []byte(s))
	}
	f.Fuzz(func(t *testing.T, plan, stream []byte) { fuzzConn(t, true, plan, stream) })
}
