package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/jwt/oidctest"
)

const cliCallback = "http://localhost:8250/oidc/callback"

// oidcLesson is the lesson's OIDC setup against a test provider, plus the engineer role and an
// external group "engineers" mapped from the provider's "engineering" group, whose policy
// grants secret/data/eng/*.
func oidcLesson(t *testing.T, s *testServer) (*vault.Client, *oidctest.Provider) {
	t.Helper()
	op := oidctest.New(t, cliCallback)
	op.AddUser("alice", oidctest.User{Password: "alice-pw", Email: "alice@example.com", Groups: []string{"engineering", "everyone"}})
	op.AddUser("mallory", oidctest.User{Password: "mallory-pw", Email: "mallory@example.com", Groups: []string{"sales"}})
	root := s.Client(t, s.RootToken)
	if err := root.Sys().EnableAuthWithOptions("oidc", &vault.EnableAuthOptions{Type: "oidc"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/oidc/config", map[string]any{
		"oidc_discovery_url": op.URL, "oidc_client_id": op.ClientID, "oidc_client_secret": op.ClientSecret, "default_role": "engineer",
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/oidc/role/engineer", map[string]any{
		"user_claim": "email", "groups_claim": "groups", "oidc_scopes": "email,groups",
		"allowed_redirect_uris": cliCallback, "token_policies": "default", "claim_mappings": map[string]any{"email": "email"},
	}); err != nil {
		t.Fatal(err)
	}
	putPolicy(t, root, "eng-secrets", `path "secret/data/eng/*" { capabilities = ["read"] }`)
	g, err := root.Logical().Write("identity/group", map[string]any{"name": "engineers", "type": "external", "policies": "eng-secrets"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("identity/group-alias", map[string]any{"name": "engineering", "canonical_id": g.Data["id"], "mount_accessor": authAccessor(t, root, "oidc/")}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Put(context.Background(), "eng/runbook", map[string]any{"step": "1"}); err != nil {
		t.Fatal(err)
	}
	return root, op
}

// oidcBrowserLogin runs the code flow as a person would: auth_url, the provider's login form,
// the redirect to the callback; it returns the callback's query.
func oidcBrowserLogin(t *testing.T, s *testServer, user, pw string) url.Values {
	t.Helper()
	au, err := s.Client(t, "").Logical().Write("auth/oidc/oidc/auth_url", map[string]any{"role": "engineer", "redirect_uri": cliCallback})
	if err != nil {
		t.Fatalf("auth_url: %v", err)
	}
	authURL, _ := au.Data["auth_url"].(string)
	if !strings.Contains(authURL, "code_challenge_method=S256") || !strings.Contains(authURL, "nonce=") || !strings.Contains(authURL, "state=") {
		t.Fatalf("auth_url %q lacks PKCE, nonce or state", authURL)
	}
	loc, _, err := oidctest.NewBrowser(cliCallback).Login(authURL, user, pw)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, cliCallback) {
		t.Fatalf("provider sent the browser to %q", loc)
	}
	return u.Query()
}

func oidcCallback(s *testServer, t *testing.T, q url.Values) (*vault.Secret, error) {
	return s.Client(t, "").Logical().ReadWithData("auth/oidc/oidc/callback", map[string][]string{"state": {q.Get("state")}, "code": {q.Get("code")}})
}

// TestOIDCCodeFlow: the code flow with PKCE, state and nonce against the test provider; the
// engineer's provider groups map to the external group whose policy grants access; the
// provider rotates its signing key mid-test and logins keep working; a state is good once.
func TestOIDCCodeFlow(t *testing.T) {
	s := startServer(t)
	root, op := oidcLesson(t, s)

	q := oidcBrowserLogin(t, s, "alice", "alice-pw")
	sec, err := oidcCallback(s, t, q)
	if err != nil || sec == nil || sec.Auth == nil {
		t.Fatalf("callback: %v", err)
	}
	if sec.Auth.EntityID == "" || !sameStrings(sec.Auth.IdentityPolicies, []string{"eng-secrets"}) || sec.Auth.Metadata["email"] != "alice@example.com" {
		t.Fatalf("auth %+v", sec.Auth)
	}
	alice := s.Client(t, sec.Auth.ClientToken)
	if got, err := alice.KVv2("secret").Get(context.Background(), "eng/runbook"); err != nil || got.Data["step"] != "1" {
		t.Fatalf("engineer reads through the external group: %v", err)
	}
	grp, _ := root.Logical().Read("identity/group/name/engineers")
	if !sameStrings(strs(t, grp.Data["member_entity_ids"]), []string{sec.Auth.EntityID}) {
		t.Fatalf("external group members %v", grp.Data["member_entity_ids"])
	}

	// The same state and code again: refused, no token.
	_, err = oidcCallback(s, t, q)
	wantStatus(t, "reused state", err, http.StatusBadRequest)
	if !strings.Contains(err.Error(), "Expired or missing OAuth state.") {
		t.Fatalf("reused state: %v", err)
	}

	// Key rotation at the provider: the next ID token is signed by a key Ledger never saw.
	op.Rotate(t)
	sec2, err := oidcCallback(s, t, oidcBrowserLogin(t, s, "alice", "alice-pw"))
	if err != nil || sec2.Auth.EntityID != sec.Auth.EntityID {
		t.Fatalf("login after key rotation: %v", err)
	}

	// Someone outside engineering logs in but gets nothing of eng.
	sec3, err := oidcCallback(s, t, oidcBrowserLogin(t, s, "mallory", "mallory-pw"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client(t, sec3.Auth.ClientToken).KVv2("secret").Get(context.Background(), "eng/runbook"); err == nil {
		t.Fatal("a non-engineer read eng secrets")
	}
}

// TestOIDCBadInput: a disallowed redirect URI, a callback without a pending state, a role that
// is not an OIDC role: 400s, and no entity is created.
func TestOIDCBadInput(t *testing.T) {
	s := startServer(t)
	root, _ := oidcLesson(t, s)
	anon := s.Client(t, "")
	_, err := anon.Logical().Write("auth/oidc/oidc/auth_url", map[string]any{"role": "engineer", "redirect_uri": "https://evil.example.com/cb"})
	wantStatus(t, "disallowed redirect", err, http.StatusBadRequest)
	_, err = anon.Logical().ReadWithData("auth/oidc/oidc/callback", map[string][]string{"state": {"st_made_up"}, "code": {"x"}})
	wantStatus(t, "callback without pending state", err, http.StatusBadRequest)
	// A code (and with it the nonce) minted for one login, presented with another login's state.
	qa := oidcBrowserLogin(t, s, "alice", "alice-pw")
	qb := oidcBrowserLogin(t, s, "alice", "alice-pw")
	_, err = oidcCallback(s, t, url.Values{"state": {qb.Get("state")}, "code": {qa.Get("code")}})
	wantStatus(t, "code of another login", err, http.StatusBadRequest)
	_, err = oidcCallback(s, t, qb)
	wantStatus(t, "state already spent by the failed attempt", err, http.StatusBadRequest)
	_, err = anon.Logical().Write("auth/oidc/oidc/auth_url", map[string]any{"role": "nope", "redirect_uri": cliCallback})
	wantStatus(t, "unknown role", err, http.StatusBadRequest)
	_, err = root.Logical().Write("auth/oidc/role/broken", map[string]any{"user_claim": "sub"})
	wantStatus(t, "oidc role without redirect URIs", err, http.StatusBadRequest)
	if _, err := root.Logical().List("identity/entity/id"); err != nil {
		t.Fatal(err)
	}
	if sec, _ := root.Logical().List("identity/entity/id"); sec != nil {
		t.Fatalf("entities after failed logins: %v", sec.Data)
	}
}
