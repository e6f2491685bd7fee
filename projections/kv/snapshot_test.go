package kv

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"

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

// BenchmarkRestore: restoring the binary snapshot of a view with 100,000 secrets, one version
// each, as a checkpoint restores it at unseal.
func BenchmarkRestore(b *testing.B) {
	v := New()
	for i := range 100_000 {
		p := VersionWrittenPayload{Mount: "m", Path: fmt.Sprintf("app/%06d/db", i), Version: 1, Created: t0,
			KeyID: fmt.Sprintf("dk.g%d.%032x", i/4096, i), Sealed: bytes.Repeat([]byte{'s'}, 96)}
		if err := v.Apply(rec(uint64(i+1), VersionWritten, p)); err != nil {
			b.Fatal(err)
		}
	}
	snap, err := v.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := New().Restore(snap); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRestoredArenaKeepsSecretsApart: a view restored from its snapshot (paths, versions and
// sealed values carved out of shared buffers) and then written to — new versions appended,
// old ones trimmed — ends where a view that applied every event itself ends.
func TestRestoredArenaKeepsSecretsApart(t *testing.T) {
	var recs []ledger.Record
	seq := uint64(0)
	write := func(path string, n uint64, sealed string, trim ...uint64) {
		seq++
		p := VersionWrittenPayload{Mount: "m", Path: path, Version: n, Created: t0.Add(time.Duration(seq) * time.Second),
			KeyID: fmt.Sprintf("dk.g0.%032x", seq), Sealed: []byte(sealed), Trim: trim}
		if len(trim) > 0 {
			p.Oldest = trim[len(trim)-1] + 1
		}
		recs = append(recs, rec(seq, VersionWritten, p))
	}
	for i := range 50 {
		write(fmt.Sprintf("p%02d", i), 1, fmt.Sprintf("one-%02d", i))
		write(fmt.Sprintf("p%02d", i), 2, fmt.Sprintf("two-%02d", i))
	}
	before := len(recs)
	for i := range 50 {
		write(fmt.Sprintf("p%02d", i), 3, strings.Repeat("x", 40+i), 1)
	}
	whole := New()
	applyAll(t, whole, recs)
	restored := New()
	applyAll(t, restored, recs[:before])
	snap, err := restored.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored = New()
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	applyAll(t, restored, recs[before:])
	if whole.Digest() != restored.Digest() {
		t.Fatal("restored then written differs from written throughout")
	}
	for i := range 50 {
		s, ok := restored.Secret("m", fmt.Sprintf("p%02d", i))
		if !ok || string(s.Versions[2].Sealed) != fmt.Sprintf("two-%02d", i) || string(s.Versions[3].Sealed) != strings.Repeat("x", 40+i) {
			t.Fatalf("p%02d after restore and writes: %+v", i, s)
		}
	}
}
