package flate

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"runtime"
	"testing"

	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// BenchmarkWriter compresses one message per iteration and flushes it, as
// a connection sends messages, side by side with compress/flate at
// BestSpeed, with context takeover (one stream) and without (a fresh
// stream per message). It reports the output size over the input size as
// "ratio".
func BenchmarkWriter(b *testing.B) {
	for _, kind := range []string{"json", "text", "logs", "random"} {
		for _, size := range []int{256, 4 << 10, 64 << 10} {
			msgs := flatetest.Corpus(kind, size)
			for _, takeover := range []bool{true, false} {
				mode := "takeover"
				if !takeover {
					mode = "no-takeover"
				}
				prefix := fmt.Sprintf("%s/%d/%s/", kind, size, mode)
				b.Run(prefix+"flate", func(b *testing.B) {
					var buf bytes.Buffer
					buf.Grow(2*size + 1024) // room for any message's output
					fw, _ := stdflate.NewWriter(&buf, stdflate.BestSpeed)
					in, out := 0, 0
					b.SetBytes(int64(size))
					b.ReportAllocs()
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
					b.ReportMetric(float64(out)/float64(in), "ratio")
				})
				for _, bits := range []int{15, 12, 10, 8} {
					b.Run(fmt.Sprintf("%sw%d", prefix, bits), func(b *testing.B) {
						d := NewWriter(bits)
						dst := make([]byte, 0, 2*size+1024)
						d.Flush(d.Append(dst, msgs[len(msgs)-1])) // take the scratch
						d.Reset()
						in, out := 0, 0
						b.SetBytes(int64(size))
						b.ReportAllocs()
						for i := 0; b.Loop(); i++ {
							m := msgs[i%len(msgs)]
							dst = d.Append(dst[:0], m)
							dst = d.Flush(dst)
							if !takeover {
								d.Reset()
							}
							in += len(m)
							out += len(dst)
						}
						b.ReportMetric(float64(out)/float64(in), "ratio")
					})
				}
			}
		}
	}
}

// BenchmarkWriterIdle is BenchmarkWriter for a connection that idles its
// Writer after every message: each message pays for taking a scratch
// from the pool, restoring the history and indexing it, and for giving
// the scratch back.
func BenchmarkWriterIdle(b *testing.B) {
	for _, size := range []int{256, 4 << 10} {
		msgs := flatetest.Corpus("json", size)
		for _, takeover := range []bool{true, false} {
			for _, bits := range []int{15, 12, 10, 8} {
				mode := "takeover"
				if !takeover {
					mode = "no-takeover"
				}
				b.Run(fmt.Sprintf("json/%d/%s/w%d", size, mode, bits), func(b *testing.B) {
					benchIdle(b, msgs, bits, takeover, 1)
				})
				// Two Writers taking turns: each finds the other's
				// scratch in the pool and rebuilds.
				b.Run(fmt.Sprintf("json/%d/%s/w%d/rebuild", size, mode, bits), func(b *testing.B) {
					benchIdle(b, msgs, bits, takeover, 2)
				})
			}
		}
	}
}

func benchIdle(b *testing.B, msgs [][]byte, bits int, takeover bool, n int) {
	var ds []*Writer
	for range n {
		ds = append(ds, NewWriter(bits))
	}
	dst := make([]byte, 0, 2*len(msgs[0])+1024)
	step := func(i int) int {
		d := ds[i%n]
		m := msgs[i%len(msgs)]
		dst = d.Append(dst[:0], m)
		dst = d.Flush(dst)
		if !takeover {
			d.Reset()
		}
		d.Idle()
		return len(m)
	}
	for i := range 4 { // reach the steady state first
		step(i)
	}
	in, out := 0, 0
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		in += step(i)
		out += len(dst)
	}
	b.ReportMetric(float64(out)/float64(in), "ratio")
}

// BenchmarkWriterMemory measures, with the runtime's own count, the heap
// that Writers hold after compressing a 4 KiB message: "active-B/op" while
// they keep their scratch, "idle-B/op" after idle (the pool emptied by two
// collections). Each figure is per Writer, over 64 of them.
func BenchmarkWriterMemory(b *testing.B) {
	msg := flatetest.Corpus("json", 4<<10)[0]
	for _, bits := range []int{8, 10, 12, 15} {
		for _, takeover := range []bool{true, false} {
			mode := "takeover"
			if !takeover {
				mode = "no-takeover"
			}
			b.Run(fmt.Sprintf("w%d/%s", bits, mode), func(b *testing.B) {
				const n = 64
				ds := make([]*Writer, n)
				before := flatetest.LiveHeap()
				for i := range ds {
					ds[i] = NewWriter(bits)
					ds[i].Flush(ds[i].Append(nil, msg))
					if !takeover {
						ds[i].Reset()
					}
				}
				active := flatetest.LiveHeap()
				for _, d := range ds {
					d.Idle()
				}
				idle := flatetest.LiveHeap()
				runtime.KeepAlive(ds)
				for b.Loop() {
				}
				b.ReportMetric(float64(active-before)/n, "active-B/op")
				b.ReportMetric(float64(idle-before)/n, "idle-B/op")
			})
		}
	}
}
