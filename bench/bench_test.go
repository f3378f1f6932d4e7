package bench_test

// In-process benchmarks, side by side per library. Run them all with
//
//	go test -bench . -benchmem
//
// and compare one library with another through benchstat, or by eye: every
// sub-benchmark name ends in the library's name, so -bench 'Echo/16B' shows
// one size for all of them.

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"
	ours "github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/bench/echo"
	"github.com/rfc6455/websocket/bench/loadgen"
)

var echoSizes = []struct {
	name string
	n    int
}{{"16B", 16}, {"1KiB", 1 << 10}, {"16KiB", 16 << 10}, {"1MiB", 1 << 20}}

// BenchmarkEcho measures one echo round trip through each library's echo
// server over loopback TCP, one message in flight. The client is the load
// generator, which allocates nothing per message, so B/op and allocs/op are
// the server's. ns/op is the time of a round trip, both kernels' work
// included.
func BenchmarkEcho(b *testing.B) {
	for _, size := range echoSizes {
		for _, lib := range echo.Libs {
			b.Run(size.name+"/"+lib, func(b *testing.B) {
				s := startEcho(b, lib, nil)
				c := dial(b, s, 64<<10, loadgen.Uncompressed)
				m := loadgen.NewMessage(payload(size.n), 1)
				// A warm-up message, so the server's first-message costs are
				// not averaged in when b.N is small.
				var echoed atomic.Int64
				done := make(chan struct{})
				if err := c.Pipeline(m, done, &echoed, 1); err != nil {
					b.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(time.Minute))
				b.SetBytes(int64(size.n))
				b.ReportAllocs()
				b.ResetTimer()
				if err := c.Pipeline(m, done, &echoed, int64(b.N)); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkHandshake measures an opening handshake with each library on
// both ends: its client dials, its server accepts, the client closes the
// connection (without a closing handshake). Allocations of both sides are
// counted.
func BenchmarkHandshake(b *testing.B) {
	dials := []struct {
		lib  string
		dial func(ctx context.Context, addr string) error
	}{
		{echo.Ours, func(ctx context.Context, addr string) error {
			c, _, err := ours.Dial(ctx, "ws://"+addr, nil)
			if err != nil {
				return err
			}
			return c.CloseNow()
		}},
		{echo.Gorilla, func(ctx context.Context, addr string) error {
			c, _, err := gorilla.DefaultDialer.DialContext(ctx, "ws://"+addr, nil)
			if err != nil {
				return err
			}
			return c.Close()
		}},
		{echo.Coder, func(ctx context.Context, addr string) error {
			c, _, err := coder.Dial(ctx, "ws://"+addr, nil)
			if err != nil {
				return err
			}
			return c.CloseNow()
		}},
		{echo.Gobwas, func(ctx context.Context, addr string) error {
			c, br, _, err := ws.Dial(ctx, "ws://"+addr)
			if err != nil {
				return err
			}
			if br != nil {
				ws.PutReader(br)
			}
			return c.Close()
		}},
		{echo.Gws, func(ctx context.Context, addr string) error {
			c, _, err := gws.NewClient(gws.BuiltinEventHandler{}, &gws.ClientOption{Addr: "ws://" + addr})
			if err != nil {
				return err
			}
			return c.NetConn().Close()
		}},
	}
	for _, d := range dials {
		b.Run(d.lib, func(b *testing.B) {
			s := startEcho(b, d.lib, nil)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b.ReportAllocs()
			for b.Loop() {
				if err := d.dial(ctx, s.Addr()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// Connections the server has not yet seen end would otherwise
			// be closed by the cleanup; let the client's idle HTTP
			// connections go too.
			http.DefaultClient.CloseIdleConnections()
		})
	}
}

// BenchmarkMask measures XOR masking where a library exports it. Ours is
// measured by BenchmarkMask in the root package (go test -bench Mask ..),
// at the same sizes.
func BenchmarkMask(b *testing.B) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, n := range []int{16, 1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%d/gobwas", n), func(b *testing.B) {
			p := payload(n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				ws.Cipher(p, key, 0)
			}
		})
	}
}

// BenchmarkCollection measures what a garbage collection costs each
// library's server per idle connection. Each op is a whole collection
// (runtime.GC) on one processor, with 1,000 connections open and quiet;
// ns/conn is the op's time less that of a collection before they opened,
// over the connections. A server that keeps a goroutine per connection has
// the collector scan its stack every cycle, and, inside a net/http
// handler, the request's state that net/http keeps while it runs: the
// cost a Read loop pays per collection, which a new slice per message
// brings about more often.
func BenchmarkCollection(b *testing.B) {
	const conns = 1000
	for _, lib := range echo.Libs {
		b.Run(lib, func(b *testing.B) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			s := startEcho(b, lib, nil)
			collect := func(n int) time.Duration {
				runtime.GC()
				start := time.Now()
				for range n {
					runtime.GC()
				}
				return time.Since(start) / time.Duration(n)
			}
			base := collect(20)
			for range conns {
				dial(b, s, 512, loadgen.Uncompressed)
			}
			// Let every server reach its idle wait.
			time.Sleep(200 * time.Millisecond)
			runtime.GC()
			b.ResetTimer()
			for range b.N {
				runtime.GC()
			}
			b.StopTimer()
			per := (b.Elapsed() - base*time.Duration(b.N)) / time.Duration(b.N)
			b.ReportMetric(float64(per.Nanoseconds())/conns, "ns/conn")
		})
	}
}
