package flatetest

import (
	"errors"
	"fmt"
	"io"
)

// ---- A reference decoder ----

// Inflater decodes raw DEFLATE (RFC 1951) with nothing but the RFC, one
// bit at a time: slow, and plain enough to check encoders and decoders
// against. It decodes a sequence of messages, each of which may refer back
// into those before it, and keeps count of what it saw.
//
// By default it also checks what an encoder of RFC 7692 messages must
// get right and compress/flate would let pass: every block is non-final,
// every Huffman code is complete (as compress/flate and zlib demand, save
// the one-code distance code of §3.2.7), and each message ends on a byte
// boundary with an empty stored block (RFC 7692 §7.2.1). With Lax set it
// decodes as far as the input allows whatever compress/flate would
// decode: see Message.
type Inflater struct {
	Window  int    // the furthest a back-reference may reach
	Lax     bool   // decode any stream as far as it goes
	Out     []byte // everything decoded so far, across messages: the history
	MaxDist int    // the longest distance seen
	Matched int    // bytes decoded from back-references
	Blocks  [3]int // blocks seen, by type: stored, fixed, dynamic
	Max     int    // with Lax, stop once a message decodes to more (0: no limit)
	// Cut is set by a Lax Message whose input ran out inside a block, short
	// of a stored block's length, of a dynamic block's code lengths or of a
	// Huffman block's end code, rather than between blocks; or in which a
	// block that held data or an end code (a Huffman block, a stored block
	// of a byte or more) ended in the last 4 bytes, the tail a receiver
	// appends, which went into it.
	Cut bool

	inBlock bool // decoding a block's data, or a dynamic block's code lengths
	dataEnd int  // the bit where the last block that held data or an end code ended

	in  []byte
	bit int // position in in, in bits
}

// ErrBeyondWindow is what the error of Message wraps for a back-reference
// further back than the window.
var ErrBeyondWindow = errors.New("distance beyond the window")

// ErrMax is what Message returns when a message decodes to more than Max
// bytes.
var ErrMax = errors.New("flatetest: message longer than the most asked for")

// errInflate marks the errors of Message, carried up by a panic.
var errInflate = errors.New("flatetest: inflate")

// LengthBase and LengthExtra give the base length and extra bits of each
// length symbol less 257, DistBase and DistExtra those of each distance
// symbol (RFC 1951 §3.2.5).
var (
	LengthBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	LengthExtra = [29]int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	DistBase    = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	DistExtra   = [30]int{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// codeLengthOrder is the order of the code length code's lengths
// (RFC 1951 §3.2.7).
var codeLengthOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

func (z *Inflater) fail(err error, format string, args ...any) {
	panic(fmt.Errorf("%w: %w: "+format, append([]any{errInflate, err}, args...)...))
}

func (z *Inflater) corrupt(format string, args ...any) {
	z.fail(errors.New("corrupt input"), format, args...)
}

func (z *Inflater) bits(n int) int {
	v := 0
	for i := range n {
		if z.bit>>3 >= len(z.in) {
			if z.Lax {
				z.fail(io.ErrUnexpectedEOF, "input ends")
			}
			z.corrupt("input ends inside a block")
		}
		v |= int(z.in[z.bit>>3]>>(z.bit&7)&1) << i
		z.bit++
	}
	return v
}

// huffman is a canonical code kept as counts per length and the symbols
// in code order.
type huffman struct {
	count [16]int
	syms  []int
}

func (z *Inflater) code(lens []int, name string, oneCodeOK bool) *huffman {
	h := &huffman{}
	for _, l := range lens {
		h.count[l]++
	}
	h.count[0] = 0
	left, used := 1, 0
	for l := 1; l < 16; l++ {
		left = left<<1 - h.count[l]
		used += h.count[l]
		if left < 0 {
			z.corrupt("%s code is over-subscribed", name)
		}
	}
	if left != 0 && !z.Lax && !(oneCodeOK && (used == 0 || used == 1 && h.count[1] == 1)) {
		z.corrupt("%s code is incomplete: lengths %v", name, lens)
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

func (z *Inflater) decode(h *huffman) int {
	longest := 0
	for l, c := range h.count {
		if c > 0 {
			longest = l
		}
	}
	code, first, index := 0, 0, 0
	for l := 1; l <= longest; l++ {
		code |= z.bits(1)
		if n := h.count[l]; code-first < n {
			return h.syms[index+code-first]
		}
		index += h.count[l]
		first = (first + h.count[l]) << 1
		code <<= 1
	}
	z.corrupt("no symbol for code")
	return 0
}

// Message decodes one message, p, and returns what it decodes to, adding
// it to Out.
//
// By default p is a message as its encoder made it, 00 00 ff ff
// included, checked as the type's documentation says.
//
// With Lax, p is the input as a receiver has it (the tail appended). It
// decodes up to the end of a final block and returns a nil error then;
// input that runs out first returns what it decoded with
// io.ErrUnexpectedEOF. Whatever compress/flate decodes, Lax decodes alike:
// it fails only where no decoder could go on (a code that decodes to no
// symbol or is over-subscribed, a symbol or block type no stream may use,
// a stored length that does not match its complement, code lengths that
// overrun or repeat nothing) or where the data refers back before the
// start of Out or beyond the window (wrapping ErrBeyondWindow); on those
// it returns what it decoded before them. Past Max bytes, if set, it
// stops with ErrMax.
func (z *Inflater) Message(p []byte) (msg []byte, err error) {
	z.in, z.bit = p, 0
	z.Cut, z.inBlock, z.dataEnd = false, false, 0
	start := len(z.Out)
	defer func() {
		// Where the input ended, or a final block: did a block take the
		// tail?
		tailTaken := z.Lax && z.dataEnd > 8*(len(p)-4)
		if r := recover(); r != nil {
			e, ok := r.(error)
			if !ok || !errors.Is(e, errInflate) {
				panic(r)
			}
			switch {
			case errors.Is(e, io.ErrUnexpectedEOF):
				e, z.Cut = io.ErrUnexpectedEOF, z.inBlock || tailTaken
			case errors.Is(e, ErrMax):
				e = ErrMax
			}
			msg, err = z.Out[start:], e
		} else {
			z.Cut = tailTaken
		}
	}()
	for {
		final := z.bits(1) == 1
		if final && !z.Lax {
			z.corrupt("final block")
		}
		typ := z.bits(2)
		switch typ {
		case 0:
			z.bit = (z.bit + 7) &^ 7
			n, nn := z.bits(16), z.bits(16)
			if n != nn^0xffff {
				z.corrupt("stored LEN %#x NLEN %#x", n, nn)
			}
			if z.Lax {
				z.inBlock = true
				for range n {
					z.Out = append(z.Out, byte(z.bits(8)))
				}
				z.inBlock = false
				if n > 0 {
					z.dataEnd = z.bit
				}
				z.checkMax(start)
			} else {
				if z.bit>>3+n > len(z.in) {
					z.corrupt("stored block runs past the input")
				}
				z.Out = append(z.Out, z.in[z.bit>>3:z.bit>>3+n]...)
				z.bit += 8 * n
			}
			z.Blocks[0]++
			if !z.Lax && n == 0 && z.bit == 8*len(z.in) {
				return z.Out[start:], nil
			}
		case 1:
			lens := make([]int, 288)
			for i := range lens {
				switch {
				case i < 144:
					lens[i] = 8
				case i < 256:
					lens[i] = 9
				case i < 280:
					lens[i] = 7
				default:
					lens[i] = 8
				}
			}
			dl := make([]int, 32)
			for i := range dl {
				dl[i] = 5
			}
			z.Blocks[1]++
			z.symbols(start, z.code(lens, "fixed literal", false), z.code(dl, "fixed distance", false))
		case 2:
			z.inBlock = true // until the end code, as for its data
			nlit, ndist, ncl := z.bits(5)+257, z.bits(5)+1, z.bits(4)+4
			if nlit > 286 || ndist > 30 {
				z.corrupt("HLIT %d HDIST %d", nlit, ndist)
			}
			cl := make([]int, 19)
			for _, s := range codeLengthOrder[:ncl] {
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
						z.corrupt("repeat with no previous length")
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
				z.corrupt("code lengths overrun: %d for %d", len(lens), nlit+ndist)
			}
			if lens[256] == 0 && !z.Lax {
				z.corrupt("no end-of-block code")
			}
			z.Blocks[2]++
			z.symbols(start, z.code(lens[:nlit], "literal/length", false), z.code(lens[nlit:], "distance", true))
		default:
			z.corrupt("block type 3")
		}
		if final {
			return z.Out[start:], nil
		}
	}
}

// checkMax stops a Lax message that grew past Max.
func (z *Inflater) checkMax(start int) {
	if z.Max > 0 && len(z.Out)-start > z.Max {
		z.fail(ErrMax, "%d bytes", len(z.Out)-start)
	}
}

func (z *Inflater) symbols(start int, lit, dist *huffman) {
	z.inBlock = true // until the end code; a panic leaves it set
	for {
		z.checkMax(start)
		s := z.decode(lit)
		switch {
		case s < 256:
			z.Out = append(z.Out, byte(s))
			continue
		case s == 256:
			z.inBlock, z.dataEnd = false, z.bit
			return
		case s > 285:
			z.corrupt("length symbol %d", s)
		}
		s -= 257
		n := LengthBase[s] + z.bits(LengthExtra[s])
		if len(dist.syms) == 0 {
			z.corrupt("match in a block without distance codes")
		}
		ds := z.decode(dist)
		if ds > 29 {
			z.corrupt("distance symbol %d", ds)
		}
		d := DistBase[ds] + z.bits(DistExtra[ds])
		if d > z.Window {
			z.fail(ErrBeyondWindow, "distance %d beyond the window of %d", d, z.Window)
		}
		if d > len(z.Out) {
			z.corrupt("distance %d before the start of the stream (%d bytes)", d, len(z.Out))
		}
		z.MaxDist = max(z.MaxDist, d)
		z.Matched += n
		for range n {
			z.Out = append(z.Out, z.Out[len(z.Out)-d])
		}
	}
}
