package hpack

// Header blocks fed arbitrary bytes, and header lists encoded and decoded
// back: FuzzDecode and FuzzEncode, and refDecoder, the reference for the
// dynamic table.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// refDecoder decodes as Decoder does, with the plainest dynamic table: a
// slice, newest entry first, evicted from its end. It is the reference
// for Decoder's ring.
type refDecoder struct {
	maxSize, limit uint64
	table          []Field
}

func (r *refDecoder) size() uint64 {
	var n uint64
	for _, f := range r.table {
		n += f.size()
	}
	return n
}

func (r *refDecoder) field(i uint64) (Field, bool) {
	switch {
	case i == 0:
		return Field{}, false
	case i <= uint64(len(staticTable)):
		return staticTable[i-1], true
	case i-uint64(len(staticTable)) <= uint64(len(r.table)):
		return r.table[i-uint64(len(staticTable))-1], true
	}
	return Field{}, false
}

// evict drops the oldest entries until the table holds at most max bytes.
func (r *refDecoder) evict(max uint64) {
	for r.size() > max {
		r.table = r.table[:len(r.table)-1]
	}
}

// decode returns the fields of block, all of them, and whether the block
// decodes (RFC 7541 §6).
func (r *refDecoder) decode(block []byte) ([]Field, bool) {
	var out []Field
	for len(block) > 0 {
		b := block[0]
		var i uint64
		var err error
		switch {
		case b&0x80 != 0:
			i, block, err = readInt(block, 7)
			f, ok := r.field(i)
			if err != nil || !ok {
				return out, false
			}
			out = append(out, f)
		case b&0xe0 == 0x20:
			i, block, err = readInt(block, 5)
			if err != nil || len(out) > 0 || i > r.maxSize {
				return out, false
			}
			r.limit = i
			r.evict(i)
		default:
			index := b&0xc0 == 0x40
			prefix := uint(4)
			if index {
				prefix = 6
			}
			var f Field
			if i, block, err = readInt(block, prefix); err != nil {
				return out, false
			}
			if i == 0 {
				f.Name, block, err = readString(block)
			} else {
				e, ok := r.field(i)
				if !ok {
					return out, false
				}
				f.Name = e.Name
			}
			if err != nil {
				return out, false
			}
			if f.Value, block, err = readString(block); err != nil {
				return out, false
			}
			if index {
				r.table = slices.Insert(r.table, 0, f)
				r.evict(r.limit)
			}
			out = append(out, f)
		}
	}
	return out, true
}

// decodeAllocated returns what decoding block with d allocates, run
// twice on copies of d, the lesser of the two: what another goroutine
// allocates meanwhile counts too, and seldom twice. runtime.ReadMemStats
// stops the world, which costs more than decoding a block, so only some
// sessions measure.
func decodeAllocated(d *Decoder, block []byte, maxList uint64) uint64 {
	least := uint64(math.MaxUint64)
	for range 2 {
		c := *d
		c.table = slices.Clone(d.table)
		// Each field takes a byte of the block at least, so emitting
		// into fields allocates nothing.
		fields := make([]Field, 0, len(block))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c.Decode(block, maxList, func(f Field) { fields = append(fields, f) })
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// listSize is the size of fields as SETTINGS_MAX_HEADER_LIST_SIZE counts.
func listSize(fields []Field) uint64 {
	var n uint64
	for _, f := range fields {
		n += f.size()
	}
	return n
}

// checkTable compares d's dynamic table with r's, entry by entry, and
// checks that d's ring is no larger than its size limit requires.
func checkTable(d *Decoder, r *refDecoder) error {
	if d.limit != r.limit || d.size != r.size() || d.n != len(r.table) {
		return fmt.Errorf("table of %d entries, %d bytes, limit %d; the reference has %d, %d, %d",
			d.n, d.size, d.limit, len(r.table), r.size(), r.limit)
	}
	for i, want := range r.table {
		if got, ok := d.entry(uint64(len(staticTable) + 1 + i)); !ok || got != want {
			return fmt.Errorf("dynamic entry %d: %q, want %q", i+1, got, want)
		}
	}
	// Each entry takes at least 32 bytes, and the ring doubles when full.
	if most := max(8, 2*int(d.maxSize/32)); len(d.table) > most {
		return fmt.Errorf("ring of %d entries for a table of %d bytes, past %d", len(d.table), d.maxSize, most)
	}
	return nil
}

// decodeSession decodes blocks in order with one Decoder whose table may
// grow to tableSize bytes, each block with the header list limit maxList,
// and returns the first property broken:
//   - Decode returns nil, ErrListTooLarge or a DecodingError, and the
//     reference decodes the block exactly when Decode does;
//   - the fields emitted are the reference's, as many as fit in maxList,
//     and ErrListTooLarge says that some did not;
//   - the dynamic table is the reference's after each block, and its ring
//     no larger than tableSize requires;
//   - what Decode allocates (when measure is set) is bounded by the
//     block's length and the growth of its ring, never by a length, an
//     index or a size that the block claims;
//   - the fields of a block, encoded by AppendField, decode to the same.
//
// The session ends at the first DecodingError, as the connection would.
func decodeSession(tableSize uint16, maxList uint32, measure bool, blocks [][]byte) error {
	d := NewDecoder(uint32(tableSize))
	r := &refDecoder{maxSize: uint64(tableSize), limit: uint64(tableSize)}
	for n, block := range blocks {
		var allocated uint64
		if measure {
			allocated = decodeAllocated(d, block, uint64(maxList))
		}
		ring := len(d.table)
		var got []Field
		err := d.Decode(block, uint64(maxList), func(f Field) { got = append(got, f) })
		want, ok := r.decode(block)
		var de DecodingError
		switch {
		case err != nil && err != ErrListTooLarge && !errors.As(err, &de):
			return fmt.Errorf("block %d: error %v of type %T", n, err, err)
		case !ok && !errors.As(err, &de):
			return fmt.Errorf("block %d (%x) decoded (%v), the reference refuses it", n, block, err)
		case ok && errors.As(err, &de):
			return fmt.Errorf("block %d (%x): %v; the reference decodes it to %q", n, block, err, want)
		}
		// A string takes two allocations at most, a Huffman buffer and
		// the string, each at most 8/5 of its bytes in the block plus
		// one (the shortest code has 5 bits), rounded up to a size
		// class: under 32 bytes for each byte of the block, its length
		// prefix counted. Growing the ring allocates at most twice its
		// final size; an error's message a few hundred bytes.
		allowed := 32*uint64(len(block)) + 512
		if len(d.table) != ring {
			allowed += 2 * 32 * uint64(len(d.table))
		}
		if allocated > allowed {
			return fmt.Errorf("block %d of %d bytes: Decode allocated %d bytes, past %d", n, len(block), allocated, allowed)
		}
		if !ok {
			return nil
		}
		fit := 0
		for size := uint64(0); fit < len(want); fit++ {
			if size += want[fit].size(); size > uint64(maxList) {
				break
			}
		}
		if !slices.Equal(got, want[:fit]) {
			return fmt.Errorf("block %d (%x): emitted %q, want %q", n, block, got, want[:fit])
		}
		if tooLarge := fit < len(want); tooLarge != (err == ErrListTooLarge) {
			return fmt.Errorf("block %d: list of %d bytes, limit %d: %v", n, listSize(want), maxList, err)
		}
		if err := checkTable(d, r); err != nil {
			return fmt.Errorf("block %d (%x): %v", n, block, err)
		}
		if err := roundTrip(want, 0); err != nil {
			return fmt.Errorf("block %d re-encoded: %v", n, err)
		}
	}
	return nil
}

// roundTrip encodes fields with AppendField and decodes them with a new
// Decoder whose table may hold tableSize bytes, checking that they come
// back the same, in order, that nothing entered the table (the encoder
// never indexes), and that the list's limit cuts it where it should.
func roundTrip(fields []Field, tableSize uint32) error {
	var block []byte
	for _, f := range fields {
		before := len(block)
		block = AppendField(block, f)
		// Each field encoded alone is the same bytes.
		if one := AppendField(nil, f); string(one) != string(block[before:]) {
			return fmt.Errorf("%q encoded as %x alone, %x after other fields", f, one, block[before:])
		}
	}
	size := listSize(fields)
	for _, limit := range []uint64{size, size - 1} {
		if limit > size { // size 0: no smaller limit
			continue
		}
		d := NewDecoder(tableSize)
		var got []Field
		err := d.Decode(block, limit, func(f Field) { got = append(got, f) })
		want, wantErr := fields, error(nil)
		if limit < size {
			want, wantErr = fields[:len(fields)-1], ErrListTooLarge
		}
		if err != wantErr || !slices.Equal(got, want) {
			return fmt.Errorf("%x with a limit of %d: %q, %v; want %q, %v", block, limit, got, err, want, wantErr)
		}
		if d.n != 0 || d.size != 0 {
			return fmt.Errorf("%x left %d entries in the table", block, d.n)
		}
	}
	return nil
}

// literal is the representation of a literal field with incremental
// indexing and a literal name (RFC 7541 §6.2.1), the strings
// Huffman-coded when that is shorter.
func literal(name, value string) []byte {
	return appendString(appendString([]byte{0x40}, name), value)
}

// FuzzDecode decodes arbitrary header blocks in order with one Decoder
// and checks them against refDecoder (see decodeSession). lens cuts data
// into blocks, each of its bytes a block of that many bytes (less if data
// runs out); the rest of data is the last block. tableSize is the dynamic
// table's limit, maxList the header list's; measure has the session
// measure what each block allocates.
func FuzzDecode(f *testing.F) {
	cat := func(blocks ...[]byte) ([]byte, []byte) {
		var lens, data []byte
		for i, b := range blocks {
			if i < len(blocks)-1 {
				lens = append(lens, byte(len(b)))
			}
			data = append(data, b...)
		}
		return lens, data
	}
	add := func(tableSize uint16, maxList uint32, blocks ...[]byte) {
		lens, data := cat(blocks...)
		f.Add(tableSize, maxList, false, lens, data)
		f.Add(tableSize, maxList, true, lens, data)
	}
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	// RFC 7541 C.3 and C.4: requests, one connection, without and with
	// Huffman coding.
	add(4096, 1<<20,
		unhex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
		unhex("8286 84be 5808 6e6f 2d63 6163 6865"),
		unhex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"))
	add(4096, 1<<20,
		unhex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
		unhex("8286 84be 5886 a8eb 1064 9cbf"),
		unhex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"))
	// RFC 7541 C.5: responses with a table of 256 bytes, which evicts.
	var c5 [][]byte
	for _, b := range rfcC5 {
		c5 = append(c5, unhex(b))
	}
	add(256, 1<<20, c5...)
	add(256, 100, c5...) // lists past the limit
	// Huffman-coded literals that fill a small table and are referred to
	// by index, a size update that empties it, and one that refills it.
	add(100, 1<<20,
		append(literal("x-request-id", "0f8fad5b-d9cb-469f"), 0xbe),
		append(append([]byte{0x20, 0x3f, 0x45}, literal("a", "b")...), 0xbe, 0xbe),
		unhex("be 88"))
	// A status and a header a server might answer an extended CONNECT
	// with, the second a Huffman-coded literal without indexing.
	add(4096, 1<<20, append([]byte{0x88}, AppendField(nil, Field{"sec-websocket-protocol", "chat"})...))
	// Decoding errors; the last two claim strings of a megabyte.
	for _, block := range []string{"80", "c0", "7f01 0161", "0003 6162", "3fe2 1f", "8220", "0081 ff0161", "ff",
		"3f e1 ff ff ff 7f", "0fff ffff ffff 0f", "007f ffff 3f", "0f01 ffff ff3f"} {
		add(4096, 1<<20, unhex(block))
	}
	add(0, 0, unhex("40 0161 0162"), unhex("be"))
	f.Fuzz(func(t *testing.T, tableSize uint16, maxList uint32, measure bool, lens, data []byte) {
		var blocks [][]byte
		for _, b := range lens {
			n := min(int(b), len(data))
			blocks = append(blocks, data[:n])
			data = data[n:]
		}
		blocks = append(blocks, data)
		if err := decodeSession(tableSize, maxList, measure, blocks); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzEncode encodes a header list of arbitrary fields with AppendField
// and decodes it back (see roundTrip). shape gives the fields' lengths,
// two bytes a field, the name's and the value's: a byte b below 0xc0 is
// b bytes, one above is (b-0xbf)*256; text gives their bytes in order,
// each cut short where text runs out.
func FuzzEncode(f *testing.F) {
	add := func(fields ...string) {
		var shape, text []byte
		for _, s := range fields {
			shape = append(shape, byte(len(s)))
			text = append(text, s...)
		}
		f.Add(shape, text)
	}
	add(":status", "200") // the static table's whole field
	add(":method", "CONNECT", ":protocol", "websocket", ":scheme", "https",
		":path", "/chat?room=1", ":authority", "example.com:8443",
		"sec-websocket-version", "13", "sec-websocket-extensions", "permessage-deflate; client_max_window_bits")
	add("", "", "accept-encoding", "gzip, deflate", "accept-encoding", "br") // empty, static, static name
	add("x-binary", "\x00\xff\r\n\x7f\x80", "UPPER", "Case", "cookie", "a=b; c=d")
	long := make([]byte, 0, 200)
	for i := range 200 {
		long = append(long, byte('a'+i%26))
	}
	add("x-long", string(long[:127]), "x-longer", string(long)) // lengths past a 7-bit prefix
	f.Add([]byte{4, 0xc4}, []byte("date"))                      // a value longer than the text
	f.Fuzz(func(t *testing.T, shape, text []byte) {
		var fields []Field
		take := func(b byte) string {
			n := int(b)
			if b >= 0xc0 {
				n = int(b-0xbf) * 256
			}
			n = min(n, len(text))
			s := string(text[:n])
			text = text[n:]
			return s
		}
		for i := 0; i+1 < len(shape); i += 2 {
			fields = append(fields, Field{take(shape[i]), take(shape[i+1])})
		}
		if err := roundTrip(fields, 0); err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(fields, 4096); err != nil {
			t.Fatal(err)
		}
	})
}
