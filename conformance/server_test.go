package conformance_test

import (
	"bufio"
	"crypto/tls"
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
// echoes, and connects the raw peer to it as a client over tr. It returns
// the peer and the channel on which the handler reports how its loop
// ended.
func cfStartServerRole(t *testing.T, tr cfTransport, c cfCase) (*cfPeer, <-chan cfEnd) {
	ends := make(chan cfEnd, 1)
	started, done := make(chan struct{}), make(chan struct{})
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		defer close(done)
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			CloseTimeout:          cfLibCloseTimeout,
			Compression:           c.ext.mode,
			CompressionWindowBits: c.ext.bits,
			CompressionThreshold:  c.ext.threshold,
		})
		if err != nil {
			ends <- cfEnd{"accept", err}
			return
		}
		defer conn.CloseNow()
		ends <- cfEchoLoop(conn, c.limit)
	}))
	switch {
	case tr.tls:
		s.EnableHTTP2 = true
		s.TLS = cfServerTLS(t)
		s.StartTLS()
	case tr.http2:
		s.Config.Protocols = new(http.Protocols)
		s.Config.Protocols.SetHTTP1(true)
		s.Config.Protocols.SetUnencryptedHTTP2(true)
		s.Start()
	default:
		s.Start()
	}
	// Cleanups run last first: close the peer, wait for the handler, then
	// close the server.
	t.Cleanup(s.Close)
	addr := s.Listener.Addr().String()
	nc, err := net.DialTimeout("tcp", addr, cfWait)
	if err != nil {
		t.Fatalf("dialing the server: %v", err)
	}
	t.Cleanup(func() {
		select {
		case <-started:
			cfWaitDone(t, done, "server handler")
		default: // the handshake failed before the handler ran
		}
	})
	if tr.http2 {
		if tr.tls {
			tc := tls.Client(nc, cfClientTLS(t))
			tc.SetDeadline(time.Now().Add(cfWait))
			if err := tc.Handshake(); err != nil {
				nc.Close()
				t.Fatalf("TLS handshake: %v", err)
			}
			tc.SetDeadline(time.Time{})
			nc = tc
			cfCheckALPN(t, tc)
		}
		hs, err := h2Dial(nc, tr.scheme(), addr, c.ext.peerOffer)
		if err != nil {
			t.Fatalf("opening the WebSocket stream: %v", err)
		}
		t.Cleanup(func() { hs.Close() })
		p := &cfPeer{conn: hs, br: bufio.NewReader(hs), client: true}
		p.extensions = hs.headerValues("sec-websocket-extensions")
		return p, ends
	}
	t.Cleanup(func() { nc.Close() })
	p := &cfPeer{conn: nc.(*net.TCPConn), br: bufio.NewReader(nc), client: true}

	const key = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3
	req := "GET /chat HTTP/1.1\r\n" +
		"Host: " + addr + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n"
	if c.ext.peerOffer != "" {
		req += "Sec-WebSocket-Extensions: " + c.ext.peerOffer + "\r\n"
	}
	req += "\r\n"
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
	p.extensions = resp.Header.Values("Sec-WebSocket-Extensions")
	return p, ends
}
