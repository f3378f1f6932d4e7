//go:build unix

package websocket

import (
	"errors"
	"io"
	"syscall"
	"testing"
	"time"
)

// TestServeEndKept: the end of the stream that Serve's wait for input
// reads is kept for the read that follows, which then does not ask the
// socket again (a system call per connection that ends), and serving ends
// with it.
func TestServeEndKept(t *testing.T) {
	t.Parallel()
	var b readBuffer
	b.sockErr = sockEOF
	// fd -1: a read of the socket would fail with EBADF.
	if err := b.fillFromSocket(-1, false); err != io.EOF {
		t.Fatalf("fillFromSocket with the end kept: %v, want io.EOF", err)
	}
	if err := b.fillFromSocket(-1, false); err != syscall.EBADF {
		t.Fatalf("fillFromSocket once the end was taken: %v, want EBADF (a read)", err)
	}

	s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
	nc := rawClient(t, s.Listener.Addr().String())
	sc := <-conns
	if sc.tr.raw == nil {
		t.Skip("Serve waits in a read here")
	}
	closed := make(chan error, 1)
	sc.Serve(func(MessageType, []byte) {}, func(err error) { closed <- err })
	nc.Close()
	select {
	case err := <-closed:
		if !errors.Is(err, io.EOF) || err.Error() != "websocket: connection lost: EOF" {
			t.Errorf("onClose got %v, want websocket: connection lost: EOF", err)
		}
		if sc.rb.sockErr != 0 {
			t.Errorf("sockErr %d left after serving ended, want 0", sc.rb.sockErr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serving never ended after the client closed")
	}
	sc.CloseNow()
}
