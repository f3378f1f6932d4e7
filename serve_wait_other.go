//go:build !unix

package websocket

import (
	"net"
	"syscall"

	"github.com/rfc6455/websocket/internal/flate"
)

// rawConn returns nil: on these systems Serve waits for input in a read.
func rawConn(net.Conn) syscall.RawConn { return nil }

func (s *server) awaitInput() bool { return true }

// awaitRaw is never called: rawConn gives no socket on these systems.
func awaitRaw(net.Conn, syscall.RawConn, *readBuffer, bool, *flate.Reader) error { return nil }

// writeNow is never called: rawConn gives no socket on these systems.
func writeNow(syscall.RawConn, []byte) int { return 0 }

// writeTracked is never called: rawConn gives no socket on these systems.
func writeTracked(net.Conn, syscall.RawConn, []byte, *keepalive) (int, error) { return 0, nil }
