// Package oursecho holds the echo handlers of this project's library that
// more than one benchmark runs: the echo package, beside the other
// libraries' servers, and cmd/compmem, whose server processes link this
// library alone.
package oursecho

import (
	"context"
	"net/http"

	ours "github.com/rfc6455/websocket"
)

// Serve accepts with opts and hands the connection to Serve, with a
// callback that writes each message back, and returns, so that net/http
// lets go of the request and a quiet connection holds no goroutine of its
// own (Serve parks it).
func Serve(opts *ours.AcceptOptions) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := ours.Accept(w, r, opts)
		if err != nil {
			return
		}
		ctx := context.Background()
		c.Serve(func(typ ours.MessageType, p []byte) {
			if err := c.Write(ctx, typ, p); err != nil {
				c.CloseNow()
			}
		}, func(error) { c.CloseNow() })
	}
}

// Read accepts with opts, then runs the loop the library's README shows
// first: Read returns each message in a slice of its own, which Write
// sends back. A quiet connection's goroutine waits in Read.
func Read(opts *ours.AcceptOptions) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := ours.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, p, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, p); err != nil {
				return
			}
		}
	}
}
