//go:build !linux

package websocket

// inputQueued returns -1: on these systems the keepalive does not ask the
// kernel what input it holds.
func (t *transport) inputQueued() int32 { return -1 }
