package main

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rfc6455/websocket/examples/chat/chat"
	"github.com/rfc6455/websocket/examples/internal/chattest"
)

// TestPublishOnceReaderBack: Redis is away for longer than holdLimit
// while the bus holds an event, and Publish refuses new ones; once Redis
// is back and the reader has reached it, Publish takes them at once, and
// the event held and the one after are delivered once each, in order.
// Publish refused them until the writer's next try, up to a second later
// (its wait between tries), judging by the age of the oldest event held
// alone: a member joining then was closed with 1013. The reader is told
// to try at once when Redis is back, as it may happen to before the
// writer, so that the writer's next try is, before the fix, all but
// surely still to come.
func TestPublishOnceReaderBack(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	logged := make(chan string, 100)
	b := newRedisBus(r.addr(), func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		t.Log(line)
		select {
		case logged <- line:
		default:
		}
	})
	defer b.Close(context.Background())
	waitLog := func(prefix string) {
		t.Helper()
		timeout := time.After(chattest.Wait)
		for {
			select {
			case line := <-logged:
				if strings.HasPrefix(line, prefix) {
					return
				}
			case <-timeout:
				t.Fatalf("the bus did not log %q within %v", prefix, chattest.Wait)
			}
		}
	}
	got := make(chan chat.Event, 10)
	b.Subscribe("lobby", func(ev chat.Event) { got <- ev })
	publish := func(text string) (chat.Event, error) {
		ev := chat.Event{Type: "message", Origin: "here", Member: "1", Name: "a", Text: text}
		return ev, b.Publish("lobby", ev)
	}
	expect := func(want chat.Event) {
		t.Helper()
		select {
		case ev := <-got:
			if !reflect.DeepEqual(ev, want) {
				t.Fatalf("delivered %+v, want %+v", ev, want)
			}
		case <-time.After(chattest.Wait):
			t.Fatalf("%+v not delivered within %v", want, chattest.Wait)
		}
	}
	before, err := publish("before")
	if err != nil {
		t.Fatal(err)
	}
	expect(before) // the reader reads the room

	r.kill(t)
	held, err := publish("held")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(holdLimit + time.Second)
	if _, err := publish("refused"); err != errUnreachable {
		t.Fatalf("Publish %v into the outage, with an event held: %v, want %v", holdLimit+time.Second, err, errUnreachable)
	}

	r.start(t)
	notify(b.wake) // the reader tries at once
	waitLog("redis: reading again")
	after, err := publish("after")
	if err != nil {
		t.Fatalf("Publish once the reader has reached Redis again: %v", err)
	}
	expect(held)
	expect(after)
	select {
	case ev := <-got:
		t.Fatalf("delivered %+v too", ev)
	case <-time.After(200 * time.Millisecond):
	}
}
