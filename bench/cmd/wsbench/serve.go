//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	ours "github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/bench/echo"
)

// The environment a server process is started with.
const (
	envServe       = "WSBENCH_SERVE"       // the library whose echo server to run
	envProfile     = "WSBENCH_CPUPROFILE"  // a file for the server's CPU profile
	envKeepalive   = "WSBENCH_KEEPALIVE"   // our servers' keepalive, as -keepalive says it
	envCompression = "WSBENCH_COMPRESSION" // the permessage-deflate mode: off (or unset), no-takeover, takeover
)

// keepaliveOptions returns the accept options for a -keepalive setting:
// "" for the library's default (nil), "off", or "interval/timeout" as
// two durations ("5s/5s").
func keepaliveOptions(v string) (*ours.AcceptOptions, error) {
	switch v {
	case "":
		return nil, nil
	case "off":
		return &ours.AcceptOptions{KeepaliveInterval: -1}, nil
	}
	i, t, ok := strings.Cut(v, "/")
	interval, err1 := time.ParseDuration(i)
	timeout, err2 := time.ParseDuration(t)
	if !ok || err1 != nil || err2 != nil || interval <= 0 || timeout <= 0 {
		return nil, fmt.Errorf("keepalive %q is not off or interval/timeout, two positive durations (5s/5s)", v)
	}
	return &ours.AcceptOptions{KeepaliveInterval: interval, KeepaliveTimeout: timeout}, nil
}

// serve is the body of a server process: lib's echo server on a loopback
// port, which it prints on the first line of its standard output. It exits
// when its standard input ends (the parent closed it, or died), writing the
// CPU profile first if asked to. On SIGUSR1 it collects garbage, returns
// free memory to the system, and prints "freed"; on SIGUSR2 it prints
// "allocs N B", the heap objects and bytes it has allocated so far
// (runtime.MemStats Mallocs and TotalAlloc, which go test -benchmem counts).
func serve(lib string) error {
	accept, err := keepaliveOptions(os.Getenv(envKeepalive))
	if err != nil {
		return err
	}
	opts := &echo.Options{Accept: accept}
	if v := os.Getenv(envCompression); v != "" {
		if err := opts.Compression.UnmarshalText([]byte(v)); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if path := os.Getenv(envProfile); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, ln.Addr())
	out.Flush()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGUSR1 {
				debug.FreeOSMemory()
				fmt.Fprintln(out, "freed")
			} else {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				fmt.Fprintf(out, "allocs %d %d\n", ms.Mallocs, ms.TotalAlloc)
			}
			out.Flush()
		}
	}()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		pprof.StopCPUProfile()
		os.Exit(0)
	}()
	return echo.Serve(lib, ln, opts)
}
