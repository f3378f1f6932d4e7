package websocket

import (
	"errors"
	"io"
	"sync"
)

const (
	// idleReadSize is the size of the array a connection reads into while
	// it waits inside a read for a frame, or for the rest of one, so that
	// such a wait holds no pooled buffer. It fits a small message whole,
	// and any frame header. A transport without a socket to await waits
	// that way (TLS, an HTTP/2 stream); on a plain socket, the wait holds
	// no buffer at all (awaitRaw), but for the array when part of a
	// header or control frame came before it.
	idleReadSize = 128
	// readBufferSize is the size of the pooled buffers a connection reads
	// into while frames are arriving. One read takes in several medium
	// messages when that many are waiting; the reader then holds input,
	// and the replies written meanwhile join one write (see queue.go).
	// At 16 KiB messages, that cut the server CPU per echo by 40%.
	readBufferSize = 32 << 10
)

var readBufPool = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

// readBuffer holds bytes read from the transport and not yet consumed:
// buf[r:w]. buf is the connection's idle array, a pooled buffer, or nil.
// Its size matters: it is part of every Conn.
type readBuffer struct {
	buf    []byte
	r, w   int32
	pooled *[]byte             // buf's pool entry, when buf is pooled
	idle   *[idleReadSize]byte // made by the first idle fill
	inIdle bool                // buf is idle[:]
	// flowing is set when the last fill's read took all the room it was
	// given: the transport had input to spare, and the next read will
	// likely find more without waiting.
	flowing bool
	// sockErr is the number of a socket error that Serve's wait for input
	// read, kept for the read that follows, since a socket reports an
	// error once (serve_wait_unix.go), or sockEOF for the end of the
	// stream; 0 when none.
	//lint:ignore U1000 unused where Serve waits inside a read (serve_wait_other.go)
	sockErr int32
}

// sockEOF in readBuffer.sockErr is the end of the stream, which no errno
// stands for.
//
//lint:ignore U1000 unused where Serve waits inside a read (serve_wait_other.go)
const sockEOF = -1

func (b *readBuffer) bytes() []byte { return b.buf[b.r:b.w] }
func (b *readBuffer) len() int      { return int(b.w - b.r) }
func (b *readBuffer) consume(n int) { b.r += int32(n) }
func (b *readBuffer) isEmpty() bool { return b.r == b.w }

// preload makes p, bytes read past the opening handshake, the first to be
// consumed.
func (b *readBuffer) preload(p []byte) {
	if len(p) <= readBufferSize {
		b.takePooled()
		b.w = int32(copy(b.buf, p))
		return
	}
	b.buf = append([]byte(nil), p...)
	b.w = int32(len(p))
}

// takePooled moves the unread bytes into a pooled buffer.
func (b *readBuffer) takePooled() {
	bp := readBufPool.Get().(*[]byte)
	n := copy(*bp, b.bytes())
	b.buf, b.pooled, b.inIdle = *bp, bp, false
	b.r, b.w = 0, int32(n)
}

// release drops the buffer when it holds nothing unread.
func (b *readBuffer) release() {
	if b.r != b.w {
		return
	}
	if b.pooled != nil {
		readBufPool.Put(b.pooled)
		b.pooled = nil
	}
	b.buf, b.inIdle = nil, false
	b.r, b.w = 0, 0
}

// fill reads from src once, adding at least one byte unless it fails. An
// idle fill, made where the read will likely wait, reads into the idle
// array as long as the unread bytes leave room there; others read into a
// pooled buffer.
func (b *readBuffer) fill(src io.Reader, idle bool) error {
	if err := b.makeRoom(idle); err != nil {
		return err
	}
	for {
		n, err := src.Read(b.buf[b.w:])
		b.flowing = n == len(b.buf)-int(b.w)
		b.w += int32(n)
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// makeRoom readies buf for a fill: the idle array or a pooled buffer, as
// fill says, with room after the unread bytes. The socket's fill
// (fillFromSocket) reads without fill, since an io.Reader made of a socket
// escapes to the heap, an allocation per read.
func (b *readBuffer) makeRoom(idle bool) error {
	if b.r == b.w {
		b.r, b.w = 0, 0
	}
	idle = idle && b.len() < idleReadSize
	switch {
	case idle && !b.inIdle:
		b.toIdle()
	case b.buf == nil || (b.inIdle && !idle):
		b.takePooled()
	case int(b.w) == len(b.buf):
		if b.r == 0 {
			// Only headers and control frames are gathered in the buffer,
			// and both fit; payloads are consumed as they arrive.
			return errors.New("websocket: read buffer full")
		}
		b.w = int32(copy(b.buf, b.bytes()))
		b.r = 0
	}
	return nil
}

// shrink moves a few unread bytes out of a pooled buffer into the idle
// array, for a connection that may stay unread a long while, and drops
// the buffer when nothing is unread.
func (b *readBuffer) shrink() {
	if b.isEmpty() {
		b.release()
		return
	}
	if b.pooled == nil || b.len() > idleReadSize {
		return
	}
	b.toIdle()
}

// toIdle moves the unread bytes, at most idleReadSize of them, into the
// idle array, and gives a pooled buffer back.
func (b *readBuffer) toIdle() {
	if b.idle == nil {
		b.idle = new([idleReadSize]byte)
	}
	n := copy(b.idle[:], b.bytes())
	if b.pooled != nil {
		readBufPool.Put(b.pooled)
		b.pooled = nil
	}
	b.buf, b.inIdle, b.r, b.w = b.idle[:], true, 0, int32(n)
}
