package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/examples/internal/cmdtest"
	"github.com/rfc6455/websocket/internal/leakcheck"
)

// TestMain fails the run when goroutines outlive the tests: every server,
// connection and browser a test starts must be gone when it ends.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

// startServer runs the example on a free loopback port with the
// compression given and returns its page URL and a function that stops it
// and returns run's error; stop may be called more than once, from any
// goroutine. The server is stopped when the test ends if it was not
// before.
func startServer(t *testing.T, compression websocket.CompressionMode) (url string, stop func() error) {
	t.Helper()
	return startServerWith(t, options{compression: compression}, func(format string, args ...any) { t.Logf(format, args...) })
}

// startServerWith is startServer with all options and a log of the
// caller's.
func startServerWith(t *testing.T, opts options, logf func(format string, args ...any)) (url string, stop func() error) {
	t.Helper()
	opts.addr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, opts, logf, func(url string) { urls <- url })
	}()
	select {
	case url = <-urls:
	case err := <-done:
		cancel()
		t.Fatalf("run: %v", err)
	}
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return url, stop
}

func wsURL(pageURL string) string {
	return "ws" + strings.TrimPrefix(pageURL, "http") + "ws"
}

func dial(t *testing.T, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func TestEchoEndpoint(t *testing.T) {
	t.Parallel()
	page, _ := startServer(t, websocket.CompressionContextTakeover)
	c := dial(t, wsURL(page), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs := []struct {
		typ websocket.MessageType
		p   string
	}{
		{websocket.MessageText, "hello"},
		{websocket.MessageText, "héllo wörld ✓"},
		{websocket.MessageText, ""},
		{websocket.MessageBinary, "\x00\x01\xfe\xff"},
		{websocket.MessageBinary, strings.Repeat("\xa5", 70000)},
	}
	for _, m := range msgs {
		if err := c.Write(ctx, m.typ, []byte(m.p)); err != nil {
			t.Fatalf("Write %v %d bytes: %v", m.typ, len(m.p), err)
		}
		typ, p, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if typ != m.typ || !bytes.Equal(p, []byte(m.p)) {
			t.Errorf("echo of %v %.20q (%d bytes): got %v %.20q (%d bytes)", m.typ, m.p, len(m.p), typ, p, len(p))
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestEchoReadLimit: a message of maxMessage bytes comes back; one a byte
// longer closes the connection with 1009.
func TestEchoReadLimit(t *testing.T) {
	t.Parallel()
	page, _ := startServer(t, websocket.CompressionContextTakeover)
	c := dial(t, wsURL(page), nil)
	c.SetReadLimit(-1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, make([]byte, maxMessage)); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.Read(ctx); err != nil || len(p) != maxMessage {
		t.Fatalf("echo of %d bytes: %d bytes, %v", maxMessage, len(p), err)
	}
	if err := c.Write(ctx, websocket.MessageBinary, make([]byte, maxMessage+1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("Read after a message of %d bytes: %v, want the server's 1009", maxMessage+1, err)
	}
}

// TestEchoCompression checks that the server answers an offer of
// permessage-deflate as its -compression mode says, and that compressed
// messages come back intact.
func TestEchoCompression(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		flag string // the -compression value
		want string // the Sec-WebSocket-Extensions answer to a client's offer
	}{
		{"off", ""},
		{"no-takeover", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"takeover", "permessage-deflate"},
	} {
		t.Run(tt.flag, func(t *testing.T) {
			t.Parallel()
			var mode websocket.CompressionMode
			if err := mode.UnmarshalText([]byte(tt.flag)); err != nil {
				t.Fatal(err)
			}
			page, _ := startServer(t, mode)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, wsURL(page), &websocket.DialOptions{
				Compression: websocket.CompressionContextTakeover,
			})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.CloseNow()
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != tt.want {
				t.Errorf("Sec-WebSocket-Extensions: %q, want %q", got, tt.want)
			}
			for _, msg := range []string{
				strings.Repeat("all work and no play makes jack a dull boy. ", 2500),
				"short",
				strings.Repeat("all work and no play makes jack a dull boy. ", 2500) + "again",
			} {
				if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
					t.Fatalf("Write: %v", err)
				}
				_, p, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				if string(p) != msg {
					t.Errorf("echo of %.20q (%d bytes): got %.20q (%d bytes)", msg, len(msg), p, len(p))
				}
			}
			if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestEchoRefusesOtherOrigin(t *testing.T) {
	t.Parallel()
	page, _ := startServer(t, websocket.CompressionContextTakeover)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(page), &websocket.DialOptions{
		Header: http.Header{"Origin": {"http://evil.example"}},
	})
	if err == nil {
		c.CloseNow()
		t.Fatal("Dial from another origin succeeded, want 403")
	}
	if !errors.Is(err, websocket.ErrHandshake) {
		t.Errorf("Dial error %v does not wrap ErrHandshake", err)
	}
	if resp == nil {
		t.Fatalf("Dial returned no response: %v", err)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d, want %d", resp.StatusCode, http.StatusForbidden)
	}

	// The page's own origin is welcome.
	c = dial(t, wsURL(page), &websocket.DialOptions{
		Header: http.Header{"Origin": {strings.TrimSuffix(page, "/")}},
	})
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestServesPage(t *testing.T) {
	t.Parallel()
	page, _ := startServer(t, websocket.CompressionContextTakeover)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	get := func(url string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	resp, body := get(page)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: status %d, want 200", page, resp.StatusCode)
	}
	if got, want := resp.Header.Get("Content-Type"), "text/html; charset=utf-8"; got != want {
		t.Errorf("GET %s: Content-Type %q, want %q", page, got, want)
	}
	if body != string(indexHTML) {
		t.Errorf("GET %s: body is not index.html (%d bytes, want %d)", page, len(body), len(indexHTML))
	}

	if resp, _ := get(page + "nothing-here"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET an unknown path: status %d, want 404", resp.StatusCode)
	}
	// A plain GET of the endpoint is not a handshake.
	if resp, _ := get(page + "ws"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET /ws: status %d, want 400", resp.StatusCode)
	}
}

func TestShutdownClosesConnections(t *testing.T) {
	t.Parallel()
	page, stop := startServer(t, websocket.CompressionContextTakeover)
	conns := []*websocket.Conn{dial(t, wsURL(page), nil), dial(t, wsURL(page), nil)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A round trip on each makes sure its handler has registered it.
	for _, c := range conns {
		if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			t.Fatalf("Read: %v", err)
		}
	}

	// Read concurrently with stop: each connection's closing handshake
	// needs its client to read the close frame and answer it.
	errs := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			_, _, err := c.Read(ctx)
			errs <- err
		}()
	}
	if err := stop(); err != nil {
		t.Errorf("run after shutdown: %v", err)
	}
	want := websocket.CloseError{Code: websocket.StatusGoingAway, Reason: shutdownReason}
	for range conns {
		err := <-errs
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce != want {
			t.Errorf("Read during shutdown: %v, want %v", err, want)
		}
	}

	// The listener is gone too.
	if _, _, err := websocket.Dial(ctx, wsURL(page), nil); err == nil {
		t.Error("Dial after shutdown succeeded")
	}
}

func TestPageURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ addr, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080/"},
		{"0.0.0.0:8080", "http://localhost:8080/"},
		{"[::]:8080", "http://localhost:8080/"},
		{"[::1]:9", "http://[::1]:9/"},
	} {
		if got := pageURL("http", fakeAddr(tt.addr)); got != tt.want {
			t.Errorf("pageURL(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

// TestIdleConnsClosed: an HTTP connection left waiting for its next
// request is closed after the idle timeout (it stayed open for good: 200
// keep-alive connections that fetched the page were all open 25 s
// later), and a WebSocket as quiet as long is not.
func TestIdleConnsClosed(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	page, _ := startServerWith(t, options{idle: idle}, func(format string, args ...any) { t.Logf(format, args...) })
	c := dial(t, wsURL(page), nil)
	cmdtest.IdleClosed(t, page, idle)
	// The WebSocket, as quiet meanwhile, still echoes.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.Read(ctx); err != nil || string(p) != "still here" {
		t.Fatalf("the WebSocket after the HTTP connection's idle timeout: %q, %v", p, err)
	}
}

// TestFlags: the flags set the options, and an argument that is not a
// flag is an error that says so, with the usage: flag stops at it, and
// the flags after it were silently left unread.
func TestFlags(t *testing.T) {
	t.Parallel()
	parse := func(args ...string) (options, string, error) {
		fs := flag.NewFlagSet("echo", flag.ContinueOnError)
		var out strings.Builder
		fs.SetOutput(&out)
		opts, err := parseFlags(fs, args)
		return opts, out.String(), err
	}
	opts, _, err := parse("-addr", "127.0.0.1:9000", "-compression", "off", "-tls")
	if want := (options{addr: "127.0.0.1:9000", compression: websocket.CompressionDisabled, tls: true}); err != nil || opts != want {
		t.Errorf("options %+v, %v; want %+v", opts, err, want)
	}
	if opts, _, err := parse(); err != nil || opts.addr != "127.0.0.1:8080" || opts.compression != websocket.CompressionContextTakeover || opts.tls {
		t.Errorf("defaults %+v, %v", opts, err)
	}
	_, out, err := parse("127.0.0.1:9000", "-tls")
	if err == nil || !strings.Contains(out, `unexpected argument "127.0.0.1:9000"`) || !strings.Contains(out, "-addr") {
		t.Errorf("an argument that is not a flag: %v, output %q; want an error naming it, and the usage", err, out)
	}
}
