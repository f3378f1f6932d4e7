//go:build !linux

package websocket

// inputQueued returns -1: on these systems neither the keepalive nor
// Read asks the kernel what input it holds.
func (t *transport) inputQueued() int32 { return -1 }
