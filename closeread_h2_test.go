//go:build !js

package websocket

import (
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/godebugtest"
)

func TestCloseReadHTTP2(t *testing.T) {
	t.Parallel()
	godebugtest.Run(t, xconnect, "TestCloseReadOverHTTP2")
}

// TestCloseReadOverHTTP2 is TestCloseReadAnswersClose over HTTP/2 (h2c),
// where CloseRead returns at once and the handler goes on writing.
// TestCloseReadHTTP2 runs it.
func TestCloseReadOverHTTP2(t *testing.T) {
	if !godebugtest.Has(xconnect) {
		t.Skip("needs GODEBUG=" + xconnect + "; TestCloseReadHTTP2 runs it so")
	}
	t.Parallel()
	done := make(chan closeReadResult, 1)
	o := newH2Origin(t, false, closeReadTicker(done))
	c, _ := o.dial(t, func(opts *DialOptions) { opts.CloseTimeout = 10 * time.Second })
	testCloseReadAnswersClose(t, c, done)
}
