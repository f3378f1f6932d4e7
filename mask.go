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
// It works 32 and then 8 bytes at a time on the key repeated to 64 bits.
func maskBytes(key [4]byte, pos int, b []byte) int {
	pos &= 3
	if len(b) < 8 {
		for i := range b {
			b[i] ^= key[(pos+i)&3]
		}
		return (pos + len(b)) & 3
	}
	// Rotate the key so that its byte pos comes first: in little-endian
	// order, the first byte of b meets the low byte of k.
	k32 := bits.RotateLeft32(binary.LittleEndian.Uint32(key[:]), -8*pos)
	k := uint64(k32) | uint64(k32)<<32
	n := len(b)
	for len(b) >= 32 {
		v0 := binary.LittleEndian.Uint64(b[0:])
		v1 := binary.LittleEndian.Uint64(b[8:])
		v2 := binary.LittleEndian.Uint64(b[16:])
		v3 := binary.LittleEndian.Uint64(b[24:])
		binary.LittleEndian.PutUint64(b[0:], v0^k)
		binary.LittleEndian.PutUint64(b[8:], v1^k)
		binary.LittleEndian.PutUint64(b[16:], v2^k)
		binary.LittleEndian.PutUint64(b[24:], v3^k)
		b = b[32:]
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= byte(k >> (8 * i))
	}
	return (pos + n) & 3
}

// maskKeys hands out masking keys drawn from crypto/rand, as RFC 6455 §5.3
// asks ("derived from a strong source of entropy"), fetched 16 keys at a time.
// It is used under the connection's write lock.
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
