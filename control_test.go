package websocket

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPing(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	readErr := readAsync(c)
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	c.CloseNow()
	<-readErr
}

func TestPingContextWithoutPong(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := echoServer(t, nil, func(c *Conn) { <-release }) // never reads: no pong
	defer close(release)
	c := dialT(t, wsURL(s), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping: %v, want DeadlineExceeded", err)
	}
}

func TestPingEndsWhenConnectionCloses(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := echoServer(t, nil, func(c *Conn) { <-release }) // never reads: no pong
	defer close(release)
	c := dialT(t, wsURL(s), nil)
	pingErr := make(chan error, 1)
	go func() { pingErr <- c.Ping(context.Background()) }()
	time.Sleep(20 * time.Millisecond) // let the ping go out
	c.CloseNow()
	select {
	case err := <-pingErr:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Ping: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Ping still waiting after CloseNow")
	}
	if err := c.Ping(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after CloseNow: %v, want ErrClosed", err)
	}
}
