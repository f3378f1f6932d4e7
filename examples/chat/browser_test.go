package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rfc6455/websocket/examples/internal/chattest"
	"github.com/rfc6455/websocket/internal/chromium"
)

// TestBrowser has two pages of headless Chromium join the lobby as alice
// and bob, as a person would: each sees the other there and what the other
// types; bob leaves, and the server going away ends alice's connection
// with 1001. It checks only what the pages show.
func TestBrowser(t *testing.T) {
	t.Parallel()
	b := chromium.Start(t)
	s := chattest.Start(t, chatPath)

	join := func(name string) *chromium.Page {
		p := b.Open(s.URL)
		p.WantText("#status", "not connected")
		p.WantEnabled("#send", false)
		p.Click("#name")
		p.TypeText(name)
		p.Click("#join")
		p.WaitText("#status", "in lobby as "+name)
		p.WantEnabled("#join", false)
		p.WantEnabled("#send", true)
		return p
	}
	// 40 characters, within the input's maxlength, but 80 bytes.
	long := b.Open(s.URL)
	long.Click("#name")
	long.TypeText(strings.Repeat("é", 40))
	long.Click("#join")
	long.WaitText("#status", "room and name: at most 64 bytes of UTF-8 each")
	long.WantEnabled("#join", true)

	alice := join("alice")
	bob := join("bob")
	for _, p := range []*chromium.Page{alice, bob} {
		waitMembers(p, "alice", "bob")
	}

	alice.Click("#message")
	alice.TypeText("hello, bob")
	alice.Click("#send")
	for _, p := range []*chromium.Page{alice, bob} {
		p.WaitListed("#log li", "alice: hello, bob")
	}
	bob.Click("#message")
	bob.TypeText("héllo ✓ <b>alice</b>")
	bob.PressEnter()
	for _, p := range []*chromium.Page{alice, bob} {
		p.WaitListed("#log li", "bob: héllo ✓ <b>alice</b>")
		p.WantValue("#message", "")
	}
	if got, want := alice.Texts("#log li"), []string{"alice joined", "bob joined", "alice: hello, bob", "bob: héllo ✓ <b>alice</b>"}; !slices.Equal(got, want) {
		t.Errorf("alice's log shows %q, want %q", got, want)
	}
	if got, want := bob.Texts("#log li"), []string{"bob joined", "alice: hello, bob", "bob: héllo ✓ <b>alice</b>"}; !slices.Equal(got, want) {
		t.Errorf("bob's log shows %q, want %q", got, want)
	}

	// A paste longer than a message may be (64 KiB of UTF-8; 32,769
	// characters here, set rather than typed, which takes seconds) is
	// not sent, and stays to be cut: the server would close the
	// connection with 1009.
	paste := strings.Repeat("é", 32<<10) + "!"
	alice.Eval(`document.getElementById("message").value = "é".repeat(32768) + "!"`, new(string))
	alice.Click("#send")
	alice.WaitListed("#log li", "not sent: longer than 65536 bytes")
	alice.WantText("#status", "in lobby as alice")
	alice.WantValue("#message", paste)

	bob.Click("#leave")
	bob.WaitText("#status", "disconnected: 1000")
	bob.WantEnabled("#join", true)
	alice.WaitListed("#log li", "bob left")
	waitMembers(alice, "alice")

	s.Signal(t, syscall.SIGTERM)
	alice.WaitText("#status", "disconnected: 1001 server shutting down")
	alice.WantEnabled("#send", false)
	if code := s.ExitCode(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// TestBrowserRefused: a join refused before its handshake shows the
// page's WebSocket only 1006, whatever the status; the page asks the
// server why, and shows it. The pages come through a proxy that tells
// the server, in X-Real-IP, that the client is 192.0.2.1: the browser's
// own address, 127.0.0.1, has no limits. With one member at once and
// 0.001 joins a second, bob is refused beside alice, then for the join
// rate, with the seconds to wait.
func TestBrowserRefused(t *testing.T) {
	t.Parallel()
	b := chromium.Start(t)
	s := chattest.Start(t, chatPath, "-addr-conns", "1", "-addr-join-rate", "0.001", "-client-ip-header", "X-Real-IP")
	page := realIPProxy(t, s.URL, "192.0.2.1")

	alice := b.Open(page)
	alice.Click("#name")
	alice.TypeText("alice")
	alice.Click("#join")
	alice.WaitText("#status", "in lobby as alice")

	bob := b.Open(page)
	bob.Click("#name")
	bob.TypeText("bob")
	bob.Click("#join")
	bob.WaitText("#status", "not joined: more than 1 members from one address")
	bob.WantEnabled("#join", true)
	waitMembers(alice, "alice")

	alice.Click("#leave")
	alice.WaitText("#status", "disconnected: 1000")
	bob.Click("#join")
	// 1,000 seconds, less what has passed since alice joined.
	rate := regexp.MustCompile(`^not joined: more than 0\.001 joins a second from one address \(try again in (\d+) s\)$`)
	bob.WaitFor("the join rate's refusal", func() (bool, string) {
		status := bob.Text("#status")
		m := rate.FindStringSubmatch(status)
		if m == nil {
			return false, status
		}
		wait, _ := strconv.Atoi(m[1])
		return wait > 900 && wait <= 1000, status
	})
	bob.WantEnabled("#join", true)
}

// realIPProxy serves a proxy to the server at target that tells it, in
// X-Real-IP, that every client is ip, and returns the proxy's URL.
func realIPProxy(t *testing.T, target, ip string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	hs := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // as the page's origin has it
			r.Out.Header.Set("X-Real-IP", ip)
		},
		Transport: tr,
	})
	t.Cleanup(func() {
		hs.Close()
		tr.CloseIdleConnections()
	})
	return hs.URL + "/"
}

// waitMembers waits until the page lists exactly names as the room's
// members.
func waitMembers(p *chromium.Page, names ...string) {
	p.WaitFor("the members "+strings.Join(names, ", "), func() (bool, string) {
		got := p.Texts("#members li")
		return slices.Equal(got, names), strings.Join(got, ", ")
	})
}
