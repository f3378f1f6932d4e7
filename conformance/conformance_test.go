package conformance_test

import (
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
)

// The conformance suite: scripts for the raw peer of rawpeer_test.go, run
// against the library as a server (an httptest handler that accepts and
// echoes) and as a client (websocket.Dial and the same echo loop), over
// each transport of transport_test.go (HTTP/1.1, and HTTP/2 streams in
// cleartext and over TLS), covering the behaviours RFC 6455 requires of
// an endpoint section by section: framing, pings, reserved bits and
// opcodes, fragmentation, UTF-8, the close handshake, large messages, the
// encoding and size limits; and of RFC 7692, permessage-deflate
// (compress_test.go): its negotiation, compressed messages and their
// failures. Every case checks exact frames, exact close codes, who ends
// the connection and how, and the error the library's Read returned.

func TestConformance(t *testing.T) {
	t.Parallel()
	sections := []struct {
		name  string
		cases []cfCase
	}{
		{"1-framing", cfFramingCases()},
		{"2-ping-pong", cfPingCases()},
		{"3-reserved-bits", cfReservedBitCases()},
		{"4-reserved-opcodes", cfReservedOpcodeCases()},
		{"5-fragmentation", cfFragmentationCases()},
		{"6-utf8", cfUTF8Cases()},
		{"7-close", cfCloseCases()},
		{"10-large-messages", cfLargeMessageCases()},
		{"encoding-and-limits", cfEncodingCases()},
		{"12-compression-negotiation", cfNegotiationCases()},
		{"13-compressed-messages", cfCompressedCases()},
		{"compression-failures", cfCompressionFailureCases()},
	}
	cfForEachTransport(t, func(t *testing.T, tr cfTransport) {
		for _, role := range []cfRole{cfServer, cfClient} {
			t.Run(role.String(), func(t *testing.T) {
				t.Parallel()
				for _, sec := range sections {
					if !tr.runs(sec.name) {
						continue
					}
					t.Run(sec.name, func(t *testing.T) {
						t.Parallel()
						for _, c := range sec.cases {
							if c.only != cfBoth && c.only != role {
								continue
							}
							t.Run(c.name, func(t *testing.T) {
								t.Parallel()
								runConformanceCase(t, tr, role, c)
							})
						}
					})
				}
			})
		}
	})
}

// TestConformanceBoundarySweep sends payloads of the lengths where the
// length encoding changes, written whole, one byte at a time (through the
// header and the first and last 512 payload bytes, see cfDribble) and in
// halves, and checks the exact echo, in both roles, over each transport.
// Over HTTP/2 each write of the peer is a DATA frame of its own, so the
// bytewise sweep also sends a frame in one-byte DATA frames.
func TestConformanceBoundarySweep(t *testing.T) {
	t.Parallel()
	writes := []struct {
		name string
		chop int
	}{{"whole", 0}, {"bytewise", cfDribble}, {"halves", cfHalving}}
	cfForEachTransport(t, func(t *testing.T, tr cfTransport) {
		if !tr.runs(cfSweep) {
			t.Skipf("the sweep is not in the sample of %s", tr.name)
		}
		for _, role := range []cfRole{cfServer, cfClient} {
			t.Run(role.String(), func(t *testing.T) {
				t.Parallel()
				for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 65537} {
					for _, w := range writes {
						for _, op := range []byte{0x1, 0x2} {
							if op == 0x1 && w.chop != 0 {
								continue // text is swept whole; binary every way
							}
							f := frBuild(true, 0, op, cfPattern(n))
							name := fmt.Sprintf("op%d/%d/%s", op, n, w.name)
							t.Run(name, func(t *testing.T) {
								t.Parallel()
								runConformanceCase(t, tr, role, cfCase{steps: []cfStep{
									sendChopped(w.chop, f),
									expectFrame(f),
									cfBye(),
								}})
							})
						}
					}
				}
			})
		}
	})
}

// TestConformancePeerSelfCheck checks the raw peer's own codec against the
// examples of RFC 6455, so that the suite's verdicts can be trusted.
func TestConformancePeerSelfCheck(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, got, want string }{
		{"text frame", frText("Hello"), "\x81\x05\x48\x65\x6c\x6c\x6f"},
		{"first fragment", frFirst(0x1, "Hel"), "\x01\x03\x48\x65\x6c"},
		{"last fragment", frCont(true, "lo"), "\x80\x02\x6c\x6f"},
		{"ping", frPing("Hello"), "\x89\x05\x48\x65\x6c\x6c\x6f"},
		{"256-byte header", frBinary(strings.Repeat("x", 256))[:4], "\x82\x7E\x01\x00"},
		{"64KiB header", frBinary(strings.Repeat("x", 65536))[:10], "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00"},
		{"forced 16-bit form", frHead(0x82, 126, 5), "\x82\x7E\x00\x05"},
		{"close 1000", frClose(1000, "ok"), "\x88\x04\x03\xe8ok"},
		{
			"masked text",
			string(cfMaskFrames(frText("Hello"), func() [4]byte { return cfRFCKey })),
			"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
		},
		{
			"masked pong",
			string(cfMaskFrames(frPong("Hello"), func() [4]byte { return cfRFCKey })),
			"\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
		},
		{"accept key", cfAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
		// RFC 7541 C.2.1's field, as a literal without indexing (§6.2.2).
		{"HPACK literal", string(h2Literal(nil, "custom-key", "custom-header")), "\x00\x0acustom-key\x0dcustom-header"},
		{"SETTINGS", string(h2SettingsFrame(h2SettingEnableConnect, 1)), "\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x08\x00\x00\x00\x01"},
		{"DATA header", string(h2FrameHeader(nil, 16384, h2Data, h2FlagEndStream, 1)), "\x00\x40\x00\x00\x01\x00\x00\x00\x01"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	// The compressed messages the peer writes into its tables.
	for _, tt := range []struct {
		name, compressed, want string
	}{
		{"Hello", cfDeflated("Hello"), "Hello"},
		{"empty message", cfDeflated(""), ""},
		{"bomb", cfBomb(3), string(make([]byte, 3<<20))},
	} {
		got, err := io.ReadAll(flate.NewReader(strings.NewReader(tt.compressed + cfTail)))
		if err != io.ErrUnexpectedEOF || string(got) != tt.want {
			t.Errorf("%s: inflated to %d bytes (%v), want %d", tt.name, len(got), err, len(tt.want))
		}
	}
	if got := cfDeflated(""); got != "\x00" {
		t.Errorf("empty message compressed to %q; RFC 7692 §7.2.3.6 gives \"\\x00\"", got)
	}
	d, err := newCfDeflate(`Permessage-Deflate; client_no_context_takeover; server_max_window_bits="9"`, true)
	if err != nil || d.sendTakeover || !d.recvTakeover || d.sendBits != 15 || d.recvBits != 9 {
		t.Errorf("the peer as a client read an agreement as %+v, %v", d, err)
	}
	p := &cfPeer{client: true}
	k1, k2 := p.nextKey(), p.nextKey()
	if k1 != cfRFCKey || k1 == k2 {
		t.Errorf("keys %x then %x: want the RFC key first, then another", k1, k2)
	}
}

// cfCase is a script for the raw peer, with what the library must do.
type cfCase struct {
	name  string
	only  cfRole // cfBoth, or the one role the case is for
	limit int64  // the read limit the library sets; 0 keeps the default
	ext   cfExt  // the compression it negotiates; none by default
	steps []cfStep
}

// cfEnd is how the library's echo loop ended.
type cfEnd struct {
	op  string // "accept", "dial", "read" or "write"
	err error
}

// cfEchoLoop sends every message back until a read or write fails.
func cfEchoLoop(c *websocket.Conn, limit int64) cfEnd {
	if limit != 0 {
		c.SetReadLimit(limit)
	}
	ctx := context.Background()
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			return cfEnd{"read", err}
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return cfEnd{"write", err}
		}
	}
}

func cfWaitDone(t *testing.T, done <-chan struct{}, what string) {
	select {
	case <-done:
	case <-time.After(3 * cfWait):
		t.Errorf("%s still running %v after the test", what, 3*cfWait)
	}
}

// runConformanceCase plays c against the library in role over tr and
// checks how the library's loop ended.
func runConformanceCase(t *testing.T, tr cfTransport, role cfRole, c cfCase) {
	var want *cfLibEnd
	for _, s := range c.steps {
		if s.end != nil {
			want = s.end
		}
	}
	if want == nil && c.ext.dialErr == "" {
		t.Fatal("case has no closing step")
	}
	var p *cfPeer
	var ends <-chan cfEnd
	if role == cfServer {
		p, ends = cfStartServerRole(t, tr, c)
	} else {
		p, ends = cfStartClientRole(t, tr, c)
	}
	if !cfNegotiated(t, p, role, c.ext, ends) {
		return
	}
	for i, s := range c.steps {
		if err := s.do(p); err != nil {
			t.Fatalf("step %d, %s: %v", i+1, s.what, err)
		}
	}
	// A failing server waits for the peer to close; a client has closed.
	p.conn.Close()
	select {
	case got := <-ends:
		cfCheckEnd(t, got, *want)
	case <-time.After(2 * cfWait):
		t.Fatalf("the library's loop did not end within %v", 2*cfWait)
	}
}

// cfCheckEnd checks the error the library's loop ended with.
func cfCheckEnd(t *testing.T, got cfEnd, want cfLibEnd) {
	t.Helper()
	if got.op != "read" {
		t.Fatalf("the library's loop ended in %s: %v; want Read to end it", got.op, got.err)
	}
	var pe *websocket.ProtocolError
	isPE := errors.As(got.err, &pe)
	if want.failed {
		if !isPE || pe.Code != want.code {
			t.Fatalf("Read returned %v (%T); want a *ProtocolError with code %d", got.err, got.err, want.code)
		}
		if st := websocket.CloseStatus(got.err); st != want.code {
			t.Errorf("CloseStatus = %d, want %d", st, want.code)
		}
		if want.code == websocket.StatusMessageTooBig && !errors.Is(got.err, websocket.ErrMessageTooBig) {
			t.Errorf("Read returned %v; want it to wrap ErrMessageTooBig", got.err)
		}
		return
	}
	var ce websocket.CloseError
	if isPE || !errors.As(got.err, &ce) {
		t.Fatalf("Read returned %v (%T); want the peer's CloseError{%d, %q}", got.err, got.err, want.code, want.reason)
	}
	if ce.Code != want.code || ce.Reason != want.reason {
		t.Fatalf("Read returned CloseError{%d, %q}; want {%d, %q}", ce.Code, ce.Reason, want.code, want.reason)
	}
}

// cfBye is the usual end of a case: a normal close from the peer.
func cfBye() cfStep { return peerCloses(websocket.StatusNormalClosure, "") }

// cfPattern is n bytes that are not all alike, so that a byte out of place
// shows.
func cfPattern(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return string(b)
}

// cfEcho is a case that sends frames, expects echo back, and closes.
func cfEcho(name string, echo string, send ...cfStep) cfCase {
	return cfCase{name: name, steps: append(send, expectFrame(echo), cfBye())}
}

// cfFails is a case whose steps end with the library failing with code.
func cfFails(name string, code websocket.StatusCode, steps ...cfStep) cfCase {
	return cfCase{name: name, steps: append(steps, libFails(code))}
}

// Section 1: single-frame messages of every length class.
func cfFramingCases() []cfCase {
	var cs []cfCase
	for _, m := range []struct {
		name string
		op   byte
		fill string
	}{{"text", 0x1, "*"}, {"binary", 0x2, "\xfe"}} {
		for _, n := range []int{0, 125, 126, 127, 128, 65535, 65536} {
			f := frBuild(true, 0, m.op, strings.Repeat(m.fill, n))
			cs = append(cs, cfEcho(fmt.Sprintf("%s %d bytes", m.name, n), f, sendFrames(f)))
		}
		f := frBuild(true, 0, m.op, strings.Repeat(m.fill, 65536))
		cs = append(cs, cfEcho(m.name+" 65536 bytes in 997-byte chops", f, sendChopped(997, f)))
	}
	// Literal frames: RFC 6455 §5.7 and the two extended length forms.
	hello := "\x81\x05\x48\x65\x6c\x6c\x6f"
	bin256 := "\x82\x7E\x01\x00" + cfPattern(256)
	bin64k := "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00" + cfPattern(65536)
	cs = append(cs,
		cfEcho("literal Hello", hello, sendFrames(hello)),
		cfEcho("literal 256-byte binary", bin256, sendFrames(bin256)),
		cfEcho("literal 64KiB binary", bin64k, sendFrames(bin64k)),
		cfCase{name: "two messages in one write", steps: []cfStep{
			sendFrames(frText("one"), frBinary("two")),
			expectFrame(frText("one")),
			expectFrame(frBinary("two")),
			cfBye(),
		}},
		// RFC 6455 §5.7, byte for byte on the wire in both directions.
		cfCase{name: "RFC masked Hello on the wire", only: cfServer, steps: []cfStep{
			sendBytes("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"),
			expectBytes("\x81\x05\x48\x65\x6c\x6c\x6f"),
			cfBye(),
		}},
		cfCase{name: "RFC unmasked Hello on the wire", only: cfClient, steps: []cfStep{
			sendBytes("\x81\x05\x48\x65\x6c\x6c\x6f"),
			expectFrame("\x81\x05\x48\x65\x6c\x6c\x6f"),
			cfBye(),
		}},
	)
	return cs
}

// Section 2: pings and pongs.
func cfPingCases() []cfCase {
	tenPings := func(chop int) []cfStep {
		var pings []string
		var steps []cfStep
		for i := range 10 {
			p := fmt.Sprintf("payload-%d", i)
			pings = append(pings, frPing(p))
			steps = append(steps, expectFrame(frPong(p)))
		}
		return append([]cfStep{sendChopped(chop, pings...)}, append(steps, cfBye())...)
	}
	bin := "\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
	long := strings.Repeat("\xfe", 125)
	return []cfCase{
		cfEcho("empty ping", "\x8a\x00", sendFrames("\x89\x00")),
		cfEcho("ping with text payload", frPong("Hello, world!"), sendFrames(frPing("Hello, world!"))),
		cfEcho("ping with binary payload", frPong(bin), sendFrames(frPing(bin))),
		cfEcho("ping of 125 bytes", frPong(long), sendFrames(frPing(long))),
		cfFails("ping of 126 bytes", websocket.StatusProtocolError, sendFrames(frPing(long+"\xfe"))),
		cfEcho("ping of 125 bytes bytewise", frPong(long), sendChopped(1, frPing(long))),
		// Nothing answers a pong: the next frame is the close reply.
		{name: "unsolicited empty pong", steps: []cfStep{sendFrames(frPong("")), cfBye()}},
		{name: "unsolicited pong with payload", steps: []cfStep{sendFrames(frPong("unsolicited")), cfBye()}},
		cfEcho("unsolicited pong then ping", frPong("ping payload"),
			sendFrames(frPong("unsolicited"), frPing("ping payload"))),
		{name: "ten pings", steps: tenPings(0)},
		{name: "ten pings bytewise", steps: tenPings(1)},
		cfEcho("literal ping", "\x8a\x05Hello", sendFrames("\x89\x05Hello")),
		cfCase{name: "RFC masked ping on the wire", only: cfServer, steps: []cfStep{
			sendBytes("\x89\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"),
			expectBytes("\x8a\x05\x48\x65\x6c\x6c\x6f"),
			cfBye(),
		}},
	}
}

// Section 3: RSV bits with no extension negotiated fail the connection,
// after whatever came before them was handled.
func cfReservedBitCases() []cfCase {
	hello := "Hello, world!"
	afterEcho := func(name string, rsv byte, chop int, separate bool) cfCase {
		frames := []string{frText(hello), frBuild(true, rsv, 0x1, hello), frPing("")}
		var steps []cfStep
		if separate {
			for _, f := range frames {
				steps = append(steps, sendChopped(chop, f))
			}
		} else {
			steps = append(steps, sendChopped(chop, frames...))
		}
		// The echo goes out; the ping after the bad frame is not answered.
		return cfFails(name, websocket.StatusProtocolError, append(steps, expectFrame(frText(hello)))...)
	}
	return []cfCase{
		cfFails("text with RSV1", websocket.StatusProtocolError, sendFrames(frBuild(true, 0x40, 0x1, hello))),
		afterEcho("RSV2 after an echoed message", 0x20, 0, true),
		afterEcho("RSV3 after an echoed message, one write", 0x10, 0, false),
		afterEcho("RSV1|RSV3 after an echoed message, bytewise", 0x50, 1, false),
		cfFails("binary with RSV1|RSV3", websocket.StatusProtocolError, sendFrames(frBuild(true, 0x50, 0x2, "\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))),
		cfFails("ping with RSV1|RSV2", websocket.StatusProtocolError, sendFrames(frBuild(true, 0x60, 0x9, hello))),
		cfFails("pong with RSV2", websocket.StatusProtocolError, sendFrames(frBuild(true, 0x20, 0xA, hello))),
		cfFails("close with all RSV bits", websocket.StatusProtocolError, sendFrames(frBuild(true, 0x70, 0x8, "\x03\xe8"))),
		cfFails("continuation with RSV1", websocket.StatusProtocolError,
			sendFrames(frFirst(0x1, "frag"), frBuild(true, 0x40, 0x0, "ment"))),
	}
}

// Section 4: reserved opcodes fail the connection.
func cfReservedOpcodeCases() []cfCase {
	var cs []cfCase
	for _, op := range []byte{0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		cs = append(cs,
			cfFails(fmt.Sprintf("opcode %X", op), websocket.StatusProtocolError, sendFrames(frBuild(true, 0, op, ""))),
			cfFails(fmt.Sprintf("opcode %X after an echoed message", op), websocket.StatusProtocolError,
				sendFrames(frText("Hello, world!"), frBuild(true, 0, op, "reserved"), frPing("")),
				expectFrame(frText("Hello, world!"))),
		)
	}
	return cs
}

// Section 5: fragmentation.
func cfFragmentationCases() []cfCase {
	f1, f2 := "fragment1", "fragment2"
	text2 := []string{frFirst(0x1, f1), frCont(true, f2)}
	withPing := []string{frFirst(0x1, f1), frPing("ping payload"), frCont(true, f2)}
	whole := frText(f1 + f2)
	// Pings between the fragments are answered at once: the peer holds the
	// rest of the message back until the pong arrives.
	pingsInside := func(chop int) []cfStep {
		frags := []string{"fragment1", "fragment2", "fragment3", "fragment4", "fragment5"}
		return []cfStep{
			sendChopped(chop, frFirst(0x1, frags[0])),
			sendChopped(chop, frCont(false, frags[1])),
			sendChopped(chop, frPing("pongme 1!")),
			expectFrame(frPong("pongme 1!")),
			pause(10 * time.Millisecond),
			sendChopped(chop, frCont(false, frags[2])),
			sendChopped(chop, frCont(false, frags[3])),
			sendChopped(chop, frPing("pongme 2!")),
			expectFrame(frPong("pongme 2!")),
			sendChopped(chop, frCont(true, frags[4])),
			expectFrame(frText(strings.Join(frags, ""))),
			cfBye(),
		}
	}
	noStart := func(fin bool, chop int) []cfStep {
		return []cfStep{sendChopped(chop, frCont(fin, "non-continuation payload"), frText("Hello, world!"))}
	}
	return []cfCase{
		cfFails("fragmented ping", websocket.StatusProtocolError, sendFrames(frBuild(false, 0, 0x9, "fragment1"), frCont(true, "fragment2"))),
		cfFails("fragmented pong", websocket.StatusProtocolError, sendFrames(frBuild(false, 0, 0xA, "fragment1"), frCont(true, "fragment2"))),
		cfFails("fragmented close", websocket.StatusProtocolError, sendFrames(frBuild(false, 0, 0x8, "\x03\xe8"), frCont(true, "bye"))),
		cfEcho("text in 2 fragments", whole, sendFrames(text2...)),
		cfEcho("text in 2 fragments, separate writes", whole, sendFrames(text2[0]), sendFrames(text2[1])),
		cfEcho("text in 2 fragments, bytewise", whole, sendChopped(1, text2...)),
		cfEcho("literal RFC fragments Hel+lo", "\x81\x05Hello", sendFrames("\x01\x03Hel", "\x80\x02lo")),
		cfEcho("binary in 3 fragments", frBinary("\x00\x01\x02\x03\x04\x05"),
			sendFrames(frFirst(0x2, "\x00\x01"), frCont(false, "\x02\x03"), frCont(true, "\x04\x05"))),
		{name: "ping between 2 fragments", steps: []cfStep{
			sendFrames(withPing...),
			expectFrame(frPong("ping payload")),
			expectFrame(whole),
			cfBye(),
		}},
		{name: "ping between 2 fragments, answered before the last is sent", steps: []cfStep{
			sendFrames(withPing[0], withPing[1]),
			expectFrame(frPong("ping payload")),
			sendFrames(withPing[2]),
			expectFrame(whole),
			cfBye(),
		}},
		{name: "ping between 2 fragments, bytewise", steps: []cfStep{
			sendChopped(1, withPing...),
			expectFrame(frPong("ping payload")),
			expectFrame(whole),
			cfBye(),
		}},
		cfFails("final continuation with nothing to continue", websocket.StatusProtocolError, noStart(true, 0)...),
		cfFails("final continuation with nothing to continue, bytewise", websocket.StatusProtocolError, noStart(true, 1)...),
		cfFails("continuation with nothing to continue", websocket.StatusProtocolError, noStart(false, 0)...),
		cfFails("continuation with nothing to continue, bytewise", websocket.StatusProtocolError, noStart(false, 1)...),
		cfFails("continuation after a finished fragmented message", websocket.StatusProtocolError,
			sendFrames(frFirst(0x1, "fragment1"), frCont(true, "fragment2"), frCont(false, "fragment3"), frText("fragment4")),
			expectFrame(frText("fragment1fragment2"))),
		cfFails("repeated: continuation, then a fragmented text", websocket.StatusProtocolError,
			sendFrames(frCont(true, "fragment1"), frFirst(0x1, "fragment2"), frCont(true, "fragment3"),
				frCont(true, "fragment1"), frFirst(0x1, "fragment2"), frCont(true, "fragment3"))),
		cfFails("text frame inside a fragmented text", websocket.StatusProtocolError,
			sendFrames(frFirst(0x1, "fragment1"), frText("fragment2"))),
		cfFails("binary frame inside a fragmented text", websocket.StatusProtocolError,
			sendFrames(frFirst(0x1, "fragment1"), frBuild(false, 0, 0x2, "fragment2"))),
		{name: "pings inside a 5-fragment text", steps: pingsInside(0)},
		{name: "pings inside a 5-fragment text, bytewise", steps: pingsInside(1)},
		cfEcho("empty fragments", "\x81\x00", sendFrames(frFirst(0x1, ""), frCont(false, ""), frCont(true, ""))),
		cfEcho("empty first and last fragments", frText("middle"),
			sendFrames(frFirst(0x1, ""), frCont(false, "middle"), frCont(true, ""))),
		cfEcho("empty binary fragments", "\x82\x00", sendFrames(frFirst(0x2, ""), frCont(true, ""))),
	}
}

// Section 6: UTF-8 in text messages.
func cfUTF8Cases() []cfCase {
	const kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" // κόσμε
	const mixed = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"
	oneByteFrames := func(s string) []string {
		var fs []string
		for i := range len(s) {
			op := byte(0x0)
			if i == 0 {
				op = 0x1
			}
			fs = append(fs, frBuild(i == len(s)-1, 0, op, s[i:i+1]))
		}
		return fs
	}
	cs := []cfCase{
		cfEcho("empty text", "\x81\x00", sendFrames("\x81\x00")),
		cfEcho("multi-byte text", frText(mixed), sendFrames(frText(mixed))),
		cfEcho("multi-byte text in 2 fragments on a character boundary", frText(mixed),
			sendFrames(frFirst(0x1, mixed[:7]), frCont(true, mixed[7:]))),
		cfEcho("multi-byte text bytewise", frText(mixed), sendChopped(1, frText(mixed))),
		cfEcho("multi-byte text in 1-byte frames", frText(kosme), sendFrames(oneByteFrames(kosme)...)),
		cfEcho("character split across fragments", frText("\xce\xba"), sendFrames(frFirst(0x1, "\xce"), frCont(true, "\xba"))),
		cfEcho("binary is not checked", frBinary("\xff\xfe\xc0\x80\xed\xa0\x80"), sendFrames(frBinary("\xff\xfe\xc0\x80\xed\xa0\x80"))),
		cfFails("surrogate in one frame", websocket.StatusInvalidFramePayloadData,
			sendFrames(frText(kosme+"\xed\xa0\x80edited"))),
		cfFails("surrogate in 1-byte frames", websocket.StatusInvalidFramePayloadData,
			sendFrames(oneByteFrames(kosme+"\xed\xa0\x80edited")...)),
		// Fail fast: the frame that breaks the text goes out, the rest is
		// held back, and the close must come without it. A ping after the
		// valid part shows the library had not failed before.
		cfFails("fail fast: frame with code point above U+10FFFF", websocket.StatusInvalidFramePayloadData,
			sendFrames(frFirst(0x1, kosme), frPing("alive")),
			expectFrame(frPong("alive")),
			sendFrames(frCont(false, "\xf4\x90\x80\x80"))),
		cfFails("fail fast: frame with the byte after F4", websocket.StatusInvalidFramePayloadData,
			sendFrames(frFirst(0x1, kosme+"\xf4"), frPing("alive")),
			expectFrame(frPong("alive")),
			sendFrames(frCont(false, "\x90"))),
		cfFails("fail fast: mid-frame, code point above U+10FFFF", websocket.StatusInvalidFramePayloadData,
			sendPiece(frText(kosme+"\xf4\x90\x80\x80edited"), 0, len(kosme)),
			sendPiece(frText(kosme+"\xf4\x90\x80\x80edited"), len(kosme), len(kosme)+4)),
		cfFails("fail fast: mid-frame, the byte after F4", websocket.StatusInvalidFramePayloadData,
			sendPiece(frText(kosme+"\xf4\x90\x80\x80edited"), 0, len(kosme)+1),
			sendPiece(frText(kosme+"\xf4\x90\x80\x80edited"), len(kosme)+1, len(kosme)+2)),
	}
	for _, v := range []struct{ name, s string }{
		{"dollar, cent, euro, U+24B62", "hello$world hello\xc2\xa2world hello\xe2\x82\xacworld hello\xf0\xa4\xad\xa2world"},
		{"U+0000", "\x00"},
		{"U+007F", "\x7f"},
		{"U+0080", "\xc2\x80"},
		{"U+07FF", "\xdf\xbf"},
		{"U+0800", "\xe0\xa0\x80"},
		{"U+D7FF", "\xed\x9f\xbf"},
		{"U+E000", "\xee\x80\x80"},
		{"U+FFFD", "\xef\xbf\xbd"},
		{"U+FFFE", "\xef\xbf\xbe"},
		{"U+FFFF", "\xef\xbf\xbf"},
		{"U+10000", "\xf0\x90\x80\x80"},
		{"U+10FFFF", "\xf4\x8f\xbf\xbf"},
	} {
		cs = append(cs, cfEcho("valid "+v.name, frText(v.s), sendFrames(frText(v.s))))
	}
	// Invalid sequences, each sent up to the byte at which no continuation
	// could make the text valid; the rest of the frame is held back.
	for _, v := range []struct{ name, good, bad string }{
		{"lone continuation 80", "ab", "\x80"},
		{"lone continuation BF", "", "\xbf"},
		{"overlong C0 80", "ab", "\xc0"},
		{"overlong C1 BF", "", "\xc1"},
		{"overlong E0 80 80", kosme, "\xe0\x80"},
		{"overlong E0 9F BF", "", "\xe0\x9f"},
		{"overlong F0 80 80 80", "", "\xf0\x80"},
		{"overlong F0 8F BF BF", "", "\xf0\x8f"},
		{"surrogate ED A0 80", kosme, "\xed\xa0"},
		{"surrogate ED BF BF", "", "\xed\xbf"},
		{"above U+10FFFF F4 90 80 80", kosme, "\xf4\x90"},
		{"F5", "", "\xf5"},
		{"old 4-byte F7 BF BF BF", "", "\xf7"},
		{"5-byte F8 88 80 80 80", "", "\xf8"},
		{"6-byte FC 84 80 80 80 80", "", "\xfc"},
		{"FE", "a", "\xfe"},
		{"FF", "a", "\xff"},
		{"2-byte lead then ASCII", "", "\xc2A"},
		{"3-byte lead, one continuation, then ASCII", "", "\xe1\x80A"},
		{"4-byte lead then a lead", "", "\xf0\x9f\xf0"},
	} {
		f := frText(v.good + v.bad + "\x80\x80 and more text that is never sent")
		cs = append(cs, cfFails("fail fast: "+v.name, websocket.StatusInvalidFramePayloadData,
			sendPiece(f, 0, len(v.good)+len(v.bad))))
	}
	// A sequence cut short by the end of the message.
	for _, v := range []struct{ name, s string }{
		{"2-byte sequence", "ab\xce"},
		{"3-byte sequence", "\xe1\xbd"},
		{"4-byte sequence", kosme + "\xf0\x9f\x98"},
	} {
		cs = append(cs,
			cfFails("message ends inside a "+v.name, websocket.StatusInvalidFramePayloadData, sendFrames(frText(v.s))),
			cfFails("fragmented message ends inside a "+v.name, websocket.StatusInvalidFramePayloadData,
				sendFrames(frFirst(0x1, v.s), frCont(true, ""))),
		)
	}
	return cs
}

// Section 7: the close handshake.
func cfCloseCases() []cfCase {
	cs := []cfCase{
		cfEcho("message then close", frText("Hello World!"), sendFrames(frText("Hello World!"))),
		{name: "close twice", steps: []cfStep{
			peerClosesWith(frClose(1000, "")+frClose(1000, ""), websocket.StatusNormalClosure, ""),
		}},
		{name: "ping after close is not answered", steps: []cfStep{
			peerClosesWith(frClose(1000, "")+frPing("Hello World!"), websocket.StatusNormalClosure, ""),
		}},
		{name: "text after close is not echoed", steps: []cfStep{
			peerClosesWith(frClose(1000, "")+frText("Hello World!"), websocket.StatusNormalClosure, ""),
		}},
		{name: "close after a fragment, then the last fragment", steps: []cfStep{
			peerClosesWith(frFirst(0x1, "fragment1")+frClose(1000, "")+frCont(true, "fragment2"), websocket.StatusNormalClosure, ""),
		}},
		// The message before the close is echoed; the ping after it is not
		// answered.
		{name: "message, close and ping in one write", steps: []cfStep{
			sendFrames(frText("Hello World!"), frClose(1000, ""), frPing("")),
			expectFrame(frText("Hello World!")),
			expectClose(websocket.StatusNormalClosure),
			teardownStep(cfLibEnd{code: websocket.StatusNormalClosure}),
		}},
		{name: "empty close", steps: []cfStep{peerClosesEmpty()}},
		{name: "close 1000 answered byte for byte", steps: []cfStep{
			sendFrames(frClose(1000, "")),
			expectFrame("\x88\x02\x03\xe8"),
			teardownStep(cfLibEnd{code: websocket.StatusNormalClosure}),
		}},
		cfFails("close payload of 1 byte", websocket.StatusProtocolError, sendFrames(frBuild(true, 0, 0x8, "a"))),
		{name: "close 1000 with reason", steps: []cfStep{peerCloses(websocket.StatusNormalClosure, "Hello World!")}},
		{name: "close with 125-byte payload", steps: []cfStep{peerCloses(websocket.StatusNormalClosure, strings.Repeat("*", 123))}},
		cfFails("close with 126-byte payload", websocket.StatusProtocolError, sendFrames(frClose(1000, strings.Repeat("*", 124)))),
		cfFails("close reason not UTF-8", websocket.StatusInvalidFramePayloadData,
			sendFrames(frClose(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"))),
		// RFC 6455 §7.1.1: the client waits for the server to close TCP
		// (over HTTP/2, to end its stream with END_STREAM); the raw server
		// stays silent first, then closes, and the library must close in
		// turn.
		{name: "client waits for the server to close first", only: cfClient, steps: []cfStep{
			sendFrames(frClose(1000, "")),
			expectClose(websocket.StatusNormalClosure),
			expectSilence(100 * time.Millisecond),
			teardownStep(cfLibEnd{code: websocket.StatusNormalClosure}),
		}},
		{name: "failing client waits for the server to close first", only: cfClient, steps: []cfStep{
			sendFrames(frBuild(true, 0, 0x3, "")),
			expectClose(websocket.StatusProtocolError),
			expectSilence(100 * time.Millisecond),
			teardownStep(cfLibEnd{code: websocket.StatusProtocolError, failed: true}),
		}},
	}
	for _, code := range []websocket.StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cs = append(cs, cfCase{name: fmt.Sprintf("valid code %d", code), steps: []cfStep{peerCloses(code, "")}})
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cs = append(cs, cfFails(fmt.Sprintf("invalid code %d", code), websocket.StatusProtocolError, sendFrames(frClose(code, ""))))
	}
	return cs
}

// Section 10: a large message in frames of many sizes.
func cfLargeMessageCases() []cfCase {
	msg := strings.Repeat("*", 65536)
	var cs []cfCase
	for _, size := range []int{1300, 1, 64, 125, 126, 4096, 65535} {
		var frames []string
		for i := 0; i < len(msg); i += size {
			end := min(i+size, len(msg))
			op := byte(0x0)
			if i == 0 {
				op = 0x1
			}
			frames = append(frames, frBuild(end == len(msg), 0, op, msg[i:end]))
		}
		cs = append(cs, cfEcho(fmt.Sprintf("65536 bytes in frames of %d", size), frText(msg), sendFrames(frames...)))
	}
	return cs
}

// Masking, length encodings and the read limit.
func cfEncodingCases() []cfCase {
	return []cfCase{
		cfFails("frame masked wrongly for the role", websocket.StatusProtocolError, sendMismasked(frText("Hello"))),
		cfFails("ping masked wrongly for the role", websocket.StatusProtocolError, sendMismasked(frPing("Hello"))),
		cfFails("mis-masked frame after an echoed message", websocket.StatusProtocolError,
			sendFrames(frText("Hello")),
			expectFrame(frText("Hello")),
			sendMismasked(frBinary("world"))),
		cfFails("16-bit length of 5", websocket.StatusProtocolError, sendFrames("\x82\x7e\x00\x05hello")),
		cfFails("16-bit length of 125", websocket.StatusProtocolError, sendFrames(frHead(0x82, 126, 125)+cfPattern(125))),
		cfFails("64-bit length of 126", websocket.StatusProtocolError, sendFrames(frHead(0x82, 127, 126)+cfPattern(126))),
		cfFails("64-bit length of 65535, header only", websocket.StatusProtocolError, sendFrames(frHead(0x82, 127, 65535))),
		cfFails("64-bit length of 5 on a ping", websocket.StatusProtocolError, sendFrames(frHead(0x89, 127, 5)+"hello")),
		cfFails("64-bit length with its top bit set", websocket.StatusProtocolError,
			sendFrames("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00")),
		cfFails("64-bit length of all ones", websocket.StatusProtocolError,
			sendFrames("\x82\x7f\xff\xff\xff\xff\xff\xff\xff\xff")),
		// 2^62 bytes fits the encoding but no memory: the default limit
		// must refuse it on the header, before allocating anything.
		cfFails("declared length of 2^62", websocket.StatusMessageTooBig,
			sendFrames("\x82\x7f\x40\x00\x00\x00\x00\x00\x00\x00")),
		{name: "message at the read limit", limit: 1000, steps: []cfStep{
			sendFrames(frBinary(cfPattern(1000))),
			expectFrame(frBinary(cfPattern(1000))),
			cfBye(),
		}},
		{name: "fragmented message at the read limit", limit: 1000, steps: []cfStep{
			sendFrames(frFirst(0x1, cfPattern(500)), frCont(true, cfPattern(500))),
			expectFrame(frText(cfPattern(500) + cfPattern(500))),
			cfBye(),
		}},
		// Over the limit: only the header is sent, so the library must
		// refuse the frame before its payload arrives.
		{name: "frame over the read limit", limit: 1000, steps: []cfStep{
			sendFrames(frHead(0x82, 0, 1001)),
			libFails(websocket.StatusMessageTooBig),
		}},
		{name: "fragments over the read limit", limit: 1000, steps: []cfStep{
			sendFrames(frFirst(0x1, cfPattern(600)), frHead(0x80, 0, 600)),
			libFails(websocket.StatusMessageTooBig),
		}},
		{name: "limit applies per message", limit: 1000, steps: []cfStep{
			sendFrames(frBinary(cfPattern(800)), frBinary(cfPattern(800))),
			expectFrame(frBinary(cfPattern(800))),
			expectFrame(frBinary(cfPattern(800))),
			cfBye(),
		}},
	}
}
