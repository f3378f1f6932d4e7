package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/rfc6455/websocket/examples/chat/chat"
)

const (
	// streamPrefix names a room's stream: chat:room:NAME.
	streamPrefix = "chat:room:"
	// streamLimit is about how many entries a stream keeps (XADD MAXLEN
	// ~): a server that falls further behind than this loses the oldest.
	streamLimit = 10000
	// streamIdle is how long a room's stream stays in Redis after its
	// last event: rooms are made by whoever names one, and would
	// otherwise pile up for ever.
	streamIdle = 24 * time.Hour
	// holdLimit is how long events are held while Redis is unreachable:
	// once the oldest has waited this long, Publish refuses new ones.
	holdLimit = 10 * time.Second
	// heldBytes bounds the events held, in bytes.
	heldBytes = 16 << 20
	// batchSize is the most operations written in one transaction, and
	// batchBytes about the most bytes of events: Redis counts a
	// transaction's queued commands in its memory, so that one of 256
	// messages of 64 KiB could never fit under a maxmemory that single
	// messages still fit under.
	batchSize  = 256
	batchBytes = 1 << 20
	// seedCount is how many of a stream's last entries a server reads when
	// it begins following the stream, to know which messages came before
	// (see redisBus).
	seedCount = 100
	// opTimeout bounds each call to Redis but the reader's XREAD.
	opTimeout = 2 * time.Second
	// readBlock is how long the reader's XREAD waits for entries.
	readBlock = 5 * time.Second
)

// redisBus carries rooms' events over Redis Streams, one stream per room.
//
// Publish only queues an event; one goroutine, the writer, writes the
// queue in order, in transactions (MULTI/EXEC) of up to batchSize
// entries, and retries a transaction that failed until it succeeds. Each
// entry carries, besides the event, an ID made of this bus's writer ID
// and a sequence number. A transaction retried after a timeout may
// already have been applied: its entries are then in the stream twice.
// Since a transaction is applied whole or not at all, and the writer
// moves on only once one has succeeded, each writer's sequence numbers
// first appear in a stream in increasing order, so a reader delivers an
// entry only if its number is above the last one it delivered from that
// writer, and drops repeats.
//
// Another goroutine, the reader, follows the streams of the rooms
// subscribed with one XREAD BLOCK from the last entry ID it has read in
// each. Subscribe has the writer read, in the queue's order, the
// stream's last seedCount entries, their IDs and writer IDs alone (a
// script, seedIDs, leaves the events, up to hundreds of KB each, in
// Redis): the last one's ID is where reading starts, after everything
// published before Subscribe and before everything published after, and
// the writer IDs and numbers in them are where dropping repeats starts,
// so that a message written before is not delivered when a retried copy
// of it comes after. (A transaction that timed out here and that Redis
// applied anyway may have put this bus's own events after Subscribe
// among those entries: see startAt.)
//
// When Redis is unreachable both retry, and the first to reach it again
// has the other try at once; the reader resumes where it stopped, so
// nothing published meanwhile is missed unless the stream has been
// trimmed past it.
type redisBus struct {
	rdb    *redis.Client                    // immutable
	writer string                           // immutable: this bus's writer ID
	logf   func(format string, args ...any) // immutable

	mu     sync.Mutex
	queue  []op            // guarded by mu: what the writer has yet to do, in order
	held   int             // guarded by mu: bytes of the events in queue
	seq    uint64          // guarded by mu: the last sequence number given out
	subs   map[string]*sub // guarded by mu: the rooms followed
	gen    uint64          // guarded by mu: counts changes to where reading starts
	closed bool            // guarded by mu: Close was called: Publish refuses
	// downSince is when the writer or the reader last found Redis
	// unreachable, zero once either reaches it again: a server with
	// nothing held knows Redis is gone from its reader.
	downSince time.Time // guarded by mu
	// backAt is when the writer or the reader last reached Redis after
	// failing to: events held since before it are not stuck, but waiting
	// for the writer's next try.
	backAt time.Time // guarded by mu
	// refusal is Redis's answer to the writer's last transaction, when
	// Redis refused it (out of memory, say), nil once one succeeds.
	refusal error // guarded by mu

	queued   chan struct{} // has a value when the writer has work
	wake     chan struct{} // has a value when the reader has rooms to read again
	stop     chan struct{} // closed when the writer has emptied the queue for Close
	readerID atomic.Int64  // the CLIENT ID of the reader's connection, 0 if none
	readGen  atomic.Uint64 // the gen of the rooms the reader reads
	done     sync.WaitGroup
}

// sub is a room followed.
type sub struct {
	room    string           // immutable
	deliver func(chat.Event) // immutable

	since uint64 // guarded by mu: the bus's last sequence number when Subscribe was called

	// Used by the reader, and set once by the writer (under mu) before
	// the reader reads the room:
	pos  string            // the ID of the last entry read; "" until the writer sets it
	last map[string]uint64 // writer ID to the last sequence number delivered or seen before pos
}

// op is what the writer does next: write an event, or find where a
// subscription starts.
type op struct {
	room  string
	at    time.Time // when Publish or Subscribe queued it
	id    string    // an event's: writer ID and sequence number
	event []byte    // an event, as JSON
	sub   *sub      // a subscription whose start to find
}

// quiet drops what go-redis logs: a failed dial on each try while Redis
// is down. The bus says when it stops and starts reaching Redis.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func newRedisBus(addr string, logf func(format string, args ...any)) *redisBus {
	b := &redisBus{
		rdb: redis.NewClient(&redis.Options{
			Addr:                  addr,
			MaxRetries:            -1, // the writer and reader retry
			DialTimeout:           opTimeout,
			ReadTimeout:           opTimeout,
			WriteTimeout:          opTimeout,
			ContextTimeoutEnabled: true,
			DisableIdentity:       true, // CLIENT SETINFO is Redis 7.2's
			// CLIENT MAINT_NOTIFICATIONS is Redis 8's; asking for it
			// by default, go-redis turns it off on the first refusal
			// while another connection reads the setting (a data race
			// that -race reports when the writer and the reader connect
			// at once).
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		}),
		writer: rand.Text(),
		logf:   logf,
		subs:   make(map[string]*sub),
		queued: make(chan struct{}, 1),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	b.done.Add(2)
	go b.write()
	go b.read()
	return b
}

// notify leaves a value in ch unless one is there.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Subscribe implements chat.Bus.
func (b *redisBus) Subscribe(room string, deliver func(chat.Event)) (cancel func()) {
	s := &sub{room: room, deliver: deliver, last: make(map[string]uint64)}
	b.mu.Lock()
	s.since = b.seq
	b.subs[room] = s
	b.queue = append(b.queue, op{room: room, at: time.Now(), sub: s})
	b.mu.Unlock()
	notify(b.queued)
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.subs[room] == s {
			delete(b.subs, room)
		}
	}
}

var (
	errClosed      = errors.New("the server is shutting down")
	errUnreachable = fmt.Errorf("the message bus (Redis) has been unreachable for %v", holdLimit)
	errHeldFull    = errors.New("too much waiting for Redis")
)

// Publish implements chat.Bus: it queues ev for the writer, unless Redis
// has been unreachable, or refused the writer's transactions, for
// holdLimit (the queue's oldest event has waited that long, and neither
// the writer nor the reader has reached Redis meanwhile; or the writer
// or the reader has failed that long), or the queue holds heldBytes
// already. A leave is queued whatever Redis does, until the
// bus closes: its member's join was queued, and a leave refused would
// leave the member listed on every server once Redis is back. There are
// no more leaves than joins queued before them.
func (b *redisBus) Publish(room string, ev chat.Event) error {
	p, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Once the reader or the writer has reached Redis again, the held
	// events wait for the writer's next try, which comes at once: they
	// are not stuck.
	stuck := len(b.queue) > 0 && time.Since(b.queue[0].at) > holdLimit && time.Since(b.backAt) > holdLimit
	switch {
	case b.closed:
		return errClosed
	case ev.Type == "leave":
	case stuck && b.refusal != nil:
		return fmt.Errorf("the message bus (Redis) has refused writes for %v: %s", holdLimit, redisErr(b.refusal))
	case stuck, !b.downSince.IsZero() && time.Since(b.downSince) > holdLimit:
		return errUnreachable
	case b.held+len(p) > heldBytes:
		return errHeldFull
	}
	b.seq++
	b.queue = append(b.queue, op{room: room, at: time.Now(), id: b.writer + "-" + strconv.FormatUint(b.seq, 10), event: p})
	b.held += len(p)
	notify(b.queued)
	return nil
}

// Close writes what is queued, until ctx ends, then stops the writer and
// the reader and closes the connections to Redis; once ctx has ended, it
// closes them at once, which ends a write or a read that Redis leaves
// waiting.
func (b *redisBus) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.gen++
	gen := b.gen
	b.mu.Unlock()
	notify(b.queued)
	closeRedis := sync.OnceValue(b.rdb.Close)
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			closeRedis()
		case <-stopped:
		}
	}()
	var err error
	select {
	case <-b.stop:
	case <-ctx.Done():
		b.mu.Lock()
		if n := len(b.queue); n > 0 {
			noun := "events"
			if n == 1 {
				noun = "event"
			}
			err = fmt.Errorf("%d %s may not have been written to Redis: %w", n, noun, ctx.Err())
		}
		b.queue = nil
		b.mu.Unlock()
		notify(b.queued)
		<-b.stop
	}
	notify(b.wake)
	b.unblockReader(ctx, gen)
	b.done.Wait()
	return errors.Join(err, closeRedis())
}

// write is the writer.
func (b *redisBus) write() {
	defer b.done.Done()
	defer close(b.stop)
	var failing time.Time // since when writes fail
	backoff := 50 * time.Millisecond
	for {
		b.mu.Lock()
		n, size := 0, 0
		for n < min(len(b.queue), batchSize) && (n == 0 || size+len(b.queue[n].event) <= batchBytes) {
			size += len(b.queue[n].event)
			n++
		}
		batch := b.queue[:n]
		closed := b.closed
		b.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-b.queued
			continue
		}
		marks, err := b.writeBatch(batch)
		var refusal redis.Error
		if !errors.As(err, &refusal) {
			refusal = nil
		}
		b.mu.Lock()
		b.refusal = refusal
		b.mu.Unlock()
		if err != nil {
			if failing.IsZero() {
				failing = time.Now()
				b.reached(false)
				b.logf("redis: writing: %s; holding what comes, and trying again", redisErr(err))
			}
			select {
			case <-time.After(backoff):
			case <-b.queued: // Close may have dropped the queue, or the reader reached Redis
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		b.reachedAgain(&failing, "writing")
		backoff = 50 * time.Millisecond
		b.mu.Lock()
		if len(b.queue) >= len(batch) { // Close may have dropped the queue
			for _, o := range batch {
				b.held -= len(o.event)
			}
			b.queue = b.queue[len(batch):]
		}
		if len(marks) > 0 {
			b.gen++
		}
		for s, entries := range marks {
			b.startAt(s, entries, firstAfter(batch, s))
		}
		gen := b.gen
		b.mu.Unlock()
		if len(marks) > 0 {
			// The reader has rooms to read from new places.
			notify(b.wake)
			b.unblockReader(context.Background(), gen)
		}
	}
}

// writeBatch runs batch in one transaction, and returns the last entries
// of the streams whose subscriptions it starts.
func (b *redisBus) writeBatch(batch []op) (map[*sub][]redis.XMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	seeds := make(map[*sub]*redis.Cmd)
	cmds, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, o := range batch {
			key := streamPrefix + o.room
			if o.sub != nil {
				seeds[o.sub] = seedIDs.Eval(ctx, p, []string{key}, seedCount)
				continue
			}
			p.XAdd(ctx, &redis.XAddArgs{
				Stream: key,
				MaxLen: streamLimit,
				Approx: true,
				Values: []any{"id", o.id, "event", o.event},
			})
			p.Expire(ctx, key, streamIdle)
		}
		return nil
	})
	if err != nil {
		// A transaction that Redis refused says why in the answer to
		// the command refused (out of memory, say), not in EXEC's.
		for _, c := range cmds {
			var refusal redis.Error
			if errors.As(c.Err(), &refusal) && !strings.HasPrefix(refusal.Error(), "EXECABORT") {
				return nil, refusal
			}
		}
		return nil, err
	}
	marks := make(map[*sub][]redis.XMessage, len(seeds))
	for s, cmd := range seeds {
		rows, _ := cmd.Val().([]any)
		entries := make([]redis.XMessage, 0, len(rows))
		for _, row := range rows {
			pair, _ := row.([]any)
			if len(pair) != 2 {
				continue
			}
			id, _ := pair[0].(string)
			writerID, _ := pair[1].(string)
			entries = append(entries, redis.XMessage{ID: id, Values: map[string]any{"id": writerID}})
		}
		marks[s] = entries
	}
	return marks, nil
}

// seedIDs returns a stream's last ARGV[1] entries, newest first, as their
// entry IDs and "id" fields alone: the events they carry, up to hundreds
// of KB each, are not needed to start a subscription.
var seedIDs = redis.NewScript(`
local out = {}
for i, e in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1])) do
  local id = ''
  local f = e[2]
  for j = 1, #f, 2 do
    if f[j] == 'id' then id = f[j + 1] break end
  end
  out[i] = {e[1], id}
end
return out`)

// startAt sets where the reader starts reading s's stream, entries being
// its last ones, newest first, and first the number of the bus's first
// event in the room after the subscription, in the transaction that read
// them: after the last of the entries, and the writers' numbers in them
// are where dropping repeats starts. But the bus's own events published
// after Subscribe may be there already: a transaction that timed out
// here, and that Redis applied before its retry, wrote them. When the
// oldest of those is that first event, reading starts just before it, so
// that these copies are delivered and the retry's dropped; otherwise the
// first copies are older than the entries read, and the retry's copies,
// after them, are delivered. Either way the bus's own numbers after
// Subscribe do not count as seen.
//
// The caller holds mu.
func (b *redisBus) startAt(s *sub, entries []redis.XMessage, first uint64) {
	s.pos = "0-0"
	if len(entries) > 0 {
		s.pos = entries[0].ID
	}
	oldest, oldestN := -1, uint64(0)
	for i, e := range entries {
		if w, n, ok := entryID(e); ok && w == b.writer && n > s.since {
			oldest, oldestN = i, n
		}
	}
	if oldest >= 0 && oldestN == first {
		s.pos, entries = before(entries[oldest].ID), entries[oldest+1:]
	}
	for _, e := range entries {
		if w, n, ok := entryID(e); ok && n > s.last[w] && (w != b.writer || n <= s.since) {
			s.last[w] = n
		}
	}
}

// firstAfter returns the number of the first event in batch that follows
// s's subscription and goes to its room, 0 if none.
func firstAfter(batch []op, s *sub) uint64 {
	after := false
	for _, o := range batch {
		switch {
		case o.sub == s:
			after = true
		case after && o.sub == nil && o.room == s.room:
			_, n, _ := splitID(o.id)
			return n
		}
	}
	return 0
}

// before returns the stream entry ID just before id (MS-SEQ).
func before(id string) string {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	n, _ := strconv.ParseUint(seq, 10, 64)
	switch {
	case n > 0:
		return ms + "-" + strconv.FormatUint(n-1, 10)
	case m > 0:
		return strconv.FormatUint(m-1, 10) + "-" + strconv.FormatUint(^uint64(0), 10)
	}
	return "0-0"
}

// entryID returns the writer ID and sequence number an entry carries.
func entryID(e redis.XMessage) (writer string, n uint64, ok bool) {
	id, _ := e.Values["id"].(string)
	return splitID(id)
}

// splitID splits an event's ID into its writer ID and sequence number.
func splitID(id string) (writer string, n uint64, ok bool) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	return id[:i], n, err == nil
}

// unblockReader interrupts the reader's XREAD until it reads the rooms of
// gen or later, for at most a second, or until ctx ends: it may be about
// to block when asked.
func (b *redisBus) unblockReader(ctx context.Context, gen uint64) {
	for range 200 {
		if b.readGen.Load() >= gen || ctx.Err() != nil {
			return
		}
		if id := b.readerID.Load(); id != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			n, err := b.rdb.ClientUnblock(ctx, id).Result()
			cancel()
			if err == nil && n == 1 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// redisErr is err's text without the "redis: " that the client's own
// errors begin with, which the log line says already.
func redisErr(err error) string { return strings.TrimPrefix(err.Error(), "redis: ") }

// reached records whether the writer or the reader just reached Redis
// (backAt), or found it unreachable (downSince). Once one of them has
// reached it again, the other, waiting to try again, tries at once.
func (b *redisBus) reached(ok bool) {
	b.mu.Lock()
	switch {
	case ok:
		b.downSince = time.Time{}
		b.backAt = time.Now()
	case b.downSince.IsZero():
		b.downSince = time.Now()
	}
	b.mu.Unlock()
	if ok {
		notify(b.queued)
		notify(b.wake)
	}
}

// reachedAgain notes that the writer or the reader (what) reached Redis,
// failing being since when it had not, zero if it had.
func (b *redisBus) reachedAgain(failing *time.Time, what string) {
	if failing.IsZero() {
		return
	}
	b.reached(true)
	b.logf("redis: %s again after %v", what, time.Since(*failing).Round(time.Millisecond))
	*failing = time.Time{}
}

// read is the reader.
func (b *redisBus) read() {
	defer b.done.Done()
	var failing time.Time // since when reads fail
	backoff := 50 * time.Millisecond
	for {
		err := b.readOn(&failing)
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if err == nil || closed {
			return
		}
		if failing.IsZero() {
			failing = time.Now()
			backoff = 50 * time.Millisecond
			b.reached(false)
			b.logf("redis: reading: %s; trying again", redisErr(err))
		}
		select {
		case <-time.After(backoff):
		case <-b.wake:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// readOn reads the rooms' streams on a connection of its own, until
// Close (it then returns nil) or an error.
func (b *redisBus) readOn(failing *time.Time) error {
	ctx := context.Background()
	conn := b.rdb.Conn()
	defer conn.Close()
	id, err := conn.ClientID(ctx).Result()
	if err != nil {
		return err
	}
	// Redis answers: the reader says so at once, not after an XREAD
	// that may block for readBlock on quiet rooms, or never come when
	// the rooms emptied meanwhile.
	b.reachedAgain(failing, "reading")
	b.readerID.Store(id)
	defer b.readerID.Store(0)
	for {
		b.mu.Lock()
		closed, gen := b.closed, b.gen
		var keys, ids []string
		byKey := make(map[string]*sub)
		for _, s := range b.subs {
			if s.pos != "" {
				keys = append(keys, streamPrefix+s.room)
				ids = append(ids, s.pos)
				byKey[streamPrefix+s.room] = s
			}
		}
		b.mu.Unlock()
		b.readGen.Store(gen)
		if closed {
			return nil
		}
		if len(keys) == 0 {
			<-b.wake
			continue
		}
		streams, err := conn.XRead(ctx, &redis.XReadArgs{Streams: append(keys, ids...), Count: 1000, Block: readBlock}).Result()
		if err != nil && !errors.Is(err, redis.Nil) { // Nil: nothing came, or unblocked
			return err
		}
		for _, st := range streams {
			if s := byKey[st.Stream]; s != nil {
				b.deliver(s, st.Messages)
			}
		}
	}
}

// deliver hands s the events of entries it has not had, in order.
func (b *redisBus) deliver(s *sub, entries []redis.XMessage) {
	var events []chat.Event
	b.mu.Lock()
	current := b.subs[s.room] == s
	for _, e := range entries {
		s.pos = e.ID
		w, n, ok := entryID(e)
		if !ok || n <= s.last[w] {
			continue // a repeat, or not an entry of ours
		}
		s.last[w] = n
		var ev chat.Event
		if data, ok := e.Values["event"].(string); ok && json.Unmarshal([]byte(data), &ev) == nil {
			events = append(events, ev)
		}
	}
	b.mu.Unlock()
	if current {
		for _, ev := range events {
			s.deliver(ev)
		}
	}
}
