//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	ours "github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/bench/internal/proc"
)

// server is an echo server running in a process of its own.
type server struct {
	*proc.Child
	lib  string
	addr string
}

// startServer starts lib's echo server as a child process, pinned to the
// server CPU with GOMAXPROCS=1 unless pinning is off, and waits for its
// address.
func (b *bench) startServer(lib, profile string, comp ours.CompressionMode) (*server, error) {
	var argv []string
	if b.cfg.pin {
		argv = append(argv, b.taskset, "-c", strconv.Itoa(b.cfg.serverCPU))
	}
	argv = append(argv, b.self)
	mode, err := comp.MarshalText()
	if err != nil {
		return nil, err
	}
	// An empty envProfile, as an unset one, asks for no profile.
	env := []string{"GOMAXPROCS=1", envServe + "=" + lib, envKeepalive + "=" + b.cfg.keepalive,
		envCompression + "=" + string(mode), envProfile + "=" + profile}
	c, err := proc.Start("the "+lib+" server", argv, env, os.Stderr)
	if err != nil {
		return nil, err
	}
	addr, err := c.Line(10 * time.Second)
	if err != nil {
		c.Stop()
		return nil, err
	}
	return &server{Child: c, lib: lib, addr: addr}, nil
}

// freeMemory asks the server to collect garbage and return free memory to
// the system, and waits until it has.
func (s *server) freeMemory() error {
	_, err := s.Ask(syscall.SIGUSR1, "freed", 10*time.Second)
	return err
}

// allocs returns the heap objects and bytes the server has allocated so
// far.
func (s *server) allocs() (objects, bytes float64, err error) {
	line, err := s.Ask(syscall.SIGUSR2, "allocs ", 10*time.Second)
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscanf(line, "allocs %g %g", &objects, &bytes); err != nil {
		return 0, 0, fmt.Errorf("the %s server's allocations: %q: %v", s.lib, line, err)
	}
	return objects, bytes, nil
}

// cpu returns the CPU time the server has used, user and system, in
// seconds (/proc/PID/stat, in clock ticks).
func (s *server) cpu(tick float64) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.Pid()))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing parenthesis, which follows field 2.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	// Fields 14 and 15, utime and stime, are the 12th and 13th after
	// the name.
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(utime+stime) / tick, nil
}

// cpuTimes holds the time a CPU, or all of them ("cpu" in /proc/stat),
// spent in softirq handlers, idle, and busy otherwise, in seconds.
type cpuTimes struct{ softirq, idle, busy float64 }

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	return cpuTimes{a.softirq - b.softirq, a.idle - b.idle, a.busy - b.busy}
}

// systemCPU reads the time of every CPU from /proc/stat, keyed "cpu" for
// the sum and "cpu0", "cpu1"... for each one.
func systemCPU(tick float64) (map[string]cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	out := make(map[string]cpuTimes)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		// user nice system idle iowait irq softirq ...
		var v [7]float64
		for i := range v {
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat: %w", err)
			}
			v[i] = float64(n) / tick
		}
		out[f[0]] = cpuTimes{softirq: v[6], idle: v[3] + v[4], busy: v[0] + v[1] + v[2] + v[5]}
	}
	if _, ok := out["cpu"]; !ok {
		return nil, errors.New("no cpu line in /proc/stat")
	}
	return out, nil
}

// selfCPU returns the CPU time this process (the load generator) has used,
// user and system, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// clockTick returns the number of clock ticks per second in which
// /proc/PID/stat counts CPU time: AT_CLKTCK in the auxiliary vector,
// or 100 if it cannot be read.
func clockTick() float64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	for ; len(b) >= 16; b = b[16:] {
		if binary.NativeEndian.Uint64(b) == atClkTck {
			if v := binary.NativeEndian.Uint64(b[8:]); v > 0 {
				return float64(v)
			}
		}
	}
	return 100
}

// cpusAllowed returns the CPUs this process may run on, as
// /proc/self/status lists them ("1", "0-1").
func cpusAllowed() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// noFileSlack is how many files a process needs open besides its
// connections.
const noFileSlack = 1000

// raiseNoFile raises the limit on open files, for this process and the
// servers it starts, to at least n.
func raiseNoFile(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= n {
		return nil
	}
	hard := lim.Max
	lim.Cur = n
	lim.Max = max(lim.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("this many idle connections need %d open files per process, over the hard limit of %d (ulimit -Hn), which this process cannot raise (%v; it needs CAP_SYS_RESOURCE): at most %d idle connections can be measured here",
			n, hard, err, hard-noFileSlack)
	}
	return nil
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
