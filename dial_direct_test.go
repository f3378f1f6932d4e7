//go:build !js

package websocket

import (
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestDirectDialDefers: Dial sends the handshake itself only where the
// default client would have sent it as Dial does; a default transport
// that bounds the response's wait or header hands it to the client, which
// applies the bounds. Dial's own handshake applied neither: a silent
// server held a Dial whose transport gave up after 200 ms until ctx
// ended, and a 64 KiB header passed a 4 KiB limit.
func TestDirectDialDefers(t *testing.T) {
	t.Parallel()
	req, err := http.NewRequest("GET", "http://127.0.0.1:1/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*http.Transport)
		direct bool
	}{
		{"unchanged", func(*http.Transport) {}, true},
		{"DialContext", func(tr *http.Transport) { tr.DialContext = (&net.Dialer{}).DialContext }, true},
		{"ResponseHeaderTimeout", func(tr *http.Transport) { tr.ResponseHeaderTimeout = 200 * time.Millisecond }, false},
		{"MaxResponseHeaderBytes", func(tr *http.Transport) { tr.MaxResponseHeaderBytes = 4 << 10 }, false},
		{"Proxy", func(tr *http.Transport) { tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: "127.0.0.1:2"}) }, false},
	} {
		tr := &http.Transport{}
		tc.change(tr)
		if _, direct := directDialVia(&http.Client{}, tr, &DialOptions{}, req); direct != tc.direct {
			t.Errorf("%s: handshake sent by Dial itself: %v, want %v", tc.name, direct, tc.direct)
		}
	}
}
