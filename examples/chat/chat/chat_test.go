package chat

import (
	"context"
	"errors"
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

// heldBus is a bus whose Publish holds the joins, until release delivers
// them, and refuses every message.
type heldBus struct {
	LocalBus
	mu      sync.Mutex
	joins   []Event // guarded by mu
	room    string  // guarded by mu
	refused atomic.Int64
}

func (b *heldBus) Publish(room string, ev Event) error {
	switch ev.Type {
	case "join":
		b.mu.Lock()
		b.joins, b.room = append(b.joins, ev), room
		b.mu.Unlock()
		return nil
	case "message":
		b.refused.Add(1)
		return errors.New("the bus refuses")
	}
	return b.LocalBus.Publish(room, ev)
}

func (b *heldBus) release() {
	b.mu.Lock()
	joins, room := b.joins, b.room
	b.joins = nil
	b.mu.Unlock()
	for _, ev := range joins {
		b.LocalBus.Publish(room, ev)
	}
}

// A member whose message is refused while its join is still held by the
// bus (Redis unreachable, say) gets its own join first, and the error
// after it, as the package documents: the error came first.
func TestErrorAfterOwnJoin(t *testing.T) {
	bus := new(heldBus)
	s := NewServer(bus, nil)
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws?room=r&name=a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	for bus.refused.Load() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the message never reached the bus")
		}
		time.Sleep(time.Millisecond)
	}
	bus.release()
	for _, want := range []string{
		`{"type":"join","name":"a","members":["a"]}`,
		`{"type":"error","text":"not sent: the bus refuses"}`,
	} {
		_, p, err := c.Read(ctx)
		if err != nil || string(p) != want {
			t.Fatalf("got %s, %v; want %s", p, err, want)
		}
	}
}
