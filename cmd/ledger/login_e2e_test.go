package main

import (
	"strings"
	"testing"
)

// The lesson's logins from the CLI: userpass with the password prompted (read from stdin when
// it is not a terminal), and approle with both halves as arguments.
func TestE2ELoginMethods(t *testing.T) {
	c := newCLI(t)
	c.ok("auth", "enable", "userpass")
	c.ok("write", "auth/userpass/users/alice", "password=s3cret-pass", "token_policies=default")

	r := c.runEnv(c.env("VAULT_TOKEN", ""), "s3cret-pass\n", "login", "-method=userpass", "-no-store", "username=alice")
	if r.code != 0 || !strings.Contains(r.stdout, "token_policies") {
		t.Fatalf("userpass login: %s", r)
	}
	if strings.Contains(r.stdout+r.stderr, "s3cret-pass") {
		t.Fatal("the password was echoed")
	}
	r = c.runEnv(c.env("VAULT_TOKEN", ""), "", "login", "-method=userpass", "-no-store", "username=alice", "password=wrong")
	if r.code != 2 || !strings.Contains(r.stderr, "invalid username or password") {
		t.Fatalf("wrong password: %s", r)
	}

	c.ok("auth", "enable", "approle")
	c.ok("write", "auth/approle/role/ci-pipeline", "token_policies=default", "token_ttl=1h", "token_max_ttl=4h", "secret_id_ttl=10m")
	roleID := strings.TrimSpace(c.ok("read", "-field=role_id", "auth/approle/role/ci-pipeline/role-id"))
	secretID := strings.TrimSpace(c.ok("write", "-f", "-field=secret_id", "auth/approle/role/ci-pipeline/secret-id"))
	tok := strings.TrimSpace(c.ok("login", "-method=approle", "-token-only", "role_id="+roleID, "secret_id="+secretID))
	if !strings.HasPrefix(tok, "hvs.") {
		t.Fatalf("approle -token-only printed %q", tok)
	}
	// As the lesson writes it: a plain write to the login path.
	if out := c.ok("write", "auth/approle/login", "role_id="+roleID, "secret_id="+secretID); !strings.Contains(out, "token_accessor") {
		t.Fatalf("write auth/approle/login:\n%s", out)
	}
}
