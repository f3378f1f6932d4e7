package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/internal/chromium"
	"github.com/rfc6455/websocket/internal/godebugtest"
)

// TestBrowser has headless Chromium use the page as a person would: open
// a connection, send messages with the Send button and with Enter (one of
// them long), close it, open again and see the server go away; then the
// same with a server that does not compress. It checks only what the page
// shows. The DevTools protocol is spoken over a connection from Dial.
func TestBrowser(t *testing.T) {
	t.Parallel()
	b := chromium.Start(t)
	url, stopServer := startServer(t, websocket.CompressionContextTakeover)
	p := b.Open(url)

	p.WantText("#state", "closed")
	p.WantEnabled("#open", true)
	p.WantEnabled("#send", false)
	p.WantEnabled("#close", false)

	p.WantText("#extensions", "(hidden)")
	p.Click("#open")
	p.WaitText("#state", "open")
	p.WantEnabled("#open", false)
	p.WantEnabled("#send", true)
	p.WantEnabled("#close", true)
	// Chromium offers permessage-deflate; the server takes it.
	p.WantText("#extensions", "permessage-deflate")

	// Type into the input and press the Send button.
	p.Click("#message")
	p.TypeText("hello, browser")
	p.Click("#send")
	p.WaitListed("#log li", "received: hello, browser")
	p.WantValue("#message", "")

	// Enter in the input sends too; the text crosses as UTF-8.
	const accented = "héllo wörld ✓"
	p.Click("#message")
	p.TypeText(accented)
	p.PressEnter()
	p.WaitListed("#log li", "received: "+accented)

	// A long, repetitive message (it shrinks a hundredfold compressed)
	// comes back intact.
	long := strings.Repeat("all work and no play makes jack a dull boy. ", 2500) + "the end"
	p.Click("#message")
	p.TypeText(long)
	p.Click("#send")
	p.WaitListed("#log li", "received: "+long)

	p.Click("#close")
	p.WaitText("#state", "closed")
	p.WantText("#close-code", "1000")
	p.WantText("#was-clean", "true")
	p.WantEnabled("#open", true)
	p.WantEnabled("#send", false)
	p.WantEnabled("#close", false)

	endpoint := wsURL(url)
	wantLog := []string{
		"info: connecting to " + endpoint,
		"info: open",
		"sent: hello, browser",
		"received: hello, browser",
		"sent: " + accented,
		"received: " + accented,
		"sent: " + long,
		"received: " + long,
		"info: closed",
	}
	if got := p.Texts("#log li"); !slices.Equal(got, wantLog) {
		t.Errorf("log shows\n\t%q\nwant\n\t%q", chromium.Abbreviate(got), chromium.Abbreviate(wantLog))
	}

	seeServerGoAway(t, p, stopServer)

	// Without compression on the server, the page says so.
	url, _ = startServer(t, websocket.CompressionDisabled)
	p = b.Open(url)
	p.Click("#open")
	p.WaitText("#state", "open")
	p.WantText("#extensions", "none")
	p.Click("#message")
	p.TypeText(long)
	p.PressEnter()
	p.WaitListed("#log li", "received: "+long)
	p.Click("#close")
	p.WaitText("#state", "closed")
	p.WantText("#close-code", "1000")

	// Chromium's DevTools server answers a closing handshake too. Close
	// ends the connection whatever happens.
	c := b.Dial()
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Errorf("closing a DevTools connection: %v", err)
	}
}

// TestBrowserHTTP2 runs TestBrowserOverHTTP2 in a child process started
// with GODEBUG=http2xconnect=1, under which Go's HTTP/2 server offers
// WebSockets over HTTP/2, and fails unless it passed there.
func TestBrowserHTTP2(t *testing.T) {
	t.Parallel()
	godebugtest.Run(t, xconnect, "TestBrowserOverHTTP2")
}

// TestBrowserOverHTTP2 has headless Chromium load the page over HTTP/2
// (from the server with -tls) and use the echo endpoint, which Chromium
// then reaches over the same HTTP/2 connection (RFC 8441): the server's
// log must say so. TestBrowserHTTP2 runs it.
func TestBrowserOverHTTP2(t *testing.T) {
	if !godebugtest.Has(xconnect) {
		t.Skip("needs GODEBUG=" + xconnect + "; TestBrowserHTTP2 runs it so")
	}
	b := chromium.Start(t, "--ignore-certificate-errors")
	var mu sync.Mutex
	var logged []string
	logf := func(format string, args ...any) {
		mu.Lock()
		logged = append(logged, fmt.Sprintf(format, args...))
		mu.Unlock()
		t.Logf(format, args...)
	}
	url, stop := startServerWith(t, options{compression: websocket.CompressionContextTakeover, tls: true}, logf)
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("page at %s, want https", url)
	}
	p := b.Open(url)
	p.Click("#open")
	p.WaitText("#state", "open")
	p.WantText("#extensions", "permessage-deflate")
	long := strings.Repeat("over one stream of many. ", 3000)
	for _, msg := range []string{"hello over h2", "héllo ✓", long} {
		p.Click("#message")
		p.TypeText(msg)
		p.Click("#send")
		p.WaitListed("#log li", "received: "+msg)
	}
	p.Click("#close")
	p.WaitText("#state", "closed")
	p.WantText("#close-code", "1000")
	p.WantText("#was-clean", "true")

	seeServerGoAway(t, p, stop)

	mu.Lock()
	defer mu.Unlock()
	connected := 0
	for _, line := range logged {
		if strings.Contains(line, " connected over ") {
			connected++
			if !strings.HasSuffix(line, " connected over HTTP/2.0") {
				t.Errorf("log: %q, want the connection over HTTP/2.0", line)
			}
		}
	}
	if connected != 2 {
		t.Errorf("%d connections logged, want 2:\n%s", connected, strings.Join(logged, "\n"))
	}
}

// seeServerGoAway has the page open a connection, then stops the server
// with stop: the page must see it go away cleanly, with 1001 and the
// shutdown reason, before the server is done stopping.
func seeServerGoAway(t *testing.T, p *chromium.Page, stop func() error) {
	t.Helper()
	p.Click("#open")
	p.WaitText("#state", "open")
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	p.WaitText("#state", "closed")
	p.WantText("#close-code", "1001")
	p.WantText("#close-reason", shutdownReason)
	p.WantText("#was-clean", "true")
	p.WantEnabled("#open", true)
	if err := <-stopped; err != nil {
		t.Errorf("run: %v", err)
	}
}
