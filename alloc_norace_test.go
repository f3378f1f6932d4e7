//go:build !race

package websocket

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
)

// TestEchoAllocations counts the heap allocations per echoed message of
// a server on a TCP socket, with the client a raw socket that allocates
// nothing: none with Serve and with a ReadAppend loop, which reuse their
// memory, and one of the message's size, the caller's slice, with the
// README's Read loop. (The race detector drops pooled buffers, hence
// !race.)
func TestEchoAllocations(t *testing.T) {
	readAppendEcho := func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		var buf []byte
		for {
			typ, p, err := c.ReadAppend(r.Context(), buf[:0])
			if err != nil {
				return
			}
			buf = p
			if err := c.Write(r.Context(), typ, p); err != nil {
				return
			}
		}
	}
	handlers := []struct {
		name   string
		handle func(http.ResponseWriter, *http.Request)
		allocs float64
	}{
		{"Serve", func(w http.ResponseWriter, r *http.Request) { serveEcho(w, r, nil) }, 0},
		{"ReadAppend", readAppendEcho, 0},
		{"Read", func(w http.ResponseWriter, r *http.Request) { readLoopEcho(w, r, nil) }, 1},
	}
	for _, h := range handlers {
		for _, size := range []int{16, 1 << 10, 16 << 10, 60 << 10, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", h.name, size), func(t *testing.T) {
				s := httptest.NewServer(http.HandlerFunc(h.handle))
				defer s.Close()
				nc := rawClient(t, s.Listener.Addr().String())
				frame := maskedBinaryFrame(size)
				wantHeader := frameHeader(size)
				echo := make([]byte, len(wantHeader)+size)
				roundTrip := func() {
					if _, err := nc.Write(frame); err != nil {
						t.Fatal(err)
					}
					if _, err := io.ReadFull(nc, echo); err != nil {
						t.Fatal(err)
					}
				}
				for range 20 { // the pools fill
					roundTrip()
				}
				const runs = 200
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				allocs := testing.AllocsPerRun(runs, roundTrip)
				runtime.ReadMemStats(&after)
				// At 1 MiB a Read loop's allocations bring collections, and a
				// sync.Pool remakes its per-CPU array after each: a few small
				// allocations per collection, none per message.
				if allocs != h.allocs && (size < 1<<20 || h.allocs == 0) {
					t.Errorf("%v allocations per echo, want %v", allocs, h.allocs)
				}
				// What is allocated is the message's size (rounded up to a
				// size class), not a copy per growth step; beside it, pooled
				// buffers a collection emptied are made again, a message
				// buffer (up to twice the size, grown) or a read buffer, a
				// few times in a run.
				want := uint64(h.allocs) * uint64(size)
				slack := (4*uint64(size) + 128<<10) / (runs + 1)
				if perEcho := (after.TotalAlloc - before.TotalAlloc) / (runs + 1); perEcho > want+want/8+slack {
					t.Errorf("%d bytes allocated per echo, want %d", perEcho, want)
				}
				if string(echo[:len(wantHeader)]) != string(wantHeader) {
					t.Fatalf("echo header %x, want %x", echo[:len(wantHeader)], wantHeader)
				}
			})
		}
	}
}

// frameHeader is the header of a server's final binary frame of size
// bytes.
func frameHeader(size int) []byte {
	switch {
	case size < 126:
		return []byte{0x82, byte(size)}
	case size < 1<<16:
		return binary.BigEndian.AppendUint16([]byte{0x82, 126}, uint16(size))
	}
	return binary.BigEndian.AppendUint64([]byte{0x82, 127}, uint64(size))
}

// maskedBinaryFrame is a client's final binary frame of size bytes,
// masked with the key 0.
func maskedBinaryFrame(size int) []byte {
	f := frameHeader(size)
	f[1] |= 0x80
	f = append(f, 0, 0, 0, 0)
	for i := range size {
		f = append(f, byte(i))
	}
	return f
}
