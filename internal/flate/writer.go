// Package flate is a DEFLATE encoder and decoder (RFC 1951) for windows
// of 2^MinWindowBits to 2^MaxWindowBits bytes, as permessage-deflate
// (RFC 7692) negotiates them: the Writer's back-references reach no
// further than its window (the encoder of compress/flate always reaches
// back 32 KiB), and the Reader keeps exactly its window of history and
// refuses a stream that reaches further (the decoder of compress/flate
// keeps 32 KiB whatever the stream needs). Both handle a stream of
// messages, each ended by a sync flush, with or without context takeover,
// and borrow their working memory from pools for as long as they are
// busy.
package flate

import (
	"encoding/binary"
	"math/bits"
	"sync"
)

// Matching: one hash table of stream offsets, indexed by a multiplicative
// hash of the next 5 bytes, one entry per slot, the newest position
// winning. A candidate is used only when it lies inside the history we
// still hold and at most 2^windowBits bytes back, and its first 4 bytes
// are equal; the match is then grown backwards over pending literals and
// forwards up to 258 bytes, and three of the positions it covers enter the
// table too (the second and the last two): entering all of them costs
// time for next to no gain on JSON and text. After a run of misses the scan steps over more and more bytes (up
// to 16 at a time), so incompressible input costs little.
//
// Blocks (block.go): each block covers at most blockSize bytes of input.
// Its matches are kept as sequences (literal count, match length,
// distance), counted into histograms, and given Huffman codes limited to
// 15 bits; the block is then written in whichever of the three forms is
// smallest: dynamic codes, the fixed codes of RFC 1951 §3.2.6, or stored
// bytes.
//
// Memory: while a message is being written the Writer borrows a scratch
// from a pool: the input buffer (history plus one block of input), the
// hash table, the sequences and the Huffman tables. Idle gives it back and
// keeps a copy of the last 2^windowBits bytes of history, which is what
// the next message may refer to. The next Append takes a scratch again: if
// it is the Writer's own, untouched since, it goes on as if never idle;
// otherwise the history is copied in and indexed anew. The output is valid
// either way, but which way it went can change it.

// The window of a Writer is 2^windowBits bytes, windowBits from
// MinWindowBits to MaxWindowBits: DEFLATE's distances reach 32 KiB at most
// (RFC 1951 §3.2.5).
const (
	MinWindowBits = 8
	MaxWindowBits = 15
)

// FlushTail is what every Flush ends with: the LEN and NLEN fields of the
// empty stored block of a sync flush (RFC 1951 §3.2.4). A sender may strip
// it from each message, and the receiver append it again before decoding.
const FlushTail = "\x00\x00\xff\xff"

const (
	// blockSize is the most input one block covers. Larger blocks
	// spread the cost of a dynamic Huffman header thinner; smaller ones
	// follow changes in the data and keep the scratch small.
	blockSize = 32 << 10

	minMatch  = 4
	hashLen   = 5 // bytes that select a hash table slot (at most; see NewWriter)
	maxMatch  = 258
	maxStored = 1<<16 - 1 // longest stored block (LEN is 16 bits)

	// A scratch that must be rebuilt gets the positions of the last
	// indexTail bytes of history, and every indexStride-th before them,
	// in its hash table.
	indexTail   = 8 << 10
	indexStride = 8

	// skipLog sets how fast the scan speeds up over input without
	// matches: one extra byte per step after every 2^skipLog bytes since
	// the last match, up to steps of maxSkip bytes. The cap keeps enough
	// positions of incompressible data in the hash table for a later copy
	// of it to be found.
	skipLog = 5
	maxSkip = 16

	// Windows up to denseWindow bytes get every position a match covers
	// in the hash table, larger ones three (see findMatches).
	denseWindow = 1 << 12
	// Windows of up to 2^smallHashBits bytes hash 4 bytes, not hashLen.
	smallHashBits = 9
)

// A block must fit in one stored block, and its literal runs in an lzSeq.
var _ [maxStored - blockSize]struct{}

// scratchPools hold the rebuildable state of idle Writers, one pool per
// window size since the buffer and the hash table scale with it.
var scratchPools [MaxWindowBits - MinWindowBits + 1]sync.Pool

// A Writer compresses a sequence of messages into one raw DEFLATE stream
// of non-final blocks, each message ending with a sync flush. It never
// refers further back than 2^windowBits bytes.
//
// For each message: Append any number of times, then Flush. Reset between
// messages makes the next one decodable on its own; Idle between messages
// lets go of all but the history the next message may refer to. Append
// and Flush take back what Idle gave away, so there is no separate wake
// step to forget. A Writer is not safe for concurrent use.
type Writer struct {
	window    int  // 2^windowBits: the furthest a back-reference may reach; immutable
	windowIdx int  // windowBits - MinWindowBits, the pool index; immutable
	hashShift uint // 64 - log2 of the hash table size; immutable
	hashDrop  uint // 64 - 8 * the bytes hashed, at most hashLen; immutable

	// sc is the borrowed scratch, nil while idle.
	sc *scratch
	// buf is sc.buf[:end]: buf[lo:start] is history that matches may refer
	// to, buf[start:] is input not yet compressed. Only while active.
	buf       []byte
	lo, start int
	// base is the stream offset of buf[0], as recorded in the hash table.
	// It wraps around; see findMatches for why that is harmless.
	base uint32

	// bits holds nbits (< 8) output bits that do not fill a byte yet; they
	// lead the next block. After Flush nbits is 0.
	bits  uint64
	nbits uint

	// hist holds the history while idle (at most window bytes). Its array
	// stays allocated so that going idle again does not allocate.
	hist []byte
	// id tells this Writer's scratch from others in the pool, and gen
	// counts its calls to Idle: a scratch that comes back with both
	// unchanged was used by no one since.
	id  *byte
	gen uint64
}

// scratch is the state of an active Writer that can be rebuilt: it goes
// back to a pool while the Writer is idle.
type scratch struct {
	owner *byte  // id of the Writer that used it last
	gen   uint64 // that Writer's gen when it went idle
	buf   []byte // capacity window + blockSize
	// full is buf's array with 8 bytes more, so that an 8-byte load at any
	// position that has hashLen bytes of input stays inside it. What the
	// load reads past the input is ignored (hash keeps hashLen bytes).
	full  []byte
	table []uint32 // hash of hashLen bytes -> stream offset of their latest position
	seqs  []lzSeq  // the current block, as LZ77 sequences
	huff  huffScratch
}

// lzSeq is a run of lit literal bytes followed by a match of length bytes
// at distance dist; length 0 means the run ends the block without a match.
type lzSeq struct {
	lit, length, dist uint16
}

// NewWriter returns a Writer whose back-references reach at most
// 2^windowBits bytes; windowBits outside MinWindowBits..MaxWindowBits is
// clamped into that range. It takes its working memory at the first
// Append.
func NewWriter(windowBits int) *Writer {
	windowBits = min(max(windowBits, MinWindowBits), MaxWindowBits)
	// Twice as many slots as window positions, between 2^10 and 2^14:
	// beyond that, more slots only cost clearing time.
	tableBits := min(max(windowBits+1, 10), 14)
	// Hash 4 bytes instead of hashLen in the smallest windows, where
	// short matches are most of what there is to find.
	hashDrop := uint(64 - 8*hashLen)
	if windowBits <= smallHashBits {
		hashDrop = 64 - 8*4
	}
	return &Writer{
		window:    1 << windowBits,
		windowIdx: windowBits - MinWindowBits,
		hashShift: uint(64 - tableBits),
		hashDrop:  hashDrop,
	}
}

func newScratch(window int, tableBits uint) *scratch {
	full := make([]byte, window+blockSize+8)
	return &scratch{
		buf:   full[: 0 : window+blockSize],
		full:  full,
		table: make([]uint32, 1<<tableBits),
		// A sequence other than the last holds a match of 4 bytes or more.
		seqs: make([]lzSeq, 0, blockSize/minMatch+1),
		huff: huffScratch{clSyms: make([]uint16, 0, numLitSyms+numDistSyms)},
	}
}

// Append compresses p as part of the current message and appends to dst
// whatever output is complete, which may be nothing: input is gathered
// until a block is full or the message is flushed.
func (w *Writer) Append(dst, p []byte) []byte {
	if len(p) == 0 {
		return dst
	}
	w.activate()
	for len(p) > 0 {
		if len(w.buf)-w.start == blockSize {
			dst = w.compress(dst)
		}
		if len(w.buf) == cap(w.buf) {
			w.slide()
		}
		room := min(cap(w.buf)-len(w.buf), blockSize-(len(w.buf)-w.start))
		n := min(room, len(p))
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
	}
	return dst
}

// Flush ends the message: it compresses the input still pending and
// appends a sync flush, an empty stored block (RFC 1951 §3.2.4) that ends
// with FlushTail, so that the output so far ends on a byte boundary and
// decodes to all the input so far.
func (w *Writer) Flush(dst []byte) []byte {
	if w.sc != nil && len(w.buf) > w.start {
		dst = w.compress(dst)
	}
	// Three zero bits (not final, stored), padding to the byte boundary,
	// then LEN 0 and NLEN 0xffff.
	nb := w.nbits + 3
	for ; nb > 0; nb -= min(nb, 8) {
		dst = append(dst, byte(w.bits))
		w.bits >>= 8
	}
	w.bits, w.nbits = 0, 0
	return append(dst, FlushTail...)
}

// Reset forgets the history, and any input and output bits still pending,
// so that the next message starts a stream of its own: it refers to no
// earlier message, and decodes without them.
func (w *Writer) Reset() {
	if w.sc != nil {
		w.buf = w.buf[:w.start]
	}
	w.lo = w.start
	w.hist = w.hist[:0]
	w.bits, w.nbits = 0, 0
}

// Remember adds p to the history without compressing it: for a message
// that reached the decoder by other means (compressed by another Writer
// from no history, say), whose text the decoder now holds in its window
// as this Writer's next messages may refer to it. Call it between
// messages, after Flush.
func (w *Writer) Remember(p []byte) {
	if len(p) > w.window {
		p = p[len(p)-w.window:]
	}
	if len(p) == 0 {
		return
	}
	if w.sc == nil {
		// Idle: the history is kept in hist. The scratch in the pool no
		// longer matches it, so the next activation rebuilds.
		if w.hist == nil {
			w.hist = make([]byte, 0, w.window)
		}
		if drop := len(w.hist) + len(p) - w.window; drop > 0 {
			w.hist = append(w.hist[:0], w.hist[drop:]...)
		}
		w.hist = append(w.hist, p...)
		w.gen++
		return
	}
	for len(p) > 0 {
		if len(w.buf) == cap(w.buf) {
			w.slide()
		}
		n := min(cap(w.buf)-len(w.buf), len(p), blockSize)
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
		w.skim()
	}
}

// Idle gives the Writer's working memory back to a pool shared with other
// Writers of its window size, keeping only the history that the next
// message may refer to: at most 2^windowBits bytes, none after Reset. It
// does nothing in the middle of a message (input or bits pending).
func (w *Writer) Idle() {
	if w.sc == nil || len(w.buf) > w.start || w.nbits != 0 {
		return
	}
	keep := w.buf[max(w.lo, w.start-w.window):w.start]
	if len(keep) > 0 && w.hist == nil {
		w.hist = make([]byte, 0, w.window)
	}
	w.hist = append(w.hist[:0], keep...)
	if w.id == nil {
		w.id = new(byte)
	}
	w.gen++
	w.sc.owner, w.sc.gen = w.id, w.gen
	scratchPools[w.windowIdx].Put(w.sc)
	w.sc, w.buf = nil, nil
}

// Release gives back all the Writer holds, its history included, as at
// NewWriter: for a Writer that will compress nothing more. The next
// Append, if any, starts a stream of its own.
func (w *Writer) Release() {
	w.Reset()
	if w.sc != nil {
		w.sc.owner = nil
		scratchPools[w.windowIdx].Put(w.sc)
		w.sc, w.buf = nil, nil
	}
	w.hist = nil
}

// Active reports whether the Writer holds working memory: from an Append
// until the next Idle.
func (w *Writer) Active() bool { return w.sc != nil }

// activate takes a scratch if the Writer is idle. If the pool gives back
// the Writer's own scratch untouched, all is still in place. Otherwise the
// kept history goes in front of the buffer and its positions into the hash
// table: all of the last indexTail bytes, and every indexStride-th before
// them, which keeps most of the gain for a fraction of the time.
func (w *Writer) activate() {
	if w.sc != nil {
		return
	}
	sc, _ := scratchPools[w.windowIdx].Get().(*scratch)
	if sc != nil && sc.owner == w.id && sc.gen == w.gen && w.id != nil {
		w.sc, w.buf = sc, sc.buf[:w.start]
		return
	}
	if sc == nil {
		sc = newScratch(w.window, 64-w.hashShift)
	} else {
		// Stale entries could not produce a wrong match (candidates are
		// checked byte for byte), but they would make the output depend
		// on what the scratch did before.
		clear(sc.table)
		sc.owner = nil
	}
	w.sc = sc
	w.base += uint32(w.start - len(w.hist))
	w.buf = append(sc.buf[:0], w.hist...)
	w.lo, w.start = 0, len(w.buf)
	w.hist = w.hist[:0]
	mid := max(0, len(w.buf)-indexTail)
	w.index(0, mid, indexStride)
	w.index(mid, len(w.buf), 1)
}

// skim enters the positions of the pending input in the hash table as
// compressing it would, and makes it history without output.
func (w *Writer) skim() {
	w.findMatches()
	w.start = len(w.buf)
}

// index enters every step-th position of buf[from:to] in the hash table.
func (w *Writer) index(from, to, step int) {
	buf, full, table, shift := w.buf, w.sc.full, w.sc.table, w.hashShift
	for i := from; i < to && i+hashLen <= len(buf); i += step {
		h := hash(binary.LittleEndian.Uint64(full[i:]), w.hashDrop, shift)
		table[h&uint32(len(table)-1)] = w.base + uint32(i)
	}
}

// slide moves the last window bytes of history and the pending input to
// the front of the buffer, to make room for more input.
func (w *Writer) slide() {
	from := max(w.lo, w.start-w.window)
	n := copy(w.buf, w.buf[from:])
	w.buf = w.buf[:n]
	w.base += uint32(from)
	w.lo = 0 // from is at or past lo
	w.start -= from
}

// compress turns the pending input into one block and appends what of it
// fills whole bytes to dst.
func (w *Writer) compress(dst []byte) []byte {
	w.findMatches()
	dst = w.writeBlock(dst)
	w.start = len(w.buf)
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
func (w *Writer) findMatches() {
	buf, full := w.buf, w.sc.full
	end := len(buf)
	s := w.start
	nextEmit := s
	seqs := w.sc.seqs[:0]
	table := w.sc.table
	mask := uint32(len(table) - 1)
	shift, drop := w.hashShift, w.hashDrop
	lo, window, base := w.lo, w.window, w.base
	dense := window <= denseWindow
	// The last positions before the input could not be hashed until now.
	for i := max(lo, s-hashLen+1); i < s && i+hashLen <= end; i++ {
		table[hash(binary.LittleEndian.Uint64(full[i:]), drop, shift)&mask] = base + uint32(i)
	}
	for {
		// Step over the input until a candidate matches.
		cand := 0
		for {
			if s+hashLen > end {
				goto done
			}
			x := binary.LittleEndian.Uint64(full[s:])
			h := hash(x, drop, shift)
			cand = int(int32(table[h] - base))
			table[h] = base + uint32(s)
			if cand >= lo && uint(s-cand-1) < uint(window) && binary.LittleEndian.Uint32(buf[cand:]) == uint32(x) {
				break
			}
			s += min(1+(s-nextEmit)>>skipLog, maxSkip)
		}
		// Grow the match backwards over literals not yet emitted; the
		// distance stays the same.
		for cand > lo && s > nextEmit && buf[cand-1] == buf[s-1] {
			cand--
			s--
		}
		n := matchLen(full, s, cand, min(end-s, maxMatch))
		seqs = append(seqs, lzSeq{lit: uint16(s - nextEmit), length: uint16(n), dist: uint16(s - cand)})
		// Enter positions that the match covers, which the scan skips:
		// in a large window a few, the one after its start and the last
		// two, which the input that follows is most likely to repeat;
		// in a small one all, as the newest candidates matter most there.
		if stop := min(s+n, end-hashLen+1); s+3 < stop && !dense {
			table[hash(binary.LittleEndian.Uint64(full[s+1:]), drop, shift)&mask] = base + uint32(s+1)
			table[hash(binary.LittleEndian.Uint64(full[stop-2:]), drop, shift)&mask] = base + uint32(stop-2)
			table[hash(binary.LittleEndian.Uint64(full[stop-1:]), drop, shift)&mask] = base + uint32(stop-1)
		} else {
			for i := s + 1; i < stop; i++ {
				table[hash(binary.LittleEndian.Uint64(full[i:]), drop, shift)&mask] = base + uint32(i)
			}
		}
		s += n
		nextEmit = s
	}
done:
	if nextEmit < end {
		seqs = append(seqs, lzSeq{lit: uint16(end - nextEmit)})
	}
	w.sc.seqs = seqs
}

// hash maps the 8-drop/8 bytes that lead x (loaded little-endian) to a
// slot of a table of 2^(64-shift) entries.
func hash(x uint64, drop, shift uint) uint32 {
	return uint32((x << drop) * 0x9e3779b97f4a7c15 >> shift)
}

// matchLen returns how many bytes at s equal those at cand < s, at most
// limit, s+limit within the input; the first minMatch are known to be
// equal. It compares 8 bytes at a time, reading up to 7 bytes past the
// limit, into the slack at the end of full, and then caps the count: what
// lies past the input can make it run on, never stop short.
func matchLen(full []byte, s, cand, limit int) int {
	n := minMatch
	for n < limit {
		x := binary.LittleEndian.Uint64(full[s+n:]) ^ binary.LittleEndian.Uint64(full[cand+n:])
		if x != 0 {
			n += bits.TrailingZeros64(x) >> 3
			break
		}
		n += 8
	}
	return min(n, limit)
}
