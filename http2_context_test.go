//go:build !js

package websocket

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"testing"
	"time"
)

// testHTTP2RequestContextEnded: the context of a handler's request may
// end while its stream goes on, a timeout middleware's (r.WithContext)
// or the server's BaseContext ended at shutdown, and the Conn over the
// stream goes on with it, as the Conn over a hijacked connection does.
// Both took its end for the stream's: the first write after it failed
// the connection as lost ("the HTTP/2 stream ended"), and CloseNow, with
// a write waiting for a window the client does not give, skipped the
// reset that ends the write and waited for it, the handler with it, as
// long as the client kept its connection.
func testHTTP2RequestContextEnded(t *testing.T) {
	t.Run("echo", func(t *testing.T) {
		ended := make(chan error, 1)
		p := stallingH2Client(t, func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			c, err := Accept(w, r.WithContext(ctx), nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.CloseNow()
			cancel()
			typ, msg, err := c.Read(context.Background())
			if err == nil {
				err = c.Write(context.Background(), typ, msg)
			}
			ended <- err
		})
		p.write(0x8, 0, 1, binary.BigEndian.AppendUint32(nil, 1<<20))
		p.write(0x0, 0, 1, maskedFrame(0x81, []byte("hello")))
		select {
		case err := <-ended:
			if err != nil {
				t.Fatalf("echo after the request's context ended: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the echo still under way after 5 s")
		}
		data, code := p.streamEnd()
		if !bytes.Equal(data, []byte("\x81\x05hello")) || code != -1 {
			t.Fatalf("the stream carried %q, then ended with %d, want the echo and END_STREAM (-1)", data, code)
		}
	})
	t.Run("CloseNow with a write waiting", func(t *testing.T) {
		took := make(chan time.Duration, 1)
		p := stallingH2Client(t, func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			c, err := Accept(w, r.WithContext(ctx), nil)
			if err != nil {
				t.Error(err)
				return
			}
			go c.Write(context.Background(), MessageText, []byte("hello"))
			awaitStreamWrite(t, c)
			cancel()
			start := time.Now()
			c.CloseNow()
			took <- time.Since(start)
		})
		select {
		case d := <-took:
			if d > 2*time.Second {
				t.Errorf("CloseNow took %v", d)
			}
		case <-time.After(5 * time.Second):
			p.nc.Close() // which ends the write, and the handler
			<-took
			t.Fatal("CloseNow still under way after 5 s, waiting for the write")
		}
		data, code := p.streamEnd()
		if len(data) != 0 || code != 2 {
			t.Fatalf("the stream carried %q, then ended with %d, want nothing and RST_STREAM INTERNAL_ERROR (2)", data, code)
		}
	})
}
