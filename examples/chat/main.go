// Command chat serves chat rooms: a page at / from which a person joins a
// room with a name, sees who is there, and sends and reads messages; and
// the members' WebSocket at /ws?room=NAME&name=NICK. The package
// github.com/rfc6455/websocket/examples/chat/chat documents the messages.
//
//	go run ./examples/chat -addr 127.0.0.1:8080
//
// -ping-interval and -pong-timeout set the keepalive: a member silent for
// the interval is pinged, and disconnected if it answers nothing within
// the timeout. A member that stops reading is disconnected with 1008 once
// 1 MiB waits for it. SIGINT or SIGTERM closes every connection with 1001
// and exits once they have closed, or after 10 seconds; a second signal
// ends it at once.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/rfc6455/websocket/examples/chat/chat"
	"github.com/rfc6455/websocket/examples/internal/cmdline"
	"github.com/rfc6455/websocket/examples/internal/signals"
)

func main() {
	addr, opts := chat.Flags(flag.CommandLine)
	if cmdline.Parse(flag.CommandLine, os.Args[1:]) != nil {
		os.Exit(2)
	}

	ctx := signals.Context() // a second signal kills at once
	err := chat.Run(ctx, *addr, chat.NewServer(new(chat.LocalBus), opts), func(url string) {
		fmt.Printf("chat server: open %s in a browser\n", url)
	})
	if err != nil {
		log.Fatal(err)
	}
}
