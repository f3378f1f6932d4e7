//go:build linux

package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	ours "github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/bench/echo"
	"github.com/rfc6455/websocket/bench/internal/oursecho"
	"github.com/rfc6455/websocket/bench/internal/proc"
)

// envServe, in a process's environment, makes it one of our echo servers
// instead of the command: "server bits mode lifetime", as serverSpec
// writes it.
const envServe = "COMPMEM_SERVE"

// envHeapProfile, in a server's environment, names a file for a heap
// profile, written on each SIGUSR1 after the collection.
const envHeapProfile = "COMPMEM_HEAPPROFILE"

// serverSpec is the value of envServe for cell c's server, which exits by
// itself after lifetime.
func serverSpec(c cell, lifetime time.Duration) string {
	return fmt.Sprintf("%s %d %s %s", c.Server, c.configBits(), c.Mode, lifetime)
}

// serve is the body of a server process: our echo server, as spec says,
// on a loopback port, which it prints on the first line of its standard
// output. It exits when its standard input ends (the parent closed it, or
// died), or after its lifetime. On SIGUSR1 it collects garbage twice,
// returning free memory to the system, writes a heap profile if
// envHeapProfile asks for one, and prints "gc heap=H pooled=P stacks=S":
// the bytes of live heap objects after the second collection, of those
// the first left only because sync.Pool held them, and of goroutine
// stacks in use.
func serve(spec string) error {
	f := strings.Fields(spec)
	if len(f) != 4 {
		return fmt.Errorf("%s=%q: want \"server bits mode lifetime\"", envServe, spec)
	}
	bits, err := strconv.Atoi(f[1])
	if err != nil {
		return fmt.Errorf("%s=%q: %v", envServe, spec, err)
	}
	lifetime, err := time.ParseDuration(f[3])
	if err != nil {
		return fmt.Errorf("%s=%q: %v", envServe, spec, err)
	}
	// No keepalive: the connections are to stay quiet, and a ping's
	// wake-up would leave garbage that has nothing to do with compression.
	opts := &ours.AcceptOptions{KeepaliveInterval: -1}
	switch f[2] {
	case modeTakeover:
		opts.Compression = ours.CompressionContextTakeover
		opts.CompressionWindowBits = bits
	case modeNoTakeover:
		opts.Compression = ours.CompressionNoContextTakeover
		opts.CompressionWindowBits = bits
	case modePlain:
	default:
		return fmt.Errorf("%s=%q: unknown mode %q", envServe, spec, f[2])
	}
	var h http.HandlerFunc
	switch f[0] {
	case serverOurs:
		h = oursecho.Serve(opts)
	case serverOursRead:
		h = oursecho.Read(opts)
	case serverFloor:
		h = echo.FloorHandler
	default:
		return fmt.Errorf("%s=%q: unknown server %q", envServe, spec, f[0])
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var out sync.Mutex // one line at a time on standard output
	say := func(format string, args ...any) {
		out.Lock()
		fmt.Printf(format+"\n", args...)
		out.Unlock()
	}
	profile := os.Getenv(envHeapProfile)
	if profile != "" {
		runtime.MemProfileRate = 4096 // every connection's objects show, not one in a hundred
	}
	// Registered before the address goes out: until then SIGUSR1 would be
	// ignored, and the parent's first request lost.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			var ms runtime.MemStats
			debug.FreeOSMemory()
			runtime.ReadMemStats(&ms)
			once := ms.HeapAlloc
			// sync.Pool keeps what was pooled before a collection
			// until the next one: the second empties the pools.
			debug.FreeOSMemory()
			runtime.ReadMemStats(&ms)
			if profile != "" {
				if err := writeHeapProfile(profile); err != nil {
					fmt.Fprintf(os.Stderr, "compmem server: %v\n", err)
				}
			}
			say("gc heap=%d pooled=%d stacks=%d", ms.HeapAlloc, int64(once)-int64(ms.HeapAlloc), ms.StackInuse)
		}
	}()
	say("%s", ln.Addr())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	time.AfterFunc(lifetime, func() { os.Exit(0) })
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	return srv.Serve(ln)
}

// gcStats is what one of our servers reports after collecting garbage.
type gcStats struct {
	heap   int64 // live heap after two collections
	pooled int64 // more live after the first, held by sync.Pool only
	stacks int64 // goroutine stacks in use
}

// gc asks one of our servers to collect garbage and return free memory,
// and returns what it then reports.
func gc(srv *proc.Child) (gcStats, error) {
	var g gcStats
	l, err := srv.Ask(syscall.SIGUSR1, "gc ", 30*time.Second)
	if err != nil {
		return g, err
	}
	if _, err := fmt.Sscanf(l, "gc heap=%d pooled=%d stacks=%d", &g.heap, &g.pooled, &g.stacks); err != nil {
		return g, fmt.Errorf("%v answered %q to SIGUSR1", srv, l)
	}
	return g, nil
}

// writeHeapProfile writes the live heap as of the last collection to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
