package websocket

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// queued counts the waiters in l's queue.
func (l *ctxMutex) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		return 0
	}
	n := 1
	for w := l.last.next; w != l.last; w = w.next {
		n++
	}
	return n
}

// taken reports whether l is held.
func (l *ctxMutex) taken() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// waitQueued waits until l has n waiters.
func waitQueued(t *testing.T, l *ctxMutex, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); l.queued() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters queued, want %d", l.queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCtxMutexHandsOverInOrder(t *testing.T) {
	var l ctxMutex
	if !l.tryLock() || l.tryLock() {
		t.Fatal("tryLock: want true on a free lock, then false")
	}
	order := make(chan int, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if r := l.lock(nil); r != lockTaken {
				t.Errorf("waiter %d: lock = %d, want lockTaken", i, r)
			}
			order <- i
			l.unlock()
		})
		waitQueued(t, &l, i+1)
	}
	l.unlock()
	for want := range 3 {
		if got := <-order; got != want {
			t.Fatalf("waiter %d got the lock in turn %d", got, want)
		}
	}
	// The last waiter tells its turn before it lets go.
	wg.Wait()
	if !l.tryLock() {
		t.Fatal("lock still held after every waiter unlocked")
	}
}

func TestCtxMutexCancel(t *testing.T) {
	var l ctxMutex
	l.tryLock()
	done := make(chan struct{})
	result := make(chan int)
	go func() { result <- l.lock(done) }()
	waitQueued(t, &l, 1)
	close(done)
	if r := <-result; r != lockCanceled {
		t.Fatalf("lock = %d, want lockCanceled", r)
	}
	if n := l.queued(); n != 0 {
		t.Fatalf("%d waiters left queued", n)
	}
	l.unlock()
	if !l.tryLock() {
		t.Fatal("lock held after a canceled waiter and the holder's unlock")
	}
}

// TestCtxMutexCancelRacesHandover cancels waiters just as the holder hands
// them the lock: whichever wins, the lock must end up free.
func TestCtxMutexCancelRacesHandover(t *testing.T) {
	var l ctxMutex
	for range 2000 {
		l.tryLock()
		done := make(chan struct{})
		result := make(chan int)
		go func() { result <- l.lock(done) }()
		waitQueued(t, &l, 1)
		go close(done)
		l.unlock()
		if r := <-result; r == lockTaken {
			l.unlock()
		} else if r != lockCanceled {
			t.Fatalf("lock = %d, want lockTaken or lockCanceled", r)
		}
		if !l.tryLock() {
			t.Fatal("lock left held after a cancel raced the handover")
		}
		l.unlock()
	}
}

func TestCtxMutexClose(t *testing.T) {
	var l ctxMutex
	l.tryLock()
	results := make(chan int, 2)
	for i := range 2 {
		go func() { results <- l.lock(nil) }()
		waitQueued(t, &l, i+1)
	}
	l.close()
	for range 2 {
		if r := <-results; r != lockClosed {
			t.Fatalf("waiter woken with %d, want lockClosed", r)
		}
	}
	if r := l.lock(nil); r != lockClosed {
		t.Fatalf("lock on a held, closed lock = %d, want lockClosed", r)
	}
	l.unlock()
	if r := l.lock(nil); r != lockTaken {
		t.Fatalf("lock on a free, closed lock = %d, want lockTaken", r)
	}
}

// TestCtxMutexCancelInQueue cancels waiters in the middle and at the end
// of the queue: the others keep their order.
func TestCtxMutexCancelInQueue(t *testing.T) {
	var l ctxMutex
	l.tryLock()
	order := make(chan string, 4)
	cancels := map[string]chan struct{}{"b": make(chan struct{}), "d": make(chan struct{})}
	for i, name := range []string{"a", "b", "c", "d"} {
		go func() {
			switch l.lock(cancels[name]) {
			case lockTaken:
				order <- name
				l.unlock()
			case lockCanceled:
				order <- "-" + name
			}
		}()
		waitQueued(t, &l, i+1)
	}
	close(cancels["b"])
	close(cancels["d"])
	for _, want := range []string{"-b", "-d"} {
		if got := <-order; got != "-b" && got != "-d" {
			t.Fatalf("got %q before the lock was released, want %q", got, want)
		}
	}
	waitQueued(t, &l, 2)
	l.unlock()
	for _, want := range []string{"a", "c"} {
		if got := <-order; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	// c lets go of the lock just after it says it had it.
	waitFor(t, "the lock to be free", l.tryLock)
}

// deadlineLog records the deadlines a ctxWatch sets.
type deadlineLog struct {
	mu          sync.Mutex
	read, write []time.Time
}

func (l *deadlineLog) SetReadDeadline(t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.read = append(l.read, t)
	return nil
}

func (l *deadlineLog) SetWriteDeadline(t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.write = append(l.write, t)
	return nil
}

// wait returns the deadlines set so far once n of them were, or after a
// while.
func (l *deadlineLog) wait(t *testing.T, n int) (read, write []time.Time) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		read, write = slices.Clone(l.read), slices.Clone(l.write)
		l.mu.Unlock()
		if len(read)+len(write) >= n || time.Now().After(deadline) {
			return read, write
		}
	}
}

// watchedConn is a Conn whose transport only records deadlines, for the
// tests of ctxWatch.
func watchedConn() (*Conn, *deadlineLog) {
	l := new(deadlineLog)
	c := new(Conn)
	c.tr.dl = l
	return c, l
}

// TestWatchSharedContext: a read and a write with the same context share
// one registration, and its end interrupts both.
func TestWatchSharedContext(t *testing.T) {
	t.Parallel()
	c, l := watchedConn()
	ctx, cancel := context.WithCancel(context.Background())
	c.watch(watchRead, ctx)
	c.watch(watchWrite, ctx)
	if w := c.watches.Load().dirs[watchWrite]; !w.shared || w.stop != nil {
		t.Fatalf("the write's watch: shared %t, own registration %t; want it sharing the read's", w.shared, w.stop != nil)
	}
	cancel()
	read, write := l.wait(t, 2)
	if !slices.Equal(read, []time.Time{longAgo}) || !slices.Equal(write, []time.Time{longAgo}) {
		t.Fatalf("deadlines set: read %v, write %v; want one past deadline each", read, write)
	}
	// Each direction clears its own deadline when it stops watching.
	c.pauseWatch(watchRead)
	c.pauseWatch(watchWrite)
	read, write = l.wait(t, 4)
	if len(read) != 2 || !read[1].IsZero() || len(write) != 2 || !write[1].IsZero() {
		t.Fatalf("deadlines set: read %v, write %v; want each cleared after it fired", read, write)
	}
}

// TestWatchHandsOver: when the direction that registered the shared
// context moves to another one, the registration becomes the other
// direction's, whose call the shared context still interrupts.
func TestWatchHandsOver(t *testing.T) {
	t.Parallel()
	c, l := watchedConn()
	shared, cancelShared := context.WithCancel(context.Background())
	other, cancelOther := context.WithCancel(context.Background())
	defer cancelOther()
	c.watch(watchRead, shared)
	c.watch(watchWrite, shared)
	c.watch(watchRead, other)
	if w := c.watches.Load().dirs[watchWrite]; w.shared || w.stop == nil {
		t.Fatalf("the write's watch: shared %t, own registration %t; want the registration handed over", w.shared, w.stop != nil)
	}
	cancelShared()
	read, write := l.wait(t, 1)
	if len(read) != 0 || !slices.Equal(write, []time.Time{longAgo}) {
		t.Fatalf("deadlines set: read %v, write %v; want the write's alone", read, write)
	}
	c.killWatch()
}

// TestWatchRegistrations: a read and a write with the same context cost
// one registration's allocations, half of what two contexts cost.
func TestWatchRegistrations(t *testing.T) {
	c, _ := watchedConn()
	a, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	b, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	cycle := func(read, write context.Context) float64 {
		return testing.AllocsPerRun(100, func() {
			c.watch(watchRead, read)
			c.watch(watchWrite, write)
			c.pauseWatch(watchRead)
			c.pauseWatch(watchWrite)
		})
	}
	one, two := cycle(a, a), cycle(a, b)
	if one == 0 || two != 2*one {
		t.Fatalf("allocations: %v with one context, %v with two; want twice as many with two", one, two)
	}
}

// TestWatchJoinsEndedContext: a direction that joins the registration of a
// context that has already ended is interrupted too: the registration
// will not fire again.
func TestWatchJoinsEndedContext(t *testing.T) {
	t.Parallel()
	c, l := watchedConn()
	ctx, cancel := context.WithCancel(context.Background())
	c.watch(watchRead, ctx)
	cancel()
	l.wait(t, 1)
	c.watch(watchWrite, ctx)
	read, write := l.wait(t, 2)
	if !slices.Equal(read, []time.Time{longAgo}) || !slices.Equal(write, []time.Time{longAgo}) {
		t.Fatalf("deadlines set: read %v, write %v; want one past deadline each", read, write)
	}
	c.killWatch()
}

// TestWatchMadeOnDemand: a connection read and written with contexts that
// cannot end holds no watch; the first that can end makes one, which
// interrupts the read it watches; once the connection is closed, watches
// do nothing and hold no registration.
func TestWatchMadeOnDemand(t *testing.T) {
	t.Parallel()
	s, conns := acceptOne(t, &AcceptOptions{KeepaliveInterval: -1})
	c := dialT(t, wsURL(s), nil)
	sc := <-conns
	bg := context.Background()
	if err := c.Write(bg, MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := sc.Read(bg); err != nil || string(p) != "hello" {
		t.Fatalf("Read: %q, %v", p, err)
	}
	if w := sc.watches.Load(); w != nil {
		t.Fatal("a connection read with context.Background made a watch")
	}
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	if _, _, err := sc.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with a context that ends: %v, want its deadline", err)
	}
	if w := sc.watches.Load(); w == nil || w == deadWatch {
		t.Fatal("a Read with a context that can end made no watch")
	}
	sc.CloseNow()
	if w := sc.watches.Load(); w != deadWatch {
		t.Fatal("a closed connection's watch is not deadWatch")
	}
	live, stop := context.WithCancel(bg)
	defer stop()
	sc.watch(watchRead, live)
	sc.watch(watchWrite, live)
	for i := range deadWatch.dirs {
		if d := deadWatch.dirs[i]; d.done != nil || d.stop != nil {
			t.Fatalf("deadWatch direction %d holds a registration", i)
		}
	}
}

// TestLockPassedOn: a waiter handed a lock as its context ends passes the
// lock on, and does what a holder does as it lets go: writes the queue
// (frame lock), moves what Enqueue left behind the message (message
// lock), wakes a Ping that waits for the reader to let go (read lock).
// Others leave that to the holder, and nobody did it: with the
// connection open, an Enqueued message, and every one after it, waited
// for a Write or a full queue; a message stayed in the backlog; a Ping
// whose pong had come waited for its context to end.
//
// On one processor the test's goroutine goes on between the end of the
// waiter's context and letting go of the lock, so the waiter is handed the
// lock with its context ended; it then takes the lock or passes it on, as
// its select chooses, and each case runs 8 times. Not parallel: it sets
// GOMAXPROCS.
func TestLockPassedOn(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	s, conns := acceptOne(t, nil)
	ctx := context.Background()
	read := func(t *testing.T, c, sender *Conn, want ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		for _, w := range want {
			if _, p, err := c.Read(ctx); err != nil || string(p) != w {
				t.Fatalf("read %q, %v; want %q, the sender holding %d bytes", p, err, w, sender.Buffered())
			}
		}
	}
	t.Run("frame lock", func(t *testing.T) {
		for range 8 {
			c := dialT(t, wsURL(s), nil)
			sc := <-conns
			if !sc.frameMu.tryLock() { // a writer, its queue written
				t.Fatal("frame lock taken")
			}
			pctx, cancel := context.WithCancel(ctx)
			pinged := make(chan error, 1)
			go func() { pinged <- sc.Ping(pctx) }()
			waitQueued(t, &sc.frameMu, 1) // the Ping
			if err := sc.Enqueue(MessageText, []byte("a")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // the timer finds the lock held
			cancel()
			sc.frameMu.unlock()
			sc.flushQueue(ctx) // the writer's last look, as writeFrame's
			<-pinged
			if err := sc.Enqueue(MessageText, []byte("b")); err != nil {
				t.Fatal(err)
			}
			read(t, c, sc, "a", "b")
			sc.CloseNow()
		}
	})
	t.Run("message lock", func(t *testing.T) {
		for range 8 {
			c := dialT(t, wsURL(s), nil)
			sc := <-conns
			w, err := sc.Writer(ctx, MessageText)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("w"))
			wctx, cancel := context.WithCancel(ctx)
			wrote := make(chan error, 1)
			go func() { wrote <- sc.Write(wctx, MessageText, []byte("never")) }()
			waitQueued(t, &sc.msgMu, 1) // the Write
			cancel()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := sc.Enqueue(MessageText, []byte("e")); err != nil {
				t.Fatal(err)
			}
			if err := <-wrote; err == nil {
				t.Fatal("the Write whose context ended succeeded")
			}
			read(t, c, sc, "w", "e")
			sc.CloseNow()
		}
	})
	t.Run("read lock", func(t *testing.T) {
		for range 8 {
			c := dialT(t, wsURL(s), nil)
			sc := <-conns
			go echo(sc)              // answers pings
			if !c.readMu.tryLock() { // a reader at work
				t.Fatal("read lock taken")
			}
			rctx, cancel := context.WithCancel(ctx)
			readErr := make(chan error, 1)
			go func() { _, _, err := c.Read(rctx); readErr <- err }()
			waitQueued(t, &c.readMu, 1) // the Read
			pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
			pinged := make(chan error, 1)
			go func() { pinged <- c.Ping(pctx) }()
			time.Sleep(20 * time.Millisecond) // the Ping waits for the reader
			cancel()
			c.readUnlock()
			<-readErr
			if err := <-pinged; err != nil {
				t.Fatalf("Ping: %v, its pong having come", err)
			}
			pcancel()
			sc.CloseNow()
		}
	})
}
