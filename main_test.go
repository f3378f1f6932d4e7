package websocket

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run when goroutines outlive the tests: every Conn,
// server and timer a test starts must be gone when it ends.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n\n%s\n", strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to wait for goroutines other than the test
// runner's own to end, and returns the stacks of those that remain.
func leakedGoroutines(wait time.Duration) []string {
	deadline := time.Now().Add(wait)
	for {
		leaked := interestingGoroutines()
		if len(leaked) == 0 || time.Now().After(deadline) {
			sort.Strings(leaked)
			return leaked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func interestingGoroutines() []string {
	buf := make([]byte, 2<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var gs []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		_, stack, ok := strings.Cut(g, "\n")
		if !ok {
			continue
		}
		switch {
		case stack == "",
			strings.Contains(stack, "testing.(*M).Run"),
			strings.Contains(stack, "testing.RunTests"),
			strings.Contains(stack, "testing.tRunner.func1"),
			strings.Contains(stack, "testing.(*T).Run"),
			strings.Contains(stack, "leakedGoroutines"),
			strings.Contains(stack, "runtime.goexit") && strings.Contains(stack, "runtime/trace"),
			strings.Contains(stack, "os/signal.signal_recv"),
			strings.Contains(stack, "runtime.ensureSigM"),
			strings.Contains(stack, "created by runtime.gc"),
			strings.Contains(stack, "runtime.MHeap_Scavenger"),
			strings.Contains(stack, "testing.(*F).Fuzz"),
			strings.Contains(stack, "internal/fuzz"):
			continue
		}
		gs = append(gs, strings.TrimSpace(g))
	}
	return gs
}
