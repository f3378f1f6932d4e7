package h2

// A client connection fed arbitrary bytes by its server: FuzzClientConn.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/hpack"
)

// fuzzWait bounds every wait of a fuzzing session: reaching it is a hang.
const fuzzWait = 10 * time.Second

// pipeConn is the client's end of two net.Pipes, one each way, so that
// the server can end what it sends and still read what the client sends,
// as a TCP half-close does.
type pipeConn struct {
	r net.Conn // from the server
	w net.Conn // to the server
}

func (c *pipeConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *pipeConn) Close() error {
	c.r.Close()
	return c.w.Close()
}
func (c *pipeConn) LocalAddr() net.Addr                { return c.r.LocalAddr() }
func (c *pipeConn) RemoteAddr() net.Addr               { return c.r.RemoteAddr() }
func (c *pipeConn) SetReadDeadline(t time.Time) error  { return c.r.SetReadDeadline(t) }
func (c *pipeConn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }
func (c *pipeConn) SetDeadline(t time.Time) error {
	c.r.SetReadDeadline(t)
	return c.w.SetWriteDeadline(t)
}

// serverModel is what a stream of server bytes holds for stream 1, read
// as the client must read it, up to the first frame that ends the
// connection for certain (truncated, past 16384 bytes, or badly padded).
type serverModel struct {
	data  []byte // stream 1's DATA, unpadded, up to its END_STREAM
	ended bool   // a DATA or HEADERS frame on stream 1 has END_STREAM
	// The most the client may send: the sum of the server's
	// WINDOW_UPDATE increments for the connection and for stream 1, and
	// the largest SETTINGS_INITIAL_WINDOW_SIZE it announced.
	connCredit, streamCredit, maxInitial int64
}

func modelServer(stream []byte) serverModel {
	m := serverModel{maxInitial: defaultWindow}
	for len(stream) >= headerLen {
		h := parseFrameHeader(stream)
		if h.length > defaultMaxFrame || len(stream) < headerLen+int(h.length) {
			break
		}
		p := stream[headerLen : headerLen+int(h.length)]
		stream = stream[headerLen+int(h.length):]
		switch {
		case h.typ == frameWindowUpdate && h.length == 4:
			incr := int64(binary.BigEndian.Uint32(p) & maxWindow)
			switch h.streamID {
			case 0:
				m.connCredit += incr
			case 1:
				m.streamCredit += incr
			}
		case h.typ == frameSettings && h.flags&flagAck == 0:
			for ; len(p) >= 6; p = p[6:] {
				if binary.BigEndian.Uint16(p) == settingInitialWindowSize {
					m.maxInitial = max(m.maxInitial, int64(binary.BigEndian.Uint32(p[2:])))
				}
			}
		case (h.typ == frameData || h.typ == frameHeaders) && h.streamID == 1 && !m.ended:
			if h.flags&flagPadded != 0 {
				// The Pad Length byte, and as many bytes of padding
				// at the end, which must leave the rest (§6.1).
				if len(p) == 0 || int(p[0]) > len(p)-1 {
					return m
				}
				p = p[1 : len(p)-int(p[0])]
			}
			if h.typ == frameData {
				m.data = append(m.data, p...)
			}
			m.ended = h.flags&flagEndStream != 0
		}
	}
	return m
}

// clientFrames is what the client sent on stream 1 and its GOAWAYs'
// codes, read from its bytes after its preface.
type clientFrames struct {
	data    []byte    // stream 1's DATA payloads
	goAways []ErrCode // the codes of its GOAWAY frames
}

func parseClient(b []byte) (clientFrames, error) {
	var c clientFrames
	if !bytes.HasPrefix(b, []byte(preface)) {
		return c, fmt.Errorf("client sent %q, not the preface", b[:min(len(b), len(preface))])
	}
	b = b[len(preface):]
	ended := false // stream 1's END_STREAM or RST_STREAM went out
	// A frame cut short is one that a failing connection cut.
	for len(b) >= headerLen {
		h := parseFrameHeader(b)
		if len(b) < headerLen+int(h.length) {
			break
		}
		p := b[headerLen : headerLen+int(h.length)]
		b = b[headerLen+int(h.length):]
		if h.streamID == 1 && (h.typ == frameData || h.typ == frameHeaders || h.typ == frameContinuation) && ended {
			return c, fmt.Errorf("frame of type %d on stream 1 after its end", h.typ)
		}
		switch h.typ {
		case frameData:
			if h.streamID != 1 {
				return c, fmt.Errorf("DATA on stream %d", h.streamID)
			}
			c.data = append(c.data, p...)
			ended = ended || h.flags&flagEndStream != 0
		case frameRSTStream:
			ended = ended || h.streamID == 1
		case frameGoAway:
			if len(p) < 8 {
				return c, fmt.Errorf("GOAWAY of %d bytes", len(p))
			}
			c.goAways = append(c.goAways, ErrCode(binary.BigEndian.Uint32(p[4:])))
		}
	}
	return c, nil
}

// fuzzServer is the server's end of a fuzzing session: it sends the
// stream's first frame, then the rest once the client has opened its
// stream (or failed to), and ends its side; it records all the client
// sends until the client closes its side.
type fuzzServer struct {
	out, in  net.Conn
	opened   chan struct{} // closed by the client once it opened its stream or failed to
	sent     chan struct{} // closed when the sender is done
	drained  chan struct{} // closed when the client has closed its side
	got      []byte        // the client's bytes, once drained is closed
	drainErr string        // what went wrong reading them, once drained is closed
	sendErr  string        // what went wrong sending, once sent is closed
}

func startServer(stream []byte) (*fuzzServer, *pipeConn) {
	toClient, fromServer := net.Pipe()
	toServer, fromClient := net.Pipe()
	s := &fuzzServer{out: fromServer, in: fromClient, opened: make(chan struct{}),
		sent: make(chan struct{}), drained: make(chan struct{})}
	deadline := time.Now().Add(fuzzWait)
	s.in.SetReadDeadline(deadline)
	s.out.SetWriteDeadline(deadline)
	go func() {
		defer close(s.drained)
		var err error
		if s.got, err = io.ReadAll(s.in); errors.Is(err, os.ErrDeadlineExceeded) {
			s.drainErr = "the client kept its side open"
		}
		s.in.Close()
	}()
	go func() {
		defer close(s.sent)
		defer s.out.Close()
		first := len(stream)
		if len(stream) >= headerLen {
			first = min(first, headerLen+int(parseFrameHeader(stream).length))
		}
		_, err := s.out.Write(stream[:first])
		if err != nil || first == len(stream) {
			return // ending the stream is all the server has left to do
		}
		t := time.NewTimer(fuzzWait)
		defer t.Stop()
		select {
		case <-s.opened:
		case <-t.C:
			s.sendErr = "the client neither opened its stream nor failed"
			return
		}
		// Frame by frame, giving way in between, so that the client's
		// calls may be waiting when the next frame arrives.
		for rest := stream[first:]; len(rest) > 0; {
			n := len(rest)
			if len(rest) >= headerLen {
				n = min(n, headerLen+int(parseFrameHeader(rest).length))
			}
			if _, err := s.out.Write(rest[:n]); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					s.sendErr = "the client stopped reading"
				}
				return
			}
			rest = rest[n:]
			runtime.Gosched()
		}
	}()
	return s, &pipeConn{r: toClient, w: toServer}
}

// fuzzSession runs a client connection against a server that sends
// stream, and returns the first property broken:
//   - nothing waits for fuzzWait (the server sends all it has, then ends
//     its side: every call returns);
//   - every call ends in success or a *ConnError or *StreamError, but for
//     the answers the server's bytes ask for: ErrNotHTTP2 to an HTTP/1
//     answer, ErrUnavailable and a refused request header list from
//     OpenStream, net.ErrClosed after our Close;
//   - the stream reads a prefix of stream 1's DATA, all of it up to its
//     END_STREAM when it reads io.EOF;
//   - the server receives a prefix of what the stream writes, what Write
//     counts at least, all of it if Write succeeds, within the windows the
//     server gave, and nothing on stream 1 after its end;
//   - a connection error of ours went out in a GOAWAY with its code;
//   - no goroutine outlives Close.
//
// ops chooses what the client does: bits 0-1 how much it writes (0, 5,
// 20000 or 70000 bytes); bit 2 to Reserve the stream first; bit 3 to
// close the stream once the response arrived, bit 4 the connection,
// instead of reading; bits 5-7 the size of its reads (1<<(2*k) bytes).
func fuzzSession(ops uint8, stream []byte) error {
	goroutines := runtime.NumGoroutine()
	s, nc := startServer(stream)
	cc, err := NewClientConn(nc, func() {})
	if err != nil {
		close(s.opened)
		<-s.sent
		<-s.drained
		return fmt.Errorf("NewClientConn: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), fuzzWait)
	defer cancel()

	var problems []string
	// allowed reports what it is not among errs, the errors a call may
	// end with besides a *ConnError or *StreamError.
	allowed := func(call string, err error, errs ...error) {
		var ce *ConnError
		var se *StreamError
		switch {
		case err == nil || errors.As(err, &ce) || errors.As(err, &se):
			return
		case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
			problems = append(problems, fmt.Sprintf("%s waited %v: %v", call, fuzzWait, err))
			return
		}
		for _, e := range errs {
			if errors.Is(err, e) {
				return
			}
		}
		problems = append(problems, fmt.Sprintf("%s: %v (%T)", call, err, err))
	}
	var closed []error // what our early Close lets Write end with
	if ops&0x18 != 0 {
		closed = []error{net.ErrClosed}
	}

	var st *Stream
	err = cc.WaitSettings(ctx)
	if bytes.HasPrefix(stream, []byte("HTTP/")) {
		allowed("WaitSettings", err, ErrNotHTTP2)
	} else {
		allowed("WaitSettings", err)
	}
	if err == nil {
		reserved := ops&4 != 0
		if reserved && !cc.Reserve() {
			allowed("Reserve", cc.Err())
		} else {
			fields := connectFields()
			st, err = cc.OpenStream(fields, reserved)
			cc.mu.Lock()
			limit := cc.maxHeaderList
			cc.mu.Unlock()
			var size uint32
			for _, f := range fields {
				size += uint32(len(f.Name) + len(f.Value) + 32)
			}
			if err != nil && limit != 0 && size > limit && strings.Contains(err.Error(), "past the server's limit") {
				err = nil // refused, as it must be
			}
			allowed("OpenStream", err, ErrUnavailable)
		}
	}
	var read []byte
	var readErr, writeErr error
	written := 0
	payload := make([]byte, []int{0, 5, 20000, 70000}[ops&3])
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	if st == nil {
		close(s.opened)
	} else {
		st.SetReadDeadline(time.Now().Add(fuzzWait))
		st.SetWriteDeadline(time.Now().Add(fuzzWait))
		// The writer and the reader start before the server sends the
		// rest, so that they may be waiting when it arrives.
		wrote, readDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(wrote)
			written, writeErr = st.Write(payload)
		}()
		var status int
		var fields []hpack.Field
		var respErr error
		go func() {
			defer close(readDone)
			if status, fields, respErr = st.Response(ctx); respErr != nil {
				return
			}
			switch {
			case ops&8 != 0:
				st.Close()
				return
			case ops&0x10 != 0:
				cc.Close()
				return
			}
			buf := make([]byte, 1<<(2*(ops>>5)))
			for {
				n, err := st.Read(buf)
				read = append(read, buf[:n]...)
				if err != nil {
					readErr = err
					return
				}
			}
		}()
		close(s.opened)
		<-readDone
		<-wrote
		allowed("Response", respErr)
		if respErr == nil {
			if status < 200 || status > 999 {
				problems = append(problems, fmt.Sprintf("Response: status %d", status))
			}
			for _, f := range fields {
				if strings.HasPrefix(f.Name, ":") {
					problems = append(problems, fmt.Sprintf("Response: field %q", f.Name))
				}
			}
		}
		if readErr != io.EOF {
			allowed("Read", readErr)
		}
		allowed("Write", writeErr, closed...)
		st.Close()
		st.SetReadDeadline(time.Time{})
		st.SetWriteDeadline(time.Time{})
	}
	cc.Close()
	cancel()
	<-s.sent
	<-s.drained
	for _, e := range []string{s.drainErr, s.sendErr} {
		if e != "" {
			problems = append(problems, e)
		}
	}

	m := modelServer(stream)
	if !bytes.HasPrefix(m.data, read) {
		problems = append(problems, fmt.Sprintf("read %q, not a prefix of stream 1's DATA %q", read, m.data))
	} else if readErr == io.EOF && (!m.ended || len(read) != len(m.data)) {
		problems = append(problems, fmt.Sprintf("read %d bytes to io.EOF; stream 1 has %d before its end (ended: %v)", len(read), len(m.data), m.ended))
	}
	c, err := parseClient(s.got)
	if err != nil {
		problems = append(problems, err.Error())
	}
	switch {
	case !bytes.HasPrefix(payload, c.data) || len(c.data) < written:
		problems = append(problems, fmt.Sprintf("server received %d bytes of DATA, Write wrote %d of %d", len(c.data), written, len(payload)))
	case st != nil && writeErr == nil && len(c.data) != len(payload):
		problems = append(problems, fmt.Sprintf("Write succeeded; the server received %d bytes of %d", len(c.data), len(payload)))
	}
	if sent := int64(len(c.data)); sent > defaultWindow+m.connCredit || sent > m.maxInitial+m.streamCredit {
		problems = append(problems, fmt.Sprintf("%d bytes of DATA sent; the connection's windows allowed %d, the stream's %d",
			sent, defaultWindow+m.connCredit, m.maxInitial+m.streamCredit))
	}
	var ce *ConnError
	if err := cc.Err(); errors.As(err, &ce) && !ce.Remote && !slices.Contains(c.goAways, ce.Code) {
		problems = append(problems, fmt.Sprintf("connection error %v; the client sent GOAWAY %v", ce, c.goAways))
	}

	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > goroutines; {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			problems = append(problems, fmt.Sprintf("%d goroutines left of %d:\n%s", runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)]))
			break
		}
		time.Sleep(time.Millisecond)
	}
	if len(problems) > 0 {
		return fmt.Errorf("ops %#x, ended with %v:\n%s", ops, cc.Err(), strings.Join(problems, "\n"))
	}
	return nil
}

// FuzzClientConn runs a client connection against a server that sends
// arbitrary bytes (see fuzzSession). Seeds hold whole exchanges, each
// kind of frame, and frames cut short or past their limits.
//
// Regression seeds in testdata/fuzz, which depend on timing (the tests
// named hold them for certain): write-cut-by-goaway (a Write under way
// when the server's GOAWAY ended the connection returned the closed
// socket's error, not the connection's; TestWriteWhenConnectionEnds) and
// data-after-reset (a Write that took its window before its stream was
// reset sent DATA after the RST_STREAM; TestNoDataAfterReset).
func FuzzClientConn(f *testing.F) {
	frame := func(typ, flags uint8, id uint32, payload ...byte) []byte {
		return append(appendFrameHeader(nil, len(payload), typ, flags, id), payload...)
	}
	fields := func(kv ...string) []byte {
		var b []byte
		for i := 0; i+1 < len(kv); i += 2 {
			b = hpack.AppendField(b, hpack.Field{Name: kv[i], Value: kv[i+1]})
		}
		return b
	}
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	settings := appendSettings(nil, settingEnableConnectProtocol, 1, settingMaxConcurrentStreams, 100)
	ack := frame(frameSettings, flagAck, 0)
	ok := frame(frameHeaders, flagEndHeaders, 1, fields(":status", "200", "sec-websocket-protocol", "chat")...)
	// Credit for the 70000 bytes the client writes with ops&3 == 3.
	credit := cat(frame(frameWindowUpdate, 0, 0, u32(100000)...), frame(frameWindowUpdate, 0, 1, u32(100000)...))
	for _, seed := range []struct {
		ops    uint8
		stream []byte
	}{
		// Whole exchanges.
		{0x01, cat(settings, ack, ok, frame(framePing, 0, 0, []byte("12345678")...),
			frame(frameData, 0, 1, []byte("hello")...), frame(frameData, flagEndStream, 1, []byte("bye")...))},
		{0x23, cat(settings, ack, credit, ok, frame(frameData, flagEndStream, 1, []byte("ok")...))},
		{0x46, cat(settings, frame(frameHeaders, 0, 1, fields(":status", "200")...),
			frame(frameContinuation, flagEndHeaders, 1, fields("x-a", "b")...),
			frame(frameData, flagPadded, 1, append([]byte{3}, "abc\x00\x00\x00"...)...),
			frame(frameHeaders, flagEndHeaders|flagEndStream|flagPadded|flagPriority, 1, // trailers
				append(append([]byte{2, 0, 0, 0, 0, 16}, fields("x-trailer", "1")...), 0, 0)...))},
		{0xe0, cat(settings, frame(frameHeaders, flagEndHeaders, 1, fields(":status", "103", "link", "</a>")...), ok,
			frame(framePriority, 0, 1, 0, 0, 0, 0, 16), frame(0x42, 0xff, 7, []byte("unknown")...),
			frame(frameData, flagEndStream, 1, []byte("x")...))},
		// The server's windows and settings.
		{0x01, cat(appendSettings(nil, settingInitialWindowSize, 0), ok, frame(frameWindowUpdate, 0, 1, u32(5)...),
			frame(frameData, flagEndStream, 1))},
		{0x02, cat(appendSettings(nil, settingMaxFrameSize, 32768, settingHeaderTableSize, 0), ok,
			frame(frameData, flagEndStream, 1))},
		{0x03, cat(settings, ok, credit, appendSettings(nil, settingInitialWindowSize, 10), frame(frameData, flagEndStream, 1))},
		{0x03, cat(appendSettings(nil, settingInitialWindowSize, 100000), ok, frame(frameData, flagEndStream, 1))}, // past the connection's window
		{0x00, appendSettings(nil, settingMaxConcurrentStreams, 0)},
		{0x04, appendSettings(nil, settingMaxHeaderListSize, 10)},
		{0x00, appendSettings(nil, settingEnablePush, 1)},
		// The header table: a field indexed in the response and referred
		// to in the trailers.
		{0x00, cat(settings, frame(frameHeaders, flagEndHeaders, 1, 0x88, 0x40, 3, 'x', '-', 'a', 1, 'b'),
			frame(frameHeaders, flagEndHeaders|flagEndStream, 1, 0xbe))},
		// Resets and GOAWAY.
		{0x01, cat(settings, ok, frame(frameRSTStream, 0, 1, u32(uint32(ErrCodeCancel))...))},
		{0x01, cat(settings, ok, appendGoAway(nil, 1, ErrCodeNo, "bye"), frame(frameData, flagEndStream, 1, []byte("x")...))},
		{0x00, cat(settings, appendGoAway(nil, 0, ErrCodeNo, ""))},
		{0x02, cat(settings, ok, appendGoAway(nil, 1, ErrCodeEnhanceYourCalm, "calm"))},
		{0x08, cat(settings, ok, frame(frameData, 0, 1, []byte("more")...), frame(frameData, flagEndStream, 1))},
		{0x10, cat(settings, ok, frame(frameData, 0, 1, []byte("more")...), frame(framePing, 0, 0, []byte("12345678")...))},
		// Mistakes of the server's.
		{0x00, []byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")},
		{0x00, frame(framePing, 0, 0, []byte("12345678")...)},
		{0x01, cat(settings, frame(frameData, 0, 1, []byte("early")...), ok)},
		{0x01, cat(settings, frame(frameHeaders, flagEndHeaders, 1, 0x80))},
		{0x01, cat(settings, frame(frameHeaders, flagEndHeaders, 3, 0x88))},
		{0x01, cat(settings, ok, frame(frameWindowUpdate, 0, 0, u32(maxWindow)...))},
		// Frames cut short, and past their limits.
		{0x00, []byte{}},
		{0x00, settings[:len(settings)-3]},
		{0x01, cat(settings, ok[:len(ok)-1])},
		{0x01, cat(settings, ok, frame(frameData, 0, 1, make([]byte, defaultMaxFrame+1)...))},
		{0x01, cat(settings, ok, []byte{0xff, 0xff, 0xff, frameData, 0, 0, 0, 0, 1}, []byte("claims 16 MiB"))},
		{0x01, cat(settings, ok, frame(frameData, flagPadded, 1, 200, 'x'))},
		{0x01, cat(settings, ok, frame(framePing, 0, 0, []byte("1234567")...))},
	} {
		f.Add(seed.ops, seed.stream)
	}
	f.Fuzz(func(t *testing.T, ops uint8, stream []byte) {
		if err := fuzzSession(ops, stream); err != nil {
			t.Fatal(err)
		}
	})
}
