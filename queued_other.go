//go:build !linux

package websocket

// inputQueued returns -1: on these systems neither the keepalive nor
// Read asks the kernel what input it holds.
func (t *transport) inputQueued() int32 { return -1 }

// outputQueued returns -1 likewise: the keepalive does not ask what
// output the kernel holds.
func (t *transport) outputQueued() int32 { return -1 }

// outputBlocked returns false: on these systems nothing asks whether a
// socket has room for output.
func (t *transport) outputBlocked() bool { return false }
