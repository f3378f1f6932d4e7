package flate

import "math/bits"

// This file builds the Huffman codes of a block (RFC 1951 §3.2.2): code
// lengths limited to a maximum, the canonical codes they give, and the
// run-length coded lengths that a dynamic block header sends.

// huffScratch holds one block's histograms and codes. A code entry packs
// the bit-reversed code (ready for the LSB-first bit stream) in the low 16
// bits and its length above.
type huffScratch struct {
	litFreq  [numLitSyms]uint32
	distFreq [numDistSyms]uint32
	clFreq   [numCodeLenSyms]uint32
	// The code arrays have room for the two literal/length and two
	// distance symbols that only the fixed codes define: they take part
	// in the canonical numbering of §3.2.2.
	litLen   [numLitSyms + 2]uint8
	distLen  [numDistSyms + 2]uint8
	clLen    [numCodeLenSyms]uint8
	litCode  [numLitSyms + 2]uint32
	distCode [numDistSyms + 2]uint32
	clCode   [numCodeLenSyms]uint32

	// clSyms is the run-length coded sequence of code lengths
	// (RFC 1951 §3.2.7): a symbol in the low byte, its extra bits above.
	clSyms []uint16
	allLen [numLitSyms + numDistSyms]uint8

	// Work space for buildLengths.
	sorted  [numLitSyms]uint32 // frequency<<16 | symbol
	sortTmp [numLitSyms]uint32
	parent  [2 * numLitSyms]uint16
	weight  [numLitSyms]uint32
	depth   [numLitSyms]uint8
	lenCnt  [32]uint16
	// radix is radixPass's counts, here rather than on the stack of a
	// goroutine that compresses (often a handler's, which stays as large
	// as its deepest call made it).
	radix [256]uint16
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
	radixPass(tmp, leaves, 16, &h.radix)
	if top < 1<<8 {
		leaves = tmp
	} else {
		radixPass(leaves, tmp, 24, &h.radix)
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
func radixPass(dst, src []uint32, shift uint, start *[256]uint16) {
	clear(start[:])
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
	var count, next [maxCodeBits + 1]uint16
	for _, l := range lens {
		count[l&maxCodeBits]++
	}
	count[0] = 0
	code := uint16(0)
	for l := 1; l <= maxCodeBits; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	for sym, l := range lens {
		if l == 0 {
			continue // never written: the entry may keep a stale code
		}
		l &= maxCodeBits
		c := next[l]
		next[l]++
		codes[sym] = uint32(bits.Reverse16(c)>>(16-l)) | uint32(l)<<16
	}
}
