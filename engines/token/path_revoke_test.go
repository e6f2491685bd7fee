package token

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// tree builds root → a → {b → c, d} and returns the token strings by name.
func tree(h *harness) map[string]string {
	h.t.Helper()
	toks := map[string]string{}
	toks["a"], _ = h.create(h.root(), `{"policies": ["web"], "ttl": "1h"}`)
	toks["b"], _ = h.create(h.caller(toks["a"]), `{}`)
	toks["c"], _ = h.create(h.caller(toks["b"]), `{}`)
	toks["d"], _ = h.create(h.caller(toks["a"]), `{}`)
	return toks
}

func revoked(t *testing.T, ev ledger.Event) tokenview.RevokedPayload {
	t.Helper()
	var p tokenview.RevokedPayload
	if ev.Type != tokenview.Revoked {
		t.Fatalf("event %s, want %s", ev.Type, tokenview.Revoked)
	}
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRevokeTree(t *testing.T) {
	h := newHarness(t)
	toks := tree(h)
	mac := func(name string) string { return h.kr.MAC("token", toks[name]) }
	if kids := h.view.Children(mac("a")); len(kids) != 2 {
		t.Fatalf("a has %d children", len(kids))
	}

	resp := h.write(h.root(), "revoke", `{"token": "`+toks["a"]+`"}`)
	if resp.Data != nil || resp.Auth != nil || len(resp.Events) != 4 {
		t.Fatalf("revoke = %+v", resp)
	}
	// Children before parents: each token's event comes after all of its descendants'.
	at := map[string]int{}
	for i, ev := range resp.Events {
		p := revoked(t, ev)
		at[p.MAC] = i
		if p.OrphanChildren {
			t.Fatal("tree revocation orphaned children")
		}
		want := ReasonParentRevoked
		if p.MAC == mac("a") {
			want = ReasonRevoked
		}
		if p.Reason != want {
			t.Fatalf("reason %q for %s", p.Reason, p.MAC)
		}
	}
	if !(at[mac("c")] < at[mac("b")] && at[mac("b")] < at[mac("a")] && at[mac("d")] < at[mac("a")]) {
		t.Fatalf("order %v is not children first", at)
	}
	for name := range toks {
		if _, ok := h.view.ByMAC(mac(name)); ok {
			t.Fatalf("%s survived its ancestor's revocation", name)
		}
	}
	if h.view.Len() != 1 {
		t.Fatalf("view holds %d tokens, want the root token only", h.view.Len())
	}
	_, err := h.do(context.Background(), h.root(), engines.OpUpdate, "lookup", body(t, `{"token": "`+toks["c"]+`"}`))
	wantErr(t, err, engines.ErrPermissionDenied, "bad token")

	// Revoking it again, or any unknown token, succeeds with nothing to do (Vault's 204).
	resp = h.write(h.root(), "revoke", `{"token": "`+toks["a"]+`"}`)
	if len(resp.Events) != 0 || resp.Data != nil || len(resp.Warnings) != 0 {
		t.Fatalf("second revoke = %+v", resp)
	}
}

func TestRevokeSelfAndAccessor(t *testing.T) {
	h := newHarness(t)
	toks := tree(h)
	resp := h.write(h.caller(toks["b"]), "revoke-self", "")
	if len(resp.Events) != 2 {
		t.Fatalf("revoke-self of b = %d events, want b and c", len(resp.Events))
	}
	d, _ := h.view.ByMAC(h.kr.MAC("token", toks["d"]))
	resp = h.write(h.root(), "revoke-accessor", `{"accessor": "`+d.Accessor+`"}`)
	if len(resp.Events) != 1 || revoked(t, resp.Events[0]).MAC != d.MAC {
		t.Fatalf("revoke-accessor = %+v", resp)
	}
	if kids := h.view.Children(h.kr.MAC("token", toks["a"])); len(kids) != 0 {
		t.Fatalf("a still has children %v", kids)
	}
	resp = h.write(h.root(), "revoke-accessor", `{"accessor": "`+d.Accessor+`"}`)
	if len(resp.Events) != 0 || len(resp.Warnings) != 1 || resp.Warnings[0] != "No token found with this accessor" {
		t.Fatalf("revoke-accessor of a revoked token = %+v", resp)
	}
	_, err := h.do(context.Background(), h.root(), engines.OpUpdate, "revoke-accessor", nil)
	wantErr(t, err, engines.ErrBadRequest, "missing accessor")
	_, err = h.do(context.Background(), h.root(), engines.OpUpdate, "revoke", body(t, `{"token": 5}`))
	if err != nil {
		t.Fatalf("revoke of a number-shaped token: %v", err) // a string to Vault too: unknown, 204
	}
	_, err = h.do(context.Background(), h.root(), engines.OpUpdate, "revoke", body(t, `{"token": {"x": 1}}`))
	wantErr(t, err, engines.ErrBadRequest, `field "token": expected a string`)
	_, err = h.do(context.Background(), h.root(), engines.OpUpdate, "revoke", nil)
	wantErr(t, err, engines.ErrBadRequest, "missing token ID")
}

func TestRevokeOrphan(t *testing.T) {
	h := newHarness(t)
	toks := tree(h)
	_, err := h.do(context.Background(), h.caller(toks["a"]), engines.OpUpdate, "revoke-orphan", body(t, `{"token": "`+toks["b"]+`"}`))
	wantErr(t, err, engines.ErrBadRequest, "root or sudo privileges required to revoke and orphan")
	_, err = h.do(context.Background(), h.root(), engines.OpUpdate, "revoke-orphan", nil)
	wantErr(t, err, engines.ErrBadRequest, "missing token ID")
	_, err = h.do(context.Background(), h.root(), engines.OpUpdate, "revoke-orphan", body(t, `{"token": "hvs.unknown"}`))
	wantErr(t, err, engines.ErrBadRequest, "token to revoke not found")

	resp := h.write(h.root(), "revoke-orphan", `{"token": "`+toks["a"]+`"}`)
	if len(resp.Events) != 1 {
		t.Fatalf("revoke-orphan = %d events", len(resp.Events))
	}
	if p := revoked(t, resp.Events[0]); !p.OrphanChildren || p.MAC != h.kr.MAC("token", toks["a"]) {
		t.Fatalf("payload = %+v", p)
	}
	for _, name := range []string{"b", "d"} {
		if d := h.lookup(toks[name]); d["orphan"] != true {
			t.Fatalf("%s after revoke-orphan of its parent: orphan = %v", name, d["orphan"])
		}
	}
	if d := h.lookup(toks["c"]); d["orphan"] != false {
		t.Fatal("grandchild became an orphan")
	}
	// b's subtree now stands alone and is revoked as a tree.
	if n := len(h.write(h.root(), "revoke", `{"token": "`+toks["b"]+`"}`).Events); n != 2 {
		t.Fatalf("revoke of orphaned b = %d events", n)
	}
}

func TestRevokeTreeForExpiration(t *testing.T) {
	h := newHarness(t)
	toks := tree(h)
	if evs := h.b.RevokeTree("no-such-mac", ReasonExpired); evs != nil {
		t.Fatalf("RevokeTree of nothing = %v", evs)
	}
	h.now = epoch.Add(2 * time.Hour) // a (1h) and its children have expired
	due := h.view.Expiring(h.now, 0)
	if len(due) != 4 {
		t.Fatalf("Expiring = %d tokens, want 4", len(due))
	}
	_, err := h.do(context.Background(), h.root(), engines.OpUpdate, "lookup", body(t, `{"token": "`+toks["b"]+`"}`))
	wantErr(t, err, engines.ErrPermissionDenied, "bad token")

	// The expiration manager revokes the earliest (any of them) with its tree.
	evs := h.b.RevokeTree(h.kr.MAC("token", toks["a"]), ReasonExpired)
	if len(evs) != 4 || revoked(t, evs[3]).Reason != ReasonExpired || evs[0].Actor != "" {
		t.Fatalf("RevokeTree = %+v", evs)
	}
	h.apply(evs)
	if len(h.view.Expiring(h.now, 0)) != 0 || h.view.Len() != 1 {
		t.Fatal("expired tree still in the view")
	}
}

func TestNumUses(t *testing.T) {
	h := newHarness(t)
	tok, a := h.create(h.root(), `{"policies": ["web"], "num_uses": 2}`)
	if a.NumUses != 2 {
		t.Fatalf("auth num_uses = %d", a.NumUses)
	}
	mac := h.kr.MAC("token", tok)
	if d := h.lookup(tok); d["num_uses"] != 2 {
		t.Fatalf("lookup num_uses = %v", d["num_uses"])
	}
	// The pipeline appends one Used event per request made with the token.
	h.apply([]ledger.Event{UsedEvent(mac)})
	if d := h.lookup(tok); d["num_uses"] != 1 {
		t.Fatalf("after one use num_uses = %v", d["num_uses"])
	}
	h.apply([]ledger.Event{UsedEvent(mac)})
	if _, ok := h.view.ByMAC(mac); ok {
		t.Fatal("a token with num_uses 2 survived two uses")
	}
	_, err := h.do(context.Background(), h.root(), engines.OpUpdate, "lookup", body(t, `{"token": "`+tok+`"}`))
	wantErr(t, err, engines.ErrPermissionDenied, "bad token")
}

func TestRoutingRefusals(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name   string
		caller *engines.Caller
		op     engines.Operation
		path   string
		kind   error
		msg    string
	}{
		{"no caller", nil, engines.OpRead, "lookup-self", engines.ErrPermissionDenied, "permission denied"},
		{"unknown path", h.root(), engines.OpUpdate, "frobnicate", engines.ErrNotFound, "unsupported path"},
		{"delete lookup", h.root(), engines.OpDelete, "lookup-self", engines.ErrUnsupported, "unsupported operation"},
		{"read revoke", h.root(), engines.OpRead, "revoke", engines.ErrUnsupported, "unsupported operation"},
		{"read accessors", h.root(), engines.OpRead, "accessors", engines.ErrUnsupported, "unsupported operation"},
		{"read missing role", h.root(), engines.OpRead, "roles/x", engines.ErrNotFound, ""},
		{"read roles", h.root(), engines.OpRead, "roles", engines.ErrUnsupported, "unsupported operation"},
		{"role name with a glob", h.root(), engines.OpUpdate, "roles/a*", engines.ErrBadRequest, `invalid role name "a*"`},
		{"create against a missing role", h.root(), engines.OpUpdate, "create/nope", engines.ErrBadRequest, "unknown role nope"},
		{"lookup-accessor by GET", h.root(), engines.OpRead, "lookup-accessor", engines.ErrUnsupported, "unsupported operation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.b.HandleRequest(context.Background(), &engines.Request{Op: tc.op, Path: tc.path, Caller: tc.caller, Now: h.now})
			wantErr(t, err, tc.kind, tc.msg)
		})
	}
}
