package h2

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/hpack"
)

// rawServer is the server's end of a connection, driven by the test frame
// by frame.
type rawServer struct {
	t  *testing.T
	nc net.Conn
}

// start connects a ClientConn to a rawServer, reads the client's preface,
// SETTINGS and WINDOW_UPDATE, and checks their exact bytes.
func start(t *testing.T) (*ClientConn, *rawServer) {
	t.Helper()
	return startConfig(t, Config{})
}

// startConfig is start with cfg, whose HeaderLimit must be 0.
func startConfig(t *testing.T, cfg Config) (*ClientConn, *rawServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	snc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return startOn(t, cfg, nc, snc)
}

// startOn is startConfig on nc, whose other end is snc.
func startOn(t *testing.T, cfg Config, nc, snc net.Conn) (*ClientConn, *rawServer) {
	t.Helper()
	snc.SetDeadline(time.Now().Add(10 * time.Second))
	s := &rawServer{t, snc}
	t.Cleanup(func() { snc.Close() })
	type started struct {
		cc  *ClientConn
		err error
	}
	made := make(chan started, 1)
	go func() { // the preface's write waits for the reader on a pipe
		cc, err := NewClientConnConfig(nc, nil, cfg)
		made <- started{cc, err}
	}()
	window := "\x00\x04\x00\x00" // 262144, or Config.StreamWindow
	if cfg.StreamWindow != 0 {
		window = string(binary.BigEndian.AppendUint32(nil, cfg.StreamWindow))
	}
	want := preface +
		"\x00\x00\x12\x04\x00\x00\x00\x00\x00" + // SETTINGS, 3 settings
		"\x00\x02\x00\x00\x00\x00" + // ENABLE_PUSH 0
		"\x00\x04" + window + // INITIAL_WINDOW_SIZE
		"\x00\x06\x00\x10\x00\x00" + // MAX_HEADER_LIST_SIZE 1048576
		"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\xff\x00\x01" // WINDOW_UPDATE 0, 16 MiB - 65535
	got := make([]byte, len(want))
	if _, err := io.ReadFull(snc, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("client preface\n% x\nwant\n% x", got, want)
	}
	r := <-made
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.cc.Close() })
	return r.cc, s
}

func (s *rawServer) write(typ, flags uint8, id uint32, payload []byte) {
	s.t.Helper()
	b := appendFrameHeader(nil, len(payload), typ, flags, id)
	if _, err := s.nc.Write(append(b, payload...)); err != nil {
		s.t.Fatal(err)
	}
}

// read returns the next frame from the client.
func (s *rawServer) read() (frameHeader, []byte) {
	s.t.Helper()
	hb := make([]byte, headerLen)
	if _, err := io.ReadFull(s.nc, hb); err != nil {
		s.t.Fatalf("reading a frame: %v", err)
	}
	h := parseFrameHeader(hb)
	p := make([]byte, h.length)
	if _, err := io.ReadFull(s.nc, p); err != nil {
		s.t.Fatal(err)
	}
	return h, p
}

// expect reads frames until one of type typ, skipping SETTINGS ACK and
// WINDOW_UPDATE, and returns it.
func (s *rawServer) expect(typ uint8) (frameHeader, []byte) {
	s.t.Helper()
	for {
		h, p := s.read()
		if h.typ == typ {
			return h, p
		}
		if h.typ != frameWindowUpdate && !(h.typ == frameSettings && h.flags&flagAck != 0) {
			s.t.Fatalf("frame of type %d (% x), want type %d", h.typ, p, typ)
		}
	}
}

// settings sends the server's SETTINGS with extended CONNECT on.
func (s *rawServer) settings(pairs ...uint32) {
	s.t.Helper()
	s.nc.Write(appendSettings(nil, append([]uint32{settingEnableConnectProtocol, 1}, pairs...)...))
}

// expectGoAway reads frames until a GOAWAY and checks its code.
func (s *rawServer) expectGoAway(code ErrCode) {
	s.t.Helper()
	_, p := s.expect(frameGoAway)
	if got := ErrCode(binary.BigEndian.Uint32(p[4:])); got != code {
		s.t.Fatalf("GOAWAY %v (%q), want %v", got, p[8:], code)
	}
}

func connectFields() []hpack.Field {
	return []hpack.Field{
		{Name: ":method", Value: "CONNECT"}, {Name: ":protocol", Value: "websocket"},
		{Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "example.com"},
		{Name: ":path", Value: "/ws"}, {Name: "sec-websocket-version", Value: "13"},
	}
}

// open opens stream 1 and answers it 200.
func open(t *testing.T, cc *ClientConn, s *rawServer) *Stream {
	t.Helper()
	s.settings()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cc.WaitSettings(ctx); err != nil || !cc.ExtendedConnect() {
		t.Fatalf("WaitSettings: %v, extended CONNECT %v", err, cc.ExtendedConnect())
	}
	st, err := cc.OpenStream(connectFields(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h, block := s.expect(frameHeaders)
	if h.streamID != 1 || h.flags != flagEndHeaders {
		t.Fatalf("HEADERS on stream %d with flags %#x, want 1 and END_HEADERS alone", h.streamID, h.flags)
	}
	var got []hpack.Field
	if err := hpack.NewDecoder(4096).Decode(block, 1<<20, func(f hpack.Field) { got = append(got, f) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(connectFields()) {
		t.Fatalf("request fields %q", got)
	}
	for i, f := range connectFields() {
		if got[i] != f {
			t.Fatalf("request field %d: %q, want %q", i, got[i], f)
		}
	}
	s.write(frameHeaders, flagEndHeaders, 1, hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"}))
	status, _, err := st.Response(ctx)
	if err != nil || status != 200 {
		t.Fatalf("Response: %d, %v", status, err)
	}
	return st
}

func TestStreamData(t *testing.T) {
	cc, s := start(t)
	st := open(t, cc, s)
	if _, err := st.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	h, p := s.expect(frameData)
	if h.streamID != 1 || h.flags != 0 || string(p) != "hello" {
		t.Fatalf("DATA %+v %q", h, p)
	}
	// Padded DATA: the padding is dropped.
	s.write(frameData, flagPadded, 1, []byte("\x03abc\x00\x00\x00"))
	buf := make([]byte, 10)
	if n, err := st.Read(buf); err != nil || string(buf[:n]) != "abc" {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
	// A deadline interrupts a blocked Read and leaves the stream usable.
	st.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := st.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v", err)
	}
	st.SetReadDeadline(time.Time{})
	s.write(frameData, flagEndStream, 1, []byte("bye"))
	if n, err := st.Read(buf); err != nil || string(buf[:n]) != "bye" {
		t.Fatalf("Read after the deadline: %q, %v", buf[:n], err)
	}
	if _, err := st.Read(buf); err != io.EOF {
		t.Fatalf("Read after END_STREAM: %v, want EOF", err)
	}
	// The server ended its side: Close ends ours with END_STREAM.
	st.Close()
	h, p = s.expect(frameData)
	if h.streamID != 1 || h.flags != flagEndStream || len(p) != 0 {
		t.Fatalf("Close sent %+v % x, want an empty DATA with END_STREAM", h, p)
	}
}

// TestWriteFlowControl: a write waits for the window, a deadline ends
// the wait with nothing sent, and WINDOW_UPDATE lets it go on.
func TestWriteFlowControl(t *testing.T) {
	cc, s := start(t)
	s.settings(settingInitialWindowSize, 3)
	st := open(t, cc, s)
	st.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := st.Write([]byte("abcdef"))
	if n != 3 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past the window: %d, %v; want 3 and the deadline", n, err)
	}
	if h, p := s.expect(frameData); string(p) != "abc" || h.streamID != 1 {
		t.Fatalf("DATA %q, want the window's 3 bytes", p)
	}
	st.SetWriteDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := st.Write([]byte("def"))
		done <- err
	}()
	s.write(frameWindowUpdate, 0, 1, []byte{0, 0, 0, 2})
	if _, p := s.expect(frameData); string(p) != "de" {
		t.Fatalf("DATA %q after a window of 2, want de", p)
	}
	s.write(frameWindowUpdate, 0, 1, []byte{0, 0, 0, 5})
	if _, p := s.expect(frameData); string(p) != "f" {
		t.Fatalf("DATA %q, want f", p)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPing(t *testing.T) {
	_, s := start(t)
	s.settings()
	s.write(framePing, 0, 0, []byte("12345678"))
	h, p := s.expect(framePing)
	if h.flags != flagAck || string(p) != "12345678" {
		t.Fatalf("PING answered with flags %#x % x", h.flags, p)
	}
}

// TestResetByServer: RST_STREAM ends the stream's reads and writes with
// the server's code, and the connection takes new streams.
func TestResetByServer(t *testing.T) {
	cc, s := start(t)
	st := open(t, cc, s)
	s.write(frameRSTStream, 0, 1, []byte{0, 0, 0, byte(ErrCodeCancel)})
	var se *StreamError
	if _, err := st.Read(make([]byte, 1)); !errors.As(err, &se) || se.Code != ErrCodeCancel || !se.Remote {
		t.Fatalf("Read of a reset stream: %v", err)
	}
	if _, err := st.Write([]byte("x")); !errors.As(err, &se) {
		t.Fatalf("Write on a reset stream: %v", err)
	}
	st2, err := cc.OpenStream(connectFields(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if h, _ := s.expect(frameHeaders); h.streamID != 3 {
		t.Fatalf("next stream %d, want 3", h.streamID)
	}
}

// TestStreamErrors: a server's mistakes on one stream reset that stream.
func TestStreamErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		send func(s *rawServer)
		code ErrCode
	}{
		{"DATA past the window", func(s *rawServer) {
			big := make([]byte, defaultMaxFrame)
			for range StreamWindow / defaultMaxFrame {
				s.write(frameData, 0, 1, big)
			}
			s.write(frameData, 0, 1, []byte("x"))
		}, ErrCodeFlowControl},
		{"WINDOW_UPDATE of 0", func(s *rawServer) { s.write(frameWindowUpdate, 0, 1, []byte{0, 0, 0, 0}) }, ErrCodeProtocol},
		{"trailers without END_STREAM", func(s *rawServer) {
			s.write(frameHeaders, flagEndHeaders, 1, hpack.AppendField(nil, hpack.Field{Name: "x", Value: "y"}))
		}, ErrCodeProtocol},
		// §8.1: trailers hold no pseudo-header, and their fields go by
		// §8.2's rules; such a response is malformed, not ended cleanly.
		{"trailers with :status", func(s *rawServer) {
			s.write(frameHeaders, flagEndHeaders|flagEndStream, 1, hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"}))
		}, ErrCodeProtocol},
		{"trailers with connection", func(s *rawServer) {
			s.write(frameHeaders, flagEndHeaders|flagEndStream, 1, hpack.AppendField(nil, hpack.Field{Name: "connection", Value: "close"}))
		}, ErrCodeProtocol},
		{"trailers with a name in capitals", func(s *rawServer) {
			s.write(frameHeaders, flagEndHeaders|flagEndStream, 1, hpack.AppendField(nil, hpack.Field{Name: "X-Trailer", Value: "y"}))
		}, ErrCodeProtocol},
		{"DATA after END_STREAM", func(s *rawServer) {
			s.write(frameData, flagEndStream, 1, nil)
			s.write(frameData, 0, 1, []byte("x"))
		}, ErrCodeStreamClosed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cc, s := start(t)
			open(t, cc, s)
			tt.send(s)
			h, p := s.expect(frameRSTStream)
			if h.streamID != 1 || ErrCode(binary.BigEndian.Uint32(p)) != tt.code {
				t.Fatalf("RST_STREAM %d %v, want 1 %v", h.streamID, ErrCode(binary.BigEndian.Uint32(p)), tt.code)
			}
			if cc.Err() != nil {
				t.Fatalf("connection ended: %v", cc.Err())
			}
		})
	}
}

// TestConnErrors: the server's mistakes that end the connection, each
// with the GOAWAY code RFC 9113 (or RFC 8441) gives it.
func TestConnErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		send func(s *rawServer)
		code ErrCode
	}{
		{"first frame not SETTINGS", func(s *rawServer) { s.write(framePing, 0, 0, []byte("12345678")) }, ErrCodeProtocol},
		{"SETTINGS_ENABLE_PUSH 1", func(s *rawServer) { s.nc.Write(appendSettings(nil, settingEnablePush, 1)) }, ErrCodeProtocol},
		{"SETTINGS of 5 bytes", func(s *rawServer) { s.write(frameSettings, 0, 0, []byte{0, 1, 0, 0, 0}) }, ErrCodeFrameSize},
		{"MAX_FRAME_SIZE too small", func(s *rawServer) { s.nc.Write(appendSettings(nil, settingMaxFrameSize, 100)) }, ErrCodeProtocol},
		{"INITIAL_WINDOW_SIZE past 2^31-1", func(s *rawServer) { s.nc.Write(appendSettings(nil, settingInitialWindowSize, 1<<31)) }, ErrCodeFlowControl},
		{"ENABLE_CONNECT_PROTOCOL 1 then 0", func(s *rawServer) {
			s.settings()
			s.nc.Write(appendSettings(nil, settingEnableConnectProtocol, 0))
		}, ErrCodeProtocol},
		{"frame past 16384 bytes", func(s *rawServer) {
			s.settings()
			s.write(frameData, 0, 1, make([]byte, defaultMaxFrame+1))
		}, ErrCodeFrameSize},
		{"PUSH_PROMISE", func(s *rawServer) {
			s.settings()
			s.write(framePushPromise, flagEndHeaders, 1, []byte{0, 0, 0, 2})
		}, ErrCodeProtocol},
		{"HEADERS on a stream never opened", func(s *rawServer) {
			s.settings()
			s.write(frameHeaders, flagEndHeaders, 5, []byte{0x88})
		}, ErrCodeProtocol},
		{"undecodable header block", func(s *rawServer) {
			s.settings()
			s.write(frameHeaders, flagEndHeaders, 1, []byte{0x80}) // index 0
		}, ErrCodeCompression},
		{"CONTINUATION alone", func(s *rawServer) {
			s.settings()
			s.write(frameContinuation, flagEndHeaders, 1, []byte{0x88})
		}, ErrCodeProtocol},
		{"connection window overflow", func(s *rawServer) {
			s.settings()
			s.write(frameWindowUpdate, 0, 0, []byte{0x7f, 0xff, 0xff, 0xff})
		}, ErrCodeFlowControl},
		{"PING of 7 bytes", func(s *rawServer) {
			s.settings()
			s.write(framePing, 0, 0, []byte("1234567"))
		}, ErrCodeFrameSize},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cc, s := start(t)
			tt.send(s)
			s.expectGoAway(tt.code)
			select {
			case <-cc.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("connection still open after the GOAWAY")
			}
			var ce *ConnError
			if err := cc.Err(); !errors.As(err, &ce) || ce.Code != tt.code || ce.Remote {
				t.Fatalf("Err: %v, want our connection error %v", err, tt.code)
			}
		})
	}
}

// TestNotHTTP2: an HTTP/1.1 answer to the preface says so.
func TestNotHTTP2(t *testing.T) {
	cc, s := start(t)
	s.nc.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"))
	err := cc.WaitSettings(context.Background())
	if !errors.Is(err, ErrNotHTTP2) || !strings.Contains(err.Error(), `"HTTP/1.1 400 Bad Request"`) {
		t.Fatalf("WaitSettings: %v, want ErrNotHTTP2 with the status line", err)
	}
}

// TestGoAway: a GOAWAY refuses new streams; streams past its last ID end,
// those before it go on.
func TestGoAway(t *testing.T) {
	cc, s := start(t)
	st := open(t, cc, s)
	st3, err := cc.OpenStream(connectFields(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	s.expect(frameHeaders)
	s.write(frameGoAway, 0, 0, []byte{0, 0, 0, 1, 0, 0, 0, 0})
	var ce *ConnError
	if _, _, err := st3.Response(context.Background()); !errors.As(err, &ce) || !ce.Remote || !Unprocessed(err) {
		t.Fatalf("stream 3 past the GOAWAY: %v, want the GOAWAY, unprocessed", err)
	}
	if _, err := cc.OpenStream(connectFields(), false); !errors.Is(err, ErrUnavailable) || !Unprocessed(err) {
		t.Fatalf("OpenStream after GOAWAY: %v", err)
	}
	s.write(frameData, 0, 1, []byte("still"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(st, buf); err != nil || string(buf) != "still" {
		t.Fatalf("stream 1: %q, %v", buf, err)
	}
}

// TestUnprocessed: Unprocessed tells the streams the server did not
// process, which may go again (RFC 9113 §8.7): reset with REFUSED_STREAM,
// or not opened because the connection had ended; not a stream the
// server reset otherwise, nor one ended with its connection.
func TestUnprocessed(t *testing.T) {
	cc, s := start(t)
	st := open(t, cc, s)
	for _, tc := range []struct {
		code        ErrCode
		unprocessed bool
	}{{ErrCodeRefusedStream, true}, {ErrCodeCancel, false}} {
		st, err := cc.OpenStream(connectFields(), false)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := s.expect(frameHeaders)
		s.write(frameRSTStream, 0, h.streamID, binary.BigEndian.AppendUint32(nil, uint32(tc.code)))
		if _, _, err := st.Response(context.Background()); err == nil || Unprocessed(err) != tc.unprocessed {
			t.Errorf("stream reset with %v: %v, want an error, unprocessed %v", tc.code, err, tc.unprocessed)
		}
		st.Close()
	}
	s.nc.Close()
	<-cc.Done()
	if _, err := st.Read(make([]byte, 1)); err == nil || Unprocessed(err) {
		t.Errorf("stream 1 when the connection ended: %v, want an error, not unprocessed", err)
	}
	if _, err := cc.OpenStream(connectFields(), false); err == nil || !Unprocessed(err) {
		t.Errorf("OpenStream on an ended connection: %v, want an error, unprocessed", err)
	}
}

// TestPingRetire: Ping waits for the acknowledgment of its own PING, not
// an earlier one's, or for its context; a retired connection takes no new
// stream and keeps its own.
func TestPingRetire(t *testing.T) {
	cc, s := start(t)
	s.settings()
	done := make(chan error, 1)
	go func() { done <- cc.Ping(context.Background()) }()
	_, p := s.expect(framePing)
	stale := binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(p)-1)
	s.write(framePing, flagAck, 0, stale)
	select {
	case err := <-done:
		t.Fatalf("Ping returned %v on the acknowledgment of another PING", err)
	case <-time.After(100 * time.Millisecond):
	}
	s.write(framePing, flagAck, 0, p)
	if err := <-done; err != nil {
		t.Fatalf("Ping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := cc.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping unanswered: %v, want the context's end", err)
	}
	s.expect(framePing)
	st := open(t, cc, s)
	cc.Retire()
	if cc.Reserve() {
		t.Fatal("a retired connection reserved a stream")
	}
	if _, err := cc.OpenStream(connectFields(), false); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("OpenStream on a retired connection: %v", err)
	}
	s.write(frameData, 0, 1, []byte("on"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(st, buf); err != nil || string(buf) != "on" {
		t.Fatalf("stream 1 after Retire: %q, %v", buf, err)
	}
}

// TestWriteWhenConnectionEnds: a Write under way when the server ends
// the connection returns the connection's error, not the closed socket's.
func TestWriteWhenConnectionEnds(t *testing.T) {
	cc, s := start(t)
	s.settings(settingInitialWindowSize, maxWindow)
	st := open(t, cc, s)
	s.write(frameWindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, maxWindow-defaultWindow))
	done := make(chan error, 1)
	go func() {
		// Past what the sockets buffer: the write waits for the server,
		// which reads no more.
		_, err := st.Write(make([]byte, 32<<20))
		done <- err
	}()
	s.expect(frameData)
	time.Sleep(50 * time.Millisecond)
	s.write(frameGoAway, 0, 0, []byte{0, 0, 0, 1, 0, 0, 0, byte(ErrCodeProtocol)})
	select {
	case err := <-done:
		var ce *ConnError
		if !errors.As(err, &ce) || ce.Code != ErrCodeProtocol || !ce.Remote {
			t.Fatalf("Write: %v, want the server's GOAWAY with PROTOCOL_ERROR", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write still under way 5 s after the connection ended")
	}
}

// TestControlFlood: a server that sends PINGs and reads nothing has its
// answers queue up to maxCtrlQueue, then loses the connection with
// ENHANCE_YOUR_CALM.
func TestControlFlood(t *testing.T) {
	cc, s := start(t)
	open(t, cc, s)
	var burst []byte
	for range 1000 {
		burst = append(burst, appendFrameHeader(nil, 8, framePing, 0, 0)...)
		burst = append(burst, "12345678"...)
	}
	flooded := make(chan int, 1)
	go func() {
		// Until the client closes the connection, or the deadline that
		// start set passes.
		n := 0
		for {
			m, err := s.nc.Write(burst)
			n += m
			if err != nil {
				flooded <- n
				return
			}
		}
	}()
	select {
	case <-cc.Done():
	case <-time.After(8 * time.Second):
		t.Fatal("connection still open after 8 s of PINGs")
	}
	var ce *ConnError
	if err := cc.Err(); !errors.As(err, &ce) || ce.Code != ErrCodeEnhanceYourCalm || ce.Remote {
		t.Fatalf("Err: %v, want our ENHANCE_YOUR_CALM", err)
	}
	t.Logf("the server sent %d bytes of PING", <-flooded)
}

// TestNoDataAfterReset: a Write that took its window before its stream
// was reset sends nothing after the RST_STREAM (RFC 9113 §5.1), and
// reports the reset.
func TestNoDataAfterReset(t *testing.T) {
	cc, s := start(t)
	st := open(t, cc, s)
	cc.wlock <- struct{}{} // the Write waits for this, past its checks
	done := make(chan error, 1)
	go func() {
		_, err := st.Write([]byte("x"))
		done <- err
	}()
	waitFor(t, "the Write to take its window", func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return st.sendWindow == defaultWindow-1
	})
	s.write(frameWindowUpdate, 0, 1, []byte{0, 0, 0, 0}) // a stream error
	waitFor(t, "the reset", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.werr != nil
	})
	<-cc.wlock
	var se *StreamError
	if err := <-done; !errors.As(err, &se) || se.Code != ErrCodeProtocol || se.Remote {
		t.Fatalf("Write: %v, want our reset", err)
	}
	s.write(framePing, 0, 0, []byte("12345678"))
	reset := false
	for {
		h, p := s.read()
		switch {
		case h.typ == frameRSTStream:
			reset = true
		case h.typ == frameData:
			t.Fatalf("DATA %q on stream %d (after the RST_STREAM: %v)", p, h.streamID, reset)
		case h.typ == framePing && h.flags&flagAck != 0:
			if !reset {
				t.Fatal("no RST_STREAM before the PING's answer")
			}
			return
		}
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 s for %s", what)
		}
	}
}

// TestWriteDeadlineOnBlockedSocket: a server that grants every window
// and stops reading leaves a Write blocked in the socket, not waiting for
// a window or the write lock; its deadline must still end it.
func TestWriteDeadlineOnBlockedSocket(t *testing.T) {
	cc, s := start(t)
	s.settings(settingInitialWindowSize, maxWindow)
	st := open(t, cc, s)
	s.write(frameWindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, maxWindow-defaultWindow))
	st.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	done := make(chan error, 1)
	go func() {
		// Past what the sockets buffer: the server reads no more.
		_, err := st.Write(make([]byte, 64<<20))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write: %v, want the deadline", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write still blocked 5 s after a deadline of 300 ms")
	}
}

// openNext opens the connection's next stream, after open's, and answers
// it 200.
func openNext(t *testing.T, cc *ClientConn, s *rawServer) *Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := cc.OpenStream(connectFields(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if h, _ := s.expect(frameHeaders); h.streamID != st.ID() {
		t.Fatalf("HEADERS on stream %d, want %d", h.streamID, st.ID())
	}
	s.write(frameHeaders, flagEndHeaders, st.ID(), hpack.AppendField(nil, hpack.Field{Name: ":status", Value: "200"}))
	if status, _, err := st.Response(ctx); err != nil || status != 200 {
		t.Fatalf("Response: %d, %v", status, err)
	}
	return st
}

// TestCloseEndsBlockedWrite: two streams share a connection whose server
// grants every window and stops reading. Closing the stream whose Write
// waits for the write lock ends that Write at once; closing the stream
// whose Write is blocked in the socket ends it closeStallWait later, with
// the connection, which cannot go on with a frame half sent. Neither waited
// for anything before: the connection stayed open for the other stream.
func TestCloseEndsBlockedWrite(t *testing.T) {
	cc, s := start(t)
	s.settings(settingInitialWindowSize, maxWindow)
	st1 := open(t, cc, s)
	st3 := openNext(t, cc, s)
	s.write(frameWindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, maxWindow-defaultWindow))
	write := func(st *Stream, n int) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := st.Write(make([]byte, n))
			done <- err
		}()
		return done
	}
	// Past what the sockets buffer: the server reads no more.
	wrote1 := write(st1, 64<<20)
	awaitStuckFlush(t, cc, st1)
	wrote3 := write(st3, 1<<10)
	waitFor(t, "stream 3's Write to take its window", func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return st3.sendWindow == maxWindow-1<<10
	})
	start := time.Now()
	st3.Close()
	select {
	case err := <-wrote3:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("stream 3's Write: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream 3's Write still waiting for the write lock 5 s after Close")
	}
	if cc.Err() != nil {
		t.Fatalf("the connection ended as stream 3 closed: %v", cc.Err())
	}
	st1.Close()
	select {
	case err := <-wrote1:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("stream 1's Write: %v, want net.ErrClosed", err)
		}
	case <-time.After(closeStallWait + 5*time.Second):
		t.Fatal("stream 1's Write still blocked in the socket 5 s past closeStallWait after Close")
	}
	if d := time.Since(start); d < closeStallWait {
		t.Fatalf("stream 1's Write ended %v after Close, before closeStallWait", d)
	}
	if err := cc.Err(); err != errStalled {
		t.Fatalf("Err: %v, want %v", err, errStalled)
	}
}

// TestPriorityErrorOnIdleStream: a PRIORITY frame of the wrong length is
// a stream error (RFC 9113 §6.3), but on a stream never opened it gets no
// RST_STREAM, which §6.4 forbids there: the frame is dropped.
func TestPriorityErrorOnIdleStream(t *testing.T) {
	cc, s := start(t)
	open(t, cc, s)
	s.write(framePriority, 0, 101, []byte{0, 0, 0, 0}) // idle, odd
	s.write(framePriority, 0, 4, []byte{0, 0, 0, 0})   // idle, even
	s.write(framePriority, 0, 1, []byte{0, 0, 0, 0})   // open
	s.write(framePing, 0, 0, []byte("12345678"))
	var resets []uint32
	for {
		h, p := s.read()
		if h.typ == frameRSTStream {
			if ErrCode(binary.BigEndian.Uint32(p)) != ErrCodeFrameSize {
				t.Fatalf("RST_STREAM %v, want FRAME_SIZE_ERROR", ErrCode(binary.BigEndian.Uint32(p)))
			}
			resets = append(resets, h.streamID)
		}
		if h.typ == framePing && h.flags&flagAck != 0 {
			break
		}
	}
	if len(resets) != 1 || resets[0] != 1 {
		t.Fatalf("RST_STREAM on streams %v, want on 1 alone", resets)
	}
	if cc.Err() != nil {
		t.Fatalf("the connection ended: %v", cc.Err())
	}
}

// TestGiveBackWakesOthers: stream 1's Write takes the whole connection
// window and waits for the write lock (held here, as by another stream's
// flush); stream 3's Write waits for connection window. Closing stream 1
// gives its window back, which lets stream 3's Write go out: it waited for
// a WINDOW_UPDATE the server had no reason to send.
func TestGiveBackWakesOthers(t *testing.T) {
	cc, s := start(t)
	s.settings(settingInitialWindowSize, maxWindow)
	st1 := open(t, cc, s)
	st3 := openNext(t, cc, s)
	cc.wlock <- struct{}{}
	wrote1 := make(chan error, 1)
	go func() {
		_, err := st1.Write(make([]byte, 100<<10))
		wrote1 <- err
	}()
	waitFor(t, "stream 1's Write to take the connection's window", func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cc.sendWindow == 0
	})
	wrote3 := make(chan error, 1)
	go func() {
		_, err := st3.Write([]byte("three"))
		wrote3 <- err
	}()
	time.Sleep(50 * time.Millisecond)
	st1.Close()
	if err := <-wrote1; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("stream 1's Write: %v, want net.ErrClosed", err)
	}
	<-cc.wlock
	select {
	case err := <-wrote3:
		if err != nil {
			t.Fatalf("stream 3's Write: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream 3's Write still waiting for window 5 s after stream 1 gave its back")
	}
	for {
		// Past stream 1's RST_STREAM.
		if h, p := s.read(); h.typ == frameData && h.streamID == 3 {
			if string(p) != "three" {
				t.Fatalf("DATA %q on stream 3, want three", p)
			}
			break
		}
	}
}

// TestCloseSparesSlowSocket: two streams share a connection whose server
// grants every window and reads slowly but steadily (1 KiB every 50 ms),
// its TCP window opening every few seconds. Closing stream 1 as its Write
// goes out does not end the connection: the socket still takes its
// frames. Once the server reads at full speed, the Write returns
// net.ErrClosed and stream 3 goes on. Closing gave the write a second
// before, and the connection ended with it.
func TestCloseSparesSlowSocket(t *testing.T) {
	cc, s := start(t)
	s.settings(settingInitialWindowSize, maxWindow)
	st1 := open(t, cc, s)
	st3 := openNext(t, cc, s)
	s.write(frameWindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, maxWindow-defaultWindow))
	wrote1 := make(chan error, 1)
	go func() {
		_, err := st1.Write(make([]byte, 64<<20))
		wrote1 <- err
	}()
	waitFor(t, "stream 1's Write to fill the socket", func() bool {
		cc.flushMu.Lock()
		defer cc.flushMu.Unlock()
		return cc.flushing == st1
	})
	time.Sleep(300 * time.Millisecond)
	slow := make(chan struct{})
	drained := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 1<<10)
		for {
			select {
			case <-slow:
				// Full speed: keep what follows the last of stream 1's
				// frames that the socket holds, for stream 3's.
				var rest []byte
				s.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
				big := make([]byte, 1<<20)
				for {
					n, err := s.nc.Read(big)
					rest = append(rest[max(0, len(rest)-(64<<10)):], big[:n]...)
					if err != nil {
						drained <- rest
						return
					}
				}
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := s.nc.Read(buf); err != nil {
				drained <- nil
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	st1.Close()
	time.Sleep(6 * time.Second)
	if err := cc.Err(); err != nil {
		t.Fatalf("the connection ended while its socket took bytes: %v", err)
	}
	close(slow)
	select {
	case err := <-wrote1:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("stream 1's Write: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream 1's Write still under way with the server reading at full speed")
	}
	if _, err := st3.Write([]byte("three")); err != nil {
		t.Fatalf("stream 3's Write: %v", err)
	}
	rest := <-drained
	if !bytes.Contains(rest, append(appendFrameHeader(nil, 5, frameData, 0, 3), "three"...)) {
		t.Fatalf("stream 3's DATA frame not on the wire after stream 1's: ...% x", rest[max(0, len(rest)-64):])
	}
	if err := cc.Err(); err != nil {
		t.Fatalf("the connection ended: %v", err)
	}
}

// awaitStuckFlush waits until st's frames are going out and the socket
// takes none: the same flush under way for 300 ms.
func awaitStuckFlush(t *testing.T, cc *ClientConn, st *Stream) {
	t.Helper()
	flush := func() (bool, uint64) {
		cc.flushMu.Lock()
		defer cc.flushMu.Unlock()
		return cc.flushing == st, cc.flushGen
	}
	var gen uint64
	since := time.Now()
	waitFor(t, "a flush of the stream's that the socket does not take", func() bool {
		on, g := flush()
		if !on || g != gen {
			gen, since = g, time.Now()
			return false
		}
		return time.Since(since) >= 300*time.Millisecond
	})
}

// TestStreamBufferBehindReader: a reader that keeps a little behind the
// server never empties the stream's buffer. What it had read stayed at
// the buffer's front and every window's worth the server then sent was
// added after it: 5 MiB through the 256 KiB window left a buffer of 5.5
// MiB. The buffer now stays within twice the window.
func TestStreamBufferBehindReader(t *testing.T) {
	cc, srv := start(t)
	st := open(t, cc, srv)
	chunk := make([]byte, defaultMaxFrame)
	send := func(n int) {
		for ; n > 0; n -= len(chunk) {
			srv.write(frameData, 0, 1, chunk)
		}
	}
	// unreadReaches waits until the stream holds n unread bytes.
	unreadReaches := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			st.mu.Lock()
			unread := len(st.buf) - st.off
			st.mu.Unlock()
			if unread == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d bytes unread, want %d", unread, n)
			}
		}
	}
	send(StreamWindow)
	unreadReaches(StreamWindow)
	p := make([]byte, defaultMaxFrame)
	for range 40 { // 5 MiB in all
		// Half the window read, which the client credits; the server
		// fills it again.
		for n := 0; n < StreamWindow/2; {
			m, err := st.Read(p)
			if err != nil {
				t.Fatal(err)
			}
			n += m
		}
		for {
			h, payload := srv.read()
			if h.typ == frameWindowUpdate && h.streamID == 1 {
				if n := binary.BigEndian.Uint32(payload); n != StreamWindow/2 {
					t.Fatalf("WINDOW_UPDATE of %d for the stream, want %d", n, StreamWindow/2)
				}
				break
			}
		}
		send(StreamWindow / 2)
		unreadReaches(StreamWindow)
	}
	st.mu.Lock()
	size := cap(st.buf)
	st.mu.Unlock()
	if size > 2*StreamWindow {
		t.Errorf("the stream's buffer holds %d KiB behind a %d KiB window", size>>10, StreamWindow>>10)
	}
}
