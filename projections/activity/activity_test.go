package activity

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func created(seq uint64, at time.Time, path, entity string, policies ...string) ledger.Record {
	b, _ := json.Marshal(tokenview.CreatedPayload{MAC: "m", Path: path, EntityID: entity, Policies: policies, CreationTime: at})
	return ledger.Record{Event: ledger.Event{Type: tokenview.Created, Payload: b}, Pos: ledger.Position{Seq: seq}}
}

var (
	nov = time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)
	dec = time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
)

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, []ledger.Record{
		created(1, nov, "auth/userpass/login/a", "", "default", "web"),
		created(2, nov, "auth/userpass/login/b", "", "web", "default"),
		created(3, dec, "auth/approle/login", "ent-1", "x"),
		created(4, dec, "auth/token/create", "", "ops"),
	})
}

func TestCounts(t *testing.T) {
	v := New()
	v.Apply(created(1, nov, "auth/userpass/login/a", "", "default", "web"))
	v.Apply(created(2, nov, "auth/userpass/login/b", "", "web", "default")) // same policies: same client
	v.Apply(created(3, dec, "auth/approle/login", "ent-1", "x"))
	v.Apply(created(4, dec, "auth/token/create", "ent-1", "y")) // same entity
	if n := len(v.Month("2026-11")); n != 1 {
		t.Fatalf("november clients = %d, want 1", n)
	}
	d := v.Month("2026-12")
	if len(d) != 1 || !d["ent-1"].Entity || d["ent-1"].Path != "auth/approle/login" {
		t.Fatalf("december = %v", d)
	}
}
