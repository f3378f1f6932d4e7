//go:build unix

package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rfc6455/websocket/examples/internal/chattest"
)

// TestShutdownRedisStalled stops a server with SIGTERM while Redis takes
// its requests and answers none (SIGSTOP, as a partition would): its
// members get 1001, and it exits once the 5 s it gives its members'
// leaves have passed, saying what may be lost. It took 17 s, waiting for
// the writer's and the reader's requests to time out.
func TestShutdownRedisStalled(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := chattest.Start(t, chatPath, "-redis", r.addr())
	a := chattest.Join(t, s.WS("lobby", "a"), "a")
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer r.cmd.Process.Signal(syscall.SIGCONT)
	start := time.Now()
	s.Signal(t, syscall.SIGTERM)
	a.Closed(t)
	code := s.ExitCode(t, 30*time.Second)
	if took := time.Since(start); took > 7*time.Second {
		t.Errorf("exited %v after SIGTERM, want 5 s and a little", took.Round(time.Millisecond))
	}
	// The count is the events held: the join may be among them, its
	// transaction having timed out though Redis applied it.
	if want := "may not have been written to Redis: context deadline exceeded"; code != 0 || !strings.Contains(s.Log(), want) {
		t.Errorf("exit code %d, want 0 and %q in the log:\n%s", code, want, s.Log())
	}
}
