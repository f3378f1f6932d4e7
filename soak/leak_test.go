package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
)

// TestFailedCompressedWriteLeaksNothing is the soak's first find, reduced:
// a compressed message whose first frame cannot be sent (here its context
// has ended; in the soak, the peer had reset the connection) must leave
// nothing behind for the next compressed message, on any connection. Each
// round, connection A fails to send 40 KiB of incompressible bytes, then
// connection B sends a short message, which the server must receive
// exactly.
func TestFailedCompressedWriteLeaksNothing(t *testing.T) {
	type result struct {
		p   []byte
		err error
	}
	received := make(chan result, 1) // B's message, as the server read it
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Compression: websocket.CompressionNoContextTakeover})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, p, err := c.Read(ctx)
		if r.URL.Query().Has("b") {
			received <- result{p, err}
		}
	}))
	defer srv.Close()
	dial := func(query string) *websocket.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+srv.URL[len("http"):]+query, &websocket.DialOptions{Compression: websocket.CompressionNoContextTakeover})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	secret := make([]byte, 40<<10)
	for i := range secret {
		secret[i] = byte(rand.Uint32())
	}
	copy(secret, "A's secret")
	msg := bytes.Repeat([]byte("B's own message. "), 16) // compressed: over the 128-byte threshold
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	// sync.Pool gives back what was put only on the same P, and under the
	// race detector drops a quarter of it: a few rounds make sure.
	for round := range 20 {
		func() {
			a, b := dial("?a"), dial("?b")
			defer a.CloseNow()
			defer b.CloseNow()
			if err := a.Write(ended, websocket.MessageBinary, secret); !errors.Is(err, context.Canceled) {
				t.Fatalf("round %d: A's write with an ended context returned %v, want context.Canceled", round, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.Write(ctx, websocket.MessageBinary, msg); err != nil {
				t.Fatalf("round %d: B's write: %v", round, err)
			}
			select {
			case got := <-received:
				if got.err != nil {
					t.Fatalf("round %d: the server's read of B's message: %v", round, got.err)
				}
				if !bytes.Equal(got.p, msg) {
					t.Fatalf("round %d: the server received %d bytes from B, which sent %d: %q...%q",
						round, len(got.p), len(msg), got.p[:min(len(got.p), 16)], got.p[max(0, len(got.p)-16):])
				}
			case <-ctx.Done():
				t.Fatalf("round %d: nothing from B within 10s", round)
			}
		}()
	}
}

// TestServedConnsAreFreed is the soak's second find, reduced: a
// connection served by Serve must be freed once it has ended. Clients
// keep their connections busy, so that Serve's timer that looks for long
// waits stays armed, and then close them; every server Conn must then be
// collected.
func TestServedConnsAreFreed(t *testing.T) {
	var made, freed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		made.Add(1)
		runtime.AddCleanup(c, func(freed *atomic.Int64) { freed.Add(1) }, &freed)
		c.Serve(func(typ websocket.MessageType, p []byte) {
			c.Write(context.Background(), typ, p)
		}, func(error) {})
	}))
	defer srv.Close()

	const clients, rounds = 100, 40
	for round := range rounds {
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, _, err := websocket.Dial(ctx, "ws"+srv.URL[len("http"):], nil)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.CloseNow()
				// Busy for 30 to 80 ms: one message and its echo at a time.
				for end := time.Now().Add(time.Duration(30+(i*7+round)%50) * time.Millisecond); time.Now().Before(end); {
					if err := c.Write(ctx, websocket.MessageBinary, []byte("busy")); err != nil {
						t.Error(err)
						return
					}
					if _, _, err := c.Read(ctx); err != nil {
						t.Error(err)
						return
					}
				}
				if i%2 == 0 {
					c.Close(websocket.StatusNormalClosure, "")
				}
			})
		}
		wg.Wait()
	}
	// A Conn may outlive its connection briefly, held by a timer about to
	// find it closed; not for seconds.
	deadline := time.Now().Add(5 * time.Second)
	for freed.Load() < made.Load() && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
	}
	if n := made.Load() - freed.Load(); n > 0 {
		t.Errorf("%d of %d served Conns still reachable 5s after their connections ended", n, made.Load())
	}
}
