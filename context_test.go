package websocket

import (
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
	for i := range 3 {
		go func() {
			if r := l.lock(nil); r != lockTaken {
				t.Errorf("waiter %d: lock = %d, want lockTaken", i, r)
			}
			order <- i
			l.unlock()
		}()
		waitQueued(t, &l, i+1)
	}
	l.unlock()
	for want := range 3 {
		if got := <-order; got != want {
			t.Fatalf("waiter %d got the lock in turn %d", got, want)
		}
	}
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
	if !l.tryLock() {
		t.Fatal("lock still held")
	}
}
