package loadgen

import (
	"math/rand/v2"
	"strconv"
)

// Words, rooms and names that JSONMessages draws from: a chat service's
// vocabulary, small enough that its text compresses as such text does.
var (
	jsonWords = []string{
		"the", "a", "to", "and", "of", "in", "is", "it", "you", "that", "for", "on", "was", "with", "this", "we",
		"be", "are", "have", "not", "at", "but", "so", "can", "just", "what", "all", "will", "if", "do", "there", "up",
		"deploy", "build", "review", "merge", "branch", "release", "ticket", "meeting", "today", "tomorrow", "later",
		"thanks", "looks", "good", "fixed", "broken", "again", "server", "client", "latency", "error", "timeout",
		"queue", "cache", "database", "migration", "rollback", "config", "staging", "production", "alert", "metrics",
		"dashboard", "customer", "feature", "flag", "test", "flaky", "green", "red", "pipeline", "lunch", "coffee",
		"please", "check", "updated", "pushed", "comment", "question", "answer", "maybe", "sure", "agreed", "done",
	}
	jsonRooms = []string{"general", "engineering", "ops-alerts", "random", "release-train", "support", "design", "backend"}
	jsonKinds = []string{"message", "message", "message", "edit", "reaction", "thread_reply"}
	jsonEmoji = []string{"+1", "tada", "eyes", "rocket", "white_check_mark", "heart"}
)

// JSONMessages returns count JSON texts of exactly size bytes each (size at
// least 64), the same for the same seed: arrays of chat events, each with
// ids, a room, a user, a timestamp, a sentence drawn from a small
// vocabulary and a few reactions, the kind of text that WebSocket
// applications compress. compress/flate at its default level shrinks a
// 16 KiB one about 5 times on its own, 6 times after the others (with
// context takeover); a 1 KiB one 2.4 times on its own, 4.6 times after
// the others.
func JSONMessages(count, size int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, uint64(size)))
	ts := int64(1767225600000) + int64(r.IntN(1e6))
	id := 100000 + r.IntN(900000)
	out := make([][]byte, count)
	for i := range out {
		b := make([]byte, 0, size)
		b = append(b, '[')
		const head, tail = `,{"type":"message","text":"`, `"}]`
		for {
			ev := jsonEvent(r, &id, &ts)
			// Room for the event, a comma, and the last event.
			if len(b)+1+len(ev)+len(head)+len(tail) > size {
				break
			}
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = append(b, ev...)
		}
		// Fill what is left with one last event cut to fit: its text
		// takes words until the end.
		if len(b) == 1 {
			b = append(b, head[1:]...)
		} else {
			b = append(b, head...)
		}
		for left := size - len(b) - len(tail); left > 0; {
			w := jsonWords[r.IntN(len(jsonWords))]
			if len(w) > left {
				w = w[:left]
			}
			b = append(b, w...)
			left -= len(w)
			if left > 0 {
				b = append(b, ' ')
				left--
			}
		}
		b = append(b, tail...)
		out[i] = b
	}
	return out
}

func jsonEvent(r *rand.Rand, id *int, ts *int64) []byte {
	*id += 1 + r.IntN(7)
	*ts += int64(r.IntN(5000))
	user := 1000 + r.IntN(400)
	b := []byte(`{"id":`)
	b = strconv.AppendInt(b, int64(*id), 10)
	b = append(b, `,"type":"`...)
	b = append(b, jsonKinds[r.IntN(len(jsonKinds))]...)
	b = append(b, `","room":"`...)
	b = append(b, jsonRooms[r.IntN(len(jsonRooms))]...)
	b = append(b, `","user":{"id":`...)
	b = strconv.AppendInt(b, int64(user), 10)
	b = append(b, `,"name":"user`...)
	b = strconv.AppendInt(b, int64(user), 10)
	b = append(b, `","status":"online"},"ts":`...)
	b = strconv.AppendInt(b, *ts, 10)
	b = append(b, `,"text":"`...)
	for j, n := 0, 4+r.IntN(14); j < n; j++ {
		if j > 0 {
			b = append(b, ' ')
		}
		b = append(b, jsonWords[r.IntN(len(jsonWords))]...)
	}
	b = append(b, `","reactions":[`...)
	for j, n := 0, r.IntN(3); j < n; j++ {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"emoji":"`...)
		b = append(b, jsonEmoji[r.IntN(len(jsonEmoji))]...)
		b = append(b, `","count":`...)
		b = strconv.AppendInt(b, int64(1+r.IntN(9)), 10)
		b = append(b, '}')
	}
	b = append(b, `],"edited":`...)
	b = strconv.AppendBool(b, r.IntN(8) == 0)
	b = append(b, '}')
	return b
}
