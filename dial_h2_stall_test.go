//go:build !js

package websocket

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/h2"
	"github.com/rfc6455/websocket/internal/hpack"
)

// h2Pipe is the server's end of a net.Pipe that Dial's HTTP/2 client
// runs on, driven by the test frame by frame. A pipe buffers nothing, so
// a peer that stops reading blocks the client's next write at once.
type h2Pipe struct {
	t  *testing.T
	nc net.Conn
}

// h2PipeOptions returns options that dial ws:// over HTTP/2 on a pipe,
// whose server end comes out of the channel: a pipe for each connection
// dialed, up to 8 held.
func h2PipeOptions(t *testing.T) (*DialOptions, <-chan *h2Pipe) {
	peers := make(chan *h2Pipe, 8)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, s := net.Pipe()
		s.SetDeadline(time.Now().Add(20 * time.Second))
		t.Cleanup(func() { s.Close() })
		peers <- &h2Pipe{t, s}
		return c, nil
	}}
	return &DialOptions{HTTPClient: &http.Client{Transport: tr}, HTTP2: HTTP2Required}, peers
}

// frame reads the client's next frame.
func (p *h2Pipe) frame() (typ, flags uint8, id uint32, payload []byte) {
	p.t.Helper()
	var h [9]byte
	if _, err := io.ReadFull(p.nc, h[:]); err != nil {
		p.t.Fatalf("reading a frame: %v", err)
	}
	payload = make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2]))
	if _, err := io.ReadFull(p.nc, payload); err != nil {
		p.t.Fatalf("reading a frame: %v", err)
	}
	return h[3], h[4], binary.BigEndian.Uint32(h[5:]) &^ (1 << 31), payload
}

// until reads the client's frames up to one of type typ.
func (p *h2Pipe) until(typ uint8) {
	p.t.Helper()
	for {
		if got, _, _, _ := p.frame(); got == typ {
			return
		}
	}
}

func (p *h2Pipe) write(typ, flags uint8, id uint32, payload []byte) {
	p.t.Helper()
	if err := p.writeErr(typ, flags, id, payload); err != nil {
		p.t.Fatalf("writing a frame: %v", err)
	}
}

// writeErr writes a frame and returns the error, for another goroutine.
func (p *h2Pipe) writeErr(typ, flags uint8, id uint32, payload []byte) error {
	b := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags}
	b = binary.BigEndian.AppendUint32(b, id)
	_, err := p.nc.Write(append(b, payload...))
	return err
}

// open reads the client's preface and answers it with SETTINGS that
// offer extended CONNECT.
func (p *h2Pipe) open() {
	p.t.Helper()
	preface := make([]byte, len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	if _, err := io.ReadFull(p.nc, preface); err != nil {
		p.t.Fatal(err)
	}
	p.until(0x4) // the client's SETTINGS
	p.until(0x8) // and WINDOW_UPDATE, in the same write
	p.write(0x4, 0, 0, []byte{0, 8, 0, 0, 0, 1})
}

// dialH2Async dials ws://example.com/ws with opts in a goroutine, closes
// the Conn if it opens, and hands Dial's error to the channel.
func dialH2Async(ctx context.Context, opts *DialOptions) <-chan error {
	done := make(chan error, 1)
	go func() {
		c, _, err := Dial(ctx, "ws://example.com/ws", opts)
		if c != nil {
			c.CloseNow()
		}
		done <- err
	}()
	return done
}

// awaitDialH2 returns the error of a Dial that dialH2Async started, failing
// the test if the Dial is still under way after within.
func awaitDialH2(t *testing.T, done <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("Dial still under way after %v", within)
		return nil
	}
}

// TestDialH2ContextWhileSocketBlocked: a Dial whose HEADERS the server
// does not read returns when its context ends.
func TestDialH2ContextWhileSocketBlocked(t *testing.T) {
	opts, peers := h2PipeOptions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := dialH2Async(ctx, opts)
	p := <-peers
	p.open()
	p.until(0x4) // the acknowledgement of our SETTINGS; then nothing more is read
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial: %v, want the context's end", err)
		}
	case <-time.After(5 * time.Second):
		p.nc.Close()
		<-done
		t.Fatal("Dial still under way 5 s after its context of 300 ms ended")
	}
}

// TestDialH2WriteContextWhileSocketBlocked: a Write over HTTP/2 whose
// frames the server does not read returns when its context ends, a second
// later (the socket's grace, which spares the connection's other streams
// when it was merely slow), and says that the connection ended with it:
// its frame may have gone in part. It said only that the context ended,
// and the next call found the connection gone.
func TestDialH2WriteContextWhileSocketBlocked(t *testing.T) {
	opts, peers := h2PipeOptions(t)
	type dialed struct {
		c   *Conn
		err error
	}
	dc := make(chan dialed, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := Dial(ctx, "ws://example.com/ws", opts)
		dc <- dialed{c, err}
	}()
	p := <-peers
	p.open()
	p.until(0x1) // HEADERS
	p.write(0x1, 0x4, 1, hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"}))
	d := <-dc
	if d.err != nil {
		t.Fatal(d.err)
	}
	defer d.c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.c.Write(ctx, MessageBinary, make([]byte, 1000)) }()
	select {
	case err := <-done:
		want := "websocket: write: connection closed: context deadline exceeded, which ended the HTTP/2 connection"
		if err == nil || err.Error() != want || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrClosed) {
			t.Fatalf("Write: %v, want %q, wrapping the context's end and ErrClosed", err, want)
		}
	case <-time.After(5 * time.Second):
		p.nc.Close()
		<-done
		t.Fatal("Write still under way 5 s after its context of 300 ms ended")
	}
	if err := d.c.Write(context.Background(), MessageText, []byte("after")); !errors.Is(err, ErrClosed) {
		t.Fatalf("the next Write: %v, want ErrClosed", err)
	}
}

// TestDialH2GoAwayAtOnce: a server whose first words are SETTINGS and a
// GOAWAY refuses every Dial, and each Dial closes every connection it
// made, however the GOAWAY and the Dial's reservation of a stream fall:
// a GOAWAY that comes after the reservation leaves the stream unopened,
// so the Dial goes again on a new connection, up to h2DialTries. The
// GOAWAY seldom comes first (about 1 in 150 tries here), hence the many
// tries.
func TestDialH2GoAwayAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	closed := make(chan error, 600*h2DialTries)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				// SETTINGS with ENABLE_CONNECT_PROTOCOL 1, then GOAWAY
				// NO_ERROR with last stream 0, sent before the client's
				// preface is read.
				c.Write([]byte("\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x08\x00\x00\x00\x01" +
					"\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				_, err := io.Copy(io.Discard, c) // until the client closes
				c.Close()
				closed <- err
			}()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	var reported int64
	for i := range 600 {
		if time.Now().After(deadline) {
			t.Logf("%d tries in 10 s", i)
			break
		}
		opts := &DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{}}, HTTP2: HTTP2Required}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		c, _, err := Dial(ctx, "ws://"+ln.Addr().String()+"/ws", opts)
		cancel()
		if err == nil {
			c.CloseNow()
			t.Fatalf("try %d: Dial succeeded on a connection the server sent GOAWAY on", i)
		}
		for made := accepted.Load(); reported < made; reported++ {
			if serr := <-closed; serr != nil {
				t.Fatalf("try %d: Dial returned %q and left a connection open (%v)", i, err, serr)
			}
		}
	}
}

// TestDialH2HostileAnswers: Dial over HTTP/2 against a server that breaks
// the rules in its answer. A server that never read the preface held
// Dial past its context (the preface's write took no deadline); a flood
// of informational responses was taken without end (780,730 in 500 ms);
// a malformed response, a handshake's failure, did not wrap ErrHandshake
// and quoted a 12 KB field name whole; and a GOAWAY's debug data was
// quoted up to 200 bytes.
func TestDialH2HostileAnswers(t *testing.T) {
	t.Parallel()
	dial := dialH2Async
	// answering dials, and returns the server's end once it has the
	// request, for the test to answer.
	answering := func(t *testing.T) (<-chan error, *h2Pipe) {
		opts, peers := h2PipeOptions(t)
		done := dial(context.Background(), opts)
		p := <-peers
		p.open()
		p.until(0x1)
		return done, p
	}
	headers := func(fields ...string) []byte {
		var block []byte
		for i := 0; i < len(fields); i += 2 {
			block = hpack.AppendField(block, hpack.Field{Name: fields[i], Value: fields[i+1]})
		}
		return block
	}
	t.Run("preface never read", func(t *testing.T) {
		t.Parallel()
		opts, peers := h2PipeOptions(t)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		done := dial(ctx, opts)
		<-peers // reads nothing
		if err := awaitDialH2(t, done, 3*time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Dial: %v, want the context's end", err)
		}
	})
	t.Run("informational flood", func(t *testing.T) {
		t.Parallel()
		done, p := answering(t)
		go io.Copy(io.Discard, p.nc)
		go func() {
			for range 100_000 {
				if p.writeErr(0x1, 0x4, 1, headers(":status", "100")) != nil {
					return
				}
			}
		}()
		err := awaitDialH2(t, done, 5*time.Second)
		if want := "websocket: handshake failed: http2: stream error PROTOCOL_ERROR: more than 5 informational responses"; err == nil || err.Error() != want || !errors.Is(err, ErrHandshake) {
			t.Errorf("Dial: %v, want %q", err, want)
		}
		p.nc.Close()
	})
	t.Run("malformed response", func(t *testing.T) {
		t.Parallel()
		done, p := answering(t)
		p.write(0x1, 0x4, 1, headers(":status", "200", strings.Repeat("X", 12000), "v"))
		go io.Copy(io.Discard, p.nc)
		err := awaitDialH2(t, done, 5*time.Second)
		want := `websocket: handshake failed: http2: stream error PROTOCOL_ERROR: malformed response: field name "` + strings.Repeat("X", 128) + `"...`
		if err == nil || err.Error() != want || !errors.Is(err, ErrHandshake) {
			t.Errorf("Dial: %.300v, want %q", err, want)
		}
	})
	t.Run("GOAWAY debug data", func(t *testing.T) {
		t.Parallel()
		// The stream goes unprocessed (last stream 0), so Dial tries
		// again on a new connection, and gives up after h2DialTries.
		opts, peers := h2PipeOptions(t)
		done := dial(context.Background(), opts)
		for range h2DialTries {
			p := <-peers
			p.open()
			p.until(0x1)
			p.write(0x7, 0, 0, append([]byte{0, 0, 0, 0, 0, 0, 0, 2}, strings.Repeat("d", 5000)...))
			go io.Copy(io.Discard, p.nc)
		}
		err := awaitDialH2(t, done, 5*time.Second)
		if want := `INTERNAL_ERROR: "` + strings.Repeat("d", 128) + `"..., before processing the stream`; err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("Dial: %v, want it to end with %q", err, want)
		}
	})
}

// TestDialH2StuckDialHoldsNoOrigin: the Dials to an origin share the
// connection one of them is dialing, but a server that never answers that
// connection's preface (a dead backend), dialed by a caller without a
// deadline, held every later Dial to the origin until its own context
// ended, a connection that would have been answered never dialed. Now
// they wait h2DialShareWait for it, then one dials a connection that all
// of them share.
func TestDialH2StuckDialHoldsNoOrigin(t *testing.T) {
	opts, peers := h2PipeOptions(t)
	ctxA, cancelA := context.WithCancel(context.Background())
	first := dialH2Async(ctxA, opts) // no deadline
	defer func() {
		cancelA()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Errorf("the stuck Dial: %v, want its context's end", err)
		}
	}()
	stuck := <-peers
	go io.Copy(io.Discard, stuck.nc) // takes the preface, answers nothing

	type dialed struct {
		c   *Conn
		err error
	}
	const later = 3
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results := make(chan dialed, later)
	for range later {
		go func() {
			c, _, err := Dial(ctx, "ws://example.com/ws", opts)
			results <- dialed{c, err}
		}()
	}
	taken := 0 // results taken
	defer func() {
		cancel()
		for ; taken < later; taken++ {
			if r := <-results; r.c != nil {
				r.c.CloseNow()
			}
		}
	}()
	// The one connection dialed for them answers each stream's CONNECT.
	var p *h2Pipe
	select {
	case p = <-peers:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection dialed behind the stuck one after 5 s")
	}
	p.open()
	for id := uint32(1); id < 2*later; id += 2 {
		p.until(0x1)
		p.write(0x1, 0x4, id, hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"}))
	}
	go io.Copy(io.Discard, p.nc)
	for ; taken < later; taken++ {
		r := <-results
		if r.err != nil {
			t.Errorf("a Dial behind the stuck one: %v", r.err)
			continue
		}
		defer r.c.CloseNow()
	}
	select {
	case <-peers:
		t.Errorf("the Dials behind the stuck one dialed more than one connection")
	default:
	}
}

// dialH2Open dials over a pipe of opts (h2PipeOptions), answers the
// handshake with 200, and returns the Conn and the server's end.
func dialH2Open(t *testing.T, opts *DialOptions, peers <-chan *h2Pipe) (*Conn, *h2Pipe) {
	t.Helper()
	type result struct {
		c   *Conn
		err error
	}
	dialed := make(chan result, 1)
	go func() {
		c, _, err := Dial(context.Background(), "ws://example.com/ws", opts)
		dialed <- result{c, err}
	}()
	p := <-peers
	p.open()
	p.until(0x1)
	p.write(0x1, 0x4, 1, hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"}))
	r := <-dialed
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.CloseNow() })
	return r.c, p
}

// TestDialH2PoolDropsFailedConns: an HTTP/2 connection that fails under
// its WebSockets (the server went away) leaves Dial's pool. It stayed
// there for good, with its transport and buffers, the streams it ended
// never telling the pool it was idle: one a Dial, for a program that
// makes a transport per Dial.
func TestDialH2PoolDropsFailedConns(t *testing.T) {
	var conns []*Conn
	ours := map[*http.Transport]bool{}
	for range 3 {
		opts, peers := h2PipeOptions(t) // a transport, so a pool key, of its own
		ours[opts.HTTPClient.Transport.(*http.Transport)] = true
		c, p := dialH2Open(t, opts, peers)
		p.nc.Close()
		conns = append(conns, c)
	}
	for _, c := range conns {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, _, err := c.Read(ctx)
		cancel()
		if CloseStatus(err) != StatusAbnormalClosure {
			t.Errorf("Read after the server went away: %v, want 1006", err)
		}
	}
	waitFor(t, "the failed connections to leave the pool", func() bool {
		h2Conns.mu.Lock()
		defer h2Conns.mu.Unlock()
		for key, pooled := range h2Conns.conns {
			if ours[key.tr] && len(pooled) > 0 {
				return false
			}
		}
		return true
	})
}

// TestDialH2TransportTimeouts: the HTTP client's transport bounds the TLS
// handshake (TLSHandshakeTimeout) and the wait for the answer
// (ResponseHeaderTimeout) over HTTP/2 as it does over HTTP/1.1, with
// net/http's words. A Dial without a deadline waited for good on a
// server that said nothing.
func TestDialH2TransportTimeouts(t *testing.T) {
	t.Run("TLS handshake", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var held []net.Conn // taken, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		accepted := make(chan net.Conn, 4)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- c
			}
		}()
		for _, mode := range []HTTP2Mode{HTTP2Disabled, HTTP2Required} {
			tr := &http.Transport{TLSHandshakeTimeout: 200 * time.Millisecond, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
			opts := &DialOptions{HTTPClient: &http.Client{Transport: tr}, HTTP2: mode}
			done := make(chan error, 1)
			go func() {
				c, _, err := Dial(context.Background(), "wss://"+ln.Addr().String()+"/ws", opts)
				if c != nil {
					c.CloseNow()
				}
				done <- err
			}()
			held = append(held, <-accepted)
			want := "websocket: dial wss://" + ln.Addr().String() + "/ws: net/http: TLS handshake timeout"
			if err := awaitDialH2(t, done, 5*time.Second); err == nil || err.Error() != want {
				t.Errorf("HTTP2 mode %d: Dial: %v, want %s", mode, err, want)
			}
		}
	})
	t.Run("answer", func(t *testing.T) {
		opts, peers := h2PipeOptions(t)
		opts.HTTPClient.Transport.(*http.Transport).ResponseHeaderTimeout = 200 * time.Millisecond
		done := dialH2Async(context.Background(), opts)
		p := <-peers
		p.open()
		p.until(0x1) // the CONNECT, never answered
		go io.Copy(io.Discard, p.nc)
		want := "websocket: dial ws://example.com/ws: net/http: timeout awaiting response headers"
		if err := awaitDialH2(t, done, 5*time.Second); err == nil || err.Error() != want {
			t.Errorf("Dial: %v, want %s", err, want)
		}
	})
	t.Run("SETTINGS", func(t *testing.T) {
		// A server that takes the preface and says nothing, not even
		// its SETTINGS, the first thing it owes: held the Dial until
		// its context ended.
		opts, peers := h2PipeOptions(t)
		opts.HTTPClient.Transport.(*http.Transport).ResponseHeaderTimeout = 200 * time.Millisecond
		done := dialH2Async(context.Background(), opts)
		p := <-peers
		go io.Copy(io.Discard, p.nc)
		want := "websocket: dial ws://example.com/ws: net/http: timeout awaiting response headers"
		if err := awaitDialH2(t, done, 5*time.Second); err == nil || err.Error() != want {
			t.Errorf("Dial: %v, want %s", err, want)
		}
	})
}

// TestDialH2MaxResponseHeaderBytes: the transport's MaxResponseHeaderBytes
// bounds the answer's header over HTTP/2 as over HTTP/1.1, and is what the
// client announces. A 12 KB header passed a limit of 4 KiB.
func TestDialH2MaxResponseHeaderBytes(t *testing.T) {
	opts, peers := h2PipeOptions(t)
	opts.HTTPClient.Transport.(*http.Transport).MaxResponseHeaderBytes = 4 << 10
	done := dialH2Async(context.Background(), opts)
	p := <-peers
	preface := make([]byte, len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	io.ReadFull(p.nc, preface)
	typ, _, _, settings := p.frame()
	if typ != 0x4 || !bytes.Contains(settings, []byte{0, 6, 0, 0, 0x10, 0}) {
		t.Errorf("the client's SETTINGS %x do not announce a header list of 4096 bytes", settings)
	}
	p.until(0x8)
	p.write(0x4, 0, 0, []byte{0, 8, 0, 0, 0, 1})
	p.until(0x1)
	block := hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"})
	block = hpack.AppendField(block, hpack.Field{Name: "x-big", Value: strings.Repeat("v", 12000)})
	p.write(0x1, 0x4, 1, block)
	go io.Copy(io.Discard, p.nc)
	want := "websocket: handshake failed: http2: stream error PROTOCOL_ERROR: response header list past 4096 bytes"
	if err := awaitDialH2(t, done, 5*time.Second); err == nil || err.Error() != want {
		t.Errorf("Dial: %v, want %s", err, want)
	}
}

// TestDialH2DeprecatedDial: a transport's Dial, deprecated but still what
// net/http dials with when DialContext is nil, dials over HTTP/2 too. The
// URL's address was dialed instead.
func TestDialH2DeprecatedDial(t *testing.T) {
	peers := make(chan *h2Pipe, 1)
	//lint:ignore SA1019 the deprecated field is what is tested
	tr := &http.Transport{Dial: func(_, _ string) (net.Conn, error) {
		c, s := net.Pipe()
		s.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { s.Close() })
		peers <- &h2Pipe{t, s}
		return c, nil
	}}
	opts := &DialOptions{HTTPClient: &http.Client{Transport: tr}, HTTP2: HTTP2Required}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// An address that refuses at once, on loopback, should it be dialed.
		c, _, err := Dial(ctx, "ws://127.0.0.1:1/ws", opts)
		if c != nil {
			c.CloseNow()
		}
		done <- err
	}()
	select {
	case p := <-peers:
		p.open()
		p.until(0x1)
		p.write(0x1, 0x4, 1, hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"}))
		go io.Copy(io.Discard, p.nc)
		if err := <-done; err != nil {
			t.Errorf("Dial through the transport's Dial: %v", err)
		}
	case err := <-done:
		t.Errorf("Dial did not use the transport's Dial: %v", err)
	}
}

// TestDialH2Unprocessed: a Dial whose stream the server did not process
// (RFC 9113 §8.7) opens it again. A graceful GOAWAY that names a stream
// before the Dial's, as a server shutting down sends, failed the Dial
// although the connections before it go on; a RST_STREAM with
// REFUSED_STREAM failed it likewise.
func TestDialH2Unprocessed(t *testing.T) {
	t.Parallel()
	status200 := hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"})
	t.Run("GOAWAY", func(t *testing.T) {
		t.Parallel()
		opts, peers := h2PipeOptions(t)
		first, p1 := dialH2Open(t, opts, peers)
		done := make(chan error, 1)
		go func() {
			c, _, err := Dial(context.Background(), "ws://example.com/ws", opts)
			if c != nil {
				defer c.CloseNow()
				_, msg, rerr := c.Read(context.Background())
				if err = rerr; err == nil && string(msg) != "on 2" {
					err = fmt.Errorf("read %q on the new connection, want %q", msg, "on 2")
				}
			}
			done <- err
		}()
		p1.until(0x1) // the second Dial's HEADERS, on stream 3
		p1.write(0x7, 0, 0, []byte{0, 0, 0, 1, 0, 0, 0, 0})
		var p2 *h2Pipe
		select {
		case p2 = <-peers:
		case err := <-done:
			t.Fatalf("Dial after a graceful GOAWAY: %v, want it to go on a new connection", err)
		}
		p2.open()
		p2.until(0x1)
		p2.write(0x1, 0x4, 1, status200)
		p2.write(0x0, 0, 1, []byte("\x81\x04on 2"))
		go io.Copy(io.Discard, p2.nc)
		if err := awaitDialH2(t, done, 5*time.Second); err != nil {
			t.Fatalf("Dial after a graceful GOAWAY: %v", err)
		}
		// The WebSocket on stream 1, which the GOAWAY names, goes on.
		p1.write(0x0, 0, 1, []byte("\x81\x04on 1"))
		go io.Copy(io.Discard, p1.nc)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, msg, err := first.Read(ctx); err != nil || string(msg) != "on 1" {
			t.Fatalf("Read on stream 1 after the GOAWAY: %q, %v", msg, err)
		}
	})
	t.Run("REFUSED_STREAM", func(t *testing.T) {
		t.Parallel()
		opts, peers := h2PipeOptions(t)
		_, p := dialH2Open(t, opts, peers) // keeps the connection in the pool
		done := dialH2Async(context.Background(), opts)
		p.until(0x1) // stream 3
		p.write(0x3, 0, 3, []byte{0, 0, 0, 7})
		p.until(0x1) // stream 5, on the same connection
		p.write(0x1, 0x4, 5, status200)
		go io.Copy(io.Discard, p.nc)
		if err := awaitDialH2(t, done, 5*time.Second); err != nil {
			t.Fatalf("Dial after REFUSED_STREAM: %v", err)
		}
	})
}

// dialH2Elsewhere waits for the Dial dialH2Async started on a pooled
// connection that does not answer to go on a new connection, which it
// answers, and for the Dial to succeed there.
func dialH2Elsewhere(t *testing.T, done <-chan error, peers <-chan *h2Pipe) {
	t.Helper()
	var p *h2Pipe
	select {
	case p = <-peers:
	case err := <-done:
		t.Fatalf("Dial on a pooled connection that does not answer: %v, want it to go on a new connection", err)
	case <-time.After(h2ProbeAfter + h2ProbeWait + 5*time.Second):
		t.Fatal("Dial on a pooled connection that does not answer dialed no new one")
	}
	p.open()
	p.until(0x1)
	p.write(0x1, 0x4, 1, hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"}))
	go io.Copy(io.Discard, p.nc)
	if err := awaitDialH2(t, done, 5*time.Second); err != nil {
		t.Fatalf("Dial: %v", err)
	}
}

// TestDialH2SilentPooledConn: a Dial whose request waits on a pooled
// connection that has gone silent (its server, or a NAT on the way, drops
// what it is sent) pings it after h2ProbeAfter, and, the PING unanswered
// within h2ProbeWait, retires it and goes on a new connection. It waited
// for its context, as every Dial to the origin would have until the
// keepalive of the WebSockets on that connection dropped them all. The
// WebSocket already open there is left to its keepalive.
func TestDialH2SilentPooledConn(t *testing.T) {
	t.Parallel()
	opts, peers := h2PipeOptions(t)
	first, p1 := dialH2Open(t, opts, peers)
	go io.Copy(io.Discard, p1.nc) // takes all, answers nothing
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	dialH2Elsewhere(t, dialH2Async(ctx, opts), peers)
	if took := time.Since(start); took < h2ProbeAfter+h2ProbeWait || took > h2ProbeAfter+h2ProbeWait+3*time.Second {
		t.Errorf("Dial took %v, want about %v", took, h2ProbeAfter+h2ProbeWait)
	}
	if first.isClosed() {
		t.Error("the WebSocket on the silent connection was closed; its keepalive decides")
	}
}

// TestDialH2PooledConnNotRead: a Dial on a pooled connection whose
// server reads nothing, so that its HEADERS cannot leave, goes on a new
// connection as from a silent one, after h2ProbeAfter and h2ProbeWait,
// its context without a deadline. It waited for good, writing its
// HEADERS itself. The WebSocket already open on the stuck connection
// lives on, and reads what its server sends once the server reads again.
func TestDialH2PooledConnNotRead(t *testing.T) {
	t.Parallel()
	opts, peers := h2PipeOptions(t)
	first, p1 := dialH2Open(t, opts, peers) // p1 reads nothing from here
	start := time.Now()
	dialH2Elsewhere(t, dialH2Async(context.Background(), opts), peers)
	if took := time.Since(start); took < h2ProbeAfter+h2ProbeWait {
		t.Errorf("Dial took %v, want at least %v", took, h2ProbeAfter+h2ProbeWait)
	}
	go io.Copy(io.Discard, p1.nc)
	p1.write(0x0, 0, 1, []byte{0x82, 2, 'h', 'i'}) // a binary message, on stream 1
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if typ, msg, err := first.Read(ctx); err != nil || typ != MessageBinary || string(msg) != "hi" {
		t.Fatalf("Read on the stuck connection's WebSocket: %v %q %v, want binary \"hi\"", typ, msg, err)
	}
}

// TestDialH2TransportHTTP2Config: the HTTP client's transport's HTTP2
// settings reach the connections Dial makes: with SendPingTimeout and
// PingTimeout, a connection whose server reads on but answers nothing
// ends, and its WebSocket with it, where it was ignored and the
// WebSocket waited for its own keepalive or context.
func TestDialH2TransportHTTP2Config(t *testing.T) {
	t.Parallel()
	opts, peers := h2PipeOptions(t)
	opts.HTTPClient.Transport.(*http.Transport).HTTP2 = &http.HTTP2Config{
		SendPingTimeout: 200 * time.Millisecond,
		PingTimeout:     300 * time.Millisecond,
	}
	c, p := dialH2Open(t, opts, peers)
	go io.Copy(io.Discard, p.nc) // reads all, answers nothing
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := c.Read(ctx)
	if CloseStatus(err) != StatusAbnormalClosure || !strings.Contains(err.Error(), "a PING went unanswered for 300ms") {
		t.Fatalf("Read on a connection gone silent: %v, want 1006 for the unanswered PING", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Read ended %v after the silence began, want about 500 ms", took)
	}
}

// TestDialH2StreamWindow: the transport's HTTP2.MaxReceiveBufferPerStream
// is each stream's receive window, announced in the client's SETTINGS;
// one past net/http's valid range (4 MiB) leaves the default, 256 KiB.
func TestDialH2StreamWindow(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ set, want uint32 }{{32 << 10, 32 << 10}, {4 << 20, h2.StreamWindow}} {
		opts, peers := h2PipeOptions(t)
		opts.HTTPClient.Transport.(*http.Transport).HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: int(tt.set)}
		ctx, cancel := context.WithCancel(context.Background())
		done := dialH2Async(ctx, opts)
		p := <-peers
		preface := make([]byte, len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		if _, err := io.ReadFull(p.nc, preface); err != nil {
			t.Fatal(err)
		}
		typ, _, _, payload := p.frame()
		got := uint32(0)
		for ; typ == 0x4 && len(payload) >= 6; payload = payload[6:] {
			if binary.BigEndian.Uint16(payload) == 0x4 {
				got = binary.BigEndian.Uint32(payload[2:])
			}
		}
		if got != tt.want {
			t.Errorf("MaxReceiveBufferPerStream %d: SETTINGS_INITIAL_WINDOW_SIZE %d, want %d", tt.set, got, tt.want)
		}
		cancel()
		p.nc.Close()
		<-done
	}
}

// TestDialH2SlowAnswerPooled: a Dial whose answer is slow on a pooled
// connection that answers its PING waits for that answer, on that
// connection.
func TestDialH2SlowAnswerPooled(t *testing.T) {
	t.Parallel()
	opts, peers := h2PipeOptions(t)
	_, p := dialH2Open(t, opts, peers)
	done := dialH2Async(context.Background(), opts)
	p.until(0x1) // the HEADERS of stream 3
	for {
		typ, flags, _, payload := p.frame()
		if typ == 0x6 && flags&0x1 == 0 {
			p.write(0x6, 0x1, 0, payload) // the PING's answer
			break
		}
	}
	time.Sleep(h2ProbeWait + 500*time.Millisecond)
	p.write(0x1, 0x4, 3, hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"}))
	go io.Copy(io.Discard, p.nc)
	if err := awaitDialH2(t, done, 5*time.Second); err != nil {
		t.Fatalf("Dial: %v", err)
	}
	select {
	case <-peers:
		t.Error("the Dial made a new connection; the pooled one answered its PING")
	default:
	}
}

// TestDialH2PoolDropsGoAwayErrorConns: a GOAWAY with an error code whose
// last stream is below every open stream ends the connection, which
// leaves Dial's pool as any failed connection does. It stayed: the
// connection's failure found no stream left to end, and told the pool
// nothing.
func TestDialH2PoolDropsGoAwayErrorConns(t *testing.T) {
	opts, peers := h2PipeOptions(t)
	tr := opts.HTTPClient.Transport.(*http.Transport)
	c, p := dialH2Open(t, opts, peers)
	go io.Copy(io.Discard, p.nc)
	// GOAWAY, last stream 0, INTERNAL_ERROR.
	p.write(0x7, 0, 0, []byte{0, 0, 0, 0, 0, 0, 0, 2})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, _, err := c.Read(ctx)
	cancel()
	var re *h2.RefusedError
	if !errors.As(err, &re) {
		t.Errorf("Read after the GOAWAY: %v, want an *h2.RefusedError", err)
	}
	waitFor(t, "the failed connection to leave the pool", func() bool {
		h2Conns.mu.Lock()
		defer h2Conns.mu.Unlock()
		for key, pooled := range h2Conns.conns {
			if key.tr == tr && len(pooled) > 0 {
				return false
			}
		}
		return true
	})
}

// TestDialH2ProbeBehindHealthCheck: a Dial on a pooled connection
// whose server answers every PING in 1.5 s, within h2ProbeWait, and the
// request in 3.5 s waits for that answer on that connection, as
// TestDialH2SlowAnswerPooled has it, when the transport's HTTP2 has the
// connection health-checked too. The health check's PING, out when the
// probe came, held the probe's Ping until answered; the probe's own PING
// then had 0.5 s left, and the healthy connection was retired.
func TestDialH2ProbeBehindHealthCheck(t *testing.T) {
	t.Run("health", func(t *testing.T) {
		t.Parallel()
		testProbeBehind(t, &http.HTTP2Config{SendPingTimeout: time.Second, PingTimeout: 10 * time.Second})
	})
	t.Run("control", func(t *testing.T) { // no health check: passes
		t.Parallel()
		testProbeBehind(t, nil)
	})
}

func testProbeBehind(t *testing.T, cfg *http.HTTP2Config) {
	opts, peers := h2PipeOptions(t)
	opts.HTTPClient.Transport.(*http.Transport).HTTP2 = cfg
	_, p := dialH2Open(t, opts, peers) // the server's last frame: now
	t0 := time.Now()
	go func() {
		for {
			var h [9]byte
			if _, err := io.ReadFull(p.nc, h[:]); err != nil {
				return
			}
			payload := make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2]))
			if _, err := io.ReadFull(p.nc, payload); err != nil {
				return
			}
			typ, flags, id := h[3], h[4], binary.BigEndian.Uint32(h[5:])&^(1<<31)
			switch {
			case typ == 0x6 && flags&0x1 == 0: // PING: answered in 1.5 s
				time.AfterFunc(1500*time.Millisecond, func() { p.writeErr(0x6, 0x1, 0, payload) })
			case typ == 0x1 && id == 3: // the second Dial's request: answered in 3.5 s
				time.AfterFunc(3500*time.Millisecond, func() {
					p.writeErr(0x1, 0x4, 3, hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"}))
				})
			}
		}
	}()
	time.Sleep(500*time.Millisecond - time.Since(t0))
	// Health check's PING at t0+1 s, answered at t0+2.5 s; the probe
	// starts at t0+1.5 s.
	start := time.Now()
	done := dialH2Async(context.Background(), opts)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
	case <-peers:
		t.Fatalf("the Dial went on a new connection after %v; the pooled one answered every PING within 1.5 s", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("Dial still under way after 10 s")
	}
}
