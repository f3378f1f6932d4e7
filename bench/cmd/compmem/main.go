//go:build linux

// Command compmem measures, from outside the server's process, the memory a
// WebSocket server keeps per connection once permessage-deflate (RFC 7692)
// has been used, and leaves the connections quiet.
//
// For each cell (server, window size, context takeover or not) and each
// run, it starts the server as a process of its own, reads its VmRSS, then
// opens the connections (500 unless told) from one python-websockets
// process: each offers permessage-deflate with the cell's parameters,
// checks that the server settled exactly those, sends three compressible
// 4 KiB JSON-like texts one after the other, checks each echo, then stays
// open and silent (no ping, no close). Once every connection is idle it
// reads the server's VmRSS after -settle and again after -quiet more,
// without making the server collect garbage; then, for our servers, it
// makes the server collect garbage twice and return free memory (SIGUSR1),
// and reads its live heap (and what sync.Pool alone kept through the first
// collection), goroutine stacks and VmRSS. Each figure is the growth over
// the server before the clients, per connection; the table shows the
// median over the runs.
//
// The servers: "ours" (Accept, then Serve echoing each message), "ours-read"
// (Accept, then Read and Write in a loop), and "python" (python-websockets'
// own server, zlib at memLevel 5); with -servers, "nethttp-floor", a
// net/http handler that echoes frames by hand without compression, the
// least a loop reading inside a handler holds. None sends keepalive pings.
//
// Run it from the bench directory (Linux, with /usr/bin/python3 and
// Debian's python3-websockets):
//
//	go run ./cmd/compmem                      # every cell, 3 runs each
//	go run ./cmd/compmem -servers ours -windows 10 -modes takeover -runs 1
//	go run ./cmd/compmem -servers ours -runs 1 -heapprofile /tmp/heap  # what the heap holds
//
// With COMPMEM_SERVE in its environment it is one of our servers instead.
package main

import (
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rfc6455/websocket/bench/echo"
	"github.com/rfc6455/websocket/bench/internal/proc"
)

//go:embed clients.py
var clientsPy string

//go:embed pyserver.py
var serverPy string

// The servers measured.
const (
	serverOurs     = "ours"      // Accept, then Serve
	serverOursRead = "ours-read" // Accept, then Read and Write in a loop
	serverPython   = "python"    // python-websockets' own server
	// serverFloor is a yardstick, not a library: the frames by hand in a
	// net/http handler over the hijacked connection (echo.FloorHandler),
	// the least any Read loop inside a handler holds. Without
	// compression only.
	serverFloor = echo.NetHTTPFloor
)

// The compression modes: what the clients offer and the server accepts.
const (
	modeTakeover   = "takeover"   // permessage-deflate with context takeover both ways
	modeNoTakeover = "notakeover" // permessage-deflate, no context takeover either way
	modePlain      = "plain"      // no compression: what a connection costs without it
)

func main() {
	if spec := os.Getenv(envServe); spec != "" {
		exitOn(serve(spec))
		return
	}
	proc.Main("compmem", func() error { return run(os.Args[1:], os.Stdout, os.Stderr) })
}

func exitOn(err error) { proc.ExitOn("compmem", err) }

// cell is one configuration measured.
type cell struct {
	Server string `json:"server"`
	Mode   string `json:"mode"`
	// Window is the server's window, server_max_window_bits, 0 for
	// modePlain. The clients' window, client_max_window_bits, is the same
	// except at 8: zlib cannot compress with a raw 2^8 window, so the
	// clients then ask for 2^9 for their own.
	Window int `json:"window"`
}

// clientWindow is the client_max_window_bits that the clients offer.
func (c cell) clientWindow() int { return max(c.Window, 9) }

// configBits is the CompressionWindowBits our server is given: the larger
// of the two windows, which the offers then bring down.
func (c cell) configBits() int { return max(c.Window, c.clientWindow()) }

func (c cell) String() string {
	if c.Mode == modePlain {
		return c.Server + "/plain"
	}
	return fmt.Sprintf("%s/%s/%d", c.Server, c.Mode, c.Window)
}

type config struct {
	servers  []string
	windows  []int
	modes    []string
	conns    int
	runs     int
	settle   time.Duration // wait after the clients are idle before the first reading
	quiet    time.Duration // then wait this long before the second
	timeout  time.Duration // bound on the clients' handshakes and echoes
	parallel int           // runs at once
	python   string
	jsonOut  string
	profiles string // directory for our servers' heap profiles; "" for none
	from     string // a -json file to make the table from, instead of measuring
	args     []string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("compmem", flag.ContinueOnError)
	fs.SetOutput(stderr)
	servers := fs.String("servers", "ours,ours-read,python", "servers to measure: ours, ours-read, python, "+serverFloor+" (plain only)")
	windows := fs.String("windows", "15,12,10,9,8", "server window sizes in bits, 8 to 15 (python's zlib cannot compress with 8: skipped for it)")
	modes := fs.String("modes", "takeover,notakeover,plain", "compression modes: takeover, notakeover, plain (no compression, one cell per server)")
	fs.IntVar(&cfg.conns, "conns", 500, "connections per run")
	fs.IntVar(&cfg.runs, "runs", 3, "runs of each cell (the table shows medians)")
	fs.DurationVar(&cfg.settle, "settle", 3*time.Second, "wait after every connection is idle before reading VmRSS")
	fs.DurationVar(&cfg.quiet, "quiet", 40*time.Second, "then wait this long, without collecting garbage, before reading it again")
	fs.DurationVar(&cfg.timeout, "timeout", 3*time.Minute, "bound on the clients' handshakes and echoes")
	fs.IntVar(&cfg.parallel, "parallel", 1, "runs at once (each measures its own server process)")
	fs.StringVar(&cfg.python, "python", "/usr/bin/python3", "python with the websockets package (Debian's python3-websockets)")
	fs.StringVar(&cfg.jsonOut, "json", "", "write every run's raw figures to this file")
	fs.StringVar(&cfg.from, "from", "", "measure nothing: print the table of a -json file (give the same -conns and cell flags)")
	fs.StringVar(&cfg.profiles, "heapprofile", "", "write our servers' heap profiles, taken after the last collection, into this directory")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.args = args
	for _, s := range strings.Split(*servers, ",") {
		if s != serverOurs && s != serverOursRead && s != serverPython && s != serverFloor {
			return cfg, fmt.Errorf("-servers: unknown server %q", s)
		}
		cfg.servers = append(cfg.servers, s)
	}
	for _, w := range strings.Split(*windows, ",") {
		n, err := strconv.Atoi(w)
		if err != nil || n < 8 || n > 15 {
			return cfg, fmt.Errorf("-windows: %q is not a window size in bits, 8 to 15", w)
		}
		cfg.windows = append(cfg.windows, n)
	}
	for _, m := range strings.Split(*modes, ",") {
		if m != modeTakeover && m != modeNoTakeover && m != modePlain {
			return cfg, fmt.Errorf("-modes: unknown mode %q", m)
		}
		cfg.modes = append(cfg.modes, m)
	}
	switch {
	case cfg.conns < 1 || cfg.runs < 1 || cfg.parallel < 1:
		return cfg, errors.New("-conns, -runs and -parallel must be at least 1")
	case cfg.settle < 0 || cfg.quiet < 0 || cfg.timeout <= 0:
		return cfg, errors.New("-settle and -quiet must not be negative, -timeout must be positive")
	}
	return cfg, nil
}

// cells lists what cfg asks to measure, server by server.
func (cfg config) cells() []cell {
	var out []cell
	for _, s := range cfg.servers {
		for _, m := range cfg.modes {
			if m == modePlain {
				out = append(out, cell{Server: s, Mode: m})
				continue
			}
			if s == serverFloor {
				continue // it does not compress
			}
			for _, w := range cfg.windows {
				if s == serverPython && w == 8 {
					continue // zlib refuses a raw 2^8 compressor
				}
				out = append(out, cell{Server: s, Mode: m, Window: w})
			}
		}
	}
	return out
}

// result is what one run of a cell measured, in bytes for the whole
// server. The figures from RSSFreed to StackAfter are our servers' only.
type result struct {
	cell
	Run         int    `json:"run"`
	RSSBefore   int64  `json:"rss_before"`
	RSSSettled  int64  `json:"rss_settled"`  // -settle after every connection went idle
	RSSQuiet    int64  `json:"rss_quiet"`    // -quiet later
	RSSFreed    int64  `json:"rss_freed"`    // after the server collected garbage and returned free memory
	HeapBefore  int64  `json:"heap_before"`  // live heap after two collections, before the clients
	HeapAfter   int64  `json:"heap_after"`   // the same after -quiet
	PoolBefore  int64  `json:"pool_before"`  // heap that only sync.Pool kept through the first collection, before the clients
	PoolAfter   int64  `json:"pool_after"`   // the same after -quiet
	StackBefore int64  `json:"stack_before"` // goroutine stacks in use, before the clients
	StackAfter  int64  `json:"stack_after"`  // the same after -quiet
	Echoes      int    `json:"echoes"`       // echoes the clients checked
	Compressed  int    `json:"compressed"`   // of those, how many came compressed
	Wire        int64  `json:"wire_bytes"`   // their payload bytes as sent
	Error       string `json:"error,omitempty"`
}

type bench struct {
	cfg  config
	self string
	log  io.Writer
	mu   sync.Mutex // guards log
}

func (b *bench) logf(format string, args ...any) {
	b.mu.Lock()
	fmt.Fprintf(b.log, format+"\n", args...)
	b.mu.Unlock()
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.from != "" {
		raw, err := os.ReadFile(cfg.from)
		if err != nil {
			return err
		}
		var results []result
		if err := json.Unmarshal(raw, &results); err != nil {
			return fmt.Errorf("%s: %v", cfg.from, err)
		}
		writeTable(stdout, cfg.cells(), results, cfg)
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	versions, err := exec.Command(cfg.python, "-c",
		"import sys, websockets, zlib; print('Python %s, python-websockets %s, zlib %s' % (sys.version.split()[0], websockets.__version__, zlib.ZLIB_RUNTIME_VERSION))").Output()
	if err != nil {
		return fmt.Errorf("%s with the websockets package is needed (apt-get install python3-websockets): %v", cfg.python, err)
	}
	b := &bench{cfg: cfg, self: self, log: stderr}
	cells := cfg.cells()
	began := time.Now()

	// Rounds are interleaved: every cell once, then the next round, each
	// round starting at a different cell.
	type job struct {
		c   cell
		run int
	}
	jobs := make(chan job)
	total := len(cells) * cfg.runs
	results := make([]result, 0, total)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range cfg.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				r := b.measure(j.c, j.run)
				mu.Lock()
				results = append(results, r)
				done := len(results)
				mu.Unlock()
				b.logf("compmem: [%d/%d] %s", done, total, r.summary(cfg.conns))
			}
		}()
	}
	for r := range cfg.runs {
		for i := range cells {
			jobs <- job{cells[(i+r*len(cells)/cfg.runs)%len(cells)], r + 1}
		}
	}
	close(jobs)
	wg.Wait()

	if cfg.jsonOut != "" {
		raw, err := json.MarshalIndent(results, "", "\t")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonOut, append(raw, '\n'), 0o644); err != nil {
			return err
		}
	}
	var failed []string
	for _, r := range results {
		if r.Error != "" {
			failed = append(failed, r.cell.String()+": "+r.Error)
		}
	}
	fmt.Fprintf(stdout, "Command (in bench/): `go run ./cmd/compmem %s`, %s UTC, took %v; %s; %s, %d CPUs (servers at the default GOMAXPROCS); %d connections; medians of %d run(s), [min–max].\n\n",
		strings.Join(cfg.args, " "), began.UTC().Format("2006-01-02 15:04"), proc.Took(time.Since(began)),
		strings.TrimSpace(string(versions)), runtime.Version(), runtime.NumCPU(), cfg.conns, cfg.runs)
	writeTable(stdout, cells, results, cfg)
	if len(failed) > 0 {
		return fmt.Errorf("%d run(s) failed:\n%s", len(failed), strings.Join(failed, "\n"))
	}
	return nil
}

func (r result) summary(conns int) string {
	if r.Error != "" {
		return fmt.Sprintf("%s run %d: FAILED: %s", r.cell, r.Run, r.Error)
	}
	s := fmt.Sprintf("%s run %d: RSS per conn %s settled, %s quiet", r.cell, r.Run,
		kib(r.RSSSettled-r.RSSBefore, conns), kib(r.RSSQuiet-r.RSSBefore, conns))
	if r.Server != serverPython {
		s += fmt.Sprintf(", heap %s (and %s pooled), stacks %s, %s after GC", kib(r.HeapAfter-r.HeapBefore, conns),
			kib(r.PoolAfter-r.PoolBefore, conns),
			kib(r.StackAfter-r.StackBefore, conns), kib(r.RSSFreed-r.RSSBefore, conns))
	}
	return s + fmt.Sprintf("; %d/%d echoes compressed, %d B on the wire", r.Compressed, r.Echoes, r.Wire)
}

func kib(total int64, conns int) string {
	return fmt.Sprintf("%.1f KiB", float64(total)/float64(conns)/1024)
}

// measure runs cell c once.
func (b *bench) measure(c cell, run int) result {
	r := result{cell: c, Run: run}
	if err := b.measureInto(&r); err != nil {
		r.Error = err.Error()
	}
	return r
}

func (b *bench) measureInto(r *result) error {
	c := r.cell
	cfg := b.cfg
	lifetime := cfg.timeout + cfg.settle + cfg.quiet + 2*time.Minute
	var srv *proc.Child
	var err error
	if c.Server == serverPython {
		srv, err = proc.Start("the python server", []string{cfg.python, "-c", serverPy,
			strconv.Itoa(c.Window), c.Mode, strconv.Itoa(int(lifetime.Seconds()))}, nil, nil)
	} else {
		env := []string{envServe + "=" + serverSpec(c, lifetime)}
		if cfg.profiles != "" {
			name := strings.ReplaceAll(c.String(), "/", "-") + "-run" + strconv.Itoa(r.Run) + ".pb.gz"
			env = append(env, envHeapProfile+"="+filepath.Join(cfg.profiles, name))
		}
		srv, err = proc.Start("the "+c.Server+" server", []string{b.self}, env, nil)
	}
	if err != nil {
		return err
	}
	defer srv.Stop()
	addr, err := srv.Line(30 * time.Second)
	if err != nil {
		return err
	}
	ours := c.Server != serverPython
	if ours {
		g, err := gc(srv)
		if err != nil {
			return err
		}
		r.HeapBefore, r.PoolBefore, r.StackBefore = g.heap, g.pooled, g.stacks
	}
	if r.RSSBefore, err = srv.RSS(); err != nil {
		return err
	}

	cl, err := proc.Start("the clients", []string{cfg.python, "-c", clientsPy, "ws://" + addr + "/",
		strconv.Itoa(cfg.conns), strconv.Itoa(c.Window), strconv.Itoa(c.clientWindow()), c.Mode,
		strconv.Itoa(int(lifetime.Seconds()))}, nil, nil)
	if err != nil {
		return err
	}
	defer cl.Stop()
	l, err := cl.Line(cfg.timeout)
	if err != nil {
		return err
	}
	var conns int
	if _, err := fmt.Sscanf(l, "idle conns=%d echoes=%d compressed=%d wire=%d", &conns, &r.Echoes, &r.Compressed, &r.Wire); err != nil {
		return fmt.Errorf("the clients said %q", l)
	}
	if conns != cfg.conns || r.Echoes != 3*cfg.conns {
		return fmt.Errorf("the clients said %q, for %d connections", l, cfg.conns)
	}
	want := r.Echoes // every echo compressed, its 4 KiB being over any threshold
	if c.Mode == modePlain {
		want = 0
	}
	if r.Compressed != want {
		return fmt.Errorf("%d echoes came compressed, want %d", r.Compressed, want)
	}

	if err := srv.Sleep(cfg.settle); err != nil {
		return err
	}
	if r.RSSSettled, err = srv.RSS(); err != nil {
		return err
	}
	if err := srv.Sleep(cfg.quiet); err != nil {
		return err
	}
	if r.RSSQuiet, err = srv.RSS(); err != nil {
		return err
	}
	if ours {
		g, err := gc(srv)
		if err != nil {
			return err
		}
		r.HeapAfter, r.PoolAfter, r.StackAfter = g.heap, g.pooled, g.stacks
		if r.RSSFreed, err = srv.RSS(); err != nil {
			return err
		}
	}
	// The connections must still have been there when memory was read.
	return cl.Alive()
}

// writeTable writes the medians of results, cell by cell, as a Markdown
// table: growth per connection, in KiB.
func writeTable(w io.Writer, cells []cell, results []result, cfg config) {
	fmt.Fprintf(w, "| server | window, server's / clients' | context takeover | RSS per conn, %v after idle | RSS per conn after %v more of quiet | Go heap per conn after GC | more in sync.Pool per conn, freed by a second GC | goroutine stacks per conn after GC | RSS per conn after GC | bytes per compressed echo |\n", cfg.settle, cfg.quiet)
	fmt.Fprintln(w, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|")
	for _, c := range cells {
		var rs []result
		for _, r := range results {
			if r.cell == c && r.Error == "" {
				rs = append(rs, r)
			}
		}
		window, takeover := "2^"+strconv.Itoa(c.Window), "yes"
		if c.clientWindow() != c.Window {
			window += " / 2^" + strconv.Itoa(c.clientWindow())
		}
		switch c.Mode {
		case modeNoTakeover:
			takeover = "no"
		case modePlain:
			window, takeover = "no compression", "–"
		}
		fmt.Fprintf(w, "| %s | %s | %s |", c.Server, window, takeover)
		if len(rs) == 0 {
			fmt.Fprintln(w, " failed | | | | | | | |")
			continue
		}
		// col is the median growth per connection of a figure, "–" for
		// one that only our servers report.
		col := func(oursOnly bool, growth func(r result) int64) string {
			if oursOnly && c.Server == serverPython {
				return "–"
			}
			var v []float64
			for _, r := range rs {
				v = append(v, float64(growth(r))/float64(cfg.conns)/1024)
			}
			return spread(v)
		}
		fmt.Fprintf(w, " %s | %s | %s | %s | %s | %s |",
			col(false, func(r result) int64 { return r.RSSSettled - r.RSSBefore }),
			col(false, func(r result) int64 { return r.RSSQuiet - r.RSSBefore }),
			col(true, func(r result) int64 { return r.HeapAfter - r.HeapBefore }),
			col(true, func(r result) int64 { return r.PoolAfter - r.PoolBefore }),
			col(true, func(r result) int64 { return r.StackAfter - r.StackBefore }),
			col(true, func(r result) int64 { return r.RSSFreed - r.RSSBefore }))
		if c.Mode == modePlain {
			fmt.Fprintln(w, " – |")
		} else {
			var v []float64
			for _, r := range rs {
				v = append(v, float64(r.Wire)/float64(r.Compressed))
			}
			slices.Sort(v)
			fmt.Fprintf(w, " %.0f B |\n", v[len(v)/2])
		}
	}
}

// spread formats the median of v (KiB) with its range when v has more
// than one value.
func spread(v []float64) string {
	sort.Float64s(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	if len(v) == 1 {
		return fmt.Sprintf("%.1f KiB", med)
	}
	return fmt.Sprintf("%.1f KiB [%.1f–%.1f]", med, v[0], v[len(v)-1])
}
