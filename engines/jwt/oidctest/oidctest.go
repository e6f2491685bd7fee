// Package oidctest is an OpenID Connect provider for tests, running on a loopback port:
// discovery, a JWKS that keeps the previous key after a rotation, an authorization endpoint
// with a login form, and a token endpoint that checks the client secret, the redirect URI and
// the PKCE verifier (S256) and issues ID tokens (with the request's nonce and the user's
// groups) signed by the current key. Browser is the user's browser: an HTTP client that
// follows redirects and fills in the login form.
//
// (hashicorp/cap ships a test provider too, but its token endpoint compares the PKCE verifier
// with one fixed in advance, which a relying party drawing a fresh verifier per login — as it
// must — cannot meet.)
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// User is a person who can log in.
type User struct {
	Password string
	Email    string
	Groups   []string
}

// Provider is the test OP.
type Provider struct {
	URL          string // the issuer
	ClientID     string
	ClientSecret string
	Server       *httptest.Server

	mu        sync.Mutex
	keys      []jose.JSONWebKey // [0] signs
	users     map[string]User
	redirects []string
	auths     map[string]*authz // by code
	JWKSHits  atomic.Int64
}

type authz struct {
	user, nonce, challenge, redirect string
	used                             bool
	at                               time.Time
}

// New starts a provider with one signing key; it stops with the test.
func New(t testing.TB, redirects ...string) *Provider {
	t.Helper()
	p := &Provider{ClientID: "vault-app", ClientSecret: "client-secret-here", users: map[string]User{},
		redirects: redirects, auths: map[string]*authz{}}
	p.Rotate(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /keys", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /login", p.login)
	mux.HandleFunc("POST /token", p.token)
	p.Server = httptest.NewServer(mux)
	p.URL = p.Server.URL
	t.Cleanup(p.Server.Close)
	return p
}

// AddUser registers a user.
func (p *Provider) AddUser(name string, u User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users[name] = u
}

// Rotate makes a new signing key current; the previous one stays published.
func (p *Provider) Rotate(t testing.TB) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid := randomID()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append([]jose.JSONWebKey{{Key: k, KeyID: kid, Algorithm: "RS256", Use: "sig"}}, p.keys...)
	if len(p.keys) > 2 {
		p.keys = p.keys[:2]
	}
	return kid
}

// Sign signs arbitrary claims with the current key (for JWT logins).
func (p *Provider) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	p.mu.Lock()
	k := p.keys[0]
	p.mu.Unlock()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.Key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.KeyID))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, 200, map[string]any{
		"issuer": p.URL, "authorization_endpoint": p.URL + "/authorize", "token_endpoint": p.URL + "/token",
		"jwks_uri": p.URL + "/keys", "response_types_supported": []string{"code"},
		"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported": []string{"openid", "profile", "email", "groups"}, "code_challenge_methods_supported": []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	})
}

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	p.JWKSHits.Add(1)
	p.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range p.keys {
		set.Keys = append(set.Keys, k.Public())
	}
	p.mu.Unlock()
	writeJSON(w, 200, set)
}

var loginPage = `<!DOCTYPE html><html><body><h1>Sign in to Test IdP</h1>
<form method="post" action="/login">
<input type="hidden" name="request" value="%s">
<label>User <input name="username"></label><label>Password <input type="password" name="password"></label>
<button type="submit">Sign in</button></form></body></html>`

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	okRedirect := slices.ContainsFunc(p.redirects, func(r string) bool { return sameRedirect(r, q.Get("redirect_uri")) })
	p.mu.Unlock()
	switch {
	case q.Get("client_id") != p.ClientID:
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	case !okRedirect:
		http.Error(w, "redirect_uri is not registered for this client", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code", q.Get("state") == "", q.Get("nonce") == "",
		q.Get("code_challenge") == "", q.Get("code_challenge_method") != "S256",
		!slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		http.Error(w, "invalid authorization request", http.StatusBadRequest)
		return
	}
	// The request rides through the login form; a real OP keeps it in a session.
	fmt.Fprintf(w, loginPage, html.EscapeString(q.Encode()))
}

func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.FormValue("request"))
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	name := r.FormValue("username")
	p.mu.Lock()
	u, ok := p.users[name]
	if !ok || u.Password != r.FormValue("password") {
		p.mu.Unlock()
		http.Error(w, "wrong user name or password", http.StatusUnauthorized)
		return
	}
	code := randomID()
	p.auths[code] = &authz{user: name, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"), at: time.Now()}
	p.mu.Unlock()
	http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.FormValue("client_id"), r.FormValue("client_secret")
	}
	if id != p.ClientID || secret != p.ClientSecret {
		writeJSON(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	p.mu.Lock()
	a := p.auths[r.FormValue("code")]
	valid := a != nil && !a.used && r.FormValue("grant_type") == "authorization_code" && r.FormValue("redirect_uri") == a.redirect
	if a != nil {
		a.used = true
	}
	var u User
	if valid {
		u = p.users[a.user]
		sum := sha256.Sum256([]byte(r.FormValue("code_verifier")))
		valid = base64.RawURLEncoding.EncodeToString(sum[:]) == a.challenge
	}
	k := p.keys[0]
	p.mu.Unlock()
	if !valid {
		writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
		return
	}
	now := time.Now()
	claims := map[string]any{
		"iss": p.URL, "sub": a.user, "aud": p.ClientID, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		"auth_time": a.at.Unix(), "nonce": a.nonce, "email": u.Email, "groups": u.Groups,
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.Key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.KeyID))
	if err != nil {
		writeJSON(w, 500, map[string]string{"error": "server_error"})
		return
	}
	idt, err := josejwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		writeJSON(w, 500, map[string]string{"error": "server_error"})
		return
	}
	writeJSON(w, 200, map[string]any{"access_token": randomID(), "token_type": "Bearer", "expires_in": 300, "id_token": idt})
}

// sameRedirect matches a registered redirect URI; on loopback any port, as RFC 8252 asks of
// providers for native apps (the CLI picks its port).
func sameRedirect(registered, got string) bool {
	if registered == got {
		return true
	}
	a, err1 := url.Parse(registered)
	b, err2 := url.Parse(got)
	if err1 != nil || err2 != nil {
		return false
	}
	loop := func(h string) bool { return h == "localhost" || h == "127.0.0.1" || h == "::1" }
	return loop(a.Hostname()) && a.Hostname() == b.Hostname() && a.Scheme == b.Scheme && a.Path == b.Path
}

// Browser is a person's browser: it follows redirects, keeps cookies and fills in login forms.
type Browser struct {
	client *http.Client
	// Stop: a redirect to a URL with this prefix is not followed; Login returns it instead.
	Stop string
}

// NewBrowser returns a browser that stops at redirects to stop (the relying party's callback,
// when nothing listens there).
func NewBrowser(stop string) *Browser {
	jar, _ := cookiejar.New(nil)
	b := &Browser{Stop: stop}
	b.client = &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if b.Stop != "" && strings.HasPrefix(req.URL.String(), b.Stop) {
			return http.ErrUseLastResponse
		}
		if len(via) > 10 {
			return fmt.Errorf("too many redirects")
		}
		return nil
	}}
	return b
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// Login opens authURL, signs in as user, and returns where the provider finally sent the
// browser (the callback URL with code and state) and the body there.
func (b *Browser) Login(authURL, user, password string) (string, string, error) {
	resp, err := b.client.Get(authURL)
	if err != nil {
		return "", "", err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", "", fmt.Errorf("authorization page: %s: %s", resp.Status, page)
	}
	form := url.Values{"username": {user}, "password": {password}}
	for _, m := range hiddenRE.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	base, _ := url.Parse(authURL)
	action := base.ResolveReference(&url.URL{Path: "/login"})
	resp, err = b.client.PostForm(action.String(), form)
	if err != nil {
		return "", "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode == http.StatusFound && loc != "" {
		return loc, string(body), nil
	}
	if resp.StatusCode >= 400 {
		return resp.Request.URL.String(), string(body), fmt.Errorf("login: %s: %s", resp.Status, body)
	}
	return resp.Request.URL.String(), string(body), nil
}
