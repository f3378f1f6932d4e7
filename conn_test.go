package websocket

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"unsafe"
)

// TestConnSize keeps the per-connection struct within the 448-byte
// allocation size class: a server holding many idle connections pays for
// every byte of it (buffers and goroutines are not held while idle, and its
// locks are part of it rather than channels beside it, so the struct is
// most of what remains). Growing past it costs 32 bytes per connection;
// move rarely used state behind a pointer instead, as the context watch
// is, or beside state that only some connections have, as the
// compressor is (deflateParams).
func TestConnSize(t *testing.T) {
	if size := unsafe.Sizeof(Conn{}); size > 448 && unsafe.Sizeof(uintptr(0)) == 8 {
		t.Errorf("Conn is %d bytes, want at most 448", size)
	}
}

// TestServerSize keeps Serve's state, which a served connection holds
// while idle, within the 80-byte allocation size class: two flags of
// CloseRead's put in its padding once took it to 88 bytes, and the 96-byte
// class.
func TestServerSize(t *testing.T) {
	if size := unsafe.Sizeof(server{}); size > 80 && unsafe.Sizeof(uintptr(0)) == 8 {
		t.Errorf("server is %d bytes, want at most 80", size)
	}
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

// TestAddrs: both ends report the addresses of the TCP connection, whether
// Dial sent the handshake itself or through an HTTP client.
func TestAddrs(t *testing.T) {
	t.Parallel()
	for _, client := range []*http.Client{nil, {Transport: &http.Transport{}}} {
		served := make(chan [2]net.Addr, 1)
		s := echoServer(t, nil, func(c *Conn) {
			served <- [2]net.Addr{c.LocalAddr(), c.RemoteAddr()}
			echo(c)
		})
		c := dialT(t, wsURL(s), &DialOptions{HTTPClient: client})
		srv := <-served
		if srv[0] == nil || srv[0].String() != s.Listener.Addr().String() {
			t.Errorf("server LocalAddr %v, want %v", srv[0], s.Listener.Addr())
		}
		if c.RemoteAddr() == nil || c.RemoteAddr().String() != s.Listener.Addr().String() {
			t.Errorf("client RemoteAddr %v, want %v", c.RemoteAddr(), s.Listener.Addr())
		}
		if c.LocalAddr() == nil || srv[1] == nil || c.LocalAddr().String() != srv[1].String() {
			t.Errorf("client LocalAddr %v, server RemoteAddr %v: want the same", c.LocalAddr(), srv[1])
		}
		if _, ok := c.RemoteAddr().(*net.TCPAddr); !ok {
			t.Errorf("client RemoteAddr is %T, want *net.TCPAddr", c.RemoteAddr())
		}
	}
}
