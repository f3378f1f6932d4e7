package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/examples/chat/chat"
	"github.com/rfc6455/websocket/examples/internal/chattest"
	"github.com/rfc6455/websocket/examples/internal/cmdtest"
)

// chatPath is the chat server, built once for all the tests, which run it
// as a process.
var chatPath string

// TestMain builds the chat server (with the race detector when the tests
// have it) and fails the run when goroutines outlive the tests.
func TestMain(m *testing.M) { cmdtest.Main(m, raceEnabled, &chatPath) }

// TestRooms has 20 members in each of 5 rooms send 50 messages each, all
// at once: every member must receive exactly the 1,000 messages of its
// room, each sender's in the order sent, in the same order as every other
// member of the room.
func TestRooms(t *testing.T) {
	t.Parallel()
	const rooms, perRoom, each = 5, 20, 50
	s := chattest.Start(t, chatPath, slices.Concat(chattest.Unbounded, chattest.OneAddress)...)
	members := make([][]*chattest.Member, rooms)
	for r := range rooms {
		for i := range perRoom {
			members[r] = append(members[r], chattest.Join(t, s.WS(fmt.Sprint("room", r), fmt.Sprintf("m%d-%d", r, i)), fmt.Sprintf("m%d-%d", r, i)))
		}
	}
	// The last to join saw the whole room in its own join.
	for r := range rooms {
		last := members[r][perRoom-1]
		if n := len(last.Messages()[0].Members); n != perRoom {
			t.Errorf("%s joined a room of %d members, want %d", last.Name, n, perRoom)
		}
	}

	start := time.Now()
	chattest.Say(t, slices.Concat(members...), each, 0, nil)
	for r := range rooms {
		chattest.CheckRoom(t, members[r], each, time.Minute)
	}
	t.Logf("%d messages to %d members in %v", rooms*perRoom*each, rooms*perRoom, time.Since(start))
}

func count(got []chattest.Message, typ string) int {
	n := 0
	for _, m := range got {
		if m.Type == typ {
			n++
		}
	}
	return n
}

// TestStalledMember has a member stop reading while another sends 16 KiB
// messages: once its queue is full the server drops it, and the room,
// which never waited for it, gets every message.
func TestStalledMember(t *testing.T) {
	t.Parallel()
	s := chattest.Start(t, chatPath, chattest.Unbounded...)
	a := chattest.Join(t, s.WS("lobby", "a"), "a")
	b := chattest.Join(t, s.WS("lobby", "b"), "b")
	chattest.JoinRaw(t, s.WS("lobby", "stalled"), 4096) // and never reads
	b.WaitFor(t, "the join of stalled", func(got []chattest.Message) bool {
		return slices.ContainsFunc(got, func(m chattest.Message) bool { return m.Type == "join" && m.Name == "stalled" })
	})

	// At most 2000 messages (32 MiB), or 30 s: the queue holds 1 MiB, the
	// kernel's socket buffers some more. a and b keep up: a sends a
	// message once both have all but the last 16 it sent.
	start := time.Now()
	pad := strings.Repeat("x", 16<<10)
	sent := 0
	for ; sent < 2000 && time.Since(start) < 30*time.Second; sent++ {
		if chattest.HasLeave("stalled")(b.Messages()) {
			break
		}
		for _, m := range []*chattest.Member{a, b} {
			m.WaitFor(t, "all but 16 of the messages sent", func(got []chattest.Message) bool { return count(got, "message") >= sent-16 })
		}
		a.Send(t, fmt.Sprintf("%d %s", sent, pad))
	}
	b.WaitForWithin(t, 20*time.Second, "the leave of stalled", chattest.HasLeave("stalled"))
	dropped := time.Since(start)
	t.Logf("stalled dropped after %d messages (%d MiB), %v", sent, sent*len(pad)>>20, dropped)
	if dropped > 25*time.Second {
		t.Errorf("stalled dropped %v after the first message, want within 25 s", dropped)
	}
	a.Send(t, "after")
	sent++

	for _, m := range []*chattest.Member{a, b} {
		m.WaitFor(t, "every message", func(got []chattest.Message) bool { return count(got, "message") >= sent })
		texts := m.Texts()
		if len(texts) != sent {
			t.Errorf("%s got %d messages, want %d", m.Name, len(texts), sent)
		}
		for i, text := range texts[:len(texts)-1] {
			if want := fmt.Sprintf("a: %d %s", i, pad); text != want {
				t.Fatalf("%s: message %d is %.20q, want %.20q", m.Name, i, text, want)
			}
		}
		if texts[len(texts)-1] != "a: after" {
			t.Errorf("%s: last message %q", m.Name, texts[len(texts)-1])
		}
	}
	// Its socket full, the close frame (1008) never reached it. The
	// server logs that after the leave the room heard.
	const why = `"stalled" left "lobby": websocket: read: connection closed: write queue full: the peer reads too slowly: the closing handshake timed out: the close frame could not be sent`
	if log := s.AwaitLog(why); !strings.Contains(log, why) {
		t.Errorf("the server's log does not say why stalled left:\n%s", log)
	}
}

// TestFlood: a member that says more than the default rate (5 messages a
// second, bursts of 10) gets an error for each message past it, and the
// room gets the rest: of 100 messages sent at once, about 10.
func TestFlood(t *testing.T) {
	t.Parallel()
	s := chattest.Start(t, chatPath)
	a := chattest.Join(t, s.WS("lobby", "a"), "a")
	b := chattest.Join(t, s.WS("lobby", "b"), "b")
	const n = 100
	start := time.Now()
	for i := range n {
		a.Send(t, fmt.Sprint(i))
	}
	took := time.Since(start)
	a.WaitFor(t, "an answer to each message", func(got []chattest.Message) bool {
		return count(got, "message")+count(got, "error") == n
	})
	said := count(a.Messages(), "message")
	// The burst, and what the rate adds while the messages go out.
	if most := 10 + int(5*took.Seconds()) + 1; said < 10 || said > most {
		t.Errorf("%d of %d messages said in %v, want 10 to %d", said, n, took, most)
	}
	for _, m := range a.Messages() {
		if m.Type == "error" && m.Text != "not sent: more than 5 messages or 65536 bytes a second" {
			t.Fatalf("error %q", m.Text)
		}
	}
	b.WaitFor(t, "the messages said", func(got []chattest.Message) bool { return count(got, "message") == said })
	t.Logf("%d of %d messages said in %v", said, n, took)
}

// TestSilentMember has a member that reads but answers no ping: with a
// ping after 250 ms of silence and 2 s for the answer, it is dropped with
// 1011 2.25 s after it last sent anything, while a member that answers
// stays. (The answer has two seconds, not less: under the race detector,
// with every package's tests running beside it, this test once saw the
// server and the member that answers kept from running for more than a
// second, and that member was dropped too.)
func TestSilentMember(t *testing.T) {
	t.Parallel()
	const interval, timeout = 250 * time.Millisecond, 2 * time.Second
	s := chattest.Start(t, chatPath, "-ping-interval", interval.String(), "-pong-timeout", timeout.String())
	a := chattest.Join(t, s.WS("lobby", "a"), "a")
	// Before the handshake, the last thing it sends.
	joining := time.Now()
	silent := chattest.JoinRaw(t, s.WS("lobby", "silent"), 0)

	silent.Conn.SetReadDeadline(time.Now().Add(chattest.Wait))
	var pings int
	var closeFrame []byte
	for closeFrame == nil {
		f, err := silent.ReadFrame()
		if err != nil {
			t.Fatalf("silent: %v, before a close frame", err)
		}
		switch f.Op {
		case 9:
			pings++
		case 8:
			closeFrame = f.Payload
		}
	}
	elapsed := time.Since(joining)
	if _, err := silent.ReadFrame(); err != io.EOF {
		t.Errorf("silent: after the close frame, %v, want EOF", err)
	}
	if pings != 1 {
		t.Errorf("silent got %d pings, want 1", pings)
	}
	if len(closeFrame) < 2 || closeFrame[0] != 0x03 || closeFrame[1] != 0xf3 {
		t.Errorf("silent: close frame %q, want code 1011", closeFrame)
	}
	// The race detector slows the server.
	if elapsed < interval+timeout || elapsed > interval+timeout+2*time.Second {
		t.Errorf("silent dropped %v after it began joining, want %v", elapsed, interval+timeout)
	}
	t.Logf("silent dropped %v after it began joining: %q", elapsed, closeFrame)
	a.WaitFor(t, "the leave of silent", chattest.HasLeave("silent"))

	// a answers pings: twice as long later, it is still there.
	time.Sleep(2 * (interval + timeout))
	a.Send(t, "still here")
	a.WaitFor(t, "its message", func(got []chattest.Message) bool { return count(got, "message") == 1 })
	if got := a.Texts(); !slices.Equal(got, []string{"a: still here"}) {
		t.Errorf("a got %q", got)
	}
}

// TestShutdown stops the server with SIGINT and with SIGTERM: every member
// gets 1001 and the server exits 0.
func TestShutdown(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			s := chattest.Start(t, chatPath)
			var members []*chattest.Member
			for _, room := range []string{"one", "two"} {
				for _, name := range []string{"a", "b", "c"} {
					members = append(members, chattest.Join(t, s.WS(room, name), name))
				}
			}
			start := time.Now()
			s.Signal(t, sig)
			want := websocket.CloseError{Code: websocket.StatusGoingAway, Reason: "server shutting down"}
			for _, m := range members {
				var ce websocket.CloseError
				if err := m.Closed(t); !errors.As(err, &ce) || ce != want {
					t.Errorf("%s: %v, want %v", m.Name, err, want)
				}
			}
			if code := s.ExitCode(t, 15*time.Second); code != 0 {
				t.Errorf("exit code %d, want 0; log:\n%s", code, s.Log())
			}
			t.Logf("exited %v after %v", time.Since(start), sig)
		})
	}
}

// TestRequests covers the page, bad names, and messages members may not
// send.
func TestRequests(t *testing.T) {
	t.Parallel()
	s := chattest.Start(t, chatPath)
	ctx, cancel := context.WithTimeout(context.Background(), chattest.Wait)
	defer cancel()

	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(string(page), "<title>WebSocket chat</title>") {
		t.Errorf("GET /: %s %q, %.40q", resp.Status, resp.Header.Get("Content-Type"), page)
	}

	for _, url := range []string{
		s.WS(strings.Repeat("r", 65), "a"),
		s.WS("lobby", strings.Repeat("n", 65)),
		s.WS("lobby", "\xff"),
	} {
		_, resp, err := websocket.Dial(ctx, url, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %v, want 400", url, err)
		}
	}

	// Without a room, the lobby; without a name, anonymous.
	a := chattest.Join(t, s.WS("lobby", "a"), "a")
	chattest.Join(t, strings.TrimSuffix(s.WS("", ""), "?room=&name="), "anonymous")
	a.WaitFor(t, "anonymous's join", func(got []chattest.Message) bool { return len(got) == 2 })
	if got := a.Messages()[1]; got.Type != "join" || got.Name != "anonymous" || got.Members != nil {
		t.Errorf("a got %+v, want the join of anonymous, its name alone", got)
	}
	if got := chattest.Roster(a.Messages()); !slices.Equal(got, []string{"a", "anonymous"}) {
		t.Errorf("a's members: %q, want a and anonymous", got)
	}

	for _, tt := range []struct {
		name string
		typ  websocket.MessageType
		p    []byte
		want websocket.StatusCode
	}{
		{"binary", websocket.MessageBinary, []byte("hi"), websocket.StatusUnsupportedData},
		{"long", websocket.MessageText, []byte(strings.Repeat("x", chat.MaxMessage+1)), websocket.StatusMessageTooBig},
	} {
		m := chattest.Join(t, s.WS("lobby", tt.name), tt.name)
		if err := m.Write(ctx, tt.typ, tt.p); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var ce websocket.CloseError
		if err := m.Closed(t); !errors.As(err, &ce) || ce.Code != tt.want {
			t.Errorf("%s: %v, want a close with %v", tt.name, err, tt.want)
		}
	}
	// And the room heard none of it.
	a.WaitFor(t, "the leave of long", chattest.HasLeave("long"))
	if got := a.Texts(); len(got) != 0 {
		t.Errorf("a got %q", got)
	}
}

// TestSecondSignalKills: a shutdown waits for a member that does not
// answer the close frame (up to 10 s); a second SIGTERM ends the server at
// once, as the default action of the signal does.
func TestSecondSignalKills(t *testing.T) {
	t.Parallel()
	s := chattest.Start(t, chatPath)
	mute := chattest.JoinRaw(t, s.WS("lobby", "mute"), 0)
	s.Signal(t, syscall.SIGTERM)
	// The close frame, 1001, says the first signal was taken.
	for {
		f, err := mute.ReadFrame()
		if err != nil {
			t.Fatalf("reading up to the close frame: %v", err)
		}
		if f.Op == 8 {
			break
		}
	}
	start := time.Now()
	s.Signal(t, syscall.SIGTERM)
	if code := s.ExitCode(t, 5*time.Second); code != -1 {
		t.Errorf("exit code %d, want -1, killed by the signal", code)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the server took %v to end after the second signal", took)
	}
}

// TestArguments: an argument that is not a flag is a wrong command line,
// named, with exit code 2: flag stops at the first such argument, and
// `chat 127.0.0.1:9000 -msg-rate 1` served on 127.0.0.1:8080 at the
// default rate, the rest unread.
func TestArguments(t *testing.T) {
	t.Parallel()
	cmdtest.Refused(t, chatPath, []string{"-addr", "127.0.0.1:0", "127.0.0.1:9000", "-msg-rate", "1"},
		`unexpected argument "127.0.0.1:9000": flags only (an address goes after -addr)`)
}

// TestJoinsCostNames: each join costs a member already in the room the
// joiner's name, not the room's: 200 joins of 64-byte names sent each
// member the whole list each time, 1.37 MB to a member, the rate limits
// bounding only messages.
func TestJoinsCostNames(t *testing.T) {
	t.Parallel()
	const n = 200
	s := chattest.Start(t, chatPath, chattest.OneAddress...)
	first := chattest.JoinRaw(t, s.WS("lobby", "first"), 0)
	first.Conn.SetReadDeadline(time.Now().Add(time.Minute))
	if f, err := first.ReadFrame(); err != nil || string(f.Payload) != `{"type":"join","name":"first","members":["first"]}` {
		t.Fatalf("first's own join: %q, %v", f.Payload, err)
	}
	name := func(i int) string { return fmt.Sprintf("%064d", i) }
	got := make(chan int, 1)
	// Until n joins, not until the last name's: the server publishes a
	// join after its handshake, and two handshakes close together may
	// publish theirs in either order.
	go func() {
		bytes := 0
		for joins := 0; joins < n; {
			f, err := first.ReadFrame()
			if err != nil {
				t.Errorf("first: %v after %d bytes", err, bytes)
				break
			}
			if f.Op == 1 {
				bytes += len(f.Payload)
				joins++
			}
		}
		got <- bytes
	}()
	for i := range n {
		r := chattest.JoinRaw(t, s.WS("lobby", name(i)), 0)
		go io.Copy(io.Discard, r.Conn) // reads on, to stay in the room
	}
	bytes := <-got
	// n joins of 89 bytes each.
	if want := n * 89; bytes != want {
		t.Errorf("%d joins sent a member %d bytes, want %d: the joiner's name each", n, bytes, want)
	}
}

// TestAddrFlags: -addr-conns, -addr-join-rate and -client-ip-header set
// the limits per address. From one address, as X-Real-IP tells it, a
// second member is refused with 429 while the first is there; once it
// has gone, a join past the rate is refused, with the Retry-After of the
// 1,000 seconds a join takes to come back. d, from 127.0.0.1, is not
// counted with them.
func TestAddrFlags(t *testing.T) {
	t.Parallel()
	s := chattest.Start(t, chatPath, "-addr-conns", "1", "-addr-join-rate", "0.001", "-client-ip-header", "X-Real-IP")
	ctx, cancel := context.WithTimeout(context.Background(), chattest.Wait)
	defer cancel()
	d := chattest.Join(t, s.WS("lobby", "d"), "d")
	dial := func(name string) (*websocket.Conn, *http.Response, error) {
		c, resp, err := websocket.Dial(ctx, s.WS("lobby", name), &websocket.DialOptions{Header: http.Header{"X-Real-IP": {"192.0.2.1"}}})
		if err == nil {
			t.Cleanup(func() { c.CloseNow() })
		}
		return c, resp, err
	}
	a, _, err := dial("a")
	if err != nil {
		t.Fatal(err)
	}
	refused := func(name, want, retryAfter string) {
		t.Helper()
		_, resp, err := dial(name)
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(err.Error(), want) || resp.Header.Get("Retry-After") != retryAfter {
			t.Errorf("%s: %v, want 429 %q with Retry-After %q", name, err, want, retryAfter)
		}
	}
	refused("b", "more than 1 members from one address", "")
	a.Close(websocket.StatusNormalClosure, "")
	d.WaitFor(t, "the leave of a", chattest.HasLeave("a"))
	refused("c", "more than 0.001 joins a second from one address", "1000")
}
