package websocket

// WebSockets over HTTP/2 streams fed arbitrary requests and bytes:
// FuzzStreamConn.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fuzzStreamWriter is the response writer of an HTTP/2 stream under
// fuzzing: it records the response head and writes the body to ft, whose
// misuse list notes a write made before the last was flushed. Its writes
// from panicFrom on (when not 0) panic, as net/http's do after the
// handler returned; with cancel set, the stream ends after cancelAfter
// writes, as when the peer resets it: the request's context ends, and
// the writes that follow fail, as net/http's do. Its fields are guarded
// by ft.mu.
type fuzzStreamWriter struct {
	ft          *fuzzTransport
	header      http.Header
	status      int
	flushes     int
	writes      int
	unflushed   bool
	panicFrom   int
	cancelAfter int
	cancel      context.CancelFunc
	failed      atomic.Bool // the stream has ended: writes fail
}

func (w *fuzzStreamWriter) Header() http.Header { return w.header }

func (w *fuzzStreamWriter) WriteHeader(code int) {
	w.ft.mu.Lock()
	defer w.ft.mu.Unlock()
	if w.status == 0 {
		w.status = code
	}
}

func (w *fuzzStreamWriter) Write(p []byte) (int, error) {
	w.ft.mu.Lock()
	if w.cancel != nil && w.failed.Load() {
		w.ft.mu.Unlock()
		return 0, errors.New("http2: stream closed")
	}
	if w.panicFrom > 0 && w.writes+1 >= w.panicFrom {
		w.ft.mu.Unlock()
		w.failed.Store(true)
		panic("http: write after the handler returned")
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.unflushed {
		w.ft.misuse = append(w.ft.misuse, "a write before the last was flushed")
	}
	w.writes++
	w.unflushed = true
	end := w.cancel != nil && w.writes == w.cancelAfter
	w.ft.mu.Unlock()
	n, err := w.ft.Write(p)
	if end {
		w.failed.Store(true)
		w.cancel()
	}
	return n, err
}

// SetWriteDeadline takes the deadline as net/http's writer does, which
// Accept needs so that closing can end a write under way; the fuzzed
// transport's writes never wait, so it has nothing to end.
func (w *fuzzStreamWriter) SetWriteDeadline(time.Time) error { return nil }

func (w *fuzzStreamWriter) Flush() {
	w.ft.mu.Lock()
	defer w.ft.mu.Unlock()
	w.flushes++
	w.unflushed = false
}

// fuzzConnectRequest makes a request that Go's HTTP/2 server could hand a
// handler: method, the header lines of head, a :protocol pseudo-header
// when protocol is not empty, and body.
func fuzzConnectRequest(method, protocol string, head []byte, body io.ReadCloser) (*http.Request, context.CancelFunc, bool) {
	mh, err := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(head), strings.NewReader("\r\n\r\n")))).ReadMIMEHeader()
	if err != nil {
		return nil, nil, false
	}
	h := http.Header(mh)
	host := h.Get("Host")
	delete(h, "Host")
	if protocol != "" {
		h[":protocol"] = []string{protocol}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &http.Request{
		Method: method, URL: &url.URL{Path: "/"}, Proto: "HTTP/2.0", ProtoMajor: 2,
		Header: h, Host: host, Body: body, RemoteAddr: "127.0.0.1:50000",
	}
	return r.WithContext(ctx), cancel, true
}

// fuzzStreamRefusals restates RFC 8441 §4 and §5 and the origin policy of
// Accept: every HTTP status that some failed check of r would answer with.
func fuzzStreamRefusals(r *http.Request) []int {
	var statuses []int
	if r.Method != http.MethodConnect {
		statuses = append(statuses, http.StatusMethodNotAllowed)
	}
	// The token compared ignoring case (RFC 9110 §7.8). A CONNECT has no
	// content (RFC 9110 §9.3.6).
	if !strings.EqualFold(r.Header.Get(":protocol"), "websocket") || r.Host == "" || r.Header["Content-Length"] != nil {
		statuses = append(statuses, http.StatusBadRequest)
	}
	// :path is a path (RFC 9113 §8.3.1).
	if t := r.RequestURI; t != "" && !strings.HasPrefix(t, "/") {
		statuses = append(statuses, http.StatusBadRequest)
	}
	// A version not ours is 400 too: a 426 would need an Upgrade header,
	// which HTTP/2 has not.
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || v[0] != "13" {
		statuses = append(statuses, http.StatusBadRequest)
	}
	if fuzzOriginRefused(r, false) {
		statuses = append(statuses, http.StatusForbidden)
	}
	return statuses
}

// fuzzStreamSession accepts an extended CONNECT built from method,
// protocol and head, whose body serves stream as the peer's bytes, and
// checks the answer; a Conn accepted then runs over the HTTP/2 stream
// adapter and is read and judged as FuzzServerConn does.
//
// The plan is FuzzServerConn's, but that its second byte gives the
// transport no half-close and no deadlines (a stream has neither), and
// has the stream end on the way: bit 5 makes a write panic, as net/http
// does on a write after the handler returned, from the write numbered by
// bits 3-4 (plus one) on; bit 6 ends the stream instead once that many
// writes went through (the request's context ends, later writes fail).
func fuzzStreamSession(method, protocol string, head, planBytes, stream []byte) error {
	plan := &fuzzPlan{p: planBytes}
	limit := fuzzReadLimits[int(plan.next())%len(fuzzReadLimits)]
	options := plan.next()
	ft := &fuzzTransport{plan: plan, in: stream}
	r, cancel, ok := fuzzConnectRequest(method, protocol, head, ft)
	if !ok {
		return nil
	}
	defer cancel()
	w := &fuzzStreamWriter{ft: ft, header: http.Header{}}
	c, err := Accept(w, r, &AcceptOptions{Subprotocols: fuzzSubprotocols, KeepaliveInterval: -1, CloseTimeout: time.Minute})
	refusals := fuzzStreamRefusals(r)
	if err != nil {
		return fuzzCheckRefused(c, err, w.status, w.header, ft.out, refusals, http.MethodConnect)
	}
	defer c.CloseNow()
	if len(refusals) > 0 {
		return fmt.Errorf("Accept took a request that fails checks answered with %v: %s %q %q", refusals, method, protocol, head)
	}
	switch {
	case w.status != http.StatusOK || w.flushes == 0 || w.writes > 0:
		return fmt.Errorf("Accept answered %d, flushed %d times, wrote %d times; want 200, flushed, no body", w.status, w.flushes, w.writes)
	case len(ft.in) != len(stream):
		return fmt.Errorf("Accept read %d bytes of the stream", len(stream)-len(ft.in))
	}
	for _, name := range []string{"Sec-WebSocket-Accept", "Upgrade", "Connection", "Sec-WebSocket-Extensions"} {
		if v, ok := w.header[name]; ok {
			return fmt.Errorf("response over HTTP/2 has %s %q", name, v)
		}
	}
	if err := fuzzCheckSubprotocol(r, c.Subprotocol(), w.header.Values("Sec-WebSocket-Protocol")); err != nil {
		return err
	}
	switch k := int(options>>3) & 3; {
	case options&0x20 != 0:
		w.panicFrom = k + 1
	case options&0x40 != 0:
		w.cancelAfter, w.cancel = k, cancel
		if k == 0 {
			w.failed.Store(true)
			cancel()
		}
	}
	return fuzzReadSession(c, ft, fuzzSession{limit: limit, measure: options&4 != 0, writesFailed: w.failed.Load}, stream)
}

// FuzzStreamConn fuzzes the HTTP/2 stream adapter (http2.go) from both
// ends: the handshake, with arbitrary extended CONNECT requests (method,
// :protocol, header lines), whose status must be one that a failed check
// calls for, or 200 with the right headers and nothing read or written;
// and the Conn over the stream, whose reads come in the plan's arbitrary
// chunks through the request body, whose writes go to the response writer,
// each flushed before the next, and whose stream may end mid-way, with
// FuzzServerConn's checks of everything delivered, written and reported.
func FuzzStreamConn(f *testing.F) {
	const head = "Sec-WebSocket-Version: 13\r\nHost: example.com\r\n"
	for i, s := range fuzzConnSeeds(true) {
		f.Add(http.MethodConnect, "websocket", []byte(head), []byte{byte(i), 0xFF &^ 0x60, 0x80 + byte(i)}, []byte(s))
	}
	f.Add(http.MethodConnect, "websocket", []byte(head+"Origin: https://example.com\r\nSec-WebSocket-Protocol: chat, chat.v2\r\n"), []byte{0, 0}, []byte(fuzzConnSeeds(true)[0]))
	f.Add(http.MethodConnect, "websocket", []byte(head+"Origin: https://evil.example\r\n"), []byte{0, 0}, []byte(fuzzConnSeeds(true)[0]))
	f.Add(http.MethodGet, "websocket", []byte(head), []byte{0, 0}, []byte(fuzzConnSeeds(true)[0]))
	f.Add(http.MethodConnect, "chat", []byte(head), []byte{0, 0}, []byte(fuzzConnSeeds(true)[0]))
	f.Add(http.MethodConnect, "", []byte(head), []byte{0, 0}, []byte(fuzzConnSeeds(true)[0]))
	f.Add(http.MethodConnect, "websocket", []byte("Sec-WebSocket-Version: 8\r\n"), []byte{0, 0}, []byte(fuzzConnSeeds(true)[0]))
	for _, options := range []byte{0x20, 0x28, 0x40, 0x48, 0x58} {
		f.Add(http.MethodConnect, "websocket", []byte(head), []byte{0, options, 0x05}, []byte(fuzzConnSeeds(true)[1]))
	}
	f.Fuzz(func(t *testing.T, method, protocol string, head, plan, stream []byte) {
		fuzzBounded(t, func() error { return fuzzStreamSession(method, protocol, head, plan, stream) })
	})
}
