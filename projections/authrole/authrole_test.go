package authrole

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func rec(t *testing.T, seq uint64, typ string, payload any) ledger.Record {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Record{Event: ledger.Event{Type: typ, Time: time.Unix(1, 0), Payload: b}, Pos: ledger.Position{Seq: seq}}
}

func TestFold(t *testing.T) {
	recs := []ledger.Record{
		rec(t, 1, ConfigWritten, ConfigWrittenPayload{Mount: "m1", Config: json.RawMessage(`{"host": "a"}`)}),
		rec(t, 2, RoleWritten, RoleWrittenPayload{Mount: "m1", Name: "app", Role: json.RawMessage(`{"x":1}`)}),
		rec(t, 3, RoleWritten, RoleWrittenPayload{Mount: "m1", Name: "web", Role: json.RawMessage(`{"x":2}`)}),
		rec(t, 4, RoleDeleted, RoleDeletedPayload{Mount: "m1", Name: "web"}),
		rec(t, 5, RoleWritten, RoleWrittenPayload{Mount: "m2", Name: "gone", Role: json.RawMessage(`{}`)}),
		rec(t, 6, mount.Disabled, mount.DisabledPayload{Path: "auth/k/", UUID: "m2"}),
		rec(t, 7, RoleWritten, RoleWrittenPayload{Mount: "m2", Name: "late", Role: json.RawMessage(`{}`)}),
	}
	v := New()
	for _, r := range recs {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok := v.Config("m1"); !ok || string(c) != `{"host":"a"}` {
		t.Fatalf("config %s", c)
	}
	if got := v.Roles("m1"); len(got) != 1 || got[0] != "app" {
		t.Fatalf("roles %v", got)
	}
	if got := v.Roles("m2"); len(got) != 0 {
		t.Fatalf("roles of a disabled mount: %v", got)
	}
	viewtest.Conformance(t, func() projections.View { return New() }, recs)
}

func TestMalformed(t *testing.T) {
	for _, r := range []ledger.Record{
		{Event: ledger.Event{Type: RoleWritten, Payload: []byte("{")}},
		rec(t, 1, RoleWritten, RoleWrittenPayload{Mount: "m", Role: json.RawMessage(`{}`)}),
		rec(t, 1, ConfigWritten, ConfigWrittenPayload{Mount: "m"}),
	} {
		if err := New().Apply(r); err == nil {
			t.Errorf("accepted %s", r.Payload)
		}
	}
}
