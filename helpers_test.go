package websocket

// Helpers shared by the tests of several files: servers, dialing, and
// connections that count what crosses them.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// handshakeEcho sends msg as text and checks that it comes back.
func handshakeEcho(t *testing.T, c *Conn, msg string) {
	t.Helper()
	// The context outlives the exchange: cancelling a context after the
	// calls that used it returned is the subject of its own test.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	if err := c.Write(ctx, MessageText, []byte(msg)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	typ, p, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if typ != MessageText || string(p) != msg {
		t.Fatalf("echo: %v %q, want text %q", typ, p, msg)
	}
}

// countingConn counts the bytes that cross a connection, to measure what
// messages weigh on the wire, and the writes that carry them.
type countingConn struct {
	net.Conn
	read, written, writes atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// Write counts the write before it is made: once the peer has read
// what it carried, the count has it, where a count after the write can
// come after the peer's read (and a test's look). The bytes, known only
// after, are counted then.
func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("cannot half-close")
}

// wireTransport returns an http.Transport whose connections count
// what they carry, and a channel that gets the first one it dials.
func wireTransport() (*http.Transport, <-chan *countingConn) {
	dialed := make(chan *countingConn, 1)
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := new(net.Dialer).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cc := &countingConn{Conn: nc}
		select {
		case dialed <- cc:
		default:
		}
		return cc, nil
	}}, dialed
}

// echoServer starts an httptest server whose handler accepts with opts and
// runs handle; it is closed when the test ends.
func echoServer(t testing.TB, opts *AcceptOptions, handle func(*Conn)) *httptest.Server {
	t.Helper()
	if handle == nil {
		handle = echo
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		handle(c)
	}))
	t.Cleanup(s.Close)
	return s
}

// echo sends every message back until the connection ends.
func echo(c *Conn) {
	ctx := context.Background()
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return
		}
	}
}

func wsURL(s *httptest.Server) string { return "ws" + strings.TrimPrefix(s.URL, "http") }

func dialT(t testing.TB, url string, opts *DialOptions) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// readAsync reads c in a goroutine of its own, handing the error that ends
// the read to the channel.
func readAsync(c *Conn) <-chan error {
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		readErr <- err
	}()
	return readErr
}

// Fuzz targets stand beside the tests of what they fuzz. Where a property
// needs a reference, it is restated from RFC 6455 or built on unicode/utf8,
// not taken from the code under test. Seed corpora live in
// testdata/fuzz/<FuzzName>; run a target with
//
//	go test -run='^$' -fuzz='^FuzzServerConn$' -fuzztime=60s

// fuzzPlan hands out the bytes of a fuzz input one at a time, cyclically,
// to drive choices such as chunk sizes. An empty plan gives zeros.
type fuzzPlan struct {
	p []byte
	i int
}

func (p *fuzzPlan) next() byte {
	if len(p.p) == 0 {
		return 0
	}
	b := p.p[p.i%len(p.p)]
	p.i++
	return b
}

// fuzzChunks cuts data into pieces whose sizes come from sizes, cyclically.
// A size of zero makes an empty piece, but never two in a row.
func fuzzChunks(sizes, data []byte) [][]byte {
	plan := fuzzPlan{p: sizes}
	var chunks [][]byte
	empty := false
	for len(data) > 0 {
		n := int(plan.next())
		if n == 0 && !empty {
			chunks = append(chunks, data[:0])
			empty = true
			continue
		}
		n = min(max(n, 1), len(data))
		chunks = append(chunks, data[:n])
		data = data[n:]
		empty = false
	}
	return chunks
}

// rawUpgradeRequest is an opening handshake for a raw client to send; the
// exact answer it gets is sample101.
const rawUpgradeRequest = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: " + sampleKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"

// rawClient opens a connection to the server at addr as a raw client: it
// sends rawUpgradeRequest and checks the 101. Every read and write of the
// connection has a 10 s deadline; it is closed when the test ends.
func rawClient(t testing.TB, addr string) net.Conn {
	t.Helper()
	nc := dialRaw(t, addr)
	t.Cleanup(func() { nc.Close() })
	return nc
}

// socketPair returns both ends of a connection made by listening on
// network and address; both are closed when the test ends.
func socketPair(t *testing.T, network, address string) (dialed, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	accepted, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	return dialed, accepted
}

// deflateClient is rawClient offering permessage-deflate.
func deflateClient(t testing.TB, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := strings.Replace(rawUpgradeRequest, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1)
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	// The server sends nothing after its response until the client does,
	// so the bufio.Reader takes nothing past it.
	head, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil || head.StatusCode != 101 || !strings.HasPrefix(head.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("handshake: %v, %v", head, err)
	}
	return nc
}

// dialRaw is rawClient, leaving the connection for the caller to close.
func dialRaw(t testing.TB, addr string) net.Conn {
	t.Helper()
	nc := sendRequest(t, addr, rawUpgradeRequest)
	got := make([]byte, len(sample101))
	if _, err := io.ReadFull(nc, got); err != nil || string(got) != sample101 {
		nc.Close()
		t.Fatalf("handshake: %q, %v", got, err)
	}
	return nc
}

// sendRequest connects to addr and sends req, giving every read and write
// of the connection a 10 s deadline; the caller closes it.
func sendRequest(t testing.TB, addr, req string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		t.Fatal(err)
	}
	return nc
}

// answerPing runs sc.Ping with ctx while nc, sc's raw peer, answers its
// ping with the pong followed, in the same write, by extra; it returns
// what Ping returned.
func answerPing(t *testing.T, ctx context.Context, sc *Conn, nc net.Conn, extra string) error {
	t.Helper()
	pinged := make(chan error, 1)
	go func() { pinged <- sc.Ping(ctx) }()
	ping, err := readServerFrame(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(nc, clientFrame(0x8A, ping[2:])+extra); err != nil {
		t.Fatal(err)
	}
	return <-pinged
}

// readServerFrame reads one unmasked frame of at most 125 bytes of
// payload, as a server sends it, and returns it whole, in wire form.
func readServerFrame(nc io.Reader) (string, error) {
	var b [2 + 125]byte
	if _, err := io.ReadFull(nc, b[:2]); err != nil {
		return "", err
	}
	n := int(b[1])
	if n > 125 {
		return "", fmt.Errorf("frame header %x: not a small unmasked frame", b[:2])
	}
	if _, err := io.ReadFull(nc, b[2:2+n]); err != nil {
		return "", err
	}
	return string(b[:2+n]), nil
}

// frameHeader is the header of a server's final frame whose first byte
// is b0, with size bytes of payload.
func frameHeader(b0 byte, size int) []byte {
	switch {
	case size < 126:
		return []byte{b0, byte(size)}
	case size < 1<<16:
		return binary.BigEndian.AppendUint16([]byte{b0, 126}, uint16(size))
	}
	return binary.BigEndian.AppendUint64([]byte{b0, 127}, uint64(size))
}

// maskedHeader is the header of a client's frame whose first byte is b0,
// claiming size bytes of payload, masked with the key 0.
func maskedHeader(b0 byte, size int) []byte {
	f := frameHeader(b0, size)
	f[1] |= 0x80
	return append(f, 0, 0, 0, 0)
}

// maskedFrame is a client's frame whose first byte is b0, carrying
// payload, masked with the key 0.
func maskedFrame(b0 byte, payload []byte) []byte {
	return append(maskedHeader(b0, len(payload)), payload...)
}

// clientFrame is the wire form of a frame from a client whose first byte
// is b0, masked with the key 0 (which leaves the payload as it is).
func clientFrame(b0 byte, payload string) string {
	return string([]byte{b0, 0x80 | byte(len(payload)), 0, 0, 0, 0}) + payload
}

// acceptKey is the Sec-WebSocket-Accept answering key.
func acceptKey(key string) string { return string(appendAcceptKey(nil, key)) }

// acceptEcho is a handler that accepts with the default options and
// echoes until the connection ends.
func acceptEcho(w http.ResponseWriter, r *http.Request) {
	c, err := Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	echo(c)
}

// echoLoop is a handler that accepts with opts and echoes every message:
// with Serve, a ReadAppend loop reusing its buffer, the README's Read
// loop, Reader and io.ReadAll ("ReadAll"), or a relay's io.Copy from
// Reader to Writer ("Copy"), with the writer's ReadFrom hidden so that
// the reader's WriteTo does the copy.
func echoLoop(loop string, opts *AcceptOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, opts)
		if err != nil {
			return
		}
		if loop == "Serve" {
			c.Serve(func(typ MessageType, p []byte) {
				c.Write(context.Background(), typ, p)
			}, func(error) { c.CloseNow() })
			return
		}
		defer c.CloseNow()
		var buf []byte
		plain := &struct{ io.Writer }{} // one per connection: no allocation per message
		for {
			var typ MessageType
			var p []byte
			switch loop {
			case "Read":
				typ, p, err = c.Read(r.Context())
			case "ReadAll":
				var mr io.Reader
				if typ, mr, err = c.Reader(r.Context()); err == nil {
					p, err = io.ReadAll(mr)
				}
			case "Copy":
				var mr io.Reader
				if typ, mr, err = c.Reader(r.Context()); err != nil {
					return
				}
				w, err := c.Writer(r.Context(), typ)
				if err != nil {
					return
				}
				plain.Writer = w
				if _, err := io.Copy(plain, mr); err != nil {
					return
				}
				if err := w.Close(); err != nil {
					return
				}
				continue
			default:
				typ, p, err = c.ReadAppend(r.Context(), buf[:0])
				buf = p
			}
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, p); err != nil {
				return
			}
		}
	})
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitWriting waits until a Write on c has begun to write, the frame lock
// in hand, at most 5 s. Waiting only for the frame lock to be taken was
// too soon for a test that then queues a close frame (a shutdown's): the
// Write, finding the close queued when it looked at the connection, was
// refused, and the close went out at once (TestShutdownCloseEnd, once
// under -race in CI; at each run with a pause put between the two).
func waitWriting(t *testing.T, c *Conn) {
	t.Helper()
	waitFor(t, "the Write to begin writing", func() bool {
		c.pendMu.Lock()
		defer c.pendMu.Unlock()
		return c.flusher
	})
}

// stalledTLSConn accepts a connection over TLS from a raw TLS client that
// reads nothing past the handshake, its socket's receive buffer 4 KiB,
// and returns the accepted connection.
func stalledTLSConn(t *testing.T) *Conn {
	t.Helper()
	s, conns := acceptOneTLS(t)
	dialRawTLS(t, s.Listener.Addr().String(), 4<<10)
	return <-conns
}

// dialRawTLS is rawClient over TLS, its socket's receive buffer set to
// rcvbuf bytes unless 0; the connection is closed when the test ends.
func dialRawTLS(t testing.TB, addr string, rcvbuf int) *tls.Conn {
	t.Helper()
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	if rcvbuf > 0 {
		tc.NetConn().(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	io.WriteString(tc, rawUpgradeRequest)
	got := make([]byte, len(sample101))
	if _, err := io.ReadFull(tc, got); err != nil || string(got) != sample101 {
		t.Fatalf("handshake: %q, %v", got, err)
	}
	return tc
}

// stalledPairOver is stalledPair over a plain socket or over TLS.
func stalledPairOver(t testing.TB, tlsOn bool) (net.Conn, *Conn) {
	t.Helper()
	if !tlsOn {
		return stalledPair(t, nil)
	}
	s, conns := acceptOneTLS(t)
	nc := dialRawTLS(t, s.Listener.Addr().String(), 0)
	sc := <-conns
	t.Cleanup(func() { sc.CloseNow() })
	return nc, sc
}

// waitCloseQueued waits until a close frame of sc's is sent or queued.
func waitCloseQueued(t *testing.T, sc *Conn) {
	t.Helper()
	waitFor(t, "the close frame to be queued", func() bool {
		sc.pendMu.Lock()
		defer sc.pendMu.Unlock()
		return sc.closeSent
	})
}

// acceptOneTLS is acceptOne over TLS, with the default options.
func acceptOneTLS(t testing.TB) (*httptest.Server, <-chan *Conn) {
	t.Helper()
	conns := make(chan *Conn, 1)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := Accept(w, r, nil); err == nil {
			conns <- c
		}
	}))
	s.StartTLS()
	t.Cleanup(s.Close)
	return s, conns
}

// goroutinesCreated returns how many goroutines the program has started.
func goroutinesCreated(t testing.TB) uint64 {
	t.Helper()
	sample := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindBad {
		t.Skip("the runtime does not count the goroutines it created (/sched/goroutines-created, Go 1.26)")
	}
	return sample[0].Value.Uint64()
}
