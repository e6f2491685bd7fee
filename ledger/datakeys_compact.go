package ledger

import (
	"context"
	"slices"
	"time"
)

// Compaction of the wraps subject. Group commit stores the wraps of a flush's new keys in one
// message, and under a few concurrent writers a flush holds a few keys: 100k KV writes at
// c=16 left ~22,000 wraps messages, and loading the tree at unseal costs per message (the
// consumer's delivery, ~20 µs each here), so the data keys became what a restart waited for
// (0.5 s at 100k, 6 s at 1M, beside the checkpoint). Once a group is full its leaves never
// change but by a shred, which retires the group; so the writer re-wraps a full group — its
// own wrap and its leaves', under the parents they already have — into one message with
// other groups, and the messages it came from, left with no live wrap, are deleted.
//
// Nothing about shredding changes: a compacted wrap is the same key under the same parent,
// sealed again; the earlier copies still open only under that parent, whose retirement (with
// its shelf, erased from the root) makes every copy unreadable at once. A crash between the
// new message and the deletes leaves two wraps of a node under one parent, which Load reads
// as it always has (refs, newest first); the next compaction of the group drops both.

const (
	// compactGroupsPerStep bounds a step: ≤ 4×65 wraps (~28 KB) and the deletes of the
	// ~4×14 messages they came from, a millisecond or two of the writer's time.
	compactGroupsPerStep = 4
	// compactIdle: the writer compacts after this long without a request...
	compactIdle = 20 * time.Millisecond
	// compactBacklog: ...or between flushes once this many full groups wait.
	compactBacklog = 256
	// compactMinMsgs: a group whose wraps are in fewer messages is left as it is.
	compactMinMsgs = 3
)

// compactWanted reports whether a compaction step has work: groups queued, or the tree as
// loaded not yet looked over. Only the node that writes the tree compacts it (d.wrote: a
// flush of its own since it last read the tree), so a standby, which loads the tree and
// never flushes, does not append beside the active node. Called by the writer.
func (d *DataKeys) compactWanted() (bool, int) {
	d.treeMu.Lock()
	defer d.treeMu.Unlock()
	d.mu.RLock()
	closed, kr := d.closed, d.kr
	d.mu.RUnlock()
	if d.t == nil || closed || kr == nil || !d.wrote || d.noCompact || time.Now().Before(d.compactAfter) {
		return false, 0
	}
	return len(d.t.compactQ) > 0 || !d.t.compactScanned, len(d.t.compactQ)
}

// compactRetry is how long compaction rests after a failed step; compactDeadline bounds one.
const (
	compactRetry    = 5 * time.Second
	compactDeadline = 10 * time.Second
)

// compactStep compacts up to compactGroupsPerStep queued groups. A failure is logged and the
// tree read again, as after a failed flush; the groups are looked for again by that reload.
func (d *DataKeys) compactStep(quit <-chan struct{}) {
	// Bounded, and cut short by Close: a step stores in the background, and JetStream going
	// away must not hold Close (a seal) for store's whole retry window.
	bounded, cancelBound := context.WithTimeout(context.Background(), compactDeadline)
	defer cancelBound()
	ctx, cancel := untilQuit(bounded, quit)
	defer cancel()
	d.treeMu.Lock()
	defer d.treeMu.Unlock()
	d.mu.RLock()
	closed, kr, t := d.closed, d.kr, d.t
	d.mu.RUnlock()
	if closed || kr == nil || t == nil {
		return
	}
	if !t.compactScanned {
		t.compactScanned = true
		for _, g := range t.groups {
			if g != t.open && g.children() >= dkGroupSize {
				t.compactQ = append(t.compactQ, g)
			}
		}
	}
	var groups []*dkInner
	for len(t.compactQ) > 0 && len(groups) < compactGroupsPerStep {
		g := t.compactQ[0]
		t.compactQ[0] = nil
		t.compactQ = t.compactQ[1:]
		// (A group can be queued twice: filled, and found by the scan after a reload.)
		if t.groups[g.node] == g && !slices.Contains(groups, g) && t.spread(g) >= compactMinMsgs {
			groups = append(groups, g)
		}
	}
	if len(t.compactQ) == 0 {
		t.compactQ = nil // let the backing array go
	}
	if len(groups) == 0 {
		return
	}
	// Under mu: ShredLater takes leaves out of service (clearing their keys) under it alone.
	d.mu.RLock()
	p := t.planCompact(groups)
	d.mu.RUnlock()
	if len(p.wires) == 0 {
		return
	}
	seqs, err := d.storeWires(ctx, t, p.wires)
	if err != nil {
		d.compactAfter = time.Now().Add(compactRetry)
		if ctx.Err() != nil {
			return // closing, or JetStream not answering: Load or the next flush reads the tree
		}
		if d.log != nil {
			d.log.Warn("data-key compaction failed; reading the tree again", "err", err)
		}
		if rerr := d.reload(ctx, kr); rerr != nil && d.log != nil {
			d.log.Error("data keys: reading the tree after a failed compaction failed", "err", rerr)
		}
		return
	}
	d.mu.Lock()
	garbage := p.apply(seqs, 0)
	d.stats.Compacted += uint64(len(p.wires))
	d.mu.Unlock()
	d.discard(ctx, garbage)
}

// spread counts the wraps messages holding g's live wraps, its own and its leaves'.
func (t *dkTree) spread(g *dkInner) int {
	var seen []uint64
	add := func(refs []dkRef) {
		for _, r := range refs {
			if len(seen) < compactMinMsgs*4 && !containsSeq(seen, r.seq) {
				seen = append(seen, r.seq)
			}
		}
	}
	add(g.refs)
	for _, l := range g.leaves {
		add(l.refs)
	}
	return len(seen)
}

func containsSeq(s []uint64, seq uint64) bool {
	for _, x := range s {
		if x == seq {
			return true
		}
	}
	return false
}

// planCompact re-wraps groups and their leaves in service under the parents they have; apply
// then drops their earlier wraps under those parents. A leaf out of service (ShredLater) keeps
// its wrap where it is until its shred. Called with mu held for reading.
func (t *dkTree) planCompact(groups []*dkInner) *dkPlan {
	p := &dkPlan{t: t, retiredGroups: map[uint64]*dkInner{}, retiredShelves: map[uint64]*dkInner{},
		placeL: map[int]*dkLeaf{}, placeG: map[int]*dkInner{}, fill: map[uint64]int{},
		open: t.open, shelf: t.openShelf, compact: true}
	for _, g := range groups {
		if len(g.refs) == 0 {
			continue
		}
		s := t.shelves[g.refs[0].parent]
		if s == nil {
			continue
		}
		p.placeG[len(p.wires)] = g
		p.wires = append(p.wires, dkWire{kind: dkKindGroup, node: g.node, parent: s.node,
			sealed: seal(s.aead, g.key, wrapAD(dkKindGroup, g.node, s.node, ""))})
		for _, l := range g.leaves {
			if t.leaves[l.id] != l {
				continue
			}
			p.placeL[len(p.wires)] = l
			p.wires = append(p.wires, dkWire{kind: dkKindLeaf, node: l.node, parent: g.node, created: l.created, id: l.id,
				sealed: seal(g.aead, l.key, wrapAD(dkKindLeaf, l.node, g.node, l.id))})
		}
	}
	return p
}
