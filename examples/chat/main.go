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
//
// -msg-rate and -byte-rate bound what each member says; -addr-msg-rate
// and -addr-byte-rate what the members from one address say together
// (four members' worth by default). -addr-conns bounds the members an
// address has at once (32), and -addr-join-rate how often it joins
// (once a second, bursts of 10): a join past either is refused with 429
// Too Many Requests before the WebSocket handshake, which the page,
// whose WebSocket sees only 1006, asks the server about at /ws/check to
// show why. An address is an IPv4 address, or the /64 of an IPv6 one;
// the addresses of one IPv6 /48 have -site-addrs addresses' worth of
// each limit together (8). Behind a proxy, every member comes from the
// proxy's address: -client-ip-header X-Forwarded-For (or X-Real-IP, or
// Forwarded) takes the client's from the header the proxy sets, which
// only a server that no client reaches directly may trust. A negative
// value switches a limit off.
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
