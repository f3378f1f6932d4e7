package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/internal/godebugtest"
)

// xconnect has Go's HTTP/2 server offer extended CONNECT (RFC 8441).
const xconnect = "http2xconnect=1"

// TestHTTP2Flag runs TestHTTP2FlagOver in a child process whose HTTP/2
// servers offer extended CONNECT.
func TestHTTP2Flag(t *testing.T) {
	t.Parallel()
	godebugtest.Run(t, xconnect, "TestHTTP2FlagOver")
}

// h2Server starts a server that takes WebSockets over HTTP/2, over TLS
// (its certificate made up by httptest) or h2c, and echoes; protos
// receives the protocol of each handshake.
func h2Server(t *testing.T, tls bool, protos chan<- string) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		echo(c)
	}))
	t.Cleanup(srv.Close)
	if tls {
		srv.EnableHTTP2 = true
		srv.StartTLS()
		return "wss" + strings.TrimPrefix(srv.URL, "https")
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// TestHTTP2FlagOver: with -http2 the client talks over HTTP/2, h2 for
// wss:// (with -insecure for the made-up certificate) and h2c for ws://,
// and says so. TestHTTP2Flag runs it.
func TestHTTP2FlagOver(t *testing.T) {
	if !godebugtest.Has(xconnect) {
		t.Skip("needs GODEBUG=" + xconnect + "; TestHTTP2Flag runs it so")
	}
	for _, tls := range []bool{true, false} {
		protos := make(chan string, 1)
		url := h2Server(t, tls, protos)
		args := []string{"-http2", url}
		if tls {
			args = append([]string{"-insecure"}, args...)
		}
		cl := startClient(t, args...)
		cl.stdin.Write([]byte("hello over h2\n"))
		cl.stdin.Close()
		if code := cl.exitCode(t, wait); code != 0 {
			t.Fatalf("%s: exit code %d, want 0; stderr:\n%s", url, code, cl.stderr.String())
		}
		if got := receive(t, protos); got != "HTTP/2.0" {
			t.Errorf("%s: the server saw %s, want HTTP/2.0", url, got)
		}
		if got := cl.stdout.String(); got != "hello over h2\n" {
			t.Errorf("%s: stdout %q, want the echo", url, got)
		}
		if want := "connected to " + url + " over HTTP/2\n"; !strings.HasPrefix(cl.stderr.String(), want) {
			t.Errorf("stderr %q, want it to start with %q", cl.stderr.String(), want)
		}
	}
}

// TestHTTP2FlagUnavailable: with -http2, a server that does not offer
// extended CONNECT (Go's without GODEBUG=http2xconnect=1) is an error
// that says so.
func TestHTTP2FlagUnavailable(t *testing.T) {
	t.Parallel()
	if godebugtest.Has(xconnect) {
		t.Skip("the server offers extended CONNECT here")
	}
	url := h2Server(t, false, make(chan string, 10))
	cl := startClient(t, "-http2", url)
	cl.stdin.Close()
	if code := cl.exitCode(t, wait); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if got := cl.stderr.String(); !strings.Contains(got, "websocket: HTTP/2 unavailable: the server does not offer extended CONNECT") {
		t.Errorf("stderr %q does not say why", got)
	}
}
