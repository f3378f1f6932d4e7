package h2

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rfc6455/websocket/internal/hpack"
)

// What we announce in our SETTINGS, and the windows we keep.
const (
	// StreamWindow is each stream's receive window unless
	// Config.StreamWindow says otherwise: the most a stream holds of
	// what the server sent and its reader has not read.
	StreamWindow = 256 << 10
	// connWindow is the connection's receive window. It is credited back
	// as data arrives, not as it is read: the stream windows bound what
	// is held, so a stream whose reader stalls does not stall the others.
	connWindow = 16 << 20
	// MaxHeaderList bounds a response's header list (names, values and 32
	// bytes per field), and maxHeaderBlock the encoded block that carries
	// it, HEADERS and CONTINUATION frames together.
	MaxHeaderList  = 1 << 20
	maxHeaderBlock = MaxHeaderList
	// headerTableSize is the HPACK dynamic table the server may use,
	// the initial value.
	headerTableSize = 4096
)

// ClientConn is an HTTP/2 connection from the client side. Two goroutines
// serve it: readLoop reads and dispatches every frame, and ctrlLoop writes
// the frames readLoop and readers owe the server (acknowledgements,
// WINDOW_UPDATE, RST_STREAM) and the HEADERS that open streams, so that
// none of them waits on a blocked socket.
type ClientConn struct {
	nc           net.Conn      // immutable
	headerLimit  uint32        // immutable: the response header list we take, and announce
	streamWindow uint32        // immutable: each stream's receive window (Config.StreamWindow)
	pingIdle     time.Duration // immutable: Config.SendPingTimeout
	pingTimeout  time.Duration // immutable: Config.PingTimeout
	writeTimeout time.Duration // immutable: Config.WriteByteTimeout

	// lastFrame is when readLoop last read a frame, by nanotime, kept
	// only when pingIdle is set; health runs checkHealth.
	lastFrame atomic.Int64
	health    *time.Timer // mu

	// wlock is the write lock, a channel so that a writer can give up
	// when its deadline passes: held while frames go into bw and out.
	wlock chan struct{}
	bw    *bufio.Writer // wlock
	wbuf  []byte        // wlock: frame headers being encoded

	ctrlMu   sync.Mutex
	ctrl     []byte          // ctrlMu: frames queued for ctrlLoop or the next writer
	opens    []*Stream       // ctrlMu: the streams whose HEADERS are in ctrl
	opensLen int             // ctrlMu: the bytes of those HEADERS
	refusals atomic.Bool     // a GOAWAY refused streams (Stream.refused)
	unopened map[uint32]bool // wlock: refused streams whose HEADERS stayed out
	ctrlKick chan struct{}   // signaled when ctrl gains frames
	ctrlOut  []byte          // wlock: the queue's other buffer, last written

	// flushMu guards flushing, the stream whose frames are going out to
	// the socket under wlock, so that a deadline that moves meanwhile
	// reaches the socket's write deadline (see flushStart).
	flushMu    sync.Mutex
	flushing   *Stream       // flushMu
	flushGen   uint64        // flushMu: numbers the flushes
	flushDL    time.Time     // flushMu: the flush's deadline, before flushGrace, if boundDL is set
	flushGrace time.Duration // flushMu: how long a piece may take past flushDL: stallWait, or closeStallWait
	boundDL    time.Time     // flushMu: the socket's deadline for the flush, flushGrace past flushDL (or past a piece's start), zero if it has none
	shutDL     time.Time     // flushMu: the deadline of the GOAWAY that Close or failWith sends
	pieceDL    time.Time     // flushMu: the deadline WriteByteTimeout gives the piece being written, zero if none
	socketDL   time.Time     // flushMu: the socket's write deadline, as applyDeadlineLocked set it last

	mu            sync.Mutex
	streams       map[uint32]*Stream // mu: open streams by ID
	nextID        uint32             // mu: the ID of the next stream
	reserved      int                // mu: streams promised by Reserve, not yet opened
	maxStreams    uint32             // mu: the server's SETTINGS_MAX_CONCURRENT_STREAMS
	sendWindow    int64              // mu: the connection's send window
	initialWindow int64              // mu: the server's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame      int                // mu: the server's SETTINGS_MAX_FRAME_SIZE
	maxHeaderList uint32             // mu: the server's SETTINGS_MAX_HEADER_LIST_SIZE, 0 if none
	xconnect      bool               // mu: the server allows extended CONNECT (RFC 8441 §3)
	goAway        bool               // mu: the server sent GOAWAY, or we are closing: no new streams
	closing       bool               // mu: Close has begun
	err           error              // mu: why the connection ended, once done is closed
	onIdle        func()             // mu: called, without mu, when the last stream ends

	settings chan struct{} // closed when the server's first SETTINGS arrive
	done     chan struct{} // closed when the connection has ended

	// The PING under way, whose answer every Ping waits for: those
	// that come while it is out join it rather than send their own, so
	// that an answer slow to come counts for all of them.
	pingMu   sync.Mutex
	pingOut  *pingFlight // pingMu: nil when no PING is out
	pingLast uint64      // pingMu: the payload of the last PING sent

	// Fields of readLoop alone.
	dec        *hpack.Decoder
	recvUnsent uint32 // connection window credit not yet sent
	block      []byte // the header block being assembled
	blockID    uint32 // its stream, 0 when none
	blockEnd   bool   // its HEADERS frame had END_STREAM
}

// NewClientConn starts HTTP/2 on nc, a connection on which the client
// speaks first (TLS with ALPN h2, or cleartext with prior knowledge): it
// sends the preface and our SETTINGS and starts serving the connection.
// The server's SETTINGS arrive later; WaitSettings waits for them.
// onIdle, if not nil, is called each time the connection's last stream
// ends with no Reserve outstanding.
func NewClientConn(nc net.Conn, onIdle func()) (*ClientConn, error) {
	return NewClientConnConfig(nc, onIdle, Config{})
}

// Config is what a ClientConn may be told besides its socket; the zero
// Config is NewClientConn's.
type Config struct {
	// HeaderLimit bounds a response's header list, and is announced as
	// SETTINGS_MAX_HEADER_LIST_SIZE; MaxHeaderList if 0. A list past it
	// fails its stream alone; the encoded block, whose end ends the
	// connection when it is past its bound, stays bounded by
	// maxHeaderBlock at least, so that a list a little past a small
	// limit resets its stream, not every stream.
	HeaderLimit uint32
	// StreamWindow is each stream's receive window, announced as
	// SETTINGS_INITIAL_WINDOW_SIZE: the most a stream holds of what the
	// server sent and its reader has not read. The package's
	// StreamWindow if 0; at most 2^31-1.
	StreamWindow uint32
	// SendPingTimeout, if positive, is how long the connection may go
	// without a frame from the server before it sends a PING, and
	// PingTimeout (15 s if not positive) how long that PING may go
	// unanswered before the connection ends: a server, or a path to it,
	// gone silent is found without a stream's help.
	SendPingTimeout, PingTimeout time.Duration
	// WriteByteTimeout, if positive, ends the connection when its socket
	// takes none of the bytes waiting to go out for that long.
	WriteByteTimeout time.Duration
}

// NewClientConnConfig is NewClientConn with cfg.
func NewClientConnConfig(nc net.Conn, onIdle func(), cfg Config) (*ClientConn, error) {
	if cfg.HeaderLimit == 0 {
		cfg.HeaderLimit = MaxHeaderList
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = 15 * time.Second
	}
	if cfg.StreamWindow == 0 || cfg.StreamWindow > maxWindow {
		cfg.StreamWindow = StreamWindow
	}
	headerLimit := cfg.HeaderLimit
	cc := &ClientConn{
		nc:            nc,
		headerLimit:   headerLimit,
		streamWindow:  cfg.StreamWindow,
		pingIdle:      cfg.SendPingTimeout,
		pingTimeout:   cfg.PingTimeout,
		writeTimeout:  cfg.WriteByteTimeout,
		wlock:         make(chan struct{}, 1),
		ctrlKick:      make(chan struct{}, 1),
		streams:       map[uint32]*Stream{},
		nextID:        1,
		maxStreams:    1<<32 - 1, // §6.5.2: "Initially, there is no limit"
		sendWindow:    defaultWindow,
		initialWindow: defaultWindow,
		maxFrame:      defaultMaxFrame,
		onIdle:        onIdle,
		settings:      make(chan struct{}),
		done:          make(chan struct{}),
		dec:           hpack.NewDecoder(headerTableSize),
	}
	cc.bw = bufio.NewWriterSize(socketWriter{cc}, 16<<10)
	b := append([]byte(preface), appendSettings(nil,
		settingEnablePush, 0,
		settingInitialWindowSize, cfg.StreamWindow,
		settingMaxHeaderListSize, headerLimit,
	)...)
	b = appendWindowUpdate(b, 0, connWindow-defaultWindow)
	if _, err := nc.Write(b); err != nil {
		nc.Close()
		return nil, err
	}
	if cc.pingIdle > 0 {
		cc.lastFrame.Store(nanotime())
		cc.mu.Lock()
		cc.health = time.AfterFunc(cc.pingIdle, cc.checkHealth)
		cc.mu.Unlock()
	}
	go cc.readLoop()
	go cc.ctrlLoop()
	return cc, nil
}

// checkHealth runs when the connection may have gone pingIdle without a
// frame from the server: if it has, it pings the server, and ends the
// connection if the PING goes unanswered for pingTimeout; then it waits
// for the next time, if the connection lives.
func (cc *ClientConn) checkHealth() {
	next := cc.pingIdle
	if quiet := time.Duration(nanotime() - cc.lastFrame.Load()); quiet < cc.pingIdle {
		next -= quiet
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), cc.pingTimeout)
		err := cc.Ping(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			cc.fail(fmt.Errorf("http2: connection closed: a PING went unanswered for %v", cc.pingTimeout))
		}
	}
	cc.mu.Lock()
	if cc.err == nil {
		cc.health.Reset(next)
	}
	cc.mu.Unlock()
}

// nanotime is a monotonic clock, in nanoseconds.
func nanotime() int64 { return int64(time.Since(clockStart)) }

var clockStart = time.Now()

// WaitSettings waits for the server's first SETTINGS frame, which must
// open its side of the connection (§3.4).
func (cc *ClientConn) WaitSettings(ctx context.Context) error {
	select {
	case <-cc.settings:
		return nil
	case <-cc.done:
		return cc.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ExtendedConnect reports whether the server has announced
// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3).
func (cc *ClientConn) ExtendedConnect() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.xconnect
}

// Err returns why the connection ended, or nil while it lives.
func (cc *ClientConn) Err() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err
}

// Done is closed when the connection has ended.
func (cc *ClientConn) Done() <-chan struct{} { return cc.done }

// Reserve promises a stream to a caller about to open one, reporting
// false when the connection cannot take it. A reservation holds the
// connection open until OpenStream uses it or Unreserve returns it.
func (cc *ClientConn) Reserve() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.availableLocked() {
		return false
	}
	cc.reserved++
	return true
}

// Unreserve returns a reservation that will not be used.
func (cc *ClientConn) Unreserve() {
	cc.mu.Lock()
	cc.reserved--
	idle := cc.idleLocked()
	cc.mu.Unlock()
	if idle {
		cc.onIdle()
	}
}

func (cc *ClientConn) availableLocked() bool {
	return cc.err == nil && !cc.goAway && !cc.closing &&
		uint64(len(cc.streams)+cc.reserved) < uint64(cc.maxStreams) &&
		cc.nextID < maxWindow-2*uint32(cc.reserved)
}

// Ping sends a PING and waits for the server's acknowledgment, until ctx
// ends: a connection whose server, or the path to it, has gone silent is
// told from one that is slow to answer a request. A Ping that comes while
// another's PING is out waits for that one's answer, which comes after it
// began as surely as its own would.
func (cc *ClientConn) Ping(ctx context.Context) error {
	cc.pingMu.Lock()
	f := cc.pingOut
	if f == nil {
		// A payload of its own, so that the late acknowledgment of an
		// earlier PING is not taken for this one's.
		cc.pingLast++
		f = &pingFlight{data: cc.pingLast, acked: make(chan struct{})}
		cc.pingOut = f
		cc.queueCtrl(binary.BigEndian.AppendUint64(appendFrameHeader(nil, 8, framePing, 0, 0), f.data))
	}
	cc.pingMu.Unlock()
	select {
	case <-f.acked:
		return nil
	case <-cc.done:
		return cc.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pingFlight is a PING out, and the channel its acknowledgment closes.
type pingFlight struct {
	data  uint64
	acked chan struct{}
}

// pingAcked takes in the acknowledgment of a PING whose payload was data.
func (cc *ClientConn) pingAcked(data uint64) {
	cc.pingMu.Lock()
	defer cc.pingMu.Unlock()
	if f := cc.pingOut; f != nil && f.data == data {
		close(f.acked)
		cc.pingOut = nil
	}
}

// Retire takes no new streams on the connection, which stays open for
// the streams it has, and closes once they end, as after the server's
// GOAWAY.
func (cc *ClientConn) Retire() {
	cc.mu.Lock()
	cc.goAway = true
	idle := cc.idleLocked()
	cc.mu.Unlock()
	if idle {
		cc.onIdle()
	}
}

// Idle reports whether the connection has no stream and no reservation.
func (cc *ClientConn) Idle() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.streams) == 0 && cc.reserved == 0
}

func (cc *ClientConn) idleLocked() bool {
	return cc.onIdle != nil && len(cc.streams) == 0 && cc.reserved == 0
}

// Close sends GOAWAY, if the socket takes it within a second, and closes
// the connection, ending every stream.
func (cc *ClientConn) Close() error {
	cc.mu.Lock()
	if cc.closing || cc.err != nil {
		cc.mu.Unlock()
		<-cc.done
		return nil
	}
	cc.closing = true
	cc.mu.Unlock()
	t := time.NewTimer(time.Second)
	select {
	case cc.wlock <- struct{}{}:
		cc.boundShutdown(time.Second)
		cc.writeCtrlLocked()
		cc.bw.Write(appendGoAway(nil, 0, ErrCodeNo, ""))
		cc.bw.Flush()
		<-cc.wlock
	case <-t.C:
	case <-cc.done:
	}
	t.Stop()
	cc.fail(net.ErrClosed)
	<-cc.done
	return nil
}

// fail ends the connection with err: every stream ends with it, the
// socket closes, and readLoop returns.
func (cc *ClientConn) fail(err error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	cc.err = err
	if cc.health != nil {
		cc.health.Stop()
	}
	streams := cc.streams
	cc.streams = map[uint32]*Stream{}
	// The streams leave without removeStream, which would have called
	// onIdle for the last: the connection's owner (Dial's pool) must
	// hear that it is done with, or keep it for good.
	idle := len(streams) > 0 && cc.idleLocked()
	cc.mu.Unlock()
	if tc, ok := cc.nc.(*tls.Conn); ok {
		// Without TLS's close_notify alert: crypto/tls would wait up to
		// 5 s for a socket that may not take it (the server reads
		// nothing), and the GOAWAY, if any, said goodbye.
		tc.NetConn().Close()
	} else {
		cc.nc.Close()
	}
	for _, s := range streams {
		s.end(err, err)
	}
	close(cc.done)
	if idle {
		cc.onIdle()
	}
}

// failWith reports a connection error of ours to the server in a GOAWAY
// (§5.4.1) and ends the connection. A writer in the middle of a frame is
// given up to goAwayWait to finish it, and the GOAWAY as long to go out.
func (cc *ClientConn) failWith(ce *ConnError) {
	t := time.NewTimer(goAwayWait)
	defer t.Stop()
	select {
	case cc.wlock <- struct{}{}:
		cc.boundShutdown(goAwayWait)
		cc.bw.Write(appendGoAway(nil, 0, ce.Code, ce.Reason))
		cc.bw.Flush()
		<-cc.wlock
	case <-t.C:
	}
	cc.fail(ce)
}

const goAwayWait = time.Second

// maxCtrlQueue bounds the control frames queued and not yet written,
// which grow while a server that does not read asks for answers.
const maxCtrlQueue = 64 << 10

// queueCtrl queues a control frame for ctrlLoop, or the next writer, to
// send. It never waits for the socket.
func (cc *ClientConn) queueCtrl(frame []byte) {
	cc.ctrlMu.Lock()
	cc.ctrl = append(cc.ctrl, frame...)
	cc.ctrlMu.Unlock()
	cc.kickCtrl()
}

// queueOpen queues the HEADERS (and CONTINUATION) frames that open
// stream s, as queueCtrl does.
func (cc *ClientConn) queueOpen(s *Stream, frames []byte) {
	cc.ctrlMu.Lock()
	cc.opens = append(cc.opens, s)
	cc.opensLen += len(frames)
	cc.ctrl = append(cc.ctrl, frames...)
	cc.ctrlMu.Unlock()
	cc.kickCtrl()
}

func (cc *ClientConn) kickCtrl() {
	select {
	case cc.ctrlKick <- struct{}{}:
	default:
	}
}

// ctrlQueued returns how many bytes of answers are queued: the
// HEADERS that open streams are not answers, and the streams' number
// bounds them (or the caller's wait for an answer, Dial's probe).
func (cc *ClientConn) ctrlQueued() int {
	cc.ctrlMu.Lock()
	defer cc.ctrlMu.Unlock()
	return len(cc.ctrl) - cc.opensLen
}

// writeCtrlLocked puts the queued control frames in bw. It takes them
// from the queue first, so that queueCtrl never waits while they go out.
// The HEADERS of streams that a GOAWAY has refused meanwhile stay out
// (§6.8: no stream opens after a GOAWAY), and so does every frame of
// such a stream then or later: an RST_STREAM its closing queued, say,
// which the server would take for one on an idle stream (§5.1).
//
// The caller holds wlock.
func (cc *ClientConn) writeCtrlLocked() {
	cc.ctrlMu.Lock()
	out, opens := cc.ctrl, cc.opens
	cc.ctrl, cc.opens, cc.opensLen = cc.ctrlOut[:0], nil, 0
	cc.ctrlMu.Unlock()
	if cc.refusals.Load() {
		for _, s := range opens {
			if s.refused.Load() {
				if cc.unopened == nil {
					cc.unopened = make(map[uint32]bool)
				}
				cc.unopened[s.id] = true
			}
		}
		if len(cc.unopened) > 0 {
			out = dropFrames(out, cc.unopened)
		}
	}
	if len(out) > 0 {
		cc.bw.Write(out)
	}
	if cap(out) > 4<<10 {
		out = nil // left by a burst: not kept for the connection's life
	}
	cc.ctrlOut = out
}

// dropFrames takes the frames of the streams in ids out of b, a run of
// whole frames, in place.
func dropFrames(b []byte, ids map[uint32]bool) []byte {
	kept := b[:0]
	for len(b) >= headerLen {
		h := parseFrameHeader(b)
		n := headerLen + int(h.length)
		if !ids[h.streamID] {
			kept = append(kept, b[:n]...)
		}
		b = b[n:]
	}
	return kept
}

// ctrlLoop writes the control frames queued, until the connection ends.
func (cc *ClientConn) ctrlLoop() {
	for {
		select {
		case <-cc.ctrlKick:
		case <-cc.done:
			return
		}
		select {
		case cc.wlock <- struct{}{}:
		case <-cc.done:
			return
		}
		cc.writeCtrlLocked()
		err := cc.bw.Flush()
		<-cc.wlock
		if err != nil {
			cc.fail(err)
			return
		}
	}
}

// readLoop reads frames until the connection fails.
func (cc *ClientConn) readLoop() {
	br := bufio.NewReaderSize(cc.nc, 32<<10)
	buf := make([]byte, headerLen+defaultMaxFrame)
	first := true
	for {
		hb := buf[:headerLen]
		if _, err := io.ReadFull(br, hb); err != nil {
			cc.fail(readErr(err))
			return
		}
		if first && string(hb[:5]) == "HTTP/" {
			cc.fail(fmt.Errorf("%w: it answered %q", ErrNotHTTP2, firstLine(hb, br)))
			return
		}
		h := parseFrameHeader(hb)
		if first && (h.typ != frameSettings || h.flags&flagAck != 0) {
			// §3.4: "The server connection preface consists of a
			// potentially empty SETTINGS frame that MUST be the first
			// frame the server sends".
			cc.failWith(connError(ErrCodeProtocol, "first frame of type %d, not SETTINGS", h.typ))
			return
		}
		first = false
		if cc.pingIdle > 0 {
			cc.lastFrame.Store(nanotime())
		}
		// §4.2: "An endpoint MUST send an error code of FRAME_SIZE_ERROR
		// if a frame exceeds the size defined in SETTINGS_MAX_FRAME_SIZE".
		if h.length > defaultMaxFrame {
			cc.failWith(connError(ErrCodeFrameSize, "frame of %d bytes, past %d", h.length, defaultMaxFrame))
			return
		}
		p := buf[headerLen : headerLen+int(h.length)]
		if _, err := io.ReadFull(br, p); err != nil {
			cc.fail(readErr(err))
			return
		}
		err := cc.dispatch(h, p)
		// §10.5: a server that asks for answers (PING, SETTINGS) and
		// does not read them would have them queue without end.
		if err == nil && cc.ctrlQueued() > maxCtrlQueue {
			err = connError(ErrCodeEnhanceYourCalm, "over %d bytes of answers queued for a server that does not read them", maxCtrlQueue)
		}
		var se *StreamError
		switch {
		case err == nil:
		case errors.As(err, &se):
			cc.resetStream(h.streamID, se)
		default:
			var ce *ConnError
			if !errors.As(err, &ce) {
				ce = connError(ErrCodeInternal, "%v", err)
			}
			if ce.Remote {
				cc.fail(ce)
			} else {
				cc.failWith(ce)
			}
			return
		}
	}
}

// readErr names the end of the socket.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &ConnError{Code: ErrCodeNo, Reason: "connection closed", Remote: true}
	}
	return err
}

// firstLine returns the start of a server's HTTP/1.x answer.
func firstLine(head []byte, br *bufio.Reader) string {
	rest, _ := br.Peek(min(br.Buffered(), 100))
	line, _, _ := strings.Cut(string(head)+string(rest), "\r\n")
	return line
}

// dispatch handles one frame; an error it returns is a *StreamError for
// h.streamID or a *ConnError.
func (cc *ClientConn) dispatch(h frameHeader, p []byte) error {
	if cc.blockID != 0 && h.typ != frameContinuation {
		// §6.10: a header block's frames must be contiguous.
		return connError(ErrCodeProtocol, "frame of type %d inside a header block", h.typ)
	}
	switch h.typ {
	case frameData:
		return cc.onData(h, p)
	case frameHeaders:
		return cc.onHeaders(h, p)
	case frameContinuation:
		return cc.onContinuation(h, p)
	case framePriority:
		if h.streamID == 0 {
			return connError(ErrCodeProtocol, "PRIORITY on stream 0")
		}
		if h.length != 5 {
			return streamError(ErrCodeFrameSize, "PRIORITY of %d bytes", h.length)
		}
		return nil
	case frameRSTStream:
		return cc.onRSTStream(h, p)
	case frameSettings:
		return cc.onSettings(h, p)
	case framePushPromise:
		// §8.4: a client that disabled push treats PUSH_PROMISE as a
		// connection error.
		return connError(ErrCodeProtocol, "PUSH_PROMISE with push disabled")
	case framePing:
		if h.streamID != 0 {
			return connError(ErrCodeProtocol, "PING on stream %d", h.streamID)
		}
		if h.length != 8 {
			return connError(ErrCodeFrameSize, "PING of %d bytes", h.length)
		}
		if h.flags&flagAck == 0 {
			cc.queueCtrl(append(appendFrameHeader(nil, 8, framePing, flagAck, 0), p...))
		} else {
			cc.pingAcked(binary.BigEndian.Uint64(p))
		}
		return nil
	case frameGoAway:
		return cc.onGoAway(h, p)
	case frameWindowUpdate:
		return cc.onWindowUpdate(h, p)
	}
	return nil // §4.1: unknown frame types are ignored
}

// stream returns the open stream id, or nil. A frame for a stream that
// was never opened (§5.1, idle) is a connection error.
func (cc *ClientConn) stream(id uint32, typ string) (*Stream, error) {
	if id == 0 {
		return nil, connError(ErrCodeProtocol, "%s on stream 0", typ)
	}
	cc.mu.Lock()
	s := cc.streams[id]
	next := cc.nextID
	cc.mu.Unlock()
	if s == nil && (id >= next || id%2 == 0) {
		return nil, connError(ErrCodeProtocol, "%s on stream %d, which was not opened", typ, id)
	}
	return s, nil
}

func (cc *ClientConn) onData(h frameHeader, p []byte) error {
	s, err := cc.stream(h.streamID, "DATA")
	if err != nil {
		return err
	}
	// The whole frame counts against the windows (§6.9.1), padding
	// included; the connection's is credited back at once.
	cc.recvUnsent += h.length
	if cc.recvUnsent >= connWindow/4 {
		cc.queueCtrl(appendWindowUpdate(nil, 0, cc.recvUnsent))
		cc.recvUnsent = 0
	}
	data, err := unpad(h, p)
	if err != nil {
		return err
	}
	if s == nil {
		// A stream we closed or reset: §5.1 allows frames in flight.
		return nil
	}
	return s.receive(data, h.length-uint32(len(data)), h.flags&flagEndStream != 0)
}

func (cc *ClientConn) onHeaders(h frameHeader, p []byte) error {
	if h.streamID == 0 {
		return connError(ErrCodeProtocol, "HEADERS on stream 0")
	}
	frag, err := unpad(h, p)
	if err != nil {
		return err
	}
	if h.flags&flagPriority != 0 {
		if len(frag) < 5 {
			return connError(ErrCodeFrameSize, "HEADERS too short for its priority")
		}
		frag = frag[5:]
	}
	cc.block = append(cc.block[:0], frag...)
	cc.blockID = h.streamID
	cc.blockEnd = h.flags&flagEndStream != 0
	if h.flags&flagEndHeaders == 0 {
		return nil
	}
	return cc.endBlock()
}

func (cc *ClientConn) onContinuation(h frameHeader, p []byte) error {
	if cc.blockID == 0 || h.streamID != cc.blockID {
		return connError(ErrCodeProtocol, "CONTINUATION outside a header block")
	}
	if limit := max(int(cc.headerLimit), maxHeaderBlock); len(cc.block)+len(p) > limit {
		return connError(ErrCodeEnhanceYourCalm, "header block past %d bytes", limit)
	}
	cc.block = append(cc.block, p...)
	if h.flags&flagEndHeaders == 0 {
		return nil
	}
	return cc.endBlock()
}

// endBlock decodes a complete header block, always, so that the dynamic
// table stays in step with the server's encoder, and hands the fields to
// their stream.
func (cc *ClientConn) endBlock() error {
	id, end := cc.blockID, cc.blockEnd
	block := cc.block
	cc.blockID = 0
	if cap(cc.block) > 64<<10 {
		cc.block = nil
	}
	var fields []hpack.Field
	err := cc.dec.Decode(block, uint64(cc.headerLimit), func(f hpack.Field) { fields = append(fields, f) })
	if err != nil && !errors.Is(err, hpack.ErrListTooLarge) {
		// §4.3: "A decoding error in a header block MUST be treated as a
		// connection error of type COMPRESSION_ERROR."
		return connError(ErrCodeCompression, "%v", err)
	}
	s, serr := cc.stream(id, "HEADERS")
	if serr != nil {
		return serr
	}
	if s == nil {
		return nil
	}
	if err != nil {
		return streamError(ErrCodeProtocol, "response header list past %d bytes", cc.headerLimit)
	}
	return s.receiveHeaders(fields, end)
}

func (cc *ClientConn) onRSTStream(h frameHeader, p []byte) error {
	if h.length != 4 {
		return connError(ErrCodeFrameSize, "RST_STREAM of %d bytes", h.length)
	}
	s, err := cc.stream(h.streamID, "RST_STREAM")
	if err != nil || s == nil {
		return err
	}
	se := &StreamError{Code: ErrCode(binary.BigEndian.Uint32(p)), Remote: true}
	cc.removeStream(s)
	s.end(se, se)
	return nil
}

func (cc *ClientConn) onSettings(h frameHeader, p []byte) error {
	if h.streamID != 0 {
		return connError(ErrCodeProtocol, "SETTINGS on stream %d", h.streamID)
	}
	if h.flags&flagAck != 0 {
		if h.length != 0 {
			return connError(ErrCodeFrameSize, "SETTINGS ACK with a payload")
		}
		return nil
	}
	if h.length%6 != 0 {
		return connError(ErrCodeFrameSize, "SETTINGS of %d bytes", h.length)
	}
	cc.mu.Lock()
	var grown []*Stream
	for ; len(p) > 0; p = p[6:] {
		id, v := binary.BigEndian.Uint16(p), binary.BigEndian.Uint32(p[2:])
		switch id {
		case settingEnablePush:
			// §6.5.2: "A client MUST treat receipt of a SETTINGS frame
			// with SETTINGS_ENABLE_PUSH set to 1 as a connection error".
			if v != 0 {
				cc.mu.Unlock()
				return connError(ErrCodeProtocol, "SETTINGS_ENABLE_PUSH %d from a server", v)
			}
		case settingMaxConcurrentStreams:
			cc.maxStreams = v
		case settingInitialWindowSize:
			if v > maxWindow {
				cc.mu.Unlock()
				return connError(ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE %d", v)
			}
			// §6.9.2: the change applies to every open stream's window.
			delta := int64(v) - cc.initialWindow
			cc.initialWindow = int64(v)
			for _, s := range cc.streams {
				s.sendWindow += delta
				if s.sendWindow > maxWindow {
					cc.mu.Unlock()
					return connError(ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream's window")
				}
				if delta > 0 {
					grown = append(grown, s)
				}
			}
		case settingMaxFrameSize:
			if v < defaultMaxFrame || v > maxFrameLimit {
				cc.mu.Unlock()
				return connError(ErrCodeProtocol, "SETTINGS_MAX_FRAME_SIZE %d", v)
			}
			cc.maxFrame = int(v)
		case settingMaxHeaderListSize:
			cc.maxHeaderList = v
		case settingEnableConnectProtocol:
			// RFC 8441 §3: values other than 0 and 1 are a
			// PROTOCOL_ERROR, and so is 0 after 1.
			if v > 1 || (v == 0 && cc.xconnect) {
				cc.mu.Unlock()
				return connError(ErrCodeProtocol, "SETTINGS_ENABLE_CONNECT_PROTOCOL %d", v)
			}
			cc.xconnect = v == 1
		}
	}
	cc.mu.Unlock()
	for _, s := range grown {
		s.kickSend()
	}
	cc.queueCtrl(appendFrameHeader(nil, 0, frameSettings, flagAck, 0))
	select {
	case <-cc.settings:
	default:
		close(cc.settings)
	}
	return nil
}

func (cc *ClientConn) onGoAway(h frameHeader, p []byte) error {
	if h.streamID != 0 {
		return connError(ErrCodeProtocol, "GOAWAY on stream %d", h.streamID)
	}
	if h.length < 8 {
		return connError(ErrCodeFrameSize, "GOAWAY of %d bytes", h.length)
	}
	last := binary.BigEndian.Uint32(p) & maxWindow
	code := ErrCode(binary.BigEndian.Uint32(p[4:]))
	debug := string(p[8:min(len(p), 8+maxQuoted+1)]) // enough to show it cut
	cc.mu.Lock()
	cc.goAway = true
	var refused []*Stream
	for id, s := range cc.streams {
		// §6.8: streams past the last one the server processed were not
		// processed, and may be retried elsewhere.
		if id > last {
			s.refused.Store(true)
			refused = append(refused, s)
			delete(cc.streams, id)
		}
	}
	idle := cc.idleLocked()
	cc.mu.Unlock()
	if len(refused) > 0 {
		cc.refusals.Store(true)
	}
	ce := &ConnError{Code: code, Reason: debug, Remote: true}
	re := &RefusedError{GoAway: ce}
	for _, s := range refused {
		s.end(re, re)
	}
	if code != ErrCodeNo {
		// fail finds no stream left to end when the GOAWAY refused them
		// all, and would not call onIdle: the pool must hear of it.
		cc.fail(ce)
	}
	if idle {
		cc.onIdle()
	}
	if code != ErrCodeNo {
		return ce
	}
	return nil
}

func (cc *ClientConn) onWindowUpdate(h frameHeader, p []byte) error {
	if h.length != 4 {
		return connError(ErrCodeFrameSize, "WINDOW_UPDATE of %d bytes", h.length)
	}
	incr := int64(binary.BigEndian.Uint32(p) & maxWindow)
	if h.streamID == 0 {
		if incr == 0 {
			return connError(ErrCodeProtocol, "WINDOW_UPDATE of 0 for the connection")
		}
		cc.mu.Lock()
		cc.sendWindow += incr
		over := cc.sendWindow > maxWindow
		cc.mu.Unlock()
		if over {
			return connError(ErrCodeFlowControl, "connection window past 2^31-1")
		}
		cc.kickSendAll(nil)
		return nil
	}
	s, err := cc.stream(h.streamID, "WINDOW_UPDATE")
	if err != nil || s == nil {
		return err
	}
	if incr == 0 {
		return streamError(ErrCodeProtocol, "WINDOW_UPDATE of 0")
	}
	cc.mu.Lock()
	s.sendWindow += incr
	over := s.sendWindow > maxWindow
	cc.mu.Unlock()
	if over {
		return streamError(ErrCodeFlowControl, "stream window past 2^31-1")
	}
	s.kickSend()
	return nil
}

// kickSendAll wakes the writers of every open stream but except, which
// may wait for the connection's window.
func (cc *ClientConn) kickSendAll(except *Stream) {
	cc.mu.Lock()
	all := make([]*Stream, 0, len(cc.streams))
	for _, s := range cc.streams {
		if s != except {
			all = append(all, s)
		}
	}
	cc.mu.Unlock()
	for _, s := range all {
		s.kickSend()
	}
}

// resetStream ends stream id with our RST_STREAM for se; a stream never
// opened (idle) gets none, which §6.4 forbids there, and the frame in
// error, a PRIORITY (the only frame an idle stream may carry), is
// dropped.
func (cc *ClientConn) resetStream(id uint32, se *StreamError) {
	cc.mu.Lock()
	s := cc.streams[id]
	idle := id%2 == 0 || id >= cc.nextID // we open the odd streams; the server, none
	cc.mu.Unlock()
	if idle {
		return
	}
	if s != nil {
		s.end(se, se) // before the RST_STREAM is queued: see writeDataLocked
	}
	cc.queueCtrl(appendRSTStream(nil, id, se.Code))
	if s != nil {
		cc.removeStream(s)
	}
}

// removeStream takes s out of the open streams, calling onIdle if it was
// the last.
func (cc *ClientConn) removeStream(s *Stream) {
	cc.mu.Lock()
	_, ok := cc.streams[s.id]
	delete(cc.streams, s.id)
	idle := ok && cc.idleLocked()
	cc.mu.Unlock()
	if idle {
		cc.onIdle()
	}
}

// OpenStream opens a stream with a HEADERS frame of fields,
// pseudo-header fields first, and returns it; the caller must Close it.
// It uses a reservation when reserved is true. The frames are queued with
// the control frames and go out as the socket takes them: OpenStream
// never waits for the socket, so that a caller whose answer does not come
// can give up on the connection and go elsewhere, even when its server
// reads nothing and its frames never leave (see Ping).
func (cc *ClientConn) OpenStream(fields []hpack.Field, reserved bool) (*Stream, error) {
	var block []byte
	var listSize uint64
	for _, f := range fields {
		block = hpack.AppendField(block, f)
		listSize += uint64(len(f.Name) + len(f.Value) + 32)
	}
	cc.mu.Lock()
	if reserved {
		cc.reserved--
	}
	if cc.maxHeaderList != 0 && listSize > uint64(cc.maxHeaderList) {
		idle := cc.idleLocked()
		cc.mu.Unlock()
		if idle {
			cc.onIdle()
		}
		return nil, fmt.Errorf("http2: request header list of %d bytes, past the server's limit of %d", listSize, cc.maxHeaderList)
	}
	if !cc.availableLocked() {
		err := cc.err
		idle := cc.idleLocked()
		cc.mu.Unlock()
		if idle {
			cc.onIdle()
		}
		if err == nil {
			return nil, ErrUnavailable
		}
		return nil, &unopenedError{err}
	}
	s := newStream(cc, cc.nextID, cc.initialWindow)
	cc.nextID += 2
	cc.streams[s.id] = s
	// §4.3: a header block goes out as one HEADERS frame and as many
	// CONTINUATION frames as it needs, in a row; every server takes
	// frames of defaultMaxFrame. §5.1.1: streams must open in the order
	// of their identifiers, which the queue keeps since they are queued
	// under mu, where the identifier is taken.
	var frames []byte
	typ, rest := uint8(frameHeaders), block
	for {
		n := min(len(rest), defaultMaxFrame)
		var flags uint8
		if n == len(rest) {
			flags = flagEndHeaders
		}
		frames = appendFrameHeader(frames, n, typ, flags, s.id)
		frames = append(frames, rest[:n]...)
		rest = rest[n:]
		typ = frameContinuation
		if len(rest) == 0 {
			break
		}
	}
	cc.queueOpen(s, frames)
	cc.mu.Unlock()
	return s, nil
}

// stallWait is how long the socket may take to take a piece of our bytes
// (stallPiece), past the deadline of the stream whose frames are going
// out, before the connection is given up: a frame half sent cannot be
// taken back, so the deadline of one stream can only end the write by
// ending them all. The wait spares the other streams when the socket was
// merely slow. closeStallWait is the same for the frames of a stream
// closed as they go out, which nobody waits for: longer, since a slow
// reader's TCP window may open only every few seconds.
const (
	stallWait      = time.Second
	closeStallWait = 10 * time.Second
)

// errStalled ends a connection whose socket stopped taking our bytes.
var errStalled = errors.New("http2: connection closed: the server stopped taking our frames past a write's deadline")

// ErrWriteStalled is the error of a Stream's Write whose deadline passed
// while its frames went out, the socket not taking them within stallWait:
// the connection ended with it, a frame maybe half sent. It is a timeout
// (os.ErrDeadlineExceeded) and the connection's end (net.ErrClosed).
var ErrWriteStalled error = writeStalled{}

type writeStalled struct{}

func (writeStalled) Error() string   { return "i/o timeout, which ended the HTTP/2 connection" }
func (writeStalled) Timeout() bool   { return true }
func (writeStalled) Temporary() bool { return false }
func (writeStalled) Unwrap() []error { return []error{os.ErrDeadlineExceeded, net.ErrClosed} }

// flushStart marks s as the stream whose frames go out to the socket
// now, and gives the socket a write deadline from s's: without one, a
// server that stops reading would keep the write, and wlock with it,
// past any deadline. s's deadline is read under flushMu, as
// SetWriteDeadline sets it.
//
// The caller holds wlock.
func (cc *ClientConn) flushStart(s *Stream) {
	cc.flushMu.Lock()
	defer cc.flushMu.Unlock()
	cc.flushing = s
	cc.flushGen++
	cc.setFlushDeadlineLocked(s.wdl.when())
}

// flushEnd clears what flushStart set.
func (cc *ClientConn) flushEnd() {
	cc.flushMu.Lock()
	cc.flushing = nil
	cc.setFlushDeadlineLocked(time.Time{})
	cc.flushMu.Unlock()
}

// boundClosedFlushLocked bounds the flush of a stream that is closing, its
// frames going out: each piece is given closeStallWait from now on.
//
// The caller holds flushMu.
func (cc *ClientConn) boundClosedFlushLocked() { cc.boundFlushLocked(time.Now(), closeStallWait) }

// boundFlushLocked bounds the flush under way: past dl, not before now,
// each piece may take grace (socketWriter).
//
// The caller holds flushMu.
func (cc *ClientConn) boundFlushLocked(dl time.Time, grace time.Duration) {
	if now := time.Now(); dl.Before(now) {
		dl = now
	}
	cc.flushDL, cc.flushGrace = dl, grace
	cc.boundDL = dl.Add(grace)
	cc.applyDeadlineLocked()
}

// The caller holds flushMu.
func (cc *ClientConn) setFlushDeadlineLocked(dl time.Time) {
	switch {
	case !dl.IsZero():
		cc.boundFlushLocked(dl, stallWait)
	case !cc.boundDL.IsZero():
		cc.boundDL = time.Time{}
		cc.applyDeadlineLocked()
	}
}

// applyDeadlineLocked gives the socket the nearest of the write deadlines
// that apply: the flush's bound, the shutdown's, and the piece's under
// WriteByteTimeout; none if none does.
//
// The caller holds flushMu.
func (cc *ClientConn) applyDeadlineLocked() {
	dl := cc.boundDL
	for _, d := range [...]time.Time{cc.shutDL, cc.pieceDL} {
		if !d.IsZero() && (dl.IsZero() || d.Before(dl)) {
			dl = d
		}
	}
	if !dl.Equal(cc.socketDL) {
		cc.nc.SetWriteDeadline(dl)
		cc.socketDL = dl
	}
}

// byteTimeoutLocked reports whether the deadline that cut a write short
// was WriteByteTimeout's, not one a stream's writer answers for.
//
// The caller holds flushMu.
func (cc *ClientConn) byteTimeoutLocked() bool {
	d := cc.pieceDL
	return !d.IsZero() && !d.After(time.Now()) &&
		(cc.boundDL.IsZero() || d.Before(cc.boundDL)) &&
		(cc.shutDL.IsZero() || d.Before(cc.shutDL))
}

// socketWriter is what bw writes to: the socket, but in pieces of
// stallPiece bytes while a deadline bounds the flush, each given
// flushGrace from when it starts once the deadline has passed, so that a
// socket that keeps taking bytes, however slowly, is not taken for a
// stalled one. (A write cut by a deadline cannot be resumed over TLS, where a
// failed write ends the connection's output: the deadline moves before
// each piece, not after a timeout.) Under WriteByteTimeout, each piece is
// given that long too, and over TCP a piece cut by it goes on while the
// socket took some of it; over TLS, it must go whole.
type socketWriter struct{ cc *ClientConn }

// stallPiece is the most a socket must take within stallWait, once a
// write's deadline has passed, not to count as stalled.
const stallPiece = 4 << 10

func (w socketWriter) Write(p []byte) (int, error) {
	cc := w.cc
	written := 0
	for {
		piece := p[written:]
		cc.flushMu.Lock()
		flushBound := !cc.boundDL.IsZero()
		bounded := flushBound || cc.writeTimeout > 0
		if bounded {
			if len(piece) > stallPiece {
				piece = piece[:stallPiece]
			}
			now := time.Now()
			if flushBound && cc.flushDL.Before(now) {
				cc.boundDL = now.Add(cc.flushGrace)
			}
			if cc.writeTimeout > 0 {
				cc.pieceDL = now.Add(cc.writeTimeout)
			}
			cc.applyDeadlineLocked()
		}
		cc.flushMu.Unlock()
		n, err := cc.nc.Write(piece)
		written += n
		if err != nil && cc.writeTimeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			cc.flushMu.Lock()
			byTimeout := cc.byteTimeoutLocked()
			cc.flushMu.Unlock()
			_, isTLS := cc.nc.(*tls.Conn)
			switch {
			case byTimeout && n > 0 && !isTLS:
				continue // the socket took some: the timeout starts again
			case byTimeout:
				// Not a deadline of a stream's, which its writer
				// handles: the connection ends.
				err = fmt.Errorf("http2: connection closed: the socket took no bytes for %v (WriteByteTimeout)", cc.writeTimeout)
			}
		}
		if err != nil || written == len(p) {
			if cc.writeTimeout > 0 {
				cc.flushMu.Lock()
				cc.pieceDL = time.Time{}
				cc.flushMu.Unlock()
			}
			return written, err
		}
	}
}

// boundShutdown gives the frames that say goodbye, GOAWAY after any
// control frames queued, d to go out.
func (cc *ClientConn) boundShutdown(d time.Duration) {
	cc.flushMu.Lock()
	cc.shutDL = time.Now().Add(d)
	cc.applyDeadlineLocked()
	cc.flushMu.Unlock()
}

// writeDataLocked sends the control frames queued, then p in DATA frames
// on stream s unless s has ended; it reports whether p went out.
//
// The caller holds wlock.
func (cc *ClientConn) writeDataLocked(s *Stream, p []byte, maxFrame int) (bool, error) {
	cc.writeCtrlLocked()
	// §5.1: no DATA may follow our RST_STREAM or END_STREAM. A stream is
	// marked ended before its last frame is queued, so if that frame is
	// among those just written, the mark is seen here. Nor may it go on
	// a stream a GOAWAY refused, whose HEADERS may have stayed out.
	s.mu.Lock()
	ended := s.endSent || s.refused.Load()
	s.mu.Unlock()
	for !ended {
		n := min(len(p), maxFrame)
		cc.wbuf = appendFrameHeader(cc.wbuf[:0], n, frameData, 0, s.id)
		cc.bw.Write(cc.wbuf)
		cc.bw.Write(p[:n])
		p = p[n:]
		if len(p) == 0 {
			break
		}
	}
	return !ended, cc.bw.Flush()
}

// Addresses of the connection.
func (cc *ClientConn) LocalAddr() net.Addr  { return cc.nc.LocalAddr() }
func (cc *ClientConn) RemoteAddr() net.Addr { return cc.nc.RemoteAddr() }
