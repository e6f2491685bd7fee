package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// POST <mount>/rollback/<path> {"version": N} — Ledger's server-side rollback: a token with only
// update on secret/rollback/<path> makes version N's data current without being able to read it
// (vault#12448).
func TestServerSideRollback(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	kv := root.KVv2("secret")
	ctx := context.Background()
	for _, pass := range []string{"one", "two", "three"} {
		if _, err := kv.Put(ctx, "app/db", map[string]any{"pass": "marker-" + pass}); err != nil {
			t.Fatal(err)
		}
	}
	putPolicy(t, root, "roller", `path "secret/rollback/app/*" { capabilities = ["update"] }`)
	putPolicy(t, root, "creator", `path "secret/rollback/app/*" { capabilities = ["create"] }`)
	rollerAuth := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"roller"}})
	roller := s.Client(t, rollerAuth.ClientToken)
	creator := s.Client(t, newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"creator"}}).ClientToken)

	r := raw(t, s.URL, http.MethodPost, "secret/rollback/app/db", strings.NewReader(`{"version":1}`), tokenHeader(rollerAuth.ClientToken))
	if r.Status != http.StatusOK {
		t.Fatalf("rollback: %d %s", r.Status, r.Body)
	}
	noLeak(t, "rollback answer", r.Body, "marker-one")
	if d, _ := r.json(t)["data"].(map[string]any); num(t, d["version"]) != 4 {
		t.Fatalf("rollback answered %v, want version 4", d)
	}
	_, err := roller.KVv2("secret").Get(ctx, "app/db")
	respErr(t, err, http.StatusForbidden, "permission denied")
	got, err := kv.Get(ctx, "app/db")
	if err != nil || got.Data["pass"] != "marker-one" || got.VersionMetadata.Version != 4 {
		t.Fatalf("after rollback: %v %v", got, err)
	}
	if ev := histEvents(t, s, s.RootToken, "secret/data/app/db"); len(ev) != 4 || ev[3]["actor"] != rollerAuth.Accessor || num(t, ev[3]["version"]) != 4 {
		t.Fatalf("history after rollback: %v", ev)
	}

	// The official client speaks it too, as a plain write.
	if sec, err := roller.Logical().Write("secret/rollback/app/db", map[string]any{"version": 2}); err != nil || num(t, sec.Data["version"]) != 5 {
		t.Fatalf("rollback through the official client: %v %v", sec, err)
	}

	if err := kv.Destroy(ctx, "app/db", []int{2}); err != nil {
		t.Fatal(err)
	}
	if err := kv.DeleteVersions(ctx, "app/db", []int{3}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		client *vault.Client
		path   string
		data   map[string]any
		status int
		want   string
	}{
		{"destroyed version", roller, "secret/rollback/app/db", map[string]any{"version": 2}, 400, "cannot roll back to version 2: it has been destroyed"},
		{"deleted version", roller, "secret/rollback/app/db", map[string]any{"version": 3}, 400, "cannot roll back to version 3: it has been deleted"},
		{"version that never was", roller, "secret/rollback/app/db", map[string]any{"version": 42}, 400, "does not exist"},
		{"no version", roller, "secret/rollback/app/db", map[string]any{}, 400, "field \"version\""},
		{"stale check-and-set", roller, "secret/rollback/app/db", map[string]any{"version": 1, "cas": 4}, 400, "check-and-set parameter did not match the current version"},
		{"unknown secret", roller, "secret/rollback/app/none", map[string]any{"version": 1}, 404, "no secret"},
		{"outside the grant", roller, "secret/rollback/other/db", map[string]any{"version": 1}, 403, "permission denied"},
		{"create is not enough: rollback is an update", creator, "secret/rollback/app/db", map[string]any{"version": 1}, 403, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.Logical().Write(tt.path, tt.data)
			respErr(t, err, tt.status, tt.want)
		})
	}
	if md, err := kv.GetMetadata(ctx, "app/db"); err != nil || md.CurrentVersion != 5 {
		t.Fatalf("refused rollbacks wrote: %v %v", md, err)
	}
}
