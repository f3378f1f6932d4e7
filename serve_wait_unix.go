//go:build unix

package websocket

import (
	"errors"
	"io"
	"net"
	"os"
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
