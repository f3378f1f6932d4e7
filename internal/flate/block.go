package flate

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// This file writes one block: it counts the symbols, picks the smallest of
// the three block forms (RFC 1951 §3.2.3) and writes the bit stream.

// Symbols of the literal/length alphabet in use (RFC 1951 §3.2.5), the
// distance alphabet, and the code length alphabet (§3.2.7).
const (
	numLitSyms     = 286
	numDistSyms    = 30
	numCodeLenSyms = 19
	endOfBlock     = 256

	maxCodeBits    = 15 // longest literal/length or distance code
	maxCodeLenBits = 7  // longest code length code
)

// codeLenOrder is the order in which the lengths of the code length
// code are sent (RFC 1951 §3.2.7).
var codeLenOrder = [numCodeLenSyms]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// lengthCode returns the symbol (less 257) and extra bit count that code
// a match length (RFC 1951 §3.2.5); v is the length less 3. The extra bits
// are the low bits of v.
func lengthCode(v uint) (code, extra uint) {
	c := lengthCodes[uint8(v)]
	return uint(c & 31), uint(c >> 5)
}

// lengthCodes holds, for each length less 3, its symbol less 257 in the
// low 5 bits and its extra bit count above: a lookup costs less than the
// branches that length 258 and the short lengths would take.
var lengthCodes = func() (t [256]uint8) {
	for i := range t {
		v := uint(i)
		code, extra := v, uint(0)
		switch {
		case v == 255: // length 258 has a symbol of its own
			code = 28
		case v >= 8:
			// Each count of extra bits serves four symbols; the two
			// bits of v after its leading one pick among them.
			extra = uint(bits.Len(v)) - 3
			code = 4*extra + v>>extra
		}
		t[i] = uint8(code | extra<<5)
	}
	return t
}()

// distCode returns the symbol and extra bit count that code a distance;
// v is the distance less 1. The extra bits are the low bits of v.
//
// Past the first four, each count of extra bits serves two symbols, and
// the bit after the leading one of v picks between them: the symbol is
// 2*extra plus v's top two bits. Or-ing 3 into v makes the same formula
// give v itself for v < 4, without a branch.
func distCode(v uint) (code, extra uint) {
	extra = uint(bits.Len(v|3)) - 2
	return 2*extra + v>>extra, extra
}

// writeBlock writes the pending input, parsed into sequences, as one
// block in the smallest of the three forms.
func (w *Writer) writeBlock(dst []byte) []byte {
	h := &w.sc.huff
	in := w.buf[w.start:]
	seqs := w.sc.seqs

	// Count symbols, and the extra bits that every Huffman form spends.
	clear(h.litFreq[:])
	clear(h.distFreq[:])
	extra := 0
	p := 0
	for _, q := range seqs {
		for _, c := range in[p : p+int(q.lit)] {
			h.litFreq[c]++
		}
		p += int(q.lit)
		if q.length == 0 {
			continue
		}
		lc, le := lengthCode(uint(q.length) - 3)
		dc, de := distCode(uint(q.dist) - 1)
		h.litFreq[257+lc]++
		h.distFreq[dc]++
		extra += int(le + de)
		p += int(q.length)
	}
	h.litFreq[endOfBlock] = 1

	numLit := numLitSyms
	for h.litFreq[numLit-1] == 0 {
		numLit--
	}
	numDist := numDistSyms
	for numDist > 1 && h.distFreq[numDist-1] == 0 {
		numDist--
	}

	// Dynamic codes, with the header that describes them.
	h.buildLengths(h.litFreq[:numLit], h.litLen[:numLit], maxCodeBits)
	h.buildLengths(h.distFreq[:numDist], h.distLen[:numDist], maxCodeBits)
	h.runLengths(numLit, numDist)
	h.buildLengths(h.clFreq[:], h.clLen[:], maxCodeLenBits)
	numCL := numCodeLenSyms
	for numCL > 4 && h.clLen[codeLenOrder[numCL-1]] == 0 {
		numCL--
	}
	dynBits := 3 + 5 + 5 + 4 + 3*numCL + extra +
		int(h.clFreq[16])*2 + int(h.clFreq[17])*3 + int(h.clFreq[18])*7
	for i, f := range h.clFreq {
		dynBits += int(f) * int(h.clLen[i])
	}
	for i, f := range h.litFreq[:numLit] {
		dynBits += int(f) * int(h.litLen[i])
	}
	for i, f := range h.distFreq[:numDist] {
		dynBits += int(f) * int(h.distLen[i])
	}
	lf := &h.litFreq
	fixedBits := 3 + extra + 8*sumFreq(lf[:144]) + 9*sumFreq(lf[144:256]) +
		7*sumFreq(lf[256:280]) + 8*sumFreq(lf[280:]) + 5*sumFreq(h.distFreq[:])

	// Stored: a 3-bit header, padding to a byte, LEN and NLEN, the bytes.
	storedBits := 3 + (-int(w.nbits+3) & 7) + 32 + 8*len(in)

	bw := bitWriter{bits: w.bits, nbits: w.nbits}
	litCode, distCode := &h.litCode, &h.distCode
	switch {
	case storedBits <= dynBits && storedBits <= fixedBits:
		bw.begin(dst, storedBits)
		bw.put(0, 3)
		bw.alignByte()
		bw.out = binary.LittleEndian.AppendUint16(bw.out, uint16(len(in)))
		bw.out = binary.LittleEndian.AppendUint16(bw.out, ^uint16(len(in)))
		bw.out = append(bw.out, in...)
		return bw.end(w)
	case fixedBits <= dynBits:
		bw.begin(dst, fixedBits)
		bw.put(1<<1, 3)
		litCode, distCode = &fixedLit, &fixedDist
	default:
		bw.begin(dst, dynBits)
		bw.put(2<<1, 3)
		assignCodes(h.clLen[:], h.clCode[:])
		assignCodes(h.litLen[:numLit], h.litCode[:numLit])
		assignCodes(h.distLen[:numDist], h.distCode[:numDist])
		bw.put(uint64(numLit-257), 5)
		bw.put(uint64(numDist-1), 5)
		bw.put(uint64(numCL-4), 4)
		for _, s := range codeLenOrder[:numCL] {
			bw.put(uint64(h.clLen[s]), 3)
		}
		for _, cs := range h.clSyms {
			c := h.clCode[cs&0xff]
			bw.put(uint64(c&0xffff), uint(c>>16))
			switch cs & 0xff {
			case 16:
				bw.put(uint64(cs>>8), 2)
			case 17:
				bw.put(uint64(cs>>8), 3)
			case 18:
				bw.put(uint64(cs>>8), 7)
			}
		}
	}
	bw.writeSeqs(in, seqs, litCode, distCode)
	c := litCode[endOfBlock]
	bw.put(uint64(c&0xffff), uint(c>>16))
	return bw.end(w)
}

func sumFreq(f []uint32) int {
	n := 0
	for _, v := range f {
		n += int(v)
	}
	return n
}

// fixedLit and fixedDist are the fixed codes of RFC 1951 §3.2.6, packed
// as assignCodes packs them.
var fixedLit, fixedDist = func() (lit [numLitSyms + 2]uint32, dist [numDistSyms + 2]uint32) {
	var litLen [numLitSyms + 2]uint8
	for i := range litLen {
		litLen[i] = fixedLitLen(i)
	}
	distLen := [numDistSyms + 2]uint8{}
	for i := range distLen {
		distLen[i] = 5
	}
	assignCodes(litLen[:], lit[:])
	assignCodes(distLen[:], dist[:])
	return lit, dist
}()

// fixedLitLen is the length of the fixed code of a literal/length symbol
// (RFC 1951 §3.2.6).
func fixedLitLen(sym int) uint8 {
	switch {
	case sym < 144:
		return 8
	case sym < 256:
		return 9
	case sym < 280:
		return 7
	}
	return 8
}

// bitWriter appends a stream of bits, least significant first, to out.
// Between calls bits holds nbits < 32 bits not yet in out. The capacity of
// out is made large enough up front (begin), so the hot loop can store 8
// bytes at a time without checking.
type bitWriter struct {
	out   []byte
	bits  uint64
	nbits uint
}

// begin sets out to dst grown for a block of size bits, plus slack for
// the 8-byte stores.
func (bw *bitWriter) begin(dst []byte, size int) {
	bw.out = slices.Grow(dst, size/8+16)
}

// put appends the low n bits of v; n is at most 32.
func (bw *bitWriter) put(v uint64, n uint) {
	bw.bits |= v << bw.nbits
	bw.nbits += n
	if bw.nbits >= 32 {
		bw.out = binary.LittleEndian.AppendUint32(bw.out, uint32(bw.bits))
		bw.bits >>= 32
		bw.nbits -= 32
	}
}

// alignByte pads the output with zero bits to a byte boundary and writes
// out every whole byte.
func (bw *bitWriter) alignByte() {
	for bw.nbits > 0 {
		bw.out = append(bw.out, byte(bw.bits))
		bw.bits >>= 8
		bw.nbits -= min(bw.nbits, 8)
	}
	bw.bits = 0
}

// end writes out the whole bytes, leaves the rest (< 8 bits) with w, and
// returns the output.
func (bw *bitWriter) end(w *Writer) []byte {
	for bw.nbits >= 8 {
		bw.out = append(bw.out, byte(bw.bits))
		bw.bits >>= 8
		bw.nbits -= 8
	}
	w.bits, w.nbits = bw.bits, bw.nbits
	return bw.out
}

// writeSeqs writes the literals and matches of a block with the given
// codes. It is the hot loop of the encoder: the bit buffer lives in locals,
// and whole bytes go out 8 at a time into the capacity begin reserved.
func (bw *bitWriter) writeSeqs(in []byte, seqs []lzSeq, lit *[numLitSyms + 2]uint32, dist *[numDistSyms + 2]uint32) {
	out := bw.out[:cap(bw.out)]
	n := len(bw.out)
	acc, nb := bw.bits, bw.nbits
	p := 0
	for _, q := range seqs {
		// Two literals at a time: with fewer than 32 bits pending, two
		// codes of at most 15 bits fit.
		if nb >= 32 {
			binary.LittleEndian.PutUint32(out[n:], uint32(acc))
			n += 4
			acc >>= 32
			nb -= 32
		}
		lits := in[p : p+int(q.lit)]
		for ; len(lits) >= 2; lits = lits[2:] {
			e0, e1 := lit[lits[0]], lit[lits[1]]
			acc |= uint64(e0&0xffff) << nb
			nb += uint(e0 >> 16)
			acc |= uint64(e1&0xffff) << nb
			nb += uint(e1 >> 16)
			if nb >= 32 {
				binary.LittleEndian.PutUint32(out[n:], uint32(acc))
				n += 4
				acc >>= 32
				nb -= 32
			}
		}
		if len(lits) > 0 {
			e := lit[lits[0]]
			acc |= uint64(e&0xffff) << nb
			nb += uint(e >> 16)
		}
		p += int(q.lit)
		if q.length == 0 {
			continue
		}
		p += int(q.length)
		// At most 15+5+15+13 bits follow: first drain to under 8.
		binary.LittleEndian.PutUint64(out[n:], acc)
		k := nb >> 3
		n += int(k)
		acc >>= k * 8
		nb &= 7

		v := uint(q.length) - 3
		lc, le := lengthCode(v)
		e := lit[257+lc]
		acc |= uint64(e&0xffff) << nb
		nb += uint(e >> 16)
		acc |= uint64(v&(1<<le-1)) << nb
		nb += le

		v = uint(q.dist) - 1
		dc, de := distCode(v)
		e = dist[dc]
		acc |= uint64(e&0xffff) << nb
		nb += uint(e >> 16)
		acc |= uint64(v&(1<<de-1)) << nb
		nb += de
	}
	// Leave fewer than 32 bits pending, as put expects.
	binary.LittleEndian.PutUint64(out[n:], acc)
	k := nb >> 3
	n += int(k)
	acc >>= k * 8
	nb &= 7
	bw.out = out[:n]
	bw.bits, bw.nbits = acc, nb
}
