package identity

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func rec(t *testing.T, seq uint64, typ string, payload any) ledger.Record {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Record{Event: ledger.Event{Type: typ, Time: t0, Payload: b}, Pos: ledger.Position{Seq: seq}}
}

func TestFold(t *testing.T) {
	recs := []ledger.Record{
		rec(t, 1, EntityWritten, Entity{ID: "e1", Name: "alice", Policies: []string{"p-alice"}, Created: t0}),
		rec(t, 2, AliasWritten, Alias{ID: "a1", CanonicalID: "e1", MountAccessor: "auth_userpass_1", Name: "alice"}),
		rec(t, 3, EntityWritten, Entity{ID: "e2", Name: "bob"}),
		rec(t, 4, AliasWritten, Alias{ID: "a2", CanonicalID: "e2", MountAccessor: "auth_userpass_1", Name: "bob"}),
		rec(t, 5, GroupWritten, Group{ID: "g1", Name: "eng", Type: "internal", Policies: []string{"p-eng"}, MemberEntityIDs: []string{"e1"}}),
		rec(t, 6, GroupWritten, Group{ID: "g2", Name: "all", Type: "internal", Policies: []string{"p-all"}, MemberGroupIDs: []string{"g1"}}),
		rec(t, 7, GroupWritten, Group{ID: "g3", Name: "ext", Type: "external", Policies: []string{"p-ext"}, MemberEntityIDs: []string{"e2"},
			Alias: &Alias{ID: "ga1", CanonicalID: "g3", MountAccessor: "auth_oidc_1", Name: "engineers"}}),
		rec(t, 8, EntityWritten, Entity{ID: "e3", Name: "carol"}),
		rec(t, 9, AliasWritten, Alias{ID: "a3", CanonicalID: "e3", MountAccessor: "auth_userpass_1", Name: "carol"}),
		rec(t, 10, EntityDeleted, IDPayload{ID: "e3"}),
	}
	v := New()
	for _, r := range recs {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.Policies("e1"); !reflect.DeepEqual(got, []string{"p-alice", "p-all", "p-eng"}) {
		t.Fatalf("alice policies %v", got)
	}
	if got := v.Policies("e2"); !reflect.DeepEqual(got, []string{"p-ext"}) {
		t.Fatalf("bob policies %v", got)
	}
	if a, ok := v.AliasByName("auth_userpass_1", "bob"); !ok || a.CanonicalID != "e2" {
		t.Fatalf("alias lookup %v", a)
	}
	if _, ok := v.AliasByName("auth_userpass_1", "carol"); ok {
		t.Fatal("a deleted entity's alias survived")
	}
	if g, ok := v.GroupByAlias("auth_oidc_1", "engineers"); !ok || g.ID != "g3" {
		t.Fatal("group alias lookup")
	}
	viewtest.Conformance(t, func() projections.View { return New() }, recs)
}

func TestMalformed(t *testing.T) {
	for _, r := range []ledger.Record{
		{Event: ledger.Event{Type: EntityWritten, Payload: []byte("{")}},
		rec(t, 1, EntityWritten, Entity{ID: "x"}),
		rec(t, 1, AliasWritten, Alias{ID: "x", Name: "n"}),
		rec(t, 1, GroupWritten, Group{ID: "x", Name: "n", Type: "weird"}),
	} {
		if err := New().Apply(r); err == nil {
			t.Errorf("accepted %s", r.Payload)
		}
	}
}
