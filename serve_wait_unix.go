//go:build unix

package websocket

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// rawConn returns the socket under nc, or nil when nc is not a plain
// socket (a TLS connection, say, may hold decrypted input the socket no
// longer shows), for tryInput.
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// waitState is the waiting goroutine's own: awaitInput's callback (made on
// the first wait), and whether it took in input.
type waitState struct {
	readable func(fd uintptr) bool
	got      bool
}

// rawReader reads a non-blocking socket directly.
type rawReader struct{ fd int }

func (r rawReader) Read(p []byte) (int, error) {
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
	if s.readable == nil {
		s.readable = s.onReadable
	}
	s.got = false
	err := s.c.tr.raw.Read(s.readable)
	return s.got || !errors.Is(err, os.ErrDeadlineExceeded)
}

// onReadable is awaitInput's callback, made into s.readable once, so that
// later waits allocate nothing.
func (s *server) onReadable(fd uintptr) bool {
	c := s.c
	if !c.readMu.tryLock() {
		// A close handshake is reading; the next read waits for it.
		s.got = true
		return true
	}
	err := c.rb.fill(rawReader{int(fd)}, true)
	if err == syscall.EAGAIN || err == syscall.EINTR {
		c.readMu.unlock()
		return false
	}
	if err == nil {
		c.inputPending.Store(true)
		c.gotInput()
	}
	c.readMu.unlock()
	s.got = true
	return true
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
