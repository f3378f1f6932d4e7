// Command server is the Autobahn testsuite's testee in the server role: it
// echoes every message on every path, through the public API only, and
// checks nothing of its own. Benchmarks and interop tests use it too.
//
//	go run ./autobahn/server -addr 127.0.0.1:9001
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/rfc6455/websocket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "address to listen on")
	origin := flag.String("origin", "", "comma-separated host patterns for AcceptOptions.OriginPatterns (default: same origin only)")
	var mode websocket.CompressionMode
	flag.TextVar(&mode, "compression", websocket.CompressionDisabled, "permessage-deflate: off, no-takeover or takeover")
	flag.Parse()

	opts := &websocket.AcceptOptions{Compression: mode}
	if *origin != "" {
		opts.OriginPatterns = strings.Split(*origin, ",")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("echo server listening on ws://%s", ln.Addr())
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		echo(c)
	})))
}

// echo sends every message back until the connection ends.
func echo(c *websocket.Conn) {
	ctx := context.Background()
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return
		}
	}
}
