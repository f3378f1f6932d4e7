package hpack

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHuffmanCodes checks codes computed from the lengths against rows of
// the table in RFC 7541 Appendix B, and that the code is complete.
func TestHuffmanCodes(t *testing.T) {
	for _, tt := range []struct {
		sym  int
		code uint32
	}{
		{0, 0x1ff8}, {1, 0x7fffd8}, {9, 0xffffea}, {10, 0x3ffffffc},
		{' ', 0x14}, {'/', 0x18}, {'0', 0x0}, {'<', 0x7ffc}, {'\\', 0x7fff0},
		{'a', 0x3}, {'z', 0x7b}, {'~', 0x1ffd}, {127, 0xffffffc},
		{128, 0xfffe6}, {199, 0x1ffffec}, {220, 0xffffffd}, {254, 0x7fffff0},
		{255, 0x3ffffee}, {eos, 0x3fffffff},
	} {
		if got := huffman.code[tt.sym]; got != tt.code {
			t.Errorf("code of %d: %#x, want %#x", tt.sym, got, tt.code)
		}
	}
	// Kraft: a complete prefix code's 2^-len add up to exactly 1.
	var sum uint64
	for _, l := range huffmanLen {
		sum += 1 << (maxCodeLen - l)
	}
	if sum != 1<<maxCodeLen {
		t.Errorf("Kraft sum %d/2^30, want exactly 1", sum)
	}
}

func TestHuffmanRoundTrip(t *testing.T) {
	var all []byte
	for i := range 256 {
		all = append(all, byte(i))
	}
	for _, s := range []string{"", "a", "www.example.com", "no-cache", string(all), strings.Repeat("\xff\x00", 100)} {
		enc := AppendHuffman(nil, s)
		if len(enc) != HuffmanLen(s) {
			t.Errorf("%q: %d bytes, HuffmanLen says %d", s, len(enc), HuffmanLen(s))
		}
		dec, err := AppendHuffmanDecoded(nil, enc)
		if err != nil || string(dec) != s {
			t.Errorf("%q: decoded to %q, %v", s, dec, err)
		}
	}
	// RFC 7541 C.4.1.
	if got := AppendHuffman(nil, "www.example.com"); hex.EncodeToString(got) != "f1e3c2e5f23a6ba0ab90f4ff" {
		t.Errorf("www.example.com coded as %x", got)
	}
}

func TestHuffmanErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		err  error
	}{
		{"EOS", "ff ff ff ff", ErrHuffmanEOS},            // 30 ones: EOS
		{"padding of 8 ones", "ff", ErrHuffmanPadding},   // a whole byte of padding
		{"padding with a zero", "1e", ErrHuffmanPadding}, // '0' (00000), then 110
		{"a code cut short", "fe", ErrHuffmanPadding},    // 1111111 then 0: no symbol
	} {
		_, err := AppendHuffmanDecoded(nil, unhex(t, tt.in))
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
		}
	}
	// '0' (00000) padded with 111 is fine.
	if got, err := AppendHuffmanDecoded(nil, []byte{0x07}); err != nil || string(got) != "0" {
		t.Errorf("07: %q, %v", got, err)
	}
}

// TestIntegers: RFC 7541 C.1.
func TestIntegers(t *testing.T) {
	for _, tt := range []struct {
		n    uint
		i    uint64
		want string
	}{
		{5, 10, "0a"}, {5, 1337, "1f9a0a"}, {8, 42, "2a"}, {5, 31, "1f00"}, {7, 127 + 128, "7f8001"},
	} {
		got := appendInt(nil, 0, tt.n, tt.i)
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("%d with %d-bit prefix: %x, want %s", tt.i, tt.n, got, tt.want)
		}
		i, rest, err := readInt(got, tt.n)
		if err != nil || i != tt.i || len(rest) != 0 {
			t.Errorf("read back %x: %d, %x, %v", got, i, rest, err)
		}
	}
	for _, bad := range []string{"", "1f", "1f80", "1fffffffffff0f"} {
		if _, _, err := readInt(unhex(t, bad), 5); err == nil {
			t.Errorf("readInt(%s): no error", bad)
		}
	}
}

func decodeAll(t *testing.T, d *Decoder, block []byte) []Field {
	t.Helper()
	var got []Field
	if err := d.Decode(block, 1<<20, func(f Field) { got = append(got, f) }); err != nil {
		t.Fatalf("Decode(%x): %v", block, err)
	}
	return got
}

func checkFields(t *testing.T, got []Field, want ...string) {
	t.Helper()
	var w []Field
	for _, s := range want {
		name, value, _ := strings.Cut(s[1:], ": ")
		w = append(w, Field{s[:1] + name, value})
	}
	if len(got) != len(w) {
		t.Fatalf("got %q, want %q", got, w)
	}
	for i := range w {
		if got[i] != w[i] {
			t.Fatalf("field %d: %q, want %q", i, got[i], w[i])
		}
	}
}

// TestDecodeRFC decodes the examples of RFC 7541 C.2 to C.4, the requests
// of one connection decoded in order by one decoder.
func TestDecodeRFC(t *testing.T) {
	d := NewDecoder(4096)
	checkFields(t, decodeAll(t, d, unhex(t, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")), "custom-key: custom-header")
	if d.size != 55 {
		t.Errorf("table size %d after C.2.1, want 55", d.size)
	}
	d = NewDecoder(4096)
	checkFields(t, decodeAll(t, d, unhex(t, "040c 2f73 616d 706c 652f 7061 7468")), ":path: /sample/path")
	checkFields(t, decodeAll(t, d, unhex(t, "1008 7061 7373 776f 7264 0673 6563 7265 74")), "password: secret")
	checkFields(t, decodeAll(t, d, unhex(t, "82")), ":method: GET")
	if d.n != 0 {
		t.Errorf("%d table entries, want none", d.n)
	}

	for _, huff := range []bool{false, true} {
		d := NewDecoder(4096)
		blocks := []string{
			"8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
			"8286 84be 5808 6e6f 2d63 6163 6865",
			"8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
		}
		if huff {
			blocks = []string{
				"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
				"8286 84be 5886 a8eb 1064 9cbf",
				"8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
			}
		}
		checkFields(t, decodeAll(t, d, unhex(t, blocks[0])), ":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com")
		checkFields(t, decodeAll(t, d, unhex(t, blocks[1])), ":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com", "cache-control: no-cache")
		checkFields(t, decodeAll(t, d, unhex(t, blocks[2])), ":method: GET", ":scheme: https", ":path: /index.html", ":authority: www.example.com", "custom-key: custom-value")
		if d.size != 164 || d.n != 3 {
			t.Errorf("huffman %v: table of %d entries, %d bytes; want 3, 164", huff, d.n, d.size)
		}
	}
}

// rfcC5 are the responses of RFC 7541 C.5, one connection's, with a
// dynamic table of 256 bytes.
var rfcC5 = []string{
	"4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
	"4803 3330 37c1 c0bf",
	"88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
}

// TestDecodeRFCResponses decodes RFC 7541 C.5, whose table evicts.
func TestDecodeRFCResponses(t *testing.T) {
	d := NewDecoder(256)
	checkFields(t, decodeAll(t, d, unhex(t, rfcC5[0])), ":status: 302", "cache-control: private",
		"date: Mon, 21 Oct 2013 20:13:21 GMT", "location: https://www.example.com")
	if d.size != 222 || d.n != 4 {
		t.Errorf("after C.5.1: table of %d entries, %d bytes; want 4, 222", d.n, d.size)
	}
	checkFields(t, decodeAll(t, d, unhex(t, rfcC5[1])), ":status: 307", "cache-control: private",
		"date: Mon, 21 Oct 2013 20:13:21 GMT", "location: https://www.example.com")
	if d.size != 222 || d.n != 4 {
		t.Errorf("after C.5.2: table of %d entries, %d bytes; want 4, 222", d.n, d.size)
	}
	checkFields(t, decodeAll(t, d, unhex(t, rfcC5[2])), ":status: 200", "cache-control: private",
		"date: Mon, 21 Oct 2013 20:13:22 GMT", "location: https://www.example.com", "content-encoding: gzip",
		"set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")
	if d.size != 215 || d.n != 3 {
		t.Errorf("after C.5.3: table of %d entries, %d bytes; want 3, 215", d.n, d.size)
	}
}

// TestEviction: entries leave the table oldest first when it fills, and a
// size update shrinks it.
func TestEviction(t *testing.T) {
	d := NewDecoder(90) // room for one of the two entries, not both
	decodeAll(t, d, unhex(t, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))
	decodeAll(t, d, unhex(t, "4003 6162 6303 7879 7a")) // abc: xyz, 38 bytes
	if d.n != 1 {
		t.Fatalf("%d entries, want 1", d.n)
	}
	checkFields(t, decodeAll(t, d, unhex(t, "be")), "abc: xyz")
	if err := d.Decode(unhex(t, "bf"), 1<<20, func(Field) {}); err == nil {
		t.Error("index 63 of an evicted entry decoded")
	}
	decodeAll(t, d, unhex(t, "20")) // size update to 0
	if d.n != 0 || d.size != 0 {
		t.Errorf("after a size update to 0: %d entries, %d bytes", d.n, d.size)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tt := range []struct{ name, block string }{
		{"index 0", "80"},
		{"index past the table", "c0"},
		{"name index past the table", "7f01 0161"},
		{"string past the block", "0003 6162"},
		{"size update past the maximum", "3fe2 1f"},
		{"size update after a field", "8220"},
		{"bad Huffman", "0081 ff0161"},
		{"truncated integer", "ff"},
	} {
		d := NewDecoder(4096)
		err := d.Decode(unhex(t, tt.block), 1<<20, func(Field) {})
		var de DecodingError
		if !errors.As(err, &de) {
			t.Errorf("%s: %v, want a DecodingError", tt.name, err)
		}
	}
	// A list over the limit is decoded, not emitted past the limit, and
	// leaves the table as the encoder has it.
	d := NewDecoder(4096)
	var got []Field
	err := d.Decode(unhex(t, "8240 0161 0162"), 50, func(f Field) { got = append(got, f) })
	if !errors.Is(err, ErrListTooLarge) || len(got) != 1 || d.n != 1 {
		t.Errorf("over the limit: %v, %q, %d entries", err, got, d.n)
	}
}

func TestAppendField(t *testing.T) {
	for _, tt := range []struct {
		f    Field
		want string
	}{
		{Field{":method", "GET"}, "82"},
		{Field{":status", "200"}, "88"},
		{Field{":method", "CONNECT"}, "0207434f4e4e454354"}, // name index 2, value literal
		{Field{"x", "y"}, "0001780179"},
		{Field{"sec-websocket-version", "13"}, "008f 4148 b782 c683 93a9 52b7 72d8 831e af" + "02 3133"}, // the name Huffman-coded in 15 bytes; "13" would take 2 either way
	} {
		got := AppendField(nil, tt.f)
		if hex.EncodeToString(got) != strings.ReplaceAll(tt.want, " ", "") {
			t.Errorf("%q: %x, want %s", tt.f, got, tt.want)
		}
		checkFields(t, decodeAll(t, NewDecoder(4096), got), tt.f.Name+": "+tt.f.Value)
	}
}
