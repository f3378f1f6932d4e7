//go:build !linux

package websocket

// parkState is empty: these systems do not park connections.
//
//lint:ignore U1000 the server embeds it on every system
type parkState struct{}

// park reports false: without epoll, a quiet served connection keeps a
// small goroutine waiting for input.
func (s *server) park() bool { return false }

func (s *server) unpark() {}
