package h2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rfc6455/websocket/internal/hpack"
)

// Stream is one stream of a ClientConn: Read returns the DATA the server
// sends, Write sends DATA. Its deadlines interrupt a blocked Read or
// Write and leave the stream as it was, as a socket's do.
type Stream struct {
	cc *ClientConn
	id uint32 // immutable

	sendWindow int64 // cc.mu

	mu         sync.Mutex
	buf        []byte        // mu: received, not yet read
	off        int           // mu: read position in buf
	recvWindow int64         // mu: what the server may still send
	unacked    int64         // mu: bytes read (or padding) not yet credited back
	rerr       error         // mu: the end of the input: io.EOF, or why the stream ended
	werr       error         // mu: why writes fail, once they do
	endSent    bool          // mu: the stream ended: END_STREAM or RST_STREAM went out or is queued, or none is needed
	closed     bool          // mu: Close was called
	status     int           // mu: the response's status, 0 before it
	interim    int           // mu: informational responses so far
	header     []hpack.Field // mu: the response's fields

	readable chan struct{} // signaled when buf, rerr or status change
	sendable chan struct{} // signaled when the send windows grow or werr is set
	response chan struct{} // closed when the response's header (or the end) arrived
	quit     chan struct{} // closed by Close
	rdl, wdl deadline

	writing sync.Mutex // one Write at a time

	// refused is set when a GOAWAY refused the stream, its HEADERS
	// perhaps still queued (writeCtrlLocked drops them, and every frame
	// of the stream after them; writeDataLocked sends it no DATA).
	refused atomic.Bool
}

func newStream(cc *ClientConn, id uint32, sendWindow int64) *Stream {
	return &Stream{
		cc:         cc,
		id:         id,
		sendWindow: sendWindow,
		recvWindow: int64(cc.streamWindow),
		readable:   make(chan struct{}, 1),
		sendable:   make(chan struct{}, 1),
		response:   make(chan struct{}),
		quit:       make(chan struct{}),
		rdl:        newDeadline(),
		wdl:        newDeadline(),
	}
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *Stream) kickSend() { kick(s.sendable) }

// receive takes in the payload of a DATA frame; padding is what the
// frame held besides.
func (s *Stream) receive(data []byte, padding uint32, endStream bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == 0 {
		return streamError(ErrCodeProtocol, "DATA before the response's HEADERS")
	}
	if s.rerr != nil {
		// §5.1: DATA after END_STREAM is a stream error STREAM_CLOSED.
		if s.rerr == io.EOF {
			return streamError(ErrCodeStreamClosed, "DATA after END_STREAM")
		}
		return nil
	}
	n := int64(len(data)) + int64(padding)
	if n > s.recvWindow {
		return streamError(ErrCodeFlowControl, "%d bytes of DATA past a window of %d", n, s.recvWindow)
	}
	s.recvWindow -= n
	s.unacked += int64(padding)
	if s.closed {
		s.unacked += int64(len(data))
	} else {
		switch {
		case s.off == len(s.buf):
			s.buf, s.off = s.buf[:0], 0
		case s.off > 0 && len(s.buf)+len(data) > cap(s.buf):
			// A reader that keeps a little behind never empties buf:
			// what it read must not stay at buf's front, or buf would
			// grow with every byte the stream carries. What is unread
			// is at most the window, so buf stays within about twice it.
			n := copy(s.buf, s.buf[s.off:])
			s.buf, s.off = s.buf[:n], 0
		}
		s.buf = append(s.buf, data...)
	}
	if endStream {
		s.rerr = io.EOF
	}
	s.creditLocked()
	kick(s.readable)
	return nil
}

// creditLocked sends WINDOW_UPDATE for what was read once it is half the
// window, so that the server never waits while the reader keeps up.
//
// The caller holds s.mu.
func (s *Stream) creditLocked() {
	if s.unacked >= max(int64(s.cc.streamWindow/2), 1) && s.rerr == nil {
		s.cc.queueCtrl(appendWindowUpdate(nil, s.id, uint32(s.unacked)))
		s.recvWindow += s.unacked
		s.unacked = 0
	}
}

// receiveHeaders takes in a header block: the response's, after
// informational ones, or trailers that end the stream.
func (s *Stream) receiveHeaders(fields []hpack.Field, endStream bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rerr != nil {
		return streamError(ErrCodeStreamClosed, "HEADERS after the end of the stream")
	}
	if s.status != 0 {
		// Trailers: §8.1 "MUST have END_STREAM set".
		if !endStream {
			return streamError(ErrCodeProtocol, "trailers without END_STREAM")
		}
		for _, f := range fields {
			// §8.1: "Trailers MUST NOT include pseudo-header fields",
			// whose names checkField refuses with those it breaks §8.2's
			// rules for.
			if err := checkField(f); err != nil {
				return streamError(ErrCodeProtocol, "malformed trailers: %v", err)
			}
		}
		s.rerr = io.EOF
		kick(s.readable)
		return nil
	}
	status, err := checkResponse(fields)
	if err != nil {
		return err
	}
	if status < 200 {
		if endStream {
			return streamError(ErrCodeProtocol, "informational response with END_STREAM")
		}
		// §8.1: informational responses precede the final one; a few
		// are taken, as over HTTP/1.1, not a stream of them.
		if s.interim++; s.interim > maxInterim {
			return streamError(ErrCodeProtocol, "more than %d informational responses", maxInterim)
		}
		return nil
	}
	s.status, s.header = status, fields
	if endStream {
		s.rerr = io.EOF
	}
	close(s.response)
	kick(s.readable)
	return nil
}

// maxInterim is how many informational (1xx) responses a stream takes
// before its response.
const maxInterim = 5

// checkResponse checks a response's header list (§8.2, §8.3.2) and
// returns its status.
func checkResponse(fields []hpack.Field) (int, error) {
	status := 0
	regular := false
	for _, f := range fields {
		if strings.HasPrefix(f.Name, ":") {
			if f.Name != ":status" || regular || status != 0 {
				return 0, streamError(ErrCodeProtocol, "malformed response: pseudo-header %s", quote(f.Name))
			}
			n, err := strconv.Atoi(f.Value)
			if err != nil || len(f.Value) != 3 || n < 100 {
				return 0, streamError(ErrCodeProtocol, "malformed response: :status %s", quote(f.Value))
			}
			status = n
			continue
		}
		regular = true
		if err := checkField(f); err != nil {
			return 0, streamError(ErrCodeProtocol, "malformed response: %v", err)
		}
	}
	if status == 0 {
		return 0, streamError(ErrCodeProtocol, "malformed response: no :status")
	}
	return status, nil
}

// checkField checks a regular field's name and value (§8.2.1, §8.2.2).
func checkField(f hpack.Field) error {
	if f.Name == "" {
		return errors.New("empty field name")
	}
	for i := 0; i < len(f.Name); i++ {
		c := f.Name[i]
		if c <= ' ' || c >= 0x7f || c == ':' || ('A' <= c && c <= 'Z') {
			return fmt.Errorf("field name %s", quote(f.Name))
		}
	}
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return fmt.Errorf("connection-specific field %s", quote(f.Name))
	}
	v := f.Value
	if strings.ContainsAny(v, "\x00\r\n") || strings.TrimLeft(v, " \t") != v || strings.TrimRight(v, " \t") != v {
		return fmt.Errorf("value of %s", quote(f.Name))
	}
	return nil
}

// CheckRequestField checks a regular field the client is to send.
func CheckRequestField(f hpack.Field) error {
	if f.Name == "te" && f.Value != "trailers" {
		return errors.New(`field "te" other than "trailers"`)
	}
	return checkField(f)
}

// Response waits for the response's header and returns its status and
// regular fields.
func (s *Stream) Response(ctx context.Context) (int, []hpack.Field, error) {
	select {
	case <-s.response:
	case <-s.cc.done:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.status != 0:
		return s.status, s.header[1:], nil // :status first, as checkResponse required
	case s.closed:
		return 0, nil, net.ErrClosed
	case s.rerr != nil:
		return 0, nil, s.rerr
	}
	return 0, nil, s.cc.Err()
}

// end ends the stream's input with rerr, unless it ended already, and its
// output with werr.
func (s *Stream) end(rerr, werr error) {
	s.mu.Lock()
	if s.rerr == nil {
		s.rerr = rerr
	}
	if s.werr == nil {
		s.werr = werr
	}
	s.endSent = true
	s.mu.Unlock()
	kick(s.readable)
	kick(s.sendable)
	s.wakeResponse()
}

// wakeResponse lets Response return once the stream ended without one.
func (s *Stream) wakeResponse() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == 0 {
		select {
		case <-s.response:
		default:
			close(s.response)
		}
	}
}

// Read reads DATA the server sent; it returns io.EOF after END_STREAM.
func (s *Stream) Read(p []byte) (int, error) {
	for {
		select {
		case <-s.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		default:
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return 0, net.ErrClosed
		}
		if s.off < len(s.buf) {
			n := copy(p, s.buf[s.off:])
			s.off += n
			if s.off == len(s.buf) {
				s.buf, s.off = s.buf[:0], 0
				if cap(s.buf) > 64<<10 {
					s.buf = nil
				}
			}
			s.unacked += int64(n)
			s.creditLocked()
			s.mu.Unlock()
			return n, nil
		}
		if err := s.rerr; err != nil {
			s.mu.Unlock()
			return 0, err
		}
		s.mu.Unlock()
		select {
		case <-s.readable:
		case <-s.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// Write sends p in DATA frames as the flow-control windows allow.
func (s *Stream) Write(p []byte) (int, error) {
	s.writing.Lock()
	defer s.writing.Unlock()
	cc := s.cc
	written := 0
	for len(p) > 0 {
		dl := s.wdl.wait()
		select {
		case <-dl:
			return written, os.ErrDeadlineExceeded
		default:
		}
		s.mu.Lock()
		werr, closed := s.werr, s.closed
		s.mu.Unlock()
		if closed {
			return written, net.ErrClosed
		}
		if werr != nil {
			return written, werr
		}
		cc.mu.Lock()
		n := int64(len(p))
		n = min(n, s.sendWindow, cc.sendWindow, 64<<10)
		maxFrame := cc.maxFrame
		if n > 0 {
			s.sendWindow -= n
			cc.sendWindow -= n
		}
		cc.mu.Unlock()
		if n <= 0 {
			select {
			case <-s.sendable:
			case <-dl:
				return written, os.ErrDeadlineExceeded
			case <-cc.done:
			}
			continue
		}
		select {
		case cc.wlock <- struct{}{}:
		case <-dl:
			s.giveBack(n)
			return written, os.ErrDeadlineExceeded
		case <-s.quit:
			s.giveBack(n)
			return written, net.ErrClosed
		case <-cc.done:
			continue
		}
		cc.flushStart(s)
		sent, err := cc.writeDataLocked(s, p[:n], maxFrame)
		cc.flushEnd()
		stalled := errors.Is(err, os.ErrDeadlineExceeded)
		if stalled {
			// The server did not take our frames within stallWait past
			// the deadline, or past Close, one maybe half sent: the
			// connection ends, before another writer, taking the write
			// lock, finds the timeout and ends it for that.
			cc.fail(errStalled)
		}
		<-cc.wlock
		if err != nil {
			if stalled {
				s.mu.Lock()
				closed := s.closed
				s.mu.Unlock()
				if closed {
					return written, net.ErrClosed
				}
				return written, ErrWriteStalled
			}
			// A write cut by the end of the connection reports that
			// end, not the closed socket's error.
			cc.fail(err)
			return written, cc.Err()
		}
		if !sent {
			// The stream ended meanwhile, with werr set or closed:
			// the loop's next turn says which. A GOAWAY that refused
			// it ends it a moment after marking it: wait for that
			// (end kicks sendable) rather than spin.
			s.giveBack(n)
			s.mu.Lock()
			pending := s.werr == nil && !s.closed
			s.mu.Unlock()
			if pending && s.refused.Load() {
				select {
				case <-s.sendable:
				case <-dl:
				case <-cc.done:
				}
			}
			continue
		}
		written += int(n)
		p = p[n:]
	}
	return written, nil
}

// giveBack returns window taken for a write that did not happen, and
// wakes the other streams if the connection's window was spent: one may
// wait for it.
func (s *Stream) giveBack(n int64) {
	cc := s.cc
	cc.mu.Lock()
	s.sendWindow += n
	spent := cc.sendWindow <= 0
	cc.sendWindow += n
	cc.mu.Unlock()
	if spent {
		cc.kickSendAll(s)
	}
}

// Close ends the stream: with END_STREAM if the server has ended its
// side already, so that the stream closes cleanly, else with RST_STREAM
// CANCEL. Blocked reads and writes return net.ErrClosed; but a write
// whose frames are going out to the socket, a frame maybe half sent, goes
// on while the socket takes them, and ends the connection if it stops
// taking them for closeStallWait.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.quit)
	send := !s.endSent
	s.endSent = true
	clean := s.rerr == io.EOF && s.werr == nil
	s.buf, s.off = nil, 0
	s.mu.Unlock()
	kick(s.readable)
	kick(s.sendable)
	s.wakeResponse()
	s.cc.flushMu.Lock()
	if s.cc.flushing == s {
		s.cc.boundClosedFlushLocked()
	}
	s.cc.flushMu.Unlock()
	if send {
		if clean {
			s.cc.queueCtrl(appendFrameHeader(nil, 0, frameData, flagEndStream, s.id))
		} else {
			s.cc.queueCtrl(appendRSTStream(nil, s.id, ErrCodeCancel))
		}
	}
	s.cc.removeStream(s)
	return nil
}

// ID returns the stream's identifier.
func (s *Stream) ID() uint32 { return s.id }

// Conn returns the connection the stream belongs to.
func (s *Stream) Conn() *ClientConn { return s.cc }

// SetReadDeadline and SetWriteDeadline bound blocked calls as a socket's
// deadlines do: a call past its deadline returns os.ErrDeadlineExceeded
// and the stream is left as it was; except that a Write whose frames the
// socket has not taken stallWait past the deadline ends the connection,
// which cannot go on with a frame half sent, and returns ErrWriteStalled.
func (s *Stream) SetReadDeadline(t time.Time) error { s.rdl.set(t); return nil }

// SetWriteDeadline also moves the socket's write deadline if s's frames
// are going out (see ClientConn.flushStart); it sets the deadline under
// flushMu, where flushStart reads it, so that neither misses the other.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.cc.flushMu.Lock()
	defer s.cc.flushMu.Unlock()
	s.wdl.set(t)
	if s.cc.flushing == s {
		s.cc.setFlushDeadlineLocked(t)
	}
	return nil
}

// LocalAddr and RemoteAddr are the connection's.
func (s *Stream) LocalAddr() net.Addr  { return s.cc.LocalAddr() }
func (s *Stream) RemoteAddr() net.Addr { return s.cc.RemoteAddr() }

// deadline is a channel closed when a time passes, which set moves.
type deadline struct {
	mu    sync.Mutex
	at    time.Time // the deadline set, zero for none
	timer *time.Timer
	gen   uint64
	ch    chan struct{}
	shut  bool // ch is closed
}

func newDeadline() deadline { return deadline{ch: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.gen++
	d.at = t
	if d.shut {
		d.ch, d.shut = make(chan struct{}), false
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		d.shut = true
		return
	}
	gen := d.gen
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		if d.gen == gen && !d.shut {
			close(d.ch)
			d.shut = true
		}
		d.mu.Unlock()
	})
}

// when returns the deadline set, zero for none.
func (d *deadline) when() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.at
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}
