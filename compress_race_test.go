package websocket

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestCompressedWritersRace: Write, Writer, Enqueue, WritePrepared,
// EnqueuePrepared and Broadcast compress concurrently on one connection,
// with the compressor idling between bursts; the peer inflates every
// message to what was sent, in every mode.
func TestCompressedWritersRace(t *testing.T) {
	t.Parallel()
	for _, mode := range []CompressionMode{CompressionNoContextTakeover, CompressionContextTakeover} {
		for _, bits := range []int{9, 15} {
			t.Run(fmt.Sprintf("%v/%d", mode, bits), func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				const workers, per = 6, 40
				got := make(chan error, 1)
				s := echoServer(t, &AcceptOptions{Compression: mode, CompressionWindowBits: bits, WriteQueueLimit: 64 << 20}, func(c *Conn) {
					n := 0
					for n < workers*per {
						_, p, err := c.Read(ctx)
						if err != nil {
							got <- fmt.Errorf("after %d messages: %v", n, err)
							return
						}
						if err := checkRaceMsg(p); err != nil {
							got <- fmt.Errorf("message %d: %v", n, err)
							return
						}
						n++
					}
					got <- nil
					c.Read(ctx)
				})
				c := dialT(t, wsURL(s), &DialOptions{Compression: mode, CompressionWindowBits: bits})
				var wg sync.WaitGroup
				errs := make(chan error, workers)
				for g := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range per {
							p := raceMsg(g, i)
							var err error
							switch (g + i) % 6 {
							case 0:
								err = c.Write(ctx, MessageBinary, p)
							case 1:
								w, werr := c.Writer(ctx, MessageBinary)
								if werr != nil {
									err = werr
									break
								}
								for j := 0; j < len(p); j += 1500 {
									w.Write(p[j:min(len(p), j+1500)])
								}
								err = w.Close()
							case 2:
								err = c.Enqueue(MessageBinary, p)
							case 3:
								pm, _ := NewPreparedMessage(MessageBinary, p)
								err = c.WritePrepared(ctx, pm)
							case 4:
								pm, _ := NewPreparedMessage(MessageBinary, p)
								err = c.EnqueuePrepared(pm)
							case 5:
								pm, _ := NewPreparedMessage(MessageBinary, p)
								if pm.Broadcast(c) != 1 {
									err = fmt.Errorf("broadcast not taken")
								}
							}
							if err != nil {
								errs <- err
								return
							}
							if i%15 == 14 {
								time.Sleep(deflateIdleDelay + deflateIdleDelay/2)
							}
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				select {
				case err := <-got:
					if err != nil {
						t.Fatal(err)
					}
				case <-ctx.Done():
					t.Fatal("peer did not get every message")
				}
				c.Close(StatusNormalClosure, "")
			})
		}
	}
}

// raceMsg is message i of worker g: a header that names it, then text
// that depends on both, long enough to be compressed and to refer back.
func raceMsg(g, i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d %d|", g, i)
	for k := range 50 + (g*7+i*13)%400 {
		fmt.Fprintf(&b, "{\"worker\":%d,\"n\":%d,\"k\":%d}", g, i, k)
	}
	return b.Bytes()
}

func checkRaceMsg(p []byte) error {
	head, _, ok := bytes.Cut(p, []byte("|"))
	if !ok {
		return fmt.Errorf("no header: %.40q", p)
	}
	f := bytes.Fields(head)
	if len(f) != 2 {
		return fmt.Errorf("bad header %q", head)
	}
	g, _ := strconv.Atoi(string(f[0]))
	i, _ := strconv.Atoi(string(f[1]))
	if want := raceMsg(g, i); !bytes.Equal(p, want) {
		return fmt.Errorf("message %d %d: %d bytes, not the %d sent", g, i, len(p), len(want))
	}
	return nil
}
