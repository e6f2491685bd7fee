package passwordpolicy

import (
	"encoding/json"
	"testing"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func rec(seq uint64, typ string, p any) ledger.Record {
	b, _ := json.Marshal(p)
	return ledger.Record{Event: ledger.Event{Type: typ, Payload: b}, Pos: ledger.Position{Seq: seq}}
}

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, []ledger.Record{
		rec(1, Written, WrittenPayload{Name: "a", Policy: "length = 8"}),
		rec(2, Written, WrittenPayload{Name: "b", Policy: "length = 9"}),
		rec(3, Deleted, DeletedPayload{Name: "a"}),
		rec(4, Written, WrittenPayload{Name: "b", Policy: "length = 10"}),
	})
}

func TestGetNames(t *testing.T) {
	v := New()
	v.Apply(rec(1, Written, WrittenPayload{Name: "z", Policy: "x"}))
	v.Apply(rec(2, Written, WrittenPayload{Name: "a", Policy: "y"}))
	if n := v.Names(); len(n) != 2 || n[0] != "a" {
		t.Fatalf("names %v", n)
	}
	if e, ok := v.Get("z"); !ok || e.Policy != "x" || e.Version.Seq != 1 {
		t.Fatalf("get %v %v", e, ok)
	}
	v.Apply(rec(3, Deleted, DeletedPayload{Name: "z"}))
	if _, ok := v.Get("z"); ok {
		t.Fatal("deleted policy still there")
	}
}
