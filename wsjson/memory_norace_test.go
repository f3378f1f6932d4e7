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
	"time"

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

// TestIdleReadHoldsNoBuffer: a Read waiting for a message holds no
// buffer, as a connection waiting in Conn.Read does not. Read took its
// pooled buffer before it waited: after a 3 MiB message, the connection
// held 3 MiB for as long as it stayed quiet, and through the pool so did
// connections that had received nothing.
func TestIdleReadHoldsNoBuffer(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one pool, in order
	const quiet, size = 3, 3 << 20
	ctx := testContext(t)
	heap := func() int64 {
		runtime.GC()
		runtime.GC() // and the pool's victims
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	before := heap()
	big, peer := connPair(t)
	var conns []*websocket.Conn
	for range quiet {
		c, _ := connPair(t)
		conns = append(conns, c)
	}
	conns = append(conns, big)
	msg := []byte(`{"pad":"` + strings.Repeat("x", size) + `"}`)
	done := make(chan error, len(conns))
	wrote := make(chan error, 1)
	for _, c := range conns {
		// A large message on one connection, then a Read that waits for
		// good: on each quiet one in turn, and last on that one.
		go func() { wrote <- peer.Write(ctx, websocket.MessageText, msg) }()
		var v struct{ Pad string }
		if err := Read(ctx, big, &v); err != nil || len(v.Pad) != size {
			t.Fatalf("read %d bytes of pad, %v", len(v.Pad), err)
		}
		// The message is all read once its last bytes are written, which
		// may be before the Write returns and lets it go.
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		go func() {
			var w struct{ N int }
			done <- Read(ctx, c, &w)
		}()
		time.Sleep(50 * time.Millisecond) // the Read waits
	}
	msg = nil
	held := heap() - before
	for _, c := range conns {
		c.CloseNow()
	}
	for range conns {
		<-done
	}
	t.Logf("%d connections waiting in Read after %d messages of %d bytes: heap grew by %d bytes", len(conns), len(conns), size, held)
	if held > 1<<20 {
		t.Errorf("%d connections waiting in Read hold %d bytes, want no message buffer", len(conns), held)
	}
}
