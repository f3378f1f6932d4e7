package conformance_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
)

// The client role of the conformance suite: the library dials and echoes,
// the raw peer is its server.

// cfStartClientRole listens on loopback, has the library dial it over tr
// and run an echo loop, and answers the handshake as the raw peer's
// server.
func cfStartClientRole(t *testing.T, tr cfTransport, c cfCase) (*cfPeer, <-chan cfEnd) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "ws://" + ln.Addr().String() + "/chat"
	opts := &websocket.DialOptions{
		CloseTimeout:          cfLibCloseTimeout,
		Compression:           c.ext.mode,
		CompressionWindowBits: c.ext.bits,
		CompressionThreshold:  c.ext.threshold,
	}
	if tr.http2 {
		opts.HTTP2 = websocket.HTTP2Required
	}
	if tr.tls {
		url = "wss://" + ln.Addr().String() + "/chat"
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: cfClientTLS(t)}}
	}
	ends := make(chan cfEnd, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), cfWait)
		conn, _, err := websocket.Dial(ctx, url, opts)
		cancel()
		if err != nil {
			ends <- cfEnd{"dial", err}
			return
		}
		defer conn.CloseNow()
		ends <- cfEchoLoop(conn, c.limit)
	}()
	// Cleanups run last first: close the peer and the listener, then wait
	// for the library's goroutine.
	t.Cleanup(func() { cfWaitDone(t, done, "client goroutine") })
	t.Cleanup(func() { ln.Close() })
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(cfWait))
	nc, err := ln.Accept()
	if err != nil {
		t.Fatalf("accepting the library's connection: %v", err)
	}
	if tr.http2 {
		if tr.tls {
			tc := tls.Server(nc, cfServerTLS(t))
			tc.SetDeadline(time.Now().Add(cfWait))
			if err := tc.Handshake(); err != nil {
				nc.Close()
				t.Fatalf("TLS handshake: %v", err)
			}
			tc.SetDeadline(time.Time{})
			nc = tc
			cfCheckALPN(t, tc)
		}
		hs, err := h2Accept(nc, tr.scheme(), c.ext.peerAnswer)
		if err != nil {
			t.Fatalf("accepting the WebSocket stream: %v", err)
		}
		t.Cleanup(func() { hs.Close() })
		p := &cfPeer{conn: hs, br: bufio.NewReader(hs)}
		p.extensions = hs.headerValues("sec-websocket-extensions")
		return p, ends
	}
	t.Cleanup(func() { nc.Close() })
	p := &cfPeer{conn: nc.(*net.TCPConn), br: bufio.NewReader(nc)}

	p.conn.SetReadDeadline(time.Now().Add(cfWait))
	req, err := http.ReadRequest(p.br)
	if err != nil {
		t.Fatalf("reading the handshake request: %v", err)
	}
	key := req.Header.Get("Sec-WebSocket-Key")
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 ||
		req.Method != http.MethodGet ||
		!strings.EqualFold(req.Header.Get("Upgrade"), "websocket") ||
		!strings.Contains(strings.ToLower(req.Header.Get("Connection")), "upgrade") ||
		req.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Fatalf("handshake request: %s %s %v", req.Method, req.URL, req.Header)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + cfAcceptKey(key) + "\r\n"
	if c.ext.peerAnswer != "" {
		resp += "Sec-WebSocket-Extensions: " + c.ext.peerAnswer + "\r\n"
	}
	resp += "\r\n"
	p.extensions = req.Header.Values("Sec-WebSocket-Extensions")
	if err := p.write([]byte(resp), 0); err != nil {
		t.Fatalf("writing the handshake response: %v", err)
	}
	return p, ends
}

// cfAcceptKey computes Sec-WebSocket-Accept (RFC 6455 §4.2.2).
func cfAcceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
