package seal

import (
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func restored(cluster string, term uint32) RestoredPayload {
	return RestoredPayload{Shares: 3, Threshold: 2, Keyring: []byte("snap-" + cluster), Term: term, ClusterID: cluster,
		InitTime: time.Unix(7, 0).UTC(), Object: "restore/" + cluster, SnapshotSeq: 41, SnapshotHash: "ab"}
}

// TestRestoredConformance: the view contract holds across a restore.
func TestRestoredConformance(t *testing.T) {
	recs := []ledger.Record{
		rec(1, Initialized, InitializedPayload{Shares: 5, Threshold: 3, Keyring: []byte("k1"), ClusterID: "a"}),
		rec(2, KeyringRotated, RotatedPayload{Term: 2, Keyring: []byte("k2")}),
		rec(3, SnapshotRestored, restored("b", 4)),
		rec(4, KeyringRotated, RotatedPayload{Term: 5, Keyring: []byte("k5")}),
	}
	viewtest.Conformance(t, func() projections.View { return New() }, recs)
}

// TestRestoreReplacesSealState: a restore replaces the whole seal state with the snapshot's and
// records where it happened; a later init is ignored, later rotations apply, a second restore
// wins over the first, and an incomplete payload is refused.
func TestRestoreReplacesSealState(t *testing.T) {
	v := New()
	if v.Initialized() || v.ClusterID() != "" {
		t.Fatal("a new view says it is initialized")
	}
	for _, r := range []ledger.Record{
		rec(1, Initialized, InitializedPayload{Shares: 5, Threshold: 3, Keyring: []byte("k1"), ClusterID: "a"}),
		rec(2, KeyringRotated, RotatedPayload{Term: 7, Keyring: []byte("k7")}),
		rec(3, SnapshotRestored, restored("b", 2)),
		rec(4, Initialized, InitializedPayload{Shares: 1, Threshold: 1, Keyring: []byte("evil"), ClusterID: "c"}),
		rec(5, KeyringRotated, RotatedPayload{Term: 3, Keyring: []byte("k3")}),
	} {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	s := v.State()
	if !v.Initialized() || v.ClusterID() != "b" {
		t.Fatalf("accessors: initialized %v cluster %q, want true \"b\"", v.Initialized(), v.ClusterID())
	}
	if !s.Initialized || s.ClusterID != "b" || s.Threshold != 2 || s.Term != 3 || string(s.Keyring) != "k3" {
		t.Fatalf("state after restore %+v", s)
	}
	if s.Restore == nil || s.Restore.Seq != 3 || s.Restore.Object != "restore/b" || s.Restore.SnapshotSeq != 41 {
		t.Fatalf("restore record %+v", s.Restore)
	}
	s.Restore.Seq = 99 // State returns a copy
	if v.State().Restore.Seq != 3 {
		t.Fatal("State shares the restore record")
	}
	if err := v.Apply(rec(6, SnapshotRestored, restored("d", 1))); err != nil {
		t.Fatal(err)
	}
	if s := v.State(); s.ClusterID != "d" || s.Restore.Seq != 6 || s.Term != 1 {
		t.Fatalf("second restore %+v", s)
	}
	if err := v.Apply(rec(7, SnapshotRestored, RestoredPayload{ClusterID: "e"})); err == nil {
		t.Fatal("an incomplete restore payload was accepted")
	}
}
