// Package flatetest makes data for the tests and benchmarks of
// compressors: text, JSON and log messages, random bytes, each from a
// seeded generator so that every run sees the same bytes, and a count of
// the live heap.
package flatetest

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
)

// ---- Payloads ----

// vocabulary holds the words of English-like text, most common first.
var vocabulary = strings.Fields(`the of and to a in is that it was for on are as with his they
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

// Text returns n bytes of English-like text: sentences of words drawn
// with falling frequency, with capitals, commas and paragraphs.
func Text(rng *rand.Rand, n int) []byte {
	var b []byte
	sentence := 0
	for len(b) < n {
		count := 6 + rng.IntN(14)
		for i := range count {
			// Squaring a uniform draw favours the first words, roughly
			// as word frequencies fall off in English.
			f := rng.Float64()
			w := vocabulary[int(f*f*float64(len(vocabulary)))]
			if i == 0 {
				b = append(b, strings.ToUpper(w[:1])...)
				w = w[1:]
			} else {
				b = append(b, ' ')
			}
			b = append(b, w...)
			if i > 2 && i < count-2 && rng.IntN(9) == 0 {
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

var names = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter"}

// JSON returns n bytes of a stream of JSON messages such as a chat or
// market data service sends, one object per line.
func JSON(rng *rand.Rand, n int) []byte {
	var b []byte
	id := 100000 + rng.IntN(900000)
	for len(b) < n {
		id += 1 + rng.IntN(3)
		switch rng.IntN(3) {
		case 0:
			b = fmt.Appendf(b, `{"type":"message","id":%d,"channel":"#general","user":{"id":%d,"name":%q,"online":%t},"text":%q,"ts":"2024-05-%02dT%02d:%02d:%02d.%03dZ","reactions":[]}`,
				id, 1000+rng.IntN(64), names[rng.IntN(len(names))], rng.IntN(2) == 0,
				Text(rng, 20+rng.IntN(100)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1000))
		case 1:
			b = fmt.Appendf(b, `{"type":"trade","id":%d,"symbol":%q,"price":%d.%02d,"size":%d,"side":%q,"ts":%d}`,
				id, []string{"BTC-USD", "ETH-USD", "SOL-USD", "EUR-USD"}[rng.IntN(4)], 100+rng.IntN(60000), rng.IntN(100),
				1+rng.IntN(500), []string{"buy", "sell"}[rng.IntN(2)], 1714550000000+int64(id)*17)
		default:
			b = fmt.Appendf(b, `{"type":"presence","id":%d,"user":%q,"status":%q,"devices":[{"kind":"web","version":"3.%d.%d"},{"kind":"mobile","version":"2.%d.0"}]}`,
				id, names[rng.IntN(len(names))], []string{"online", "away", "offline"}[rng.IntN(3)], rng.IntN(20), rng.IntN(10), rng.IntN(9))
		}
		b = append(b, '\n')
	}
	return b[:n]
}

// Logs returns n bytes of web server log lines.
func Logs(rng *rand.Rand, n int) []byte {
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

// Random returns n random bytes, which do not compress.
func Random(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// RNG returns a generator whose output depends on seed alone.
func RNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// Corpus returns messages of size bytes of one kind, cut in a row from
// one long stream of that kind, so consecutive messages are alike but not
// repeated: enough of them that a message comes back only after far more
// than a window of others.
func Corpus(kind string, size int) [][]byte {
	rng := RNG(7)
	n := max(1<<20, 64*size)
	var data []byte
	switch kind {
	case "json":
		data = JSON(rng, n)
	case "text":
		data = Text(rng, n)
	case "logs":
		data = Logs(rng, n)
	case "random":
		data = Random(rng, n)
	}
	var msgs [][]byte
	for p := data; len(p) >= size; p = p[size:] {
		msgs = append(msgs, p[:size])
	}
	return msgs
}

// LiveHeap returns the bytes of live heap objects, after two collections
// (the second empties the pools the first left as victims).
func LiveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
