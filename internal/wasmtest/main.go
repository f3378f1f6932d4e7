//go:build js && wasm

// Command wasmtest is the browser half of TestBrowserDial: built with
// GOOS=js GOARCH=wasm and run by index.html in a browser, it dials the
// test's server with the package's Dial, over the browser's WebSocket,
// and reports what it sees, one line per check, in the page's list and
// on the console. The test knows what each line must say, and what the
// server must have seen.
//
// The server echoes every message, but for four commands: "close CODE
// REASON" has it close the connection with that code and reason, "drop"
// has it drop the connection without a close frame, "send N" has it
// send N bytes of binary, and "bad-text" has it send a text message that
// is not UTF-8. The query's name tells the server which connection is
// which.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall/js"
	"time"
	"unicode/utf8"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/wsjson"
)

// wait bounds every call.
const wait = 10 * time.Second

func main() {
	r := &run{host: js.Global().Get("location").Get("host").String()}
	r.sizes()
	r.peerEnds()
	r.closeCodes()
	r.closeWrite()
	r.keepalive()
	r.deflate()
	r.netConn()
	r.json()
	r.dialErrors()
	r.report("done")
}

type run struct {
	host string // the page's host and port, which the server listens on
}

// report shows a line in the page's list and on the console.
func (r *run) report(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	doc := js.Global().Get("document")
	li := doc.Call("createElement", "li")
	li.Set("textContent", line)
	doc.Call("getElementById", "log").Call("appendChild", li)
	fmt.Println(line)
}

// dial dials the echo endpoint as the connection called name, through a
// URL of scheme, reporting a failure.
func (r *run) dial(scheme, name string, opts *websocket.DialOptions) *websocket.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, scheme+"://"+r.host+"/echo?name="+name, opts)
	if err != nil {
		r.report("%s: dial: %v", name, err)
	}
	return c
}

// sizes sends messages of every length class both ways, whole and in
// fragments, from two goroutines, with a context that ends in between,
// tries Ping, and closes.
func (r *run) sizes() {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+r.host+"/echo?name=sizes", &websocket.DialOptions{
		Subprotocols: []string{"chat", "echo"},
	})
	if err != nil {
		r.report("sizes: dial: %v", err)
		return
	}
	defer c.CloseNow()
	r.report("dial: subprotocol %q; response %q, Sec-WebSocket-Protocol %q", c.Subprotocol(), resp.Status, resp.Header.Get("Sec-WebSocket-Protocol"))

	for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
		for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
			r.report("%v %d: %s", typ, n, echo(ctx, c, typ, payload(typ, n)))
		}
	}

	// A 4-byte character straddles the Writer's first frame boundary (at
	// 4 KiB), and the writes cut characters too: the text is whole only
	// once its frames are put together.
	text := []byte(strings.Repeat("a", 4094) + "🌍" + string(payload(websocket.MessageText, 6000)))
	r.report("Writer, text of %d bytes in writes of 1000: %s", len(text), echoWriter(ctx, c, websocket.MessageText, text, 1000))
	bin := payload(websocket.MessageBinary, 200000)
	r.report("Writer, binary of %d bytes in writes of 50000: %s", len(bin), echoWriter(ctx, c, websocket.MessageBinary, bin, 50000))

	// Messages written by one goroutine while another reads them back.
	const count = 100
	wrote := make(chan error, 1)
	go func() {
		for i := range count {
			if err := c.Write(ctx, websocket.MessageBinary, payload(websocket.MessageBinary, i*100)); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	result := fmt.Sprintf("%d messages, in order and intact", count)
	for i := range count {
		typ, p, err := c.Read(ctx)
		if err != nil {
			result = fmt.Sprintf("message %d: read: %v", i, err)
			break
		}
		if s := compare(websocket.MessageBinary, payload(websocket.MessageBinary, i*100), typ, p); s != "echoed intact" {
			result = fmt.Sprintf("message %d: %s", i, s)
			break
		}
	}
	if err := <-wrote; err != nil {
		result += fmt.Sprintf("; write: %v", err)
	}
	r.report("written by one goroutine, read by another: %s", result)

	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	_, _, err = c.Read(short)
	cancelShort()
	r.report("read with a context that ends: %v; then: %s", err, echo(ctx, c, websocket.MessageText, []byte("still open")))

	// A Writer whose context ends once its first frame (4 KiB) was
	// written: the browser sends a message only whole, so nothing of it
	// went out; it is dropped, and the connection stays usable.
	short, cancelShort = context.WithTimeout(ctx, 100*time.Millisecond)
	werr, cerr := writeUntilDone(short, c, payload(websocket.MessageBinary, 5000))
	cancelShort()
	r.report("Writer whose context ends after its first frame: write: %v; close: %v; then: %s", werr, cerr, echo(ctx, c, websocket.MessageText, []byte("still open")))

	err = c.Ping(ctx)
	r.report("ping: %v; errors.Is(err, errors.ErrUnsupported): %v; then: %s", err, errors.Is(err, errors.ErrUnsupported), echo(ctx, c, websocket.MessageText, []byte("still open")))

	r.report("close: %v", c.Close(websocket.StatusNormalClosure, "done"))
	err = c.Write(ctx, websocket.MessageText, []byte("too late"))
	r.report("write after close: %v; errors.Is(err, websocket.ErrClosed): %v", err, errors.Is(err, websocket.ErrClosed))
}

// peerEnds has the server end the connection: close it, drop it without
// a close frame, send text that is not UTF-8 (which the browser fails the
// connection for), or send a message over the read limit.
func (r *run) peerEnds() {
	for _, e := range []struct {
		name, command string
		limit         int64 // the read limit; 0 leaves the default
	}{
		{"server-close", "close 4001 going, going, gone", 0},
		{"drop", "drop", 0},
		{"policy", "close 1008 no, thank you", 0},
		{"bad-text", "bad-text", 0},
		{"read-limit", "send 2000", 1000},
	} {
		c := r.dial("ws", e.name, nil)
		if c == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		if e.limit > 0 {
			c.SetReadLimit(e.limit)
		}
		err := c.Write(ctx, websocket.MessageText, []byte(e.command))
		if err == nil {
			_, _, err = c.Read(ctx)
		}
		r.report("%s: %v; CloseStatus %d", e.name, err, websocket.CloseStatus(err))
		r.report("%s: then write: %v", e.name, c.Write(ctx, websocket.MessageText, []byte("too late")))
		cancel()
		c.CloseNow()
	}
}

// closeCodes closes with codes a browser may send and one it may not,
// with CloseNow, and through an http:// URL.
func (r *run) closeCodes() {
	for _, cl := range []struct {
		scheme, name string
		code         websocket.StatusCode
		reason       string
	}{
		{"http", "going-away", websocket.StatusGoingAway, "leaving"},
		{"ws", "private", 4000, "private"},
		{"ws", "no-code", websocket.StatusNoStatusRcvd, ""},
		{"ws", "close-now", 0, ""},
	} {
		c := r.dial(cl.scheme, cl.name, nil)
		if c == nil {
			continue
		}
		if cl.code == 0 {
			r.report("%s: CloseNow: %v", cl.name, c.CloseNow())
			continue
		}
		r.report("%s: Close(%d, %q): %v", cl.name, int(cl.code), cl.reason, c.Close(cl.code, cl.reason))
	}
}

// closeWrite closes for writing, then reads the server's answer.
func (r *run) closeWrite() {
	c := r.dial("ws", "close-write", nil)
	if c == nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := c.CloseWrite(websocket.StatusNormalClosure, "bye")
	_, _, rerr := c.Read(ctx)
	r.report("close-write: CloseWrite: %v; read: %v", err, rerr)
}

// keepalive stays quiet for 1.5 s while the server pings after 100 ms of
// quiet and gives up 500 ms later without an answer: the browser answers
// the pings itself.
func (r *run) keepalive() {
	c := r.dial("ws", "keepalive", nil)
	if c == nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	time.Sleep(1500 * time.Millisecond)
	r.report("keepalive: after 1.5 s of quiet: %s", echo(ctx, c, websocket.MessageText, []byte("still here")))
	r.report("keepalive: close: %v", c.Close(websocket.StatusNormalClosure, ""))
}

// deflate talks to a server that takes the browser's offer of
// compression, which the browser then runs unseen.
func (r *run) deflate() {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+r.host+"/echo?name=deflate", nil)
	if err != nil {
		r.report("deflate: dial: %v", err)
		return
	}
	defer c.CloseNow()
	r.report("deflate: Sec-WebSocket-Extensions %q", resp.Header.Get("Sec-WebSocket-Extensions"))
	text := []byte(strings.Repeat("compressible, very compressible. ", 3000))
	r.report("deflate: text of %d bytes: %s", len(text), echo(ctx, c, websocket.MessageText, text))
	r.report("deflate: close: %v", c.Close(websocket.StatusNormalClosure, ""))
}

// netConn reads and writes through NetConn: a stream across messages,
// empty ones included, a read deadline that passes and is lifted, Close
// while a Read waits, and the server's close 1000 as io.EOF.
func (r *run) netConn() {
	c := r.dial("ws", "netconn", nil)
	if c == nil {
		return
	}
	nc := websocket.NetConn(c, websocket.MessageBinary)
	for _, w := range []string{"hello", "", "world"} {
		if _, err := nc.Write([]byte(w)); err != nil {
			r.report("netconn: write: %v", err)
			return
		}
	}
	// One stream across the messages, the empty one adding nothing.
	got, err := io.ReadAll(io.LimitReader(nc, 10))
	r.report("netconn: read %q, %v", got, err)

	nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = nc.Read(make([]byte, 3))
	var ne net.Error
	r.report("netconn: past the deadline: %v; Timeout %v, os.ErrDeadlineExceeded %v", err, errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded))
	nc.SetReadDeadline(time.Time{})
	nc.Write([]byte("again"))
	p := make([]byte, 5)
	_, err = io.ReadFull(nc, p)
	r.report("netconn: deadline lifted: %q, %v", p, err)

	read := make(chan error, 1)
	go func() {
		_, err := nc.Read(p)
		read <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cerr := nc.Close()
	select {
	case err := <-read:
		r.report("netconn: Close: %v; the waiting Read: %v, net.ErrClosed %v", cerr, err, errors.Is(err, net.ErrClosed))
	case <-time.After(wait):
		r.report("netconn: Close: %v; the waiting Read still waits", cerr)
	}

	c = r.dial("ws", "netconn-eof", nil)
	if c == nil {
		return
	}
	nc = websocket.NetConn(c, websocket.MessageText)
	nc.SetDeadline(time.Now().Add(wait))
	nc.Write([]byte("close 1000 bye"))
	_, err = nc.Read(p)
	r.report("netconn-eof: read: %v; Close: %v", err, nc.Close())
}

// json reads and writes JSON values with wsjson, and meets what is not
// one: a value that cannot be encoded, text that is not JSON, a binary
// message, and a message over the read limit.
func (r *run) json() {
	c := r.dial("ws", "json", nil)
	if c == nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	type move struct {
		Player string
		X, Y   int
	}
	var m move
	err := wsjson.Write(ctx, c, move{"ann", 1, 2})
	if err == nil {
		err = wsjson.Read(ctx, c, &m)
	}
	r.report("json: echoed %+v, %v", m, err)
	r.report("json: Write(func): %v", wsjson.Write(ctx, c, func() {}))
	for _, cmd := range []string{"{bad", "send 10", `{"Player":"bob"}`} {
		if err := c.Write(ctx, websocket.MessageText, []byte(cmd)); err != nil {
			r.report("json: write: %v", err)
			return
		}
		m = move{}
		err := wsjson.Read(ctx, c, &m)
		r.report("json: after %q: %+v, %v", cmd, m, err)
	}
	c.SetReadLimit(100)
	err = wsjson.Write(ctx, c, move{Player: strings.Repeat("x", 200)})
	if err == nil {
		err = wsjson.Read(ctx, c, &m)
	}
	r.report("json: over the read limit: %v; CloseStatus %d", err, websocket.CloseStatus(err))
}

// dialErrors dials what cannot be dialed.
func (r *run) dialErrors() {
	for _, d := range []struct {
		url     string
		opts    *websocket.DialOptions
		timeout time.Duration
	}{
		{"ws://" + r.host + "/missing", nil, wait},
		{"ws://" + r.host + "/hang", nil, 200 * time.Millisecond},
		{"ftp://" + r.host + "/echo", nil, wait},
		{"ws://" + r.host + "/echo?name=bad-subprotocol", &websocket.DialOptions{Subprotocols: []string{"two words"}}, wait},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
		c, resp, err := websocket.Dial(ctx, d.url, d.opts)
		cancel()
		if c != nil {
			c.CloseNow()
		}
		r.report("dial %s: conn %v, response %v: %v", d.url, c != nil, resp != nil, err)
	}
}

// echo writes p as a message of type typ and says whether it came back.
func echo(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, p []byte) string {
	if err := c.Write(ctx, typ, p); err != nil {
		return "write: " + err.Error()
	}
	return readBack(ctx, c, typ, p)
}

// echoWriter writes p through Writer, in writes of size bytes, and says
// whether it came back.
func echoWriter(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, p []byte, size int) string {
	w, err := c.Writer(ctx, typ)
	if err != nil {
		return "Writer: " + err.Error()
	}
	for rest := p; len(rest) > 0; {
		n := min(size, len(rest))
		if _, err := w.Write(rest[:n]); err != nil {
			return "write: " + err.Error()
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		return "close: " + err.Error()
	}
	return readBack(ctx, c, typ, p)
}

// writeUntilDone writes p through a Writer with ctx, then again once ctx
// has ended, and closes the writer; it returns the second write's error
// and Close's.
func writeUntilDone(ctx context.Context, c *websocket.Conn, p []byte) (werr, cerr error) {
	w, err := c.Writer(ctx, websocket.MessageBinary)
	if err != nil {
		return err, nil
	}
	if _, err := w.Write(p); err != nil {
		return err, w.Close()
	}
	<-ctx.Done()
	_, werr = w.Write(p)
	return werr, w.Close()
}

func readBack(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, p []byte) string {
	got, q, err := c.Read(ctx)
	if err != nil {
		return "read: " + err.Error()
	}
	return compare(typ, p, got, q)
}

func compare(typ websocket.MessageType, p []byte, got websocket.MessageType, q []byte) string {
	if got != typ {
		return fmt.Sprintf("came back as %v", got)
	}
	if len(q) != len(p) {
		return fmt.Sprintf("came back with %d bytes", len(q))
	}
	for i := range p {
		if p[i] != q[i] {
			return fmt.Sprintf("came back changed at byte %d", i)
		}
	}
	return "echoed intact"
}

// payload returns n bytes to send as a message of type typ: for text,
// characters of one to four bytes, cut at a character, padded with "x".
func payload(typ websocket.MessageType, n int) []byte {
	if typ == websocket.MessageText {
		const s = "héllo, wörld ✓ 🌍 "
		full := strings.Repeat(s, n/len(s)+1)
		i := n
		for i > 0 && !utf8.RuneStart(full[i]) {
			i--
		}
		return []byte(full[:i] + strings.Repeat("x", n-i))
	}
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i) ^ byte(i>>8)*7
	}
	return p
}
