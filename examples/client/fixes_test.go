package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
)

// TestEmptyCloseIsClean: a server's close frame with no code, as a peer
// that answers our close, or closes, without one sends, ends the client
// with exit code 0, whichever side began the closing handshake.
func TestEmptyCloseIsClean(t *testing.T) {
	t.Parallel()
	for _, first := range []string{"server", "client"} {
		t.Run(first, func(t *testing.T) {
			t.Parallel()
			url := hostileServer(t, func(t *testing.T, nc net.Conn, key string) {
				if first == "server" {
					upgrade("", "\x88\x00", 0)(t, nc, key)
				} else {
					upgrade("", "", websocket.StatusNormalClosure)(t, nc, key)
				}
				nc.Write([]byte("\x88\x00"))
			})
			cl := startClient(t, url)
			if first == "client" {
				cl.stdin.Close()
			}
			if code := cl.exitCode(t, wait); code != 0 {
				t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
			}
			if want := "websocket: close 1005 (no status received)\n"; !strings.HasSuffix(cl.stderr.String(), want) {
				t.Errorf("stderr %q, want it to end with %q", cl.stderr.String(), want)
			}
		})
	}
}

// TestInputErrorExits1: a line past 1 MiB ends the input early; the client
// closes normally, says the rest was not sent, and exits with 1.
func TestInputErrorExits1(t *testing.T) {
	t.Parallel()
	url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) { echo(c) })
	cl := startClient(t, url)
	cl.send(t, "before\n")
	cl.waitFor(t, &cl.stdout, "before\n")
	go func() {
		cl.stdin.Write([]byte(strings.Repeat("a", maxLine+10) + "\nafter\n"))
		cl.stdin.Close()
	}()
	if code := cl.exitCode(t, wait); code != 1 {
		t.Errorf("exit code %d, want 1; stderr:\n%s", code, cl.stderr.String())
	}
	if got := cl.stdout.String(); got != "before\n" {
		t.Errorf("stdout %q, want the line before the long one alone", got)
	}
	if want := "reading standard input: a line longer than 1048576 bytes; the rest was not sent\n"; !strings.Contains(cl.stderr.String(), want) {
		t.Errorf("stderr %q, want %q", cl.stderr.String(), want)
	}
}

// TestInputLineOfMaxLine: a line of exactly 1 MiB, ended by "\n" or
// "\r\n", is sent, and the client exits with 0; it was refused as "longer
// than 1048576 bytes", a Scanner's buffer of 1 MiB having no room for the
// line's end.
func TestInputLineOfMaxLine(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"\n", "\r\n"} {
		url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) { echo(c) })
		cl := startClient(t, url)
		line := strings.Repeat("a", maxLine)
		go func() {
			cl.stdin.Write([]byte(line + end))
			cl.stdin.Close()
		}()
		if code := cl.exitCode(t, wait); code != 0 {
			t.Errorf("line end %q: exit code %d, want 0; stderr:\n%s", end, code, cl.stderr.String())
		}
		if got := cl.stdout.String(); got != line+"\n" {
			t.Errorf("line end %q: stdout of %d bytes, want the line echoed, %d", end, len(got), len(line)+1)
		}
	}
}

// TestReconnectBacksOff: a server that accepts each handshake and closes
// at once with 1013 (try again later) is dialed ever more slowly: the
// waits double from one connection to the next, where each started from
// firstRetry again.
func TestReconnectBacksOff(t *testing.T) {
	t.Parallel()
	url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		c.Close(websocket.StatusTryAgainLater, "busy")
	})
	cl := startClient(t, "-reconnect", url)
	defer cl.stdin.Close()
	re := regexp.MustCompile(`reconnecting in ([0-9.]+m?s)\n`)
	deadline := time.Now().Add(wait)
	for len(re.FindAllString(cl.stderr.String(), -1)) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	waits := re.FindAllStringSubmatch(cl.stderr.String(), -1)
	if len(waits) < 3 {
		t.Fatalf("stderr %q, want three reconnections", cl.stderr.String())
	}
	for i, m := range waits[:3] {
		d, err := time.ParseDuration(m[1])
		if low := firstRetry / 2 << i; err != nil || d < low {
			t.Errorf("wait %d: %s, want at least %v; stderr:\n%s", i+1, m[1], low, cl.stderr.String())
		}
	}
	if n := strings.Count(cl.stderr.String(), "close 1013 (try again later): busy"); n < 3 {
		t.Errorf("stderr %q, want the server's 1013 each time", cl.stderr.String())
	}
}

// TestFlagValues: -http2=false dials over HTTP/1.1, as no -http2 does; a
// password in the URL is not shown.
func TestFlagValues(t *testing.T) {
	t.Parallel()
	url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) { echo(c) })
	withPassword := strings.Replace(url, "ws://", "ws://user:secret@", 1)
	cl := startClient(t, "-http2=false", withPassword)
	cl.send(t, "hi\n")
	cl.stdin.Close()
	if code := cl.exitCode(t, wait); code != 0 {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
	}
	if got := cl.stdout.String(); got != "hi\n" {
		t.Errorf("stdout %q, want hi", got)
	}
	stderr := cl.stderr.String()
	if want := "connected to " + strings.Replace(url, "ws://", "ws://user:xxxxx@", 1) + "\n"; !strings.HasPrefix(stderr, want) || strings.Contains(stderr, "secret") {
		t.Errorf("stderr %q, want it to start with %q, and no password", stderr, want)
	}
}

// TestBadArguments: a flag value out of range, a missing URL, an
// argument after the URL (where flag stops reading flags), and a URL
// that is none, or not a WebSocket server's, are named, with exit code
// 2. The second two printed the usage alone; the last three exited with
// 1, as a handshake that failed does.
func TestBadArguments(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ args, want string }{
		{"-interval -1s ws://127.0.0.1:1/", "-interval must not be negative\n"},
		{"-handshake-timeout 0 ws://127.0.0.1:1/", "-handshake-timeout must be positive\n"},
		{"-insecure", "a URL is needed\n"},
		{"ws://127.0.0.1:1/ -insecure", "unexpected argument \"-insecure\" after the URL: flags go before it\n"},
		{"127.0.0.1:1/ws", "invalid URL: first path segment in URL cannot contain colon\n"},
		{"localhost:1/ws", "URL scheme \"localhost\" is not ws or wss (nor http or https)\n"},
		{"ws://user:secret@/ws", "URL \"ws://user:xxxxx@/ws\" has no host\n"},
	} {
		cl := startClient(t, strings.Fields(tt.args)...)
		if code := cl.exitCode(t, wait); code != 2 {
			t.Errorf("%s: exit code %d, want 2", tt.args, code)
		}
		if !strings.HasPrefix(cl.stderr.String(), tt.want+"usage: client") {
			t.Errorf("%s: stderr %q, want it to start with %q and the usage", tt.args, cl.stderr.String(), tt.want)
		}
	}
}

// TestBlockedWrite: a message that a server reading nothing leaves
// blocked ends the client with 1 and a line that says so, whether Ctrl-C
// or the write timeout ends it: not the read side's "connection closed:
// write: ..., cutting a frame short".
func TestBlockedWrite(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"signal", "timeout"} {
		t.Run(end, func(t *testing.T) {
			t.Parallel()
			held := make(chan struct{})
			url := hostileServer(t, func(t *testing.T, nc net.Conn, key string) {
				upgrade("", "", 0)(t, nc, key)
				<-held // read nothing until the test ends
			})
			defer close(held)
			cl := startClient(t, url)
			cl.waitFor(t, &cl.stderr, "connected to")
			var taken atomic.Int64 // bytes of standard input the client took
			go func() {
				line := []byte(strings.Repeat("a", 512<<10) + "\n")
				for range 64 { // 32 MiB: more than loopback's buffers hold
					// In pieces, so that taken follows the client's reads.
					for p := line; len(p) > 0; {
						n, err := cl.stdin.Write(p[:min(len(p), 32<<10)])
						taken.Add(int64(n))
						if err != nil {
							return
						}
						p = p[n:]
					}
				}
			}()
			// The client's write is blocked once it stops taking its
			// input. A fixed second was too short on a loaded machine:
			// a signal between two writes then found the socket full
			// and waited out the close timeout for the close frame, and
			// the write timeout, counted from the blocked write's start,
			// came past a bound counted from here.
			awaitBlocked(t, &taken)
			want := "\na message could not be sent within 10s, the server taking nothing: closed without a closing handshake\n"
			d := writeTimeout + 5*time.Second
			if end == "signal" {
				if err := cl.cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
				want = "\ninterrupted while sending a message the server was not taking: closed without a closing handshake\n"
				d = 3 * time.Second
			}
			if code := cl.exitCode(t, d); code != 1 {
				t.Errorf("exit code %d, want 1; stderr:\n%s", code, cl.stderr.String())
			}
			if !strings.HasSuffix(cl.stderr.String(), want) {
				t.Errorf("stderr %q, want it to end with %q", cl.stderr.String(), want)
			}
		})
	}
}

// awaitBlocked waits until taken, the bytes of standard input the client
// took, stops growing for half a second: its message write is then
// blocked on a server that reads nothing.
func awaitBlocked(t *testing.T, taken *atomic.Int64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	last, since := taken.Load(), time.Now()
	for {
		time.Sleep(50 * time.Millisecond)
		if n := taken.Load(); n != last {
			last, since = n, time.Now()
		} else if n > 0 && time.Since(since) >= 500*time.Millisecond {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client still takes its input after %v: %d bytes", wait, last)
		}
	}
}

// TestReconnectNotAfterInputEnds: with -reconnect, a server that does not
// answer the close sent at the end of input ends the client with 1 and
// that reason last: there is nothing more to send. It said "reconnecting
// in ...", then "not reconnected: end of input".
func TestReconnectNotAfterInputEnds(t *testing.T) {
	t.Parallel()
	url := hostileServer(t, func(t *testing.T, nc net.Conn, key string) {
		io.WriteString(nc, switching(key)+"\r\n")
		io.Copy(io.Discard, nc)
	})
	cl := startClient(t, "-reconnect", url)
	cl.stdin.Close()
	if code := cl.exitCode(t, closeTimeout+wait); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if stderr, want := cl.stderr.String(), "no answer to our close frame within 5s\n"; !strings.HasSuffix(stderr, want) || strings.Contains(stderr, "reconnect") {
		t.Errorf("stderr %q, want it to end with %q, and no reconnection", stderr, want)
	}
}

// TestEscapesControlCharacters: a text message is printed with its C0
// controls but newline and tab, DEL, and its C1 controls in Go's escapes,
// the rest as it came, non-ASCII included; -raw prints it as it came. The
// client printed every byte as it came, and a server could retitle the
// terminal, clear the screen or move the cursor.
func TestEscapesControlCharacters(t *testing.T) {
	t.Parallel()
	// An OSC title, a screen clear and cursor home, CR, BS, NUL, DEL, NEL
	// and an 8-bit CSI, among text that stays as it is.
	const msg = "title\x1b]0;owned\a\x1b[2J\x1b[Hcleared\r\b\x00\x7f|\u0085|\u009b1m|é 日本\ttab\\x1b\nline 2"
	for _, tt := range []struct {
		name   string
		args   []string
		stdout string
	}{
		{"escaped", nil, `title\x1b]0;owned\a\x1b[2J\x1b[Hcleared\r\b\x00\x7f|\u0085|\u009b1m|` + "é 日本\ttab\\x1b\nline 2\n"},
		{"raw", []string{"-raw"}, msg + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				c.Write(ctx, websocket.MessageText, []byte(msg))
				echo(c)
			})
			cl := startClient(t, append(tt.args, url)...)
			cl.stdin.Close()
			if code := cl.exitCode(t, wait); code != 0 {
				t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
			}
			if got := cl.stdout.String(); got != tt.stdout {
				t.Errorf("stdout %q, want %q", got, tt.stdout)
			}
		})
	}
}

// TestStdoutClosed: a message that cannot be printed, standard output's
// reader gone as in "client URL | head -1", ends the client with a close
// frame of 1001 (going away), a line on standard error that says why, and
// exit code 1. Go's default for a write to a broken pipe on fd 1 killed
// the client with SIGPIPE, and the server saw the connection dropped.
func TestStdoutClosed(t *testing.T) {
	t.Parallel()
	readerGone := make(chan struct{})
	ended := make(chan error, 1)
	url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c.Write(ctx, websocket.MessageText, []byte("first"))
		select {
		case <-readerGone:
		case <-ctx.Done():
		}
		c.Write(ctx, websocket.MessageText, []byte("second"))
		ended <- echo(c)
	})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cl := startClientTo(t, w, url) // standard input stays open
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	// A process that another test starts meanwhile holds a copy of r
	// from its fork to its exec, and while it does, the client's write
	// to the pipe succeeds. Forks hold syscall.ForkLock until the child
	// has exec'd (closing its close-on-exec copies): under it, no copy is
	// left, and none is made of r once closed.
	syscall.ForkLock.Lock()
	r.Close()
	syscall.ForkLock.Unlock()
	close(readerGone)
	if line != "first\n" {
		t.Fatalf("read %q, %v from the client's standard output; want the first message", line, err)
	}
	checkClose(t, receive(t, ended), websocket.StatusGoingAway)
	if code := cl.exitCode(t, wait); code != 1 {
		t.Errorf("exit code %d, want 1; stderr:\n%s", code, cl.stderr.String())
	}
	want := "connected to " + url + "\nwrite /dev/stdout: " + syscall.EPIPE.Error() + "; connection closed\n"
	if got := cl.stderr.String(); got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
}
