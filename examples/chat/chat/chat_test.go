package chat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/examples/internal/chattest"
	"github.com/rfc6455/websocket/examples/internal/cmdtest"
)

// Members keep coming while the server shuts down: Shutdown returns once
// the members it closed have left, those that come meanwhile are refused
// with 503, and counting them does not race with Shutdown's wait (the
// race detector flags a sync.WaitGroup used so). They all come from
// 127.0.0.1, without limits per address.
func TestShutdownWhileJoining(t *testing.T) {
	s := NewServer(new(LocalBus), &Options{AddrConns: -1, AddrJoinRate: -1})
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws?room=r&name=n"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var joined, refused atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				select {
				case <-stop:
					return
				default:
				}
				c, resp, err := websocket.Dial(ctx, url, nil)
				switch {
				case err == nil:
					joined.Add(1)
					c.CloseNow()
				case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
					refused.Add(1)
				default:
					t.Errorf("Dial: %v", err)
					return
				}
			}
		})
	}
	for joined.Load() < 50 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	for refused.Load() < 50 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d members joined, %d refused", joined.Load(), refused.Load())
	if refused.Load() < 50 {
		t.Errorf("%d members refused after Shutdown, want 50 at least", refused.Load())
	}
	if _, resp, err := websocket.Dial(ctx, url, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("Dial after Shutdown: %v, want a 503 refusal", err)
	}
	// The page asks /ws/check why its join failed: as /ws refuses it.
	resp, err := hs.Client().Get(hs.URL + "/ws/check?room=r&name=n")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	const want = "websocket: server shutting down\n"
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusServiceUnavailable || string(body) != want {
		t.Errorf("/ws/check after Shutdown: %d %q, want 503 %q", resp.StatusCode, body, want)
	}
}

// heldBus is a bus whose Publish holds the joins, until release delivers
// them, and refuses every message.
type heldBus struct {
	LocalBus
	mu      sync.Mutex
	joins   []Event // guarded by mu
	room    string  // guarded by mu
	leaves  []Event // guarded by mu: every leave published
	refused atomic.Int64
}

func (b *heldBus) Publish(room string, ev Event) error {
	switch ev.Type {
	case "join":
		b.mu.Lock()
		b.joins, b.room = append(b.joins, ev), room
		b.mu.Unlock()
		return nil
	case "leave":
		b.mu.Lock()
		b.leaves = append(b.leaves, ev)
		b.mu.Unlock()
	case "message":
		b.refused.Add(1)
		return errors.New("the bus refuses")
	}
	return b.LocalBus.Publish(room, ev)
}

func (b *heldBus) release() {
	b.mu.Lock()
	joins, room := b.joins, b.room
	b.joins = nil
	b.mu.Unlock()
	for _, ev := range joins {
		b.LocalBus.Publish(room, ev)
	}
}

// joinA serves s, and joins a member named a to its room r; it returns
// the connection and a context for the test's calls, both ended when the
// test ends.
func joinA(t *testing.T, s *Server) (context.Context, *websocket.Conn) {
	t.Helper()
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx, join(t, ctx, hs, "a")
}

// join joins a member named name to room r of hs, until the test ends.
func join(t *testing.T, ctx context.Context, hs *httptest.Server, name string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws?room=r&name="+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// A member whose message is refused while its join is still held by the
// bus (Redis unreachable, say) gets its own join first, and the error
// after it, as the package documents: the error came first.
func TestErrorAfterOwnJoin(t *testing.T) {
	bus := new(heldBus)
	ctx, c := joinA(t, NewServer(bus, nil))
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	for bus.refused.Load() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the message never reached the bus")
		}
		time.Sleep(time.Millisecond)
	}
	bus.release()
	for _, want := range []string{
		`{"type":"join","name":"a","members":["a"]}`,
		`{"type":"error","text":"not sent: the bus refuses"}`,
	} {
		_, p, err := c.Read(ctx)
		if err != nil || string(p) != want {
			t.Fatalf("got %s, %v; want %s", p, err, want)
		}
	}
}

// TestJoinWait: a member whose join the bus holds (Redis unreachable,
// say) is closed with 1013 once JoinWait has passed, and its leave is
// published behind the join. It waited, told nothing, for as long as the
// bus held the join.
func TestJoinWait(t *testing.T) {
	t.Parallel()
	bus := new(heldBus)
	start := time.Now()
	ctx, c := joinA(t, NewServer(bus, &Options{JoinWait: 300 * time.Millisecond}))
	_, _, err := c.Read(ctx)
	want := websocket.CloseError{Code: websocket.StatusTryAgainLater, Reason: "the message bus did not deliver the join within 300ms"}
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce != want {
		t.Fatalf("Read: %v, want %v", err, want)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("closed after %v, before JoinWait", d)
	}
	for {
		bus.mu.Lock()
		joins, leaves := len(bus.joins), slices.Clone(bus.leaves)
		bus.mu.Unlock()
		if len(leaves) > 0 {
			if joins != 1 || len(leaves) != 1 || leaves[0].Name != "a" {
				t.Errorf("%d joins and leaves %v, want one each, of a", joins, leaves)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no leave published")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBadQuery: a query that does not parse (a semicolon in it) is
// answered with 400, saying why. URL.Query dropped the pair, and
// room=a;b joined the lobby.
func TestBadQuery(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(NewServer(new(LocalBus), nil).Handler())
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws?room=a;b&name=bob", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest || !strings.Contains(err.Error(), "bad query: invalid semicolon separator in query") {
		t.Fatalf("Dial: %v, want 400 for the bad query", err)
	}
}

// TestNames: a room or member name is refused with 400 when it holds a
// control character (a newline or an escape would reach every member's
// log and terminal as one), a bidirectional override or isolate (which
// turn the text after them around), or spaces alone; names of emoji
// joined with zero-width joiners, and spaces between words, are taken.
// Before, every one was taken.
func TestNames(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(NewServer(new(LocalBus), nil).Handler())
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const refused = "room and name: at most 64 bytes of UTF-8 each, not blank, without control characters"
	for _, tc := range []struct {
		room, name string
		ok         bool
	}{
		{"lobby", "ann lee", true},
		{"\u00e9t\u00e9", "\U0001f469\u200d\U0001f4bb", true},
		{"lobby", "a\nb", false},
		{"lobby", "\x00", false},
		{"lobby", "\x1b[31mred", false},
		{"lobby", "\u0085", false},
		{"lobby", "abc\u202edcba", false},
		{"lobby", "x\u2066y", false},
		{"lobby", "   ", false},
		{"\t", "ann", false},
		{" \u3000", "ann", false},
	} {
		q := url.Values{"room": {tc.room}, "name": {tc.name}}
		c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws?"+q.Encode(), nil)
		if tc.ok {
			if err != nil {
				t.Errorf("room %q, name %q: %v, want taken", tc.room, tc.name, err)
				continue
			}
			c.CloseNow()
			continue
		}
		if err == nil {
			c.CloseNow()
		}
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest || !strings.Contains(err.Error(), refused) {
			t.Errorf("room %q, name %q: %v, want 400 saying %q", tc.room, tc.name, err, refused)
		}
	}
}

// A member that says more than its rate allows gets an error for each
// message past it, which no one receives: exactly as many messages go as
// the burst allows, at rates too slow to refill during the test.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    Options
		sizes   []int
		sent    []bool
		tooFast string
	}{
		{"messages", Options{MessageRate: 0.001, ByteRate: -1}, []int{1, 1, 1, 1, 1}, []bool{true, false, false, false, false}, "not sent: more than 0.001 messages a second"},
		{"bytes", Options{MessageRate: -1, ByteRate: 0.001}, []int{40 << 10, 40 << 10, 20 << 10, 5 << 10}, []bool{true, false, true, false}, "not sent: more than 0.001 bytes a second"},
		{"both", Options{MessageRate: 0.001, ByteRate: 0.001}, []int{1, 1, 1}, []bool{true, false, false}, "not sent: more than 0.001 messages or 0.001 bytes a second"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, c := joinA(t, NewServer(new(LocalBus), &tc.opts))
			if _, p, err := c.Read(ctx); err != nil || string(p) != `{"type":"join","name":"a","members":["a"]}` {
				t.Fatalf("got %s, %v; want the join", p, err)
			}
			var want []string
			for i, n := range tc.sizes {
				text := strings.Repeat(string(rune('a'+i)), n)
				if err := c.Write(ctx, websocket.MessageText, []byte(text)); err != nil {
					t.Fatal(err)
				}
				if tc.sent[i] {
					want = append(want, `{"type":"message","from":"a","text":"`+text+`"}`)
				} else {
					want = append(want, `{"type":"error","text":"`+tc.tooFast+`"}`)
				}
				// One at a time: an error and a message go by different
				// ways, in no set order between them.
				_, p, err := c.Read(ctx)
				if err != nil || string(p) != want[i] {
					t.Fatalf("message %d (%d bytes): got %.80s, %v; want %.80s", i, n, p, err, want[i])
				}
			}
		})
	}
}

// The byte rate counts what every member is sent, the text as JSON: a
// text of "<" is six times its length there (\u003c). A message larger
// than the burst goes when the budget is whole, and leaves it in debt.
func TestRateCountsSentBytes(t *testing.T) {
	t.Parallel()
	ctx, c := joinA(t, NewServer(new(LocalBus), &Options{MessageRate: -1, ByteRate: 0.001}))
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("<", 20000)
	for _, tc := range []struct{ text, want string }{
		{big, `{"type":"message","from":"a","text":"` + strings.Repeat(`\u003c`, 20000) + `"}`},
		{"a", `{"type":"error","text":"not sent: more than 0.001 bytes a second"}`},
	} {
		if err := c.Write(ctx, websocket.MessageText, []byte(tc.text)); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.Read(ctx); err != nil || string(p) != tc.want {
			t.Fatalf("%.20q: got %.80s, %v; want %.80s", tc.text, p, err, tc.want)
		}
	}
}

// sentSize is the length of the text's JSON string, quotes aside.
func TestSentSize(t *testing.T) {
	for _, s := range []string{"", "abc", "<>&", "\"\\\b\f\n\r\t\x01\x1f\x7f", "\u2028\u2029\u2027é€😀", strings.Repeat("a<\x00\u2028", 100)} {
		p, _ := json.Marshal(s)
		if got, want := sentSize([]byte(s)), len(p)-2; got != want {
			t.Errorf("sentSize(%q) = %d, JSON's %d", s, got, want)
		}
	}
}

// Rates that bound nothing sensible: NaN is the default, +Inf no bound.
// An address's rates are four times a member's unless set, none when a
// member's are none; a site's, SiteAddrs times an address's, 8 unless
// set.
func TestRateOptions(t *testing.T) {
	for _, tc := range []struct {
		msgs, bytes                 float64
		addrMsgs, addrBytes         float64
		siteAddrs                   int
		tooFast, addrFast, siteFast string
	}{
		{0, 0, 0, 0, 0, "more than 5 messages or 65536 bytes a second", "more than 20 messages or 262144 bytes a second from one address", "more than 160 messages or 2097152 bytes a second from one IPv6 /48"},
		{math.NaN(), math.NaN(), math.NaN(), math.NaN(), 0, "more than 5 messages or 65536 bytes a second", "more than 20 messages or 262144 bytes a second from one address", "more than 160 messages or 2097152 bytes a second from one IPv6 /48"},
		{math.Inf(1), 100, 0, 0, 3, "more than 100 bytes a second", "more than 400 bytes a second from one address", "more than 1200 bytes a second from one IPv6 /48"},
		{-1, 2.5, 7, 0, 1, "more than 2.5 bytes a second", "more than 7 messages or 10 bytes a second from one address", "more than 7 messages or 10 bytes a second from one IPv6 /48"},
	} {
		s := NewServer(new(LocalBus), &Options{MessageRate: tc.msgs, ByteRate: tc.bytes, AddrMessageRate: tc.addrMsgs, AddrByteRate: tc.addrBytes, SiteAddrs: tc.siteAddrs})
		if s.tooFast.Error() != tc.tooFast {
			t.Errorf("rates %v and %v: %q, want %q", tc.msgs, tc.bytes, s.tooFast, tc.tooFast)
		}
		if s.addrs.addr.tooFast.Error() != tc.addrFast {
			t.Errorf("rates %v, %v, %v and %v: %q, want %q", tc.msgs, tc.bytes, tc.addrMsgs, tc.addrBytes, s.addrs.addr.tooFast, tc.addrFast)
		}
		if s.addrs.site.tooFast.Error() != tc.siteFast {
			t.Errorf("rates %v, %v, %v and %v, %d addresses a site: %q, want %q", tc.msgs, tc.bytes, tc.addrMsgs, tc.addrBytes, tc.siteAddrs, s.addrs.site.tooFast, tc.siteFast)
		}
		if math.IsInf(tc.msgs, 1) && s.opts.MessageRate >= 0 {
			t.Errorf("rate +Inf taken as %v, not as no bound", s.opts.MessageRate)
		}
	}
	if s := NewServer(new(LocalBus), &Options{SiteAddrs: -1}); s.addrs.site != nil {
		t.Errorf("SiteAddrs -1: sites bounded by %+v, want no bound", s.addrs.site)
	}
	off := &Options{AddrConns: -1, AddrJoinRate: -1, AddrMessageRate: -1, AddrByteRate: math.Inf(1)}
	if s := NewServer(new(LocalBus), off); s.addrs != nil {
		t.Errorf("limits per address all off: %+v, want none", s.addrs)
	}
}

// A member answered with 1003 for a binary message says nothing more to
// the room: the text messages it sent before it answered the close (a
// hostile client never does, for the whole close timeout) went to every
// member.
func TestNothingSaidAfter1003(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(NewServer(new(LocalBus), nil).Handler())
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := join(t, ctx, hs, "a")
	if _, p, err := a.Read(ctx); err != nil || string(p) != `{"type":"join","name":"a","members":["a"]}` {
		t.Fatalf("got %s, %v; want a's join", p, err)
	}
	m := join(t, ctx, hs, "m")
	for _, data := range []struct {
		typ websocket.MessageType
		p   string
	}{{websocket.MessageBinary, "\x01"}, {websocket.MessageText, "after the binary"}, {websocket.MessageText, "and more"}} {
		if err := m.Write(ctx, data.typ, []byte(data.p)); err != nil {
			t.Fatal(err)
		}
	}
	// m answers the close only now: its close comes after its texts.
	if err := m.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("m's Close: %v, want the server's answer", err)
	}
	var got []string
	for !slices.Contains(got, `{"type":"leave","name":"m"}`) {
		_, p, err := a.Read(ctx)
		if err != nil {
			t.Fatalf("a's Read after %q: %v", got, err)
		}
		got = append(got, string(p))
	}
	want := []string{
		`{"type":"join","name":"m"}`,
		`{"type":"leave","name":"m"}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("a got %q, want %q", got, want)
	}
}

// TestIdleConnsClosed: Run closes an HTTP connection that fetched the
// page and waits for its next request once Options.IdleTimeout has
// passed; it kept it for good, with its goroutine and buffers. A member
// as quiet meanwhile stays.
func TestIdleConnsClosed(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		s := NewServer(new(LocalBus), &Options{IdleTimeout: idle})
		done <- Run(ctx, "127.0.0.1:0", s, func(url string) { urls <- url })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	page := <-urls
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	c, _, err := websocket.Dial(wctx, "ws"+strings.TrimPrefix(page, "http")+"ws?name=a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, p, err := c.Read(wctx); err != nil || string(p) != `{"type":"join","name":"a","members":["a"]}` {
		t.Fatalf("got %s, %v; want a's join", p, err)
	}
	cmdtest.IdleClosed(t, page, idle)
	if err := c.Write(wctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.Read(wctx); err != nil || string(p) != `{"type":"message","from":"a","text":"still here"}` {
		t.Fatalf("got %s, %v; want a's message back", p, err)
	}
}

// A leave from another server of a member this server never saw join (it
// joined before this server followed the room, and left before its server
// answered the roll call, which, with no member left there, says nothing)
// changes nothing in the roster, but a member that keeps the list from
// the joins and leaves, as the page does, takes the name off: here the
// name of bob, still in the room. The leave carried the whole list before
// 7c46182.
func TestLeaveOfUnknownMember(t *testing.T) {
	bus := new(LocalBus)
	hs := httptest.NewServer(NewServer(bus, nil).Handler())
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws?room=r&name="
	bob := chattest.Join(t, url+"bob", "bob")
	// Server B's bob, joined long before, leaves ahead of B's answer.
	bus.Publish("r", Event{Type: "leave", Origin: "B", Member: "1", Name: "bob"})
	carol := chattest.Join(t, url+"carol", "carol")
	bob.WaitFor(t, "carol's join", func(got []chattest.Message) bool {
		return slices.Contains(chattest.Roster(got), "carol")
	})
	want := carol.Messages()[0].Members // the server's list, in carol's own join
	if got := chattest.Roster(bob.Messages()); !slices.Equal(got, want) {
		t.Errorf("bob's list: %q; the server's: %q", got, want)
	}
}
