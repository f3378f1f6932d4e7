// Package cmdtest runs the tests of an example command that drive it as
// a process: it builds the command once, and collects what it writes.
// It also holds what the examples' tests check alike of their servers.
package cmdtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// Refused runs the command at path with args, a wrong command line: it
// must exit at once with 2, its output starting with want and going on
// with the usage.
func Refused(t *testing.T, path string, args []string, want string) {
	t.Helper()
	var out Output
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("%q: still running 5 s later; output:\n%s", args, out.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.HasPrefix(out.String(), want+"\nUsage of ") {
		t.Errorf("%q: exit code %d, output %q; want 2, and %q with the usage", args, code, out.String(), want)
	}
}

// IdleClosed fetches the page at pageURL (http://host:port/) on a
// connection of its own, and checks that the server closes that
// connection, left waiting for its next request, once idle has about
// passed, and within 5 s.
func IdleClosed(t *testing.T, pageURL string, idle time.Duration) {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(pageURL, "http://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	nc.SetReadDeadline(start.Add(5 * time.Second))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the idle HTTP connection, %v later: read %d bytes, %v; want it closed by the server", time.Since(start).Round(time.Millisecond), n, err)
	}
	// The server's timer starts as it sends the response, a moment
	// before the response is read here: half the timeout is the bound,
	// which closing at once, not for being idle, would break.
	if took := time.Since(start); took < idle/2 {
		t.Errorf("the idle HTTP connection closed after %v, well before the idle timeout of %v", took, idle)
	}
}
