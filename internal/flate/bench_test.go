package flate

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
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

// readerMessages returns consecutive JSON-like messages of size bytes,
// about 2 MiB of them, and each compressed as a peer would send it, by
// compress/flate at its default level: one stream with context takeover
// (each message ending with a sync flush), or a stream per message.
func readerMessages(size int, takeover bool) (msgs, outs [][]byte) {
	data := flatetest.JSON(flatetest.RNG(9), max(2<<20, 4*size))
	for p := data; len(p) >= size; p = p[size:] {
		msgs = append(msgs, p[:size])
	}
	fw, _ := stdflate.NewWriter(io.Discard, stdflate.DefaultCompression)
	return msgs, stdflateMessages(fw, msgs, takeover)
}

// BenchmarkReader decodes one message per iteration, side by side with
// compress/flate used as a connection would use it: a pooled reader reset
// for each message, with the last 32 KiB of the earlier messages as its
// dictionary under context takeover. The throughput is of decoded bytes;
// "cpu-MB/s" is the same per second of the process's CPU time (run with
// -cpu 1 for it to be the benchmark's alone), which other work on the
// machine disturbs less than the clock.
func BenchmarkReader(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 1 << 20} {
		for _, takeover := range []bool{true, false} {
			mode := "takeover"
			if !takeover {
				mode = "no-takeover"
			}
			msgs, outs := readerMessages(size, takeover)
			prefix := fmt.Sprintf("json/%d/%s/", size, mode)
			b.Run(prefix+"flate", func(b *testing.B) {
				var src bytes.Reader
				fr := stdflate.NewReader(&src)
				dst := make([]byte, size)
				hist := make([]byte, 0, 64<<10)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				defer reportCPU(b, size)()
				for i := 0; b.Loop(); i++ {
					k := i % len(msgs)
					if k == 0 {
						hist = hist[:0]
					}
					src.Reset(outs[k])
					var dict []byte
					if takeover {
						dict = hist[max(0, len(hist)-32<<10):]
					}
					fr.(stdflate.Resetter).Reset(&src, dict)
					if _, err := io.ReadFull(fr, dst); err != nil {
						b.Fatal(err)
					}
					if takeover {
						hist = append(hist, dst...)
						if len(hist) > 32<<10 {
							hist = append(hist[:0], hist[len(hist)-32<<10:]...)
						}
					}
				}
			})
			b.Run(prefix+"ours", func(b *testing.B) {
				var src bytes.Reader
				r := NewReader(&src, 15, takeover)
				dst := make([]byte, size+1)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				defer reportCPU(b, size)()
				for i := 0; b.Loop(); i++ {
					k := i % len(msgs)
					if k == 0 {
						r.Reset()
					}
					src.Reset(outs[k])
					n, err := io.ReadFull(r, dst)
					if n != size || err != io.ErrUnexpectedEOF {
						b.Fatalf("message %d: %d bytes, %v", k, n, err)
					}
				}
			})
		}
	}
}

// reportCPU starts measuring the CPU time of a benchmark that handles
// size bytes per operation; the function it returns reports it.
func reportCPU(b *testing.B, size int) func() {
	start := processCPU()
	return func() {
		if cpu := processCPU() - start; cpu > 0 && b.N > 0 {
			b.ReportMetric(float64(size)*float64(b.N)/cpu.Seconds()/1e6, "cpu-MB/s")
		}
	}
}

// BenchmarkPause reads a 16 KiB message that arrives in pieces of a TCP
// segment's size, each after the source had no input at hand: the
// reader waits (ErrInputPending), or pauses there as well, giving its
// working state back and rebuilding a dynamic block's tables when it
// resumes. The difference is what Pause costs.
func BenchmarkPause(b *testing.B) {
	const size, piece = 16 << 10, 1460
	msgs, outs := readerMessages(size, false)
	for _, pause := range []bool{false, true} {
		name := "wait"
		if pause {
			name = "pause"
		}
		b.Run(name, func(b *testing.B) {
			src := &msgSource{chunk: func() int { return piece }, pend: true}
			r := NewReader(src, 15, false)
			dst := make([]byte, size+1)
			b.SetBytes(size)
			b.ReportAllocs()
			pauses := 0
			for i := 0; b.Loop(); i++ {
				src.next(outs[i%len(msgs)], false)
				n := 0
				for {
					m, err := r.Read(dst[n:])
					n += m
					if err == ErrInputPending {
						if pause {
							r.Pause()
							pauses++
						}
						continue
					}
					if err == nil {
						continue // a short Read: the input ran out after some output
					}
					if n != size || err != io.ErrUnexpectedEOF {
						b.Fatalf("%d bytes, %v", n, err)
					}
					break
				}
			}
			b.ReportMetric(float64(pauses)/float64(b.N), "pauses/op")
		})
	}
}
