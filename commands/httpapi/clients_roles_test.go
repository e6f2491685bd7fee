package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// Token roles through the official client: a token created against a role carries the role's
// policies and limits, and a role cannot grant what its writer lacks.
func TestTokenRoles(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	putPolicy(t, root, "deploy", `path "secret/data/deploy/*" { capabilities = ["read"] }`)
	putPolicy(t, root, "admin", `path "*" { capabilities = ["create", "read", "update", "delete", "list"] }`)
	putPolicy(t, root, "role-writer", `
path "auth/token/roles/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "auth/token/roles" { capabilities = ["list"] }`)
	putPolicy(t, root, "ci-creator", `path "auth/token/create/ci" { capabilities = ["update"] }`)

	if _, err := root.Logical().Write("auth/token/roles/ci", map[string]any{
		"allowed_policies": "deploy", "disallowed_policies": "admin", "orphan": true, "renewable": false,
		"token_explicit_max_ttl": "2h", "token_num_uses": 0, "path_suffix": "v1", "token_period": "",
	}); err != nil {
		t.Fatalf("write role: %v", err)
	}
	r, err := root.Logical().Read("auth/token/roles/ci")
	if err != nil || r == nil {
		t.Fatalf("read role: %v %v", r, err)
	}
	if got := strs(t, r.Data["allowed_policies"]); !sameStrings(got, []string{"deploy"}) {
		t.Fatalf("allowed_policies %v", got)
	}
	if r.Data["orphan"] != true || r.Data["renewable"] != false || r.Data["path_suffix"] != "v1" ||
		num(t, r.Data["token_explicit_max_ttl"]) != 7200 || r.Data["token_type"] != "default-service" || r.Data["name"] != "ci" {
		t.Fatalf("role read back: %v", r.Data)
	}
	if keys := listKeys(t, root, "auth/token/roles"); !sameStrings(keys, []string{"ci"}) {
		t.Fatalf("LIST roles = %v", keys)
	}

	// A caller holding only the right to create against the role gets the role's policies,
	// though it does not hold them itself, and the role's limits.
	creator := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"ci-creator"}, TTL: "1h"})
	cc := s.Client(t, creator.ClientToken)
	sec, err := cc.Auth().Token().CreateWithRole(&vault.TokenCreateRequest{TTL: "5h", ExplicitMaxTTL: "10h"}, "ci")
	if err != nil {
		t.Fatalf("create with role: %v", err)
	}
	a := sec.Auth
	if !sameStrings(a.Policies, []string{"default", "deploy"}) || !a.Orphan || a.Renewable || a.LeaseDuration != 7200 {
		t.Fatalf("token from role: policies %v orphan %v renewable %v ttl %d", a.Policies, a.Orphan, a.Renewable, a.LeaseDuration)
	}
	look, err := root.Auth().Token().Lookup(a.ClientToken)
	if err != nil {
		t.Fatal(err)
	}
	if look.Data["path"] != "auth/token/create/ci/v1" || num(t, look.Data["explicit_max_ttl"]) != 7200 {
		t.Fatalf("lookup of role token: path %v explicit_max_ttl %v", look.Data["path"], look.Data["explicit_max_ttl"])
	}
	// The token works with the role's policy.
	if _, err := root.Logical().Write("secret/data/deploy/app", map[string]any{"data": map[string]any{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client(t, a.ClientToken).Logical().Read("secret/data/deploy/app"); err != nil {
		t.Fatalf("role token reading its policy's path: %v", err)
	}

	t.Run("bad inputs", func(t *testing.T) {
		writer := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"role-writer", "deploy"}, TTL: "1h"})
		wc := s.Client(t, writer.ClientToken)
		for _, tc := range []struct {
			name string
			c    *vault.Client
			path string
			body map[string]any
			msg  string
		}{
			{"writer lacks the policy", wc, "auth/token/roles/escalate", map[string]any{"allowed_policies": "admin"}, `does not have (["admin"])`},
			{"writer sets a glob", wc, "auth/token/roles/escalate", map[string]any{"allowed_policies_glob": "adm*"}, "allowed_policies_glob"},
			{"policy outside the role", cc, "auth/token/create/ci", map[string]any{"policies": "admin"}, "must be subset of the role's allowed policies"},
			{"unknown role", root, "auth/token/create/nope", nil, "unknown role nope"},
			{"batch role", root, "auth/token/roles/b", map[string]any{"token_type": "batch"}, "batch tokens are not supported"},
			{"wrong type", root, "auth/token/roles/b", map[string]any{"orphan": "maybe"}, `field "orphan": expected a boolean`},
			{"negative period", root, "auth/token/roles/b", map[string]any{"token_period": "-1"}, "'token_period' cannot be negative"},
			{"path suffix with ..", root, "auth/token/roles/b", map[string]any{"path_suffix": "../x"}, "parent references"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := tc.c.Logical().Write(tc.path, tc.body)
				respErr(t, err, http.StatusBadRequest, tc.msg)
			})
		}
		if _, err := root.Logical().Read("auth/token/roles/escalate"); err != nil {
			t.Fatalf("read refused role: %v", err)
		}
		if r, _ := root.Logical().Read("auth/token/roles/escalate"); r != nil {
			t.Fatal("a refused role was written")
		}
		// What the writer holds, it may allow.
		if _, err := wc.Logical().Write("auth/token/roles/mine", map[string]any{"allowed_policies": "deploy"}); err != nil {
			t.Fatalf("writer allowing its own policy: %v", err)
		}
		// A role without allowed policies keeps the parent-subset rule.
		if _, err := root.Logical().Write("auth/token/roles/plain", map[string]any{"disallowed_policies": "deploy"}); err != nil {
			t.Fatal(err)
		}
		putPolicy(t, root, "plain-creator", `path "auth/token/create/plain" { capabilities = ["update"] }`)
		pc := s.Client(t, newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"plain-creator"}, TTL: "1h"}).ClientToken)
		_, err := pc.Auth().Token().CreateWithRole(&vault.TokenCreateRequest{Policies: []string{"admin"}}, "plain")
		respErr(t, err, http.StatusBadRequest, "must be subset of the parent token's policies")
		_, err = root.Auth().Token().CreateWithRole(&vault.TokenCreateRequest{Policies: []string{"deploy"}}, "plain")
		respErr(t, err, http.StatusBadRequest, `token policy "deploy" is disallowed by this role`)
	})

	t.Run("delete", func(t *testing.T) {
		if _, err := root.Logical().Delete("auth/token/roles/ci"); err != nil {
			t.Fatal(err)
		}
		_, err := cc.Auth().Token().CreateWithRole(&vault.TokenCreateRequest{}, "ci")
		respErr(t, err, http.StatusBadRequest, "unknown role ci")
		if !strings.Contains(strings.Join(listKeys(t, root, "auth/token/roles"), ","), "mine") {
			t.Fatal("other roles gone")
		}
	})
}
