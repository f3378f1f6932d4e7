// Package leakcheck fails a test binary whose goroutines outlive its tests:
// every server, connection, timer and process a test starts must be gone
// when it ends. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Wait is how long Run waits for goroutines to end after the tests.
const Wait = 5 * time.Second

// Run runs the tests and returns the exit code: m.Run's, or 1 when the
// tests passed but goroutines remain after Wait; their stacks go to
// standard error.
func Run(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	if leaked := Leaked(Wait); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "leaked goroutines:\n\n%s\n", strings.Join(leaked, "\n\n"))
		return 1
	}
	return 0
}

// Leaked waits up to wait for every goroutine but the test runner's and the
// runtime's to end, and returns the stacks of those left.
func Leaked(wait time.Duration) []string {
	deadline := time.Now().Add(wait)
	for {
		var leaked []string
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if !runnerGoroutine(g) {
				leaked = append(leaked, strings.TrimSpace(g))
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			slices.Sort(leaked)
			return leaked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runnerGoroutine reports whether the goroutine dump g belongs to the
// testing package or the runtime rather than to a test.
func runnerGoroutine(g string) bool {
	_, stack, ok := strings.Cut(g, "\n")
	if !ok || strings.TrimSpace(stack) == "" {
		return true
	}
	for _, s := range []string{
		"testing.(*M).Run",
		"testing.RunTests",
		"testing.runTests",
		"testing.tRunner.func1",
		"testing.(*T).Run",
		"testing.(*F).Fuzz",
		"internal/fuzz",
		"leakcheck.Leaked",
		"os/signal.signal_recv",
		"os/signal.loop",
		"runtime.ensureSigM",
	} {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}
