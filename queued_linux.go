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
func (t *transport) inputQueued() int32 { return t.queued(syscall.TIOCINQ) }

// outputQueued returns how many bytes of our output the kernel holds for
// the connection's socket, not yet sent or not yet acknowledged by the
// peer (SIOCOUTQ), or -1 when that cannot be known, as inputQueued.
func (t *transport) outputQueued() int32 { return t.queued(syscall.TIOCOUTQ) }

// queued asks the kernel for one of the socket's queues, req.
func (t *transport) queued(req uintptr) int32 {
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
	q.req, q.n = req, -1
	rc.Control(q.ask)
	n := q.n
	queueQueries.Put(q)
	return n
}

// queueQuery asks the kernel for a socket's queue, req: its ask, made
// once with it, stores the answer in n, or -1 if the call failed. The
// queries are pooled, so that asking of a plain socket allocates nothing
// (a closure given to RawConn.Control escapes; over TLS, the socket's
// RawConn is made for each call).
type queueQuery struct {
	ask func(fd uintptr)
	req uintptr
	n   int32
}

var queueQueries = sync.Pool{New: func() any {
	q := new(queueQuery)
	q.ask = func(fd uintptr) {
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, q.req, uintptr(unsafe.Pointer(&q.n))); errno != 0 {
			q.n = -1
		}
	}
	return q
}}
