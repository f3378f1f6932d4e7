package flate

import "testing"

// TestSymbolCodes checks the symbol arithmetic against the tables of
// RFC 1951 §3.2.5, for every length and distance.
func TestSymbolCodes(t *testing.T) {
	t.Parallel()
	for length := 3; length <= 258; length++ {
		code, extra := lengthCode(uint(length - 3))
		if length < testLenBase[code] || (code < 28 && length >= testLenBase[code+1]) || int(extra) != testLenExtra[code] {
			t.Errorf("length %d: code %d with %d extra bits", length, 257+code, extra)
		}
		if v := uint(length - 3); int(v&(1<<extra-1)) != length-testLenBase[code] {
			t.Errorf("length %d: extra value %d, want %d", length, v&(1<<extra-1), length-testLenBase[code])
		}
	}
	for dist := 1; dist <= 32768; dist++ {
		code, extra := distCode(uint(dist - 1))
		if dist < testDistBase[code] || (code < 29 && dist >= testDistBase[code+1]) || int(extra) != testDistExtra[code] {
			t.Fatalf("distance %d: code %d with %d extra bits", dist, code, extra)
		}
		if v := uint(dist - 1); int(v&(1<<extra-1)) != dist-testDistBase[code] {
			t.Fatalf("distance %d: extra value %d, want %d", dist, v&(1<<extra-1), dist-testDistBase[code])
		}
	}
}
