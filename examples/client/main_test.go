package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/examples/internal/cmdtest"
)

// clientPath is the client, built once for all the tests, which run it
// as a process.
var clientPath string

// TestMain builds the client (with the race detector when the tests have
// it) and fails the run when goroutines outlive the tests.
func TestMain(m *testing.M) { cmdtest.Main(m, raceEnabled, &clientPath) }

// wait bounds every wait of the tests.
const wait = 10 * time.Second

// client is a running client process.
type client struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr cmdtest.Output
	exited         chan struct{} // closed once the process has exited
}

// startClient runs the client with args. It is killed when the test ends
// if it has not exited by then.
func startClient(t *testing.T, args ...string) *client {
	t.Helper()
	return startClientTo(t, nil, args...)
}

// startClientTo is startClient with the client's standard output going
// to stdout, if not nil, rather than to cl.stdout.
func startClientTo(t *testing.T, stdout *os.File, args ...string) *client {
	t.Helper()
	cl := &client{cmd: exec.Command(clientPath, args...), exited: make(chan struct{})}
	// The race detector sleeps a second before a clean exit, by default.
	cl.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	cl.cmd.Stdout = &cl.stdout
	if stdout != nil {
		cl.cmd.Stdout = stdout
	}
	cl.cmd.Stderr = &cl.stderr
	var err error
	if cl.stdin, err = cl.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cl.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cl.cmd.Wait()
		close(cl.exited)
	}()
	t.Cleanup(func() {
		cl.cmd.Process.Kill()
		<-cl.exited
	})
	return cl
}

// send writes s to the client's standard input.
func (cl *client) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(cl.stdin, s); err != nil {
		t.Fatalf("writing to the client: %v", err)
	}
}

// exitCode waits up to d for the client to exit and returns its exit code.
func (cl *client) exitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-cl.exited:
		return cl.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("client still running after %v; stderr:\n%s", d, cl.stderr.String())
		return 0
	}
}

// waitFor waits until s appears in o, which the client writes to.
func (cl *client) waitFor(t *testing.T, o *cmdtest.Output, s string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !strings.Contains(o.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q from the client after %v; stdout:\n%s\nstderr:\n%s", s, wait, cl.stdout.String(), cl.stderr.String())
		}
		select {
		case <-cl.exited:
			if !strings.Contains(o.String(), s) {
				t.Fatalf("client exited without writing %q; stdout:\n%s\nstderr:\n%s", s, cl.stdout.String(), cl.stderr.String())
			}
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// startServer serves WebSocket connections on a loopback port, accepted
// with opts and handed to handle, and returns the ws:// URL.
func startServer(t *testing.T, opts *websocket.AcceptOptions, handle func(c *websocket.Conn, r *http.Request)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		handle(c, r)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// echo sends each message back until reading fails, and returns the error
// that ended it.
func echo(c *websocket.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			return err
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return err
		}
	}
}

// receive returns the next value from ch, waiting at most wait.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("nothing from the server after %v", wait)
		panic("unreachable")
	}
}

// checkClose checks that err, which ended a server's read, is the client's
// close frame with code and no reason.
func checkClose(t *testing.T, err error, code websocket.StatusCode) {
	t.Helper()
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce != (websocket.CloseError{Code: code}) || errors.Is(err, websocket.ErrClosed) {
		t.Errorf("server's read ended with %v, want the client's close frame with %v", err, code)
	}
}

func TestEchoesLines(t *testing.T) {
	t.Parallel()
	ended := make(chan error, 1)
	url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) { ended <- echo(c) })
	cl := startClient(t, url)
	// The long line is longer than a bufio.Scanner takes by default; the
	// last has no newline. A line that is not UTF-8 (Latin-1 here) goes
	// as text with U+FFFD for its bad bytes.
	long := strings.Repeat("0123456789", 7000)
	cl.send(t, "hello\nhéllo wörld\ncaf\xe9 cr\xe8me\n\n"+long+"\r\nlast")
	cl.stdin.Close()
	if code := cl.exitCode(t, wait); code != 0 {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
	}
	if got, want := cl.stdout.String(), "hello\nhéllo wörld\ncaf\uFFFD cr\uFFFDme\n\n"+long+"\nlast\n"; got != want {
		t.Errorf("stdout %.100q (%d bytes), want %.100q (%d bytes)", got, len(got), want, len(want))
	}
	if got, want := cl.stderr.String(), "connected to "+url+"\nwebsocket: close 1000 (normal closure)\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	checkClose(t, receive(t, ended), websocket.StatusNormalClosure)
}

func TestPrintsBinaryMessages(t *testing.T) {
	t.Parallel()
	url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c.Write(ctx, websocket.MessageBinary, []byte("\x00\x01\xfe\xff"))
		c.Write(ctx, websocket.MessageBinary, nil)
		c.Write(ctx, websocket.MessageText, []byte("text"))
		echo(c)
	})
	cl := startClient(t, url)
	cl.stdin.Close()
	if code := cl.exitCode(t, wait); code != 0 {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
	}
	if got, want := cl.stdout.String(), "binary (4 bytes): 0001feff\nbinary (0 bytes): \ntext\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

// TestSignalsCloseNormally checks that SIGINT and SIGTERM close the
// connection with 1000 and end the client with 0.
func TestSignalsCloseNormally(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			ended := make(chan error, 1)
			url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) { ended <- echo(c) })
			cl := startClient(t, url)
			cl.send(t, "hi\n")
			cl.waitFor(t, &cl.stdout, "hi\n")
			if err := cl.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := cl.exitCode(t, wait); code != 0 {
				t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
			}
			checkClose(t, receive(t, ended), websocket.StatusNormalClosure)
		})
	}
}

// TestServerCloses checks the exit code and report of a close the server
// begins.
func TestServerCloses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		code websocket.StatusCode
		exit int
	}{
		{websocket.StatusNormalClosure, 0},
		{websocket.StatusGoingAway, 0},
		{websocket.StatusInternalError, 1},
		{4000, 1},
	} {
		t.Run(fmt.Sprint(int(tt.code)), func(t *testing.T) {
			t.Parallel()
			closed := make(chan error, 1)
			url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				c.Read(ctx)
				closed <- c.Close(tt.code, "bye")
			})
			cl := startClient(t, url)
			cl.send(t, "hi\n") // and standard input stays open
			if code := cl.exitCode(t, wait); code != tt.exit {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.exit, cl.stderr.String())
			}
			want := fmt.Sprintf("websocket: close %v: bye\n", tt.code)
			if got := cl.stderr.String(); !strings.HasSuffix(got, want) {
				t.Errorf("stderr %q, want it to end with %q", got, want)
			}
			if err := receive(t, closed); err != nil {
				t.Errorf("server's Close: %v, want the client's answer", err)
			}
		})
	}
}

// TestHandshakeFlags checks that the server sees what -H, -origin and
// -subprotocol ask for.
func TestHandshakeFlags(t *testing.T) {
	t.Parallel()
	type seen struct {
		header      http.Header
		subprotocol string
	}
	seens := make(chan seen, 1)
	url := startServer(t, &websocket.AcceptOptions{
		Subprotocols:   []string{"chat", "superchat"},
		OriginPatterns: []string{"example.com"},
	}, func(c *websocket.Conn, r *http.Request) {
		seens <- seen{r.Header, c.Subprotocol()}
		echo(c)
	})
	cl := startClient(t,
		"-H", "Authorization: Bearer t0ken",
		"-H", "X-Two:1", "-H", "x-two:  2 ",
		"-origin", "https://example.com",
		"-subprotocol", "superchat", "-subprotocol", "chat",
		url)
	cl.stdin.Close()
	if code := cl.exitCode(t, wait); code != 0 {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
	}
	s := receive(t, seens)
	for _, h := range []struct {
		name string
		want []string
	}{
		{"Authorization", []string{"Bearer t0ken"}},
		{"X-Two", []string{"1", "2"}},
		{"Origin", []string{"https://example.com"}},
		{"Sec-WebSocket-Protocol", []string{"superchat, chat"}},
	} {
		if got := s.header.Values(h.name); !slices.Equal(got, h.want) {
			t.Errorf("server saw %s %q, want %q", h.name, got, h.want)
		}
	}
	// The server chooses by its own preference.
	if s.subprotocol != "chat" {
		t.Errorf("subprotocol %q, want chat", s.subprotocol)
	}
	if want := "connected to " + url + ", subprotocol chat\n"; !strings.HasPrefix(cl.stderr.String(), want) {
		t.Errorf("stderr %q, want it to start with %q", cl.stderr.String(), want)
	}
}

// TestCompressionFlag checks what each -compression offers, what a server
// that takes any offer settles, and that messages come through intact.
func TestCompressionFlag(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		mode    string
		offered bool
		settled string // the server's Sec-WebSocket-Extensions
	}{
		{"off", false, ""},
		{"no-takeover", true, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"takeover", true, "permessage-deflate"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			offers := make(chan string, 1)
			url := startServer(t, &websocket.AcceptOptions{Compression: websocket.CompressionContextTakeover},
				func(c *websocket.Conn, r *http.Request) {
					offers <- r.Header.Get("Sec-WebSocket-Extensions")
					echo(c)
				})
			cl := startClient(t, "-compression", tt.mode, url)
			msg := strings.Repeat("all work and no play makes jack a dull boy. ", 500)
			cl.send(t, msg+"\n"+msg+"!\n")
			cl.stdin.Close()
			if code := cl.exitCode(t, wait); code != 0 {
				t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
			}
			if got, want := cl.stdout.String(), msg+"\n"+msg+"!\n"; got != want {
				t.Errorf("stdout %.40q (%d bytes), want %.40q (%d bytes)", got, len(got), want, len(want))
			}
			if offer := receive(t, offers); strings.HasPrefix(offer, "permessage-deflate") != tt.offered {
				t.Errorf("offer %q; want one: %v", offer, tt.offered)
			}
			want := "connected to " + url + "\n"
			if tt.settled != "" {
				want = "connected to " + url + ", extensions " + tt.settled + "\n"
			}
			if got := cl.stderr.String(); !strings.HasPrefix(got, want) {
				t.Errorf("stderr %q, want it to start with %q", got, want)
			}
		})
	}
}

// TestInterval checks that -interval sends the time at that interval.
func TestInterval(t *testing.T) {
	t.Parallel()
	const interval = 100 * time.Millisecond
	got := make(chan []string, 1)
	url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		var msgs []string
		for range 3 {
			_, p, err := c.Read(ctx)
			if err != nil {
				break
			}
			msgs = append(msgs, string(p))
			c.Write(ctx, websocket.MessageText, p)
		}
		got <- msgs
		c.Close(websocket.StatusNormalClosure, "enough")
	})
	cl := startClient(t, "-interval", interval.String(), url) // standard input stays open
	msgs := receive(t, got)
	if code := cl.exitCode(t, wait); code != 0 {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
	}
	if len(msgs) != 3 {
		t.Fatalf("server read %q, want 3 messages", msgs)
	}
	var prev time.Time
	for _, m := range msgs {
		ts, err := time.Parse(time.RFC3339Nano, m)
		if err != nil {
			t.Fatalf("message %q is not a time: %v", m, err)
		}
		if gap := ts.Sub(prev); !prev.IsZero() && (gap < interval/2 || gap > 10*interval) {
			t.Errorf("%v between messages %q, want about %v", gap, msgs, interval)
		}
		prev = ts
	}
	if got, want := cl.stdout.String(), strings.Join(msgs, "\n")+"\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

// TestReconnect checks that -reconnect dials again after the connection is
// lost, that a line typed meanwhile is sent once it is back, and that the
// end of input then ends the client.
func TestReconnect(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	ended := make(chan error, 1)
	url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		if conns.Add(1) == 1 {
			// Echo one message, then drop the connection without a
			// close frame.
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if typ, p, err := c.Read(ctx); err == nil {
				c.Write(ctx, typ, p)
			}
			return
		}
		ended <- echo(c)
	})
	cl := startClient(t, "-reconnect", url)
	cl.send(t, "one\n")
	cl.waitFor(t, &cl.stderr, "reconnecting in ")
	cl.send(t, "two\n")
	cl.stdin.Close()
	if code := cl.exitCode(t, wait); code != 0 {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
	}
	if got, want := cl.stdout.String(), "one\ntwo\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	checkClose(t, receive(t, ended), websocket.StatusNormalClosure)
	stderr := cl.stderr.String()
	if n := strings.Count(stderr, "connected to "+url+"\n"); n != 2 || !strings.Contains(stderr, "websocket: connection lost") {
		t.Errorf("stderr %q, want two connections, and the first lost", stderr)
	}
}

// TestReconnectEndsWithInput checks that the end of input stops a client
// that cannot reconnect, with exit code 1.
func TestReconnectEndsWithInput(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 1 {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if c, err := websocket.Accept(w, r, nil); err == nil {
			c.CloseNow()
		}
	}))
	defer srv.Close()
	cl := startClient(t, "-reconnect", "ws"+strings.TrimPrefix(srv.URL, "http"))
	cl.waitFor(t, &cl.stderr, "503 Service Unavailable")
	cl.stdin.Close()
	if code := cl.exitCode(t, wait); code != 1 {
		t.Errorf("exit code %d, want 1; stderr:\n%s", code, cl.stderr.String())
	}
	stderr := cl.stderr.String()
	if want := "reconnecting in "; strings.Count(stderr, want) < 2 {
		t.Errorf("stderr %q, want %q at least twice", stderr, want)
	}
	// The server's reason, once.
	if want := "503 Service Unavailable\", not 101 Switching Protocols: \"down for maintenance\"\n"; strings.Count(stderr, want) < 1 || strings.Count(stderr, "down for maintenance") != strings.Count(stderr, want) {
		t.Errorf("stderr %q, want the server's reason once a line, %q", stderr, want)
	}
	if want := "not reconnected: end of input\n"; !strings.HasSuffix(stderr, want) {
		t.Errorf("stderr %q, want it to end with %q", stderr, want)
	}
}

// TestReconnectAfterGoingAway: with -reconnect, a server that closes with
// 1001 (going away), as one restarting does, is dialed again, and a line
// typed meanwhile is sent once it is back. The client ended, exit code 0,
// though it had more to send.
func TestReconnectAfterGoingAway(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	ended := make(chan error, 1)
	url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		if conns.Add(1) == 1 {
			c.Close(websocket.StatusGoingAway, "restarting")
			return
		}
		ended <- echo(c)
	})
	cl := startClient(t, "-reconnect", url)
	cl.waitFor(t, &cl.stderr, "reconnecting in ")
	cl.send(t, "after the restart\n")
	cl.stdin.Close()
	if code := cl.exitCode(t, wait); code != 0 {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
	}
	if got, want := cl.stdout.String(), "after the restart\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	checkClose(t, receive(t, ended), websocket.StatusNormalClosure)
	if stderr := cl.stderr.String(); strings.Count(stderr, "connected to "+url+"\n") != 2 || !strings.Contains(stderr, "close 1001 (going away): restarting") {
		t.Errorf("stderr %q, want two connections, the first closed with 1001", stderr)
	}
}

// TestGoingAwayThenEndOfInput: with -reconnect, a server's 1001 (going
// away) after every line was sent, and the input ending while the client
// waits to dial again: nothing went wrong and nothing is unsent, and the
// client ends with 0, as without -reconnect. It ended with 1 ("not
// reconnected: end of input"), a case the exit-code table did not name.
func TestGoingAwayThenEndOfInput(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	url := startServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		if conns.Add(1) > 1 {
			echo(c)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if typ, p, err := c.Read(ctx); err == nil {
			c.Write(ctx, typ, p)
		}
		c.Close(websocket.StatusGoingAway, "restarting")
	})
	cl := startClient(t, "-reconnect", url)
	cl.send(t, "the only line\n")
	cl.waitFor(t, &cl.stdout, "the only line\n")
	cl.waitFor(t, &cl.stderr, "reconnecting in ")
	cl.stdin.Close()
	if code := cl.exitCode(t, wait); code != 0 {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, cl.stderr.String())
	}
}
