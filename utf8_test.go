package websocket

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// utf8Vectors are the boundaries of the Unicode Standard's Table 3-7
// (well-formed UTF-8 byte sequences) and the ways to break them. valid is
// written out rather than taken from utf8.Valid, so the table checks both.
var utf8Vectors = []struct {
	name  string
	in    string
	valid bool
}{
	{"empty", "", true},
	{"NUL", "\x00", true},
	{"ASCII", "Hello, world", true},
	{"7F", "\x7f", true},
	{"80 lone continuation", "\x80", false},
	{"BF lone continuation", "\xbf", false},
	{"continuation after ASCII", "abc\x80", false},
	{"continuation after 8 ASCII", "abcdefgh\x80", false},
	{"continuation after character", "\xc2\x80\x80", false},
	{"C0 80 overlong NUL", "\xc0\x80", false},
	{"C1 BF overlong", "\xc1\xbf", false},
	{"C2 80", "\xc2\x80", true},
	{"DF BF", "\xdf\xbf", true},
	{"C2 truncated", "\xc2", false},
	{"C2 7F", "\xc2\x7f", false},
	{"C2 C0", "\xc2\xc0", false},
	{"E0 A0 80", "\xe0\xa0\x80", true},
	{"E0 BF BF", "\xe0\xbf\xbf", true},
	{"E0 9F BF overlong", "\xe0\x9f\xbf", false},
	{"E0 80 80 overlong", "\xe0\x80\x80", false},
	{"E0 A0 truncated", "\xe0\xa0", false},
	{"E1 80 80", "\xe1\x80\x80", true},
	{"EC BF BF", "\xec\xbf\xbf", true},
	{"E1 7F 80", "\xe1\x7f\x80", false},
	{"E1 80 C0", "\xe1\x80\xc0", false},
	{"ED 80 80", "\xed\x80\x80", true},
	{"ED 9F BF", "\xed\x9f\xbf", true},
	{"ED A0 80 surrogate", "\xed\xa0\x80", false},
	{"ED BF BF surrogate", "\xed\xbf\xbf", false},
	{"ED A0 80 ED B0 80 surrogate pair", "\xed\xa0\x80\xed\xb0\x80", false},
	{"EE 80 80", "\xee\x80\x80", true},
	{"EF BF BF", "\xef\xbf\xbf", true},
	{"EF BF truncated", "\xef\xbf", false},
	{"F0 90 80 80", "\xf0\x90\x80\x80", true},
	{"F0 BF BF BF", "\xf0\xbf\xbf\xbf", true},
	{"F0 8F BF BF overlong", "\xf0\x8f\xbf\xbf", false},
	{"F0 80 80 80 overlong", "\xf0\x80\x80\x80", false},
	{"F0 90 80 truncated", "\xf0\x90\x80", false},
	{"F1 80 80 80", "\xf1\x80\x80\x80", true},
	{"F3 BF BF BF", "\xf3\xbf\xbf\xbf", true},
	{"F1 80 80 truncated", "\xf1\x80\x80", false},
	{"F1 80 80 7F", "\xf1\x80\x80\x7f", false},
	{"F4 80 80 80", "\xf4\x80\x80\x80", true},
	{"F4 8F BF BF", "\xf4\x8f\xbf\xbf", true},
	{"F4 90 80 80 above U+10FFFF", "\xf4\x90\x80\x80", false},
	{"F4 BF BF BF", "\xf4\xbf\xbf\xbf", false},
	{"F5 80 80 80", "\xf5\x80\x80\x80", false},
	{"F7 BF BF BF", "\xf7\xbf\xbf\xbf", false},
	{"F8 5-byte form", "\xf8\x88\x80\x80\x80", false},
	{"FC 6-byte form", "\xfc\x84\x80\x80\x80\x80", false},
	{"FE", "\xfe", false},
	{"FF", "\xff", false},
	{"Greek", "κόσμε", true},
	{"mixed scripts", "Hello-µ@ßöäüàá-UTF-8!! Привет 你好 𝄞 🎉", true},
	{"Greek then invalid", "κόσμε\xed\xa0\x80edited", false},
	{"long ASCII then 4-byte", strings.Repeat("a", 37) + "\xf0\x9f\x98\x80" + strings.Repeat("b", 19), true},
	{"long ASCII then truncated at end", strings.Repeat("a", 37) + "\xf0\x9f\x98", false},
	{"long ASCII then bad byte", strings.Repeat("a", 16) + "\xff" + strings.Repeat("a", 16), false},
	{"every byte of U+0080-U+07FF and ASCII", "\x01\xc2\x80\x7f\xdf\xbf\x20", true},
}

// firstBad returns the index of the first byte of p after which no bytes
// could make p valid UTF-8, or -1 if every prefix can still be completed.
// It decodes p with the standard library: a prefix can be completed when
// it is valid up to a tail that utf8.FullRune says is the start of a
// character rather than a whole (valid or invalid) one.
func firstBad(p []byte) int {
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			if !utf8.FullRune(p[i:]) {
				return -1 // an incomplete character at the end
			}
			// The character at i is invalid; find the byte that made it so.
			for k := i + 1; k <= len(p); k++ {
				if utf8.FullRune(p[i:k]) {
					return k - 1
				}
			}
		}
		i += size
	}
	return -1
}

func TestUTF8FirstBad(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"", -1},
		{"abc", -1},
		{"\xf0\x90\x80", -1},
		{"\x80", 0},
		{"ab\xe0\x9f", 3},
		{"ab\xf4\x8f\xbf\x7f", 5},
		{"\xed\xa0\x80", 1},
	} {
		if got := firstBad([]byte(tt.in)); got != tt.want {
			t.Errorf("firstBad(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// validateChunks feeds the chunks to a new validator. It returns the index
// of the first chunk write refused (or -1) and whether the text is complete.
func validateChunks(chunks ...[]byte) (refused int, complete bool) {
	var v utf8Validator
	refused = -1
	for i, c := range chunks {
		if !v.write(c) {
			refused = i
			break
		}
	}
	return refused, v.complete()
}

// checkUTF8Chunks checks a validator fed chunks, whose concatenation is p,
// against utf8.Valid and firstBad: it must refuse exactly the chunk holding
// the first byte that makes p unextendable, and call the text complete
// exactly when p is valid.
func checkUTF8Chunks(t *testing.T, name string, p []byte, chunks ...[]byte) {
	t.Helper()
	wantRefused := -1
	if bad := firstBad(p); bad >= 0 {
		for i, off := 0, 0; i < len(chunks); i++ {
			off += len(chunks[i])
			if bad < off {
				wantRefused = i
				break
			}
		}
	}
	refused, complete := validateChunks(chunks...)
	if refused != wantRefused {
		t.Errorf("%s: %q split %q: write refused chunk %d, want %d", name, p, chunks, refused, wantRefused)
	}
	if want := utf8.Valid(p); refused < 0 && complete != want {
		t.Errorf("%s: %q split %q: complete() = %v, want %v", name, p, chunks, complete, want)
	}
}

func TestUTF8Validator(t *testing.T) {
	t.Parallel()
	for _, tt := range utf8Vectors {
		p := []byte(tt.in)
		if utf8.Valid(p) != tt.valid {
			t.Fatalf("%s: table says valid=%v, utf8.Valid says %v", tt.name, tt.valid, !tt.valid)
		}
		var v utf8Validator
		if got := v.write(p) && v.complete(); got != tt.valid {
			t.Errorf("%s: validator on %q = %v, want %v", tt.name, p, got, tt.valid)
		}
		checkUTF8Chunks(t, tt.name, p, p)
		for i := 0; i <= len(p); i++ {
			checkUTF8Chunks(t, tt.name, p, p[:i], p[i:])
			for j := i; j <= len(p); j++ {
				checkUTF8Chunks(t, tt.name, p, p[:i], p[i:j], p[j:])
			}
		}
	}
}

// TestUTF8ValidatorLong embeds each vector in longer text, ASCII and
// multilingual, so that chunks of every size up to a few hundred bytes
// carry it, and checks every split in two and random splits in three.
func TestUTF8ValidatorLong(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	pads := []string{
		"",
		strings.Repeat("x", 61),
		strings.Repeat("0123456789", 13),
		strings.Repeat("κόσμε €𝄞", 9),
	}
	for _, tt := range utf8Vectors {
		for _, before := range pads {
			for _, after := range pads[:3] {
				p := []byte(before + tt.in + after)
				if utf8.Valid(p) != tt.valid {
					t.Fatalf("%s: padding changed the validity", tt.name)
				}
				for i := 0; i <= len(p); i++ {
					checkUTF8Chunks(t, tt.name, p, p[:i], p[i:])
				}
				for range 50 {
					i := rng.IntN(len(p) + 1)
					j := i + rng.IntN(len(p)-i+1)
					checkUTF8Chunks(t, tt.name, p, p[:i], p[i:j], p[j:])
				}
			}
		}
	}
}

// TestUTF8ValidatorFailFast pins the refusal on exact positions: the
// validator must refuse at the byte that makes the text unextendable, not
// later when the character would have ended.
func TestUTF8ValidatorFailFast(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in  string
		bad int // index of the first byte write must refuse
	}{
		{"\x80", 0},
		{"\xc0", 0},
		{"\xc1", 0},
		{"\xf5", 0},
		{"\xff", 0},
		{"\xe0\x9f", 1},  // overlong, at the second byte
		{"\xed\xa0", 1},  // surrogate, at the second byte
		{"\xf0\x8f", 1},  // overlong, at the second byte
		{"\xf4\x90", 1},  // above U+10FFFF, at the second byte
		{"\xe1\x80a", 2}, // ASCII where a continuation was due
		{"\xf1\x80\x80\xc2", 3},
		{"0123456789\xff", 10},
	} {
		p := []byte(tt.in)
		for i := 0; i < tt.bad; i++ {
			var v utf8Validator
			if !v.write(p[:i+1]) {
				t.Errorf("%q: write refused the prefix %q, which can still be completed", tt.in, p[:i+1])
			}
		}
		// One byte at a time: the refusal comes with byte bad.
		var v utf8Validator
		for i := range p {
			ok := v.write(p[i : i+1])
			if ok != (i < tt.bad) {
				t.Errorf("%q: write of byte %d (%#x) = %v, want %v", tt.in, i, p[i], ok, i < tt.bad)
				break
			}
		}
		// Once refused, it stays refused.
		if v.write([]byte("a")) || v.complete() {
			t.Errorf("%q: validator accepts more text after refusing", tt.in)
		}
	}
}

func TestUTF8ValidatorComplete(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"", true},
		{"a", true},
		{"\xc2", false},
		{"\xe0\xa0", false},
		{"\xe2", false},
		{"\xf0\x90\x80", false},
		{"\xf4\x8f", false},
		{"abcdefgh\xe2\x82", false},
		{"abcdefgh\xe2\x82\xac", true},
	} {
		var v utf8Validator
		if !v.write([]byte(tt.in)) {
			t.Errorf("write(%q) = false, want true", tt.in)
		}
		if got := v.complete(); got != tt.want {
			t.Errorf("after %q, complete() = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestUTF8ValidatorReset(t *testing.T) {
	t.Parallel()
	var v utf8Validator
	if v.write([]byte("\xff")) {
		t.Fatal(`write("\xff") = true`)
	}
	v.reset()
	if !v.write([]byte("é")) || !v.complete() {
		t.Error("after reset, the validator refuses valid text")
	}
	v.write([]byte("\xc3"))
	v.reset()
	if !v.complete() || !v.write([]byte("a")) {
		t.Error("after reset, the validator remembers a truncated character")
	}
}

// TestUTF8ValidatorRandom compares the validator with the standard library
// on random byte strings, built from the bytes at the boundaries of the
// well-formed ranges and from valid characters, fed in random chunks.
func TestUTF8ValidatorRandom(t *testing.T) {
	t.Parallel()
	alphabet := []byte{
		0x00, 'a', 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2,
		0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff,
	}
	valid := []string{"a", "0123456789abcdef", "é", "€", "𝄞", "\u07ff", "\ud7ff", "\ue000", "\U0010ffff"}
	rng := rand.New(rand.NewPCG(3, 4))
	for k := range 20000 {
		// Most strings are short and dense with boundary bytes; some are
		// long stretches of valid text with a few such bytes.
		var p []byte
		if k%4 == 0 {
			for range rng.IntN(80) {
				if rng.IntN(40) == 0 {
					p = append(p, alphabet[rng.IntN(len(alphabet))])
				} else {
					p = append(p, valid[rng.IntN(len(valid))]...)
				}
			}
		} else {
			p = make([]byte, rng.IntN(24))
			for i := range p {
				p[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		maxChunk := 6
		if len(p) > 64 {
			maxChunk = 200
		}
		var chunks [][]byte
		for rest := p; ; {
			n := min(rng.IntN(maxChunk), len(rest))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
			if len(rest) == 0 {
				break
			}
		}
		checkUTF8Chunks(t, "random", p, chunks...)
		if t.Failed() {
			return
		}
	}
}

func utf8BenchText(kind string, n int) []byte {
	unit := "The quick brown fox jumps over the lazy dog. "
	if kind == "multilingual" {
		unit = "Hello κόσμε Привет мир 你好世界 こんにちは 𝄞🎉 ünïcödé "
	}
	b := []byte(strings.Repeat(unit, n/len(unit)+1)[:n])
	// Cut at a character boundary so the text stays valid.
	for !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return b
}

func BenchmarkUTF8(b *testing.B) {
	for _, kind := range []string{"ascii", "multilingual"} {
		for _, n := range []int{16, 1 << 10, 64 << 10} {
			p := utf8BenchText(kind, n)
			b.Run(fmt.Sprintf("%s/%d/validator", kind, n), func(b *testing.B) {
				b.SetBytes(int64(len(p)))
				b.ReportAllocs()
				var v utf8Validator
				for b.Loop() {
					v.reset()
					if !v.write(p) || !v.complete() {
						b.Fatal("validator refused valid text")
					}
				}
			})
			b.Run(fmt.Sprintf("%s/%d/utf8.Valid", kind, n), func(b *testing.B) {
				b.SetBytes(int64(len(p)))
				b.ReportAllocs()
				for b.Loop() {
					if !utf8.Valid(p) {
						b.Fatal("utf8.Valid refused valid text")
					}
				}
			})
		}
	}
}

func FuzzUTF8Validator(f *testing.F) {
	f.Add([]byte{1}, []byte("κόσμε"))
	f.Add([]byte{3, 0, 1}, []byte("\xf0\x9f\x98\x80 ok \xed\xa0\x80"))      // a surrogate after an emoji
	f.Add([]byte{2}, []byte("abc\xf4\x90\x80\x80"))                         // above U+10FFFF
	f.Add([]byte{9}, []byte("12345678\xe0\x80\xaf"))                        // overlong
	f.Add([]byte{5, 1}, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce")) // ends inside a character
	f.Fuzz(func(t *testing.T, sizes, data []byte) {
		bad := firstBad(data)
		if bad >= 0 && utf8.Valid(data) {
			t.Fatalf("reference finds byte %d of valid UTF-8 %q bad", bad, data)
		}
		var v utf8Validator
		for round := range 2 {
			chunks := fuzzChunks(sizes, data)
			if round == 1 {
				// After reset, the same text in one piece.
				v.reset()
				chunks = [][]byte{data}
			}
			off := 0
			for _, c := range chunks {
				ok := v.write(c)
				if holdsBad := bad >= off && bad < off+len(c); ok == holdsBad {
					t.Fatalf("round %d: write of bytes %d..%d of %q = %v; first bad byte is %d",
						round, off, off+len(c), data, ok, bad)
				}
				if !ok {
					break
				}
				off += len(c)
			}
			if got, want := v.complete(), utf8.Valid(data); got != want {
				t.Fatalf("round %d: complete() = %v after %q, want %v", round, got, data, want)
			}
		}
	})
}
