// Package wsjson reads and writes WebSocket messages as JSON: one value
// per text message, encoded and decoded by encoding/json.
package wsjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/rfc6455/websocket"
)

// ErrBinaryMessage is Read's error for a binary message, which it read
// and dropped; the connection stays usable.
var ErrBinaryMessage = errors.New("websocket: json: got a binary message, but JSON messages are text" +
	" (for JSON in binary messages, read them with Conn.Read and decode with json.Unmarshal)")

// Read reads the next message of c and decodes it into v, as
// json.Unmarshal does. The message must be a text message holding exactly
// one JSON value, with nothing but whitespace around it; anything after
// the value is an error. Read returns once the message is read to its end.
//
// A binary message is read and dropped, and Read returns ErrBinaryMessage:
// JSON travels in text messages. A peer that sends JSON in binary
// messages is read with Conn.Read and json.Unmarshal.
//
// The connection's read limit (Conn.SetReadLimit) applies: a message over
// it fails the connection with StatusMessageTooBig before its excess is
// read. The errors of the connection, and ctx's, are returned as the
// reader of Conn.Reader returns them: as Conn.Read's, except that a Close
// called on another goroutine while a message arrives ends the Read, the
// rest of the message dropped, where Conn.Read would finish the message
// first. After an error in the JSON itself, or a binary message, the
// connection stays usable.
//
// encoding/json decodes a value only once all of it is in memory (its
// Decoder, too, gathers the whole value before decoding), so Read takes
// the message whole, once it has begun, into a buffer that is kept for
// the next call: apart from what v needs, reading a message allocates
// nothing. While Read waits for a message it holds no buffer, as an idle
// connection does not.
func Read(ctx context.Context, c *websocket.Conn, v any) error {
	if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || rv.IsNil() {
		// Checked before reading, so that no message is lost to it.
		return fmt.Errorf("websocket: json: Read needs a non-nil pointer, not %T", v)
	}
	typ, r, err := c.Reader(ctx)
	if err != nil {
		return err
	}
	if typ != websocket.MessageText {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		return ErrBinaryMessage
	}
	bp := readBufs.Get().(*[]byte)
	defer putReadBuf(bp)
	// Grown as the bytes come, doubling, never to a size claimed.
	buf := bytes.NewBuffer((*bp)[:0])
	_, err = buf.ReadFrom(r)
	p := buf.Bytes()
	*bp = p
	if err != nil {
		return err
	}
	if err := json.Unmarshal(p, v); err != nil {
		return &jsonError{err}
	}
	return nil
}

// maxPooledRead is the largest read buffer kept for reuse.
const maxPooledRead = 4 << 20

var readBufs = sync.Pool{New: func() any { return new([]byte) }}

func putReadBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledRead {
		readBufs.Put(bp)
	}
}

// Write encodes v as JSON, as json.Marshal does, and sends it as one text
// message. The message holds exactly what json.Marshal(v) returns, without
// the newline that json.Encoder ends a value with.
//
// The encoding goes from json.Encoder's buffer, which encoding/json reuses
// from call to call, straight into the message writer (Conn.Writer): it is
// not copied into a message of its own, so writing allocates no buffer the
// size of the message. A value that cannot be encoded is reported before
// the message is started, and nothing is sent. The errors of the
// connection, and ctx's, are returned as Conn.Writer returns them.
func Write(ctx context.Context, c *websocket.Conn, v any) error {
	w := &textWriter{ctx: ctx, c: c}
	encErr := json.NewEncoder(w).Encode(v)
	var closeErr error
	if w.msg != nil {
		closeErr = w.msg.Close()
	}
	switch {
	case w.err != nil:
		return w.err
	case encErr != nil:
		return &jsonError{encErr}
	}
	return closeErr
}

// textWriter passes what json.Encoder writes on to a text message, which
// it starts at the first write, so that a value that fails to encode
// starts none, and drops the newline the Encoder ends the value with.
type textWriter struct {
	ctx context.Context
	c   *websocket.Conn
	msg io.WriteCloser // the message, once started
	err error          // the message's error
}

func (w *textWriter) Write(p []byte) (int, error) {
	if w.msg == nil {
		w.msg, w.err = w.c.Writer(w.ctx, websocket.MessageText)
		if w.err != nil {
			return 0, w.err
		}
	}
	// Compact JSON holds no raw newline: a newline that ends a write is
	// the one after the value.
	q := p
	if n := len(q); n > 0 && q[n-1] == '\n' {
		q = q[:n-1]
	}
	if _, err := w.msg.Write(q); err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// jsonError is an error of encoding/json, with the package's prefix.
type jsonError struct{ err error }

func (e *jsonError) Error() string {
	s := strings.TrimPrefix(e.err.Error(), "json: ")
	if len(s) > maxErrorText {
		// A number the peer sent, which encoding/json quotes whole.
		n := maxErrorText
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "..."
	}
	return "websocket: json: " + s
}

// maxErrorText bounds the text of an error of encoding/json that Error
// passes on: a value the peer sent, quoted whole, would make an error, or
// a log line, of a megabyte.
const maxErrorText = 512

func (e *jsonError) Unwrap() error { return e.err }
