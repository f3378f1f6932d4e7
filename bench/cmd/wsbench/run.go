//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ours "github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/bench/echo"
	"github.com/rfc6455/websocket/bench/loadgen"
)

// A scenario is one workload: binary messages of Size bytes echoed on
// Conns connections with InFlight messages in flight on each; or JSON
// texts of Size bytes, compressed, a cycle of different ones; or opening
// handshakes, Conns at a time, each library's own client against its
// server; or Idle connections opened and left idle.
type scenario struct {
	Name        string
	Title       string
	Size        int
	Conns       int
	InFlight    int
	Latency     bool                // keep each message's round-trip time
	Compression loadgen.Compression // permessage-deflate, with JSON texts
	Handshake   bool
	Idle        int
	Optional    bool // run only when named
}

// loadScenarios are the workloads, in table order; the idle ones follow,
// one per -idle count.
var loadScenarios = []scenario{
	{Name: "16B-1x64", Title: "16 B, 1 conn, 64 in flight", Size: 16, Conns: 1, InFlight: 64},
	{Name: "16B-100x8", Title: "16 B, 100 conns × 8 in flight", Size: 16, Conns: 100, InFlight: 8},
	{Name: "1K-100x8", Title: "1 KiB, 100 conns × 8 in flight", Size: 1 << 10, Conns: 100, InFlight: 8},
	{Name: "16K-1x16", Title: "16 KiB, 1 conn, 16 in flight", Size: 16 << 10, Conns: 1, InFlight: 16},
	{Name: "16K-100x2", Title: "16 KiB, 100 conns × 2 in flight", Size: 16 << 10, Conns: 100, InFlight: 2},
	{Name: "1M-1x2", Title: "1 MiB, 1 conn, 2 in flight", Size: 1 << 20, Conns: 1, InFlight: 2},
	{Name: "1M-100x1", Title: "1 MiB, 100 conns × 1 in flight", Size: 1 << 20, Conns: 100, InFlight: 1},
	{Name: "deflate-1K", Title: "deflate, 1 KiB JSON, 100 conns × 8", Size: 1 << 10, Conns: 100, InFlight: 8, Compression: loadgen.Deflate},
	{Name: "deflate-16K", Title: "deflate, 16 KiB JSON, 100 conns × 2", Size: 16 << 10, Conns: 100, InFlight: 2, Compression: loadgen.Deflate},
	{Name: "takeover-1K", Title: "deflate takeover, 1 KiB JSON, 100 conns × 8", Size: 1 << 10, Conns: 100, InFlight: 8, Compression: loadgen.DeflateTakeover},
	{Name: "takeover-16K", Title: "deflate takeover, 16 KiB JSON, 100 conns × 2", Size: 16 << 10, Conns: 100, InFlight: 2, Compression: loadgen.DeflateTakeover},
	{Name: "rtt", Title: "16 B round trip, 1 in flight", Size: 16, Conns: 1, InFlight: 1, Latency: true},
	{Name: "handshake", Title: "opening handshakes, 4 at a time", Conns: 4, Handshake: true},
}

// jsonCycle is how many different JSON texts a compressed scenario sends
// in turn: 64 KiB of them at 1 KiB, more than a 32 KiB window holds, so
// that no message is ever a copy of one in the window.
const jsonCycle = 64

// mode returns the permessage-deflate mode servers accept in for sc.
func (sc scenario) mode() ours.CompressionMode {
	switch sc.Compression {
	case loadgen.Deflate:
		return ours.CompressionNoContextTakeover
	case loadgen.DeflateTakeover:
		return ours.CompressionContextTakeover
	}
	return ours.CompressionDisabled
}

// runs reports whether sc is measured against lib: compressed scenarios
// against the servers that compress in their mode, handshakes against
// the servers that read them with net/http (whose clients are measured
// too); a yardstick (echo.IsReference) only in idle runs.
func (sc scenario) runs(lib string) bool {
	if echo.IsReference(lib) {
		return sc.Idle > 0
	}
	if sc.Handshake {
		return echo.UsesNetHTTP(lib)
	}
	return echo.Supports(lib, sc.mode())
}

func idleScenario(n int) scenario {
	return scenario{Name: fmt.Sprintf("idle%d", n), Title: thousands(n) + " idle conns", Idle: n}
}

func scenarioNames() string {
	var names []string
	for _, sc := range loadScenarios {
		names = append(names, sc.Name)
	}
	return strings.Join(append(names, "idle (every -idle count)"), ",")
}

// pickScenarios returns the scenarios a -scenarios flag names, in table
// order.
func pickScenarios(flag string, idles []int) ([]scenario, error) {
	all := slices.Clone(loadScenarios)
	for _, n := range idles {
		all = append(all, idleScenario(n))
	}
	if flag == "" || flag == "all" {
		var out []scenario
		for _, sc := range all {
			if flag == "all" || !sc.Optional {
				out = append(out, sc)
			}
		}
		return out, nil
	}
	want := strings.Split(flag, ",")
	var out []scenario
	for _, sc := range all {
		if slices.Contains(want, sc.Name) || (sc.Idle > 0 && slices.Contains(want, "idle")) {
			out = append(out, sc)
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(all, func(sc scenario) bool { return sc.Name == w || (sc.Idle > 0 && w == "idle") }) {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (want some of %s)", w, scenarioNames())
		}
	}
	return out, nil
}

// result is what one run of one scenario against one library measured.
// Times are in seconds, sizes in bytes.
type result struct {
	Scenario string
	Lib      string
	Round    int

	// Load runs, over the measured window.
	Seconds     float64 `json:",omitempty"`
	Messages    int64   `json:",omitempty"` // echoes received
	MsgPerSec   float64 `json:",omitempty"`
	BytesPerSec float64 `json:",omitempty"` // payload bytes echoed, one way
	ServerCPU   float64 `json:",omitempty"` // server CPU time, user + system
	GenCPU      float64 `json:",omitempty"` // load generator CPU time
	CPUPerMsg   float64 `json:",omitempty"` // server CPU time per message
	SoftirqCPU  float64 `json:",omitempty"` // softirq time on all CPUs, charged to no process
	OtherCPU    float64 `json:",omitempty"` // CPU time of other processes (and the kernel's threads)
	// Idle time of the server's CPU and of the load generator's, when
	// pinned: near zero, that CPU was saturated.
	ServerCoreIdle float64 `json:",omitempty"`
	GenCoreIdle    float64 `json:",omitempty"`
	P50            float64 `json:",omitempty"` // round-trip times, latency runs
	P99            float64 `json:",omitempty"`
	P999           float64 `json:",omitempty"`

	// Compressed runs: the server's Sec-WebSocket-Extensions, and the mean
	// bytes per message of the echoes' frames, of the load generator's
	// frames, and of the payloads.
	Extensions     string  `json:",omitempty"`
	EchoWirePerMsg float64 `json:",omitempty"`
	SentWirePerMsg float64 `json:",omitempty"`
	PayloadPerMsg  float64 `json:",omitempty"`

	// Handshake runs, where Messages counts handshakes: the server's and
	// the client's heap allocations over the window, objects and bytes.
	ServerAllocs     float64 `json:",omitempty"`
	ServerAllocBytes float64 `json:",omitempty"`
	ClientAllocs     float64 `json:",omitempty"`
	ClientAllocBytes float64 `json:",omitempty"`

	// Idle runs.
	Conns        int     `json:",omitempty"`
	RSSPerConn   float64 `json:",omitempty"` // VmRSS growth per connection
	RSSPerConnGC float64 `json:",omitempty"` // the same after a forced GC
	CPUPerConn   float64 `json:",omitempty"` // handshake and one echo
	// With -hold: the server's CPU time over the hold, the pings the
	// connections answered, and the VmRSS growth per connection at its end.
	HoldSeconds    float64 `json:",omitempty"`
	HoldCPU        float64 `json:",omitempty"`
	Pings          int64   `json:",omitempty"`
	HoldRSSPerConn float64 `json:",omitempty"`
}

// holdPerConnMinute returns a measure of the hold per connection and
// minute.
func (r result) holdPerConnMinute(v float64) float64 {
	return v / float64(r.Conns) / (r.HoldSeconds / 60)
}

func (r result) summary(sc scenario, pinned bool) string {
	switch {
	case sc.Idle > 0:
		line := fmt.Sprintf("%s/conn, %s/conn after GC, %s CPU/conn",
			fmtBytes(r.RSSPerConn), fmtBytes(r.RSSPerConnGC), fmtSeconds(r.CPUPerConn))
		if r.HoldSeconds > 0 {
			line += fmt.Sprintf("; held %.0f s: %s CPU, %.2f pings per conn-minute, %s CPU per conn-minute, then %s/conn",
				r.HoldSeconds, fmtSeconds(r.HoldCPU), r.holdPerConnMinute(float64(r.Pings)), fmtSeconds(r.holdPerConnMinute(r.HoldCPU)), fmtBytes(r.HoldRSSPerConn))
		}
		return line
	case sc.Latency:
		return fmt.Sprintf("p50 %s, p99 %s, p99.9 %s, %s CPU/msg", fmtSeconds(r.P50), fmtSeconds(r.P99), fmtSeconds(r.P999), fmtSeconds(r.CPUPerMsg))
	case sc.Handshake:
		n := float64(r.Messages)
		return fmt.Sprintf("%.0f handshakes/s; server %s CPU, %.1f allocs, %s each; client %s CPU, %.1f allocs, %s each",
			r.MsgPerSec, fmtSeconds(r.CPUPerMsg), r.ServerAllocs/n, fmtBytes(r.ServerAllocBytes/n),
			fmtSeconds(r.GenCPU/n), r.ClientAllocs/n, fmtBytes(r.ClientAllocBytes/n))
	}
	pct := func(s float64) float64 { return 100 * s / r.Seconds }
	line := fmt.Sprintf("%s, %s CPU/msg; CPU: server %.0f%%, generator %.0f%%, softirq %.0f%%, others %.0f%%",
		fmtRate(r.MsgPerSec, sc.Size), fmtSeconds(r.CPUPerMsg), pct(r.ServerCPU), pct(r.GenCPU), pct(r.SoftirqCPU), pct(r.OtherCPU))
	if pinned {
		line += fmt.Sprintf("; idle: server's CPU %.0f%%, generator's %.0f%%", pct(r.ServerCoreIdle), pct(r.GenCoreIdle))
	}
	if sc.Compression != loadgen.Uncompressed {
		line += fmt.Sprintf("; echoes %s on the wire per %s message (%.2f×), %q", fmtBytes(r.EchoWirePerMsg), fmtBytes(r.PayloadPerMsg), r.PayloadPerMsg/r.EchoWirePerMsg, r.Extensions)
	}
	return line
}

// messages holds one prepared message per scenario, shared by every run
// of it.
var messages sync.Map // scenario name -> *loadgen.Message

func message(sc scenario) (*loadgen.Message, error) {
	if m, ok := messages.Load(sc.Name); ok {
		return m.(*loadgen.Message), nil
	}
	var m *loadgen.Message
	if sc.Compression != loadgen.Uncompressed {
		var err error
		m, err = loadgen.NewMessages(1, loadgen.JSONMessages(jsonCycle, sc.Size, 1), sc.Compression, sc.InFlight)
		if err != nil {
			return nil, err
		}
	} else {
		p := make([]byte, sc.Size)
		rand.NewChaCha8([32]byte{1}).Read(p)
		m = loadgen.NewMessage(p, sc.InFlight)
	}
	got, _ := messages.LoadOrStore(sc.Name, m)
	return got.(*loadgen.Message), nil
}

// runLoad drives the server with sc's load through a warm-up and the
// measured window.
func (b *bench) runLoad(sc scenario, s *server, r *result) error {
	m, err := message(sc)
	if err != nil {
		return err
	}
	// Room for every frame in flight, within 4 KiB to 256 KiB.
	bufSize := min(max(4<<10, (sc.Size+14)*sc.InFlight), 256<<10)
	var progress atomic.Int64 // connections, then echoes
	conns, err := b.dialAll(s, sc.Conns, bufSize, 0, sc.Compression, nil, &progress)
	if err == nil {
		// Every connection must have agreed to the same parameters.
		r.Extensions = conns[0].Extensions()
		for _, c := range conns {
			if c.Extensions() != r.Extensions {
				err = fmt.Errorf("connections negotiated %q and %q", r.Extensions, c.Extensions())
			}
		}
	}
	if err != nil {
		for _, c := range conns {
			c.Close()
		}
		return err
	}
	wire := func() (n int64) {
		for _, c := range conns {
			n += c.EchoBytes()
		}
		return n
	}

	total := b.cfg.warmup + b.cfg.duration
	// The count bound: 5 million messages a second on one connection is
	// more than loopback can carry, so the time bound ends every run.
	maxMsgs := int64(total.Seconds()*5e6) + 1000
	done := make(chan struct{})
	errc := make(chan error, len(conns))
	var wg sync.WaitGroup
	var echoed atomic.Int64
	var rtts []time.Duration
	if sc.Latency {
		rtts = make([]time.Duration, 0, min(maxMsgs, 1<<20))
	}
	for _, c := range conns {
		c.SetDeadline(time.Now().Add(total + b.cfg.stall + 10*time.Second))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if sc.Latency {
				err = c.RoundTrips(m, done, &echoed, maxMsgs, &rtts)
			} else {
				err = c.Pipeline(m, done, &echoed, maxMsgs)
			}
			if err != nil {
				errc <- err
			}
		}()
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		close(done)
		s.Stop()
		for _, c := range conns {
			c.Close()
		}
		return waitTimeout(&wg, 10*time.Second, "the load generator's connections")
	}
	defer stop()

	if err := b.watch(s, &echoed, errc, time.Now().Add(b.cfg.warmup), 0, nil, "echo"); err != nil {
		return err
	}
	s0, err := b.sample(s, &echoed)
	if err != nil {
		return err
	}
	wire0 := wire()
	// The window lasts until at least one echo arrived in it.
	if err := b.watch(s, &echoed, errc, s0.at.Add(b.cfg.duration), s0.echoed+1, nil, "echo"); err != nil {
		return err
	}
	s1, err := b.sample(s, &echoed)
	if err != nil {
		return err
	}
	wire1 := wire()
	if err := stop(); err != nil {
		return err
	}
	select {
	case err := <-errc:
		return err
	default:
	}

	b.window(r, s0, s1)
	r.BytesPerSec = r.MsgPerSec * float64(sc.Size)
	if sc.Compression != loadgen.Uncompressed {
		r.EchoWirePerMsg = float64(wire1-wire0) / float64(r.Messages)
		r.SentWirePerMsg = m.FrameBytes()
		r.PayloadPerMsg = m.PayloadBytes()
	}
	if sc.Latency {
		// Message i's time is rtts[i], so the window's are those between
		// the two samples' counts.
		w := slices.Clone(rtts[min(int(s0.echoed), len(rtts)):min(int(s1.echoed), len(rtts))])
		if len(w) == 0 {
			return fmt.Errorf("no round-trip times recorded")
		}
		slices.Sort(w)
		r.P50, r.P99, r.P999 = percentile(w, 0.50), percentile(w, 0.99), percentile(w, 0.999)
	}
	return nil
}

// window records in r what happened between two samples: the messages
// (or handshakes) and their rate, and the CPU time of the server, of the
// load generator, of softirqs and of other processes, and how idle the
// two CPUs were.
func (b *bench) window(r *result, s0, s1 sample) {
	r.Seconds = s1.at.Sub(s0.at).Seconds()
	r.Messages = s1.echoed - s0.echoed
	r.MsgPerSec = float64(r.Messages) / r.Seconds
	r.ServerCPU = s1.server - s0.server
	r.GenCPU = s1.gen - s0.gen
	r.CPUPerMsg = r.ServerCPU / float64(r.Messages)
	all := s1.cpus["cpu"].sub(s0.cpus["cpu"])
	r.SoftirqCPU = all.softirq
	r.OtherCPU = max(0, all.busy-r.ServerCPU-r.GenCPU)
	if b.cfg.pin {
		srv, gen := fmt.Sprintf("cpu%d", b.cfg.serverCPU), fmt.Sprintf("cpu%d", b.cfg.genCPU)
		r.ServerCoreIdle = s1.cpus[srv].sub(s0.cpus[srv]).idle
		r.GenCoreIdle = s1.cpus[gen].sub(s0.cpus[gen]).idle
	}
}

// A sample holds the counters a window starts and ends with.
type sample struct {
	at          time.Time
	echoed      int64
	server, gen float64 // CPU time of the server and of this process
	cpus        map[string]cpuTimes
}

func (b *bench) sample(s *server, echoed *atomic.Int64) (sample, error) {
	x := sample{at: time.Now(), echoed: echoed.Load(), gen: selfCPU()}
	var err1, err2 error
	x.server, err1 = s.cpu(b.tick)
	x.cpus, err2 = systemCPU(b.tick)
	return x, errors.Join(err1, err2)
}

// percentile returns the p-quantile of sorted durations, in seconds
// (nearest rank).
func percentile(sorted []time.Duration, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)].Seconds()
}

// runIdle opens sc.Idle connections, each echoing one 16-byte message, and
// measures how much the server's resident memory grew per connection once
// they are idle; with -hold, it then keeps them and measures the server's
// CPU time. From its echo on, each connection answers the server's pings,
// so that a server's keepalive never finds it gone.
func (b *bench) runIdle(sc scenario, s *server, r *result) error {
	// Let the server finish starting before taking its measure.
	time.Sleep(200 * time.Millisecond)
	rss0, err := s.RSS()
	if err != nil {
		return err
	}
	cpu0, err := s.cpu(b.tick)
	if err != nil {
		return err
	}
	m, err := message(scenario{Name: "idle-echo", Size: 16, InFlight: 1})
	if err != nil {
		return err
	}
	answer := newPingAnswerers(sc.Idle)
	once := func(c *loadgen.Conn) error {
		c.SetDeadline(time.Now().Add(b.cfg.stall + 10*time.Second))
		if err := c.Send(m, 1); err != nil {
			return err
		}
		if err := c.ReadEcho(m); err != nil {
			return err
		}
		c.Release()
		if err := c.SetDeadline(time.Time{}); err != nil {
			return err
		}
		answer.start(c)
		return nil
	}
	var progress atomic.Int64
	conns, err := b.dialAll(s, sc.Idle, 512, 8, loadgen.Uncompressed, once, &progress)
	defer func() {
		close(answer.done)
		s.Stop() // the server goes first, so no client port lingers in TIME_WAIT
		for _, c := range conns {
			c.Close()
		}
		if err := waitTimeout(&answer.wg, 10*time.Second, "the idle connections' readers"); err != nil {
			fmt.Fprintf(b.log, "wsbench: %v\n", err)
		}
	}()
	if err != nil {
		return err
	}
	if err := b.watch(s, &progress, answer.errc, time.Now().Add(b.cfg.settle), 0, nil, ""); err != nil {
		return err
	}
	rss1, err := s.RSS()
	if err != nil {
		return err
	}
	cpu1, err := s.cpu(b.tick)
	if err != nil {
		return err
	}
	if err := s.freeMemory(); err != nil {
		return err
	}
	rss2, err := s.RSS()
	if err != nil {
		return err
	}
	n := float64(len(conns))
	r.Conns = len(conns)
	r.RSSPerConn = float64(rss1-rss0) / n
	r.RSSPerConnGC = float64(rss2-rss0) / n
	r.CPUPerConn = (cpu1 - cpu0) / n
	if b.cfg.hold > 0 {
		return b.hold(s, answer, rss0, r)
	}
	return nil
}

// hold keeps the idle connections for the hold time and records the
// server's CPU time over it, how many pings were answered in it, and the
// server's VmRSS growth since rss0 at its end.
func (b *bench) hold(s *server, answer *pingAnswerers, rss0 int64, r *result) error {
	cpu0, err := s.cpu(b.tick)
	if err != nil {
		return err
	}
	t0, pings0 := time.Now(), answer.pings.Load()
	if err := b.watch(s, &answer.pings, answer.errc, t0.Add(b.cfg.hold), 0, nil, ""); err != nil {
		return err
	}
	cpu1, err := s.cpu(b.tick)
	if err != nil {
		return err
	}
	r.HoldSeconds = time.Since(t0).Seconds()
	r.HoldCPU = cpu1 - cpu0
	r.Pings = answer.pings.Load() - pings0
	rss, err := s.RSS()
	r.HoldRSSPerConn = float64(rss-rss0) / float64(r.Conns)
	return err
}

// pingAnswerers runs AnswerPings on idle connections until done is
// closed, reporting the first failures on errc.
type pingAnswerers struct {
	done  chan struct{}
	errc  chan error
	pings atomic.Int64 // pings answered on every connection
	wg    sync.WaitGroup
}

func newPingAnswerers(n int) *pingAnswerers {
	return &pingAnswerers{done: make(chan struct{}), errc: make(chan error, min(n, 64))}
}

func (a *pingAnswerers) start(c *loadgen.Conn) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := c.AnswerPings(a.done, &a.pings); err != nil {
			select {
			case a.errc <- fmt.Errorf("idle connection: %w", err):
			default:
			}
		}
	}()
}

// dialAll opens n connections to s, a few at a time, each with a read
// buffer of bufSize bytes and offering comp, and runs each one through
// then, if not nil.
// With spread > 0 the connections come from spread source addresses,
// 127.0.0.2 onwards, so that many connections do not run out of ports.
// It counts each connection in progress, and fails if the server makes
// none for the stall time.
func (b *bench) dialAll(s *server, n, bufSize, spread int, comp loadgen.Compression, then func(*loadgen.Conn) error, progress *atomic.Int64) ([]*loadgen.Conn, error) {
	conns := make([]*loadgen.Conn, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var next atomic.Int64
	errc := make(chan error, 64)
	var wg sync.WaitGroup
	for range min(n, 64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				d := &net.Dialer{}
				if spread > 0 {
					d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%spread))}
				}
				dctx, dcancel := context.WithTimeout(ctx, b.cfg.stall+10*time.Second)
				c, err := loadgen.Dial(dctx, d, s.addr, bufSize, comp)
				dcancel()
				if err == nil && then != nil {
					if err = then(c); err != nil {
						c.Close()
					}
				}
				if err != nil {
					errc <- fmt.Errorf("connection %d: %w", i, err)
					cancel()
					return
				}
				conns[i] = c
				progress.Add(1)
			}
		}()
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	err := b.watch(s, progress, errc, time.Time{}, 0, finished, "connection")
	cancel()
	<-finished
	conns = slices.DeleteFunc(conns, func(c *loadgen.Conn) bool { return c == nil })
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return conns, err
}

// watch waits until the time end (if not zero) has passed and progress has
// reached atLeast, or until finished is closed (if not nil), failing if a
// load loop reports an error on errc, if the server exits, or if progress
// (named what; "" for none expected) stands still for the stall time.
func (b *bench) watch(s *server, progress *atomic.Int64, errc <-chan error, end time.Time, atLeast int64, finished <-chan struct{}, what string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last, lastAt := progress.Load(), time.Now()
	for {
		select {
		case err := <-errc:
			return err
		case <-s.Exited():
			return fmt.Errorf("the server exited: %v", s.Wait())
		case <-finished:
			return nil
		case now := <-tick.C:
			if what != "" {
				if n := progress.Load(); n != last {
					last, lastAt = n, now
				} else if now.Sub(lastAt) >= b.cfg.stall {
					return fmt.Errorf("STALLED: no %s for %v (%d so far)", what, b.cfg.stall, n)
				}
			}
			if !end.IsZero() && !now.Before(end) && progress.Load() >= atLeast {
				return nil
			}
		}
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration, what string) error {
	c := make(chan struct{})
	go func() {
		wg.Wait()
		close(c)
	}()
	select {
	case <-c:
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s did not end within %v", what, d)
	}
}
