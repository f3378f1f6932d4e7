// Package hpack is the header compression of HTTP/2 (RFC 7541): a decoder
// with its dynamic table, and an encoder that never indexes, so that it
// keeps no state and never needs the peer's table size.
package hpack

import (
	"errors"
	"fmt"
)

// A Field is one header field.
type Field struct {
	Name, Value string
}

// size is the field's size in a dynamic table (§4.1).
func (f Field) size() uint64 { return uint64(len(f.Name)) + uint64(len(f.Value)) + 32 }

// staticTable is RFC 7541 Appendix A; index i+1 is staticTable[i].
var staticTable = [...]Field{
	{":authority", ""}, {":method", "GET"}, {":method", "POST"}, {":path", "/"},
	{":path", "/index.html"}, {":scheme", "http"}, {":scheme", "https"},
	{":status", "200"}, {":status", "204"}, {":status", "206"}, {":status", "304"},
	{":status", "400"}, {":status", "404"}, {":status", "500"},
	{"accept-charset", ""}, {"accept-encoding", "gzip, deflate"},
	{"accept-language", ""}, {"accept-ranges", ""}, {"accept", ""},
	{"access-control-allow-origin", ""}, {"age", ""}, {"allow", ""},
	{"authorization", ""}, {"cache-control", ""}, {"content-disposition", ""},
	{"content-encoding", ""}, {"content-language", ""}, {"content-length", ""},
	{"content-location", ""}, {"content-range", ""}, {"content-type", ""},
	{"cookie", ""}, {"date", ""}, {"etag", ""}, {"expect", ""}, {"expires", ""},
	{"from", ""}, {"host", ""}, {"if-match", ""}, {"if-modified-since", ""},
	{"if-none-match", ""}, {"if-range", ""}, {"if-unmodified-since", ""},
	{"last-modified", ""}, {"link", ""}, {"location", ""}, {"max-forwards", ""},
	{"proxy-authenticate", ""}, {"proxy-authorization", ""}, {"range", ""},
	{"referer", ""}, {"refresh", ""}, {"retry-after", ""}, {"server", ""},
	{"set-cookie", ""}, {"strict-transport-security", ""},
	{"transfer-encoding", ""}, {"user-agent", ""}, {"vary", ""}, {"via", ""},
	{"www-authenticate", ""},
}

// staticField maps a field with a value to its index in staticTable, and
// staticName a name to the index of its first entry.
var staticField, staticName = func() (map[Field]int, map[string]int) {
	f, n := map[Field]int{}, map[string]int{}
	for i, e := range staticTable {
		if e.Value != "" {
			f[e] = i + 1
		}
		if _, ok := n[e.Name]; !ok {
			n[e.Name] = i + 1
		}
	}
	return f, n
}()

// appendInt appends i with an n-bit prefix whose high bits are first's
// (§5.1).
func appendInt(dst []byte, first byte, n uint, i uint64) []byte {
	max := uint64(1)<<n - 1
	if i < max {
		return append(dst, first|byte(i))
	}
	dst = append(dst, first|byte(max))
	i -= max
	for i >= 128 {
		dst = append(dst, byte(i)|0x80)
		i >>= 7
	}
	return append(dst, byte(i))
}

// errInt is the error of an integer that does not end in the block or
// overflows what a decoder accepts.
var errInt = errors.New("hpack: integer truncated or too large")

// readInt reads an integer with an n-bit prefix from p (§5.1), returning
// it and the bytes after it. Integers past 2^32 are refused: no length or
// index in a block can be that large.
func readInt(p []byte, n uint) (uint64, []byte, error) {
	if len(p) == 0 {
		return 0, p, errInt
	}
	max := uint64(1)<<n - 1
	i := uint64(p[0]) & max
	p = p[1:]
	if i < max {
		return i, p, nil
	}
	for shift := uint(0); ; shift += 7 {
		if len(p) == 0 || shift > 28 {
			return 0, p, errInt
		}
		b := p[0]
		p = p[1:]
		i += uint64(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
	}
	if i > 1<<32 {
		return 0, p, errInt
	}
	return i, p, nil
}

// appendString appends s as a string literal (§5.2), Huffman-coded when
// that is shorter.
func appendString(dst []byte, s string) []byte {
	if h := HuffmanLen(s); h < len(s) {
		dst = appendInt(dst, 0x80, 7, uint64(h))
		return AppendHuffman(dst, s)
	}
	dst = appendInt(dst, 0, 7, uint64(len(s)))
	return append(dst, s...)
}

// AppendField appends the representation of f to a header block: indexed
// when the static table holds it whole, else a literal without indexing
// (§6.2.2), with the static table's index for its name when it has one.
// Nothing enters the dynamic table, so the encoder keeps no state.
// Field names must be in lower case (RFC 9113 §8.2.1); the caller checks.
func AppendField(dst []byte, f Field) []byte {
	if i, ok := staticField[f]; ok {
		return appendInt(dst, 0x80, 7, uint64(i)) // §6.1
	}
	if i, ok := staticName[f.Name]; ok {
		dst = appendInt(dst, 0, 4, uint64(i))
	} else {
		dst = append(dst, 0)
		dst = appendString(dst, f.Name)
	}
	return appendString(dst, f.Value)
}

// A DecodingError is a header block that cannot be decoded: a
// COMPRESSION_ERROR of the connection (RFC 9113 §4.3).
type DecodingError struct{ Err error }

func (e DecodingError) Error() string { return "hpack: decoding error: " + e.Err.Error() }
func (e DecodingError) Unwrap() error { return e.Err }

// ErrListTooLarge is returned by Decode when the decoded fields exceed
// the limit given; the block was still decoded to its end, so the
// dynamic table stays in step with the encoder's.
var ErrListTooLarge = errors.New("hpack: header list exceeds its limit")

// A Decoder decodes the header blocks of one direction of a connection,
// in order, keeping the dynamic table (§2.3.2) they build.
type Decoder struct {
	// maxSize is the table's size limit that the peer may use, the
	// SETTINGS_HEADER_TABLE_SIZE we announced; size the table's size;
	// limit the limit the encoder last set, at most maxSize.
	maxSize, limit, size uint64
	// table is a ring of the dynamic table's entries, newest at
	// table[(head+n-1)%len], oldest at table[head].
	table []Field
	head  int
	n     int
}

// NewDecoder returns a decoder whose dynamic table may grow to maxSize
// bytes, the SETTINGS_HEADER_TABLE_SIZE announced to the peer.
func NewDecoder(maxSize uint32) *Decoder {
	return &Decoder{maxSize: uint64(maxSize), limit: uint64(maxSize)}
}

// entry returns the field at index i (§2.3.3).
func (d *Decoder) entry(i uint64) (Field, bool) {
	if i == 0 {
		return Field{}, false
	}
	if i <= uint64(len(staticTable)) {
		return staticTable[i-1], true
	}
	i -= uint64(len(staticTable))
	if i > uint64(d.n) {
		return Field{}, false
	}
	// Index 1 of the dynamic table is the newest entry.
	return d.table[(d.head+d.n-int(i))%len(d.table)], true
}

// add inserts f at the front of the dynamic table, evicting from the end
// what no longer fits (§4.4).
func (d *Decoder) add(f Field) {
	s := f.size()
	if s > d.limit {
		// §4.4: "an attempt to add an entry larger than the maximum size
		// causes the table to be emptied of all existing entries".
		d.evict(0)
		return
	}
	d.evict(d.limit - s)
	if d.n == len(d.table) {
		bigger := make([]Field, max(8, 2*len(d.table)))
		for i := range d.n {
			bigger[i] = d.table[(d.head+i)%len(d.table)]
		}
		d.table, d.head = bigger, 0
	}
	d.table[(d.head+d.n)%len(d.table)] = f
	d.n++
	d.size += s
}

// evict drops the oldest entries until the table's size is at most max.
func (d *Decoder) evict(max uint64) {
	for d.size > max {
		old := &d.table[d.head]
		d.size -= old.size()
		*old = Field{}
		d.head = (d.head + 1) % len(d.table)
		d.n--
	}
}

// Decode decodes a whole header block, calling emit for each field in
// order. Fields whose names and values add up to more than maxList bytes
// (counted as in SETTINGS_MAX_HEADER_LIST_SIZE, RFC 9113 §6.5.2) are not
// emitted, and Decode then returns ErrListTooLarge; any other error is a
// DecodingError. Strings are never longer than the block that carries
// them, so what Decode allocates is bounded by the block's length.
func (d *Decoder) Decode(block []byte, maxList uint64, emit func(Field)) error {
	var listSize uint64
	tooLarge := false
	first := true // a size update may only start the block (§4.2)
	for len(block) > 0 {
		b := block[0]
		var f Field
		var err error
		switch {
		case b&0x80 != 0: // §6.1 indexed
			var i uint64
			i, block, err = readInt(block, 7)
			if err != nil {
				return DecodingError{err}
			}
			var ok bool
			if f, ok = d.entry(i); !ok {
				return DecodingError{fmt.Errorf("index %d not in the table", i)}
			}
		case b&0xe0 == 0x20: // §6.3 dynamic table size update
			if !first {
				return DecodingError{errors.New("table size update after a field")}
			}
			var size uint64
			size, block, err = readInt(block, 5)
			if err != nil {
				return DecodingError{err}
			}
			if size > d.maxSize {
				return DecodingError{fmt.Errorf("table size update to %d, past the %d allowed", size, d.maxSize)}
			}
			d.limit = size
			d.evict(size)
			continue
		default: // §6.2 literals
			prefix, index := uint(4), false
			if b&0xc0 == 0x40 { // §6.2.1 with incremental indexing
				prefix, index = 6, true
			}
			f, block, err = d.readLiteral(block, prefix)
			if err != nil {
				return DecodingError{err}
			}
			if index {
				d.add(f)
			}
		}
		first = false
		listSize += f.size()
		if listSize > maxList {
			tooLarge = true
		}
		if !tooLarge {
			emit(f)
		}
	}
	if tooLarge {
		return ErrListTooLarge
	}
	return nil
}

// readLiteral reads a literal field with an n-bit name index prefix.
func (d *Decoder) readLiteral(p []byte, n uint) (Field, []byte, error) {
	i, p, err := readInt(p, n)
	if err != nil {
		return Field{}, p, err
	}
	var f Field
	if i == 0 {
		if f.Name, p, err = readString(p); err != nil {
			return f, p, err
		}
	} else {
		e, ok := d.entry(i)
		if !ok {
			return f, p, fmt.Errorf("name index %d not in the table", i)
		}
		f.Name = e.Name
	}
	f.Value, p, err = readString(p)
	return f, p, err
}

// readString reads a string literal (§5.2).
func readString(p []byte) (string, []byte, error) {
	if len(p) == 0 {
		return "", p, errInt
	}
	huff := p[0]&0x80 != 0
	n, p, err := readInt(p, 7)
	if err != nil {
		return "", p, err
	}
	if n > uint64(len(p)) {
		return "", p, fmt.Errorf("string of %d bytes in %d left", n, len(p))
	}
	s := p[:n]
	p = p[n:]
	if !huff {
		return string(s), p, nil
	}
	out, err := AppendHuffmanDecoded(make([]byte, 0, len(s)*8/5+1), s)
	return string(out), p, err
}
