package hpack

import "errors"

// huffmanLen is the length in bits of each symbol's code in the Huffman
// code of RFC 7541 Appendix B; index 256 is EOS. The code is canonical
// (Appendix B: "a canonical Huffman code"): codes of one length are
// consecutive in the order of their symbols, and each length's first code
// follows the last code of the length before, shifted left. So the
// lengths alone give the codes, which newHuffman computes.
var huffmanLen = [257]uint8{
	13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0-15
	28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16-31
	6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // ' ' to '/'
	5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // '0' to '?'
	13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // '@' to 'O'
	7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 'P' to '_'
	15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // '`' to 'o'
	6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 'p' to 127
	20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128-143
	24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144-159
	22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160-175
	21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176-191
	26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192-207
	19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208-223
	20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224-239
	26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240-255
	30, // EOS
}

const (
	eos        = 256
	maxCodeLen = 30
)

// huffmanCode holds the code's tables, computed once from huffmanLen.
type huffmanCode struct {
	code [257]uint32 // each symbol's code, in its low huffmanLen bits
	// For canonical decoding: first[l] is the first code of length l,
	// count[l] how many codes have length l, and index[l] where those
	// symbols begin in sorted, the symbols ordered by length, then value.
	first  [maxCodeLen + 1]uint32
	count  [maxCodeLen + 1]uint32
	index  [maxCodeLen + 1]uint32
	sorted [257]uint16
}

var huffman = newHuffman()

func newHuffman() *huffmanCode {
	h := &huffmanCode{}
	for _, l := range huffmanLen {
		h.count[l]++
	}
	var code, idx uint32
	for l := 1; l <= maxCodeLen; l++ {
		code = (code + h.count[l-1]) << 1
		h.first[l] = code
		h.index[l] = idx
		idx += h.count[l]
	}
	next := h.first
	pos := h.index
	for sym, l := range huffmanLen {
		h.code[sym] = next[l]
		next[l]++
		h.sorted[pos[l]] = uint16(sym)
		pos[l]++
	}
	return h
}

// HuffmanLen returns the length in bytes of s Huffman-coded.
func HuffmanLen(s string) int {
	bits := 0
	for i := 0; i < len(s); i++ {
		bits += int(huffmanLen[s[i]])
	}
	return (bits + 7) / 8
}

// AppendHuffman appends s Huffman-coded to dst, padded with the most
// significant bits of EOS, all ones (RFC 7541 §5.2).
func AppendHuffman(dst []byte, s string) []byte {
	var acc uint64 // bits not yet appended, in the low n bits
	n := uint(0)
	for i := 0; i < len(s); i++ {
		l := uint(huffmanLen[s[i]])
		acc = acc<<l | uint64(huffman.code[s[i]])
		n += l
		for n >= 8 {
			n -= 8
			dst = append(dst, byte(acc>>n))
		}
	}
	if n > 0 {
		dst = append(dst, byte(acc<<(8-n))|byte(0xff>>n))
	}
	return dst
}

// Errors of Huffman decoding: each makes the header block undecodable, a
// COMPRESSION_ERROR (RFC 7541 §5.2).
var (
	ErrHuffmanEOS     = errors.New("hpack: Huffman string holds EOS")
	ErrHuffmanPadding = errors.New("hpack: Huffman padding longer than 7 bits or not the prefix of EOS")
)

// AppendHuffmanDecoded appends the decoding of the Huffman-coded p to dst.
func AppendHuffmanDecoded(dst, p []byte) ([]byte, error) {
	h := huffman
	var code uint32 // bits of the symbol being decoded
	l := 0          // how many
	ones := true    // all of them are ones
	for _, b := range p {
		for i := 7; i >= 0; i-- {
			bit := uint32(b>>uint(i)) & 1
			code = code<<1 | bit
			l++
			ones = ones && bit == 1
			if code-h.first[l] < h.count[l] {
				sym := h.sorted[h.index[l]+code-h.first[l]]
				if sym == eos {
					// §5.2: "A Huffman-encoded string literal
					// containing the EOS symbol MUST be treated as a
					// decoding error."
					return dst, ErrHuffmanEOS
				}
				dst = append(dst, byte(sym))
				code, l, ones = 0, 0, true
			} else if l == maxCodeLen {
				return dst, ErrHuffmanEOS // unreachable: the code is complete
			}
		}
	}
	// §5.2: "A padding strictly longer than 7 bits MUST be treated as a
	// decoding error. A padding not corresponding to the most significant
	// bits of the code for the EOS symbol MUST be treated as a decoding
	// error."
	if l > 7 || !ones {
		return dst, ErrHuffmanPadding
	}
	return dst, nil
}
