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
