// Package oidctest runs a real OpenID Connect provider for tests on a loopback port: zitadel's
// OP (github.com/zitadel/oidc/v3/pkg/op) over its in-memory example storage, so discovery, the
// authorization endpoint, the token endpoint (client authentication, redirect URI, PKCE S256,
// one use per code), userinfo and the JWKS are the library's, not ours. This package adds only
// what the storage leaves to an application: a user list with groups, a "groups" scope, signing
// key rotation (the previous key stays published), and a login form. Browser is the user's
// browser: an HTTP client that follows redirects and fills in the login form.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
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
	JWKSHits     atomic.Int64

	store *opStorage
}

// New starts a provider with one signing key and one confidential web client whose redirect
// URIs are redirects; it stops with the test.
func New(t testing.TB, redirects ...string) *Provider {
	t.Helper()
	p := &Provider{ClientID: "vault-app", ClientSecret: "client-secret-here"}
	srv := httptest.NewUnstartedServer(nil)
	p.URL = "http://" + srv.Listener.Addr().String()
	users := &userStore{users: map[string]User{}}
	client := storage.WebClient(p.ClientID, p.ClientSecret, redirects...)
	p.store = &opStorage{
		Storage:       storage.NewStorageWithClients(users, map[string]*storage.Client{p.ClientID: client}),
		users:         users,
		redirectGlobs: loopbackGlobs(redirects),
	}
	p.Rotate(t)

	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		t.Fatal(err)
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:      cryptoKey,
		CodeMethodS256: true,
		AuthMethodPost: true,
	}, p.store, op.StaticIssuer(p.URL), op.WithAllowInsecure())
	if err != nil {
		t.Fatalf("oidctest: start the provider: %v", err)
	}
	interceptor := op.NewIssuerInterceptor(provider.IssuerFromRequest)
	callback := op.AuthCallbackURL(provider)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/username", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, loginPage, html.EscapeString(r.FormValue("authRequestID")), "")
	})
	mux.Handle("POST /login/username", interceptor.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.FormValue("id")
		if err := p.store.CheckUsernamePassword(r.FormValue("username"), r.FormValue("password"), id); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, loginPage, html.EscapeString(id), "wrong user name or password")
			return
		}
		http.Redirect(w, r, callback(r.Context(), id), http.StatusFound)
	}))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == provider.KeysEndpoint().Relative() {
			p.JWKSHits.Add(1)
		}
		provider.ServeHTTP(w, r)
	}))
	srv.Config.Handler = mux
	srv.Start()
	p.Server = srv
	t.Cleanup(srv.Close)
	return p
}

var loginPage = `<!DOCTYPE html><html><body><h1>Sign in to Test IdP</h1>
<form method="post" action="/login/username">
<input type="hidden" name="id" value="%s">
<label>User <input name="username"></label><label>Password <input type="password" name="password"></label>
<p>%s</p><button type="submit">Sign in</button></form></body></html>`

// AddUser registers a user.
func (p *Provider) AddUser(name string, u User) {
	p.store.users.mu.Lock()
	defer p.store.users.mu.Unlock()
	p.store.users.users[name] = u
}

// Rotate makes a new signing key current; the previous one stays published.
func (p *Provider) Rotate(t testing.TB) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid := randomID()
	s := p.store
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	s.keys = append([]*signingKey{{id: kid, key: k}}, s.keys...)
	if len(s.keys) > 2 {
		s.keys = s.keys[:2]
	}
	return kid
}

// Sign signs arbitrary claims with the current key (for JWT logins).
func (p *Provider) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	p.store.keyMu.Lock()
	k := p.store.keys[0]
	p.store.keyMu.Unlock()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.id))
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

// loopbackGlobs turns each loopback redirect URI into a pattern that matches any port.
func loopbackGlobs(redirects []string) []string {
	var out []string
	for _, r := range redirects {
		u, err := url.Parse(r)
		if err != nil || (u.Hostname() != "localhost" && u.Hostname() != "127.0.0.1") {
			continue
		}
		u.Host = u.Hostname() + ":PORT"
		out = append(out, strings.Replace(u.String(), ":PORT", ":*", 1))
	}
	return out
}

// scopeGroups asks for the user's groups in the ID token.
const scopeGroups = "groups"

// opStorage is the example storage with rotating keys, users with groups and a groups scope.
type opStorage struct {
	*storage.Storage
	users         *userStore
	redirectGlobs []string

	keyMu sync.Mutex
	keys  []*signingKey // [0] signs
}

func (s *opStorage) SigningKey(context.Context) (op.SigningKey, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	return s.keys[0], nil
}

func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *opStorage) KeySet(context.Context) ([]op.Key, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	out := make([]op.Key, len(s.keys))
	for i, k := range s.keys {
		out[i] = publicKey{k}
	}
	return out, nil
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return groupsClient{Client: c, globs: s.redirectGlobs}, nil
}

// SetUserinfoFromScopes adds the groups claim to ID tokens when the groups scope was granted.
func (s *opStorage) SetUserinfoFromScopes(ctx context.Context, info *oidc.UserInfo, userID, clientID string, scopes []string) error {
	if err := s.Storage.SetUserinfoFromScopes(ctx, info, userID, clientID, scopes); err != nil {
		return err
	}
	for _, sc := range scopes {
		if sc == scopeGroups {
			s.users.mu.Lock()
			groups := s.users.users[userID].Groups
			s.users.mu.Unlock()
			info.AppendClaims("groups", groups)
		}
	}
	return nil
}

// groupsClient allows the groups scope, and redirect URIs on loopback with any port, as
// RFC 8252 asks of providers for native apps (the CLI may pick its port).
type groupsClient struct {
	op.Client
	globs []string
}

func (c groupsClient) RedirectURIGlobs() []string           { return c.globs }
func (c groupsClient) PostLogoutRedirectURIGlobs() []string { return nil }

func (c groupsClient) IsScopeAllowed(scope string) bool {
	return scope == scopeGroups || c.Client.IsScopeAllowed(scope)
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.key.PublicKey }

// userStore serves the example storage its users; a user's ID is its name.
type userStore struct {
	mu    sync.Mutex
	users map[string]User
}

func (u *userStore) GetUserByID(id string) *storage.User { return u.GetUserByUsername(id) }

func (u *userStore) GetUserByUsername(name string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	x, ok := u.users[name]
	if !ok {
		return nil
	}
	return &storage.User{ID: name, Username: name, Password: x.Password, Email: x.Email, EmailVerified: true, FirstName: name}
}

func (u *userStore) ExampleClientID() string { return "service" }

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

var (
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	actionRE = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
)

// Login opens authURL, signs in as user on the form the provider shows, and returns where the
// provider finally sent the browser (the callback URL with code and state) and the body there.
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
	m := actionRE.FindStringSubmatch(string(page))
	if m == nil {
		return "", "", fmt.Errorf("authorization page has no login form: %s", page)
	}
	form := url.Values{"username": {user}, "password": {password}}
	for _, h := range hiddenRE.FindAllStringSubmatch(string(page), -1) {
		form.Set(h[1], html.UnescapeString(h[2]))
	}
	action := resp.Request.URL.ResolveReference(&url.URL{Path: m[1]})
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
