package kv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
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

func written(seq uint64, m, path string, n uint64, sealed string, trim ...uint64) ledger.Record {
	p := VersionWrittenPayload{Mount: m, Path: path, Version: n, Created: t0.Add(time.Duration(seq) * time.Second),
		KeyID: fmt.Sprintf("kv.k.%s-%d", m, seq), Sealed: []byte(sealed), Trim: trim}
	if len(trim) > 0 {
		p.Oldest = trim[len(trim)-1] + 1
	}
	return rec(seq, VersionWritten, p)
}

func sample() []ledger.Record {
	return []ledger.Record{
		rec(1, ConfigWritten, ConfigWrittenPayload{Mount: "m1", Config: Config{MaxVersions: 3}}),
		written(2, "m1", "app/db", 1, "ct-1"),
		written(3, "m1", "app/db", 2, "ct-2"),
		written(4, "m1", "app/api", 1, "ct-3"),
		rec(5, VersionsDeleted, VersionsPayload{Mount: "m1", Path: "app/db", Versions: []uint64{2}, Time: t0}),
		rec(6, VersionsUndeleted, VersionsPayload{Mount: "m1", Path: "app/db", Versions: []uint64{2}}),
		written(7, "m1", "app/db", 3, "ct-4"),
		rec(8, VersionsDestroyed, VersionsPayload{Mount: "m1", Path: "app/db", Versions: []uint64{1}}),
		written(9, "m1", "app/db", 4, "ct-5", 1),
		rec(10, MetadataWritten, MetadataWrittenPayload{Mount: "m1", Path: "app/meta-only", MaxVersions: 5, CustomMetadata: map[string]string{"owner": "ops"}, Created: t0}),
		rec(11, V1Written, V1WrittenPayload{Mount: "m2", Path: "legacy/x", Time: t0, KeyID: "kv.k.v1", Sealed: []byte("ct-v1")}),
		written(12, "m3", "gone/soon", 1, "ct-m3"),
		rec(13, mount.Disabled, mount.DisabledPayload{Path: "other/", UUID: "m3"}),
		written(14, "m3", "gone/late", 1, "ct-late"), // decided before the disable, landed after
		rec(15, MetadataDeleted, PathPayload{Mount: "m1", Path: "app/api"}),
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

	s, ok := v.Secret("m1", "app/db")
	if !ok {
		t.Fatal("app/db missing")
	}
	if s.CurrentVersion != 4 || s.OldestVersion != 2 || len(s.Versions) != 3 {
		t.Fatalf("current %d oldest %d versions %d", s.CurrentVersion, s.OldestVersion, len(s.Versions))
	}
	if _, ok := s.Versions[1]; ok {
		t.Fatal("trimmed version 1 kept")
	}
	if v2 := s.Versions[2]; !v2.Deletion.IsZero() || string(v2.Sealed) != "ct-2" {
		t.Fatalf("version 2 after undelete: %+v", v2)
	}
	if !s.Created.Equal(t0.Add(2*time.Second)) || !s.Updated.Equal(t0.Add(9*time.Second)) {
		t.Fatalf("created %v updated %v", s.Created, s.Updated)
	}
	if c := v.Config("m1"); c.MaxVersions != 3 {
		t.Fatalf("config %+v", c)
	}
	if meta, ok := v.Secret("m1", "app/meta-only"); !ok || meta.CurrentVersion != 0 || meta.CustomMetadata["owner"] != "ops" {
		t.Fatalf("metadata-only path: %+v", meta)
	}
	if _, ok := v.Secret("m1", "app/api"); ok {
		t.Fatal("metadata delete left the path")
	}
	if val, ok := v.Value("m2", "legacy/x"); !ok || string(val.Sealed) != "ct-v1" {
		t.Fatal("v1 value missing")
	}
	if _, ok := v.Secret("m3", "gone/soon"); ok {
		t.Fatal("disabled mount kept its data")
	}
	if _, ok := v.Secret("m3", "gone/late"); ok {
		t.Fatal("an event for a disabled mount recreated it")
	}
	if got := v.List("m3", ""); got != nil {
		t.Fatalf("disabled mount lists %v", got)
	}
	// Copies: changing what Secret returned does not change the view.
	s.Versions[99] = Version{}
	s.CustomMetadata = map[string]string{"x": "y"}
	if again, _ := v.Secret("m1", "app/db"); len(again.Versions) != 3 {
		t.Fatal("Secret returned shared state")
	}
}

func TestDeletedAt(t *testing.T) {
	v := Version{Deletion: t0}
	if v.Deleted(t0.Add(-time.Second)) || v.Deleted(t0) || !v.Deleted(t0.Add(time.Nanosecond)) {
		t.Fatal("a version counts as deleted once its deletion time has passed")
	}
	if (Version{}).Deleted(t0) {
		t.Fatal("no deletion time, not deleted")
	}
}

func TestDestroyDropsCiphertextFromSnapshot(t *testing.T) {
	v := New()
	applyAll(t, v, []ledger.Record{
		written(1, "m", "a", 1, "SECRET-CIPHERTEXT-ONE"),
		written(2, "m", "a", 2, "SECRET-CIPHERTEXT-TWO"),
		written(3, "m", "b", 1, "SECRET-CIPHERTEXT-TRIM"),
		written(4, "m", "b", 2, "keep", 1),
	})
	snap, _ := v.Snapshot()
	if !bytes.Contains(snap, []byte("kv.k.m-1")) {
		t.Fatal("control: key id not in snapshot")
	}
	applyAll(t, v, []ledger.Record{rec(5, VersionsDestroyed, VersionsPayload{Mount: "m", Path: "a", Versions: []uint64{1}})})
	snap, _ = v.Snapshot()
	for _, gone := range []string{"SECRET-CIPHERTEXT-ONE", "SECRET-CIPHERTEXT-TRIM", "kv.k.m-1", "kv.k.m-3"} {
		if bytes.Contains(snap, []byte(gone)) || bytes.Contains(snap, []byte(b64(gone))) {
			t.Fatalf("snapshot still holds %q", gone)
		}
	}
	s, _ := v.Secret("m", "a")
	if d := s.Versions[1]; !d.Destroyed || d.Sealed != nil || d.KeyID != "" {
		t.Fatalf("destroyed version keeps %+v", d)
	}
	if got := v.KeyIDs("m"); !reflect.DeepEqual(got, []string{"kv.k.m-2", "kv.k.m-4"}) {
		t.Fatalf("KeyIDs = %v", got)
	}
	// Destroying again, deleting or undeleting a destroyed version changes nothing.
	before := v.Digest()
	applyAll(t, v, []ledger.Record{
		rec(6, VersionsDestroyed, VersionsPayload{Mount: "m", Path: "a", Versions: []uint64{1}}),
		rec(7, VersionsUndeleted, VersionsPayload{Mount: "m", Path: "a", Versions: []uint64{1}, Time: t0}),
		rec(8, VersionsDeleted, VersionsPayload{Mount: "m", Path: "a", Versions: []uint64{1, 42}, Time: t0}),
	})
	if v.Digest() != before {
		t.Fatal("destroyed version changed")
	}
}

func b64(s string) string {
	b, _ := json.Marshal([]byte(s))
	return string(b[1 : len(b)-1])
}

func TestDuplicateVersionFirstWins(t *testing.T) {
	v := New()
	applyAll(t, v, []ledger.Record{written(1, "m", "a", 1, "first"), written(2, "m", "a", 1, "second")})
	s, _ := v.Secret("m", "a")
	if string(s.Versions[1].Sealed) != "first" || s.CurrentVersion != 1 {
		t.Fatalf("got %+v", s.Versions[1])
	}
}

func TestApplyRejectsGarbage(t *testing.T) {
	for _, typ := range []string{VersionWritten, VersionsDeleted, MetadataWritten, MetadataDeleted, ConfigWritten, V1Written, V1Deleted, mount.Disabled} {
		r := ledger.Record{Event: ledger.Event{Type: typ, Payload: []byte("{not json")}}
		if err := New().Apply(r); err == nil {
			t.Fatalf("%s: garbage accepted", typ)
		}
	}
}

func TestList(t *testing.T) {
	v := New()
	paths := []string{"a", "b/c", "b/d/e", "b/d/f", "z/y/x/w", "b", "c/"}
	for i, p := range paths {
		applyAll(t, v, []ledger.Record{written(uint64(i+1), "m", p, 1, "x")})
	}
	applyAll(t, v, []ledger.Record{rec(20, V1Written, V1WrittenPayload{Mount: "m", Path: "v1/only", KeyID: "kv.k.v", Sealed: []byte("x")})})
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a", "b", "b/", "v1/", "z/"}}, // "c/" names no secret: not listed
		{"b/", []string{"c", "d/"}},
		{"b", []string{"c", "d/"}},
		{"b/d/", []string{"e", "f"}},
		{"z/", []string{"y/"}},
		{"z/y/x/", []string{"w"}},
		{"v1", []string{"only"}},
		{"nope/", nil},
		{"a/", nil},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			if got := v.List("m", tc.prefix); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
			}
		})
	}
	if got := v.List("other", ""); got != nil {
		t.Fatalf("unknown mount lists %v", got)
	}

	// Removing the last path under a folder removes the folder, up the tree.
	applyAll(t, v, []ledger.Record{
		rec(30, MetadataDeleted, PathPayload{Mount: "m", Path: "z/y/x/w"}),
		rec(31, MetadataDeleted, PathPayload{Mount: "m", Path: "b/d/e"}),
		rec(32, V1Deleted, PathPayload{Mount: "m", Path: "v1/only"}),
	})
	if got := v.List("m", ""); !reflect.DeepEqual(got, []string{"a", "b", "b/"}) {
		t.Fatalf("after deletes: %v", got)
	}
	if got := v.List("m", "b/d"); !reflect.DeepEqual(got, []string{"f"}) {
		t.Fatalf("b/d after delete: %v", got)
	}
	if got := v.List("m", "z/y/"); got != nil {
		t.Fatalf("emptied folder still lists %v", got)
	}
	// The returned slice is the caller's.
	got := v.List("m", "")
	got[0] = "mutated"
	if v.List("m", "")[0] != "a" {
		t.Fatal("List returned the cached slice")
	}
	// A restored view lists the same.
	snap, _ := v.Snapshot()
	r := New()
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if got := r.List("m", ""); !reflect.DeepEqual(got, []string{"a", "b", "b/"}) {
		t.Fatalf("restored: %v", got)
	}
}

func TestListManyKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	v := New()
	const n = 100_000
	// Filled directly (the index is what is measured here; Apply is covered above), through
	// the same index() that Apply uses.
	ms := v.mount("m")
	for i := range n {
		p := fmt.Sprintf("big/app%06d", i) // all in one folder: the worst case
		ms.secrets[p] = ms.stored(&Secret{CurrentVersion: 1, Versions: map[uint64]Version{1: {Created: t0, KeyID: "k"}}})
		ms.index(p)
	}
	// One more through Apply, which must invalidate the cached listing.
	if err := v.Apply(written(1, "m", "big/zzz", 1, "x")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	keys := v.List("m", "big/")
	first := time.Since(start)
	start = time.Now()
	for range 100 {
		keys = v.List("m", "big/")
	}
	cached := time.Since(start) / 100
	if len(keys) != n+1 || keys[0] != "app000000" || keys[len(keys)-1] != "zzz" {
		t.Fatalf("got %d keys, first %q", len(keys), keys[0])
	}
	if root := v.List("m", ""); len(root) != 1 || root[0] != "big/" {
		t.Fatalf("root: %v", root)
	}
	// Speed is measured in BenchmarkListManyKeys (make bench), never asserted here.
	t.Logf("LIST of %d children: first %v, cached %v", len(keys), first, cached)
}

// BenchmarkListManyKeys: a cached LIST of 100,000 children in one folder.
func BenchmarkListManyKeys(b *testing.B) {
	v := New()
	ms := v.mount("m")
	for i := range 100_000 {
		p := fmt.Sprintf("big/app%06d", i)
		ms.secrets[p] = ms.stored(&Secret{CurrentVersion: 1, Versions: map[uint64]Version{1: {Created: t0, KeyID: "k"}}})
		ms.index(p)
	}
	v.List("m", "big/")
	b.ResetTimer()
	for range b.N {
		v.List("m", "big/")
	}
}

func TestConcurrentReadsAndApplies(t *testing.T) {
	v := New()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 500 {
			_ = v.Apply(written(uint64(i+1), "m", fmt.Sprintf("d%d/k%d", i%7, i), 1, "x"))
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 500 {
			v.List("m", fmt.Sprintf("d%d/", i%7))
			v.Secret("m", fmt.Sprintf("d%d/k%d", i%7, i))
			if i%50 == 0 {
				v.KeyIDs("")
				v.Digest()
			}
		}
	}()
	wg.Wait()
}

func TestRestoreRejects(t *testing.T) {
	for _, bad := range []string{"", "[]", `{"v":2,"mounts":{}}`, `{"v":1}`} {
		if err := New().Restore([]byte(bad)); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

// TestListIndexBuiltOnFirstList: a restored mount builds its LIST index on the first LIST, not
// in Restore; changes applied before that (writes, deletes, v1 and v2) are in it, and many
// first LISTs at once build it once (run with -race).
func TestListIndexBuiltOnFirstList(t *testing.T) {
	direct := New()
	var recs []ledger.Record
	for i, p := range []string{"a", "b/c", "b/d/e", "b/d/f", "z/y/x/w", "b", "q/r"} {
		recs = append(recs, written(uint64(i+1), "m", p, 1, "x"))
	}
	recs = append(recs, rec(20, V1Written, V1WrittenPayload{Mount: "m", Path: "v1/only", KeyID: "kv.k.v", Sealed: []byte("x")}),
		rec(21, V1Written, V1WrittenPayload{Mount: "m", Path: "v1/other", KeyID: "kv.k.w", Sealed: []byte("x")}))
	applyAll(t, direct, recs)
	snap, err := direct.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := New()
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if ms := restored.mounts["m"]; ms.dirsBuilt.Load() || ms.dirs != nil {
		t.Fatal("Restore built the LIST index")
	}
	after := []ledger.Record{
		written(30, "m", "n/e/w", 1, "x"),
		rec(31, MetadataDeleted, PathPayload{Mount: "m", Path: "z/y/x/w"}),
		rec(32, MetadataDeleted, PathPayload{Mount: "m", Path: "q/r"}),
		rec(33, V1Deleted, PathPayload{Mount: "m", Path: "v1/only"}),
		written(34, "m", "b/d/g", 1, "x"),
	}
	applyAll(t, direct, after)
	applyAll(t, restored, after)
	prefixes := []string{"", "b/", "b/d/", "n/", "n/e/", "z/", "z/y/", "q/", "v1/", "nope/"}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { restored.List("m", "b/d/") })
	}
	wg.Wait()
	for _, p := range prefixes {
		if got, want := restored.List("m", p), direct.List("m", p); !reflect.DeepEqual(got, want) {
			t.Errorf("List(%q) after restore = %v, applied directly %v", p, got, want)
		}
	}
	// Built now: later changes keep it current.
	more := []ledger.Record{written(40, "m", "b/d/h", 1, "x"), rec(41, MetadataDeleted, PathPayload{Mount: "m", Path: "b/d/e"})}
	applyAll(t, direct, more)
	applyAll(t, restored, more)
	for _, p := range prefixes {
		if got, want := restored.List("m", p), direct.List("m", p); !reflect.DeepEqual(got, want) {
			t.Errorf("List(%q) once built = %v, applied directly %v", p, got, want)
		}
	}
}

// TestDropLive: of the ids a shred names, DropLive keeps exactly those the path no longer uses
// — what a filter against the keys the secret and value read back keeps — by scan for a few
// ids and by set for many.
func TestDropLive(t *testing.T) {
	v := New()
	applyAll(t, v, sample())
	var many []ledger.Record
	for n := uint64(1); n <= 60; n++ {
		many = append(many, written(100+n, "m4", "big", n, "ct"))
	}
	applyAll(t, v, many)
	for _, tc := range []struct{ mount, path string }{
		{"m1", "app/db"}, {"m2", "legacy/x"}, {"m4", "big"}, {"m1", "nothing/here"}, {"nope", "app/db"},
	} {
		live := liveKeyIDs(v, tc.mount, tc.path)
		ids := append([]string{"kv.k.never", ""}, live...)
		for i := range 40 { // enough ids that the m4 path's 60 versions go through the set
			ids = append(ids, fmt.Sprintf("kv.k.gone-%d", i))
		}
		for _, n := range []int{3, len(ids)} {
			in := slices.Clone(ids[:n])
			got := v.DropLive(tc.mount, tc.path, slices.Clone(in))
			want := slices.DeleteFunc(in, func(id string) bool { return slices.Contains(live, id) })
			if !slices.Equal(got, want) {
				t.Errorf("%s %s (%d ids): DropLive kept %v, want %v", tc.mount, tc.path, n, got, want)
			}
		}
	}
	if live := liveKeyIDs(v, "m4", "big"); len(live) < 2 || len(v.DropLive("m4", "big", slices.Clone(live))) != 0 {
		t.Fatalf("live keys of m4/big not all kept from shredding: %v", live)
	}
}

// liveKeyIDs lists the data keys path uses, read back through Secret and Value.
func liveKeyIDs(v *View, mount, path string) []string {
	var ids []string
	if s, ok := v.Secret(mount, path); ok {
		for _, ver := range s.Versions {
			if ver.KeyID != "" {
				ids = append(ids, ver.KeyID)
			}
		}
	}
	if val, ok := v.Value(mount, path); ok && val.KeyID != "" {
		ids = append(ids, val.KeyID)
	}
	return ids
}
