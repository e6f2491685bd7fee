package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	k8sauth "github.com/hashicorp/vault/api/auth/kubernetes"

	"github.com/ledger-secrets/ledger/engines/kubernetes/k8stest"
)

// k8sLesson is the lesson's Part 5 setup against a stand-in cluster: the method enabled, its
// config pointing at the cluster, the myapp role, the myapp-secrets policy and a secret.
func k8sLesson(t *testing.T, s *testServer, extraConfig map[string]any) (*vault.Client, *k8stest.Cluster) {
	t.Helper()
	cl := k8stest.New(t)
	root := s.Client(t, s.RootToken)
	if err := root.Sys().EnableAuthWithOptions("kubernetes", &vault.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"kubernetes_host": cl.URL}
	for k, v := range extraConfig {
		cfg[k] = v
	}
	if _, err := root.Logical().Write("auth/kubernetes/config", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/kubernetes/role/myapp", map[string]any{
		"bound_service_account_names": "myapp-sa", "bound_service_account_namespaces": "production",
		"policies": "myapp-secrets", "ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}
	putPolicy(t, root, "myapp-secrets", `path "secret/data/myapp/*" { capabilities = ["read"] }`)
	if _, err := root.KVv2("secret").Put(context.Background(), "myapp/database", map[string]any{"password": "s3cret"}); err != nil {
		t.Fatal(err)
	}
	return root, cl
}

func k8sLogin(t *testing.T, s *testServer, jwt string) (*vault.Client, *vault.Secret, error) {
	t.Helper()
	c := s.Client(t, "")
	auth, err := k8sauth.NewKubernetesAuth("myapp", k8sauth.WithServiceAccountToken(jwt))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := c.Auth().Login(context.Background(), auth)
	return c, secret, err
}

func wantStatus(t *testing.T, what string, err error, code int) {
	t.Helper()
	var re *vault.ResponseError
	if !errors.As(err, &re) || re.StatusCode != code {
		t.Fatalf("%s: got %v, want %d", what, err, code)
	}
}

// TestKubernetesLessonFlow: the lesson's Part 5 commands; a pod's token from production/myapp-sa
// logs in through the official client's Kubernetes helper (validated by TokenReview) and reads
// its secret; staging/myapp-sa and production/other-sa are refused.
func TestKubernetesLessonFlow(t *testing.T) {
	s := startServer(t)
	root, cl := k8sLesson(t, s, nil)

	app, secret, err := k8sLogin(t, s, cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{}))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	pols, _ := secret.TokenPolicies()
	if strings.Join(pols, ",") != "default,myapp-secrets" || secret.Auth.LeaseDuration != 3600 {
		t.Fatalf("auth: policies %v lease %d", pols, secret.Auth.LeaseDuration)
	}
	md := secret.Auth.Metadata
	if md["service_account_namespace"] != "production" || md["service_account_name"] != "myapp-sa" || md["role"] != "myapp" || md["service_account_uid"] != cl.UID("production", "myapp-sa") {
		t.Fatalf("metadata %v", md)
	}
	if cl.Reviews.Load() == 0 {
		t.Fatal("no TokenReview was asked")
	}
	got, err := app.KVv2("secret").Get(context.Background(), "myapp/database")
	if err != nil || got.Data["password"] != "s3cret" {
		t.Fatalf("read secret: %v %v", got, err)
	}
	if _, err := app.KVv2("secret").Get(context.Background(), "billing/db"); err == nil {
		t.Fatal("the pod read outside its policy")
	}
	look, err := app.Auth().Token().LookupSelf()
	if err != nil || look.Data["display_name"] != "kubernetes-production-myapp-sa" {
		t.Fatalf("lookup-self: %v %v", look, err)
	}

	for _, who := range [][2]string{{"staging", "myapp-sa"}, {"production", "other-sa"}} {
		_, sec, err := k8sLogin(t, s, cl.Token(t, who[0], who[1], k8stest.TokenOpts{}))
		wantStatus(t, who[0]+"/"+who[1], err, http.StatusForbidden)
		if sec != nil {
			t.Fatalf("%s/%s got a token", who[0], who[1])
		}
	}

	// The role reads back as Vault shows it, legacy fields included.
	r, err := root.Logical().Read("auth/kubernetes/role/myapp")
	if err != nil {
		t.Fatal(err)
	}
	if strs(t, r.Data["bound_service_account_names"])[0] != "myapp-sa" || num(t, r.Data["token_ttl"]) != 3600 ||
		num(t, r.Data["ttl"]) != 3600 || strs(t, r.Data["policies"])[0] != "myapp-secrets" || r.Data["alias_name_source"] != "serviceaccount_uid" {
		t.Fatalf("role read %v", r.Data)
	}
	c, err := root.Logical().Read("auth/kubernetes/config")
	if err != nil || c.Data["kubernetes_host"] != cl.URL || c.Data["token_reviewer_jwt_set"] != false || c.Data["disable_iss_validation"] != true {
		t.Fatalf("config read %v %v", c, err)
	}
}

// TestKubernetesWildcardNamespaceWarns: a role bound to namespace "*" works as in Vault, but the
// write answers with a warning naming the risk; any namespace's myapp-sa then logs in.
func TestKubernetesWildcardNamespaceWarns(t *testing.T) {
	s := startServer(t)
	root, cl := k8sLesson(t, s, nil)
	sec, err := root.Logical().Write("auth/kubernetes/role/myapp", map[string]any{"bound_service_account_namespaces": "*"})
	if err != nil {
		t.Fatal(err)
	}
	if sec == nil || len(sec.Warnings) == 0 || !strings.Contains(strings.Join(sec.Warnings, " "), "ANY namespace") {
		t.Fatalf("no warning: %+v", sec)
	}
	if _, _, err := k8sLogin(t, s, cl.Token(t, "ci-scratch", "myapp-sa", k8stest.TokenOpts{})); err != nil {
		t.Fatalf("wildcard login: %v", err)
	}
	_, err = root.Logical().Write("auth/kubernetes/role/both", map[string]any{"bound_service_account_names": "*", "bound_service_account_namespaces": "*"})
	wantStatus(t, "both wildcards", err, http.StatusBadRequest)
}

// TestKubernetesLocalValidation: with pem_keys, or with the cluster's JWKS, and no reviewer JWT,
// logins are validated locally (no TokenReview) with the same checks.
func TestKubernetesLocalValidation(t *testing.T) {
	for _, mode := range []string{"pem_keys", "jwks_url"} {
		t.Run(mode, func(t *testing.T) {
			s := startServer(t)
			cl := k8stest.New(t)
			extra := map[string]any{"pem_keys": cl.PublicKeyPEM()}
			if mode == "jwks_url" {
				extra = map[string]any{"jwks_url": cl.URL + "/openid/v1/jwks"}
			}
			extra["kubernetes_host"] = cl.URL
			_, _ = k8sLesson(t, s, nil)
			root := s.Client(t, s.RootToken)
			if _, err := root.Logical().Write("auth/kubernetes/config", extra); err != nil {
				t.Fatal(err)
			}
			if _, _, err := k8sLogin(t, s, cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{})); err != nil {
				t.Fatalf("login: %v", err)
			}
			if n := cl.Reviews.Load(); n != 0 {
				t.Fatalf("%d TokenReviews asked on the local path", n)
			}
			_, _, err := k8sLogin(t, s, cl.Token(t, "staging", "myapp-sa", k8stest.TokenOpts{}))
			wantStatus(t, "staging", err, http.StatusForbidden)
			_, _, err = k8sLogin(t, s, cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{IssuedAt: time.Now().Add(-3 * time.Hour)}))
			wantStatus(t, "expired", err, http.StatusForbidden)
		})
	}
}

// TestKubernetesAnnotationsAsAliasMetadata: with use_annotations_as_alias_metadata the service
// account's vault.hashicorp.com/alias-metadata-* annotations, read from the API server at login,
// become alias metadata that a templated policy can use; an annotation cannot replace the
// metadata the method sets; when the API server cannot be asked, the login is refused and no
// entity is created.
func TestKubernetesAnnotationsAsAliasMetadata(t *testing.T) {
	s := startServer(t)
	root, cl := k8sLesson(t, s, map[string]any{"use_annotations_as_alias_metadata": true})
	cfg, err := root.Logical().Read("auth/kubernetes/config")
	if err != nil || cfg.Data["use_annotations_as_alias_metadata"] != true {
		t.Fatalf("config: %v %v", err, cfg)
	}
	acc := authAccessor(t, root, "kubernetes/")
	putPolicy(t, root, "team-secrets", `path "secret/data/teams/{{identity.entity.aliases.`+acc+`.metadata.team}}/*" { capabilities = ["read"] }`)
	if _, err := root.Logical().Write("auth/kubernetes/role/myapp", map[string]any{"policies": "myapp-secrets,team-secrets"}); err != nil {
		t.Fatal(err)
	}
	for _, team := range []string{"payments", "billing"} {
		if _, err := root.KVv2("secret").Put(context.Background(), "teams/"+team+"/db", map[string]any{"team": team}); err != nil {
			t.Fatal(err)
		}
	}
	cl.SetAnnotations("production", "myapp-sa", map[string]string{
		"vault.hashicorp.com/alias-metadata-team":                 "payments",
		"vault.hashicorp.com/alias-metadata-service_account_name": "someone-else",
		"example.com/unrelated":                                   "x",
	})
	app, sec, err := k8sLogin(t, s, cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{}))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if cl.SAReads.Load() != 1 {
		t.Fatalf("service account reads: %d", cl.SAReads.Load())
	}
	if !strings.Contains(strings.Join(sec.Warnings, " "), "alias-metadata-service_account_name") {
		t.Fatalf("no warning for the ignored annotation: %v", sec.Warnings)
	}
	ent, err := root.Logical().Read("identity/entity/id/" + sec.Auth.EntityID)
	if err != nil {
		t.Fatal(err)
	}
	aliases, _ := ent.Data["aliases"].([]any)
	if len(aliases) != 1 {
		t.Fatalf("aliases %v", ent.Data["aliases"])
	}
	md, _ := aliases[0].(map[string]any)["metadata"].(map[string]any)
	if md["team"] != "payments" || md["service_account_name"] != "myapp-sa" || md["unrelated"] != nil || len(md) != 5 {
		t.Fatalf("alias metadata %v", md)
	}
	if got, err := app.KVv2("secret").Get(context.Background(), "teams/payments/db"); err != nil || got.Data["team"] != "payments" {
		t.Fatalf("own team's secret: %v", err)
	}
	_, err = app.KVv2("secret").Get(context.Background(), "teams/billing/db")
	wantStatus(t, "another team's secret", err, http.StatusForbidden)

	// The API server cannot be reached (local validation with pem_keys, a dead host): 403, and
	// the account's entity is not created.
	if _, err := root.Logical().Write("auth/kubernetes/config", map[string]any{
		"kubernetes_host": "http://127.0.0.1:1", "pem_keys": cl.PublicKeyPEM(), "disable_local_ca_jwt": true,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/kubernetes/role/myapp", map[string]any{"bound_service_account_names": "myapp-sa,new-sa"}); err != nil {
		t.Fatal(err)
	}
	before, _ := root.Logical().List("identity/entity/id")
	_, _, err = k8sLogin(t, s, cl.Token(t, "production", "new-sa", k8stest.TokenOpts{}))
	wantStatus(t, "annotations unreadable", err, http.StatusForbidden)
	after, _ := root.Logical().List("identity/entity/id")
	if len(keysOf(before)) != len(keysOf(after)) {
		t.Fatalf("entities %d → %d", len(keysOf(before)), len(keysOf(after)))
	}
	// The same login without the option succeeds: the refusal was the annotations'.
	if _, err := root.Logical().Write("auth/kubernetes/config", map[string]any{"use_annotations_as_alias_metadata": false}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := k8sLogin(t, s, cl.Token(t, "production", "new-sa", k8stest.TokenOpts{})); err != nil {
		t.Fatalf("login without annotations: %v", err)
	}
}

func keysOf(s *vault.Secret) []any {
	if s == nil {
		return nil
	}
	k, _ := s.Data["keys"].([]any)
	return k
}
