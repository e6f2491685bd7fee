// Package jwks verifies JWT signatures for the Kubernetes and JWT/OIDC auth methods: against
// static public keys, or against a JSON Web Key Set fetched from a URL (or found through OIDC
// discovery) and cached. Parsing and signature checks are go-jose's; claim checks (issuer,
// audience, times) are hashicorp/cap's jwt.Validator, which takes these key sets.
//
// A remote set keeps the keys it last fetched: when the endpoint is down, tokens signed by
// known keys still verify. A token naming a key ID the cache does not hold triggers a refetch
// (that is how key rotation is picked up), at most once per MinRefetch, so a flood of tokens
// with made-up key IDs cannot turn Ledger into a load generator against the identity provider.
package jwks

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	capjwt "github.com/hashicorp/cap/jwt"
)

// Algorithms are the asymmetric signature algorithms accepted anywhere. HMAC algorithms are
// never accepted: a verifier holding only public keys must not treat one as a shared secret
// (the "HS256 signed with the public key" confusion), and "none" is not an algorithm.
var Algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512,
	jose.PS256, jose.PS384, jose.PS512, jose.EdDSA,
}

// CapAlgorithms is Algorithms in cap's type, for jwt.Expected.
func CapAlgorithms(names []string) ([]capjwt.Alg, error) {
	if len(names) == 0 {
		out := make([]capjwt.Alg, len(Algorithms))
		for i, a := range Algorithms {
			out[i] = capjwt.Alg(a)
		}
		return out, nil
	}
	out := make([]capjwt.Alg, 0, len(names))
	for _, n := range names {
		ok := false
		for _, a := range Algorithms {
			if string(a) == n {
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unsupported signing algorithm %q", n)
		}
		out = append(out, capjwt.Alg(n))
	}
	return out, nil
}

// MaxToken bounds a JWT's size before anything parses it.
const MaxToken = 64 << 10

// MaxDepth bounds how deeply a token's claims may nest.
const MaxDepth = 16

// ErrTooDeep: the claims nest more than MaxDepth levels.
var ErrTooDeep = errors.New("claims are nested too deeply")

// CheckDepth refuses claims nested deeper than MaxDepth.
func CheckDepth(claims map[string]any) error {
	var walk func(v any, d int) bool
	walk = func(v any, d int) bool {
		if d > MaxDepth {
			return false
		}
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				if !walk(e, d+1) {
					return false
				}
			}
		case []any:
			for _, e := range x {
				if !walk(e, d+1) {
					return false
				}
			}
		}
		return true
	}
	if !walk(claims, 0) {
		return ErrTooDeep
	}
	return nil
}

// ParsePEMKeys parses PEM public keys or certificates (cap's parser).
func ParsePEMKeys(pems []string) ([]crypto.PublicKey, error) {
	out := make([]crypto.PublicKey, 0, len(pems))
	for _, p := range pems {
		k, err := capjwt.ParsePublicKeyPEM([]byte(p))
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// Static returns a key set of fixed public keys (cap's).
func Static(keys []crypto.PublicKey) (capjwt.KeySet, error) { return capjwt.NewStaticKeySet(keys) }

// HTTPClient returns a client trusting caPEM (the system roots when empty).
func HTTPClient(caPEM string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if strings.TrimSpace(caPEM) != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("could not parse the CA certificate PEM")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	tr.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// Remote is a cached JSON Web Key Set at a URL, or at the jwks_uri of an OIDC issuer's
// discovery document.
type Remote struct {
	client     *http.Client
	url        string // the JWKS URL; empty until discovery found it
	discovery  string // the issuer whose discovery document names the JWKS URL
	MinRefetch time.Duration

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched bool
	lastTry time.Time
	fetchMu sync.Mutex // one fetch at a time
}

var _ capjwt.KeySet = (*Remote)(nil)

// DefaultMinRefetch is the least time between two fetches of one key set.
const DefaultMinRefetch = 10 * time.Second

// NewRemote returns the key set at jwksURL.
func NewRemote(client *http.Client, jwksURL string) *Remote {
	return &Remote{client: client, url: jwksURL, MinRefetch: DefaultMinRefetch}
}

// NewDiscovered returns the key set named by issuer's OIDC discovery document.
func NewDiscovered(client *http.Client, issuer string) *Remote {
	return &Remote{client: client, discovery: strings.TrimSuffix(issuer, "/"), MinRefetch: DefaultMinRefetch}
}

// Discovery is the part of an OIDC discovery document Ledger uses.
type Discovery struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	UserinfoEndpoint      string   `json:"userinfo_endpoint"`
	Algorithms            []string `json:"id_token_signing_alg_values_supported"`
}

// Discover fetches issuer's discovery document and checks that it names issuer.
func Discover(ctx context.Context, client *http.Client, issuer string) (Discovery, error) {
	var d Discovery
	issuer = strings.TrimSuffix(issuer, "/")
	if err := getJSON(ctx, client, issuer+"/.well-known/openid-configuration", &d); err != nil {
		return d, fmt.Errorf("fetch discovery document: %w", err)
	}
	if strings.TrimSuffix(d.Issuer, "/") != issuer {
		return d, fmt.Errorf("discovery document names issuer %q, not %q", d.Issuer, issuer)
	}
	if d.JWKSURI == "" {
		return d, errors.New("discovery document has no jwks_uri")
	}
	return d, nil
}

func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return json.Unmarshal(body, v)
}

// Fetch loads the key set now (config writes use it to fail early on a wrong URL).
func (r *Remote) Fetch(ctx context.Context) error {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	return r.fetch(ctx)
}

func (r *Remote) fetch(ctx context.Context) error {
	r.mu.Lock()
	r.lastTry = time.Now()
	url := r.url
	r.mu.Unlock()
	if url == "" {
		d, err := Discover(ctx, r.client, r.discovery)
		if err != nil {
			return err
		}
		url = d.JWKSURI
	}
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, r.client, url, &set); err != nil {
		return fmt.Errorf("fetch keys: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, k := range set.Keys {
		if k.Use == "enc" || !k.Valid() {
			continue
		}
		if _, sym := k.Key.([]byte); sym {
			continue // a JWKS holds public keys; a shared secret there is never trusted
		}
		keys = append(keys, k.Public())
	}
	r.mu.Lock()
	r.url, r.keys, r.fetched = url, keys, true
	r.mu.Unlock()
	return nil
}

func (r *Remote) candidates(kid string) []jose.JSONWebKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []jose.JSONWebKey
	for _, k := range r.keys {
		if kid == "" || k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out
}

// refetch fetches again unless a fetch happened less than MinRefetch ago.
func (r *Remote) refetch(ctx context.Context) {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	r.mu.Lock()
	recent := r.fetched && time.Since(r.lastTry) < r.MinRefetch || !r.fetched && time.Since(r.lastTry) < time.Second
	r.mu.Unlock()
	if recent {
		return
	}
	_ = r.fetch(ctx) // on failure the cached keys stay; the caller reports the unverified token
}

// VerifySignature implements cap's jwt.KeySet.
func (r *Remote) VerifySignature(ctx context.Context, token string) (map[string]any, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	jws, err := jose.ParseSigned(token, Algorithms)
	if err != nil {
		return nil, fmt.Errorf("parse token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must carry exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := r.candidates(kid)
	if len(keys) == 0 {
		r.refetch(ctx)
		keys = r.candidates(kid)
	}
	for _, k := range keys {
		payload, err := jws.Verify(k)
		if err != nil {
			continue
		}
		claims := map[string]any{}
		if err := json.Unmarshal(payload, &claims); err != nil {
			return nil, fmt.Errorf("decode claims: %w", err)
		}
		return claims, nil
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key with ID %q is known", kid)
	}
	return nil, errors.New("the token's signature does not verify with any known key")
}

// Unverified parses a token's claims without checking its signature, for a method that has
// the token verified elsewhere (Kubernetes' TokenReview). The algorithm must still be one of
// Algorithms.
type Unverified struct{}

// VerifySignature implements cap's jwt.KeySet without verifying anything.
func (Unverified) VerifySignature(_ context.Context, token string) (map[string]any, error) {
	jws, err := jose.ParseSigned(token, Algorithms)
	if err != nil {
		return nil, fmt.Errorf("parse token: %w", err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	return claims, nil
}
