package websocket_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rfc6455/websocket"
)

// This file is the harness of the hostile-peer suite: an echo server built
// on the library, a raw client that attacks it, a raw server that attacks
// Dial, and the memory accounting of each row. The rows are in
// hostile_server_test.go and hostile_client_test.go. The raw ends frame,
// mask, compress and handshake on their own, with the standard library
// only, so that a fault of the library's codec cannot hide itself.
//
// Each row runs in turn, never beside another, with the heap measured
// around it: what it allocated in all (runtime.MemStats.TotalAlloc, every
// goroutine's, the raw peer's included), and what it left live once
// collected (HeapAlloc after runtime.GC). Both are bounded per row, far
// below what the attacker claims or could make the server hold. After
// every row a fresh client (Dial) has a message echoed, to show the server
// still serves.

const (
	// hostileWait bounds every wait of the suite.
	hostileWait = 5 * time.Second
	// hostileLimit is the server's read limit.
	hostileLimit = 1 << 20
	// hostileCloseTimeout is the library's close timeout, longer than the
	// raw ends wait, so that a TCP close that only the timeout brings
	// fails the row instead of passing it late.
	hostileCloseTimeout = 2 * hostileWait
	// hostileHeaderTimeout is the server's http.Server.ReadHeaderTimeout.
	hostileHeaderTimeout = time.Second
	// hostileWriteTimeout bounds each write of the /flood handler.
	hostileWriteTimeout = 300 * time.Millisecond
	// hostileRowHeader names, in a handshake, the row that sent it.
	hostileRowHeader = "X-Hostile-Row"

	// Default memory bounds of a row: bytes allocated while it runs, and
	// bytes it leaves live. The library pools read buffers of 32 KiB, and
	// the race detector makes sync.Pool drop a share of what it is given,
	// so a row may allocate a few of them afresh.
	hostileAlloc  = 2 << 20
	hostileRetain = 1 << 20
)

// hostileServer is the server under attack: the library behind net/http.
// Paths choose what a connection does: /echo reads and echoes messages in
// a loop, /serve echoes them through Serve, /flood writes 64 KiB messages
// until a write's context ends.
type hostileServer struct {
	t    *testing.T
	srv  *http.Server
	addr string

	mu    sync.Mutex
	ends  map[string]chan hostileEnd // by row, for the row that waits
	conns map[*websocket.Conn]bool   // live connections, closed at cleanup
	live  sync.WaitGroup             // connections whose handling has not ended
}

// hostileEnd is how the server's handling of a connection ended.
type hostileEnd struct {
	err    error         // Accept's error, or the read or write's that ended it
	writes int           // /flood: messages written before the failing write
	took   time.Duration // /flood: how long the failing write took
}

func newHostileServer(t *testing.T) *hostileServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &hostileServer{
		t:     t,
		addr:  ln.Addr().String(),
		ends:  make(map[string]chan hostileEnd),
		conns: make(map[*websocket.Conn]bool),
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: hostileHeaderTimeout}
	go s.srv.Serve(ln)
	t.Cleanup(func() {
		s.srv.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.CloseNow()
		}
		s.mu.Unlock()
		done := make(chan struct{})
		go func() { s.live.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(hostileWait):
			t.Errorf("connection handlers still running %v after the test", hostileWait)
		}
	})
	return s
}

// expect readies the server to report how n connections of row end. Rows
// run one at a time: the reports awaited for earlier ones are forgotten.
func (s *hostileServer) expect(row string, n int) <-chan hostileEnd {
	ch := make(chan hostileEnd, n)
	s.mu.Lock()
	clear(s.ends)
	s.ends[row] = ch
	s.mu.Unlock()
	return ch
}

func (s *hostileServer) report(row string, e hostileEnd) {
	s.mu.Lock()
	ch := s.ends[row]
	s.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- e:
	default:
		s.t.Errorf("%s: more connections ended than expected: %v", row, e.err)
	}
}

func (s *hostileServer) track(c *websocket.Conn) {
	s.live.Add(1)
	s.mu.Lock()
	s.conns[c] = true
	s.mu.Unlock()
}

func (s *hostileServer) untrack(c *websocket.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.live.Done()
}

func (s *hostileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	row := r.Header.Get(hostileRowHeader)
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Compression:  websocket.CompressionNoContextTakeover,
		CloseTimeout: hostileCloseTimeout,
	})
	if err != nil {
		s.report(row, hostileEnd{err: err})
		return
	}
	c.SetReadLimit(hostileLimit)
	s.track(c)
	ctx := context.Background()
	switch r.URL.Path {
	case "/serve":
		c.Serve(func(typ websocket.MessageType, p []byte) {
			c.Write(ctx, typ, p)
		}, func(err error) {
			c.CloseNow()
			s.untrack(c)
			s.report(row, hostileEnd{err: err})
		})
		return
	case "/flood":
		s.report(row, flood(c))
	default:
		for {
			typ, p, err := c.Read(ctx)
			if err == nil {
				err = c.Write(ctx, typ, p)
			}
			if err != nil {
				s.report(row, hostileEnd{err: err})
				break
			}
		}
	}
	c.CloseNow()
	s.untrack(c)
}

// flood writes 64 KiB messages, each under hostileWriteTimeout, until one
// fails, and reports it. Message i is filled with byte(i). It gives up
// after 4096 messages (256 MiB), a peer that reads them all.
func flood(c *websocket.Conn) hostileEnd {
	p := make([]byte, 64<<10)
	for i := range 4096 {
		for j := range p {
			p[j] = byte(i)
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), hostileWriteTimeout)
		err := c.Write(ctx, websocket.MessageBinary, p)
		cancel()
		if err != nil {
			return hostileEnd{err: err, writes: i, took: time.Since(start)}
		}
	}
	return hostileEnd{writes: 4096}
}

// awaitEnd returns how the server's handling of a connection ended.
func awaitEnd(t *testing.T, ends <-chan hostileEnd) hostileEnd {
	t.Helper()
	select {
	case e := <-ends:
		return e
	case <-time.After(hostileWait):
		t.Fatalf("the server's handling of the connection did not end within %v", hostileWait)
	}
	return hostileEnd{}
}

// echoCheck has a fresh client, the library's, send a message and read
// it back through the server, then close cleanly.
func (s *hostileServer) echoCheck(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hostileWait)
	defer cancel()
	h := http.Header{hostileRowHeader: {t.Name() + "/echo"}}
	c, _, err := websocket.Dial(ctx, "ws://"+s.addr+"/echo", &websocket.DialOptions{Header: h})
	if err != nil {
		t.Fatalf("after the row, a fresh Dial failed: %v", err)
	}
	defer c.CloseNow()
	msg := "still serving after " + t.Name()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("after the row, a fresh connection's write failed: %v", err)
	}
	typ, p, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(p) != msg {
		t.Fatalf("after the row, a fresh connection read %v %q, %v; want the echo %q", typ, p, err, msg)
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("after the row, a fresh connection's close failed: %v", err)
	}
}

// Memory accounting.

// hostileMem is what a row cost: bytes allocated while it ran, and bytes
// it left live once collected (negative when it freed more than it left).
type hostileMem struct{ alloc, retained int64 }

type memPoint struct{ heap, total uint64 }

func memNow() memPoint {
	// Twice: sync.Pool keeps a victim cache through one collection.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memPoint{ms.HeapAlloc, ms.TotalAlloc}
}

func memSince(p memPoint) hostileMem {
	q := memNow()
	return hostileMem{alloc: int64(q.total - p.total), retained: int64(q.heap) - int64(p.heap)}
}

func kib(n int64) string { return fmt.Sprintf("%d KiB", n>>10) }

// hostileRow is one attack: run performs it and checks its outcome; alloc
// and retain bound what it may cost (0: the defaults).
type hostileRow struct {
	name          string
	run           func(t *testing.T)
	alloc, retain int64
	// racePerOp widens alloc under the race detector by this much for each
	// operation the row counted in hostileOps: there sync.Pool drops a
	// quarter of what it is given, so an operation that takes and returns
	// a pooled buffer allocates one afresh now and then.
	racePerOp int64
}

// hostileOps counts the operations of the running row; see racePerOp.
var hostileOps atomic.Int64

// withAlloc sets a row's allocation bound.
func withAlloc(n int64, row hostileRow) hostileRow {
	row.alloc = n
	return row
}

// runHostile runs rows in turn, measuring each, with an echo through s
// after each.
func runHostile(t *testing.T, s *hostileServer, rows []hostileRow) {
	var summary strings.Builder
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			allocBound, retainBound := row.alloc, row.retain
			if allocBound == 0 {
				allocBound = hostileAlloc
			}
			if retainBound == 0 {
				retainBound = hostileRetain
			}
			start := time.Now()
			hostileOps.Store(0)
			before := memNow()
			row.run(t)
			m := memSince(before)
			took := time.Since(start)
			if raceEnabled {
				allocBound += hostileOps.Load() * row.racePerOp
			}
			fmt.Fprintf(&summary, "%-70s alloc %9s (bound %9s)  retained %8s (bound %8s)  %v\n",
				row.name, kib(m.alloc), kib(allocBound), kib(m.retained), kib(retainBound), took.Round(time.Millisecond))
			if m.alloc > allocBound {
				t.Errorf("the row allocated %s, over its bound of %s", kib(m.alloc), kib(allocBound))
			}
			if m.retained > retainBound {
				t.Errorf("the row left %s live, over its bound of %s", kib(m.retained), kib(retainBound))
			}
			if !t.Failed() {
				s.echoCheck(t)
			}
		})
	}
	t.Logf("memory and time per row:\n%s", summary.String())
}

// The raw client: a TCP connection that speaks RFC 6455 by hand.

// rfcKey and rfcAccept are the key and accept value of RFC 6455 §1.3.
const (
	rfcKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	rfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

type rawClient struct {
	t    *testing.T
	nc   *net.TCPConn
	br   *bufio.Reader
	keys uint32 // frames masked so far
}

// dialRaw connects to the server; the connection is closed at the end of
// the test.
func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, hostileWait)
	if err != nil {
		t.Fatal(err)
	}
	p := &rawClient{t: t, nc: nc.(*net.TCPConn), br: bufio.NewReader(nc)}
	t.Cleanup(func() { p.nc.Close() })
	return p
}

func (p *rawClient) write(b []byte) error {
	p.nc.SetWriteDeadline(time.Now().Add(hostileWait))
	_, err := p.nc.Write(b)
	return err
}

func (p *rawClient) mustWrite(b []byte) {
	p.t.Helper()
	if err := p.write(b); err != nil {
		p.t.Fatalf("writing to the server: %v", err)
	}
}

// request is an opening handshake for path from row, with extra header
// lines; a line "-Name" leaves out a header of the standard set.
func request(path, row string, lines ...string) string {
	std := []string{
		"Host: 127.0.0.1",
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: " + rfcKey,
		"Sec-WebSocket-Version: 13",
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\n%s: %s\r\n", path, hostileRowHeader, row)
	for _, l := range std {
		name, _, _ := strings.Cut(l, ":")
		omit := false
		for _, x := range lines {
			omit = omit || strings.EqualFold(x, "-"+name)
		}
		if !omit {
			b.WriteString(l + "\r\n")
		}
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "-") {
			b.WriteString(l + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// padLines is n header lines of a thousand bytes each.
func padLines(n int) []string {
	pad := strings.Repeat("x", 1000)
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("X-Pad-%d: %s", i, pad)
	}
	return lines
}

func (p *rawClient) readResponse() *http.Response {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(hostileWait))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		p.t.Fatalf("reading the handshake response: %v", err)
	}
	return resp
}

// handshake opens the connection to path, offering compression when
// deflate is set; the server must accept the offer.
func (p *rawClient) handshake(path string, deflate bool) {
	p.t.Helper()
	var lines []string
	if deflate {
		lines = append(lines, "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover")
	}
	p.mustWrite([]byte(request(path, p.t.Name(), lines...)))
	resp := p.readResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != rfcAccept {
		p.t.Fatalf("handshake answered %q with Sec-WebSocket-Accept %q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	if deflate != strings.HasPrefix(ext, "permessage-deflate") {
		p.t.Fatalf("offered compression %v, the server answered Sec-WebSocket-Extensions %q", deflate, ext)
	}
}

// connect opens a connection to path and returns it with the channel on
// which the server reports how it ended.
func connect(t *testing.T, s *hostileServer, path string, deflate bool) (*rawClient, <-chan hostileEnd) {
	t.Helper()
	ends := s.expect(t.Name(), 1)
	p := dialRaw(t, s.addr)
	p.handshake(path, deflate)
	return p, ends
}

func (p *rawClient) nextKey() [4]byte {
	p.keys++
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], 0x9e3779b9*p.keys|0x01010101)
	return k
}

// frame is a frame as a client sends it: first byte b0, masked with a
// fresh key, its length in the minimal form.
func (p *rawClient) frame(b0 byte, payload string) []byte {
	return appendMasked(nil, b0, []byte(payload), p.nextKey())
}

// frames masks and joins frames given in their unmasked wire form by
// first byte and payload, alternately.
func (p *rawClient) frames(parts ...any) []byte {
	var b []byte
	for i := 0; i < len(parts); i += 2 {
		b = appendMasked(b, parts[i].(byte), []byte(parts[i+1].(string)), p.nextKey())
	}
	return b
}

func appendLen(b []byte, maskBit byte, n uint64) []byte {
	switch {
	case n <= 125:
		return append(b, maskBit|byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, maskBit|126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, maskBit|127), n)
}

func appendMasked(b []byte, b0 byte, payload []byte, key [4]byte) []byte {
	b = appendLen(append(b, b0), 0x80, uint64(len(payload)))
	b = append(b, key[:]...)
	n := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[n+i] ^= key[i&3]
	}
	return b
}

// readFrame reads a frame of the server's, which must come unmasked and
// declare at most 4 MiB.
func (p *rawClient) readFrame() (byte, []byte, error) {
	p.nc.SetReadDeadline(time.Now().Add(hostileWait))
	return readServerFrame(p.br)
}

func readServerFrame(r io.Reader) (byte, []byte, error) {
	var h [10]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("the server sent a masked frame (%#x %#x)", h[0], h[1])
	}
	n := uint64(h[1])
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[2:4]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err := io.ReadFull(r, h[2:10]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(h[2:10])
	}
	if n > 4<<20 {
		return 0, nil, fmt.Errorf("the server declared a frame of %d bytes", n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return h[0], payload, nil
}

// expectFrame reads a frame and checks it is b0 with payload want.
func (p *rawClient) expectFrame(b0 byte, want string) {
	p.t.Helper()
	got0, got, err := p.readFrame()
	if err != nil {
		p.t.Fatalf("awaiting frame %#x %q: %v", b0, want, err)
	}
	if got0 != b0 || string(got) != want {
		p.t.Fatalf("got frame %#x %q, want %#x %q", got0, got, b0, want)
	}
}

// expectClose reads the server's close frame, which must carry code and
// a reason of at most 123 bytes of UTF-8 that contains why, then the end
// of the stream.
func (p *rawClient) expectClose(code websocket.StatusCode, why string) {
	p.t.Helper()
	b0, payload, err := p.readFrame()
	if err != nil {
		p.t.Fatalf("awaiting close %d: %v", code, err)
	}
	if err := checkClose(b0, payload, code, why); err != nil {
		p.t.Fatal(err)
	}
	p.expectEOF()
}

// checkClose checks a close frame: code, and a reason of at most 123
// bytes of UTF-8 that says which rule was broken by containing why.
func checkClose(b0 byte, payload []byte, code websocket.StatusCode, why string) error {
	if b0 != 0x88 || len(payload) < 2 {
		return fmt.Errorf("got frame %#x %q, want a close frame with code %d", b0, payload, code)
	}
	got := websocket.StatusCode(binary.BigEndian.Uint16(payload))
	reason := payload[2:]
	if got != code || len(reason) > 123 || !utf8.Valid(reason) || !bytes.Contains(reason, []byte(why)) {
		return fmt.Errorf("got close code %d reason %q, want code %d and a reason of at most 123 bytes of UTF-8 saying %q", got, reason, code, why)
	}
	return nil
}

// expectEOF reads the end of the stream, with nothing before it.
func (p *rawClient) expectEOF() {
	p.t.Helper()
	if err := expectEOF(p.nc, p.br); err != nil {
		p.t.Fatal(err)
	}
}

func expectEOF(nc net.Conn, r io.Reader) error {
	nc.SetReadDeadline(time.Now().Add(hostileWait))
	var b [64]byte
	n, err := io.ReadFull(r, b[:1])
	switch {
	case n > 0:
		m, _ := r.Read(b[1:])
		return fmt.Errorf("got %q where the end of the stream was due", b[:1+m])
	case err == io.EOF:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("the connection was not closed within %v", hostileWait)
	}
	return fmt.Errorf("want the end of the stream, got %w", err)
}

// closeNormally runs a closing handshake started by the peer.
func (p *rawClient) closeNormally() {
	p.t.Helper()
	p.mustWrite(p.frame(0x88, "\x03\xe8"))
	p.expectClose(websocket.StatusNormalClosure, "")
}

// reset closes the connection with a TCP reset (SO_LINGER 0).
func (p *rawClient) reset() {
	p.nc.SetLinger(0)
	p.nc.Close()
}

// wantFailed checks that a read failed the connection with code.
func wantFailed(t *testing.T, err error, code websocket.StatusCode) {
	t.Helper()
	var pe *websocket.ProtocolError
	if !errors.As(err, &pe) || pe.Code != code || websocket.CloseStatus(err) != code {
		t.Fatalf("the read ended with %v, want a *ProtocolError with code %d", err, code)
	}
}

// wantPeerClosed checks that a read ended with the peer's close frame,
// code.
func wantPeerClosed(t *testing.T, err error, code websocket.StatusCode) {
	t.Helper()
	var ce websocket.CloseError
	var pe *websocket.ProtocolError
	if !errors.As(err, &ce) || errors.As(err, &pe) || ce.Code != code {
		t.Fatalf("the read ended with %v, want the peer's close %d", err, code)
	}
}

// wantLost checks that a read saw the connection lost without a close
// frame (1006, reported, never sent).
func wantLost(t *testing.T, err error) {
	t.Helper()
	var pe *websocket.ProtocolError
	if websocket.CloseStatus(err) != websocket.StatusAbnormalClosure || errors.As(err, &pe) {
		t.Fatalf("the read ended with %v, want the connection lost (1006)", err)
	}
}

// Compression, by the standard library's compress/flate.

// deflateMsg compresses p as one message of RFC 7692: raw DEFLATE, sync
// flushed, the final 00 00 ff ff left out.
func deflateMsg(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// zeroBomb is a compressed message that inflates to mib MiB of zeros: the
// compressed form of each MiB after the first is the same.
func zeroBomb(mib int) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	z := make([]byte, 1<<20)
	w.Write(z)
	w.Flush()
	first := bytes.Clone(b.Bytes())
	b.Reset()
	w.Write(z)
	w.Flush()
	next := b.Bytes()
	out := first
	for range mib - 1 {
		out = append(out, next...)
	}
	return bytes.TrimSuffix(out, []byte{0, 0, 0xff, 0xff})
}

// inflateMsg decompresses the payload of a compressed message into buf,
// returning what it inflates to (all of buf if it inflates to more).
func inflateMsg(p, buf []byte) ([]byte, error) {
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
	n, err := io.ReadFull(r, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil // the stream ends at the sync flush, not a final block
	}
	return buf[:n], err
}

// acceptValue computes Sec-WebSocket-Accept for key (RFC 6455 §4.2.2).
func acceptValue(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}
