package flate

import (
	"errors"
	"io"
	"math"
	"strconv"
	"sync"
)

// Decoding: a Reader decodes straight into the caller's slice. A
// back-reference reaches into what the same Read produced, or, further
// back, into the history: a ring of the last 2^windowBits bytes of output
// from earlier Reads, brought up to date as each Read returns. The
// working state (the input buffer, the bit buffer, the Huffman tables,
// where in a block decoding stands) comes from a pool when a stream
// starts and goes back when it ends, so that between streams a Reader
// holds its history alone, and without context takeover not even that:
// its ring is borrowed from a pool of its window size while a stream is
// read in several Reads, and given back with the rest.

// decoderPool holds the working state of Readers between streams.
var decoderPool sync.Pool

// ringPools hold the history rings of Readers without context takeover,
// one pool per window size.
var ringPools [MaxWindowBits - MinWindowBits + 1]sync.Pool

// ErrInputPending is what a Reader's source returns, with no bytes, when it
// has no input at hand but the stream goes on, and what Read returns when
// it then decoded nothing. The Reader keeps its place: the caller waits
// for input in its own way and calls Read again.
var ErrInputPending = errors.New("flate: input pending")

// A Reader decodes a sequence of raw DEFLATE streams (RFC 1951) read from
// one source, such as the messages of a permessage-deflate connection
// (RFC 7692), none of whose back-references may reach more than
// 2^windowBits bytes back. A stream ends when Read returns an error: the
// next Read starts another, at a block header. With context takeover a
// stream may refer back into those before it; without, each decodes on
// its own. A Reader is not safe for concurrent use.
type Reader struct {
	src io.Reader

	// ring holds the last hlen bytes of output before the current Read,
	// the oldest at hpos once it is full; its length is the window. nil
	// until needed. With takeover it is the Reader's own; without, it is
	// borrowed from ringPools for a stream read in several Reads.
	ring       *[]byte
	hpos, hlen uint16 // under 2^16: the window is at most 2^15

	windowBits uint8 // immutable
	takeover   bool  // history outlives a stream; immutable
	cut        bool  // the last stream ran out inside a block (EndedInBlock)
	past       uint8 // PastData of the last stream

	d      *decoder    // the working state while a stream is being read
	paused *pausedRead // what of it Pause kept, while d is nil
}

// NewReader returns a Reader of the streams src yields, in which no
// back-reference reaches further than 2^windowBits bytes: one that does
// is an error. windowBits outside MinWindowBits..MaxWindowBits is clamped
// into that range. With takeover, a stream may refer back into the output
// of earlier ones. The Reader takes its working memory at the first Read.
//
// A peer that agreed to 8-bit windows but compresses with zlib, which
// does not write 8-bit windows, uses 9 bits instead; zlib never refers
// back further than the window less 262 bytes, though, so its streams
// still decode.
func NewReader(src io.Reader, windowBits int, takeover bool) *Reader {
	windowBits = min(max(windowBits, MinWindowBits), MaxWindowBits)
	return &Reader{src: src, windowBits: uint8(windowBits), takeover: takeover}
}

// window returns the window's size, 2^windowBits.
func (r *Reader) window() int { return 1 << r.windowBits }

// Read decodes the next bytes of the current stream into p. It reads src
// only for input it needs to go on, so it may return fewer bytes than p
// holds only when the stream ends, or when src has no input at hand
// (ErrInputPending, which Read returns itself if it decoded nothing,
// the stream going on). Read returns io.EOF after the last
// byte of a final block, and io.ErrUnexpectedEOF when src ends (returns
// io.EOF) before one: a message of RFC 7692 ends that way, after its
// empty stored block. An error of src is returned as it is; input that
// is not DEFLATE, or refers back beyond the window or the start of the
// history, makes a *CorruptInputError. Whatever the error, the bytes
// decoded before it are in p[:n].
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.d == nil {
		r.d = newDecoder()
		if r.paused != nil {
			r.resume()
		}
	}
	n, err := r.d.decode(r, p)
	if err == ErrInputPending {
		r.remember(p[:n])
		if n > 0 {
			return n, nil
		}
		return 0, err
	}
	if err != nil {
		r.cut = err == io.ErrUnexpectedEOF && (r.d.stage == stageStored || r.d.stage == stageHuffman || r.d.codes)
		r.past = uint8(min((r.d.read*8-r.d.dataEnd)/8, math.MaxUint8))
		r.endStream()
	}
	if err == nil || r.takeover {
		r.remember(p[:n])
	}
	return n, err
}

// EndedInBlock reports whether the stream that the last Read ended with
// io.ErrUnexpectedEOF ran out inside a block, short of a stored block's
// length, of a dynamic block's code lengths or of a Huffman block's end
// code, rather than between blocks: the last bytes it decoded then may be
// no more than what src ended with, or the block's data never came.
// A message of RFC 7692 ends between blocks, after an empty stored block,
// once its receiver has appended 00 00 ff ff.
func (r *Reader) EndedInBlock() bool { return r.cut }

// PastData returns how many whole bytes the stream that the last Read
// ended read from src past the end of its last block that held data or an
// end code (a Huffman block, or a stored block of a byte or more), or
// past its start if it had none; at most 255. Every such block of a
// message of RFC 7692 ends in what the peer sent: if fewer bytes than
// those of the 00 00 ff ff its receiver appended were read past it, the
// block took some of them as its data or its end code. The message was
// then cut inside the block, though the tail let it end between blocks,
// or with a final block.
func (r *Reader) PastData() int { return int(r.past) }

// Reset forgets the history, and ends any stream being read, so that the
// next Read starts a stream that decodes on its own.
func (r *Reader) Reset() {
	r.endStream()
	r.hpos, r.hlen = 0, 0
}

// Release gives back all the Reader holds, its history included, as at
// NewReader: for a Reader that will decode nothing more.
func (r *Reader) Release() {
	r.Reset()
	r.ring = nil
}

// endStream gives back the working state; without context takeover, the
// history too.
func (r *Reader) endStream() {
	if r.paused != nil {
		pausedPool.Put(r.paused)
		r.paused = nil
	}
	if r.d != nil {
		r.d.release()
		r.d = nil
	}
	if !r.takeover {
		if r.ring != nil {
			ringPools[r.windowBits-MinWindowBits].Put(r.ring)
			r.ring = nil
		}
		r.hpos, r.hlen = 0, 0
	}
}

// pausedRead is what a paused stream keeps of its working state: where
// decoding stands, the input not yet decoded, and in a block with dynamic
// codes the code lengths its tables are rebuilt from.
type pausedRead struct {
	st    decodeState
	in    [maxPausedInput]byte
	lens  [numLitSyms + numDistSyms]uint8
	built uint64 // the build of the decoder's tables (decoder.built)
}

// maxPausedInput is the most input a paused stream keeps: room for the
// longest header of a dynamic block (286 bytes, every code length a
// 7-bit code) that a source cut short. A unit decodes whole or goes back
// to its start when input runs out, so that, or a symbol's few bytes, is
// all that waits after ErrInputPending.
const maxPausedInput = 320

// pausedPool holds the pausedReads of streams that resumed.
var pausedPool = sync.Pool{New: func() any { return new(pausedRead) }}

// Pause gives the working state of the stream being read back to the pool
// it came from, keeping what the next Read needs to go on: at most 1 KiB
// where the working state is 12.5 KiB. A caller that is about to wait for
// input after ErrInputPending calls it, so that a stream that stalls holds
// no more than that besides its history. Resuming costs the rebuilding of
// a dynamic block's tables, about a microsecond, unless the Reader gets
// back the decoder it gave, its tables untouched. Pause does nothing
// between streams, or when more input is at hand than a paused stream
// keeps (as after a Read that filled p): the next Read will not wait.
func (r *Reader) Pause() {
	d := r.d
	if d == nil || d.iend-d.ip > maxPausedInput {
		return
	}
	ps := pausedPool.Get().(*pausedRead)
	ps.st = d.decodeState
	ps.st.ip, ps.st.iend = 0, copy(ps.in[:], d.in[d.ip:d.iend])
	if d.lit == &d.litDyn {
		copy(ps.lens[:], d.lens[:d.nlens])
		ps.built = d.built
		ps.st.lit, ps.st.dist = nil, nil // the next decoder's, rebuilt if need be
	}
	r.paused = ps
	r.d = nil
	d.release()
}

// resume restores a paused stream into a fresh decoder, r.d. It is apart
// from Read, which lies deep under every read of a compressed message,
// so that its work takes no room there.
//
//go:noinline
func (r *Reader) resume() {
	ps, d := r.paused, r.d
	r.paused = nil
	d.decodeState = ps.st
	copy(d.in[:], ps.in[:ps.st.iend])
	if d.stage == stageHuffman && d.lit == nil {
		d.lit, d.dist = &d.litDyn, &d.distDyn
		if d.built != ps.built {
			// Not the decoder the stream paused with, or it decoded
			// another block meanwhile.
			copy(d.lens[:], ps.lens[:d.nlens])
			d.buildDynamic() // the same lengths built tables before
		}
	}
	pausedPool.Put(ps)
}

// remember adds p, the output of a Read, to the history.
func (r *Reader) remember(p []byte) {
	if len(p) == 0 {
		return
	}
	if r.ring == nil {
		if !r.takeover {
			r.ring, _ = ringPools[r.windowBits-MinWindowBits].Get().(*[]byte)
		}
		if r.ring == nil {
			b := make([]byte, r.window())
			r.ring = &b
		}
	}
	hist := *r.ring
	w := len(hist)
	if len(p) >= w {
		copy(hist, p[len(p)-w:])
		r.hpos, r.hlen = 0, uint16(w)
		return
	}
	if n := copy(hist[r.hpos:], p); n < len(p) {
		copy(hist, p[n:])
	}
	r.hpos = uint16((int(r.hpos) + len(p)) & (w - 1))
	r.hlen = uint16(min(int(r.hlen)+len(p), w))
}

// copyMatch copies up to length bytes of a match at distance dist into
// p[n:], as far as p has room, and returns the new n and how many bytes
// of the match are left for the next Read. The match starts in p itself
// or, when dist > n, in the history (the caller checked that it holds
// dist-n bytes).
func (r *Reader) copyMatch(p []byte, n, dist, length int) (int, int) {
	end := n + min(length, len(p)-n)
	left := length - (end - n)
	if dist > n {
		hist := *r.ring
		back := dist - n // bytes before p[0]
		from := (int(r.hpos) - back) & (len(hist) - 1)
		for back > 0 && n < end {
			c := copy(p[n:min(end, n+back)], hist[from:])
			n += c
			back -= c
			from = 0 // the rest, if any, is at the start of the ring
		}
	}
	// The rest repeats what lies dist bytes back, all in p now; each copy
	// doubles what the next can take.
	from := n - dist
	for n < end {
		n += copy(p[n:end], p[from:n])
	}
	return n, left
}

// A CorruptInputError reports input that is not a DEFLATE stream, or one
// that refers back further than the window or the start of the history.
type CorruptInputError struct {
	Offset int64  // the input bytes read before the fault was found
	Reason string // what is wrong
}

func (e *CorruptInputError) Error() string {
	return "flate: " + e.Reason + " (at input byte " + strconv.FormatInt(e.Offset, 10) + ")"
}
