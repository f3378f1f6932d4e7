package bench_test

import (
	"bufio"
	"bytes"
	stdflate "compress/flate"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	kflate "github.com/klauspost/compress/flate"
	"github.com/lxzan/gws"
	ours "github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/internal/flate"
)

var broadcastConns = flag.Int("broadcast.conns", 1000, "connections each broadcast of BenchmarkBroadcast goes to (the README's figures: 10000)")

// A hub is one library's server side of a broadcast, written as that
// library's users write one: it accepts connections, keeps them, and sends
// one message to all of them.
type hub interface {
	http.Handler
	count() int
	broadcast(p []byte) error
	close()
}

// The compression modes of a broadcast, and what the receivers offer in
// each. The server decides whether to take over its context.
const (
	plain           = "plain"            // no compression
	deflate         = "deflate"          // permessage-deflate without context takeover
	deflateTakeover = "deflate-takeover" // permessage-deflate with the server's context takeover
	deflateOffer    = "permessage-deflate; client_max_window_bits"
)

type broadcastCase struct {
	mode, lib string
	newHub    func() hub
}

// broadcastCases lists every library in every mode it supports: gorilla
// compresses without context takeover only.
var broadcastCases = []broadcastCase{
	{plain, "ours", func() hub { return &oursHub{} }},
	{plain, "gorilla", func() hub { return &gorillaHub{} }},
	{plain, "gws", func() hub { return newGwsHub(nil) }},
	{deflate, "ours", func() hub { return &oursHub{opts: ours.AcceptOptions{Compression: ours.CompressionNoContextTakeover}} }},
	{deflate, "gorilla", func() hub { return &gorillaHub{up: gorilla.Upgrader{EnableCompression: true}} }},
	{deflate, "gws", func() hub { return newGwsHub(&gws.PermessageDeflate{Enabled: true}) }},
	{deflateTakeover, "ours", func() hub { return &oursHub{opts: ours.AcceptOptions{Compression: ours.CompressionContextTakeover}} }},
	{deflateTakeover, "gws", func() hub {
		return newGwsHub(&gws.PermessageDeflate{Enabled: true, ServerContextTakeover: true, ClientContextTakeover: true})
	}},
}

// checkExtensions checks the extensions a server answered with against the
// mode.
func checkExtensions(mode, ext string) error {
	deflated := strings.HasPrefix(ext, "permessage-deflate")
	noTakeover := strings.Contains(ext, "server_no_context_takeover")
	if (mode == plain) == deflated || (mode == deflate) != noTakeover {
		return fmt.Errorf("%s: the server answered with extensions %q", mode, ext)
	}
	return nil
}

// oursHub serves each connection with Serve, which holds no goroutine for
// a quiet one, and broadcasts a PreparedMessage.
type oursHub struct {
	opts  ours.AcceptOptions
	mu    sync.Mutex
	conns []*ours.Conn // guarded by mu
}

func (h *oursHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := ours.Accept(w, r, &h.opts)
	if err != nil {
		return
	}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	c.Serve(func(ours.MessageType, []byte) {}, func(error) {})
}

func (h *oursHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (h *oursHub) broadcast(p []byte) error {
	pm, err := ours.NewPreparedMessage(ours.MessageText, p)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := pm.Broadcast(h.conns...); n != len(h.conns) {
		return fmt.Errorf("%d of %d connections took the message", n, len(h.conns))
	}
	return nil
}

func (h *oursHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.CloseNow()
	}
}

// gorillaHub reads each connection in a goroutine of its own, as the
// library needs for control frames, and writes a PreparedMessage to every
// connection in turn.
type gorillaHub struct {
	up    gorilla.Upgrader
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []*gorilla.Conn // guarded by mu
}

func (h *gorillaHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := h.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		for {
			if _, _, err := c.NextReader(); err != nil {
				return
			}
		}
	}()
}

func (h *gorillaHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (h *gorillaHub) broadcast(p []byte) error {
	pm, err := gorilla.NewPreparedMessage(gorilla.TextMessage, p)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		if err := c.WritePreparedMessage(pm); err != nil {
			return err
		}
	}
	return nil
}

func (h *gorillaHub) close() {
	h.mu.Lock()
	for _, c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// gwsHub runs each connection's read loop in a goroutine, and broadcasts
// with a Broadcaster, which queues the message on every connection.
type gwsHub struct {
	up    *gws.Upgrader
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []*gws.Conn // guarded by mu
}

func newGwsHub(pd *gws.PermessageDeflate) *gwsHub {
	opt := &gws.ServerOption{}
	if pd != nil {
		opt.PermessageDeflate = *pd
	}
	return &gwsHub{up: gws.NewUpgrader(gws.BuiltinEventHandler{}, opt)}
}

func (h *gwsHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := h.up.Upgrade(w, r)
	if err != nil {
		return
	}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		c.ReadLoop()
	}()
}

func (h *gwsHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (h *gwsHub) broadcast(p []byte) error {
	bc := gws.NewBroadcaster(gws.OpcodeText, p)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		if err := bc.Broadcast(c); err != nil {
			bc.Close()
			return err
		}
	}
	return bc.Close()
}

func (h *gwsHub) close() {
	h.mu.Lock()
	for _, c := range h.conns {
		c.NetConn().Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// chatMessage returns n bytes of JSON as a chat server broadcasts them: a
// few fields and a text of common words, which compresses to about half.
func chatMessage(n int) []byte {
	words := strings.Fields("the of and to in is you that it he was for on are as with his they at be this have from " +
		"or one had by word but not what all were we when your can said there use an each which she do how their if " +
		"will up other about out many then them these so some her would make like him into time has look two more " +
		"write go see number no way could people my than first water been call who its now find long down day did " +
		"get come made may part")
	r := rand.New(rand.NewPCG(1, 2))
	b := []byte(`{"room":"lobby","from":"user-4821","sent":"2026-01-02T15:04:05Z","text":"`)
	for len(b) < n {
		b = append(append(b, words[r.IntN(len(words))]...), ' ')
	}
	return append(b[:n-2], `"}`...)
}

// A broadcastFixture is a hub with n connections, whose receivers run in
// a process of their own (receivers_test.go).
type broadcastFixture struct {
	hub    hub
	srv    *http.Server
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *os.File
	out    *bufio.Reader
	exited chan struct{} // closed once the receivers' process has ended
	req    []byte        // the wait command, reused
	want   int64         // messages the receivers should have had in all
	msgs   int64         // messages the receivers last reported, in all
	bytes  int64         // and their payload bytes
}

// startBroadcast starts bc's hub on a loopback port and a process of n
// receivers connected to it, and checks the extensions negotiated.
func startBroadcast(bc broadcastCase, n int) (*broadcastFixture, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &broadcastFixture{hub: bc.newHub(), exited: make(chan struct{})}
	f.srv = &http.Server{Handler: f.hub, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go f.srv.Serve(ln)
	err = f.start(bc, ln.Addr().String(), n)
	if err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

func (f *broadcastFixture) start(bc broadcastCase, addr string, n int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	f.cmd = exec.Command(self)
	f.cmd.Env = append(os.Environ(), envReceivers+"="+addr, envReceiversN+"="+strconv.Itoa(n))
	if bc.mode != plain {
		f.cmd.Env = append(f.cmd.Env, envReceiversOffer+"="+deflateOffer)
	}
	f.cmd.Stderr = os.Stderr
	if f.stdin, err = f.cmd.StdinPipe(); err != nil {
		return err
	}
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	f.stdout = stdout.(*os.File)
	f.out = bufio.NewReader(f.stdout)
	if err := f.cmd.Start(); err != nil {
		return err
	}
	go func() {
		f.cmd.Wait()
		close(f.exited)
	}()
	line, err := f.readLine(dialLimit + 10*time.Second)
	if err != nil {
		return fmt.Errorf("receivers not ready: %w", err)
	}
	ext, ok := strings.CutPrefix(line, "ready\t")
	if !ok {
		return fmt.Errorf("receivers said %q, want ready", line)
	}
	if err := checkExtensions(bc.mode, ext); err != nil {
		return err
	}
	// The receivers may see the response before the hub has the
	// connection.
	for deadline := time.Now().Add(10 * time.Second); f.hub.count() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the hub holds %d connections, want %d", f.hub.count(), n)
		}
	}
	// No more connections: the listener goes (hijacked connections stay).
	return f.srv.Close()
}

// readLine reads a line from the receivers, within d.
func (f *broadcastFixture) readLine(d time.Duration) (string, error) {
	f.stdout.SetReadDeadline(time.Now().Add(d))
	line, err := f.out.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	return string(line[:len(line)-1]), nil
}

// send broadcasts p and waits until every receiver has read it. It
// allocates nothing of its own beyond the broadcast's.
func (f *broadcastFixture) send(p []byte) error {
	if err := f.hub.broadcast(p); err != nil {
		return err
	}
	f.want += int64(f.hub.count())
	f.req = append(strconv.AppendInt(append(f.req[:0], "wait "...), f.want, 10), '\n')
	if _, err := f.stdin.Write(f.req); err != nil {
		return err
	}
	f.stdout.SetReadDeadline(time.Now().Add(waitLimit + 10*time.Second))
	line, err := f.out.ReadSlice('\n')
	if err != nil {
		return err
	}
	word, rest, _ := bytes.Cut(line[:len(line)-1], []byte(" "))
	msgs, nb, _ := bytes.Cut(rest, []byte(" "))
	f.msgs, f.bytes = atoi(msgs), atoi(nb)
	if string(word) != "got" || f.msgs != f.want {
		return fmt.Errorf("receivers: %q, want %d messages", line, f.want)
	}
	return nil
}

// atoi parses a decimal count, -1 if it is not one, without allocating.
func atoi(b []byte) int64 {
	if len(b) == 0 {
		return -1
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// close tells the receivers that the connections end, closes them from the
// server's side (so that TIME_WAIT stays on the server's port), and waits
// for the receivers' process to exit, killing it after 30 s.
func (f *broadcastFixture) close() error {
	f.srv.Close()
	started := f.cmd != nil && f.cmd.Process != nil
	if !started {
		f.hub.close()
		return nil
	}
	var err error
	if _, werr := io.WriteString(f.stdin, "close\n"); werr == nil {
		var line string
		if line, err = f.readLine(10 * time.Second); err == nil && line != "closing" {
			err = fmt.Errorf("receivers said %q, want closing", line)
		}
	}
	f.hub.close()
	f.stdin.Close()
	select {
	case <-f.exited:
	case <-time.After(30 * time.Second):
		f.cmd.Process.Kill()
		<-f.exited
		err = errors.Join(err, errors.New("the receivers' process did not exit within 30s"))
	}
	if !f.cmd.ProcessState.Success() {
		err = errors.Join(err, fmt.Errorf("the receivers' process ended with %v", f.cmd.ProcessState))
	}
	return err
}

// BenchmarkBroadcast measures one broadcast of a 1 KiB text message to
// -broadcast.conns connections (1,000 unless told), with each library's
// way of sending one message to many, uncompressed and compressed: the
// time from the call until every receiver has read the message (the
// receivers, in another process, tell), and the broadcasting process's
// allocations. wire-B/msg is the payload one receiver got, ns/conn the
// time per receiver, cpu-ns/conn the broadcasting process's CPU time (user
// and system) per receiver. See the README for what each library
// compresses.
func BenchmarkBroadcast(b *testing.B) {
	n := *broadcastConns
	msg := chatMessage(1 << 10)
	for _, bc := range broadcastCases {
		var f *broadcastFixture
		b.Run(fmt.Sprintf("%dconns/%s/%s", n, bc.mode, bc.lib), func(b *testing.B) {
			if f == nil {
				var err error
				if f, err = startBroadcast(bc, n); err != nil {
					b.Fatal(err)
				}
				// The first message sets up what stays (our connections'
				// compressors with context takeover, gws's windows).
				if err := f.send(msg); err != nil {
					b.Fatal(err)
				}
			}
			msgs, nb := f.msgs, f.bytes
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for range b.N {
				if err := f.send(msg); err != nil {
					b.Fatal(err)
				}
			}
			cpu := processCPU() - cpu0
			b.StopTimer()
			b.ReportMetric(float64(f.bytes-nb)/float64(f.msgs-msgs), "wire-B/msg")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/conn")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(n), "cpu-ns/conn")
		})
		if f != nil {
			if err := f.close(); err != nil {
				b.Errorf("%s/%s: %v", bc.mode, bc.lib, err)
			}
		}
	}
}

// TestBroadcast sends a few broadcasts with every library in every mode to
// a few receivers, and checks that each receiver got each message once,
// whole when uncompressed and smaller when compressed, with the extensions
// the mode asks for.
func TestBroadcast(t *testing.T) {
	t.Parallel()
	const n, count = 20, 3
	msg := chatMessage(1 << 10)
	for _, bc := range broadcastCases {
		t.Run(bc.mode+"/"+bc.lib, func(t *testing.T) {
			t.Parallel()
			if raceEnabled && bc.mode == deflateTakeover && bc.lib == "gws" {
				// Its Broadcast reads a connection's window (writer.go:198,
				// for nothing) while the connection's queue appends the
				// last message to it (compress.go:154).
				t.Skip("gws v1.8.9 has a data race in Broadcast with context takeover")
			}
			f, err := startBroadcast(bc, n)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := f.close(); err != nil {
					t.Error(err)
				}
			}()
			for range count {
				if err := f.send(msg); err != nil {
					t.Fatal(err)
				}
			}
			if f.msgs != n*count {
				t.Errorf("receivers got %d messages, want %d", f.msgs, n*count)
			}
			per := f.bytes / f.msgs
			switch {
			case bc.mode == plain && f.bytes != n*count*int64(len(msg)):
				t.Errorf("receivers got %d payload bytes, want %d × %d", f.bytes, n*count, len(msg))
			case bc.mode != plain && (per >= int64(len(msg))*3/4 || f.bytes%f.msgs != 0):
				t.Errorf("receivers got %d payload bytes in %d messages, want the same size for each, under 3/4 of %d", f.bytes, f.msgs, len(msg))
			}
		})
	}
}

// BenchmarkBroadcastDeflate measures one compression of the broadcast
// message with each library's compressor, set as its broadcast sets it:
// ours a fresh Writer with a 32 KiB window (as PreparedMessage does; and
// ours-reused, one Writer Reset after each message),
// gorilla compress/flate at its level 1 with a pooled writer, gws
// klauspost/compress/flate at its level 1 with a pooled writer and no
// dictionary. Set beside BenchmarkBroadcast, it shows how many times a
// broadcast compresses.
func BenchmarkBroadcastDeflate(b *testing.B) {
	msg := chatMessage(1 << 10)
	out := make([]byte, 0, 2<<10)
	// As PreparedMessage compresses: with a pooled Writer, Reset after
	// each message.
	b.Run("ours", func(b *testing.B) {
		w := flate.NewWriter(flate.MaxWindowBits)
		b.ReportAllocs()
		for b.Loop() {
			out = w.Flush(w.Append(out[:0], msg))
			w.Reset()
		}
		b.ReportMetric(float64(len(out)-len(flate.FlushTail)), "out-B")
	})
	var buf bytes.Buffer
	b.Run("gorilla", func(b *testing.B) {
		w, err := stdflate.NewWriter(&buf, 1)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			w.Reset(&buf)
			w.Write(msg)
			w.Flush()
		}
		b.ReportMetric(float64(buf.Len()-len(flate.FlushTail)), "out-B")
	})
	b.Run("gws", func(b *testing.B) {
		w, err := kflate.NewWriter(&buf, kflate.BestSpeed)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			w.ResetDict(&buf, nil)
			w.Write(msg)
			w.Flush()
		}
		b.ReportMetric(float64(buf.Len()-len(flate.FlushTail)), "out-B")
	})
}
