package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rfc6455/websocket/examples/chat/chat"
)

// netOutput is what Redis has sent its clients so far, in bytes.
func netOutput(t *testing.T, rc *redis.Client) int64 {
	t.Helper()
	info, err := rc.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no total_net_output_bytes in INFO stats")
	return 0
}

// TestSubscribeReadsNoMessages: following a room whose last messages are
// long (a member may send 64 KiB each) must not read those messages from
// Redis: the start of a subscription needs only the entries' IDs. Each
// member that enters a room its server has nobody in starts one, so a
// client that connects and disconnects in a loop otherwise makes the
// server pull the room's last 100 messages, megabytes, per handshake.
func TestSubscribeReadsNoMessages(t *testing.T) {
	r := startRedis(t)
	rc := r.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// 100 messages of 60 KB in room "big", as another server wrote them.
	text := strings.Repeat("x", 60<<10)
	for i := 1; i <= seedCount; i++ {
		ev, _ := json.Marshal(chat.Event{Type: "message", Origin: "other", Member: "1", Name: "m", Text: text})
		if err := rc.XAdd(ctx, &redis.XAddArgs{Stream: streamPrefix + "big", Values: []any{"id", "other-" + strconv.Itoa(i), "event", ev}}).Err(); err != nil {
			t.Fatal(err)
		}
	}

	b := newRedisBus(r.addr(), t.Logf)
	defer b.Close(ctx)
	before := netOutput(t, rc)
	const cycles = 5
	for range cycles {
		s := b.Subscribe("big", func(chat.Event) {})
		// Wait until the writer has found where reading starts.
		for deadline := time.Now().Add(10 * time.Second); ; {
			b.mu.Lock()
			started := b.subs["big"] != nil && b.subs["big"].pos != ""
			b.mu.Unlock()
			if started {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the subscription did not start within 10 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		s()
	}
	sent := netOutput(t, rc) - before
	t.Logf("Redis sent %d bytes for %d subscriptions", sent, cycles)
	if sent > 64<<10 {
		t.Errorf("starting %d subscriptions read %.1f MB from Redis; the IDs of %d entries each take a few KB", cycles, float64(sent)/1e6, seedCount)
	}
}
