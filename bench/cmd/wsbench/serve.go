package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/rfc6455/websocket/bench/echo"
)

// The environment a server process is started with.
const (
	envServe   = "WSBENCH_SERVE"      // the library whose echo server to run
	envProfile = "WSBENCH_CPUPROFILE" // a file for the server's CPU profile
)

// serve is the body of a server process: lib's echo server on a loopback
// port, which it prints on the first line of its standard output. It exits
// when its standard input ends (the parent closed it, or died), writing the
// CPU profile first if asked to. On SIGUSR1 it collects garbage, returns
// free memory to the system, and prints "freed".
func serve(lib string) error {
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

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			debug.FreeOSMemory()
			fmt.Fprintln(out, "freed")
			out.Flush()
		}
	}()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		pprof.StopCPUProfile()
		os.Exit(0)
	}()
	return echo.Serve(lib, ln)
}
