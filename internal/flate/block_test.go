package flate

import (
	"testing"

	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// TestSymbolCodes checks the symbol arithmetic against the tables of
// RFC 1951 §3.2.5, for every length and distance.
func TestSymbolCodes(t *testing.T) {
	t.Parallel()
	for length := 3; length <= 258; length++ {
		code, extra := lengthCode(uint(length - 3))
		if length < flatetest.LengthBase[code] || (code < 28 && length >= flatetest.LengthBase[code+1]) || int(extra) != flatetest.LengthExtra[code] {
			t.Errorf("length %d: code %d with %d extra bits", length, 257+code, extra)
		}
		if v := uint(length - 3); int(v&(1<<extra-1)) != length-flatetest.LengthBase[code] {
			t.Errorf("length %d: extra value %d, want %d", length, v&(1<<extra-1), length-flatetest.LengthBase[code])
		}
	}
	for dist := 1; dist <= 32768; dist++ {
		code, extra := distCode(uint(dist - 1))
		if dist < flatetest.DistBase[code] || (code < 29 && dist >= flatetest.DistBase[code+1]) || int(extra) != flatetest.DistExtra[code] {
			t.Fatalf("distance %d: code %d with %d extra bits", dist, code, extra)
		}
		if v := uint(dist - 1); int(v&(1<<extra-1)) != dist-flatetest.DistBase[code] {
			t.Fatalf("distance %d: extra value %d, want %d", dist, v&(1<<extra-1), dist-flatetest.DistBase[code])
		}
	}
}
