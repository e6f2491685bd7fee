// Package viewtest is the conformance suite every projection passes: applying events one by one
// (with reads in between), rebuilding from sequence 0, and restoring from a snapshot taken
// half-way all end in the same state, as their digests show.
package viewtest

import (
	"testing"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

// Conformance checks the View contract over recs, which must change the view's state.
func Conformance(t *testing.T, newView func() projections.View, recs []ledger.Record) {
	t.Helper()
	if len(recs) == 0 {
		t.Fatal("viewtest: no records: the suite would prove nothing")
	}
	empty := newView().Digest()

	rebuilt := newView()
	for _, r := range recs {
		if err := rebuilt.Apply(r); err != nil {
			t.Fatalf("rebuild: apply %s at %s: %v", r.Type, r.Pos, err)
		}
	}
	want := rebuilt.Digest()
	if want == empty {
		t.Fatal("viewtest: digest did not change: the records do not touch the view, or Digest ignores state")
	}

	incremental := newView()
	for _, r := range recs {
		if err := incremental.Apply(r); err != nil {
			t.Fatalf("incremental: apply %s: %v", r.Type, err)
		}
		incremental.Digest()
		if _, err := incremental.Snapshot(); err != nil {
			t.Fatalf("incremental: snapshot: %v", err)
		}
	}
	if got := incremental.Digest(); got != want {
		t.Fatal("apply incrementally != rebuild from 0")
	}

	half := len(recs) / 2
	first := newView()
	for _, r := range recs[:half] {
		if err := first.Apply(r); err != nil {
			t.Fatalf("restore: apply: %v", err)
		}
	}
	snap, err := first.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	restored := newView()
	if err := restored.Restore(snap); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if restored.Digest() != first.Digest() {
		t.Fatal("restore from snapshot changed the state")
	}
	for _, r := range recs[half:] {
		if err := restored.Apply(r); err != nil {
			t.Fatalf("after restore: apply: %v", err)
		}
	}
	if restored.Digest() != want {
		t.Fatal("restore from snapshot + tail != rebuild from 0")
	}
	if err := newView().Restore([]byte("not a snapshot")); err == nil {
		t.Fatal("Restore accepted garbage")
	}
}
