package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

// redisServer is a redis-server process on a loopback port, with its
// data in a directory of the test's, written to its append-only file and
// synced on every write.
type redisServer struct {
	path   string // of redis-server
	dir    string
	port   int
	cmd    *exec.Cmd
	out    *cmdtest.Output
	exited chan struct{}
}

// startRedis starts redis-server. Without it on PATH the test is
// skipped, or fails when CI=true.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but no redis-server: %v", err)
		}
		t.Skipf("no redis-server (on Debian, apt-get install redis-server): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &redisServer{path: path, dir: t.TempDir(), port: port}
	r.start(t)
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.exited
		if t.Failed() {
			t.Logf("redis-server's log:\n%s", r.out.String())
		}
	})
	return r
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// start starts redis-server on r's port and directory, and waits until it
// has loaded its data and takes connections. The port was free when
// startRedis found it, but an outgoing connection of a test running
// beside may be given it as its own port meanwhile: a server that finds
// it taken is started again until chattest.Wait has passed.
func (r *redisServer) start(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(chattest.Wait)
	for !r.tryStart(t, deadline) {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server could not listen on port %d for %v: %s", r.port, chattest.Wait, r.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tryStart starts redis-server once, as start does, and reports false if
// it exited because its port was taken.
func (r *redisServer) tryStart(t *testing.T, deadline time.Time) bool {
	t.Helper()
	r.cmd = exec.Command(r.path,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "")
	r.out = new(cmdtest.Output)
	r.cmd.Stdout = r.out
	r.cmd.Stderr = r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	r.exited = exited
	go func() {
		r.cmd.Wait()
		close(exited)
	}()
	for !strings.Contains(r.out.String(), "Ready to accept connections") {
		select {
		case <-exited:
			if strings.Contains(r.out.String(), "Address already in use") {
				return false
			}
			t.Fatalf("redis-server exited: %s", r.out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server not ready after %v: %s", chattest.Wait, r.out.String())
		}
	}
	return true
}

// kill kills redis-server with SIGKILL and waits for it to exit.
func (r *redisServer) kill(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-r.exited
}

// client returns a client of r's, closed when the test ends.
func (r *redisServer) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr(), DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// startTwo starts Redis, and two chat servers against it, whose members
// may say as much as they like, and join as often.
func startTwo(t *testing.T) (*redisServer, *chattest.Server, *chattest.Server) {
	t.Helper()
	r := startRedis(t)
	args := slices.Concat([]string{"-redis", r.addr()}, chattest.Unbounded, chattest.OneAddress)
	return r, chattest.Start(t, chatPath, args...), chattest.Start(t, chatPath, args...)
}

// joinAll joins, for each room, three members to each server, and waits
// until each sees all six in the room.
func joinAll(t *testing.T, servers []*chattest.Server, rooms ...string) [][]*chattest.Member {
	t.Helper()
	members := make([][]*chattest.Member, len(rooms))
	for i, room := range rooms {
		for j, s := range servers {
			for k := range 3 {
				name := fmt.Sprintf("%s-s%d-%d", room, j+1, k)
				members[i] = append(members[i], chattest.Join(t, s.WS(room, name), name))
			}
		}
	}
	for _, room := range members {
		for _, m := range room {
			m.WaitFor(t, "the room's members", func(got []chattest.Message) bool {
				return len(chattest.Roster(got)) == len(room)
			})
		}
	}
	return members
}

// TestRedisRestart runs two chat servers against one Redis, three
// members of each in each of two rooms, all sending 30 messages, 50 ms
// apart; Redis is killed (SIGKILL) after a third are sent and restarted
// once two thirds are: every member receives every message of its room
// exactly once, and all in the same order, on both servers.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	r, s1, s2 := startTwo(t)
	rooms := joinAll(t, []*chattest.Server{s1, s2}, "one", "two")
	all := slices.Concat(rooms...)

	const each = 30
	total := int64(len(all) * each)
	var sent atomic.Int64
	said := make(chan struct{})
	go func() {
		defer close(said)
		chattest.Say(t, all, each, 50*time.Millisecond, &sent)
	}()
	waitSent := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(chattest.Wait)
		for sent.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d messages sent after %v, want %d", sent.Load(), chattest.Wait, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitSent(total / 3)
	r.kill(t)
	killed := time.Now()
	waitSent(2 * total / 3)
	r.start(t)
	t.Logf("Redis was down %v; %d messages sent meanwhile", time.Since(killed).Round(time.Millisecond), 2*total/3-total/3)
	<-said

	for _, room := range rooms {
		chattest.CheckRoom(t, room, each, 30*time.Second)
		for _, m := range room {
			if slices.ContainsFunc(m.Messages(), func(msg chattest.Message) bool { return msg.Type == "error" }) {
				t.Errorf("%s was told a message was not sent", m.Name)
			}
		}
	}
	// Each room's stream expires a day after its last event.
	for _, room := range []string{"one", "two"} {
		ttl, err := r.client(t).TTL(context.Background(), streamPrefix+room).Result()
		if err != nil || ttl <= streamIdle-time.Minute || ttl > streamIdle {
			t.Errorf("stream of room %s: TTL %v (%v), want just under %v", room, ttl, err, streamIdle)
		}
	}
}

// TestRepeatedEntry writes into a room's stream copies of a message, as
// a write retried after a timeout may: no member receives it twice, nor
// does one that joined between the original and a copy receive it.
func TestRepeatedEntry(t *testing.T) {
	t.Parallel()
	r, s1, s2 := startTwo(t)
	a := chattest.Join(t, s1.WS("lobby", "a"), "a")
	b := chattest.Join(t, s2.WS("lobby", "b"), "b")
	a.Send(t, "first")
	for _, m := range []*chattest.Member{a, b} {
		m.WaitFor(t, "the first message", func(got []chattest.Message) bool { return len(chattest.Texts(got)) == 1 })
	}

	rdb := r.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), chattest.Wait)
	defer cancel()
	entries, err := rdb.XRange(ctx, streamPrefix+"lobby", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var first *redis.XMessage
	for _, e := range entries {
		if strings.Contains(e.Values["event"].(string), `"text":"first"`) {
			first = &e
		}
	}
	if first == nil {
		t.Fatalf("no entry of the first message among %v", entries)
	}
	repeat := func() {
		t.Helper()
		err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: streamPrefix + "lobby", Values: []any{"id", first.Values["id"], "event", first.Values["event"]}}).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Right after the original, as a retry would write it.
	repeat()

	// Then a's server goes, and c's, new, begins following the room; a
	// copy after that is not for c.
	s1.Signal(t, syscall.SIGTERM)
	b.WaitFor(t, "the leave of a", chattest.HasLeave("a"))
	s3 := chattest.Start(t, chatPath, "-redis", r.addr())
	c := chattest.Join(t, s3.WS("lobby", "c"), "c")
	repeat()

	b.Send(t, "second")
	for _, tt := range []struct {
		m    *chattest.Member
		want []string
	}{
		{b, []string{"a: first", "b: second"}},
		{c, []string{"b: second"}},
	} {
		tt.m.WaitFor(t, "the second message", func(got []chattest.Message) bool {
			return slices.Contains(chattest.Texts(got), "b: second")
		})
		if got := tt.m.Texts(); !slices.Equal(got, tt.want) {
			t.Errorf("%s got %q, want %q", tt.m.Name, got, tt.want)
		}
	}
	if got, want := a.Texts(), []string{"a: first"}; !slices.Equal(got, want) {
		t.Errorf("a got %q, want %q", got, want)
	}
}

// TestRedisDownTooLong stops Redis for more than 10 seconds: a message
// sent at once is held and delivered once Redis is back; one sent after
// 10 seconds is refused, and its sender told so, on the server that held
// one as on the other, which held nothing (it knows from its reader).
func TestRedisDownTooLong(t *testing.T) {
	t.Parallel()
	r, s1, s2 := startTwo(t)
	a := chattest.Join(t, s1.WS("lobby", "a"), "a")
	b := chattest.Join(t, s2.WS("lobby", "b"), "b")
	b.WaitFor(t, "the join of a", func(got []chattest.Message) bool { return len(chattest.Roster(got)) == 2 })

	r.kill(t)
	a.Send(t, "held")
	time.Sleep(holdLimit + 2*time.Second) // the server may take a while to get "held"
	a.Send(t, "refused")
	b.Send(t, "refused too")
	for _, m := range []*chattest.Member{a, b} {
		m.WaitFor(t, "an error", func(got []chattest.Message) bool {
			return slices.ContainsFunc(got, func(m chattest.Message) bool { return m.Type == "error" })
		})
	}
	r.start(t)
	// Redis is back for the servers once they have written what they held.
	for _, m := range []*chattest.Member{a, b} {
		m.WaitFor(t, "the message held", func(got []chattest.Message) bool { return slices.Contains(chattest.Texts(got), "a: held") })
	}
	a.Send(t, "after")

	for _, m := range []*chattest.Member{a, b} {
		m.WaitFor(t, "the message after", func(got []chattest.Message) bool { return slices.Contains(chattest.Texts(got), "a: after") })
		if got, want := m.Texts(), []string{"a: held", "a: after"}; !slices.Equal(got, want) {
			t.Errorf("%s got %q, want %q", m.Name, got, want)
		}
	}
	for _, m := range []*chattest.Member{a, b} {
		var errs []string
		for _, msg := range m.Messages() {
			if msg.Type == "error" {
				errs = append(errs, msg.Text)
			}
		}
		if want := []string{"not sent: " + errUnreachable.Error()}; !slices.Equal(errs, want) {
			t.Errorf("%s was told %q, want %q", m.Name, errs, want)
		}
	}
}

// TestLeaveDuringOutage: a member joins while Redis is down and leaves
// once its server refuses new events (past holdLimit): its join, held,
// and its leave both reach the room once Redis is back, and no server
// lists it. The leave was refused and lost, the held join alone written:
// every server listed the member for good. Before Redis goes, a has heard
// from w's server (its answer to the roll call of a's join, which it
// publishes on its own time): held through the outage, that answer kept
// w's server refusing late's join with 1013 until its writer's next try,
// though its reader had delivered the ghost's leave.
func TestLeaveDuringOutage(t *testing.T) {
	t.Parallel()
	r, s1, s2 := startTwo(t)
	w := chattest.Join(t, s2.WS("g", "w"), "w")
	a := chattest.Join(t, s1.WS("g", "a"), "a")
	w.WaitFor(t, "the join of a", func(got []chattest.Message) bool { return len(chattest.Roster(got)) == 2 })
	a.WaitFor(t, "the answer of w's server", func(got []chattest.Message) bool { return len(chattest.Roster(got)) == 2 })

	r.kill(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ghost, _, err := websocket.Dial(ctx, s1.WS("g", "ghost"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.CloseNow()
	time.Sleep(holdLimit + 2*time.Second) // past it, the server refuses events
	ghost.Close(websocket.StatusNormalClosure, "")
	r.start(t)
	w.WaitFor(t, "the leave of ghost", chattest.HasLeave("ghost"))
	late := chattest.Join(t, s2.WS("g", "late"), "late")
	late.WaitFor(t, "its join", func(got []chattest.Message) bool { return len(got) > 0 })
	if got, want := chattest.Roster(late.Messages()), []string{"a", "late", "w"}; !slices.Equal(got, want) {
		t.Errorf("late sees %q, want %q", got, want)
	}
}

// TestShutdownLeaves stops one of two servers with SIGTERM: its members
// get 1001, it exits 0, and the members of the other see them leave.
func TestShutdownLeaves(t *testing.T) {
	t.Parallel()
	_, s1, s2 := startTwo(t)
	rooms := joinAll(t, []*chattest.Server{s1, s2}, "one")

	s1.Signal(t, syscall.SIGTERM)
	want := websocket.CloseError{Code: websocket.StatusGoingAway, Reason: "server shutting down"}
	for _, m := range rooms[0][:3] {
		var ce websocket.CloseError
		if err := m.Closed(t); !errors.As(err, &ce) || ce != want {
			t.Errorf("%s: %v, want %v", m.Name, err, want)
		}
	}
	if code := s1.ExitCode(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0; log:\n%s", code, s1.Log())
	}
	for _, m := range rooms[0][3:] {
		m.WaitFor(t, "the others leave", func(got []chattest.Message) bool {
			return len(chattest.Roster(got)) == 3 && got[len(got)-1].Type == "leave"
		})
		if got, want := chattest.Roster(m.Messages()), []string{"one-s2-0", "one-s2-1", "one-s2-2"}; !slices.Equal(got, want) {
			t.Errorf("%s sees %q, want %q", m.Name, got, want)
		}
	}
}

// TestRedisBackJoin: the last member leaves during an outage of more than
// 10 s, which its server cannot publish; a member joining 3 s after Redis
// is back gets in. It was refused with 1013 until the reader, which
// follows no room then, happened to read again (48 s in one run).
func TestRedisBackJoin(t *testing.T) {
	t.Parallel()
	r, s, a := longOutage(t)
	a.Close()
	a.Closed(t)
	r.start(t)
	time.Sleep(3 * time.Second)
	b := chattest.Join(t, s.WS("lobby", "b"), "b")
	b.WaitFor(t, "the roll call", func(got []chattest.Message) bool { return slices.Equal(chattest.Roster(got), []string{"b"}) })
}

// TestRedisBackSend: a member that sent nothing during an outage of more
// than 10 s sends 2 s after Redis is back, and its message goes out. It
// was refused until the reader's first XREAD after the outage returned,
// up to 5 s on a quiet room.
func TestRedisBackSend(t *testing.T) {
	t.Parallel()
	r, s, a := longOutage(t)
	r.start(t)
	time.Sleep(2 * time.Second)
	a.Send(t, "after")
	a.WaitFor(t, "its message or an error", func(got []chattest.Message) bool {
		return slices.ContainsFunc(got, func(m chattest.Message) bool { return m.Type == "error" || m.Type == "message" })
	})
	if got, want := a.Texts(), []string{"a: after"}; !slices.Equal(got, want) {
		t.Errorf("a got %q, want %q; server log:\n%s", got, want, s.Log())
	}
}

// longOutage starts Redis and a chat server with a member, a, in the
// lobby, then stops Redis for longer than holdLimit.
func longOutage(t *testing.T) (*redisServer, *chattest.Server, *chattest.Member) {
	t.Helper()
	r := startRedis(t)
	s := chattest.Start(t, chatPath, "-redis", r.addr())
	a := chattest.Join(t, s.WS("lobby", "a"), "a")
	r.kill(t)
	time.Sleep(holdLimit + 2*time.Second)
	return r, s, a
}

// TestAppliedBeforeRetry: a transaction that timed out here but that
// Redis applied later (Redis stalled past opTimeout) is retried. When it
// held a subscription's start and, behind it, the bus's own events (a
// member's join, and what it sent), their first copies are in the stream
// before the retry reads where the room starts: each event is delivered
// once, in order. They were not at all: reading started after those
// copies, and their numbers counted as seen, so that the retry's copies
// were dropped as repeats and the member waited for its own join for
// good. With more of them than the retry reads of the stream's last
// entries (seedCount), reading started at the oldest it read, and the
// events before it were dropped.
func TestAppliedBeforeRetry(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, seedCount + 51} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			r := startRedis(t)
			rdb := r.client(t)
			b := newRedisBus(r.addr(), t.Logf)
			defer b.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), chattest.Wait)
			defer cancel()
			add := func(id string, ev chat.Event) {
				t.Helper()
				p, _ := json.Marshal(ev)
				if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: streamPrefix + "lobby", Values: []any{"id", id, "event", p}}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			add("other-1", chat.Event{Type: "message", Origin: "other", Member: "1", Name: "x", Text: "before"})
			evs := []chat.Event{{Type: "join", Origin: "here", Member: "1", Name: "y", Call: true}}
			for i := 2; i <= n; i++ {
				evs = append(evs, chat.Event{Type: "message", Origin: "here", Member: "1", Name: "y", Text: strconv.Itoa(i)})
			}
			for i, ev := range evs { // the first try's copies, as Redis applied them late
				add(b.writer+"-"+strconv.Itoa(i+1), ev)
			}

			got := make(chan chat.Event, 2*n+2)
			b.Subscribe("lobby", func(ev chat.Event) { got <- ev })
			for _, ev := range evs { // numbered from 1 again
				if err := b.Publish("lobby", ev); err != nil {
					t.Fatal(err)
				}
			}
			after := chat.Event{Type: "message", Origin: "other", Member: "1", Name: "x", Text: "after"}
			for i, want := range append(evs, after) {
				if i == len(evs) {
					add("other-2", after) // once the subscription has started
				}
				select {
				case ev := <-got:
					if !reflect.DeepEqual(ev, want) {
						t.Fatalf("event %d: %+v, want %+v", i, ev, want)
					}
				case <-time.After(chattest.Wait):
					t.Fatalf("event %d, %+v, not delivered", i, want)
				}
			}
			select {
			case ev := <-got:
				t.Fatalf("delivered %+v too", ev)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}

// TestRedisRefuses: Redis refuses writes (its maxmemory reached, with no
// eviction) for more than 10 seconds: a message sent then is refused,
// and its sender is told what Redis answered, not that Redis is
// unreachable, as is a member that comes then, closed with 1013; once
// Redis takes writes again, what was held goes out.
func TestRedisRefuses(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := chattest.Start(t, chatPath, "-redis", r.addr())
	a := chattest.Join(t, s.WS("lobby", "a"), "a")
	rdb := r.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", "1"}} {
		if err := rdb.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	a.Send(t, "held")
	time.Sleep(holdLimit + time.Second)
	a.Send(t, "refused")
	a.WaitFor(t, "an error", func(got []chattest.Message) bool {
		return slices.ContainsFunc(got, func(m chattest.Message) bool { return m.Type == "error" })
	})
	// A member that comes now is refused with 1013, and told why.
	c, _, err := websocket.Dial(ctx, s.WS("lobby", "b"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, _, err = c.Read(ctx)
	wantClose := websocket.CloseError{Code: websocket.StatusTryAgainLater, Reason: "the message bus (Redis) has refused writes for 10s: OOM command not allowed when used memory > 'maxmemory'."}
	if ce, ok := errors.AsType[websocket.CloseError](err); !ok || ce != wantClose {
		t.Errorf("a member joining: %v, want %v", err, wantClose)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	a.WaitFor(t, "the message held", func(got []chattest.Message) bool { return slices.Contains(chattest.Texts(got), "a: held") })
	const want = "not sent: the message bus (Redis) has refused writes for 10s: OOM command not allowed when used memory > 'maxmemory'."
	var errs []string
	for _, m := range a.Messages() {
		if m.Type == "error" {
			errs = append(errs, m.Text)
		}
	}
	if !slices.Equal(errs, []string{want}) || !slices.Equal(a.Texts(), []string{"a: held"}) {
		t.Errorf("a was told %q and got %q, want %q and the message held; server log:\n%s", errs, a.Texts(), want, s.Log())
	}
}

// TestArguments: an argument that is not a flag is a wrong command line,
// named, with exit code 2: flag stops at the first such argument, and
// `chat-redis 127.0.0.1:9000 -redis 10.0.0.5:6379` went to the Redis at
// 127.0.0.1:6379, the rest unread.
func TestArguments(t *testing.T) {
	t.Parallel()
	cmdtest.Refused(t, chatPath, []string{"-addr", "127.0.0.1:0", "127.0.0.1:9000", "-redis", "127.0.0.1:1"},
		`unexpected argument "127.0.0.1:9000": flags only (an address goes after -addr)`)
}

// TestRedisFlag: a -redis that is no host:port is a wrong command line,
// with exit code 2: the server ran, its reader and writer failing to dial
// "missing port in address" for good, and closed every member with 1013
// once its join had waited 15 seconds.
func TestRedisFlag(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"localhost", "redis://127.0.0.1:6379"} {
		cmdtest.Refused(t, chatPath, []string{"-addr", "127.0.0.1:0", "-redis", addr},
			`invalid value "`+addr+`" for flag -redis: want host:port`)
	}
}
