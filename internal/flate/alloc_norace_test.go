//go:build !race

package flate

import (
	"bytes"
	"io"
	"testing"

	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// The allocation tests run without the race detector only: under it,
// sync.Pool drops a quarter of what is put back, so that the working
// state a Reader or Writer borrows is now and then made anew (a Reader
// test of 100 messages found 1 allocation per message once in a CI run).

// TestWriterAllocs checks that a Writer in use allocates nothing per
// message once it has its scratch and the caller's buffer is big enough.
func TestWriterAllocs(t *testing.T) {
	msgs := flatetest.Corpus("json", 4<<10)[:8]
	for _, takeover := range []bool{true, false} {
		d := NewWriter(15)
		dst := make([]byte, 0, 16<<10)
		i := 0
		step := func() {
			dst = d.Flush(d.Append(dst[:0], msgs[i%len(msgs)]))
			if !takeover {
				d.Reset()
			}
			i++
		}
		step()
		if n := testing.AllocsPerRun(50, step); n != 0 {
			t.Errorf("takeover %t: %v allocations per message, want 0", takeover, n)
		}
	}
}

// TestReaderAllocs checks that a Reader allocates nothing per message once
// it has its window, and the pool its working state.
func TestReaderAllocs(t *testing.T) {
	msgs := flatetest.Corpus("json", 4<<10)[:16]
	for _, takeover := range []bool{true, false} {
		for _, bits := range []int{10, 15} {
			outs := compressMessages(bits, takeover, msgs, nil, 0)
			var src msgSource
			r := NewReader(&src, bits, takeover)
			buf := make([]byte, 4<<10+1)
			i := 0
			step := func() {
				k := i % len(msgs)
				if k == 0 {
					r.Reset()
				}
				src.next(outs[k], false)
				// Two Reads, so that the message spans Reads.
				n, _ := r.Read(buf[:1000])
				m, err := io.ReadFull(r, buf[n:])
				if err != io.ErrUnexpectedEOF || !bytes.Equal(buf[:n+m], msgs[k]) {
					t.Fatalf("message %d: %d bytes, %v", i, n+m, err)
				}
				i++
			}
			step()
			if n := testing.AllocsPerRun(100, step); n != 0 {
				t.Errorf("takeover %t, window bits %d: %v allocations per message, want 0", takeover, bits, n)
			}
		}
	}
}
