package websocket

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"sync"
)

// This file holds the compressing half of permessage-deflate (RFC 7692): a
// DEFLATE encoder (RFC 1951) whose LZ77 window the peer may limit to
// 2^8..2^15 bytes with server_max_window_bits or client_max_window_bits
// (RFC 7692 §7.1.2). compress/flate always reaches back 32 KiB, so it
// cannot honour a smaller limit; inflating stays with compress/flate.
//
// Matching: one hash table of stream offsets, indexed by a multiplicative
// hash of the next 4 bytes, one entry per slot, the newest position
// winning. A candidate is used only when it lies inside the history we
// still hold and at most 2^windowBits bytes back, and its 4 bytes are equal;
// the match is then grown backwards over pending literals and forwards up
// to 258 bytes, and the positions it covers enter the table too. After a
// run of misses the scan steps over more and more bytes (up to 16 at a
// time), so incompressible input costs little.
//
// Blocks: each block covers at most deflateBlockSize bytes of input. Its
// matches are kept as sequences (literal count, match length, distance),
// counted into histograms, and given Huffman codes limited to 15 bits; the
// block is then written in whichever of the three forms is smallest:
// dynamic codes, the fixed codes of RFC 1951 §3.2.6, or stored bytes.
//
// Memory: while a message is being written the deflater borrows a scratch
// from a pool: the input buffer (history plus one block of input), the hash
// table, the sequences and the Huffman tables. idle gives it back and keeps
// a copy of the last 2^windowBits bytes of history, which is what context
// takeover needs. The next write takes a scratch again: if it is the
// deflater's own, untouched since, it goes on as if never idle; otherwise
// the history is copied in and indexed anew. The output is valid either
// way, but which way it went can change it.

const (
	deflateMinWindowBits = 8
	deflateMaxWindowBits = 15

	// deflateBlockSize is the most input one block covers. Larger blocks
	// spread the cost of a dynamic Huffman header thinner; smaller ones
	// follow changes in the data and keep the scratch small.
	deflateBlockSize = 32 << 10

	deflateMinMatch  = 4
	deflateMaxMatch  = 258
	deflateMaxStored = 1<<16 - 1 // longest stored block (LEN is 16 bits)

	// A scratch that must be rebuilt gets the positions of the last
	// deflateIndexTail bytes of history, and every deflateIndexStride-th
	// before them, in its hash table.
	deflateIndexTail   = 8 << 10
	deflateIndexStride = 8

	// deflateSkipLog sets how fast the scan speeds up over input without
	// matches: one extra byte per step after every 2^deflateSkipLog bytes
	// since the last match, up to steps of deflateMaxSkip bytes. The cap
	// keeps enough positions of incompressible data in the hash table for
	// a later copy of it to be found.
	deflateSkipLog = 5
	deflateMaxSkip = 16

	// Symbols of the literal/length alphabet in use (RFC 1951 §3.2.5), the
	// distance alphabet, and the code length alphabet (§3.2.7).
	deflateNumLit      = 286
	deflateNumDist     = 30
	deflateNumCodeLens = 19
	deflateEndOfBlock  = 256

	deflateMaxCodeBits    = 15 // longest literal/length or distance code
	deflateMaxCodeLenBits = 7  // longest code length code
)

// A block must fit in one stored block, and its literal runs in an lzSeq.
var _ [deflateMaxStored - deflateBlockSize]struct{}

// deflateCodeLenOrder is the order in which the lengths of the code length
// code are sent (RFC 1951 §3.2.7).
var deflateCodeLenOrder = [deflateNumCodeLens]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// deflateScratchPools hold the rebuildable state of idle deflaters, one
// pool per window size since the buffer and the hash table scale with it.
var deflateScratchPools [deflateMaxWindowBits - deflateMinWindowBits + 1]sync.Pool

// A deflater compresses the messages of one direction of a connection into
// one raw DEFLATE stream of non-final blocks, each message ending with a
// sync flush. It never refers further back than 2^windowBits bytes.
//
// Use: write (any number of times), then flush, for each message; reset
// between messages when there is no context takeover; idle when the
// connection goes quiet. write and flush take back what idle gave away, so
// there is no separate wake step to forget. A deflater is not safe for
// concurrent use.
type deflater struct {
	window    int  // 2^windowBits: the furthest a back-reference may reach; immutable
	windowIdx int  // windowBits - deflateMinWindowBits, the pool index; immutable
	hashShift uint // 32 - log2 of the hash table size; immutable

	// sc is the borrowed scratch, nil while idle.
	sc *deflateScratch
	// buf is sc.buf[:end]: buf[lo:start] is history that matches may refer
	// to, buf[start:] is input not yet compressed. Only while active.
	buf       []byte
	lo, start int
	// base is the stream offset of buf[0], as recorded in the hash table.
	// It wraps around; see findMatches for why that is harmless.
	base uint32

	// bits holds nbits (< 8) output bits that do not fill a byte yet; they
	// lead the next block. After flush nbits is 0.
	bits  uint64
	nbits uint

	// hist holds the history while idle (at most window bytes). Its array
	// stays allocated so that going idle again does not allocate.
	hist []byte
	// id tells this deflater's scratch from others in the pool, and gen
	// counts its calls to idle: a scratch that comes back with both
	// unchanged was used by no one since.
	id  *byte
	gen uint64
}

// deflateScratch is the state of an active deflater that can be rebuilt:
// it goes back to a pool while the deflater is idle.
type deflateScratch struct {
	owner *byte    // id of the deflater that used it last
	gen   uint64   // that deflater's gen when it went idle
	buf   []byte   // capacity window + deflateBlockSize
	table []uint32 // hash of 4 bytes -> stream offset of their latest position
	seqs  []lzSeq  // the current block, as LZ77 sequences
	huff  huffScratch
}

// lzSeq is a run of lit literal bytes followed by a match of length bytes
// at distance dist; length 0 means the run ends the block without a match.
type lzSeq struct {
	lit, length, dist uint16
}

// huffScratch holds one block's histograms and codes. A code entry packs
// the bit-reversed code (ready for the LSB-first bit stream) in the low 16
// bits and its length above.
type huffScratch struct {
	litFreq  [deflateNumLit]uint32
	distFreq [deflateNumDist]uint32
	clFreq   [deflateNumCodeLens]uint32
	// The code arrays have room for the two literal/length and two
	// distance symbols that only the fixed codes define: they take part
	// in the canonical numbering of §3.2.2.
	litLen   [deflateNumLit + 2]uint8
	distLen  [deflateNumDist + 2]uint8
	clLen    [deflateNumCodeLens]uint8
	litCode  [deflateNumLit + 2]uint32
	distCode [deflateNumDist + 2]uint32
	clCode   [deflateNumCodeLens]uint32

	// clSyms is the run-length coded sequence of code lengths
	// (RFC 1951 §3.2.7): a symbol in the low byte, its extra bits above.
	clSyms []uint16
	allLen [deflateNumLit + deflateNumDist]uint8

	// Work space for buildLengths.
	sorted  [deflateNumLit]uint32 // frequency<<16 | symbol
	sortTmp [deflateNumLit]uint32
	parent  [2 * deflateNumLit]uint16
	weight  [deflateNumLit]uint32
	depth   [deflateNumLit]uint8
	lenCnt  [32]uint16
}

// newDeflater returns a deflater whose back-references reach at most
// 2^windowBits bytes; windowBits outside 8..15 is clamped into it. It holds
// no scratch until the first write.
func newDeflater(windowBits int) *deflater {
	windowBits = min(max(windowBits, deflateMinWindowBits), deflateMaxWindowBits)
	// Twice as many slots as window positions, between 2^10 and 2^14:
	// beyond that, more slots only cost clearing time.
	tableBits := min(max(windowBits+1, 10), 14)
	return &deflater{
		window:    1 << windowBits,
		windowIdx: windowBits - deflateMinWindowBits,
		hashShift: uint(32 - tableBits),
	}
}

func newDeflateScratch(window int, tableBits uint) *deflateScratch {
	return &deflateScratch{
		buf:   make([]byte, 0, window+deflateBlockSize),
		table: make([]uint32, 1<<tableBits),
		// A sequence other than the last holds a match of 4 bytes or more.
		seqs: make([]lzSeq, 0, deflateBlockSize/deflateMinMatch+1),
		huff: huffScratch{clSyms: make([]uint16, 0, deflateNumLit+deflateNumDist)},
	}
}

// write compresses p as part of the current message and appends to dst
// whatever output is complete, which may be nothing: input is gathered
// until a block is full or the message is flushed.
func (d *deflater) write(dst, p []byte) []byte {
	if len(p) == 0 {
		return dst
	}
	d.activate()
	for len(p) > 0 {
		if len(d.buf)-d.start == deflateBlockSize {
			dst = d.compress(dst)
		}
		if len(d.buf) == cap(d.buf) {
			d.slide()
		}
		room := min(cap(d.buf)-len(d.buf), deflateBlockSize-(len(d.buf)-d.start))
		n := min(room, len(p))
		d.buf = append(d.buf, p[:n]...)
		p = p[n:]
	}
	return dst
}

// flush ends the message: it compresses the input still pending and
// appends a sync flush, an empty stored block (RFC 1951 §3.2.4) whose last
// four bytes are 00 00 ff ff, so that the output so far ends on a byte
// boundary and decodes to all the input so far. RFC 7692 §7.2.1 has the
// caller strip those four bytes.
func (d *deflater) flush(dst []byte) []byte {
	if d.sc != nil && len(d.buf) > d.start {
		dst = d.compress(dst)
	}
	// Three zero bits (not final, stored), padding to the byte boundary,
	// LEN 0 and NLEN 0xffff.
	nb := d.nbits + 3
	for ; nb > 0; nb -= min(nb, 8) {
		dst = append(dst, byte(d.bits))
		d.bits >>= 8
	}
	d.bits, d.nbits = 0, 0
	return append(dst, 0x00, 0x00, 0xff, 0xff)
}

// reset forgets the history, and any input and output bits still pending,
// so that the next message starts a stream of its own (no context
// takeover, RFC 7692 §7.1.1).
func (d *deflater) reset() {
	if d.sc != nil {
		d.buf = d.buf[:d.start]
	}
	d.lo = d.start
	d.hist = d.hist[:0]
	d.bits, d.nbits = 0, 0
}

// idle returns the scratch to its pool, keeping only the history that the
// next message may refer to: at most 2^windowBits bytes, none after reset.
// It does nothing in the middle of a message (input or bits pending).
func (d *deflater) idle() {
	if d.sc == nil || len(d.buf) > d.start || d.nbits != 0 {
		return
	}
	keep := d.buf[max(d.lo, d.start-d.window):d.start]
	if len(keep) > 0 && d.hist == nil {
		d.hist = make([]byte, 0, d.window)
	}
	d.hist = append(d.hist[:0], keep...)
	if d.id == nil {
		d.id = new(byte)
	}
	d.gen++
	d.sc.owner, d.sc.gen = d.id, d.gen
	deflateScratchPools[d.windowIdx].Put(d.sc)
	d.sc, d.buf = nil, nil
}

// activate takes a scratch if the deflater is idle. If the pool gives back
// the deflater's own scratch untouched, all is still in place. Otherwise
// the kept history goes in front of the buffer and its positions into the
// hash table: all of the last deflateIndexTail bytes, and every
// deflateIndexStride-th before them, which keeps most of the gain for a
// fraction of the time.
func (d *deflater) activate() {
	if d.sc != nil {
		return
	}
	sc, _ := deflateScratchPools[d.windowIdx].Get().(*deflateScratch)
	if sc != nil && sc.owner == d.id && sc.gen == d.gen && d.id != nil {
		d.sc, d.buf = sc, sc.buf[:d.start]
		return
	}
	if sc == nil {
		sc = newDeflateScratch(d.window, 32-d.hashShift)
	} else {
		// Stale entries could not produce a wrong match (candidates are
		// checked byte for byte), but they would make the output depend
		// on what the scratch did before.
		clear(sc.table)
		sc.owner = nil
	}
	d.sc = sc
	d.base += uint32(d.start - len(d.hist))
	d.buf = append(sc.buf[:0], d.hist...)
	d.lo, d.start = 0, len(d.buf)
	d.hist = d.hist[:0]
	mid := max(0, len(d.buf)-deflateIndexTail)
	d.index(0, mid, deflateIndexStride)
	d.index(mid, len(d.buf), 1)
}

// index enters every step-th position of buf[from:to] in the hash table.
func (d *deflater) index(from, to, step int) {
	buf, table, shift := d.buf, d.sc.table, d.hashShift
	for i := from; i+4 <= to; i += step {
		h := (binary.LittleEndian.Uint32(buf[i:]) * 0x9e3779b1) >> shift
		table[h&uint32(len(table)-1)] = d.base + uint32(i)
	}
}

// slide moves the last window bytes of history and the pending input to
// the front of the buffer, to make room for more input.
func (d *deflater) slide() {
	from := max(d.lo, d.start-d.window)
	n := copy(d.buf, d.buf[from:])
	d.buf = d.buf[:n]
	d.base += uint32(from)
	d.lo = 0 // from is at or past lo
	d.start -= from
}

// compress turns the pending input into one block and appends what of it
// fills whole bytes to dst.
func (d *deflater) compress(dst []byte) []byte {
	d.findMatches()
	dst = d.writeBlock(dst)
	d.start = len(d.buf)
	return dst
}

// findMatches parses the pending input into sequences.
//
// Hash table entries are stream offsets modulo 2^32. An entry may be stale
// (from before a slide, a reset or a wrap of the offsets); it is turned
// into a buffer index and used only if that index lies in
// buf[lo:s] and within window bytes of s, and the 4 bytes there equal the
// 4 bytes at s. A stale entry that passes is therefore a true match inside
// the window all the same.
func (d *deflater) findMatches() {
	buf := d.buf
	end := len(buf)
	s := d.start
	nextEmit := s
	seqs := d.sc.seqs[:0]
	table := d.sc.table
	mask := uint32(len(table) - 1)
	shift := d.hashShift
	lo, window, base := d.lo, d.window, d.base
	for s+deflateMinMatch <= end {
		cv := binary.LittleEndian.Uint32(buf[s:])
		h := ((cv * 0x9e3779b1) >> shift) & mask
		cand := int(int32(table[h] - base))
		table[h] = base + uint32(s)
		if cand < lo || uint(s-cand-1) >= uint(window) || binary.LittleEndian.Uint32(buf[cand:]) != cv {
			s += min(1+(s-nextEmit)>>deflateSkipLog, deflateMaxSkip)
			continue
		}
		// Grow the match backwards over literals not yet emitted; the
		// distance stays the same.
		for cand > lo && s > nextEmit && buf[cand-1] == buf[s-1] {
			cand--
			s--
		}
		n := matchLen(buf[s:min(end, s+deflateMaxMatch)], buf[cand:])
		seqs = append(seqs, lzSeq{lit: uint16(s - nextEmit), length: uint16(n), dist: uint16(s - cand)})
		// Enter the positions inside the match, which the scan skips:
		// more candidates, and the newest ones, make better matches,
		// the more so the smaller the window.
		i, stop := s+1, min(s+n, end-3)
		for ; i+4 <= stop && i+8 <= end; i += 4 { // four positions a load
			x := binary.LittleEndian.Uint64(buf[i:])
			table[((uint32(x)*0x9e3779b1)>>shift)&mask] = base + uint32(i)
			table[((uint32(x>>8)*0x9e3779b1)>>shift)&mask] = base + uint32(i+1)
			table[((uint32(x>>16)*0x9e3779b1)>>shift)&mask] = base + uint32(i+2)
			table[((uint32(x>>24)*0x9e3779b1)>>shift)&mask] = base + uint32(i+3)
		}
		for ; i < stop; i++ {
			h := ((binary.LittleEndian.Uint32(buf[i:]) * 0x9e3779b1) >> shift) & mask
			table[h] = base + uint32(i)
		}
		s += n
		nextEmit = s
	}
	if nextEmit < end {
		seqs = append(seqs, lzSeq{lit: uint16(end - nextEmit)})
	}
	d.sc.seqs = seqs
}

// matchLen returns how many leading bytes a and b share, at most len(a);
// b must be at least as long as a.
func matchLen(a, b []byte) int {
	n := 0
	for len(a)-n >= 8 {
		x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < len(a) && a[n] == b[n] {
		n++
	}
	return n
}

// lengthCode returns the symbol (less 257) and extra bit count that code
// a match length (RFC 1951 §3.2.5); v is the length less 3. The extra bits
// are the low bits of v.
func lengthCode(v uint) (code, extra uint) {
	switch {
	case v < 8:
		return v, 0
	case v == 255: // length 258 has a symbol of its own
		return 28, 0
	}
	extra = uint(bits.Len(v)) - 3
	return 4*extra + 4 + (v>>extra)&3, extra
}

// distCode returns the symbol and extra bit count that code a distance;
// v is the distance less 1. The extra bits are the low bits of v.
func distCode(v uint) (code, extra uint) {
	if v < 4 {
		return v, 0
	}
	extra = uint(bits.Len(v)) - 2
	return 2*extra + 2 + (v>>extra)&1, extra
}

// writeBlock writes the pending input, parsed into sequences, as one
// block in the smallest of the three forms.
func (d *deflater) writeBlock(dst []byte) []byte {
	h := &d.sc.huff
	in := d.buf[d.start:]
	seqs := d.sc.seqs

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
	h.litFreq[deflateEndOfBlock] = 1

	numLit := deflateNumLit
	for h.litFreq[numLit-1] == 0 {
		numLit--
	}
	numDist := deflateNumDist
	for numDist > 1 && h.distFreq[numDist-1] == 0 {
		numDist--
	}

	// Dynamic codes, with the header that describes them.
	h.buildLengths(h.litFreq[:numLit], h.litLen[:numLit], deflateMaxCodeBits)
	h.buildLengths(h.distFreq[:numDist], h.distLen[:numDist], deflateMaxCodeBits)
	h.runLengths(numLit, numDist)
	h.buildLengths(h.clFreq[:], h.clLen[:], deflateMaxCodeLenBits)
	numCL := deflateNumCodeLens
	for numCL > 4 && h.clLen[deflateCodeLenOrder[numCL-1]] == 0 {
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
	storedBits := 3 + (-int(d.nbits+3) & 7) + 32 + 8*len(in)

	w := bitWriter{bits: d.bits, nbits: d.nbits}
	litCode, distCode := &h.litCode, &h.distCode
	switch {
	case storedBits <= dynBits && storedBits <= fixedBits:
		w.begin(dst, storedBits)
		w.put(0, 3)
		w.alignByte()
		w.out = binary.LittleEndian.AppendUint16(w.out, uint16(len(in)))
		w.out = binary.LittleEndian.AppendUint16(w.out, ^uint16(len(in)))
		w.out = append(w.out, in...)
		return w.end(d)
	case fixedBits <= dynBits:
		w.begin(dst, fixedBits)
		w.put(1<<1, 3)
		litCode, distCode = &deflateFixedLit, &deflateFixedDist
	default:
		w.begin(dst, dynBits)
		w.put(2<<1, 3)
		assignCodes(h.clLen[:], h.clCode[:])
		assignCodes(h.litLen[:numLit], h.litCode[:numLit])
		assignCodes(h.distLen[:numDist], h.distCode[:numDist])
		w.put(uint64(numLit-257), 5)
		w.put(uint64(numDist-1), 5)
		w.put(uint64(numCL-4), 4)
		for _, s := range deflateCodeLenOrder[:numCL] {
			w.put(uint64(h.clLen[s]), 3)
		}
		for _, cs := range h.clSyms {
			c := h.clCode[cs&0xff]
			w.put(uint64(c&0xffff), uint(c>>16))
			switch cs & 0xff {
			case 16:
				w.put(uint64(cs>>8), 2)
			case 17:
				w.put(uint64(cs>>8), 3)
			case 18:
				w.put(uint64(cs>>8), 7)
			}
		}
	}
	w.writeSeqs(in, seqs, litCode, distCode)
	c := litCode[deflateEndOfBlock]
	w.put(uint64(c&0xffff), uint(c>>16))
	return w.end(d)
}

func sumFreq(f []uint32) int {
	n := 0
	for _, v := range f {
		n += int(v)
	}
	return n
}

// deflateFixedLit and deflateFixedDist are the fixed codes of RFC 1951
// §3.2.6, packed as assignCodes packs them.
var deflateFixedLit, deflateFixedDist = func() (lit [deflateNumLit + 2]uint32, dist [deflateNumDist + 2]uint32) {
	var litLen [deflateNumLit + 2]uint8
	for i := range litLen {
		litLen[i] = fixedLitLen(i)
	}
	distLen := [deflateNumDist + 2]uint8{}
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
func (w *bitWriter) begin(dst []byte, size int) {
	w.out = slices.Grow(dst, size/8+16)
}

// put appends the low n bits of v; n is at most 32.
func (w *bitWriter) put(v uint64, n uint) {
	w.bits |= v << w.nbits
	w.nbits += n
	if w.nbits >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.bits))
		w.bits >>= 32
		w.nbits -= 32
	}
}

// alignByte pads the output with zero bits to a byte boundary and writes
// out every whole byte.
func (w *bitWriter) alignByte() {
	for w.nbits > 0 {
		w.out = append(w.out, byte(w.bits))
		w.bits >>= 8
		w.nbits -= min(w.nbits, 8)
	}
	w.bits = 0
}

// end writes out the whole bytes, leaves the rest (< 8 bits) with d, and
// returns the output.
func (w *bitWriter) end(d *deflater) []byte {
	for w.nbits >= 8 {
		w.out = append(w.out, byte(w.bits))
		w.bits >>= 8
		w.nbits -= 8
	}
	d.bits, d.nbits = w.bits, w.nbits
	return w.out
}

// writeSeqs writes the literals and matches of a block with the given
// codes. It is the hot loop of the encoder: the bit buffer lives in locals,
// and whole bytes go out 8 at a time into the capacity begin reserved.
func (w *bitWriter) writeSeqs(in []byte, seqs []lzSeq, lit *[deflateNumLit + 2]uint32, dist *[deflateNumDist + 2]uint32) {
	out := w.out[:cap(w.out)]
	n := len(w.out)
	acc, nb := w.bits, w.nbits
	p := 0
	for _, q := range seqs {
		for _, c := range in[p : p+int(q.lit)] {
			e := lit[c]
			acc |= uint64(e&0xffff) << nb
			nb += uint(e >> 16)
			if nb >= 48 {
				binary.LittleEndian.PutUint64(out[n:], acc)
				n += 6
				acc >>= 48
				nb -= 48
			}
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
	w.out = out[:n]
	w.bits, w.nbits = acc, nb
}

// runLengths codes the literal/length and distance code lengths as one
// sequence with the repeat symbols of RFC 1951 §3.2.7 (16: repeat the
// previous length 3..6 times; 17: 3..10 zeros; 18: 11..138 zeros), into
// clSyms, and counts the symbols into clFreq.
func (h *huffScratch) runLengths(numLit, numDist int) {
	all := h.allLen[:0]
	all = append(all, h.litLen[:numLit]...)
	all = append(all, h.distLen[:numDist]...)
	clear(h.clFreq[:])
	syms := h.clSyms[:0]
	emit := func(sym, extra int) {
		syms = append(syms, uint16(sym|extra<<8))
		h.clFreq[sym]++
	}
	for i := 0; i < len(all); {
		l := all[i]
		run := 1
		for i+run < len(all) && all[i+run] == l {
			run++
		}
		i += run
		if l == 0 {
			for run >= 11 {
				r := min(run, 138)
				emit(18, r-11)
				run -= r
			}
			if run >= 3 {
				emit(17, run-3)
				run = 0
			}
		} else {
			emit(int(l), 0)
			run--
			for run >= 3 {
				r := min(run, 6)
				emit(16, r-3)
				run -= r
			}
		}
		for ; run > 0; run-- {
			emit(int(l), 0)
		}
	}
	h.clSyms = syms
}

// buildLengths sets lens to the lengths of a Huffman code for freq whose
// codes are at most maxBits long; unused symbols get 0. A single used
// symbol gets a 1-bit code, paired with a second symbol where there is
// one, so that the code is complete.
//
// The tree is built with two queues (leaves in order of weight, and inner
// nodes, which are made in order of weight), which takes linear time once
// the leaves are sorted. If it comes out too deep, the levels below
// maxBits are folded into it and leaves are moved down from the deepest
// shallower levels until the Kraft sum is exactly 1 again. Lengths are then
// handed out shortest first to the most frequent symbols.
func (h *huffScratch) buildLengths(freq []uint32, lens []uint8, maxBits uint) {
	clear(lens)
	// Frequencies fit in 16 bits: a block holds at most 2^15 symbols.
	leaves := h.sorted[:0]
	top := uint32(0)
	for sym, f := range freq {
		if f != 0 {
			leaves = append(leaves, f<<16|uint32(sym))
			top |= f
		}
	}
	switch len(leaves) {
	case 0:
		return
	case 1:
		sym := int(leaves[0] & 0xffff)
		lens[sym] = 1
		other := sym ^ 1
		if other >= len(lens) {
			other = sym - 1
		}
		if other >= 0 {
			lens[other] = 1
		}
		return
	}
	// Sort by frequency, one counting pass per byte of it; equal
	// frequencies stay in symbol order.
	tmp := h.sortTmp[:len(leaves)]
	radixPass(tmp, leaves, 16)
	if top < 1<<8 {
		leaves = tmp
	} else {
		radixPass(leaves, tmp, 24)
	}
	n := len(leaves)

	// Inner node k is made by step k; parent[i] is the step that took
	// leaf i (i < n) or inner node i-n.
	leaf, inner := 0, 0
	take := func(k int) uint32 {
		if leaf < n && (inner >= k || leaves[leaf]>>16 <= h.weight[inner]) {
			h.parent[leaf] = uint16(k)
			leaf++
			return leaves[leaf-1] >> 16
		}
		h.parent[n+inner] = uint16(k)
		inner++
		return h.weight[inner-1]
	}
	for k := 0; k < n-1; k++ {
		a := take(k)
		b := take(k)
		h.weight[k] = a + b
	}
	// Depths: the root (the last inner node) is at 0.
	h.depth[n-2] = 0
	for k := n - 3; k >= 0; k-- {
		h.depth[k] = h.depth[h.parent[n+k]] + 1
	}
	cnt := h.lenCnt[:]
	clear(cnt)
	deepest := uint(0)
	for i := range n {
		dp := uint(h.depth[h.parent[i]]) + 1
		cnt[min(dp, 31)]++
		deepest = max(deepest, dp)
	}
	if deepest > maxBits {
		for l := maxBits + 1; l < 32; l++ {
			cnt[maxBits] += cnt[l]
			cnt[l] = 0
		}
		kraft := 0
		for l := uint(1); l <= maxBits; l++ {
			kraft += int(cnt[l]) << (maxBits - l)
		}
		for kraft > 1<<maxBits {
			// Replace a leaf at the deepest level l above maxBits by an
			// inner node whose children are that leaf and one leaf from
			// level maxBits: the sum falls by 2^0.
			l := maxBits - 1
			for cnt[l] == 0 {
				l--
			}
			cnt[l]--
			cnt[l+1] += 2
			cnt[maxBits]--
			kraft--
		}
	}
	// Longest codes to the rarest symbols.
	i := 0
	for l := maxBits; l >= 1; l-- {
		for range cnt[l] {
			lens[leaves[i]&0xffff] = uint8(l)
			i++
		}
	}
}

// radixPass copies src to dst ordered by the byte at shift, keeping the
// order of keys whose byte is equal.
func radixPass(dst, src []uint32, shift uint) {
	var start [256]uint16
	for _, k := range src {
		start[byte(k>>shift)]++
	}
	sum := uint16(0)
	for i, c := range start {
		start[i] = sum
		sum += c
	}
	for _, k := range src {
		b := byte(k >> shift)
		dst[start[b]] = k
		start[b]++
	}
}

// assignCodes gives the canonical codes of RFC 1951 §3.2.2 for lens,
// bit-reversed since Huffman codes are sent from their most significant
// bit, and packs each with its length above the low 16 bits.
func assignCodes(lens []uint8, codes []uint32) {
	var count, next [deflateMaxCodeBits + 1]uint16
	for _, l := range lens {
		count[l&deflateMaxCodeBits]++
	}
	count[0] = 0
	code := uint16(0)
	for l := 1; l <= deflateMaxCodeBits; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	for sym, l := range lens {
		if l == 0 {
			continue // never written: the entry may keep a stale code
		}
		l &= deflateMaxCodeBits
		c := next[l]
		next[l]++
		codes[sym] = uint32(bits.Reverse16(c)>>(16-l)) | uint32(l)<<16
	}
}
