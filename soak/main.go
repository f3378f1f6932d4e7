// Command soak runs many WebSocket clients against this package's server
// for a while, and checks that every message whose echo came back
// arrived exactly once, in order and intact, and that the process gives
// back its goroutines and memory at the end.
//
//	go run ./soak -clients 2000 -duration 10m
//
// Each client opens one connection after another. A connection sends
// numbered messages, text or binary, mostly small and up to 64 KiB, some
// written in pieces through a Writer; a share of connections negotiate
// compression, with or without context takeover and windows of 8 to 15
// bits. Now and then a client pings, or stops reading and writing for
// less than the server's keepalive interval. The server echoes each
// message, in one of three ways, by connection: a Read and Write loop, a
// Reader and Writer loop that writes the echo in pieces, and Serve; its
// keepalive is short (-keepalive). A connection ends in one of four ways:
// Close once every echo is back; CloseWrite with messages in flight, all
// of which must still come back before the server's close frame; a TCP
// reset with messages in flight (the client vanishes); or a stall past the
// keepalive interval and timeout, which the server's keepalive must end.
// Messages in flight at a reset may be lost; they are counted apart, and
// are no failure.
//
// A message carries its connection's id, its number and the checksum of
// its body. The server checks each message it receives, and the client
// each echo: a number seen twice is a duplicate, one that skips ahead a
// reordering (or a loss), a wrong checksum, type or length a corruption.
// When the clients are done, every connection must have ended at the
// server, every Conn of either side must have been freed, the number of
// goroutines must be back where it started, and so must the live heap
// (after garbage collection), within 1 MiB and 2 KiB a client: what the
// runtime and net/http keep for the peak of connections.
//
// The last line sums the run up, and the command exits with 1 if anything
// was lost, duplicated, reordered or corrupted, anything else went wrong
// (a failed dial or close, a connection that ended unasked), or
// goroutines or memory leaked. The line before it says what the run did
// and how much CPU it took.
//
// Clients are paced: at most -rate messages a second in all, spread over
// the clients (stalls and reconnections take about a sixth of that). The
// default, 4,000, keeps 2,000 clients and their server, in one process,
// under a core (0.7 measured); unpaced, they would overload a small
// machine, and the run would measure the machine rather than the server.
//
// The server may run in a process of its own:
//
//	go run ./soak -serve 127.0.0.1:9000 &
//	go run ./soak -addr 127.0.0.1:9000 -clients 2000 -duration 10m
//	kill -INT %1 # the server checks itself, and prints its own summary
//
// Interrupting a run (SIGINT, SIGTERM) ends it early, with the summary.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// defaultRate is the default of -rate: see the package documentation.
const defaultRate = 4000

func main() {
	cfg := config{
		clients:     2000,
		duration:    time.Minute,
		rate:        defaultRate,
		compression: 0.25,
		keepalive:   2 * time.Second,
	}
	flag.IntVar(&cfg.clients, "clients", cfg.clients, "number of clients")
	flag.DurationVar(&cfg.duration, "duration", cfg.duration, "how long the clients run")
	flag.Float64Var(&cfg.rate, "rate", cfg.rate, "messages a second, all clients together")
	flag.Float64Var(&cfg.compression, "compression", cfg.compression, "share of connections that offer permessage-deflate, 0 to 1")
	flag.DurationVar(&cfg.keepalive, "keepalive", cfg.keepalive, "the server's keepalive interval, and timeout")
	flag.StringVar(&cfg.addr, "addr", "", "soak the server at `host:port`, started with -serve, instead of one in this process")
	serveAddr := flag.String("serve", "", "run only the server, on `host:port`, until interrupted")
	flag.Parse()
	if flag.NArg() > 0 || cfg.clients < 1 || cfg.duration <= 0 || cfg.rate <= 0 ||
		cfg.compression < 0 || cfg.compression > 1 || cfg.keepalive <= 0 || (cfg.addr != "" && *serveAddr != "") {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *serveAddr != "" {
		os.Exit(serveOnly(ctx, *serveAddr, cfg, os.Stdout))
	}
	r := run(ctx, cfg, os.Stdout)
	fmt.Println(r.details())
	fmt.Println(r)
	if !r.ok() {
		stop()
		os.Exit(1)
	}
}

// serveOnly runs the server alone until ctx ends, then checks it as a run
// does, prints its summary to w, and returns the exit code.
func serveOnly(ctx context.Context, addr string, cfg config, w io.Writer) int {
	s := &soak{cfg: cfg, log: &eventLog{w: w}}
	srv, err := startServer(addr, s)
	if err != nil {
		fmt.Fprintf(w, "soak: %v\n", err)
		return 1
	}
	g0, h0 := baseline()
	s.log.printf("serving ws://%s/ until interrupted", srv.addr())
	<-ctx.Done()
	var problems []string
	if n := srv.waitIdle(2*cfg.keepalive + endTimeout); n > 0 {
		problems = append(problems, fmt.Sprintf("%d connections still open", n))
		srv.closeConns()
	}
	g1, h1 := s.settle(g0)
	srv.close()
	st := &s.sst
	if n := st.duplicated.Load() + st.reordered.Load() + st.corrupted.Load(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d messages duplicated, reordered or corrupted", n))
	}
	if n := s.log.errorCount(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d errors", n))
	}
	made, freed := s.made.Load(), s.freed.Load()
	if made > freed {
		problems = append(problems, fmt.Sprintf("%d of %d Conns never freed", made-freed, made))
	}
	if g1 > g0 {
		problems = append(problems, "goroutines leaked")
	}
	if h1 > h0+heapTolerance(srv.peakOpen()) {
		problems = append(problems, fmt.Sprintf("heap grew by %s", mib(h1-h0)))
	}
	verdict := "ok"
	if len(problems) > 0 {
		verdict = "FAILED (" + strings.Join(problems, "; ") + ")"
	}
	fmt.Fprintf(w, "soak server: %d connections: %d messages delivered, %d duplicated, %d reordered, %d corrupted; "+
		"%d closed normally, %d ended by keepalive, %d otherwise; %d errors; %d of %d Conns freed, goroutines %d -> %d, heap %s -> %s: %s\n",
		st.accepted.Load(), st.delivered.Load(), st.duplicated.Load(), st.reordered.Load(), st.corrupted.Load(),
		st.normal.Load(), st.keepalive.Load(), st.abnormal.Load(), s.log.errorCount(), freed, made, g0, g1, mib(h0), mib(h1), verdict)
	if len(problems) > 0 {
		return 1
	}
	return 0
}
