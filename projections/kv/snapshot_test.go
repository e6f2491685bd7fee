package kv

import (
	"testing"

	"github.com/ledger-secrets/ledger/projections"
)

// jsonSnapshot is what builds before format 2 wrote (format 1).
func jsonSnapshot(v *View) ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	mounts := make(map[string]*mountSnapshot, len(v.mounts))
	for uuid, ms := range v.mounts {
		if ms.config == nil && len(ms.secrets) == 0 && len(ms.values) == 0 {
			continue
		}
		m := &mountSnapshot{Config: ms.config, Secrets: make(map[string]*Secret, len(ms.secrets)), Values: ms.values}
		for p, s := range ms.secrets {
			pub := s.public()
			m.Secrets[p] = &pub
		}
		mounts[uuid] = m
	}
	return projections.EncodeMounts(1, mounts, v.disabled)
}

func TestSnapshotFormat1StillRestores(t *testing.T) {
	v := New()
	applyAll(t, v, sample())
	old, err := jsonSnapshot(v)
	if err != nil || old[0] != '{' {
		t.Fatalf("format 1: %.20q %v", old, err)
	}
	r := New()
	if err := r.Restore(old); err != nil {
		t.Fatal(err)
	}
	if r.Digest() != v.Digest() {
		t.Fatal("a format 1 snapshot restores to another state")
	}
	if got, _ := r.Secret("m1", "app/db"); got.CurrentVersion != 4 || len(got.Versions) != 3 || string(got.Versions[4].Sealed) != "ct-5" {
		t.Fatalf("restored secret: %+v", got)
	}
	if l := r.List("m1", "app/"); len(l) != 2 {
		t.Fatalf("restored index: %v", l)
	}
}

func TestSnapshotFormat2RejectsDamage(t *testing.T) {
	v := New()
	applyAll(t, v, sample())
	good, err := v.Snapshot()
	if err != nil || good[0] != snapshotBinary {
		t.Fatalf("snapshot: %v", err)
	}
	want := v.Digest()
	for n := range len(good) {
		r := New()
		if err := r.Restore(good[:n]); err == nil {
			t.Fatalf("accepted the first %d of %d bytes", n, len(good))
		}
	}
	if err := New().Restore(append(append([]byte(nil), good...), 0)); err == nil {
		t.Fatal("accepted trailing bytes")
	}
	// A flipped byte is refused or decodes to some other state, never a panic.
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0xff
		r := New()
		if r.Restore(bad) == nil && i > 0 && r.Digest() == want && string(bad) != string(good) {
			t.Fatalf("flipping byte %d changed nothing", i)
		}
	}
}
