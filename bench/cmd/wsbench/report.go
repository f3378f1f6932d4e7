//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rfc6455/websocket/bench/echo"
	"github.com/rfc6455/websocket/bench/internal/proc"
	"github.com/rfc6455/websocket/bench/loadgen"
)

// chartFile is the chart of ratios, written beside README.md.
const chartFile = "ratios.svg"

// The generated part of README.md lies between these lines.
const (
	beginMark = "<!-- wsbench:begin: written by go run ./cmd/wsbench; edits between these lines are overwritten -->"
	endMark   = "<!-- wsbench:end -->"
)

type report struct {
	cfg     config
	results []result
	elapsed time.Duration
	when    time.Time
	ours    []string // our servers that ran
	peers   []string // the other libraries that ran
	tables  []table
}

// A table shows one measure for several scenarios, a row each, a column
// per library. With ratios, it ends with the best peer of each row and the
// factor by which each of our servers beats it (below 1: trails it).
type table struct {
	title  string
	note   string
	short  string // the measure's name in the chart
	ratios bool
	rows   []row
}

type row struct {
	label  string
	higher bool // higher values are better
	vals   map[string]float64
	format func(float64) string
	cell   func(lib string) string // overrides format, for tables without ratios
}

func newReport(cfg config, results []result, elapsed time.Duration) *report {
	r := &report{cfg: cfg, results: results, elapsed: elapsed, when: time.Now().UTC()}
	for _, l := range cfg.libs {
		switch {
		case echo.IsOurs(l):
			r.ours = append(r.ours, l)
		case !echo.IsReference(l):
			r.peers = append(r.peers, l)
		}
	}
	var load, compressed, idle []scenario
	var rtt, hs *scenario
	for _, sc := range cfg.scenarios {
		switch {
		case sc.Idle > 0:
			idle = append(idle, sc)
		case sc.Latency:
			rtt = &sc
		case sc.Handshake:
			hs = &sc
		default:
			load = append(load, sc)
			if sc.Compression != loadgen.Uncompressed {
				compressed = append(compressed, sc)
			}
		}
	}
	if len(load) > 0 {
		t := table{title: "Throughput", short: "throughput", ratios: true,
			note: "Echoed messages per second, or payload bytes per second one way for 16 KiB and up. Higher is better."}
		for _, sc := range load {
			t.rows = append(t.rows, r.row(sc.Title, sc, true, func(x result) float64 { return x.MsgPerSec },
				func(v float64) string { return fmtRate(v, sc.Size) }))
		}
		r.tables = append(r.tables, t)
	}
	if len(load) > 0 || rtt != nil {
		t := table{title: "Server CPU per message", short: "CPU/msg", ratios: true,
			note: "User and system CPU time of the server process (/proc/PID/stat) over the window, divided by the messages echoed. Lower is better."}
		for _, sc := range append(slices.Clone(load), scenariosOf(rtt)...) {
			t.rows = append(t.rows, r.row(sc.Title, sc, false, func(x result) float64 { return x.CPUPerMsg }, fmtSeconds))
		}
		r.tables = append(r.tables, t)
	}
	if rtt != nil {
		t := table{title: "Round-trip latency", short: "latency", ratios: true,
			note: "One connection, one 16 B message in flight: time from the write of a message to the arrival of its whole echo, as the load generator sees it. Lower is better."}
		t.rows = append(t.rows,
			r.row("p50", *rtt, false, func(x result) float64 { return x.P50 }, fmtSeconds),
			r.row("p99", *rtt, false, func(x result) float64 { return x.P99 }, fmtSeconds),
			r.row("p99.9", *rtt, false, func(x result) float64 { return x.P999 }, fmtSeconds))
		r.tables = append(r.tables, t)
	}
	if len(compressed) > 0 {
		t := table{title: "Compression", short: "wire", ratios: true,
			note: "Bytes on the wire per echoed message (frame headers included), and in parentheses the payload's size over them, the compression ratio; the CPU each server spent is in the table above. " +
				"The load generator sends a cycle of " + fmt.Sprint(jsonCycle) + " different JSON texts (chat events) per scenario, compressed ahead of time at compress/flate's default level with 2^15-byte windows, " +
				"each on its own (deflate) or with the texts before it as history (takeover), and inflates every echo to check it. Lower is better." + r.negotiated(compressed)}
		for _, sc := range compressed {
			size := float64(sc.Size)
			t.rows = append(t.rows, r.row(sc.Title, sc, false, func(x result) float64 { return x.EchoWirePerMsg },
				func(v float64) string { return fmt.Sprintf("%s (%.2f×)", fmtBytes(v), size/v) }))
		}
		r.tables = append(r.tables, t)
	}
	if hs != nil {
		sc := *hs
		per := func(f func(x result) float64) func(x result) float64 {
			return func(x result) float64 { return f(x) / float64(x.Messages) }
		}
		count := func(v float64) string { return fmt.Sprintf("%.1f", v) }
		t := table{title: "Opening handshake", short: "handshake", ratios: true,
			note: fmt.Sprintf("Each library's own client (nil options) dials its own server, %d at a time, and drops the connection as soon as it is open; for our servers, Dial. "+
				"The server's CPU time (/proc/PID/stat) and heap allocations (runtime.MemStats Mallocs and TotalAlloc, read in the server process), and the client's, which is the load generator's process, per handshake; the servers that read the request with net/http only. Lower is better, but for the rate.", sc.Conns)}
		t.rows = append(t.rows,
			r.row("handshakes per second", sc, true, func(x result) float64 { return x.MsgPerSec }, func(v float64) string { return fmt.Sprintf("%.0f/s", v) }),
			r.row("server CPU per handshake", sc, false, func(x result) float64 { return x.CPUPerMsg }, fmtSeconds),
			r.row("server allocs per handshake", sc, false, per(func(x result) float64 { return x.ServerAllocs }), count),
			r.row("server bytes per handshake", sc, false, per(func(x result) float64 { return x.ServerAllocBytes }), fmtBytes),
			r.row("client CPU per handshake", sc, false, per(func(x result) float64 { return x.GenCPU }), fmtSeconds),
			r.row("client allocs per handshake", sc, false, per(func(x result) float64 { return x.ClientAllocs }), count),
			r.row("client bytes per handshake", sc, false, per(func(x result) float64 { return x.ClientAllocBytes }), fmtBytes))
		r.tables = append(r.tables, t)
	}
	if len(idle) > 0 {
		t := table{title: "Idle connections", short: "idle", ratios: true,
			note: "Growth of the server's VmRSS per connection, each connection having echoed one 16 B message; then the same after the server collected garbage and returned free memory (debug.FreeOSMemory); and the server's CPU time per connection for its handshake and that echo. Lower is better."}
		for _, sc := range idle {
			t.rows = append(t.rows,
				r.row(sc.Title+", RSS per conn", sc, false, func(x result) float64 { return x.RSSPerConn }, fmtBytes),
				r.row(sc.Title+", RSS per conn after GC", sc, false, func(x result) float64 { return x.RSSPerConnGC }, fmtBytes),
				r.row(sc.Title+", CPU per conn", sc, false, func(x result) float64 { return x.CPUPerConn }, fmtSeconds))
			if cfg.hold > 0 {
				t.rows = append(t.rows,
					r.row(sc.Title+", CPU per conn per idle minute", sc, false, func(x result) float64 { return x.holdPerConnMinute(x.HoldCPU) }, fmtSeconds),
					r.row(sc.Title+", pings answered per conn per minute", sc, false, func(x result) float64 { return x.holdPerConnMinute(float64(x.Pings)) },
						func(v float64) string { return fmt.Sprintf("%.2f", v) }),
					r.row(sc.Title+", RSS per conn after the hold", sc, false, func(x result) float64 { return x.HoldRSSPerConn }, fmtBytes))
			}
		}
		if cfg.hold > 0 {
			t.note += fmt.Sprintf(" With -hold, the connections then stayed idle for %v, answering pings, while the server's CPU time was measured; then its VmRSS growth per connection was read again.", cfg.hold)
		}
		r.tables = append(r.tables, t)
	}
	if len(load) > 0 || rtt != nil {
		t := table{title: "CPU use during the window",
			note: "Percent of one CPU used by the server process / by the load generator (the whole wsbench process), and in parentheses the idle time of the server's CPU / of the load generator's CPU. " +
				"The server's CPU idle near 0 means the server was the bottleneck, as it should be. Softirq time (the kernel's loopback delivery, charged to no process) is in the JSON output."}
		for _, sc := range append(append(slices.Clone(load), scenariosOf(rtt)...), scenariosOf(hs)...) {
			pct := func(f func(x result) float64) map[string]float64 {
				return r.median(sc, func(x result) float64 { return 100 * f(x) / x.Seconds })
			}
			srv, gen := pct(func(x result) float64 { return x.ServerCPU }), pct(func(x result) float64 { return x.GenCPU })
			srvIdle, genIdle := pct(func(x result) float64 { return x.ServerCoreIdle }), pct(func(x result) float64 { return x.GenCoreIdle })
			t.rows = append(t.rows, row{label: sc.Title, vals: srv, cell: func(lib string) string {
				if _, ok := srv[lib]; !ok {
					return "–"
				}
				if !cfg.pin {
					return fmt.Sprintf("%.0f / %.0f", srv[lib], gen[lib])
				}
				return fmt.Sprintf("%.0f / %.0f (%.0f / %.0f)", srv[lib], gen[lib], srvIdle[lib], genIdle[lib])
			}})
		}
		r.tables = append(r.tables, t)
	}
	return r
}

// negotiated says which parameters each server chose in each compressed
// scenario, the same for all its connections.
func (r *report) negotiated(scs []scenario) string {
	var b strings.Builder
	for _, sc := range scs {
		libs := make(map[string][]string)
		var exts []string
		for _, lib := range r.cfg.libs {
			for _, x := range r.results {
				if x.Scenario == sc.Name && x.Lib == lib {
					if _, ok := libs[x.Extensions]; !ok {
						exts = append(exts, x.Extensions)
					}
					libs[x.Extensions] = append(libs[x.Extensions], lib)
					break
				}
			}
		}
		fmt.Fprintf(&b, " %s: the load generator offered `%s`", sc.Title, sc.Compression.Offer())
		for i, e := range exts {
			sep := ", "
			if i == 0 {
				sep = "; "
			}
			fmt.Fprintf(&b, "%s%s answered `%s`", sep, strings.Join(libs[e], ", "), e)
		}
		b.WriteString(".")
	}
	return b.String()
}

func scenariosOf(sc *scenario) []scenario {
	if sc == nil {
		return nil
	}
	return []scenario{*sc}
}

func (r *report) row(label string, sc scenario, higher bool, f func(result) float64, format func(float64) string) row {
	return row{label: label, higher: higher, vals: r.median(sc, f), format: format}
}

// median returns, per library, the median over the rounds of f of its
// results for sc.
func (r *report) median(sc scenario, f func(result) float64) map[string]float64 {
	by := make(map[string][]float64)
	for _, x := range r.results {
		if x.Scenario == sc.Name {
			by[x.Lib] = append(by[x.Lib], f(x))
		}
	}
	out := make(map[string]float64)
	for lib, v := range by {
		out[lib] = median(v)
	}
	return out
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// best returns the peer with the best value in the row, if any.
func (r *report) best(rw row) (string, bool) {
	var lib string
	for _, p := range r.peers {
		v, ok := rw.vals[p]
		if !ok || v <= 0 || math.IsNaN(v) {
			continue
		}
		if lib == "" || (rw.higher && v > rw.vals[lib]) || (!rw.higher && v < rw.vals[lib]) {
			lib = p
		}
	}
	return lib, lib != ""
}

// factor returns by how much lib beats the best peer in the row: its value
// over the peer's where higher is better, the peer's over its own where
// lower is. Above 1, lib is better. It is NaN if either value is missing
// or not positive.
func (r *report) factor(rw row, lib string) float64 {
	b, ok := r.best(rw)
	v, ok2 := rw.vals[lib]
	if !ok || !ok2 || v <= 0 {
		return math.NaN()
	}
	if rw.higher {
		return v / rw.vals[b]
	}
	return rw.vals[b] / v
}

func fmtFactor(f float64) string {
	if math.IsNaN(f) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", f)
}

// markdown writes the tables.
func (r *report) markdown(w io.Writer) {
	for _, t := range r.tables {
		fmt.Fprintf(w, "### %s\n\n%s\n\n", t.title, t.note)
		head := []string{"scenario"}
		head = append(head, r.cfg.libs...)
		if t.ratios && len(r.peers) > 0 {
			head = append(head, "best peer")
			for _, o := range r.ours {
				head = append(head, o+" vs best")
			}
		}
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
		for _, rw := range t.rows {
			cells := []string{rw.label}
			for _, lib := range r.cfg.libs {
				switch v, ok := rw.vals[lib]; {
				case rw.cell != nil:
					cells = append(cells, rw.cell(lib))
				case !ok:
					cells = append(cells, "–")
				default:
					cells = append(cells, rw.format(v))
				}
			}
			if t.ratios && len(r.peers) > 0 {
				b, _ := r.best(rw)
				cells = append(cells, or(b, "–"))
				for _, o := range r.ours {
					cells = append(cells, fmtFactor(r.factor(rw, o)))
				}
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		}
		fmt.Fprintln(w)
	}
	for _, warn := range r.warnings() {
		fmt.Fprintf(w, "**Warning:** %s\n\n", warn)
	}
}

// warnings points out medians that measure something else than the
// server, one line per scenario: a saturated load generator, or other
// processes taking CPU time.
func (r *report) warnings() []string {
	var out []string
	for _, sc := range r.cfg.scenarios {
		if sc.Idle > 0 {
			continue
		}
		frac := func(f func(x result) float64) map[string]float64 {
			return r.median(sc, func(x result) float64 { return f(x) / x.Seconds })
		}
		srvIdle, genIdle := frac(func(x result) float64 { return x.ServerCoreIdle }), frac(func(x result) float64 { return x.GenCoreIdle })
		others := frac(func(x result) float64 { return x.OtherCPU })
		var gen, busy []string
		for _, lib := range r.cfg.libs {
			if _, ok := others[lib]; !ok {
				continue
			}
			if r.cfg.pin && genIdle[lib] < 0.05 && srvIdle[lib] > 0.05 {
				gen = append(gen, fmt.Sprintf("%s (server's CPU %.0f%% idle)", lib, 100*srvIdle[lib]))
			}
			if others[lib] > 0.10 {
				busy = append(busy, fmt.Sprintf("%s %.0f%%", lib, 100*others[lib]))
			}
		}
		if len(gen) > 0 {
			out = append(out, fmt.Sprintf("%s: the load generator's CPU was saturated while the server's was not, so it may have been the bottleneck: %s.", sc.Title, strings.Join(gen, ", ")))
		}
		if len(busy) > 0 {
			out = append(out, fmt.Sprintf("%s: other processes took CPU time during the window, so the numbers are disturbed (percent of one CPU): %s.", sc.Title, strings.Join(busy, ", ")))
		}
	}
	return out
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "wsbench: %s\n%s\n\n", r.command(), r.setup())
	r.markdown(w)
	for _, line := range r.million() {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "This run took %v.\n", proc.Took(r.elapsed))
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r.results, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// command returns the command line that reproduces the run.
func (r *report) command() string {
	parts := []string{"go", "run", "./cmd/wsbench"}
	args := r.cfg.args
	for i := 0; i < len(args); i++ {
		a := args[i]
		// Where the side outputs went does not matter to the results.
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "json" || name == "profile" || name == "genprofile" {
			if !hasValue {
				i++
			}
			continue
		}
		if strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,/:") != "" {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// setup says how the run was made.
func (r *report) setup() string {
	pin := "not pinned to CPUs"
	if r.cfg.pin {
		pin = fmt.Sprintf("each server alone on CPU %d, the load generator on CPU %d", r.cfg.serverCPU, r.cfg.genCPU)
	}
	ka := "their default keepalive"
	switch r.cfg.keepalive {
	case "":
	case "off":
		ka = "keepalive off"
	default:
		ka = "keepalive interval/timeout " + r.cfg.keepalive
	}
	return fmt.Sprintf("Servers with GOMAXPROCS=1, %s; loopback TCP; our servers with %s. %d interleaved round(s); load runs measured for %v after %v of warm-up; idle runs read after %v. Medians over the rounds.",
		pin, ka, r.cfg.rounds, r.cfg.duration, r.cfg.warmup, r.cfg.settle)
}

// million works out, from the idle runs, what one million idle
// connections would take.
func (r *report) million() []string {
	var out []string
	mem := memTotal()
	for _, sc := range r.cfg.scenarios {
		if sc.Idle == 0 {
			continue
		}
		rss := r.median(sc, func(x result) float64 { return x.RSSPerConn })
		gc := r.median(sc, func(x result) float64 { return x.RSSPerConnGC })
		for _, lib := range r.ours {
			v, ok := rss[lib]
			if !ok {
				continue
			}
			out = append(out, fmt.Sprintf("One million idle connections, from the %s run of %s: 1,000,000 × %s = %.1f GiB of server memory (%.1f GiB after GC), of this machine's %.0f GiB; the kernel's socket memory comes on top, since VmRSS does not count it.",
				sc.Title, lib, fmtBytes(v), v*1e6/(1<<30), gc[lib]*1e6/(1<<30), float64(mem)/(1<<30)))
		}
	}
	return out
}

// writeReadme writes the results between the marks in the README at path
// (which it creates if need be), and the chart beside it.
func (r *report) writeReadme(path string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n## Latest results\n\n", beginMark)
	fmt.Fprintf(&b, "Command (in `bench/`): `%s`, run %s; it took %v.\n\n", r.command(), r.when.Format("2006-01-02 15:04 MST"), proc.Took(r.elapsed))
	fmt.Fprintf(&b, "Machine: %s.\n\n", machine())
	fmt.Fprintf(&b, "%s\n\n", r.setup())
	if len(r.ours) > 0 && len(r.peers) > 0 {
		fmt.Fprintf(&b, "![Each of our servers against the best other library, per row](%s)\n\n", chartFile)
	}
	r.markdown(&b)
	for _, line := range r.million() {
		fmt.Fprintf(&b, "%s\n\n", line)
	}
	b.WriteString(endMark + "\n")

	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if text == "" {
		text = "# Benchmarks\n\n"
	}
	i, j := strings.Index(text, beginMark), strings.Index(text, endMark)
	if i >= 0 && j > i {
		text = text[:i] + b.String() + strings.TrimPrefix(text[j+len(endMark):], "\n")
	} else {
		text = strings.TrimRight(text, "\n") + "\n\n" + b.String()
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(filepath.Dir(path), chartFile), []byte(r.chart()), 0o644)
}

// machine describes the computer, the kernel, Go, and the library's
// revision.
func machine() string {
	cpu, n := "unknown CPU", 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch strings.TrimSpace(k) {
			case "processor":
				n++
			case "model name":
				if cpu == "unknown CPU" {
					cpu = strings.Join(strings.Fields(v), " ")
				}
			}
		}
	}
	var u syscall.Utsname
	syscall.Uname(&u)
	return fmt.Sprintf("%s, %d CPUs, %.0f GiB; %s %s %s; %s; library at %s",
		cpu, n, float64(memTotal())/(1<<30), utsString(u.Sysname[:]), utsString(u.Release[:]), utsString(u.Machine[:]),
		runtime.Version(), revision())
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func memTotal() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

// revision returns the git commit of the library this program was built
// with, noting changes not yet committed outside bench/.
func revision() string {
	dir := "../"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/rfc6455/websocket" && m.Replace != nil {
				dir = m.Replace.Path
			}
		}
	}
	if !filepath.IsAbs(dir) {
		bd, err := benchDir()
		if err != nil {
			return "an unknown revision"
		}
		dir = filepath.Join(bd, dir)
	}
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--show-toplevel", "--short", "HEAD").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 || filepath.Clean(f[0]) != filepath.Clean(dir) {
		return "an unknown revision, in " + dir
	}
	rev := "commit " + f[1]
	st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--", ".", ":(exclude)bench").Output()
	if err == nil && len(st) > 0 {
		rev += " with uncommitted changes"
	}
	return rev
}

func fmtSeconds(s float64) string {
	switch {
	case s <= 0 || math.IsNaN(s):
		return fmt.Sprintf("%.3g s", s)
	case s < 1e-6:
		return fmt.Sprintf("%.0f ns", s*1e9)
	case s < 1e-3:
		return fmt.Sprintf("%.3g µs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.3g ms", s*1e3)
	}
	return fmt.Sprintf("%.3g s", s)
}

func fmtBytes(b float64) string {
	switch {
	case math.Abs(b) < 1<<10:
		return fmt.Sprintf("%.0f B", b)
	case math.Abs(b) < 1<<20:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", b/(1<<20))
}

// fmtRate formats a message rate, as bytes per second for large messages.
func fmtRate(msgs float64, size int) string {
	if size >= 16<<10 {
		bps := msgs * float64(size)
		if bps >= 1e9 {
			return fmt.Sprintf("%.2f GB/s", bps/1e9)
		}
		return fmt.Sprintf("%.0f MB/s", bps/1e6)
	}
	if msgs >= 1e6 {
		return fmt.Sprintf("%.2fM msg/s", msgs/1e6)
	}
	return fmt.Sprintf("%.0fk msg/s", msgs/1e3)
}

// thousands writes n with comma separators.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
