package commands

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestKeyLocksNested: a request holding one key can take any other key, however many keys
// exist (striped locks deadlocked when two keys shared a stripe), and a key is exclusive.
func TestKeyLocksNested(t *testing.T) {
	var k keyLocks
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			a := k.lock(fmt.Sprintf("token-use\x00%d", i))
			b := k.lock(fmt.Sprintf("mount\x00%d", i))
			b()
			a()
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("nested locks of two different keys deadlocked")
	}
	if len(k.m) != 0 {
		t.Fatalf("%d keys left in the lock table after every holder let go", len(k.m))
	}

	var mu sync.Mutex
	held, maxHeld := 0, 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				unlock := k.lock("one")
				mu.Lock()
				held++
				maxHeld = max(maxHeld, held)
				mu.Unlock()
				mu.Lock()
				held--
				mu.Unlock()
				unlock()
			}
		})
	}
	wg.Wait()
	if maxHeld != 1 {
		t.Fatalf("%d holders of one key at once", maxHeld)
	}
}
