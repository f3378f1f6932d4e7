package conformance_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/rfc6455/websocket/internal/hpack"
)

// This file is the raw peer's HTTP/2 (RFC 9113): just enough of it, by
// hand, to carry one WebSocket stream (RFC 8441) as either end, with flow
// control both ways, so that the scripts can run over an HTTP/2 stream as
// they do over TCP. It writes its own frames and reads the library's one
// by one, so that it sees exactly how the library ends its stream:
// END_STREAM, the orderly end that stands for a TCP close (RFC 8441 §5),
// or RST_STREAM, which stands for a TCP reset. It decodes header blocks
// with internal/hpack: headers are the handshake's business, not the
// WebSocket framing's, which is what the suite checks.

// HTTP/2 frame types, flags and settings used by the peer (RFC 9113 §6).
const (
	h2Data         = 0x0
	h2Headers      = 0x1
	h2RSTStream    = 0x3
	h2Settings     = 0x4
	h2Ping         = 0x6
	h2GoAway       = 0x7
	h2WindowUpdate = 0x8
	h2Continuation = 0x9

	h2FlagEndStream  = 0x1 // DATA, HEADERS
	h2FlagAck        = 0x1 // SETTINGS, PING
	h2FlagEndHeaders = 0x4
	h2FlagPadded     = 0x8
	h2FlagPriority   = 0x20

	h2SettingEnablePush    = 0x2
	h2SettingInitialWindow = 0x4
	h2SettingEnableConnect = 0x8 // RFC 8441 §3

	h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	// h2StreamID is the WebSocket's stream: the first a client opens.
	h2StreamID = 1
	// h2MaxData is the most the peer puts in one DATA frame: the initial
	// SETTINGS_MAX_FRAME_SIZE, which both ends accept.
	h2MaxData = 16384
)

// h2CodeNames are the error codes of RST_STREAM and GOAWAY (§7).
var h2CodeNames = []string{
	"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
	"SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
	"CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
	"INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
}

func h2CodeName(code uint32) string {
	if int(code) < len(h2CodeNames) {
		return h2CodeNames[code]
	}
	return fmt.Sprintf("error code %#x", code)
}

// h2ResetError is what a read returns once the library reset the stream.
type h2ResetError struct{ code uint32 }

func (e h2ResetError) Error() string {
	return "the library reset the stream with RST_STREAM " + h2CodeName(e.code)
}

// h2Stream is the raw peer's end of an HTTP/2 connection and of the one
// stream it carries: Read returns the stream's DATA and io.EOF exactly at
// the library's END_STREAM; Write sends DATA frames, one or more per
// call; CloseWrite sends END_STREAM; Close closes the connection.
type h2Stream struct {
	nc   net.Conn
	wmu  sync.Mutex    // one frame at a time on nc
	done chan struct{} // closed when readLoop has returned

	mu         sync.Mutex
	changed    chan struct{} // mu: closed, and replaced, when any field below changes
	settings   bool          // mu: the library's first SETTINGS arrived
	xconnect   bool          // mu: it set SETTINGS_ENABLE_CONNECT_PROTOCOL
	header     []hpack.Field // mu: the library's request or response, once it came
	in         []byte        // mu: DATA received, not yet read
	inEnd      error         // mu: io.EOF after END_STREAM, else how the stream ended
	sendConn   int64         // mu: the connection's send window
	sendStream int64         // mu: the stream's send window
	initWindow int64         // mu: the library's SETTINGS_INITIAL_WINDOW_SIZE
	rdl, wdl   time.Time     // mu: deadlines of Read and of Write's waits for window
}

func newH2Stream(nc net.Conn) *h2Stream {
	return &h2Stream{
		nc:         nc,
		done:       make(chan struct{}),
		changed:    make(chan struct{}),
		sendConn:   65535, // §6.9.2: the initial windows
		sendStream: 65535,
		initWindow: 65535,
	}
}

// h2Dial starts the client's side of HTTP/2 on nc and opens a WebSocket
// stream with an extended CONNECT to scheme://authority/chat, once the
// library's SETTINGS allowed it (RFC 8441 §3), offering extensions, if
// not empty, in sec-websocket-extensions. It checks that the library
// answered 200 without Sec-WebSocket-Accept (§5).
func h2Dial(nc net.Conn, scheme, authority, extensions string) (*h2Stream, error) {
	s := newH2Stream(nc)
	nc.SetWriteDeadline(time.Now().Add(cfWait))
	if _, err := nc.Write(append([]byte(h2Preface), h2SettingsFrame(h2SettingEnablePush, 0)...)); err != nil {
		nc.Close()
		return nil, err
	}
	go s.readLoop()
	if err := s.connect(scheme, authority, extensions); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *h2Stream) connect(scheme, authority, extensions string) error {
	if err := s.await("SETTINGS", func() bool { return s.settings }); err != nil {
		return err
	}
	if !s.xconnect {
		return errors.New("the library's SETTINGS do not enable extended CONNECT (RFC 8441 §3)")
	}
	var block []byte
	for _, f := range [][2]string{
		{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", scheme},
		{":authority", authority}, {":path", "/chat"}, {"sec-websocket-version", "13"},
	} {
		block = h2Literal(block, f[0], f[1])
	}
	if extensions != "" {
		block = h2Literal(block, "sec-websocket-extensions", extensions)
	}
	if err := s.writeFrame(h2Headers, h2FlagEndHeaders, h2StreamID, block); err != nil {
		return err
	}
	if err := s.await("the response's HEADERS", func() bool { return s.header != nil }); err != nil {
		return err
	}
	fields := s.fields()
	if len(fields) == 0 || fields[0] != (hpack.Field{Name: ":status", Value: "200"}) {
		return fmt.Errorf("response %v, want :status 200 first", fields)
	}
	for _, f := range fields {
		if f.Name == "sec-websocket-accept" {
			return fmt.Errorf("response has %v; RFC 8441 §5 drops it", f)
		}
	}
	return nil
}

// h2Accept starts the server's side of HTTP/2 on nc, announcing extended
// CONNECT, waits for the library's extended CONNECT on stream 1, checks it
// (RFC 8441 §4, §5: no Sec-WebSocket-Key) and answers 200, with
// extensions, if not empty, in sec-websocket-extensions.
func h2Accept(nc net.Conn, scheme, extensions string) (*h2Stream, error) {
	s := newH2Stream(nc)
	nc.SetDeadline(time.Now().Add(cfWait))
	preface := make([]byte, len(h2Preface))
	if _, err := io.ReadFull(nc, preface); err != nil || string(preface) != h2Preface {
		nc.Close()
		return nil, fmt.Errorf("client preface %q, %v", preface, err)
	}
	if _, err := nc.Write(h2SettingsFrame(h2SettingEnableConnect, 1)); err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	go s.readLoop()
	if err := s.answer(scheme, extensions); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *h2Stream) answer(scheme, extensions string) error {
	if err := s.await("the extended CONNECT", func() bool { return s.header != nil }); err != nil {
		return err
	}
	got := map[string]string{}
	for _, f := range s.fields() {
		if _, dup := got[f.Name]; dup {
			return fmt.Errorf("request has %q twice", f.Name)
		}
		got[f.Name] = f.Value
	}
	for name, want := range map[string]string{
		":method": "CONNECT", ":protocol": "websocket", ":scheme": scheme,
		":path": "/chat", "sec-websocket-version": "13",
	} {
		if got[name] != want {
			return fmt.Errorf("request %v: %s is %q, want %q", got, name, got[name], want)
		}
	}
	if k, ok := got["sec-websocket-key"]; ok {
		return fmt.Errorf("request has Sec-WebSocket-Key %q; RFC 8441 §5 drops it", k)
	}
	block := []byte{0x88} // :status 200, static index 8
	if extensions != "" {
		block = h2Literal(block, "sec-websocket-extensions", extensions)
	}
	return s.writeFrame(h2Headers, h2FlagEndHeaders, h2StreamID, block)
}

// h2SettingsFrame is a SETTINGS frame of the given identifiers and values.
func h2SettingsFrame(pairs ...uint32) []byte {
	b := h2FrameHeader(nil, len(pairs)/2*6, h2Settings, 0, 0)
	for i := 0; i < len(pairs); i += 2 {
		b = binary.BigEndian.AppendUint16(b, uint16(pairs[i]))
		b = binary.BigEndian.AppendUint32(b, pairs[i+1])
	}
	return b
}

func h2FrameHeader(b []byte, n int, typ, flags byte, id uint32) []byte {
	return append(b, byte(n>>16), byte(n>>8), byte(n), typ, flags,
		byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
}

// h2Literal appends a literal header field without indexing, its name a
// literal too, neither Huffman-coded (RFC 7541 §6.2.2), for names and
// values under 127 bytes.
func h2Literal(b []byte, name, value string) []byte {
	b = append(b, 0x00, byte(len(name)))
	b = append(b, name...)
	b = append(b, byte(len(value)))
	return append(b, value...)
}

// writeFrame sends one frame, within cfWait.
func (s *h2Stream) writeFrame(typ, flags byte, id uint32, payload []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.nc.SetWriteDeadline(time.Now().Add(cfWait))
	_, err := s.nc.Write(append(h2FrameHeader(nil, len(payload), typ, flags, id), payload...))
	return err
}

// update changes the state under mu and wakes its waiters.
func (s *h2Stream) update(f func()) {
	s.mu.Lock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// wait waits until ready, checked under mu, returns true, or until the
// deadline passes; a zero deadline is cfWait away, so that no wait of the
// peer is unbounded.
func (s *h2Stream) wait(deadline time.Time, ready func() bool) bool {
	if deadline.IsZero() {
		deadline = time.Now().Add(cfWait)
	}
	for {
		s.mu.Lock()
		ok, changed := ready(), s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		d := time.Until(deadline)
		if d <= 0 {
			return false
		}
		t := time.NewTimer(d)
		select {
		case <-changed:
			t.Stop()
		case <-t.C:
			return false
		}
	}
}

// await waits up to cfWait for ready, failing early if the stream ends.
func (s *h2Stream) await(what string, ready func() bool) error {
	var end error
	if s.wait(time.Now().Add(cfWait), func() bool { end = s.inEnd; return ready() || end != nil }) && end == nil {
		return nil
	}
	if end != nil {
		return fmt.Errorf("awaiting %s: %w", what, end)
	}
	return fmt.Errorf("no %s within %v", what, cfWait)
}

// headerValues returns the values of the field name in the library's
// request or response, in order.
func (s *h2Stream) headerValues(name string) []string {
	var vs []string
	for _, f := range s.fields() {
		if f.Name == name {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

func (s *h2Stream) fields() []hpack.Field {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header
}

// readLoop reads the library's frames until the connection ends. It
// credits every DATA frame back at once, so the library never waits for
// window, and answers SETTINGS and PING.
func (s *h2Stream) readLoop() {
	defer close(s.done)
	defer s.nc.Close()
	dec := hpack.NewDecoder(4096)
	var block []byte // a header block until its END_HEADERS
	var blockEnd bool
	fail := func(err error) {
		s.update(func() {
			if s.inEnd == nil {
				s.inEnd = err
			}
		})
	}
	for {
		h := make([]byte, 9)
		if _, err := io.ReadFull(s.nc, h); err != nil {
			fail(fmt.Errorf("the HTTP/2 connection ended before the stream did: %v", err))
			return
		}
		n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		typ, flags, id := h[3], h[4], binary.BigEndian.Uint32(h[5:])&(1<<31-1)
		if n > h2MaxData {
			fail(fmt.Errorf("frame of type %d with %d bytes, past %d", typ, n, h2MaxData))
			return
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(s.nc, p); err != nil {
			fail(fmt.Errorf("the HTTP/2 connection ended in a frame: %v", err))
			return
		}
		if (block != nil) != (typ == h2Continuation) {
			fail(fmt.Errorf("frame of type %d where a header block goes on, or CONTINUATION outside one", typ))
			return
		}
		if (typ == h2Data || typ == h2Headers || typ == h2RSTStream || typ == h2Continuation) && id != h2StreamID {
			fail(fmt.Errorf("frame of type %d on stream %d, not the WebSocket's %d", typ, id, h2StreamID))
			return
		}
		if (typ == h2Data || typ == h2Headers) && flags&h2FlagPadded != 0 {
			if len(p) == 0 || int(p[0]) >= len(p) {
				fail(errors.New("bad padding"))
				return
			}
			p = p[1 : len(p)-int(p[0])]
		}
		switch typ {
		case h2Data:
			if n > 0 {
				// Credit back the whole frame, padding included.
				s.writeFrame(h2WindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, uint32(n)))
				s.writeFrame(h2WindowUpdate, 0, id, binary.BigEndian.AppendUint32(nil, uint32(n)))
			}
			s.update(func() {
				if s.inEnd != nil {
					if s.inEnd == io.EOF {
						s.inEnd = errors.New("DATA after END_STREAM")
					}
					return
				}
				s.in = append(s.in, p...)
				if flags&h2FlagEndStream != 0 {
					s.inEnd = io.EOF
				}
			})
		case h2Headers, h2Continuation:
			if typ == h2Headers {
				if flags&h2FlagPriority != 0 {
					p = p[min(5, len(p)):]
				}
				block, blockEnd = []byte{}, flags&h2FlagEndStream != 0
			}
			block = append(block, p...)
			if flags&h2FlagEndHeaders == 0 {
				continue
			}
			var fields []hpack.Field
			err := dec.Decode(block, 1<<20, func(f hpack.Field) { fields = append(fields, f) })
			block = nil
			if err != nil {
				fail(err)
				return
			}
			s.update(func() {
				switch {
				case s.inEnd != nil:
				case s.header == nil:
					s.header = fields
				case !blockEnd:
					s.inEnd = errors.New("a second header block without END_STREAM")
				}
				if blockEnd && s.inEnd == nil {
					s.inEnd = io.EOF
				}
			})
		case h2RSTStream:
			if n != 4 {
				fail(errors.New("RST_STREAM of the wrong size"))
				return
			}
			// An RST_STREAM after END_STREAM leaves the end as it was:
			// all the library sent has arrived. Go's HTTP/2 server sends
			// one once its handler has returned, with NO_ERROR (RFC 9113
			// §8.1: the server needs no more of the request), or with
			// STREAM_CLOSED for DATA of the peer's that was in flight
			// (§5.1).
			code := binary.BigEndian.Uint32(p)
			s.update(func() {
				if s.inEnd == nil {
					s.inEnd = h2ResetError{code}
				}
			})
		case h2Settings:
			if flags&h2FlagAck != 0 || id != 0 {
				continue
			}
			if n%6 != 0 {
				fail(errors.New("SETTINGS of the wrong size"))
				return
			}
			s.update(func() {
				for ; len(p) >= 6; p = p[6:] {
					v := int64(binary.BigEndian.Uint32(p[2:]))
					switch binary.BigEndian.Uint16(p) {
					case h2SettingInitialWindow:
						s.sendStream += v - s.initWindow // §6.9.2
						s.initWindow = v
					case h2SettingEnableConnect:
						s.xconnect = v == 1
					}
				}
				s.settings = true
			})
			s.writeFrame(h2Settings, h2FlagAck, 0, nil)
		case h2Ping:
			if flags&h2FlagAck == 0 {
				s.writeFrame(h2Ping, h2FlagAck, 0, p)
			}
		case h2WindowUpdate:
			if n != 4 {
				fail(errors.New("WINDOW_UPDATE of the wrong size"))
				return
			}
			incr := int64(binary.BigEndian.Uint32(p) & (1<<31 - 1))
			s.update(func() {
				switch id {
				case 0:
					s.sendConn += incr
				case h2StreamID:
					s.sendStream += incr
				}
			})
		case h2GoAway:
			// The library ends the connection; the stream's end, if it
			// has not come, is the connection's.
		}
	}
}

// Read returns the stream's DATA; io.EOF after the library's END_STREAM.
func (s *h2Stream) Read(b []byte) (int, error) {
	s.mu.Lock()
	dl := s.rdl
	s.mu.Unlock()
	if !s.wait(dl, func() bool { return len(s.in) > 0 || s.inEnd != nil }) {
		return 0, os.ErrDeadlineExceeded
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.in) == 0 {
		return 0, s.inEnd
	}
	n := copy(b, s.in)
	s.in = s.in[n:]
	return n, nil
}

// Write sends b in DATA frames as the library's windows allow.
func (s *h2Stream) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		var n int64
		var end error
		s.mu.Lock()
		dl := s.wdl
		s.mu.Unlock()
		ok := s.wait(dl, func() bool {
			end = s.inEnd
			if end != nil && end != io.EOF {
				return true
			}
			n = min(int64(len(b)), s.sendConn, s.sendStream, h2MaxData)
			if n > 0 {
				s.sendConn -= n
				s.sendStream -= n
			}
			return n > 0
		})
		switch {
		case !ok:
			return written, os.ErrDeadlineExceeded
		case n <= 0:
			return written, end
		}
		if err := s.writeFrame(h2Data, 0, h2StreamID, b[:n]); err != nil {
			return written, err
		}
		written += int(n)
		b = b[n:]
	}
	return written, nil
}

// CloseWrite ends the peer's side of the stream in order: END_STREAM,
// the HTTP/2 form of a TCP half-close (RFC 8441 §5).
func (s *h2Stream) CloseWrite() error {
	return s.writeFrame(h2Data, h2FlagEndStream, h2StreamID, nil)
}

// Close closes the connection, and with it the stream, and waits for
// readLoop to return.
func (s *h2Stream) Close() error {
	s.nc.Close()
	<-s.done
	return nil
}

func (s *h2Stream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.rdl = t
	s.mu.Unlock()
	return nil
}

func (s *h2Stream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.wdl = t
	s.mu.Unlock()
	return nil
}
