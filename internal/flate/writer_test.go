package flate

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// compressMessages compresses msgs with a fresh Writer, each message in
// pieces of the sizes chunk gives (nil: one write), and returns each
// message's output, 00 00 ff ff included. Without takeover the Writer is
// reset after each message; idleEvery > 0 idles it after every idleEvery
// messages.
func compressMessages(windowBits int, takeover bool, msgs [][]byte, chunk func() int, idleEvery int) [][]byte {
	d := NewWriter(windowBits)
	var outs [][]byte
	for i, m := range msgs {
		var out []byte
		for p := m; len(p) > 0; {
			n := len(p)
			if chunk != nil {
				n = min(n, chunk())
			}
			out = d.Append(out, p[:n])
			p = p[n:]
		}
		out = d.Flush(out)
		outs = append(outs, out)
		if !takeover {
			d.Reset()
		}
		if idleEvery > 0 && (i+1)%idleEvery == 0 {
			d.Idle()
		}
	}
	return outs
}

// checkInflate decodes outs with the reference inflater and with
// compress/flate, both as one stream and message by message from a
// dictionary of exactly the window, and compares with msgs.
func checkInflate(t *testing.T, windowBits int, takeover bool, msgs, outs [][]byte) {
	t.Helper()
	window := 1 << windowBits
	z := &flatetest.Inflater{Window: window}
	var stream, history []byte
	for i, out := range outs {
		if !bytes.HasSuffix(out, []byte("\x00\x00\xff\xff")) {
			t.Fatalf("message %d: output %x does not end with a sync flush", i, out)
		}
		if !takeover {
			z.Out = z.Out[:0]
			history = history[:0]
		}
		got, err := z.Message(out)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, msgs[i]) {
			t.Fatalf("message %d: reference inflater decoded %d bytes %.40q, want %d bytes %.40q", i, len(got), got, len(msgs[i]), msgs[i])
		}

		// As a receiver of RFC 7692 §7.2.2 would: the tail stripped and
		// put back, the history limited to the window.
		dict := history[max(0, len(history)-window):]
		r := stdflate.NewReaderDict(bytes.NewReader(out), dict)
		got = make([]byte, len(msgs[i]))
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("message %d: compress/flate with a %d-byte dictionary: %v", i, len(dict), err)
		}
		if !bytes.Equal(got, msgs[i]) {
			t.Fatalf("message %d: compress/flate decoded %.40q, want %.40q", i, got, msgs[i])
		}
		if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.ErrUnexpectedEOF {
			t.Fatalf("message %d: compress/flate read %d more bytes, %v; want 0, unexpected EOF", i, n, err)
		}
		history = append(history, msgs[i]...)
		stream = append(stream, out...)
	}
	if takeover {
		var all []byte
		for _, m := range msgs {
			all = append(all, m...)
		}
		got := make([]byte, len(all))
		if _, err := io.ReadFull(stdflate.NewReader(bytes.NewReader(stream)), got); err != nil {
			t.Fatalf("compress/flate on the whole stream: %v", err)
		}
		if !bytes.Equal(got, all) {
			t.Fatalf("compress/flate on the whole stream: wrong data")
		}
	}
}

// TestWriterRFC7692Examples checks the bytes of RFC 7692 §7.2.3: "Hello"
// alone is a fixed Huffman block, byte for byte the RFC's; the same again
// with context takeover is one back-reference (the RFC's encoder chose a
// literal and a 4-byte match, we take the whole 5 bytes); an empty message
// is the lone 0x00 of §7.2.3.6.
func TestWriterRFC7692Examples(t *testing.T) {
	t.Parallel()
	const sync = "\x00\x00\xff\xff"
	tests := []struct {
		name     string
		takeover bool
		msgs     []string
		want     []string
	}{
		{"hello", true, []string{"Hello"}, []string{"\xf2\x48\xcd\xc9\xc9\x07\x00" + sync}},
		{"hello twice, takeover", true, []string{"Hello", "Hello"}, []string{"\xf2\x48\xcd\xc9\xc9\x07\x00" + sync, "\x02\x13\x00\x00" + sync}},
		{"hello twice, no takeover", false, []string{"Hello", "Hello"}, []string{"\xf2\x48\xcd\xc9\xc9\x07\x00" + sync, "\xf2\x48\xcd\xc9\xc9\x07\x00" + sync}},
		{"empty", true, []string{"", ""}, []string{"\x00" + sync, "\x00" + sync}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
				var msgs [][]byte
				for _, m := range tt.msgs {
					msgs = append(msgs, []byte(m))
				}
				outs := compressMessages(bits, tt.takeover, msgs, nil, 0)
				for i, out := range outs {
					if string(out) != tt.want[i] {
						t.Errorf("window bits %d, message %d: got %q, want %q", bits, i, out, tt.want[i])
					}
				}
				checkInflate(t, bits, tt.takeover, msgs, outs)
			}
		})
	}
}

// testPayloads returns named message sequences: edge cases, repetition at
// and beyond the window, and data of each kind the benchmarks use.
func testPayloads() []struct {
	name string
	msgs [][]byte
} {
	rng := flatetest.RNG(1)
	period := func(n, p int) []byte { // random bytes repeating every p
		b := flatetest.Random(rng, p)
		for len(b) < n {
			b = append(b, b[len(b)-p])
		}
		return b
	}
	text := flatetest.Text(rng, 50000)
	json := flatetest.JSON(rng, 20000)
	var jsonMsgs [][]byte
	for p := json; len(p) > 0; {
		n := min(len(p), 50+rng.IntN(400))
		jsonMsgs = append(jsonMsgs, p[:n])
		p = p[n:]
	}
	return []struct {
		name string
		msgs [][]byte
	}{
		{"empty", [][]byte{{}, {}, {}}},
		{"one byte", [][]byte{{'a'}, {0}, {0xff}, {'a'}}},
		{"small", [][]byte{[]byte("a"), []byte("ab"), []byte("abc"), []byte("abcd"), []byte("abcde"), {}, []byte("abcdabcdabcd"), []byte("abcde")}},
		{"repetitive", [][]byte{bytes.Repeat([]byte("abc"), 20000), bytes.Repeat([]byte("abc"), 10)}},
		{"long runs", [][]byte{bytes.Repeat([]byte{'x'}, 100000), bytes.Repeat([]byte{'x'}, 300), bytes.Repeat([]byte{0}, 40000)}},
		{"random", [][]byte{flatetest.Random(rng, 70000), flatetest.Random(rng, 100), flatetest.Random(rng, 5000)}},
		{"period 256", [][]byte{period(3000, 256), period(3000, 257)}},
		{"period 1024", [][]byte{period(5000, 1024), period(5000, 1025)}},
		{"period 4096", [][]byte{period(20000, 4096), period(20000, 4097)}},
		{"period 32768", [][]byte{period(80000, 32768), period(80000, 32769)}},
		{"text", [][]byte{text[:40000], text[40000:41000], text[41000:], text[:1000]}},
		{"json", jsonMsgs},
		{"logs", [][]byte{flatetest.Logs(rng, 30000), flatetest.Logs(rng, 3000)}},
		{"mixed", [][]byte{text[:5000], flatetest.Random(rng, 5000), text[:5000], bytes.Repeat([]byte("ab"), 5000), json[:9000]}},
	}
}

// TestWriterRoundTrip compresses every payload with every window size,
// with and without context takeover, in one write per message, in many
// small writes and, for small payloads, a byte at a time, and idled
// between messages; each result must decode, with each back-reference
// inside the window.
func TestWriterRoundTrip(t *testing.T) {
	t.Parallel()
	payloads := testPayloads()
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		for _, takeover := range []bool{true, false} {
			t.Run(fmt.Sprintf("bits=%d/takeover=%t", bits, takeover), func(t *testing.T) {
				t.Parallel()
				for _, p := range payloads {
					total := 0
					for _, m := range p.msgs {
						total += len(m)
					}
					rng := flatetest.RNG(uint64(bits))
					modes := []struct {
						name      string
						chunk     func() int
						idleEvery int
					}{
						{"one write", nil, 0},
						{"small writes", func() int { return 1 + rng.IntN(300) }, 0},
						{"idle after each", func() int { return 1 + rng.IntN(5000) }, 1},
						{"idle every 3", nil, 3},
					}
					if total <= 10000 {
						modes = append(modes, struct {
							name      string
							chunk     func() int
							idleEvery int
						}{"byte writes", func() int { return 1 }, 0})
					}
					for _, m := range modes {
						outs := compressMessages(bits, takeover, p.msgs, m.chunk, m.idleEvery)
						t.Run(p.name+"/"+m.name, func(t *testing.T) {
							checkInflate(t, bits, takeover, p.msgs, outs)
						})
					}
				}
			})
		}
	}
}

// TestWriterWindowLimit feeds random data that repeats with a period of
// exactly the window, and then of one byte more. In the first, the
// repetitions must be found (each is in reach, at distance 2^windowBits);
// in the second there must be next to no matches: the only earlier copy is
// one byte too far.
func TestWriterWindowLimit(t *testing.T) {
	t.Parallel()
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			t.Parallel()
			window := 1 << bits
			rng := flatetest.RNG(uint64(bits))
			for _, takeover := range []bool{true, false} {
				for _, p := range []int{window, window + 1} {
					unit := flatetest.Random(rng, p)
					msg := bytes.Repeat(unit, max(4, 3*blockSize/p))
					// With takeover, the second message finds its copies
					// in the first one's history.
					msgs := [][]byte{msg, msg[:len(msg)/2]}
					outs := compressMessages(bits, takeover, msgs, nil, 0)
					checkInflate(t, bits, takeover, msgs, outs)

					z := &flatetest.Inflater{Window: window}
					for i, out := range outs {
						if !takeover {
							z.Out = z.Out[:0]
						}
						if _, err := z.Message(out); err != nil {
							t.Fatalf("message %d: %v", i, err)
						}
					}
					// Matched bytes out of those that had a copy in reach.
					in := len(msg) + len(msg)/2 - p
					if !takeover {
						in -= p
					}
					if p == window {
						if z.MaxDist != window {
							t.Errorf("period %d, takeover %t: longest distance %d, want %d", p, takeover, z.MaxDist, window)
						}
						// Most, not all: at 2^15 the hash table has half as
						// many slots as the window has positions, and a slot
						// keeps only the newest of them.
						if z.Matched < in/2 {
							t.Errorf("period %d, takeover %t: %d bytes matched of %d; the repetitions were not found", p, takeover, z.Matched, in)
						}
					} else if z.Matched > in/100 {
						t.Errorf("period %d, takeover %t: %d bytes matched of %d; random data has no copy in reach", p, takeover, z.Matched, in)
					}
				}
			}
		})
	}
}

// TestWriterBlockTypes checks that each block takes the form that suits
// it: a short message the fixed codes, text dynamic codes, random bytes a
// stored block; every message then ends with the empty stored block.
func TestWriterBlockTypes(t *testing.T) {
	t.Parallel()
	rng := flatetest.RNG(13)
	tests := []struct {
		name string
		msg  []byte
		want [3]int // stored, fixed, dynamic
	}{
		{"short", []byte("Hello, world"), [3]int{1, 1, 0}},
		{"text", flatetest.Text(rng, 20000), [3]int{1, 0, 1}},
		{"random", flatetest.Random(rng, 20000), [3]int{2, 0, 0}},
		{"text over two blocks", flatetest.Text(rng, blockSize+1000), [3]int{1, 0, 2}},
	}
	for _, tt := range tests {
		out := compressMessages(15, true, [][]byte{tt.msg}, nil, 0)
		z := &flatetest.Inflater{Window: 1 << 15}
		if _, err := z.Message(out[0]); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if z.Blocks != tt.want {
			t.Errorf("%s: blocks (stored, fixed, dynamic) %v, want %v", tt.name, z.Blocks, tt.want)
		}
	}
}

// TestWriterContextTakeover checks that a message repeated with takeover
// comes out as a few back-references into the previous message, and
// without takeover (or after reset, or idle and reset) as big as the first
// time.
func TestWriterContextTakeover(t *testing.T) {
	t.Parallel()
	msg := flatetest.Text(flatetest.RNG(3), 200)
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		d := NewWriter(bits)
		first := len(d.Flush(d.Append(nil, msg)))
		if again := len(d.Flush(d.Append(nil, msg))); again > 10 {
			t.Errorf("window bits %d: the same 200 bytes again with takeover: %d bytes, want at most 10", bits, again)
		}
		d.Idle()
		if again := len(d.Flush(d.Append(nil, msg))); again > 10 {
			t.Errorf("window bits %d: the same 200 bytes after idle: %d bytes, want at most 10", bits, again)
		}
		d.Reset()
		if again := len(d.Flush(d.Append(nil, msg))); again != first {
			t.Errorf("window bits %d: after reset: %d bytes, want %d as the first time", bits, again, first)
		}
		d.Reset()
		d.Idle()
		if again := len(d.Flush(d.Append(nil, msg))); again != first {
			t.Errorf("window bits %d: after reset and idle: %d bytes, want %d as the first time", bits, again, first)
		}
		d.Idle()
		d.Reset()
		if again := len(d.Flush(d.Append(nil, msg))); again != first {
			t.Errorf("window bits %d: after idle and reset: %d bytes, want %d as the first time", bits, again, first)
		}
	}
}

// TestWriterSharedScratch has two Writers take turns, each idling
// after every message, so that each keeps finding the other's scratch in
// the pool and must rebuild its own state from the history it kept.
func TestWriterSharedScratch(t *testing.T) {
	t.Parallel()
	rng := flatetest.RNG(14)
	for _, bits := range []int{9, 12, 15} {
		ds := [2]*Writer{NewWriter(bits), NewWriter(bits)}
		var msgs, outs [2][][]byte
		var last [2]*scratch // the scratch each used last
		shared := 0
		for i := range 60 {
			d := ds[i%2]
			var m []byte
			switch i % 3 {
			case 0:
				m = flatetest.JSON(rng, 1+rng.IntN(3000))
			case 1:
				m = flatetest.Text(rng, 1+rng.IntN(3000))
			default:
				m = flatetest.Logs(rng, 1+rng.IntN(3000))
			}
			out := d.Append(nil, m)
			if d.sc == last[(i+1)%2] {
				shared++
			}
			out = d.Flush(out)
			last[i%2] = d.sc
			d.Idle()
			msgs[i%2] = append(msgs[i%2], m)
			outs[i%2] = append(outs[i%2], out)
		}
		for j := range ds {
			checkInflate(t, bits, true, msgs[j], outs[j])
		}
		if shared == 0 {
			t.Errorf("window bits %d: the Writers never took each other's scratch", bits)
		}
	}
}

// TestWriterIdleMidMessage checks that idle leaves a message being
// written alone, and that reset drops the input of an unfinished one.
func TestWriterIdleMidMessage(t *testing.T) {
	t.Parallel()
	rng := flatetest.RNG(4)
	big := flatetest.Text(rng, 3*blockSize+100)
	d := NewWriter(12)
	out := d.Append(nil, big[:100])
	d.Idle()
	if d.sc == nil {
		t.Fatal("idle with input pending gave up the scratch")
	}
	out = d.Append(out, big[100:])
	if len(out) == 0 {
		t.Fatal("no blocks out after three blocks of input")
	}
	d.Idle()
	if d.sc == nil {
		t.Fatal("idle after some blocks of a message gave up the scratch")
	}
	out = d.Flush(out)
	checkInflate(t, 12, true, [][]byte{big}, [][]byte{out})

	// A message cut short by reset leaves nothing behind.
	d = NewWriter(12)
	d.Append(nil, big[:5000])
	d.Reset()
	out = d.Flush(d.Append(nil, []byte("Hello")))
	if want := "\xf2\x48\xcd\xc9\xc9\x07\x00\x00\x00\xff\xff"; string(out) != want {
		t.Errorf("after reset mid-message: got %q, want %q", out, want)
	}
}

// TestWriterStaleBytes checks that what a scratch's buffer holds past the
// input (bytes of earlier messages or of other Writers, and the slack that
// 8-byte loads read into) does not change the output: the same messages
// give the same bytes from a buffer of zeros and from one of noise.
func TestWriterStaleBytes(t *testing.T) {
	t.Parallel()
	rng := flatetest.RNG(11)
	var msgs [][]byte
	for _, n := range []int{5, 1, 6, 7, 8, 9, 300, 4, 2000, 12, blockSize + 7} {
		msgs = append(msgs, flatetest.JSON(rng, n))
	}
	// Short messages, shorter than a hash, of a few letters: the
	// positions before each are hashed once it arrives.
	for range 200 {
		m := make([]byte, 1+rng.IntN(6))
		for i := range m {
			m[i] = "ab"[rng.IntN(2)]
		}
		msgs = append(msgs, m)
	}
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		for _, takeover := range []bool{true, false} {
			var outs [2][]byte
			for k, fill := range []func([]byte){func(b []byte) { clear(b) }, func(b []byte) { copy(b, flatetest.Random(rng, len(b))) }} {
				d := NewWriter(bits)
				d.activate()
				fill(d.sc.full)
				clear(d.sc.table)
				for _, m := range msgs {
					for p := m; len(p) > 0; p = p[min(3, len(p)):] { // the end of the input moves
						outs[k] = d.Append(outs[k], p[:min(3, len(p))])
					}
					outs[k] = d.Flush(outs[k])
					if !takeover {
						d.Reset()
					}
				}
			}
			if !bytes.Equal(outs[0], outs[1]) {
				t.Errorf("window bits %d, takeover %t: the output depends on the stale bytes of the buffer", bits, takeover)
			}
		}
	}
}

// TestNewWriterWindowBits checks that window bits are clamped to 8..15.
func TestNewWriterWindowBits(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ bits, window int }{{0, 256}, {7, 256}, {8, 256}, {9, 512}, {15, 32768}, {16, 32768}} {
		if got := NewWriter(tt.bits).window; got != tt.window {
			t.Errorf("NewWriter(%d): window %d, want %d", tt.bits, got, tt.window)
		}
	}
}

// writerBytes returns the bytes a Writer holds of its own, and those
// of the scratch it has borrowed (none while idle).
func writerBytes(d *Writer) (own, borrowed int) {
	own = int(reflect.TypeFor[Writer]().Size()) + cap(d.hist)
	if d.id != nil {
		own++
	}
	if sc := d.sc; sc != nil {
		borrowed = int(reflect.TypeFor[scratch]().Size()) + len(sc.full) +
			cap(sc.table)*int(reflect.TypeOf(sc.table).Elem().Size()) + int(reflect.TypeFor[lzSeq]().Size())*cap(sc.seqs) + 2*cap(sc.huff.clSyms)
	}
	return own, borrowed
}

// TestWriterMemory checks what a Writer keeps while idle: with
// context takeover the window and a small struct, without it the struct
// alone; and that it gives back its scratch.
func TestWriterMemory(t *testing.T) {
	t.Parallel()
	msg := flatetest.JSON(flatetest.RNG(10), 40000)
	for _, bits := range []int{8, 10, 12, 15} {
		for _, takeover := range []bool{true, false} {
			d := NewWriter(bits)
			if own, borrowed := writerBytes(d); own > 256 || borrowed != 0 {
				t.Errorf("window bits %d: new Writer holds %d bytes and a scratch of %d", bits, own, borrowed)
			}
			for range 3 {
				d.Flush(d.Append(nil, msg))
				if !takeover {
					d.Reset()
				}
				_, active := writerBytes(d)
				d.Idle()
				own, borrowed := writerBytes(d)
				want := 256
				if takeover {
					want += 1 << bits
				}
				if own > want || borrowed != 0 {
					t.Errorf("window bits %d, takeover %t: idle Writer holds %d bytes (want at most %d) and a scratch of %d", bits, takeover, own, want, borrowed)
				}
				t.Logf("window bits %d, takeover %t: idle %d bytes; active %d more", bits, takeover, own, active)
			}
		}
	}
}

// FuzzWriter compresses arbitrary messages with an arbitrary window and
// checks that compress/flate and the reference inflater decode them, every
// back-reference within the window. lens cuts data into messages: each of
// its bytes b makes a message of b*b/2 bytes (less if data runs out),
// written in pieces of 1+b%61 bytes; the Writer idles after the message
// when b%5 is 0; the rest of data is the last message.
func FuzzWriter(f *testing.F) {
	rng := flatetest.RNG(8)
	f.Add(uint8(7), true, []byte{}, []byte("Hello"))
	f.Add(uint8(0), true, []byte{10, 0, 200}, flatetest.Text(rng, 300))
	f.Add(uint8(2), false, []byte{255, 3, 255}, flatetest.Random(rng, 400))
	f.Add(uint8(4), true, []byte{100, 100, 5, 250}, bytes.Repeat([]byte{'a'}, 700))
	f.Fuzz(func(t *testing.T, bits uint8, takeover bool, lens, data []byte) {
		windowBits := MinWindowBits + int(bits%8)
		d := NewWriter(windowBits)
		var msgs, outs [][]byte
		add := func(m []byte, piece int, idle bool) {
			var out []byte
			for p := m; len(p) > 0; p = p[min(piece, len(p)):] {
				out = d.Append(out, p[:min(piece, len(p))])
			}
			out = d.Flush(out)
			if !takeover {
				d.Reset()
			}
			if idle {
				d.Idle()
			}
			msgs, outs = append(msgs, m), append(outs, out)
		}
		for _, b := range lens {
			n := min(int(b)*int(b)/2, len(data))
			add(data[:n], 1+int(b)%61, b%5 == 0)
			data = data[n:]
		}
		add(data, len(data)+1, false)
		checkInflate(t, windowBits, takeover, msgs, outs)
	})
}

// TestWriterRemember: a message compressed by another Writer from no
// history, then remembered, is history the next message refers to, as
// the decoder that received both sees it; whether the Writer is active or
// idle, and for messages longer than the window.
func TestWriterRemember(t *testing.T) {
	t.Parallel()
	rng := flatetest.RNG(7)
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		for _, idle := range []bool{false, true} {
			for _, size := range []int{200, 1<<bits + 100} {
				m1 := flatetest.Text(rng, 300)
				m2 := flatetest.Text(rng, size)
				m3 := m2[len(m2)-min(len(m2), 1<<bits)+50:] // refers back into m2 only
				z := &flatetest.Inflater{Window: 1 << bits}
				w := NewWriter(bits)
				out := w.Flush(w.Append(nil, m1))
				if got, err := z.Message(out); err != nil || !bytes.Equal(got, m1) {
					t.Fatalf("bits %d: first message: %v", bits, err)
				}
				p := NewWriter(bits) // compresses m2 from no history, for everyone
				if got, err := z.Message(p.Flush(p.Append(nil, m2))); err != nil || !bytes.Equal(got, m2) {
					t.Fatalf("bits %d: prepared message: %v", bits, err)
				}
				if idle {
					w.Idle()
				}
				w.Remember(m2)
				out = w.Flush(w.Append(nil, m3))
				got, err := z.Message(out)
				if err != nil || !bytes.Equal(got, m3) {
					t.Fatalf("bits %d idle %v size %d: message after Remember decodes to %d bytes, %v", bits, idle, size, len(got), err)
				}
				// As small as when the Writer compressed m2 itself. Active,
				// Remember enters m2 in the hash table as compressing it
				// would, but of an m2 longer than the window only the last
				// window bytes, where the parse may fall differently: up
				// to a fifth bigger. After idle, Remember makes the next
				// message rebuild the hash table from the history, as the
				// reference does too once its scratch no longer matches
				// (gen moved on): the same history, the same output.
				ref := NewWriter(bits)
				ref.Flush(ref.Append(nil, m1))
				ref.Flush(ref.Append(nil, m2))
				if idle {
					ref.Idle()
					ref.gen++
				}
				want := len(ref.Flush(ref.Append(nil, m3)))
				limit := want + want/5 + 4
				if idle {
					limit = want
				}
				if len(out) > limit || len(out) > len(m3)/4 {
					t.Errorf("bits %d idle %v size %d: %d bytes of remembered text took %d bytes, want about %d as with m2 compressed by the Writer", bits, idle, size, len(m3), len(out), want)
				}
			}
		}
	}
}
