package websocket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/godebugtest"
)

// xconnect is the GODEBUG setting under which Go's HTTP/2 server offers
// extended CONNECT (RFC 8441); net/http reads it once, at start.
const xconnect = "http2xconnect=1"

// TestHTTP2 runs TestOverHTTP2 in a child process started with
// GODEBUG=http2xconnect=1, and fails unless it passed there.
func TestHTTP2(t *testing.T) {
	t.Parallel()
	godebugtest.Run(t, xconnect, "TestOverHTTP2")
}

// TestOverHTTP2 checks Accept over HTTP/2 streams, with Node.js's HTTP/2
// client opening them (Go's http.Transport refuses to send :protocol), and
// exact bytes where it matters. TestHTTP2 runs it.
func TestOverHTTP2(t *testing.T) {
	if !godebugtest.Has(xconnect) {
		t.Skip("needs GODEBUG=" + xconnect + "; TestHTTP2 runs it so")
	}
	t.Run("echo", testHTTP2Echo)
	t.Run("exact bytes", testHTTP2Bytes)
	t.Run("protocol error", testHTTP2ProtocolError)
	t.Run("refusals", testHTTP2Refusals)
	t.Run("after a response", testHTTP2AfterResponse)
	t.Run("serve", testHTTP2Serve)
	t.Run("compression", testHTTP2Compression)
	t.Run("addresses", testHTTP2Addrs)
	t.Run("handler header", testHTTP2HandlerHeader)
}

// testHTTP2HandlerHeader: over HTTP/2 as over HTTP/1.1, what the handler
// set on its ResponseWriter goes out with the response, but for fields the
// handshake sets itself; and over HTTP/2 neither the handler's nor
// ResponseHeader's Keep-Alive, Proxy-Connection or TE, fields of an
// HTTP/1.1 connection, which Node.js's client takes for a malformed
// response (RFC 9113 §8.2.2) and resets the stream for.
func testHTTP2HandlerHeader(t *testing.T) {
	s := h2Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Sec-WebSocket-Protocol", "chat")
		w.Header().Set("Proxy-Connection", "keep-alive")
		c, err := Accept(w, r, &AcceptOptions{ResponseHeader: http.Header{"Set-Cookie": {"b=2"}, "Keep-Alive": {"timeout=60"}, "Te": {"gzip"}}})
		if err != nil {
			return
		}
		c.Close(StatusNormalClosure, "")
	})
	resp, nc := h2Request(t, s, http.MethodConnect, nil)
	if nc == nil || resp.Status != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", resp.Status, resp.Body)
	}
	nc.Close()
	if got := resp.Headers["x-frame-options"]; got != "DENY" {
		t.Errorf("x-frame-options %q, want DENY", got)
	}
	if got := resp.Headers["set-cookie"]; got != "b=2" {
		t.Errorf("set-cookie %q, want b=2", got)
	}
	if got, ok := resp.Headers["sec-websocket-protocol"]; ok {
		t.Errorf("sec-websocket-protocol %q, want none: no subprotocol was negotiated", got)
	}
	for _, name := range []string{"keep-alive", "proxy-connection", "te"} {
		if got, ok := resp.Headers[name]; ok {
			t.Errorf("%s %q, want none: HTTP/2 has no connection-specific fields", name, got)
		}
	}
}

// testHTTP2Addrs: a WebSocket over HTTP/2 reports the HTTP/2 connection's
// addresses.
func testHTTP2Addrs(t *testing.T) {
	addrs := make(chan [2]net.Addr, 1)
	s := h2Server(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, nil)
		if err != nil {
			return
		}
		addrs <- [2]net.Addr{c.LocalAddr(), c.RemoteAddr()}
		c.Close(StatusNormalClosure, "")
	})
	h2Client(t, s, nil, CompressionDisabled)
	got := <-addrs
	if got[0] == nil || got[0].String() != s.Listener.Addr().String() {
		t.Errorf("LocalAddr %v, want the listener's %v", got[0], s.Listener.Addr())
	}
	if ra, ok := got[1].(*net.TCPAddr); !ok || !ra.IP.IsLoopback() || ra.Port == 0 {
		t.Errorf("RemoteAddr %#v, want a loopback *net.TCPAddr", got[1])
	}
}

// h2Server starts a TLS server speaking HTTP/2 whose handler is h.
func h2Server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.EnableHTTP2 = true
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// h2Peer is Node.js's HTTP/2 client, bridging a stream to TCP
// (testdata/interop/node_h2.js).
var h2Peer = interopPeer{"node-http2", "/usr/bin/node", "testdata/interop/node_h2.js"}

// h2Response is what node_h2.js reports of the response.
type h2Response struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"` // names in lower case
	Body    string            `json:"body"`
	Port    int               `json:"port"`
	Error   string            `json:"error"`
}

// h2Request sends a request to s through node_h2.js: an extended CONNECT
// for a WebSocket when method is CONNECT. For a 2xx response it returns
// the TCP connection bridged to the stream.
func h2Request(t *testing.T, s *httptest.Server, method string, header map[string]string) (h2Response, net.Conn) {
	t.Helper()
	requirePeer(t, h2Peer)
	if header == nil {
		header = map[string]string{}
	}
	if _, ok := header["sec-websocket-version"]; !ok {
		header["sec-websocket-version"] = "13"
	}
	// A ":protocol" entry replaces the extended CONNECT's "websocket".
	protocol := header[":protocol"]
	delete(header, ":protocol")
	cfg, err := json.Marshal(map[string]any{"url": s.URL + "/ws", "method": method, "protocol": protocol, "headers": header})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, h2Peer.prog, h2Peer.script, string(cfg))
	cmd.WaitDelay = interopWait
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		t.Fatalf("node_h2.js reported nothing: %v; stderr: %s", err, stderr.Bytes())
	}
	var resp h2Response
	if err := json.Unmarshal(line, &resp); err != nil || resp.Error != "" {
		t.Fatalf("node_h2.js: %s (%v); stderr: %s", line, err, stderr.Bytes())
	}
	if resp.Port == 0 {
		return resp, nil
	}
	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", resp.Port))
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(interopWait))
	t.Cleanup(func() { nc.Close() })
	return resp, nc
}

// h2Client opens a WebSocket stream to s and returns our client Conn over
// it, with the compression the response agreed to under mode.
func h2Client(t *testing.T, s *httptest.Server, header map[string]string, mode CompressionMode) (*Conn, h2Response) {
	t.Helper()
	comp, err := newCompression(mode, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if offer := comp.offer(); offer != "" {
		if header == nil {
			header = map[string]string{}
		}
		header["sec-websocket-extensions"] = offer
	}
	resp, nc := h2Request(t, s, http.MethodConnect, header)
	if resp.Status != http.StatusOK || nc == nil {
		t.Fatalf("status %d (%s), want 200", resp.Status, resp.Body)
	}
	h := http.Header{}
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	deflate, err := comp.check(h)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Time{})
	c := newConn(&connConfig{client: true, deflate: deflate, tr: netTransport(nc)})
	t.Cleanup(func() { c.CloseNow() })
	return c, resp
}

// h2Echo is a handler that echoes messages until the connection ends and
// sends the error that ended it to ended.
func h2Echo(opts *AcceptOptions, ended chan<- error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, p, err := c.Read(context.Background())
			if err == nil {
				err = c.Write(context.Background(), typ, p)
			}
			if err != nil {
				ended <- err
				return
			}
		}
	}
}

func testHTTP2Echo(t *testing.T) {
	ended := make(chan error, 1)
	s := h2Server(t, h2Echo(&AcceptOptions{Subprotocols: []string{"chat"}}, ended))
	c, resp := h2Client(t, s, map[string]string{"sec-websocket-protocol": "other, chat"}, CompressionDisabled)
	if got := resp.Headers["sec-websocket-protocol"]; got != "chat" {
		t.Errorf("Sec-WebSocket-Protocol %q, want chat", got)
	}
	if got, ok := resp.Headers["sec-websocket-accept"]; ok {
		t.Errorf("Sec-WebSocket-Accept %q over HTTP/2, want none (RFC 8441 §5)", got)
	}
	ctx := context.Background()
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		if err := c.Write(ctx, MessageBinary, msg); err != nil {
			t.Fatalf("Write %d bytes: %v", n, err)
		}
		typ, p, err := c.Read(ctx)
		if err != nil || typ != MessageBinary || !bytes.Equal(p, msg) {
			t.Fatalf("echo of %d bytes: %v %d bytes, %v", n, typ, len(p), err)
		}
	}
	if err := c.Write(ctx, MessageText, []byte("héllo")); err != nil {
		t.Fatal(err)
	}
	if typ, p, err := c.Read(ctx); err != nil || typ != MessageText || string(p) != "héllo" {
		t.Fatalf("text echo: %v %q %v", typ, p, err)
	}
	if err := c.Close(StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-ended:
		var ce CloseError
		if !errors.As(err, &ce) || ce != (CloseError{StatusNormalClosure, "bye"}) {
			t.Fatalf("server's read ended with %v, want the close frame 1000 bye", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler still running after the close handshake")
	}
}

// readFull reads exactly n bytes from nc within 5 seconds.
func readFull(t *testing.T, nc net.Conn, n int) []byte {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(nc, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// expectEnd checks that the stream ends (END_STREAM, which the bridge
// passes on as the end of nc) within 5 seconds, with nothing more on it.
func expectEnd(t *testing.T, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("stream not ended within 5s after the close handshake: %v (read % x)", err, b)
	}
	if len(b) != 0 {
		t.Fatalf("% x after the close frame, want the end of the stream", b)
	}
}

func testHTTP2Bytes(t *testing.T) {
	ended := make(chan error, 1)
	s := h2Server(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		if err := c.Write(context.Background(), MessageText, []byte("hi")); err != nil {
			ended <- err
			return
		}
		_, _, err = c.Read(context.Background())
		ended <- err
	})
	resp, nc := h2Request(t, s, http.MethodConnect, nil)
	if resp.Status != http.StatusOK || nc == nil {
		t.Fatalf("status %d (%s), want 200", resp.Status, resp.Body)
	}
	if got, want := readFull(t, nc, 4), []byte{0x81, 0x02, 'h', 'i'}; !bytes.Equal(got, want) {
		t.Fatalf("server sent % x, want % x", got, want)
	}
	// A masked close frame with code 1000 and mask key 01 02 03 04.
	if _, err := nc.Write([]byte{0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2}); err != nil {
		t.Fatal(err)
	}
	if got, want := readFull(t, nc, 4), []byte{0x88, 0x02, 0x03, 0xe8}; !bytes.Equal(got, want) {
		t.Fatalf("close answered with % x, want % x", got, want)
	}
	expectEnd(t, nc)
	if err := <-ended; CloseStatus(err) != StatusNormalClosure {
		t.Fatalf("server's Read: %v, want close 1000", err)
	}
}

func testHTTP2ProtocolError(t *testing.T) {
	ended := make(chan error, 1)
	// A close timeout far past expectEnd's wait: the stream must end
	// because the server failed the connection, not because it gave up
	// waiting for the client.
	s := h2Server(t, h2Echo(&AcceptOptions{CloseTimeout: time.Minute}, ended))
	resp, nc := h2Request(t, s, http.MethodConnect, nil)
	if resp.Status != http.StatusOK || nc == nil {
		t.Fatalf("status %d (%s), want 200", resp.Status, resp.Body)
	}
	// An unmasked frame from a client: RFC 6455 §5.1 fails the connection.
	if _, err := nc.Write([]byte{0x81, 0x01, 'x'}); err != nil {
		t.Fatal(err)
	}
	head := readFull(t, nc, 4)
	if head[0] != 0x88 || head[1] < 2 || head[1] > 125 || head[2] != 0x03 || head[3] != 0xea {
		t.Fatalf("answered with % x, want a close frame with code 1002", head)
	}
	readFull(t, nc, int(head[1])-2) // the reason
	// Failing the connection, the server ends its stream at once after
	// its close frame, waiting neither for our close frame nor for the end
	// of our side (RFC 6455 §7.1.7): END_STREAM cannot reset what it
	// wrote, as closing a socket with input unread would.
	expectEnd(t, nc)
	select {
	case err := <-ended:
		if CloseStatus(err) != StatusProtocolError {
			t.Errorf("the handler's Read returned %v, want a protocol error 1002", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the handler's Read had not returned 5s after the stream ended")
	}
}

func testHTTP2Refusals(t *testing.T) {
	s := h2Server(t, h2Echo(nil, make(chan error, 1)))
	tests := []struct {
		name     string
		method   string
		protocol string
		header   map[string]string
		status   int
		check    string // a response header that must be set, as name: value
	}{
		{"GET", http.MethodGet, "", nil, http.StatusMethodNotAllowed, "allow: CONNECT"},
		{"other protocol", http.MethodConnect, "websocket2", nil, http.StatusBadRequest, ""},
		// 400, not 426: RFC 9110 has a 426 carry Upgrade, which HTTP/2 lacks.
		{"version 8", http.MethodConnect, "", map[string]string{"sec-websocket-version": "8"}, http.StatusBadRequest, "sec-websocket-version: 13"},
		{"other origin", http.MethodConnect, "", map[string]string{"origin": "https://elsewhere.example"}, http.StatusForbidden, ""},
		{"content-length", http.MethodConnect, "", map[string]string{"content-length": "5"}, http.StatusBadRequest, ""},
		{"content-length 0", http.MethodConnect, "", map[string]string{"content-length": "0"}, http.StatusBadRequest, ""},
		// What the peer sent is quoted at most maxQuoted bytes long.
		{"long method", strings.Repeat("X", 10_000), "", nil, http.StatusMethodNotAllowed, "allow: CONNECT"},
		{"long protocol", http.MethodConnect, strings.Repeat("x", 10_000), nil, http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := tt.header
			if tt.protocol != "" {
				header = map[string]string{":protocol": tt.protocol}
			}
			resp, nc := h2Request(t, s, tt.method, header)
			if nc != nil || resp.Status != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.Status, resp.Body, tt.status)
			}
			if name, value, ok := strings.Cut(tt.check, ": "); ok && resp.Headers[name] != value {
				t.Errorf("%s: %q, want %q", name, resp.Headers[name], value)
			}
			if !strings.HasPrefix(resp.Body, "websocket: ") {
				t.Errorf("body %.300q does not say why", resp.Body)
			}
			if len(resp.Body) > 300 {
				t.Errorf("body of %d bytes: %.300q...", len(resp.Body), resp.Body)
			}
		})
	}
	// RFC 8441 §4 takes :protocol from the HTTP Upgrade Token Registry,
	// whose tokens RFC 9110 §7.8 has recipients compare ignoring case.
	t.Run("protocol in capitals", func(t *testing.T) {
		resp, nc := h2Request(t, s, http.MethodConnect, map[string]string{":protocol": "WebSocket"})
		if nc == nil || resp.Status != http.StatusOK {
			t.Fatalf("status %d (%s), want 200", resp.Status, resp.Body)
		}
	})
}

// testHTTP2AfterResponse: over HTTP/2 too, Accept refuses a stream whose
// handler already answered, and the client gets that answer.
func testHTTP2AfterResponse(t *testing.T) {
	errc := make(chan error, 1)
	s := h2Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "already answered")
		_, err := Accept(w, r, nil)
		errc <- err
	})
	resp, nc := h2Request(t, s, http.MethodConnect, nil)
	if nc != nil || resp.Status != http.StatusTeapot || resp.Body != "already answered" {
		t.Errorf("status %d with body %q, want the handler's 418 and its body", resp.Status, resp.Body)
	}
	if err := <-errc; err != errResponseWritten {
		t.Errorf("Accept error %v, want %v", err, errResponseWritten)
	}
}

func testHTTP2Serve(t *testing.T) {
	returned := make(chan error, 1)
	s := h2Server(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, nil)
		if err != nil {
			return
		}
		var end error
		c.Serve(func(typ MessageType, p []byte) {
			c.Write(context.Background(), typ, p)
		}, func(err error) { end = err })
		returned <- end // Serve returned: onClose has run
	})
	c, _ := h2Client(t, s, nil, CompressionDisabled)
	ctx := context.Background()
	for i := range 3 {
		msg := bytes.Repeat([]byte("ab"), 1000*i)
		if err := c.Write(ctx, MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("echo %d: %d bytes, %v", i, len(p), err)
		}
	}
	select {
	case err := <-returned:
		t.Fatalf("handler returned while the connection was open: %v", err)
	default:
	}
	if err := c.Close(StatusGoingAway, ""); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-returned:
		if CloseStatus(err) != StatusGoingAway {
			t.Fatalf("onClose got %v, want close 1001", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the close handshake")
	}
}

func testHTTP2Compression(t *testing.T) {
	ended := make(chan error, 1)
	s := h2Server(t, h2Echo(&AcceptOptions{Compression: CompressionContextTakeover}, ended))
	c, resp := h2Client(t, s, nil, CompressionContextTakeover)
	if ext := resp.Headers["sec-websocket-extensions"]; !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("Sec-WebSocket-Extensions %q, want permessage-deflate", ext)
	}
	ctx := context.Background()
	msg := bytes.Repeat([]byte(`{"event":"tick","n":12345}`), 400)
	for range 3 {
		if err := c.Write(ctx, MessageText, msg); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("compressed echo: %d bytes, %v", len(p), err)
		}
	}
	if err := c.Close(StatusNormalClosure, ""); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-ended; CloseStatus(err) != StatusNormalClosure {
		t.Fatalf("server's read ended with %v", err)
	}
}
