//go:build unix

package proc

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/leakcheck"
)

// envChild, in the test binary's environment, makes it one of the
// children that the tests start instead of the tests.
const envChild = "PROC_TEST_CHILD"

// TestMain lets the test binary be the children that the tests start, and
// fails the tests if goroutines outlive them.
func TestMain(m *testing.M) {
	if kind := os.Getenv(envChild); kind != "" {
		child(kind)
		os.Exit(0)
	}
	os.Exit(leakcheck.Run(m))
}

// child is the body of a child process of the given kind. None runs for
// more than a minute.
func child(kind string) {
	time.AfterFunc(time.Minute, func() { os.Exit(9) })
	switch kind {
	case "echo":
		// A server: its address, then on each SIGUSR1 a line of noise
		// and the answer; it exits when its standard input ends.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGUSR1)
		go func() {
			for range sig {
				fmt.Println("noise")
				fmt.Println("answer 42")
			}
		}()
		fmt.Println("127.0.0.1:1")
		io.Copy(io.Discard, os.Stdin)
	case "deaf":
		// A child that ignores the end of its standard input.
		fmt.Println("ready")
		time.Sleep(time.Minute)
	case "silent":
		io.Copy(io.Discard, os.Stdin)
	case "fail":
		fmt.Fprintln(os.Stderr, "oops")
		os.Exit(3)
	case "chatty":
		// More lines than anyone takes, and than a pipe holds (1.1 MB),
		// then an exit of its own.
		for i := range 100_000 {
			fmt.Println("line", i)
		}
	case "main-ok", "main-term":
		// A command that starts a deaf child, prints its process ID, and
		// returns (or waits for SIGTERM) without stopping it.
		Main("proctest", func() error {
			c, err := Start("the deaf child", []string{os.Args[0]}, []string{envChild + "=deaf"}, nil)
			if err != nil {
				return err
			}
			if _, err := c.Line(10 * time.Second); err != nil {
				return err
			}
			fmt.Println(c.Pid())
			if kind == "main-term" {
				time.Sleep(time.Minute)
			}
			return nil
		})
	case "main-help":
		Main("proctest", func() error { return flag.ErrHelp })
	case "main-fail":
		Main("proctest", func() error { return errors.New("boom") })
	default:
		fmt.Fprintf(os.Stderr, "unknown child %q\n", kind)
		os.Exit(8)
	}
}

// start starts the test binary as a child of the given kind, stopped when
// the test ends.
func start(t *testing.T, kind string) *Child {
	t.Helper()
	c, err := Start("the "+kind+" child", []string{os.Args[0]}, []string{envChild + "=" + kind}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// gone reports whether no process has the given ID, waiting up to 10 s
// for it to go.
func gone(pid int) bool {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, os.ErrNotExist) {
			return true
		}
	}
	return false
}

// running reports whether c is among the children counted as running.
func running(c *Child) bool {
	children.Lock()
	defer children.Unlock()
	_, ok := children.m[c]
	return ok
}
