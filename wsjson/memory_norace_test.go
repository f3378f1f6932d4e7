//go:build !race

package wsjson

import (
	"encoding/json"
	"hash/crc32"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/rfc6455/websocket"
)

// The allocation tests, which the race detector would blur: it has
// sync.Pool drop a random share of what it is given, and a connection
// takes a read buffer from its pool for each wait for input.

// fewestBytes returns the fewest bytes one call of f allocated over runs
// calls, the GC off meanwhile so that pooled buffers stay.
func fewestBytes(runs int, f func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var ms runtime.MemStats
	fewest := ^uint64(0)
	for range runs {
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		f()
		runtime.ReadMemStats(&ms)
		fewest = min(fewest, ms.TotalAlloc-before)
	}
	return fewest
}

// TestWriteMemory: writing a 1 MiB value allocates no buffer of the
// message's size: encoding/json's reused buffer goes straight to the
// message writer. Writing json.Marshal's result, measured the same way,
// allocates the whole message, which shows the measure sees such a copy.
func TestWriteMemory(t *testing.T) {
	client, server := connPair(t)
	ctx := testContext(t)
	v := large()
	encoded, _ := json.Marshal(v)
	size, sum := len(encoded), crc32.ChecksumIEEE(encoded)
	type result struct {
		n   int64
		sum uint32
		err error
	}
	got := make(chan result, 1)
	go func() { // the peer checks each message and allocates little
		buf := make([]byte, 32<<10)
		h := crc32.NewIEEE()
		for {
			_, r, err := server.Reader(ctx)
			if err != nil {
				return
			}
			h.Reset()
			n, err := io.CopyBuffer(h, r, buf)
			got <- result{n, h.Sum32(), err}
		}
	}()
	write := func(send func() error) func() {
		return func() {
			if err := send(); err != nil {
				t.Fatal(err)
			}
			if r := <-got; r.err != nil || r.n != int64(size) || r.sum != sum {
				t.Fatalf("the peer read %d bytes (crc %x), %v; want %d (crc %x)", r.n, r.sum, r.err, size, sum)
			}
		}
	}
	ours := fewestBytes(8, write(func() error { return Write(ctx, client, v) }))
	marshalled := fewestBytes(8, write(func() error {
		p, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return client.Write(ctx, websocket.MessageText, p)
	}))
	t.Logf("a %d-byte message: Write allocates %d bytes, json.Marshal and Conn.Write %d", size, ours, marshalled)
	if ours > 64<<10 {
		t.Errorf("Write allocated %d bytes for a %d-byte message, want under 64 KiB", ours, size)
	}
	if marshalled < uint64(size) {
		t.Errorf("json.Marshal and Conn.Write allocated %d bytes, under the message's %d: the measure is broken", marshalled, size)
	}
}

// TestReadMemory: reading a 1 MiB message allocates nothing of its size:
// the buffer it is read into is kept from call to call. Conn.Read and
// json.Unmarshal, measured the same way, allocate the whole message.
func TestReadMemory(t *testing.T) {
	client, server := connPair(t)
	ctx := testContext(t)
	msg := []byte(`{"n":1,"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
	read := func(recv func(*struct{ N int }) error) func() {
		return func() {
			if err := server.Write(ctx, websocket.MessageText, msg); err != nil {
				t.Fatal(err)
			}
			var v struct{ N int }
			if err := recv(&v); err != nil || v.N != 1 {
				t.Fatalf("read %+v, %v; want n 1", v, err)
			}
		}
	}
	ours := fewestBytes(8, read(func(v *struct{ N int }) error { return Read(ctx, client, v) }))
	whole := fewestBytes(8, read(func(v *struct{ N int }) error {
		_, p, err := client.Read(ctx)
		if err != nil {
			return err
		}
		return json.Unmarshal(p, v)
	}))
	t.Logf("a %d-byte message: Read allocates %d bytes, Conn.Read and json.Unmarshal %d", len(msg), ours, whole)
	if ours > 64<<10 {
		t.Errorf("Read allocated %d bytes for a %d-byte message, want under 64 KiB", ours, len(msg))
	}
	if whole < uint64(len(msg)) {
		t.Errorf("Conn.Read and json.Unmarshal allocated %d bytes, under the message's %d: the measure is broken", whole, len(msg))
	}
}
