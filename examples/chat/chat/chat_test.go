package chat

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
)

// Members keep coming while the server shuts down: Shutdown returns once
// the members it closed have left, those that come meanwhile are refused
// with 503, and counting them does not race with Shutdown's wait (the
// race detector flags a sync.WaitGroup used so).
func TestShutdownWhileJoining(t *testing.T) {
	s := NewServer(new(LocalBus), nil)
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws?room=r&name=n"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var joined, refused atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				select {
				case <-stop:
					return
				default:
				}
				c, resp, err := websocket.Dial(ctx, url, nil)
				switch {
				case err == nil:
					joined.Add(1)
					c.CloseNow()
				case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
					refused.Add(1)
				default:
					t.Errorf("Dial: %v", err)
					return
				}
			}
		})
	}
	for joined.Load() < 50 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	for refused.Load() < 50 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d members joined, %d refused", joined.Load(), refused.Load())
	if refused.Load() < 50 {
		t.Errorf("%d members refused after Shutdown, want 50 at least", refused.Load())
	}
	if _, resp, err := websocket.Dial(ctx, url, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("Dial after Shutdown: %v, want a 503 refusal", err)
	}
}
