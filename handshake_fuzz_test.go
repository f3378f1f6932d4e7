package websocket

// Opening handshakes fed arbitrary requests: FuzzAcceptRequest.

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// fuzzHijacker is an http.ResponseWriter whose connection can be hijacked.
type fuzzHijacker struct {
	header http.Header
	status int
	body   bytes.Buffer
	br     *bufio.Reader // what the server read the request from
	conn   *fuzzNetConn  // set once hijacked
	bw     *bufio.Writer // the writer handed over with the connection
}

func (w *fuzzHijacker) Header() http.Header { return w.header }

func (w *fuzzHijacker) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *fuzzHijacker) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *fuzzHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.status != 0 || w.conn != nil {
		return nil, nil, errors.New("hijack after the response started")
	}
	w.conn = &fuzzNetConn{}
	w.bw = bufio.NewWriter(w.conn)
	return w.conn, bufio.NewReadWriter(w.br, w.bw), nil
}

// fuzzNetConn is a net.Conn that records writes and reads nothing.
type fuzzNetConn struct {
	out    bytes.Buffer
	closed bool
}

func (c *fuzzNetConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *fuzzNetConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *fuzzNetConn) Close() error                     { c.closed = true; return nil }
func (c *fuzzNetConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fuzzNetConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fuzzNetConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzNetConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzNetConn) SetWriteDeadline(time.Time) error { return nil }

// fuzzHasToken reports whether a header's comma-separated values hold
// token, ignoring case.
func fuzzHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// fuzzRefusals restates RFC 6455 §4.2.1 and the origin policy of Accept: it
// returns every HTTP status that some failed check of r would answer with.
func fuzzRefusals(r *http.Request, skipOrigin bool) []int {
	var statuses []int
	if r.Method != http.MethodGet {
		statuses = append(statuses, http.StatusMethodNotAllowed)
	}
	if r.ProtoMinor < 1 {
		statuses = append(statuses, http.StatusBadRequest)
	}
	if r.Host == "" || r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		statuses = append(statuses, http.StatusBadRequest)
	}
	// RFC 6455 §4.1: the target is a path, or an absolute http or https
	// URI that names a host.
	if t := r.RequestURI; t != "" && !strings.HasPrefix(t, "/") {
		u, err := url.ParseRequestURI(t)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
			statuses = append(statuses, http.StatusBadRequest)
		}
	}
	if !fuzzHasToken(r.Header, "Connection", "Upgrade") || !fuzzHasToken(r.Header, "Upgrade", "websocket") {
		statuses = append(statuses, http.StatusBadRequest)
	}
	switch v := r.Header.Values("Sec-WebSocket-Version"); {
	case len(v) > 1:
		statuses = append(statuses, http.StatusBadRequest)
	case len(v) == 0 || v[0] != "13":
		statuses = append(statuses, http.StatusUpgradeRequired)
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		statuses = append(statuses, http.StatusBadRequest)
	} else if nonce, err := base64.StdEncoding.DecodeString(keys[0]); err != nil || len(nonce) != 16 ||
		base64.StdEncoding.EncodeToString(nonce) != keys[0] {
		statuses = append(statuses, http.StatusBadRequest)
	}
	if fuzzOriginRefused(r, skipOrigin) {
		statuses = append(statuses, http.StatusForbidden)
	}
	return statuses
}

// fuzzOriginRefused restates the default origin policy of Accept: a
// request with an Origin header is refused unless it holds one origin
// whose host is the request's.
func fuzzOriginRefused(r *http.Request, skipOrigin bool) bool {
	origins := r.Header.Values("Origin")
	if skipOrigin || len(origins) == 0 {
		return false
	}
	u, err := url.Parse(origins[0])
	return len(origins) > 1 || err != nil || u.Host == "" || !fuzzSameOrigin(u, r.Host)
}

// fuzzSameOrigin: the same host, ignoring case, and the same port, an
// absent one being the default of the origin's scheme where it has one.
func fuzzSameOrigin(u *url.URL, host string) bool {
	if strings.EqualFold(u.Host, host) {
		return true
	}
	defaults := map[string]string{"http": "80", "ws": "80", "https": "443", "wss": "443"}
	def, ok := defaults[strings.ToLower(u.Scheme)]
	if !ok {
		return false
	}
	h := &url.URL{Host: host}
	port := func(u *url.URL) string { return cmp.Or(u.Port(), def) }
	return strings.EqualFold(u.Hostname(), h.Hostname()) && port(u) == port(h)
}

// fuzzCheckRefused checks a refused handshake: an error wrapping
// ErrHandshake and no Conn, a status that some failed check calls for,
// a body that says why, and the headers that 405 and 426 call for (allow
// is the method the handshake takes: GET over HTTP/1.1, CONNECT over
// HTTP/2).
func fuzzCheckRefused(c *Conn, err error, status int, header http.Header, body []byte, refusals []int, allow string) error {
	switch {
	case c != nil:
		return fmt.Errorf("Accept returned a Conn and %v", err)
	case !errors.Is(err, ErrHandshake):
		return fmt.Errorf("Accept: %v, want an error wrapping ErrHandshake", err)
	case !slices.Contains(refusals, status):
		return fmt.Errorf("Accept answered %d (%v); the request fails checks answered with %v", status, err, refusals)
	case len(body) == 0:
		return fmt.Errorf("Accept answered %d without saying why", status)
	case status == http.StatusMethodNotAllowed && header.Get("Allow") != allow:
		return fmt.Errorf("405 with Allow %q, want %s", header.Get("Allow"), allow)
	case status == http.StatusUpgradeRequired && header.Get("Sec-WebSocket-Version") != "13":
		return fmt.Errorf("426 with Sec-WebSocket-Version %q, want 13", header.Get("Sec-WebSocket-Version"))
	case status == http.StatusUpgradeRequired && allow == http.MethodGet &&
		(header.Get("Upgrade") != "websocket" || header.Get("Connection") != "Upgrade"):
		return fmt.Errorf("426 over HTTP/1.1 with Upgrade %q and Connection %q, want websocket and Upgrade", header.Get("Upgrade"), header.Get("Connection"))
	case status == http.StatusUpgradeRequired && allow == http.MethodConnect:
		return fmt.Errorf("426 over HTTP/2, which has no Upgrade header to name the protocol")
	}
	return nil
}

// fuzzCheckSubprotocol checks the subprotocol chosen for r, and the
// Sec-WebSocket-Protocol values of the response that says so: the first of
// fuzzSubprotocols that r offers, or none.
func fuzzCheckSubprotocol(r *http.Request, chosen string, got []string) error {
	offered := map[string]bool{}
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			offered[strings.Trim(p, " \t")] = true
		}
	}
	want := ""
	for _, p := range fuzzSubprotocols {
		if offered[p] {
			want = p
			break
		}
	}
	if chosen != want || want == "" && len(got) > 0 || want != "" && (len(got) != 1 || got[0] != want) {
		return fmt.Errorf("offered %q: chose %q, response says %q; want %q", r.Header.Values("Sec-WebSocket-Protocol"), chosen, got, want)
	}
	return nil
}

// fuzzSubprotocols are the subprotocols the server under fuzzing speaks.
var fuzzSubprotocols = []string{"chat.v2", "chat"}

func FuzzAcceptRequest(f *testing.F) {
	const valid = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, s := range []string{
		valid + "\r\n",
		valid + "Origin: http://server.example.com\r\nSec-WebSocket-Protocol: chat, chat.v2\r\n\r\n",
		valid + "Origin: http://evil.example\r\n\r\n",
		strings.Replace(valid, "GET", "POST", 1) + "\r\n",
		strings.Replace(valid, "HTTP/1.1", "HTTP/1.0", 1) + "\r\n",
		strings.Replace(valid, "Version: 13", "Version: 8", 1) + "\r\n",
		strings.Replace(valid, "Upgrade\r\n", "keep-alive\r\n", 1) + "\r\n",
		strings.Replace(valid, "==", "=", 1) + "\r\n",
		valid + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		valid + "Sec-WebSocket-Version: 13\r\n\r\n",
		strings.Replace(valid, "example.com\r\n", "example.com:443\r\n", 1) + "Origin: https://server.example.com\r\n\r\n",
		valid + "Origin: http://server.example.com:80\r\n\r\n",
		valid + "Origin: https://server.example.com:80\r\n\r\n",
		strings.Replace(valid, "server.example.com", "", 1) + "\r\n",
		valid + "Content-Length: 5\r\n\r\nhello",
		valid + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(valid+"Origin: http://evil.example\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, raw []byte, skipOrigin bool) {
		br := bufio.NewReader(bytes.NewReader(raw))
		r, err := http.ReadRequest(br)
		if err != nil || r.ProtoMajor != 1 {
			// net/http's HTTP/1 server answers a request of another major
			// version 505 itself, before any handler. Accept takes one of
			// HTTP/2 for RFC 8441's extended CONNECT, and refuses a GET
			// with 405 (TestOverHTTP2/refusals).
			return
		}
		w := &fuzzHijacker{header: http.Header{}, br: br}
		c, err := Accept(w, r, &AcceptOptions{Subprotocols: fuzzSubprotocols, InsecureSkipOriginCheck: skipOrigin})
		refusals := fuzzRefusals(r, skipOrigin)
		if err != nil {
			if w.conn != nil {
				t.Fatalf("Accept hijacked the connection, then failed: %v", err)
			}
			if err := fuzzCheckRefused(c, err, w.status, w.header, w.body.Bytes(), refusals, http.MethodGet); err != nil {
				t.Fatal(err)
			}
			return
		}
		defer c.CloseNow()
		if len(refusals) > 0 {
			t.Fatalf("Accept took a request that fails checks answered with %v:\n%q", refusals, raw)
		}
		if w.conn == nil || w.status != 0 || w.body.Len() != 0 {
			t.Fatalf("Accept succeeded with hijacked=%v, status %d, body %q", w.conn != nil, w.status, w.body.String())
		}
		rbr := bufio.NewReader(bytes.NewReader(w.conn.out.Bytes()))
		resp, err := http.ReadResponse(rbr, r)
		if err != nil {
			t.Fatalf("handshake response %q: %v", w.conn.out.String(), err)
		}
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		wantAccept := base64.StdEncoding.EncodeToString(sum[:])
		switch {
		case resp.StatusCode != http.StatusSwitchingProtocols:
			t.Fatalf("status %d, want 101", resp.StatusCode)
		case rbr.Buffered() > 0:
			t.Fatalf("bytes after the handshake response in %q", w.conn.out.String())
		case !fuzzHasToken(resp.Header, "Upgrade", "websocket") || !fuzzHasToken(resp.Header, "Connection", "Upgrade"):
			t.Fatalf("response lacks the upgrade tokens: %v", resp.Header)
		case resp.Header.Get("Sec-WebSocket-Accept") != wantAccept:
			t.Fatalf("Sec-WebSocket-Accept %q, want %q", resp.Header.Get("Sec-WebSocket-Accept"), wantAccept)
		}
		if err := fuzzCheckSubprotocol(r, c.Subprotocol(), resp.Header.Values("Sec-WebSocket-Protocol")); err != nil {
			t.Fatal(err)
		}
		if c.CloseNow(); !w.conn.closed {
			t.Fatal("CloseNow left the hijacked connection open")
		}
	})
}
