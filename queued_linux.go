package websocket

import (
	"sync"
	"syscall"
	"unsafe"
)

// inputQueued returns how many bytes of input the kernel holds for the
// connection's socket, received and not yet read (SIOCINQ), or -1 when
// that cannot be known: the transport is not a socket of the net package
// (an HTTP/2 stream), or the call failed. Over TLS it is the socket's
// queue, records and all (tlsSocket).
func (t *transport) inputQueued() int32 {
	rc := t.raw
	if rc == nil {
		nc := t.tlsSocket()
		if nc == nil {
			return -1
		}
		if rc = rawConn(nc); rc == nil {
			return -1
		}
	}
	q := queueQueries.Get().(*queueQuery)
	q.n = -1
	rc.Control(q.ask)
	n := q.n
	queueQueries.Put(q)
	return n
}

// queueQuery asks the kernel for a socket's input queue: its ask, made
// once with it, stores the answer in n, or -1 if the call failed. The
// queries are pooled, so that asking of a plain socket allocates nothing
// (a closure given to RawConn.Control escapes; over TLS, the socket's
// RawConn is made for each call).
type queueQuery struct {
	ask func(fd uintptr)
	n   int32
}

var queueQueries = sync.Pool{New: func() any {
	q := new(queueQuery)
	q.ask = func(fd uintptr) {
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&q.n))); errno != 0 {
			q.n = -1
		}
	}
	return q
}}
