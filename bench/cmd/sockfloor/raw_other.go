//go:build !linux

package main

import (
	"errors"
	"net"
)

type rawHolder struct{}

func newRawHolder(int) (*rawHolder, error) {
	return nil, errors.New("-raw needs epoll, on Linux")
}

func (*rawHolder) hold(net.Conn) error { return nil }
func (*rawHolder) close()              {}
