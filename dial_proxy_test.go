//go:build !js

package websocket

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDialProxySilentBounded: with a context that never ends, a proxy
// that never answers CONNECT holds Dial for proxyConnectTimeout, a
// minute, shortened here; the error says so. Not parallel: it sets
// proxyConnectTimeout, which parallel tests, paused until the sequential
// ones are done, read.
func TestDialProxySilentBounded(t *testing.T) {
	defer func(d time.Duration) { proxyConnectTimeout = d }(proxyConnectTimeout)
	proxyConnectTimeout = 200 * time.Millisecond
	p := startTCPServer(t, func(nc net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(nc)); err != nil {
			return
		}
		io.Copy(io.Discard, nc)
	})
	proxy := &url.URL{Scheme: "http", Host: p.addr()}
	for _, target := range []string{"wss://192.0.2.1:8443/x", "ws://192.0.2.1:8080/x"} {
		tr := &http.Transport{Proxy: http.ProxyURL(proxy)}
		start := time.Now()
		r := dialBounded(t, p, context.Background(), target, &DialOptions{HTTPClient: &http.Client{Transport: tr}})
		took := time.Since(start)
		addr := strings.TrimPrefix(strings.TrimPrefix(target, "wss://"), "ws://")
		addr = strings.TrimSuffix(addr, "/x")
		want := fmt.Sprintf("proxy http://%s did not answer CONNECT %s within 200ms", p.addr(), addr)
		if r.err == nil || !strings.Contains(r.err.Error(), want) || !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: Dial: %v, want an error wrapping os.ErrDeadlineExceeded that says %q", target, r.err, want)
		}
		if took < 200*time.Millisecond || took > 5*time.Second {
			t.Errorf("%s: Dial returned after %v, want the bound, 200ms", target, took)
		}
	}
}
