package conformance_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rfc6455/websocket"
)

// This file is the raw peer of the conformance suite: a hand-driven
// endpoint that writes exact bytes and checks exact bytes, close codes and
// the ends of connections, and the small script language its cases are
// written in. The cases and the runner are in conformance_test.go, the two
// roles' setup in server_test.go and client_test.go, the transports in
// transport_test.go and the peer's HTTP/2 in h2peer_test.go. The peer
// shares no code with the library: it frames, masks and handshakes on its
// own, so that a bug in the library's codec cannot hide itself.
//
// Frames are written in the tables in their unmasked wire form, as Go
// strings ("\x81\x05Hello"). When the peer plays the client it masks them
// on the way out; when it plays the server it unmasks what it receives, so
// one script serves both roles.

// cfWait bounds every wait of the raw peer and of the harness.
const cfWait = 10 * time.Second

// cfLibCloseTimeout is the library's close timeout, longer than the peer
// waits, so that a library that ends the connection only when its close
// timeout runs out fails the checks of its end instead of passing them
// late.
const cfLibCloseTimeout = 2 * cfWait

// cfRole names the role the library plays in a run.
type cfRole int

const (
	cfBoth   cfRole = iota // in tables: the case runs for both roles
	cfServer               // the library is the server, the peer a client
	cfClient               // the library is the client, the peer a server
)

func (r cfRole) String() string {
	switch r {
	case cfServer:
		return "server"
	case cfClient:
		return "client"
	}
	return "both"
}

// Frame builders. Each returns the unmasked wire form of one frame, the
// length encoded minimally.

// frHead is the header of a frame whose first byte is b0 and whose payload
// is n bytes, without mask. form 0 encodes n minimally; 126 and 127 force
// the 16- and 64-bit forms, whatever n is.
func frHead(b0, form byte, n uint64) string {
	if form == 0 {
		switch {
		case n <= 125:
			return string([]byte{b0, byte(n)})
		case n <= 0xFFFF:
			form = 126
		default:
			form = 127
		}
	}
	b := []byte{b0, form}
	if form == 126 {
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	} else {
		b = binary.BigEndian.AppendUint64(b, n)
	}
	return string(b)
}

// frBuild is a frame with the given FIN bit, RSV bits (in their wire
// positions 0x40, 0x20, 0x10), opcode and payload.
func frBuild(fin bool, rsv, op byte, payload string) string {
	b0 := rsv | op
	if fin {
		b0 |= 0x80
	}
	return frHead(b0, 0, uint64(len(payload))) + payload
}

func frText(p string) string   { return frBuild(true, 0, 0x1, p) }
func frBinary(p string) string { return frBuild(true, 0, 0x2, p) }
func frPing(p string) string   { return frBuild(true, 0, 0x9, p) }
func frPong(p string) string   { return frBuild(true, 0, 0xA, p) }

// frFirst is the first frame of a fragmented message of opcode op.
func frFirst(op byte, p string) string { return frBuild(false, 0, op, p) }

// frCont is a continuation frame.
func frCont(fin bool, p string) string { return frBuild(fin, 0, 0x0, p) }

// frClose is a close frame with a status code and reason.
func frClose(code uint16, reason string) string {
	return frBuild(true, 0, 0x8, string(binary.BigEndian.AppendUint16(nil, code))+reason)
}

// frCloseEmpty is a close frame without a payload.
const frCloseEmpty = "\x88\x00"

// cfHeaderLen returns the length of the unmasked header at the start of s
// (2, 4 or 10), or 0 if s is too short to tell.
func cfHeaderLen(s string) int {
	if len(s) < 2 {
		return 0
	}
	switch s[1] & 0x7F {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// cfDeclaredLen returns the payload length the header at the start of s
// declares; s holds at least cfHeaderLen(s) bytes.
func cfDeclaredLen(s string) uint64 {
	switch s[1] & 0x7F {
	case 126:
		return uint64(binary.BigEndian.Uint16([]byte(s[2:4])))
	case 127:
		return binary.BigEndian.Uint64([]byte(s[2:10]))
	}
	return uint64(s[1] & 0x7F)
}

// cfMask masks (or unmasks) b in place, its first byte at key position 0.
func cfMask(key [4]byte, b []byte) {
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// cfMaskFrames returns frames, a run of unmasked frames whose last may be
// cut short, with every frame masked: the mask bit set, a key from next
// inserted after the length, and the payload masked.
func cfMaskFrames(frames string, next func() [4]byte) []byte {
	var out []byte
	for s := frames; len(s) > 0; {
		hl := cfHeaderLen(s)
		if hl == 0 || len(s) < hl {
			return append(out, s...) // a header cut short: nothing to mask
		}
		body := s[hl:]
		if n := cfDeclaredLen(s); uint64(len(body)) > n {
			body = body[:n]
		}
		key := next()
		out = append(out, s[0], s[1]|0x80)
		out = append(out, s[2:hl]...)
		out = append(out, key[:]...)
		start := len(out)
		out = append(out, body...)
		cfMask(key, out[start:])
		s = s[hl+len(body):]
	}
	return out
}

// cfRFCKey is the masking key of the examples of RFC 6455 §5.7.
var cfRFCKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// cfDescribe summarises a run of unmasked frames for error messages.
func cfDescribe(frames string) string {
	var parts []string
	for s := frames; len(s) > 0; {
		hl := cfHeaderLen(s)
		if hl == 0 || len(s) < hl {
			parts = append(parts, fmt.Sprintf("partial header %q", s))
			break
		}
		n := cfDeclaredLen(s)
		body := s[hl:]
		if uint64(len(body)) > n {
			body = body[:n]
		}
		b0 := s[0]
		var flags string
		if b0&0x80 != 0 {
			flags = "FIN "
		}
		if b0&0x70 != 0 {
			flags += fmt.Sprintf("RSV=%#x ", b0&0x70)
		}
		d := fmt.Sprintf("%sop=%#x len=%d", flags, b0&0x0F, n)
		if hl == 4 && n < 126 || hl == 10 && n <= 0xFFFF {
			d += fmt.Sprintf(" (in %d-byte header)", hl)
		}
		if uint64(len(body)) < n {
			d += fmt.Sprintf(" (%d present)", len(body))
		}
		if len(body) <= 24 {
			d += fmt.Sprintf(" %q", body)
		} else {
			d += fmt.Sprintf(" %q...", body[:24])
		}
		parts = append(parts, d)
		s = s[hl+len(body):]
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// cfFirstDiff describes where got and want part, for long payloads.
func cfFirstDiff(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("first difference at byte %d of %d (want %d)", i, len(got), len(want))
}

// cfPeer is the raw end of a connection to the library.
type cfPeer struct {
	conn   cfConn        // a TCP connection, or an HTTP/2 stream
	br     *bufio.Reader // reads conn; it may hold bytes past the handshake
	client bool          // the peer plays the client: it masks what it sends
	keys   int           // frames masked so far, to vary the key
	// extensions is the library's Sec-WebSocket-Extensions: its offer as
	// a client, its answer as a server, one element a line.
	extensions []string
	pmd        *cfDeflate // the compression agreed, if any
}

// nextKey returns a different key for each frame, the first the RFC's.
func (p *cfPeer) nextKey() [4]byte {
	k := cfRFCKey
	for i := range k {
		k[i] ^= byte(p.keys * (29 + 14*i))
	}
	p.keys++
	return k
}

// outgoing is frames as the peer sends them: masked if it plays the client,
// or, with mismask, masked exactly when it should not be.
func (p *cfPeer) outgoing(frames string, mismask bool) []byte {
	if p.client != mismask {
		return cfMaskFrames(frames, p.nextKey)
	}
	return []byte(frames)
}

// Write modes besides whole (0) and n-byte chops (n > 0).
const (
	// cfHalving makes write send half of what is left, then half of the
	// rest, and so on: the writing side of iotest.HalfReader.
	cfHalving = -1
	// cfDribble writes one byte at a time, except that past the first
	// cfDribbleEdge bytes it writes in pieces of 1021 bytes until the last
	// cfDribbleEdge. Tens of thousands of 1-byte segments would fill the
	// receiver's socket buffer (each costs a whole packet of it) whenever
	// the library's reader falls behind, and stall TCP for seconds.
	cfDribble     = -2
	cfDribbleEdge = 512 + 14
)

// write sends b whole (chop 0), chop bytes at a time, halving or dribbling.
func (p *cfPeer) write(b []byte, chop int) error {
	p.conn.SetWriteDeadline(time.Now().Add(cfWait))
	for off := 0; off < len(b); {
		n := len(b) - off
		switch {
		case chop == cfHalving:
			n = (n + 1) / 2
		case chop == cfDribble && off >= cfDribbleEdge && n > cfDribbleEdge:
			n = min(1021, n-cfDribbleEdge)
		case chop == cfDribble:
			n = 1
		case chop > 0:
			n = min(chop, n)
		}
		if _, err := p.conn.Write(b[off : off+n]); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// readFull reads len(b) bytes within cfWait.
func (p *cfPeer) readFull(b []byte) error {
	p.conn.SetReadDeadline(time.Now().Add(cfWait))
	_, err := io.ReadFull(p.br, b)
	if err == io.EOF {
		err = errors.New("the library ended the connection (EOF)")
	}
	return err
}

// readFrame reads one frame and returns it in unmasked wire form, as it was
// encoded (a non-minimal length stays so), and whether it came masked.
func (p *cfPeer) readFrame() (string, bool, error) {
	h := make([]byte, 2, 10)
	if err := p.readFull(h); err != nil {
		return "", false, err
	}
	masked := h[1]&0x80 != 0
	h[1] &^= 0x80
	h = h[:cfHeaderLen(string(h))]
	if err := p.readFull(h[2:]); err != nil {
		return "", false, err
	}
	n := cfDeclaredLen(string(h))
	if n > 16<<20 {
		return "", masked, fmt.Errorf("frame header %q declares %d bytes", h, n)
	}
	var key [4]byte
	if masked {
		if err := p.readFull(key[:]); err != nil {
			return "", masked, err
		}
	}
	payload := make([]byte, n)
	if err := p.readFull(payload); err != nil {
		return "", masked, err
	}
	if masked {
		cfMask(key, payload)
	}
	return string(h) + string(payload), masked, nil
}

// readLibFrame reads a frame the library sent and checks its masking: a
// client masks every frame, a server none.
func (p *cfPeer) readLibFrame() (string, error) {
	f, masked, err := p.readFrame()
	if err != nil {
		return "", err
	}
	if masked == p.client {
		return "", fmt.Errorf("got %s with mask bit %v; a %v must set it %v",
			cfDescribe(f), masked, p.libRole(), !p.client)
	}
	return f, nil
}

func (p *cfPeer) libRole() cfRole {
	if p.client {
		return cfServer
	}
	return cfClient
}

// expectEOF reads the end of the stream: the library closed TCP, or
// half-closed it, and sent nothing more. Over HTTP/2 the end is the
// library's END_STREAM (RFC 8441 §5: "Orderly TCP-level closures are
// represented as END_STREAM flags"); an RST_STREAM in its place, the form
// of a TCP reset, fails the check, as would a reset TCP connection.
func (p *cfPeer) expectEOF() error {
	p.conn.SetReadDeadline(time.Now().Add(cfWait))
	b, err := p.br.ReadByte()
	switch {
	case err == nil:
		more := make([]byte, p.br.Buffered())
		p.br.Read(more)
		return fmt.Errorf("got %q where the end of the stream was due", append([]byte{b}, more...))
	case err == io.EOF:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("the library did not end the connection within %v", cfWait)
	}
	return fmt.Errorf("want the end of the stream, got %w", err)
}

// teardown ends the script after the close frames are exchanged. RFC 6455
// §7.1.1: the server closes TCP first. Playing the client, the peer
// expects the library (the server) to close or half-close; playing the
// server, the peer half-closes and expects the library (the client) to
// close in turn. Over HTTP/2 each end of the stream is END_STREAM: the
// server's first, then the client's.
func (p *cfPeer) teardown() error {
	if !p.client {
		if err := p.conn.CloseWrite(); err != nil {
			return fmt.Errorf("half-closing: %w", err)
		}
	}
	return p.expectEOF()
}

// cfLibEnd is how the library's read loop must end.
type cfLibEnd struct {
	code   websocket.StatusCode
	failed bool   // the library failed the connection: a *websocket.ProtocolError
	reason string // the peer's close reason, when !failed
}

// cfStep is one step of a script.
type cfStep struct {
	what string
	do   func(p *cfPeer) error
	end  *cfLibEnd // set by the steps that end a connection
}

// sendFrames writes frames in one write.
func sendFrames(frames ...string) cfStep {
	return sendChopped(0, frames...)
}

// sendChopped writes frames chop bytes at a time (cfHalving: in halves).
func sendChopped(chop int, frames ...string) cfStep {
	all := strings.Join(frames, "")
	what := "send " + cfDescribe(all)
	switch {
	case chop == cfHalving:
		what += " in halves"
	case chop == cfDribble:
		what += " dribbled"
	case chop > 0:
		what += fmt.Sprintf(" in %d-byte chops", chop)
	}
	return cfStep{what: what, do: func(p *cfPeer) error {
		return p.write(p.outgoing(all, false), chop)
	}}
}

// sendMismasked writes frames masked the wrong way for the peer's role:
// unmasked from a client, masked from a server.
func sendMismasked(frames ...string) cfStep {
	all := strings.Join(frames, "")
	return cfStep{what: "send mis-masked " + cfDescribe(all), do: func(p *cfPeer) error {
		return p.write(p.outgoing(all, true), 0)
	}}
}

// sendPiece writes payload bytes [from, to) of frame, preceded by its
// header when from is 0, so that a frame can arrive in pieces with steps in
// between. Every piece of a frame is masked with the same key.
func sendPiece(frame string, from, to int) cfStep {
	hl := cfHeaderLen(frame)
	what := fmt.Sprintf("send payload bytes [%d,%d) of %s", from, to, cfDescribe(frame))
	return cfStep{what: what, do: func(p *cfPeer) error {
		wire, n := []byte(frame), hl
		if p.client {
			wire = cfMaskFrames(frame, func() [4]byte { return cfRFCKey })
			n += 4
		}
		start := n + from
		if from == 0 {
			start = 0
		}
		return p.write(wire[start:n+to], 0)
	}}
}

// sendBytes writes b as it is, whatever role the peer plays.
func sendBytes(b string) cfStep {
	return cfStep{what: fmt.Sprintf("send raw %q", b), do: func(p *cfPeer) error {
		return p.write([]byte(b), 0)
	}}
}

// expectFrame reads one frame and checks it is want, unmasked.
func expectFrame(want string) cfStep {
	return cfStep{what: "expect " + cfDescribe(want), do: func(p *cfPeer) error {
		got, err := p.readLibFrame()
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("got %s, want %s; %s", cfDescribe(got), cfDescribe(want), cfFirstDiff(got, want))
		}
		return nil
	}}
}

// expectBytes reads len(want) bytes and checks they are want exactly.
func expectBytes(want string) cfStep {
	return cfStep{what: fmt.Sprintf("expect raw %q", want), do: func(p *cfPeer) error {
		got := make([]byte, len(want))
		if err := p.readFull(got); err != nil {
			return err
		}
		if string(got) != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	}}
}

// expectClose reads one frame and checks it is a close frame with code
// (StatusNoStatusRcvd: with no payload), and a reason of at most 123 bytes
// of UTF-8.
func expectClose(code websocket.StatusCode) cfStep {
	return cfStep{what: fmt.Sprintf("expect close %d", code), do: func(p *cfPeer) error {
		f, err := p.readLibFrame()
		if err != nil {
			return err
		}
		return cfCheckClose(f, code)
	}}
}

func cfCheckClose(f string, code websocket.StatusCode) error {
	if f[0] != 0x88 {
		return fmt.Errorf("got %s, want a close frame with code %d", cfDescribe(f), code)
	}
	payload := f[cfHeaderLen(f):]
	if code == websocket.StatusNoStatusRcvd {
		if payload != "" {
			return fmt.Errorf("got close payload %q, want none", payload)
		}
		return nil
	}
	if len(payload) < 2 {
		return fmt.Errorf("got close payload %q, want code %d", payload, code)
	}
	if got := websocket.StatusCode(binary.BigEndian.Uint16([]byte(payload))); got != code {
		return fmt.Errorf("got close code %d (reason %q), want %d", got, payload[2:], code)
	}
	if reason := payload[2:]; len(reason) > 123 || !utf8.ValidString(reason) {
		return fmt.Errorf("close reason %q is not UTF-8 of at most 123 bytes", reason)
	}
	return nil
}

// expectSilence checks that the library sends nothing, and keeps the
// connection open, for d. It cannot fail because the machine is slow.
func expectSilence(d time.Duration) cfStep {
	return cfStep{what: fmt.Sprintf("expect silence for %v", d), do: func(p *cfPeer) error {
		p.conn.SetReadDeadline(time.Now().Add(d))
		b, err := p.br.ReadByte()
		switch {
		case err == nil:
			return fmt.Errorf("got byte %#x", b)
		case err == io.EOF:
			return errors.New("the library ended the connection")
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return err
		}
		return nil
	}}
}

// pause sleeps for d between steps.
func pause(d time.Duration) cfStep {
	return cfStep{what: fmt.Sprintf("pause %v", d), do: func(*cfPeer) error {
		time.Sleep(d)
		return nil
	}}
}

// peerCloses sends a close frame with code and reason, expects the library
// to answer with code, and tears the connection down; the library's read
// must return websocket.CloseError{code, reason}.
func peerCloses(code websocket.StatusCode, reason string) cfStep {
	return peerClosesWith(frClose(uint16(code), reason), code, reason)
}

// peerClosesEmpty does as peerCloses with a close frame without payload,
// which the library must answer in kind.
func peerClosesEmpty() cfStep {
	return peerClosesWith(frCloseEmpty, websocket.StatusNoStatusRcvd, "")
}

// peerClosesWith sends the frames of close (ending with a close frame),
// expects a close frame with code in reply, then the teardown.
func peerClosesWith(close string, code websocket.StatusCode, reason string) cfStep {
	return cfStep{
		what: fmt.Sprintf("close handshake: send %s, expect close %d, teardown", cfDescribe(close), code),
		do: func(p *cfPeer) error {
			if err := p.write(p.outgoing(close, false), 0); err != nil {
				return fmt.Errorf("sending close: %w", err)
			}
			f, err := p.readLibFrame()
			if err != nil {
				return fmt.Errorf("awaiting the close reply: %w", err)
			}
			if err := cfCheckClose(f, code); err != nil {
				return err
			}
			if err := p.teardown(); err != nil {
				return fmt.Errorf("teardown: %w", err)
			}
			return nil
		},
		end: &cfLibEnd{code: code, reason: reason},
	}
}

// libFails expects the library to fail the connection: a close frame with
// code, then the teardown; its read must return a *websocket.ProtocolError
// with code.
func libFails(code websocket.StatusCode) cfStep {
	return cfStep{
		what: fmt.Sprintf("library fails: expect close %d, teardown", code),
		do: func(p *cfPeer) error {
			f, err := p.readLibFrame()
			if err != nil {
				return fmt.Errorf("awaiting close %d: %w", code, err)
			}
			if err := cfCheckClose(f, code); err != nil {
				return err
			}
			if err := p.teardown(); err != nil {
				return fmt.Errorf("teardown: %w", err)
			}
			return nil
		},
		end: &cfLibEnd{code: code, failed: true},
	}
}

// teardownStep is the teardown alone, for scripts that exchanged the
// close frames step by step; end is how the library's read must end.
func teardownStep(end cfLibEnd) cfStep {
	return cfStep{what: "teardown", do: (*cfPeer).teardown, end: &end}
}
