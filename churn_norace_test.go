//go:build !race

package websocket

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// churnEndings are the ways TestChurnHeap ends a connection, one per
// connection in turn.
var churnEndings = []string{
	"client Close",            // the close handshake, begun by the client
	"client CloseNow",         // the client drops the connection without a close frame
	"server Close",            // the close handshake, begun by the server
	"server gives up",         // the server's read ends (its context, or CloseNow from Serve)
	"cut mid-message",         // the client drops the connection inside a message
	"keepalive timeout",       // the client stops reading: the server's keepalive ends it
	"close answer never read", // the server's close frame waits for an answer that never comes
}

// TestChurnHeap opens connections in rounds and ends each in one of the
// ways a server meets (churnEndings), with and without compression,
// served by a Read loop or by Serve, both ends in this process, and checks
// that they leave nothing behind: no goroutine, no connection in the
// Registry, and no heap. The heap is read after the first two rounds,
// whose growth (pools, the runtime's tables) happens once, and again
// after four more; a connection that left as little as its Conn behind
// would exceed the bound several times over.
func TestChurnHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,344 connections")
	}
	const perRound = 8 * 2 * 2 * 7 // workers, compression, Serve, endings: each combination once per worker
	var reg Registry
	var ended sync.Map // of the id in the query, the error that ended the server's end
	s := httptest.NewServer(churnHandler(&reg, &ended))
	defer s.Close()
	url := wsURL(s)
	var ids atomic.Int64 // a connection's id, unique over the rounds

	round := func() {
		t.Helper()
		errs := make(chan error, perRound)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < perRound; i += 8 {
					if err := churnOne(url, i/8, fmt.Sprint(ids.Add(1)), &ended); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			t.FailNow()
		}
		waitFor(t, "the server's connections to end", func() bool { return reg.Len() == 0 })
	}
	goroutines := runtime.NumGoroutine()
	heap := func() int64 {
		// The server's goroutines end shortly after their connections;
		// two collections empty the pools.
		waitFor(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines })
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	round()
	round()
	before := heap()
	const measured = 4
	for range measured {
		round()
	}
	grown := heap() - before
	per := grown / (measured * perRound)
	t.Logf("%d connections: heap grew by %d bytes (%d per connection)", measured*perRound, grown, per)
	if per > 64 {
		t.Errorf("the heap grew by %d bytes per connection ended over %d connections, want at most 64", per, measured*perRound)
	}
}

// churnHandler accepts with the query's options and serves as it says:
// serve=1 with Serve, otherwise with a Read loop. Both echo every message
// but the commands "close" (Close with StatusGoingAway) and "give up"
// (the Read loop's context ends; Serve's callback calls CloseNow). The
// error that ends a connection whose query has an id goes into ended
// under that id; such a connection has a keepalive that times out in 60
// ms.
func churnHandler(reg *Registry, ended *sync.Map) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		// Every connection has the keepalive, the default's (20 s); the
		// one whose ending is its timeout, a short one. A short one on
		// every connection would fail those whose client a busy machine
		// holds up for 60 ms.
		opts := &AcceptOptions{Registry: reg, CloseTimeout: 100 * time.Millisecond}
		if q.Has("id") {
			opts.KeepaliveInterval, opts.KeepaliveTimeout = 20*time.Millisecond, 40*time.Millisecond
		}
		if q.Get("deflate") == "1" {
			opts.Compression = CompressionContextTakeover
			opts.CompressionThreshold = 1
		}
		c, err := Accept(w, r, opts)
		if err != nil {
			return
		}
		if q.Get("serve") == "1" {
			c.Serve(func(typ MessageType, p []byte) {
				switch string(p) {
				case "close":
					go c.Close(StatusGoingAway, "bye")
				case "give up":
					c.CloseNow()
				default:
					c.Enqueue(typ, p)
				}
			}, func(err error) {
				if q.Has("id") {
					ended.Store(q.Get("id"), err)
				}
			})
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				if q.Has("id") {
					ended.Store(q.Get("id"), err)
				}
				return
			}
			switch string(p) {
			case "close":
				c.Close(StatusGoingAway, "bye")
				return
			case "give up":
				time.AfterFunc(5*time.Millisecond, cancel)
				continue
			}
			if err := c.Write(ctx, typ, p); err != nil {
				return
			}
		}
	})
}

// churnOne dials, echoes a small and a large message, and ends the
// connection the i-th way: the ending, then compression, then Serve
// vary with i. The server knows the connection by id (ended has its end)
// when the ending needs it.
func churnOne(url string, i int, id string, ended *sync.Map) error {
	ending := churnEndings[i%len(churnEndings)]
	deflate, serve := i/len(churnEndings)%2, i/len(churnEndings)/2%2
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &DialOptions{}
	if deflate == 1 {
		opts.Compression = CompressionContextTakeover
	}
	query := fmt.Sprintf("/?deflate=%d&serve=%d", deflate, serve)
	if ending == "keepalive timeout" {
		query += "&id=" + id
		defer ended.Delete(id)
	}
	c, _, err := Dial(ctx, url+query, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", ending, err)
	}
	defer c.CloseNow()
	fail := func(err error) error {
		return fmt.Errorf("%s, compression %d, Serve %d: %w", ending, deflate, serve, err)
	}
	for _, msg := range []string{"hello", strings.Repeat("0123456789abcdef", 5000)} {
		if err := c.Write(ctx, MessageText, []byte(msg)); err != nil {
			return fail(err)
		}
		if _, p, err := c.Read(ctx); err != nil || string(p) != msg {
			return fail(fmt.Errorf("echo of %d bytes: %d bytes, %v", len(msg), len(p), err))
		}
	}
	// readEnd reads until the connection ends, which the server makes it
	// do, and returns how.
	readEnd := func() error {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return err
			}
		}
	}
	var ce CloseError
	switch ending {
	case "client Close":
		if err := c.Close(StatusNormalClosure, ""); err != nil {
			return fail(err)
		}
	case "client CloseNow":
		c.CloseNow()
	case "server Close":
		c.Write(ctx, MessageText, []byte("close"))
		if err := readEnd(); !errors.As(err, &ce) || ce.Code != StatusGoingAway {
			return fail(fmt.Errorf("read: %v, want the server's close with %v", err, StatusGoingAway))
		}
	case "server gives up":
		c.Write(ctx, MessageText, []byte("give up"))
		if err := readEnd(); errors.Is(err, context.DeadlineExceeded) {
			return fail(err)
		}
	case "cut mid-message":
		w, err := c.Writer(ctx, MessageBinary)
		if err != nil {
			return fail(err)
		}
		w.Write(make([]byte, 100<<10)) // frames go out; the message never ends
		c.CloseNow()
	case "keepalive timeout":
		// No reads, so the server's pings go unanswered, until the
		// server's end is over.
		start := time.Now()
		for {
			if err, ok := ended.Load(id); ok {
				if !errors.Is(err.(error), ErrKeepaliveTimeout) {
					return fail(fmt.Errorf("the server's end: %v, want %v", err, ErrKeepaliveTimeout))
				}
				break
			}
			if time.Since(start) > 5*time.Second {
				return fail(errors.New("the server's keepalive did not end the connection in 5 s"))
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := readEnd(); !errors.As(err, &ce) || ce.Code != StatusInternalError {
			return fail(fmt.Errorf("read after the keepalive's timeout: %v, want a close with %v", err, StatusInternalError))
		}
	case "close answer never read":
		c.Write(ctx, MessageText, []byte("close"))
		time.Sleep(150 * time.Millisecond) // over the server's CloseTimeout
		c.CloseNow()
	}
	return nil
}
