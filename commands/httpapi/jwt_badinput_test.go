package httpapi_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/kubernetes/k8stest"
)

// forged tokens: the attacks a verifier must refuse.
func algNone(claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	b, _ := json.Marshal(claims)
	return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

func signWith(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tamper swaps the payload of a validly signed token for another one, keeping the signature.
func tamper(tok string, claims map[string]any) string {
	parts := strings.Split(tok, ".")
	b, _ := json.Marshal(claims)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}

func nested(depth int) any {
	var v any = "deep"
	for i := 0; i < depth; i++ {
		v = map[string]any{"n": v}
	}
	return v
}

type badToken struct {
	name string
	jwt  string
}

// badTokens are the bad inputs, built from a cluster's valid claims for ns/name.
func badTokens(t *testing.T, cl *k8stest.Cluster, ns, name string) []badToken {
	now := time.Now()
	valid := cl.Claims(ns, name, k8stest.TokenOpts{})
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	evil := cl.Claims(ns, name, k8stest.TokenOpts{})
	evil["sub"] = "system:serviceaccount:kube-system:admin"
	evil["kubernetes.io"] = cl.Claims("kube-system", "admin", k8stest.TokenOpts{})["kubernetes.io"]
	later := cl.Claims(ns, name, k8stest.TokenOpts{})
	later["exp"] = now.Add(100 * time.Hour).Unix()
	huge := cl.Claims(ns, name, k8stest.TokenOpts{Extra: map[string]any{"pad": strings.Repeat("x", 80<<10)}})
	deep := cl.Claims(ns, name, k8stest.TokenOpts{Extra: map[string]any{"deep": nested(64)}})
	return []badToken{
		{"expired", cl.Token(t, ns, name, k8stest.TokenOpts{IssuedAt: now.Add(-3 * time.Hour), TTL: time.Hour})},
		{"not yet valid", cl.Token(t, ns, name, k8stest.TokenOpts{NotBefore: now.Add(time.Hour), IssuedAt: now})},
		{"wrong audience", cl.Token(t, ns, name, k8stest.TokenOpts{Audience: []string{"https://other.example.com"}})},
		{"wrong issuer", cl.Token(t, ns, name, k8stest.TokenOpts{Issuer: "https://evil.example.com"})},
		{"alg none", algNone(valid)},
		{"HS256 signed with the public key", signWith(t, jose.HS256, []byte(cl.PublicKeyPEM()), cl.KeyID, valid)},
		{"tampered signature", tamper(cl.Sign(t, valid), evil)},
		{"tampered expiry", tamper(cl.Sign(t, valid), later)},
		{"unknown signing key", signWith(t, jose.RS256, other, "kid-nobody-knows", valid)},
		{"huge claims", cl.Sign(t, huge)},
		{"deeply nested claims", cl.Sign(t, deep)},
		{"not a JWT", "not.a.jwt"},
	}
}

func statusOf(err error) int {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// TestJWTBadInput: every bad token the issue lists, at a jwt mount validating against the
// issuer's JWKS: each a 400, no token, no entity, audited as a failed login. A JWKS endpoint
// that goes down leaves cached keys working; unknown key IDs refetch at most once per
// interval; repeated failures are rate-limited like other logins.
func TestJWTBadInput(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	if err := root.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": auditPath}}); err != nil {
		t.Fatal(err)
	}
	cl := k8stest.New(t)
	if err := root.Sys().EnableAuthWithOptions("jwt", &vault.EnableAuthOptions{Type: "jwt"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/jwt/config", map[string]any{"jwks_url": cl.URL + "/openid/v1/jwks", "bound_issuer": k8stest.Issuer}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/jwt/role/app", map[string]any{
		"role_type": "jwt", "bound_audiences": k8stest.Audience, "user_claim": "sub", "token_policies": "default",
		"bound_claims": map[string]any{"/kubernetes.io/namespace": "production"}, "expiration_leeway": "1s", "not_before_leeway": "1s", "clock_skew_leeway": "1s",
	}); err != nil {
		t.Fatal(err)
	}
	login := func(jwt string) (*vault.Secret, error) {
		return s.Client(t, "").Logical().Write("auth/jwt/login", map[string]any{"role": "app", "jwt": jwt})
	}
	good, err := login(cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{}))
	if err != nil || good.Auth == nil || good.Auth.EntityID == "" {
		t.Fatalf("valid login: %v", err)
	}
	hits := cl.JWKSserved.Load()
	for _, bt := range append(badTokens(t, cl, "production", "myapp-sa"), badToken{"claim outside bound_claims", cl.Token(t, "staging", "myapp-sa", k8stest.TokenOpts{})}) {
		sec, err := login(bt.jwt)
		t.Logf("%s: %v", bt.name, err)
		if code := statusOf(err); code != http.StatusBadRequest && code != http.StatusForbidden {
			t.Errorf("%s: got %v, want 400 or 403", bt.name, err)
		}
		if sec != nil {
			t.Errorf("%s: got a token", bt.name)
		}
		if err != nil && len(bt.jwt) > 20 && strings.Contains(err.Error(), bt.jwt[len(bt.jwt)-20:]) {
			t.Errorf("%s: the error echoes the token", bt.name)
		}
	}
	if n := cl.JWKSserved.Load() - hits; n > 1 {
		t.Fatalf("unknown key IDs fetched the JWKS %d times within the refetch interval", n)
	}
	if keys := listKeys(t, root, "identity/entity/id"); len(keys) != 1 {
		t.Fatalf("entities after refused logins: %v", keys)
	}
	// The JWKS endpoint goes down: the cached key keeps verifying.
	cl.SetJWKSDown(true)
	if _, err := login(cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{})); err != nil {
		t.Fatalf("login with the JWKS down: %v", err)
	}
	lines := waitForLines(t, auditPath, 10*time.Second, "failed logins audited", func(ls []auditLine) bool {
		n := 0
		for _, l := range find(ls, "response", "update", "auth/jwt/login") {
			if l.Error != "" {
				n++
			}
		}
		return n >= 12
	})
	for _, l := range find(lines, "response", "update", "auth/jwt/login") {
		if l.Error != "" && l.Response != nil && l.Response.Auth != nil {
			t.Fatalf("a failed login's audit record carries auth: %s", l.Raw)
		}
	}
	// Failures keep counting until the limiter refuses the role and source.
	limited := false
	for i := 0; i < 30 && !limited; i++ {
		_, err := login(algNone(cl.Claims("production", "myapp-sa", k8stest.TokenOpts{})))
		limited = statusOf(err) == http.StatusTooManyRequests
	}
	if !limited {
		t.Fatal("failed logins were never rate-limited")
	}
}

// TestKubernetesBadInput: the same bad tokens at a Kubernetes mount, through TokenReview and
// through local validation: 403 or 400, no token, no entity.
func TestKubernetesBadInput(t *testing.T) {
	for _, mode := range []string{"tokenreview", "local"} {
		t.Run(mode, func(t *testing.T) {
			s := startServer(t)
			root, cl := k8sLesson(t, s, nil)
			cfg := map[string]any{"kubernetes_host": cl.URL, "issuer": k8stest.Issuer, "disable_iss_validation": false}
			if mode == "local" {
				cfg["jwks_url"] = cl.URL + "/openid/v1/jwks"
			}
			if _, err := root.Logical().Write("auth/kubernetes/config", cfg); err != nil {
				t.Fatal(err)
			}
			if _, err := root.Logical().Write("auth/kubernetes/role/myapp", map[string]any{"audience": k8stest.Audience}); err != nil {
				t.Fatal(err)
			}
			for _, bt := range badTokens(t, cl, "production", "myapp-sa") {
				_, sec, err := k8sLogin(t, s, bt.jwt)
				t.Logf("%s: %v", bt.name, err)
				if code := statusOf(err); code != http.StatusBadRequest && code != http.StatusForbidden {
					t.Errorf("%s: got %v, want 400 or 403", bt.name, err)
				}
				if sec != nil {
					t.Errorf("%s: got a token", bt.name)
				}
			}
			if sec, _ := root.Logical().List("identity/entity/id"); sec != nil {
				t.Fatalf("entities after refused logins: %v", sec.Data)
			}
			if _, _, err := k8sLogin(t, s, cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{})); err != nil {
				t.Fatalf("a valid token after the refusals: %v", err)
			}
		})
	}
}
