package wsjson_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/wsjson"
)

// Move is the message both sides exchange.
type Move struct {
	Player string `json:"player"`
	X      int    `json:"x"`
	Y      int    `json:"y"`
}

// A server that answers each move with its mirror image, and a client that
// sends one move and reads the answer.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			var m Move
			if err := wsjson.Read(r.Context(), c, &m); err != nil {
				return
			}
			m.Player, m.X, m.Y = "server", m.Y, m.X
			if err := wsjson.Write(r.Context(), c, m); err != nil {
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
	defer c.CloseNow()
	if err := wsjson.Write(ctx, c, Move{Player: "ann", X: 1, Y: 2}); err != nil {
		log.Fatal(err)
	}
	var reply Move
	if err := wsjson.Read(ctx, c, &reply); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", reply)
	c.Close(websocket.StatusNormalClosure, "")
	// Output:
	// {Player:server X:2 Y:1}
}
