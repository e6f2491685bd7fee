package cubbyhole

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func rec(seq uint64, typ string, p any) ledger.Record {
	b, _ := json.Marshal(p)
	return ledger.Record{Event: ledger.Event{Type: typ, Payload: b}, Pos: ledger.Position{Seq: seq}}
}

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func history() []ledger.Record {
	return []ledger.Record{
		rec(1, Written, WrittenPayload{Token: "a", Path: "x", Time: t0, KeyID: "cubbyhole.a.1", Sealed: []byte{1}}),
		rec(2, Written, WrittenPayload{Token: "a", Path: "d/y", Time: t0, KeyID: "cubbyhole.a.2", Sealed: []byte{2}}),
		rec(3, Written, WrittenPayload{Token: "b", Path: "x", Time: t0, KeyID: "cubbyhole.b.1", Sealed: []byte{3}}),
		rec(4, Written, WrittenPayload{Token: "a", Path: "x", Time: t0, KeyID: "cubbyhole.a.3", Sealed: []byte{4}, Shred: []string{"cubbyhole.a.1"}}),
		rec(5, Deleted, DeletedPayload{Token: "b", Path: "x", Shred: []string{"cubbyhole.b.1"}}),
		rec(6, Written, WrittenPayload{Token: "w", Path: "response", Time: t0, KeyID: "cubbyhole.w.1", Sealed: []byte{5}}),
		rec(7, Unwrapped, UnwrappedPayload{Token: "w", Accessor: "acc", Time: t0, Until: t0.Add(time.Hour), Shred: []string{"cubbyhole.w.1"}}),
		rec(8, Written, WrittenPayload{Token: "c", Path: "z", Time: t0, KeyID: "cubbyhole.c.1", Sealed: []byte{6}}),
		rec(9, Destroyed, DestroyedPayload{Token: "c", Shred: []string{"cubbyhole.c.1"}}),
		rec(10, Unwrapped, UnwrappedPayload{Token: "v", Accessor: "acc2", Time: t0.Add(2 * time.Hour), Until: t0.Add(3 * time.Hour)}),
	}
}

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, history())
}

func TestFold(t *testing.T) {
	v := New()
	for _, r := range history() {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok := v.Get("a", "x"); !ok || got.KeyID != "cubbyhole.a.3" {
		t.Fatalf("a/x = %+v %v", got, ok)
	}
	if l := v.List("a", ""); len(l) != 2 || l[0] != "d/" || l[1] != "x" {
		t.Fatalf("list a = %v", l)
	}
	if v.Has("b") || v.Has("c") || v.Has("w") {
		t.Fatal("deleted, destroyed or unwrapped cubbyholes still there")
	}
	if _, ok := v.WasUnwrapped("w"); ok {
		t.Fatal("an unwrap past its token's expiry is remembered")
	}
	if u, ok := v.WasUnwrapped("v"); !ok || u.Accessor != "acc2" {
		t.Fatal("the last unwrap is forgotten")
	}
	if ids := v.KeyIDs(""); len(ids) != 2 {
		t.Fatalf("key ids %v", ids)
	}
	if err := v.Apply(ledger.Record{Event: ledger.Event{Type: Written, Payload: []byte("{")}}); err == nil {
		t.Fatal("a malformed payload was accepted")
	}
}
