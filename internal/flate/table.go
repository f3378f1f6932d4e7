package flate

import "math/bits"

// This file builds the tables that decode Huffman codes (RFC 1951
// §3.2.2): a root table indexed by the next rootBits bits of input (the
// bit stream is read least significant bit first, so codes are looked up
// bit-reversed), whose entries for longer codes point to a subtable
// indexed by the bits after those.

// A table entry packs, from the low bits up: the length of the code in bits
// (8 bits; 0 for bits that start no code), a count (4 bits: the extra bits
// after a length or distance symbol, or the index bits of a subtable), the
// flags below (4 bits), and a 16-bit value (a literal byte, a base length
// or distance, a code length symbol, or where a subtable starts).
const (
	flagLit = 1 << 15 // a literal byte
	flagSub = 1 << 14 // a link to a subtable
	flagEOB = 1 << 13 // the end of the block
	flagBad = 1 << 12 // a symbol with a code that no stream may use

	lenMask = 0xff
)

// Root table sizes, and the most entries any code of the alphabet can
// need, subtables included. The sizes were found by an exhaustive search
// over all complete codes of the alphabet's size limited to 15-bit codes
// (code length codes: 7-bit codes, so the root alone): 1332 entries for 286
// literal/length symbols with a 10-bit root, 400 for 30 distance symbols
// with an 8-bit root. buildTable checks the room all the same.
const (
	litRootBits  = 10
	distRootBits = 8
	clRootBits   = 7

	litTableSize  = 1332
	distTableSize = 400
)

type (
	litTable  [litTableSize]uint32
	distTable [distTableSize]uint32
	clTable   [1 << clRootBits]uint32
)

// What each symbol decodes to, less its code length: litInfo for the
// literal/length alphabet (RFC 1951 §3.2.5; 286 and 287 have fixed codes
// but no meaning), distInfo for distances (30 and 31 likewise), clInfo
// for the code length alphabet (§3.2.7).
var litInfo, distInfo, clInfo = func() (lit [288]uint32, dist [32]uint32, cl [numCodeLenSyms]uint32) {
	for s := range 256 {
		lit[s] = flagLit | uint32(s)<<16
	}
	lit[endOfBlock] = flagEOB
	// Lengths 3..10 have a symbol each; then each count of extra bits
	// serves four symbols, whose bases step by 2^extra; 258 has its own.
	for s := range 28 {
		base, extra := 3+s, 0
		if s >= 8 {
			extra = s/4 - 1
			base = 3 + (4+s%4)<<extra
		}
		lit[257+s] = uint32(base)<<16 | uint32(extra)<<8
	}
	lit[285] = 258 << 16
	lit[286], lit[287] = flagBad, flagBad
	// Distances 1..4 have a symbol each; then each count of extra bits
	// serves two symbols.
	for s := range 30 {
		base, extra := 1+s, 0
		if s >= 4 {
			extra = s/2 - 1
			base = 1 + (2+s%2)<<extra
		}
		dist[s] = uint32(base)<<16 | uint32(extra)<<8
	}
	dist[30], dist[31] = flagBad, flagBad
	for s := range cl {
		cl[s] = uint32(s) << 16
	}
	return lit, dist, cl
}()

// tableScratch is buildTable's working space: in the decoder, rather than
// on the stack of the goroutine that reads, which a decoder waiting for
// input deep in a call chain keeps as large as its deepest call made it.
type tableScratch struct {
	sorted       [288]uint16 // the symbols in code order
	count, start [maxCodeBits + 1]int
}

// The tables of the fixed codes (RFC 1951 §3.2.6), shared by every
// decoder.
var fixedLitTable, fixedDistTable = func() (lit litTable, dist distTable) {
	var sc tableScratch
	var lens [288]uint8
	for s := range lens {
		lens[s] = fixedLitLen(s)
	}
	buildTable(lit[:], litRootBits, lens[:], litInfo[:], &sc)
	for s := range 32 {
		lens[s] = 5
	}
	buildTable(dist[:], distRootBits, lens[:32], distInfo[:], &sc)
	return lit, dist
}()

// buildTable fills table with the decoding table of the canonical code
// whose lengths lens gives (lens[s] is the code length of symbol s, at
// most 15, or 0 for none): the entry of symbol s is info[s] with its code
// length added. It returns the shortest code length, and false for
// lengths that make no code a stream may use: over-subscribed, or
// incomplete other than a lone code of length 1 (which compress/flate and
// zlib take, the other half of the code decoding to nothing). Lengths all
// 0 make an empty table, in which every lookup fails. sc is scratch.
func buildTable(table []uint32, rootBits uint, lens []uint8, info []uint32, sc *tableScratch) (minLen uint, ok bool) {
	count := &sc.count
	clear(count[:])
	for _, l := range lens {
		count[l&maxCodeBits]++
	}
	count[0] = 0
	maxLen := uint(maxCodeBits)
	for maxLen > 0 && count[maxLen] == 0 {
		maxLen--
	}
	root := table[:1<<rootBits]
	if maxLen == 0 {
		clear(root)
		return 0, true
	}
	minLen = 1
	for count[minLen] == 0 {
		minLen++
	}
	// The Kraft sum: left is how many codes of each length are still
	// free.
	left := 1
	for l := uint(1); l <= maxLen; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return 0, false
		}
	}
	if left > 0 {
		if maxLen != 1 {
			return 0, false
		}
		root[1] = 0 // the free half decodes to nothing
	}

	// Symbols in code order: by length, then by symbol.
	start := &sc.start
	clear(start[:])
	sorted := sc.sorted[:]
	for l := uint(1); l < maxLen; l++ {
		start[l+1] = start[l] + count[l]
	}
	for s, l := range lens {
		if l != 0 {
			sorted[start[l&maxCodeBits]] = uint16(s)
			start[l&maxCodeBits]++
		}
	}

	// Hand out the canonical codes in order. The root is filled a length
	// at a time: once it holds the codes up to l-1 bits, looked up with
	// l-1 bits, a copy of it doubles it for lookups with l bits (a shorter
	// code has the same entry whatever the bits after it), and the codes
	// of l bits then take one entry each.
	//
	// A code longer than rootBits goes in the subtable of its first
	// rootBits bits (codes with the same first bits are consecutive); a
	// new subtable is made as big as the codes left can fill, which keeps
	// the whole within the sizes above.
	next := 1 << rootBits // where the next subtable goes
	prefix := -1          // the first bits of the current subtable's codes
	var sub, subBits uint
	code, i := 0, 0
	for l := uint(1); l <= max(maxLen, rootBits); l++ {
		if l > 1 && l <= rootBits {
			copy(root[1<<(l-1):1<<l], root[:1<<(l-1)])
		}
		for range count[l] {
			e := info[sorted[i]] | uint32(l)
			i++
			rev := int(bits.Reverse16(uint16(code)) >> (16 - l))
			code++
			if l <= rootBits {
				root[rev] = e
				continue
			}
			if p := rev & (len(root) - 1); p != prefix {
				prefix = p
				subBits = l - rootBits
				free := 1 << subBits
				for subBits+rootBits < maxLen {
					free -= count[subBits+rootBits]
					if free <= 0 {
						break
					}
					subBits++
					free <<= 1
				}
				if next+1<<subBits > len(table) {
					return 0, false
				}
				sub = uint(next)
				root[p] = flagSub | uint32(sub)<<16 | uint32(subBits)<<8
				next += 1 << subBits
			}
			for j := rev >> rootBits; j < 1<<subBits; j += 1 << (l - rootBits) {
				table[int(sub)+j] = e
			}
			count[l]-- // the sizing above counts the codes still to come
		}
		code <<= 1
	}
	return minLen, true
}
