package websocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

func TestWriteContextEndedBeforeWriting(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Write(ctx, MessageText, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a canceled context: %v, want Canceled", err)
	}
	if err := c.Write(context.Background(), MessageText, []byte("y")); err != nil {
		t.Fatalf("Write after: %v", err)
	}
	if _, p, err := c.Read(context.Background()); err != nil || string(p) != "y" {
		t.Fatalf("Read: %q, %v", p, err)
	}
}

func TestWriteContextEndsInsideFrameClosesConnection(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := echoServer(t, nil, func(c *Conn) { <-release }) // never reads
	defer close(release)
	c := dialT(t, wsURL(s), nil)
	big := make([]byte, 64<<20) // more than the socket buffers hold
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := c.Write(ctx, MessageBinary, big)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Write: %v, want DeadlineExceeded and ErrClosed", err)
	}
	if err := c.Write(context.Background(), MessageText, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after a cut frame: %v, want ErrClosed", err)
	}
}

func TestConcurrentWritersNeverInterleave(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, nil)
	c := dialT(t, wsURL(s), nil)
	const writers, each = 8, 40
	ctx := context.Background()
	msg := func(w, i int) []byte {
		return bytes.Repeat(fmt.Appendf(nil, "<%d:%d>", w, i), 1+(w*37+i*101)%3000)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				p := msg(w, i)
				var err error
				if i%2 == 0 {
					err = c.Write(ctx, MessageBinary, p)
				} else {
					var mw io.WriteCloser
					if mw, err = c.Writer(ctx, MessageBinary); err == nil {
						for len(p) > 0 && err == nil {
							n := min(len(p), 777)
							_, err = mw.Write(p[:n])
							p = p[n:]
						}
						if cerr := mw.Close(); err == nil {
							err = cerr
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	next := make([]int, writers)
	for range writers * each {
		_, p, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		var w, i int
		if _, err := fmt.Sscanf(string(p), "<%d:%d>", &w, &i); err != nil || w >= writers {
			t.Fatalf("unexpected message %.40q", p)
		}
		if i != next[w] || !bytes.Equal(p, msg(w, i)) {
			t.Fatalf("message %d of writer %d arrived mangled or out of order (want %d)", i, w, next[w])
		}
		next[w]++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
}

// TestWriterFirstFrameFails: a message whose first frame never went out
// (its context had ended) sends nothing more, not even from Close, and
// the connection goes on.
func TestWriterFirstFrameFails(t *testing.T) {
	t.Parallel()
	s := echoServer(t, nil, func(c *Conn) {
		ctx := context.Background()
		c.Write(ctx, MessageText, []byte("one"))
		c.Write(ctx, MessageText, []byte("two"))
		echo(c)
	})
	c := dialT(t, wsURL(s), nil)
	ctx := context.Background()
	if _, p, err := c.Read(ctx); err != nil || string(p) != "one" {
		t.Fatalf("Read %q, %v", p, err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	w, err := c.Writer(canceled, MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 100<<10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a canceled context: %v", err)
	}
	if _, err := w.Write([]byte("more")); !errors.Is(err, context.Canceled) {
		t.Fatalf("second Write of the failed message: %v", err)
	}
	if err := w.Close(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close of the failed message: %v", err)
	}
	if err := c.Write(ctx, MessageText, []byte("after")); err != nil {
		t.Fatalf("Write after the failed message: %v", err)
	}
	for _, want := range []string{"two", "after"} {
		if _, p, err := c.Read(ctx); err != nil || string(p) != want {
			t.Fatalf("Read %q, %v; want %q (a stray frame would have failed the connection)", p, err, want)
		}
	}
}
