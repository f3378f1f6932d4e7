package websocket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

// bitString turns a string of '0' and '1' into bytes, eight bits to a byte,
// most significant first. Spaces only group the fields for the reader.
func bitString(t testing.TB, s string) string {
	t.Helper()
	s = strings.ReplaceAll(s, " ", "")
	if len(s)%8 != 0 {
		t.Fatalf("bit string %q has %d bits, not a whole number of bytes", s, len(s))
	}
	b := make([]byte, len(s)/8)
	for i, c := range s {
		switch c {
		case '0':
		case '1':
			b[i/8] |= 0x80 >> (i % 8)
		default:
			t.Fatalf("bit string %q: %q is not a bit", s, c)
		}
	}
	return string(b)
}

func TestHeaderBitString(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ bits, want string }{
		{"", ""},
		{"1 000 0001  0 0000101", "\x81\x05"},
		{"0000 0001  1000 0000  1111 1111", "\x01\x80\xff"},
	} {
		if got := bitString(t, tt.bits); got != tt.want {
			t.Errorf("bitString(%q) = %q, want %q", tt.bits, got, tt.want)
		}
	}
}

// Field groups of the first two bytes: FIN RSV1-3 opcode, MASK length.
// Extended lengths and masking keys follow a byte at a time.
const (
	bitsLen16Of126   = "00000000 01111110"
	bitsLen16Of127   = "00000000 01111111"
	bitsLen16Of65535 = "11111111 11111111"
	bitsLen64Of65536 = "00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000000"
	bitsLen64OfMax   = "01111111 11111111 11111111 11111111 11111111 11111111 11111111 11111111"
	bitsKey37FA213D  = "00110111 11111010 00100001 00111101"
)

var rfcKey = [4]byte{0x37, 0xfa, 0x21, 0x3d} // the masking key of RFC 6455 §5.7

// headerVectors are frame headers as bit strings, with the header each
// encodes. Every one is in minimal form, so it decodes and encodes back to
// the same bytes.
var headerVectors = []struct {
	label string
	bits  string
	h     header
}{
	{"FIN text len=5", "1 000 0001  0 0000101", header{fin: true, op: opText, length: 5}},
	{"FIN binary len=125", "1 000 0010  0 1111101", header{fin: true, op: opBinary, length: 125}},
	{"FIN binary len=126 (16-bit)", "1 000 0010  0 1111110  " + bitsLen16Of126, header{fin: true, op: opBinary, length: 126}},
	{"FIN binary len=127 (16-bit)", "1 000 0010  0 1111110  " + bitsLen16Of127, header{fin: true, op: opBinary, length: 127}},
	{"FIN binary len=65535 (16-bit)", "1 000 0010  0 1111110  " + bitsLen16Of65535, header{fin: true, op: opBinary, length: 65535}},
	{"FIN binary len=65536 (64-bit)", "1 000 0010  0 1111111  " + bitsLen64Of65536, header{fin: true, op: opBinary, length: 65536}},
	{"FIN binary len=2^63-1 (64-bit)", "1 000 0010  0 1111111  " + bitsLen64OfMax, header{fin: true, op: opBinary, length: math.MaxInt64}},

	{"FIN text masked len=0", "1 000 0001  1 0000000  " + bitsKey37FA213D, header{fin: true, op: opText, masked: true, key: rfcKey}},
	{"FIN text masked len=5", "1 000 0001  1 0000101  " + bitsKey37FA213D, header{fin: true, op: opText, masked: true, key: rfcKey, length: 5}},
	{"FIN binary masked len=125", "1 000 0010  1 1111101  " + bitsKey37FA213D, header{fin: true, op: opBinary, masked: true, key: rfcKey, length: 125}},
	{"FIN binary masked len=126", "1 000 0010  1 1111110  " + bitsLen16Of126 + " " + bitsKey37FA213D, header{fin: true, op: opBinary, masked: true, key: rfcKey, length: 126}},
	{"FIN binary masked len=127", "1 000 0010  1 1111110  " + bitsLen16Of127 + " " + bitsKey37FA213D, header{fin: true, op: opBinary, masked: true, key: rfcKey, length: 127}},
	{"FIN binary masked len=65535", "1 000 0010  1 1111110  " + bitsLen16Of65535 + " " + bitsKey37FA213D, header{fin: true, op: opBinary, masked: true, key: rfcKey, length: 65535}},
	{"FIN binary masked len=65536", "1 000 0010  1 1111111  " + bitsLen64Of65536 + " " + bitsKey37FA213D, header{fin: true, op: opBinary, masked: true, key: rfcKey, length: 65536}},
	{"FIN binary masked len=2^63-1", "1 000 0010  1 1111111  " + bitsLen64OfMax + " " + bitsKey37FA213D, header{fin: true, op: opBinary, masked: true, key: rfcKey, length: math.MaxInt64}},
	{"masked zero key", "1 000 0010  1 0000001  00000000 00000000 00000000 00000000", header{fin: true, op: opBinary, masked: true, length: 1}},
	{"masked all-ones key", "1 000 0010  1 0000001  11111111 11111111 11111111 11111111", header{fin: true, op: opBinary, masked: true, key: [4]byte{0xff, 0xff, 0xff, 0xff}, length: 1}},

	{"text len=3 (first fragment)", "0 000 0001  0 0000011", header{op: opText, length: 3}},
	{"continuation len=2", "0 000 0000  0 0000010", header{op: opContinuation, length: 2}},
	{"FIN continuation len=2", "1 000 0000  0 0000010", header{fin: true, op: opContinuation, length: 2}},

	{"FIN RSV1 text", "1 100 0001  0 0000001", header{fin: true, rsv: rsv1, op: opText, length: 1}},
	{"FIN RSV2 text", "1 010 0001  0 0000001", header{fin: true, rsv: rsv2, op: opText, length: 1}},
	{"FIN RSV3 text", "1 001 0001  0 0000001", header{fin: true, rsv: rsv3, op: opText, length: 1}},
	{"RSV1-3 binary masked", "0 111 0010  1 0000000  " + bitsKey37FA213D, header{rsv: rsv1 | rsv2 | rsv3, op: opBinary, masked: true, key: rfcKey}},

	{"FIN continuation", "1 000 0000  0 0000000", header{fin: true, op: 0x0}},
	{"FIN text", "1 000 0001  0 0000000", header{fin: true, op: 0x1}},
	{"FIN binary", "1 000 0010  0 0000000", header{fin: true, op: 0x2}},
	{"FIN reserved 0x3", "1 000 0011  0 0000000", header{fin: true, op: 0x3}},
	{"FIN reserved 0x4", "1 000 0100  0 0000000", header{fin: true, op: 0x4}},
	{"FIN reserved 0x5", "1 000 0101  0 0000000", header{fin: true, op: 0x5}},
	{"FIN reserved 0x6", "1 000 0110  0 0000000", header{fin: true, op: 0x6}},
	{"FIN reserved 0x7", "1 000 0111  0 0000000", header{fin: true, op: 0x7}},
	{"FIN close", "1 000 1000  0 0000000", header{fin: true, op: 0x8}},
	{"FIN ping", "1 000 1001  0 0000000", header{fin: true, op: 0x9}},
	{"FIN pong", "1 000 1010  0 0000000", header{fin: true, op: 0xA}},
	{"FIN reserved 0xB", "1 000 1011  0 0000000", header{fin: true, op: 0xB}},
	{"FIN reserved 0xC", "1 000 1100  0 0000000", header{fin: true, op: 0xC}},
	{"FIN reserved 0xD", "1 000 1101  0 0000000", header{fin: true, op: 0xD}},
	{"FIN reserved 0xE", "1 000 1110  0 0000000", header{fin: true, op: 0xE}},
	{"FIN reserved 0xF", "1 000 1111  0 0000000", header{fin: true, op: 0xF}},
	{"FIN close masked len=2", "1 000 1000  1 0000010  " + bitsKey37FA213D, header{fin: true, op: opClose, masked: true, key: rfcKey, length: 2}},
	{"FIN ping len=125", "1 000 1001  0 1111101", header{fin: true, op: opPing, length: 125}},
	{"pong non-FIN len=126 (checkHeader refuses it)", "0 000 1010  0 1111110  " + bitsLen16Of126, header{op: opPong, length: 126}},
}

func TestHeaderVectors(t *testing.T) {
	t.Parallel()
	for _, tt := range headerVectors {
		t.Run(tt.label, func(t *testing.T) {
			t.Parallel()
			wire := bitString(t, tt.bits)

			h, n, err := parseHeader([]byte(wire + "payload"))
			if err != nil || n != len(wire) || h != tt.h {
				t.Errorf("parseHeader(%q) = %+v, %d, %v; want %+v, %d, nil", wire, h, n, err, tt.h, len(wire))
			}
			// A header cut short is not yet a header.
			for i := range len(wire) {
				if h, n, err := parseHeader([]byte(wire[:i])); n != 0 || err != nil {
					t.Errorf("parseHeader(%q) = %+v, %d, %v; want n=0, nil", wire[:i], h, n, err)
				}
			}

			r := strings.NewReader(wire + "payload")
			h, err = readHeader(r)
			if err != nil || h != tt.h {
				t.Errorf("readHeader(%q) = %+v, %v; want %+v, nil", wire, h, err, tt.h)
			}
			if r.Len() != len("payload") {
				t.Errorf("readHeader(%q) consumed %d bytes, want %d", wire, len(wire)+len("payload")-r.Len(), len(wire))
			}

			if got := appendHeader([]byte("prefix"), tt.h); string(got) != "prefix"+wire {
				t.Errorf("appendHeader(%+v) = %q, want %q", tt.h, got, "prefix"+wire)
			}
			if got := tt.h.size(); got != len(wire) {
				t.Errorf("%+v.size() = %d, want %d", tt.h, got, len(wire))
			}
		})
	}
}

// TestFrameRFCExamples decodes the frames of RFC 6455 §5.7 and encodes them back.
func TestFrameRFCExamples(t *testing.T) {
	t.Parallel()
	p256 := bytes.Repeat([]byte{0xa5}, 256)
	p64k := make([]byte, 65536)
	for i := range p64k {
		p64k[i] = byte(i * 31)
	}
	for _, tt := range []struct {
		name    string
		wire    string
		h       header
		payload string
		state   readState // a state in which the frame is acceptable
	}{
		{
			"single-frame unmasked text", "\x81\x05\x48\x65\x6c\x6c\x6f",
			header{fin: true, op: opText, length: 5}, "Hello",
			readState{client: true},
		},
		{
			"single-frame masked text", "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
			header{fin: true, op: opText, masked: true, key: rfcKey, length: 5}, "Hello",
			readState{},
		},
		{
			"fragmented unmasked text, first", "\x01\x03\x48\x65\x6c",
			header{op: opText, length: 3}, "Hel",
			readState{client: true},
		},
		{
			"fragmented unmasked text, last", "\x80\x02\x6c\x6f",
			header{fin: true, op: opContinuation, length: 2}, "lo",
			readState{client: true, inMessage: true},
		},
		{
			"unmasked ping", "\x89\x05\x48\x65\x6c\x6c\x6f",
			header{fin: true, op: opPing, length: 5}, "Hello",
			readState{client: true},
		},
		{
			"masked pong", "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
			header{fin: true, op: opPong, masked: true, key: rfcKey, length: 5}, "Hello",
			readState{},
		},
		{
			"256 bytes unmasked binary", "\x82\x7E\x01\x00" + string(p256),
			header{fin: true, op: opBinary, length: 256}, string(p256),
			readState{client: true},
		},
		{
			"64 KiB unmasked binary", "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00" + string(p64k),
			header{fin: true, op: opBinary, length: 65536}, string(p64k),
			readState{client: true},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, n, err := parseHeader([]byte(tt.wire))
			if err != nil || h != tt.h {
				t.Fatalf("parseHeader = %+v, %v; want %+v, nil", h, err, tt.h)
			}
			if err := checkHeader(h, tt.state); err != nil {
				t.Errorf("checkHeader(%+v, %+v) = %v, want nil", h, tt.state, err)
			}
			payload := []byte(tt.wire[n:])
			if int64(len(payload)) != h.length {
				t.Fatalf("payload after the header is %d bytes, header says %d", len(payload), h.length)
			}
			if h.masked {
				maskBytes(h.key, 0, payload)
			}
			if string(payload) != tt.payload {
				t.Errorf("payload = %q, want %q", trim(payload), trim([]byte(tt.payload)))
			}

			// Encode it back: the header, then the payload masked.
			frame := appendHeader(nil, tt.h)
			start := len(frame)
			frame = append(frame, tt.payload...)
			if tt.h.masked {
				maskBytes(tt.h.key, 0, frame[start:])
			}
			if string(frame) != tt.wire {
				t.Errorf("encoded frame = %q, want %q", trim(frame), trim([]byte(tt.wire)))
			}
		})
	}
}

// trim shortens a long byte string for an error message.
func trim(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q...(%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// TestFrameBoundaries encodes frames at the payload lengths where the length
// encoding changes, masked and unmasked, and reads them back through readers
// that return the bytes in small and uneven pieces.
func TestFrameBoundaries(t *testing.T) {
	t.Parallel()
	key := [4]byte{0x01, 0x23, 0xc4, 0xfe}
	for _, tt := range []struct {
		length int
		header string // the unmasked header; masked sets bit 0x80 of byte 1 and appends key
	}{
		{0, "\x82\x00"},
		{1, "\x82\x01"},
		{125, "\x82\x7d"},
		{126, "\x82\x7e\x00\x7e"},
		{127, "\x82\x7e\x00\x7f"},
		{65535, "\x82\x7e\xff\xff"},
		{65536, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"},
		{65537, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x01"},
	} {
		payload := make([]byte, tt.length)
		for i := range payload {
			payload[i] = byte(i*7 + i>>8)
		}
		for _, masked := range []bool{false, true} {
			h := header{fin: true, op: opBinary, length: int64(tt.length)}
			wantHeader := tt.header
			wire := payload
			if masked {
				h.masked, h.key = true, key
				wantHeader = tt.header[:1] + string([]byte{tt.header[1] | 0x80}) + tt.header[2:] + string(key[:])
				wire = make([]byte, len(payload))
				for i := range payload {
					wire[i] = payload[i] ^ key[i%4]
				}
			}
			want := wantHeader + string(wire)

			frame := appendHeader(nil, h)
			start := len(frame)
			frame = append(frame, payload...)
			if masked {
				if pos := maskBytes(key, 0, frame[start:]); pos != tt.length%4 {
					t.Errorf("len=%d: maskBytes returned position %d, want %d", tt.length, pos, tt.length%4)
				}
			}
			if string(frame) != want {
				t.Errorf("len=%d masked=%v: frame = %q, want %q", tt.length, masked, trim(frame), trim([]byte(want)))
				continue
			}
			if err := checkHeader(h, readState{client: !masked}); err != nil {
				t.Errorf("len=%d masked=%v: checkHeader = %v", tt.length, masked, err)
			}

			for _, rd := range []struct {
				name string
				wrap func(io.Reader) io.Reader
			}{
				{"OneByteReader", iotest.OneByteReader},
				{"HalfReader", iotest.HalfReader},
				{"DataErrReader", iotest.DataErrReader},
				{"DataErrReader(OneByteReader)", func(r io.Reader) io.Reader { return iotest.DataErrReader(iotest.OneByteReader(r)) }},
			} {
				t.Run(fmt.Sprintf("len=%d/masked=%v/%s", tt.length, masked, rd.name), func(t *testing.T) {
					t.Parallel()
					r := rd.wrap(bytes.NewReader(frame))
					got, err := readHeader(r)
					if err != nil || got != h {
						t.Fatalf("readHeader = %+v, %v; want %+v, nil", got, err, h)
					}
					p := readPayload(t, r, got)
					if !bytes.Equal(p, payload) {
						t.Fatalf("payload = %s, want %s", trim(p), trim(payload))
					}
					if h, err := readHeader(r); err != io.EOF {
						t.Fatalf("readHeader at the end = %+v, %v; want io.EOF", h, err)
					}
				})
			}
		}
	}
}

// readPayload reads the payload of h from r in pieces of uneven sizes and
// unmasks each piece as it arrives, carrying the key position.
func readPayload(t *testing.T, r io.Reader, h header) []byte {
	t.Helper()
	p := make([]byte, h.length)
	pieces := []int{1, 2, 3, 5, 8, 13, 300, 4093}
	pos := 0
	for off, i := 0, 0; off < len(p); i++ {
		end := min(off+pieces[i%len(pieces)], len(p))
		if _, err := io.ReadFull(r, p[off:end]); err != nil {
			t.Fatalf("reading payload bytes %d-%d: %v", off, end, err)
		}
		if h.masked {
			pos = maskBytes(h.key, pos, p[off:end])
		}
		off = end
	}
	if h.masked && pos != len(p)%4 {
		t.Errorf("key position after the payload = %d, want %d", pos, len(p)%4)
	}
	return p
}

// TestReadHeaderMalformed feeds readHeader headers that it must refuse:
// forbidden length encodings fail the connection with 1002, and headers cut
// short report the I/O error.
func TestReadHeaderMalformed(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	for _, tt := range []struct {
		name string
		r    io.Reader
		code StatusCode // the close code of the *ProtocolError, when there is one
		err  error      // the I/O error readHeader returns otherwise
	}{
		{"64-bit length with MSB set", strings.NewReader("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00"), StatusProtocolError, nil},
		{"64-bit length with MSB set, masked", strings.NewReader("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x05\x01\x02\x03\x04"), StatusProtocolError, nil},
		{"64-bit length of all ones", strings.NewReader("\x82\x7f\xff\xff\xff\xff\xff\xff\xff\xff"), StatusProtocolError, nil},
		{"16-bit length 0", strings.NewReader("\x82\x7e\x00\x00"), StatusProtocolError, nil},
		{"16-bit length 125", strings.NewReader("\x82\x7e\x00\x7d"), StatusProtocolError, nil},
		{"16-bit length 5, masked", strings.NewReader("\x81\xfe\x00\x05\x37\xfa\x21\x3d"), StatusProtocolError, nil},
		{"64-bit length 0", strings.NewReader("\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x00"), StatusProtocolError, nil},
		{"64-bit length 125", strings.NewReader("\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x7d"), StatusProtocolError, nil},
		{"64-bit length 126", strings.NewReader("\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x7e"), StatusProtocolError, nil},
		{"64-bit length 65535", strings.NewReader("\x82\x7f\x00\x00\x00\x00\x00\x00\xff\xff"), StatusProtocolError, nil},
		{"64-bit length 65535, masked", strings.NewReader("\x82\xff\x00\x00\x00\x00\x00\x00\xff\xff\x37\xfa\x21\x3d"), StatusProtocolError, nil},

		{"empty", strings.NewReader(""), 0, io.EOF},
		{"1 byte", strings.NewReader("\x81"), 0, io.ErrUnexpectedEOF},
		{"16-bit length cut", strings.NewReader("\x82\x7e\x01"), 0, io.ErrUnexpectedEOF},
		{"64-bit length cut", strings.NewReader("\x82\x7f\x00\x00\x00\x00\x00\x01\x00"), 0, io.ErrUnexpectedEOF},
		{"masking key missing", strings.NewReader("\x81\x85"), 0, io.ErrUnexpectedEOF},
		{"masking key cut", strings.NewReader("\x81\x85\x37\xfa\x21"), 0, io.ErrUnexpectedEOF},
		{"64-bit length, key cut", strings.NewReader("\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00\x37"), 0, io.ErrUnexpectedEOF},
		{"1 byte, one at a time", iotest.OneByteReader(strings.NewReader("\x81")), 0, io.ErrUnexpectedEOF},
		{"key cut, data with EOF", iotest.DataErrReader(strings.NewReader("\x81\x85\x37")), 0, io.ErrUnexpectedEOF},
		{"transport error at once", iotest.ErrReader(errBoom), 0, errBoom},
		{"transport error inside", io.MultiReader(strings.NewReader("\x81\x85\x37"), iotest.ErrReader(errBoom)), 0, errBoom},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := readHeader(tt.r)
			if tt.code == 0 {
				if err != tt.err {
					t.Fatalf("readHeader = %+v, %v; want error %v exactly", h, err, tt.err)
				}
				return
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != tt.code {
				t.Fatalf("readHeader = %+v, %v; want *ProtocolError with %v", h, err, tt.code)
			}
			if got := CloseStatus(err); got != tt.code {
				t.Errorf("CloseStatus = %v, want %v", got, tt.code)
			}
		})
	}
}

// TestParseHeaderMalformed checks that parseHeader, which the closing
// handshake uses on buffered bytes, refuses what readHeader refuses.
func TestParseHeaderMalformed(t *testing.T) {
	t.Parallel()
	for _, wire := range []string{
		"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00",
		"\x82\x7e\x00\x7d",
		"\x82\x7f\x00\x00\x00\x00\x00\x00\xff\xff",
	} {
		h, n, err := parseHeader([]byte(wire))
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != StatusProtocolError {
			t.Errorf("parseHeader(%q) = %+v, %d, %v; want *ProtocolError with 1002", wire, h, n, err)
		}
		if n != len(wire) {
			t.Errorf("parseHeader(%q) size = %d, want %d", wire, n, len(wire))
		}
	}
}

func TestCheckHeader(t *testing.T) {
	t.Parallel()
	type row struct {
		name string
		h    header
		s    readState // client is set by the loop below, masked to match it
		rule string    // the rule that must fire, "" when the header is valid
	}
	rows := []row{
		{"FIN text", header{fin: true, op: opText, length: 5}, readState{}, ""},
		{"FIN binary 2^63-1", header{fin: true, op: opBinary, length: math.MaxInt64}, readState{}, ""},
		{"first fragment", header{op: opBinary, length: 1}, readState{}, ""},
		{"continuation inside message", header{op: opContinuation, length: 1}, readState{inMessage: true}, ""},
		{"final continuation", header{fin: true, op: opContinuation}, readState{inMessage: true}, ""},
		{"close len=0", header{fin: true, op: opClose}, readState{}, ""},
		{"close len=125", header{fin: true, op: opClose, length: 125}, readState{}, ""},
		{"ping len=125", header{fin: true, op: opPing, length: 125}, readState{}, ""},
		{"pong len=125", header{fin: true, op: opPong, length: 125}, readState{}, ""},
		{"ping inside message", header{fin: true, op: opPing}, readState{inMessage: true}, ""},
		{"close inside message", header{fin: true, op: opClose, length: 2}, readState{inMessage: true}, ""},
		{"RSV1 text with rsvOK=RSV1", header{fin: true, rsv: rsv1, op: opText}, readState{rsvOK: rsv1}, ""},
		{"RSV1 first fragment with rsvOK=RSV1", header{rsv: rsv1, op: opBinary}, readState{rsvOK: rsv1}, ""},
		{"RSV1|RSV2 with rsvOK=RSV1|RSV2", header{fin: true, rsv: rsv1 | rsv2, op: opBinary}, readState{rsvOK: rsv1 | rsv2}, ""},
		{"RSV3 with rsvOK=all", header{fin: true, rsv: rsv3, op: opText}, readState{rsvOK: rsv1 | rsv2 | rsv3}, ""},

		{"RSV1 text", header{fin: true, rsv: rsv1, op: opText}, readState{}, ruleRSV},
		{"RSV2 text", header{fin: true, rsv: rsv2, op: opText}, readState{}, ruleRSV},
		{"RSV3 binary", header{fin: true, rsv: rsv3, op: opBinary}, readState{}, ruleRSV},
		{"RSV1-3 binary", header{fin: true, rsv: rsv1 | rsv2 | rsv3, op: opBinary}, readState{}, ruleRSV},
		{"RSV2 with rsvOK=RSV1", header{fin: true, rsv: rsv2, op: opText}, readState{rsvOK: rsv1}, ruleRSV},
		{"RSV1|RSV2 with rsvOK=RSV1", header{fin: true, rsv: rsv1 | rsv2, op: opText}, readState{rsvOK: rsv1}, ruleRSV},
		{"RSV1 continuation with rsvOK=RSV1", header{fin: true, rsv: rsv1, op: opContinuation}, readState{rsvOK: rsv1, inMessage: true}, ruleRSV},
		{"RSV1 close with rsvOK=RSV1", header{fin: true, rsv: rsv1, op: opClose}, readState{rsvOK: rsv1}, ruleRSV},
		{"RSV1 ping with rsvOK=RSV1", header{fin: true, rsv: rsv1, op: opPing}, readState{rsvOK: rsv1}, ruleRSV},
		{"RSV1 pong with rsvOK=RSV1", header{fin: true, rsv: rsv1, op: opPong}, readState{rsvOK: rsv1}, ruleRSV},
		{"RSV1 ping inside message with rsvOK=RSV1", header{fin: true, rsv: rsv1, op: opPing}, readState{rsvOK: rsv1, inMessage: true}, ruleRSV},
		{"RSV2 close", header{fin: true, rsv: rsv2, op: opClose}, readState{}, ruleRSV},

		{"fragmented close", header{op: opClose}, readState{}, ruleFragmentedControl},
		{"fragmented ping", header{op: opPing, length: 1}, readState{}, ruleFragmentedControl},
		{"fragmented pong", header{op: opPong}, readState{inMessage: true}, ruleFragmentedControl},
		{"close len=126", header{fin: true, op: opClose, length: 126}, readState{}, ruleControlLength},
		{"ping len=126", header{fin: true, op: opPing, length: 126}, readState{}, ruleControlLength},
		{"pong len=126", header{fin: true, op: opPong, length: 126}, readState{}, ruleControlLength},
		{"ping len=65536", header{fin: true, op: opPing, length: 65536}, readState{}, ruleControlLength},
		{"close len=2^63-1", header{fin: true, op: opClose, length: math.MaxInt64}, readState{}, ruleControlLength},

		{"continuation outside message", header{op: opContinuation, length: 1}, readState{}, ruleContinuation},
		{"final continuation outside message", header{fin: true, op: opContinuation}, readState{}, ruleContinuation},
		{"text inside message", header{fin: true, op: opText}, readState{inMessage: true}, ruleInterleaved},
		{"binary inside message", header{op: opBinary}, readState{inMessage: true}, ruleInterleaved},
	}
	for op := opcode(0x3); op <= 0xF; op++ {
		if op >= 0x8 && op <= 0xA {
			continue
		}
		rows = append(rows,
			row{fmt.Sprintf("reserved opcode 0x%X", byte(op)), header{fin: true, op: op}, readState{}, ruleOpcode},
			row{fmt.Sprintf("reserved opcode 0x%X inside message", byte(op)), header{fin: true, op: op}, readState{inMessage: true}, ruleOpcode},
			row{fmt.Sprintf("reserved opcode 0x%X with rsvOK", byte(op)), header{fin: true, op: op}, readState{rsvOK: rsv1 | rsv2 | rsv3}, ruleOpcode},
		)
	}
	for _, tt := range rows {
		for _, client := range []bool{false, true} {
			role := "server"
			if client {
				role = "client"
			}
			h, s := tt.h, tt.s
			s.client = client
			if !client {
				h.masked, h.key = true, rfcKey
			}
			checkHeaderResult(t, role+"/"+tt.name, h, s, tt.rule)
		}
	}

	// §5.1: the server takes only masked frames, the client only unmasked.
	for _, tt := range []struct {
		name string
		h    header
		s    readState
		rule string
	}{
		{"server, unmasked text", header{fin: true, op: opText, length: 1}, readState{}, ruleUnmasked},
		{"server, unmasked close", header{fin: true, op: opClose}, readState{}, ruleUnmasked},
		{"server, unmasked continuation", header{fin: true, op: opContinuation}, readState{inMessage: true}, ruleUnmasked},
		{"server, masked with zero key", header{fin: true, op: opText, masked: true}, readState{}, ""},
		{"client, masked text", header{fin: true, op: opText, masked: true, key: rfcKey}, readState{client: true}, ruleMasked},
		{"client, masked ping", header{fin: true, op: opPing, masked: true, key: rfcKey}, readState{client: true}, ruleMasked},
		{"client, masked with zero key", header{fin: true, op: opBinary, masked: true}, readState{client: true}, ruleMasked},
		{"client, masked continuation", header{op: opContinuation, masked: true}, readState{client: true, inMessage: true}, ruleMasked},
	} {
		checkHeaderResult(t, tt.name, tt.h, tt.s, tt.rule)
	}
}

// The rules of checkHeader, each named by the words its reason carries.
const (
	ruleRSV               = "reserved bits set"
	ruleOpcode            = "reserved opcode"
	ruleFragmentedControl = "fragmented "
	ruleControlLength     = "payload over 125 bytes"
	ruleUnmasked          = "unmasked frame from the client"
	ruleMasked            = "masked frame from the server"
	ruleContinuation      = "continuation frame outside a fragmented message"
	ruleInterleaved       = "new data frame inside a fragmented message"
)

// checkHeaderResult checks that checkHeader accepts h when rule is "", and
// otherwise fails it with 1002 for that rule.
func checkHeaderResult(t *testing.T, name string, h header, s readState, rule string) {
	t.Helper()
	err := checkHeader(h, s)
	if rule == "" {
		if err != nil {
			t.Errorf("%s: checkHeader(%+v, %+v) = %v, want nil", name, h, s, err)
		}
		return
	}
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != StatusProtocolError {
		t.Errorf("%s: checkHeader(%+v, %+v) = %v, want *ProtocolError with 1002", name, h, s, err)
		return
	}
	if !strings.Contains(pe.Reason, rule) {
		t.Errorf("%s: checkHeader failed with %q, want the rule %q", name, pe.Reason, rule)
	}
}

func BenchmarkReadHeader(b *testing.B) {
	wire := []byte("\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00\x37\xfa\x21\x3d")
	r := bytes.NewReader(wire)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(wire)
		if _, err := readHeader(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendHeader(b *testing.B) {
	h := header{fin: true, op: opBinary, masked: true, key: rfcKey, length: 65536}
	buf := make([]byte, 0, maxHeaderSize)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendHeader(buf[:0], h)
	}
}

// readHeader reads one frame header from r: the codec parses headers out
// of a buffer, and the tests read them from streams.
func readHeader(r io.Reader) (header, error) {
	var b [maxHeaderSize]byte
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return header{}, err
	}
	n := headerSize(b[1])
	if _, err := io.ReadFull(r, b[2:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return header{}, err
	}
	h, _, err := parseHeader(b[:n])
	return h, err
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
