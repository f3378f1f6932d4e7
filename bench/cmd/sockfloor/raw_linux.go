package main

import (
	"errors"
	"net"
	"syscall"
)

// rawHolder holds connections as bare descriptors in an epoll set.
type rawHolder struct {
	epfd int
	fds  []int
}

func newRawHolder(n int) (*rawHolder, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &rawHolder{epfd: epfd, fds: make([]int, 0, n)}, nil
}

// hold duplicates c's descriptor into the set, waiting for input once, as
// a parked connection does, and closes c, which lets its net.Conn and its
// registration with the runtime's poller go.
func (h *rawHolder) hold(c net.Conn) error {
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errors.New("the connection has no descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = syscall.Dup(int(s)) }); err != nil {
		return err
	}
	if dupErr != nil {
		return dupErr
	}
	h.fds = append(h.fds, fd)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(fd)}
	return syscall.EpollCtl(h.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

func (h *rawHolder) close() {
	for _, fd := range h.fds {
		syscall.Close(fd)
	}
	syscall.Close(h.epfd)
}
