package policy

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
		rec(1, Written, WrittenPayload{Name: "web", Text: `path "a" { capabilities = ["read"] }`}),
		rec(2, Written, WrittenPayload{Name: "ops", Text: `path "b" { capabilities = ["list"] }`}),
		rec(3, Deleted, DeletedPayload{Name: "web"}),
		rec(4, Written, WrittenPayload{Name: "ops", Text: `path "c" { capabilities = ["list"] }`}),
	})
}

func TestVersionChangesOnRewrite(t *testing.T) {
	v := New()
	v.Apply(rec(1, Written, WrittenPayload{Name: "p", Text: "a"}))
	a, _ := v.Get("p")
	v.Apply(rec(2, Written, WrittenPayload{Name: "p", Text: "b"}))
	b, _ := v.Get("p")
	if a.Version == b.Version || b.Text != "b" {
		t.Fatalf("versions %v %v", a.Version, b.Version)
	}
	if names := v.Names(); len(names) != 3 || names[0] != "default" || names[2] != "root" {
		t.Fatalf("names %v", names)
	}
}
