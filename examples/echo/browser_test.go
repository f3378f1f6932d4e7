package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/internal/godebugtest"
)

const chromiumPath = "/usr/bin/chromium"

// waitLimit bounds every wait on the browser: its start, each protocol
// call, and each poll of the page.
const waitLimit = 10 * time.Second

// TestBrowser has headless Chromium use the page as a person would: open
// a connection, send messages with the Send button and with Enter (one of
// them long), close it, open again and see the server go away; then the
// same with a server that does not compress. It checks only what the page
// shows. The DevTools protocol is spoken over a connection from Dial.
func TestBrowser(t *testing.T) {
	t.Parallel()
	b := startChromium(t)
	url, stopServer := startServer(t, websocket.CompressionContextTakeover)
	p := b.open(url)

	p.wantText("#state", "closed")
	p.wantEnabled("#open", true)
	p.wantEnabled("#send", false)
	p.wantEnabled("#close", false)

	p.wantText("#extensions", "(hidden)")
	p.click("#open")
	p.waitText("#state", "open")
	p.wantEnabled("#open", false)
	p.wantEnabled("#send", true)
	p.wantEnabled("#close", true)
	// Chromium offers permessage-deflate; the server takes it.
	p.wantText("#extensions", "permessage-deflate")

	// Type into the input and press the Send button.
	p.click("#message")
	p.typeText("hello, browser")
	p.click("#send")
	p.waitLog("received: hello, browser")
	p.wantValue("#message", "")

	// Enter in the input sends too; the text crosses as UTF-8.
	const accented = "héllo wörld ✓"
	p.click("#message")
	p.typeText(accented)
	p.pressEnter()
	p.waitLog("received: " + accented)

	// A long, repetitive message (it shrinks a hundredfold compressed)
	// comes back intact.
	long := strings.Repeat("all work and no play makes jack a dull boy. ", 2500) + "the end"
	p.click("#message")
	p.typeText(long)
	p.click("#send")
	p.waitLog("received: " + long)

	p.click("#close")
	p.waitText("#state", "closed")
	p.wantText("#close-code", "1000")
	p.wantText("#was-clean", "true")
	p.wantEnabled("#open", true)
	p.wantEnabled("#send", false)
	p.wantEnabled("#close", false)

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
	if got := p.log(); !slices.Equal(got, wantLog) {
		t.Errorf("log shows\n\t%q\nwant\n\t%q", abbreviate(got), abbreviate(wantLog))
	}

	p.seeServerGoAway(stopServer)

	// Without compression on the server, the page says so.
	url, _ = startServer(t, websocket.CompressionDisabled)
	p = b.open(url)
	p.click("#open")
	p.waitText("#state", "open")
	p.wantText("#extensions", "none")
	p.click("#message")
	p.typeText(long)
	p.pressEnter()
	p.waitLog("received: " + long)
	p.click("#close")
	p.waitText("#state", "closed")
	p.wantText("#close-code", "1000")

	// Chromium's DevTools server answers a closing handshake too. Close
	// ends the connection whatever happens.
	c := b.dial()
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
	b := startChromium(t, "--ignore-certificate-errors")
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
	p := b.open(url)
	p.click("#open")
	p.waitText("#state", "open")
	p.wantText("#extensions", "permessage-deflate")
	long := strings.Repeat("over one stream of many. ", 3000)
	for _, msg := range []string{"hello over h2", "héllo ✓", long} {
		p.click("#message")
		p.typeText(msg)
		p.click("#send")
		p.waitLog("received: " + msg)
	}
	p.click("#close")
	p.waitText("#state", "closed")
	p.wantText("#close-code", "1000")
	p.wantText("#was-clean", "true")

	p.seeServerGoAway(stop)

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

// browser is a headless Chromium driven over the DevTools protocol.
type browser struct {
	t      *testing.T
	url    string          // of the browser target's DevTools endpoint
	conn   *websocket.Conn // to the browser target
	lastID int64           // of the last command sent
}

// startChromium starts headless Chromium with a fresh profile and connects
// to it. Chromium is told to quit, and killed if it does not, when the test
// ends. Without Chromium the test is skipped, unless
// WEBSOCKET_REQUIRE_BROWSER=1 says it must run.
func startChromium(t *testing.T, flags ...string) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("WEBSOCKET_REQUIRE_BROWSER") == "1" {
			t.Fatalf("WEBSOCKET_REQUIRE_BROWSER=1 but no browser: %v", err)
		}
		t.Skipf("no browser: %v", err)
	}
	profile := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "chromium.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromiumPath,
		"--headless",
		"--no-sandbox",
		"--disable-gpu",
		"--disable-quic",
		"--no-first-run",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--user-data-dir="+profile,
		"--remote-debugging-port=0",
	)
	cmd.Args = append(append(cmd.Args, flags...), "about:blank")
	// A file, not a pipe: no goroutine copies it, and Chromium's helper
	// processes holding it open cannot keep Wait from returning.
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	b := &browser{t: t}
	t.Cleanup(func() {
		b.quit(cmd, exited)
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("chromium output:\n%s", out)
		}
	})

	b.url, err = devToolsURL(profile, exited)
	if err != nil {
		t.Fatal(err)
	}
	b.conn = b.dial()
	return b
}

// dial opens a connection to the browser target.
func (b *browser) dial() *websocket.Conn {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, _, err := websocket.Dial(ctx, b.url, nil)
	if err != nil {
		b.t.Fatalf("Dial %s: %v", b.url, err)
	}
	return c
}

// devToolsURL waits for Chromium to write the DevToolsActivePort file into
// its profile, and returns the browser target's WebSocket URL from it.
func devToolsURL(profile string, exited <-chan error) (string, error) {
	name := filepath.Join(profile, "DevToolsActivePort")
	deadline := time.Now().Add(waitLimit)
	for {
		// The file holds the port, a newline, and the browser target's path.
		b, err := os.ReadFile(name)
		if err == nil {
			port, path, ok := strings.Cut(strings.TrimSpace(string(b)), "\n")
			if _, err := strconv.ParseUint(port, 10, 16); err == nil && ok && strings.HasPrefix(path, "/devtools/") {
				return "ws://127.0.0.1:" + port + path, nil
			}
		}
		select {
		case err := <-exited:
			return "", fmt.Errorf("chromium exited before it listened: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("chromium wrote no usable %s within %v (last read: %q, %v)", name, waitLimit, b, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quit asks Chromium to close, kills it if it has not exited within
// waitLimit, and waits for it.
func (b *browser) quit(cmd *exec.Cmd, exited <-chan error) {
	if b.conn != nil {
		// Chromium may drop the connection before it answers.
		if err := b.call("", "Browser.close", nil, nil); err != nil {
			b.t.Logf("Browser.close: %v", err)
		}
		b.conn.CloseNow()
	}
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case <-exited:
		return
	case <-timer.C:
	}
	b.t.Errorf("chromium still running %v after Browser.close; killing it", waitLimit)
	cmd.Process.Kill()
	<-exited
}

type cdpRequest struct {
	ID        int64  `json:"id"`
	SessionID string `json:"sessionId,omitempty"`
	Method    string `json:"method"`
	Params    any    `json:"params,omitempty"`
}

// cdpMessage is a command's response, or an event (which has no ID).
type cdpMessage struct {
	ID     int64           `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// call sends a DevTools command, to the browser target or to the session
// given, and decodes its result into result. Events that arrive meanwhile
// are dropped: the test watches the page, not the protocol.
func (b *browser) call(session, method string, params, result any) error {
	b.lastID++
	id := b.lastID
	req, err := json.Marshal(cdpRequest{ID: id, SessionID: session, Method: method, Params: params})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.conn.Write(ctx, websocket.MessageText, req); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	for {
		_, p, err := b.conn.Read(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		var m cdpMessage
		if err := json.Unmarshal(p, &m); err != nil {
			return fmt.Errorf("%s: decoding %.200q: %w", method, p, err)
		}
		if m.ID != id {
			continue
		}
		if m.Error != nil {
			return fmt.Errorf("%s: error %d: %s", method, m.Error.Code, m.Error.Message)
		}
		if result == nil {
			return nil
		}
		return json.Unmarshal(m.Result, result)
	}
}

// page is a browser tab, reached through a flat protocol session.
type page struct {
	b       *browser
	t       *testing.T
	session string
}

// seeServerGoAway opens a connection, then stops the server with stop: the
// page must see it go away cleanly, with 1001 and the shutdown reason,
// before the server is done stopping.
func (p *page) seeServerGoAway(stop func() error) {
	p.t.Helper()
	p.click("#open")
	p.waitText("#state", "open")
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	p.waitText("#state", "closed")
	p.wantText("#close-code", "1001")
	p.wantText("#close-reason", shutdownReason)
	p.wantText("#was-clean", "true")
	p.wantEnabled("#open", true)
	if err := <-stopped; err != nil {
		p.t.Errorf("run: %v", err)
	}
}

// open opens a new tab at url and waits for it to load.
func (b *browser) open(url string) *page {
	b.t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		b.t.Fatal(err)
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		b.t.Fatal(err)
	}
	p := &page{b: b, t: b.t, session: attached.SessionID}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	p.call("Page.navigate", map[string]any{"url": url}, &nav)
	if nav.ErrorText != "" {
		p.t.Fatalf("navigating to %s: %s", url, nav.ErrorText)
	}
	p.waitFor("the page to load", func() (bool, string) {
		var state string
		p.eval(`location.href + " " + document.readyState`, &state)
		return state == url+" complete", state
	})
	return p
}

func (p *page) call(method string, params, result any) {
	p.t.Helper()
	if err := p.b.call(p.session, method, params, result); err != nil {
		p.t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression in the page and decodes its
// value into out.
func (p *page) eval(expr string, out any) {
	p.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	p.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r)
	if e := r.ExceptionDetails; e != nil {
		p.t.Fatalf("evaluating %s: %s %s", expr, e.Text, e.Exception.Description)
	}
	if err := json.Unmarshal(r.Result.Value, out); err != nil {
		p.t.Fatalf("evaluating %s: value %s: %v", expr, r.Result.Value, err)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// element evaluates fn, a JavaScript function of one element, on the
// element selector finds, and decodes its result into out.
func (p *page) element(selector, fn string, out any) {
	p.t.Helper()
	var found bool
	p.eval(fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(selector)), &found)
	if !found {
		p.t.Fatalf("the page has no %s", selector)
	}
	p.eval(fmt.Sprintf(`(%s)(document.querySelector(%s))`, fn, jsString(selector)), out)
}

// text returns the text the element shows, or "(hidden)" if it is not
// displayed.
func (p *page) text(selector string) string {
	p.t.Helper()
	var s string
	p.element(selector, `el => el.checkVisibility() ? el.innerText : "(hidden)"`, &s)
	return s
}

func (p *page) wantText(selector, want string) {
	p.t.Helper()
	if got := p.text(selector); got != want {
		p.t.Errorf("%s shows %q, want %q", selector, got, want)
	}
}

func (p *page) wantValue(selector, want string) {
	p.t.Helper()
	var got string
	p.element(selector, `el => el.value`, &got)
	if got != want {
		p.t.Errorf("%s holds %q, want %q", selector, got, want)
	}
}

func (p *page) enabled(selector string) bool {
	p.t.Helper()
	var disabled bool
	p.element(selector, `el => el.disabled`, &disabled)
	return !disabled
}

func (p *page) wantEnabled(selector string, want bool) {
	p.t.Helper()
	if got := p.enabled(selector); got != want {
		p.t.Errorf("%s enabled: %v, want %v", selector, got, want)
	}
}

// log returns the lines of the page's message log.
func (p *page) log() []string {
	p.t.Helper()
	var lines []string
	p.eval(`Array.from(document.querySelectorAll("#log li"), li => li.innerText)`, &lines)
	return lines
}

// waitFor polls cond until it holds, for at most waitLimit. cond returns
// what it saw, for the failure message.
func (p *page) waitFor(what string, cond func() (ok bool, seen string)) {
	p.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited %v for %s; the page shows %q", waitLimit, what, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *page) waitText(selector, want string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%s to show %q", selector, want), func() (bool, string) {
		got := p.text(selector)
		return got == want, got
	})
}

func (p *page) waitLog(line string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("the log to show %q", abbreviate([]string{line})[0]), func() (bool, string) {
		lines := p.log()
		return slices.Contains(lines, line), strings.Join(abbreviate(lines), " | ")
	})
}

// abbreviate shortens long lines, for messages.
func abbreviate(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) > 80 {
			l = fmt.Sprintf("%s... (%d bytes)", l[:60], len(l))
		}
		out[i] = l
	}
	return out
}

// click presses and releases the left mouse button at the centre of the
// element, as a person would; it fails the test if the element is
// disabled, since a person could not click it then.
func (p *page) click(selector string) {
	p.t.Helper()
	if !p.enabled(selector) {
		p.t.Fatalf("cannot click %s: it is disabled", selector)
	}
	var doc struct {
		Root struct {
			NodeID int64 `json:"nodeId"`
		} `json:"root"`
	}
	p.call("DOM.getDocument", map[string]any{"depth": 0}, &doc)
	var q struct {
		NodeID int64 `json:"nodeId"`
	}
	p.call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": selector}, &q)
	if q.NodeID == 0 {
		p.t.Fatalf("the page has no %s", selector)
	}
	p.call("DOM.scrollIntoViewIfNeeded", map[string]any{"nodeId": q.NodeID}, nil)
	var box struct {
		Model struct {
			Border []float64 `json:"border"` // x1, y1, ... x4, y4
		} `json:"model"`
	}
	p.call("DOM.getBoxModel", map[string]any{"nodeId": q.NodeID}, &box)
	quad := box.Model.Border
	if len(quad) != 8 {
		p.t.Fatalf("box of %s: %v", selector, quad)
	}
	x := (quad[0] + quad[2] + quad[4] + quad[6]) / 4
	y := (quad[1] + quad[3] + quad[5] + quad[7]) / 4

	p.call("Input.dispatchMouseEvent", map[string]any{"type": "mouseMoved", "x": x, "y": y}, nil)
	p.call("Input.dispatchMouseEvent", map[string]any{
		"type": "mousePressed", "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1,
	}, nil)
	p.call("Input.dispatchMouseEvent", map[string]any{
		"type": "mouseReleased", "x": x, "y": y, "button": "left", "buttons": 0, "clickCount": 1,
	}, nil)
}

// typeText types text into the focused element.
func (p *page) typeText(text string) {
	p.t.Helper()
	p.call("Input.insertText", map[string]any{"text": text}, nil)
}

// pressEnter presses and releases the Enter key.
func (p *page) pressEnter() {
	p.t.Helper()
	key := map[string]any{"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13}
	down := map[string]any{"type": "keyDown", "text": "\r"}
	up := map[string]any{"type": "keyUp"}
	for _, m := range []map[string]any{down, up} {
		for k, v := range key {
			m[k] = v
		}
		p.call("Input.dispatchKeyEvent", m, nil)
	}
}
