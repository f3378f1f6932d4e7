package websocket

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
)

// maskBytes XORs b with the masking key (RFC 6455 §5.3), starting at byte
// pos of the key's 4-byte cycle, and returns the position after b, so a
// payload can be masked or unmasked in pieces as it arrives.
//
// It works on the key repeated to 64 bits, 64 bytes a round, then 8, then
// 4; indexing capped subslices lets the compiler drop bounds checks.
func maskBytes(key [4]byte, pos int, b []byte) int {
	pos &= 3
	n := len(b)
	// Rotate the key so that its byte pos comes first: in little-endian
	// order, the first byte of b meets the low byte of k.
	k32 := bits.RotateLeft32(binary.LittleEndian.Uint32(key[:]), -8*pos)
	k := uint64(k32) | uint64(k32)<<32
	i := 0
	for ; i+64 <= n; i += 64 {
		w := b[i : i+64 : i+64]
		binary.LittleEndian.PutUint64(w[0:], binary.LittleEndian.Uint64(w[0:])^k)
		binary.LittleEndian.PutUint64(w[8:], binary.LittleEndian.Uint64(w[8:])^k)
		binary.LittleEndian.PutUint64(w[16:], binary.LittleEndian.Uint64(w[16:])^k)
		binary.LittleEndian.PutUint64(w[24:], binary.LittleEndian.Uint64(w[24:])^k)
		binary.LittleEndian.PutUint64(w[32:], binary.LittleEndian.Uint64(w[32:])^k)
		binary.LittleEndian.PutUint64(w[40:], binary.LittleEndian.Uint64(w[40:])^k)
		binary.LittleEndian.PutUint64(w[48:], binary.LittleEndian.Uint64(w[48:])^k)
		binary.LittleEndian.PutUint64(w[56:], binary.LittleEndian.Uint64(w[56:])^k)
	}
	for ; i+8 <= n; i += 8 {
		w := b[i : i+8 : i+8]
		binary.LittleEndian.PutUint64(w, binary.LittleEndian.Uint64(w)^k)
	}
	if i+4 <= n {
		w := b[i : i+4 : i+4]
		binary.LittleEndian.PutUint32(w, binary.LittleEndian.Uint32(w)^k32)
		i += 4
	}
	for j := range b[i:] {
		b[i+j] ^= byte(k32 >> (8 * j))
	}
	return (pos + n) & 3
}

// maskKeys hands out masking keys drawn from crypto/rand, as RFC 6455 §5.3
// asks ("derived from a strong source of entropy"), fetched 16 keys at a time.
// It is not safe for concurrent use: a Conn draws keys under its pendMu.
type maskKeys struct {
	buf  [64]byte
	left int // unused bytes at the end of buf
}

func (m *maskKeys) next() [4]byte {
	if m.left == 0 {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+).
		rand.Read(m.buf[:])
		m.left = len(m.buf)
	}
	var k [4]byte
	copy(k[:], m.buf[len(m.buf)-m.left:])
	m.left -= 4
	return k
}
