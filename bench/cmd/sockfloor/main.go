// Command sockfloor measures what a Go server holds for each accepted TCP
// connection that it keeps open and does nothing with: no goroutine, no
// buffer, no handshake, the net.Conn alone, registered with the runtime's
// poller as any connection that is read is. It is the floor under every
// server built on the net package, ours with Serve among them (a served,
// parked connection holds its net.Conn and the library's own state);
// nbio, which accepts and reads raw file descriptors, is not held to it.
//
// It opens the connections from a child process, so that only the server
// ends are in the measured process, which runs with GOMAXPROCS=1 as
// wsbench's servers do. It prints, per connection, the growth of VmRSS
// once all are open, the same after collecting garbage and returning free
// memory (debug.FreeOSMemory), and the growth of the live heap.
//
//	go run ./cmd/sockfloor            # 10,000 connections
//	go run ./cmd/sockfloor -n 50000   # needs that many file descriptors
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

const envDial = "SOCKFLOOR_DIAL" // the child: dial this address

func main() {
	log.SetFlags(0)
	log.SetPrefix("sockfloor: ")
	if addr := os.Getenv(envDial); addr != "" {
		if err := dial(addr); err != nil {
			log.Fatal(err)
		}
		return
	}
	n := flag.Int("n", 10000, "connections")
	flag.Parse()
	if *n < 1 {
		log.Fatal("-n must be positive")
	}
	rss, heap, err := measure(*n)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d connections: VmRSS %.2f KiB per connection, %.2f KiB after GC; live heap %d B\n",
		*n, rss[0], rss[1], heap)
}

// measure accepts n connections from a child process and returns the
// growth of VmRSS per connection in KiB, before and after collecting
// garbage, and of the live heap in bytes.
func measure(n int) (rss [2]float64, heap int64, err error) {
	runtime.GOMAXPROCS(1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return rss, 0, err
	}
	defer ln.Close()
	exe, err := os.Executable()
	if err != nil {
		return rss, 0, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envDial+"="+ln.Addr().String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return rss, 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return rss, 0, err
	}
	heap0, rss0, err := settled()
	if err != nil {
		return rss, 0, err
	}
	if err := cmd.Start(); err != nil {
		return rss, 0, err
	}
	defer cmd.Wait()
	defer stdin.Close() // the child ends with its standard input
	fmt.Fprintln(stdin, n)
	held := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for len(held) < n {
		c, err := ln.Accept()
		if err != nil {
			return rss, 0, err
		}
		// What a read does first: register with the poller.
		if err := c.SetReadDeadline(time.Time{}); err != nil {
			return rss, 0, err
		}
		held = append(held, c)
	}
	// The child says when its last dial has returned.
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		return rss, 0, fmt.Errorf("the dialing process: %v", err)
	}
	time.Sleep(time.Second)
	rss1, err := vmRSS()
	if err != nil {
		return rss, 0, err
	}
	heap1, rss2, err := settled()
	if err != nil {
		return rss, 0, err
	}
	runtime.KeepAlive(held)
	per := func(kib int64) float64 { return float64(kib) / float64(n) }
	return [2]float64{per(rss1 - rss0), per(rss2 - rss0)}, (heap1 - heap0) / int64(n), nil
}

// settled collects garbage, returns free memory to the system, and reads
// the live heap (bytes) and VmRSS (KiB).
func settled() (heap, rss int64, err error) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, err = vmRSS()
	return int64(ms.HeapAlloc), rss, err
}

// vmRSS reads this process's resident set size in KiB.
func vmRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}

// dial is the child: it reads how many connections to open, opens them,
// says so on its standard output, and holds them until its standard input
// ends.
func dial(addr string) error {
	var n int
	if _, err := fmt.Fscanln(os.Stdin, &n); err != nil {
		return err
	}
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	fmt.Println("open")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return nil
}
