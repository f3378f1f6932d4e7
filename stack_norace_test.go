//go:build !race

package websocket

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

// TestAcceptStackRoom checks that Accept leaves a handler room on a 4 KiB
// goroutine stack. A handler that waits in Read keeps the stack its
// deepest call grew it to: once past 4 KiB it is 8 KiB, and it cannot
// shrink while it waits, as the net/http frames under it alone take more
// than a quarter of it. Here each handler holds 256 bytes of its own
// before it calls Accept, and 100 of them wait in Read; their stacks must
// stay near 4 KiB each.
func TestAcceptStackRoom(t *testing.T) {
	const n = 100
	accepted := make(chan struct{}, n)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paddedHandler(w, r, accepted)
	}))
	defer s.Close()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	conns := make([]*Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	for range n {
		conns = append(conns, dialT(t, wsURL(s), nil))
		select {
		case <-accepted:
		case <-time.After(10 * time.Second):
			t.Fatal("the handler did not accept within 10s")
		}
	}
	time.Sleep(50 * time.Millisecond) // the last handlers reach Read
	runtime.ReadMemStats(&after)
	perConn := (int64(after.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("goroutine stacks: %d bytes per connection", perConn)
	if perConn > 6<<10 {
		t.Errorf("goroutine stacks take %d bytes per connection, want about 4 KiB: Accept's deepest call outgrew a 4 KiB stack under a handler of 256 bytes", perConn)
	}
}

// paddedHandler holds 256 bytes on its frame, accepts, and waits in Read.
//
//go:noinline
func paddedHandler(w http.ResponseWriter, r *http.Request, accepted chan<- struct{}) {
	var pad [256]byte
	c, err := Accept(w, r, nil)
	runtime.KeepAlive(&pad)
	if err != nil {
		return
	}
	defer c.CloseNow()
	accepted <- struct{}{}
	c.Read(context.Background())
}
