package flate

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"
)

// This file decodes blocks (RFC 1951 §3.2.3-3.2.7) for a Reader.
//
// Input goes through a buffer of the decoder's own, and from there into a
// 64-bit bit buffer, least significant bit first. Where the buffer holds
// at least 8 more bytes the hot loop (fast) refills 8 bytes at a time and
// decodes a literal or a whole match per round; elsewhere, near the end
// of the input, symbols are decoded one at a time, each reading no more
// input than it needs. What it needs mirrors compress/flate's decoder bit
// for bit, so that a stream cut short decodes to the same bytes and the
// same kind of error, corrupt or unexpected end: a literal/length symbol
// waits for as many bits as its shortest code or the end-of-block code
// (whichever is longer), any other symbol for its shortest code, then for
// the whole of its code.
//
// A source may have no input at hand yet (ErrInputPending). The decoder
// then goes back to the start of the unit it was decoding, a block header
// or a symbol with the match it starts, so that the caller can wait for
// input where it likes and call again: a mark notes where the unit began,
// and the bytes from there on stay in the input buffer when it is filled
// again. Stored bytes go out one by one, so a stored block stops wherever
// its input does.

// inputSize is the decoder's input buffer: what one read of the source
// takes at most.
const inputSize = 4 << 10

// Where decoding stands between calls.
const (
	stageHeader  = iota // a block header is next
	stageStored         // inside a stored block
	stageHuffman        // inside a Huffman block
	stageDone           // after a final block
)

// decoder is the working state of a Reader while it reads a stream.
type decoder struct {
	in [inputSize]byte
	decodeState

	// The tables of a block with dynamic codes, the code lengths they
	// are built from (nlens of them: the literal/length codes, then the
	// distance codes), and the scratch that builds them.
	litDyn  litTable
	distDyn distTable
	built   uint64 // names the lengths litDyn and distDyn were built from; 0 for none
	cl      clTable
	lens    [numLitSyms + numDistSyms]uint8
	clLens  [numCodeLenSyms]uint8
	tables  tableScratch
}

// decodeState is where decoding stands: all of a decoder but its input
// buffer and its tables.
type decodeState struct {
	ip, iend int   // in[ip:iend] is input not yet in the bit buffer
	read     int64 // bytes read from the source, for error offsets
	srcErr   error // what ended the source, once it did

	bits uint64 // bits of input not yet decoded, the next one lowest
	nb   uint   // how many; the bits above them are 0 outside fast

	// The start of the unit being decoded, while marked: ip, bits and nb
	// as they were there.
	marked   bool
	markIP   int
	markBits uint64
	markNb   uint

	stage  uint8
	codes  bool // reading the code lengths in a dynamic block's header
	final  bool // the block being decoded is the last
	stored int  // bytes of the stored block left

	// dataEnd is where the last block that held data or an end code
	// ended: the bits of input decoded up to there (Reader.PastData).
	dataEnd int64

	// A match cut short by the end of p: the bytes of it left, and its
	// distance.
	copyLen, copyDist int

	// The codes of the Huffman block being decoded, and the shortest
	// number of bits a symbol waits for (see above).
	lit             *litTable
	dist            *distTable
	litMin, distMin uint

	// nlit and nlens count the code lengths of a dynamic block: lens[:nlit]
	// are the literal/length codes', lens[nlit:nlens] the distance codes'.
	nlit, nlens uint16
}

func newDecoder() *decoder {
	d, _ := decoderPool.Get().(*decoder)
	if d == nil {
		d = new(decoder)
	}
	return d
}

// release puts d back in the pool, having it forget its stream; its
// tables stay, named by built.
func (d *decoder) release() {
	d.decodeState = decodeState{}
	decoderPool.Put(d)
}

// decode decodes the stream of r into p, as Read does.
func (d *decoder) decode(r *Reader, p []byte) (n int, err error) {
	for n < len(p) && err == nil {
		switch d.stage {
		case stageHeader:
			d.mark()
			err = d.header(r.src)
			d.unmark(err)
		case stageStored:
			n, err = d.storedBytes(r.src, p, n)
		case stageHuffman:
			n, err = d.huffman(r, p, n)
		default:
			return n, io.EOF
		}
	}
	if err == nil && d.stage == stageDone {
		err = io.EOF
	}
	return n, err
}

// corrupt returns the error for a fault found at the current position,
// reason saying what is wrong. corruptf is corrupt with a reason formatted
// from two numbers, and corruptCode with the reason of faultOf. None is
// inlined into the decoding functions, so that making the error takes no
// room on their frames, which lie deep under every Read of a compressed
// message.
//
//go:noinline
func (d *decoder) corrupt(reason string) error {
	at := d.read - int64(d.iend-d.ip) - int64(d.nb/8)
	return &CorruptInputError{Offset: at, Reason: reason}
}

//go:noinline
func (d *decoder) corruptf(format string, a, b int) error {
	return d.corrupt(fmt.Sprintf(format, a, b))
}

//go:noinline
func (d *decoder) corruptCode(e uint32, alphabet string) error {
	return d.corrupt(faultOf(e, alphabet))
}

// mark notes the start of a unit: a block header, or a symbol and the
// match it starts.
func (d *decoder) mark() {
	d.marked = true
	d.markIP, d.markBits, d.markNb = d.ip, d.bits, d.nb
}

// unmark ends the unit that mark began; if err says its input ran out for
// now, decoding goes back to its start, to take it again whole.
func (d *decoder) unmark(err error) {
	if err == ErrInputPending {
		d.ip, d.bits, d.nb = d.markIP, d.markBits, d.markNb
	}
	d.marked = false
}

// fill reads more input into the buffer, which must be empty but for the
// bytes of a marked unit, which it keeps, at its start. At the end of the
// source it returns io.ErrUnexpectedEOF: more input was needed; when the
// source has none at hand, ErrInputPending.
func (d *decoder) fill(src io.Reader) error {
	keep := 0
	if d.marked {
		keep = copy(d.in[:], d.in[d.markIP:d.iend])
		d.markIP = 0
	}
	d.ip, d.iend = keep, keep
	for range 100 {
		if d.srcErr != nil {
			if d.srcErr == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return d.srcErr
		}
		n, err := src.Read(d.in[keep:])
		if n == 0 && err == ErrInputPending {
			return err
		}
		d.iend = keep + n
		d.read += int64(n)
		d.srcErr = err
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

// need makes sure the bit buffer holds at least n bits (n <= 32). It
// reads the source only if the input buffer cannot supply them, and then
// no more than it takes.
func (d *decoder) need(src io.Reader, n uint) error {
	if d.nb >= n {
		return nil
	}
	if d.refill() {
		return nil
	}
	for d.nb < n {
		if d.ip == d.iend {
			if err := d.fill(src); err != nil {
				return err
			}
		}
		d.bits |= uint64(d.in[d.ip]) << d.nb
		d.ip++
		d.nb += 8
	}
	return nil
}

// refill moves 7 or 8 bytes into the bit buffer if the input buffer
// holds 8, leaving 56 to 63 bits there, and reports whether it did.
func (d *decoder) refill() bool {
	if d.iend-d.ip < 8 {
		return false
	}
	d.bits |= binary.LittleEndian.Uint64(d.in[d.ip:]) << d.nb
	d.ip += int(63-d.nb) >> 3
	d.nb |= 56
	d.bits &= 1<<d.nb - 1
	return true
}

// take consumes n bits (they must be there) and returns them.
func (d *decoder) take(n uint) uint64 {
	v := d.bits & (1<<n - 1)
	d.bits >>= n
	d.nb -= n
	return v
}

// symbol decodes one symbol with table, waiting first for min bits, then
// for the whole of its code, and returns its entry.
func (d *decoder) symbol(src io.Reader, table []uint32, rootBits, min uint) (uint32, error) {
	if err := d.need(src, min); err != nil {
		return 0, err
	}
	for {
		e := table[d.bits&(1<<rootBits-1)]
		if e&flagSub != 0 {
			e = table[e>>16+uint32(d.bits>>rootBits)&(1<<(e>>8&15)-1)]
		}
		l := uint(e & lenMask)
		if l == 0 {
			return 0, d.corruptCode(e, "")
		}
		if l <= d.nb {
			d.take(l)
			return e, nil
		}
		if err := d.need(src, l); err != nil {
			return 0, err
		}
	}
}

// header reads a block header, and the codes of a dynamic block.
func (d *decoder) header(src io.Reader) error {
	if err := d.need(src, 3); err != nil {
		return err
	}
	h := d.take(3)
	d.final = h&1 != 0
	switch h >> 1 {
	case 0:
		// Stored: LEN and NLEN at the next byte boundary, then LEN bytes.
		d.take(d.nb & 7)
		if err := d.need(src, 32); err != nil {
			return err
		}
		v := d.take(32)
		if n, nn := uint16(v), uint16(v>>16); n != ^nn {
			return d.corruptf("stored block length %#04x does not match its complement %#04x", int(n), int(nn))
		}
		d.stored = int(uint16(v))
		d.stage = stageStored
		if d.stored == 0 {
			d.endBlock()
		}
		return nil
	case 1:
		d.lit, d.dist = &fixedLitTable, &fixedDistTable
		d.litMin, d.distMin = 7, 5
	case 2:
		d.codes = true
		if err := d.dynamicCodes(src); err != nil {
			return err
		}
		d.codes = false
		d.lit, d.dist = &d.litDyn, &d.distDyn
	default:
		return d.corrupt("invalid block type 3")
	}
	d.stage = stageHuffman
	return nil
}

// endDataBlock ends a block that held data or an end code: a Huffman
// block, or a stored block of a byte or more. It notes where the block
// ended, which must be in what the peer sent (Reader.PastData).
func (d *decoder) endDataBlock() {
	d.dataEnd = (d.read-int64(d.iend-d.ip))*8 - int64(d.nb)
	d.endBlock()
}

func (d *decoder) endBlock() {
	if d.final {
		d.stage = stageDone
	} else {
		d.stage = stageHeader
	}
}

// dynamicCodes reads the code definitions of a dynamic block (RFC 1951
// §3.2.7) and builds its tables.
func (d *decoder) dynamicCodes(src io.Reader) error {
	if err := d.need(src, 14); err != nil {
		return err
	}
	nlit := int(d.bits&31) + 257
	if nlit > numLitSyms {
		return d.corruptf("%d literal/length codes, more than %d", nlit, numLitSyms)
	}
	ndist := int(d.bits>>5&31) + 1
	if ndist > numDistSyms {
		return d.corruptf("%d distance codes, more than %d", ndist, numDistSyms)
	}
	ncl := int(d.bits>>10&15) + 4
	d.take(14)
	for i, s := range codeLenOrder {
		if i >= ncl {
			d.clLens[s] = 0
			continue
		}
		if err := d.need(src, 3); err != nil {
			return err
		}
		d.clLens[s] = uint8(d.take(3))
	}
	clMin, ok := buildTable(d.cl[:], clRootBits, d.clLens[:], clInfo[:], &d.tables)
	if !ok {
		return d.corrupt("invalid code length code")
	}
	lens := d.lens[:nlit+ndist]
	for i := 0; i < len(lens); {
		// With 14 bits at hand (the longest code and extra bits), no
		// need to wait for input.
		if d.nb < 14 {
			d.refill()
		}
		var e uint32
		if d.nb >= 14 {
			e = d.cl[d.bits&(1<<clRootBits-1)]
			if e&lenMask == 0 {
				return d.corrupt("invalid Huffman code")
			}
			d.take(uint(e & lenMask))
		} else {
			var err error
			if e, err = d.symbol(src, d.cl[:], clRootBits, clMin); err != nil {
				return err
			}
		}
		sym := e >> 16
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		// 16: the previous length 3-6 times; 17: 3-10 zeros; 18: 11-138.
		rep, extra, val := 3, uint(2), uint8(0)
		switch sym {
		case 16:
			if i == 0 {
				return d.corrupt("code length repeated with none before it")
			}
			val = lens[i-1]
		case 17:
			extra = 3
		default:
			rep, extra = 11, 7
		}
		if err := d.need(src, extra); err != nil {
			return err
		}
		rep += int(d.take(extra))
		if i+rep > len(lens) {
			return d.corruptf("code lengths run %d past the %d codes", i+rep-len(lens), len(lens))
		}
		for range rep {
			lens[i] = val
			i++
		}
	}
	d.nlit, d.nlens = uint16(nlit), uint16(len(lens))
	return d.buildDynamic()
}

// buildDynamic builds the tables of a dynamic block from its code
// lengths, d.lens[:d.nlens]: when its header is read, and again when a
// paused stream resumes in it (see Reader.Pause).
func (d *decoder) buildDynamic() error {
	d.built = 0
	lens := d.lens[:d.nlens]
	litMin, ok := buildTable(d.litDyn[:], litRootBits, lens[:d.nlit], litInfo[:], &d.tables)
	if !ok {
		return d.corrupt("invalid literal/length code")
	}
	distMin, ok := buildTable(d.distDyn[:], distRootBits, lens[d.nlit:], distInfo[:], &d.tables)
	if !ok {
		return d.corrupt("invalid distance code")
	}
	d.litMin, d.distMin = max(litMin, uint(lens[endOfBlock])), distMin
	d.built = tableBuilds.Add(1)
	return nil
}

// tableBuilds counts the dynamic tables built by all decoders, naming
// each build: a paused stream that gets back a decoder whose tables are
// still those of its block, untouched by another stream meanwhile, need
// not build them again.
var tableBuilds atomic.Uint64

// storedBytes copies bytes of a stored block into p[n:]: those left in
// the bit buffer, then those in the input buffer, then straight from the
// source.
func (d *decoder) storedBytes(src io.Reader, p []byte, n int) (int, error) {
	for d.stored > 0 && n < len(p) {
		switch {
		case d.nb >= 8:
			p[n] = byte(d.take(8))
			n++
			d.stored--
		case d.ip < d.iend:
			c := copy(p[n:min(len(p), n+d.stored)], d.in[d.ip:d.iend])
			d.ip += c
			n += c
			d.stored -= c
		case d.srcErr != nil:
			return n, d.fill(src) // reports the end
		default:
			c, err := src.Read(p[n:min(len(p), n+d.stored)])
			if c == 0 && err == ErrInputPending {
				return n, err
			}
			d.read += int64(c)
			n += c
			d.stored -= c
			d.srcErr = err
			if c == 0 && err == nil {
				if err := d.fill(src); err != nil {
					return n, err
				}
			}
		}
	}
	if d.stored == 0 {
		d.endDataBlock()
	}
	return n, nil
}

// huffman decodes symbols of a Huffman block into p[n:] until p is full
// or the block ends.
func (d *decoder) huffman(r *Reader, p []byte, n int) (int, error) {
	if d.copyLen > 0 {
		n, d.copyLen = r.copyMatch(p, n, d.copyDist, d.copyLen)
	}
	var err error
	for n < len(p) && d.stage == stageHuffman && err == nil {
		if d.iend-d.ip >= 8 {
			n, err = d.fast(r, p, n)
		} else {
			d.mark()
			n, err = d.slow(r, p, n)
			d.unmark(err)
		}
	}
	return n, err
}

// slow decodes one symbol, and the match it starts, reading input only as
// it needs it.
func (d *decoder) slow(r *Reader, p []byte, n int) (int, error) {
	src := r.src
	e, err := d.symbol(src, d.lit[:], litRootBits, d.litMin)
	if err != nil {
		return n, err
	}
	switch {
	case e&flagLit != 0:
		p[n] = byte(e >> 16)
		return n + 1, nil
	case e&flagEOB != 0:
		d.endDataBlock()
		return n, nil
	case e&flagBad != 0:
		return n, d.corruptCode(e, "literal/length")
	}
	length := int(e >> 16)
	if x := uint(e >> 8 & 15); x > 0 {
		if err := d.need(src, x); err != nil {
			return n, err
		}
		length += int(d.take(x))
	}
	e, err = d.symbol(src, d.dist[:], distRootBits, d.distMin)
	if err != nil {
		return n, err
	}
	if e&flagBad != 0 {
		return n, d.corruptCode(e, "distance")
	}
	dist := int(e >> 16)
	if x := uint(e >> 8 & 15); x > 0 {
		if err := d.need(src, x); err != nil {
			return n, err
		}
		dist += int(d.take(x))
	}
	if err := d.checkDist(r, dist, n); err != nil {
		return n, err
	}
	n, d.copyLen = r.copyMatch(p, n, dist, length)
	d.copyDist = dist
	return n, nil
}

// checkDist checks that a match at distance dist, n bytes into this
// Read's output, lies in the window and after the start of the history.
func (d *decoder) checkDist(r *Reader, dist, n int) error {
	switch {
	case dist > r.window():
		return d.corruptf("distance %d beyond the window of %d bytes", dist, r.window())
	case dist > n+int(r.hlen):
		return d.corruptf("distance %d before the start of the output (%d bytes)", dist, n+int(r.hlen))
	}
	return nil
}

// fast decodes symbols while the input buffer holds 8 bytes or more, p
// has room and the block goes on: each round refills the bit buffer to 56
// bits or more, enough for a literal/length code, its extra bits, a
// distance code and its extra bits (48 bits at most).
func (d *decoder) fast(r *Reader, p []byte, n int) (int, error) {
	in := d.in[:d.iend]
	ip := d.ip
	bits, nb := d.bits, d.nb
	lit, dist := d.lit, d.dist
	hlen, window := int(r.hlen), r.window()
	var fault string // what could not be decoded
	var far int      // or the distance out of reach
	var end bool     // or the block's end code
	for ip+8 <= len(in) && n < len(p) {
		// Whole bytes in: nb becomes 56 to 63. The bits above nb are
		// input still to come, which the next refill puts there again.
		bits |= binary.LittleEndian.Uint64(in[ip:]) << nb
		ip += int(63-nb) >> 3
		nb |= 56

		e := lit[bits&(1<<litRootBits-1)]
		if e&flagSub != 0 {
			e = lit[e>>16+uint32(bits>>litRootBits)&(1<<(e>>8&15)-1)]
		}
		if e&flagLit != 0 {
			bits >>= e & lenMask
			nb -= uint(e & lenMask)
			p[n] = byte(e >> 16)
			n++
			// 41 bits or more are left: enough for another literal
			// without a refill.
			e = lit[bits&(1<<litRootBits-1)]
			if e&flagLit == 0 || n == len(p) {
				continue // decoded again after the refill
			}
			bits >>= e & lenMask
			nb -= uint(e & lenMask)
			p[n] = byte(e >> 16)
			n++
			continue
		}
		if e&(flagEOB|flagBad) != 0 || e&lenMask == 0 {
			if e&flagEOB == 0 {
				fault = faultOf(e, "literal/length")
				break
			}
			bits >>= e & lenMask
			nb -= uint(e & lenMask)
			end = true
			break
		}
		bits >>= e & lenMask
		nb -= uint(e & lenMask)
		x := e >> 8 & 15
		length := int(e>>16) + int(bits&(1<<x-1))
		bits >>= x
		nb -= uint(x)

		e = dist[bits&(1<<distRootBits-1)]
		if e&flagSub != 0 {
			e = dist[e>>16+uint32(bits>>distRootBits)&(1<<(e>>8&15)-1)]
		}
		if e&flagBad != 0 || e&lenMask == 0 {
			fault = faultOf(e, "distance")
			break
		}
		bits >>= e & lenMask
		nb -= uint(e & lenMask)
		x = e >> 8 & 15
		dd := int(e>>16) + int(bits&(1<<x-1))
		bits >>= x
		nb -= uint(x)
		if dd > window || dd > n+hlen {
			far = dd
			break
		}

		if dd <= n && dd >= 8 && n+length+8 <= len(p) {
			// 8 bytes at a time: each load reads bytes already written,
			// and the last store may run past the match into room p has.
			from := n - dd
			for i := 0; i < length; i += 8 {
				binary.LittleEndian.PutUint64(p[n+i:], binary.LittleEndian.Uint64(p[from+i:]))
			}
			n += length
			continue
		}
		var left int
		n, left = r.copyMatch(p, n, dd, length)
		if left > 0 {
			d.copyLen, d.copyDist = left, dd
			break
		}
	}
	d.ip = ip
	d.bits, d.nb = bits&(1<<nb-1), nb
	switch {
	case end:
		d.endDataBlock()
	case far > 0:
		return n, d.checkDist(r, far, n)
	case fault != "":
		return n, d.corrupt(fault)
	}
	return n, nil
}

// faultOf says what is wrong with an entry that decodes to nothing of the
// alphabet: a code that is not there, or a symbol no stream may use.
func faultOf(e uint32, alphabet string) string {
	if e&lenMask == 0 {
		return "invalid Huffman code"
	}
	return "invalid " + alphabet + " symbol"
}
