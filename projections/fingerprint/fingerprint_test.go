package fingerprint

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/lease"
	"github.com/ledger-secrets/ledger/projections/mount"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func rec(seq uint64, typ string, p any) ledger.Record {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return ledger.Record{Event: ledger.Event{Type: typ, Payload: b, Actor: "acc", Request: "req"}, Pos: ledger.Position{Seq: seq}}
}

func fp(s string) string { return "fp1:" + s }

func history() []ledger.Record {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	kv := func(seq, v uint64, val string) ledger.Record {
		return rec(seq, Recorded, RecordedPayload{Kind: KindKV, Mount: "m1", Path: "app/db", Version: v, Fields: map[string]string{"password": fp(val), "user": fp("admin")}, Time: t0.Add(time.Duration(seq) * time.Minute)})
	}
	return []ledger.Record{
		kv(1, 1, "one"),
		kv(2, 2, "two"),
		rec(3, kvview.VersionsDestroyed, kvview.VersionsPayload{Mount: "m1", Path: "app/db", Versions: []uint64{1}}),
		kv(4, 3, "three"),
		rec(5, kvview.VersionsDeleted, kvview.VersionsPayload{Mount: "m1", Path: "app/db", Versions: []uint64{3}}),
		rec(6, Recorded, RecordedPayload{Kind: KindStaticRole, Mount: "d1", Path: "static-roles/app", Version: 1, Fields: map[string]string{"password": fp("pg1")}}),
		rec(7, Recorded, RecordedPayload{Kind: KindStaticRole, Mount: "d1", Path: "static-roles/app", Version: 2, Fields: map[string]string{"password": fp("pg2")}}),
		rec(8, Recorded, RecordedPayload{Kind: KindCreds, Mount: "d1", Path: "creds/ro", Ref: "v-ro-1", Fields: map[string]string{"password": fp("dyn")}}),
		rec(9, lease.Issued, lease.IssuedPayload{ID: "database/creds/ro/L1", MountUUID: "d1", InternalData: []byte(`{"v":1,"username":"v-ro-1"}`)}),
		rec(10, lease.Revoked, lease.RevokedPayload{ID: "database/creds/ro/L1"}),
		// A backfill of a version already known adds nothing.
		rec(11, Recorded, RecordedPayload{Kind: KindKV, Mount: "m1", Path: "app/db", Version: 2, Fields: map[string]string{"password": fp("two")}, Backfilled: true}),
		rec(12, Recorded, RecordedPayload{Kind: KindKVv1, Mount: "v1", Path: "a", Fields: map[string]string{"k": fp("old-v1")}}),
		rec(13, Recorded, RecordedPayload{Kind: KindKVv1, Mount: "v1", Path: "a", Fields: map[string]string{"k": fp("new-v1")}}),
		rec(14, BackfillProgressed, BackfillPayload{Cursor: "m1\x00app/db", Count: 1}),
		rec(15, mount.Disabled, mount.DisabledPayload{Path: "kv1/", UUID: "v1"}),
	}
}

func state(t *testing.T, v *View, f string) []string {
	t.Helper()
	var out []string
	for _, l := range v.Lookup(fp(f)) {
		out = append(out, l.State)
	}
	return out
}

func TestStates(t *testing.T) {
	v := New()
	for _, r := range history() {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		fp   string
		want string
	}{
		{"one", StateDestroyed}, // destroyed versions keep their fingerprint
		{"two", StateLive},
		{"three", StateDeleted},
		{"pg1", StateRotated},
		{"pg2", StateLive},
		{"dyn", StateRevoked},
		{"old-v1", StateDestroyed},
		{"new-v1", StateDestroyed}, // its mount was disabled
	} {
		got := state(t, v, c.fp)
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("%s: states %v, want [%s]", c.fp, got, c.want)
		}
	}
	if n := len(v.Lookup(fp("admin"))); n != 3 {
		t.Errorf("admin is in 3 versions, found %d", n)
	}
	if l := v.Lookup(fp("two"))[0]; l.Backfill || l.Actor != "acc" || l.Field != "password" || l.Version != 2 {
		t.Errorf("the backfill replaced the write's record: %+v", l)
	}
	if !v.Has(KindKV, "m1", "app/db", 3) || v.Has(KindKV, "m1", "app/db", 4) {
		t.Error("Has")
	}
	if bf := v.Backfill(); bf.Cursor != "m1\x00app/db" || bf.Count != 1 {
		t.Errorf("backfill %+v", bf)
	}
	if len(v.Lookup(fp("nothing"))) != 0 {
		t.Error("unknown fingerprint matched")
	}
}

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, history())
}

func TestFieldFingerprints(t *testing.T) {
	f := func(b []byte) string { return string(b) }
	var val map[string]any
	if err := json.Unmarshal([]byte(`{"s":"prod-db-2024!","n":12345678,"b":true,"m":{"x":"inner-value"},"l":["a"],"z":null}`), &val); err != nil {
		t.Fatal(err)
	}
	got := FieldFingerprints(val, f)
	want := map[string]string{"s": "prod-db-2024!", "n": "12345678", "b": "true", "m.x": "inner-value"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
}

// A standard fingerprint ("fp1:" and 64 lowercase hex digits) is held as its bytes and comes
// back as the same text; anything else is kept as is.
func TestStandardFingerprintRoundTrip(t *testing.T) {
	std := ledger.FingerprintPrefix + strings.Repeat("0a", 32)
	upper := ledger.FingerprintPrefix + strings.Repeat("0A", 32)
	v := New()
	if err := v.Apply(rec(1, Recorded, RecordedPayload{Kind: KindKV, Mount: "m1", Path: "p", Version: 1,
		Fields: map[string]string{"a": std, "b": upper}})); err != nil {
		t.Fatal(err)
	}
	snap, _ := v.Snapshot()
	restored := New()
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	for _, view := range []*View{v, restored} {
		for _, want := range []string{std, upper} {
			got := view.Lookup(want)
			if len(got) != 1 || got[0].FP != want {
				t.Fatalf("lookup %s: %+v", want, got)
			}
		}
		if len(view.Lookup(ledger.FingerprintPrefix+strings.Repeat("0b", 32))) != 0 {
			t.Fatal("an unknown standard fingerprint matched")
		}
	}
	if restored.Digest() != v.Digest() {
		t.Fatal("restore changed the state")
	}
}

// A snapshot in the JSON of earlier builds (format 1) restores to the state the log builds:
// the same digest as a rebuild, so replay verify agrees after an upgrade.
func TestRestoreFormat1(t *testing.T) {
	rebuilt := New()
	var locs []Location
	for _, r := range history() {
		if err := rebuilt.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range rebuilt.all {
		for i := range e.fields {
			locs = append(locs, e.fields[i].location())
		}
	}
	old, err := json.Marshal(map[string]any{"locations": locs, "leases": rebuilt.leases, "backfill": rebuilt.backfill})
	if err != nil {
		t.Fatal(err)
	}
	restored := New()
	if err := restored.Restore(old); err != nil {
		t.Fatal(err)
	}
	if restored.Digest() != rebuilt.Digest() || restored.Len() != rebuilt.Len() {
		t.Fatal("format 1 restored to another state")
	}
	bad, _ := json.Marshal(map[string]any{"locations": []Location{{Kind: KindKV, State: "gone"}}})
	if err := New().Restore(bad); err == nil || !strings.Contains(err.Error(), "unknown state") {
		t.Fatalf("unknown state accepted: %v", err)
	}
}

// Every truncation of a binary snapshot, and a state byte out of range, is refused with the
// view's error, never a panic, and leaves the view as it was.
func TestRestoreRefusesMalformed(t *testing.T) {
	v := New()
	for _, r := range history() {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	snap, _ := v.Snapshot()
	before := v.Digest()
	for n := 1; n < len(snap); n++ {
		if err := v.Restore(snap[:n]); !errors.Is(err, errSnapshot) {
			t.Fatalf("truncated to %d of %d bytes: %v", n, len(snap), err)
		}
	}
	if err := v.Restore(append(snap[:len(snap):len(snap)], 0)); !errors.Is(err, errSnapshot) {
		t.Fatalf("trailing byte: %v", err)
	}
	// The first entry's state byte: after 0x02, the count, kind, mount, path, version, ref
	// and accessor.
	e := v.all[0]
	at := 2 + 1 + len(e.kind) + 1 + len(e.mount) + 1 + len(e.path) + 1 + 1 + len(e.ref()) + 1 + len(e.accessor())
	if snap[at] != e.state {
		t.Fatalf("test's offset is wrong: byte %d is %d", at, snap[at])
	}
	bad := append([]byte(nil), snap...)
	bad[at] = byte(len(states))
	if err := v.Restore(bad); !errors.Is(err, errSnapshot) {
		t.Fatalf("state out of range: %v", err)
	}
	if v.Digest() != before {
		t.Fatal("a refused restore changed the view")
	}
}

// Recording a version again (not as a backfill) replaces its fingerprints everywhere: lookup,
// path, count and snapshot.
func TestRecordAgainReplaces(t *testing.T) {
	v := New()
	w := func(seq uint64, path, val string) ledger.Record {
		return rec(seq, Recorded, RecordedPayload{Kind: KindKV, Mount: "m1", Path: path, Version: 1, Fields: map[string]string{"k": fp(val), "same": fp("shared")}})
	}
	for _, r := range []ledger.Record{w(1, "a", "old"), w(2, "b", "other"), w(3, "a", "new")} {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if len(v.Lookup(fp("old"))) != 0 || len(v.Lookup(fp("new"))) != 1 || v.Len() != 4 {
		t.Fatalf("old %d, new %d, len %d", len(v.Lookup(fp("old"))), len(v.Lookup(fp("new"))), v.Len())
	}
	shared := v.Lookup(fp("shared"))
	if len(shared) != 2 || shared[0].Path != "b" || shared[1].Path != "a" || shared[1].Seq != 3 {
		t.Fatalf("shared: %+v", shared)
	}
	if p := v.Path("m1", "a"); len(p) != 2 || p[0].Seq != 3 {
		t.Fatalf("path: %+v", p)
	}
	snap, _ := v.Snapshot()
	restored := New()
	if err := restored.Restore(snap); err != nil || restored.Digest() != v.Digest() {
		t.Fatalf("restore: %v", err)
	}
}

// The view keeps an entry per value ever written and a field per fingerprint: their sizes are
// what the view costs per secret.
func TestEntrySizes(t *testing.T) {
	if size := unsafe.Sizeof(entry{}); size > 160 {
		t.Errorf("entry is %d bytes, want at most 160 (its size class)", size)
	}
	if size := unsafe.Sizeof(field{}); size > 72 {
		t.Errorf("field is %d bytes, want at most 72 (two make a 144-byte class)", size)
	}
}

// TestSnapshotSizedExactly: Snapshot allocates what it writes, no more and no regrowth.
func TestSnapshotSizedExactly(t *testing.T) {
	v := New()
	odd := "other"
	for i := range 200 {
		e := &entry{kind: KindKV, mount: "m-uuid", path: fmt.Sprintf("p/%d/%s", i, strings.Repeat("x", i)), version: uint64(i), actor: "acc",
			request: "req", seq: uint64(i * 1000), fields: []field{{name: "password", fp: [32]byte{byte(i)}}, {name: "k", odd: &odd}}}
		e.setWritten(time.Unix(int64(i), 5))
		if i%3 == 0 {
			e.setCred(fmt.Sprintf("v-user-%d", i), "acc-"+strings.Repeat("y", i))
		}
		v.add(e)
	}
	v.leases["lease/1"] = "user1"
	b, err := v.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if cap(b)-len(b) > 64 || cap(b) < len(b) {
		t.Fatalf("snapshot of %d bytes in a buffer of %d", len(b), cap(b))
	}
}

// A version pushed out by max_versions is destroyed: the write that trims it says so in its
// kv.version.written.v1 payload, beside the new version's sealed value (which this view skips).
func TestTrimDestroys(t *testing.T) {
	v := New()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, val := range []string{"one", "two", "three"} {
		if err := v.Apply(rec(uint64(i+1), Recorded, RecordedPayload{Kind: KindKV, Mount: "m1", Path: "app/db", Version: uint64(i + 1),
			Fields: map[string]string{"password": fp(val)}, Time: t0})); err != nil {
			t.Fatal(err)
		}
	}
	written := func(seq, version uint64, trim ...uint64) ledger.Record {
		return rec(seq, kvview.VersionWritten, kvview.VersionWrittenPayload{Mount: "m1", Path: "app/db", Version: version, Created: t0,
			KeyID: "kv.m1.k", Sealed: []byte(`"quoted", {braces} and \ escapes`), Trim: trim, Oldest: 1, Shred: []string{"kv.m1.old"}})
	}
	if err := v.Apply(written(4, 3)); err != nil { // no trim: nothing changes
		t.Fatal(err)
	}
	if err := v.Apply(written(5, 4, 1, 2)); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"one": StateDestroyed, "two": StateDestroyed, "three": StateLive} {
		if got := state(t, v, f); len(got) != 1 || got[0] != want {
			t.Errorf("%s: states %v, want [%s]", f, got, want)
		}
	}
	// A payload that does not decode is an error, and changes nothing.
	bad := ledger.Record{Event: ledger.Event{Type: kvview.VersionWritten, Payload: []byte(`{"mount":"m1","path":"app/db","trim":[3`)}, Pos: ledger.Position{Seq: 6}}
	if err := v.Apply(bad); err == nil {
		t.Error("a truncated payload was applied")
	}
	if got := state(t, v, "three"); len(got) != 1 || got[0] != StateLive {
		t.Errorf("three after a bad payload: %v", got)
	}
}

// A path's walks start past its destroyed versions (pathChain.skip); a long random history of
// writes, trims, deletes, undeletes, destroys, re-records and backfills must leave every version
// in the state a plain model of the rules gives.
func TestLongPathHistory(t *testing.T) {
	v := New()
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	model := map[uint64]string{}
	var seq, next uint64
	apply := func(r ledger.Record) {
		t.Helper()
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	record := func(version uint64, backfill bool) ledger.Record {
		seq++
		return rec(seq, Recorded, RecordedPayload{Kind: KindKV, Mount: "m", Path: "p", Version: version, Backfilled: backfill,
			Fields: map[string]string{"f": fp(fmt.Sprint("v", version))}, Time: t0})
	}
	versions := func(typ string, vs []uint64) ledger.Record {
		seq++
		return rec(seq, typ, kvview.VersionsPayload{Mount: "m", Path: "p", Versions: vs})
	}
	pick := func() []uint64 {
		var vs []uint64
		for range 1 + rng.IntN(3) {
			if next > 0 {
				vs = append(vs, 1+rng.Uint64N(next))
			}
		}
		return vs
	}
	// change applies a versions event to a few versions; in the model it moves those in state
	// from (any but destroyed, when from is "") to state to.
	change := func(typ, from, to string) {
		vs := pick()
		apply(versions(typ, vs))
		for _, n := range vs {
			if model[n] == from || from == "" && model[n] != StateDestroyed {
				model[n] = to
			}
		}
	}
	for range 3000 {
		switch op := rng.IntN(10); {
		case op < 4: // a write, trimming the oldest kept version past 5
			next++
			apply(record(next, false))
			var trim []uint64
			kept := 0
			for n := next; n >= 1; n-- {
				if model[n] != StateDestroyed && model[n] != "" {
					kept++
					if kept >= 5 {
						trim = append(trim, n)
					}
				}
			}
			seq++
			apply(rec(seq, kvview.VersionWritten, kvview.VersionWrittenPayload{Mount: "m", Path: "p", Version: next, Sealed: []byte("x"), Trim: trim}))
			model[next] = StateLive
			for _, n := range trim {
				model[n] = StateDestroyed
			}
		case op == 4:
			change(kvview.VersionsDeleted, StateLive, StateDeleted)
		case op == 5:
			change(kvview.VersionsUndeleted, StateDeleted, StateLive)
		case op == 6:
			change(kvview.VersionsDestroyed, "", StateDestroyed)
		case op == 7: // a version recorded again (a backfill raced its write): replaced, live
			if vs := pick(); len(vs) > 0 && model[vs[0]] != StateDestroyed {
				apply(record(vs[0], false))
				model[vs[0]] = StateLive
			}
		case op == 8: // a backfill of a known version (destroyed or not) adds nothing
			if vs := pick(); len(vs) > 0 {
				apply(record(vs[0], true))
			}
		default: // a backfill of a version never recorded
			next++
			apply(record(next, true))
			model[next] = StateLive
		}
	}
	got := map[uint64]string{}
	for _, l := range v.Path("m", "p") {
		if _, dup := got[l.Version]; dup {
			t.Fatalf("version %d recorded twice", l.Version)
		}
		got[l.Version] = l.State
	}
	if len(got) != len(model) {
		t.Fatalf("%d versions recorded, the model has %d", len(got), len(model))
	}
	for n, want := range model {
		if got[n] != want {
			t.Errorf("version %d: %s, want %s", n, got[n], want)
		}
	}
}
