//go:build unix

package websocket

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/rfc6455/websocket/internal/flate"
)

// rawConn returns the socket under nc, or nil when nc is not a plain
// socket (plainSocket).
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := plainSocket(nc)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// wakeReadSize bounds the first read after a wait for input, made into a
// pooled read buffer: it takes a burst of small messages whole, and
// leaves the rest of a larger one to the next read, by which time more
// has often arrived, so that the replies written meanwhile join one
// write. Reading all the buffer holds at once cost 40-70% more server CPU
// per echo at 16 KiB on 100 connections, for want of that; 2 and 4 KiB
// cost up to twice as much at 1 KiB; 512 bytes was as fast as the
// 128-byte idle array that read once came first, and faster for bursts
// of small messages (bench/cmd/wsbench, 16B-100x8 1.9 to 1.3 µs).
const wakeReadSize = 512

// rawReader reads a non-blocking socket directly, taking at most
// wakeReadSize bytes at a time unless whole is set.
type rawReader struct {
	fd    int
	whole bool
}

func (r rawReader) Read(p []byte) (int, error) {
	if len(p) > wakeReadSize && !r.whole {
		p = p[:wakeReadSize]
	}
	n, err := syscall.Read(r.fd, p)
	switch {
	case n > 0:
		return n, nil
	case err == nil:
		return 0, io.EOF
	}
	return 0, err
}

// awaitInput reads what the socket holds into the read buffer, which
// must be empty, waiting for input if there is none. It reports whether
// input came (or an end or error, which the next read reports), false when
// a read deadline cut the wait short. It waits in the runtime's network
// poller, holding no buffer.
func (s *server) awaitInput() bool {
	w := serveWaiters.Get().(*serveWaiter)
	w.s, w.got = s, false
	err := s.c.tr.raw.Read(w.fn)
	got := w.got
	w.s = nil
	serveWaiters.Put(w)
	return got || !errors.Is(err, os.ErrDeadlineExceeded)
}

// serveWaiter is awaitInput's callback, with its function made once: a
// waiting connection holds one from the pool, a parked one none.
type serveWaiter struct {
	fn  func(fd uintptr) bool
	s   *server
	got bool // input came, or an end or error
}

var serveWaiters = sync.Pool{New: func() any {
	w := new(serveWaiter)
	w.fn = w.readable
	return w
}}

func (w *serveWaiter) readable(fd uintptr) bool {
	c := w.s.c
	if !c.readMu.tryLock() {
		// A close handshake or a Ping is reading; the next read waits
		// for it.
		w.got = true
		return true
	}
	if !c.rb.isEmpty() {
		// A Ping or keepalive read ahead of Serve, and left input.
		c.inputPending.Store(true)
		c.readMu.unlock()
		w.got = true
		return true
	}
	err := c.rb.fillFromSocket(int(fd), false)
	if err == syscall.EAGAIN {
		c.readMu.unlock()
		return false
	}
	if err == nil {
		c.inputPending.Store(true)
		c.gotInput()
	} else if e, ok := err.(syscall.Errno); ok {
		// A reset, say: the socket reports it once, and the read that
		// follows would find only the end of the stream.
		c.rb.sockErr = int32(e)
	} else if err == io.EOF {
		// Kept too, so that the read that follows need not ask the
		// socket again.
		c.rb.sockErr = sockEOF
	}
	c.readMu.unlock()
	w.got = true
	return true
}

// awaitRaw waits for input on the socket under nc, whose stream rb reads
// and which rc reaches, holding no pooled buffer while it waits, then
// reads what arrived into one (fillFromSocket): with whole set (inside a
// message, or after part of a frame), as much as the buffer holds, as a
// read of nc would; otherwise at most wakeReadSize. rb must be empty or
// hold its few unread bytes in the idle array. It returns what a read of
// nc would have: nil once bytes arrived, io.EOF, or nc's error. If it
// has to wait, it pauses fr first, when not nil (see pausableLocked).
func awaitRaw(nc net.Conn, rc syscall.RawConn, rb *readBuffer, whole bool, fr *flate.Reader) error {
	f := rawFillers.Get().(*rawFiller)
	f.rb, f.whole, f.pause = rb, whole, fr
	err := rc.Read(f.fn)
	if err == nil {
		err = f.err
	}
	f.rb, f.err, f.pause = nil, nil, nil
	rawFillers.Put(f)
	if err == nil || err == io.EOF {
		return err
	}
	// The error in the words of a read of nc.
	re := &net.OpError{Op: "read", Source: nc.LocalAddr(), Addr: nc.RemoteAddr(), Err: err}
	switch e := err.(type) {
	case syscall.Errno:
		re.Err = os.NewSyscallError("read", e)
	case *net.OpError:
		// The wait's own error: closed, or past a deadline.
		re.Net, re.Err = e.Net, e.Err
	}
	if re.Net == "" && re.Source != nil {
		re.Net = re.Source.Network()
	}
	return re
}

// rawFiller is awaitRaw's callback, with its function made once: a
// closure made per call would be an allocation per wait.
type rawFiller struct {
	fn    func(fd uintptr) bool
	rb    *readBuffer
	whole bool
	err   error
	pause *flate.Reader // paused before the wait, if any
}

var rawFillers = sync.Pool{New: func() any {
	f := new(rawFiller)
	f.fn = f.fill
	return f
}}

func (f *rawFiller) fill(fd uintptr) bool {
	err := f.rb.fillFromSocket(int(fd), f.whole)
	if err == syscall.EAGAIN {
		if f.pause != nil {
			f.pause.Pause()
			f.pause = nil
		}
		return false
	}
	f.err = err
	return true
}

// fillFromSocket reads the non-blocking socket fd into a pooled buffer, at
// most wakeReadSize bytes unless whole is set, as the first read after a
// wait; b must be empty, or hold its unread bytes in the idle array. It
// returns syscall.EAGAIN when the socket has nothing yet, and holds no
// pooled buffer unless bytes came.
func (b *readBuffer) fillFromSocket(fd int, whole bool) error {
	switch e := b.sockErr; e {
	case 0:
	case sockEOF:
		b.sockErr = 0
		return io.EOF
	default:
		b.sockErr = 0
		return syscall.Errno(e)
	}
	if err := b.makeRoom(false); err != nil {
		return err
	}
	for {
		n, err := rawReader{fd, whole}.Read(b.buf[b.w:])
		b.w += int32(n)
		switch {
		case n > 0:
			return nil
		case err == syscall.EINTR:
			continue
		}
		b.shrink()
		return err
	}
}

// writeNow writes p to the socket in one non-blocking system call and
// returns how many bytes the socket took: fewer than len(p), even 0,
// when its buffer is full or writing fails (the next write, which waits,
// reports the failure).
func writeNow(rc syscall.RawConn, p []byte) int {
	w := nowWriters.Get().(*nowWriter)
	w.p, w.n = p, 0
	rc.Write(w.fn)
	n := w.n
	w.p = nil
	nowWriters.Put(w)
	return n
}

// nowWriter is writeNow's callback, with its function made once: a
// closure made per call would be an allocation per call.
type nowWriter struct {
	fn func(fd uintptr) bool
	p  []byte
	n  int
}

var nowWriters = sync.Pool{New: func() any {
	w := new(nowWriter)
	w.fn = w.write
	return w
}}

func (w *nowWriter) write(fd uintptr) bool {
	if n, err := syscall.Write(int(fd), w.p); err == nil && n > 0 {
		w.n = n
	}
	return true
}

// writeTracked writes all of p to the socket rc under nc as nc's own Write
// would (a system call, and while the socket takes only part, a wait for
// room and another call), noting each call that took some of it as output
// the peer took in (keepalive.wrote), at no cost in system calls.
func writeTracked(nc net.Conn, rc syscall.RawConn, p []byte, k *keepalive) (int, error) {
	w := trackedWriters.Get().(*trackedWriter)
	w.p, w.k = p, k
	err := rc.Write(w.fn)
	n := w.n
	if w.err != nil {
		// As the socket's own Write says it, without asking an
		// address for its network (an address may be nil).
		network := "tcp"
		if _, ok := nc.(*net.UnixConn); ok {
			network = "unix"
		}
		err = &net.OpError{Op: "write", Net: network, Source: nc.LocalAddr(), Addr: nc.RemoteAddr(), Err: w.err}
	} else if oe, ok := err.(*net.OpError); ok {
		// The wait's error (a deadline, the socket closed), said as a
		// write's.
		oe.Op = "write"
	}
	*w = trackedWriter{fn: w.fn}
	trackedWriters.Put(w)
	return n, err
}

// trackedWriter is writeTracked's callback, made once as nowWriter is.
type trackedWriter struct {
	fn  func(fd uintptr) bool
	p   []byte
	n   int
	k   *keepalive
	err error
}

var trackedWriters = sync.Pool{New: func() any {
	w := new(trackedWriter)
	w.fn = w.write
	return w
}}

// maxWriteCall bounds one system call's write, as the net package does.
const maxWriteCall = 1 << 30

func (w *trackedWriter) write(fd uintptr) bool {
	for w.n < len(w.p) {
		m, err := syscall.Write(int(fd), w.p[w.n:min(len(w.p), w.n+maxWriteCall)])
		if m > 0 {
			w.n += m
			w.k.wrote()
		}
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			return false // wait for room
		case err != nil:
			w.err = os.NewSyscallError("write", err)
			return true
		case m <= 0:
			w.err = io.ErrUnexpectedEOF
			return true
		}
	}
	return true
}
