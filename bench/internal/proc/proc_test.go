//go:build unix

package proc

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServer runs a child as the commands run a server: it reads its
// address, asks it a question past a line of noise, and stops it.
func TestServer(t *testing.T) {
	t.Parallel()
	c := start(t, "echo")
	if !running(c) {
		t.Error("the child is not counted as running")
	}
	addr, err := c.Line(10 * time.Second)
	if err != nil || addr != "127.0.0.1:1" {
		t.Fatalf("Line: %q, %v; want the address", addr, err)
	}
	for range 3 {
		l, err := c.Ask(syscall.SIGUSR1, "answer ", 10*time.Second)
		if err != nil || l != "answer 42" {
			t.Fatalf("Ask: %q, %v; want %q", l, err, "answer 42")
		}
	}
	if err := c.Alive(); err != nil {
		t.Errorf("Alive: %v", err)
	}
	if err := c.Sleep(10 * time.Millisecond); err != nil {
		t.Errorf("Sleep: %v", err)
	}
	if rss, err := c.RSS(); err != nil || rss < 1<<20 || rss > 1<<30 {
		t.Errorf("RSS: %d, %v; want the size of a Go test binary", rss, err)
	}
	begin := time.Now()
	c.Stop()
	if d := time.Since(begin); d > stopWait/2 {
		t.Errorf("Stop took %v: the child did not exit when its standard input ended", d)
	}
	if err := c.Wait(); err != nil {
		t.Errorf("the child ended with %v, want a clean exit", err)
	}
	if err := c.Alive(); err == nil || err.Error() != "the echo child exited" {
		t.Errorf("Alive after Stop: %v", err)
	}
	if running(c) {
		t.Error("the child is still counted as running after Stop")
	}
	c.Stop() // a second call returns at once
}

// TestStopKills shows that Stop kills a child that does not exit when its
// standard input ends, after stopWait.
func TestStopKills(t *testing.T) {
	t.Parallel()
	c := start(t, "deaf")
	if l, err := c.Line(10 * time.Second); err != nil || l != "ready" {
		t.Fatalf("Line: %q, %v", l, err)
	}
	begin := time.Now()
	c.Stop()
	if d := time.Since(begin); d < stopWait || d > stopWait+5*time.Second {
		t.Errorf("Stop took %v, want %v and a little", d, stopWait)
	}
	if err := c.Wait(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("the child ended with %v, want killed", err)
	}
	if running(c) {
		t.Error("the child is still counted as running after Stop")
	}
}

// TestExitErrors checks what Line, Ask, Sleep and Alive say of a child
// that exits, or says nothing in time.
func TestExitErrors(t *testing.T) {
	t.Parallel()
	c := start(t, "fail")
	want := "the fail child exited (exit status 3): oops"
	if _, err := c.Line(10 * time.Second); err == nil || err.Error() != want {
		t.Errorf("Line: %v, want %q", err, want)
	}
	if err := c.Sleep(time.Minute); err == nil || err.Error() != want {
		t.Errorf("Sleep: %v, want %q", err, want)
	}
	if err := c.Alive(); err == nil || err.Error() != want {
		t.Errorf("Alive: %v, want %q", err, want)
	}
	if _, err := c.Ask(syscall.SIGUSR1, "answer ", 10*time.Second); err == nil || !strings.Contains(err.Error(), "process already finished") {
		t.Errorf("Ask: %v, want the signal refused", err)
	}

	s := start(t, "silent")
	if l, err := s.Line(100 * time.Millisecond); err == nil || err.Error() != "the silent child printed nothing within 100ms" {
		t.Errorf("Line: %q, %v; want a timeout", l, err)
	}
	if l, err := s.Ask(syscall.SIGCONT, "answer ", 100*time.Millisecond); err == nil || err.Error() != "the silent child did not answer continued within 100ms" {
		t.Errorf("Ask: %q, %v; want a timeout", l, err)
	}
}

// TestChatty shows that a child printing lines that nobody takes does not
// block on them: the first 16 wait for Line, the rest are dropped.
func TestChatty(t *testing.T) {
	t.Parallel()
	c := start(t, "chatty")
	select {
	case <-c.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("the child did not exit within 10s: blocked on its standard output")
	}
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range 16 {
		if l, err := c.Line(time.Second); err != nil || l != fmt.Sprint("line ", i) {
			t.Fatalf("Line %d: %q, %v", i, l, err)
		}
	}
	if l, err := c.Line(time.Second); err == nil {
		t.Errorf("Line 16: %q, want the exit", l)
	}
}

// TestMainExits runs commands that use Main and checks how each exits,
// and that the child it leaves running, if any, is killed.
func TestMainExits(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		kind   string
		leaves bool   // it prints the process ID of a child it leaves
		want   string // how it exits
	}{
		{"main-ok", true, ""},
		{"main-term", true, " (exit status 1): proctest: terminated"}, // sent SIGTERM
		{"main-help", false, ""}, // -h: the usage is what was asked for
		{"main-fail", false, " (exit status 1): proctest: FAIL: boom"},
	} {
		c := start(t, tt.kind)
		if tt.leaves {
			l, err := c.Line(10 * time.Second)
			if err != nil {
				t.Fatalf("%s: %v", tt.kind, err)
			}
			pid, err := strconv.Atoi(l)
			if err != nil {
				t.Fatalf("%s: %q is no process ID", tt.kind, l)
			}
			if tt.kind == "main-term" {
				if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			if !gone(pid) {
				t.Errorf("%s: its child %d still runs", tt.kind, pid)
			}
		}
		want := "the " + tt.kind + " child exited" + tt.want
		if l, err := c.Line(10 * time.Second); err == nil || err.Error() != want {
			t.Errorf("%s: %q, %v; want %q", tt.kind, l, err, want)
		}
	}
}

// TestLimitedWriter checks that it keeps the first n bytes and says it
// wrote everything.
func TestLimitedWriter(t *testing.T) {
	w := &limitedWriter{n: 5}
	for _, s := range []string{"ab", "cdef", "gh"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Errorf("Write(%q): %d, %v", s, n, err)
		}
	}
	if got := w.String(); got != "abcde" {
		t.Errorf("kept %q, want %q", got, "abcde")
	}
}

// TestTook checks the rounding of a run's time in reports.
func TestTook(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{24*time.Minute + 4*time.Second + 400*time.Millisecond, "24m4s"},
		{10*time.Second + 600*time.Millisecond, "11s"},
		{3*time.Second + 449*time.Millisecond, "3.4s"},
		{412*time.Millisecond + 300*time.Microsecond, "412ms"},
	} {
		if got := Took(tt.d).String(); got != tt.want {
			t.Errorf("Took(%v) = %s, want %s", tt.d, got, tt.want)
		}
	}
}
