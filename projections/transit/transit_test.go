package transit

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

func rec(seq uint64, typ string, p any) ledger.Record {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return ledger.Record{Event: ledger.Event{Type: typ, Payload: b}, Pos: ledger.Position{Seq: seq}}
}

func material(seed byte, at time.Time) Version {
	return Version{Created: at, Key: bytes.Repeat([]byte{seed}, 32), HMACKey: bytes.Repeat([]byte{seed + 1}, 32)}
}

func created(seq uint64, m, name string, period time.Duration) ledger.Record {
	at := t0.Add(time.Duration(seq) * time.Second)
	return rec(seq, KeyCreated, KeyPayload{Mount: m, Name: name, Key: Key{
		Name: name, Type: "aes256-gcm96", Config: Config{MinDecryptionVersion: 1, AutoRotatePeriod: period},
		LatestVersion: 1, Versions: map[int]Version{1: material(byte(seq), at)},
	}})
}

func rotated(seq uint64, m, name string, n int) ledger.Record {
	return rec(seq, KeyRotated, RotatedPayload{Mount: m, Name: name, Version: n,
		Material: material(byte(seq), t0.Add(time.Duration(seq)*time.Second))})
}

func sample() []ledger.Record {
	return []ledger.Record{
		created(1, "m1", "app", 0),
		rotated(2, "m1", "app", 2),
		rotated(3, "m1", "app", 3),
		rotated(4, "m1", "app", 3), // lost a race: ignored
		rec(5, KeyConfigUpdated, ConfigPayload{Mount: "m1", Name: "app", Config: Config{MinDecryptionVersion: 2, MinEncryptionVersion: 3, DeletionAllowed: true}}),
		rec(6, KeyTrimmed, TrimmedPayload{Mount: "m1", Name: "app", MinAvailableVersion: 2}),
		created(7, "m1", "gone", 0),
		rec(8, KeyDeleted, DeletedPayload{Mount: "m1", Name: "gone"}),
		created(9, "m1", "rotating", time.Hour),
		created(10, "m2", "other", 0),
		created(11, "m3", "dropped", 0),
		rec(12, mount.Disabled, mount.DisabledPayload{Path: "t3/", UUID: "m3"}),
		created(13, "m3", "late", 0), // decided before the disable, landed after
		rec(14, KeyRestored, KeyPayload{Mount: "m2", Name: "restored", Key: Key{
			Type: "aes128-gcm96", Config: Config{MinDecryptionVersion: 1}, LatestVersion: 2,
			Versions:    map[int]Version{1: material(1, t0), 2: material(2, t0)},
			RestoreInfo: &Info{Time: t0, Version: 2},
		}}),
		created(15, "m1", "app", 0), // a second upsert of an existing key: ignored
		rec(16, "unrelated.event.v1", map[string]string{"x": "y"}),
	}
}

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, sample())
}

func applyAll(t *testing.T, v *View, recs []ledger.Record) {
	t.Helper()
	for _, r := range recs {
		if err := v.Apply(r); err != nil {
			t.Fatalf("apply %s: %v", r.Type, err)
		}
	}
}

func TestApplySample(t *testing.T) {
	v := New()
	applyAll(t, v, sample())

	k, ok := v.Get("m1", "app")
	if !ok {
		t.Fatal("app missing")
	}
	if k.LatestVersion != 3 || k.MinAvailableVersion != 2 || len(k.Versions) != 2 {
		t.Fatalf("latest %d min available %d versions %d", k.LatestVersion, k.MinAvailableVersion, len(k.Versions))
	}
	if _, ok := k.Versions[1]; ok {
		t.Fatal("trimmed version 1 still in the view")
	}
	if got := k.Versions[3].Key[0]; got != 3 {
		t.Fatalf("version 3 material from event %d, want 3 (the losing rotation must be ignored)", got)
	}
	if k.Config.MinDecryptionVersion != 2 || k.Config.MinEncryptionVersion != 3 || !k.Config.DeletionAllowed {
		t.Fatalf("config %+v", k.Config)
	}
	if _, ok := v.Get("m1", "gone"); ok {
		t.Fatal("deleted key still present")
	}
	if got := v.List("m1"); !reflect.DeepEqual(got, []string{"app", "rotating"}) {
		t.Fatalf("list m1 = %v", got)
	}
	if got := v.List("m3"); got != nil {
		t.Fatalf("disabled mount still lists %v", got)
	}
	r, ok := v.Get("m2", "restored")
	if !ok || r.Name != "restored" || r.RestoreInfo == nil || r.RestoreInfo.Version != 2 {
		t.Fatalf("restored key %+v", r)
	}
}

func TestTrimmedMaterialLeavesSnapshots(t *testing.T) {
	v := New()
	applyAll(t, v, sample()[:3])
	v1 := material(1, t0).Key
	snap, _ := v.Snapshot()
	if !bytes.Contains(snap, []byte(b64(v1))) {
		t.Fatal("test is broken: version 1 material not in the snapshot before the trim")
	}
	applyAll(t, v, []ledger.Record{
		rec(5, KeyConfigUpdated, ConfigPayload{Mount: "m1", Name: "app", Config: Config{MinDecryptionVersion: 2, MinEncryptionVersion: 2}}),
		rec(6, KeyTrimmed, TrimmedPayload{Mount: "m1", Name: "app", MinAvailableVersion: 2}),
	})
	snap, _ = v.Snapshot()
	if bytes.Contains(snap, []byte(b64(v1))) {
		t.Fatal("trimmed material is still in the snapshot")
	}
}

func b64(b []byte) string {
	out, _ := json.Marshal(b)
	return string(out[1 : len(out)-1])
}

func TestDue(t *testing.T) {
	v := New()
	applyAll(t, v, sample())
	at := t0.Add(9 * time.Second) // "rotating" was created then, with a one-hour period
	if got := v.Due(at.Add(59 * time.Minute)); len(got) != 0 {
		t.Fatalf("due too early: %v", got)
	}
	want := []KeyRef{{Mount: "m1", Name: "rotating"}}
	if got := v.Due(at.Add(time.Hour)); !reflect.DeepEqual(got, want) {
		t.Fatalf("due = %v, want %v", got, want)
	}
	// A rotation restarts the period.
	applyAll(t, v, []ledger.Record{rec(20, KeyRotated, RotatedPayload{Mount: "m1", Name: "rotating", Version: 2,
		Material: material(20, at.Add(time.Hour))})})
	if got := v.Due(at.Add(time.Hour + time.Minute)); len(got) != 0 {
		t.Fatalf("due right after rotation: %v", got)
	}
}

func TestReturnedKeysAreStable(t *testing.T) {
	v := New()
	applyAll(t, v, sample()[:2])
	before, _ := v.Get("m1", "app")
	applyAll(t, v, []ledger.Record{rotated(3, "m1", "app", 3)})
	if len(before.Versions) != 2 || before.LatestVersion != 2 {
		t.Fatal("a key returned earlier changed under its holder")
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	for _, bad := range []string{`{}`, `{"v":2,"mounts":{}}`, `[]`} {
		if err := New().Restore([]byte(bad)); err == nil {
			t.Errorf("Restore(%s) accepted", bad)
		}
	}
}

func TestConcurrentReadsAndApplies(t *testing.T) {
	v := New()
	applyAll(t, v, sample()[:1])
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for n := 2; n < 200; n++ {
			if err := v.Apply(rotated(uint64(n), "m1", "app", n)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 200 {
			if k, ok := v.Get("m1", "app"); ok {
				for n := range k.Versions {
					_ = k.Versions[n].Key[0]
				}
			}
			v.Due(t0)
			_ = v.Digest()
		}
	}()
	wg.Wait()
}
