package websocket_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/rfc6455/websocket"
)

// The per-connection loop that gorilla/websocket programs write, with a
// reader goroutine, a writer goroutine that alone may write, a ticker that
// pings, SetReadDeadline moved forward by a pong handler, and a channel to
// stop them all, is a plain loop here: writes are safe from any goroutine
// and keepalive drops a peer that stops answering.
//
//	// gorilla/websocket
//	conn.SetReadDeadline(time.Now().Add(pongWait))
//	conn.SetPongHandler(func(string) error { conn.SetReadDeadline(time.Now().Add(pongWait)); return nil })
//	go writePump(conn, send)  // drains send, pings on a ticker, stops on done
//	readPump(conn, send)      // ReadMessage until an error, then close(done)
func Example_heartbeat() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			KeepaliveInterval: 10 * time.Second, // a ping after 10 s of quiet
			KeepaliveTimeout:  5 * time.Second,  // gone if nothing comes 5 s after it
		})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		for {
			typ, p, err := c.Read(ctx) // ends with ErrKeepaliveTimeout if the peer vanishes
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, p); err != nil { // other goroutines may write too
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
	c.Write(ctx, websocket.MessageText, []byte("still there?"))
	_, p, err := c.Read(ctx)
	fmt.Println(string(p), err)
	c.Close(websocket.StatusNormalClosure, "")
	// Output:
	// still there? <nil>
}

// A chat room's fan-out: each message is prepared once and enqueued on
// every member's connection, under the room's lock, so that every member
// gets the messages in one order, and a member who stops reading never
// holds up the others and is dropped once its queue limit is reached.
func ExamplePreparedMessage_Broadcast() {
	var (
		mu      sync.Mutex
		members []*websocket.Conn
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			WriteQueueLimit:  1 << 20, // what a member that stops reading may cost
			CloseOnQueueFull: true,    // and then it is dropped, with 1008
		})
		if err != nil {
			return
		}
		mu.Lock()
		members = append(members, c)
		mu.Unlock()
		c.Serve(func(typ websocket.MessageType, p []byte) {
			pm, err := websocket.NewPreparedMessage(typ, p)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			pm.Broadcast(members...)
		}, func(error) {
			mu.Lock()
			defer mu.Unlock()
			for i, m := range members {
				if m == c {
					members = append(members[:i], members[i+1:]...)
					break
				}
			}
		})
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := strings.Replace(srv.URL, "http", "ws", 1)
	alice, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	bob, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	for {
		mu.Lock()
		n := len(members)
		mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	alice.Write(ctx, websocket.MessageText, []byte("hello, room"))
	for _, c := range []*websocket.Conn{alice, bob} {
		_, p, err := c.Read(ctx)
		fmt.Println(string(p), err)
		c.Close(websocket.StatusNormalClosure, "")
	}
	// Output:
	// hello, room <nil>
	// hello, room <nil>
}

// Shutting down: the registry tells every WebSocket the server is going
// away, and waits for them to close.
func ExampleRegistry() {
	reg := new(websocket.Registry)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Registry: reg})
		if err != nil {
			return
		}
		c.Serve(func(typ websocket.MessageType, p []byte) {
			c.Enqueue(typ, p) // never waits on a peer that stops reading
		}, func(error) {})
	}))
	srv.Config.RegisterOnShutdown(func() { reg.Shutdown(context.Background()) })
	srv.Start()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		log.Fatal(err)
	}
	c.Write(ctx, websocket.MessageText, []byte("ping"))
	c.Read(ctx) // the echo: the connection is registered by now
	closed := make(chan error)
	go func() {
		_, _, err := c.Read(ctx)
		closed <- err
	}()

	srv.Config.Shutdown(ctx) // starts the registry's shutdown
	reg.Shutdown(ctx)        // waits for it
	var ce websocket.CloseError
	fmt.Println(errors.As(<-closed, &ce), ce.Code, ce.Reason)
	srv.Close()
	// Output:
	// true 1001 (going away) server shutting down
}

// A server that only writes: CloseRead reads the connection for it, so
// that the client's pings and its close frame are answered, and ends ctx
// once the connection has ended.
func ExampleConn_CloseRead() {
	ended := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := c.CloseRead(context.Background())
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				ended <- context.Cause(ctx)
				return
			case <-tick.C:
				c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "tick %d", n))
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
	for range 2 {
		_, p, _ := c.Read(ctx)
		fmt.Println(string(p))
	}
	fmt.Println(c.Close(websocket.StatusNormalClosure, "enough"))
	fmt.Println(<-ended)
	// Output:
	// tick 1
	// tick 2
	// <nil>
	// websocket: close 1000 (normal closure): enough
}
