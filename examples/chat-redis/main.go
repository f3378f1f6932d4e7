// Command chat-redis serves the chat of examples/chat from any number of
// processes that share its rooms through Redis Streams: the same page at
// /, the same WebSocket at /ws?room=NAME&name=NICK, the same flags, and
// -redis host:port (127.0.0.1:6379 by default). README.md tells how to run
// two of them against one Redis, and which Redis settings losing nothing
// takes.
//
//	go run . -addr 127.0.0.1:8080 -redis 127.0.0.1:6379
//
// Each room's events go into a stream, which every server that has
// members in the room reads from where it last stopped: members on every
// server see a room's messages in one order, the stream's. While Redis is
// unreachable, a server holds what its members send in the first 10
// seconds, and writes it once Redis is back, however long that takes;
// after those 10 seconds it refuses messages until Redis answers again.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rfc6455/websocket/examples/chat/chat"
	"github.com/rfc6455/websocket/examples/internal/cmdline"
	"github.com/rfc6455/websocket/examples/internal/signals"
)

func main() {
	addr, opts := chat.Flags(flag.CommandLine)
	redisAddr := "127.0.0.1:6379"
	flag.Func("redis", "the Redis server, `host:port` (default 127.0.0.1:6379)", func(s string) error {
		// Checked here: the bus would try to dial it for ever.
		if _, _, err := net.SplitHostPort(s); err != nil {
			return errors.New("want host:port")
		}
		redisAddr = s
		return nil
	})
	if cmdline.Parse(flag.CommandLine, os.Args[1:]) != nil {
		os.Exit(2)
	}

	redis.SetLogger(quiet{})
	bus := newRedisBus(redisAddr, log.Printf)
	ctx := signals.Context() // a second signal kills at once
	err := chat.Run(ctx, *addr, chat.NewServer(bus, opts), func(url string) {
		fmt.Printf("chat server: open %s in a browser\n", url)
	})
	// The members' leaves, published as they closed, go out before the
	// end.
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if cerr := bus.Close(closeCtx); cerr != nil {
		log.Print(cerr)
	}
	if err != nil {
		log.Fatal(err)
	}
}
