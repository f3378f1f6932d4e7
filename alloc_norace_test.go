//go:build !race

package websocket

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestEchoAllocations counts the heap allocations per echoed message of
// a server on a TCP socket, with the client a raw socket that allocates
// nothing: none with Serve and with a ReadAppend loop, which reuse their
// memory; one of the message's size, the caller's slice, with the
// README's Read loop; and with Reader and io.ReadAll, io.ReadAll's own
// and no more, as many as it makes of a bytes.Reader holding the message.
// (The race detector drops pooled buffers, hence !race.)
func TestEchoAllocations(t *testing.T) {
	for _, loop := range []string{"Serve", "ReadAppend", "Read", "ReadAll"} {
		for _, size := range []int{16, 1 << 10, 16 << 10, 60 << 10, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", loop, size), func(t *testing.T) {
				// The allocations and bytes per message the loop may make.
				var wantAllocs float64
				var want uint64
				switch loop {
				case "Read":
					wantAllocs, want = 1, uint64(size)
				case "ReadAll":
					p := make([]byte, size)
					r := bytes.NewReader(p)
					readAll := func() { r.Reset(p); io.ReadAll(r) }
					wantAllocs, want = echoAllocs(t, readAll)
				}
				s := httptest.NewServer(echoLoop(loop, nil))
				defer s.Close()
				nc := rawClient(t, s.Listener.Addr().String())
				frame := maskedFrame(0x82, make([]byte, size))
				wantHeader := frameHeader(0x82, size)
				echo := make([]byte, len(wantHeader)+size)
				allocs, bytes := echoAllocs(t, func() {
					if _, err := nc.Write(frame); err != nil {
						t.Fatal(err)
					}
					if _, err := io.ReadFull(nc, echo); err != nil {
						t.Fatal(err)
					}
				})
				// At 1 MiB a loop's allocations bring collections, and a
				// sync.Pool remakes its per-CPU array after each: a few small
				// allocations per collection, none per message.
				// io.ReadAll of Go 1.25 grows its slice once more after a
				// read that filled it exactly, before the read that finds
				// io.EOF: a bytes.Reader brings that growth, and our reader,
				// whose last bytes come with io.EOF, does not.
				fewer := loop == "ReadAll" && allocs < wantAllocs && allocs > 0
				if allocs != wantAllocs && !fewer && (size < 1<<20 || wantAllocs == 0) {
					t.Errorf("%v allocations per echo, want %v", allocs, wantAllocs)
				}
				// What is allocated is the message's size (rounded up to a
				// size class), or io.ReadAll's own, not a copy per growth
				// step of ours; beside it, pooled
				// buffers a collection emptied are made again, a message
				// buffer (up to twice the size, grown) or a read buffer, a
				// few times in a run.
				if bytes > want+want/8+(4*uint64(size)+128<<10)/allocRuns {
					t.Errorf("%d bytes allocated per echo, want %d", bytes, want)
				}
				if string(echo[:len(wantHeader)]) != string(wantHeader) {
					t.Fatalf("echo header %x, want %x", echo[:len(wantHeader)], wantHeader)
				}
			})
		}
	}
}

// TestCompressedEchoAllocations: with permessage-deflate, with and
// without context takeover, Serve and a ReadAppend loop allocate nothing
// per echoed message either; the compressors' working state comes from
// pools.
func TestCompressedEchoAllocations(t *testing.T) {
	for _, mode := range []CompressionMode{CompressionNoContextTakeover, CompressionContextTakeover} {
		for _, loop := range []string{"Serve", "ReadAppend"} {
			for _, size := range []int{1 << 10, 16 << 10} {
				t.Run(fmt.Sprintf("%v/%s/%d", mode, loop, size), func(t *testing.T) {
					s := httptest.NewServer(echoLoop(loop, &AcceptOptions{Compression: mode}))
					defer s.Close()
					nc := deflateClient(t, s.Listener.Addr().String())
					text := []byte(strings.Repeat(`{"user":"ann","text":"hello there, how are you?"},`, size/40)[:size])
					// The client compresses each message on its own, which
					// takeover allows; so one frame serves every round.
					var z bytes.Buffer
					fw, _ := flate.NewWriter(&z, flate.BestSpeed)
					fw.Write(text)
					fw.Flush()
					payload := bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff})
					frame := maskedFrame(0xC1, payload)
					echo := make([]byte, size)
					allocs, bytes := echoAllocs(t, func() {
						if _, err := nc.Write(frame); err != nil {
							t.Fatal(err)
						}
						b0, n := readFrameHead(t, nc, echo)
						if b0 != 0xC1 || n > size {
							t.Fatalf("echo: first byte %#x, %d bytes of payload; want a compressed final text frame", b0, n)
						}
						if _, err := io.ReadFull(nc, echo[:n]); err != nil {
							t.Fatal(err)
						}
					})
					if allocs != 0 {
						t.Errorf("%v allocations per echo, want 0", allocs)
					}
					// A compressor's or decompressor's state made again after
					// a collection emptied its pool: a window and tables.
					if bytes > (512<<10)/allocRuns {
						t.Errorf("%d bytes allocated per echo, want 0", bytes)
					}
				})
			}
		}
	}
}

// TestInputQueuedAllocatesNothing: asking the kernel how much input a
// socket holds, which Read does for a large message, allocates nothing.
func TestInputQueuedAllocatesNothing(t *testing.T) {
	_, peer := socketPair(t, "unix", t.TempDir()+"/s")
	tr := netTransport(peer)
	if tr.inputQueued() < 0 {
		t.Skip("this system does not tell a socket's input queue (queued_other.go)")
	}
	if n := testing.AllocsPerRun(100, func() { tr.inputQueued() }); n != 0 {
		t.Errorf("%v allocations per call, want 0", n)
	}
}

const allocRuns = 200

// echoAllocs runs roundTrip 20 times, so that pools fill, then measures
// it: the allocations per run (testing.AllocsPerRun) and the bytes.
func echoAllocs(t *testing.T, roundTrip func()) (allocs float64, bytes uint64) {
	t.Helper()
	for range 20 {
		roundTrip()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	allocs = testing.AllocsPerRun(allocRuns, roundTrip)
	runtime.ReadMemStats(&after)
	// AllocsPerRun runs it once more before measuring.
	return allocs, (after.TotalAlloc - before.TotalAlloc) / (allocRuns + 1)
}

// readFrameHead reads a server's frame header (no mask) from nc, using
// buf, and returns its first byte and payload length.
func readFrameHead(t *testing.T, nc net.Conn, buf []byte) (byte, int) {
	t.Helper()
	if _, err := io.ReadFull(nc, buf[:2]); err != nil {
		t.Fatal(err)
	}
	b0, n := buf[0], int(buf[1]&127)
	if n == 126 {
		if _, err := io.ReadFull(nc, buf[:2]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(buf))
	}
	return b0, n
}

// TestReadAppendAfterPrefix: ReadAppend into a slice that holds bytes of
// the caller's already grows it by doubling, the read limit counting the
// message's bytes alone. With the caller's bytes counted, a prefix at the
// limit left no room: the slice grew by a frame at a time, or by a byte
// for a compressed message, copied whole each time (a 2,000-byte message
// of 2,000 frames allocated 140 MiB; an 8 KiB compressed one 167 MiB).
func TestReadAppendAfterPrefix(t *testing.T) {
	totalAlloc := func() uint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.TotalAlloc
	}
	check := func(t *testing.T, sc *Conn, prefix, size int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dst := make([]byte, prefix)
		before := totalAlloc()
		_, p, err := sc.ReadAppend(ctx, dst)
		alloc := totalAlloc() - before
		if err != nil || len(p) != prefix+size {
			t.Fatalf("ReadAppend: %d bytes, %v; want %d", len(p), err, prefix+size)
		}
		if alloc > 4<<20 {
			t.Errorf("a prefix of %d bytes: ReadAppend of a %d-byte message allocated %d KiB", prefix, size, alloc>>10)
		}
	}
	t.Run("fragments", func(t *testing.T) {
		const limit, frames = 64 << 10, 2000
		nc, sc := stalledPair(t, nil)
		sc.SetReadLimit(limit)
		msg := clientFrame(0x02, "x")
		for range frames - 2 {
			msg += clientFrame(0x00, "x")
		}
		msg += clientFrame(0x80, "x")
		for _, prefix := range []int{0, limit} {
			io.WriteString(nc, msg)
			check(t, sc, prefix, frames)
		}
	})
	t.Run("compressed", func(t *testing.T) {
		const limit, size = 16 << 10, 8 << 10
		s, conns := acceptOne(t, &AcceptOptions{Compression: CompressionNoContextTakeover})
		cc := dialT(t, wsURL(s), &DialOptions{Compression: CompressionNoContextTakeover})
		sc := <-conns
		defer sc.CloseNow()
		sc.SetReadLimit(limit)
		for _, prefix := range []int{0, limit} {
			if err := cc.Write(context.Background(), MessageBinary, make([]byte, size)); err != nil {
				t.Fatal(err)
			}
			check(t, sc, prefix, size)
		}
	})
}

// TestCompressedAtLimit: a compressed message that inflates to exactly
// the read limit, L, is read by ReadAppend and by Serve in a slice grown
// by doubling up to L (2L allocated in all); it is not then copied into a
// slice a byte larger only to find that the message ends there, which
// allocated 3L and held 2L at once: 64 MiB live for a 32 KiB message
// under the default limit.
func TestCompressedAtLimit(t *testing.T) {
	const limit = 8 << 20
	bomb := compressedPayload(t, make([]byte, limit))
	for _, served := range []bool{false, true} {
		t.Run(fmt.Sprintf("Serve=%v", served), func(t *testing.T) {
			s, conns := acceptOne(t, &AcceptOptions{Compression: CompressionNoContextTakeover})
			nc := deflateClient(t, s.Listener.Addr().String())
			sc := <-conns
			defer sc.CloseNow()
			sc.SetReadLimit(limit)
			type result struct {
				n     int
				err   error
				alloc uint64
			}
			done := make(chan result, 1)
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			allocated := func() uint64 {
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				return after.TotalAlloc - before.TotalAlloc
			}
			if served {
				sc.Serve(func(_ MessageType, p []byte) { done <- result{len(p), nil, allocated()} }, func(err error) { done <- result{err: err} })
			} else {
				go func() {
					_, p, err := sc.ReadAppend(context.Background(), make([]byte, 0, 512))
					done <- result{len(p), err, allocated()}
				}()
			}
			if _, err := nc.Write(maskedFrame(0xC2, bomb)); err != nil {
				t.Fatal(err)
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the message was not read within 10 s")
			}
			if r.err != nil || r.n != limit {
				t.Fatalf("read %d bytes, %v; want %d", r.n, r.err, limit)
			}
			if r.alloc > 5*limit/2 {
				t.Errorf("reading a message of the read limit, %d MiB, allocated %.1f MiB, want at most %d", limit>>20, float64(r.alloc)/(1<<20), 5*limit/2>>20)
			}
		})
	}
}

// TestWriterReadFromAllocations: io.Copy of a 100 KiB message into a
// Writer, from a reader that has no WriteTo, allocates the writer's
// handle and nothing else: no 32 KiB buffer of io.Copy's per message,
// compressed or not.
func TestWriterReadFromAllocations(t *testing.T) {
	for _, mode := range []CompressionMode{CompressionDisabled, CompressionContextTakeover} {
		t.Run(mode.String(), func(t *testing.T) {
			s, conns := acceptOne(t, &AcceptOptions{Compression: mode})
			var nc net.Conn
			if mode == CompressionDisabled {
				nc = rawClient(t, s.Listener.Addr().String())
			} else {
				nc = deflateClient(t, s.Listener.Addr().String())
			}
			nc.SetDeadline(time.Time{})
			sc := <-conns
			defer sc.CloseNow()
			go io.Copy(io.Discard, nc)
			p := bytes.Repeat([]byte(`{"event":"message","text":"hello"} `), 3000)
			r := bytes.NewReader(p)
			var src io.Reader = struct{ io.Reader }{r} // no WriteTo
			ctx := context.Background()
			allocs, bytes := echoAllocs(t, func() {
				r.Reset(p)
				w, err := sc.Writer(ctx, MessageText)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(w, src); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			})
			// The bytes counted include what sync.Pool remakes after a
			// collection, as TestCopyEchoAllocations allows; a buffer
			// of io.Copy's per message (32 KiB) exceeds it.
			if allocs > 1 || bytes > 1<<10+(4*uint64(len(p))+128<<10)/allocRuns {
				t.Errorf("%.1f allocations and %d bytes per message; want the writer's handle alone, 1 and 8", allocs, bytes)
			}
		})
	}
}

// TestCopyEchoAllocations: a relay's echo, io.Copy from a message's
// Reader into a Writer (the writer's ReadFrom hidden, so that the
// reader's WriteTo copies), allocates the writer's handle alone per message,
// at every size and compressed or not: no 32 KiB buffer of io.Copy's.
// The client is a Conn that writes each message and reads its echo with
// ReadAppend, allocating nothing.
func TestCopyEchoAllocations(t *testing.T) {
	for _, mode := range []CompressionMode{CompressionDisabled, CompressionContextTakeover} {
		for _, size := range []int{16, 16 << 10, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", mode, size), func(t *testing.T) {
				s := httptest.NewServer(echoLoop("Copy", &AcceptOptions{Compression: mode}))
				defer s.Close()
				c := dialT(t, wsURL(s), &DialOptions{Compression: mode})
				ctx := context.Background()
				p := bytes.Repeat([]byte("relayed "), size/8)
				var buf []byte
				allocs, bytes := echoAllocs(t, func() {
					if err := c.Write(ctx, MessageBinary, p); err != nil {
						t.Fatal(err)
					}
					typ, echo, err := c.ReadAppend(ctx, buf[:0])
					if err != nil || typ != MessageBinary || len(echo) != len(p) {
						t.Fatalf("ReadAppend = %v, %d bytes, %v; want binary, %d", typ, len(echo), err, len(p))
					}
					buf = echo
				})
				// The bytes counted include pooled buffers remade after a
				// collection, a few times in a run, up to twice the
				// message's size each (as TestEchoAllocations allows): at
				// 1 MiB, once 10,770 bytes per echo with Go 1.25.5, about
				// two such buffers. A buffer of io.Copy's per message
				// (32 KiB) exceeds it at every size.
				if allocs > 1 || bytes > 4<<10+(4*uint64(size)+128<<10)/allocRuns {
					t.Errorf("%.1f allocations and %d bytes per echo; want the writer's handle alone, 1 and 8", allocs, bytes)
				}
			})
		}
	}
}
