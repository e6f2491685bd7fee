package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBurstThenRefill(t *testing.T) {
	l := New(5, time.Minute, 0)
	for i := range 5 {
		if ok, _ := l.Take(t0, "k"); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	ok, wait := l.Take(t0, "k")
	if ok || wait != 12*time.Second {
		t.Fatalf("6th attempt: ok=%v wait=%v, want refused for 12s", ok, wait)
	}
	if ok, wait := l.Take(t0.Add(5*time.Second), "k"); ok || wait != 7*time.Second {
		t.Fatalf("5s later: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Take(t0.Add(12*time.Second), "k"); !ok {
		t.Fatal("one attempt regained after 12s")
	}
	if ok, _ := l.Take(t0.Add(12*time.Second), "k"); ok {
		t.Fatal("only one attempt regained after 12s")
	}
	if ok, _ := l.Take(t0.Add(time.Hour), "k"); !ok {
		t.Fatal("not refilled after an hour")
	}
}

func TestAllOrNothing(t *testing.T) {
	l := New(2, time.Minute, 0)
	l.Take(t0, "ip", "alice")
	l.Take(t0, "ip", "alice")
	// The ip bucket is empty: bob's attempt from it is refused and bob's budget is not touched.
	if ok, _ := l.Take(t0, "ip", "bob"); ok {
		t.Fatal("empty ip bucket allowed an attempt")
	}
	for i := range 2 {
		if ok, _ := l.Take(t0, "other-ip", "bob"); !ok {
			t.Fatalf("bob attempt %d refused: a refused Take consumed his budget", i)
		}
	}
}

func TestRefund(t *testing.T) {
	l := New(1, time.Minute, 0)
	for range 10 {
		if ok, _ := l.Take(t0, "k"); !ok {
			t.Fatal("a refunded attempt was not given back")
		}
		l.Refund(t0, "k")
	}
	if l.Len() != 0 {
		t.Fatalf("full buckets kept: %d", l.Len())
	}
	l.Refund(t0, "never-taken") // harmless
	if l.Len() != 0 {
		t.Fatal("refund created a bucket")
	}
}

func TestClockGoingBackwards(t *testing.T) {
	l := New(1, time.Minute, 0)
	l.Take(t0, "k")
	if ok, _ := l.Take(t0.Add(-time.Hour), "k"); ok {
		t.Fatal("a clock step backwards refilled the bucket")
	}
}

func TestMemoryBound(t *testing.T) {
	l := New(1, time.Minute, 100)
	for i := range 1000 {
		l.Take(t0, fmt.Sprintf("key-%d", i))
	}
	if n := l.Len(); n > 100 {
		t.Fatalf("%d keys remembered, bound is 100", n)
	}
	// Full buckets go first: after the window every old key is forgettable.
	l.Take(t0.Add(time.Hour), "late")
	if n := l.Len(); n > 100 {
		t.Fatalf("%d keys remembered", n)
	}
}

func TestConcurrentTakesRespectTheBudget(t *testing.T) {
	l := New(5, time.Minute, 0)
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got int
	)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.Take(t0, "ip", "user"); ok {
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got != 5 {
		t.Fatalf("%d concurrent attempts allowed, want 5", got)
	}
}
