package approle

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	approleview "github.com/ledger-secrets/ledger/projections/approle"
	"github.com/ledger-secrets/ledger/projections/mount"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func TestSecretIDLookupAndDestroy(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/r", `{"secret_id_ttl":"1h"}`))
	h.ok(write("role/other", `{}`))
	h.fails(listing("role/r/secret-id/"), engines.ErrNotFound, "")
	h.fails(listing("role/none/secret-id/"), engines.ErrBadRequest, `role "none" does not exist`)
	h.fails(write("role/none/secret-id", ""), engines.ErrNotFound, `role "none" does not exist`)

	s1, a1 := h.secretID("r", `{"metadata":"{\"env\":\"prod\"}","cidr_list":["10.0.0.0/8"],"ttl":"30m"}`)
	s2, a2 := h.secretID("r", `{"metadata":"team=core"}`)
	h.fails(write("role/r/secret-id", `{"ttl":"2h"}`), engines.ErrBadRequest, "ttl cannot be longer than the role's secret_id_ttl")
	h.fails(write("role/r/secret-id", `{"metadata":"{not json"}`), engines.ErrBadRequest, "")

	keys := h.ok(listing("role/r/secret-id/")).Data["keys"].([]string)
	want := []string{a1, a2}
	if a1 > a2 {
		want = []string{a2, a1}
	}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("accessors %v, want %v", keys, want)
	}

	d := h.ok(write("role/r/secret-id/lookup", fmt.Sprintf(`{"secret_id":%q}`, s1))).Data
	now := h.clock()
	for k, v := range map[string]any{
		"secret_id_accessor": a1, "secret_id_num_uses": 0, "secret_id_ttl": int64(1800),
		"metadata": map[string]string{"env": "prod"}, "cidr_list": []string{"10.0.0.0/8"}, "token_bound_cidrs": []string{},
		"creation_time": now.Format(time.RFC3339Nano), "expiration_time": now.Add(30 * time.Minute).Format(time.RFC3339Nano),
	} {
		if !reflect.DeepEqual(d[k], v) {
			t.Errorf("lookup %s = %#v, want %#v", k, d[k], v)
		}
	}
	if got := h.ok(write("role/r/secret-id-accessor/lookup", fmt.Sprintf(`{"secret_id_accessor":%q}`, a2))).Data["metadata"]; !reflect.DeepEqual(got, map[string]string{"team": "core"}) {
		t.Fatalf("accessor lookup metadata %v", got)
	}
	// Another role's endpoints do not see r's secret IDs.
	if resp := h.ok(write("role/other/secret-id/lookup", fmt.Sprintf(`{"secret_id":%q}`, s1))); resp.Data != nil {
		t.Fatalf("lookup through another role: %v", resp.Data)
	}
	h.fails(write("role/other/secret-id-accessor/lookup", fmt.Sprintf(`{"secret_id_accessor":%q}`, a1)), engines.ErrNotFound, "")
	h.fails(write("role/r/secret-id/lookup", `{}`), engines.ErrBadRequest, "missing secret_id")
	if resp := h.ok(write("role/r/secret-id/lookup", `{"secret_id":"nope"}`)); resp.Data != nil {
		t.Fatalf("unknown secret ID looked up: %v", resp.Data)
	}

	h.ok(write("role/r/secret-id/destroy", fmt.Sprintf(`{"secret_id":%q}`, s1)))
	h.ok(call{op: engines.OpDelete, path: "role/r/secret-id-accessor/destroy", body: fmt.Sprintf(`{"secret_id_accessor":%q}`, a2)})
	h.fails(write("role/r/secret-id-accessor/destroy", fmt.Sprintf(`{"secret_id_accessor":%q}`, a2)), engines.ErrBadRequest, "")
	h.fails(listing("role/r/secret-id/"), engines.ErrNotFound, "")
	h.fails(loginFrom("10.0.0.1:1", h.roleID("r"), s1), engines.ErrBadRequest, "invalid role or secret ID")
	h.fails(loginFrom("10.0.0.2:1", h.roleID("r"), s2), engines.ErrBadRequest, "invalid role or secret ID")

	// The view holds MACs, never the secret IDs.
	h.noSecretInEvents()
	snap, err := h.view.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	h.noSecretIn(string(snap))
}

func TestTidy(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/r", `{}`))
	short, _ := h.secretID("r", `{"ttl":"1m"}`)
	_, _ = h.secretID("r", `{"ttl":"1h"}`)
	forever, _ := h.secretID("r", "")
	if evs := h.b.TidyEvents(h.clock()); len(evs) != 0 {
		t.Fatalf("tidy before anything expired: %d events", len(evs))
	}
	h.advance(time.Minute)
	evs := h.b.TidyEvents(h.clock())
	if len(evs) != 1 || evs[0].Type != approleview.SecretIDDestroyed || evs[0].Subject != ledger.SubjectFor("approle", h.mount.UUID, "r") {
		t.Fatalf("tidy events %+v", evs)
	}
	h.apply(evs)
	if len(h.view.Accessors(h.mount.UUID, "r")) != 2 {
		t.Fatal("tidy destroyed the wrong secret IDs")
	}
	h.fails(loginFrom("10.0.0.1:1", h.roleID("r"), short), engines.ErrBadRequest, "invalid role or secret ID")

	h.advance(time.Hour)
	resp := h.ok(write("tidy/secret-id", ""))
	if resp.Status != 202 || len(resp.Warnings) != 1 {
		t.Fatalf("tidy answer %+v", resp)
	}
	if got := h.view.Accessors(h.mount.UUID, "r"); len(got) != 1 {
		t.Fatalf("after tidy: %v", got)
	}
	h.ok(loginFrom("10.0.0.1:1", h.roleID("r"), forever))
}

func TestSecretIDTTLCappedByMount(t *testing.T) {
	h := newHarness(t)
	h.mount.MaxLeaseTTL = 2 * time.Hour
	h.b = New(h.view, h.tokens, h.kr, h.mount)
	h.ok(write("role/r", `{"secret_id_ttl":"10h"}`))
	if got := h.ok(write("role/r/secret-id", "")).Data["secret_id_ttl"]; got != int64(7200) {
		t.Fatalf("secret_id_ttl %v, want the mount's max", got)
	}
}

// TestViewConformance runs the view contract over every event the engine decided in a busy
// session, ending with the mount's removal.
func TestViewConformance(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/a", `{"token_policies":"x","secret_id_num_uses":3}`))
	h.ok(write("role/b", `{"role_id":"b-id","secret_id_bound_cidrs":"10.0.0.0/8"}`))
	sa, _ := h.secretID("a", `{"metadata":"k=v"}`)
	sb, _ := h.secretID("b", `{"ttl":"5m"}`)
	h.ok(loginFrom("10.0.0.1:1", h.roleID("a"), sa))
	h.ok(loginFrom("10.0.0.1:1", "b-id", sb))
	h.ok(write("role/a/role-id", `{"role_id":"a-id"}`))
	h.ok(write("role/c", `{}`))
	sc, _ := h.secretID("c", `{"num_uses":1}`)
	h.ok(loginFrom("10.0.0.2:1", h.roleID("c"), sc)) // spends its only use
	h.ok(del("role/c"))
	h.advance(time.Hour)
	h.apply(h.b.TidyEvents(h.clock()))

	recs := append([]ledger.Record(nil), h.recs...)
	newView := func() projections.View { return approleview.New() }
	viewtest.Conformance(t, newView, recs)

	// The mount's removal empties the view, and later events for it are ignored.
	dis, _ := json.Marshal(mount.DisabledPayload{Path: "auth/approle/", UUID: h.mount.UUID})
	after := approleview.New()
	for _, r := range recs {
		if err := after.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	last := recs[len(recs)-1].Pos.Seq
	for _, r := range []ledger.Record{
		{Event: ledger.Event{Type: mount.Disabled, Payload: dis}, Pos: ledger.Position{Seq: last + 1}},
		{Event: recs[0].Event, Pos: ledger.Position{Seq: last + 2}}, // a straggler role write
	} {
		if err := after.Apply(r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if roles := after.Roles(h.mount.UUID); len(roles) != 0 {
		t.Fatalf("roles after the mount was disabled: %v", roles)
	}
	viewtest.Conformance(t, newView, recs)
}
