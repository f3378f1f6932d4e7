package websocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// NetConn returns a net.Conn over c, for code written for net.Conn: a
// protocol that runs over a byte stream, carried in WebSocket messages of
// type typ (MessageText or MessageBinary).
//
// Read returns the payloads of the messages c receives one after another,
// as one stream: message boundaries are dropped, and an empty message adds
// nothing. A message of the other type fails the connection with
// StatusUnsupportedData, and Read returns the *ProtocolError that says so.
// When the peer closes with StatusNormalClosure or StatusGoingAway, or
// with a close frame without a code (StatusNoStatusRcvd), Read returns
// io.EOF; when the connection ends otherwise, the error that ended it.
// Messages are read a buffer at a time, however long: the NetConn's reads
// remove the read limit (SetReadLimit), which bounds only what a
// whole-message read holds.
//
// Write sends p as one message of type typ (an empty p as an empty
// message). Text is a stream of UTF-8 that Writes may cut anywhere, as
// bufio.Writer and io.Copy do, while every text message must be UTF-8 of
// its own (RFC 6455 §8.1): so the first bytes of a character that a Write
// cuts short at its end (three at most) are held back, counted as
// written, and sent at the start of the next Write's message; Write sends
// no message when that leaves nothing of p to send, and Close drops what
// is held. Text that is not UTF-8 goes as given, and the peer fails the
// connection.
//
// Close closes the connection with StatusNormalClosure, as Conn.Close
// does, and returns nil once the closing handshake is done, whichever side
// started it; a blocked Read or Write returns at once, with an error
// wrapping net.ErrClosed, and so do later calls, deadlines' included
// (on a server's HTTP/2 stream, once Close has closed c: the handler may
// return on that error, which it must not while Close writes to the
// stream). A Write under way, blocked or not, is interrupted as a
// passing deadline would interrupt it: where that closes the connection
// (its frame partly written; over TLS, or on a server's HTTP/2 stream,
// any write under way, even one the peer was taking in), the close frame
// cannot follow, the peer sees the connection end without it, and Close
// returns the error that says why. For the closing handshake, close once
// the Writes have returned.
// A call that finds the connection ended otherwise (by the peer's close,
// Close or CloseNow on c, a failure) returns c's error, wrapping
// ErrClosed, and net.ErrClosed too; but Read returns io.EOF, or what
// ended the connection, as said above. LocalAddr and RemoteAddr are c's;
// where c has none (in a browser), they return an address of network
// "websocket" and string "unknown", never nil, since users of a net.Conn
// call its String.
//
// Deadlines keep net.Conn's promise. When the read or write deadline
// passes, a Read or Write blocked on it returns an error wrapping
// os.ErrDeadlineExceeded, a net.Error whose Timeout reports true, even if
// the call began before the deadline was set or moved; a deadline in the
// past fails the call at once. A Read that times out leaves the
// connection as it was, even in the middle of a message: the next Read
// carries on from the same byte. A Write that times out while waiting its
// turn, or before the first byte of its message went out, leaves the
// connection usable too; one that times out with its frame partly written,
// or between the frames of a compressed message, cannot complete the
// message, so the connection is closed, and the error also wraps
// ErrClosed; so is one that times out during I/O over TLS or on
// a server's HTTP/2 stream, which cannot go on after a deadline passes
// (see the package's documentation). A Write that joins the connection's
// write queue returns once p is queued (see Conn.Write), so its deadline
// does not cover the rest of the way to the network.
//
// Reads happen in a goroutine of the NetConn's, started by a Read and
// running only while a read is pending, so that a Read interrupted by its
// deadline leaves the pending read in place for the next Read; that
// goroutine ends at the latest when the connection does. Once the
// NetConn has been read, nothing else may read c (Read, Reader,
// ReadAppend, Serve); writing to c, Ping and Close remain allowed. As
// always, pings are answered and pongs noticed only while a read is
// pending.
//
// Read and Write may be called concurrently, as net.Conn allows: Reads
// take turns, and concurrent Writes each go out whole, never interleaved.
func NetConn(c *Conn, typ MessageType) net.Conn {
	nc := &netConn{c: c, typ: typ, results: make(chan netRead, 1), textTurn: make(chan struct{}, 1)}
	if c.tr.serverStream() {
		nc.closeDone = make(chan struct{})
	}
	var ctx context.Context
	ctx, nc.cancel = context.WithCancel(context.Background())
	nc.rdl.parent, nc.wdl.parent = ctx, ctx
	return nc
}

// netReadMax is the most a NetConn reads from its Conn at a time, and
// netReadMin the least it asks for, so that small Reads take their bytes
// from what an earlier one brought.
const (
	netReadMax = 32 << 10
	netReadMin = 4 << 10
)

// netConn is the net.Conn that NetConn returns.
type netConn struct {
	c   *Conn       // immutable
	typ MessageType // immutable

	closed atomic.Bool // atomic: set by Close, before it calls cancel
	// closeDone, over a server's HTTP/2 stream alone, is closed once Close
	// has closed the Conn: a Read or Write that Close interrupts returns
	// only then, since the handler may return on it, which it must not
	// while Close writes into its ResponseWriter.
	closeDone chan struct{}
	// cancel (immutable) ends the context the deadlines' contexts derive
	// from, so that Close interrupts whatever waits on them.
	cancel context.CancelFunc
	// peerClosed (atomic) is set when a read met the peer's close frame,
	// so the closing handshake is complete.
	peerClosed atomic.Bool

	rdl, wdl netDeadline // their own locks

	// readMu lets one Read in at a time.
	readMu  sync.Mutex
	rest    []byte       // readMu: bytes received and not yet returned
	readErr error        // readMu: what ended reading, returned by every Read after rest
	pending bool         // readMu: a read is under way, its result coming on results
	buf     []byte       // readMu while no read is pending; the pending read's while one is
	results chan netRead // capacity 1: the pending read never waits to hand over
	// textTurn (capacity 1) lets one Write of a text NetConn in at a
	// time, taken against the write deadline.
	textTurn chan struct{}
	// held is the start of a UTF-8 character that the last Write of a
	// text NetConn cut short, sent at the start of the next Write's
	// message; it points into heldBuf. Both belong to textTurn's holder.
	held    []byte
	heldBuf [utf8.UTFMax]byte

	// msg is the message being read, nil between messages. It belongs to
	// the pending read; between reads, to readMu's holder.
	msg io.Reader
}

// netRead is the result of a pending read: n bytes at the start of buf.
type netRead struct {
	n   int
	err error
}

func (nc *netConn) Read(p []byte) (int, error) {
	nc.readMu.Lock()
	defer nc.readMu.Unlock()
	if len(p) == 0 && !nc.closed.Load() {
		// As a socket's: a read of nothing returns at once, whatever
		// the deadline, until Close.
		return 0, nil
	}
	expired := nc.rdl.context().Done()
	if err := nc.stopped("read", expired); err != nil {
		return 0, err
	}
	if len(nc.rest) == 0 && nc.readErr == nil && len(p) > 0 {
		if !nc.pending {
			if err := checkNetConnType(nc.typ); err != nil {
				return 0, err
			}
			size := min(max(len(p), netReadMin), netReadMax)
			if len(nc.buf) < size {
				nc.buf = make([]byte, size)
			}
			nc.pending = true
			go nc.readAhead(nc.buf[:size])
		}
		select {
		case r := <-nc.results:
			nc.pending = false
			nc.rest, nc.readErr = nc.buf[:r.n], r.err
		case <-expired:
			return 0, nc.stopped("read", expired)
		}
	}
	if len(nc.rest) > 0 || len(p) == 0 {
		n := copy(p, nc.rest)
		nc.rest = nc.rest[n:]
		return n, nil
	}
	return 0, nc.readErr
}

// stopped returns the error for a call that Close or the deadline whose
// context ends with expired has stopped, or nil if neither has.
func (nc *netConn) stopped(op string, expired <-chan struct{}) error {
	if nc.closed.Load() {
		nc.awaitClose()
		return netClosedErr(op)
	}
	select {
	case <-expired:
		return &deadlineError{op: op}
	default:
		return nil
	}
}

// awaitClose waits, over a server's HTTP/2 stream, for Close to have
// closed the Conn (closeDone).
func (nc *netConn) awaitClose() {
	if nc.closeDone != nil {
		<-nc.closeDone
	}
}

// readAhead is the pending read: it reads at least one byte into p, going
// through as many empty messages as it meets, and hands the result over.
// It reads with a context that never ends, so that nothing but the end of
// the connection cuts a message short.
func (nc *netConn) readAhead(p []byte) {
	n, err := nc.readMessages(p)
	nc.results <- netRead{n, err}
}

func (nc *netConn) readMessages(p []byte) (int, error) {
	ctx := context.Background()
	// A message comes a buffer at a time, however long: the limit on
	// what a whole-message read holds has nothing to bound here, and
	// would break the stream at the first Write of the peer's that
	// exceeds it.
	nc.c.SetReadLimit(-1)
	for {
		if nc.msg == nil {
			typ, r, err := nc.c.Reader(ctx)
			if err != nil {
				return 0, nc.readEnd(err)
			}
			if typ != nc.typ {
				reason := fmt.Sprintf("got a %v message, expected %v", typ, nc.typ)
				nc.c.Close(StatusUnsupportedData, reason)
				return 0, &ProtocolError{Code: StatusUnsupportedData, Reason: reason}
			}
			nc.msg = r
		}
		n, err := nc.msg.Read(p)
		if err == io.EOF {
			nc.msg, err = nil, nil
		}
		if err != nil {
			nc.msg = nil
			return n, nc.readEnd(err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// readEnd turns the error that ended reading into Read's: io.EOF for the
// peer's normal close, which a close frame without a code is too (a
// browser's close() sends one).
func (nc *netConn) readEnd(err error) error {
	if _, ok := err.(CloseError); ok {
		nc.peerClosed.Store(true) // the read answered it: the handshake is done
	}
	switch CloseStatus(err) {
	case StatusNormalClosure, StatusGoingAway, StatusNoStatusRcvd:
		return io.EOF
	}
	return netEnded(err)
}

func (nc *netConn) Write(p []byte) (int, error) {
	ctx := nc.wdl.context()
	if err := nc.stopped("write", ctx.Done()); err != nil {
		return 0, err
	}
	if nc.typ != MessageText {
		if err := nc.send(ctx, p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	select {
	case nc.textTurn <- struct{}{}:
	case <-ctx.Done():
		return 0, nc.stopped("write", ctx.Done())
	}
	defer func() { <-nc.textTurn }()
	b := p
	if len(nc.held) > 0 {
		b = append(nc.held[:len(nc.held):len(nc.held)], p...)
	}
	cut := wholeRunes(b)
	if cut > 0 || len(p) == 0 {
		if err := nc.send(ctx, b[:cut]); err != nil {
			return 0, err
		}
	}
	nc.held = append(nc.heldBuf[:0], b[cut:]...)
	return len(p), nil
}

// send writes p as one message, its error the one Write returns.
func (nc *netConn) send(ctx context.Context, p []byte) error {
	err := nc.c.Write(ctx, nc.typ, p)
	switch {
	case err == nil:
		return nil
	case ctx.Err() == nil || !errors.Is(err, context.Canceled) && !errors.Is(err, errNetDeadline):
		return netEnded(err)
	case nc.closed.Load():
		nc.awaitClose()
		return netClosedErr("write")
	}
	de := &deadlineError{op: "write"}
	if errors.Is(err, ErrClosed) {
		de.cut = err
	}
	return de
}

// wholeRunes returns the length of b without the first bytes of a UTF-8
// character that b cuts short at its end.
func wholeRunes(b []byte) int {
	for i := len(b) - 1; i >= 0 && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

func (nc *netConn) Close() error {
	if !nc.closed.CompareAndSwap(false, true) {
		nc.awaitClose()
		return netClosedErr("close")
	}
	nc.cancel()
	nc.rdl.stop()
	nc.wdl.stop()
	err := nc.c.Close(StatusNormalClosure, "")
	if nc.closeDone != nil {
		close(nc.closeDone)
	}
	// The peer's close may have completed the handshake in the pending
	// read before that read's readEnd ran: ask the Conn, not only our flag.
	if err != nil && (nc.peerClosed.Load() || nc.c.peerClosedValid()) {
		return nil
	}
	return netEnded(err)
}

func (nc *netConn) LocalAddr() net.Addr  { return knownAddr(nc.c.LocalAddr()) }
func (nc *netConn) RemoteAddr() net.Addr { return knownAddr(nc.c.RemoteAddr()) }

// knownAddr returns a, or unknownAddr for nil.
func knownAddr(a net.Addr) net.Addr {
	if a == nil {
		return unknownAddr{}
	}
	return a
}

// unknownAddr is the address of a NetConn whose connection has none.
type unknownAddr struct{}

func (unknownAddr) Network() string { return "websocket" }
func (unknownAddr) String() string  { return "unknown" }

func (nc *netConn) SetDeadline(t time.Time) error {
	if nc.closed.Load() {
		return netClosedErr("set deadline")
	}
	nc.rdl.set(t)
	nc.wdl.set(t)
	return nil
}

func (nc *netConn) SetReadDeadline(t time.Time) error {
	if nc.closed.Load() {
		return netClosedErr("set read deadline")
	}
	nc.rdl.set(t)
	return nil
}

func (nc *netConn) SetWriteDeadline(t time.Time) error {
	if nc.closed.Load() {
		return netClosedErr("set write deadline")
	}
	nc.wdl.set(t)
	return nil
}

func checkNetConnType(typ MessageType) error {
	if typ != MessageText && typ != MessageBinary {
		return fmt.Errorf("websocket: NetConn needs MessageText or MessageBinary, not %v", typ)
	}
	return nil
}

// netDeadline is a read or write deadline as a context (a NetConn's, or
// the browser transport's), which ends when the deadline passes. Calls
// take the current context when they start and wait on it; moving the
// deadline re-arms the timer that ends that same context, so a blocked
// call follows the deadline wherever it moves, and a context that ended
// is replaced by a new one for the calls that follow.
type netDeadline struct {
	parent context.Context // immutable: the NetConn's, which Close ends
	mu     sync.Mutex
	ctx    context.Context         // mu: nil until first needed
	cancel context.CancelCauseFunc // mu: ends ctx, with errNetDeadline as its cause when the deadline passes
	timer  *time.Timer             // mu: ends ctx when the deadline passes; nil if none is set
}

func (d *netDeadline) context() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil {
		d.ctx, d.cancel = context.WithCancelCause(d.parent)
	}
	return d.ctx
}

func (d *netDeadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// A timer that could not be stopped has fired, or is firing: its
	// context is done for.
	fired := d.timer != nil && !d.timer.Stop()
	d.timer = nil
	if d.ctx == nil || fired || d.ctx.Err() != nil {
		d.ctx, d.cancel = context.WithCancelCause(d.parent)
	}
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		d.cancel(errNetDeadline)
		return
	}
	cancel := d.cancel
	d.timer = time.AfterFunc(wait, func() { cancel(errNetDeadline) })
}

// stop drops the timer, once the NetConn is closed.
func (d *netDeadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// errNetDeadline ends a netDeadline's context when its deadline passes. It
// says "i/o timeout" in the end of a connection that a deadline cut short,
// without wrapping os.ErrDeadlineExceeded: the calls that find the
// connection ended have no deadline of their own that passed.
var errNetDeadline = errors.New("i/o timeout")

// deadlineError is what a NetConn's Read or Write returns when its
// deadline passed: a net.Error that wraps os.ErrDeadlineExceeded, and, if
// the connection had to be closed because a frame was cut short, the
// error that says so.
type deadlineError struct {
	op  string
	cut error
}

func (e *deadlineError) Error() string {
	if ce, ok := asType[*cutError](e.cut); ok {
		return "websocket: " + e.op + ": i/o timeout" + ce.how + ": connection closed"
	}
	if e.cut != nil {
		return "websocket: " + e.op + ": i/o timeout: connection closed"
	}
	return "websocket: " + e.op + ": i/o timeout"
}

func (e *deadlineError) Timeout() bool   { return true }
func (e *deadlineError) Temporary() bool { return e.cut == nil }

func (e *deadlineError) Unwrap() []error {
	if e.cut != nil {
		return []error{os.ErrDeadlineExceeded, e.cut}
	}
	return []error{os.ErrDeadlineExceeded}
}

// netClosedErr is the error of a NetConn call made or interrupted by Close.
func netClosedErr(op string) error {
	return fmt.Errorf("websocket: %s: %w", op, net.ErrClosed)
}

// netEnded returns err, the error of a Conn call, as a NetConn call's:
// when it says that the connection has ended (ErrClosed), it wraps
// net.ErrClosed too, which is how net.Conn users tell a connection
// they can no longer use.
func netEnded(err error) error {
	if errors.Is(err, ErrClosed) && !errors.Is(err, net.ErrClosed) {
		return &netEndedError{err}
	}
	return err
}

// netEndedError is err, wrapping net.ErrClosed as well.
type netEndedError struct{ err error }

func (e *netEndedError) Error() string   { return e.err.Error() }
func (e *netEndedError) Unwrap() []error { return []error{e.err, net.ErrClosed} }
