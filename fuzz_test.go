package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

// Native fuzz targets. Where a property needs a reference, it is restated
// from RFC 6455 or built on unicode/utf8, not taken from the code under
// test. Seed corpora live in testdata/fuzz/<FuzzName>; run a target with
//
//	go test -run='^$' -fuzz='^FuzzServerConn$' -fuzztime=60s

// fuzzPlan hands out the bytes of a fuzz input one at a time, cyclically,
// to drive choices such as chunk sizes. An empty plan gives zeros.
type fuzzPlan struct {
	p []byte
	i int
}

func (p *fuzzPlan) next() byte {
	if len(p.p) == 0 {
		return 0
	}
	b := p.p[p.i%len(p.p)]
	p.i++
	return b
}

// fuzzChunks cuts data into pieces whose sizes come from sizes, cyclically.
// A size of zero makes an empty piece, but never two in a row.
func fuzzChunks(sizes, data []byte) [][]byte {
	plan := fuzzPlan{p: sizes}
	var chunks [][]byte
	empty := false
	for len(data) > 0 {
		n := int(plan.next())
		if n == 0 && !empty {
			chunks = append(chunks, data[:0])
			empty = true
			continue
		}
		n = min(max(n, 1), len(data))
		chunks = append(chunks, data[:n])
		data = data[n:]
		empty = false
	}
	return chunks
}

// fuzzRunePrefix reports whether t is the start of the encoding of one
// character: t itself or t followed by continuation bytes is valid UTF-8
// holding one rune. Continuation bytes are tried from each of the ranges
// 80..8F, 90..9F and A0..BF, the only distinctions the well-formed
// sequences of the Unicode Standard make among them.
func fuzzRunePrefix(t []byte) bool {
	if utf8.Valid(t) && utf8.RuneCount(t) == 1 {
		return true
	}
	if len(t) >= utf8.UTFMax {
		return false
	}
	for _, c := range []byte{0x80, 0x90, 0xA0} {
		if fuzzRunePrefix(append(t[:len(t):len(t)], c)) {
			return true
		}
	}
	return false
}

// fuzzUTF8FirstBad returns the index of the first byte of p after which no
// continuation can make p valid UTF-8, or -1 if p is valid or could still
// become so.
func fuzzUTF8FirstBad(p []byte) int {
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		if r != utf8.RuneError || size > 1 {
			i += size
			continue
		}
		for j := i; j < len(p); j++ {
			if !fuzzRunePrefix(p[i : j+1]) {
				return j
			}
		}
		return -1 // p ends inside a character that can still be completed
	}
	return -1
}

// fuzzValidCloseCode restates RFC 6455 §7.4: the codes a close frame may
// carry are 1000-1003, 1007-1011, those registered since (1012-1014), and
// 3000-4999.
func fuzzValidCloseCode(code StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

func FuzzReadHeader(f *testing.F) {
	for _, s := range []string{
		"\x81\x05",                 // text, 5 bytes, unmasked
		"\x81\x85\x37\xfa\x21\x3d", // text, 5 bytes, masked (RFC 6455 §5.7)
		"\x82\x7e\x01\x00",         // binary, 256 bytes
		"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", // binary, 65536 bytes
		"\x82\x7e\x00\x7d",                         // 125 in the 16-bit form: not minimal
		"\x82\x7f\x00\x00\x00\x00\x00\x00\xff\xff", // 65535 in the 64-bit form: not minimal
		"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", // most significant bit set
		"\x89", // cut short
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := readHeader(r)
		n := len(data) - r.Len()

		// Reading a byte at a time changes nothing.
		h1, err1 := readHeader(iotest.OneByteReader(bytes.NewReader(data)))
		if h1 != h || fmt.Sprint(err1) != fmt.Sprint(err) {
			t.Fatalf("one byte at a time: %+v, %v; at once: %+v, %v", h1, err1, h, err)
		}

		// The header size and length field, restated from RFC 6455 §5.2.
		want := 2
		var length uint64
		if len(data) >= 2 {
			switch data[1] & 0x7F {
			case 126:
				want += 2
				if len(data) >= 4 {
					length = uint64(binary.BigEndian.Uint16(data[2:]))
				}
			case 127:
				want += 8
				if len(data) >= 10 {
					length = binary.BigEndian.Uint64(data[2:])
				}
			default:
				length = uint64(data[1] & 0x7F)
			}
			if data[1]&0x80 != 0 {
				want += 4
			}
		}
		switch {
		case len(data) == 0:
			if err != io.EOF {
				t.Fatalf("empty input: error %v, want io.EOF", err)
			}
			return
		case len(data) < want:
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("%d of %d header bytes: error %v, want io.ErrUnexpectedEOF", len(data), want, err)
			}
			return
		}
		if n != want {
			t.Fatalf("consumed %d bytes, want %d", n, want)
		}
		wellFormed := data[1]&0x7F < 126 ||
			(data[1]&0x7F == 126 && length >= 126) ||
			(data[1]&0x7F == 127 && length > math.MaxUint16 && length <= math.MaxInt64)
		if !wellFormed {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != StatusProtocolError {
				t.Fatalf("length %d in %d header bytes: error %v, want a *ProtocolError with 1002", length, n, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("well-formed header % x: %v", data[:n], err)
		}
		if h.length < 0 || uint64(h.length) != length {
			t.Fatalf("length %d, want %d", h.length, length)
		}
		if got := appendHeader(nil, h); !bytes.Equal(got, data[:n]) {
			t.Fatalf("appendHeader(%+v) = % x, want the bytes read, % x", h, got, data[:n])
		}
		if h.size() != n {
			t.Fatalf("size() = %d, want %d", h.size(), n)
		}
		if ph, pn, perr := parseHeader(data); ph != h || pn != n || perr != nil {
			t.Fatalf("parseHeader = %+v, %d, %v; readHeader read %+v in %d bytes", ph, pn, perr, h, n)
		}
		if _, pn, perr := parseHeader(data[:n-1]); pn != 0 || perr != nil {
			t.Fatalf("parseHeader of %d of %d bytes = %d, %v, want 0, nil", n-1, n, pn, perr)
		}

		// checkHeader agrees with the rules of RFC 6455 §5, restated.
		for _, s := range []readState{
			{}, {client: true}, {inMessage: true}, {client: true, inMessage: true},
			{rsvOK: rsv1}, {client: true, rsvOK: rsv1, inMessage: true},
		} {
			err := checkHeader(h, s)
			if want := fuzzHeaderOK(h, s); (err == nil) != want {
				t.Fatalf("checkHeader(%+v, %+v) = %v, want ok=%v", h, s, err, want)
			}
			var pe *ProtocolError
			if err != nil && (!errors.As(err, &pe) || pe.Code != StatusProtocolError) {
				t.Fatalf("checkHeader(%+v, %+v) = %v, want a *ProtocolError with 1002", h, s, err)
			}
		}
	})
}

// fuzzHeaderOK restates the header rules of RFC 6455 §5.1, §5.2, §5.4 and
// §5.5.
func fuzzHeaderOK(h header, s readState) bool {
	op := byte(h.op)
	control := op >= 8
	switch op {
	case 0, 1, 2, 8, 9, 10:
	default:
		return false // reserved opcode
	}
	if h.rsv != 0 && (control || op == 0 || h.rsv&^s.rsvOK != 0) {
		return false
	}
	if control && (!h.fin || h.length > 125) {
		return false
	}
	if h.masked == s.client {
		return false // servers read masked frames, clients unmasked ones
	}
	if op == 0 && !s.inMessage || (op == 1 || op == 2) && s.inMessage {
		return false
	}
	return true
}

func FuzzMask(f *testing.F) {
	f.Add(uint32(0x37fa213d), byte(0), []byte{1}, []byte("Hello"))
	f.Add(uint32(0x01020304), byte(3), []byte{0, 7, 1, 33, 8}, bytes.Repeat([]byte("abcdefgh"), 20))
	f.Add(uint32(0xffffffff), byte(2), []byte{64}, make([]byte, 200))
	f.Fuzz(func(t *testing.T, k uint32, start byte, sizes, data []byte) {
		var key [4]byte
		binary.BigEndian.PutUint32(key[:], k)
		want := bytes.Clone(data)
		for i := range want {
			want[i] ^= key[(int(start)+i)%4]
		}

		// Mask in place inside a larger buffer, whose guard bytes must stay.
		const guard = 9
		buf := make([]byte, guard+len(data)+guard)
		for i := range buf {
			buf[i] = 0xA5
		}
		got := buf[guard : guard+len(data)]
		copy(got, data)
		pos, off := int(start), 0
		for _, c := range fuzzChunks(sizes, got) {
			next := maskBytes(key, pos, c)
			if wantPos := (pos + len(c)) % 4; next != wantPos {
				t.Fatalf("maskBytes(pos %d, %d bytes at %d) returned %d, want %d", pos, len(c), off, next, wantPos)
			}
			pos, off = next, off+len(c)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("masked in pieces:\n% x\nwant\n% x", got, want)
		}
		for i, b := range slices.Concat(buf[:guard], buf[guard+len(data):]) {
			if b != 0xA5 {
				t.Fatalf("guard byte %d changed to %#x", i, b)
			}
		}
	})
}

func FuzzUTF8Validator(f *testing.F) {
	f.Add([]byte{1}, []byte("κόσμε"))
	f.Add([]byte{3, 0, 1}, []byte("\xf0\x9f\x98\x80 ok \xed\xa0\x80"))      // a surrogate after an emoji
	f.Add([]byte{2}, []byte("abc\xf4\x90\x80\x80"))                         // above U+10FFFF
	f.Add([]byte{9}, []byte("12345678\xe0\x80\xaf"))                        // overlong
	f.Add([]byte{5, 1}, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce")) // ends inside a character
	f.Fuzz(func(t *testing.T, sizes, data []byte) {
		bad := fuzzUTF8FirstBad(data)
		if bad >= 0 && utf8.Valid(data) {
			t.Fatalf("reference finds byte %d of valid UTF-8 %q bad", bad, data)
		}
		var v utf8Validator
		for round := range 2 {
			chunks := fuzzChunks(sizes, data)
			if round == 1 {
				// After reset, the same text in one piece.
				v.reset()
				chunks = [][]byte{data}
			}
			off := 0
			for _, c := range chunks {
				ok := v.write(c)
				if holdsBad := bad >= off && bad < off+len(c); ok == holdsBad {
					t.Fatalf("round %d: write of bytes %d..%d of %q = %v; first bad byte is %d",
						round, off, off+len(c), data, ok, bad)
				}
				if !ok {
					break
				}
				off += len(c)
			}
			if got, want := v.complete(), utf8.Valid(data); got != want {
				t.Fatalf("round %d: complete() = %v after %q, want %v", round, got, data, want)
			}
		}
	})
}

func FuzzParseClosePayload(f *testing.F) {
	for _, s := range []string{
		"", "\x03", "\x03\xe8", "\x03\xe8bye", "\x03\xed", "\x03\xee", "\x0b\xb8", "\x13\x88",
		"\x03\xe8\xff", "\x03\xe9\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		ce, err := parseClosePayload(p)
		var pe *ProtocolError
		switch {
		case len(p) == 0:
			if err != nil || ce != (CloseError{Code: StatusNoStatusRcvd}) {
				t.Fatalf("empty payload: %+v, %v; want code 1005", ce, err)
			}
			if q, err := closePayload(ce.Code, ce.Reason); len(q) != 0 || err != nil {
				t.Fatalf("closePayload(1005, \"\") = %q, %v; want empty", q, err)
			}
			return
		case len(p) == 1, !fuzzValidCloseCode(StatusCode(binary.BigEndian.Uint16(p))):
			if !errors.As(err, &pe) || pe.Code != StatusProtocolError {
				t.Fatalf("payload %q: %+v, %v; want a *ProtocolError with 1002", p, ce, err)
			}
			return
		case !utf8.Valid(p[2:]):
			if !errors.As(err, &pe) || pe.Code != StatusInvalidFramePayloadData {
				t.Fatalf("payload %q: %+v, %v; want a *ProtocolError with 1007", p, ce, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid payload %q: %v", p, err)
		}
		if want := (CloseError{StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])}); ce != want {
			t.Fatalf("payload %q: %+v, want %+v", p, ce, want)
		}
		q, err := closePayload(ce.Code, ce.Reason)
		if len(p) > maxControlPayload {
			if err == nil {
				t.Fatalf("closePayload accepted a reason of %d bytes", len(ce.Reason))
			}
			return
		}
		if err != nil || !bytes.Equal(q, p) {
			t.Fatalf("closePayload(%d, %q) = %q, %v; want %q", ce.Code, ce.Reason, q, err, p)
		}
	})
}

func FuzzClosePayload(f *testing.F) {
	f.Add(1000, "")
	f.Add(1005, "")
	f.Add(1005, "why")
	f.Add(1006, "")
	f.Add(4999, strings.Repeat("é", 61)+"x")
	f.Add(3000, strings.Repeat("x", 124))
	f.Add(1001, "\xff")
	f.Add(-64536, "")
	f.Fuzz(func(t *testing.T, code int, reason string) {
		c := StatusCode(code)
		p, err := closePayload(c, reason)
		ok := (fuzzValidCloseCode(c) || c == StatusNoStatusRcvd && reason == "") &&
			len(reason) <= 123 && utf8.ValidString(reason)
		if (err == nil) != ok {
			t.Fatalf("closePayload(%d, %q) = %q, %v; want ok=%v", code, reason, p, err, ok)
		}
		if !ok {
			return
		}
		ce, err := parseClosePayload(p)
		if err != nil || ce != (CloseError{c, reason}) {
			t.Fatalf("parseClosePayload(closePayload(%d, %q)) = %+v, %v", code, reason, ce, err)
		}
	})
}

// Connections fed arbitrary bytes by the peer.

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
		ft.misuse = append(ft.misuse, "write after closeWrite")
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

func (ft *fuzzTransport) closeWrite() error {
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
// message: error values and pooled buffers allocated afresh, among them up
// to two read buffers (one is released when the reader catches up with the
// input and another taken when more arrives; a collection in between
// empties the pool), more under the race detector.
const fuzzAllocSlack = (2+raceReadBuffers)*readBufferSize + 24<<10

// fuzzAllocated returns the bytes allocated while f ran, exactly, if
// measure is set. runtime.ReadMemStats stops the world, which costs more
// than the rest of a session, so only some sessions measure.
func fuzzAllocated(measure bool, f func()) uint64 {
	if !measure {
		f()
		return 0
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
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
	peer := fuzzParsePeer(stream)

	ft := &fuzzTransport{plan: plan, in: stream}
	tr := transport{rw: ft}
	if options&1 != 0 {
		tr.closeWrite = ft.closeWrite
	}
	if options&2 != 0 {
		tr.dl = ft
	}
	measure := options&4 != 0
	// The close timeout never passes: the transport never blocks.
	c := newConn(connConfig{client: client, tr: tr, closeTimeout: time.Minute})
	defer c.CloseNow()
	c.SetReadLimit(limit)

	// Reads allocate up to about twice the message they return (the buffer
	// grows by doubling); without a limit, what arrived and the bounded
	// allocation made for a frame ahead of its bytes.
	allowed := uint64(fuzzAllocSlack + 3*limit)
	if limit < 0 {
		allowed = uint64(fuzzAllocSlack + maxUpfrontAlloc + 3*len(stream))
	}
	scratch := make([]byte, 256)
	msg := make([]byte, 0, len(stream))
	started := 0
	var err error
	for ; err == nil; started++ {
		if started > len(stream) {
			return fmt.Errorf("more messages than bytes in the stream")
		}
		var (
			typ  MessageType
			done bool
		)
		choice := plan.next()
		if a := fuzzAllocated(measure, func() { typ, msg, done, err = fuzzReadMessage(c, choice, plan, scratch, msg[:0]) }); a > allowed {
			return fmt.Errorf("reading message %d allocated %d bytes; read limit %d, allowed %d", started, a, limit, allowed)
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
		case limit >= 0 && int64(len(msg)) > limit:
			return fmt.Errorf("message %d: delivered %d bytes over the read limit %d", started, len(msg), limit)
		case typ == MessageText && fuzzUTF8FirstBad(msg) >= 0:
			return fmt.Errorf("message %d: delivered invalid UTF-8 %q", started, msg)
		case typ == MessageText && done && !utf8.Valid(msg):
			return fmt.Errorf("message %d: delivered %q whole, which is not valid UTF-8", started, msg)
		}
	}

	// The connection has ended, and says so again, with the same status.
	_, _, err2 := c.Read(context.Background())
	if !errors.Is(err2, ErrClosed) || CloseStatus(err2) != CloseStatus(err) {
		return fmt.Errorf("Read after %v returned %v (status %v), want ErrClosed with the same status", err, err2, CloseStatus(err2))
	}
	ft.mu.Lock()
	closed, halfClosed, misuse, out := ft.closed, ft.halfClosed, ft.misuse, ft.out
	ft.mu.Unlock()
	switch {
	case !closed:
		return fmt.Errorf("transport left open after %v", err)
	case len(misuse) > 0:
		return fmt.Errorf("transport misused: %v", misuse)
	case halfClosed > 1 || halfClosed > 0 && client:
		return fmt.Errorf("client=%v half-closed the transport %d times", client, halfClosed)
	}

	w, werr := fuzzParseWritten(out, client)
	if werr != nil {
		return fmt.Errorf("after %v: %v", err, werr)
	}
	if len(w.pongs) > len(peer.pings) {
		return fmt.Errorf("%d pongs for %d pings", len(w.pongs), len(peer.pings))
	}
	for i, p := range w.pongs {
		if !bytes.Equal(p, peer.pings[i]) {
			return fmt.Errorf("pong %d carries %q, want the ping's %q", i, p, peer.pings[i])
		}
	}

	// The end is one the protocol allows, and the close frame sent fits it.
	var (
		pe *ProtocolError
		ce CloseError
	)
	switch {
	case errors.As(err, &pe):
		if pe.Code != StatusProtocolError && pe.Code != StatusInvalidFramePayloadData && pe.Code != StatusMessageTooBig {
			return fmt.Errorf("failed with %v: %v", pe.Code, err)
		}
		if pe.Code == StatusMessageTooBig && !errors.Is(err, ErrMessageTooBig) {
			return fmt.Errorf("failed with 1009 without ErrMessageTooBig: %v", err)
		}
		if !w.hasClose || len(w.close) < 2 || StatusCode(binary.BigEndian.Uint16(w.close)) != pe.Code ||
			!strings.HasPrefix(pe.Reason, string(w.close[2:])) {
			return fmt.Errorf("failed with %v but sent close payload %q", err, w.close)
		}
	case CloseStatus(err) == StatusAbnormalClosure:
		// Lost: no close frame can carry 1006.
		if !errors.Is(err, io.EOF) {
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
		if !w.hasClose || !bytes.Equal(w.close, echo) {
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
	const bound = 10 * time.Second // for what takes microseconds
	done := make(chan error, 1)
	go func() { done <- fuzzConnSession(client, plan, stream) }()
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
	h := header{fin: fin, op: op, masked: masked, key: [4]byte{0x37, 0xfa, 0x21, 0x3d}, length: int64(len(payload))}
	b := appendHeader(nil, h)
	p := []byte(payload)
	if masked {
		maskBytes(h.key, 0, p)
	}
	return string(append(b, p...))
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

// Opening handshakes.

// fuzzHijacker is an http.ResponseWriter whose connection can be hijacked.
type fuzzHijacker struct {
	header http.Header
	status int
	body   bytes.Buffer
	br     *bufio.Reader // what the server read the request from
	conn   *fuzzNetConn  // set once hijacked
}

func (w *fuzzHijacker) Header() http.Header { return w.header }

func (w *fuzzHijacker) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *fuzzHijacker) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *fuzzHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.status != 0 || w.conn != nil {
		return nil, nil, errors.New("hijack after the response started")
	}
	w.conn = &fuzzNetConn{}
	return w.conn, bufio.NewReadWriter(w.br, bufio.NewWriter(w.conn)), nil
}

// fuzzNetConn is a net.Conn that records writes and reads nothing.
type fuzzNetConn struct {
	out    bytes.Buffer
	closed bool
}

func (c *fuzzNetConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *fuzzNetConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *fuzzNetConn) Close() error                     { c.closed = true; return nil }
func (c *fuzzNetConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fuzzNetConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fuzzNetConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzNetConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzNetConn) SetWriteDeadline(time.Time) error { return nil }

// fuzzHasToken reports whether a header's comma-separated values hold
// token, ignoring case.
func fuzzHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// fuzzRefusals restates RFC 6455 §4.2.1 and the origin policy of Accept: it
// returns every HTTP status that some failed check of r would answer with.
func fuzzRefusals(r *http.Request, skipOrigin bool) []int {
	var statuses []int
	if r.Method != http.MethodGet {
		statuses = append(statuses, http.StatusMethodNotAllowed)
	}
	if r.ProtoMajor < 1 || r.ProtoMajor == 1 && r.ProtoMinor < 1 {
		statuses = append(statuses, http.StatusBadRequest)
	}
	if !fuzzHasToken(r.Header, "Connection", "Upgrade") || !fuzzHasToken(r.Header, "Upgrade", "websocket") {
		statuses = append(statuses, http.StatusBadRequest)
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || v[0] != "13" {
		statuses = append(statuses, http.StatusUpgradeRequired)
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		statuses = append(statuses, http.StatusBadRequest)
	} else if nonce, err := base64.StdEncoding.DecodeString(keys[0]); err != nil || len(nonce) != 16 ||
		base64.StdEncoding.EncodeToString(nonce) != keys[0] {
		statuses = append(statuses, http.StatusBadRequest)
	}
	if origins := r.Header.Values("Origin"); !skipOrigin && len(origins) > 0 {
		u, err := url.Parse(origins[0])
		if len(origins) > 1 || err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			statuses = append(statuses, http.StatusForbidden)
		}
	}
	return statuses
}

// fuzzSubprotocols are the subprotocols the server under fuzzing speaks.
var fuzzSubprotocols = []string{"chat.v2", "chat"}

func FuzzAcceptRequest(f *testing.F) {
	const valid = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, s := range []string{
		valid + "\r\n",
		valid + "Origin: http://server.example.com\r\nSec-WebSocket-Protocol: chat, chat.v2\r\n\r\n",
		valid + "Origin: http://evil.example\r\n\r\n",
		strings.Replace(valid, "GET", "POST", 1) + "\r\n",
		strings.Replace(valid, "HTTP/1.1", "HTTP/1.0", 1) + "\r\n",
		strings.Replace(valid, "Version: 13", "Version: 8", 1) + "\r\n",
		strings.Replace(valid, "Upgrade\r\n", "keep-alive\r\n", 1) + "\r\n",
		strings.Replace(valid, "==", "=", 1) + "\r\n",
		valid + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(valid+"Origin: http://evil.example\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, raw []byte, skipOrigin bool) {
		br := bufio.NewReader(bytes.NewReader(raw))
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		w := &fuzzHijacker{header: http.Header{}, br: br}
		c, err := Accept(w, r, &AcceptOptions{Subprotocols: fuzzSubprotocols, InsecureSkipOriginCheck: skipOrigin})
		refusals := fuzzRefusals(r, skipOrigin)
		if err != nil {
			switch {
			case c != nil:
				t.Fatalf("Accept returned a Conn and %v", err)
			case !errors.Is(err, ErrHandshake):
				t.Fatalf("Accept: %v, want an error wrapping ErrHandshake", err)
			case w.conn != nil:
				t.Fatalf("Accept hijacked the connection, then failed: %v", err)
			case !slices.Contains(refusals, w.status):
				t.Fatalf("Accept answered %d (%v); the request fails checks answered with %v", w.status, err, refusals)
			case w.body.Len() == 0:
				t.Fatalf("Accept answered %d without saying why", w.status)
			case w.status == http.StatusMethodNotAllowed && w.header.Get("Allow") != http.MethodGet:
				t.Fatalf("405 with Allow %q, want GET", w.header.Get("Allow"))
			case w.status == http.StatusUpgradeRequired && w.header.Get("Sec-WebSocket-Version") != "13":
				t.Fatalf("426 with Sec-WebSocket-Version %q, want 13", w.header.Get("Sec-WebSocket-Version"))
			}
			return
		}
		defer c.CloseNow()
		if len(refusals) > 0 {
			t.Fatalf("Accept took a request that fails checks answered with %v:\n%q", refusals, raw)
		}
		if w.conn == nil || w.status != 0 || w.body.Len() != 0 {
			t.Fatalf("Accept succeeded with hijacked=%v, status %d, body %q", w.conn != nil, w.status, w.body.String())
		}
		rbr := bufio.NewReader(bytes.NewReader(w.conn.out.Bytes()))
		resp, err := http.ReadResponse(rbr, r)
		if err != nil {
			t.Fatalf("handshake response %q: %v", w.conn.out.String(), err)
		}
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		wantAccept := base64.StdEncoding.EncodeToString(sum[:])
		switch {
		case resp.StatusCode != http.StatusSwitchingProtocols:
			t.Fatalf("status %d, want 101", resp.StatusCode)
		case rbr.Buffered() > 0:
			t.Fatalf("bytes after the handshake response in %q", w.conn.out.String())
		case !fuzzHasToken(resp.Header, "Upgrade", "websocket") || !fuzzHasToken(resp.Header, "Connection", "Upgrade"):
			t.Fatalf("response lacks the upgrade tokens: %v", resp.Header)
		case resp.Header.Get("Sec-WebSocket-Accept") != wantAccept:
			t.Fatalf("Sec-WebSocket-Accept %q, want %q", resp.Header.Get("Sec-WebSocket-Accept"), wantAccept)
		}
		offered := map[string]bool{}
		for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
			for _, p := range strings.Split(v, ",") {
				offered[strings.Trim(p, " \t")] = true
			}
		}
		want := ""
		for _, p := range fuzzSubprotocols {
			if offered[p] {
				want = p
				break
			}
		}
		if got := resp.Header.Values("Sec-WebSocket-Protocol"); c.Subprotocol() != want || want == "" && len(got) > 0 ||
			want != "" && (len(got) != 1 || got[0] != want) {
			t.Fatalf("offered %q: chose %q, response says %q; want %q", r.Header.Values("Sec-WebSocket-Protocol"), c.Subprotocol(), got, want)
		}
		if c.CloseNow(); !w.conn.closed {
			t.Fatal("CloseNow left the hijacked connection open")
		}
	})
}
