package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines/jwt/oidctest"
)

// TestE2EOIDCLogin: the lesson's OIDC commands, then `ledger login -method=oidc role=engineer`
// completes the code flow driven by a browser stand-in that reads the URL the CLI prints,
// signs in at the provider and is redirected to the CLI's callback listener; the token is
// stored, and the engineer's provider group grants access through an external group.
func TestE2EOIDCLogin(t *testing.T) {
	c := newCLI(t)
	op := oidctest.New(t, "http://localhost:8250/oidc/callback")
	op.AddUser("alice", oidctest.User{Password: "alice-pw", Email: "alice@example.com", Groups: []string{"engineering"}})

	c.ok("auth", "enable", "oidc")
	c.ok("write", "auth/oidc/config", "oidc_discovery_url="+op.URL, "oidc_client_id="+op.ClientID,
		"oidc_client_secret="+op.ClientSecret, "default_role=engineer")
	c.ok("write", "auth/oidc/role/engineer", "user_claim=email", "groups_claim=groups", "oidc_scopes=email,groups",
		"allowed_redirect_uris=http://localhost:8250/oidc/callback")
	if r := c.runEnv(c.env(), `path "secret/data/eng/*" { capabilities = ["read"] }`, "policy", "write", "eng-secrets", "-"); r.code != 0 {
		t.Fatalf("policy write: %s", r)
	}
	var auths map[string]map[string]any
	if err := json.Unmarshal([]byte(c.ok("auth", "list", "-format=json")), &auths); err != nil {
		t.Fatal(err)
	}
	acc, _ := auths["oidc/"]["accessor"].(string)
	gid := strings.TrimSpace(c.ok("write", "-field=id", "identity/group", "name=engineers", "type=external", "policies=eng-secrets"))
	c.ok("write", "identity/group-alias", "name=engineering", "canonical_id="+gid, "mount_accessor="+acc)
	c.ok("kv", "put", "secret/eng/runbook", "step=1")

	env := c.env("VAULT_TOKEN", "")
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(context.Background(), []string{"login", "-method=oidc", "role=engineer", "port=0", "skip_browser=true"}, env, strings.NewReader(""), &stdout, &stderr)
	}()
	urlRE := regexp.MustCompile(`\n    (http\S+)\n`)
	var authURL string
	for deadline := time.Now().Add(15 * time.Second); authURL == ""; time.Sleep(20 * time.Millisecond) {
		if m := urlRE.FindStringSubmatch(stderr.String()); m != nil {
			authURL = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CLI printed no URL: %s", stderr.String())
		}
	}
	_, page, err := oidctest.NewBrowser("").Login(authURL, "alice", "alice-pw")
	if err != nil || !strings.Contains(page, "Signed in to Ledger") {
		t.Fatalf("browser: %v\n%s", err, page)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("login exit %d\nstdout:%s\nstderr:%s", code, stdout.String(), stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the CLI did not finish after the callback")
	}
	if !strings.Contains(stdout.String(), "eng-secrets") {
		t.Fatalf("login output lacks the identity policy:\n%s", stdout.String())
	}
	b, err := os.ReadFile(filepath.Join(c.home, ".ledger-token"))
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(b)), "hvs.") {
		t.Fatalf("stored token: %v", err)
	}
	r := c.runEnv(env, "", "kv", "get", "-field=step", "secret/eng/runbook")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "1" {
		t.Fatalf("read with the OIDC login's token: %s", r)
	}
	if out := c.runEnv(env, "", "token", "lookup").stdout; !strings.Contains(out, "identity_policies") || !strings.Contains(out, "eng-secrets") {
		t.Fatalf("token lookup:\n%s", out)
	}
}
