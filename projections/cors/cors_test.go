package cors

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
		rec(1, Configured, Config{AllowedOrigins: []string{"*"}}),
		rec(2, Disabled, struct{}{}),
		rec(3, Configured, Config{AllowedOrigins: []string{"https://a.example"}, AllowedHeaders: []string{"X-Custom"}}),
	})
}

func TestDisable(t *testing.T) {
	v := New()
	v.Apply(rec(1, Configured, Config{AllowedOrigins: []string{"https://a"}}))
	if c := v.Config(); !c.Enabled || c.AllowedOrigins[0] != "https://a" {
		t.Fatalf("config %+v", c)
	}
	v.Apply(rec(2, Disabled, struct{}{}))
	if c := v.Config(); c.Enabled || len(c.AllowedOrigins) != 0 {
		t.Fatalf("disabled config %+v", c)
	}
}
