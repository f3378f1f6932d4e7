package websocket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// sampleKey and sampleAccept are the example of RFC 6455 §1.3.
const (
	sampleKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	sampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// sample101 is the whole response to a request with sampleKey when no
// subprotocol is chosen and no extra header is set.
const sample101 = "HTTP/1.1 101 Switching Protocols\r\n" +
	"Upgrade: websocket\r\n" +
	"Connection: Upgrade\r\n" +
	"Sec-WebSocket-Accept: " + sampleAccept + "\r\n" +
	"\r\n"

// acceptServer starts a server whose handler wraps the ResponseWriter with
// wrap (when not nil), calls Accept with opts, reports Accept's error on
// the returned channel, and echoes on success. Handlers, hijacked or not,
// have ended when the test's cleanups are done.
func acceptServer(t *testing.T, opts *AcceptOptions, wrap func(http.ResponseWriter) http.ResponseWriter) (*httptest.Server, <-chan error) {
	t.Helper()
	s := httptest.NewUnstartedServer(nil)
	errc := startAcceptServer(t, s, opts, wrap)
	return s, errc
}

// startAcceptServer installs acceptServer's handler in s and starts it.
func startAcceptServer(t *testing.T, s *httptest.Server, opts *AcceptOptions, wrap func(http.ResponseWriter) http.ResponseWriter) <-chan error {
	t.Helper()
	errc := make(chan error, 16)
	var handlers sync.WaitGroup
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		if wrap != nil {
			w = wrap(w)
		}
		c, err := Accept(w, r, opts)
		errc <- err
		if err != nil {
			return
		}
		defer c.CloseNow()
		echo(c)
	})
	s.Start()
	t.Cleanup(func() {
		s.Close()
		handlers.Wait()
	})
	return errc
}

// acceptErr returns the error of the next Accept call on errc.
func acceptErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Accept was not called within 10s")
		return nil
	}
}

// tcpDial connects to addr; the connection is closed when the test ends
// and reads and writes on it fail after 10 seconds.
func tcpDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc
}

// handshakeRequest returns a request for target with the header lines of a
// valid opening handshake (key sampleKey), changed by changes: a line
// "Name: value" replaces every line of that name (several lines with one
// name give several lines), "-Name" removes it.
func handshakeRequest(method, target, proto, host string, changes ...string) string {
	base := []string{
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: " + sampleKey,
		"Sec-WebSocket-Version: 13",
	}
	lineName := func(line string) string {
		if name, ok := strings.CutPrefix(line, "-"); ok {
			return strings.ToLower(name)
		}
		name, _, _ := strings.Cut(line, ":")
		return strings.ToLower(name)
	}
	changed := map[string]bool{}
	for _, line := range changes {
		changed[lineName(line)] = true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\r\nHost: %s\r\n", method, target, proto, host)
	for _, line := range base {
		if !changed[lineName(line)] {
			b.WriteString(line + "\r\n")
		}
	}
	for _, line := range changes {
		if !strings.HasPrefix(line, "-") {
			b.WriteString(line + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// getRequest is handshakeRequest for GET / over HTTP/1.1.
func getRequest(host string, changes ...string) string {
	return handshakeRequest("GET", "/", "HTTP/1.1", host, changes...)
}

// rawExchange writes req on a new connection to s and reads the response
// head and its whole body. The connection is returned for what follows a
// 101 response.
func rawExchange(t *testing.T, s *httptest.Server, req string) (*http.Response, string, net.Conn, *bufio.Reader) {
	t.Helper()
	nc := tcpDial(t, s.Listener.Addr().String())
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return resp, string(body), nc, br
}

// readHead reads from nc up to and including the blank line that ends a
// response head, and nothing beyond it unless the peer sent more at once.
func readHead(t *testing.T, nc net.Conn) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, []byte("\r\n\r\n")) {
		n, err := nc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading the response head: %v; got %q", err, got)
		}
	}
	return string(got)
}

// TestHandshakeNames checks the header names the handshake looks up
// directly in header maps against net/http's canonical form, which
// those maps hold.
func TestHandshakeNames(t *testing.T) {
	for rfc, ours := range map[string]string{
		"Sec-WebSocket-Key":        hdrKey,
		"Sec-WebSocket-Version":    hdrVersion,
		"Sec-WebSocket-Accept":     hdrAccept,
		"Sec-WebSocket-Protocol":   hdrProtocol,
		"Sec-WebSocket-Extensions": hdrExtensions,
	} {
		if want := http.CanonicalHeaderKey(rfc); ours != want {
			t.Errorf("%s is looked up as %q, but header maps hold %q", rfc, ours, want)
		}
	}
}

// TestHandshakeKeyAllocations checks the key and its answer against RFC
// 6455's example, and that checking a key and computing its answer into a
// buffer allocate nothing.
func TestHandshakeKeyAllocations(t *testing.T) {
	var buf [28]byte
	allocs := testing.AllocsPerRun(100, func() {
		if !validKey(sampleKey) {
			t.Fatalf("key %q refused", sampleKey)
		}
		if got := appendAcceptKey(buf[:0], sampleKey); string(got) != sampleAccept {
			t.Fatalf("accept key %q, want %q", got, sampleAccept)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per key, want 0", allocs)
	}
}

func TestAcceptStatus(t *testing.T) {
	t.Parallel()
	key15 := base64.StdEncoding.EncodeToString(make([]byte, 15))
	key17 := base64.StdEncoding.EncodeToString(make([]byte, 17))
	key18 := base64.StdEncoding.EncodeToString(make([]byte, 18)) // 24 characters, as a valid key has
	key1K := base64.StdEncoding.EncodeToString(make([]byte, 1024))
	tests := []struct {
		name    string
		method  string // GET when empty
		target  string // "/" when empty
		proto   string // HTTP/1.1 when empty
		changes []string
		status  int
		header  string // "Name: value" the response must carry
		keyword string // the body must mention it (ignoring case)
	}{
		{name: "valid", status: 101},
		{name: "POST", method: "POST", status: 405, header: "Allow: GET", keyword: "method"},
		{name: "PUT", method: "PUT", status: 405, header: "Allow: GET", keyword: "method"},
		{name: "DELETE", method: "DELETE", status: 405, header: "Allow: GET", keyword: "method"},
		{name: "CONNECT", method: "CONNECT", target: "example.com:443", status: 405, header: "Allow: GET", keyword: "method"},
		{name: "method of 100 KB", method: strings.Repeat("X", 100_000), status: 405, header: "Allow: GET", keyword: "method"},
		{name: "HTTP/1.0", proto: "HTTP/1.0", status: 400, keyword: "HTTP/1.0"},

		// RFC 6455 §4.1: the target is the resource's path, or an absolute
		// http or https URI.
		{name: "target *", target: "*", status: 400, keyword: "target"},
		{name: "target ws URI", target: "ws://example.com/chat", status: 400, keyword: "target"},
		{name: "target opaque", target: "http:chat", status: 400, keyword: "target"},
		// RFC 9110 §4.2.1: an http URI with an empty host "MUST" be
		// rejected as invalid.
		{name: "target http URI, empty host", target: "http:///chat", status: 400, keyword: "target"},
		{name: "target http URI, no authority", target: "http:/chat", status: 400, keyword: "target"},
		{name: "target http URI", target: "http://example.com/chat?x=1", status: 101},
		{name: "target HTTPS URI without path", target: "HTTPS://example.com", status: 101},
		{name: "target path with query", target: "/chat?room=a", status: 101},

		{name: "Connection missing", changes: []string{"-Connection"}, status: 400, keyword: "Connection"},
		{name: "Connection keep-alive", changes: []string{"Connection: keep-alive"}, status: 400, keyword: "Connection"},
		{name: "Connection Upgraded", changes: []string{"Connection: Upgraded"}, status: 400, keyword: "Connection"},
		{name: "Connection keep-alive, Upgrade", changes: []string{"Connection: keep-alive, Upgrade"}, status: 101},
		{name: "Connection upgrade", changes: []string{"Connection: upgrade"}, status: 101},
		{name: "Connection UPGRADE", changes: []string{"Connection: UPGRADE"}, status: 101},
		{name: "Connection on two lines", changes: []string{"Connection: keep-alive", "Connection: Upgrade"}, status: 101},

		{name: "Upgrade missing", changes: []string{"-Upgrade"}, status: 400, keyword: "Upgrade"},
		{name: "Upgrade foo", changes: []string{"Upgrade: foo"}, status: 400, keyword: "Upgrade"},
		{name: "Upgrade websocketx", changes: []string{"Upgrade: websocketx"}, status: 400, keyword: "Upgrade"},
		{name: "Upgrade WebSocket", changes: []string{"Upgrade: WebSocket"}, status: 101},
		{name: "Upgrade websocket, foo", changes: []string{"Upgrade: websocket, foo"}, status: 101},
		{name: "Upgrade foo, websocket", changes: []string{"Upgrade: foo, websocket"}, status: 101},

		{name: "version missing", changes: []string{"-Sec-WebSocket-Version"}, status: 426, header: "Sec-WebSocket-Version: 13", keyword: "Sec-WebSocket-Version"},
		{name: "version 8", changes: []string{"Sec-WebSocket-Version: 8"}, status: 426, header: "Sec-WebSocket-Version: 13", keyword: "Sec-WebSocket-Version"},
		{name: "version 13, 8", changes: []string{"Sec-WebSocket-Version: 13, 8"}, status: 426, header: "Sec-WebSocket-Version: 13", keyword: "Sec-WebSocket-Version"},
		{name: "version 14", changes: []string{"Sec-WebSocket-Version: 14"}, status: 426, header: "Sec-WebSocket-Version: 13", keyword: "Sec-WebSocket-Version"},
		{name: "version twice", changes: []string{"Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13"}, status: 400, keyword: "2 Sec-WebSocket-Version headers"},
		{name: "versions 13 and 8", changes: []string{"Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"}, status: 400, keyword: "2 Sec-WebSocket-Version headers"},

		{name: "key missing", changes: []string{"-Sec-WebSocket-Key"}, status: 400, keyword: "Sec-WebSocket-Key"},
		{name: "key empty", changes: []string{"Sec-WebSocket-Key: "}, status: 400, keyword: "Sec-WebSocket-Key"},
		{name: "key not base64", changes: []string{"Sec-WebSocket-Key: not*base64*at*all!"}, status: 400, keyword: "Sec-WebSocket-Key"},
		{name: "key of 15 bytes", changes: []string{"Sec-WebSocket-Key: " + key15}, status: 400, keyword: "Sec-WebSocket-Key"},
		{name: "key of 17 bytes", changes: []string{"Sec-WebSocket-Key: " + key17}, status: 400, keyword: "Sec-WebSocket-Key"},
		{name: "key of 18 bytes", changes: []string{"Sec-WebSocket-Key: " + key18}, status: 400, keyword: "Sec-WebSocket-Key"},
		{name: "key of 1 KiB", changes: []string{"Sec-WebSocket-Key: " + key1K}, status: 400, keyword: "Sec-WebSocket-Key"},
		{name: "key unpadded", changes: []string{"Sec-WebSocket-Key: " + strings.TrimRight(sampleKey, "=")}, status: 400, keyword: "Sec-WebSocket-Key"},
		{name: "key with stray bits", changes: []string{"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="}, status: 400, keyword: "Sec-WebSocket-Key"},
		{name: "two keys", changes: []string{"Sec-WebSocket-Key: " + sampleKey, "Sec-WebSocket-Key: " + sampleKey}, status: 400, keyword: "Sec-WebSocket-Key"},

		{name: "other origin", changes: []string{"Origin: https://evil.example"}, status: 403, keyword: "origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, errc := acceptServer(t, nil, nil)
			method, target, proto := tt.method, tt.target, tt.proto
			if method == "" {
				method = "GET"
			}
			if target == "" {
				target = "/"
			}
			if proto == "" {
				proto = "HTTP/1.1"
			}
			req := handshakeRequest(method, target, proto, s.Listener.Addr().String(), tt.changes...)
			resp, body, _, _ := rawExchange(t, s, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %q, want %d; body %q", resp.Status, tt.status, body)
			}
			err := acceptErr(t, errc)
			if tt.status == 101 {
				if err != nil {
					t.Fatalf("Accept: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrHandshake) {
				t.Errorf("Accept error %v does not wrap ErrHandshake", err)
			}
			if !strings.Contains(strings.ToLower(body), strings.ToLower(tt.keyword)) {
				t.Errorf("body %.300q does not mention %q", body, tt.keyword)
			}
			// What the peer sent is quoted at most maxQuoted bytes long,
			// in the body and in Accept's error.
			if len(body) > 300 || len(err.Error()) > 300 {
				t.Errorf("body of %d bytes, error of %d: %.300q...", len(body), len(err.Error()), body)
			}
			if tt.header != "" {
				name, value, _ := strings.Cut(tt.header, ": ")
				if got := resp.Header.Values(name); len(got) != 1 || got[0] != value {
					t.Errorf("%s: %q, want [%q]", name, got, value)
				}
			}
			// RFC 9110 §15.5.22: "A server that sends a 426 (Upgrade
			// Required) response MUST send an Upgrade header field to
			// indicate the required protocol(s)", and §7.8 wants the
			// upgrade option in Connection beside it.
			if tt.status == http.StatusUpgradeRequired {
				if got := resp.Header.Values("Upgrade"); len(got) != 1 || got[0] != "websocket" {
					t.Errorf("Upgrade: %q, want [\"websocket\"]", got)
				}
				if got := resp.Header.Values("Connection"); len(got) != 1 || got[0] != "Upgrade" {
					t.Errorf("Connection: %q, want [\"Upgrade\"]", got)
				}
			}
		})
	}
}

func TestAcceptResponseBytes(t *testing.T) {
	t.Parallel()
	const withChat = "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + sampleAccept + "\r\n" +
		"Sec-WebSocket-Protocol: chat\r\n" +
		"\r\n"
	for _, tt := range []struct {
		name    string
		opts    *AcceptOptions
		changes []string
		want    string
	}{
		{name: "plain", want: sample101},
		{name: "permessage-deflate offered", changes: []string{"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"}, want: sample101},
		{name: "subprotocol offered, none spoken", changes: []string{"Sec-WebSocket-Protocol: chat"}, want: sample101},
		{name: "subprotocol chosen", opts: &AcceptOptions{Subprotocols: []string{"chat"}}, changes: []string{"Sec-WebSocket-Protocol: superchat, chat"}, want: withChat},
		{name: "key with surrounding blanks", changes: []string{"Sec-WebSocket-Key:   " + sampleKey + "  "}, want: sample101},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, errc := acceptServer(t, tt.opts, nil)
			nc := tcpDial(t, s.Listener.Addr().String())
			if _, err := io.WriteString(nc, getRequest(s.Listener.Addr().String(), tt.changes...)); err != nil {
				t.Fatal(err)
			}
			if got := readHead(t, nc); got != tt.want {
				t.Errorf("response\n%q\nwant\n%q", got, tt.want)
			}
			if err := acceptErr(t, errc); err != nil {
				t.Errorf("Accept: %v", err)
			}
		})
	}
}

func TestAcceptPipelinedFrame(t *testing.T) {
	t.Parallel()
	s, errc := acceptServer(t, nil, nil)
	// The masked "Hello" of RFC 6455 §5.7, in the same write as the request.
	const frame = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
	resp, _, _, br := rawExchange(t, s, getRequest(s.Listener.Addr().String())+frame)
	if resp.StatusCode != 101 {
		t.Fatalf("status %q, want 101", resp.Status)
	}
	if err := acceptErr(t, errc); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	got := make([]byte, 7)
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if want := "\x81\x05Hello"; string(got) != want {
		t.Errorf("echo %q, want %q", got, want)
	}
}

// TestAcceptRequestContent: a handshake with content is refused. After
// the 101, whatever follows the request head is read as frames, so the
// request's content would be taken for the client's first frames.
func TestAcceptRequestContent(t *testing.T) {
	t.Parallel()
	frame := clientFrame(0x81, "x")
	for _, tt := range []struct {
		name    string
		header  string
		content string
	}{
		{"Content-Length", "Content-Length: 5", "hello"},
		{"chunked", "Transfer-Encoding: chunked", "5\r\nhello\r\n0\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, errc := acceptServer(t, nil, nil)
			req := getRequest(s.Listener.Addr().String(), tt.header) + tt.content + frame
			resp, body, _, _ := rawExchange(t, s, req)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %q, want 400; body %q", resp.Status, body)
			}
			if want := "websocket: handshake request has content\n"; body != want {
				t.Errorf("body %q, want %q", body, want)
			}
			if err := acceptErr(t, errc); !errors.Is(err, ErrHandshake) {
				t.Errorf("Accept error %v does not wrap ErrHandshake", err)
			}
		})
	}
}

// TestAcceptStripPrefix: a handler behind http.StripPrefix, which leaves
// r.URL.Path empty for a request to the prefix itself, accepts: the
// target that Accept checks is the one the client sent.
func TestAcceptStripPrefix(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.StripPrefix("/ws", http.HandlerFunc(acceptEcho)))
	t.Cleanup(s.Close)
	ctx := context.Background()
	c, _, err := Dial(ctx, "ws://"+s.Listener.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.Read(ctx); err != nil || string(p) != "hi" {
		t.Fatalf("echo %q, %v", p, err)
	}
}

// TestAcceptNoHost: a request with an empty Host (over HTTP/2, no
// :authority) is refused; it does not name the server.
func TestAcceptNoHost(t *testing.T) {
	t.Parallel()
	const want = "websocket: request names no host\n"
	t.Run("HTTP/1.1", func(t *testing.T) {
		t.Parallel()
		s, errc := acceptServer(t, nil, nil)
		resp, body, _, _ := rawExchange(t, s, getRequest(""))
		if resp.StatusCode != http.StatusBadRequest || body != want {
			t.Errorf("status %q with body %q, want 400 with %q", resp.Status, body, want)
		}
		if err := acceptErr(t, errc); !errors.Is(err, ErrHandshake) {
			t.Errorf("Accept error %v does not wrap ErrHandshake", err)
		}
	})
	t.Run("HTTP/2", func(t *testing.T) {
		t.Parallel()
		r := httptest.NewRequest(http.MethodConnect, "/", nil)
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
		r.Host = ""
		r.Header = http.Header{":protocol": {"websocket"}, "Sec-Websocket-Version": {"13"}}
		w := httptest.NewRecorder()
		c, err := Accept(w, r, nil)
		if c != nil {
			c.CloseNow()
			t.Fatalf("Accept took the stream, answering %d", w.Code)
		}
		if !errors.Is(err, ErrHandshake) {
			t.Fatalf("Accept error %v does not wrap ErrHandshake", err)
		}
		if w.Code != http.StatusBadRequest || w.Body.String() != want {
			t.Errorf("status %d with body %q, want 400 with %q", w.Code, w.Body, want)
		}
	})
}

func TestAcceptOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opts   *AcceptOptions
		host   string   // Host header sent; the server's address when empty
		origin []string // Origin header lines; "SELF" stands for http://<server address>
		status int
	}{
		{name: "no Origin", status: 101},
		{name: "same host", origin: []string{"SELF"}, status: 101},
		{name: "same host ignoring case", host: "Example.COM", origin: []string{"https://example.com"}, status: 101},
		{name: "other host", origin: []string{"https://evil.example"}, status: 403},
		{name: "same host other port", host: "example.com:8080", origin: []string{"http://example.com:8081"}, status: 403},
		{name: "Host with https's default port", host: "example.com:443", origin: []string{"https://example.com"}, status: 101},
		{name: "Origin with https's default port", host: "example.com", origin: []string{"https://example.com:443"}, status: 101},
		{name: "Host with http's default port", host: "Example.com:80", origin: []string{"http://example.com"}, status: 101},
		{name: "IPv6 Host with https's default port", host: "[::1]:443", origin: []string{"https://[::1]"}, status: 101},
		{name: "Host with http's default port, https origin", host: "example.com:80", origin: []string{"https://example.com"}, status: 403},
		{name: "Host with https's default port, http origin", host: "example.com:443", origin: []string{"http://example.com"}, status: 403},
		{name: "Origin with http's default port on https", host: "example.com", origin: []string{"https://example.com:80"}, status: 403},
		{name: "Origin with an empty port", host: "example.com:443", origin: []string{"https://example.com:"}, status: 101}, // the default, as the URL standard has it
		{name: "Host with an empty port", host: "example.com:", origin: []string{"https://example.com:8443"}, status: 403},
		{name: "two Origin headers", origin: []string{"SELF", "SELF"}, status: 403},
		{name: "null", origin: []string{"null"}, status: 403},
		{name: "not a URL", origin: []string{"%zz"}, status: 403},

		{name: "pattern matches", opts: &AcceptOptions{OriginPatterns: []string{"*.example.com"}}, origin: []string{"https://a.example.com"}, status: 101},
		{name: "pattern matches ignoring case", opts: &AcceptOptions{OriginPatterns: []string{"*.example.com"}}, origin: []string{"https://A.Example.COM"}, status: 101},
		{name: "pattern does not match", opts: &AcceptOptions{OriginPatterns: []string{"*.example.com"}}, origin: []string{"https://example.org"}, status: 403},
		{name: "pattern does not match the bare domain", opts: &AcceptOptions{OriginPatterns: []string{"*.example.com"}}, origin: []string{"https://example.com"}, status: 403},
		{name: "second pattern matches", opts: &AcceptOptions{OriginPatterns: []string{"example.net", "*.example.com"}}, origin: []string{"https://a.example.com"}, status: 101},
		{name: "pattern with port", opts: &AcceptOptions{OriginPatterns: []string{"localhost:*"}}, origin: []string{"http://localhost:3000"}, status: 101},
		{name: "pattern with scheme matches", opts: &AcceptOptions{OriginPatterns: []string{"https://*.example.com"}}, origin: []string{"https://a.example.com"}, status: 101},
		{name: "pattern with scheme, other scheme", opts: &AcceptOptions{OriginPatterns: []string{"https://*.example.com"}}, origin: []string{"http://a.example.com"}, status: 403},
		{name: "null with pattern", opts: &AcceptOptions{OriginPatterns: []string{"*"}}, origin: []string{"null"}, status: 403},
		{name: "malformed pattern", opts: &AcceptOptions{OriginPatterns: []string{"["}}, origin: []string{"https://a.example.com"}, status: 500},
		// Found by every request, not only by those a pattern is tried on.
		{name: "malformed pattern, same origin", opts: &AcceptOptions{OriginPatterns: []string{"*.example.com", "x["}}, origin: []string{"SELF"}, status: 500},
		{name: "malformed pattern, no Origin", opts: &AcceptOptions{OriginPatterns: []string{"\\"}}, status: 500},

		{name: "skip check, other host", opts: &AcceptOptions{InsecureSkipOriginCheck: true}, origin: []string{"https://evil.example"}, status: 101},
		{name: "skip check, null", opts: &AcceptOptions{InsecureSkipOriginCheck: true}, origin: []string{"null"}, status: 101},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, errc := acceptServer(t, tt.opts, nil)
			addr := s.Listener.Addr().String()
			host := tt.host
			if host == "" {
				host = addr
			}
			var changes []string
			for _, o := range tt.origin {
				if o == "SELF" {
					o = "http://" + addr
				}
				changes = append(changes, "Origin: "+o)
			}
			resp, body, _, _ := rawExchange(t, s, getRequest(host, changes...))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %q, want %d; body %q", resp.Status, tt.status, body)
			}
			err := acceptErr(t, errc)
			switch tt.status {
			case 101:
				if err != nil {
					t.Errorf("Accept: %v", err)
				}
			case 403:
				if !errors.Is(err, ErrHandshake) {
					t.Errorf("Accept error %v does not wrap ErrHandshake", err)
				}
				if !strings.Contains(strings.ToLower(body), "origin") {
					t.Errorf("body %q does not mention the origin", body)
				}
			default:
				// The server's fault: the client is told no more than
				// for the other options that cannot work, and the error
				// names the pattern without wrapping ErrHandshake.
				if err == nil || errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "bad origin pattern") {
					t.Errorf("Accept: %v, want the bad pattern's error, not wrapping ErrHandshake", err)
				}
				if body != "websocket: server misconfigured\n" {
					t.Errorf("body %q, want websocket: server misconfigured", body)
				}
			}
		})
	}
}

// TestAcceptSubprotocolsChecked: a subprotocol of AcceptOptions that is
// not a token, which no client can offer, is the server's fault, found by
// every handshake as a bad origin pattern is: 500, saying only that the
// server is misconfigured, and an error naming it that does not wrap
// ErrHandshake. Before, the server went on, never choosing it.
func TestAcceptSubprotocolsChecked(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"a b", "", "chat,v2", "\u00e9cho"} {
		s, errc := acceptServer(t, &AcceptOptions{Subprotocols: []string{"chat", bad}}, nil)
		resp, body, _, _ := rawExchange(t, s, getRequest(s.Listener.Addr().String(), "Sec-WebSocket-Protocol: chat"))
		if resp.StatusCode != http.StatusInternalServerError || body != "websocket: server misconfigured\n" {
			t.Errorf("subprotocol %q: %q, body %q; want 500, websocket: server misconfigured", bad, resp.Status, body)
		}
		want := fmt.Sprintf("websocket: AcceptOptions.Subprotocols: %q is not a token (RFC 6455 §4.1)", bad)
		if err := acceptErr(t, errc); err == nil || errors.Is(err, ErrHandshake) || err.Error() != want {
			t.Errorf("Accept: %v, want %s, not wrapping ErrHandshake", err, want)
		}
	}
}

func TestAcceptOriginDial(t *testing.T) {
	t.Parallel()
	s, errc := acceptServer(t, &AcceptOptions{OriginPatterns: []string{"*.example.com"}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, _, err := Dial(ctx, wsURL(s), &DialOptions{Header: http.Header{"Origin": {"https://chat.example.com"}}})
	if err != nil {
		t.Fatalf("Dial from an allowed origin: %v", err)
	}
	defer c.CloseNow()
	if err := acceptErr(t, errc); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	handshakeEcho(t, c, "allowed")

	_, resp, err := Dial(ctx, wsURL(s), &DialOptions{Header: http.Header{"Origin": {"https://evil.example"}}})
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("Dial from a refused origin: %v, want ErrHandshake", err)
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("response %v, want 403", resp)
	}
	if err := acceptErr(t, errc); !errors.Is(err, ErrHandshake) {
		t.Errorf("Accept error %v does not wrap ErrHandshake", err)
	}
}

func TestAcceptSubprotocol(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		server  []string
		offered []string // Sec-WebSocket-Protocol lines
		want    string
	}{
		{name: "server preference", server: []string{"b", "a"}, offered: []string{"a, b"}, want: "b"},
		{name: "one in common", server: []string{"b", "a"}, offered: []string{"c, a"}, want: "a"},
		{name: "none in common", server: []string{"b", "a"}, offered: []string{"c"}},
		{name: "nothing offered", server: []string{"b", "a"}},
		{name: "server speaks none", offered: []string{"a"}},
		{name: "offers on two lines", server: []string{"b", "a"}, offered: []string{"a", "b"}, want: "b"},
		{name: "offers without spaces", server: []string{"b"}, offered: []string{"a,b"}, want: "b"},
		{name: "case matters", server: []string{"chat"}, offered: []string{"Chat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan string, 1)
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Accept(w, r, &AcceptOptions{Subprotocols: tt.server})
				if err != nil {
					got <- "Accept: " + err.Error()
					return
				}
				got <- c.Subprotocol()
				c.CloseNow()
			}))
			t.Cleanup(s.Close)
			var changes []string
			for _, o := range tt.offered {
				changes = append(changes, "Sec-WebSocket-Protocol: "+o)
			}
			resp, _, _, _ := rawExchange(t, s, getRequest(s.Listener.Addr().String(), changes...))
			if resp.StatusCode != 101 {
				t.Fatalf("status %q, want 101", resp.Status)
			}
			var want []string
			if tt.want != "" {
				want = []string{tt.want}
			}
			if h := resp.Header.Values("Sec-WebSocket-Protocol"); !slices.Equal(h, want) {
				t.Errorf("Sec-WebSocket-Protocol %q, want %q", h, want)
			}
			select {
			case p := <-got:
				if p != tt.want {
					t.Errorf("Subprotocol() = %q, want %q", p, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("handler did not run")
			}
		})
	}
}

func TestAcceptSubprotocolDial(t *testing.T) {
	t.Parallel()
	s, errc := acceptServer(t, &AcceptOptions{Subprotocols: []string{"b", "a"}}, nil)
	for _, tt := range []struct {
		offered []string
		want    string
	}{
		{offered: []string{"a", "b"}, want: "b"},
		{offered: []string{"c"}, want: ""},
	} {
		c, resp, err := Dial(context.Background(), wsURL(s), &DialOptions{Subprotocols: tt.offered})
		if err != nil {
			t.Fatalf("Dial offering %q: %v", tt.offered, err)
		}
		if err := acceptErr(t, errc); err != nil {
			t.Fatalf("Accept: %v", err)
		}
		if got := c.Subprotocol(); got != tt.want {
			t.Errorf("offering %q: Subprotocol() = %q, want %q", tt.offered, got, tt.want)
		}
		if _, ok := resp.Header["Sec-Websocket-Protocol"]; tt.want == "" && ok {
			t.Errorf("offering %q: response has Sec-WebSocket-Protocol %q", tt.offered, resp.Header.Values("Sec-WebSocket-Protocol"))
		}
		handshakeEcho(t, c, "sub")
		c.CloseNow()
	}
}

func TestAcceptResponseHeader(t *testing.T) {
	t.Parallel()
	s, errc := acceptServer(t, &AcceptOptions{ResponseHeader: http.Header{
		"Set-Cookie":  {"session=abc; Path=/; HttpOnly", "theme=dark"},
		"X-Served-By": {"test\tserver"},
	}}, nil)
	acceptedHead(t, s, errc, "Set-Cookie: session=abc; Path=/; HttpOnly\r\n"+
		"Set-Cookie: theme=dark\r\n"+
		"X-Served-By: test\tserver\r\n")

	// The same through Dial.
	c, resp, err := Dial(context.Background(), wsURL(s), nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.CloseNow()
	if err := acceptErr(t, errc); err != nil {
		t.Errorf("Accept: %v", err)
	}
	if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"session=abc; Path=/; HttpOnly", "theme=dark"}) {
		t.Errorf("Set-Cookie %q", got)
	}
	handshakeEcho(t, c, "cookie")
}

// TestAcceptHandlerHeader: header fields the handler (or a middleware)
// set on its ResponseWriter before Accept go out in the 101, after the
// handshake's own and before ResponseHeader's, but for those the
// handshake sets itself and invalid ones, which are left out.
func TestAcceptHandlerHeader(t *testing.T) {
	t.Parallel()
	s, errc := acceptServer(t, &AcceptOptions{ResponseHeader: http.Header{"Set-Cookie": {"b=2"}}}, func(w http.ResponseWriter) http.ResponseWriter {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Add("Set-Cookie", "a=1")
		h.Set("Connection", "keep-alive")
		h.Set("Sec-WebSocket-Protocol", "chat")
		h.Set("Content-Length", "0")
		h["Bad Name"] = []string{"x"}
		h.Set("X-Split", "a\r\nInjected: yes")
		return w
	})
	acceptedHead(t, s, errc, "Set-Cookie: a=1\r\n"+
		"X-Frame-Options: DENY\r\n"+
		"Set-Cookie: b=2\r\n")
}

// acceptedHead sends a valid handshake to s, whose Accept reports on
// errc, and wants a 101 with the handshake's own header lines followed by
// extra, then Accept's success.
func acceptedHead(t *testing.T, s *httptest.Server, errc <-chan error, extra string) {
	t.Helper()
	nc := tcpDial(t, s.Listener.Addr().String())
	if _, err := io.WriteString(nc, getRequest(s.Listener.Addr().String())); err != nil {
		t.Fatal(err)
	}
	want := "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + sampleAccept + "\r\n" +
		extra + "\r\n"
	if got := readHead(t, nc); got != want {
		t.Errorf("response\n%q\nwant\n%q", got, want)
	}
	if err := acceptErr(t, errc); err != nil {
		t.Errorf("Accept: %v", err)
	}
}

func TestAcceptResponseHeaderRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header http.Header
	}{
		{name: "CRLF in value", header: http.Header{"X-Evil": {"a\r\nInjected: yes"}}},
		{name: "LF in value", header: http.Header{"X-Evil": {"a\nInjected: yes"}}},
		{name: "CR in value", header: http.Header{"X-Evil": {"a\rInjected: yes"}}},
		{name: "NUL in value", header: http.Header{"X-Evil": {"a\x00b"}}},
		{name: "DEL in value", header: http.Header{"X-Evil": {"a\x7fb"}}},
		{name: "CRLF in second value", header: http.Header{"X-Evil": {"fine", "a\r\nInjected: yes"}}},
		{name: "space in name", header: http.Header{"X Evil": {"a"}}},
		{name: "colon in name", header: http.Header{"X-Evil:": {"a"}}},
		{name: "CRLF in name", header: http.Header{"X-Evil\r\nInjected": {"yes"}}},
		{name: "empty name", header: http.Header{"": {"a"}}},
		{name: "Sec-WebSocket-Accept", header: http.Header{"Sec-Websocket-Accept": {sampleAccept}}},
		{name: "Sec-WebSocket-Protocol", header: http.Header{"Sec-Websocket-Protocol": {"chat"}}},
		{name: "Sec-WebSocket-Extensions", header: http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}}},
		{name: "Upgrade", header: http.Header{"Upgrade": {"websocket"}}},
		{name: "Connection", header: http.Header{"Connection": {"close"}}},
		{name: "Content-Length", header: http.Header{"Content-Length": {"0"}}},
		{name: "non-canonical reserved name", header: http.Header{"sec-websocket-accept": {sampleAccept}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, errc := acceptServer(t, &AcceptOptions{ResponseHeader: tt.header}, nil)
			nc := tcpDial(t, s.Listener.Addr().String())
			if _, err := io.WriteString(nc, getRequest(s.Listener.Addr().String())); err != nil {
				t.Fatal(err)
			}
			var raw bytes.Buffer
			resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(nc, &raw)), nil)
			if err != nil {
				t.Fatalf("reading the response: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 500 {
				t.Errorf("status %q, want 500", resp.Status)
			}
			if err := acceptErr(t, errc); err == nil {
				t.Error("Accept succeeded")
			}
			for _, bad := range []string{"Injected", "Evil", "101", "Sec-WebSocket-Accept", sampleAccept} {
				if strings.Contains(raw.String(), bad) {
					t.Errorf("response %q holds %q", raw.String(), bad)
				}
			}
			if !strings.Contains(string(body), "websocket") {
				t.Errorf("body %q", body)
			}
		})
	}
}

func TestAcceptServerTimeoutsCleared(t *testing.T) {
	t.Parallel()
	s := httptest.NewUnstartedServer(nil)
	s.Config.ReadTimeout = 100 * time.Millisecond
	s.Config.WriteTimeout = 100 * time.Millisecond
	errc := startAcceptServer(t, s, nil, nil)
	c := dialT(t, wsURL(s), nil)
	if err := acceptErr(t, errc); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	handshakeEcho(t, c, "before")
	time.Sleep(300 * time.Millisecond)
	handshakeEcho(t, c, "after the server's timeouts")
}

// unwrapWriter is middleware's ResponseWriter: it hides the Hijacker of
// the one it wraps, but gives it back through Unwrap.
type unwrapWriter struct{ http.ResponseWriter }

func (w unwrapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// opaqueWriter hides the ResponseWriter it wraps entirely.
type opaqueWriter struct{ http.ResponseWriter }

func TestAcceptWrappedResponseWriter(t *testing.T) {
	t.Parallel()
	t.Run("Unwrap", func(t *testing.T) {
		t.Parallel()
		s, errc := acceptServer(t, nil, func(w http.ResponseWriter) http.ResponseWriter { return unwrapWriter{w} })
		c := dialT(t, wsURL(s), nil)
		if err := acceptErr(t, errc); err != nil {
			t.Fatalf("Accept: %v", err)
		}
		handshakeEcho(t, c, "through middleware")
	})
	t.Run("two layers", func(t *testing.T) {
		t.Parallel()
		s, errc := acceptServer(t, nil, func(w http.ResponseWriter) http.ResponseWriter { return unwrapWriter{unwrapWriter{w}} })
		c := dialT(t, wsURL(s), nil)
		if err := acceptErr(t, errc); err != nil {
			t.Fatalf("Accept: %v", err)
		}
		handshakeEcho(t, c, "through two layers")
	})
	t.Run("no Unwrap", func(t *testing.T) {
		t.Parallel()
		s, errc := acceptServer(t, nil, func(w http.ResponseWriter) http.ResponseWriter { return opaqueWriter{w} })
		resp, body, _, _ := rawExchange(t, s, getRequest(s.Listener.Addr().String()))
		if resp.StatusCode != 500 {
			t.Errorf("status %q, want 500", resp.Status)
		}
		if !strings.Contains(body, "websocket") {
			t.Errorf("body %q", body)
		}
		// The error names the wrapper that hid net/http's writer.
		const want = "websocket: hijack: the ResponseWriter (websocket.opaqueWriter) does not reach net/http's (no Hijack or Unwrap method): feature not supported"
		if err := acceptErr(t, errc); !errors.Is(err, http.ErrNotSupported) || err.Error() != want {
			t.Errorf("Accept error %v, want %s, wrapping http.ErrNotSupported", err, want)
		}
	})
}

// TestAcceptLetsBuffersGo: the hijacked connection's buffers, which
// net/http keeps referenced while the handler runs, are emptied once Accept
// has taken the bytes read past the request: a frame sent right behind it
// is still read.
func TestAcceptLetsBuffersGo(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" +
		clientFrame(0x81, "early")
	br := bufio.NewReader(strings.NewReader(raw))
	r, err := http.ReadRequest(br)
	if err != nil {
		t.Fatal(err)
	}
	if br.Buffered() != len(clientFrame(0x81, "early")) {
		t.Fatalf("%d bytes buffered behind the request, want the frame's %d", br.Buffered(), len(clientFrame(0x81, "early")))
	}
	w := &fuzzHijacker{header: http.Header{}, br: br}
	c, err := Accept(w, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if br.Size() != 0 || w.bw.Size() != 0 {
		t.Errorf("after Accept, the hijacked reader holds a buffer of %d bytes and the writer %d, want none", br.Size(), w.bw.Size())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, p, err := c.Read(ctx); err != nil || string(p) != "early" {
		t.Fatalf("Read: %q, %v; want the frame sent behind the request", p, err)
	}
}

// TestAcceptAfterResponse: Accept refuses a request whose handler already
// wrote a response, which the client then gets as it was, with nothing of
// the handshake after it.
func TestAcceptAfterResponse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
		status int
		body   string
	}{
		{"status", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTeapot) }, http.StatusTeapot, ""},
		{"body", func(w http.ResponseWriter) { io.WriteString(w, "already answered") }, http.StatusOK, "already answered"},
	} {
		for _, wrapped := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/wrapped=%v", tc.name, wrapped), func(t *testing.T) {
				t.Parallel()
				s, errc := acceptServer(t, nil, func(w http.ResponseWriter) http.ResponseWriter {
					tc.answer(w)
					if wrapped {
						return unwrapWriter{w}
					}
					return w
				})
				resp, body, nc, br := rawExchange(t, s, getRequest(s.Listener.Addr().String()))
				if resp.StatusCode != tc.status || body != tc.body {
					t.Errorf("response %q with body %q, want %d with %q", resp.Status, body, tc.status, tc.body)
				}
				if err := acceptErr(t, errc); err != errResponseWritten {
					t.Errorf("Accept error %v, want %v", err, errResponseWritten)
				}
				// The connection stays net/http's: a second request on it
				// is answered, so nothing was hijacked.
				if _, err := io.WriteString(nc, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				again, err := http.ReadResponse(br, nil)
				if err != nil || again.StatusCode != tc.status {
					t.Fatalf("second request on the connection: %v, %v; want status %d", again, err, tc.status)
				}
				again.Body.Close()
				acceptErr(t, errc)
			})
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of a
// server's error log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestAcceptTwice: a second Accept on a request whose connection the first
// took over fails with net/http's ErrHijacked, writing nothing: an error
// response written to the hijacked connection had net/http log a
// complaint against the library each time.
func TestAcceptTwice(t *testing.T) {
	t.Parallel()
	var logged lockedBuffer
	second := make(chan error, 1)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, nil)
		if err != nil {
			second <- fmt.Errorf("first Accept: %v", err)
			return
		}
		_, err = Accept(w, r, nil)
		second <- err
		echo(c)
	}))
	s.Config.ErrorLog = log.New(&logged, "", 0)
	s.Start()
	t.Cleanup(s.Close)
	c := dialT(t, wsURL(s), nil)
	if err := <-second; !errors.Is(err, http.ErrHijacked) || err.Error() != "websocket: hijack: "+http.ErrHijacked.Error() {
		t.Fatalf("second Accept: %v, want websocket: hijack: %v", err, http.ErrHijacked)
	}
	handshakeEcho(t, c, "still served by the first")
	c.Close(StatusNormalClosure, "")
	if l := logged.String(); l != "" {
		t.Errorf("net/http logged %q", l)
	}
}
