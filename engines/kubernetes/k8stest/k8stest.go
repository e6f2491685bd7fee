// Package k8stest is a stand-in Kubernetes API server for tests of the Kubernetes auth
// method: it issues service-account tokens in the format a 1.30 cluster issues (projected,
// audience-bound, with the kubernetes.io claim naming namespace, service account, pod and
// node), signed with its own RSA key, and serves the parts of the API the method calls — the
// TokenReview API (authentication.k8s.io/v1, real API types, verifying with that key), the
// service-account issuer's JWKS, and namespaces with labels. It runs on a loopback port.
package k8stest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Issuer and Audience are the defaults of a cluster's service-account tokens.
const (
	Issuer   = "https://kubernetes.default.svc.cluster.local"
	Audience = "https://kubernetes.default.svc.cluster.local"
)

// Cluster is the stand-in API server.
type Cluster struct {
	URL    string
	Server *httptest.Server
	Key    *rsa.PrivateKey
	KeyID  string

	mu         sync.Mutex
	uids       map[string]string            // "ns/name" → service account UID
	labels     map[string]map[string]string // namespace → labels
	annots     map[string]map[string]string // "ns/name" → service account annotations
	SAReads    atomic.Int64                 // service accounts served
	Reviews    atomic.Int64                 // TokenReviews served
	JWKSserved atomic.Int64
	jwksDown   atomic.Bool
}

// New starts a cluster; it stops with the test.
func New(t testing.TB) *Cluster {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Key: key, KeyID: "sa-key-1", uids: map[string]string{}, labels: map[string]map[string]string{}, annots: map[string]map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apis/authentication.k8s.io/v1/tokenreviews", c.tokenReview)
	mux.HandleFunc("GET /openid/v1/jwks", c.jwks)
	mux.HandleFunc("GET /api/v1/namespaces/{ns}", c.namespace)
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/serviceaccounts/{name}", c.serviceAccount)
	c.Server = httptest.NewServer(mux)
	c.URL = c.Server.URL
	t.Cleanup(c.Server.Close)
	return c
}

// PublicKeyPEM is the signing key's public half, for pem_keys.
func (c *Cluster) PublicKeyPEM() string {
	der, _ := x509.MarshalPKIXPublicKey(&c.Key.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// SetLabels sets a namespace's labels.
func (c *Cluster) SetLabels(ns string, l map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.labels[ns] = l
}

// SetAnnotations sets a service account's annotations.
func (c *Cluster) SetAnnotations(ns, name string, a map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.annots[ns+"/"+name] = a
}

// SetJWKSDown makes the JWKS endpoint answer 503.
func (c *Cluster) SetJWKSDown(down bool) { c.jwksDown.Store(down) }

// UID returns the UID of a service account, stable for the cluster's life.
func (c *Cluster) UID(ns, name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := ns + "/" + name
	if u, ok := c.uids[k]; ok {
		return u
	}
	b := make([]byte, 16)
	rand.Read(b)
	u := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
	c.uids[k] = u
	return u
}

// TokenOpts shape a token; the zero value is a valid one-hour token.
type TokenOpts struct {
	Audience  []string
	Issuer    string
	IssuedAt  time.Time
	TTL       time.Duration
	NotBefore time.Time
	Extra     map[string]any // claims added or replaced
}

// Claims returns the claims of a 1.30 projected service-account token.
func (c *Cluster) Claims(ns, name string, o TokenOpts) map[string]any {
	iat := o.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = time.Hour
	}
	aud := o.Audience
	if aud == nil {
		aud = []string{Audience}
	}
	iss := o.Issuer
	if iss == "" {
		iss = Issuer
	}
	nbf := iat
	if !o.NotBefore.IsZero() {
		nbf = o.NotBefore
	}
	cl := map[string]any{
		"aud": aud, "exp": iat.Add(ttl).Unix(), "iat": iat.Unix(), "nbf": nbf.Unix(), "iss": iss,
		"jti": c.UID("jti", fmt.Sprint(time.Now().UnixNano())),
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"node":           map[string]any{"name": "node-1", "uid": c.UID("node", "node-1")},
			"pod":            map[string]any{"name": name + "-7d9f8b6c5-x2x4z", "uid": c.UID(ns, name+"-pod")},
			"serviceaccount": map[string]any{"name": name, "uid": c.UID(ns, name)},
			"warnafter":      iat.Add(ttl * 8 / 10).Unix(),
		},
		"sub": "system:serviceaccount:" + ns + ":" + name,
	}
	for k, v := range o.Extra {
		cl[k] = v
	}
	return cl
}

// Token signs a service-account token for ns/name.
func (c *Cluster) Token(t testing.TB, ns, name string, o TokenOpts) string {
	t.Helper()
	return c.Sign(t, c.Claims(ns, name, o))
}

// Sign signs claims with the cluster's key (RS256, with its key ID).
func (c *Cluster) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: c.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", c.KeyID))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// verify is the API server's own check of a token: signature, issuer, times, audience.
func (c *Cluster) verify(token string, audiences []string) (map[string]any, error) {
	parsed, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	var std josejwt.Claims
	all := map[string]any{}
	if err := parsed.Claims(&c.Key.PublicKey, &std, &all); err != nil {
		return nil, err
	}
	if err := std.ValidateWithLeeway(josejwt.Expected{Issuer: Issuer, Time: time.Now()}, 0); err != nil {
		return nil, err
	}
	if len(audiences) > 0 {
		ok := false
		for _, a := range audiences {
			if std.Audience.Contains(a) {
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("token audiences %v is invalid for the target audiences %v", []string(std.Audience), audiences)
		}
	}
	return all, nil
}

func (c *Cluster) tokenReview(w http.ResponseWriter, r *http.Request) {
	c.Reviews.Add(1)
	bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if _, err := c.verify(bearer, nil); err != nil {
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`, http.StatusUnauthorized)
		return
	}
	var tr authv1.TokenReview
	if err := json.NewDecoder(r.Body).Decode(&tr); err != nil || tr.Kind != "TokenReview" || tr.APIVersion != "authentication.k8s.io/v1" {
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"bad TokenReview","code":400}`, http.StatusBadRequest)
		return
	}
	out := authv1.TokenReview{TypeMeta: tr.TypeMeta, Spec: tr.Spec}
	claims, err := c.verify(tr.Spec.Token, tr.Spec.Audiences)
	if err != nil {
		out.Status = authv1.TokenReviewStatus{Authenticated: false, Error: "[invalid bearer token, " + err.Error() + "]"}
	} else {
		k := claims["kubernetes.io"].(map[string]any)
		ns := k["namespace"].(string)
		sa := k["serviceaccount"].(map[string]any)
		aud := []string{}
		for _, a := range claims["aud"].([]any) {
			aud = append(aud, a.(string))
		}
		out.Status = authv1.TokenReviewStatus{
			Authenticated: true, Audiences: aud,
			User: authv1.UserInfo{
				Username: "system:serviceaccount:" + ns + ":" + sa["name"].(string),
				UID:      sa["uid"].(string),
				Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			},
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(out)
}

func (c *Cluster) jwks(w http.ResponseWriter, _ *http.Request) {
	if c.jwksDown.Load() {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	c.JWKSserved.Add(1)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &c.Key.PublicKey, KeyID: c.KeyID, Algorithm: "RS256", Use: "sig"}}}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	json.NewEncoder(w).Encode(set)
}

func (c *Cluster) namespace(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	c.mu.Lock()
	l := c.labels[ns]
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: l},
	})
}

// serviceAccount serves a ServiceAccount, in the API's JSON, to a caller presenting a token
// this cluster signed (as a real API server authenticates it).
func (c *Cluster) serviceAccount(w http.ResponseWriter, r *http.Request) {
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if _, err := c.verify(bearer, nil); !ok || err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	ns, name := r.PathValue("ns"), r.PathValue("name")
	c.SAReads.Add(1)
	uid := c.UID(ns, name)
	c.mu.Lock()
	a := c.annots[ns+"/"+name]
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{Kind: "ServiceAccount", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID(uid), Annotations: a},
	})
}
