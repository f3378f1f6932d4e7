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

// outputBlocked reports whether the socket under the stream has no room
// for more output, so that a write to it waits for the peer to read; false
// when that cannot be known, as inputQueued.
func (t *transport) outputBlocked() bool { return t.queued(askWritable) == 0 }

// askWritable, given to queued in place of an ioctl's request, asks
// whether the socket takes output now (poll, without waiting): 1 if it
// does, 0 if not.
const askWritable = 0

// pollOut is poll's event for a socket with room for output.
const pollOut = 0x4

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
	pfd struct { // poll's pollfd, for askWritable
		fd             int32
		events, revent int16
	}
	zero syscall.Timespec // poll's timeout: none
}

var queueQueries = sync.Pool{New: func() any {
	q := new(queueQuery)
	q.ask = func(fd uintptr) {
		if q.req == askWritable {
			q.pfd.fd, q.pfd.events, q.pfd.revent = int32(fd), pollOut, 0
			if n, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&q.pfd)), 1, uintptr(unsafe.Pointer(&q.zero)), 0, 0, 0); errno == 0 {
				q.n = int32(n) // the one socket, if it has room
			}
			return
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, q.req, uintptr(unsafe.Pointer(&q.n))); errno != 0 {
			q.n = -1
		}
	}
	return q
}}
