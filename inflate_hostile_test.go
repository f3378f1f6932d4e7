package websocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	stdflate "compress/flate"
	"github.com/rfc6455/websocket/internal/flate"
)

// hostileDeflatePeer is a client Conn with permessage-deflate settled as
// d, over a pipe whose other end sends stream and keeps what the Conn
// writes.
func hostileDeflatePeer(t *testing.T, d *deflateParams, stream []byte) (*Conn, func() []byte) {
	t.Helper()
	a, b := net.Pipe()
	own := *d // a connection's own: it keeps its compressor there
	c := newConn(&connConfig{client: true, deflate: &own, tr: transport{rw: a}, closeTimeout: time.Second})
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := b.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		b.Write(stream)
	}()
	t.Cleanup(func() {
		c.CloseNow()
		b.Close()
		<-done
		<-wdone
	})
	return c, func() []byte {
		c.CloseNow()
		b.Close()
		<-done
		return out.Bytes()
	}
}

func deflateRaw(bits int, p []byte) []byte {
	w := flate.NewWriter(bits)
	return bytes.TrimSuffix(w.Flush(w.Append(nil, p)), []byte(flate.FlushTail))
}

func TestHostileDeflateScenarios(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := bytes.Repeat([]byte("hello, hostile peer "), 20)
	z := deflateRaw(15, msg)
	takeover := &deflateParams{threshold: 128, sendTakeover: true, sendBits: 15, recvTakeover: true, recvBits: 15}

	t.Run("close between fragments", func(t *testing.T) {
		var s []byte
		s = fuzzAppendFrame(s, false, rsv1, opText, false, z[:len(z)/2])
		s = fuzzAppendFrame(s, true, 0, opClose, false, []byte("\x03\xe8bye"))
		c, _ := hostileDeflatePeer(t, takeover, s)
		_, _, err := c.Read(ctx)
		var ce CloseError
		if !errors.As(err, &ce) || ce.Code != StatusNormalClosure {
			t.Fatalf("Read: %v, want the peer's close 1000", err)
		}
	})
	t.Run("empty compressed frame", func(t *testing.T) {
		var s []byte
		s = fuzzAppendFrame(s, true, rsv1, opText, false, nil)
		s = fuzzAppendFrame(s, true, rsv1, opText, false, z)
		c, _ := hostileDeflatePeer(t, takeover, s)
		if _, p, err := c.Read(ctx); err != nil || len(p) != 0 {
			t.Fatalf("Read: %q, %v; want empty", p, err)
		}
		if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("Read: %q, %v", p, err)
		}
	})
	t.Run("cut inside a block", func(t *testing.T) {
		// The 00 00 ff ff a receiver appends went into the block as its
		// data, and was delivered as if the peer had sent it. A stored
		// block claiming 100 bytes and carrying 3; the Huffman block of
		// z without its last bytes (its end code among them). Then
		// blocks that the tail completes: a stored block claiming 7
		// bytes and carrying 3, which would read "abc\x00\x00\xff\xff";
		// "hello world" in a fixed block, sync flushed by zlib, and in a
		// final one, each without its last 2 bytes, whose zero bits the
		// tail puts back as "`" and the end code ("hello worl`"). And
		// the first 10 bytes of a dynamic block of zlib's, which end in
		// the code lengths of its header: without a byte of data, the
		// message would come as empty.
		for _, payload := range [][]byte{
			{0x00, 100, 0, ^byte(100), 0xff, 'a', 'b', 'c'},
			z[:len(z)-3],
			{0x00, 7, 0, ^byte(7), 0xff, 'a', 'b', 'c'},
			[]byte("\xca\x48\xcd\xc9\xc9\x57\x28\xcf\x2f\xca\x49"),
			[]byte("\xcb\x48\xcd\xc9\xc9\x57\x28\xcf\x2f\xca\x49"),
			[]byte("\xec\xcf\xbb\x11\x85\x40\x0c\x43\xd1\x56"),
		} {
			// Each waits out the close timeout: the peer answers nothing.
			t.Run(fmt.Sprintf("%x", payload[:min(len(payload), 8)]), func(t *testing.T) {
				t.Parallel()
				c, _ := hostileDeflatePeer(t, takeover, fuzzAppendFrame(nil, true, rsv1, opBinary, false, payload))
				_, p, err := c.Read(ctx)
				if pe, ok := asType[*ProtocolError](err); !ok || pe.Code != StatusInvalidFramePayloadData {
					t.Errorf("Read: %q, %v; want a 1007 failure", p, err)
				}
			})
		}
	})
	t.Run("tail left in", func(t *testing.T) {
		var s []byte
		s = fuzzAppendFrame(s, true, rsv1, opText, false, append(bytes.Clone(z), flate.FlushTail...))
		s = fuzzAppendFrame(s, false, rsv1, opText, false, nil)
		s = fuzzAppendFrame(s, true, 0, opContinuation, false, z)
		c, _ := hostileDeflatePeer(t, takeover, s)
		for i := range 2 {
			if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
				t.Fatalf("Read %d: %q, %v", i, p, err)
			}
		}
	})
	t.Run("final block then garbage, then history", func(t *testing.T) {
		// The first message as one final fixed block, then junk; the
		// second refers back into the first.
		var fb bytes.Buffer
		fw, _ := stdFlateWriter(&fb)
		fw.Write(msg)
		fw.Close()
		var s []byte
		s = fuzzAppendFrame(s, false, rsv1, opBinary, false, fb.Bytes())
		s = fuzzAppendFrame(s, true, 0, opContinuation, false, []byte("\xff\xff junk"))
		w := flate.NewWriter(15)
		w.Remember(msg)
		z2 := bytes.TrimSuffix(w.Flush(w.Append(nil, msg)), []byte(flate.FlushTail))
		if len(z2) > 20 {
			t.Fatalf("second message %d bytes compressed: does not refer back", len(z2))
		}
		s = fuzzAppendFrame(s, true, rsv1, opBinary, false, z2)
		c, _ := hostileDeflatePeer(t, takeover, s)
		for i := range 2 {
			if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
				t.Fatalf("Read %d: %q, %v", i, p, err)
			}
		}
	})
	t.Run("reader stops midway then reads next", func(t *testing.T) {
		var s []byte
		for i := 0; i < len(z); i += 7 {
			s = fuzzAppendFrame(s, i+7 >= len(z), 0, opContinuation, false, z[i:min(i+7, len(z))])
		}
		s[0] = s[0]&^0x0f | byte(opText) | rsv1
		w := flate.NewWriter(15)
		w.Remember(msg)
		z2 := bytes.TrimSuffix(w.Flush(w.Append(nil, msg)), []byte(flate.FlushTail))
		s = fuzzAppendFrame(s, true, rsv1, opText, false, z2)
		c, _ := hostileDeflatePeer(t, takeover, s)
		_, r, err := c.Reader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var b [3]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("Read: %q, %v", p, err)
		}
	})
	t.Run("invalid utf8 text", func(t *testing.T) {
		var s []byte
		s = fuzzAppendFrame(s, true, rsv1, opText, false, deflateRaw(15, append(bytes.Clone(msg), 0xff)))
		c, out := hostileDeflatePeer(t, takeover, s)
		_, _, err := c.Read(ctx)
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != StatusInvalidFramePayloadData {
			t.Fatalf("Read: %v, want 1007", err)
		}
		if o := out(); len(o) < 8 || o[0] != 0x88 || o[6]^o[2] != 0x03 || o[7]^o[3] != 0xef {
			t.Fatalf("sent %x, want a masked close frame with 1007", o)
		}
	})
}

func stdFlateWriter(w io.Writer) (io.WriteCloser, error) { return stdflate.NewWriter(w, 6) }

// TestCompressedReadLimitLowered: SetReadLimit may be called at any time;
// a limit lowered below what the compressed message being read already
// inflated to fails it with 1009 at its next inflated byte.
func TestCompressedReadLimitLowered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := bytes.Repeat([]byte("inflated bytes "), 200)
	d := &deflateParams{threshold: 128, sendTakeover: true, sendBits: 15, recvTakeover: true, recvBits: 15}
	c, _ := hostileDeflatePeer(t, d, fuzzAppendFrame(nil, true, rsv1, opBinary, false, deflateRaw(15, msg)))
	_, r, err := c.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 1000)
	if _, err := io.ReadFull(r, p); err != nil || !bytes.Equal(p, msg[:1000]) {
		t.Fatalf("first 1000 bytes: %v", err)
	}
	c.SetReadLimit(10)
	_, err = r.Read(p)
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != StatusMessageTooBig {
		t.Fatalf("Read after the limit went under what was read: %v, want 1009", err)
	}
}

// TestCompressedReadAppendWithinLimit: ReadAppend grows its buffer no
// further than the read limit and a byte for a compressed message too,
// however many compressed bytes the frame being inflated still claims: a
// small bomb in a frame that claims the compressed size the limit allows
// fails with 1009 having allocated the limit once, not twice.
func TestCompressedReadAppendWithinLimit(t *testing.T) {
	const limit = 4 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bomb := deflateRaw(15, make([]byte, limit+1024))
	// The frame claims limit bytes; only the bomb's are sent.
	h := appendHeader(nil, header{fin: true, rsv: rsv1, op: opBinary, length: limit})
	d := &deflateParams{threshold: 128, sendTakeover: true, sendBits: 15, recvTakeover: true, recvBits: 15}
	c, _ := hostileDeflatePeer(t, d, append(h, bomb...))
	c.SetReadLimit(limit)
	dst := make([]byte, 0, limit)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := c.ReadAppend(ctx, dst)
	runtime.ReadMemStats(&after)
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != StatusMessageTooBig {
		t.Fatalf("ReadAppend: %v, want 1009", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > limit+limit/4 {
		t.Fatalf("ReadAppend allocated %d bytes into a buffer of the limit's %d; want the limit and a byte, and the decoder's state", got, limit)
	}
}

// TestCompressedInputBound: the compressed bytes of a message are bounded
// by what its read limit allows (compressedLimit) and a slack for every
// frame (compressedFrameSlack), so that a sender that flushes its
// compressor at the end of each fragment, as RFC 7692 allows and
// python-websockets does for a fragmented message, is not refused: 4,000
// bytes in one-byte fragments (28 KB compressed) under a limit of 4,096
// were, with 1009, and 1,040,000 random bytes in 500-byte fragments under
// a limit of 1 MiB. Input that inflates to nothing is still bounded, in
// one frame or in many, and the error names the limit the caller set, not
// the bound on the input ("the read limit of 5136 bytes" for a limit of
// 4096).
func TestCompressedInputBound(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := &deflateParams{threshold: 128, recvTakeover: true, recvBits: 15}
	for _, tt := range []struct{ limit, size, frag int }{{4096, 4000, 1}, {1 << 20, 1040000, 500}} {
		msg := randomBytes(1, tt.size)
		var s, z []byte
		var zb bytes.Buffer
		zw, _ := stdflate.NewWriter(&zb, 6)
		for i := 0; i < len(msg); i += tt.frag {
			zb.Reset()
			zw.Write(msg[i:min(i+tt.frag, len(msg))])
			zw.Flush()
			fin, op, rsv := i+tt.frag >= len(msg), opContinuation, byte(0)
			if i == 0 {
				op, rsv = opBinary, rsv1
			}
			p := zb.Bytes()
			if fin {
				p = bytes.TrimSuffix(p, []byte(flate.FlushTail))
			}
			z = append(z, p...)
			s = fuzzAppendFrame(s, fin, rsv, op, false, p)
		}
		c, _ := hostileDeflatePeer(t, d, s)
		c.SetReadLimit(int64(tt.limit))
		if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("%d bytes in %d-byte fragments, %d compressed, limit %d: %d bytes, %v; want the message", tt.size, tt.frag, len(z), tt.limit, len(p), err)
		}
	}

	// Empty stored blocks, which inflate to nothing, in one frame: up to
	// the bound, a frame of them and a stored block of 162 bytes makes a
	// message; past it, 1009 as soon as the header came.
	const limit = 4096
	bound := int(compressedLimit(limit))
	most := bound + compressedFrameSlack - 1 // compressedSize counts it as bound
	empty := []byte("\x00\x00\x00\xff\xff")
	stored := bytes.Repeat([]byte("a"), most-1000*len(empty)-5)
	p := append(bytes.Repeat(empty, 1000), 0, byte(len(stored)), byte(len(stored)>>8), ^byte(len(stored)), ^byte(len(stored)>>8))
	p = append(p, stored...)
	c, _ := hostileDeflatePeer(t, d, fuzzAppendFrame(nil, true, rsv1, opBinary, false, p))
	c.SetReadLimit(limit)
	if _, got, err := c.Read(ctx); err != nil || !bytes.Equal(got, stored) {
		t.Fatalf("a frame of %d compressed bytes: %q, %v; want the %d bytes stored", len(p), got, err, len(stored))
	}
	c, out := hostileDeflatePeer(t, d, appendHeader(nil, header{fin: true, rsv: rsv1, op: opBinary, length: int64(most + 1)}))
	c.SetReadLimit(limit)
	_, _, err := c.Read(ctx)
	const want = "compressed message too long for the read limit of 4096 bytes"
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != StatusMessageTooBig || pe.Reason != want {
		t.Fatalf("a frame of %d compressed bytes: %v, want 1009 %q", most+1, err, want)
	}
	o := out()
	if len(o) < 8 || o[0] != 0x88 {
		t.Fatalf("sent % x, want a close frame", o)
	}
	for i := 6; i < len(o); i++ {
		o[i] ^= o[2+(i-6)%4]
	}
	if got := string(o[6:]); got != "\x03\xf1"+want {
		t.Fatalf("close frame's payload %q, want 1009 and %q", got, want)
	}

	// Frames of empty blocks: each counts one byte, and what it carries
	// beyond the slack. Frames of 30 bytes counted nothing, so that a
	// message of them was never bounded; frames of 60 count 29.
	for _, tt := range []struct{ size, frames int }{{30, bound}, {60, bound / 29}} {
		for _, n := range []int{tt.frames, tt.frames + 1} {
			var s []byte
			for i := range n {
				op, rsv := opContinuation, byte(0)
				if i == 0 {
					op, rsv = opBinary, rsv1
				}
				s = fuzzAppendFrame(s, i == n-1, rsv, op, false, bytes.Repeat(empty, tt.size/len(empty)))
			}
			c, _ := hostileDeflatePeer(t, d, s)
			c.SetReadLimit(limit)
			_, got, err := c.Read(ctx)
			if n == tt.frames && (err != nil || len(got) != 0) {
				t.Fatalf("%d frames of %d bytes of empty blocks: %d bytes, %v; want an empty message", n, tt.size, len(got), err)
			}
			if pe, ok := asType[*ProtocolError](err); n > tt.frames && (!ok || pe.Code != StatusMessageTooBig || pe.Reason != want) {
				t.Fatalf("%d frames of %d bytes of empty blocks: %v, want 1009 %q", n, tt.size, err, want)
			}
		}
	}
}
