package websocket

import (
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
	n := int32(-1)
	rc.Control(func(fd uintptr) {
		var q int32
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&q))); errno == 0 {
			n = q
		}
	})
	return n
}
