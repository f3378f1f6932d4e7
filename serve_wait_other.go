//go:build !unix

package websocket

import (
	"net"
	"syscall"
)

// rawConn returns nil: on these systems Serve waits for input in a read.
func rawConn(net.Conn) syscall.RawConn { return nil }

func (s *server) awaitInput() bool { return true }
