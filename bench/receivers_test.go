package bench_test

// The receivers of BenchmarkBroadcast: a process of their own (this test
// binary, started again with envReceivers set), so that the server's
// connections and theirs need not share one process's open files (10,000
// connections are 20,000 descriptors in one process, the hard limit here).
//
// Each receiver is a raw TCP client: it does the opening handshake, offering
// permessage-deflate if asked, then reads every frame the server sends and
// discards it, counting messages and payload bytes, and answers pings. It
// never inflates: reading the bytes is all a broadcast needs of its
// receivers to run in steady state.
//
// The parent talks to the process over its standard input and output:
//
//	receivers → "ready\t<Sec-WebSocket-Extensions of the responses>"  once every connection is open
//	parent    → "wait <n>"                                            wait for n messages in all
//	receivers → "got <messages> <payload bytes>"                      once they came
//	receivers → "timeout <messages> <payload bytes>"                  if they did not within waitLimit
//	parent    → "close"                                               the server is about to close the connections
//	receivers → "closing"
//
// and the process exits once every connection has ended after "close", or
// when its standard input closes. Any other failure of a connection makes
// it exit at once with status 1, saying why on its standard error.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The environment of the receivers' process.
const (
	envReceivers      = "BENCH_RECEIVERS"       // the server's address
	envReceiversN     = "BENCH_RECEIVERS_N"     // how many connections
	envReceiversOffer = "BENCH_RECEIVERS_OFFER" // Sec-WebSocket-Extensions to offer, if any
)

const (
	// dialLimit bounds the opening of all the connections; waitLimit, one
	// wait for messages.
	dialLimit = 2 * time.Minute
	waitLimit = time.Minute
)

// receivers is the state of the receivers' process.
type receivers struct {
	msgs    atomic.Int64 // data messages received on every connection
	bytes   atomic.Int64 // their payload bytes
	target  atomic.Int64 // the message count a wait is for
	wake    chan struct{}
	closing atomic.Bool    // the server closes the connections: their end is no failure
	readers sync.WaitGroup // one per connection
}

// TestMain lets the test binary be the receivers' process.
func TestMain(m *testing.M) {
	if os.Getenv(envReceivers) != "" {
		os.Exit(runReceivers())
	}
	os.Exit(m.Run())
}

// runReceivers is the body of the receivers' process; it returns the exit
// status.
func runReceivers() int {
	addr := os.Getenv(envReceivers)
	n, err := strconv.Atoi(os.Getenv(envReceiversN))
	if err != nil || n < 1 {
		fmt.Fprintf(os.Stderr, "receivers: %s=%q is not a positive count\n", envReceiversN, os.Getenv(envReceiversN))
		return 1
	}
	r := &receivers{wake: make(chan struct{}, 1)}
	ext, err := r.dialAll(addr, n, os.Getenv(envReceiversOffer))
	if err != nil {
		fmt.Fprintf(os.Stderr, "receivers: %v\n", err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "ready\t%s\n", ext)
	out.Flush()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "close" {
			r.closing.Store(true)
			fmt.Fprintln(out, "closing")
			out.Flush()
			done := make(chan struct{})
			go func() {
				r.readers.Wait()
				close(done)
			}()
			select {
			case <-done:
				return 0
			case <-time.After(waitLimit):
				fmt.Fprintf(os.Stderr, "receivers: the connections did not end within %v of close\n", waitLimit)
				return 1
			}
		}
		v, ok := strings.CutPrefix(in.Text(), "wait ")
		want, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			fmt.Fprintf(os.Stderr, "receivers: bad command %q\n", in.Text())
			return 1
		}
		word := "got"
		if !r.wait(want) {
			word = "timeout"
		}
		fmt.Fprintf(out, "%s %d %d\n", word, r.msgs.Load(), r.bytes.Load())
		out.Flush()
	}
	return 0
}

// wait waits until want messages have come in all, or waitLimit passed.
func (r *receivers) wait(want int64) bool {
	r.target.Store(want)
	timeout := time.NewTimer(waitLimit)
	defer timeout.Stop()
	for r.msgs.Load() < want {
		select {
		case <-r.wake:
		case <-timeout.C:
			return false
		}
	}
	return true
}

// dialAll opens n connections to addr, 64 at a time, and starts reading
// each. It returns the extensions the server answered with, which must be
// the same on every connection.
func (r *receivers) dialAll(addr string, n int, offer string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialLimit)
	defer cancel()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		exts  = make(map[string]int)
		first error
	)
	for range min(n, 64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				ext, err := r.dial(ctx, addr, offer)
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("connection %d: %w", i, err)
					cancel()
				}
				exts[ext]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return "", first
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("%d connections not open within %v", n, dialLimit)
	}
	var ext string
	for e := range exts {
		ext = e
	}
	if len(exts) != 1 {
		return "", fmt.Errorf("the server answered with different extensions: %v", exts)
	}
	return ext, nil
}

// dial opens one connection and starts its reader; it returns the
// extensions of the server's response.
func (r *receivers) dial(ctx context.Context, addr, offer string) (string, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	dl, _ := ctx.Deadline()
	nc.SetDeadline(dl)
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n"
	if offer != "" {
		req += "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		nc.Close()
		return "", err
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return "", err
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		nc.Close()
		return "", fmt.Errorf("handshake refused: %s", resp.Status)
	}
	nc.SetDeadline(time.Time{})
	r.readers.Add(1)
	go func() {
		defer r.readers.Done()
		err := r.read(nc, br)
		nc.Close()
		if !r.closing.Load() {
			fmt.Fprintf(os.Stderr, "receivers: a connection failed: %v\n", err)
			os.Exit(1)
		}
	}()
	return resp.Header.Get("Sec-WebSocket-Extensions"), nil
}

// read reads frames until the connection fails, counting each data
// message and its payload bytes (compressed or not), and answering pings.
func (r *receivers) read(nc net.Conn, br *bufio.Reader) error {
	var head [10]byte
	pong := make([]byte, 0, 6+125)
	for {
		if _, err := io.ReadFull(br, head[:2]); err != nil {
			return err
		}
		fin, op := head[0]&0x80 != 0, head[0]&0x0f
		if head[1]&0x80 != 0 {
			return errors.New("server sent a masked frame")
		}
		n := int64(head[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(br, head[2:4]); err != nil {
				return err
			}
			n = int64(binary.BigEndian.Uint16(head[2:4]))
		case 127:
			if _, err := io.ReadFull(br, head[2:10]); err != nil {
				return err
			}
			n = int64(binary.BigEndian.Uint64(head[2:10]))
		}
		if n < 0 || n > 1<<30 {
			return fmt.Errorf("frame of %d bytes", n)
		}
		switch {
		case op == 9 && n <= 125:
			// A pong with the ping's payload, masked with a zero key.
			pong = append(pong[:0], 0x8a, 0x80|byte(n), 0, 0, 0, 0)
			p, err := br.Peek(int(n))
			if err != nil {
				return err
			}
			pong = append(pong, p...)
			if _, err := nc.Write(pong); err != nil {
				return err
			}
		case op == 8:
			return errors.New("server sent a close frame")
		case op >= 8:
			return fmt.Errorf("unexpected control frame, opcode %d", op)
		default:
			r.bytes.Add(n)
		}
		if _, err := br.Discard(int(n)); err != nil {
			return err
		}
		if fin && op < 8 {
			if r.msgs.Add(1) >= r.target.Load() {
				select {
				case r.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}
