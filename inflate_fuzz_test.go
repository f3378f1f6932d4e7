package websocket

// A Conn with permessage-deflate negotiated and a small read limit, fed
// arbitrary compressed messages: FuzzInflateConn.

import (
	"bytes"
	stdflate "compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rfc6455/websocket/internal/flate"
	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// fuzzInflateLimits are the read limits a plan chooses from, all small.
var fuzzInflateLimits = []int64{0, 1, 7, 125, 1000, 4096}

// fuzzInflateSlack is what reading a compressed message may allocate
// beyond reading an uncompressed one: the decoder's working state (under
// 16 KiB, made afresh when its pool is empty) and its window (up to
// 32 KiB: made once with context takeover, borrowed from a pool without).
// None of it depends on what the peer claims.
const fuzzInflateSlack = 16<<10 + 32<<10

// fuzzInflateMsg is a message of the peer's, and what reading it must
// come to.
type fuzzInflateMsg struct {
	typ   MessageType
	out   []byte       // what it inflates to (its payload, uncompressed), at most a byte past the limit
	fails []StatusCode // the codes it may fail the connection with; none: it is delivered whole
}

// fuzzInflatePeer builds the peer's stream: the messages of msgs (each a
// 16-bit big-endian length and that many bytes, the payload as sent),
// framed as plan says, then a close frame with 1000 and "end". It returns
// with it what reading each message must come to, up to the first that
// fails the connection, and the pings the stream holds before it.
//
// For each message, a plan byte: bits 0-2 all set sends it uncompressed;
// bit 3 makes it text; bit 4 puts a ping between each two frames; bit 5
// sets RSV1 on its continuation frames too (a violation, RFC 7692 §6.1);
// bits 6-7 split it into that many more frames.
//
// The reference is compress/flate, fed the payload and the 00 00 ff ff
// that RFC 7692 §7.2.2 has the receiver append, with the last 2^bits
// bytes of the earlier messages as its dictionary under context takeover;
// the input ends where the message does (after a final block, the rest
// is dropped). compress/flate reaches back 32 KiB whatever the window:
// where the reference inflater finds a back-reference beyond 2^bits
// bytes, the message inflates to the bytes before it and is not valid
// DEFLATE. The message fails with 1009 if it inflates past the limit,
// or its payload is past compressedLimit, each frame counting as
// compressedSize; with 1007 if it is not valid
// DEFLATE within the limit, if it was cut inside a block that the tail
// went into (as data or its end code), or, as text, if it is not UTF-8
// within the limit; with 1002
// for RSV1 on a continuation frame. Which comes first depends on how the
// frames and the reads fall, so a message may fail with any of those it
// breaks.
func fuzzInflatePeer(plan *fuzzPlan, msgs []byte, masked bool, limit int64, takeover bool, bits int) (stream []byte, want []fuzzInflateMsg, pings [][]byte) {
	var history []byte
	for len(msgs) >= 2 && len(want) < 64 {
		n := int(binary.BigEndian.Uint16(msgs))
		payload := msgs[2:min(2+n, len(msgs))]
		msgs = msgs[2+len(payload):]
		m := plan.next()
		compressed := m&7 != 7
		w := fuzzInflateMsg{typ: MessageBinary, out: payload}
		if m&8 != 0 {
			w.typ = MessageText
		}
		frags := 1 + int(m>>6)
		op, rsv := opcode(w.typ), byte(0)
		if compressed {
			rsv = rsv1
		}
		for i := range frags {
			stream = fuzzAppendFrame(stream, i == frags-1, rsv, op, masked, payload[i*len(payload)/frags:(i+1)*len(payload)/frags])
			op, rsv = opContinuation, 0
			if m&0x20 != 0 {
				rsv = rsv1
			}
			if m&0x10 != 0 && i < frags-1 {
				pings = append(pings, []byte{'p', byte(len(pings))})
				stream = fuzzAppendFrame(stream, true, 0, opPing, masked, pings[len(pings)-1])
			}
		}

		if m&0x20 != 0 && frags > 1 {
			w.fails = append(w.fails, StatusProtocolError)
		}
		if compressed {
			counted := 0 // compressedSize of each frame
			for i := range frags {
				counted += max((i+1)*len(payload)/frags-i*len(payload)/frags-compressedFrameSlack, 0) + 1
			}
			if int64(counted) > compressedLimit(limit) {
				w.fails = append(w.fails, StatusMessageTooBig)
			}
			var dict []byte
			if takeover {
				dict = history[max(0, len(history)-1<<bits):]
			}
			in := append(bytes.Clone(payload), flate.FlushTail...)
			r := stdflate.NewReaderDict(bytes.NewReader(in), dict)
			out, err := io.ReadAll(io.LimitReader(r, limit+1))
			invalid := err != nil && err != io.ErrUnexpectedEOF
			z := &flatetest.Inflater{Window: 1 << bits, Lax: true, Out: bytes.Clone(dict), Max: int(limit) + 1}
			lax, err := z.Message(in)
			switch {
			case errors.Is(err, flatetest.ErrBeyondWindow) && len(lax) < len(out):
				out, invalid = out[:len(lax)], true
			case z.Cut:
				// The tail went into a block cut short, as its data,
				// or its end code.
				invalid = true
			}
			if invalid && int64(len(out)) <= limit {
				w.fails = append(w.fails, StatusInvalidFramePayloadData)
			}
			w.out = out
		}
		if int64(len(w.out)) > limit {
			w.fails = append(w.fails, StatusMessageTooBig)
			w.out = w.out[:limit+1]
		}
		if w.typ == MessageText && (firstBad(w.out) >= 0 || len(w.fails) == 0 && !utf8.Valid(w.out)) {
			w.fails = append(w.fails, StatusInvalidFramePayloadData)
		}
		want = append(want, w)
		if len(w.fails) > 0 {
			break
		}
		if compressed && takeover {
			history = append(history, w.out...)
			history = history[max(0, len(history)-1<<maxWindowBits):]
		}
	}
	stream = fuzzAppendFrame(stream, true, 0, opClose, masked, []byte("\x03\xe8end"))
	return stream, want, pings
}

// fuzzInflateSession feeds the stream fuzzInflatePeer builds from msgs
// to a Conn that negotiated permessage-deflate, and reads it, message by
// message, until reading fails; it returns the first property broken.
//
// The plan's first byte picks the read limit from fuzzInflateLimits; its
// second makes the Conn a client (bit 0), gives it context takeover
// from the peer (bit 1) with a window of 8 plus bits 2-4 bits, and has
// the session measure allocations (bit 5). Then, cyclically, it frames
// the messages (see fuzzInflatePeer), and, as for FuzzServerConn, picks
// how each message is read, the size of each Reader buffer and of each
// transport read.
func fuzzInflateSession(planBytes, msgs []byte) error {
	plan := &fuzzPlan{p: planBytes}
	limit := fuzzInflateLimits[int(plan.next())%len(fuzzInflateLimits)]
	options := plan.next()
	client, measure := options&1 != 0, options&0x20 != 0
	d := &deflateParams{
		threshold: defaultCompressionThreshold, sendBits: maxWindowBits,
		recvTakeover: options&2 != 0, recvBits: minWindowBits + int(options>>2)&7,
	}
	stream, want, pings := fuzzInflatePeer(plan, msgs, !client, limit, d.recvTakeover, d.recvBits)
	ft := &fuzzTransport{plan: plan, in: stream}
	c := newConn(&connConfig{client: client, deflate: d, tr: transport{rw: ft}, closeTimeout: time.Minute})
	defer c.CloseNow()
	c.SetReadLimit(limit)

	r := fuzzReader{
		c: c, plan: plan, measure: measure, allowed: uint64(fuzzAllocSlack + fuzzInflateSlack + 3*limit),
		limit: limit, scratch: make([]byte, 256), msg: make([]byte, 0, limit+257),
	}
	started := 0
	var err error
	for ; err == nil; started++ {
		typ, msg, done, rerr, broken := r.next(started)
		if err = rerr; broken != nil {
			return broken
		}
		if err != nil && typ == 0 {
			break // the read ended before a message started
		}
		if started >= len(want) {
			return fmt.Errorf("delivered message %d (%v, %q); the stream holds %d", started, typ, msg, len(want))
		}
		w := want[started]
		switch {
		case typ != w.typ:
			return fmt.Errorf("message %d: type %v, want %v", started, typ, w.typ)
		case !bytes.HasPrefix(w.out, msg):
			return fmt.Errorf("message %d: delivered %q, which does not start %q", started, msg, w.out)
		case done && (len(w.fails) > 0 || len(msg) != len(w.out)):
			return fmt.Errorf("message %d: delivered %q whole; it inflates to %q, and may fail with %v", started, msg, w.out, w.fails)
		}
	}
	written, werr := fuzzAfterEnd(c, ft, client, err, pings)
	if werr != nil {
		return werr
	}

	// Every message is delivered, and the peer's close, or the message
	// that breaks a rule fails the connection with a code it may.
	last := len(want) - 1
	if last < 0 || len(want[last].fails) == 0 {
		var ce CloseError
		var pe *ProtocolError
		if !errors.As(err, &ce) || errors.As(err, &pe) || ce != (CloseError{StatusNormalClosure, "end"}) || started != len(want) {
			return fmt.Errorf("after %d of %d messages: %v, want the peer's close 1000 end", started, len(want), err)
		}
		if !written.hasClose || string(written.close) != "\x03\xe8" {
			return fmt.Errorf("peer closed; we sent close payload %q (sent=%v), want its echo", written.close, written.hasClose)
		}
		return nil
	}
	var pe *ProtocolError
	switch {
	case !errors.As(err, &pe) || !slices.Contains(want[last].fails, pe.Code) || started < last || started > last+1:
		return fmt.Errorf("message %d of %d: failed with %v; it may fail with %v", started, len(want), err, want[last].fails)
	case pe.Code == StatusMessageTooBig && !errors.Is(err, ErrMessageTooBig):
		return fmt.Errorf("failed with 1009 without ErrMessageTooBig: %v", err)
	case !written.hasClose || len(written.close) < 2 || StatusCode(binary.BigEndian.Uint16(written.close)) != pe.Code:
		return fmt.Errorf("failed with %v but sent close payload %q", err, written.close)
	}
	return nil
}

// FuzzInflateConn checks the inflater as a Conn drives it, under a small
// read limit: for any compressed messages the peer sends, it never
// panics, never allocates more than the limit allows plus a bound that
// does not depend on the peer (fuzzInflateSlack), and every message is
// delivered whole as it inflates (by compress/flate, the reference) within
// the limit, or fails the connection with 1009, 1007 or 1002 as the
// message calls for (see fuzzInflatePeer, fuzzInflateSession).
func FuzzInflateConn(f *testing.F) {
	f.Add([]byte{3, 0x01, 0x00}, fuzzInflateMsgs(true, []byte("Hello")))
	f.Fuzz(func(t *testing.T, plan, msgs []byte) {
		fuzzBounded(t, func() error { return fuzzInflateSession(plan, msgs) })
	})
}

// fuzzInflateMsgs encodes payloads as FuzzInflateConn takes them, each
// compressed by compress/flate first if compress is set, with context
// takeover.
func fuzzInflateMsgs(compress bool, payloads ...[]byte) []byte {
	var b, out bytes.Buffer
	fw, _ := stdflate.NewWriter(&out, stdflate.BestCompression)
	for _, p := range payloads {
		if compress {
			out.Reset()
			fw.Write(p)
			fw.Flush()
			p = bytes.TrimSuffix(out.Bytes(), []byte(flate.FlushTail))
		}
		binary.Write(&b, binary.BigEndian, uint16(len(p)))
		b.Write(p)
	}
	return b.Bytes()
}
