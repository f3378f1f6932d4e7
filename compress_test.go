package websocket

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/flate"
	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

func extHeader(lines ...string) http.Header {
	h := http.Header{}
	for _, l := range lines {
		h.Add("Sec-WebSocket-Extensions", l)
	}
	return h
}

func TestParseExtensions(t *testing.T) {
	t.Parallel()
	pd := func(params ...extensionParam) extension { return extension{name: "permessage-deflate", params: params} }
	flagP := func(name string) extensionParam { return extensionParam{name: name} }
	valP := func(name, v string) extensionParam { return extensionParam{name: name, value: v, hasValue: true} }
	for _, tc := range []struct {
		lines []string
		want  []extension
		bad   bool
	}{
		{lines: nil, want: nil},
		{lines: []string{"permessage-deflate"}, want: []extension{pd()}},
		{lines: []string{"permessage-deflate; client_max_window_bits"}, want: []extension{pd(flagP("client_max_window_bits"))}},
		{lines: []string{"permessage-deflate;server_max_window_bits=10 ;\tclient_no_context_takeover"},
			want: []extension{pd(valP("server_max_window_bits", "10"), flagP("client_no_context_takeover"))}},
		{lines: []string{`permessage-deflate; server_max_window_bits="10"`}, want: []extension{pd(valP("server_max_window_bits", "10"))}},
		{lines: []string{`permessage-deflate; server_max_window_bits="1\0"`}, want: []extension{pd(valP("server_max_window_bits", "10"))}},
		{lines: []string{"x-foo, permessage-deflate", "bar; a=b"},
			want: []extension{{name: "x-foo"}, pd(), {name: "bar", params: []extensionParam{valP("a", "b")}}}},
		{lines: []string{", ,permessage-deflate,"}, want: []extension{pd()}},
		{lines: []string{"permessage-deflate;"}, bad: true},
		{lines: []string{"permessage-deflate; ="}, bad: true},
		{lines: []string{"permessage-deflate; a="}, bad: true},
		{lines: []string{`permessage-deflate; a="unterminated`}, bad: true},
		{lines: []string{`permessage-deflate; a="not a token"`}, bad: true},
		{lines: []string{"permessage-deflate x"}, bad: true},
		{lines: []string{"per{message"}, bad: true},
		// What is kept is bounded: 16 elements, 16 parameters in each.
		{lines: []string{strings.Repeat("a, ", 15) + "permessage-deflate"}, want: append(slices.Repeat([]extension{{name: "a"}}, 15), pd())},
		{lines: []string{strings.Repeat("a, ", 8), strings.Repeat("a, ", 8) + "permessage-deflate"}, bad: true},
		{lines: []string{"permessage-deflate" + strings.Repeat("; a", 16)}, want: []extension{pd(slices.Repeat([]extensionParam{flagP("a")}, 16)...)}},
		{lines: []string{"permessage-deflate" + strings.Repeat("; a", 17)}, bad: true},
	} {
		got, err := parseExtensions(extHeader(tc.lines...))
		if tc.bad {
			if err == nil {
				t.Errorf("parseExtensions(%q) = %v, want a syntax error", tc.lines, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseExtensions(%q): %v", tc.lines, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseExtensions(%q) =\n%+v\nwant\n%+v", tc.lines, got, tc.want)
		}
	}
}

// TestHugeNegotiationHeaders: a Sec-WebSocket-Extensions or
// Sec-WebSocket-Protocol header of 900 KB, under net/http's 1 MiB limit
// for a request, costs the negotiation less than a MiB, in either role.
// Keeping every element cost a server 111 MiB for 450,000 extension
// parameters (each kept at twenty times its bytes in the header), a
// client as much for such an answer, and a server 42 MiB for 400,000
// subprotocol names; and a client's error quoted the whole header.
func TestHugeNegotiationHeaders(t *testing.T) {
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	const most = 1 << 20
	comp := compression{mode: CompressionContextTakeover, bits: maxWindowBits}
	for _, line := range []string{
		"x" + strings.Repeat("; a", 300_000) + ", permessage-deflate",
		strings.Repeat("a, ", 300_000) + "permessage-deflate",
	} {
		h := extHeader(line)
		var resp string
		if n := allocated(func() { _, resp = comp.accept(h) }); n > most {
			t.Errorf("offer of %d bytes: accepting allocated %d bytes", len(line), n)
		}
		if resp != "" {
			t.Errorf("offer of %d bytes, with more elements or parameters than are kept: answered %q, want it declined", len(line), resp)
		}
		var err error
		if n := allocated(func() { _, err = comp.check(h) }); n > most {
			t.Errorf("answer of %d bytes: checking allocated %d bytes", len(line), n)
		}
		if err == nil || len(err.Error()) > 300 {
			t.Errorf("answer of %d bytes: %.500v, want an error of a line", len(line), err)
		}
	}
	h := http.Header{"Sec-Websocket-Protocol": {strings.Repeat("a, ", 300_000) + "chat, b"}}
	var p string
	if n := allocated(func() { p = chooseSubprotocol(h, []string{"b", "chat"}) }); n > most {
		t.Errorf("subprotocol offer of 900 KB: choosing allocated %d bytes", n)
	}
	if p != "b" {
		t.Errorf("chose %q, want b, the server's first preference", p)
	}
}

// TestServerNegotiation: offer -> response (or decline), per RFC 7692 §7.1.
func TestServerNegotiation(t *testing.T) {
	t.Parallel()
	type want struct {
		resp   string // "" means declined
		params deflateParams
	}
	full := func(sendT bool, sendBits int, recvT bool, recvBits int) deflateParams {
		return deflateParams{threshold: defaultCompressionThreshold, sendTakeover: sendT, sendBits: sendBits, recvTakeover: recvT, recvBits: recvBits}
	}
	for _, tc := range []struct {
		mode  CompressionMode
		bits  int
		offer []string
		want  want
	}{
		{CompressionContextTakeover, 0, []string{"permessage-deflate"},
			want{"permessage-deflate", full(true, 15, true, 15)}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; client_max_window_bits"},
			want{"permessage-deflate", full(true, 15, true, 15)}},
		{CompressionNoContextTakeover, 0, []string{"permessage-deflate; client_max_window_bits"},
			want{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", full(false, 15, false, 15)}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_no_context_takeover"},
			want{"permessage-deflate; server_no_context_takeover", full(false, 15, true, 15)}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; client_no_context_takeover"},
			want{"permessage-deflate; client_no_context_takeover", full(true, 15, false, 15)}},
		// server_max_window_bits: answered with the same value, and kept.
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_max_window_bits=9"},
			want{"permessage-deflate; server_max_window_bits=9", full(true, 9, true, 15)}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_max_window_bits=8"},
			want{"permessage-deflate; server_max_window_bits=8", full(true, 8, true, 15)}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_max_window_bits=15"},
			want{"permessage-deflate; server_max_window_bits=15", full(true, 15, true, 15)}},
		// Our own smaller window: named unasked, and asked of the client
		// only when it offered client_max_window_bits.
		{CompressionContextTakeover, 10, []string{"permessage-deflate"},
			want{"permessage-deflate; server_max_window_bits=10", full(true, 10, true, 15)}},
		{CompressionContextTakeover, 10, []string{"permessage-deflate; client_max_window_bits"},
			want{"permessage-deflate; server_max_window_bits=10; client_max_window_bits=10", full(true, 10, true, 10)}},
		{CompressionContextTakeover, 10, []string{"permessage-deflate; client_max_window_bits=9; server_max_window_bits=12"},
			want{"permessage-deflate; server_max_window_bits=10; client_max_window_bits=9", full(true, 10, true, 9)}},
		// An 8-bit window is asked of a client only when it names 8
		// itself: zlib cannot compress with one.
		{CompressionContextTakeover, 8, []string{"permessage-deflate; client_max_window_bits"},
			want{"permessage-deflate; server_max_window_bits=8; client_max_window_bits=9", full(true, 8, true, 9)}},
		{CompressionContextTakeover, 8, []string{"permessage-deflate; client_max_window_bits=12"},
			want{"permessage-deflate; server_max_window_bits=8; client_max_window_bits=9", full(true, 8, true, 9)}},
		{CompressionContextTakeover, 10, []string{"permessage-deflate; client_max_window_bits=8"},
			want{"permessage-deflate; server_max_window_bits=10; client_max_window_bits=8", full(true, 10, true, 8)}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; client_max_window_bits=11"},
			want{"permessage-deflate; client_max_window_bits=11", full(true, 15, true, 11)}},
		// Bad offers are declined and the next one considered.
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_max_window_bits=7, permessage-deflate"},
			want{"permessage-deflate", full(true, 15, true, 15)}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_max_window_bits=16"}, want{}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_max_window_bits=010"}, want{}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_max_window_bits"}, want{}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; client_max_window_bits=0"}, want{}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_no_context_takeover=1"}, want{}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, want{}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; x_unknown"}, want{}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; x_unknown", "permessage-deflate; server_max_window_bits=12"},
			want{"permessage-deflate; server_max_window_bits=12", full(true, 12, true, 15)}},
		{CompressionContextTakeover, 0, []string{"x-webkit-deflate-frame"}, want{}},
		{CompressionContextTakeover, 0, []string{"permessage-deflate;"}, want{}}, // syntax error: nothing accepted
		{CompressionDisabled, 0, []string{"permessage-deflate"}, want{}},
	} {
		comp, err := newCompression(tc.mode, 0, tc.bits)
		if err != nil {
			t.Fatal(err)
		}
		p, resp := comp.accept(extHeader(tc.offer...))
		if resp != tc.want.resp {
			t.Errorf("%v bits %d, offer %q: response %q, want %q", tc.mode, tc.bits, tc.offer, resp, tc.want.resp)
			continue
		}
		if (p == nil) != (tc.want.resp == "") {
			t.Errorf("%v, offer %q: params %v with response %q", tc.mode, tc.offer, p, resp)
			continue
		}
		if p != nil && *p != tc.want.params {
			t.Errorf("%v bits %d, offer %q: params %+v, want %+v", tc.mode, tc.bits, tc.offer, *p, tc.want.params)
		}
	}
}

func TestClientOffer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode CompressionMode
		bits int
		want string
	}{
		{CompressionDisabled, 0, ""},
		{CompressionContextTakeover, 0, "permessage-deflate; client_max_window_bits"},
		{CompressionContextTakeover, 10, "permessage-deflate; server_max_window_bits=10; client_max_window_bits"},
		{CompressionNoContextTakeover, 0, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits"},
	} {
		comp, _ := newCompression(tc.mode, 0, tc.bits)
		if got := comp.offer(); got != tc.want {
			t.Errorf("%v bits %d: offer %q, want %q", tc.mode, tc.bits, got, tc.want)
		}
	}
	for _, tc := range []struct {
		mode      CompressionMode
		threshold int
		bits      int
	}{{CompressionMode(7), 0, 0}, {CompressionContextTakeover, 0, 7}, {CompressionContextTakeover, 0, 16}} {
		if _, err := newCompression(tc.mode, tc.threshold, tc.bits); err == nil {
			t.Errorf("newCompression(%v, %d, %d) accepted", tc.mode, tc.threshold, tc.bits)
		}
	}
}

// TestClientNegotiation: response -> settled parameters, or a handshake
// failure that names the problem.
func TestClientNegotiation(t *testing.T) {
	t.Parallel()
	full := func(sendT bool, sendBits int, recvT bool, recvBits int) *deflateParams {
		return &deflateParams{threshold: defaultCompressionThreshold, sendTakeover: sendT, sendBits: sendBits, recvTakeover: recvT, recvBits: recvBits}
	}
	for _, tc := range []struct {
		mode    CompressionMode
		bits    int
		resp    []string
		want    *deflateParams
		wantErr string
	}{
		{CompressionContextTakeover, 0, nil, nil, ""}, // declined
		{CompressionContextTakeover, 0, []string{"permessage-deflate"}, full(true, 15, true, 15), ""},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_no_context_takeover"}, full(true, 15, false, 15), ""},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; client_no_context_takeover"}, full(false, 15, true, 15), ""},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; client_max_window_bits=9"}, full(true, 9, true, 15), ""},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_max_window_bits=12"}, full(true, 15, true, 12), ""},
		{CompressionContextTakeover, 10, []string{"permessage-deflate; server_max_window_bits=10"}, full(true, 10, true, 10), ""},
		{CompressionContextTakeover, 10, []string{"permessage-deflate; server_max_window_bits=8"}, full(true, 10, true, 8), ""},
		{CompressionNoContextTakeover, 0, []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, full(false, 15, false, 15), ""},
		{CompressionNoContextTakeover, 0, []string{"permessage-deflate; server_no_context_takeover"}, full(false, 15, false, 15), ""},
		{CompressionNoContextTakeover, 0, []string{"permessage-deflate"}, nil, "lacks server_no_context_takeover"},
		{CompressionContextTakeover, 10, []string{"permessage-deflate"}, nil, "lacks server_max_window_bits"},
		{CompressionContextTakeover, 10, []string{"permessage-deflate; server_max_window_bits=11"}, nil, "above the 10 offered"},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; client_max_window_bits"}, nil, "without a value"},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; client_max_window_bits=16"}, nil, "not in 8..15"},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; foo"}, nil, `unknown parameter "foo"`},
		// What the peer sent is quoted at most maxQuoted bytes long.
		{CompressionContextTakeover, 0, []string{"permessage-deflate; " + strings.Repeat("x", 200<<10)}, nil, `unknown parameter "` + strings.Repeat("x", maxQuoted) + `"...`},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, nil, "repeated"},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; Server_No_Context_Takeover; server_no_context_takeover"}, nil, "repeated"},
		{CompressionContextTakeover, 0, []string{"permessage-deflate; foo; foo"}, nil, `unknown parameter "foo"`},
		{CompressionContextTakeover, 0, []string{"permessage-deflate", "permessage-deflate"}, nil, "2 extensions"},
		{CompressionContextTakeover, 0, []string{"x-foo"}, nil, `"x-foo", which was not offered`},
		{CompressionDisabled, 0, []string{"permessage-deflate"}, nil, "which was not offered"},
		{CompressionContextTakeover, 0, []string{"permessage-deflate;;"}, nil, "parameter name expected"},
	} {
		comp, _ := newCompression(tc.mode, 0, tc.bits)
		p, err := comp.check(extHeader(tc.resp...))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v bits %d, response %.200q: err %.300v, want one saying %.300q", tc.mode, tc.bits, tc.resp, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v, response %q: %v", tc.mode, tc.resp, err)
			continue
		}
		if !reflect.DeepEqual(p, tc.want) {
			t.Errorf("%v bits %d, response %q: settled %+v, want %+v", tc.mode, tc.bits, tc.resp, p, tc.want)
		}
	}
}

func TestCompressionModeText(t *testing.T) {
	t.Parallel()
	for _, m := range []CompressionMode{CompressionDisabled, CompressionNoContextTakeover, CompressionContextTakeover} {
		b, err := m.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got CompressionMode
		if err := got.UnmarshalText(b); err != nil || got != m {
			t.Errorf("round trip of %v through %q: %v, %v", m, b, got, err)
		}
	}
	var m CompressionMode
	if err := m.UnmarshalText([]byte("on")); err == nil {
		t.Error(`UnmarshalText("on") accepted`)
	}
}

// compressedPair connects a client and an echo server that negotiated
// compression with the given options.
func compressedPair(t *testing.T, server *AcceptOptions, client *DialOptions) *Conn {
	t.Helper()
	s := echoServer(t, server, nil)
	c := dialT(t, wsURL(s), client)
	if c.deflate == nil {
		t.Fatal("compression was not negotiated")
	}
	return c
}

func wirePayloads() map[string][]byte {
	text := bytes.Repeat([]byte(`{"event":"tick","symbol":"ABC","price":101.25,"volume":3000}`+"\n"), 2000)
	random := make([]byte, 100000)
	var x uint32 = 1
	for i := range random {
		x = x*1664525 + 1013904223
		random[i] = byte(x >> 24)
	}
	return map[string][]byte{
		"empty":  {},
		"small":  []byte("hi"),
		"text":   text,
		"random": random,
		"runs":   bytes.Repeat([]byte{'a'}, 70000),
	}
}

// TestCompressedRoundTrips sends every payload kind through every window
// size and both takeover modes, as whole messages and streamed, in both
// directions (the server echoes).
func TestCompressedRoundTrips(t *testing.T) {
	t.Parallel()
	payloads := wirePayloads()
	for _, mode := range []CompressionMode{CompressionNoContextTakeover, CompressionContextTakeover} {
		for bits := minWindowBits; bits <= maxWindowBits; bits++ {
			t.Run(fmt.Sprintf("%v/%d", mode, bits), func(t *testing.T) {
				t.Parallel()
				c := compressedPair(t,
					&AcceptOptions{Compression: mode, CompressionWindowBits: bits},
					&DialOptions{Compression: mode, CompressionWindowBits: bits})
				if c.deflate.sendBits != bits || c.deflate.recvBits != bits {
					t.Fatalf("negotiated %+v, want %d-bit windows", *c.deflate, bits)
				}
				ctx := context.Background()
				for round := range 2 {
					for name, p := range payloads {
						if err := c.Write(ctx, MessageBinary, p); err != nil {
							t.Fatalf("%s: Write: %v", name, err)
						}
						if _, got, err := c.Read(ctx); err != nil || !bytes.Equal(got, p) {
							t.Fatalf("round %d, %s: Read: %d bytes, %v", round, name, len(got), err)
						}
						w, err := c.Writer(ctx, MessageBinary)
						if err != nil {
							t.Fatal(err)
						}
						for i := 0; i < len(p); i += 1000 + round {
							w.Write(p[i:min(len(p), i+1000+round)])
						}
						if err := w.Close(); err != nil {
							t.Fatalf("%s: Writer.Close: %v", name, err)
						}
						_, r, err := c.Reader(ctx)
						if err != nil {
							t.Fatal(err)
						}
						got, err := io.ReadAll(io.LimitReader(r, 1<<30))
						if err != nil || !bytes.Equal(got, p) {
							t.Fatalf("round %d, %s streamed: %d bytes, %v", round, name, len(got), err)
						}
					}
				}
			})
		}
	}
}

// TestCompressedReadLimit: the limit applies to what a message inflates
// to, so a small compressed message that inflates past it fails the
// connection with 1009 (a bomb costs nothing past the limit).
func TestCompressedReadLimit(t *testing.T) {
	t.Parallel()
	result := make(chan error, 1)
	s := echoServer(t, &AcceptOptions{Compression: CompressionContextTakeover}, func(c *Conn) {
		c.SetReadLimit(1 << 20)
		_, _, err := c.Read(context.Background())
		result <- err
	})
	c := dialT(t, wsURL(s), &DialOptions{Compression: CompressionContextTakeover})
	ctx := context.Background()
	bomb := make([]byte, 8<<20) // zeros: about 8 KiB compressed
	if err := c.Write(ctx, MessageBinary, bomb); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); CloseStatus(err) != StatusMessageTooBig {
		t.Fatalf("client Read: %v, want the server's close 1009", err)
	}
	err := <-result
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != StatusMessageTooBig || !errors.Is(err, ErrMessageTooBig) {
		t.Fatalf("server Read: %v, want a *ProtocolError 1009", err)
	}
}

// TestCompressedWindowLimit: a server that asked the client to keep to a
// window of 2^bits bytes (client_max_window_bits, which the client names,
// as the server asks for 8 bits only then) inflates a message
// whose back-references reach exactly that far, and fails the connection
// with 1007 at one that reaches a byte further, with and without context
// takeover.
func TestCompressedWindowLimit(t *testing.T) {
	t.Parallel()
	for _, bits := range []int{8, 10, 12} {
		for _, mode := range []CompressionMode{CompressionContextTakeover, CompressionNoContextTakeover} {
			t.Run(fmt.Sprintf("%d/%s", bits, mode), func(t *testing.T) {
				t.Parallel()
				window := 1 << bits
				rng := flatetest.RNG(uint64(bits))
				// Random bytes repeating every window bytes, compressed
				// within the window; then every window+1 bytes, compressed
				// with a window twice as large: each copy is a
				// back-reference one byte too far.
				atWindow := bytes.Repeat(flatetest.Random(rng, window), 3)
				past := bytes.Repeat(flatetest.Random(rng, window+1), 3)
				compress := func(bits int, p []byte) []byte {
					w := flate.NewWriter(bits)
					return bytes.TrimSuffix(w.Flush(w.Append(nil, p)), []byte(flate.FlushTail))
				}
				got := make(chan []byte, 2)
				ended := make(chan error, 1)
				s := echoServer(t, &AcceptOptions{Compression: mode, CompressionWindowBits: bits}, func(c *Conn) {
					for {
						_, p, err := c.Read(context.Background())
						if err != nil {
							ended <- err
							return
						}
						got <- p
					}
				})
				nc, err := net.Dial("tcp", s.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
					"Sec-WebSocket-Key: " + sampleKey + "\r\nSec-WebSocket-Version: 13\r\n" +
					"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=" + strconv.Itoa(bits) + "\r\n\r\n"
				if _, err := nc.Write([]byte(req)); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(nc)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				if ext, want := resp.Header.Get("Sec-WebSocket-Extensions"), fmt.Sprintf("client_max_window_bits=%d", bits); resp.StatusCode != 101 || !strings.Contains(ext, want) {
					t.Fatalf("handshake: %d, extensions %q; want 101 and %s", resp.StatusCode, ext, want)
				}
				// Binary, compressed, masked with the key 0.
				frame := func(payload []byte) []byte {
					b := []byte{0xc2, 0x80 | 126, byte(len(payload) >> 8), byte(len(payload)), 0, 0, 0, 0}
					return append(b, payload...)
				}
				z := &flatetest.Inflater{Window: window}
				if _, err := z.Message(append(compress(bits, atWindow), flate.FlushTail...)); err != nil || z.MaxDist != window {
					t.Fatalf("the message to refer back %d bytes refers back %d at most (%v)", window, z.MaxDist, err)
				}
				if _, err := nc.Write(frame(compress(bits, atWindow))); err != nil {
					t.Fatal(err)
				}
				select {
				case p := <-got:
					if !bytes.Equal(p, atWindow) {
						t.Fatalf("the message referring back %d bytes inflated to %d bytes, not the %d sent", window, len(p), len(atWindow))
					}
				case err := <-ended:
					t.Fatalf("the message referring back %d bytes: %v", window, err)
				case <-time.After(10 * time.Second):
					t.Fatalf("the message referring back %d bytes: not delivered in 10 s", window)
				}
				if _, err := nc.Write(frame(compress(bits+1, past))); err != nil {
					t.Fatal(err)
				}
				cf, err := readServerFrame(br)
				want := fmt.Sprintf("beyond the window of %d bytes", window)
				if err != nil || len(cf) < 4 || cf[0] != 0x88 || cf[2:4] != "\x03\xef" || !strings.Contains(cf[4:], want) {
					t.Fatalf("the server sent %q, %v; want a close frame with 1007 saying %q", cf, err, want)
				}
				nc.Close() // the server drains until the TCP connection ends
				var pe *ProtocolError
				select {
				case err := <-ended:
					if !errors.As(err, &pe) || pe.Code != StatusInvalidFramePayloadData {
						t.Fatalf("the message referring back %d bytes: %v, want a *ProtocolError 1007", window+1, err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("the message referring back %d bytes: Read still going after 10 s", window+1)
				}
			})
		}
	}
}

func TestCompressionThreshold(t *testing.T) {
	t.Parallel()
	rsvSeen := make(chan bool, 4)
	s := echoServer(t, &AcceptOptions{Compression: CompressionContextTakeover}, func(c *Conn) {
		for {
			typ, p, err := c.Read(context.Background())
			if err != nil {
				return
			}
			rsvSeen <- c.msgCompressed
			c.Write(context.Background(), typ, p)
		}
	})
	c := dialT(t, wsURL(s), &DialOptions{Compression: CompressionContextTakeover, CompressionThreshold: 100})
	ctx := context.Background()
	for _, n := range []int{99, 100} {
		if err := c.Write(ctx, MessageText, bytes.Repeat([]byte("x"), n)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := <-rsvSeen, n >= 100; got != want {
			t.Errorf("%d-byte message sent compressed: %v, want %v", n, got, want)
		}
	}
}

// TestSmallWindowIdlesAtOnce checks when a compressor with context
// takeover lets go of its working memory: at the end of each message for
// windows up to 2^deflateIdleAtOnceBits, and only after deflateIdleDelay
// of quiet for larger ones.
func TestSmallWindowIdlesAtOnce(t *testing.T) {
	ctx := context.Background()
	msg := bytes.Repeat([]byte("a compressible message "), 40)
	for _, bits := range []int{8, deflateIdleAtOnceBits, deflateIdleAtOnceBits + 1, 15} {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := Accept(w, r, &AcceptOptions{Compression: CompressionContextTakeover})
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}))
		c := dialT(t, wsURL(s), &DialOptions{Compression: CompressionContextTakeover, CompressionWindowBits: bits})
		if c.deflate == nil || c.deflate.sendBits != bits || !c.deflate.sendTakeover {
			t.Fatalf("window 2^%d: negotiated %+v", bits, c.deflate)
		}
		active := func() bool { return deflaterActive(t, c) }
		for i := range 3 {
			if err := c.Write(ctx, MessageText, msg); err != nil {
				t.Fatal(err)
			}
			if got, want := active(), bits > deflateIdleAtOnceBits; got != want {
				t.Errorf("window 2^%d, after message %d: compressor active %v, want %v", bits, i+1, got, want)
			}
		}
		if bits > deflateIdleAtOnceBits {
			deadline := time.Now().Add(20 * deflateIdleDelay)
			for {
				if !active() {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("window 2^%d: compressor still active %v after the last message", bits, 20*deflateIdleDelay)
					break
				}
				time.Sleep(deflateIdleDelay / 4)
			}
		}
		c.Close(StatusNormalClosure, "")
		s.Close()
	}
}

// BenchmarkCompressionMemory reports the heap a connection holds for
// compression, for each mode and window size: "idle-B/conn" once the
// connection has been quiet past the compressor's idle delay (what a
// server with many mostly quiet connections pays for each), and
// "active-B/conn" right after messages went both ways (each side
// compressing and decompressing), before the pooled scratch went back.
// Both are measured over pairs of connections in this process (each pair
// a client and a served connection, one compressor and one decompressor
// each) and counted per connection, the TCP sockets and the Conn itself
// included; "disabled" is the same without compression, for reference.
func BenchmarkCompressionMemory(b *testing.B) {
	msgs := flatetest.Corpus("json", 4<<10)[:4]
	type config struct {
		mode CompressionMode
		bits int
	}
	configs := []config{{CompressionDisabled, 0}}
	for _, mode := range []CompressionMode{CompressionNoContextTakeover, CompressionContextTakeover} {
		for _, bits := range []int{8, 10, 12, 15} {
			configs = append(configs, config{mode, bits})
		}
	}
	for _, cfg := range configs {
		name := cfg.mode.String()
		if cfg.bits != 0 {
			name += fmt.Sprintf("/w%d", cfg.bits)
		}
		b.Run(name, func(b *testing.B) {
			const pairs = 64
			ctx := context.Background()
			// The handler returns once Serve has the connection, as a
			// server holding many connections would.
			aopts := &AcceptOptions{Compression: cfg.mode, CompressionWindowBits: cfg.bits}
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Accept(w, r, aopts)
				if err != nil {
					return
				}
				c.Serve(func(typ MessageType, p []byte) { c.Write(ctx, typ, p) }, func(error) {})
			}))
			defer s.Close()
			opts := &DialOptions{Compression: cfg.mode, CompressionWindowBits: cfg.bits}
			// Warm the pools and the HTTP machinery before the baseline.
			warm := dialT(b, wsURL(s), opts)
			warm.Write(ctx, MessageText, msgs[0])
			warm.Read(ctx)
			time.Sleep(3 * deflateIdleDelay) // its compressors idle too
			before := flatetest.LiveHeap()
			conns := make([]*Conn, pairs)
			for i := range conns {
				c := dialT(b, wsURL(s), opts)
				if (cfg.mode == CompressionDisabled) != (c.deflate == nil) {
					b.Fatalf("compression negotiated: %v, want %v", c.deflate != nil, cfg.mode != CompressionDisabled)
				}
				for _, m := range msgs {
					if err := c.Write(ctx, MessageText, m); err != nil {
						b.Fatal(err)
					}
					if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, m) {
						b.Fatalf("echo: %v", err)
					}
				}
				conns[i] = c
			}
			active := flatetest.LiveHeap()
			time.Sleep(3 * deflateIdleDelay)
			idle := flatetest.LiveHeap()
			for b.Loop() {
			}
			b.ReportMetric(float64(active-before)/(2*pairs), "active-B/conn")
			b.ReportMetric(float64(idle-before)/(2*pairs), "idle-B/conn")
			for _, c := range append(conns, warm) {
				c.Close(StatusNormalClosure, "")
			}
		})
	}
}

// TestCompressedWriteContextEndedBeforeWriting: a compressed message
// whose context ended before anything went out, by Write or by Writer,
// returns the context's error and leaves the connection usable, with
// context takeover too (the compressor starts afresh).
func TestCompressedWriteContextEndedBeforeWriting(t *testing.T) {
	t.Parallel()
	for _, mode := range []CompressionMode{CompressionNoContextTakeover, CompressionContextTakeover} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			s := echoServer(t, &AcceptOptions{Compression: mode}, nil)
			c := dialT(t, wsURL(s), &DialOptions{Compression: mode})
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			big := []byte(strings.Repeat("compressible ", 1000))
			if err := c.Write(ctx, MessageText, big); !errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
				t.Fatalf("Write with a canceled context: %v, want Canceled alone", err)
			}
			w, err := c.Writer(ctx, MessageText)
			if err == nil {
				_, err = w.Write(big)
				if cerr := w.Close(); err == nil {
					err = cerr
				}
			}
			if !errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
				t.Fatalf("Writer with a canceled context: %v, want Canceled alone", err)
			}
			if err := c.Write(context.Background(), MessageText, big); err != nil {
				t.Fatalf("Write after: %v", err)
			}
			if _, p, err := c.Read(context.Background()); err != nil || string(p) != string(big) {
				t.Fatalf("Read: %d bytes, %v", len(p), err)
			}
		})
	}
}

// deflaterActive reports whether c's compressor holds its scratch, as
// read under msgMu, which idleDeflater takes.
func deflaterActive(t *testing.T, c *Conn) bool {
	t.Helper()
	if err := c.lockMsg(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	defer c.unlockMsg()
	return c.deflate.def != nil && c.deflate.def.Active()
}

// TestDeflaterIdlesBehindUncompressedMessage: a compressor with context
// takeover lets go of its scratch once the connection has sent no
// compressed message for deflateIdleDelay, even when an uncompressed
// message held the message lock at the moment it was due to: the end of
// that message, which compresses nothing and so does not rearm the idle
// timer itself, sees that the timer was missed.
func TestDeflaterIdlesBehindUncompressedMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := compressedPair(t,
		&AcceptOptions{Compression: CompressionContextTakeover},
		&DialOptions{Compression: CompressionContextTakeover, CompressionWindowBits: 15})
	if !c.deflate.sendTakeover || c.deflate.sendBits <= deflateIdleAtOnceBits {
		t.Fatalf("negotiated %+v, want takeover with a window over 2^%d", *c.deflate, deflateIdleAtOnceBits)
	}
	active := func() bool { return deflaterActive(t, c) }
	msg := bytes.Repeat([]byte("a compressible message "), 40)
	if err := c.Write(ctx, MessageText, msg); err != nil {
		t.Fatal(err)
	}
	// Checked before the echo, whose round trip may take longer than
	// deflateIdleDelay on a loaded machine.
	if !active() {
		t.Fatal("compressor idle right after a compressed message")
	}
	if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
		t.Fatalf("echo: %d bytes, %v", len(p), err)
	}
	// An uncompressed message holds the message lock across the moment
	// the compressor was due to idle.
	w, err := c.Writer(ctx, MessageText)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * deflateIdleDelay)
	if _, err := w.Write([]byte("small")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.Read(ctx); err != nil || string(p) != "small" {
		t.Fatalf("echo: %q, %v", p, err)
	}
	deadline := time.Now().Add(20 * deflateIdleDelay)
	for active() {
		if time.Now().After(deadline) {
			t.Fatalf("compressor still holds its scratch %v after the last compressed message", 20*deflateIdleDelay+3*deflateIdleDelay)
		}
		time.Sleep(deflateIdleDelay / 4)
	}
}

// TestCompressedReadLimitMax: a read limit of math.MaxInt64, as good as
// none, reads compressed messages as any other limit does: the room
// inflateLocked leaves for one byte past the limit must not overflow.
func TestCompressedReadLimitMax(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, mode := range []CompressionMode{CompressionNoContextTakeover, CompressionContextTakeover} {
		c := compressedPair(t, &AcceptOptions{Compression: mode}, &DialOptions{Compression: mode})
		c.SetReadLimit(math.MaxInt64)
		msg := bytes.Repeat([]byte("a compressible message "), 40)
		if err := c.Write(ctx, MessageText, msg); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("%v: echo: %d bytes, %v; want the %d sent", mode, len(p), err, len(msg))
		}
		if err := c.Write(ctx, MessageText, msg); err != nil {
			t.Fatal(err)
		}
		_, r, err := c.Reader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := io.ReadAll(r); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("%v: echo streamed: %d bytes, %v; want the %d sent", mode, len(p), err, len(msg))
		}
		c.Close(StatusNormalClosure, "")
	}
}

// TestClosedConnDropsCompressionRace: a connection that closes while a
// goroutine holds its message lock, or its read lock, and lets it go,
// drops its compressor, or its decompressor's state, whichever of the two
// looks last. Closing found the lock held and left them to the holder,
// which had looked before the connection was closed: 80 of 3000 closed
// Conns kept their compressor. Not parallel: its goroutine spins on a
// lock, which would starve the tests beside it.
func TestClosedConnDropsCompressionRace(t *testing.T) {
	for _, lock := range []string{"message", "read"} {
		t.Run(lock, func(t *testing.T) {
			const tries = 300
			kept := 0
			for range tries {
				a, b := net.Pipe()
				p := &deflateParams{threshold: 128, sendBits: 15, recvBits: 15, sendTakeover: true, recvTakeover: true}
				c := newConn(&connConfig{tr: netTransport(a), deflate: p, closeTimeout: time.Second, keepaliveInterval: -1})
				p.def = flate.NewWriter(15)
				c.inflate.open = true // a message half read
				var stop atomic.Bool
				var turns atomic.Int64
				done := make(chan struct{})
				go func() {
					defer close(done)
					for !stop.Load() {
						// As idleDeflater, Enqueue or a Write does, or
						// a Read.
						if lock == "message" && c.msgMu.tryLock() {
							c.unlockMsg()
						} else if lock == "read" && c.readMu.tryLock() {
							c.readUnlock()
						}
						turns.Add(1)
					}
				}()
				for turns.Load() < 50 {
					runtime.Gosched()
				}
				c.CloseNow()
				stop.Store(true)
				<-done
				b.Close()
				if lock == "message" && p.def != nil || lock == "read" && c.inflate.open {
					kept++
				}
			}
			if kept > 0 {
				t.Errorf("%d of %d closed Conns kept their %s lock's compression state", kept, tries, lock)
			}
		})
	}
}
