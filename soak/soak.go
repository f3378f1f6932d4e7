package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rfc6455/websocket"
)

const (
	// hangGrace is how long after the run's duration the clients may take
	// to finish: their longest ending is a drain (ackTimeout) and a
	// closing handshake (endTimeout).
	hangGrace = ackTimeout + 2*endTimeout + 10*time.Second

	// settleWait bounds the wait for goroutines to return to their
	// starting number once every connection has ended.
	settleWait = 15 * time.Second

	// The live heap may end above where it started by heapSlack and
	// heapPerPeer for each connection open at the peak. What stays after a
	// clean run grows with that peak, not with the connections that came
	// and went: the runtime keeps the descriptor of every goroutine it ever
	// ran at once (some 0.4 KiB, and a run has about three per client),
	// and maps that grew with the connections do not shrink (net/http's,
	// the server's own). Measured: 2.9 MiB more at 2,000 clients, 0.3 MiB
	// at 100. A leak grows with every connection instead, and a run opens
	// 25 or more per client; the Conns themselves are counted exactly
	// (every one must be freed), so this bounds what else might leak.
	heapSlack   = 1 << 20
	heapPerPeer = 2 << 10

	// maxLogged bounds the faults and errors printed.
	maxLogged = 20
)

// config is what a run does.
type config struct {
	clients     int
	duration    time.Duration
	rate        float64       // messages per second, all clients together
	compression float64       // share of connections that offer permessage-deflate
	keepalive   time.Duration // the server's keepalive interval, and timeout
	addr        string        // the server to soak; "" starts one in this process
}

// soak is the state a run shares among its clients and its server.
type soak struct {
	cfg config
	log *eventLog
	cst clientStats
	sst serverStats
	ids atomic.Uint32 // the last connection id given

	// Every Conn made, by either side, and every one the garbage
	// collector has freed since: at the end, all must be.
	made, freed atomic.Int64
}

// track counts c, and its collection once nothing refers to it.
func (s *soak) track(c *websocket.Conn) {
	s.made.Add(1)
	runtime.AddCleanup(c, func(freed *atomic.Int64) { freed.Add(1) }, &s.freed)
}

// eventLog prints progress, faults and errors, a bounded number of the
// last two, and counts errors.
type eventLog struct {
	mu     sync.Mutex
	w      io.Writer
	logged int   // faults and errors printed; guarded by mu
	errors int64 // errors counted; guarded by mu
}

// printf prints a line.
func (l *eventLog) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "soak: "+format+"\n", args...)
}

// faultf prints a message that was lost, duplicated, reordered or
// corrupted; the caller counts it.
func (l *eventLog) faultf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.printBounded(format, args)
}

// errorf prints and counts anything else that went wrong: a failed dial,
// a connection that ended unasked, a close that did not complete.
func (l *eventLog) errorf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors++
	l.printBounded(format, args)
}

func (l *eventLog) printBounded(format string, args []any) {
	l.logged++
	switch {
	case l.logged <= maxLogged:
		fmt.Fprintf(l.w, "soak: FAIL: "+format+"\n", args...)
	case l.logged == maxLogged+1:
		fmt.Fprintf(l.w, "soak: FAIL: more faults and errors, not shown\n")
	}
}

func (l *eventLog) errorCount() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errors
}

// report is what a run found.
type report struct {
	cfg         config
	connections int64 // opened by the clients
	compressed  int64
	sent        int64
	fragmented  int64
	acked       int64
	delivered   int64 // received by the server intact and in order; -1 when it runs elsewhere

	lost, duplicated, reordered, corrupted int64 // seen by either side

	closes, resets, reaped, unacked, shortStalls, pings int64
	errors                                              int64

	goroutines [2]int        // before, after
	heap       [2]uint64     // before, after
	conns      [2]int64      // Conns made, and freed by the end
	ran        time.Duration // until the clients were told to stop
	wall, cpu  time.Duration // until they all had
	problems   []string      // why the run failed; none when it passed
}

func (r *report) ok() bool { return len(r.problems) == 0 }

// String is the run's last line, which sums it up.
func (r *report) String() string {
	delivered := "(server elsewhere)"
	if r.delivered >= 0 {
		delivered = fmt.Sprint(r.delivered)
	}
	verdict := "ok"
	if !r.ok() {
		verdict = "FAILED (" + strings.Join(r.problems, "; ") + ")"
	}
	return fmt.Sprintf("soak: %d clients %v: %d messages acknowledged, %s delivered, %d lost, %d duplicated, %d reordered, %d corrupted; "+
		"%d resets (%d messages unacknowledged), %d stalls reaped; %d errors; %d of %d Conns freed, goroutines %d -> %d, heap %s -> %s: %s",
		r.cfg.clients, r.ran, r.acked, delivered, r.lost, r.duplicated, r.reordered, r.corrupted,
		r.resets, r.unacked, r.reaped, r.errors, r.conns[1], r.conns[0], r.goroutines[0], r.goroutines[1], mib(r.heap[0]), mib(r.heap[1]), verdict)
}

// details is the line before the last: what the run did, and what it cost.
func (r *report) details() string {
	cores := "cpu not measured"
	if r.cpu > 0 {
		cores = fmt.Sprintf("cpu %.2f cores (%v in %v)", r.cpu.Seconds()/r.wall.Seconds(), r.cpu.Round(time.Second), r.wall.Round(time.Second))
	}
	return fmt.Sprintf("soak: %d connections (%d compressed), %d closed normally; %d messages sent (%d fragmented), %.0f a second; %d pings, %d short stalls survived; %s",
		r.connections, r.compressed, r.closes, r.sent, r.fragmented, float64(r.sent)/r.wall.Seconds(), r.pings, r.shortStalls, cores)
}

// heapTolerance is how far the heap may grow with peak connections open.
func heapTolerance(peak int) uint64 { return heapSlack + heapPerPeer*uint64(peak) }

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// run soaks the server at cfg.addr, or one of its own, with cfg.clients
// clients for cfg.duration or until ctx ends, printing progress and faults
// to w, and returns what it found.
func run(ctx context.Context, cfg config, w io.Writer) *report {
	s := &soak{cfg: cfg, log: &eventLog{w: w}}
	r := &report{cfg: cfg, delivered: -1}
	var srv *server
	addr := cfg.addr
	if addr == "" {
		var err error
		srv, err = startServer("127.0.0.1:0", s)
		if err != nil {
			r.problems = append(r.problems, fmt.Sprintf("server: %v", err))
			return r
		}
		defer srv.close()
		addr = srv.addr()
	}
	r.goroutines[0], r.heap[0] = baseline()

	cpu0, _ := cpuTime()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var ran atomic.Int64 // how long the clients ran, once they are told to stop
	context.AfterFunc(ctx, func() { ran.Store(int64(time.Since(start))) })
	stopProgress := s.progress(start)
	var wg sync.WaitGroup
	for range cfg.clients {
		wg.Go(func() { newClient(s, "ws://"+addr+"/").run(ctx) })
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	hang := time.NewTimer(cfg.duration + hangGrace)
	defer hang.Stop()
	select {
	case <-finished:
	case <-hang.C:
		stopProgress()
		buf := make([]byte, 4<<20)
		s.log.printf("clients still running %v after the end; goroutines:\n%s", hangGrace, buf[:runtime.Stack(buf, true)])
		r.problems = append(r.problems, "clients hung")
		r.ran = time.Duration(ran.Load()).Round(time.Second)
		s.fill(r)
		return r
	}
	stopProgress()
	r.ran = time.Duration(ran.Load()).Round(time.Second)
	r.wall = time.Since(start)
	if cpu1, ok := cpuTime(); ok {
		r.cpu = cpu1 - cpu0
	}
	if srv != nil {
		// A connection the client gave up on ends at the latest when
		// keepalive does.
		if n := srv.waitIdle(2*cfg.keepalive + endTimeout); n > 0 {
			r.problems = append(r.problems, fmt.Sprintf("%d connections still open at the server", n))
		}
		r.delivered = s.sst.delivered.Load()
	}
	r.goroutines[1], r.heap[1] = s.settle(r.goroutines[0])
	s.fill(r)
	return r
}

// fill completes r from the counters, and judges it.
func (s *soak) fill(r *report) {
	c, sv := &s.cst, &s.sst
	r.connections, r.compressed = c.connections.Load(), c.compressed.Load()
	r.sent, r.fragmented, r.acked = c.sent.Load(), c.fragmented.Load(), c.acknowledged.Load()
	r.lost = c.lost.Load()
	r.duplicated = c.duplicated.Load() + sv.duplicated.Load()
	r.reordered = c.reordered.Load() + sv.reordered.Load()
	r.corrupted = c.corrupted.Load() + sv.corrupted.Load()
	r.closes, r.resets, r.reaped = c.closes.Load(), c.resets.Load(), c.reaped.Load()
	r.unacked, r.shortStalls, r.pings = c.unacknowledged.Load(), c.shortStalls.Load(), c.pings.Load()
	r.errors = s.log.errorCount()
	r.conns = [2]int64{s.made.Load(), s.freed.Load()}

	fail := func(format string, args ...any) { r.problems = append(r.problems, fmt.Sprintf(format, args...)) }
	for _, n := range []struct {
		n    int64
		what string
	}{{r.lost, "lost"}, {r.duplicated, "duplicated"}, {r.reordered, "reordered"}, {r.corrupted, "corrupted"}, {r.errors, "errors"}} {
		if n.n > 0 {
			fail("%d %s", n.n, n.what)
		}
	}
	if r.acked == 0 {
		fail("no message acknowledged")
	}
	// Every message sent is accounted for exactly once, unless a fault
	// cut its connection short.
	if r.lost+r.duplicated+r.reordered+r.corrupted == 0 && r.sent != r.acked+r.unacked {
		fail("%d messages sent, %d acknowledged and %d unacknowledged at resets and reaps", r.sent, r.acked, r.unacked)
	}
	if r.delivered >= 0 {
		if r.delivered < r.acked || r.delivered > r.sent {
			fail("the server received %d messages, outside %d acknowledged to %d sent", r.delivered, r.acked, r.sent)
		}
		if k := sv.keepalive.Load(); k != r.reaped {
			fail("keepalive ended %d connections at the server, %d stalled clients were reaped", k, r.reaped)
		}
	}
	if r.goroutines[1] > r.goroutines[0] {
		fail("goroutines leaked")
	}
	if n := r.conns[0] - r.conns[1]; n > 0 {
		fail("%d of %d Conns never freed", n, r.conns[0])
	}
	if r.heap[1] > r.heap[0]+heapTolerance(r.cfg.clients) {
		fail("heap grew by %s", mib(r.heap[1]-r.heap[0]))
	}
}

// progress prints a line now and then until the returned function is
// called.
func (s *soak) progress(start time.Time) (stop func()) {
	every := min(max(s.cfg.duration/20, 10*time.Second), time.Minute)
	cpu0, _ := cpuTime()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			cores := ""
			if cpu, ok := cpuTime(); ok {
				cores = fmt.Sprintf(", cpu %.2f cores", (cpu-cpu0).Seconds()/time.Since(start).Seconds())
			}
			c := &s.cst
			s.log.printf("%v: %d connections open, %d opened; %d messages sent, %d acknowledged; %d resets, %d stalls reaped; %d errors%s",
				time.Since(start).Round(time.Second), c.open.Load(), c.connections.Load(), c.sent.Load(), c.acknowledged.Load(),
				c.resets.Load(), c.reaped.Load(), s.log.errorCount(), cores)
		}
	})
	return func() { close(done); wg.Wait() }
}

// baseline returns the number of goroutines and the live heap.
func baseline() (int, uint64) {
	runtime.GC()
	runtime.GC() // and what sync.Pool victim caches held
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapAlloc
}

// settle waits, up to settleWait, for the goroutines to fall back to
// want and every Conn to be freed, and returns the baseline then. A Conn
// may outlive its connection for a while, held by a timer about to find
// it closed (keepalive's, at most an interval).
func (s *soak) settle(want int) (int, uint64) {
	deadline := time.Now().Add(settleWait)
	for time.Now().Before(deadline) {
		runtime.GC() // runs the cleanups of what it frees
		if runtime.NumGoroutine() <= want && s.freed.Load() == s.made.Load() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return baseline()
}
