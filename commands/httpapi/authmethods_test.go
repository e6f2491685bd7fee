package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/userpass"
)

// TestAppRoleLessonFlow is the lesson's ci-pipeline flow through the official client's AppRole
// helper: the role, its role-id, a secret-id, a login carrying ci-deploy; neither half alone
// logs in.
func TestAppRoleLessonFlow(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	if err := root.Sys().EnableAuthWithOptions("approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("ci-deploy", `path "secret/data/ci/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/approle/role/ci-pipeline", map[string]any{
		"token_policies": "ci-deploy", "token_ttl": "1h", "token_max_ttl": "4h", "secret_id_ttl": "10m",
	}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().Read("auth/approle/role/ci-pipeline/role-id")
	if err != nil {
		t.Fatal(err)
	}
	roleID := rid.Data["role_id"].(string)
	sid, err := root.Logical().Write("auth/approle/role/ci-pipeline/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	secretID := sid.Data["secret_id"].(string)

	app := s.Client(t, "")
	auth, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromString: secretID})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := app.Auth().Login(context.Background(), auth)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	pols, _ := secret.TokenPolicies()
	if strings.Join(pols, ",") != "ci-deploy,default" || secret.Auth.LeaseDuration != 3600 || !secret.Auth.Orphan {
		t.Fatalf("login auth: policies %v, lease %d, orphan %v", pols, secret.Auth.LeaseDuration, secret.Auth.Orphan)
	}
	// The token works for what ci-deploy grants, and nothing else.
	if _, err := root.KVv2("secret").Put(context.Background(), "ci/deploy", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.KVv2("secret").Get(context.Background(), "ci/deploy"); err != nil {
		t.Fatalf("read with the approle token: %v", err)
	}
	if _, err := app.KVv2("secret").Put(context.Background(), "ci/deploy", map[string]any{"k": "x"}); err == nil {
		t.Fatal("the approle token could write")
	}
	// Neither half alone.
	for name, body := range map[string]map[string]any{
		"role_id alone":   {"role_id": roleID},
		"secret_id alone": {"secret_id": secretID},
		"wrong secret_id": {"role_id": roleID, "secret_id": "00000000-0000-0000-0000-000000000000"},
	} {
		_, err := s.Client(t, "").Logical().Write("auth/approle/login", body)
		var re *vault.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: got %v, want 400", name, err)
		}
		if err != nil && strings.Contains(err.Error(), secretID) {
			t.Errorf("%s: the error echoes the secret_id", name)
		}
	}
}

func TestUserpassLoginAndRateLimit(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	if err := root.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/alice", map[string]any{"password": "correct horse", "token_policies": "default"}); err != nil {
		t.Fatal(err)
	}
	auth, err := userpass.NewUserpassAuth("alice", &userpass.Password{FromString: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := s.Client(t, "").Auth().Login(context.Background(), auth)
	if err != nil || secret.Auth.ClientToken == "" {
		t.Fatalf("login: %v", err)
	}
	bad, _ := userpass.NewUserpassAuth("alice", &userpass.Password{FromString: "wrong"})
	var codes []int
	for range 8 {
		_, err := s.Client(t, "").Auth().Login(context.Background(), bad)
		var re *vault.ResponseError
		if !errors.As(err, &re) {
			t.Fatalf("wrong password: %v", err)
		}
		if strings.Contains(strings.Join(re.Errors, " "), "wrong") {
			t.Fatal("the error echoes the password")
		}
		codes = append(codes, re.StatusCode)
	}
	if codes[0] != http.StatusBadRequest || codes[len(codes)-1] != http.StatusTooManyRequests {
		t.Fatalf("status codes of repeated failures: %v (want 400 first, 429 once rate-limited)", codes)
	}
}

// A secret_id past its secret_id_ttl no longer logs in, without anything having tidied it.
func TestAppRoleSecretIDExpires(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	if err := root.Sys().EnableAuthWithOptions("approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/approle/role/short", map[string]any{"token_policies": "default", "secret_id_ttl": "2s"}); err != nil {
		t.Fatal(err)
	}
	rid, _ := root.Logical().Read("auth/approle/role/short/role-id")
	sid, err := root.Logical().Write("auth/approle/role/short/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"role_id": rid.Data["role_id"], "secret_id": sid.Data["secret_id"]}
	if _, err := s.Client(t, "").Logical().Write("auth/approle/login", body); err != nil {
		t.Fatalf("login within the TTL: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Client(t, "").Logical().Write("auth/approle/login", body)
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a secret_id 10s past its 2s TTL still logs in (last: %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
