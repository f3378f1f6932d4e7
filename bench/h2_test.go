package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
)

// The HTTP/2 fan-in benchmark: 100 WebSockets from one client to one
// server, over one cleartext HTTP/2 connection (h2c) or over 100 HTTP/1.1
// connections, each sending a 64-byte message and waiting for its echo in
// a loop. The server runs in a process of its own (this test binary, run
// as TestH2Server), so that its CPU time is its own: read from
// /proc/<pid>/stat before and after, divided by the messages echoed.

const (
	fanConns = 100
	fanMsg   = 64
)

// TestH2Server is the benchmark's echo server when BENCH_H2_SERVE is set:
// it serves HTTP/1.1 and h2c on a loopback port, prints the address, and
// runs until its standard input closes. Otherwise it is skipped.
func TestH2Server(t *testing.T) {
	if os.Getenv("BENCH_H2_SERVE") == "" {
		t.Skip("the HTTP/2 benchmark's server, run by BenchmarkHTTP2FanIn")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		// Over HTTP/2, Serve returns when the connection ends; over
		// HTTP/1.1 at once, the connection served on.
		c.Serve(func(typ websocket.MessageType, p []byte) {
			c.Write(context.Background(), typ, p)
		}, func(error) {})
	})}
	go srv.Serve(ln)
	fmt.Println(ln.Addr())
	bufio.NewReader(os.Stdin).ReadString('\n')
	srv.Close()
}

// startH2Server runs TestH2Server in a child process and returns its
// address and process ID.
func startH2Server(b *testing.B) (string, int) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestH2Server$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BENCH_H2_SERVE=1", "GODEBUG=http2xconnect=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("the server printed no address: %v", err)
	}
	return strings.TrimSpace(addr), cmd.Process.Pid
}

// cpuTime returns the user and system CPU time of process pid so far.
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	// Fields after the command name, which ends with the last ')':
	// utime and stime are the 12th and 13th, in clock ticks (100 a second).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

func BenchmarkHTTP2FanIn(b *testing.B) {
	for _, mode := range []struct {
		name string
		h2   websocket.HTTP2Mode
	}{{"http1.1", websocket.HTTP2Disabled}, {"h2c", websocket.HTTP2Required}} {
		b.Run(fmt.Sprintf("%d-conns/%s", fanConns, mode.name), func(b *testing.B) {
			addr, pid := startH2Server(b)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			conns := make([]*websocket.Conn, fanConns)
			for i := range conns {
				c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{HTTP2: mode.h2})
				if err != nil {
					b.Fatal(err)
				}
				if want := map[bool]int{true: 2, false: 1}[mode.h2 != websocket.HTTP2Disabled]; resp.ProtoMajor != want {
					b.Fatalf("dialed over %s", resp.Proto)
				}
				conns[i] = c
				defer c.CloseNow()
			}
			per := max(1, b.N/fanConns)
			msg := make([]byte, fanMsg)
			cpu0 := cpuTime(b, pid)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, fanConns)
			for _, c := range conns {
				wg.Go(func() {
					for range per {
						if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
							errs <- err
							return
						}
						if _, p, err := c.Read(ctx); err != nil || len(p) != fanMsg {
							errs <- fmt.Errorf("echo: %d bytes, %v", len(p), err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			cpu := cpuTime(b, pid) - cpu0
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			total := float64(per * fanConns)
			b.ReportMetric(total/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/total, "server-cpu-ns/msg")
			for _, c := range conns {
				c.Close(websocket.StatusNormalClosure, "")
			}
		})
	}
}
