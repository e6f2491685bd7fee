package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// TestVaultAPITokens drives auth/token through client.Auth().Token(), asserting Vault's token
// store behaviour (vault/token_store.go).
func TestVaultAPITokens(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	ta := root.Auth().Token()
	putPolicy(t, root, "web-frontend", webFrontend)
	putPolicy(t, root, "tokcreator", `
path "auth/token/create" { capabilities = ["update"] }
path "auth/token/create-orphan" { capabilities = ["update"] }
`)
	yes, no := true, false

	lookup := func(t *testing.T, tok string) map[string]any {
		t.Helper()
		sec, err := ta.Lookup(tok)
		if err != nil || sec == nil {
			t.Fatalf("lookup: %v %v", sec, err)
		}
		return sec.Data
	}
	alive := func(t *testing.T, tok string) error {
		t.Helper()
		_, err := s.Client(t, tok).Auth().Token().LookupSelf()
		return err
	}

	t.Run("lookup-self fields", func(t *testing.T) {
		cases := []struct {
			name      string
			tok       string
			renewable bool
		}{
			{"root", s.RootToken, false},
			{"service token", newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"}).ClientToken, true},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				sec, err := s.Client(t, tc.tok).Auth().Token().LookupSelf()
				if err != nil {
					t.Fatal(err)
				}
				d := sec.Data
				for _, f := range []string{"id", "ttl", "renewable", "type", "accessor", "policies", "orphan", "creation_time", "creation_ttl",
					"display_name", "entity_id", "expire_time", "explicit_max_ttl", "meta", "num_uses", "path", "issue_time"} {
					if _, ok := d[f]; !ok && !(tc.name == "root" && f == "issue_time") {
						t.Errorf("lookup-self has no %q", f)
					}
				}
				if d["id"] != tc.tok || d["type"] != "service" || d["renewable"] != tc.renewable {
					t.Fatalf("id match %v, type %v, renewable %v", d["id"] == tc.tok, d["type"], d["renewable"])
				}
				if _, ok := d["ttl"].(json.Number); !ok {
					t.Fatalf("ttl is %T, want a number", d["ttl"])
				}
			})
		}
	})

	t.Run("create with every option", func(t *testing.T) {
		sec, err := ta.Create(&vault.TokenCreateRequest{
			Policies: []string{"web-frontend"}, TTL: "1h", ExplicitMaxTTL: "2h", NumUses: 5, Renewable: &yes,
			DisplayName: "app", Metadata: map[string]string{"team": "web"},
		})
		if err != nil {
			t.Fatal(err)
		}
		au := sec.Auth
		if !strings.HasPrefix(au.ClientToken, "hvs.") || au.Accessor == "" || au.LeaseDuration != 3600 || !au.Renewable || au.Orphan {
			t.Fatalf("auth = token prefix %q, accessor %q, lease %d, renewable %v, orphan %v", au.ClientToken[:4], au.Accessor, au.LeaseDuration, au.Renewable, au.Orphan)
		}
		if !sameStrings(au.Policies, []string{"default", "web-frontend"}) || !sameStrings(au.TokenPolicies, []string{"default", "web-frontend"}) {
			t.Fatalf("policies %v token_policies %v", au.Policies, au.TokenPolicies)
		}
		if au.Metadata["team"] != "web" {
			t.Fatalf("auth metadata = %v", au.Metadata)
		}
		d := lookup(t, au.ClientToken)
		if d["display_name"] != "token-app" || num(t, d["explicit_max_ttl"]) != 7200 || num(t, d["creation_ttl"]) != 3600 ||
			num(t, d["num_uses"]) != 5 || d["path"] != "auth/token/create" || d["orphan"] != false {
			t.Fatalf("lookup = %v", d)
		}
		if m, _ := d["meta"].(map[string]any); m["team"] != "web" {
			t.Fatalf("lookup meta = %v", d["meta"])
		}
		if ttl := num(t, d["ttl"]); ttl < 3590 || ttl > 3600 {
			t.Fatalf("lookup ttl = %d", ttl)
		}

		nd := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"web-frontend"}, NoDefaultPolicy: true})
		if !sameStrings(nd.Policies, []string{"web-frontend"}) {
			t.Fatalf("no_default_policy policies = %v", nd.Policies)
		}
		nr := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h", Renewable: &no})
		if nr.Renewable {
			t.Fatal("renewable=false token is renewable")
		}
		_, err = ta.Renew(nr.ClientToken, 60)
		respErr(t, err, http.StatusBadRequest, "not renewable")
	})

	t.Run("auth block on the wire", func(t *testing.T) {
		r := raw(t, s.URL, http.MethodPost, "auth/token/create", strings.NewReader(`{"policies":["default"]}`), tokenHeader(s.RootToken))
		if r.Status != http.StatusOK {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		body := r.json(t)
		auth, _ := body["auth"].(map[string]any)
		for _, f := range []string{"client_token", "accessor", "policies", "token_policies", "metadata", "lease_duration", "renewable", "entity_id", "token_type", "orphan"} {
			if _, ok := auth[f]; !ok {
				t.Errorf("auth has no %q: %s", f, r.Body)
			}
		}
		if auth["orphan"] != false || auth["token_type"] != "service" {
			t.Fatalf("auth orphan %v token_type %v", auth["orphan"], auth["token_type"])
		}
		for _, f := range []string{"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"} {
			if _, ok := body[f]; !ok {
				t.Errorf("envelope has no %q", f)
			}
		}
	})

	t.Run("lookup accessor and renew", func(t *testing.T) {
		tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h", ExplicitMaxTTL: "2h"})
		sec, err := ta.LookupAccessor(tok.Accessor)
		if err != nil || sec.Data["id"] != "" || sec.Data["accessor"] != tok.Accessor {
			t.Fatalf("lookup-accessor = %+v %v (id must be \"\")", sec, err)
		}
		cases := []struct {
			name  string
			renew func() (*vault.Secret, error)
			min   int
			max   int
		}{
			{"Renew by root", func() (*vault.Secret, error) { return ta.Renew(tok.ClientToken, 600) }, 595, 600},
			{"RenewSelf", func() (*vault.Secret, error) { return s.Client(t, tok.ClientToken).Auth().Token().RenewSelf(900) }, 895, 900},
			{"RenewTokenAsSelf", func() (*vault.Secret, error) { return ta.RenewTokenAsSelf(tok.ClientToken, 1200) }, 1195, 1200},
			{"RenewAccessor", func() (*vault.Secret, error) { return ta.RenewAccessor(tok.Accessor, 300) }, 295, 300},
			// Capped by explicit_max_ttl (2h from creation).
			{"beyond explicit max", func() (*vault.Secret, error) { return ta.Renew(tok.ClientToken, 5*3600) }, 7100, 7200},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				sec, err := tc.renew()
				if err != nil || sec == nil || sec.Auth == nil {
					t.Fatalf("renew: %+v %v", sec, err)
				}
				if d := sec.Auth.LeaseDuration; d < tc.min || d > tc.max {
					t.Fatalf("lease_duration = %d, want %d..%d", d, tc.min, tc.max)
				}
				// renew-accessor never reveals the token it renewed.
				want := tok.ClientToken
				if tc.name == "RenewAccessor" {
					want = ""
				}
				if sec.Auth.ClientToken != want || !sec.Auth.Renewable {
					t.Fatalf("renew auth = %+v", sec.Auth)
				}
			})
		}
		// Periodic: renewal resets to the period whatever the increment.
		per := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}, Period: "1h"})
		if per.LeaseDuration != 3600 {
			t.Fatalf("periodic lease = %d", per.LeaseDuration)
		}
		if d := lookup(t, per.ClientToken); num(t, d["period"]) != 3600 {
			t.Fatalf("period = %v", d["period"])
		}
		sec, err = ta.Renew(per.ClientToken, 10)
		if err != nil || sec.Auth.LeaseDuration < 3595 {
			t.Fatalf("periodic renew = %+v %v", sec, err)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		mk := func() *vault.SecretAuth {
			return newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}})
		}
		cases := []struct {
			name   string
			revoke func(a *vault.SecretAuth) error
		}{
			{"RevokeTree", func(a *vault.SecretAuth) error { return ta.RevokeTree(a.ClientToken) }},
			{"RevokeSelf", func(a *vault.SecretAuth) error { return s.Client(t, a.ClientToken).Auth().Token().RevokeSelf("") }},
			{"RevokeAccessor", func(a *vault.SecretAuth) error { return ta.RevokeAccessor(a.Accessor) }},
			{"RevokeOrphan", func(a *vault.SecretAuth) error { return ta.RevokeOrphan(a.ClientToken) }},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a := mk()
				if err := alive(t, a.ClientToken); err != nil {
					t.Fatal(err)
				}
				if err := tc.revoke(a); err != nil {
					t.Fatal(err)
				}
				denied(t, alive(t, a.ClientToken))
				_, err := ta.Lookup(a.ClientToken)
				respErr(t, err, http.StatusForbidden, "")
			})
		}
		t.Run("lookup of a revoked token says bad token", func(t *testing.T) {
			// Vault (token_store.go handleLookup): ErrorResponse("bad token") with
			// ErrPermissionDenied → 403 {"errors":["bad token"]}.
			a := mk()
			if err := ta.RevokeTree(a.ClientToken); err != nil {
				t.Fatal(err)
			}
			_, err := ta.Lookup(a.ClientToken)
			respErr(t, err, http.StatusForbidden, "bad token")
		})
		// Revoking what is already gone is not an error (Vault answers 204).
		a := mk()
		if err := ta.RevokeTree(a.ClientToken); err != nil {
			t.Fatal(err)
		}
		if err := ta.RevokeTree(a.ClientToken); err != nil {
			t.Fatalf("second revoke: %v", err)
		}
	})

	t.Run("parent child orphan", func(t *testing.T) {
		parent := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"tokcreator"}})
		pc := s.Client(t, parent.ClientToken).Auth().Token()
		// No policies asked: the child inherits the parent's.
		child := newToken(t, s.Client(t, parent.ClientToken), &vault.TokenCreateRequest{})
		if child.Orphan || !sameStrings(child.Policies, []string{"default", "tokcreator"}) {
			t.Fatalf("child orphan %v policies %v", child.Orphan, child.Policies)
		}
		orphan, err := pc.CreateOrphan(&vault.TokenCreateRequest{Policies: []string{"default"}})
		if err != nil || !orphan.Auth.Orphan {
			t.Fatalf("create-orphan by parent = %+v %v", orphan, err)
		}
		if d := lookup(t, orphan.Auth.ClientToken); d["orphan"] != true {
			t.Fatalf("orphan lookup orphan = %v", d["orphan"])
		}
		grandchild := newToken(t, s.Client(t, child.ClientToken), &vault.TokenCreateRequest{Policies: []string{"default"}})

		// A non-root parent cannot widen: Vault's "child policies must be subset of parent".
		_, err = pc.Create(&vault.TokenCreateRequest{Policies: []string{"web-frontend"}})
		respErr(t, err, http.StatusBadRequest, "subset")
		_, err = pc.Create(&vault.TokenCreateRequest{Policies: []string{"root"}})
		respErr(t, err, http.StatusBadRequest, "")
		// no_parent and period need root or sudo.
		_, err = pc.Create(&vault.TokenCreateRequest{Policies: []string{"default"}, NoParent: true})
		respErr(t, err, http.StatusBadRequest, "root or sudo privileges required to create orphan token")
		_, err = pc.Create(&vault.TokenCreateRequest{Policies: []string{"default"}, Period: "1h"})
		respErr(t, err, http.StatusBadRequest, "root or sudo privileges required to create periodic token")

		if err := ta.RevokeTree(parent.ClientToken); err != nil {
			t.Fatal(err)
		}
		denied(t, alive(t, parent.ClientToken))
		denied(t, alive(t, child.ClientToken))
		denied(t, alive(t, grandchild.ClientToken))
		if err := alive(t, orphan.Auth.ClientToken); err != nil {
			t.Fatalf("orphan died with its creator: %v", err)
		}

		// revoke-orphan: the parent goes, its children stay and become orphans.
		p2 := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"tokcreator"}})
		c2 := newToken(t, s.Client(t, p2.ClientToken), &vault.TokenCreateRequest{Policies: []string{"default"}})
		// revoke-orphan is not in the default policy.
		denied(t, s.Client(t, c2.ClientToken).Auth().Token().RevokeOrphan(p2.ClientToken))
		if err := ta.RevokeOrphan(p2.ClientToken); err != nil {
			t.Fatal(err)
		}
		denied(t, alive(t, p2.ClientToken))
		if err := alive(t, c2.ClientToken); err != nil {
			t.Fatalf("child of a revoke-orphan'd parent: %v", err)
		}
		if d := lookup(t, c2.ClientToken); d["orphan"] != true {
			t.Fatalf("child after revoke-orphan: orphan = %v", d["orphan"])
		}
	})

	t.Run("num_uses", func(t *testing.T) {
		tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}, NumUses: 2})
		c := s.Client(t, tok.ClientToken).Auth().Token()
		for i := 1; i <= 2; i++ {
			if _, err := c.LookupSelf(); err != nil {
				t.Fatalf("use %d: %v", i, err)
			}
		}
		_, err := c.LookupSelf()
		denied(t, err)
	})

	t.Run("ttl expiry", func(t *testing.T) {
		tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}, TTL: "2s"})
		if tok.LeaseDuration != 2 {
			t.Fatalf("lease_duration = %d, want 2", tok.LeaseDuration)
		}
		if err := alive(t, tok.ClientToken); err != nil {
			t.Fatalf("fresh 2s token: %v", err)
		}
		start := time.Now()
		eventually(t, 5*time.Second, "2s token expires", func() bool { return alive(t, tok.ClientToken) != nil })
		if time.Since(start) > 5*time.Second {
			t.Fatal("expired too late")
		}
		denied(t, alive(t, tok.ClientToken))
		// An expired token cannot renew itself back to life.
		_, err := s.Client(t, tok.ClientToken).Auth().Token().RenewSelf(3600)
		denied(t, err)
	})
}
