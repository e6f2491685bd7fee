package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// -wrap-ttl on kv get, token create and an AppRole secret-id gives only a wrapping token;
// ledger unwrap opens it once; a second unwrap fails with Vault's message and exit 2.
func TestE2EWrapTTLAndUnwrap(t *testing.T) {
	c := newCLI(t)
	c.ok("kv", "put", "secret/myapp/config", "password=s3cr3t-wrapped")

	out := c.ok("kv", "get", "-wrap-ttl=5m", "secret/myapp/config")
	if strings.Contains(out, "s3cr3t-wrapped") || !strings.Contains(out, "wrapping_token:") || !strings.Contains(out, "secret/data/myapp/config") {
		t.Fatalf("kv get -wrap-ttl: %s", out)
	}
	tok := strings.TrimSpace(c.ok("kv", "get", "-wrap-ttl=5m", "-field=wrapping_token", "secret/myapp/config"))
	// token lookup of a wrapping token shows what it is, without opening it.
	lk := c.ok("token", "lookup", tok)
	if !strings.Contains(lk, "response-wrapping") || !strings.Contains(lk, "secret/data/myapp/config") {
		t.Fatalf("token lookup of a wrapping token: %s", lk)
	}
	if got := strings.TrimSpace(c.ok("unwrap", "-field=data", tok)); !strings.Contains(got, "s3cr3t-wrapped") {
		t.Fatalf("unwrap -field=data: %q", got)
	}
	expect(t, c.run("unwrap", tok), 2, "wrapping token is not valid or does not exist")
	// Without an argument the client's own token is the wrapping token.
	tok2 := strings.TrimSpace(c.ok("read", "-wrap-ttl=2m", "-field=wrapping_token", "secret/data/myapp/config"))
	r := c.runEnv(c.env("VAULT_TOKEN", tok2), "", "unwrap", "-format=json")
	if r.code != 0 || !strings.Contains(r.stdout, "s3cr3t-wrapped") {
		t.Fatalf("unwrap with VAULT_TOKEN: %s", r)
	}

	// token create
	var created struct {
		WrapInfo struct {
			Token           string `json:"token"`
			WrappedAccessor string `json:"wrapped_accessor"`
		} `json:"wrap_info"`
		Auth any `json:"auth"`
	}
	if err := json.Unmarshal([]byte(c.ok("token", "create", "-wrap-ttl=60s", "-format=json", "-ttl=1h")), &created); err != nil || created.WrapInfo.Token == "" || created.WrapInfo.WrappedAccessor == "" || created.Auth != nil {
		t.Fatalf("token create -wrap-ttl: %v %+v", err, created)
	}
	if got := strings.TrimSpace(c.ok("unwrap", "-field=token_accessor", created.WrapInfo.Token)); got != created.WrapInfo.WrappedAccessor {
		t.Fatalf("unwrapped token accessor %q, want %q", got, created.WrapInfo.WrappedAccessor)
	}

	// AppRole secret-id through an untrusted middleman.
	c.ok("auth", "enable", "approle")
	c.ok("write", "auth/approle/role/ci", "token_policies=default")
	roleID := strings.TrimSpace(c.ok("read", "-field=role_id", "auth/approle/role/ci/role-id"))
	wsid := strings.TrimSpace(c.ok("write", "-f", "-wrap-ttl=120s", "-field=wrapping_token", "auth/approle/role/ci/secret-id"))
	sid := strings.TrimSpace(c.ok("unwrap", "-field=secret_id", wsid))
	c.ok("write", "auth/approle/login", "role_id="+roleID, "secret_id="+sid)

	// Bad wrap TTLs are refused, never answered in the clear.
	for _, ttl := range []string{"0", "-5m", "soon", "100000h"} {
		r := c.run("kv", "get", "-wrap-ttl="+ttl, "secret/myapp/config")
		if r.code != 2 || !strings.Contains(r.stderr, "invalid wrap TTL") || strings.Contains(r.stdout+r.stderr, "s3cr3t-wrapped") {
			t.Fatalf("-wrap-ttl=%s: %s", ttl, r)
		}
	}
	expect(t, c.runEnv(c.env("VAULT_TOKEN", ""), "", "unwrap"), 2, "no wrapping token")
	expect(t, c.run("unwrap", "hvs.not-a-wrapping-token"), 2, "wrapping token is not valid or does not exist")
}

// secrets move keeps transit keys working at the new path; auth move keeps logins working.
func TestE2ESecretsMove(t *testing.T) {
	c := newCLI(t)
	c.ok("secrets", "enable", "transit")
	c.ok("write", "-f", "transit/keys/app")
	ct := strings.TrimSpace(c.ok("write", "-field=ciphertext", "transit/encrypt/app", "plaintext=aGVsbG8="))
	out := c.ok("secrets", "move", "transit/", "transit2/")
	if !strings.Contains(out, "Success! Finished moving secrets engine transit/ to transit2/, with migration ID ") {
		t.Fatalf("secrets move: %q", out)
	}
	if got := strings.TrimSpace(c.ok("write", "-field=plaintext", "transit2/decrypt/app", "ciphertext="+ct)); got != "aGVsbG8=" {
		t.Fatalf("decrypt at the new path: %q", got)
	}
	if list := c.ok("secrets", "list"); strings.Contains(list, "transit/ ") || !strings.Contains(list, "transit2/") {
		t.Fatalf("secrets list after the move: %s", list)
	}
	expect(t, c.run("write", "transit/decrypt/app", "ciphertext="+ct), 2, "Code: 404")

	c.ok("auth", "enable", "userpass")
	c.ok("write", "auth/userpass/users/ann", "password=pw-ann-123", "token_policies=default")
	if out := c.ok("auth", "move", "userpass", "people"); !strings.Contains(out, "auth method auth/userpass/ to auth/people/") {
		t.Fatalf("auth move: %q", out)
	}
	c.ok("write", "auth/people/login/ann", "password=pw-ann-123")

	expect(t, c.run("secrets", "move", "transit2/", "sys/"), 2, "reserved")
	expect(t, c.run("secrets", "move", "transit2/", "cubbyhole/"), 2, "reserved")
	expect(t, c.run("secrets", "move", "nothing/", "x/"), 2, "no mount at")
	expect(t, c.run("auth", "move", "token", "tok2"), 2, "reserved")
	expect(t, c.run("secrets", "move", "transit2/"), 2, "not enough arguments")
}

// path-help describes the wrapping and remount endpoints without opening anything.
func TestE2EWrappingPathHelp(t *testing.T) {
	c := newCLI(t)
	for path, want := range map[string]string{
		"sys/wrapping/unwrap": "once", "sys/wrapping/lookup": "without opening it", "sys/remount": "Move a secrets engine",
	} {
		if out := c.ok("path-help", path); !strings.Contains(out, want) {
			t.Errorf("path-help %s: %s", path, out)
		}
	}
}
