//go:build linux

package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	ours "github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/bench/echo"
)

// handshakeClient returns a function that opens a connection to addr with
// lib's own client, as its users dial (nil options), and drops it at once
// (no closing handshake). It is nil for the servers whose handshake is
// not measured.
func handshakeClient(lib string) func(ctx context.Context, addr string) error {
	switch {
	case echo.IsOurs(lib):
		return func(ctx context.Context, addr string) error {
			c, _, err := ours.Dial(ctx, "ws://"+addr, nil)
			if err != nil {
				return err
			}
			return c.CloseNow()
		}
	case lib == echo.Gorilla:
		return func(ctx context.Context, addr string) error {
			c, _, err := gorilla.DefaultDialer.DialContext(ctx, "ws://"+addr, nil)
			if err != nil {
				return err
			}
			return c.Close()
		}
	case lib == echo.Coder:
		return func(ctx context.Context, addr string) error {
			c, _, err := coder.Dial(ctx, "ws://"+addr, nil)
			if err != nil {
				return err
			}
			return c.CloseNow()
		}
	}
	return nil
}

// runHandshakes opens connections to s with lib's own client, sc.Conns at
// a time, each dropped as soon as it is open, through the warm-up and the
// measured window, and measures the handshakes' rate, the server's CPU
// time and heap allocations, and the client's (this process's) CPU time
// and heap allocations. The clients' ports in TIME_WAIT are reused for
// new connections on loopback (net.ipv4.tcp_tw_reuse, 2 by default).
func (b *bench) runHandshakes(sc scenario, s *server, r *result) error {
	dial := handshakeClient(s.lib)
	if dial == nil {
		return fmt.Errorf("no handshake client for %s", s.lib)
	}
	total := b.cfg.warmup + b.cfg.duration
	// The count bound: far more than one CPU can accept in the time.
	maxHS := int64(total.Seconds()*1e5) + 1000
	// stopping ends when stop is called; the dials under way finish.
	stopping, stopAll := context.WithCancel(context.Background())
	errc := make(chan error, sc.Conns)
	var handshakes atomic.Int64
	var wg sync.WaitGroup
	for range sc.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for stopping.Err() == nil && handshakes.Load() < maxHS {
				ctx, cancel := context.WithTimeout(context.Background(), b.cfg.stall+10*time.Second)
				err := dial(ctx, s.addr)
				cancel()
				if err != nil {
					if stopping.Err() == nil {
						errc <- err
					}
					return
				}
				handshakes.Add(1)
			}
		}()
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopAll()
		err := waitTimeout(&wg, 10*time.Second, "the handshaking clients")
		s.Stop()
		return err
	}
	defer stop()

	type counts struct {
		sample
		srvObjects, srvBytes float64
		cliObjects, cliBytes float64
	}
	measure := func() (counts, error) {
		var c counts
		var err error
		if c.sample, err = b.sample(s, &handshakes); err != nil {
			return c, err
		}
		if c.srvObjects, c.srvBytes, err = s.allocs(); err != nil {
			return c, err
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		c.cliObjects, c.cliBytes = float64(ms.Mallocs), float64(ms.TotalAlloc)
		return c, nil
	}
	if err := b.watch(s, &handshakes, errc, time.Now().Add(b.cfg.warmup), 0, nil, "handshake"); err != nil {
		return err
	}
	c0, err := measure()
	if err != nil {
		return err
	}
	if err := b.watch(s, &handshakes, errc, c0.at.Add(b.cfg.duration), c0.echoed+1, nil, "handshake"); err != nil {
		return err
	}
	c1, err := measure()
	if err != nil {
		return err
	}
	if err := stop(); err != nil {
		return err
	}
	select {
	case err := <-errc:
		return err
	default:
	}
	b.window(r, c0.sample, c1.sample)
	r.ServerAllocs, r.ServerAllocBytes = c1.srvObjects-c0.srvObjects, c1.srvBytes-c0.srvBytes
	r.ClientAllocs, r.ClientAllocBytes = c1.cliObjects-c0.cliObjects, c1.cliBytes-c0.cliBytes
	return nil
}
