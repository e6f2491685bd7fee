package main

import (
	"strings"
	"testing"
)

// `ledger token create -role` creates the token through auth/token/create/:role, with the
// role's policies and limits; an unknown role is a server error naming it.
func TestE2ETokenCreateWithRole(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("policy", "write", "deploy", writePolicyFile(t, `path "secret/data/deploy/*" { capabilities = ["read"] }`))
	c.ok("write", "auth/token/roles/ci", "allowed_policies=deploy", "orphan=true", "token_explicit_max_ttl=1h")
	out := decodeJSON(t, c.ok("token", "create", "-role=ci", "-ttl=5h", "-format=json"))
	auth, _ := out["auth"].(map[string]any)
	if auth == nil || auth["orphan"] != true || auth["lease_duration"] != float64(3600) {
		t.Fatalf("token create -role=ci: %v", out)
	}
	if pols, _ := auth["policies"].([]any); len(pols) != 2 || pols[0] != "default" || pols[1] != "deploy" {
		t.Fatalf("policies %v, want [default deploy]", auth["policies"])
	}
	if got := c.ok("list", "auth/token/roles"); !strings.Contains(got, "ci") {
		t.Fatalf("list auth/token/roles:\n%s", got)
	}
	expect(t, c.run("token", "create", "-role=nope"), 2, "unknown role nope")
}

// `ledger path-help` prints the path's help, never its data; an unknown path is a server error.
func TestE2EPathHelp(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("kv", "put", "secret/app", "password=path-help-secret-991")
	out := c.ok("path-help", "secret/data/app")
	if !strings.Contains(out, "Matching Route: data/{path}") || !strings.Contains(out, "data (object)") || strings.Contains(out, "path-help-secret-991") {
		t.Fatalf("path-help secret/data/app:\n%s", out)
	}
	js := decodeJSON(t, c.ok("path-help", "-format=json", "auth/token/roles/x"))
	if _, ok := js["openapi"].(map[string]any); !ok || !strings.Contains(js["help"].(string), "allowed_policies") {
		t.Fatalf("path-help -format=json: %v", js)
	}
	if out := c.ok("path-help", "secret/"); !strings.Contains(out, "metadata/{path}") {
		t.Fatalf("path-help of the mount root:\n%s", out)
	}
	expect(t, c.run("path-help", "nomount/x"), 2, "no handler for route")
}
