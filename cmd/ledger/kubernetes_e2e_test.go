package main

import (
	"strings"
	"testing"

	"github.com/ledger-secrets/ledger/engines/kubernetes/k8stest"
)

// TestE2EKubernetesLesson: the lesson's Part 5 Kubernetes commands as typed, against a stand-in
// cluster; a pod of production/myapp-sa logs in and reads its secret, staging/myapp-sa and
// production/other-sa are refused, and a role bound to namespace "*" is written with a warning
// the CLI shows.
func TestE2EKubernetesLesson(t *testing.T) {
	c := newCLI(t)
	cl := k8stest.New(t)
	c.ok("auth", "enable", "kubernetes")
	c.ok("write", "auth/kubernetes/config", "kubernetes_host="+cl.URL)
	c.ok("write", "auth/kubernetes/role/myapp", "bound_service_account_names=myapp-sa",
		"bound_service_account_namespaces=production", "policies=myapp-secrets", "ttl=1h")
	if r := c.runEnv(c.env(), `path "secret/data/myapp/*" { capabilities = ["read"] }`, "policy", "write", "myapp-secrets", "-"); r.code != 0 {
		t.Fatalf("policy write: %s", r)
	}
	c.ok("kv", "put", "secret/myapp/database", "password=s3cret")

	tok := strings.TrimSpace(c.ok("write", "-field=token", "auth/kubernetes/login", "role=myapp", "jwt="+cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{})))
	if !strings.HasPrefix(tok, "hvs.") {
		t.Fatalf("login printed %q", tok)
	}
	if r := c.runEnv(c.env("VAULT_TOKEN", tok), "", "kv", "get", "-field=password", "secret/myapp/database"); r.code != 0 || strings.TrimSpace(r.stdout) != "s3cret" {
		t.Fatalf("the pod's read: %s", r)
	}
	for _, who := range [][2]string{{"staging", "myapp-sa"}, {"production", "other-sa"}} {
		r := c.run("write", "auth/kubernetes/login", "role=myapp", "jwt="+cl.Token(t, who[0], who[1], k8stest.TokenOpts{}))
		if r.code != 2 || !strings.Contains(r.stderr, "not authorized") {
			t.Fatalf("%s/%s: %s", who[0], who[1], r)
		}
	}
	r := c.run("write", "auth/kubernetes/role/anyns", "bound_service_account_names=myapp-sa", "bound_service_account_namespaces=*", "policies=myapp-secrets")
	if r.code != 0 || !strings.Contains(r.stderr, "WARNING!") || !strings.Contains(r.stderr, "ANY namespace") {
		t.Fatalf("wildcard role: %s", r)
	}
}
