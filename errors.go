package websocket

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors. Each is wrapped, never returned bare, so test with errors.Is.
var (
	// ErrClosed is wrapped by every Conn method called after the connection
	// ended (by Close, CloseNow, a failure, or the peer); Serve, which owns
	// the connection until onClose, gives it to onClose and returns nil.
	// The same error also wraps the CloseError that ended the connection,
	// if any.
	ErrClosed = errors.New("websocket: connection closed")

	// ErrMessageTooBig is wrapped by the *ProtocolError that a read returns
	// when a message would exceed the read limit (SetReadLimit); the
	// connection was failed with StatusMessageTooBig.
	ErrMessageTooBig = errors.New("websocket: message exceeds read limit")

	// ErrCloseSent is wrapped, together with ErrClosed, by Write, Writer,
	// Ping and CloseWrite once a close frame has been sent (by Close,
	// CloseWrite, or a failure) while the connection is still open for
	// reading: RFC 6455 §5.5.1 forbids any frame after it. Close then
	// sends nothing and completes the closing handshake that frame began.
	ErrCloseSent = errors.New("websocket: close frame already sent")

	// ErrQueueFull is wrapped by the error of Enqueue and EnqueuePrepared
	// when the connection's write queue has no room for the message
	// (AcceptOptions.WriteQueueLimit): the peer reads more slowly than it
	// is sent to. (Broadcast returns no error: it leaves such a connection
	// out of the count it returns.) The message was not queued; with
	// AcceptOptions.CloseOnQueueFull the connection is being failed with
	// StatusPolicyViolation instead, and the error wraps ErrClosed too,
	// unless the message alone would not fit an empty queue (it is larger
	// than the limit less 14 bytes, a frame header's most), or the
	// connection is being closed already, by Close say, with a close
	// frame of its own still to go: then the message is only refused.
	ErrQueueFull = errors.New("websocket: write queue full")

	// ErrHandshake is wrapped by the errors Dial and Accept return when the
	// opening handshake itself is refused or malformed.
	ErrHandshake = errors.New("websocket: handshake failed")

	// ErrHTTP2Unavailable is wrapped by the error of Dial with
	// DialOptions.HTTP2 set to HTTP2Required when the server cannot take
	// the WebSocket over HTTP/2: it did not choose h2 by ALPN, did not
	// answer HTTP/2 over cleartext, or did not announce extended CONNECT
	// (RFC 8441 §3); or the HTTP client's transport or proxy rules out
	// HTTP/2. The error says which.
	ErrHTTP2Unavailable = errors.New("websocket: HTTP/2 unavailable")
)

// StatusCode is the status code of a close frame (RFC 6455 §7.4).
type StatusCode int

// Status codes registered in RFC 6455 §7.4.1 and the IANA registry. The
// codes 1005, 1006 and 1015 are never sent: they only report what happened.
const (
	StatusNormalClosure           StatusCode = 1000
	StatusGoingAway               StatusCode = 1001
	StatusProtocolError           StatusCode = 1002
	StatusUnsupportedData         StatusCode = 1003
	StatusNoStatusRcvd            StatusCode = 1005 // close frame without a code
	StatusAbnormalClosure         StatusCode = 1006 // connection lost without a close frame
	StatusInvalidFramePayloadData StatusCode = 1007
	StatusPolicyViolation         StatusCode = 1008
	StatusMessageTooBig           StatusCode = 1009
	StatusMandatoryExtension      StatusCode = 1010
	StatusInternalError           StatusCode = 1011
	StatusServiceRestart          StatusCode = 1012
	StatusTryAgainLater           StatusCode = 1013
	StatusBadGateway              StatusCode = 1014
	StatusTLSHandshake            StatusCode = 1015
)

var statusNames = map[StatusCode]string{
	StatusNormalClosure:           "normal closure",
	StatusGoingAway:               "going away",
	StatusProtocolError:           "protocol error",
	StatusUnsupportedData:         "unsupported data",
	StatusNoStatusRcvd:            "no status received",
	StatusAbnormalClosure:         "abnormal closure",
	StatusInvalidFramePayloadData: "invalid frame payload data",
	StatusPolicyViolation:         "policy violation",
	StatusMessageTooBig:           "message too big",
	StatusMandatoryExtension:      "mandatory extension",
	StatusInternalError:           "internal error",
	StatusServiceRestart:          "service restart",
	StatusTryAgainLater:           "try again later",
	StatusBadGateway:              "bad gateway",
	StatusTLSHandshake:            "TLS handshake",
}

// String returns the code and its registered name, such as
// "1000 (normal closure)".
func (c StatusCode) String() string {
	s := strconv.Itoa(int(c))
	if name, ok := statusNames[c]; ok {
		return s + " (" + name + ")"
	}
	switch {
	case c >= 3000 && c <= 3999:
		return s + " (registered)"
	case c >= 4000 && c <= 4999:
		return s + " (private use)"
	}
	return s
}

// validReceived reports whether a peer may put c in a close frame
// (RFC 6455 §7.4.1 and §7.4.2): the registered codes that are not reserved
// for reporting, and the ranges 3000-4999.
func (c StatusCode) validReceived() bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014, c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// CloseError is a close frame: the peer's, when a read ends because the peer
// closed, or ours, when an operation reports a connection that we closed.
// Find it with errors.As or CloseStatus. It is a value; errors.As finds it
// for a *CloseError target as well (see As).
type CloseError struct {
	Code   StatusCode
	Reason string
}

// Error quotes a reason that holds anything but printable characters and
// spaces: a peer's reason goes into logs, where a line break or an escape
// sequence of its choosing could pass for lines of the program's own.
func (e CloseError) Error() string {
	if e.Reason == "" {
		return "websocket: close " + e.Code.String()
	}
	return "websocket: close " + e.Code.String() + ": " + printable(e.Reason)
}

// As lets errors.As find the CloseError for a target of type
// **CloseError, setting it to a copy: a *CloseError implements error too,
// so that such a call compiles and passes go vet, and without As it would
// never match, as a program written for a library whose CloseError is a
// pointer would expect it to.
func (e CloseError) As(target any) bool {
	if p, ok := target.(**CloseError); ok {
		*p = &e
		return true
	}
	return false
}

// printable returns s as it is if it holds only printable characters and
// spaces, else quoted with Go's escapes.
func printable(s string) string {
	for _, r := range s {
		if r != ' ' && !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// maxQuoted bounds how much of a value the peer sent an error quotes.
const maxQuoted = 128

// quoted quotes a value the peer sent, the lines of a header joined by
// commas, for an error's text: at most maxQuoted bytes of it, followed by
// "..." when there is more, so that a header of a megabyte does not make
// an error, or a log line, of a megabyte.
func quoted(lines ...string) string {
	var b []byte
	for i, line := range lines {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, line[:min(len(line), maxQuoted+1-min(len(b), maxQuoted))]...)
		if len(b) > maxQuoted {
			return strconv.Quote(string(b[:maxQuoted])) + "..."
		}
	}
	return strconv.Quote(string(b))
}

// clippedError is an error of the net/http or textproto packages about
// what the peer sent, its text cut to maxClipped bytes: those quote whole
// lines of a response, a megabyte of them for a megabyte of header.
type clippedError struct{ err error }

// maxClipped bounds a clippedError's text: room for what the packages
// say around a quoted line, and for a long legitimate error (a
// certificate's list of names).
const maxClipped = 512

func (e clippedError) Error() string {
	s := e.err.Error()
	if len(s) > maxClipped {
		return s[:maxClipped] + "..."
	}
	return s
}

func (e clippedError) Unwrap() error { return e.err }

// CloseStatus returns the code of the CloseError in err's chain, or -1 if
// there is none.
func CloseStatus(err error) StatusCode {
	if ce, ok := asType[CloseError](err); ok {
		return ce.Code
	}
	return -1
}

// A ProtocolError reports that the connection was failed: a close frame
// with Code and Reason was sent and the connection torn down. Mostly the
// peer broke RFC 6455 (or a negotiated extension) or exceeded a limit;
// but a read whose context ended inside a message fails the connection
// too (1008, the message being lost), as does a data message under
// CloseRead. It wraps that close frame as a CloseError, so CloseStatus
// reports Code, and the cause if there is one (ErrMessageTooBig, the
// context's error). A failure whose close frame did not go out (ours went
// first, or it could not be sent in time) is reported instead by an error
// wrapping ErrClosed that says what went wrong, with no code never sent.
type ProtocolError struct {
	Code   StatusCode // the code sent to the peer: 1002, 1007, 1009...
	Reason string     // what went wrong, also sent in the close frame
	err    error      // optional cause, such as ErrMessageTooBig
}

func (e *ProtocolError) Error() string {
	return "websocket: " + e.Reason + ": connection failed with " + e.Code.String()
}

// Unwrap returns the close frame sent and the cause, if any.
func (e *ProtocolError) Unwrap() []error {
	if e.err != nil {
		return []error{CloseError{e.Code, e.Reason}, e.err}
	}
	return []error{CloseError{e.Code, e.Reason}}
}

// protocolErr builds the error that fails the connection with code.
func protocolErr(code StatusCode, reason string) *ProtocolError {
	return &ProtocolError{Code: code, Reason: reason}
}

// closedError is returned by operations on a connection that has ended. It
// wraps ErrClosed and the cause: the CloseError exchanged, or the I/O error
// that lost the connection.
type closedError struct {
	op    string
	cause error
}

func (e *closedError) Error() string {
	if e.cause == nil {
		return "websocket: " + e.op + ": connection closed"
	}
	return "websocket: " + e.op + ": connection closed: " + errText(e.cause)
}

func (e *closedError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrClosed}
	}
	return []error{ErrClosed, e.cause}
}

// lostError reports a connection that ended without a closing handshake:
// the peer went away, or the transport failed, maybe after our close
// frame went out and before the peer's answer came; or a read gave up
// on that answer (readCut). It wraps the I/O error, or the read's
// context's, and, as RFC 6455 §7.1.5 suggests for reporting, a
// CloseError with StatusAbnormalClosure, whatever close frame of ours
// went unanswered.
type lostError struct {
	err        error
	readCut    bool        // closed by a read whose context ended inside a message after our close frame went (readCutLocked); err is the context's
	unanswered *CloseError // our close frame, sent, if the connection was lost before the answer; set by setLost
}

func (e *lostError) Error() string {
	msg := "websocket: connection lost: " + errText(e.err)
	if e.readCut {
		msg = "websocket: read context ended inside a message: " + errText(e.err)
	}
	if e.unanswered != nil {
		msg += ", with no answer to " + errText(*e.unanswered)
	}
	return msg
}

func (e *lostError) Unwrap() []error {
	return []error{e.err, CloseError{Code: StatusAbnormalClosure}}
}

var (
	errClosedLocally = errors.New("closed without a closing handshake")
	// errCloseTimeout is what ends a connection whose closing handshake
	// ran out of time; closeTransport records it as a closeTimeoutError.
	errCloseTimeout = errors.New("the closing handshake timed out")
)

// closeTimeoutError is the end of a connection whose closing handshake
// ran out of time: our close frame, sent, went unanswered, or it could not
// be sent at all. In the first case, the connection closed with no close
// frame from the peer, which RFC 6455 §7.1.5 reports as
// StatusAbnormalClosure; in the second, no close code was on the wire.
type closeTimeoutError struct {
	sent   *CloseError // the close that went unanswered
	unsent error       // else the end that could not be sent (unsentEnd): a CloseError, or a *ProtocolError; nil if none was recorded
}

func (e *closeTimeoutError) Error() string {
	if e.sent != nil {
		return errCloseTimeout.Error() + ": no answer to " + errText(*e.sent)
	}
	switch u := e.unsent.(type) {
	case *ProtocolError:
		// What failed the connection, without the claim that its close
		// frame went.
		return u.Reason + ": " + errCloseTimeout.Error() + ": the close frame could not be sent"
	case CloseError:
		// The close that a Close, a CloseWrite or a shutdown meant to
		// send, by its code: the reason is the caller's own.
		return errCloseTimeout.Error() + ": close " + u.Code.String() + " could not be sent"
	}
	return errCloseTimeout.Error() + ": the close frame could not be sent"
}

func (e *closeTimeoutError) Unwrap() []error {
	if e.sent != nil {
		return []error{CloseError{Code: StatusAbnormalClosure}}
	}
	if pe, ok := e.unsent.(*ProtocolError); ok && pe.err != nil {
		return []error{pe.err}
	}
	return nil
}

// brokenCloseError is the end of a connection whose peer broke the
// protocol after our close frame went out and before its answer
// came (setBroken): the close frame failing the connection could not
// follow ours, so the closing handshake failed. It names the close that
// went, and, the connection having closed with no close frame from the
// peer, carries StatusAbnormalClosure (RFC 6455 §7.1.5), as a close that
// went unanswered does (closeTimeoutError, lostError); and the
// violation's cause, if any, but not the *ProtocolError, whose code was
// never sent.
type brokenCloseError struct {
	violation *ProtocolError
	sent      CloseError
}

func (e *brokenCloseError) Error() string {
	return "the closing handshake failed: " + e.violation.Reason + " before the answer to " + errText(e.sent)
}

func (e *brokenCloseError) Unwrap() []error {
	if e.violation.err != nil {
		return []error{CloseError{Code: StatusAbnormalClosure}, e.violation.err}
	}
	return []error{CloseError{Code: StatusAbnormalClosure}}
}

// unsentEnd is the end of a connection whose close frame, standing for
// end, could not be sent in time. Keepalive's end says so in its own
// words.
func unsentEnd(end error) error {
	if ke, ok := end.(*keepaliveError); ok {
		return &keepaliveError{silent: ke.silent, unsent: true}
	}
	return &closeTimeoutError{unsent: end}
}

// closeSentError is returned by an operation that would send a frame after
// our close frame, while the connection is still open for reading.
type closeSentError struct{ op string }

func (e *closeSentError) Error() string {
	return "websocket: " + e.op + ": close frame already sent"
}

func (e *closeSentError) Unwrap() []error { return []error{ErrCloseSent, ErrClosed} }

// opError reports a failed operation, its message the cause's after the
// operation's name: "websocket: write: context canceled".
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string       { return "websocket: " + e.op + ": " + errText(e.err) }
func (e *opError) Unwrap() error       { return e.err }
func opErr(op string, err error) error { return &opError{op: op, err: err} }

// cutError is a context's end, err, that closed the connection during
// I/O, and how: a frame cut short, a TLS connection's output ended, a
// transport without deadlines closed. done is that context's Done when
// its end alone closed the connection, whatever the call it was given to
// (closeCause), nil when a cut write did.
type cutError struct {
	err  error
	how  string
	done <-chan struct{}
}

func (e *cutError) Error() string { return e.err.Error() + e.how }
func (e *cutError) Unwrap() error { return e.err }

// asOp returns err, which writing a frame returned as a write's, as op's:
// a ping's or a pong's frame is written as a message's is.
func asOp(err error, op string) error {
	switch e := err.(type) {
	case *opError:
		return &opError{op: op, err: e.err}
	case *closedError:
		return &closedError{op: op, cause: e.cause}
	}
	return err
}

// errText is err's message without our prefix, for use inside a message
// that has it already.
func errText(err error) string {
	return strings.TrimPrefix(err.Error(), "websocket: ")
}

// asType is errors.As for a target of type T, as errors.AsType (Go 1.26)
// is; the module builds with Go 1.25 too.
func asType[T error](err error) (T, bool) {
	var target T
	ok := errors.As(err, &target)
	return target, ok
}
