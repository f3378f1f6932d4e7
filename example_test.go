package websocket_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/rfc6455/websocket"
)

// An echo server and a client that talks to it.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
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
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	typ, p, err := c.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(typ, string(p))
	fmt.Println(c.Close(websocket.StatusNormalClosure, "done"))
	// Output:
	// text hello
	// <nil>
}

// A server that closes the connection: the client's read returns the
// server's close frame as a CloseError.
func ExampleCloseStatus() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.Close(websocket.StatusGoingAway, "restarting")
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		log.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	var ce websocket.CloseError
	fmt.Println(websocket.CloseStatus(err), errors.As(err, &ce), ce.Reason)
	// Output:
	// 1001 (going away) true restarting
}

// Telling a peer that closed on purpose from a connection that was lost,
// where gorilla/websocket programs call IsUnexpectedCloseError: the read
// that ends reports the peer's close frame, or StatusAbnormalClosure when
// the connection ended without one.
func ExampleCloseStatus_unexpected() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		if r.URL.Path == "/bye" {
			c.Close(websocket.StatusGoingAway, "restarting")
			return
		}
		c.CloseNow() // no close frame: the peer sees the connection lost
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, path := range []string{"/bye", "/cut"} {
		c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+path, nil)
		if err != nil {
			log.Fatal(err)
		}
		_, _, err = c.Read(ctx)
		switch websocket.CloseStatus(err) {
		case websocket.StatusNormalClosure, websocket.StatusGoingAway:
			fmt.Println(path, "closed:", err)
		default:
			fmt.Println(path, "unexpected:", websocket.CloseStatus(err), errors.Is(err, io.EOF))
		}
		c.CloseNow()
	}
	// Output:
	// /bye closed: websocket: close 1001 (going away): restarting
	// /cut unexpected: 1006 (abnormal closure) true
}

// Streaming a message: the writer sends a frame per 4 KiB gathered, and
// the reader delivers the payload as it arrives.
func ExampleConn_Writer() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		typ, rd, err := c.Reader(r.Context())
		if err != nil {
			return
		}
		n, _ := io.Copy(io.Discard, rd)
		c.Write(r.Context(), typ, fmt.Appendf(nil, "got %d bytes", n))
		c.Close(websocket.StatusNormalClosure, "")
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	w, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		log.Fatal(err)
	}
	for range 1000 {
		io.WriteString(w, "0123456789")
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	_, p, err := c.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(p))
	// Output:
	// got 10000 bytes
}

// A page and its WebSocket at one address: the handler tells the
// handshake from a plain GET, over HTTP/1.1 as over HTTP/2, and speaks
// the subprotocol the client names first among those it knows.
func ExampleIsUpgradeRequest() {
	known := []string{"v2.chat", "v1.chat"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsUpgradeRequest(r) {
			io.WriteString(w, "<!doctype html><title>chat</title>")
			return
		}
		opts := &websocket.AcceptOptions{}
		for _, p := range websocket.Subprotocols(r) {
			if slices.Contains(known, p) {
				opts.Subprotocols = []string{p}
				break
			}
		}
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.Write(r.Context(), websocket.MessageText, []byte("speaking "+c.Subprotocol()))
		c.Close(websocket.StatusNormalClosure, "")
	}))
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		log.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(page))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1), &websocket.DialOptions{
		Subprotocols: []string{"v3.chat", "v1.chat", "v2.chat"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	_, p, err := c.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(p))
	// Output:
	// <!doctype html><title>chat</title>
	// speaking v1.chat
}
