package websocket

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// ---- A checking inflater ----
//
// testInflater decodes the output of a deflater with nothing but RFC 1951,
// and checks what compress/flate would let pass: every back-reference lies
// within the window the deflater was given, every block is non-final, every
// Huffman code is complete (as both compress/flate and zlib demand, save the
// one-code distance tree of §3.2.7), and each message ends on a byte
// boundary with an empty stored block (RFC 7692 §7.2.1).

type testInflater struct {
	window  int
	out     []byte // everything decoded so far, across messages
	maxDist int    // the longest distance seen
	matched int    // bytes decoded from back-references
	blocks  [3]int // blocks seen, by type: stored, fixed, dynamic

	in  []byte
	bit int // position in in, in bits
}

var errTestInflate = errors.New("test inflater")

func (z *testInflater) fail(format string, args ...any) {
	panic(fmt.Errorf("%w: "+format, append([]any{errTestInflate}, args...)...))
}

func (z *testInflater) bits(n int) int {
	v := 0
	for i := range n {
		if z.bit>>3 >= len(z.in) {
			z.fail("input ends inside a block")
		}
		v |= int(z.in[z.bit>>3]>>(z.bit&7)&1) << i
		z.bit++
	}
	return v
}

// testHuffman is a canonical code kept as counts per length and the
// symbols in code order.
type testHuffman struct {
	count [16]int
	syms  []int
}

func (z *testInflater) code(lens []int, name string, oneCodeOK bool) *testHuffman {
	h := &testHuffman{}
	for _, l := range lens {
		h.count[l]++
	}
	h.count[0] = 0
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - h.count[l]
		if left < 0 {
			z.fail("%s code is over-subscribed", name)
		}
	}
	used := len(lens) - func() int {
		n := 0
		for _, l := range lens {
			if l == 0 {
				n++
			}
		}
		return n
	}()
	if left != 0 && !(oneCodeOK && (used == 0 || used == 1 && h.count[1] == 1)) {
		z.fail("%s code is incomplete: lengths %v", name, lens)
	}
	for l := 1; l < 16; l++ {
		for s, sl := range lens {
			if sl == l {
				h.syms = append(h.syms, s)
			}
		}
	}
	return h
}

func (z *testInflater) decode(h *testHuffman) int {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		code |= z.bits(1)
		if n := h.count[l]; code-first < n {
			return h.syms[index+code-first]
		}
		index += h.count[l]
		first = (first + h.count[l]) << 1
		code <<= 1
	}
	z.fail("no symbol for code")
	return 0
}

// message decodes one message's compressed bytes, 00 00 ff ff included,
// and returns what it decodes to.
func (z *testInflater) message(p []byte) (msg []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(error)
			if !ok || !errors.Is(e, errTestInflate) {
				panic(r)
			}
			err = e
		}
	}()
	z.in, z.bit = p, 0
	start := len(z.out)
	for {
		if z.bits(1) == 1 {
			z.fail("final block")
		}
		typ := z.bits(2)
		switch typ {
		case 0:
			z.bit = (z.bit + 7) &^ 7
			n, nn := z.bits(16), z.bits(16)
			if n != nn^0xffff {
				z.fail("stored LEN %#x NLEN %#x", n, nn)
			}
			if z.bit>>3+n > len(z.in) {
				z.fail("stored block runs past the input")
			}
			z.out = append(z.out, z.in[z.bit>>3:z.bit>>3+n]...)
			z.bit += 8 * n
			z.blocks[0]++
			if n == 0 && z.bit == 8*len(z.in) {
				return z.out[start:], nil
			}
			continue
		case 1:
			lens := make([]int, 288)
			for i := range lens {
				lens[i] = int(fixedLitLen(i))
			}
			lens[286], lens[287] = 8, 8
			dl := make([]int, 30)
			for i := range dl {
				dl[i] = 5
			}
			z.blocks[1]++
			z.symbols(z.code(lens, "fixed literal", false), z.code(append(dl, 5, 5), "fixed distance", false))
		case 2:
			nlit, ndist, ncl := z.bits(5)+257, z.bits(5)+1, z.bits(4)+4
			if nlit > 286 || ndist > 30 {
				z.fail("HLIT %d HDIST %d", nlit, ndist)
			}
			cl := make([]int, 19)
			for _, s := range deflateCodeLenOrder[:ncl] {
				cl[s] = z.bits(3)
			}
			clh := z.code(cl, "code length", false)
			var lens []int
			for len(lens) < nlit+ndist {
				s := z.decode(clh)
				switch {
				case s < 16:
					lens = append(lens, s)
				case s == 16:
					if len(lens) == 0 {
						z.fail("repeat with no previous length")
					}
					prev := lens[len(lens)-1]
					for range 3 + z.bits(2) {
						lens = append(lens, prev)
					}
				case s == 17:
					lens = append(lens, make([]int, 3+z.bits(3))...)
				default:
					lens = append(lens, make([]int, 11+z.bits(7))...)
				}
			}
			if len(lens) != nlit+ndist {
				z.fail("code lengths overrun: %d for %d", len(lens), nlit+ndist)
			}
			if lens[256] == 0 {
				z.fail("no end-of-block code")
			}
			z.blocks[2]++
			z.symbols(z.code(lens[:nlit], "literal/length", false), z.code(lens[nlit:], "distance", true))
		default:
			z.fail("block type 3")
		}
	}
}

var testLenBase = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
var testLenExtra = [29]int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
var testDistBase = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
var testDistExtra = [30]int{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

func (z *testInflater) symbols(lit, dist *testHuffman) {
	for {
		s := z.decode(lit)
		switch {
		case s < 256:
			z.out = append(z.out, byte(s))
			continue
		case s == 256:
			return
		case s > 285:
			z.fail("length symbol %d", s)
		}
		s -= 257
		n := testLenBase[s] + z.bits(testLenExtra[s])
		if len(dist.syms) == 0 {
			z.fail("match in a block without distance codes")
		}
		ds := z.decode(dist)
		if ds > 29 {
			z.fail("distance symbol %d", ds)
		}
		d := testDistBase[ds] + z.bits(testDistExtra[ds])
		if d > z.window {
			z.fail("distance %d beyond the window of %d", d, z.window)
		}
		if d > len(z.out) {
			z.fail("distance %d before the start of the stream (%d bytes)", d, len(z.out))
		}
		z.maxDist = max(z.maxDist, d)
		z.matched += n
		for range n {
			z.out = append(z.out, z.out[len(z.out)-d])
		}
	}
}

// TestDeflateTestInflater checks that the checking inflater catches what it
// is there to catch, on streams from compress/flate: a distance beyond the
// window, a final block, a message cut short.
func TestDeflateTestInflater(t *testing.T) {
	t.Parallel()
	unit := randomPayload(payloadRNG(12), 300)
	data := bytes.Repeat(unit, 10)
	stream := func(final bool) []byte {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, flate.BestSpeed)
		w.Write(data)
		if final {
			w.Close()
		} else {
			w.Flush()
		}
		return b.Bytes()
	}
	tests := []struct {
		name   string
		window int
		in     []byte
		want   string // in the error; "" for none
	}{
		{"in window", 32768, stream(false), ""},
		{"beyond window", 256, stream(false), "beyond the window of 256"},
		{"final block", 32768, stream(true), "final block"},
		{"cut short", 32768, stream(false)[:100], "input ends inside a block"},
	}
	for _, tt := range tests {
		z := &testInflater{window: tt.window}
		got, err := z.message(tt.in)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want == "" && !bytes.Equal(got, data):
			t.Errorf("%s: decoded %d bytes, not the input", tt.name, len(got))
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.want)
		}
	}
}

// ---- Payloads ----

// payloadWords is a vocabulary for English-like text, most common first.
var payloadWords = strings.Fields(`the of and to a in is that it was for on are as with his they
at be this from have or by one had not but what all were when we there can an your which
their said if do will each about how up out them then she many some so these would other into
has more her two like him see time could no make than first been its who now people my made
over did down only way find use may water long little very after words called just where most
know get through back much before go good new write our used me man too any day same right
look think also around another came come work three word must because does part even place
well such here take why things help put years different away again off went old number great
tell men say small every found still between name should home big give air line set own under
read last never us left end along while might next sound below saw something thought both few
those always looked show large often together asked house world going want school important
until form food keep children feet land side without boy once animals life enough took sometimes
four head above kind began almost live page got earth need far hand high year mother light
parts country father let night following picture being study second eyes soon times story boys
since white days ever paper hard near sentence better best across during today others however
sure means knew try told young miles sun ways thing whole hear example heard several change
answer room sea against top turned learn point city play toward five using himself usually`)

// textPayload returns n bytes of English-like text: sentences of words drawn
// with falling frequency, with capitals, commas and paragraphs.
func textPayload(rng *rand.Rand, n int) []byte {
	var b []byte
	sentence := 0
	for len(b) < n {
		words := 6 + rng.IntN(14)
		for i := range words {
			// Squaring a uniform draw favours the first words, roughly
			// as word frequencies fall off in English.
			f := rng.Float64()
			w := payloadWords[int(f*f*float64(len(payloadWords)))]
			if i == 0 {
				b = append(b, strings.ToUpper(w[:1])...)
				w = w[1:]
			} else {
				b = append(b, ' ')
			}
			b = append(b, w...)
			if i > 2 && i < words-2 && rng.IntN(9) == 0 {
				b = append(b, ',')
			}
		}
		b = append(b, '.')
		sentence++
		if sentence%5 == 0 {
			b = append(b, '\n', '\n')
		} else {
			b = append(b, ' ')
		}
	}
	return b[:n]
}

var payloadNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter"}

// jsonPayload returns n bytes of a stream of JSON messages such as a chat or
// market data service sends, one object per line.
func jsonPayload(rng *rand.Rand, n int) []byte {
	var b []byte
	id := 100000 + rng.IntN(900000)
	for len(b) < n {
		id += 1 + rng.IntN(3)
		switch rng.IntN(3) {
		case 0:
			b = fmt.Appendf(b, `{"type":"message","id":%d,"channel":"#general","user":{"id":%d,"name":%q,"online":%t},"text":%q,"ts":"2024-05-%02dT%02d:%02d:%02d.%03dZ","reactions":[]}`,
				id, 1000+rng.IntN(64), payloadNames[rng.IntN(len(payloadNames))], rng.IntN(2) == 0,
				textPayload(rng, 20+rng.IntN(100)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1000))
		case 1:
			b = fmt.Appendf(b, `{"type":"trade","id":%d,"symbol":%q,"price":%d.%02d,"size":%d,"side":%q,"ts":%d}`,
				id, []string{"BTC-USD", "ETH-USD", "SOL-USD", "EUR-USD"}[rng.IntN(4)], 100+rng.IntN(60000), rng.IntN(100),
				1+rng.IntN(500), []string{"buy", "sell"}[rng.IntN(2)], 1714550000000+int64(id)*17)
		default:
			b = fmt.Appendf(b, `{"type":"presence","id":%d,"user":%q,"status":%q,"devices":[{"kind":"web","version":"3.%d.%d"},{"kind":"mobile","version":"2.%d.0"}]}`,
				id, payloadNames[rng.IntN(len(payloadNames))], []string{"online", "away", "offline"}[rng.IntN(3)], rng.IntN(20), rng.IntN(10), rng.IntN(9))
		}
		b = append(b, '\n')
	}
	return b[:n]
}

// logPayload returns n bytes of web server log lines.
func logPayload(rng *rand.Rand, n int) []byte {
	var b []byte
	paths := []string{"/api/v1/users/%d", "/api/v1/orders/%d/items", "/static/js/app.%x.js", "/healthz", "/ws/chat?room=%d", "/api/v1/search?q=term%d&page=2"}
	levels := []string{"INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR"}
	sec := 0
	for len(b) < n {
		sec += rng.IntN(3)
		b = fmt.Appendf(b, "2024-05-01T12:%02d:%02d.%03dZ %-5s http: %s ", sec/60%60, sec%60, rng.IntN(1000),
			levels[rng.IntN(len(levels))], []string{"GET", "GET", "POST", "PUT"}[rng.IntN(4)])
		b = fmt.Appendf(b, paths[rng.IntN(len(paths))], rng.IntN(5000))
		b = fmt.Appendf(b, " status=%d bytes=%d dur=%d.%03dms ip=10.%d.%d.%d req=%08x\n",
			[]int{200, 200, 200, 201, 304, 404, 500}[rng.IntN(7)], rng.IntN(20000), rng.IntN(40), rng.IntN(1000),
			rng.IntN(4), rng.IntN(256), rng.IntN(256), rng.Uint32())
	}
	return b[:n]
}

func randomPayload(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func payloadRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// ---- Helpers ----

// deflateMessages compresses msgs with a fresh deflater, each message in
// pieces of the sizes chunk gives (nil: one write), and returns each
// message's output, 00 00 ff ff included. Without takeover the deflater is
// reset after each message; idleEvery > 0 idles it after every idleEvery
// messages.
func deflateMessages(windowBits int, takeover bool, msgs [][]byte, chunk func() int, idleEvery int) [][]byte {
	d := newDeflater(windowBits)
	var outs [][]byte
	for i, m := range msgs {
		var out []byte
		for p := m; len(p) > 0; {
			n := len(p)
			if chunk != nil {
				n = min(n, chunk())
			}
			out = d.write(out, p[:n])
			p = p[n:]
		}
		out = d.flush(out)
		outs = append(outs, out)
		if !takeover {
			d.reset()
		}
		if idleEvery > 0 && (i+1)%idleEvery == 0 {
			d.idle()
		}
	}
	return outs
}

// checkInflate decodes outs with the checking inflater and with
// compress/flate, both as one stream and message by message from a
// dictionary of exactly the window, and compares with msgs.
func checkInflate(t *testing.T, windowBits int, takeover bool, msgs, outs [][]byte) {
	t.Helper()
	window := 1 << windowBits
	z := &testInflater{window: window}
	var stream, history []byte
	for i, out := range outs {
		if !bytes.HasSuffix(out, []byte("\x00\x00\xff\xff")) {
			t.Fatalf("message %d: output %x does not end with a sync flush", i, out)
		}
		if !takeover {
			z.out = z.out[:0]
			history = history[:0]
		}
		got, err := z.message(out)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, msgs[i]) {
			t.Fatalf("message %d: checking inflater decoded %d bytes %.40q, want %d bytes %.40q", i, len(got), got, len(msgs[i]), msgs[i])
		}

		// As a receiver of RFC 7692 §7.2.2 would: the tail stripped and
		// put back, the history limited to the window.
		dict := history[max(0, len(history)-window):]
		r := flate.NewReaderDict(bytes.NewReader(out), dict)
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
		if _, err := io.ReadFull(flate.NewReader(bytes.NewReader(stream)), got); err != nil {
			t.Fatalf("compress/flate on the whole stream: %v", err)
		}
		if !bytes.Equal(got, all) {
			t.Fatalf("compress/flate on the whole stream: wrong data")
		}
	}
}

// ---- Tests ----

// TestDeflaterRFC7692Examples checks the bytes of RFC 7692 §7.2.3: "Hello"
// alone is a fixed Huffman block, byte for byte the RFC's; the same again
// with context takeover is one back-reference (the RFC's encoder chose a
// literal and a 4-byte match, we take the whole 5 bytes); an empty message
// is the lone 0x00 of §7.2.3.6.
func TestDeflaterRFC7692Examples(t *testing.T) {
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
			for bits := deflateMinWindowBits; bits <= deflateMaxWindowBits; bits++ {
				var msgs [][]byte
				for _, m := range tt.msgs {
					msgs = append(msgs, []byte(m))
				}
				outs := deflateMessages(bits, tt.takeover, msgs, nil, 0)
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

// deflatePayloads returns named message sequences: edge cases, repetition at
// and beyond the window, and data of each kind the benchmarks use.
func deflatePayloads() []struct {
	name string
	msgs [][]byte
} {
	rng := payloadRNG(1)
	period := func(n, p int) []byte { // random bytes repeating every p
		b := randomPayload(rng, p)
		for len(b) < n {
			b = append(b, b[len(b)-p])
		}
		return b
	}
	text := textPayload(rng, 50000)
	json := jsonPayload(rng, 20000)
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
		{"random", [][]byte{randomPayload(rng, 70000), randomPayload(rng, 100), randomPayload(rng, 5000)}},
		{"period 256", [][]byte{period(3000, 256), period(3000, 257)}},
		{"period 1024", [][]byte{period(5000, 1024), period(5000, 1025)}},
		{"period 4096", [][]byte{period(20000, 4096), period(20000, 4097)}},
		{"period 32768", [][]byte{period(80000, 32768), period(80000, 32769)}},
		{"text", [][]byte{text[:40000], text[40000:41000], text[41000:], text[:1000]}},
		{"json", jsonMsgs},
		{"logs", [][]byte{logPayload(rng, 30000), logPayload(rng, 3000)}},
		{"mixed", [][]byte{text[:5000], randomPayload(rng, 5000), text[:5000], bytes.Repeat([]byte("ab"), 5000), json[:9000]}},
	}
}

// TestDeflaterRoundTrip compresses every payload with every window size,
// with and without context takeover, in one write per message, in many
// small writes and, for small payloads, a byte at a time, and idled
// between messages; each result must decode, with each back-reference
// inside the window.
func TestDeflaterRoundTrip(t *testing.T) {
	t.Parallel()
	payloads := deflatePayloads()
	for bits := deflateMinWindowBits; bits <= deflateMaxWindowBits; bits++ {
		for _, takeover := range []bool{true, false} {
			t.Run(fmt.Sprintf("bits=%d/takeover=%t", bits, takeover), func(t *testing.T) {
				t.Parallel()
				for _, p := range payloads {
					total := 0
					for _, m := range p.msgs {
						total += len(m)
					}
					rng := payloadRNG(uint64(bits))
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
						outs := deflateMessages(bits, takeover, p.msgs, m.chunk, m.idleEvery)
						t.Run(p.name+"/"+m.name, func(t *testing.T) {
							checkInflate(t, bits, takeover, p.msgs, outs)
						})
					}
				}
			})
		}
	}
}

// TestDeflaterWindowLimit feeds random data that repeats with a period of
// exactly the window, and then of one byte more. In the first, the
// repetitions must be found (each is in reach, at distance 2^windowBits);
// in the second there must be next to no matches: the only earlier copy is
// one byte too far.
func TestDeflaterWindowLimit(t *testing.T) {
	t.Parallel()
	for bits := deflateMinWindowBits; bits <= deflateMaxWindowBits; bits++ {
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			t.Parallel()
			window := 1 << bits
			rng := payloadRNG(uint64(bits))
			for _, takeover := range []bool{true, false} {
				for _, p := range []int{window, window + 1} {
					unit := randomPayload(rng, p)
					msg := bytes.Repeat(unit, max(4, 3*deflateBlockSize/p))
					// With takeover, the second message finds its copies
					// in the first one's history.
					msgs := [][]byte{msg, msg[:len(msg)/2]}
					outs := deflateMessages(bits, takeover, msgs, nil, 0)
					checkInflate(t, bits, takeover, msgs, outs)

					z := &testInflater{window: window}
					for i, out := range outs {
						if !takeover {
							z.out = z.out[:0]
						}
						if _, err := z.message(out); err != nil {
							t.Fatalf("message %d: %v", i, err)
						}
					}
					// Matched bytes out of those that had a copy in reach.
					in := len(msg) + len(msg)/2 - p
					if !takeover {
						in -= p
					}
					if p == window {
						if z.maxDist != window {
							t.Errorf("period %d, takeover %t: longest distance %d, want %d", p, takeover, z.maxDist, window)
						}
						// Most, not all: at 2^15 the hash table has half as
						// many slots as the window has positions, and a slot
						// keeps only the newest of them.
						if z.matched < in/2 {
							t.Errorf("period %d, takeover %t: %d bytes matched of %d; the repetitions were not found", p, takeover, z.matched, in)
						}
					} else if z.matched > in/100 {
						t.Errorf("period %d, takeover %t: %d bytes matched of %d; random data has no copy in reach", p, takeover, z.matched, in)
					}
				}
			}
		})
	}
}

// TestDeflaterBlockTypes checks that each block takes the form that suits
// it: a short message the fixed codes, text dynamic codes, random bytes a
// stored block; every message then ends with the empty stored block.
func TestDeflaterBlockTypes(t *testing.T) {
	t.Parallel()
	rng := payloadRNG(13)
	tests := []struct {
		name string
		msg  []byte
		want [3]int // stored, fixed, dynamic
	}{
		{"short", []byte("Hello, world"), [3]int{1, 1, 0}},
		{"text", textPayload(rng, 20000), [3]int{1, 0, 1}},
		{"random", randomPayload(rng, 20000), [3]int{2, 0, 0}},
		{"text over two blocks", textPayload(rng, deflateBlockSize+1000), [3]int{1, 0, 2}},
	}
	for _, tt := range tests {
		out := deflateMessages(15, true, [][]byte{tt.msg}, nil, 0)
		z := &testInflater{window: 1 << 15}
		if _, err := z.message(out[0]); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if z.blocks != tt.want {
			t.Errorf("%s: blocks (stored, fixed, dynamic) %v, want %v", tt.name, z.blocks, tt.want)
		}
	}
}

// TestDeflaterContextTakeover checks that a message repeated with takeover
// comes out as a few back-references into the previous message, and
// without takeover (or after reset, or idle and reset) as big as the first
// time.
func TestDeflaterContextTakeover(t *testing.T) {
	t.Parallel()
	msg := textPayload(payloadRNG(3), 200)
	for bits := deflateMinWindowBits; bits <= deflateMaxWindowBits; bits++ {
		d := newDeflater(bits)
		first := len(d.flush(d.write(nil, msg)))
		if again := len(d.flush(d.write(nil, msg))); again > 10 {
			t.Errorf("window bits %d: the same 200 bytes again with takeover: %d bytes, want at most 10", bits, again)
		}
		d.idle()
		if again := len(d.flush(d.write(nil, msg))); again > 10 {
			t.Errorf("window bits %d: the same 200 bytes after idle: %d bytes, want at most 10", bits, again)
		}
		d.reset()
		if again := len(d.flush(d.write(nil, msg))); again != first {
			t.Errorf("window bits %d: after reset: %d bytes, want %d as the first time", bits, again, first)
		}
		d.reset()
		d.idle()
		if again := len(d.flush(d.write(nil, msg))); again != first {
			t.Errorf("window bits %d: after reset and idle: %d bytes, want %d as the first time", bits, again, first)
		}
		d.idle()
		d.reset()
		if again := len(d.flush(d.write(nil, msg))); again != first {
			t.Errorf("window bits %d: after idle and reset: %d bytes, want %d as the first time", bits, again, first)
		}
	}
}

// TestDeflaterSharedScratch has two deflaters take turns, each idling
// after every message, so that each keeps finding the other's scratch in
// the pool and must rebuild its own state from the history it kept.
func TestDeflaterSharedScratch(t *testing.T) {
	t.Parallel()
	rng := payloadRNG(14)
	for _, bits := range []int{9, 12, 15} {
		ds := [2]*deflater{newDeflater(bits), newDeflater(bits)}
		var msgs, outs [2][][]byte
		var last [2]*deflateScratch // the scratch each used last
		shared := 0
		for i := range 60 {
			d := ds[i%2]
			var m []byte
			switch i % 3 {
			case 0:
				m = jsonPayload(rng, 1+rng.IntN(3000))
			case 1:
				m = textPayload(rng, 1+rng.IntN(3000))
			default:
				m = logPayload(rng, 1+rng.IntN(3000))
			}
			out := d.write(nil, m)
			if d.sc == last[(i+1)%2] {
				shared++
			}
			out = d.flush(out)
			last[i%2] = d.sc
			d.idle()
			msgs[i%2] = append(msgs[i%2], m)
			outs[i%2] = append(outs[i%2], out)
		}
		for j := range ds {
			checkInflate(t, bits, true, msgs[j], outs[j])
		}
		if shared == 0 {
			t.Errorf("window bits %d: the deflaters never took each other's scratch", bits)
		}
	}
}

// TestDeflaterIdleMidMessage checks that idle leaves a message being
// written alone, and that reset drops the input of an unfinished one.
func TestDeflaterIdleMidMessage(t *testing.T) {
	t.Parallel()
	rng := payloadRNG(4)
	big := textPayload(rng, 3*deflateBlockSize+100)
	d := newDeflater(12)
	out := d.write(nil, big[:100])
	d.idle()
	if d.sc == nil {
		t.Fatal("idle with input pending gave up the scratch")
	}
	out = d.write(out, big[100:])
	if len(out) == 0 {
		t.Fatal("no blocks out after three blocks of input")
	}
	d.idle()
	if d.sc == nil {
		t.Fatal("idle after some blocks of a message gave up the scratch")
	}
	out = d.flush(out)
	checkInflate(t, 12, true, [][]byte{big}, [][]byte{out})

	// A message cut short by reset leaves nothing behind.
	d = newDeflater(12)
	d.write(nil, big[:5000])
	d.reset()
	out = d.flush(d.write(nil, []byte("Hello")))
	if want := "\xf2\x48\xcd\xc9\xc9\x07\x00\x00\x00\xff\xff"; string(out) != want {
		t.Errorf("after reset mid-message: got %q, want %q", out, want)
	}
}

// TestDeflaterAllocs checks that a deflater in use allocates nothing per
// message once it has its scratch and the caller's buffer is big enough.
func TestDeflaterAllocs(t *testing.T) {
	msgs := benchCorpus("json", 4<<10)[:8]
	for _, takeover := range []bool{true, false} {
		d := newDeflater(15)
		dst := make([]byte, 0, 16<<10)
		i := 0
		step := func() {
			dst = d.flush(d.write(dst[:0], msgs[i%len(msgs)]))
			if !takeover {
				d.reset()
			}
			i++
		}
		step()
		if n := testing.AllocsPerRun(50, step); n != 0 {
			t.Errorf("takeover %t: %v allocations per message, want 0", takeover, n)
		}
	}
}

// TestNewDeflaterWindowBits checks that window bits are clamped to 8..15.
func TestNewDeflaterWindowBits(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ bits, window int }{{0, 256}, {7, 256}, {8, 256}, {9, 512}, {15, 32768}, {16, 32768}} {
		if got := newDeflater(tt.bits).window; got != tt.window {
			t.Errorf("newDeflater(%d): window %d, want %d", tt.bits, got, tt.window)
		}
	}
}

// TestDeflateCodes checks the symbol arithmetic against the tables of
// RFC 1951 §3.2.5, for every length and distance.
func TestDeflateCodes(t *testing.T) {
	t.Parallel()
	for length := 3; length <= 258; length++ {
		code, extra := lengthCode(uint(length - 3))
		if length < testLenBase[code] || (code < 28 && length >= testLenBase[code+1]) || int(extra) != testLenExtra[code] {
			t.Errorf("length %d: code %d with %d extra bits", length, 257+code, extra)
		}
		if v := uint(length - 3); int(v&(1<<extra-1)) != length-testLenBase[code] {
			t.Errorf("length %d: extra value %d, want %d", length, v&(1<<extra-1), length-testLenBase[code])
		}
	}
	for dist := 1; dist <= 32768; dist++ {
		code, extra := distCode(uint(dist - 1))
		if dist < testDistBase[code] || (code < 29 && dist >= testDistBase[code+1]) || int(extra) != testDistExtra[code] {
			t.Fatalf("distance %d: code %d with %d extra bits", dist, code, extra)
		}
		if v := uint(dist - 1); int(v&(1<<extra-1)) != dist-testDistBase[code] {
			t.Fatalf("distance %d: extra value %d, want %d", dist, v&(1<<extra-1), dist-testDistBase[code])
		}
	}
}

// TestDeflateBuildLengths checks the Huffman code lengths for many
// frequency tables, Fibonacci-like ones among them (whose unlimited code
// is deepest): every code must be complete (Kraft sum exactly 1), within
// its length limit, give every used symbol a code and an unused one none
// (save the partner of a lone symbol), and cost no more than the unlimited
// Huffman code when that one fits the limit.
func TestDeflateBuildLengths(t *testing.T) {
	t.Parallel()
	rng := payloadRNG(5)
	var h huffScratch
	check := func(name string, freq []uint32, maxBits uint) {
		t.Helper()
		lens := make([]uint8, len(freq))
		h.buildLengths(freq, lens, maxBits)
		used := 0
		for _, f := range freq {
			if f != 0 {
				used++
			}
		}
		kraft := 0 // in units of 2^-maxBits
		for i, l := range lens {
			switch {
			case uint(l) > maxBits:
				t.Fatalf("%s: symbol %d has length %d over %d", name, i, l, maxBits)
			case freq[i] != 0 && l == 0:
				t.Fatalf("%s: used symbol %d has no code", name, i)
			case freq[i] == 0 && l != 0 && used > 1:
				t.Fatalf("%s: unused symbol %d has length %d", name, i, l)
			}
			if l != 0 {
				kraft += 1 << (maxBits - uint(l))
			}
		}
		if used == 0 {
			if kraft != 0 {
				t.Fatalf("%s: codes for no symbols", name)
			}
			return
		}
		if kraft != 1<<maxBits && !(len(freq) == 1 && kraft == 1<<(maxBits-1)) {
			t.Fatalf("%s: Kraft sum %d/%d, want 1 (lengths %v)", name, kraft, 1<<maxBits, lens)
		}
		// Compare with an unlimited Huffman code, built the slow way.
		if used > 1 {
			ws := []int{}
			for _, f := range freq {
				if f != 0 {
					ws = append(ws, int(f))
				}
			}
			optimal := 0
			for len(ws) > 1 {
				slices.Sort(ws)
				w := ws[0] + ws[1]
				optimal += w
				ws = append(ws[2:], w)
			}
			cost := 0
			for i, l := range lens {
				cost += int(freq[i]) * int(l)
			}
			if cost < optimal {
				t.Fatalf("%s: cost %d below the optimum %d", name, cost, optimal)
			}
			deepest := 0
			for _, l := range lens {
				deepest = max(deepest, int(l))
			}
			if deepest < int(maxBits) && cost != optimal {
				t.Fatalf("%s: cost %d, optimum %d", name, cost, optimal)
			}
		}
	}
	for _, maxBits := range []uint{deflateMaxCodeBits, deflateMaxCodeLenBits} {
		n := deflateNumLit
		if maxBits == deflateMaxCodeLenBits {
			n = deflateNumCodeLens
		}
		check("none", make([]uint32, n), maxBits)
		for sym := range n {
			f := make([]uint32, n)
			f[sym] = 7
			check(fmt.Sprintf("only %d", sym), f, maxBits)
		}
		check("alone", []uint32{5}, maxBits)
		fib := make([]uint32, n)
		a, b := uint32(1), uint32(1)
		for i := range fib {
			fib[i] = min(a, 1<<15)
			a, b = b, a+b
		}
		check("fibonacci", fib, maxBits)
		for i := range 2000 {
			f := make([]uint32, n)
			switch i % 4 {
			case 0: // few symbols, wide spread
				for range 1 + rng.IntN(n) {
					f[rng.IntN(n)] = uint32(1 + rng.IntN(1<<15))
				}
			case 1: // exponential spread: deep trees
				for j := range f {
					f[j] = uint32(1) << rng.IntN(16)
				}
			case 2: // all equal
				for j := range f {
					f[j] = 3
				}
			default:
				for j := range f {
					if rng.IntN(3) == 0 {
						f[j] = uint32(rng.IntN(300))
					}
				}
			}
			check(fmt.Sprintf("random %d", i), f, maxBits)
		}
	}
}

// TestDeflaterZlib has zlib (through python3) inflate the deflater's
// output for every window size, as one stream with takeover and message by
// message without, with zlib's window set to the deflater's. Each message
// goes over stripped of its 00 00 ff ff tail, as RFC 7692 §7.2.1 sends it,
// and the script puts the tail back, as a receiver does (§7.2.2).
func TestDeflaterZlib(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	// Reads streams, each: window bits, takeover flag, message count, and
	// the length-prefixed messages; writes the inflated messages,
	// length-prefixed.
	const script = `
import struct, sys, zlib
data, pos, out = sys.stdin.buffer.read(), 0, bytearray()
while pos < len(data):
    bits, takeover, count = struct.unpack_from("<BBI", data, pos)
    pos += 6
    d = None
    for _ in range(count):
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if d is None or not takeover:
            d = zlib.decompressobj(-bits)
        m = d.decompress(data[pos:pos + n] + b"\x00\x00\xff\xff")
        pos += n
        out += struct.pack("<I", len(m)) + m
sys.stdout.buffer.write(out)
`
	rng := payloadRNG(6)
	text := textPayload(rng, 100000)
	msgs := [][]byte{{}, []byte("Hello"), text[:30000], randomPayload(rng, 3000), text[30000:31000], bytes.Repeat([]byte("ab"), 40000), jsonPayload(rng, 5000), text[31000:]}
	var in []byte
	for bits := deflateMinWindowBits; bits <= deflateMaxWindowBits; bits++ {
		for _, takeover := range []bool{true, false} {
			in = append(in, byte(bits), 0)
			if takeover {
				in[len(in)-1] = 1
			}
			in = binary.LittleEndian.AppendUint32(in, uint32(len(msgs)))
			for _, out := range deflateMessages(bits, takeover, msgs, nil, 0) {
				out = bytes.TrimSuffix(out, []byte("\x00\x00\xff\xff"))
				in = binary.LittleEndian.AppendUint32(in, uint32(len(out)))
				in = append(in, out...)
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v: %s", err, stderr.Bytes())
	}
	for bits := deflateMinWindowBits; bits <= deflateMaxWindowBits; bits++ {
		for _, takeover := range []bool{true, false} {
			for i, m := range msgs {
				if len(got) < 4 || len(got) < 4+int(binary.LittleEndian.Uint32(got)) {
					t.Fatalf("window bits %d, takeover %t: output ends before message %d", bits, takeover, i)
				}
				n := int(binary.LittleEndian.Uint32(got))
				if !bytes.Equal(got[4:4+n], m) {
					t.Errorf("window bits %d, takeover %t: zlib inflated message %d to %d bytes %.30q, want %d bytes %.30q", bits, takeover, i, n, got[4:4+n], len(m), m)
				}
				got = got[4+n:]
			}
		}
	}
	if len(got) != 0 {
		t.Errorf("%d bytes of output left over", len(got))
	}
}

// deflaterBytes returns the bytes a deflater holds of its own, and those
// of the scratch it has borrowed (none while idle).
func deflaterBytes(d *deflater) (own, scratch int) {
	own = int(reflect.TypeFor[deflater]().Size()) + cap(d.hist)
	if d.id != nil {
		own++
	}
	if sc := d.sc; sc != nil {
		scratch = int(reflect.TypeFor[deflateScratch]().Size()) + cap(sc.buf) +
			cap(sc.table)*int(reflect.TypeOf(sc.table).Elem().Size()) + int(reflect.TypeFor[lzSeq]().Size())*cap(sc.seqs) + 2*cap(sc.huff.clSyms)
	}
	return own, scratch
}

// TestDeflaterMemory checks what a deflater keeps while idle: with
// context takeover the window and a small struct, without it the struct
// alone; and that it gives back its scratch.
func TestDeflaterMemory(t *testing.T) {
	t.Parallel()
	msg := jsonPayload(payloadRNG(10), 40000)
	for _, bits := range []int{8, 10, 12, 15} {
		for _, takeover := range []bool{true, false} {
			d := newDeflater(bits)
			if own, scratch := deflaterBytes(d); own > 256 || scratch != 0 {
				t.Errorf("window bits %d: new deflater holds %d bytes and a scratch of %d", bits, own, scratch)
			}
			for range 3 {
				d.flush(d.write(nil, msg))
				if !takeover {
					d.reset()
				}
				_, active := deflaterBytes(d)
				d.idle()
				own, scratch := deflaterBytes(d)
				want := 256
				if takeover {
					want += 1 << bits
				}
				if own > want || scratch != 0 {
					t.Errorf("window bits %d, takeover %t: idle deflater holds %d bytes (want at most %d) and a scratch of %d", bits, takeover, own, want, scratch)
				}
				t.Logf("window bits %d, takeover %t: idle %d bytes; active %d more", bits, takeover, own, active)
			}
		}
	}
}

// FuzzDeflater compresses arbitrary messages with an arbitrary window and
// checks that compress/flate and the checking inflater decode them, every
// back-reference within the window. lens cuts data into messages: each of
// its bytes b makes a message of b*b/2 bytes (less if data runs out),
// written in pieces of 1+b%61 bytes; the deflater idles after the message
// when b%5 is 0; the rest of data is the last message.
func FuzzDeflater(f *testing.F) {
	rng := payloadRNG(8)
	f.Add(uint8(7), true, []byte{}, []byte("Hello"))
	f.Add(uint8(0), true, []byte{10, 0, 200}, textPayload(rng, 300))
	f.Add(uint8(2), false, []byte{255, 3, 255}, randomPayload(rng, 400))
	f.Add(uint8(4), true, []byte{100, 100, 5, 250}, bytes.Repeat([]byte{'a'}, 700))
	f.Fuzz(func(t *testing.T, bits uint8, takeover bool, lens, data []byte) {
		windowBits := deflateMinWindowBits + int(bits%8)
		d := newDeflater(windowBits)
		var msgs, outs [][]byte
		add := func(m []byte, piece int, idle bool) {
			var out []byte
			for p := m; len(p) > 0; p = p[min(piece, len(p)):] {
				out = d.write(out, p[:min(piece, len(p))])
			}
			out = d.flush(out)
			if !takeover {
				d.reset()
			}
			if idle {
				d.idle()
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

// ---- Benchmarks ----

// benchCorpus returns messages of size bytes of one kind, cut in a row from
// one long stream of that kind, so consecutive messages are alike but not
// repeated: enough of them that a message comes back only after far more
// than a window of others.
func benchCorpus(kind string, size int) [][]byte {
	rng := payloadRNG(7)
	n := max(1<<20, 64*size)
	var data []byte
	switch kind {
	case "json":
		data = jsonPayload(rng, n)
	case "text":
		data = textPayload(rng, n)
	case "logs":
		data = logPayload(rng, n)
	case "random":
		data = randomPayload(rng, n)
	}
	var msgs [][]byte
	for p := data; len(p) >= size; p = p[size:] {
		msgs = append(msgs, p[:size])
	}
	return msgs
}

// BenchmarkDeflate compresses one message per iteration and flushes it, as
// a connection sends messages, side by side with compress/flate at
// BestSpeed, with context takeover (one stream) and without (a fresh
// stream per message). It reports the output size over the input size as
// "ratio".
func BenchmarkDeflate(b *testing.B) {
	for _, kind := range []string{"json", "text", "logs", "random"} {
		for _, size := range []int{256, 4 << 10, 64 << 10} {
			msgs := benchCorpus(kind, size)
			for _, takeover := range []bool{true, false} {
				mode := "takeover"
				if !takeover {
					mode = "no-takeover"
				}
				prefix := fmt.Sprintf("%s/%d/%s/", kind, size, mode)
				b.Run(prefix+"flate", func(b *testing.B) {
					var buf bytes.Buffer
					buf.Grow(2*size + 1024) // room for any message's output
					fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
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
						d := newDeflater(bits)
						dst := make([]byte, 0, 2*size+1024)
						d.flush(d.write(dst, msgs[len(msgs)-1])) // take the scratch
						d.reset()
						in, out := 0, 0
						b.SetBytes(int64(size))
						b.ReportAllocs()
						for i := 0; b.Loop(); i++ {
							m := msgs[i%len(msgs)]
							dst = d.write(dst[:0], m)
							dst = d.flush(dst)
							if !takeover {
								d.reset()
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

// BenchmarkDeflateIdle is BenchmarkDeflate for a connection that idles its
// deflater after every message: each message pays for taking a scratch
// from the pool, restoring the history and indexing it, and for giving
// the scratch back.
func BenchmarkDeflateIdle(b *testing.B) {
	for _, size := range []int{256, 4 << 10} {
		msgs := benchCorpus("json", size)
		for _, takeover := range []bool{true, false} {
			for _, bits := range []int{15, 12, 10, 8} {
				mode := "takeover"
				if !takeover {
					mode = "no-takeover"
				}
				b.Run(fmt.Sprintf("json/%d/%s/w%d", size, mode, bits), func(b *testing.B) {
					benchIdle(b, msgs, bits, takeover, 1)
				})
				// Two deflaters taking turns: each finds the other's
				// scratch in the pool and rebuilds.
				b.Run(fmt.Sprintf("json/%d/%s/w%d/rebuild", size, mode, bits), func(b *testing.B) {
					benchIdle(b, msgs, bits, takeover, 2)
				})
			}
		}
	}
}

func benchIdle(b *testing.B, msgs [][]byte, bits int, takeover bool, n int) {
	var ds []*deflater
	for range n {
		ds = append(ds, newDeflater(bits))
	}
	dst := make([]byte, 0, 2*len(msgs[0])+1024)
	step := func(i int) int {
		d := ds[i%n]
		m := msgs[i%len(msgs)]
		dst = d.write(dst[:0], m)
		dst = d.flush(dst)
		if !takeover {
			d.reset()
		}
		d.idle()
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

// liveHeap returns the bytes of live heap objects, after two collections
// (the second empties the pools the first left as victims).
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkDeflaterMemory measures, with the runtime's own count, the heap
// that deflaters hold after compressing a 4 KiB message: "active-B/op" while
// they keep their scratch, "idle-B/op" after idle (the pool emptied by two
// collections). Each figure is per deflater, over 64 of them.
func BenchmarkDeflaterMemory(b *testing.B) {
	msg := benchCorpus("json", 4<<10)[0]
	for _, bits := range []int{8, 10, 12, 15} {
		for _, takeover := range []bool{true, false} {
			mode := "takeover"
			if !takeover {
				mode = "no-takeover"
			}
			b.Run(fmt.Sprintf("w%d/%s", bits, mode), func(b *testing.B) {
				const n = 64
				ds := make([]*deflater, n)
				before := liveHeap()
				for i := range ds {
					ds[i] = newDeflater(bits)
					ds[i].flush(ds[i].write(nil, msg))
					if !takeover {
						ds[i].reset()
					}
				}
				active := liveHeap()
				for _, d := range ds {
					d.idle()
				}
				idle := liveHeap()
				runtime.KeepAlive(ds)
				for b.Loop() {
				}
				b.ReportMetric(float64(active-before)/n, "active-B/op")
				b.ReportMetric(float64(idle-before)/n, "idle-B/op")
			})
		}
	}
}
