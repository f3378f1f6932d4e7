package flate

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// testInflater decodes the output of a Writer with nothing but RFC 1951,
// and checks what compress/flate would let pass: every back-reference lies
// within the window the Writer was given, every block is non-final, every
// Huffman code is complete (as both compress/flate and zlib demand, save the
// one-code distance tree of §3.2.7), and each message ends on a byte
// boundary with an empty stored block (RFC 7692 §7.2.1).
type testInflater struct {
	window  int
	out     []byte // everything decoded so far, across messages
	maxDist int    // the longest distance seen
	matched int    // bytes decoded from back-references
	blocks  [3]int // blocks seen, by type: stored, fixed, dynamic

	in  []byte
	bit int // position in in, in bits
}

var errTestInflate = errors.New("test inflater")

func (z *testInflater) fail(format string, args ...any) {
	panic(fmt.Errorf("%w: "+format, append([]any{errTestInflate}, args...)...))
}

func (z *testInflater) bits(n int) int {
	v := 0
	for i := range n {
		if z.bit>>3 >= len(z.in) {
			z.fail("input ends inside a block")
		}
		v |= int(z.in[z.bit>>3]>>(z.bit&7)&1) << i
		z.bit++
	}
	return v
}

// testHuffman is a canonical code kept as counts per length and the
// symbols in code order.
type testHuffman struct {
	count [16]int
	syms  []int
}

func (z *testInflater) code(lens []int, name string, oneCodeOK bool) *testHuffman {
	h := &testHuffman{}
	for _, l := range lens {
		h.count[l]++
	}
	h.count[0] = 0
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - h.count[l]
		if left < 0 {
			z.fail("%s code is over-subscribed", name)
		}
	}
	used := len(lens) - func() int {
		n := 0
		for _, l := range lens {
			if l == 0 {
				n++
			}
		}
		return n
	}()
	if left != 0 && !(oneCodeOK && (used == 0 || used == 1 && h.count[1] == 1)) {
		z.fail("%s code is incomplete: lengths %v", name, lens)
	}
	for l := 1; l < 16; l++ {
		for s, sl := range lens {
			if sl == l {
				h.syms = append(h.syms, s)
			}
		}
	}
	return h
}

func (z *testInflater) decode(h *testHuffman) int {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		code |= z.bits(1)
		if n := h.count[l]; code-first < n {
			return h.syms[index+code-first]
		}
		index += h.count[l]
		first = (first + h.count[l]) << 1
		code <<= 1
	}
	z.fail("no symbol for code")
	return 0
}

// message decodes one message's compressed bytes, 00 00 ff ff included,
// and returns what it decodes to.
func (z *testInflater) message(p []byte) (msg []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(error)
			if !ok || !errors.Is(e, errTestInflate) {
				panic(r)
			}
			err = e
		}
	}()
	z.in, z.bit = p, 0
	start := len(z.out)
	for {
		if z.bits(1) == 1 {
			z.fail("final block")
		}
		typ := z.bits(2)
		switch typ {
		case 0:
			z.bit = (z.bit + 7) &^ 7
			n, nn := z.bits(16), z.bits(16)
			if n != nn^0xffff {
				z.fail("stored LEN %#x NLEN %#x", n, nn)
			}
			if z.bit>>3+n > len(z.in) {
				z.fail("stored block runs past the input")
			}
			z.out = append(z.out, z.in[z.bit>>3:z.bit>>3+n]...)
			z.bit += 8 * n
			z.blocks[0]++
			if n == 0 && z.bit == 8*len(z.in) {
				return z.out[start:], nil
			}
			continue
		case 1:
			lens := make([]int, 288)
			for i := range lens {
				lens[i] = int(fixedLitLen(i))
			}
			lens[286], lens[287] = 8, 8
			dl := make([]int, 30)
			for i := range dl {
				dl[i] = 5
			}
			z.blocks[1]++
			z.symbols(z.code(lens, "fixed literal", false), z.code(append(dl, 5, 5), "fixed distance", false))
		case 2:
			nlit, ndist, ncl := z.bits(5)+257, z.bits(5)+1, z.bits(4)+4
			if nlit > 286 || ndist > 30 {
				z.fail("HLIT %d HDIST %d", nlit, ndist)
			}
			cl := make([]int, 19)
			for _, s := range codeLenOrder[:ncl] {
				cl[s] = z.bits(3)
			}
			clh := z.code(cl, "code length", false)
			var lens []int
			for len(lens) < nlit+ndist {
				s := z.decode(clh)
				switch {
				case s < 16:
					lens = append(lens, s)
				case s == 16:
					if len(lens) == 0 {
						z.fail("repeat with no previous length")
					}
					prev := lens[len(lens)-1]
					for range 3 + z.bits(2) {
						lens = append(lens, prev)
					}
				case s == 17:
					lens = append(lens, make([]int, 3+z.bits(3))...)
				default:
					lens = append(lens, make([]int, 11+z.bits(7))...)
				}
			}
			if len(lens) != nlit+ndist {
				z.fail("code lengths overrun: %d for %d", len(lens), nlit+ndist)
			}
			if lens[256] == 0 {
				z.fail("no end-of-block code")
			}
			z.blocks[2]++
			z.symbols(z.code(lens[:nlit], "literal/length", false), z.code(lens[nlit:], "distance", true))
		default:
			z.fail("block type 3")
		}
	}
}

var testLenBase = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
var testLenExtra = [29]int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
var testDistBase = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
var testDistExtra = [30]int{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

func (z *testInflater) symbols(lit, dist *testHuffman) {
	for {
		s := z.decode(lit)
		switch {
		case s < 256:
			z.out = append(z.out, byte(s))
			continue
		case s == 256:
			return
		case s > 285:
			z.fail("length symbol %d", s)
		}
		s -= 257
		n := testLenBase[s] + z.bits(testLenExtra[s])
		if len(dist.syms) == 0 {
			z.fail("match in a block without distance codes")
		}
		ds := z.decode(dist)
		if ds > 29 {
			z.fail("distance symbol %d", ds)
		}
		d := testDistBase[ds] + z.bits(testDistExtra[ds])
		if d > z.window {
			z.fail("distance %d beyond the window of %d", d, z.window)
		}
		if d > len(z.out) {
			z.fail("distance %d before the start of the stream (%d bytes)", d, len(z.out))
		}
		z.maxDist = max(z.maxDist, d)
		z.matched += n
		for range n {
			z.out = append(z.out, z.out[len(z.out)-d])
		}
	}
}

// TestCheckingInflater checks that the checking inflater catches what it
// is there to catch, on streams from compress/flate: a distance beyond the
// window, a final block, a message cut short.
func TestCheckingInflater(t *testing.T) {
	t.Parallel()
	unit := flatetest.Random(flatetest.RNG(12), 300)
	data := bytes.Repeat(unit, 10)
	stream := func(final bool) []byte {
		var b bytes.Buffer
		w, _ := stdflate.NewWriter(&b, stdflate.BestSpeed)
		w.Write(data)
		if final {
			w.Close()
		} else {
			w.Flush()
		}
		return b.Bytes()
	}
	tests := []struct {
		name   string
		window int
		in     []byte
		want   string // in the error; "" for none
	}{
		{"in window", 32768, stream(false), ""},
		{"beyond window", 256, stream(false), "beyond the window of 256"},
		{"final block", 32768, stream(true), "final block"},
		{"cut short", 32768, stream(false)[:100], "input ends inside a block"},
	}
	for _, tt := range tests {
		z := &testInflater{window: tt.window}
		got, err := z.message(tt.in)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want == "" && !bytes.Equal(got, data):
			t.Errorf("%s: decoded %d bytes, not the input", tt.name, len(got))
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.want)
		}
	}
}
