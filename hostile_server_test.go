package websocket_test

import (
	"bytes"
	"context"
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

	"github.com/rfc6455/websocket"
)

// TestHostileServer attacks the library's server with a raw client, one
// row at a time; see hostile_test.go for the harness.
func TestHostileServer(t *testing.T) {
	s := newHostileServer(t)
	var rows []hostileRow
	rows = append(rows, lengthRows(s)...)
	rows = append(rows, framingRows(s)...)
	rows = append(rows, handshakeRows(s)...)
	rows = append(rows, abuseRows(s)...)
	runHostile(t, s, rows)
}

// failRow is a row in which the peer opens a connection (with compression
// when deflate is set), sends what build returns, and the server must
// fail the connection with code: its close frame, with a reason saying
// why, then the end of the stream, and its read returning a
// *ProtocolError with code.
func failRow(s *hostileServer, name string, deflate bool, code websocket.StatusCode, why string, build func(p *rawClient) []byte) hostileRow {
	return hostileRow{name: name, run: func(t *testing.T) {
		p, ends := connect(t, s, "/echo", deflate)
		p.mustWrite(build(p))
		p.expectClose(code, why)
		p.nc.Close()
		wantFailed(t, awaitEnd(t, ends).err, code)
	}}
}

// echoRow is a row in which the server must take what the peer sends and
// answer with the frame wantB0/want (an echo, or a pong), then close
// normally.
func echoRow(s *hostileServer, name string, deflate bool, build func(p *rawClient) []byte, wantB0 byte, want string) hostileRow {
	return hostileRow{name: name, run: func(t *testing.T) {
		p, ends := connect(t, s, "/echo", deflate)
		p.mustWrite(build(p))
		p.expectFrame(wantB0, want)
		p.closeNormally()
		p.nc.Close()
		wantPeerClosed(t, awaitEnd(t, ends).err, websocket.StatusNormalClosure)
	}}
}

// header is the header of a masked frame whose first byte is b0 and which
// declares n bytes, none of which follow.
func (p *rawClient) header(b0 byte, n uint64) []byte {
	k := p.nextKey()
	return append(appendLen([]byte{b0}, 0x80, n), k[:]...)
}

func lengthRows(s *hostileServer) []hostileRow {
	// Inputs are made here, outside the rows' memory accounting.
	atLimit := make([]byte, hostileLimit)
	atLimitZ := deflateMsg(atLimit)
	echoBuf := make([]byte, hostileLimit+1)
	pastLimitZ := deflateMsg(make([]byte, hostileLimit+1))
	bomb := zeroBomb(64)
	million := make([]byte, 1_000_000)
	for i := range million {
		million[i] = byte(i * 7)
	}
	return []hostileRow{
		failRow(s, "lengths/64-bit length 2^63 (top bit set)", false, websocket.StatusProtocolError, "most significant bit", func(p *rawClient) []byte {
			return p.header(0x82, 1<<63)
		}),
		failRow(s, "lengths/64-bit length 2^64-1", false, websocket.StatusProtocolError, "most significant bit", func(p *rawClient) []byte {
			return p.header(0x82, 1<<64-1)
		}),
		// The header alone: 1009 must come before any payload is sent.
		failRow(s, "lengths/2^40 declared, no payload sent", false, websocket.StatusMessageTooBig, "read limit", func(p *rawClient) []byte {
			return p.header(0x82, 1<<40)
		}),
		failRow(s, "lengths/limit+1 declared, no payload sent", false, websocket.StatusMessageTooBig, "read limit", func(p *rawClient) []byte {
			return p.header(0x82, hostileLimit+1)
		}),
		failRow(s, "lengths/continuation declared past the limit, no payload sent", false, websocket.StatusMessageTooBig, "read limit", func(p *rawClient) []byte {
			return append(p.frame(0x02, strings.Repeat("a", 1000)), p.header(0x80, hostileLimit-999)...)
		}),
		{name: "lengths/endless fragmented message", run: func(t *testing.T) { endlessMessage(t, s) }, alloc: 4 << 20},
		{name: "lengths/a million 1-byte fragments, delivered", run: func(t *testing.T) { tinyFragments(t, s, million) }, alloc: 6 << 20},
		withAlloc(4<<20, failRow(s, "compression/inflates to the limit+1", true, websocket.StatusMessageTooBig, "read limit", func(p *rawClient) []byte {
			return p.frame(0xC2, string(pastLimitZ))
		})),
		// 64 KiB that would inflate to 64 MiB: the server inflates up to
		// the limit, no further.
		withAlloc(4<<20, failRow(s, "compression/64 KiB inflating to 64 MiB", true, websocket.StatusMessageTooBig, "read limit", func(p *rawClient) []byte {
			return p.frame(0xC2, string(bomb))
		})),
		{name: "compression/inflates 1000:1 to exactly the limit, delivered", run: func(t *testing.T) {
			if len(atLimitZ)*1000 > len(atLimit) {
				t.Fatalf("%d bytes compress to %d, less than 1000:1", len(atLimit), len(atLimitZ))
			}
			inflateAtLimit(t, s, atLimitZ, atLimit, echoBuf)
		}, alloc: 6 << 20},
	}
}

// endlessMessage sends the fragments of a message that never ends, 16 KiB
// each, until the server fails the connection with 1009; it must accept
// the fragments that fill the read limit first.
func endlessMessage(t *testing.T, s *hostileServer) {
	p, ends := connect(t, s, "/echo", false)
	const frag = 16 << 10
	payload := bytes.Repeat([]byte("endless!"), frag/8)
	var sent atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var buf []byte
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			b0 := byte(0x00)
			if i == 0 {
				b0 = 0x02
			}
			buf = appendMasked(buf[:0], b0, payload, p.nextKey())
			if err := p.write(buf); err != nil {
				done <- err
				return
			}
			sent.Add(1)
		}
	}()
	b0, reply, err := p.readFrame()
	close(stop)
	werr := <-done
	if err != nil {
		t.Fatalf("awaiting close 1009 (wrote %d fragments, then %v): %v", sent.Load(), werr, err)
	}
	if err := checkClose(b0, reply, websocket.StatusMessageTooBig, "read limit"); err != nil {
		t.Fatal(err)
	}
	if n := sent.Load(); n*frag <= hostileLimit {
		t.Fatalf("the server failed the message after %d fragments of %d bytes, before it passed the limit of %d", n, frag, hostileLimit)
	}
	p.expectEOF()
	p.nc.Close()
	e := awaitEnd(t, ends)
	wantFailed(t, e.err, websocket.StatusMessageTooBig)
	if !errors.Is(e.err, websocket.ErrMessageTooBig) {
		t.Fatalf("the server's read ended with %v, want ErrMessageTooBig", e.err)
	}
	t.Logf("the peer wrote %d fragments (%d KiB) before it read the close", sent.Load(), sent.Load()*frag>>10)
}

// tinyFragments sends msg as a binary message of one fragment per byte;
// the server must echo it whole. The echo may come well after the last
// write, as the sockets hold megabytes of fragments the server has yet to
// read: 1 s for a million under -race, but 9 s once beside other tests'
// load, so its wait is four times hostileWait.
func tinyFragments(t *testing.T, s *hostileServer, msg []byte) {
	p, ends := connect(t, s, "/echo", false)
	buf := make([]byte, 0, 64<<10+16)
	for i := range msg {
		b0 := byte(0x00)
		if i == 0 {
			b0 = 0x02
		}
		if i == len(msg)-1 {
			b0 |= 0x80
		}
		buf = appendMasked(buf, b0, msg[i:i+1], p.nextKey())
		if len(buf) >= 64<<10 || i == len(msg)-1 {
			p.mustWrite(buf)
			buf = buf[:0]
		}
	}
	p.nc.SetReadDeadline(time.Now().Add(4 * hostileWait))
	b0, echo, err := readServerFrame(p.br)
	if err != nil {
		t.Fatalf("awaiting the echo: %v", err)
	}
	if b0 != 0x82 || !bytes.Equal(echo, msg) {
		t.Fatalf("got frame %#x of %d bytes, want the %d-byte message back in one binary frame", b0, len(echo), len(msg))
	}
	p.closeNormally()
	p.nc.Close()
	wantPeerClosed(t, awaitEnd(t, ends).err, websocket.StatusNormalClosure)
}

// inflateAtLimit sends the compressed form z of msg, which inflates to
// exactly the read limit; the server must echo it intact (compressed).
// The echo is inflated into buf, which has room for a byte more.
func inflateAtLimit(t *testing.T, s *hostileServer, z, msg, buf []byte) {
	p, ends := connect(t, s, "/echo", true)
	p.mustWrite(p.frame(0xC2, string(z)))
	var all []byte
	for i := 0; ; i++ {
		b0, payload, err := p.readFrame()
		if err != nil {
			t.Fatalf("awaiting the echo: %v", err)
		}
		if want := byte(0x40 | 0x02); i == 0 && b0&0x7F != want {
			t.Fatalf("the echo's first frame is %#x, want a compressed binary frame", b0)
		}
		all = append(all, payload...)
		if b0&0x80 != 0 {
			break
		}
	}
	echo, err := inflateMsg(all, buf)
	if err != nil || !bytes.Equal(echo, msg) {
		t.Fatalf("the echo (%d bytes compressed) inflates to %d bytes (%v), want the %d sent", len(all), len(echo), err, len(msg))
	}
	p.closeNormally()
	p.nc.Close()
	wantPeerClosed(t, awaitEnd(t, ends).err, websocket.StatusNormalClosure)
}

// rsvName names a combination of RSV bits.
func rsvName(rsv byte) string {
	var names []string
	for i, bit := range []byte{0x40, 0x20, 0x10} {
		if rsv&bit != 0 {
			names = append(names, fmt.Sprintf("RSV%d", i+1))
		}
	}
	return strings.Join(names, "+")
}

func framingRows(s *hostileServer) []hostileRow {
	var rows []hostileRow
	fail := func(name string, code websocket.StatusCode, why string, build func(p *rawClient) []byte) {
		rows = append(rows, failRow(s, "framing/"+name, false, code, why, build))
	}
	send := func(b0 byte, payload string) func(p *rawClient) []byte {
		return func(p *rawClient) []byte { return p.frame(b0, payload) }
	}
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		fail(fmt.Sprintf("reserved opcode %#x", op), websocket.StatusProtocolError, "reserved opcode", send(0x80|op, "x"))
	}

	// RSV bits: only RSV1, only on the first frame of a data message, and
	// only with compression negotiated, is allowed (RFC 7692 §6).
	hello := string(deflateMsg([]byte("Hello")))
	for _, deflate := range []bool{false, true} {
		comp := "without compression"
		if deflate {
			comp = "with compression"
		}
		for rsv := byte(0x10); rsv <= 0x70; rsv += 0x10 {
			name := fmt.Sprintf("framing/%s on a first data frame, %s", rsvName(rsv), comp)
			if deflate && rsv == 0x40 {
				rows = append(rows, echoRow(s, name+", delivered", true, func(p *rawClient) []byte {
					return p.frame(0xC1, hello)
				}, 0x81, "Hello"))
			} else {
				rows = append(rows, failRow(s, name, deflate, websocket.StatusProtocolError, "reserved bits", func(p *rawClient) []byte {
					return p.frame(0x81|rsv, "Hello")
				}))
			}
			rows = append(rows, failRow(s, fmt.Sprintf("framing/%s on a continuation, %s", rsvName(rsv), comp), deflate, websocket.StatusProtocolError,
				"reserved bits", func(p *rawClient) []byte { return p.frames(byte(0x01), "Hel", 0x80|rsv, "lo") }))
			rows = append(rows, failRow(s, fmt.Sprintf("framing/%s on a ping, %s", rsvName(rsv), comp), deflate, websocket.StatusProtocolError,
				"reserved bits", send(0x89|rsv, "ping")))
		}
	}

	unmasked := func(b []byte) func(*rawClient) []byte { return func(*rawClient) []byte { return b } }
	fail("unmasked text frame", websocket.StatusProtocolError, "unmasked", unmasked([]byte("\x81\x05Hello")))
	fail("unmasked ping", websocket.StatusProtocolError, "unmasked", unmasked([]byte("\x89\x00")))
	fail("unmasked close", websocket.StatusProtocolError, "unmasked", unmasked([]byte("\x88\x02\x03\xe8")))

	long := strings.Repeat("c", 126)
	fail("ping of 126 bytes", websocket.StatusProtocolError, "over 125 bytes", send(0x89, long))
	fail("pong of 126 bytes", websocket.StatusProtocolError, "over 125 bytes", send(0x8A, long))
	fail("close of 126 bytes", websocket.StatusProtocolError, "over 125 bytes", send(0x88, "\x03\xe8"+long[2:]))
	rows = append(rows, echoRow(s, "framing/ping of 125 bytes, answered", false, send(0x89, long[:125]), 0x8A, long[:125]))
	fail("fragmented ping", websocket.StatusProtocolError, "fragmented ping", send(0x09, "ping"))
	fail("fragmented pong", websocket.StatusProtocolError, "fragmented pong", send(0x0A, "pong"))
	fail("fragmented close", websocket.StatusProtocolError, "fragmented close", send(0x08, "\x03\xe8"))
	fail("fragmented ping inside a fragmented message", websocket.StatusProtocolError, "fragmented ping", func(p *rawClient) []byte {
		return p.frames(byte(0x01), "Hel", byte(0x09), "ping", byte(0x80), "lo")
	})

	fail("final continuation without a start", websocket.StatusProtocolError, "continuation frame outside", send(0x80, "x"))
	fail("continuation without a start", websocket.StatusProtocolError, "continuation frame outside", send(0x00, "x"))
	fail("text frame inside a fragmented message", websocket.StatusProtocolError, "new data frame inside", func(p *rawClient) []byte {
		return p.frames(byte(0x01), "Hel", byte(0x81), "lo")
	})
	fail("binary frame inside a fragmented message", websocket.StatusProtocolError, "new data frame inside", func(p *rawClient) []byte {
		return p.frames(byte(0x02), "ab", byte(0x02), "cd")
	})

	fail("close payload of 1 byte", websocket.StatusProtocolError, "1 byte", send(0x88, "\x03"))
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		fail(fmt.Sprintf("close code %d", code), websocket.StatusProtocolError, "invalid close code",
			send(0x88, string(binary.BigEndian.AppendUint16(nil, code))))
	}
	for _, bad := range []struct{ name, reason string }{
		{"byte 0xFF", "\xff"},
		{"truncated sequence", "ok\xc3"},
		{"surrogate", "\xed\xa0\x80"},
		{"overlong", "\xc0\xaf"},
	} {
		fail("close reason with an invalid "+bad.name, websocket.StatusInvalidFramePayloadData, "not valid UTF-8", send(0x88, "\x03\xe8"+bad.reason))
	}

	// Invalid UTF-8 in a text message split in two fragments at every
	// offset, then in one fragment per byte: 1007 each time.
	for _, bad := range []struct{ name, msg string }{
		{"surrogate", "κόσμε-\xed\xa0\x80-end"},
		{"overlong", "κόσμε-\xe0\x80\xaf-end"},
		{"code point past U+10FFFF", "κόσμε-\xf4\x90\x80\x80-end"},
		{"lone continuation byte", "κόσμε-\x80-end"},
		{"byte 0xFE", "κόσμε-\xfe-end"},
		{"message ending inside a sequence", "κόσμε-\xe2\x82"},
	} {
		rows = append(rows, hostileRow{name: "framing/invalid UTF-8 split at every offset: " + bad.name, run: func(t *testing.T) {
			splitUTF8(t, s, bad.msg)
		}})
	}
	return rows
}

// splitUTF8 sends msg, invalid UTF-8, as a text message in two fragments
// split at every offset, then in one fragment per byte, each on a
// connection of its own; the server must fail each with 1007.
func splitUTF8(t *testing.T, s *hostileServer, msg string) {
	try := func(what string, wire func(p *rawClient) []byte) {
		p, ends := connect(t, s, "/echo", false)
		p.mustWrite(wire(p))
		b0, payload, err := p.readFrame()
		if err == nil {
			err = checkClose(b0, payload, websocket.StatusInvalidFramePayloadData, "UTF-8")
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		p.expectEOF()
		p.nc.Close()
		wantFailed(t, awaitEnd(t, ends).err, websocket.StatusInvalidFramePayloadData)
	}
	for off := 0; off <= len(msg); off++ {
		try(fmt.Sprintf("split at %d of %d", off, len(msg)), func(p *rawClient) []byte {
			return p.frames(byte(0x01), msg[:off], byte(0x80), msg[off:])
		})
	}
	try("one fragment per byte", func(p *rawClient) []byte {
		var b []byte
		for i := range len(msg) {
			b0 := byte(0x00)
			if i == 0 {
				b0 = 0x01
			}
			if i == len(msg)-1 {
				b0 |= 0x80
			}
			b = appendMasked(b, b0, []byte(msg[i:i+1]), p.nextKey())
		}
		return b
	})
}

func handshakeRows(s *hostileServer) []hostileRow {
	var rows []hostileRow
	// refused: the request made by req gets status, with header set to
	// value when header is given, and Accept returns ErrHandshake.
	refused := func(name string, status int, header, value string, req func(row string) string) {
		rows = append(rows, hostileRow{name: "handshake/" + name, run: func(t *testing.T) {
			ends := s.expect(t.Name(), 1)
			p := dialRaw(t, s.addr)
			p.mustWrite([]byte(req(t.Name())))
			resp := p.readResponse()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			if resp.StatusCode != status {
				t.Fatalf("answered %q (%q), want %d", resp.Status, body, status)
			}
			if header != "" && resp.Header.Get(header) != value {
				t.Fatalf("answered %s %q, want %q", header, resp.Header.Get(header), value)
			}
			p.nc.Close()
			e := awaitEnd(t, ends)
			if !errors.Is(e.err, websocket.ErrHandshake) {
				t.Fatalf("Accept returned %v, want ErrHandshake", e.err)
			}
		}})
	}
	with := func(lines ...string) func(row string) string {
		return func(row string) string { return request("/echo", row, lines...) }
	}
	key15 := base64.StdEncoding.EncodeToString(make([]byte, 15))
	key17 := base64.StdEncoding.EncodeToString(make([]byte, 17))
	refused("method POST", http.StatusMethodNotAllowed, "Allow", "GET", func(row string) string {
		return "POST" + strings.TrimPrefix(request("/echo", row, "Content-Length: 0"), "GET")
	})
	refused("method PUT", http.StatusMethodNotAllowed, "Allow", "GET", func(row string) string {
		return "PUT" + strings.TrimPrefix(request("/echo", row, "Content-Length: 0"), "GET")
	})
	refused("version 8", http.StatusUpgradeRequired, "Sec-WebSocket-Version", "13", with("-Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"))
	refused("version missing", http.StatusUpgradeRequired, "Sec-WebSocket-Version", "13", with("-Sec-WebSocket-Version"))
	refused("version 13 twice", http.StatusBadRequest, "", "", with("Sec-WebSocket-Version: 13"))
	refused("key missing", http.StatusBadRequest, "", "", with("-Sec-WebSocket-Key"))
	refused("key not base64", http.StatusBadRequest, "", "", with("-Sec-WebSocket-Key", "Sec-WebSocket-Key: not*base64*at*all!!"))
	refused("key of 15 bytes", http.StatusBadRequest, "", "", with("-Sec-WebSocket-Key", "Sec-WebSocket-Key: "+key15))
	refused("key of 17 bytes", http.StatusBadRequest, "", "", with("-Sec-WebSocket-Key", "Sec-WebSocket-Key: "+key17))
	refused("key twice", http.StatusBadRequest, "", "", with("Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA=="))
	refused("Upgrade missing", http.StatusBadRequest, "", "", with("-Upgrade"))
	refused("Connection missing", http.StatusBadRequest, "", "", with("-Connection"))
	refused("HTTP/1.0", http.StatusBadRequest, "", "", func(row string) string {
		return strings.Replace(request("/echo", row), "HTTP/1.1", "HTTP/1.0", 1)
	})
	refused("foreign Origin", http.StatusForbidden, "", "", with("Origin: http://evil.example"))
	refused("Origin twice", http.StatusForbidden, "", "", with("Origin: http://127.0.0.1", "Origin: http://127.0.0.1"))

	// Made here, outside the row's memory accounting, which then counts
	// what net/http spends.
	bigReq := []byte(request("/echo", "oversized", padLines(1100)...))
	rows = append(rows, hostileRow{name: "handshake/1 MiB of headers (net/http's 431)", run: func(t *testing.T) {
		ends := s.expect("oversized", 1)
		p := dialRaw(t, s.addr)
		// net/http stops reading past its limit; what it leaves unread
		// stays in the socket buffers.
		p.write(bigReq)
		resp := p.readResponse()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("a request of %d bytes answered %q, want 431", len(bigReq), resp.Status)
		}
		p.nc.Close()
		select {
		case e := <-ends:
			t.Fatalf("the handler ran (Accept: %v)", e.err)
		default:
		}
	}, alloc: 4 << 20})

	// net/http (Go 1.26) answers a request cut short by its header
	// deadline with 400 and closes.
	rows = append(rows, hostileRow{name: "handshake/one byte a second, cut by ReadHeaderTimeout", run: func(t *testing.T) {
		ends := s.expect(t.Name(), 1)
		p := dialRaw(t, s.addr)
		req := request("/echo", t.Name())
		start := time.Now()
		sent := 0
		for ; ; sent++ {
			if sent == len(req) {
				t.Fatal("the whole request went out a byte a second")
			}
			if err := p.write([]byte{req[sent]}); err != nil {
				t.Fatalf("after %d bytes in %v: %v", sent, time.Since(start), err)
			}
			p.nc.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := p.br.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
		}
		resp := p.readResponse()
		took := time.Since(start)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("after %d bytes in %v, answered %q, want 400", sent+1, took, resp.Status)
		}
		io.Copy(io.Discard, resp.Body)
		p.expectEOF()
		if took < hostileHeaderTimeout-100*time.Millisecond || took > hostileHeaderTimeout+time.Second {
			t.Fatalf("the server answered after %v (%d bytes), want %v (ReadHeaderTimeout)", took, sent+1, hostileHeaderTimeout)
		}
		t.Logf("answered 400 and closed after %v and %d bytes", took.Round(time.Millisecond), sent+1)
		select {
		case e := <-ends:
			t.Fatalf("the handler ran (Accept: %v)", e.err)
		default:
		}
	}})
	return rows
}

func abuseRows(s *hostileServer) []hostileRow {
	// Incompressible bytes, compressed: stored blocks, a valid stream up
	// to wherever it is cut.
	noise := make([]byte, 4000)
	for i := range noise {
		noise[i] = byte(i*i*31 + i>>3)
	}
	noiseZ := deflateMsg(noise)
	return []hostileRow{
		// The pongs fill two queues at most: the one a writer took and
		// is stuck writing, and the one filling behind it, each grown
		// by doubling from 4 KiB to the 512 KiB queue limit, about 1 MiB
		// of allocation each. Which one this row meets depends on how
		// far the kernel's buffers grow before they fill: over 12 runs
		// on a busy machine, 1,164-1,265 KiB in 8, 2,184-2,309 KiB in 4,
		// over the default bound.
		{name: "abuse/ping flood, pongs never read", run: func(t *testing.T) { pingFlood(t, s) }, alloc: 3 << 20, racePerOp: 2 << 10},
		{name: "abuse/peer stops reading while the server writes", run: func(t *testing.T) { stoppedReader(t, s) }},
		{name: "abuse/reset mid-frame", run: func(t *testing.T) { resetMidFrame(t, s, "/echo", nil) }},
		{name: "abuse/reset mid-frame, Serve", run: func(t *testing.T) { resetMidFrame(t, s, "/serve", nil) }},
		{name: "abuse/reset mid-frame, compressed", run: func(t *testing.T) { resetMidFrame(t, s, "/echo", noiseZ) }},
		{name: "abuse/reset right after the 101", run: func(t *testing.T) {
			p, ends := connect(t, s, "/echo", false)
			p.reset()
			wantLost(t, awaitEnd(t, ends).err)
		}},
		{name: "abuse/reset mid-handshake", run: func(t *testing.T) {
			ends := s.expect(t.Name(), 1)
			p := dialRaw(t, s.addr)
			req := request("/echo", t.Name())
			p.mustWrite([]byte(req[:len(req)/2]))
			p.reset()
			select {
			case e := <-ends:
				t.Fatalf("the handler ran (Accept: %v)", e.err)
			default:
			}
		}},
		// What the 5,000 cost while open is all allocated (32 KiB a
		// connection, both ends'); what stays is mostly the runtime's own
		// record of each goroutine that ever ran at once (one per
		// connection served by a read loop or waiting for its request).
		{name: "abuse/5,000 connections opened and dropped at once", run: func(t *testing.T) { manyConns(t, s) }, alloc: 5000 * 32 << 10, retain: 4 << 20, racePerOp: 32 << 10},
	}
}

// pingFloodHeld is what the stalled flood may hold: the queue's two
// buffers at most, each with room for the default queue limit (512 KiB):
// the one its writer holds while it waits for the peer, and the one
// filling behind it, which may be a buffer that an earlier write of a
// queue grew to the limit and gave back to the pool (appendQueuedLocked);
// and 128 KiB for the rest (the flood's own 33 KiB batch, the
// connection's buffers). A bound of 1 MiB in all failed now and then
// beside other tests: 1,096 KiB held, both buffers of 512 KiB, what every
// run holds when each buffer the queue takes has room for the limit,
// where runs alone held 550-840 KiB. A queue that held twice its limit
// held 1,199-6,470 KiB.
const pingFloodHeld = 2*512<<10 + 128<<10

// pingFlood sends pings of 125 bytes, numbered, without reading, until
// the server stops taking them in (its pongs fill the socket buffers and
// its reads stop): the heap it holds then must stay within pingFloodHeld.
// The peer then reads every pong, in order, and closes.
func pingFlood(t *testing.T, s *hostileServer) {
	p, ends := connect(t, s, "/echo", false)
	base := memNow()
	const batch = 256
	const maxPings = 1 << 20 // 131 MiB of pings
	payload := make([]byte, 125)
	buf := make([]byte, 0, batch*(6+125))
	sent := 0
	var rest []byte // the part of the last batch the server did not take
	start := time.Now()
	for rest == nil {
		if sent >= maxPings || time.Since(start) > hostileWait {
			t.Fatalf("the server took in %d pings in %v without reading a pong", sent, time.Since(start))
		}
		buf = buf[:0]
		for i := range batch {
			binary.BigEndian.PutUint64(payload, uint64(sent+i))
			buf = appendMasked(buf, 0x89, payload, p.nextKey())
		}
		p.nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := p.nc.Write(buf)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			rest = buf[n:]
		case err != nil:
			t.Fatalf("after %d pings: %v", sent, err)
		}
		sent += batch
	}
	hostileOps.Add(int64(sent))
	held := memSince(base)
	t.Logf("the server stopped taking pings after %d of them (%d KiB) in %v; heap held: %s", sent-len(rest)/131, (sent*131-len(rest))>>10, time.Since(start).Round(time.Millisecond), kib(held.retained))
	if held.retained > pingFloodHeld {
		t.Fatalf("while stalled, the flood holds %s of heap, over %s", kib(held.retained), kib(pingFloodHeld))
	}
	// Read every pong while the rest of the last batch goes out.
	done := make(chan error, 1)
	go func() { done <- p.write(rest) }()
	var pong [2 + 125]byte
	for i := range sent {
		p.nc.SetReadDeadline(time.Now().Add(hostileWait))
		if _, err := io.ReadFull(p.br, pong[:]); err != nil {
			t.Fatalf("reading pong %d of %d: %v", i, sent, err)
		}
		if pong[0] != 0x8A || pong[1] != 125 || binary.BigEndian.Uint64(pong[2:]) != uint64(i) {
			t.Fatalf("pong %d of %d: got %q, want number %d", i, sent, pong[:10], i)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("sending the rest of the pings: %v", err)
	}
	p.closeNormally()
	p.nc.Close()
	wantPeerClosed(t, awaitEnd(t, ends).err, websocket.StatusNormalClosure)
}

// stoppedReader opens a /flood connection and never reads: the server's
// writes fill the socket buffers, and the write that then blocks must
// return when its context ends. The peer then reads every message the
// server reported written, whole, then the end of the stream.
func stoppedReader(t *testing.T, s *hostileServer) {
	p, ends := connect(t, s, "/flood", false)
	e := awaitEnd(t, ends)
	if !errors.Is(e.err, context.DeadlineExceeded) {
		t.Fatalf("after %d messages, the server's write ended with %v, want its context's deadline", e.writes, e.err)
	}
	if e.took < hostileWriteTimeout || e.took > hostileWriteTimeout+time.Second {
		t.Fatalf("the blocked write returned after %v, want %v (its context)", e.took, hostileWriteTimeout)
	}
	t.Logf("%d messages of 64 KiB written, then a write blocked and returned after %v: %v", e.writes, e.took.Round(time.Millisecond), e.err)
	var frame [10 + 64<<10]byte
	for i := range e.writes {
		p.nc.SetReadDeadline(time.Now().Add(hostileWait))
		if _, err := io.ReadFull(p.br, frame[:]); err != nil {
			t.Fatalf("reading message %d of %d: %v", i, e.writes, err)
		}
		if string(frame[:10]) != "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" || frame[10] != byte(i) || frame[len(frame)-1] != byte(i) {
			t.Fatalf("message %d of %d: got header %q, payload starting %#x", i, e.writes, frame[:10], frame[10])
		}
	}
	// What follows is the start of the frame whose write was cut short, if
	// any, then the end of the stream.
	p.nc.SetReadDeadline(time.Now().Add(hostileWait))
	n, err := io.ReadFull(p.br, frame[:])
	if err != io.ErrUnexpectedEOF && err != io.EOF {
		t.Fatalf("after the %d messages, read %d bytes and %v, want at most a cut frame and the end of the stream", e.writes, n, err)
	}
}

// resetMidFrame sends a ping and the first 100 bytes of a 4 KiB frame (of
// the compressed message z, if given, over a connection with compression),
// waits for the pong, so that the server has read them, and resets the
// connection: the server's read must end with the connection lost.
func resetMidFrame(t *testing.T, s *hostileServer, path string, z []byte) {
	p, ends := connect(t, s, path, z != nil)
	b0, payload := byte(0x82), bytes.Repeat([]byte{0x55}, 4096)
	if z != nil {
		b0, payload = 0xC2, z
	}
	frame := appendMasked(nil, b0, payload, p.nextKey())
	p.mustWrite(append(p.frame(0x89, "sync"), frame[:8+100]...))
	p.expectFrame(0x8A, "sync")
	p.reset()
	wantLost(t, awaitEnd(t, ends).err)
}

// manyConns opens 5,000 connections at once and drops them all with TCP
// resets: 2,000 served by a read loop (a goroutine each), 2,000 by Serve
// (parked, no goroutine), 1,000 stopped half way through the request.
// Both ends live in this process, two descriptors per connection, 10,000
// in all, within the hard limit of 20,000 open files of the machines
// that run the suite. Every handler must end, with the connection lost,
// and the goroutines and heap go back to where they were.
func manyConns(t *testing.T, s *hostileServer) {
	const nEcho, nServe, nHalf = 2000, 2000, 1000
	const total = nEcho + nServe + nHalf
	goroutines := runtime.NumGoroutine()
	ends := s.expect(t.Name(), nEcho+nServe)
	base := memNow()
	conns := make([]*net.TCPConn, total)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				nc, err := openConn(s.addr, t.Name(), i, nEcho, nServe)
				conns[i] = nc
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	held := memSince(base)
	t.Logf("%d connections open: %d goroutines in the process (%d before), %s of heap held by both ends (%d bytes a connection)",
		total, runtime.NumGoroutine(), goroutines, kib(held.retained), held.retained/total)
	start := time.Now()
	for _, nc := range conns {
		nc.SetLinger(0)
		nc.Close()
	}
	// Each handler wakes to the reset and reads it with a pooled read
	// buffer, which the race detector may drop.
	hostileOps.Add(nEcho + nServe)
	for i := range nEcho + nServe {
		select {
		case e := <-ends:
			wantLost(t, e.err)
		case <-time.After(hostileWait):
			t.Fatalf("%d of %d handlers ended within %v of the resets", i, nEcho+nServe, hostileWait)
		}
	}
	t.Logf("every handler ended %v after the resets", time.Since(start).Round(time.Millisecond))
	for deadline := time.Now().Add(hostileWait); runtime.NumGoroutine() > goroutines+10; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines %v after the resets, %d before", runtime.NumGoroutine(), hostileWait, goroutines)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openConn opens connection i of manyConns: a WebSocket to /echo or
// /serve, its 101 read, or half a request.
func openConn(addr, row string, i, nEcho, nServe int) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, hostileWait)
	if err != nil {
		return nil, err
	}
	nc := c.(*net.TCPConn)
	nc.SetDeadline(time.Now().Add(hostileWait))
	path := "/echo"
	if i >= nEcho {
		path = "/serve"
	}
	req := request(path, row)
	if i >= nEcho+nServe {
		_, err := nc.Write([]byte(req[:len(req)/2]))
		return nc, err
	}
	if _, err := nc.Write([]byte(req)); err != nil {
		return nc, err
	}
	// The response is the 101's head alone: read up to its blank line.
	var b [512]byte
	n := 0
	for !bytes.HasSuffix(b[:n], []byte("\r\n\r\n")) {
		if n == len(b) {
			return nc, fmt.Errorf("response head longer than %d bytes: %q", n, b[:n])
		}
		m, err := nc.Read(b[n:])
		n += m
		if err != nil {
			return nc, fmt.Errorf("reading the 101: %w", err)
		}
	}
	if !bytes.HasPrefix(b[:n], []byte("HTTP/1.1 101 ")) {
		return nc, fmt.Errorf("got %q, want a 101", b[:n])
	}
	return nc, nil
}
