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
// With -raw, each connection is held as a bare file descriptor instead: a
// duplicate of the socket's, in an epoll set of the command's own, as
// Serve's parker holds a quiet connection, its net.Conn closed. That is
// the most a server that kept parked connections outside the net package
// could save (Linux only).
//
//	go run ./cmd/sockfloor            # 10,000 connections
//	go run ./cmd/sockfloor -n 50000   # needs that many file descriptors
//	go run ./cmd/sockfloor -raw       # held as raw descriptors
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/rfc6455/websocket/bench/internal/proc"
)

// The environment of the child that dials.
const (
	envDial  = "SOCKFLOOR_DIAL"  // the address to dial
	envConns = "SOCKFLOOR_CONNS" // how many connections to open
)

func main() {
	if addr := os.Getenv(envDial); addr != "" {
		proc.ExitOn("sockfloor", dial(addr, os.Getenv(envConns)))
		return
	}
	proc.Main("sockfloor", func() error {
		n := flag.Int("n", 10000, "connections")
		raw := flag.Bool("raw", false, "hold each connection as a raw descriptor in an epoll set, its net.Conn closed")
		flag.Parse()
		if *n < 1 {
			return errors.New("-n must be positive")
		}
		rss, heap, err := measure(*n, *raw)
		if err != nil {
			return err
		}
		held := "held as net.Conn"
		if *raw {
			held = "held as raw descriptors"
		}
		fmt.Printf("%d connections %s: VmRSS %.2f KiB per connection, %.2f KiB after GC; live heap %d B\n",
			*n, held, rss[0], rss[1], heap)
		return nil
	})
}

// measure accepts n connections from a child process and returns the
// growth of VmRSS per connection in KiB, before and after collecting
// garbage, and of the live heap in bytes. With raw, it holds them as
// descriptors (rawHolder) rather than as net.Conns.
func measure(n int, raw bool) (rss [2]float64, heap int64, err error) {
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
	heap0, rss0, err := settled()
	if err != nil {
		return rss, 0, err
	}
	child, err := proc.Start("the dialing process", []string{exe},
		[]string{envDial + "=" + ln.Addr().String(), envConns + "=" + strconv.Itoa(n)}, nil)
	if err != nil {
		return rss, 0, err
	}
	defer child.Stop()
	held := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var rh *rawHolder
	if raw {
		if rh, err = newRawHolder(n); err != nil {
			return rss, 0, err
		}
		defer rh.close()
	}
	for range n {
		c, err := ln.Accept()
		if err != nil {
			return rss, 0, err
		}
		if raw {
			if err := rh.hold(c); err != nil {
				return rss, 0, err
			}
			continue
		}
		// What a read does first: register with the poller.
		if err := c.SetReadDeadline(time.Time{}); err != nil {
			return rss, 0, err
		}
		held = append(held, c)
	}
	// The child says when its last dial has returned.
	if _, err := child.Line(time.Minute); err != nil {
		return rss, 0, err
	}
	time.Sleep(time.Second)
	rss1, err := proc.RSS(os.Getpid())
	if err != nil {
		return rss, 0, err
	}
	heap1, rss2, err := settled()
	if err != nil {
		return rss, 0, err
	}
	runtime.KeepAlive(held)
	runtime.KeepAlive(rh)
	per := func(b int64) float64 { return float64(b) / 1024 / float64(n) }
	return [2]float64{per(rss1 - rss0), per(rss2 - rss0)}, (heap1 - heap0) / int64(n), nil
}

// settled collects garbage, returns free memory to the system, and reads
// the live heap and VmRSS, in bytes.
func settled() (heap, rss int64, err error) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, err = proc.RSS(os.Getpid())
	return int64(ms.HeapAlloc), rss, err
}

// dial is the child: it opens conns connections to addr, says so on its
// standard output, and holds them until its standard input ends.
func dial(addr, conns string) error {
	n, err := strconv.Atoi(conns)
	if err != nil {
		return fmt.Errorf("%s: %v", envConns, err)
	}
	held := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		held = append(held, c)
	}
	fmt.Println("open")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range held {
		c.Close()
	}
	return nil
}
