package main

import (
	"slices"
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

// waitMembers waits until the page lists exactly names as the room's
// members.
func waitMembers(p *chromium.Page, names ...string) {
	p.WaitFor("the members "+strings.Join(names, ", "), func() (bool, string) {
		got := p.Texts("#members li")
		return slices.Equal(got, names), strings.Join(got, ", ")
	})
}
