package conformance_test

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
)

// The server role of the conformance suite: the library accepts and
// echoes in an httptest handler, the raw peer is its client.

// cfStartServerRole starts an httptest server whose handler accepts and
// echoes, and connects the raw peer to it as a client. It returns the peer
// and the channel on which the handler reports how its loop ended.
func cfStartServerRole(t *testing.T, limit int64) (*cfPeer, <-chan cfEnd) {
	ends := make(chan cfEnd, 1)
	done := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CloseTimeout: cfLibCloseTimeout})
		if err != nil {
			ends <- cfEnd{"accept", err}
			return
		}
		defer c.CloseNow()
		ends <- cfEchoLoop(c, limit)
	}))
	// Cleanups run last first: close the peer, wait for the handler, then
	// close the server.
	t.Cleanup(s.Close)
	nc, err := net.DialTimeout("tcp", s.Listener.Addr().String(), cfWait)
	if err != nil {
		t.Fatalf("dialing the server: %v", err)
	}
	t.Cleanup(func() { cfWaitDone(t, done, "server handler") })
	t.Cleanup(func() { nc.Close() })
	p := &cfPeer{conn: nc.(*net.TCPConn), br: bufio.NewReader(nc), client: true}

	const key = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3
	req := "GET /chat HTTP/1.1\r\n" +
		"Host: " + s.Listener.Addr().String() + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n\r\n"
	if err := p.write([]byte(req), 0); err != nil {
		t.Fatalf("writing the handshake: %v", err)
	}
	p.conn.SetReadDeadline(time.Now().Add(cfWait))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		t.Fatalf("reading the handshake response: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		!strings.EqualFold(resp.Header.Get("Connection"), "upgrade") ||
		resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake response: %s %v", resp.Status, resp.Header)
	}
	return p, ends
}
