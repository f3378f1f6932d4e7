//go:build !js

package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// h2ServerPeer is Node.js's HTTP/2 server, bridging WebSocket streams to
// TCP (testdata/interop/node_h2_server.js).
var h2ServerPeer = interopPeer{"node-http2-server", "/usr/bin/node", "testdata/interop/node_h2_server.js"}

// nodeH2 is a running node_h2_server.js: its port, the events it reports
// after that, and the listener its streams are bridged to, where each
// connection is served as a WebSocket's server side by echo.
type nodeH2 struct {
	url    string
	opts   DialOptions
	events chan map[string]any
}

// testCert makes a self-signed certificate for 127.0.0.1, writes it and
// its key as PEM files in dir, and returns a pool that trusts it.
func testCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// startNodeH2 starts node_h2_server.js, over TLS or h2c, with extended
// CONNECT on or off.
func startNodeH2(t *testing.T, useTLS, connect bool) *nodeH2 {
	t.Helper()
	requirePeer(t, h2ServerPeer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { ln.Close() })
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := newConn(&connConfig{tr: netTransport(nc)})
			wg.Go(func() {
				defer c.CloseNow()
				echo(c)
			})
		}
	})
	cfg := map[string]any{"tls": useTLS, "connect": connect, "bridge": ln.Addr().String(),
		"response": map[string]string{"sec-websocket-protocol": "chat"}}
	n := &nodeH2{events: make(chan map[string]any, 1000)}
	n.opts.HTTP2 = HTTP2Required
	n.opts.Subprotocols = []string{"chat"}
	if useTLS {
		certFile, keyFile, pool := testCert(t, t.TempDir())
		cfg["cert"], cfg["key"] = certFile, keyFile
		n.opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, h2ServerPeer.prog, h2ServerPeer.script, string(js))
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
	ports := make(chan int, 1)
	wg.Go(func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			if p, ok := ev["port"].(float64); ok {
				ports <- int(p)
				continue
			}
			select {
			case n.events <- ev:
			default:
			}
		}
	})
	select {
	case p := <-ports:
		scheme := "ws"
		if useTLS {
			scheme = "wss"
		}
		n.url = fmt.Sprintf("%s://127.0.0.1:%d", scheme, p)
	case <-time.After(interopWait):
		t.Fatalf("node_h2_server.js did not start; stderr: %s", stderr.Bytes())
	}
	return n
}

// next returns the next event that has key.
func (n *nodeH2) next(t *testing.T, key string) map[string]any {
	t.Helper()
	timeout := time.After(interopWait)
	for {
		select {
		case ev := <-n.events:
			if _, ok := ev[key]; ok {
				return ev
			}
		case <-timeout:
			t.Fatalf("node_h2_server.js reported no %s", key)
		}
	}
}

// TestDialNodeHTTP2 dials WebSockets over HTTP/2 to Node.js's HTTP/2
// server, over TLS and h2c.
func TestDialNodeHTTP2(t *testing.T) {
	t.Parallel()
	for _, useTLS := range []bool{true, false} {
		name := "h2c"
		if useTLS {
			name = "h2"
		}
		t.Run(name, func(t *testing.T) {
			t.Run("echo", func(t *testing.T) { testNodeH2Echo(t, useTLS) })
			t.Run("reset", func(t *testing.T) { testNodeH2Reset(t, useTLS) })
			t.Run("no extended CONNECT", func(t *testing.T) {
				n := startNodeH2(t, useTLS, false)
				ctx, cancel := context.WithTimeout(context.Background(), interopWait)
				defer cancel()
				_, _, err := Dial(ctx, n.url, &n.opts)
				if !errors.Is(err, ErrHTTP2Unavailable) || !strings.Contains(err.Error(), "SETTINGS_ENABLE_CONNECT_PROTOCOL") {
					t.Fatalf("Dial: %v, want ErrHTTP2Unavailable for the missing setting", err)
				}
			})
		})
	}
}

func testNodeH2Echo(t *testing.T, useTLS bool) {
	n := startNodeH2(t, useTLS, true)
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	opts := n.opts
	opts.Header = http.Header{"Origin": {"https://app.example"}}
	const conns = 10
	cs := make([]*Conn, conns)
	for i := range cs {
		c, resp, err := Dial(ctx, n.url+"/chat?room=1", &opts)
		if err != nil {
			t.Fatalf("Dial %d: %v", i, err)
		}
		defer c.CloseNow()
		if resp.Proto != "HTTP/2.0" || c.Subprotocol() != "chat" {
			t.Fatalf("Dial %d: %s, subprotocol %q", i, resp.Proto, c.Subprotocol())
		}
		cs[i] = c
	}
	if got := n.next(t, "session")["session"]; got != 1.0 {
		t.Errorf("session %v, want 1", got)
	}
	h := n.next(t, "headers")["headers"].(map[string]any)
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	for name, want := range map[string]string{
		":method": "CONNECT", ":protocol": "websocket", ":scheme": scheme,
		":path": "/chat?room=1", ":authority": strings.TrimPrefix(strings.TrimPrefix(n.url, "wss://"), "ws://"),
		"sec-websocket-version": "13", "sec-websocket-protocol": "chat", "origin": "https://app.example",
	} {
		if h[name] != want {
			t.Errorf("Node got %s %q, want %q", name, h[name], want)
		}
	}
	if k, ok := h["sec-websocket-key"]; ok {
		t.Errorf("Node got sec-websocket-key %q (RFC 8441 §5 drops it)", k)
	}
	for i, c := range cs {
		for _, size := range []int{0, 125, 126, 65536, 300 << 10} {
			msg := bytes.Repeat([]byte{byte(i)}, size)
			if err := c.Write(ctx, MessageBinary, msg); err != nil {
				t.Fatal(err)
			}
			if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
				t.Fatalf("conn %d, echo of %d bytes: %d bytes, %v", i, size, len(p), err)
			}
		}
	}
	for _, c := range cs {
		if err := c.Close(StatusNormalClosure, ""); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	for {
		select {
		case ev := <-n.events:
			if _, ok := ev["session"]; ok {
				t.Fatalf("a second HTTP/2 session for %d WebSockets: %v", conns, ev)
			}
			continue
		default:
		}
		break
	}
}

func testNodeH2Reset(t *testing.T, useTLS bool) {
	n := startNodeH2(t, useTLS, true)
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	keep, _, err := Dial(ctx, n.url, &n.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.CloseNow()
	doomed, _, err := Dial(ctx, n.url+"/reset", &n.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer doomed.CloseNow()
	doomed.Write(ctx, MessageText, []byte("reset me"))
	if _, _, err := doomed.Read(ctx); err == nil || !strings.Contains(err.Error(), "reset the stream with INTERNAL_ERROR") {
		t.Fatalf("Read of the reset stream: %v, want the server's reset", err)
	}
	if err := keep.Write(ctx, MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := keep.Read(ctx); err != nil || string(p) != "still here" {
		t.Fatalf("the other stream: %q, %v", p, err)
	}
	keep.Close(StatusNormalClosure, "")
}
