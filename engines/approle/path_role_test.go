package approle

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ledger-secrets/ledger/engines"
)

func TestRoleCRUD(t *testing.T) {
	h := newHarness(t)
	h.fails(listing("role/"), engines.ErrNotFound, "")
	h.ok(write("role/Web-App", `{"token_policies":"web"}`)) // names are lower-cased, as Vault's
	h.ok(write("role/db", `{"policies":"db,DB,metrics"}`))
	if got := h.ok(listing("role/")).Data["keys"]; !reflect.DeepEqual(got, []string{"db", "web-app"}) {
		t.Fatalf("list %v", got)
	}
	if got := h.ok(read("role/WEB-APP")).Data["token_policies"]; !reflect.DeepEqual(got, []string{"web"}) {
		t.Fatalf("read %v", got)
	}
	// The deprecated "policies" sets token_policies and is shown back.
	d := h.ok(read("role/db")).Data
	if !reflect.DeepEqual(d["token_policies"], []string{"db", "metrics"}) || !reflect.DeepEqual(d["policies"], []string{"db", "metrics"}) {
		t.Fatalf("legacy policies %v / %v", d["token_policies"], d["policies"])
	}

	// An update changes only what it names; the role_id stays.
	before := h.roleID("web-app")
	h.ok(write("role/web-app", `{"secret_id_num_uses":4}`))
	d = h.ok(read("role/web-app")).Data
	if d["secret_id_num_uses"] != 4 || !reflect.DeepEqual(d["token_policies"], []string{"web"}) || h.roleID("web-app") != before {
		t.Fatalf("after update %v", d)
	}

	// Deleting a role takes its secret IDs with it; a new role of the same name does not inherit them.
	sid, _ := h.secretID("web-app", "")
	h.ok(del("role/web-app"))
	h.fails(read("role/web-app"), engines.ErrNotFound, "")
	h.ok(del("role/web-app")) // idempotent
	h.ok(write("role/web-app", fmt.Sprintf(`{"role_id":%q}`, before)))
	h.fails(loginFrom("10.0.0.1:1", before, sid), engines.ErrBadRequest, "invalid role or secret ID")
}

func TestRoleValidation(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, path, body, msg string
	}{
		{"slash in name", "role/a/b", `{}`, `invalid role name "a/b": role names cannot contain "/"`},
		{"batch tokens", "role/r", `{"token_type":"batch"}`, "batch tokens are not supported"},
		{"bad token type", "role/r", `{"token_type":"shiny"}`, `invalid 'token_type' value "shiny"`},
		{"ttl over max", "role/r", `{"token_ttl":"2h","token_max_ttl":"1h"}`, "'token_ttl' cannot be greater than 'token_max_ttl'"},
		{"negative ttl", "role/r", `{"token_ttl":-5}`, "'token_ttl' cannot be negative"},
		{"negative uses", "role/r", `{"secret_id_num_uses":-1}`, "secret_id_num_uses cannot be negative"},
		{"bad cidr", "role/r", `{"secret_id_bound_cidrs":"10.0.0.0/33"}`, "invalid CIDR blocks"},
		{"no constraint", "role/r", `{"bind_secret_id":false}`, "at least one constraint should be enabled on the role"},
		{"period over mount max", "role/r", `{"token_period":"800h"}`, `period of "800h" is greater than the backend's maximum lease TTL of "768h"`},
		{"empty role_id", "role/r", `{"role_id":""}`, "invalid role_id supplied, or failed to generate a role_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.fails(write(tc.path, tc.body), engines.ErrBadRequest, tc.msg)
		})
	}
	if len(h.view.Roles(h.mount.UUID)) != 0 {
		t.Fatal("a refused write created a role")
	}

	h.ok(write("role/r", `{"token_type":"service","local_secret_ids":true}`))
	h.fails(write("role/r", `{"local_secret_ids":false}`), engines.ErrBadRequest, "local_secret_ids can only be modified during role creation")
	if d := h.ok(read("role/r")).Data; d["token_type"] != "service" || d["local_secret_ids"] != true {
		t.Fatalf("read %v", d)
	}
	resp := h.ok(write("role/r", `{"token_type":"default-service","frobnicate":1}`))
	if len(resp.Warnings) != 2 || !strings.Contains(resp.Warnings[1], "frobnicate") {
		t.Fatalf("warnings %v", resp.Warnings)
	}
}

func TestRoleID(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/a", `{"role_id":"custom-a"}`))
	h.ok(write("role/b", `{}`))
	if got := h.roleID("a"); got != "custom-a" {
		t.Fatalf("role_id %q", got)
	}
	h.fails(write("role/b", `{"role_id":"custom-a"}`), engines.ErrBadRequest, "role_id already in use")
	h.fails(write("role/b/role-id", `{"role_id":"custom-a"}`), engines.ErrBadRequest, "role_id already in use")
	h.fails(write("role/b/role-id", `{}`), engines.ErrBadRequest, "missing role_id")
	h.fails(write("role/none/role-id", `{"role_id":"x"}`), engines.ErrNotFound, "")

	// A new role_id keeps the role's secret IDs valid (they are bound to the role, not its role_id).
	sid, _ := h.secretID("b", "")
	h.ok(write("role/b/role-id", `{"role_id":"custom-b"}`))
	h.ok(loginFrom("10.0.0.1:1", "custom-b", sid))
	if _, ok := h.view.RoleByRoleID(h.mount.UUID, h.roleID("b")); !ok || h.roleID("b") != "custom-b" {
		t.Fatal("role_id index not moved")
	}
	h.fails(loginFrom("10.0.0.1:1", "old-id-gone", sid), engines.ErrBadRequest, "invalid role or secret ID")
	// The old role_id is free again.
	h.ok(write("role/a/role-id", `{"role_id":"custom-a2"}`))
	h.ok(write("role/c", `{"role_id":"custom-a"}`))
}

func TestRoleFieldPaths(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/r", `{"token_ttl":"1h","policies":"p1"}`))

	if d := h.ok(read("role/r/token-ttl")).Data; !reflect.DeepEqual(d, map[string]any{"token_ttl": int64(3600)}) {
		t.Fatalf("token-ttl %v", d)
	}
	h.ok(write("role/r/token-ttl", `{"token_ttl":"2h"}`))
	h.fails(write("role/r/token-ttl", `{}`), engines.ErrBadRequest, "missing token_ttl")
	if d := h.ok(read("role/r")).Data; d["token_ttl"] != int64(7200) {
		t.Fatalf("after field write %v", d["token_ttl"])
	}
	h.ok(del("role/r/token-ttl"))
	if d := h.ok(read("role/r")).Data; d["token_ttl"] != int64(0) {
		t.Fatalf("after field delete %v", d["token_ttl"])
	}

	if d := h.ok(read("role/r/policies")).Data; !reflect.DeepEqual(d["token_policies"], []string{"p1"}) || !reflect.DeepEqual(d["policies"], []string{"p1"}) {
		t.Fatalf("policies %v", d)
	}
	h.ok(write("role/r/policies", `{"token_policies":"p2"}`))
	if d := h.ok(read("role/r/policies")).Data; !reflect.DeepEqual(d, map[string]any{"token_policies": []string{"p2"}}) {
		t.Fatalf("policies after token_policies %v", d)
	}

	// bind_secret_id=false needs another constraint.
	h.fails(write("role/r/bind-secret-id", `{"bind_secret_id":false}`), engines.ErrBadRequest, "at least one constraint should be enabled on the role")
	h.ok(write("role/r/secret-id-bound-cidrs", `{"secret_id_bound_cidrs":"10.0.0.0/8"}`))
	h.ok(write("role/r/bind-secret-id", `{"bind_secret_id":false}`))
	if d := h.ok(read("role/r/bind-secret-id")).Data; d["bind_secret_id"] != false {
		t.Fatalf("bind_secret_id %v", d)
	}
	h.ok(del("role/r/bind-secret-id")) // back to the default, true
	if d := h.ok(read("role/r/bound-cidr-list")); !reflect.DeepEqual(d.Data["bound_cidr_list"], []string{"10.0.0.0/8"}) || len(d.Warnings) != 1 {
		t.Fatalf("bound-cidr-list %v %v", d.Data, d.Warnings)
	}
	h.fails(write("role/none/token-ttl", `{"token_ttl":1}`), engines.ErrNotFound, "")
}

func TestExistenceCheck(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/r", `{}`))
	for path, want := range map[string]bool{"role/r": true, "role/R": true, "role/other": false, "role/other/secret-id": true, "login": true} {
		got, err := h.b.Exists(context.Background(), &engines.Request{Op: engines.OpUpdate, Path: path})
		if err != nil || got != want {
			t.Errorf("Exists(%s) = %v, %v; want %v", path, got, err, want)
		}
	}
}

func TestLockKeys(t *testing.T) {
	h := newHarness(t)
	key := func(path, body string) string {
		data := map[string]any{}
		if body != "" {
			data["secret_id"] = body
		}
		return h.b.LockKey(&engines.Request{Op: engines.OpUpdate, Path: path, Data: data})
	}
	if a, b := key("login", "s1"), key("login", "s1"); a == "" || a != b || strings.Contains(a, "s1") {
		t.Fatalf("login lock keys %q %q", a, b)
	}
	if key("login", "s1") == key("login", "s2") {
		t.Fatal("different secret IDs share a lock")
	}
	if key("role/a", "") != key("role/b/role-id", "") {
		t.Fatal("role configuration writes must share the mount's roles lock (role_id uniqueness)")
	}
	if key("role/a/secret-id", "") != key("role/A/secret-id-accessor/destroy", "") || key("role/a/secret-id", "") == key("role/b/secret-id", "") {
		t.Fatal("secret-ID writes lock per role")
	}
}

func TestRoleDeletedBeforeSecretIDLands(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/r", `{}`))
	// Decide a secret ID, then let the role's deletion land first.
	req := &engines.Request{ID: "x", Op: engines.OpUpdate, Path: "role/r/secret-id", Mount: h.mount, Data: map[string]any{},
		Caller: &engines.Caller{Accessor: "a"}, Now: h.clock()}
	resp, err := h.b.HandleRequest(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	h.ok(del("role/r"))
	h.ok(write("role/r", `{}`))
	h.apply(resp.Events)
	if got := h.view.Accessors(h.mount.UUID, "r"); len(got) != 0 {
		t.Fatalf("a secret ID of the deleted role reached its successor: %v", got)
	}
	h.fails(loginFrom("10.0.0.1:1", h.roleID("r"), resp.Data["secret_id"].(string)), engines.ErrBadRequest, "invalid role or secret ID")
}
