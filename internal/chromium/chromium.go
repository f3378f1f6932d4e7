// Package chromium drives headless Chromium over the DevTools protocol,
// for tests that have a browser use a page as a person would: open it,
// click, type, and read what it shows. The protocol is spoken over a
// connection from this module's Dial.
package chromium

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
	"testing"
	"time"

	"github.com/rfc6455/websocket"
)

// Path is where Debian's chromium package puts the browser.
const Path = "/usr/bin/chromium"

// WaitLimit bounds every wait on the browser: its start, each protocol
// call, and each poll of the page. Chromium on a loaded machine has taken
// more than 10 s to start.
const WaitLimit = 30 * time.Second

// Browser is a headless Chromium driven over the DevTools protocol.
type Browser struct {
	t      *testing.T
	url    string          // of the browser target's DevTools endpoint
	conn   *websocket.Conn // to the browser target
	lastID int64           // of the last command sent
}

// Start starts headless Chromium with a fresh profile and connects
// to it. Chromium is told to quit, and killed if it does not, when the test
// ends. Without Chromium the test is skipped, unless
// WEBSOCKET_REQUIRE_BROWSER=1 says it must run.
func Start(t *testing.T, flags ...string) *Browser {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
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
	cmd := exec.Command(Path,
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
		t.Fatalf("starting %s: %v", Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	b := &Browser{t: t}
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
	b.conn = b.Dial()
	return b
}

// Dial opens a connection to the browser target.
func (b *Browser) Dial() *websocket.Conn {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
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
	deadline := time.Now().Add(WaitLimit)
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
			return "", fmt.Errorf("chromium wrote no usable %s within %v (last read: %q, %v)", name, WaitLimit, b, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quit asks Chromium to close, kills it if it has not exited within
// WaitLimit, and waits for it.
func (b *Browser) quit(cmd *exec.Cmd, exited <-chan error) {
	if b.conn != nil {
		// Chromium may drop the connection before it answers.
		if err := b.call("", "Browser.close", nil, nil); err != nil {
			b.t.Logf("Browser.close: %v", err)
		}
		b.conn.CloseNow()
	}
	timer := time.NewTimer(WaitLimit)
	defer timer.Stop()
	select {
	case <-exited:
		return
	case <-timer.C:
	}
	b.t.Errorf("chromium still running %v after Browser.close; killing it", WaitLimit)
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
func (b *Browser) call(session, method string, params, result any) error {
	b.lastID++
	id := b.lastID
	req, err := json.Marshal(cdpRequest{ID: id, SessionID: session, Method: method, Params: params})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
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

// Page is a browser tab, reached through a flat protocol session.
type Page struct {
	b       *Browser
	t       *testing.T
	session string
}

// Open opens a new tab at url and waits for it to load.
func (b *Browser) Open(url string) *Page {
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
	p := &Page{b: b, t: b.t, session: attached.SessionID}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	p.call("Page.navigate", map[string]any{"url": url}, &nav)
	if nav.ErrorText != "" {
		p.t.Fatalf("navigating to %s: %s", url, nav.ErrorText)
	}
	p.WaitFor("the page to load", func() (bool, string) {
		var state string
		p.Eval(`location.href + " " + document.readyState`, &state)
		return state == url+" complete", state
	})
	return p
}

func (p *Page) call(method string, params, result any) {
	p.t.Helper()
	if err := p.b.call(p.session, method, params, result); err != nil {
		p.t.Fatal(err)
	}
}

// Eval evaluates a JavaScript expression in the page and decodes its
// value into out.
func (p *Page) Eval(expr string, out any) {
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
func (p *Page) element(selector, fn string, out any) {
	p.t.Helper()
	var found bool
	p.Eval(fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(selector)), &found)
	if !found {
		p.t.Fatalf("the page has no %s", selector)
	}
	p.Eval(fmt.Sprintf(`(%s)(document.querySelector(%s))`, fn, jsString(selector)), out)
}

// Text returns the text the element shows, or "(hidden)" if it is not
// displayed.
func (p *Page) Text(selector string) string {
	p.t.Helper()
	var s string
	p.element(selector, `el => el.checkVisibility() ? el.innerText : "(hidden)"`, &s)
	return s
}

func (p *Page) WantText(selector, want string) {
	p.t.Helper()
	if got := p.Text(selector); got != want {
		p.t.Errorf("%s shows %q, want %q", selector, got, want)
	}
}

func (p *Page) WantValue(selector, want string) {
	p.t.Helper()
	var got string
	p.element(selector, `el => el.value`, &got)
	if got != want {
		p.t.Errorf("%s holds %q, want %q", selector, got, want)
	}
}

func (p *Page) Enabled(selector string) bool {
	p.t.Helper()
	var disabled bool
	p.element(selector, `el => el.disabled`, &disabled)
	return !disabled
}

func (p *Page) WantEnabled(selector string, want bool) {
	p.t.Helper()
	if got := p.Enabled(selector); got != want {
		p.t.Errorf("%s enabled: %v, want %v", selector, got, want)
	}
}

// Texts returns the text of every element selector finds, in document
// order: the lines of a log, the items of a list.
func (p *Page) Texts(selector string) []string {
	p.t.Helper()
	var lines []string
	p.Eval(fmt.Sprintf(`Array.from(document.querySelectorAll(%s), el => el.innerText)`, jsString(selector)), &lines)
	return lines
}

// WaitFor polls cond until it holds, for at most WaitLimit. cond returns
// what it saw, for the failure message.
func (p *Page) WaitFor(what string, cond func() (ok bool, seen string)) {
	p.t.Helper()
	deadline := time.Now().Add(WaitLimit)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited %v for %s; the page shows %q", WaitLimit, what, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *Page) WaitText(selector, want string) {
	p.t.Helper()
	p.WaitFor(fmt.Sprintf("%s to show %q", selector, want), func() (bool, string) {
		got := p.Text(selector)
		return got == want, got
	})
}

// WaitListed waits until one of the elements selector finds shows line.
func (p *Page) WaitListed(selector, line string) {
	p.t.Helper()
	p.WaitFor(fmt.Sprintf("%s to show %q", selector, Abbreviate([]string{line})[0]), func() (bool, string) {
		lines := p.Texts(selector)
		return slices.Contains(lines, line), strings.Join(Abbreviate(lines), " | ")
	})
}

// Abbreviate shortens long lines, for messages.
func Abbreviate(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) > 80 {
			l = fmt.Sprintf("%s... (%d bytes)", l[:60], len(l))
		}
		out[i] = l
	}
	return out
}

// Click presses and releases the left mouse button at the centre of the
// element, as a person would; it fails the test if the element is
// disabled, since a person could not click it then.
func (p *Page) Click(selector string) {
	p.t.Helper()
	if !p.Enabled(selector) {
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

// TypeText types text into the focused element.
func (p *Page) TypeText(text string) {
	p.t.Helper()
	p.call("Input.insertText", map[string]any{"text": text}, nil)
}

// PressEnter presses and releases the Enter key.
func (p *Page) PressEnter() {
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
