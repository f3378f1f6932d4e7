// Package cmdtest runs the tests of an example command that drive it as
// a process: it builds the command once, and collects what it writes.
package cmdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rfc6455/websocket/internal/leakcheck"
)

// Main is a TestMain: it builds the command in the current directory
// (with the race detector if race is set, as the tests have it), sets
// *path to it, runs the tests, fails the run when goroutines outlive them
// (leakcheck), removes the command and exits.
func Main(m *testing.M, race bool, path *string) {
	dir, err := os.MkdirTemp("", "cmdtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wd, _ := os.Getwd()
	*path = filepath.Join(dir, filepath.Base(wd))
	args := []string{"build", "-o", *path}
	if race {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "building %s: %v\n%s", *path, err, out)
	} else {
		code = leakcheck.Run(m)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// Output collects what a process writes; it is safe for concurrent use.
type Output struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
