package ledger

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
)

// TestDataKeysCompaction: keys created one flush at a time leave a wraps message per key; once
// the writer is idle it re-wraps each full group into a few messages and deletes the rest,
// and the keys are what they were — in memory, after a reload, and after a crash between the
// compacted message and the deletes (two wraps of a node under one parent). A key shredded
// after compaction, or taken out of service before it and shredded later, opens through
// nothing stored. Only a node that writes the tree compacts it.
func TestDataKeysCompaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	setCompact := func(d *DataKeys, on bool) {
		d.treeMu.Lock()
		d.noCompact = !on
		d.treeMu.Unlock()
	}
	setCompact(d, false)
	const full = 5
	const n = full*dkGroupSize + 10
	keys := map[string][]byte{}
	id := func(i int) string { return fmt.Sprintf("kv.cmp.k%04d", i) }
	for i := range n {
		key, err := d.New(ctx, k, id(i))
		if err != nil {
			t.Fatal(err)
		}
		keys[id(i)] = key
	}
	before := streamMsgs(t, d)
	if before < n {
		t.Fatalf("control: %d keys created one at a time in %d messages", n, before)
	}

	// A key taken out of service (ShredLater) before compaction is not re-wrapped by it, and
	// its shred erases it.
	later := id(70)
	if err := d.ShredLater([]string{later}); err != nil {
		t.Fatal(err)
	}
	delete(keys, later)
	setCompact(d, true)
	d.kick <- struct{}{} // the writer waits for a request; let it look again
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _ := d.Stats()
		want, _ := d.compactWanted()
		if st.Compacted >= full*(dkGroupSize+1)-1 && !want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("compaction did not run: %d wraps compacted, still wanted %v", st.Compacted, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	after := streamMsgs(t, d)
	// The full groups in ⌈5/4⌉ messages; the open group's 10 keys (and its own wrap) as they came.
	if limit := uint64((full+compactGroupsPerStep-1)/compactGroupsPerStep + 10 + 2); after > limit {
		t.Fatalf("%d messages after compaction (from %d), want at most %d", after, before, limit)
	}
	t.Logf("%d keys: %d wraps messages before compaction, %d after", n, before, after)
	for st, _ := d.Stats(); st.ShredBacklog > 0; st, _ = d.Stats() {
		if time.Now().After(deadline) {
			t.Fatal("the deferred shred did not run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if recoverable(t, d, k, later) {
		t.Fatal("a key shredded later, around a compaction, still opens from the stream")
	}
	check := func(d *DataKeys, skip string) {
		t.Helper()
		want := len(keys)
		if skip != "" {
			want--
		}
		if d.Len() != want {
			t.Fatalf("%d keys, want %d", d.Len(), want)
		}
		for id, key := range keys {
			if id == skip {
				continue
			}
			if got, ok := d.Get(id); !ok || !bytes.Equal(got, key) {
				t.Fatalf("key %s differs after compaction", id)
			}
		}
	}
	check(d, "")
	check(openDataKeys(t, l, k), "")

	// A crash after the compacted message, before the deletes: the stream holds two wraps of
	// the nodes under their parents; a reload opens the same keys.
	d.treeMu.Lock()
	var groups []*dkInner
	for _, g := range d.t.groups {
		if g != d.t.open {
			groups = append(groups, g)
		}
	}
	d.mu.RLock()
	p := d.t.planCompact(groups)
	d.mu.RUnlock()
	moved := 0
	for _, w := range p.wires {
		if w.kind == dkKindLeaf {
			moved++
		}
	}
	if _, err := d.storeWires(ctx, d.t, p.wires); err != nil {
		d.treeMu.Unlock()
		t.Fatal(err)
	}
	d.treeMu.Unlock()
	crashed := openDataKeys(t, l, k)
	check(crashed, "")
	// A node that only loaded the tree (a standby) never compacts it: it is not the writer.
	if want, _ := crashed.compactWanted(); want {
		t.Fatal("a node that has not written the tree wants to compact it")
	}
	doubled := 0
	crashed.treeMu.Lock()
	for _, g := range crashed.t.groups {
		for _, lf := range g.leaves {
			if len(lf.refs) >= 2 {
				doubled++
			}
		}
	}
	crashed.treeMu.Unlock()
	if moved < (full-1)*dkGroupSize || doubled < moved {
		t.Fatalf("%d leaves with two wraps after the crash, want the %d compacted again", doubled, moved)
	}

	// A shred after compaction erases the key from disk; its neighbours stay.
	victim := id(3)
	if err := crashed.Shred(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if recoverable(t, crashed, k, victim) {
		t.Fatal("a shredded key of a compacted group still opens from the stream")
	}
	check(openDataKeys(t, l, k), victim)
}
