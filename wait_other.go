//go:build !unix

package websocket

import (
	"net"
	"syscall"
	"time"
)

// rawConn returns nil: on these systems Serve waits for input in a read.
func rawConn(net.Conn) syscall.RawConn { return nil }

func (c *Conn) awaitInput() bool { return true }

func (c *Conn) setRawDeadline(time.Time) bool { return true }
