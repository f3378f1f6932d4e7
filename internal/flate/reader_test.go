package flate

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// msgSource yields one message at a time, as a connection's reader does:
// the message's bytes, FlushTail after them if tail is set (RFC 7692
// §7.2.2 has the receiver put back what the sender stripped), then io.EOF,
// in pieces of at most chunk bytes (0: no limit). With pend, each piece
// of the message comes after a Read that has none (ErrInputPending); with
// pause as well, the reader pauses there (readStream).
type msgSource struct {
	msg   []byte
	chunk func() int
	pend  bool
	pause bool
	owed  bool // the last Read had no input at hand: the next has
}

func (s *msgSource) next(msg []byte, tail bool) {
	s.msg = msg
	if tail {
		s.msg = append(bytes.Clone(msg), FlushTail...)
	}
}

func (s *msgSource) Read(p []byte) (int, error) {
	if len(s.msg) == 0 {
		return 0, io.EOF
	}
	if s.pend && !s.owed && len(p) > 0 {
		s.owed = true
		return 0, ErrInputPending
	}
	s.owed = false
	if s.chunk != nil {
		p = p[:min(len(p), s.chunk())]
	}
	n := copy(p, s.msg)
	s.msg = s.msg[n:]
	return n, nil
}

// readStream reads r until it returns an error, into buf, size() bytes a
// Read if size is not nil, all of buf otherwise (size() is at most
// len(buf)), and returns what it read and the error. ErrInputPending, and
// a short Read when the source just had no input, mean reading on.
func readStream(r *Reader, size func() int, buf []byte) ([]byte, error) {
	var out []byte
	for {
		p := buf
		if size != nil {
			p = buf[:size()]
		}
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		src, _ := r.src.(*msgSource)
		pended := src != nil && src.owed
		switch {
		case err == ErrInputPending && (n != 0 || !pended):
			return out, fmt.Errorf("Read returned %d bytes and %v, the source having had no input: %t", n, err, pended)
		case err == ErrInputPending:
			if src.pause {
				r.Pause()
				if r.d != nil {
					return out, fmt.Errorf("Pause kept the working state (%d bytes of input at hand)", r.d.iend-r.d.ip)
				}
				scribblePool()
			}
		case err != nil:
			return out, err
		case n != len(p) && !pended:
			return out, fmt.Errorf("Read returned %d bytes of %d and no error", n, len(p))
		}
	}
}

// readFull is io.ReadFull, but reads on past ErrInputPending.
func readFull(r *Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil && err != ErrInputPending {
			return n, err
		}
	}
	return n, nil
}

// errorClass sorts the errors of Reader and of compress/flate alike: nil
// after a final block, "unexpected EOF" for input that ran out, "corrupt"
// for input that is not DEFLATE.
func errorClass(err error) string {
	var ours *CorruptInputError
	var theirs stdflate.CorruptInputError
	switch {
	case err == nil || err == io.EOF:
		return "final block"
	case err == io.ErrUnexpectedEOF:
		return "unexpected EOF"
	case errors.As(err, &ours), errors.As(err, &theirs):
		return "corrupt"
	}
	return "other: " + err.Error()
}

// stdInflate decodes in with compress/flate from dict, as it would stop.
func stdInflate(in, dict []byte) ([]byte, error) {
	out, err := io.ReadAll(stdflate.NewReaderDict(bytes.NewReader(in), dict))
	if err == nil {
		err = io.EOF
	}
	return out, err
}

// TestReaderRFC7692Examples decodes the messages of RFC 7692 §7.2.3, as a
// receiver does: the tail put back after each.
func TestReaderRFC7692Examples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		takeover bool
		msgs     []string // compressed, as sent
		want     []string
	}{
		{"7.2.3.1 one fixed block", false, []string{"\xf2\x48\xcd\xc9\xc9\x07\x00"}, []string{"Hello"}},
		{"7.2.3.2 sharing the window", true, []string{"\xf2\x48\xcd\xc9\xc9\x07\x00", "\xf2\x00\x11\x00\x00"}, []string{"Hello", "Hello"}},
		{"7.2.3.3 a stored block", false, []string{"\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00"}, []string{"Hello"}},
		{"7.2.3.4 a final block", false, []string{"\xf3\x48\xcd\xc9\xc9\x07\x00\x00"}, []string{"Hello"}},
		{"7.2.3.5 two blocks", false, []string{"\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00"}, []string{"Hello"}},
		{"7.2.3.6 empty", false, []string{"\x00", "\x00"}, []string{"", ""}},
	}
	for _, tt := range tests {
		for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
			var src msgSource
			r := NewReader(&src, bits, tt.takeover)
			for i, m := range tt.msgs {
				src.next([]byte(m), true)
				got, err := readStream(r, nil, make([]byte, 100))
				wantErr := io.ErrUnexpectedEOF
				if m[0]&1 != 0 {
					wantErr = io.EOF // the final block ends the stream
				}
				if string(got) != tt.want[i] || err != wantErr {
					t.Errorf("%s, window bits %d, message %d: got %q, %v; want %q, %v", tt.name, bits, i, got, err, tt.want[i], wantErr)
				}
			}
		}
	}
}

// TestReaderMessageEnd checks what EndedInBlock and PastData say of
// messages read with the tail put back, the whole input at hand. A
// message as RFC 7692 sends it ends between blocks, at least the tail's 4
// bytes read past its last block that held data. A message cut inside a
// block runs out in it (a stored block claiming 100 bytes and carrying 3;
// the first 10 bytes of a dynamic block of zlib's, which end in its code
// lengths) or ends it with the tail, fewer bytes read past it (a stored
// block claiming 7 bytes and carrying 3; "hello world" sync flushed by
// zlib, and in a final block, each without its last 2 bytes, which the
// tail puts back as "`" and the end code).
func TestReaderMessageEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		msg     string
		want    string // what it decodes to
		inBlock bool
		past    int
	}{
		{"7.2.3.1 one fixed block", "\xf2\x48\xcd\xc9\xc9\x07\x00", "Hello", false, 4},
		{"7.2.3.3 a stored block", "\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", "Hello", false, 5},
		{"7.2.3.4 a final block", "\xf3\x48\xcd\xc9\xc9\x07\x00\x00", "Hello", false, 5},
		{"7.2.3.5 two blocks", "\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00", "Hello", false, 4},
		{"7.2.3.6 empty", "\x00", "", false, 5},
		{"nothing", "", "", false, 4},
		{"stored block run short", "\x00\x64\x00\x9b\xffabc", "abc\x00\x00\xff\xff", true, 12},
		{"dynamic block's code lengths run short", "\xec\xcf\xbb\x11\x85\x40\x0c\x43\xd1\x56", "", true, 14},
		{"stored block completed by the tail", "\x00\x07\x00\xf8\xffabc", "abc\x00\x00\xff\xff", false, 0},
		{"fixed block ended by the tail", "\xca\x48\xcd\xc9\xc9\x57\x28\xcf\x2f\xca\x49", "hello worl`", false, 2},
		{"final block ended by the tail", "\xcb\x48\xcd\xc9\xc9\x57\x28\xcf\x2f\xca\x49", "hello worl`", false, 2},
	}
	for _, tt := range tests {
		var src msgSource
		r := NewReader(&src, MaxWindowBits, false)
		src.next([]byte(tt.msg), true)
		got, err := readStream(r, nil, make([]byte, 100))
		if string(got) != tt.want || err != io.EOF && err != io.ErrUnexpectedEOF || r.EndedInBlock() != tt.inBlock || r.PastData() != tt.past {
			t.Errorf("%s: %q, %v, EndedInBlock %t, PastData %d; want %q, the end of the stream, %t, %d", tt.name, got, err, r.EndedInBlock(), r.PastData(), tt.want, tt.inBlock, tt.past)
		}
	}
}

// TestReaderRoundTrip decodes the messages of every payload, compressed
// by our Writer with every window size and by compress/flate at every
// level (with 32 KiB windows), with and without context takeover, each
// message stripped of its tail and put back as RFC 7692 has it, read in
// one Read, in small Reads and a byte at a time, from sources that hand
// out all they have, little at a time, or a byte at a time.
func TestReaderRoundTrip(t *testing.T) {
	t.Parallel()
	payloads := testPayloads()
	type compressor struct {
		name string
		bits int
		// compress returns each message's compressed form, tail included.
		compress func(msgs [][]byte, takeover bool) [][]byte
	}
	var cs []compressor
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		cs = append(cs, compressor{fmt.Sprintf("writer w%d", bits), bits, func(msgs [][]byte, takeover bool) [][]byte {
			return compressMessages(bits, takeover, msgs, nil, 0)
		}})
	}
	for _, level := range []int{stdflate.HuffmanOnly, stdflate.NoCompression, stdflate.BestSpeed, stdflate.DefaultCompression, stdflate.BestCompression} {
		cs = append(cs, compressor{fmt.Sprintf("flate level %d", level), 15, func(msgs [][]byte, takeover bool) [][]byte {
			fw, _ := stdflate.NewWriter(io.Discard, level)
			return stdflateMessages(fw, msgs, takeover)
		}})
	}
	for _, c := range cs {
		for _, takeover := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/takeover=%t", c.name, takeover), func(t *testing.T) {
				t.Parallel()
				rng := flatetest.RNG(uint64(c.bits))
				for _, pl := range payloads {
					outs := c.compress(pl.msgs, takeover)
					total := 0
					for _, m := range pl.msgs {
						total += len(m)
					}
					type mode struct {
						name  string
						size  func() int
						chunk func() int
						wrap  func(io.Reader) io.Reader
						pend  bool
					}
					modes := []mode{
						{"one read", nil, nil, nil, false},
						{"small reads", func() int { return 1 + rng.IntN(700) }, func() int { return 1 + rng.IntN(100) }, nil, false},
						{"half reader", func() int { return 1 + rng.IntN(5000) }, nil, iotest.HalfReader, false},
						{"input pending", func() int { return 1 + rng.IntN(5000) }, func() int { return 1 + rng.IntN(40) }, nil, true},
					}
					if total <= 20000 {
						modes = append(modes,
							mode{"byte reads", func() int { return 1 }, nil, iotest.OneByteReader, false},
							mode{"byte reads, input pending", func() int { return 1 + rng.IntN(100) }, func() int { return 1 }, nil, true})
					}
					for _, m := range modes {
						src := &msgSource{chunk: m.chunk, pend: m.pend}
						var rd io.Reader = src
						if m.wrap != nil {
							rd = m.wrap(src)
						}
						r := NewReader(rd, c.bits, takeover)
						for i, out := range outs {
							src.next(bytes.TrimSuffix(out, []byte(FlushTail)), true)
							got, err := readStream(r, m.size, make([]byte, 100000))
							if err != io.ErrUnexpectedEOF || !bytes.Equal(got, pl.msgs[i]) {
								t.Fatalf("%s, %s, message %d: %d bytes, %v; want %d bytes, unexpected EOF", pl.name, m.name, i, len(got), err, len(pl.msgs[i]))
							}
						}
					}
				}
			})
		}
	}
}

// bitStream writes a DEFLATE bit stream by hand, for streams no encoder
// writes.
type bitStream struct {
	b   []byte
	acc uint64
	n   uint
}

// put writes the n low bits of v, least significant first (a field).
func (s *bitStream) put(v uint64, n uint) *bitStream {
	s.acc |= v << s.n
	s.n += n
	for s.n >= 8 {
		s.b = append(s.b, byte(s.acc))
		s.acc >>= 8
		s.n -= 8
	}
	return s
}

// code writes a Huffman code of n bits, most significant first.
func (s *bitStream) code(c uint64, n uint) *bitStream {
	for i := int(n) - 1; i >= 0; i-- {
		s.put(c>>uint(i)&1, 1)
	}
	return s
}

func (s *bitStream) bytes() []byte {
	if s.n > 0 {
		return append(bytes.Clone(s.b), byte(s.acc))
	}
	return s.b
}

// fixedLit writes the fixed code of a literal/length symbol (RFC 1951
// §3.2.6).
func (s *bitStream) fixedLit(sym int) *bitStream {
	switch {
	case sym < 144:
		return s.code(uint64(0x30+sym), 8)
	case sym < 256:
		return s.code(uint64(0x190+sym-144), 9)
	case sym < 280:
		return s.code(uint64(sym-256), 7)
	}
	return s.code(uint64(0xc0+sym-280), 8)
}

// dynamicHeader writes the header of a final dynamic block whose codes
// have the lengths lit and dist, sent one by one with a code length code
// of 4-bit codes for lengths 0-15.
func (s *bitStream) dynamicHeader(lit, dist []int) *bitStream {
	s.put(1, 1).put(2, 2)
	s.put(uint64(len(lit)-257), 5).put(uint64(len(dist)-1), 5).put(19-4, 4)
	for _, sym := range codeLenOrder {
		if sym < 16 {
			s.put(4, 3)
		} else {
			s.put(0, 3)
		}
	}
	for _, l := range append(append([]int{}, lit...), dist...) {
		s.code(uint64(l), 4)
	}
	return s
}

// TestReaderCorrupt feeds streams that break one rule each and checks the
// rule that fired (a substring of the error), that the bytes before the
// fault were delivered, and that compress/flate, for the rules it
// shares, fails them too.
func TestReaderCorrupt(t *testing.T) {
	t.Parallel()
	hello := new(bitStream).put(1, 1).put(1, 2)
	for _, c := range "Hello" {
		hello.fixedLit(int(c))
	}
	// A dynamic block whose literal/length code has one code, of length
	// 1, for the end of block: a 1 bit decodes to nothing.
	oneCode := make([]int, 257)
	oneCode[256] = 1
	// A dynamic block with codes for 'a', the length 3 and the end, but
	// none for distances.
	noDist := make([]int, 258)
	noDist['a'], noDist[256], noDist[257] = 1, 2, 2
	bigStored := append([]byte{0x00, 0x2c, 0x01, 0xd3, 0xfe}, bytes.Repeat([]byte{'x'}, 300)...) // 300 bytes
	tests := []struct {
		name    string
		bits    int
		in      []byte
		out     string // delivered before the error
		err     string // "EOF", "unexpected EOF", or what a *CorruptInputError says
		stdSame bool   // compress/flate delivers the same, and fails alike
	}{
		{"block type 3", 15, []byte{0x07}, "", "invalid block type 3", true},
		{"stored NLEN", 15, []byte{0x01, 0x05, 0x00, 0xfb, 0xff}, "", "does not match its complement", true},
		{"287 literal/length codes", 15, new(bitStream).put(1, 1).put(2, 2).put(30, 5).put(0, 5).put(0, 4).bytes(), "", "287 literal/length codes, more than 286", true},
		{"31 distance codes", 15, new(bitStream).put(1, 1).put(2, 2).put(0, 5).put(30, 5).put(0, 4).bytes(), "", "31 distance codes, more than 30", true},
		{"over-subscribed code length code", 15, new(bitStream).put(1, 1).put(2, 2).put(0, 5).put(0, 5).put(0, 4).put(1, 3).put(1, 3).put(1, 3).put(0, 3).bytes(), "", "invalid code length code", true},
		{"incomplete code length code", 15, new(bitStream).put(1, 1).put(2, 2).put(0, 5).put(0, 5).put(0, 4).put(2, 3).put(2, 3).put(2, 3).put(0, 3).bytes(), "", "invalid code length code", true},
		// Lengths 1 for 16 and 0: 0 is code 0, 16 code 1.
		{"repeat with none before", 15, new(bitStream).put(1, 1).put(2, 2).put(0, 5).put(0, 5).put(0, 4).put(1, 3).put(0, 3).put(0, 3).put(1, 3).code(1, 1).put(0, 2).bytes(), "", "code length repeated with none before it", true},
		// Lengths 1 for 18 and 0: 0 is code 0, 18 code 1; 2 x 138 zeros
		// for 258 lengths.
		{"lengths overrun", 15, new(bitStream).put(1, 1).put(2, 2).put(0, 5).put(0, 5).put(0, 4).put(0, 3).put(0, 3).put(1, 3).put(1, 3).code(1, 1).put(127, 7).code(1, 1).put(127, 7).bytes(), "", "code lengths run 18 past the 258 codes", true},
		{"no such code", 15, new(bitStream).dynamicHeader(oneCode, []int{0}).code(1, 1).bytes(), "", "invalid Huffman code", true},
		{"distance code with no codes", 15, new(bitStream).dynamicHeader(noDist, []int{0}).code(0, 1).code(0b11, 2).code(0, 1).bytes(), "a", "invalid Huffman code", true},
		{"literal/length symbol 286", 15, new(bitStream).put(1, 1).put(1, 2).fixedLit('a').fixedLit(286).bytes(), "a", "invalid literal/length symbol", true},
		{"distance symbol 30", 15, new(bitStream).put(1, 1).put(1, 2).fixedLit('a').fixedLit(257).code(30, 5).bytes(), "a", "invalid distance symbol", true},
		{"distance before the start", 15, new(bitStream).put(1, 1).put(1, 2).fixedLit('a').fixedLit(257).code(1, 5).bytes(), "a", "distance 2 before the start of the output (1 bytes)", true},
		// 300 stored bytes, then a match of 3 at distance 257 (symbol 16,
		// 7 extra bits 0).
		{"distance beyond the window", 8, slices.Concat(bigStored, new(bitStream).put(1, 1).put(1, 2).fixedLit(257).code(16, 5).put(0, 7).fixedLit(256).bytes()), strings.Repeat("x", 300), "distance 257 beyond the window of 256 bytes", false},
		{"at the window", 8, slices.Concat(bigStored, new(bitStream).put(1, 1).put(1, 2).fixedLit(257).code(15, 5).put(63, 6).fixedLit(256).bytes()), strings.Repeat("x", 303), "EOF", true},
		{"cut inside a Huffman block", 15, hello.bytes()[:4], "Hel", "unexpected EOF", true},
		{"cut inside LEN", 15, []byte{0x00, 0x05}, "", "unexpected EOF", true},
		{"cut inside a stored block", 15, []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 'H', 'e'}, "He", "unexpected EOF", true},
	}
	for _, tt := range tests {
		for _, one := range []bool{false, true} {
			var src io.Reader = bytes.NewReader(tt.in)
			if one {
				src = iotest.OneByteReader(src)
			}
			r := NewReader(src, tt.bits, false)
			got, err := readStream(r, nil, make([]byte, 1000))
			var ce *CorruptInputError
			switch {
			case string(got) != tt.out:
				t.Errorf("%s: delivered %q, want %q", tt.name, got, tt.out)
			case tt.err == "EOF" && err != io.EOF, tt.err == "unexpected EOF" && err != io.ErrUnexpectedEOF:
				t.Errorf("%s: %v, want %s", tt.name, err, tt.err)
			case tt.err != "EOF" && tt.err != "unexpected EOF" && (!errors.As(err, &ce) || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "flate: ")):
				t.Errorf("%s: %v, want a *CorruptInputError saying %q", tt.name, err, tt.err)
			}
			if r.d != nil {
				t.Errorf("%s: the stream ended, and the Reader still holds its working state", tt.name)
			}
		}
		stdOut, stdErr := stdInflate(tt.in, nil)
		class := errorClass(err1(tt.err))
		switch {
		case tt.stdSame && (string(stdOut) != tt.out || errorClass(stdErr) != class):
			t.Errorf("%s: compress/flate delivered %q, %v; want %q, %s", tt.name, stdOut, stdErr, tt.out, class)
		case !tt.stdSame && errorClass(stdErr) != "final block":
			t.Errorf("%s: compress/flate (32 KiB window): %v, want it taken", tt.name, stdErr)
		}
	}
}

// err1 turns the err column of TestReaderCorrupt into an error of its
// class.
func err1(s string) error {
	switch s {
	case "EOF":
		return io.EOF
	case "unexpected EOF":
		return io.ErrUnexpectedEOF
	}
	return &CorruptInputError{Reason: s}
}

// TestReaderWindow checks the window across messages: with context
// takeover a message may refer back exactly 2^windowBits bytes into the
// one before, not one byte more; without, not at all.
func TestReaderWindow(t *testing.T) {
	t.Parallel()
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		w := 1 << bits
		first := flatetest.Random(flatetest.RNG(uint64(bits)), w+10)
		// The first message: stored blocks of all its bytes.
		var m1 []byte
		for p := first; len(p) > 0; {
			n := min(len(p), 20000)
			m1 = append(m1, 0, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
			m1 = append(m1, p[:n]...)
			p = p[n:]
		}
		// The second: a match of 3 at distance d, in a fixed block.
		match := func(d int) []byte {
			s := new(bitStream).put(0, 1).put(1, 2).fixedLit(257)
			for sym := 29; sym >= 0; sym-- {
				if base := flatetest.DistBase[sym]; base <= d {
					s.code(uint64(sym), 5).put(uint64(d-base), uint(flatetest.DistExtra[sym]))
					break
				}
			}
			return s.fixedLit(256).bytes()
		}
		tests := []struct {
			takeover bool
			dist     int
			err      string
		}{
			{true, w, ""},
			{true, w + 1, fmt.Sprintf("distance %d beyond the window of %d bytes", w+1, w)},
			{false, 1, "distance 1 before the start of the output (0 bytes)"},
		}
		for _, tt := range tests {
			if tt.dist > 32768 {
				continue // no distance code reaches it
			}
			var src msgSource
			r := NewReader(&src, bits, tt.takeover)
			src.next(m1, true)
			if got, err := readStream(r, nil, make([]byte, 1000)); err != io.ErrUnexpectedEOF || !bytes.Equal(got, first) {
				t.Fatalf("window bits %d: first message: %d bytes, %v", bits, len(got), err)
			}
			src.next(match(tt.dist), true)
			got, err := readStream(r, nil, make([]byte, 1000))
			if tt.err == "" {
				if want := first[len(first)-w:][:3]; err != io.ErrUnexpectedEOF || !bytes.Equal(got, want) {
					t.Errorf("window bits %d: match at distance %d: %q, %v; want %q", bits, tt.dist, got, err, want)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.err) || len(got) != 0 {
				t.Errorf("window bits %d, takeover %t: match at distance %d: %q, %v; want nothing and an error saying %q", bits, tt.takeover, tt.dist, got, err, tt.err)
			}
		}
	}
}

// TestReaderLikeStdlib decodes every prefix of short streams, and every
// stream with one bit flipped, and checks that the Reader delivers what
// compress/flate delivers, and fails where and as it does: corrupt input,
// or input that ran out.
func TestReaderLikeStdlib(t *testing.T) {
	t.Parallel()
	rng := flatetest.RNG(21)
	var streams [][]byte
	for _, level := range []int{stdflate.HuffmanOnly, stdflate.NoCompression, stdflate.BestSpeed, stdflate.BestCompression} {
		for _, data := range [][]byte{[]byte("Hello, Hello, Hello!"), flatetest.Text(rng, 300), flatetest.JSON(rng, 500)} {
			var b bytes.Buffer
			fw, _ := stdflate.NewWriter(&b, level)
			fw.Write(data)
			fw.Close()
			streams = append(streams, b.Bytes())
		}
	}
	streams = append(streams, compressMessages(15, false, [][]byte{flatetest.Logs(rng, 400)}, nil, 0)[0])
	check := func(name string, in []byte) {
		t.Helper()
		want, wantErr := stdInflate(in, nil)
		for _, size := range []func() int{nil, func() int { return 1 + rng.IntN(40) }} {
			r := NewReader(&msgSource{msg: in, chunk: func() int { return 1 + rng.IntN(9) }}, 15, false)
			got, err := readStream(r, size, make([]byte, 4000))
			if !bytes.Equal(got, want) || errorClass(err) != errorClass(wantErr) {
				t.Fatalf("%s: %d bytes, %v; compress/flate %d bytes, %v", name, len(got), err, len(want), wantErr)
			}
		}
	}
	for i, s := range streams {
		for n := range len(s) + 1 {
			check(fmt.Sprintf("stream %d cut to %d bytes", i, n), s[:n])
		}
		for bit := range 8 * len(s) {
			in := bytes.Clone(s)
			in[bit/8] ^= 1 << (bit % 8)
			check(fmt.Sprintf("stream %d, bit %d flipped", i, bit), in)
		}
	}
}

// readerBytes returns the bytes a Reader holds of its own, and those of
// the working state and ring it has borrowed.
func readerBytes(r *Reader) (own, borrowed int) {
	own = int(reflect.TypeFor[Reader]().Size())
	if r.ring != nil {
		if r.takeover {
			own += 24 + cap(*r.ring)
		} else {
			borrowed += cap(*r.ring)
		}
	}
	if r.d != nil {
		borrowed += int(reflect.TypeFor[decoder]().Size())
	}
	if r.paused != nil {
		borrowed += int(reflect.TypeFor[pausedRead]().Size())
	}
	return own, borrowed
}

// TestPause: a stream paused wherever its source ran out of input (in a
// dynamic block's header, in its symbols, in a stored block, in a
// fixed-code block, a match cut short by the end of p) gives its working
// state back, keeps under 1 KiB, and decodes on to the same bytes; Pause
// does nothing between streams, nor with more input at hand than a paused
// stream keeps.
func TestPause(t *testing.T) {
	msg := append(flatetest.JSON(flatetest.RNG(12), 20000), flatetest.Random(flatetest.RNG(13), 3000)...)
	msg = append(msg, bytes.Repeat([]byte("abcd"), 3000)...)
	if size := reflect.TypeFor[pausedRead]().Size(); size > 1<<10 {
		t.Errorf("a paused stream keeps %d bytes, over 1 KiB", size)
	}
	for _, level := range []int{stdflate.NoCompression, stdflate.HuffmanOnly, stdflate.BestSpeed, stdflate.BestCompression} {
		stream := stdflateMessages(must(stdflate.NewWriter(nil, level)), [][]byte{msg}, false)[0]
		for _, piece := range []int{1, 7, 300} {
			src := &msgSource{chunk: func() int { return piece }, pend: true}
			src.next(stream, false)
			r := NewReader(src, 15, false)
			var got []byte
			buf := make([]byte, 1000) // short of a match at times
			pauses, dynamic := 0, 0
			for {
				n, err := r.Read(buf)
				got = append(got, buf[:n]...)
				if err == ErrInputPending {
					if r.d.lit == &r.d.litDyn && r.d.stage == stageHuffman {
						dynamic++
					}
					r.Pause()
					if r.d != nil || r.paused == nil {
						t.Fatalf("level %d, pieces of %d: Pause kept the working state", level, piece)
					}
					scribblePool()
					pauses++
					continue
				}
				if err != nil {
					if err != io.ErrUnexpectedEOF || !bytes.Equal(got, msg) {
						t.Fatalf("level %d, pieces of %d: %d bytes, %v; want the %d bytes of the message, unexpected EOF", level, piece, len(got), err, len(msg))
					}
					break
				}
			}
			if r.d != nil || r.paused != nil {
				t.Errorf("level %d, pieces of %d: the stream ended, and the Reader still holds a working state or a paused one", level, piece)
			}
			// Every level but NoCompression writes dynamic blocks; larger
			// pieces inflate to more than p takes, and pause more rarely.
			stored := level == stdflate.NoCompression
			if pauses == 0 || stored && dynamic > 0 || !stored && piece == 1 && dynamic == 0 {
				t.Errorf("level %d, pieces of %d: %d pauses, %d in a dynamic block", level, piece, pauses, dynamic)
			}
		}
	}

	var src msgSource
	r := NewReader(&src, 15, true)
	r.Pause()
	if r.d != nil || r.paused != nil {
		t.Errorf("Pause between streams took a working state or kept one")
	}
	stream := stdflateMessages(must(stdflate.NewWriter(nil, stdflate.BestSpeed)), [][]byte{msg}, false)[0]
	src.next(stream, false)
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	if r.d == nil || r.paused != nil {
		t.Errorf("Pause with %d bytes of input at hand paused the stream", r.d.iend-r.d.ip)
	}
}

// TestResume: a paused stream that gets back the decoder it gave, its
// tables untouched, builds none; with another decoder, or the same one
// after it built other tables, it builds its block's again. Either way it
// decodes on to the same bytes.
func TestResume(t *testing.T) {
	msg := flatetest.JSON(flatetest.RNG(14), 30000)
	stream := stdflateMessages(must(stdflate.NewWriter(nil, stdflate.BestSpeed)), [][]byte{msg}, false)[0]
	for _, next := range []string{"same", "fresh", "rebuilt"} {
		src := &msgSource{chunk: func() int { return 5 }, pend: true}
		src.next(stream, false)
		r := NewReader(src, 15, false)
		var got []byte
		buf := make([]byte, 500)
		resumed := 0
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == nil {
				continue
			}
			if err != ErrInputPending {
				if err != io.ErrUnexpectedEOF || !bytes.Equal(got, msg) {
					t.Fatalf("%s decoder at each resume: %d bytes, %v; want the %d bytes of the message", next, len(got), err, len(msg))
				}
				break
			}
			if r.d.stage != stageHuffman || r.d.lit != &r.d.litDyn {
				continue
			}
			// The decoder given back stays the pool's: the test goes on
			// with a copy of it as it was given, which resume cannot tell
			// from the same one (it looks at the build of its tables).
			d := new(decoder)
			*d = *r.d
			r.Pause()
			switch next {
			case "fresh":
				d = new(decoder)
			case "rebuilt":
				// As another stream would: new tables (spoiled here,
				// to be sure they are built again).
				d.nlit, d.nlens = 257, 258
				clear(d.lens[:])
				d.lens[0], d.lens[256], d.lens[257] = 1, 1, 1
				if err := d.buildDynamic(); err != nil {
					t.Fatal(err)
				}
				d.litDyn = litTable{}
			}
			before := tableBuilds.Load()
			r.d = d
			r.resume()
			if builds := tableBuilds.Load() - before; builds != map[bool]uint64{true: 0, false: 1}[next == "same"] {
				t.Fatalf("%s decoder at a resume: %d tables built", next, builds)
			}
			resumed++
		}
		if resumed == 0 {
			t.Errorf("%s decoder: the stream never paused in a dynamic block", next)
		}
	}
}

// scribblePool spoils the tables of the working state that a paused
// stream gave back, as another stream decoding with it would: the paused
// one must not count on getting it back as it was.
func scribblePool() {
	if d, _ := decoderPool.Get().(*decoder); d != nil {
		d.built = 0 // as buildDynamic does first
		for i := range d.litDyn {
			d.litDyn[i] = 0
		}
		for i := range d.distDyn {
			d.distDyn[i] = 0
		}
		decoderPool.Put(d)
	}
}

// must returns v, failing on err; for constructors that cannot fail with
// the arguments given.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestReaderMemory checks what a Reader holds between messages: with
// context takeover its window and a few words, without it a few words
// alone; while a message is read in several Reads, the working state
// (16 KiB at most) and, without takeover, a borrowed window.
func TestReaderMemory(t *testing.T) {
	t.Parallel()
	msgs := [][]byte{flatetest.JSON(flatetest.RNG(10), 40000), flatetest.JSON(flatetest.RNG(11), 300)}
	if size := reflect.TypeFor[decoder]().Size(); size > 16<<10 {
		t.Errorf("the working state is %d bytes, more than 16 KiB", size)
	}
	const small = 48 // the Reader struct
	for _, bits := range []int{8, 10, 12, 15} {
		for _, takeover := range []bool{true, false} {
			outs := compressMessages(bits, takeover, msgs, nil, 0)
			var src msgSource
			r := NewReader(&src, bits, takeover)
			if own, borrowed := readerBytes(r); own > small || borrowed != 0 {
				t.Errorf("window bits %d: new Reader holds %d bytes and has borrowed %d", bits, own, borrowed)
			}
			for i, out := range outs {
				src.next(out, false)
				if _, err := r.Read(make([]byte, 100)); err != nil {
					t.Fatal(err)
				}
				own, borrowed := readerBytes(r)
				want := small + 24 + 1<<bits // and the ring's slice header
				wantBorrowed := int(reflect.TypeFor[decoder]().Size())
				if !takeover {
					want, wantBorrowed = small, wantBorrowed+1<<bits
				}
				if own > want || borrowed != wantBorrowed {
					t.Errorf("window bits %d, takeover %t, message %d: mid-message, the Reader holds %d bytes (want at most %d) and has borrowed %d (want %d)", bits, takeover, i, own, want, borrowed, wantBorrowed)
				}
				if _, err := io.ReadAll(r); err != io.ErrUnexpectedEOF {
					t.Fatal(err)
				}
				own, borrowed = readerBytes(r)
				want = small
				if takeover {
					want += 24 + 1<<bits
				}
				if own > want || borrowed != 0 {
					t.Errorf("window bits %d, takeover %t, message %d: between messages, the Reader holds %d bytes (want at most %d) and has borrowed %d", bits, takeover, i, own, want, borrowed)
				}
			}
		}
	}
}

// errSource returns some bytes, then an error.
type errSource struct {
	data []byte
	err  error
}

func (s *errSource) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, s.err
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

// TestReaderSource checks how a Reader uses its source: an error comes
// back as it is, after the bytes decoded before it; a source that never
// makes progress ends with io.ErrNoProgress; an empty p reads nothing;
// Reset in the middle of a stream drops it.
func TestReaderSource(t *testing.T) {
	t.Parallel()
	msg := flatetest.Text(flatetest.RNG(4), 5000)
	out := compressMessages(15, false, [][]byte{msg}, nil, 0)[0]
	errBoom := errors.New("boom")
	for _, cut := range []int{3, len(out) / 2, len(out) - 5} {
		r := NewReader(&errSource{data: out[:cut], err: errBoom}, 15, true)
		got, err := readStream(r, nil, make([]byte, 10000))
		if err != errBoom || !bytes.HasPrefix(msg, got) {
			t.Errorf("source failing after %d bytes: %d bytes, %v; want a prefix of the message, %v", cut, len(got), err, errBoom)
		}
		if r.d != nil {
			t.Errorf("source failing after %d bytes: the Reader still holds its working state", cut)
		}
	}

	r := NewReader(&errSource{}, 15, false) // 0, nil for ever
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.ErrNoProgress {
		t.Errorf("source without progress: %d, %v; want 0, io.ErrNoProgress", n, err)
	}

	var src msgSource
	r = NewReader(&src, 15, true)
	src.next(out, false)
	src.pend = true
	if n, err := r.Read(make([]byte, 100)); n != 0 || err != ErrInputPending || r.d == nil {
		t.Errorf("source with no input at hand: %d, %v, working state held %t; want 0, ErrInputPending, true", n, err, r.d != nil)
	}
	src.pend = false
	if n, err := r.Read(nil); n != 0 || err != nil || src.msg == nil || len(src.msg) != len(out) {
		t.Errorf("Read(nil): %d, %v, and %d bytes of the source read; want 0, nil, none", n, err, len(out)-len(src.msg))
	}
	if _, err := r.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	r.Reset()
	if r.d != nil || r.hlen != 0 {
		t.Errorf("Reset mid-stream kept the working state or %d bytes of history", r.hlen)
	}
	src.next(out, false)
	if got, err := readStream(r, nil, make([]byte, 10000)); err != io.ErrUnexpectedEOF || !bytes.Equal(got, msg) {
		t.Errorf("after Reset: %d bytes, %v", len(got), err)
	}
}

// TestBuildTable builds decoding tables for many codes, deep ones among
// them (made by the encoder's length-limited Huffman construction from
// exponentially spread frequencies), and checks that every code decodes
// to its symbol with its length, that the tables fit, and that
// over-subscribed and incomplete codes are refused but for a lone code of
// length 1.
func TestBuildTable(t *testing.T) {
	t.Parallel()
	rng := flatetest.RNG(17)
	var h huffScratch
	var sc tableScratch
	table := make([]uint32, litTableSize)
	for i := range 3000 {
		n, root, info, size := numLitSyms, uint(litRootBits), litInfo[:], litTableSize
		if i%2 == 1 {
			n, root, info, size = numDistSyms, distRootBits, distInfo[:], distTableSize
		}
		freq := make([]uint32, n)
		for j := range freq {
			switch i % 3 {
			case 0:
				freq[j] = uint32(1) << rng.IntN(16)
			case 1:
				if rng.IntN(4) == 0 {
					freq[j] = uint32(1 + rng.IntN(1000))
				}
			default:
				freq[j] = uint32(1 + j%7)
			}
		}
		lens := make([]uint8, n)
		h.buildLengths(freq, lens, maxCodeBits)
		used := 0
		for _, l := range lens {
			if l != 0 {
				used++
			}
		}
		for j := range table {
			table[j] = 0xdeadbeef // stale entries must all be overwritten
		}
		min, ok := buildTable(table[:size], root, lens, info, &sc)
		if !ok {
			t.Fatalf("code %d: lengths %v refused", i, lens)
		}
		codes := make([]uint32, n+2)
		assignCodes(lens, codes)
		for s, l := range lens {
			if l == 0 {
				continue
			}
			if uint(l) < min {
				t.Fatalf("code %d: symbol %d has length %d, under the minimum %d", i, s, l, min)
			}
			c := uint64(codes[s] & 0xffff)
			e := table[c&(1<<root-1)]
			if e&flagSub != 0 {
				e = table[e>>16+uint32(c>>root)&(1<<(e>>8&15)-1)]
			}
			if e&^lenMask != info[s] || e&lenMask != uint32(l) {
				t.Fatalf("code %d: symbol %d (length %d) decodes to entry %#x, want %#x", i, s, l, e, info[s]|uint32(l))
			}
		}
		if used == 1 {
			// The lone code is 0; code 1 decodes to nothing.
			if table[1]&lenMask != 0 {
				t.Fatalf("code %d: a lone code leaves entry %#x for the free half", i, table[1])
			}
		}
	}
	// Refused: over-subscribed; incomplete (but for a lone 1-bit code).
	for _, lens := range [][]uint8{{1, 1, 1}, {2, 2, 2, 3}, {1, 2}, {2}, {3, 3, 3, 3, 3, 3, 3, 0, 2}} {
		if _, ok := buildTable(table[:litTableSize], litRootBits, lens, litInfo[:len(lens)], &sc); ok {
			t.Errorf("lengths %v taken", lens)
		}
	}
	for _, lens := range [][]uint8{{1}, {0, 0, 1}, {0, 0}} {
		if _, ok := buildTable(table[:litTableSize], litRootBits, lens, litInfo[:len(lens)], &sc); !ok {
			t.Errorf("lengths %v refused", lens)
		}
	}
}

// FuzzReader decodes messages with a Reader and checks them against
// compress/flate and the reference inflater. bits picks the window
// (8 + bits%8); mode bit 0 sets context takeover, bit 1 a round trip.
// The first 15 bytes of cuts cut data into messages, each byte b making
// one of b bytes (b*b/2 in a round trip) while data lasts, the rest of
// data the last; all the bytes of cuts, in turn, set the size of each
// Read and of each read of the source.
//
// Raw (bit 1 clear): each message is input as a receiver has it, for any
// bytes. The Reader must deliver what compress/flate delivers from the
// same history (32 KiB windows) and end alike: after a final block,
// where input runs out, or on corrupt input; but where the reference
// inflater meets a distance beyond the window first, deliver the bytes
// before it and fail. It must never panic, whatever the input. Of a
// message that decodes to more than 256 KiB, that much is compared.
//
// Round trip (bit 1 set): data is cut into messages that compress/flate
// compresses (at BestSpeed, the default level, BestCompression or Huffman
// only, by mode bits 2-3) when the window is 32 KiB, and our Writer
// otherwise, each stripped of its tail and put back as RFC 7692 has it;
// the Reader must decode each exactly.
//
// Mode bit 4 has the source say, before each piece of input, that it has
// none at hand (ErrInputPending): the Reader must then resume where it
// stopped, delivering the same bytes and ending alike; with bit 5 as
// well, the Reader pauses at each (Pause), giving its working state back.
func FuzzReader(f *testing.F) {
	for _, seed := range readerSeeds() {
		f.Add(seed.bits, seed.mode, seed.cuts, seed.data)
	}
	fz := newReaderFuzz()
	f.Fuzz(func(t *testing.T, bits, mode uint8, cuts, data []byte) {
		if err := fz.run(bits, mode, cuts, data); err != nil {
			t.Fatal(err)
		}
	})
}

// readerFuzz holds what FuzzReader's inputs share, made once (inputs run
// one at a time).
type readerFuzz struct {
	fws [4]*stdflate.Writer
	fr  io.ReadCloser
	buf []byte
}

func newReaderFuzz() *readerFuzz {
	fz := &readerFuzz{fr: stdflate.NewReader(bytes.NewReader(nil)), buf: make([]byte, 1<<16)}
	for i, level := range []int{stdflate.BestSpeed, stdflate.DefaultCompression, stdflate.BestCompression, stdflate.HuffmanOnly} {
		fz.fws[i], _ = stdflate.NewWriter(io.Discard, level)
	}
	return fz
}

// run checks one input of FuzzReader, returning the first property it
// breaks.
func (fz *readerFuzz) run(bits, mode uint8, cuts, data []byte) error {
	fws, fr, buf := fz.fws, fz.fr, fz.buf
	windowBits := MinWindowBits + int(bits%8)
	takeover, roundTrip := mode&1 != 0, mode&2 != 0
	var msgs [][]byte
	for _, b := range cuts[:min(len(cuts), 15)] {
		n := int(b)
		if roundTrip {
			n = n * n / 2
		}
		n = min(n, len(data))
		msgs, data = append(msgs, data[:n]), data[n:]
	}
	msgs = append(msgs, data)
	turn := 0
	next := func() int {
		if len(cuts) == 0 {
			return 1 << 16
		}
		b := int(cuts[turn%len(cuts)])
		turn++
		if b%5 == 0 {
			return 1 << 16
		}
		return 1 + b%61
	}
	src := &msgSource{chunk: next, pend: mode&16 != 0, pause: mode&48 == 48}
	r := NewReader(src, windowBits, takeover)
	if roundTrip {
		var outs [][]byte
		if windowBits == MaxWindowBits {
			outs = stdflateMessages(fws[mode>>2&3], msgs, takeover)
		} else {
			outs = compressMessages(windowBits, takeover, msgs, nil, 0)
		}
		for i, out := range outs {
			src.next(bytes.TrimSuffix(out, []byte(FlushTail)), true)
			got, err := readStream(r, next, buf)
			if err != io.ErrUnexpectedEOF || !bytes.Equal(got, msgs[i]) {
				return fmt.Errorf("message %d: %d bytes, %v; want the %d bytes compressed", i, len(got), err, len(msgs[i]))
			}
		}
		return nil
	}
	// A bomb would take long to decode thrice: the first maxOut bytes
	// are compared.
	const maxOut = 256 << 10
	var hist []byte
	for i, m := range msgs {
		var dict []byte
		if takeover {
			dict = hist[max(0, len(hist)-1<<MaxWindowBits):]
		}
		fr.(stdflate.Resetter).Reset(bytes.NewReader(m), dict)
		want, wantErr := io.ReadAll(io.LimitReader(fr, maxOut+1))
		if wantErr == nil {
			wantErr = io.EOF
		}
		class := errorClass(wantErr)
		if len(want) > maxOut {
			want, class = want[:maxOut], "cut"
		}
		if windowBits < MaxWindowBits {
			z := &flatetest.Inflater{Window: 1 << windowBits, Lax: true, Out: bytes.Clone(dict), Max: maxOut}
			if lax, err := z.Message(m); errors.Is(err, flatetest.ErrBeyondWindow) && len(lax) <= len(want) {
				want, class = want[:len(lax)], "corrupt"
			}
		}
		src.next(m, false)
		var got []byte
		var err error
		if class == "cut" {
			got = make([]byte, maxOut)
			_, err = readFull(r, got)
			r.Reset()
		} else {
			got, err = readStream(r, next, buf)
		}
		if !bytes.Equal(got, want) || class != "cut" && errorClass(err) != class {
			return fmt.Errorf("message %d: %d bytes, %v; want %d bytes, %s", i, len(got), err, len(want), class)
		}
		if r.d != nil {
			return fmt.Errorf("message %d ended; the Reader still holds its working state", i)
		}
		if class == "corrupt" || class == "cut" {
			return nil
		}
		hist = append(hist, got...)
	}
	return nil
}

type readerSeed struct {
	bits, mode uint8
	cuts, data []byte
}

// stdflateMessages compresses msgs with fw, reset first, as a peer using
// compress/flate sends them: each ends with a sync flush, in one stream
// with context takeover, in a stream of its own without.
func stdflateMessages(fw *stdflate.Writer, msgs [][]byte, takeover bool) [][]byte {
	var b bytes.Buffer
	fw.Reset(&b)
	outs := make([][]byte, 0, len(msgs))
	for _, m := range msgs {
		b.Reset()
		if !takeover {
			fw.Reset(&b)
		}
		fw.Write(m)
		fw.Flush()
		outs = append(outs, bytes.Clone(b.Bytes()))
	}
	return outs
}

// readerSeeds are FuzzReader's seeds made in code (those written by hand
// are files in testdata/fuzz/FuzzReader: RFC 7692's messages and streams
// that break one rule each): streams of compress/flate whole, cut short
// and with a bit flipped, and round trips of each kind of data at several
// windows.
func readerSeeds() []readerSeed {
	rng := flatetest.RNG(31)
	var seeds []readerSeed
	for _, level := range []int{stdflate.HuffmanOnly, stdflate.BestSpeed, stdflate.BestCompression} {
		var b bytes.Buffer
		fw, _ := stdflate.NewWriter(&b, level)
		fw.Write(flatetest.Text(rng, 2000))
		fw.Flush()
		fw.Write(flatetest.JSON(rng, 2000))
		fw.Close()
		s := b.Bytes()
		seeds = append(seeds,
			readerSeed{7, 0, nil, s},
			readerSeed{7, 1, []byte{200, 3}, s},
			readerSeed{7, 0, nil, s[:len(s)/2]},
			readerSeed{2, 0, []byte{100}, s},
			readerSeed{7, 1 | 16, []byte{3, 1, 20}, s}, // input pending before each piece
			readerSeed{7, 1 | 48, []byte{3, 1, 20}, s}, // and a pause there
		)
		flipped := bytes.Clone(s)
		flipped[len(s)/3] ^= 0x10
		seeds = append(seeds, readerSeed{7, 0, []byte{7}, flipped})
	}
	for _, bits := range []uint8{0, 2, 4, 7} {
		seeds = append(seeds,
			readerSeed{bits, 3, []byte{60, 0, 90}, flatetest.Text(rng, 6000)},
			readerSeed{bits, 2, []byte{30, 30, 30}, flatetest.JSON(rng, 3000)},
			readerSeed{bits, 3 | 4, []byte{10, 70}, flatetest.Random(rng, 3000)},
			readerSeed{bits, 3 | 8, []byte{90}, bytes.Repeat([]byte("abc"), 2000)},
			readerSeed{bits, 3 | 16, []byte{1, 7, 2}, flatetest.Text(rng, 3000)},
			readerSeed{bits, 3 | 48, []byte{1, 7, 2}, flatetest.Text(rng, 3000)},
		)
	}
	// Back-references across the whole of the largest window.
	seeds = append(seeds, readerSeed{7, 3, []byte{255, 255}, flatetest.Text(rng, 70000)})
	return seeds
}
