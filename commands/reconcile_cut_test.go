package commands

import (
	"context"
	"testing"
	"time"
)

// TestReconcileSparesThisUnsealsKeys: the first reconcile pass after an unseal (a duty that
// starts postUnsealGrace after it, while requests are answered) shreds the unreferenced data
// keys stored before the unseal, never one stored after it: that is a write of this unseal
// whose event may not have been applied yet. A key stored right after the unseal and never
// referenced survives the duty's pass; the same pass with its cut moved past the key shreds
// it, so the cut is what spares it.
func TestReconcileSparesThisUnsealsKeys(t *testing.T) {
	c, _ := newTestCore(t)
	ctx := context.Background()
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	const id = "kv.inflight.00000000000000000000000000000001"
	if _, err := st.datakeys.New(ctx, st.keyring.Load(), id); err != nil {
		t.Fatal(err)
	}
	// The duty's first pass: postUnsealGrace after the unseal, then as soon as the views
	// have caught up (an empty log: at once).
	time.Sleep(postUnsealGrace + 2*time.Second)
	if _, ok := st.datakeys.Get(id); !ok {
		t.Fatal("a key stored after the unseal was shredded by the first reconcile pass")
	}
	c.reconcileCaughtUp(ctx, st, time.Now())
	if _, ok := st.datakeys.Get(id); ok {
		t.Fatal("an unreferenced key stored before the cut survived a reconcile pass")
	}
}
