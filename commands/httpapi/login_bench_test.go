package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/kubernetes/k8stest"
)

// BenchmarkLoginsHTTP measures logins/s over loopback HTTP at 1 and 16 clients: Kubernetes
// validated by a TokenReview (the stand-in API server verifies the RS256 signature, as a real
// one does), Kubernetes validated locally against the cluster's JWKS, and a JWT login at a jwt
// mount (JWKS). Every login issues a durable token and resolves the entity (after the first,
// an existing one). Run with -benchtime 1x.
func BenchmarkLoginsHTTP(b *testing.B) {
	s := startServer(b)
	root := s.Client(b, s.RootToken)
	cl := k8stest.New(b)
	for _, m := range []struct{ path, typ string }{{"kubernetes", "kubernetes"}, {"k8s-local", "kubernetes"}, {"jwt", "jwt"}} {
		if err := root.Sys().EnableAuthWithOptions(m.path, &vault.EnableAuthOptions{Type: m.typ}); err != nil {
			b.Fatal(err)
		}
	}
	writes := []struct {
		path string
		data map[string]any
	}{
		{"auth/kubernetes/config", map[string]any{"kubernetes_host": cl.URL}},
		{"auth/kubernetes/role/app", map[string]any{"bound_service_account_names": "app", "bound_service_account_namespaces": "prod", "audience": k8stest.Audience, "token_policies": "default"}},
		{"auth/k8s-local/config", map[string]any{"kubernetes_host": cl.URL, "jwks_url": cl.URL + "/openid/v1/jwks"}},
		{"auth/k8s-local/role/app", map[string]any{"bound_service_account_names": "app", "bound_service_account_namespaces": "prod", "audience": k8stest.Audience, "token_policies": "default"}},
		{"auth/jwt/config", map[string]any{"jwks_url": cl.URL + "/openid/v1/jwks", "bound_issuer": k8stest.Issuer}},
		{"auth/jwt/role/app", map[string]any{"role_type": "jwt", "bound_audiences": k8stest.Audience, "user_claim": "sub", "token_policies": "default"}},
	}
	for _, w := range writes {
		if _, err := root.Logical().Write(w.path, w.data); err != nil {
			b.Fatal(err)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}
	// One pod per client, so entities are distinct but each is created once.
	bodies := make([][]byte, 16)
	for i := range bodies {
		bodies[i], _ = json.Marshal(map[string]any{"role": "app", "jwt": cl.Token(b, "prod", "app", k8stest.TokenOpts{Extra: map[string]any{"jti": fmt.Sprint(i)}})})
	}
	for _, mount := range []string{"kubernetes", "k8s-local", "jwt"} {
		for _, conc := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/c=%d", mount, conc), func(b *testing.B) {
				report(b, hammer(b, conc, func(w, _ int) error {
					return do(client, "POST", s.URL+"/v1/auth/"+mount+"/login", "", bodies[w])
				}), "logins/s")
			})
		}
	}
}
