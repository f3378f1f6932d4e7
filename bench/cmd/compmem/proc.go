package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process that compmem started: a server or the clients. It
// reports on its standard output, one line at a time, and exits when its
// standard input ends.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string   // its standard output, line by line; closed at its end
	exited chan struct{} // closed once the process has ended
	err    error         // how it ended, valid once exited is closed
	stderr *strings.Builder
}

// children holds every process still running, so that a failure or an
// interrupt can end them all.
var children struct {
	sync.Mutex
	m map[*child]struct{}
}

// start runs argv as a child named name, with env added to this process's
// environment.
func start(name string, argv []string, env ...string) (*child, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &child{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 16), exited: make(chan struct{}), stderr: new(strings.Builder)}
	cmd.Stderr = &limitedWriter{w: p.stderr, n: 4 << 10}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	children.Lock()
	if children.m == nil {
		children.m = make(map[*child]struct{})
	}
	children.m[p] = struct{}{}
	children.Unlock()
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// line waits at most d for the child's next line of output.
func (p *child) line(d time.Duration) (string, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case l, ok := <-p.lines:
		if !ok {
			<-p.exited
			return "", fmt.Errorf("%s exited (%v): %s", p.name, p.err, strings.TrimSpace(p.stderr.String()))
		}
		return l, nil
	case <-t.C:
		return "", fmt.Errorf("%s printed nothing within %v", p.name, d)
	}
}

// sleep waits d, or less if the child exits, which is an error.
func (p *child) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-p.exited:
		return fmt.Errorf("%s exited (%v): %s", p.name, p.err, strings.TrimSpace(p.stderr.String()))
	}
}

// alive returns an error if the child has exited.
func (p *child) alive() error { return p.sleep(0) }

// stop closes the child's standard input, which makes it exit, and kills
// it if it has not exited within 5 s.
func (p *child) stop() {
	p.stdin.Close()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.exited
	}
	children.Lock()
	delete(children.m, p)
	children.Unlock()
}

// killChildren kills every child still running.
func killChildren() {
	children.Lock()
	defer children.Unlock()
	for p := range children.m {
		p.cmd.Process.Kill()
		<-p.exited
		delete(children.m, p)
	}
}

// gcStats is what one of our servers reports after collecting garbage.
type gcStats struct {
	heap   int64 // live heap after two collections
	pooled int64 // more live after the first, held by sync.Pool only
	stacks int64 // goroutine stacks in use
}

// gc asks one of our servers to collect garbage and return free memory,
// and returns what it then reports.
func (p *child) gc() (gcStats, error) {
	var g gcStats
	if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return g, err
	}
	l, err := p.line(30 * time.Second)
	if err != nil {
		return g, err
	}
	if _, err := fmt.Sscanf(l, "gc heap=%d pooled=%d stacks=%d", &g.heap, &g.pooled, &g.stacks); err != nil {
		return g, fmt.Errorf("%s answered %q to SIGUSR1", p.name, l)
	}
	return g, nil
}

// rss returns the child's resident set size in bytes (VmRSS in
// /proc/PID/status).
func (p *child) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// limitedWriter keeps the first n bytes written to it, for error messages.
type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(b), l.n)
		l.w.Write(b[:k])
		l.n -= k
	}
	return len(b), nil
}
