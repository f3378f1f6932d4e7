package websocket

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestConnSize keeps the per-connection struct within the 704-byte
// allocation size class: a server holding many idle connections pays for
// every byte of it (buffers and goroutines are not held while idle, so the
// struct is most of what remains). Growing past it costs 64 bytes or more
// per connection; move rarely used state behind a pointer instead.
func TestConnSize(t *testing.T) {
	if size := unsafe.Sizeof(Conn{}); size > 704 && unsafe.Sizeof(uintptr(0)) == 8 {
		t.Errorf("Conn is %d bytes, want at most 704", size)
	}
}

// echoServer starts an httptest server whose handler accepts with opts and
// runs handle; it is closed when the test ends.
func echoServer(t testing.TB, opts *AcceptOptions, handle func(*Conn)) *httptest.Server {
	t.Helper()
	if handle == nil {
		handle = echo
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		handle(c)
	}))
	t.Cleanup(s.Close)
	return s
}

// echo sends every message back until the connection ends.
func echo(c *Conn) {
	ctx := context.Background()
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return
		}
	}
}

func wsURL(s *httptest.Server) string { return "ws" + strings.TrimPrefix(s.URL, "http") }

func dialT(t testing.TB, url string, opts *DialOptions) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func TestEchoRoundTrip(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20} {
		for _, typ := range []MessageType{MessageText, MessageBinary} {
			want := bytes.Repeat([]byte("a"), n)
			if err := c.Write(ctx, typ, want); err != nil {
				t.Fatalf("Write(%d): %v", n, err)
			}
			gotTyp, got, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("Read(%d): %v", n, err)
			}
			if gotTyp != typ || !bytes.Equal(got, want) {
				t.Fatalf("echo of %v %d bytes: got %v %d bytes", typ, n, gotTyp, len(got))
			}
		}
	}
	if err := c.Close(StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, _, err := c.Read(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
	if err := c.Write(ctx, MessageText, []byte("x")); !errors.Is(err, ErrClosed) || CloseStatus(err) != StatusNormalClosure {
		t.Fatalf("Write after Close: %v (status %v), want ErrClosed with 1000", err, CloseStatus(err))
	}
}
