//go:build !linux

package websocket

// park reports false: without epoll, a quiet served connection keeps a
// small goroutine waiting for input.
func (s *server) park() bool { return false }

func (s *server) unpark() {}
