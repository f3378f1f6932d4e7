package flate

import (
	"fmt"
	"slices"
	"testing"

	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// TestBuildLengths checks the Huffman code lengths for many
// frequency tables, Fibonacci-like ones among them (whose unlimited code
// is deepest): every code must be complete (Kraft sum exactly 1), within
// its length limit, give every used symbol a code and an unused one none
// (save the partner of a lone symbol), and cost no more than the unlimited
// Huffman code when that one fits the limit.
func TestBuildLengths(t *testing.T) {
	t.Parallel()
	rng := flatetest.RNG(5)
	var h huffScratch
	check := func(name string, freq []uint32, maxBits uint) {
		t.Helper()
		lens := make([]uint8, len(freq))
		h.buildLengths(freq, lens, maxBits)
		used := 0
		for _, f := range freq {
			if f != 0 {
				used++
			}
		}
		kraft := 0 // in units of 2^-maxBits
		for i, l := range lens {
			switch {
			case uint(l) > maxBits:
				t.Fatalf("%s: symbol %d has length %d over %d", name, i, l, maxBits)
			case freq[i] != 0 && l == 0:
				t.Fatalf("%s: used symbol %d has no code", name, i)
			case freq[i] == 0 && l != 0 && used > 1:
				t.Fatalf("%s: unused symbol %d has length %d", name, i, l)
			}
			if l != 0 {
				kraft += 1 << (maxBits - uint(l))
			}
		}
		if used == 0 {
			if kraft != 0 {
				t.Fatalf("%s: codes for no symbols", name)
			}
			return
		}
		if kraft != 1<<maxBits && !(len(freq) == 1 && kraft == 1<<(maxBits-1)) {
			t.Fatalf("%s: Kraft sum %d/%d, want 1 (lengths %v)", name, kraft, 1<<maxBits, lens)
		}
		// Compare with an unlimited Huffman code, built the slow way.
		if used > 1 {
			ws := []int{}
			for _, f := range freq {
				if f != 0 {
					ws = append(ws, int(f))
				}
			}
			optimal := 0
			for len(ws) > 1 {
				slices.Sort(ws)
				w := ws[0] + ws[1]
				optimal += w
				ws = append(ws[2:], w)
			}
			cost := 0
			for i, l := range lens {
				cost += int(freq[i]) * int(l)
			}
			if cost < optimal {
				t.Fatalf("%s: cost %d below the optimum %d", name, cost, optimal)
			}
			deepest := 0
			for _, l := range lens {
				deepest = max(deepest, int(l))
			}
			if deepest < int(maxBits) && cost != optimal {
				t.Fatalf("%s: cost %d, optimum %d", name, cost, optimal)
			}
		}
	}
	for _, maxBits := range []uint{maxCodeBits, maxCodeLenBits} {
		n := numLitSyms
		if maxBits == maxCodeLenBits {
			n = numCodeLenSyms
		}
		check("none", make([]uint32, n), maxBits)
		for sym := range n {
			f := make([]uint32, n)
			f[sym] = 7
			check(fmt.Sprintf("only %d", sym), f, maxBits)
		}
		check("alone", []uint32{5}, maxBits)
		fib := make([]uint32, n)
		a, b := uint32(1), uint32(1)
		for i := range fib {
			fib[i] = min(a, 1<<15)
			a, b = b, a+b
		}
		check("fibonacci", fib, maxBits)
		for i := range 2000 {
			f := make([]uint32, n)
			switch i % 4 {
			case 0: // few symbols, wide spread
				for range 1 + rng.IntN(n) {
					f[rng.IntN(n)] = uint32(1 + rng.IntN(1<<15))
				}
			case 1: // exponential spread: deep trees
				for j := range f {
					f[j] = uint32(1) << rng.IntN(16)
				}
			case 2: // all equal
				for j := range f {
					f[j] = 3
				}
			default:
				for j := range f {
					if rng.IntN(3) == 0 {
						f[j] = uint32(rng.IntN(300))
					}
				}
			}
			check(fmt.Sprintf("random %d", i), f, maxBits)
		}
	}
}
