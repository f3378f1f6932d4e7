package websocket

import (
	"sync"
	"sync/atomic"
	"syscall"
)

// parkState is a served connection's parking, guarded by the parker's lock.
type parkState struct {
	fd         int  // the socket, once registered
	registered bool // the socket is in the parker's epoll set
	parked     bool // the parker holds the connection and no goroutine serves it
}

// parker keeps served connections that have gone quiet in an epoll set of
// its own, so that an idle connection holds no goroutine at all: one
// goroutine waits on the set for every parked connection and starts a
// serving goroutine for each whose input arrives. It runs only while
// connections are parked, and stops when the last one leaves.
type parker struct {
	mu      sync.Mutex
	epfd    int
	wake    [2]int            // a pipe whose read end is in the set: writing stops a wait
	parked  map[int32]*server // by socket; guarded by mu
	running bool              // the waiting goroutine runs; guarded by mu
}

var (
	parkerOnce sync.Once
	theParker  atomic.Pointer[parker] // nil until needed, or if epoll is unavailable
)

func getParker() *parker {
	parkerOnce.Do(func() {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		p := &parker{epfd: epfd, parked: make(map[int32]*server)}
		if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
			syscall.Close(epfd)
			return
		}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(p.wake[0])}
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
			syscall.Close(epfd)
			syscall.Close(p.wake[0])
			syscall.Close(p.wake[1])
			return
		}
		theParker.Store(p)
	})
	return theParker.Load()
}

// park hands s's connection to the parker, which starts s.run when input
// arrives; it reports false when the connection cannot be parked (closed,
// or epoll unavailable), and the caller keeps serving.
func (s *server) park() bool {
	p := getParker()
	if p == nil || s.c.tr.raw == nil {
		return false
	}
	fd := -1
	s.c.tr.raw.Control(func(f uintptr) { fd = int(f) })
	if fd < 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.c.isClosed() {
		return false
	}
	// Level-triggered and one-shot: input that came before the call is
	// reported at once, and each parking reports once.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(fd)}
	op := syscall.EPOLL_CTL_MOD
	if !s.registered {
		op = syscall.EPOLL_CTL_ADD
	}
	if err := syscall.EpollCtl(p.epfd, op, fd, &ev); err != nil {
		return false
	}
	s.registered, s.fd, s.parked = true, fd, true
	p.parked[int32(fd)] = s
	if !p.running {
		p.running = true
		go p.loop()
	}
	return true
}

// unpark takes s's connection out of the parker as it closes, and starts
// s.run if it was parked, so that onClose is called.
func (s *server) unpark() {
	p := theParker.Load()
	if p == nil {
		return
	}
	p.mu.Lock()
	if !s.registered {
		p.mu.Unlock()
		return
	}
	syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, s.fd, nil)
	s.registered = false
	wasParked := s.parked
	if wasParked {
		s.parked = false
		delete(p.parked, int32(s.fd))
		if len(p.parked) == 0 && p.running {
			syscall.Write(p.wake[1], []byte{0})
		}
	}
	p.mu.Unlock()
	if wasParked {
		go s.run()
	}
}

// loop waits on the epoll set and starts serving each connection whose
// input arrived, until no connection is parked.
func (p *parker) loop() {
	var events [128]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(p.epfd, events[:], -1)
		if err != nil && err != syscall.EINTR {
			n = 0
		}
		p.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == p.wake[0] {
				var b [64]byte
				syscall.Read(p.wake[0], b[:])
				continue
			}
			s, ok := p.parked[ev.Fd]
			if !ok {
				continue
			}
			delete(p.parked, ev.Fd)
			s.parked = false
			go s.run()
		}
		if len(p.parked) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}
