package chat

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
)

// clock is a clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// serveFrom serves s, whose clock is c's, and whose members' addresses
// are those their X-Forwarded-For says; it returns a function that
// dials room r of it as name from the address ip ("" for the
// connection's own), one that asks /ws/check about that join, and a
// context for the test's calls. They end with the test.
func serveFrom(t *testing.T, opts Options, c *clock) (context.Context, func(name, ip string) (*websocket.Conn, *http.Response, error), func(name, ip string) answer) {
	t.Helper()
	opts.ClientIPHeader = "X-Forwarded-For"
	s := NewServer(new(LocalBus), &opts)
	s.now = c.Now
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	from := func(ip string) http.Header {
		h := http.Header{}
		if ip != "" {
			h.Set("X-Forwarded-For", "203.0.113.9, "+ip)
		}
		return h
	}
	dial := func(name, ip string) (*websocket.Conn, *http.Response, error) {
		c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws?room=r&name="+name, &websocket.DialOptions{Header: from(ip)})
		if err == nil {
			t.Cleanup(func() { c.CloseNow() })
		}
		return c, resp, err
	}
	check := func(name, ip string) answer {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/ws/check?room=r&name="+name, nil)
		req.Header = from(ip)
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("/ws/check for %s from %q: Cache-Control %q, want no-store", name, ip, cc)
		}
		return answer{resp.StatusCode, string(body), resp.Header.Get("Retry-After")}
	}
	return ctx, dial, check
}

// answer is what a server answered, as far as the tests look.
type answer struct {
	status           int
	body, retryAfter string
}

// readWant reads the next message of c's, which must be want.
func readWant(t *testing.T, ctx context.Context, c *websocket.Conn, who, want string) {
	t.Helper()
	if _, p, err := c.Read(ctx); err != nil || string(p) != want {
		t.Fatalf("%s got %s, %v; want %s", who, p, err, want)
	}
}

// TestAddrConns: an address (an IPv6 /64 here, as the proxy's header
// tells it) may have AddrConns members at once; the next is refused with
// 429 before its upgrade, and the room hears of it nothing; others, from
// other addresses, join; and once one of the address's members has
// left, another may join.
func TestAddrConns(t *testing.T) {
	t.Parallel()
	ctx, dial, _ := serveFrom(t, Options{AddrConns: 2, AddrJoinRate: -1}, newClock())
	a, _, err := dial("a", "2001:db8::1")
	if err != nil {
		t.Fatal(err)
	}
	readWant(t, ctx, a, "a", `{"type":"join","name":"a","members":["a"]}`)
	b, _, err := dial("b", "2001:db8::2")
	if err != nil {
		t.Fatal(err)
	}
	readWant(t, ctx, a, "a", `{"type":"join","name":"b"}`)
	if _, resp, err := dial("c", "2001:db8::3"); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the third member of 2001:db8::/64: %v, want 429", err)
	}
	for _, m := range []struct{ name, ip string }{{"d", "2001:db8:0:1::1"}, {"e", ""}} {
		if _, _, err := dial(m.name, m.ip); err != nil {
			t.Fatalf("%s, from %q: %v", m.name, m.ip, err)
		}
		readWant(t, ctx, a, "a", `{"type":"join","name":"`+m.name+`"}`)
	}
	if err := b.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	readWant(t, ctx, a, "a", `{"type":"leave","name":"b"}`)
	if _, _, err := dial("c", "2001:db8::3"); err != nil {
		t.Fatalf("c, after b left: %v", err)
	}
	readWant(t, ctx, a, "a", `{"type":"join","name":"c"}`)
}

// TestAddrSite: the members from one IPv6 /48 have SiteAddrs
// addresses' worth of AddrConns together: with one member an address
// and two a site, a member from a third /64 of 2001:db8:1::/48 is
// refused with 429, as /ws/check tells beforehand, while one from
// another /48 joins; once a member of the site has left, the third
// joins.
func TestAddrSite(t *testing.T) {
	t.Parallel()
	ctx, dial, check := serveFrom(t, Options{AddrConns: 1, AddrJoinRate: -1, SiteAddrs: 2}, newClock())
	join := func(name, ip string) *websocket.Conn {
		t.Helper()
		c, _, err := dial(name, ip)
		if err != nil {
			t.Fatalf("%s, from %s: %v", name, ip, err)
		}
		return c
	}
	a := join("a", "2001:db8:1:1::1")
	readWant(t, ctx, a, "a", `{"type":"join","name":"a","members":["a"]}`)
	b := join("b", "2001:db8:1:2::1")
	readWant(t, ctx, a, "a", `{"type":"join","name":"b"}`)
	const why = "more than 2 members from one IPv6 /48"
	if got, want := check("c", "2001:db8:1:3::1"), (answer{http.StatusTooManyRequests, why + "\n", ""}); got != want {
		t.Errorf("check of c: %+v, want %+v", got, want)
	}
	if _, resp, err := dial("c", "2001:db8:1:3::1"); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(err.Error(), why) {
		t.Fatalf("a third member of 2001:db8:1::/48: %v, want 429 %q", err, why)
	}
	join("d", "2001:db8:2::1")
	readWant(t, ctx, a, "a", `{"type":"join","name":"d"}`)
	if err := b.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	readWant(t, ctx, a, "a", `{"type":"leave","name":"b"}`)
	join("c", "2001:db8:1:3::1")
	readWant(t, ctx, a, "a", `{"type":"join","name":"c"}`)
}

// TestAddrLoopback: the server's own host has no limits per address: a
// proxy in front of it, unless ClientIPHeader says where the client's
// address is, or a load test. With one member and no join a second per
// address, members from 127.0.0.1 (the connection's) and ::1 (the
// proxy's header) all join, where a second from 192.0.2.7 is refused.
func TestAddrLoopback(t *testing.T) {
	t.Parallel()
	ctx, dial, _ := serveFrom(t, Options{AddrConns: 1, AddrJoinRate: 1e-9}, newClock())
	w, _, err := dial("w", "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	readWant(t, ctx, w, "w", `{"type":"join","name":"w","members":["w"]}`)
	for i, ip := range []string{"", "", "", "::1", "::1", "127.0.0.2"} {
		name := fmt.Sprintf("m%d", i)
		if _, _, err := dial(name, ip); err != nil {
			t.Fatalf("%s, from %q: %v", name, ip, err)
		}
		readWant(t, ctx, w, "w", `{"type":"join","name":"`+name+`"}`)
	}
	if _, resp, err := dial("x", "192.0.2.7"); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second member from 192.0.2.7: %v, want 429", err)
	}
	if limited(netip.Prefix{}) {
		t.Error("a transport without addresses (a Unix socket) is limited")
	}
}

// TestAddrJoinRate: an address joins and leaves in a loop, the clock
// still: it makes the burst of joins (ten seconds' worth of 0.5 a
// second), then is refused with 429 and a Retry-After of the 2 seconds
// a join takes to come back, and once they have passed, joins once
// more. The room hears exactly the joins and leaves of the joins
// admitted.
func TestAddrJoinRate(t *testing.T) {
	t.Parallel()
	clk := newClock()
	ctx, dial, _ := serveFrom(t, Options{AddrConns: -1, AddrJoinRate: 0.5}, clk)
	w, _, err := dial("w", "198.51.100.1")
	if err != nil {
		t.Fatal(err)
	}
	readWant(t, ctx, w, "w", `{"type":"join","name":"w","members":["w"]}`)
	cycle := func(name string, admitted bool) {
		t.Helper()
		c, resp, err := dial(name, "192.0.2.7")
		if !admitted {
			if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
				t.Fatalf("%s: %v, want 429 with Retry-After: 2", name, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		readWant(t, ctx, w, "w", `{"type":"join","name":"`+name+`"}`)
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatal(err)
		}
		readWant(t, ctx, w, "w", `{"type":"leave","name":"`+name+`"}`)
	}
	for i, name := range []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"} {
		cycle(name, i < 5)
	}
	clk.Add(2 * time.Second)
	cycle("c8", true)
	cycle("c9", false)
}

// TestAddrCheck: /ws/check answers as /ws would answer a join, the
// clock still, and counts nothing. From 192.0.2.7, with one member at
// once and joins at 0.5 a second (bursts of 5): ten checks leave every
// join; with a member there, a check is refused as a second member
// would be; after five joins, as the sixth would be, with the same
// Retry-After; two seconds later, admitted. A bad name gets the 400 a
// join would get; the server's own host, no limits. (TestAddrTable's
// "check": an address that only asked gets no entry in the table.)
func TestAddrCheck(t *testing.T) {
	t.Parallel()
	clk := newClock()
	ctx, dial, check := serveFrom(t, Options{AddrConns: 1, AddrJoinRate: 0.5}, clk)
	const ip = "192.0.2.7"
	var (
		admitted = answer{http.StatusNoContent, "", ""}
		members  = answer{http.StatusTooManyRequests, "more than 1 members from one address\n", ""}
		joins    = answer{http.StatusTooManyRequests, "more than 0.5 joins a second from one address\n", "2"}
	)
	want := func(name, ip string, want answer) {
		t.Helper()
		if got := check(name, ip); got != want {
			t.Errorf("check of %s from %q: %+v, want %+v", name, ip, got, want)
		}
	}
	w, _, err := dial("w", "198.51.100.1")
	if err != nil {
		t.Fatal(err)
	}
	readWant(t, ctx, w, "w", `{"type":"join","name":"w","members":["w"]}`)
	for range 10 {
		want("c", ip, admitted)
	}
	for i := range 5 {
		name := fmt.Sprint("c", i)
		c, _, err := dial(name, ip)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		readWant(t, ctx, w, "w", `{"type":"join","name":"`+name+`"}`)
		want("d", ip, members)
		if _, resp, err := dial("d", ip); err == nil || resp == nil || resp.StatusCode != members.status || resp.Header.Get("Retry-After") != "" {
			t.Fatalf("d, beside %s: %v, want %+v", name, err, members)
		}
		c.Close(websocket.StatusNormalClosure, "")
		readWant(t, ctx, w, "w", `{"type":"leave","name":"`+name+`"}`)
	}
	want("d", ip, joins)
	if _, resp, err := dial("d", ip); err == nil || resp == nil || resp.StatusCode != joins.status || resp.Header.Get("Retry-After") != joins.retryAfter {
		t.Fatalf("d, after 5 joins: %v, want %+v", err, joins)
	}
	clk.Add(2 * time.Second)
	want("d", ip, admitted)
	want(strings.Repeat("n", 65), ip, answer{http.StatusBadRequest, "room and name: at most 64 bytes of UTF-8 each, not blank, without control characters\n", ""})
	want("d", "", admitted)
	want("d", "::1", admitted)
	want("d", "203.0.113.5", admitted)
}

// TestAddrMessageRate: the members from one address say together at
// most what AddrMessageRate allows, 1.5 a second with bursts of 3, each
// also at most its own MessageRate, 1 a second with bursts of 2, the
// clock still. A message past the member's rate counts against neither;
// one past the address's is not sent, and its member is told so; a
// member from another address is not bound by it. w, who says nothing,
// hears exactly the messages sent.
func TestAddrMessageRate(t *testing.T) {
	t.Parallel()
	ctx, dial, _ := serveFrom(t, Options{MessageRate: 1, ByteRate: -1, AddrMessageRate: 1.5, AddrByteRate: -1, AddrConns: -1, AddrJoinRate: -1}, newClock())
	members := make(map[string]*websocket.Conn)
	for _, m := range []struct{ name, ip string }{{"a", "192.0.2.1"}, {"b", "192.0.2.1"}, {"c", "192.0.2.1"}, {"d", "198.51.100.1"}, {"w", "198.51.100.2"}} {
		c, _, err := dial(m.name, m.ip)
		if err != nil {
			t.Fatal(err)
		}
		members[m.name] = c
		// Its own join, once it is in the room: a message said before
		// then would not reach it.
		for {
			_, p, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("%s, awaiting its join: %v", m.name, err)
			}
			var ev struct{ Type, Name string }
			json.Unmarshal(p, &ev)
			if ev.Type == "join" && ev.Name == m.name {
				break
			}
		}
	}
	const (
		member  = `{"type":"error","text":"not sent: more than 1 messages a second"}`
		address = `{"type":"error","text":"not sent: more than 1.5 messages a second from one address"}`
	)
	for _, tc := range []struct{ from, text, want string }{
		{"a", "a1", ""},
		{"a", "a2", ""},
		{"a", "a3", member},
		{"b", "b1", ""},
		{"b", "b2", address},
		{"c", "c1", address},
		{"d", "d1", ""},
	} {
		c := members[tc.from]
		if err := c.Write(ctx, websocket.MessageText, []byte(tc.text)); err != nil {
			t.Fatal(err)
		}
		if tc.want == "" {
			tc.want = `{"type":"message","from":"` + tc.from + `","text":"` + tc.text + `"}`
		}
		// Its own message back, or an error; the others' events pass.
		for {
			_, p, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("%s, after %s: %v", tc.from, tc.text, err)
			}
			var m message
			json.Unmarshal(p, &m)
			if m.Type == "error" || m.Type == "message" && m.From == tc.from {
				if string(p) != tc.want {
					t.Fatalf("%s sent %s: got %s, want %s", tc.from, tc.text, p, tc.want)
				}
				break
			}
		}
	}
	var said []string
	for len(said) < 4 {
		_, p, err := members["w"].Read(ctx)
		if err != nil {
			t.Fatalf("w, after %q: %v", said, err)
		}
		var m message
		json.Unmarshal(p, &m)
		if m.Type == "message" {
			said = append(said, m.Text)
		}
	}
	if got, want := strings.Join(said, " "), "a1 a2 b1 d1"; got != want {
		t.Errorf("the room got %s, want %s", got, want)
	}
}

// TestAddrTable: an address's entry stays while it has members, and
// after until its budgets are full again, then goes at the next
// admission; a table at its bound takes a new address in place of the
// oldest without members, and beside them when every one has members
// (it refused it with 503, so that 65,536 addresses with members, one
// host's /48, kept every other client out).
func TestAddrTable(t *testing.T) {
	t.Parallel()
	t0 := newClock().Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	k := func(i int) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32) }
	has := func(tb *addrTable, want ...int) {
		t.Helper()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		ok := len(tb.addrs) == len(want)
		for _, i := range want {
			ok = ok && tb.addrs[k(i)] != nil
		}
		if !ok {
			t.Errorf("the table has %d addresses, want %v", len(tb.addrs), want)
		}
	}
	admit := func(tb *addrTable, i, ms int) *addr {
		t.Helper()
		a, why := tb.admit(k(i), at(ms))
		if a == nil {
			t.Fatalf("address %d at %d ms refused: %s", i, ms, why.text)
		}
		return a
	}

	t.Run("joins", func(t *testing.T) {
		tb := newAddrTable(-1, 1, -1, -1, -1) // a join a second, bursts of 10
		tb.release(admit(tb, 1, 0), at(0))
		admit(tb, 2, 500)
		has(tb, 1, 2) // 1 has 9 joins left of 10
		admit(tb, 3, 1000)
		has(tb, 2, 3)
	})
	t.Run("messages", func(t *testing.T) {
		tb := newAddrTable(-1, -1, 1, -1, -1) // a message a second, bursts of 2
		a := admit(tb, 1, 0)
		for range 2 {
			if err := tb.allow(a, 1, at(0)); err != nil {
				t.Fatalf("a message of the burst refused: %v", err)
			}
		}
		tb.release(a, at(0))
		admit(tb, 2, 1999)
		has(tb, 1, 2)
		admit(tb, 3, 2000)
		has(tb, 2, 3)
	})
	t.Run("full at once", func(t *testing.T) {
		tb := newAddrTable(1, -1, -1, -1, -1)
		tb.release(admit(tb, 1, 0), at(0))
		has(tb)
	})
	t.Run("check", func(t *testing.T) {
		tb := newAddrTable(1, 1, -1, -1, -1)
		if why := tb.check(k(1), at(0)); why != (refusal{}) {
			t.Errorf("a new address: %+v, want it admitted", why)
		}
		has(tb)
		admit(tb, 1, 0)
		if why, want := tb.check(k(1), at(0)), (refusal{"more than 1 members from one address", 0}); why != want {
			t.Errorf("an address at its bound: %+v, want %+v", why, want)
		}
		has(tb, 1)
	})
	t.Run("bound", func(t *testing.T) {
		tb := newAddrTable(-1, 1, -1, -1, -1)
		tb.max = 2
		a1 := admit(tb, 1, 0)
		admit(tb, 2, 0)
		admit(tb, 3, 0)
		has(tb, 1, 2, 3)
		tb.release(a1, at(0))
		admit(tb, 4, 0)
		has(tb, 2, 3, 4)
	})
}

// TestAddrSites: the addresses of one IPv6 /48, a site, have
// together SiteAddrs addresses' worth of each limit per address (two
// here), counted with the address's, both or neither; a site's entry
// goes as an address's does, once it has no members and its budgets
// are full; IPv4 addresses, and /64s of other /48s, are not counted
// with it; and SiteAddrs -1 bounds no site.
func TestAddrSites(t *testing.T) {
	t.Parallel()
	t0 := newClock().Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// k(i) is the /64 2001:db8:1:i::/64 of the site 2001:db8:1::/48.
	k := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, byte(i)}), 64)
	}
	site := netip.MustParsePrefix("2001:db8:1::/48")
	other := netip.MustParsePrefix("2001:db8:2::/64")
	otherSite := netip.MustParsePrefix("2001:db8:2::/48")
	v4 := netip.MustParsePrefix("192.0.2.1/32")
	admit := func(tb *addrTable, key netip.Prefix, ms int, want refusal) *addr {
		t.Helper()
		a, why := tb.admit(key, at(ms))
		if why != want || (a == nil) != (want.text != "") {
			t.Fatalf("%s at %d ms: %+v, want %+v", key, ms, why, want)
		}
		if got := tb.check(key, at(ms)); a == nil && got != want {
			t.Errorf("check of %s at %d ms: %+v, want %+v", key, ms, got, want)
		}
		return a
	}
	has := func(tb *addrTable, want ...netip.Prefix) {
		t.Helper()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		ok := len(tb.addrs) == len(want)
		for _, key := range want {
			ok = ok && tb.addrs[key] != nil
		}
		if !ok {
			t.Errorf("the table has %d entries, want %v", len(tb.addrs), want)
		}
	}
	admitted := refusal{}

	t.Run("members", func(t *testing.T) {
		tb := newAddrTable(2, -1, -1, -1, 2) // 4 members a site
		members := []*addr{admit(tb, k(0), 0, admitted), admit(tb, k(0), 0, admitted), admit(tb, k(1), 0, admitted)}
		admit(tb, k(0), 0, refusal{"more than 2 members from one address", 0})
		admit(tb, k(2), 0, admitted)
		admit(tb, k(3), 0, refusal{"more than 4 members from one IPv6 /48", 0})
		admit(tb, k(1), 0, refusal{"more than 4 members from one IPv6 /48", 0})
		admit(tb, other, 0, admitted)
		admit(tb, v4, 0, admitted)
		has(tb, k(0), k(1), k(2), site, other, otherSite, v4) // k(3) refused: no entry
		tb.release(members[0], at(0))
		admit(tb, k(3), 0, admitted)
	})
	t.Run("joins", func(t *testing.T) {
		tb := newAddrTable(-1, 0.1, -1, -1, 2) // bursts of 1 an address, 2 a site
		admit(tb, k(0), 0, admitted)
		admit(tb, k(1), 0, admitted)
		admit(tb, k(0), 0, refusal{"more than 0.1 joins a second from one address", 10})
		admit(tb, k(2), 0, refusal{"more than 0.2 joins a second from one IPv6 /48", 5})
		admit(tb, k(2), 4500, refusal{"more than 0.2 joins a second from one IPv6 /48", 1})
		admit(tb, k(2), 6000, admitted)
		admit(tb, other, 6000, admitted)
	})
	t.Run("messages", func(t *testing.T) {
		tb := newAddrTable(-1, -1, 1, -1, 2) // bursts of 2 an address, 4 a site
		a := []*addr{admit(tb, k(0), 0, admitted), admit(tb, k(1), 0, admitted), admit(tb, k(2), 0, admitted)}
		say := func(i, ms int, want error) {
			t.Helper()
			if err := tb.allow(a[i], 1, at(ms)); err != want {
				t.Errorf("%s at %d ms: %v, want %v", a[i].key, ms, err, want)
			}
		}
		addrFast, siteFast := tb.addr.tooFast, tb.site.tooFast
		say(0, 0, nil)
		say(0, 0, nil)
		say(0, 0, addrFast)
		say(1, 0, nil)
		say(1, 0, nil)
		for range 3 {
			say(2, 0, siteFast) // nor counted against the address
		}
		say(2, 1000, nil)
		say(2, 1000, nil)
		if addrFast.Error() != "more than 1 messages a second from one address" || siteFast.Error() != "more than 2 messages a second from one IPv6 /48" {
			t.Errorf("errors %q and %q", addrFast, siteFast)
		}
	})
	t.Run("gone", func(t *testing.T) {
		tb := newAddrTable(-1, 1, -1, -1, 2) // bursts of 10 an address, 20 a site
		members := []*addr{admit(tb, k(0), 0, admitted), admit(tb, k(0), 0, admitted), admit(tb, k(1), 0, admitted)}
		for _, a := range members {
			tb.release(a, at(0))
		}
		// Full again: k(0) at 2 s, k(1) at 1 s, the site at 1.5 s; the
		// table looks from the first to lose its members, k(0).
		admit(tb, other, 1999, admitted)
		has(tb, k(0), k(1), site, other, otherSite)
		admit(tb, other, 2000, admitted)
		has(tb, other, otherSite)
	})
	t.Run("bound", func(t *testing.T) {
		tb := newAddrTable(-1, 1, -1, -1, 2)
		tb.max = 3
		tb.release(admit(tb, k(0), 0, admitted), at(0))
		has(tb, k(0), site)
		admit(tb, other, 0, admitted) // in place of k(0), the first to lose its members
		has(tb, site, other, otherSite)
	})
	t.Run("no bound", func(t *testing.T) {
		tb := newAddrTable(1, -1, -1, -1, -1)
		for i := range 5 {
			admit(tb, k(i), 0, admitted)
		}
		has(tb, k(0), k(1), k(2), k(3), k(4))
	})
}

// -site-addrs sets SiteAddrs, DefaultSiteAddrs unless given.
func TestSiteAddrsFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, DefaultSiteAddrs},
		{[]string{"-site-addrs", "3"}, 3},
		{[]string{"-site-addrs", "-1"}, -1},
	} {
		fs := flag.NewFlagSet("chat", flag.ContinueOnError)
		_, opts := Flags(fs)
		if err := fs.Parse(tc.args); err != nil || opts.SiteAddrs != tc.want {
			t.Errorf("%q: %d, %v; want %d", tc.args, opts.SiteAddrs, err, tc.want)
		}
	}
}

// addrKey counts an IPv4 address whole, an IPv6 one by its /64, and
// takes the proxy's header's last entry only when told to: of
// Forwarded, the for of the last element (TestForwardedFor has the
// rest). A header whose last entry is no address counts the
// connection's, a loopback address's none. (The header's lines are set
// under the name told, X-Forwarded-For if none.)
func TestAddrKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		remote, header string
		lines          []string
		want           string
	}{
		{"192.0.2.1:1234", "Forwarded", []string{"for=198.51.100.7"}, "198.51.100.7/32"},
		{"192.0.2.1:1234", "forwarded", []string{"for=10.0.0.1", `for=198.51.100.7, for="[2001:db8::9]:443";proto=https`}, "2001:db8::/64"},
		{"192.0.2.1:1234", "Forwarded", []string{`for="[::ffff:198.51.100.7]"`}, "198.51.100.7/32"},
		{"192.0.2.1:1234", "Forwarded", []string{"for=198.51.100.7, for=unknown"}, "192.0.2.1/32"},
		{"192.0.2.1:1234", "Forwarded", []string{`for=198.51.100.7, for="_hidden:_port"`}, "192.0.2.1/32"},
		{"192.0.2.1:1234", "Forwarded", []string{`for=198.51.100.7, proto=https`}, "192.0.2.1/32"},
		{"192.0.2.1:1234", "Forwarded", []string{`for="198.51.100.7`}, "192.0.2.1/32"},
		{"192.0.2.1:1234", "Forwarded", []string{`for=198.51.100.7`, ``}, "192.0.2.1/32"},
		{"192.0.2.1:1234", "Forwarded", []string{`for="[::1]:80"`}, "invalid Prefix"},
		{"127.0.0.1:1234", "Forwarded", []string{`for=unknown`}, "invalid Prefix"},
		{"192.0.2.1:1234", "X-Forwarded-For", []string{`for=198.51.100.7`}, "192.0.2.1/32"},
		{"192.0.2.1:1234", "", nil, "192.0.2.1/32"},
		{"[2001:db8:1:2:3:4:5:6]:1234", "", nil, "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.1]:1234", "", nil, "192.0.2.1/32"},
		{"[fe80::1%eth0]:1234", "", nil, "fe80::/64"},
		{"192.0.2.1:1234", "", []string{"198.51.100.7"}, "192.0.2.1/32"},
		{"192.0.2.1:1234", "X-Forwarded-For", []string{"10.0.0.1, 198.51.100.7"}, "198.51.100.7/32"},
		{"192.0.2.1:1234", "X-Forwarded-For", []string{"10.0.0.1", "198.51.100.7,2001:db8::9"}, "2001:db8::/64"},
		{"192.0.2.1:1234", "X-Forwarded-For", []string{"[2001:db8::9]:443"}, "2001:db8::/64"},
		{"192.0.2.1:1234", "X-Forwarded-For", []string{"198.51.100.7, unknown"}, "192.0.2.1/32"},
		{"192.0.2.1:1234", "X-Forwarded-For", nil, "192.0.2.1/32"},
		{"@", "", nil, "invalid Prefix"},
		{"127.0.0.1:1234", "", nil, "invalid Prefix"},
		{"[::1]:1234", "", nil, "invalid Prefix"},
		{"[::ffff:127.0.0.1]:1234", "", nil, "invalid Prefix"},
		{"192.0.2.1:1234", "X-Forwarded-For", []string{"::1"}, "invalid Prefix"},
		{"127.0.0.1:1234", "X-Forwarded-For", []string{"192.0.2.1"}, "192.0.2.1/32"},
	} {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.lines {
			r.Header.Add(cmp.Or(tc.header, "X-Forwarded-For"), v)
		}
		if got := addrKey(r, tc.header).String(); got != tc.want {
			t.Errorf("%s, %q %q: %s, want %s", tc.remote, tc.header, tc.lines, got, tc.want)
		}
	}
}

// TestAddrCheckShutdown: once Shutdown began, /ws/check answers as /ws
// answers a join then, for an address past its limits too. /ws refuses
// such a join with 429 before it reaches Accept, which would answer 503;
// /ws/check answered 503 whatever the address.
func TestAddrCheckShutdown(t *testing.T) {
	t.Parallel()
	s := NewServer(new(LocalBus), &Options{AddrConns: -1, AddrJoinRate: 0.5, ClientIPHeader: "X-Forwarded-For"})
	s.now = newClock().Now
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{"X-Forwarded-For": {"203.0.113.9, 192.0.2.7"}}
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws?room=r&name=n"
	for i := range 5 {
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Header: h})
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		c.CloseNow()
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Header: h})
	if err == nil || resp == nil {
		t.Fatalf("join after Shutdown: %v, want a refusal", err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/ws/check?room=r&name=n", nil)
	req.Header = h
	check, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Body.Close()
	if check.StatusCode != resp.StatusCode || check.Header.Get("Retry-After") != resp.Header.Get("Retry-After") {
		t.Errorf("/ws/check after Shutdown: %d, Retry-After %q; /ws refused the join with %d, Retry-After %q",
			check.StatusCode, check.Header.Get("Retry-After"), resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
