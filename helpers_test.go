package websocket

// Helpers shared by the tests of several files: servers, dialing, and
// connections that count what crosses them.

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
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

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	c.writes.Add(1)
	return n, err
}

func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("cannot half-close")
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
