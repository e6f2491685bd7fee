package fingerprint

import (
	"encoding/json"
	"testing"
	"time"

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
