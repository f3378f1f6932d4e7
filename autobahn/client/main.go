// Command client is the Autobahn testsuite's testee in the client role: it
// asks the fuzzing server how many cases there are, runs each one as an echo
// client through the public API only, then asks for the reports.
//
//	go run ./autobahn/client -url ws://127.0.0.1:9001
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/rfc6455/websocket"
)

func main() {
	base := flag.String("url", envOr("AUTOBAHN_URL", "ws://127.0.0.1:9001"), "fuzzing server URL")
	agent := flag.String("agent", "rfc6455-websocket", "agent name in the reports")
	var mode websocket.CompressionMode
	flag.TextVar(&mode, "compression", websocket.CompressionDisabled, "permessage-deflate: off, no-takeover or takeover")
	flag.Parse()
	opts := &websocket.DialOptions{Compression: mode}

	ctx := context.Background()
	n, err := caseCount(ctx, *base)
	if err != nil {
		log.Fatalf("getCaseCount: %v", err)
	}
	log.Printf("%d cases", n)
	for i := 1; i <= n; i++ {
		u := fmt.Sprintf("%s/runCase?case=%d&agent=%s", *base, i, url.QueryEscape(*agent))
		if err := runCase(ctx, u, opts); err != nil {
			log.Printf("case %d: %v", i, err)
		}
	}
	c, _, err := websocket.Dial(ctx, *base+"/updateReports?agent="+url.QueryEscape(*agent), nil)
	if err != nil {
		log.Fatalf("updateReports: %v", err)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func caseCount(ctx context.Context, base string) (int, error) {
	c, _, err := websocket.Dial(ctx, base+"/getCaseCount", nil)
	if err != nil {
		return 0, err
	}
	defer c.CloseNow()
	_, p, err := c.Read(ctx)
	if err != nil {
		return 0, err
	}
	c.Close(websocket.StatusNormalClosure, "")
	return strconv.Atoi(string(p))
}

// runCase echoes every message until the connection ends.
func runCase(ctx context.Context, u string, opts *websocket.DialOptions) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, _, err := websocket.Dial(dctx, u, opts)
	cancel()
	if err != nil {
		return err
	}
	defer c.CloseNow()
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			return nil
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return nil
		}
	}
}
