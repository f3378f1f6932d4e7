package websocket

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// maskRef is the masking of RFC 6455 §5.3 written as the RFC puts it:
// "octet i of the transformed data is the XOR of octet i of the original
// data with octet at index i modulo 4 of the masking key", starting at
// key index pos.
func maskRef(key [4]byte, pos int, b []byte) int {
	for i := range b {
		b[i] ^= key[(pos+i)%4]
	}
	return (pos + len(b)) % 4
}

// testBytes returns n bytes that differ from their neighbours.
func testBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + i>>8 + 1)
	}
	return b
}

var maskTestKey = [4]byte{0x9c, 0x01, 0x5e, 0xe3}

// TestMaskBytesRotation pins the key order on exact bytes: masking zeros
// yields the key itself, starting at pos, on both the byte-wise and the
// word-wise paths.
func TestMaskBytesRotation(t *testing.T) {
	t.Parallel()
	key := [4]byte{0x01, 0x02, 0x03, 0x04}
	for _, tt := range []struct {
		pos, n  int
		want    string
		wantPos int
	}{
		{0, 0, "", 0},
		{2, 0, "", 2},
		{0, 5, "\x01\x02\x03\x04\x01", 1},
		{1, 7, "\x02\x03\x04\x01\x02\x03\x04", 0},
		{1, 9, "\x02\x03\x04\x01\x02\x03\x04\x01\x02", 2},
		{2, 8, "\x03\x04\x01\x02\x03\x04\x01\x02", 2},
		{3, 11, "\x04\x01\x02\x03\x04\x01\x02\x03\x04\x01\x02", 2},
		{3, 40, "\x04\x01\x02\x03\x04\x01\x02\x03\x04\x01\x02\x03\x04\x01\x02\x03\x04\x01\x02\x03" +
			"\x04\x01\x02\x03\x04\x01\x02\x03\x04\x01\x02\x03\x04\x01\x02\x03\x04\x01\x02\x03", 3},
		{5, 3, "\x02\x03\x04", 0}, // positions count modulo 4
	} {
		b := make([]byte, tt.n)
		if pos := maskBytes(key, tt.pos, b); string(b) != tt.want || pos != tt.wantPos {
			t.Errorf("maskBytes(key, %d, %d zeros) = %q, %d; want %q, %d", tt.pos, tt.n, b, pos, tt.want, tt.wantPos)
		}
	}
}

// TestMaskBytesReference compares maskBytes with maskRef for every length
// up to 300 at every key position and slice alignment, and checks that no
// byte outside the slice is touched.
func TestMaskBytesReference(t *testing.T) {
	t.Parallel()
	const guard = 9
	for n := 0; n <= 300; n++ {
		for pos := range 4 {
			for align := range 8 {
				buf := testBytes(align + n + guard)
				want := bytes.Clone(buf)
				wantPos := maskRef(maskTestKey, pos, want[align:align+n])
				gotPos := maskBytes(maskTestKey, pos, buf[align:align+n])
				if gotPos != wantPos || !bytes.Equal(buf, want) {
					t.Fatalf("n=%d pos=%d align=%d: maskBytes = %x, %d; want %x, %d", n, pos, align, buf, gotPos, want, wantPos)
				}
			}
		}
	}
}

// TestMaskBytesSplits masks a payload in pieces, carrying the returned
// position from one piece to the next, as a reader unmasking partial reads
// does; the result must be that of masking it whole.
func TestMaskBytesSplits(t *testing.T) {
	t.Parallel()
	// Every split in two and three of short payloads.
	for n := 0; n <= 70; n++ {
		src := testBytes(n)
		want := bytes.Clone(src)
		maskRef(maskTestKey, 0, want)
		for i := 0; i <= n; i++ {
			for j := i; j <= n; j++ {
				b := bytes.Clone(src)
				pos := maskBytes(maskTestKey, 0, b[:i])
				pos = maskBytes(maskTestKey, pos, b[i:j])
				pos = maskBytes(maskTestKey, pos, b[j:])
				if pos != n%4 || !bytes.Equal(b, want) {
					t.Fatalf("n=%d split at %d,%d: got %x, pos %d; want %x, pos %d", n, i, j, b, pos, want, n%4)
				}
			}
		}
	}
	// Random splits of long payloads, starting at every position.
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{301, 4096, 65535, 65537, 200003} {
		src := testBytes(n)
		for start := range 4 {
			want := bytes.Clone(src)
			wantPos := maskRef(maskTestKey, start, want)
			for range 20 {
				b := bytes.Clone(src)
				pos := start
				for off := 0; off < n; {
					end := min(off+1+rng.IntN(200), n)
					if rng.IntN(8) == 0 {
						end = min(off+1+rng.IntN(20000), n)
					}
					pos = maskBytes(maskTestKey, pos, b[off:end])
					off = end
				}
				if pos != wantPos || !bytes.Equal(b, want) {
					t.Fatalf("n=%d start=%d: random split differs from whole masking (pos %d, want %d)", n, start, pos, wantPos)
				}
			}
		}
	}
}

// TestMaskBytesTwice checks that masking is its own inverse, and that it
// changes the data under a key that is not zero.
func TestMaskBytesTwice(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 7, 8, 31, 32, 33, 1000, 65536} {
		for pos := range 4 {
			src := testBytes(n)
			b := bytes.Clone(src)
			p1 := maskBytes(maskTestKey, pos, b)
			if bytes.Equal(b, src) {
				t.Fatalf("n=%d pos=%d: masking left the data unchanged", n, pos)
			}
			p2 := maskBytes(maskTestKey, pos, b)
			if p1 != p2 || !bytes.Equal(b, src) {
				t.Fatalf("n=%d pos=%d: masking twice did not restore the data", n, pos)
			}
		}
	}
}

// TestMaskKeys draws keys past several refills of the 16-key buffer: each
// must be fresh. (Two equal keys among 100 random ones happen about once
// in a million runs.)
func TestMaskKeys(t *testing.T) {
	t.Parallel()
	var m maskKeys
	seen := make(map[[4]byte]int)
	for i := range 100 {
		k := m.next()
		if k == [4]byte{} {
			t.Errorf("key %d is all zeros", i)
		}
		if j, ok := seen[k]; ok {
			t.Errorf("key %d (%x) repeats key %d", i, k, j)
		}
		seen[k] = i
	}
}

func BenchmarkMask(b *testing.B) {
	for _, n := range []int{16, 125, 1 << 10, 16 << 10, 64 << 10} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := testBytes(n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			pos := 0
			for b.Loop() {
				pos = maskBytes(maskTestKey, pos, p)
			}
		})
	}
}

func BenchmarkMaskKeys(b *testing.B) {
	var m maskKeys
	b.ReportAllocs()
	for b.Loop() {
		m.next()
	}
}

func FuzzMask(f *testing.F) {
	f.Add(uint32(0x37fa213d), byte(0), []byte{1}, []byte("Hello"))
	f.Add(uint32(0x01020304), byte(3), []byte{0, 7, 1, 33, 8}, bytes.Repeat([]byte("abcdefgh"), 20))
	f.Add(uint32(0xffffffff), byte(2), []byte{64}, make([]byte, 200))
	f.Fuzz(func(t *testing.T, k uint32, start byte, sizes, data []byte) {
		var key [4]byte
		binary.BigEndian.PutUint32(key[:], k)
		want := bytes.Clone(data)
		for i := range want {
			want[i] ^= key[(int(start)+i)%4]
		}

		// Mask in place inside a larger buffer, whose guard bytes must stay.
		const guard = 9
		buf := make([]byte, guard+len(data)+guard)
		for i := range buf {
			buf[i] = 0xA5
		}
		got := buf[guard : guard+len(data)]
		copy(got, data)
		pos, off := int(start), 0
		for _, c := range fuzzChunks(sizes, got) {
			next := maskBytes(key, pos, c)
			if wantPos := (pos + len(c)) % 4; next != wantPos {
				t.Fatalf("maskBytes(pos %d, %d bytes at %d) returned %d, want %d", pos, len(c), off, next, wantPos)
			}
			pos, off = next, off+len(c)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("masked in pieces:\n% x\nwant\n% x", got, want)
		}
		for i, b := range slices.Concat(buf[:guard], buf[guard+len(data):]) {
			if b != 0xA5 {
				t.Fatalf("guard byte %d changed to %#x", i, b)
			}
		}
	})
}
