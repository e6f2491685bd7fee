package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// webFrontend is the lesson's Exercise 2 policy.
const webFrontend = `
path "secret/data/frontend/*" {
  capabilities = ["read"]
}

path "secret/metadata/frontend/*" {
  capabilities = ["list"]
}

path "database/creds/frontend-readonly" {
  capabilities = ["read"]
}
`

// TestVaultAPIPolicyWebFrontend walks the lesson's web-frontend policy: every allowed path and
// operation works, every other one is Vault's 403 "permission denied".
func TestVaultAPIPolicyWebFrontend(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	ctx := context.Background()
	putPolicy(t, root, "web-frontend", webFrontend)
	for _, p := range []string{"frontend/x", "frontend/sub/y", "backend/x"} {
		if _, err := root.KVv2("secret").Put(ctx, p, map[string]any{"v": p}); err != nil {
			t.Fatal(err)
		}
	}
	tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"web-frontend"}})
	if !sameStrings(tok.Policies, []string{"default", "web-frontend"}) {
		t.Fatalf("token policies = %v", tok.Policies)
	}
	c := s.Client(t, tok.ClientToken)
	kv := c.KVv2("secret")

	allowed := []struct {
		name string
		call func() error
	}{
		{"read secret/data/frontend/x", func() error {
			sec, err := kv.Get(ctx, "frontend/x")
			if err == nil && sec.Data["v"] != "frontend/x" {
				t.Errorf("read frontend/x = %v", sec.Data)
			}
			return err
		}},
		{"read an older version", func() error { _, err := kv.GetVersion(ctx, "frontend/x", 1); return err }},
		{"read a nested path", func() error { _, err := kv.Get(ctx, "frontend/sub/y"); return err }},
		{"list secret/metadata/frontend/", func() error {
			keys := listKeys(t, c, "secret/metadata/frontend/")
			if !sameStrings(keys, []string{"x", "sub/"}) {
				t.Errorf("list frontend/ = %v", keys)
			}
			return nil
		}},
		{"list secret/metadata/frontend/sub/", func() error { listKeys(t, c, "secret/metadata/frontend/sub/"); return nil }},
		{"lookup-self (default policy)", func() error { _, err := c.Auth().Token().LookupSelf(); return err }},
		{"capabilities-self (default policy)", func() error { _, err := c.Sys().CapabilitiesSelf("secret/data/frontend/x"); return err }},
	}
	for _, tc := range allowed {
		t.Run("allowed/"+tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
		})
	}

	forbidden := []struct {
		name string
		call func() error
	}{
		{"write secret/data/frontend/x", func() error {
			_, err := kv.Put(ctx, "frontend/x", map[string]any{"v": "evil"})
			return err
		}},
		{"create secret/data/frontend/new", func() error {
			_, err := kv.Put(ctx, "frontend/new", map[string]any{"v": "evil"})
			return err
		}},
		{"patch secret/data/frontend/x", func() error {
			// KVv2.Patch wraps the 403 with a hint about the patch capability.
			_, err := kv.Patch(ctx, "frontend/x", map[string]any{"v": "evil"})
			return err
		}},
		{"delete secret/data/frontend/x", func() error { return kv.Delete(ctx, "frontend/x") }},
		{"delete versions", func() error { return kv.DeleteVersions(ctx, "frontend/x", []int{1}) }},
		{"destroy", func() error { return kv.Destroy(ctx, "frontend/x", []int{1}) }},
		{"undelete", func() error { return kv.Undelete(ctx, "frontend/x", []int{1}) }},
		{"read metadata", func() error { _, err := kv.GetMetadata(ctx, "frontend/x"); return err }},
		{"write metadata", func() error {
			return kv.PutMetadata(ctx, "frontend/x", vault.KVMetadataPutInput{MaxVersions: 1})
		}},
		{"delete metadata", func() error { return kv.DeleteMetadata(ctx, "frontend/x") }},
		{"read secret/data/backend/x", func() error { _, err := kv.Get(ctx, "backend/x"); return err }},
		{"read secret/data/frontend (no trailing segment)", func() error {
			_, err := c.Logical().Read("secret/data/frontend")
			return err
		}},
		{"list secret/metadata/", func() error { _, err := c.Logical().List("secret/metadata/"); return err }},
		{"list secret/metadata/backend/", func() error { _, err := c.Logical().List("secret/metadata/backend/"); return err }},
		{"read subkeys", func() error { _, err := c.Logical().Read("secret/subkeys/frontend/x"); return err }},
		{"write secret/config", func() error {
			_, err := c.Logical().Write("secret/config", map[string]any{"max_versions": 1})
			return err
		}},
		{"write a policy", func() error { return c.Sys().PutPolicy("web-frontend", `path "*" { capabilities = ["sudo"] }`) }},
		{"read a policy", func() error { _, err := c.Sys().GetPolicy("web-frontend"); return err }},
		{"list policies", func() error { _, err := c.Sys().ListPolicies(); return err }},
		{"delete a policy", func() error { return c.Sys().DeletePolicy("web-frontend") }},
		{"mount", func() error { return c.Sys().Mount("evil", &vault.MountInput{Type: "kv"}) }},
		{"unmount", func() error { return c.Sys().Unmount("secret") }},
		{"list mounts", func() error { _, err := c.Sys().ListMounts(); return err }},
		{"create a token", func() error {
			_, err := c.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"web-frontend"}})
			return err
		}},
		{"lookup another token", func() error { _, err := c.Auth().Token().Lookup(s.RootToken); return err }},
		{"seal", func() error { return c.Sys().Seal() }},
	}
	for _, tc := range forbidden {
		t.Run("forbidden/"+tc.name, func(t *testing.T) { denied(t, tc.call()) })
	}
	// Nothing a forbidden call tried took effect.
	if sec, err := root.KVv2("secret").Get(ctx, "frontend/x"); err != nil || sec.Data["v"] != "frontend/x" || sec.VersionMetadata.Version != 1 {
		t.Fatalf("frontend/x after the forbidden calls = %+v %v", sec, err)
	}
	if txt, _ := root.Sys().GetPolicy("web-frontend"); txt != webFrontend {
		t.Fatalf("web-frontend policy changed: %q", txt)
	}

	t.Run("capabilities", func(t *testing.T) {
		cases := []struct {
			path string
			want []string
		}{
			{"database/creds/frontend-readonly", []string{"read"}},
			{"secret/data/frontend/x", []string{"read"}},
			{"secret/metadata/frontend/x", []string{"list"}},
			{"secret/data/backend/x", []string{"deny"}},
			{"sys/policies/acl/web-frontend", []string{"deny"}},
		}
		for _, tc := range cases {
			t.Run(tc.path, func(t *testing.T) {
				got, err := c.Sys().CapabilitiesSelf(tc.path)
				if err != nil || !sameStrings(got, tc.want) {
					t.Fatalf("capabilities-self %s = %v %v, want %v", tc.path, got, err, tc.want)
				}
			})
		}
	})

	t.Run("ui mounts respects the token", func(t *testing.T) {
		// sys/internal/ui/mounts is unauthenticated in Vault and filters by the caller's ACL: a
		// token with any capability under the mount may see it.
		sec, err := c.Logical().Read("sys/internal/ui/mounts/secret/frontend/x")
		if err != nil || sec == nil || sec.Data["path"] != "secret/" {
			t.Fatalf("ui mount for web-frontend = %+v %v", sec, err)
		}
		plain := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}})
		_, err = s.Client(t, plain.ClientToken).Logical().Read("sys/internal/ui/mounts/secret/frontend/x")
		respErr(t, err, http.StatusForbidden, "preflight capability check returned 403")
	})
}

// TestVaultAPIPolicySemantics covers the lesson's policy section: globs, the data/ prefix of
// KV v2, and policy changes reaching existing tokens on their next request.
func TestVaultAPIPolicySemantics(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	ctx := context.Background()
	for _, p := range []string{"myapp/database", "myapp/x", "billing/stripe-key"} {
		if _, err := root.KVv2("secret").Put(ctx, p, map[string]any{"v": p}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("myapp read list", func(t *testing.T) {
		putPolicy(t, root, "myapp", `path "secret/data/myapp/*" { capabilities = ["read", "list"] }`)
		c := s.Client(t, newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"myapp"}}).ClientToken)
		cases := []struct {
			path string
			want []string
		}{
			{"secret/data/myapp/database", []string{"list", "read"}},
			{"secret/data/billing/stripe-key", []string{"deny"}},
		}
		for _, tc := range cases {
			got, err := c.Sys().CapabilitiesSelf(tc.path)
			if err != nil || !sameStrings(got, tc.want) {
				t.Errorf("capabilities %s = %v %v, want %v", tc.path, got, err, tc.want)
			}
		}
		if _, err := c.KVv2("secret").Get(ctx, "myapp/database"); err != nil {
			t.Fatal(err)
		}
		_, err := c.KVv2("secret").Get(ctx, "billing/stripe-key")
		denied(t, err)
	})

	t.Run("a policy without data/ grants nothing on KV v2", func(t *testing.T) {
		putPolicy(t, root, "v1style", `path "secret/myapp/*" { capabilities = ["read", "list", "create", "update"] }`)
		c := s.Client(t, newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"v1style"}}).ClientToken)
		_, err := c.KVv2("secret").Get(ctx, "myapp/x")
		denied(t, err)
		_, err = c.Logical().Read("secret/data/myapp/x")
		denied(t, err)
		_, err = c.KVv2("secret").Put(ctx, "myapp/x", map[string]any{"v": "evil"})
		denied(t, err)
	})

	t.Run("policy changes reach existing tokens", func(t *testing.T) {
		putPolicy(t, root, "changing", `path "secret/data/other/*" { capabilities = ["read"] }`)
		tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"changing"}})
		c := s.Client(t, tok.ClientToken)
		_, err := c.KVv2("secret").Get(ctx, "myapp/x")
		denied(t, err)
		putPolicy(t, root, "changing", `path "secret/data/myapp/*" { capabilities = ["read"] }`)
		if sec, err := c.KVv2("secret").Get(ctx, "myapp/x"); err != nil || sec.Data["v"] != "myapp/x" {
			t.Fatalf("same token after the grant: %+v %v", sec, err)
		}
		// Revoking the grant takes effect just as fast; deleting the policy too.
		putPolicy(t, root, "changing", `path "secret/data/myapp/*" { capabilities = ["deny"] }`)
		_, err = c.KVv2("secret").Get(ctx, "myapp/x")
		denied(t, err)
		putPolicy(t, root, "changing", `path "secret/data/myapp/*" { capabilities = ["read"] }`)
		if _, err := c.KVv2("secret").Get(ctx, "myapp/x"); err != nil {
			t.Fatal(err)
		}
		if err := root.Sys().DeletePolicy("changing"); err != nil {
			t.Fatal(err)
		}
		_, err = c.KVv2("secret").Get(ctx, "myapp/x")
		denied(t, err)
	})

	t.Run("deny beats a broader grant", func(t *testing.T) {
		putPolicy(t, root, "broad", `
path "secret/data/*" { capabilities = ["read", "create", "update"] }
path "secret/data/billing/*" { capabilities = ["deny"] }
`)
		c := s.Client(t, newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"broad"}}).ClientToken)
		if _, err := c.KVv2("secret").Get(ctx, "myapp/x"); err != nil {
			t.Fatal(err)
		}
		_, err := c.KVv2("secret").Get(ctx, "billing/stripe-key")
		denied(t, err)
		caps, err := c.Sys().CapabilitiesSelf("secret/data/billing/stripe-key")
		if err != nil || !sameStrings(caps, []string{"deny"}) {
			t.Fatalf("capabilities under deny = %v %v", caps, err)
		}
		// create vs update: a new key needs create, an existing one update.
		putPolicy(t, root, "createonly", `path "secret/data/*" { capabilities = ["create"] }`)
		co := s.Client(t, newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"createonly"}}).ClientToken)
		if _, err := co.KVv2("secret").Put(ctx, "fresh/key", map[string]any{"a": "b"}); err != nil {
			t.Fatalf("create with create capability: %v", err)
		}
		_, err = co.KVv2("secret").Put(ctx, "fresh/key", map[string]any{"a": "c"})
		denied(t, err)
	})

	t.Run("error bodies name no policy internals", func(t *testing.T) {
		c := s.Client(t, newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}}).ClientToken)
		_, err := c.KVv2("secret").Get(ctx, "billing/stripe-key")
		denied(t, err)
		var re *vault.ResponseError
		if !errors.As(err, &re) || strings.Contains(strings.Join(re.Errors, " "), "billing") {
			t.Fatalf("403 body names the path: %v", err)
		}
	})
}
