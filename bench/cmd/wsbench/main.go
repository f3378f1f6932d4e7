//go:build linux

// Command wsbench measures the echo servers of package echo end to end, one
// library after another, each server in a process of its own on one CPU
// (GOMAXPROCS=1, pinned with taskset), driven over loopback by a load
// generator on the other CPU that speaks WebSocket directly on TCP
// (package loadgen), the same for every server.
//
// For each scenario it measures throughput, the server's CPU time per
// message (from /proc/PID/stat), round-trip latency, and the server's memory
// per idle connection (from /proc/PID/status), together with the load
// generator's own CPU use; with permessage-deflate, the bytes on the wire
// per echo; for opening handshakes, each side's CPU time and heap
// allocations. Rounds are interleaved: each round runs every
// scenario against every library before the next round starts. It prints
// the medians over the rounds, with each of our servers' ratio to the best
// of the other libraries, and writes them into bench/README.md with an SVG
// chart of the ratios.
//
// Run it from the bench directory:
//
//	go run ./cmd/wsbench                                  # the full run, about 25 minutes
//	go run ./cmd/wsbench -duration 200ms -rounds 1 -write=false  # a smoke run
//	go run ./cmd/wsbench -scenarios 16B-1x64,rtt -libs ours,gws
//
// With WSBENCH_SERVE=lib in its environment (or -serve lib) it is instead
// one echo server, which prints its address and runs until its standard
// input ends.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rfc6455/websocket/bench/echo"
	"github.com/rfc6455/websocket/bench/internal/proc"
)

func main() {
	if lib := os.Getenv(envServe); lib != "" {
		exitOn(serve(lib))
		return
	}
	if len(os.Args) == 3 && os.Args[1] == "-serve" {
		exitOn(serve(os.Args[2]))
		return
	}
	proc.Main("wsbench", func() error { return run(os.Args[1:], os.Stdout, os.Stderr, true) })
}

func exitOn(err error) { proc.ExitOn("wsbench", err) }

type config struct {
	libs       []string
	scenarios  []scenario
	duration   time.Duration // measured window of each load run
	warmup     time.Duration // load before the window opens
	rounds     int
	settle     time.Duration // wait before reading an idle server's memory
	hold       time.Duration // how long idle connections stay, answering pings, while the server's CPU is measured; 0 for not at all
	keepalive  string        // our servers' keepalive: "" (default), "off" or "interval/timeout"
	stall      time.Duration // no progress for this long fails the run
	pin        bool
	serverCPU  int
	genCPU     int
	readme     string // file to write the results into; "" for none
	jsonOut    string // file for every round's raw results; "" for none
	profile    string // directory for the servers' CPU profiles; "" for none
	genProfile string // file for the load generator's CPU profile; "" for none
	args       []string
}

type bench struct {
	cfg     config
	self    string  // this executable, which also runs the servers
	taskset string  // path of taskset, if pinning
	tick    float64 // clock ticks per second of /proc/PID/stat
	log     io.Writer
}

// run is the whole command. reexec allows it to restart itself pinned to
// the load generator's CPU.
func run(args []string, stdout, stderr io.Writer, reexec bool) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, self: self, tick: clockTick(), log: stderr}
	if cfg.pin {
		if b.taskset, err = exec.LookPath("taskset"); err != nil {
			return fmt.Errorf("pinning needs taskset (util-linux), or run with -pin=false: %w", err)
		}
		gen := strconv.Itoa(cfg.genCPU)
		if got := cpusAllowed(); got != gen {
			if !reexec {
				return fmt.Errorf("the load generator runs on CPUs %s, want %s", got, gen)
			}
			// Restart under taskset, keeping the process (and so the
			// terminal's signals); GOMAXPROCS follows the new affinity.
			argv := append([]string{"taskset", "-c", gen, self}, args...)
			return syscall.Exec(b.taskset, argv, withoutEnv(os.Environ(), "GOMAXPROCS"))
		}
	}
	var maxIdle int
	for _, sc := range cfg.scenarios {
		maxIdle = max(maxIdle, sc.Idle)
	}
	if maxIdle > 0 {
		if err := raiseNoFile(uint64(maxIdle) + noFileSlack); err != nil {
			return err
		}
	}
	if cfg.profile != "" {
		if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "wsbench: %d scenarios × %d libraries × %d rounds, about %v\n",
		len(cfg.scenarios), len(cfg.libs), cfg.rounds, b.estimate().Round(time.Second))
	if cfg.genProfile != "" {
		f, err := os.Create(cfg.genProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	results, err := b.runAll()
	if err != nil {
		return err
	}
	rep := newReport(cfg, results, time.Since(start))
	rep.writeText(stdout)
	if cfg.jsonOut != "" {
		if err := rep.writeJSON(cfg.jsonOut); err != nil {
			return err
		}
	}
	if cfg.readme != "" {
		if err := rep.writeReadme(cfg.readme); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wsbench: wrote %s and %s\n", cfg.readme, filepath.Join(filepath.Dir(cfg.readme), chartFile))
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("wsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	libs := fs.String("libs", strings.Join(defaultLibs(), ","), "libraries to run, comma-separated, from "+strings.Join(echo.Libs, ","))
	scens := fs.String("scenarios", "", "scenarios to run, comma-separated (default all but the optional ones; \"all\" for every one): "+scenarioNames())
	idle := fs.String("idle", "10000", "idle-connection counts, comma-separated, one idle scenario each (10000,50000 adds a 50,000 run)")
	duration := fs.Duration("duration", 4*time.Second, "measured time of each load run")
	warmup := fs.Duration("warmup", 0, "load before measuring (default duration/5, at most 1s)")
	rounds := fs.Int("rounds", 3, "interleaved rounds; the tables show medians")
	settle := fs.Duration("settle", 0, "wait before reading an idle server's memory (default duration/2, at most 1s)")
	stall := fs.Duration("stall", 2*time.Second, "fail the run if a server makes no progress for this long")
	hold := fs.Duration("hold", 0, "after an idle run's memory is read, keep its connections this long, answering pings, and measure the server's CPU (0: not at all)")
	keepalive := fs.String("keepalive", "", "our servers' keepalive: off, or interval/timeout (5s/5s); default the library's")
	pin := fs.Bool("pin", true, "pin servers and load generator to CPUs with taskset")
	serverCPU := fs.Int("server-cpu", 0, "CPU of the servers")
	genCPU := fs.Int("gen-cpu", 1, "CPU of the load generator")
	write := fs.Bool("write", true, "write the results into README.md and "+chartFile+" in the bench directory")
	jsonOut := fs.String("json", "", "also write every round's raw results to this file")
	profile := fs.String("profile", "", "write each server's CPU profile (whole run, warm-up included) into this directory")
	genProfile := fs.String("genprofile", "", "write the load generator's CPU profile (whole run) to this file")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg := config{
		duration: *duration, warmup: *warmup, rounds: *rounds, settle: *settle, stall: *stall, hold: *hold, keepalive: *keepalive,
		pin: *pin, serverCPU: *serverCPU, genCPU: *genCPU, jsonOut: *jsonOut, profile: *profile, genProfile: *genProfile,
		args: args,
	}
	for _, l := range strings.Split(*libs, ",") {
		if !slices.Contains(echo.Libs, l) {
			return config{}, fmt.Errorf("-libs: unknown library %q (want some of %s)", l, strings.Join(echo.Libs, ","))
		}
		if !slices.Contains(cfg.libs, l) {
			cfg.libs = append(cfg.libs, l)
		}
	}
	var idles []int
	for _, s := range strings.Split(*idle, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1_000_000 {
			return config{}, fmt.Errorf("-idle: %q is not a count from 1 to 1000000", s)
		}
		idles = append(idles, n)
	}
	var err error
	if cfg.scenarios, err = pickScenarios(*scens, idles); err != nil {
		return config{}, err
	}
	if cfg.rounds < 1 || cfg.duration <= 0 || cfg.stall <= 0 || cfg.hold < 0 {
		return config{}, errors.New("-rounds, -duration and -stall must be positive, -hold not negative")
	}
	if _, err := keepaliveOptions(cfg.keepalive); err != nil {
		return config{}, fmt.Errorf("-keepalive: %v", err)
	}
	if cfg.warmup <= 0 {
		cfg.warmup = min(time.Second, cfg.duration/5)
	}
	if cfg.settle <= 0 {
		cfg.settle = min(time.Second, cfg.duration/2)
	}
	if cfg.pin && cfg.serverCPU == cfg.genCPU {
		return config{}, errors.New("-server-cpu and -gen-cpu must differ")
	}
	if *write {
		dir, err := benchDir()
		if err != nil {
			return config{}, fmt.Errorf("%v (or run with -write=false)", err)
		}
		cfg.readme = filepath.Join(dir, "README.md")
	}
	return cfg, nil
}

// defaultLibs are the servers a run measures unless -libs names others:
// all but ours-stream (Reader, Writer and io.CopyBuffer) and gobwas-fresh
// (the cost of a new slice per message), which a full run leaves out to
// stay within half an hour, and nethttp-floor, a yardstick for the idle
// rows.
func defaultLibs() []string {
	return slices.DeleteFunc(slices.Clone(echo.Libs), func(l string) bool {
		return l == echo.OursStream || l == echo.GobwasFresh || l == echo.NetHTTPFloor
	})
}

// benchDir finds the bench module's directory, the working directory or
// one above it.
func benchDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			strings.HasPrefix(string(b), "module github.com/rfc6455/websocket/bench\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s is not inside the bench module", dir)
		}
	}
}

// runAll runs the rounds and returns every run's result.
func (b *bench) runAll() ([]result, error) {
	var results []result
	for round := 1; round <= b.cfg.rounds; round++ {
		for _, sc := range b.cfg.scenarios {
			// Each round starts with a different library, so none is
			// always first after a change of scenario.
			n := len(b.cfg.libs)
			for i := range n {
				lib := b.cfg.libs[(i+round-1)%n]
				if !sc.runs(lib) {
					continue
				}
				r, err := b.runOne(sc, lib, round)
				if err != nil {
					return nil, fmt.Errorf("round %d, %s, %s: %w", round, sc.Name, lib, err)
				}
				fmt.Fprintf(b.log, "round %d/%d  %-10s %-12s %s\n", round, b.cfg.rounds, sc.Name, lib, r.summary(sc, b.cfg.pin))
				results = append(results, r)
			}
		}
	}
	return results, nil
}

func (b *bench) runOne(sc scenario, lib string, round int) (result, error) {
	var profile string
	if b.cfg.profile != "" {
		profile = filepath.Join(b.cfg.profile, fmt.Sprintf("%s-%s-r%d.pprof", sc.Name, lib, round))
	}
	s, err := b.startServer(lib, profile, sc.mode())
	if err != nil {
		return result{}, err
	}
	defer s.Stop()
	r := result{Scenario: sc.Name, Lib: lib, Round: round}
	switch {
	case sc.Idle > 0:
		err = b.runIdle(sc, s, &r)
	case sc.Handshake:
		err = b.runHandshakes(sc, s, &r)
	default:
		err = b.runLoad(sc, s, &r)
	}
	return r, err
}

// estimate guesses how long the run will take.
func (b *bench) estimate() time.Duration {
	var round time.Duration
	for _, sc := range b.cfg.scenarios {
		var per time.Duration
		if sc.Idle > 0 {
			per = b.cfg.settle + b.cfg.hold + time.Duration(sc.Idle)*300*time.Microsecond + 1500*time.Millisecond
		} else {
			per = b.cfg.warmup + b.cfg.duration + 300*time.Millisecond
		}
		for _, lib := range b.cfg.libs {
			if sc.runs(lib) {
				round += per
			}
		}
	}
	return round * time.Duration(b.cfg.rounds)
}
