package bench_test

import (
	"bytes"
	"fmt"
	"testing"

	kflate "github.com/klauspost/compress/flate"
	"github.com/rfc6455/websocket/bench/loadgen"
	"github.com/rfc6455/websocket/internal/flate"
	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// BenchmarkDeflate compresses one message per iteration, ended by a sync
// flush, with our encoder (a 32 KiB window) and with
// klauspost/compress/flate at BestSpeed (what gws uses for
// permessage-deflate), on the same bytes: JSON from the flate package's
// corpus ("corpus") and the chat events the load generator of
// cmd/wsbench sends ("chat"). Without context takeover each message is a
// stream of its own (ours Reset, klauspost's writer Reset); with it, one
// stream carries them all. "ratio" is the output over the input,
// FlushTail included; "cpu-ns/op" the process's CPU time per message
// (run with -cpu 1), which other work on the machine disturbs less than
// the clock.
func BenchmarkDeflate(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		sources := []struct {
			name string
			msgs [][]byte
		}{
			{"corpus", flatetest.Corpus("json", size)},
			{"chat", loadgen.JSONMessages(64, size, 7)},
		}
		for _, src := range sources {
			for _, takeover := range []bool{false, true} {
				mode := "no-takeover"
				if takeover {
					mode = "takeover"
				}
				prefix := fmt.Sprintf("%s/%d/%s/", src.name, size, mode)
				msgs := src.msgs
				b.Run(prefix+"klauspost", func(b *testing.B) {
					var buf bytes.Buffer
					buf.Grow(2*size + 1024)
					fw, err := kflate.NewWriter(&buf, kflate.BestSpeed)
					if err != nil {
						b.Fatal(err)
					}
					in, out := 0, 0
					b.SetBytes(int64(size))
					b.ReportAllocs()
					cpu0 := processCPU()
					for i := 0; b.Loop(); i++ {
						buf.Reset()
						if !takeover {
							fw.Reset(&buf)
						}
						m := msgs[i%len(msgs)]
						fw.Write(m)
						fw.Flush()
						in += len(m)
						out += buf.Len()
					}
					b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
					b.ReportMetric(float64(out)/float64(in), "ratio")
				})
				b.Run(prefix+"ours", func(b *testing.B) {
					w := flate.NewWriter(flate.MaxWindowBits)
					dst := make([]byte, 0, 2*size+1024)
					w.Flush(w.Append(dst, msgs[len(msgs)-1])) // take the scratch
					w.Reset()
					in, out := 0, 0
					b.SetBytes(int64(size))
					b.ReportAllocs()
					cpu0 := processCPU()
					for i := 0; b.Loop(); i++ {
						m := msgs[i%len(msgs)]
						dst = w.Flush(w.Append(dst[:0], m))
						if !takeover {
							w.Reset()
						}
						in += len(m)
						out += len(dst)
					}
					b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
					b.ReportMetric(float64(out)/float64(in), "ratio")
				})
			}
		}
	}
}
