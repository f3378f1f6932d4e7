package conformance_test

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// The compression sections: permessage-deflate (RFC 7692), what the
// Autobahn testsuite's sections 12 and 13 exercise. The raw peer
// negotiates with exact header values, compresses what it sends with
// compress/flate and inflates what the library sends with
// flatetest.Inflater, a reference decoder of its own that fails on a
// back-reference past the window the library promised, on a final block
// and on a message that does not end with the empty stored block of RFC
// 7692 §7.2.1.

// cfExt is the compression a case negotiates, for each role.
type cfExt struct {
	// The library's options, in AcceptOptions or DialOptions.
	mode      websocket.CompressionMode
	bits      int
	threshold int

	// Server role: the peer offers peerOffer ("" sends no header), and the
	// library must answer libAnswer exactly ("": no header, the offer
	// declined).
	peerOffer, libAnswer string
	// Client role: the library must offer libOffer exactly, and the peer
	// answers peerAnswer; with dialErr, Dial must fail with an error that
	// says it, and the case ends there.
	libOffer, peerAnswer, dialErr string
}

// agreed is what the two sides settled in role, "" for no compression.
func (e cfExt) agreed(role cfRole) string {
	if role == cfServer {
		return e.libAnswer
	}
	return e.peerAnswer
}

// cfNegotiated checks the Sec-WebSocket-Extensions the library sent, and
// sets the peer up to compress as the two sides agreed. In the client
// role, with dialErr, it checks that Dial failed saying it and reports
// false: the case is over.
func cfNegotiated(t *testing.T, p *cfPeer, role cfRole, e cfExt, ends <-chan cfEnd) bool {
	t.Helper()
	want, what := e.libAnswer, "answered"
	if role == cfClient {
		want, what = e.libOffer, "offered"
	}
	var wantLines []string
	if want != "" {
		wantLines = []string{want}
	}
	if !slices.Equal(p.extensions, wantLines) {
		t.Fatalf("the library %s Sec-WebSocket-Extensions %q, want %q", what, p.extensions, wantLines)
	}
	if role == cfClient && e.dialErr != "" {
		// RFC 6455 §4.1: a client failing the handshake closes the
		// connection; over HTTP/2, it ends or resets the stream.
		var reset h2ResetError
		if err := p.expectEOF(); err != nil && !errors.As(err, &reset) {
			t.Errorf("after a refused answer: %v", err)
		}
		p.conn.Close()
		select {
		case got := <-ends:
			if got.op != "dial" || got.err == nil || !strings.Contains(got.err.Error(), e.dialErr) ||
				strings.Count(got.err.Error(), "websocket: ") != 1 {
				t.Fatalf("the library's %s ended with %v; want Dial to fail with one error saying %q", got.op, got.err, e.dialErr)
			}
		case <-time.After(2 * cfWait):
			t.Fatalf("Dial did not end within %v", 2*cfWait)
		}
		return false
	}
	if a := e.agreed(role); a != "" {
		d, err := newCfDeflate(a, p.client)
		if err != nil {
			t.Fatal(err)
		}
		p.pmd = d
	}
	return true
}

// cfDeflate is the peer's side of a permessage-deflate connection.
type cfDeflate struct {
	sendTakeover, recvTakeover bool // the peer's compressor, the library's, keep their windows across messages
	sendBits, recvBits         int  // their windows are at most 2^bits bytes

	w   *flate.Writer       // the peer's compressor, kept with sendTakeover
	buf bytes.Buffer        // what w wrote
	in  *flatetest.Inflater // the library's stream, kept with recvTakeover
}

// newCfDeflate parses the agreed response element (RFC 7692 §7.1) for
// the peer: as a client it compresses with the client_ parameters and
// inflates with the server_ ones, and the other way round as a server.
// Names are compared in lower case; values may be quoted.
func newCfDeflate(agreed string, client bool) (*cfDeflate, error) {
	params := strings.Split(strings.ToLower(agreed), ";")
	if strings.TrimSpace(params[0]) != "permessage-deflate" {
		return nil, fmt.Errorf("agreed extension %q is not permessage-deflate", agreed)
	}
	d := &cfDeflate{sendTakeover: true, recvTakeover: true, sendBits: 15, recvBits: 15}
	ours, theirs := "client_", "server_"
	if !client {
		ours, theirs = theirs, ours
	}
	for _, prm := range params[1:] {
		name, value, _ := strings.Cut(prm, "=")
		name = strings.TrimSpace(name)
		bits, _ := strconv.Atoi(strings.Trim(strings.TrimSpace(value), `"`))
		switch name {
		case ours + "no_context_takeover":
			d.sendTakeover = false
		case theirs + "no_context_takeover":
			d.recvTakeover = false
		case ours + "max_window_bits":
			d.sendBits = bits
		case theirs + "max_window_bits":
			d.recvBits = bits
		default:
			return nil, fmt.Errorf("agreed extension %q: parameter %q", agreed, prm)
		}
	}
	return d, nil
}

// cfTail is what ends a flushed DEFLATE stream, and what RFC 7692 §7.2.1
// takes off the end of each compressed message.
const cfTail = "\x00\x00\xff\xff"

// compress returns msg compressed as the peer's compressor does. With a
// window under 2^15, which compress/flate cannot keep to, it codes
// literals alone (no back-reference reaches anywhere).
func (d *cfDeflate) compress(msg string) ([]byte, error) {
	if d.w == nil || !d.sendTakeover {
		level := flate.DefaultCompression
		if d.sendBits < 15 {
			level = flate.HuffmanOnly
		}
		d.w, _ = flate.NewWriter(&d.buf, level)
	}
	d.buf.Reset()
	d.w.Write([]byte(msg))
	d.w.Flush()
	b := d.buf.Bytes()
	if !bytes.HasSuffix(b, []byte(cfTail)) {
		return nil, fmt.Errorf("compress/flate's flush ended with %q", b[max(len(b)-4, 0):])
	}
	return bytes.Clone(b[:len(b)-len(cfTail)]), nil
}

// inflate decodes a compressed message of the library's, payload being
// its frames' payloads together: within the window the library promised,
// with the history of earlier messages if it kept its context, none
// otherwise.
func (d *cfDeflate) inflate(payload []byte) ([]byte, error) {
	if d.in == nil || !d.recvTakeover {
		d.in = &flatetest.Inflater{Window: 1 << d.recvBits}
	}
	return d.in.Message(append(payload, cfTail...))
}

// cfDeflated compresses msg alone, for frames written into a table: the
// first message of a connection, as the peer would send it with a 2^15
// window.
func cfDeflated(msg string) string {
	d := &cfDeflate{sendBits: 15}
	b, err := d.compress(msg)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// sendDeflated compresses a message of opcode op and sends it in frames
// frames (at least one), RSV1 on the first alone (RFC 7692 §6.1), the
// compressed bytes split evenly.
func sendDeflated(op byte, msg string, frames int) cfStep {
	what := fmt.Sprintf("send op=%#x, %d bytes compressed, in %d frames", op, len(msg), frames)
	return cfStep{what: what, do: func(p *cfPeer) error {
		if p.pmd == nil {
			return errors.New("no compression was negotiated")
		}
		c, err := p.pmd.compress(msg)
		if err != nil {
			return err
		}
		var out []string
		for i := range frames {
			part := string(c[i*len(c)/frames : (i+1)*len(c)/frames])
			if i == 0 {
				out = append(out, frBuild(frames == 1, 0x40, op, part))
			} else {
				out = append(out, frBuild(i == frames-1, 0, 0, part))
			}
		}
		return p.write(p.outgoing(strings.Join(out, ""), false), 0)
	}}
}

// expectDeflated reads a compressed message of opcode op from the
// library: RSV1 on its first frame, none on its continuations, no
// control frame between them, and a payload that inflates to msg within
// the promised window.
func expectDeflated(op byte, msg string) cfStep {
	what := fmt.Sprintf("expect op=%#x, %d bytes compressed", op, len(msg))
	return cfStep{what: what, do: func(p *cfPeer) error {
		if p.pmd == nil {
			return errors.New("no compression was negotiated")
		}
		var payload []byte
		for i := 0; ; i++ {
			f, err := p.readLibFrame()
			if err != nil {
				return err
			}
			wantB0 := byte(0x40) | op
			if i > 0 {
				wantB0 = 0
			}
			if f[0]&0x7F != wantB0 {
				return fmt.Errorf("frame %d of the message is %s; want RSV1 and op %#x on the first frame alone", i+1, cfDescribe(f), op)
			}
			payload = append(payload, f[cfHeaderLen(f):]...)
			if f[0]&0x80 != 0 {
				break
			}
		}
		got, err := p.pmd.inflate(payload)
		if err != nil {
			return fmt.Errorf("inflating the library's %d bytes: %w", len(payload), err)
		}
		if string(got) != msg {
			return fmt.Errorf("the library's message inflated to %d bytes, want %d; %s", len(got), len(msg), cfFirstDiff(string(got), msg))
		}
		return nil
	}}
}

// cfEchoDeflated sends msg compressed in frames frames and expects its
// echo: compressed, unless shorter than threshold, the library's
// compression threshold, when it must come back exactly as a plain frame.
func cfEchoDeflated(op byte, msg string, frames, threshold int) []cfStep {
	send := sendDeflated(op, msg, frames)
	if len(msg) < threshold {
		return []cfStep{send, expectFrame(frBuild(true, 0, op, msg))}
	}
	return []cfStep{send, expectDeflated(op, msg)}
}

// cfText is n bytes of English-like text, made once from a fixed seed:
// compressible, as messages are, and not all alike.
func cfText(n int) string {
	if n <= len(cfTextUnit) {
		return cfTextUnit[:n]
	}
	// Longer messages repeat a 4 KiB unit, so that the reference
	// inflater, which decodes a bit at a time, has matches to copy.
	return strings.Repeat(cfTextUnit, n/len(cfTextUnit)+1)[:n]
}

var cfTextUnit = string(flatetest.Text(flatetest.RNG(7692), 4096))

// cfPMD is the usual compression setup of the message sections, in both
// roles: the library with mode and a compression threshold of 1, so that
// every message but an empty one goes out compressed; the peer offers
// peerOffer as a client and answers peerAnswer as a server, and agreed is
// what the library answers as a server.
func cfPMD(mode websocket.CompressionMode, bits int, peerOffer, agreed, libOffer, peerAnswer string) cfExt {
	return cfExt{mode: mode, bits: bits, threshold: 1,
		peerOffer: peerOffer, libAnswer: agreed, libOffer: libOffer, peerAnswer: peerAnswer}
}

// The offers the library makes as a client, by option.
const (
	cfOfferTakeover   = "permessage-deflate; client_max_window_bits"
	cfOfferNoTakeover = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits"
)

// cfSettings are the agreements the message sections run under.
var cfSettings = []struct {
	name string
	ext  cfExt
}{
	{"takeover", cfPMD(websocket.CompressionContextTakeover, 0,
		"permessage-deflate", "permessage-deflate",
		cfOfferTakeover, "permessage-deflate")},
	{"no takeover", cfPMD(websocket.CompressionNoContextTakeover, 0,
		"permessage-deflate", "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		cfOfferNoTakeover, "permessage-deflate; server_no_context_takeover; client_no_context_takeover")},
	// The library keeps its context; the peer does not.
	{"peer without takeover", cfPMD(websocket.CompressionContextTakeover, 0,
		"permessage-deflate; client_no_context_takeover", "permessage-deflate; client_no_context_takeover",
		cfOfferTakeover, "permessage-deflate; server_no_context_takeover")},
	// The peer keeps its context; the library does not.
	{"library without takeover", cfPMD(websocket.CompressionContextTakeover, 0,
		"permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover",
		cfOfferTakeover, "permessage-deflate; client_no_context_takeover")},
	// Small windows both ways: the library's compressor must keep to 2^9
	// bytes, and the peer keeps to 2^10 (with literals alone).
	{"windows 9 and 10", cfPMD(websocket.CompressionContextTakeover, 10,
		"permessage-deflate; server_max_window_bits=9; client_max_window_bits",
		"permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
		"permessage-deflate; server_max_window_bits=10; client_max_window_bits",
		"permessage-deflate; server_max_window_bits=10; client_max_window_bits=9")},
	{"windows of 8", cfPMD(websocket.CompressionContextTakeover, 8,
		"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
		"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
		"permessage-deflate; server_max_window_bits=8; client_max_window_bits",
		"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8")},
}

// Section 13: compressed messages of every size class, whole and
// fragmented, text and binary, under each agreement. Each message goes
// three times, as text in one frame, as text in three, and as binary, so
// that with context takeover the later ones refer back to the first; a
// message of 1 MiB goes once each way, in three frames, with context
// takeover alone, to keep the section's time modest: the reference
// inflater decodes a bit at a time, and a small window has the library
// code the message mostly as literals.
func cfCompressedCases() []cfCase {
	var cs []cfCase
	for _, set := range cfSettings {
		for _, n := range []int{0, 1, 125, 126, 65536} {
			msg := cfText(n)
			var steps []cfStep
			steps = append(steps, cfEchoDeflated(0x1, msg, 1, 1)...)
			steps = append(steps, cfEchoDeflated(0x1, msg, 3, 1)...)
			steps = append(steps, cfEchoDeflated(0x2, msg, 1, 1)...)
			cs = append(cs, cfCase{
				name:  fmt.Sprintf("%s/%d bytes", set.name, n),
				ext:   set.ext,
				steps: append(steps, cfBye()),
			})
		}
	}
	cs = append(cs, cfCase{
		name:  "takeover/1 MiB in 3 frames",
		limit: 2 << 20,
		ext:   cfSettings[0].ext,
		steps: append(cfEchoDeflated(0x2, cfText(1<<20), 3, 1), cfBye()),
	})
	// Uncompressed messages between compressed ones, with pings inside a
	// compressed message, and the default threshold.
	ext := cfSettings[0].ext
	ext.threshold = 0
	cs = append(cs, cfCase{name: "plain and compressed messages mixed", ext: ext, steps: []cfStep{
		sendFrames(frText("plain")),
		expectFrame(frText("plain")),
		sendDeflated(0x1, cfText(127), 1),
		expectFrame(frText(cfText(127))), // under the default threshold of 128
		sendDeflated(0x1, cfText(128), 1),
		expectDeflated(0x1, cfText(128)),
		sendFrames(frBinary(cfText(300))),
		expectDeflated(0x2, cfText(300)),
		cfBye(),
	}})
	// A message's frames cut anywhere: an empty first frame, a frame per
	// compressed byte, and one frame written a byte at a time.
	long := cfDeflated(cfText(300))
	cs = append(cs,
		cfCase{name: "compressed message with an empty first frame", ext: ext, steps: []cfStep{
			sendFrames(frBuild(false, 0x40, 0x1, ""), frCont(false, long[:10]), frCont(true, long[10:])),
			expectDeflated(0x1, cfText(300)),
			cfBye(),
		}},
		cfCase{name: "compressed message in 1-byte frames", ext: ext,
			steps: append(cfEchoDeflated(0x1, cfText(300), len(long), 0), cfBye())},
		cfCase{name: "compressed message bytewise", ext: ext, steps: []cfStep{
			sendChopped(1, frBuild(true, 0x40, 0x1, long)),
			expectDeflated(0x1, cfText(300)),
			cfBye(),
		}},
	)
	hello := cfDeflated("Hello")
	cs = append(cs, cfCase{name: "close between compressed fragments", ext: ext, steps: []cfStep{
		peerClosesWith(frBuild(false, 0x40, 0x1, hello[:2])+frClose(1000, "")+frCont(true, hello[2:]), websocket.StatusNormalClosure, ""),
	}})
	cs = append(cs, cfCase{name: "ping between compressed fragments", ext: ext, steps: []cfStep{
		sendFrames(frBuild(false, 0x40, 0x1, hello[:2]), frPing("inside"), frCont(true, hello[2:])),
		expectFrame(frPong("inside")),
		expectFrame(frText("Hello")),
		cfBye(),
	}})
	// RFC 7692 §7.2.3.1: "Hello" compressed in one fixed block, as the
	// RFC gives it; and §7.2.3.3, in one stored block.
	cs = append(cs,
		cfEcho("RFC 7692 Hello, fixed block", frText("Hello"), sendFrames("\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00")).withExt(ext),
		cfEcho("RFC 7692 Hello, stored block", frText("Hello"), sendFrames("\xc1\x0b\x00\x05\x00\xfa\xffHello\x00")).withExt(ext),
		cfEcho("RFC 7692 empty message", "\x81\x00", sendFrames("\xc1\x01\x00")).withExt(ext),
		// §7.2.3.4: a final block, ending the DEFLATE stream; §7.2.3.5:
		// two blocks, flushed apart, in one message.
		cfEcho("RFC 7692 Hello, final block", frText("Hello"), sendFrames("\xc1\x08\xf3\x48\xcd\xc9\xc9\x07\x00\x00")).withExt(ext),
		cfEcho("RFC 7692 Hello, two blocks", frText("Hello"),
			sendFrames("\xc1\x0d\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00")).withExt(ext),
		// §7.2.3.2: the second "Hello" refers to the first, with context
		// takeover.
		cfCase{name: "RFC 7692 Hello twice, sharing the window", ext: ext, steps: []cfStep{
			sendFrames("\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00", "\xc1\x05\xf2\x00\x11\x00\x00"),
			expectFrame(frText("Hello")),
			expectFrame(frText("Hello")),
			cfBye(),
		}},
	)
	return cs
}

func (c cfCase) withExt(e cfExt) cfCase {
	c.ext = e
	return c
}

// cfBomb is a compressed message that inflates to mib MiB of zeros,
// from about 1 KiB for each. Compressing the zeros would take seconds
// under the race detector: the stream is one compressed MiB, then a
// second, flushed apart, the second repeated, since it refers to nothing
// but the zeros before it.
func cfBomb(mib int) string {
	one, more := cfBombParts()
	return strings.TrimSuffix(one+strings.Repeat(more, mib-1), cfTail)
}

var cfBombParts = sync.OnceValues(func() (string, string) {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	zeros := make([]byte, 1<<20)
	w.Write(zeros)
	w.Flush()
	first := b.Len()
	w.Write(zeros)
	w.Flush()
	return b.String()[:first], b.String()[first:]
})

// Section 12: negotiation, the exact header each side sends, and a
// message each way under what was agreed.
func cfNegotiationCases() []cfCase {
	const pmd = "permessage-deflate"
	var cs []cfCase
	roundTrip := func(agreed string) []cfStep {
		msg := cfText(300)
		if agreed == "" {
			return []cfStep{sendFrames(frText(msg)), expectFrame(frText(msg)), cfBye()}
		}
		return append(cfEchoDeflated(0x1, msg, 1, 128), cfBye())
	}
	// The library as a server, with mode and bits, answering offer.
	server := func(mode websocket.CompressionMode, bits int, offer, answer string) {
		name := fmt.Sprintf("%v/%d bits/offer %q", mode, bits, offer)
		cs = append(cs, cfCase{name: name, only: cfServer,
			ext:   cfExt{mode: mode, bits: bits, peerOffer: offer, libAnswer: answer},
			steps: roundTrip(answer)})
	}
	takeover := websocket.CompressionContextTakeover
	for _, o := range []struct{ offer, answer string }{
		{pmd, pmd},
		{pmd + "; client_no_context_takeover", pmd + "; client_no_context_takeover"},
		{pmd + "; server_no_context_takeover", pmd + "; server_no_context_takeover"},
		{pmd + "; server_no_context_takeover; client_no_context_takeover", pmd + "; server_no_context_takeover; client_no_context_takeover"},
		// §7.1.2.2: the server may leave client_max_window_bits out, and
		// does when it takes the whole window.
		{pmd + "; client_max_window_bits", pmd},
		{pmd + "; client_max_window_bits=15", pmd},
		{pmd + "; client_max_window_bits=10", pmd + "; client_max_window_bits=10"},
		{pmd + "; client_max_window_bits=8", pmd + "; client_max_window_bits=8"},
		{pmd + `; server_max_window_bits="10"`, pmd + "; server_max_window_bits=10"},
		{"PerMessage-Deflate; Client_No_Context_Takeover", pmd + "; client_no_context_takeover"},
		{pmd + " ; client_no_context_takeover ; server_max_window_bits = 12", pmd + "; client_no_context_takeover; server_max_window_bits=12"},
		// §5.1: offers in order of preference; the first that can be
		// honoured wins, and the unknown extensions are passed over.
		{pmd + "; server_max_window_bits=7, " + pmd + "; client_no_context_takeover", pmd + "; client_no_context_takeover"},
		{pmd + "; x-unknown, " + pmd, pmd},
		{"x-webkit-deflate-frame, " + pmd + "; server_no_context_takeover", pmd + "; server_no_context_takeover"},
		// §5.1: an offer with an unknown parameter, a repeated one or a
		// value out of range is declined.
		{pmd + "; x-unknown", ""},
		{pmd + "; x-unknown=1", ""},
		{pmd + "; client_no_context_takeover; client_no_context_takeover", ""},
		{pmd + "; server_max_window_bits=10; server_max_window_bits=10", ""},
		{pmd + "; client_max_window_bits; client_max_window_bits=10", ""},
		{pmd + "; server_max_window_bits", ""},
		{pmd + "; server_max_window_bits=16", ""},
		{pmd + "; server_max_window_bits=7", ""},
		{pmd + "; server_max_window_bits=0", ""},
		{pmd + "; server_max_window_bits=08", ""},
		{pmd + "; server_max_window_bits=1a", ""},
		{pmd + "; client_max_window_bits=16", ""},
		{pmd + "; client_max_window_bits=7", ""},
		{pmd + "; client_no_context_takeover=1", ""},
		{pmd + "; server_no_context_takeover=true", ""},
		{"x-webkit-deflate-frame", ""},
		{pmd + "; =", ""},
	} {
		server(takeover, 0, o.offer, o.answer)
	}
	for b := 8; b <= 15; b++ {
		v := strconv.Itoa(b)
		server(takeover, 0, pmd+"; server_max_window_bits="+v, pmd+"; server_max_window_bits="+v)
	}
	// The library's own window bounds both: it names its own unasked
	// (§7.1.2.1), and the client's where the offer allows (§7.1.2.2), 9
	// bits at least unless the client named 8.
	server(takeover, 10, pmd, pmd+"; server_max_window_bits=10")
	server(takeover, 10, pmd+"; client_max_window_bits", pmd+"; server_max_window_bits=10; client_max_window_bits=10")
	server(takeover, 10, pmd+"; server_max_window_bits=12; client_max_window_bits=9", pmd+"; server_max_window_bits=10; client_max_window_bits=9")
	server(takeover, 8, pmd+"; client_max_window_bits", pmd+"; server_max_window_bits=8; client_max_window_bits=9")
	server(takeover, 8, pmd+"; client_max_window_bits=8", pmd+"; server_max_window_bits=8; client_max_window_bits=8")
	noTakeover := websocket.CompressionNoContextTakeover
	server(noTakeover, 0, pmd, pmd+"; server_no_context_takeover; client_no_context_takeover")
	server(noTakeover, 0, pmd+"; client_no_context_takeover", pmd+"; server_no_context_takeover; client_no_context_takeover")
	server(websocket.CompressionDisabled, 0, pmd, "")
	server(takeover, 0, "", "")

	// The library as a client, with mode and bits, getting answer.
	client := func(mode websocket.CompressionMode, bits int, answer, dialErr string) {
		offer := map[websocket.CompressionMode]string{
			websocket.CompressionDisabled:          "",
			websocket.CompressionNoContextTakeover: cfOfferNoTakeover,
			websocket.CompressionContextTakeover:   cfOfferTakeover,
		}[mode]
		if bits != 0 {
			offer = strings.Replace(offer, "; client_max_window_bits", "; server_max_window_bits="+strconv.Itoa(bits)+"; client_max_window_bits", 1)
		}
		name := fmt.Sprintf("%v/%d bits/answer %q", mode, bits, answer)
		c := cfCase{name: name, only: cfClient,
			ext: cfExt{mode: mode, bits: bits, libOffer: offer, peerAnswer: answer, dialErr: dialErr}}
		if dialErr == "" {
			c.steps = roundTrip(answer)
		}
		cs = append(cs, c)
	}
	for _, a := range []string{
		"",
		pmd,
		pmd + "; server_no_context_takeover",
		pmd + "; client_no_context_takeover",
		pmd + "; server_no_context_takeover; client_no_context_takeover",
		pmd + "; client_max_window_bits=8",
		pmd + "; client_max_window_bits=11",
		pmd + "; client_max_window_bits=15",
		pmd + `; client_max_window_bits="9"`,
		"Permessage-Deflate; Server_No_Context_Takeover",
	} {
		client(takeover, 0, a, "")
	}
	// §7.1.2.1: a server may name its window unasked.
	for b := 8; b <= 15; b++ {
		client(takeover, 0, pmd+"; server_max_window_bits="+strconv.Itoa(b), "")
	}
	client(takeover, 10, pmd+"; server_max_window_bits=10", "")
	client(takeover, 10, pmd+"; server_max_window_bits=8; client_max_window_bits=9", "")
	client(noTakeover, 0, pmd+"; server_no_context_takeover; client_no_context_takeover", "")
	client(noTakeover, 10, pmd+"; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9", "")
	client(noTakeover, 0, "", "")
	client(websocket.CompressionDisabled, 0, "", "")
	// Answers the library must refuse, failing the handshake.
	for _, a := range []struct{ answer, err string }{
		// §7.1.2.2: a value is required in a response.
		{pmd + "; client_max_window_bits", "client_max_window_bits without a value"},
		{pmd + "; x-unknown", "unknown parameter"},
		{pmd + "; server_no_context_takeover; server_no_context_takeover", "repeated"},
		{pmd + "; server_max_window_bits=16", "not in 8..15"},
		{pmd + "; server_max_window_bits=7", "not in 8..15"},
		{pmd + "; client_max_window_bits=16", "not in 8..15"},
		{pmd + "; server_max_window_bits=08", "not a window size"},
		{pmd + "; client_no_context_takeover=1", "takes no value"},
		{"x-webkit-deflate-frame", "which was not offered"},
		{pmd + ", " + pmd, "accepted 2 extensions"},
		{pmd + "; =", "parameter name expected"},
	} {
		client(takeover, 0, a.answer, a.err)
	}
	// §7.1.1.1, §7.1.2.1: what was offered as a requirement must be in
	// the answer.
	client(noTakeover, 0, pmd, "lacks server_no_context_takeover")
	client(noTakeover, 0, pmd+"; client_no_context_takeover", "lacks server_no_context_takeover")
	client(takeover, 10, pmd, "lacks server_max_window_bits")
	client(takeover, 10, pmd+"; server_max_window_bits=11", "above the 10 offered")
	// §9.1 of RFC 6455: nothing may be accepted that was not offered.
	client(websocket.CompressionDisabled, 0, pmd, "which was not offered")
	return cs
}

// Failures of compressed input, with exact close codes.
func cfCompressionFailureCases() []cfCase {
	// Context takeover both ways, and the default threshold: echoes
	// under 128 bytes come back plain.
	ext := cfSettings[0].ext
	ext.threshold = 0
	hello := cfDeflated("Hello")
	fail := func(name string, code websocket.StatusCode, steps ...cfStep) cfCase {
		return cfFails(name, code, steps...).withExt(ext)
	}
	// Random bytes twice over: compress/flate codes the second copy as a
	// back-reference 600 bytes long.
	random := string(flatetest.Random(flatetest.RNG(600), 600))
	far := cfDeflated(random + random)
	if z := (&flatetest.Inflater{Window: 1 << 15}); func() bool { _, err := z.Message([]byte(far + cfTail)); return err != nil || z.MaxDist != 600 }() {
		panic("compress/flate did not refer 600 bytes back")
	}
	// Nine-bit windows for the peer, whatever the role.
	small := cfExt{mode: websocket.CompressionContextTakeover, bits: 9,
		peerOffer:  "permessage-deflate; client_max_window_bits",
		libAnswer:  "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
		libOffer:   "permessage-deflate; server_max_window_bits=9; client_max_window_bits",
		peerAnswer: "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"}
	peerNoTakeover := cfSettings[2].ext
	peerNoTakeover.threshold = 0
	// "Hello, world" compressed as if the stream already held it: it
	// refers to bytes the library never saw, unless it kept them from
	// the message before.
	var dictBuf bytes.Buffer
	dw, _ := flate.NewWriterDict(&dictBuf, flate.DefaultCompression, []byte("Hello, world"))
	dw.Write([]byte("Hello, world"))
	dw.Flush()
	beforeStart := strings.TrimSuffix(dictBuf.String(), cfTail)
	if _, err := (&flatetest.Inflater{Window: 1 << 15}).Message(dictBuf.Bytes()); err == nil {
		panic("compress/flate did not refer into its dictionary")
	}
	bomb := cfBomb(1)
	cs := []cfCase{
		// RFC 7692 §6.1: RSV1 on the first frame of a message alone.
		fail("RSV1 on a continuation", websocket.StatusProtocolError,
			sendFrames(frBuild(false, 0x40, 0x1, hello[:3]), frBuild(true, 0x40, 0x0, hello[3:]))),
		fail("RSV1 on a continuation of a plain message", websocket.StatusProtocolError,
			sendFrames(frFirst(0x1, "Hel"), frBuild(true, 0x40, 0x0, "lo"))),
		fail("RSV1 on a ping", websocket.StatusProtocolError, sendFrames(frBuild(true, 0x40, 0x9, "ping"))),
		fail("RSV1 on a pong", websocket.StatusProtocolError, sendFrames(frBuild(true, 0x40, 0xA, "pong"))),
		fail("RSV1 on a close", websocket.StatusProtocolError, sendFrames(frBuild(true, 0x40, 0x8, "\x03\xe8"))),
		fail("RSV2 on a compressed message", websocket.StatusProtocolError, sendFrames(frBuild(true, 0x60, 0x1, hello))),
		// Corrupt DEFLATE data: the library's docs give 1007.
		fail("reserved block type", websocket.StatusInvalidFramePayloadData, sendFrames(frBuild(true, 0x40, 0x1, "\x06\x00\x00"))),
		fail("stored block length not matching its complement", websocket.StatusInvalidFramePayloadData,
			sendFrames(frBuild(true, 0x40, 0x1, "\x00\x05\x00\x00\x00Hello"))),
		fail("message cut inside a block", websocket.StatusInvalidFramePayloadData,
			sendFrames(frBuild(true, 0x40, 0x2, cfDeflated(cfText(1000))[:40]))),
		fail("back-reference before the start of the stream", websocket.StatusInvalidFramePayloadData,
			sendFrames(frBuild(true, 0x40, 0x1, beforeStart))),
		fail("corrupt data after an echoed message", websocket.StatusInvalidFramePayloadData,
			sendDeflated(0x1, "Hello, world", 1),
			expectFrame(frText("Hello, world")),
			sendFrames(frBuild(true, 0x40, 0x1, "\x06"))),
		// Text whose inflated bytes are not UTF-8.
		fail("compressed text inflating to a surrogate", websocket.StatusInvalidFramePayloadData,
			sendFrames(frBuild(true, 0x40, 0x1, cfDeflated("\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80edited")))),
		fail("compressed text ending inside a character", websocket.StatusInvalidFramePayloadData,
			sendFrames(frBuild(true, 0x40, 0x1, cfDeflated("Hello\xce")))),
		fail("compressed fragments inflating to invalid UTF-8", websocket.StatusInvalidFramePayloadData,
			sendFrames(frBuild(false, 0x40, 0x1, cfDeflated(cfText(200)+"\xff")), frCont(true, ""))),
		cfEcho("compressed binary is not checked", frBinary("\xff\xfe\xed\xa0\x80"),
			sendFrames(frBuild(true, 0x40, 0x2, cfDeflated("\xff\xfe\xed\xa0\x80")))).withExt(ext),
		// The read limit applies to the inflated size.
		{name: "compressed message inflating to the read limit", limit: 1000, ext: ext, steps: []cfStep{
			sendFrames(frBuild(true, 0x40, 0x2, cfDeflated(string(make([]byte, 1000))))),
			expectDeflated(0x2, string(make([]byte, 1000))),
			cfBye(),
		}},
		{name: "compressed message inflating one byte past the read limit", limit: 999, ext: ext, steps: []cfStep{
			sendFrames(frBuild(true, 0x40, 0x2, cfDeflated(string(make([]byte, 1000))))),
			libFails(websocket.StatusMessageTooBig),
		}},
		// The compressed bytes are bounded too (package documentation,
		// Limits): at 1000 + 1000/256 + 1024 = 2027 bytes under a limit of
		// 1000, a frame counting for its length less 31. Empty stored
		// blocks take room and inflate to nothing.
		{name: "compressed bytes within their bound", limit: 1000, ext: ext, steps: []cfStep{
			sendFrames(frBuild(true, 0x40, 0x2, strings.Repeat("\x00"+cfTail, 411))), // 2055 bytes, counting 2024
			expectFrame(frBinary("")),
			cfBye(),
		}},
		{name: "compressed frame past the bound, header only", limit: 1000, ext: ext, steps: []cfStep{
			sendFrames(frHead(0xC2, 0, 2059)), // counting 2028
			libFails(websocket.StatusMessageTooBig),
		}},
		{name: "compressed fragments past the bound", limit: 1000, ext: ext, steps: []cfStep{
			sendFrames(frBuild(false, 0x40, 0x2, strings.Repeat("\x00"+cfTail, 300)), frHead(0x80, 0, 600)), // 1469 + 569
			libFails(websocket.StatusMessageTooBig),
		}},
		{name: "compressed bomb over the read limit", limit: 1000, ext: ext, steps: []cfStep{
			sendFrames(frBuild(true, 0x40, 0x2, bomb)),
			libFails(websocket.StatusMessageTooBig),
		}},
		// Only the first fragment is sent: the library must fail as the
		// output crosses the limit, not buffer the message first.
		{name: "compressed bomb over the read limit, rest held back", limit: 1000, ext: ext, steps: []cfStep{
			sendFrames(frBuild(false, 0x40, 0x2, bomb[:len(bomb)/4])),
			libFails(websocket.StatusMessageTooBig),
		}},
		{name: "compressed bomb in one frame, a quarter of it sent", limit: 1000, ext: ext, steps: []cfStep{
			sendPiece(frBuild(true, 0x40, 0x2, bomb), 0, len(bomb)/4),
			libFails(websocket.StatusMessageTooBig),
		}},
		// RFC 7692 §7.1.2.2, §8.2.2: the peer's window is what the library
		// set; a reference past it is corrupt data.
		cfFails("back-reference past the peer's 9-bit window", websocket.StatusInvalidFramePayloadData,
			sendFrames(frBuild(true, 0x40, 0x2, far))).withExt(small),
		{name: "back-reference within the 15-bit window", ext: ext, steps: []cfStep{
			sendFrames(frBuild(true, 0x40, 0x2, far)),
			expectDeflated(0x2, random+random),
			cfBye(),
		}},
		// §7.1.1.2: a peer that agreed not to keep its context cannot refer
		// to an earlier message.
		cfFails("back-reference into the previous message without takeover", websocket.StatusInvalidFramePayloadData,
			sendFrames(frBuild(true, 0x40, 0x1, cfDeflated("Hello, world"))),
			expectFrame(frText("Hello, world")),
			sendFrames(frBuild(true, 0x40, 0x1, beforeStart))).withExt(peerNoTakeover),
		cfCase{name: "back-reference into the previous message with takeover", ext: ext, steps: []cfStep{
			sendFrames(frBuild(true, 0x40, 0x1, cfDeflated("Hello, world"))),
			expectFrame(frText("Hello, world")),
			sendFrames(frBuild(true, 0x40, 0x1, beforeStart)),
			expectFrame(frText("Hello, world")),
			cfBye(),
		}},
	}
	// RSV1 where compression was not agreed: the library asked for it,
	// the peer did not take it up.
	declined := cfExt{mode: websocket.CompressionContextTakeover, libOffer: cfOfferTakeover}
	cs = append(cs,
		cfFails("RSV1 when the peer did not take compression up", websocket.StatusProtocolError,
			sendFrames(frBuild(true, 0x40, 0x1, hello))).withExt(declined),
		cfFails("RSV1 after an echoed message, compression not agreed", websocket.StatusProtocolError,
			sendFrames(frText("Hello")),
			expectFrame(frText("Hello")),
			sendFrames(frBuild(true, 0x40, 0x1, hello))).withExt(declined),
	)
	return cs
}

// TestConformanceCompressionBomb sends, in each role, a message that
// inflates to 32 MiB from some 32 KiB, to a library whose read limit is
// 256 KiB, and checks that it fails with 1009 having allocated no more
// than the limit and what a connection costs, far from the inflated size.
// It runs alone, not in parallel, so that the process's allocations are
// the case's; over HTTP/1.1 alone, since how the message is carried
// changes nothing in how it is inflated.
func TestConformanceCompressionBomb(t *testing.T) {
	const limit = 256 << 10
	const slack = 1 << 20 // handshakes, buffers, the peer's own
	bomb := frBuild(true, 0x40, 0x2, cfBomb(32))
	ext := cfSettings[0].ext
	for _, role := range []cfRole{cfServer, cfClient} {
		t.Run(role.String(), func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			runConformanceCase(t, cfHTTP1, role, cfCase{limit: limit, ext: ext, steps: []cfStep{
				sendFrames(bomb),
				libFails(websocket.StatusMessageTooBig),
			}})
			runtime.ReadMemStats(&after)
			got := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes allocated for a message of %d compressed bytes", got, len(bomb))
			if got > limit+slack {
				t.Errorf("%d bytes allocated, want at most the limit of %d and %d more", got, limit, slack)
			}
		})
	}
}
