package ledger

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSettled: a read barrier returns the last committed sequence at once when nothing is being
// stored, waits for a store that had begun, and not for one that begins after it was called.
func TestSettled(t *testing.T) {
	l := openTest(t, t.TempDir())
	l.SetKeyring(testKeyring(t))
	ctx := context.Background()
	pos, err := l.Append(ctx, []Event{{Type: "t.v1", Payload: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := l.Settled(ctx); err != nil || seq != pos[0].Seq {
		t.Fatalf("idle: Settled = %d, %v; want %d", seq, err, pos[0].Seq)
	}
	// A store in progress (as store marks it), then one more that begins while Settled waits.
	l.stores.Add(1)
	done := make(chan error, 1)
	go func() {
		_, err := l.Settled(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Settled returned (%v) while a store was in progress", err)
	case <-time.After(30 * time.Millisecond):
	}
	l.stores.Add(1) // begins after the call: not waited for
	l.stored.Add(1)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Settled still waiting after the store it waited for ended")
	}
	// A store that never ends: the caller's deadline ends the wait.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.Settled(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Settled past its deadline = %v", err)
	}
	l.stored.Add(1)
}
