package h2

import (
	"errors"
	"fmt"
	"strconv"
)

// ConnError is the end of a whole connection: an error of ours that we
// reported in a GOAWAY, or the peer's GOAWAY or disappearance.
type ConnError struct {
	Code   ErrCode
	Reason string
	Remote bool // the server ended the connection
}

func (e *ConnError) Error() string {
	if e.Remote {
		if e.Reason != "" {
			return fmt.Sprintf("http2: the server ended the connection with %v: %s", e.Code, quote(e.Reason))
		}
		return fmt.Sprintf("http2: the server ended the connection with %v", e.Code)
	}
	return fmt.Sprintf("http2: connection error %v: %s", e.Code, e.Reason)
}

func connError(code ErrCode, format string, args ...any) *ConnError {
	return &ConnError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// StreamError is the end of one stream by RST_STREAM: the server's, or
// ours when the server broke the rules on that stream alone.
type StreamError struct {
	Code   ErrCode
	Reason string
	Remote bool // the server reset the stream
}

func (e *StreamError) Error() string {
	if e.Remote {
		return fmt.Sprintf("http2: the server reset the stream with %v", e.Code)
	}
	return fmt.Sprintf("http2: stream error %v: %s", e.Code, e.Reason)
}

func streamError(code ErrCode, format string, args ...any) *StreamError {
	return &StreamError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// RefusedError ends a stream that the server's GOAWAY names as not
// processed: one past the last stream it processed (RFC 9113 §6.8).
type RefusedError struct {
	GoAway *ConnError
}

func (e *RefusedError) Error() string {
	return e.GoAway.Error() + ", before processing the stream"
}

func (e *RefusedError) Unwrap() error { return e.GoAway }

// Unprocessed reports whether err, from OpenStream or a stream's
// Response, says that the server did not process the stream: refused by
// its GOAWAY or reset with REFUSED_STREAM, or not opened at all because
// the connection takes no new streams, or had ended. Such a stream may
// be opened again (§8.7), on another connection.
func Unprocessed(err error) bool {
	if se, ok := asType[*StreamError](err); ok {
		return se.Remote && se.Code == ErrCodeRefusedStream
	}
	if _, unopened := asType[*unopenedError](err); unopened {
		return true
	}
	_, refused := asType[*RefusedError](err)
	return refused || errors.Is(err, ErrUnavailable)
}

// unopenedError is OpenStream's error when the connection had ended
// before anything of the stream was written: err, why it ended.
type unopenedError struct{ err error }

func (e *unopenedError) Error() string { return e.err.Error() }
func (e *unopenedError) Unwrap() error { return e.err }

var (
	// ErrNotHTTP2 is returned by NewClientConn when the server answers
	// the connection preface with something other than HTTP/2 SETTINGS,
	// typically an HTTP/1.1 response to what it read as a bad request.
	ErrNotHTTP2 = errors.New("http2: the server does not speak HTTP/2 on this connection")
	// ErrUnavailable is returned by OpenStream on a connection that
	// takes no new streams: it is closed, the server sent GOAWAY, or its
	// stream limit or stream IDs are used up. Another connection may.
	ErrUnavailable = errors.New("http2: connection takes no new streams")
)

// maxQuoted bounds how much of a string the server sent an error quotes.
const maxQuoted = 128

// quote quotes s, a string the server sent, for an error's text: at most
// maxQuoted bytes of it, followed by "..." when there is more.
func quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "..."
	}
	return strconv.Quote(s)
}

// asType is errors.As for a target of type T, as errors.AsType (Go 1.26)
// is; the module builds with Go 1.25 too.
func asType[T error](err error) (T, bool) {
	var target T
	ok := errors.As(err, &target)
	return target, ok
}
