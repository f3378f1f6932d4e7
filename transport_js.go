//go:build js && wasm

package websocket

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"syscall/js"
	"time"
)

// browserSocket is the transport of a Conn from Dial in a browser. The
// browser's WebSocket frames, masks, compresses, answers pings and runs
// the closing handshake itself, and deals in whole messages;
// browserSocket translates between it and the frames a Conn reads and
// writes, so that the Conn runs unchanged:
//
//   - A message from the browser is read as one unmasked frame, text for
//     a string and binary for an ArrayBuffer. Its payload stays in the
//     browser's memory until the Conn reads it, so that the read limit
//     applies before any of it is copied.
//   - The close event is read as a close frame with the event's code and
//     reason, followed by the end of the stream; a connection lost without
//     a close frame (code 1006) ends the stream with an error instead.
//   - The Conn's frames are parsed as they are written, unmasked, and
//     gathered to the end of their message, which goes out with one
//     send(). A close frame becomes close(); pings and pongs, which a
//     browser neither sends nor passes on, are dropped.
//
// Reads and writes take deadlines, so that a context that ends interrupts
// a call as on any other connection, leaving the connection usable.
type browserSocket struct {
	ws      js.Value      // the WebSocket; immutable
	encoder js.Value      // a TextEncoder, for text messages; immutable
	funcs   []js.Func     // the event handlers; immutable, released by Close
	notify  chan struct{} // buffer of one: signalled when mu's fields change
	readDL  netDeadline   // its own lock
	writeDL netDeadline   // its own lock
	out     outbound      // the Conn's frame lock (one writer at a time)

	mu        sync.Mutex
	in        []inbound // mu: messages received and not yet read
	end       error     // mu: set by the close event: io.EOF, or why the connection was lost
	opened    bool      // mu: the open event came
	closeSent bool      // mu: close() was called
	closed    bool      // mu: Close was called
}

// inbound is a received message as the Conn reads it: head, the frame's
// header (or the whole close frame), then data, the payload, a
// Uint8Array. off counts the bytes read of both.
type inbound struct {
	head []byte
	data js.Value // undefined when the payload is in head
	size int      // len(head) + data.length
	off  int
}

// read copies the next bytes of m into p.
func (m *inbound) read(p []byte) int {
	n := 0
	if m.off < len(m.head) {
		n = copy(p, m.head[m.off:])
	}
	if k := min(len(p)-n, m.size-m.off-n); k > 0 {
		start := m.off + n - len(m.head)
		js.CopyBytesToGo(p[n:n+k], m.data.Call("subarray", start, start+k))
		n += k
	}
	m.off += n
	return n
}

// openBrowserSocket opens a WebSocket to url, offering protocols, and
// waits until it is open, it fails, or ctx ends.
func openBrowserSocket(ctx context.Context, url string, protocols []string) (*browserSocket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &browserSocket{
		encoder: js.Global().Get("TextEncoder").New(),
		notify:  make(chan struct{}, 1),
	}
	s.readDL.parent, s.writeDL.parent = context.Background(), context.Background()
	var err error
	s.ws, err = newWebSocket(url, protocols)
	if err != nil {
		return nil, err
	}
	s.ws.Set("binaryType", "arraybuffer")
	s.handle("onopen", s.onOpen)
	s.handle("onmessage", s.onMessage)
	s.handle("onclose", s.onClose)
	for {
		s.mu.Lock()
		opened, end := s.opened, s.end
		s.mu.Unlock()
		switch {
		case opened:
			return s, nil
		case end != nil:
			s.Close()
			return nil, errors.New("the browser could not open the connection, and does not say why (its console may)")
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		}
	}
}

// newWebSocket calls the WebSocket constructor, which throws on a URL or
// subprotocol it does not take.
func newWebSocket(url string, protocols []string) (ws js.Value, err error) {
	ctor := js.Global().Get("WebSocket")
	if ctor.Type() != js.TypeFunction {
		return js.Value{}, errors.New("this JavaScript environment has no WebSocket")
	}
	defer func() {
		if r := recover(); r != nil {
			jerr, ok := r.(js.Error)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("the browser refused to open it: %s", jerr.Get("message").String())
		}
	}()
	list := make([]any, len(protocols))
	for i, p := range protocols {
		list[i] = p
	}
	return ctor.New(url, list), nil
}

// handle sets the WebSocket's event handler name to f.
func (s *browserSocket) handle(name string, f func(ev js.Value)) {
	jf := js.FuncOf(func(_ js.Value, args []js.Value) any {
		f(args[0])
		return nil
	})
	s.funcs = append(s.funcs, jf)
	s.ws.Set(name, jf)
}

// The event handlers run in the browser's event loop: they must not block.

func (s *browserSocket) onOpen(js.Value) {
	s.mu.Lock()
	s.opened = true
	s.mu.Unlock()
	s.signal()
}

func (s *browserSocket) onMessage(ev js.Value) {
	data := ev.Get("data")
	op := opBinary
	if data.Type() == js.TypeString {
		op = opText
		data = s.encoder.Call("encode", data)
	} else {
		data = js.Global().Get("Uint8Array").New(data)
	}
	size := data.Length()
	m := inbound{head: appendHeader(nil, header{fin: true, op: op, length: int64(size)}), data: data}
	m.size = len(m.head) + size
	s.push(m, nil)
}

func (s *browserSocket) onClose(ev js.Value) {
	code := StatusCode(ev.Get("code").Int())
	if code != StatusNoStatusRcvd && !code.validReceived() {
		// 1006, or 1015: no close frame came.
		s.push(inbound{}, fmt.Errorf("the browser reports the WebSocket closed with %v", code))
		return
	}
	payload, err := closePayload(code, ev.Get("reason").String())
	if err != nil {
		s.push(inbound{}, fmt.Errorf("the browser reports a close frame it could not have received: %w", err))
		return
	}
	m := inbound{head: appendFrame(nil, header{fin: true, op: opClose}, payload)}
	m.size = len(m.head)
	s.push(m, io.EOF)
}

// push adds m, unless it is empty, to what is to be read, and end, if set,
// after it.
func (s *browserSocket) push(m inbound, end error) {
	s.mu.Lock()
	if !s.closed {
		if m.size > 0 {
			s.in = append(s.in, m)
		}
		if end != nil && s.end == nil {
			s.end = end
		}
	}
	s.mu.Unlock()
	s.signal()
}

func (s *browserSocket) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Read reads what the browser received, as frames; see browserSocket.
func (s *browserSocket) Read(p []byte) (int, error) {
	for {
		deadline := s.readDL.context()
		if deadline.Err() != nil {
			return 0, os.ErrDeadlineExceeded
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return 0, net.ErrClosed
		}
		n := 0
		for n < len(p) && len(s.in) > 0 {
			m := &s.in[0]
			n += m.read(p[n:])
			if m.off == m.size {
				s.in[0] = inbound{}
				s.in = s.in[1:]
			}
		}
		end := s.end
		s.mu.Unlock()
		switch {
		case n > 0 || len(p) == 0:
			return n, nil
		case end != nil:
			return 0, end
		}
		select {
		case <-s.notify:
		case <-deadline.Done():
		}
	}
}

// Write takes the Conn's frames; see browserSocket. The browser's send()
// never blocks, and neither does Write.
func (s *browserSocket) Write(p []byte) (int, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return 0, net.ErrClosed
	case s.writeDL.context().Err() != nil:
		return 0, os.ErrDeadlineExceeded
	}
	if err := s.out.write(s, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the WebSocket, with a close frame without a status code
// unless the Conn sent one already (a browser cannot close a WebSocket
// without a close frame), and stops taking its events.
func (s *browserSocket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.closed = true
	closeSent := s.closeSent
	s.closeSent = true
	s.in = nil
	s.mu.Unlock()
	s.signal()
	if !closeSent {
		s.ws.Call("close")
	}
	for _, name := range []string{"onopen", "onmessage", "onclose"} {
		s.ws.Set(name, js.Null())
	}
	for _, f := range s.funcs {
		f.Release()
	}
	s.readDL.stop()
	s.writeDL.stop()
	return nil
}

func (s *browserSocket) SetReadDeadline(t time.Time) error {
	s.readDL.set(t)
	return nil
}

func (s *browserSocket) SetWriteDeadline(t time.Time) error {
	s.writeDL.set(t)
	return nil
}

// send sends a message the Conn wrote: text as a string, as the browser
// sends text (invalid UTF-8 becomes U+FFFD on the way), binary as bytes.
func (s *browserSocket) send(op opcode, p []byte) {
	if op == opText {
		s.ws.Call("send", string(p))
		return
	}
	a := js.Global().Get("Uint8Array").New(len(p))
	js.CopyBytesToJS(a, p)
	s.ws.Call("send", a)
}

// sendClose closes the WebSocket with the close frame the Conn wrote. A
// page may close with 1000 or 3000-4999 only, so other codes go as 1000,
// with the reason unchanged.
func (s *browserSocket) sendClose(payload []byte) {
	s.mu.Lock()
	sent := s.closeSent
	s.closeSent = true
	s.mu.Unlock()
	if sent {
		return
	}
	if len(payload) < 2 {
		s.ws.Call("close")
		return
	}
	code := binary.BigEndian.Uint16(payload)
	if code != uint16(StatusNormalClosure) && (code < 3000 || code > 4999) {
		code = uint16(StatusNormalClosure)
	}
	s.ws.Call("close", int(code), string(payload[2:]))
}

// outbound parses the frames the Conn writes, which may come a piece at a
// time or several at once.
type outbound struct {
	head    [maxHeaderSize]byte // the part of a header written so far
	hn      int                 // bytes in head
	h       header              // the frame being written, once inFrame
	inFrame bool                // h's header is parsed; left bytes of its payload are to come
	left    int64
	pos     int    // position in h.key of the next payload byte
	op      opcode // the opcode of the message being gathered
	msg     []byte // the message's payload so far, unmasked
	ctl     []byte // a control frame's payload so far, unmasked
}

// maxKeptMessage bounds the message buffer kept between messages.
const maxKeptMessage = 64 << 10

func (o *outbound) write(s *browserSocket, p []byte) error {
	for {
		if !o.inFrame {
			if len(p) == 0 {
				return nil
			}
			k := copy(o.head[o.hn:], p)
			h, n, err := parseHeader(o.head[:o.hn+k])
			if err != nil {
				return err
			}
			if n == 0 {
				o.hn += k
				p = p[k:]
				continue
			}
			p = p[n-o.hn:]
			o.hn = 0
			o.h, o.inFrame, o.left, o.pos = h, true, h.length, 0
			switch {
			case h.op.isControl():
				o.ctl = o.ctl[:0]
			case h.op != opContinuation:
				o.op = h.op
				o.msg = o.msg[:0]
				if h.fin {
					o.msg = slices.Grow(o.msg, int(h.length))
				}
			}
		}
		buf := &o.msg
		if o.h.op.isControl() {
			buf = &o.ctl
		}
		k := int(min(o.left, int64(len(p))))
		start := len(*buf)
		*buf = append(*buf, p[:k]...)
		if o.h.masked {
			o.pos = maskBytes(o.h.key, o.pos, (*buf)[start:])
		}
		p = p[k:]
		o.left -= int64(k)
		if o.left > 0 {
			return nil
		}
		o.inFrame = false
		switch {
		case o.h.op == opClose:
			s.sendClose(o.ctl)
		case o.h.op.isControl():
			// A ping or pong: the browser sends its own pongs, and no pings.
		case o.h.fin:
			s.send(o.op, o.msg)
			if cap(o.msg) > maxKeptMessage {
				o.msg = nil
			}
		}
	}
}
