// Package proc runs the child processes of the benchmark commands, the
// servers they measure and the clients they drive, and ends them all when
// a command ends, however it ends.
//
// A child speaks to its parent on its standard output, one line at a
// time: the address it listens on, then the answers to the signals it is
// sent. It exits when its standard input ends, which is how Stop asks it
// to, and how it learns that its parent has died.
package proc

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopWait is how long Stop waits for a child to exit once its standard
// input is closed, before killing it.
const stopWait = 5 * time.Second

// Child is a process that Start started. Its methods may be called from
// any goroutine, but Line and Ask from one at a time.
type Child struct {
	name   string         // as errors name it: "the ours server"
	cmd    *exec.Cmd      // immutable once started
	stdin  io.WriteCloser // closed by Stop
	lines  chan string    // its standard output, line by line; closed at its end
	exited chan struct{}  // closed once the process has ended
	err    error          // how it ended, valid once exited is closed
	stderr *limitedWriter // its standard error, kept for errors; nil when passed on
}

// children holds every child started and not yet stopped or killed, so
// that an interrupt, or the end of the command, can end them all.
var children struct {
	sync.Mutex
	m map[*Child]struct{}
}

// Start runs argv as a child named name (as errors name it: "the clients"),
// with env ("NAME=value") added to this process's environment, an entry
// there overriding an inherited one of the same name. The child's
// standard error goes to stderr; if stderr is nil, its first 4 KiB are
// kept instead and quoted in the error that says it exited.
func Start(name string, argv, env []string, stderr io.Writer) (*Child, error) {
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
	c := &Child{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 16), exited: make(chan struct{})}
	cmd.Stderr = stderr
	if stderr == nil {
		c.stderr = &limitedWriter{n: 4 << 10}
		cmd.Stderr = c.stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	children.Lock()
	if children.m == nil {
		children.m = make(map[*Child]struct{})
	}
	children.m[c] = struct{}{}
	children.Unlock()
	go func() {
		// A line that nobody takes, once 16 wait, is dropped: a child
		// that logs on its standard output must not block on it.
		r := bufio.NewReader(stdout)
		for {
			l, err := r.ReadString('\n')
			if l = strings.TrimSuffix(l, "\n"); l != "" || err == nil {
				select {
				case c.lines <- l:
				default:
				}
			}
			if err != nil {
				break
			}
		}
		close(c.lines)
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// String returns the child's name, as Start was given it.
func (c *Child) String() string { return c.name }

// Pid returns the child's process ID.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Exited is closed once the child has ended.
func (c *Child) Exited() <-chan struct{} { return c.exited }

// Wait waits for the child to end and returns how it ended, as
// exec.Cmd.Wait does.
func (c *Child) Wait() error {
	<-c.exited
	return c.err
}

// exitError says that the child has exited, and how, with what it wrote
// on its standard error if that was kept.
func (c *Child) exitError() error {
	msg := c.name + " exited"
	if err := c.Wait(); err != nil {
		msg += " (" + err.Error() + ")"
	}
	if c.stderr != nil {
		if s := strings.TrimSpace(c.stderr.String()); s != "" {
			msg += ": " + s
		}
	}
	return errors.New(msg)
}

// Line waits at most d for the child's next line of output, such as the
// address it prints first.
func (c *Child) Line(d time.Duration) (string, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case l, ok := <-c.lines:
		if !ok {
			return "", c.exitError()
		}
		return l, nil
	case <-t.C:
		return "", fmt.Errorf("%s printed nothing within %v", c.name, d)
	}
}

// Ask sends the child sig and waits at most d for its answer, the first
// line it then prints that starts with prefix; it skips other lines.
func (c *Child) Ask(sig os.Signal, prefix string, d time.Duration) (string, error) {
	if err := c.cmd.Process.Signal(sig); err != nil {
		return "", err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return "", c.exitError()
			}
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-t.C:
			return "", fmt.Errorf("%s did not answer %v within %v", c.name, sig, d)
		}
	}
}

// Sleep waits d, or less if the child exits, which is an error.
func (c *Child) Sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.exited:
		return c.exitError()
	}
}

// Alive returns an error if the child has exited.
func (c *Child) Alive() error {
	select {
	case <-c.exited:
		return c.exitError()
	default:
		return nil
	}
}

// Stop closes the child's standard input, which makes it exit (a server
// writing its profile first), and kills it if it has not exited within
// 5 s. It returns once the child has ended; a second call returns at once.
func (c *Child) Stop() {
	c.stdin.Close()
	t := time.NewTimer(stopWait)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		c.cmd.Process.Kill()
		<-c.exited
	}
	children.Lock()
	delete(children.m, c)
	children.Unlock()
}

// Running returns how many children are running: started, and neither
// stopped nor killed.
func Running() int {
	children.Lock()
	defer children.Unlock()
	return len(children.m)
}

// killAll kills every child still running, and waits for each to end.
func killAll() {
	children.Lock()
	defer children.Unlock()
	for c := range children.m {
		c.cmd.Process.Kill()
		<-c.exited
		delete(children.m, c)
	}
}

// Main runs run, the body of a command named name that starts children,
// and kills every child still running when run returns. If run succeeds,
// Main returns; if it fails with flag.ErrHelp (-h: its flag set has
// printed the usage, as asked), Main exits with status 0, as a command
// whose flags exit on error does; any other error goes to ExitOn.
// An interrupt or SIGTERM kills every child too, and exits with status 1,
// printing "name: signal".
func Main(name string, run func() error) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		killAll()
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, s)
		os.Exit(1)
	}()
	err := run()
	killAll()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	ExitOn(name, err)
}

// ExitOn exits with status 1, printing "name: FAIL: err" on standard
// error, if err is not nil.
func ExitOn(name string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: FAIL: %v\n", name, err)
		os.Exit(1)
	}
}

// RSS returns the child's resident set size in bytes (VmRSS in
// /proc/PID/status).
func (c *Child) RSS() (int64, error) { return RSS(c.Pid()) }

// RSS returns the resident set size in bytes of the process pid (VmRSS
// in /proc/PID/status).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
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

// limitedWriter keeps the first n bytes written to it, for error
// messages, and discards the rest.
type limitedWriter struct {
	mu  sync.Mutex // guards buf and n
	buf strings.Builder
	n   int // bytes it may still keep
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := min(len(b), l.n)
	l.buf.Write(b[:k])
	l.n -= k
	return len(b), nil
}

func (l *limitedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Took rounds the time a run took for its report: to the second from 10
// seconds up, finer below, so that a short run does not read "took 0s".
func Took(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}
