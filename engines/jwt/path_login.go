package jwt

import (
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	capjwt "github.com/hashicorp/cap/jwt"
	capoidc "github.com/hashicorp/cap/oidc"
	"github.com/ryanuber/go-glob"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/jwks"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
)

// limit reserves one attempt from the source's and the role's budgets; the caller refunds it
// on success, so only failures stay spent.
func (b *Backend) limit(r *request, role string) ([]string, error) {
	keys := []string{"addr\x00" + engines.HostOf(r.RemoteAddr), "role\x00" + role}
	if ok, wait := b.limiter.Take(r.now, keys...); !ok {
		return nil, engines.Errorf(engines.ErrRateLimited, "too many failed login attempts for this role or source; retry after %ds", int64(math.Ceil(wait.Seconds())))
	}
	return keys, nil
}

func (b *Backend) roleFor(r *request, cfg Config) (string, Role, error) {
	name, err := engines.String(r.data, "role", "")
	if err != nil {
		return "", Role{}, err
	}
	name = strings.ToLower(name)
	if name == "" {
		name = cfg.DefaultRole
	}
	if name == "" {
		return "", Role{}, engines.BadRequest("missing role")
	}
	role, ok := b.role(name)
	if !ok {
		return "", Role{}, engines.BadRequest("role %q could not be found", name)
	}
	return name, role, nil
}

// login is POST login: a JWT for a token (Vault's pathLogin for jwt roles).
func (b *Backend) login(r *request) (*engines.Response, error) {
	cfg, ok := b.config()
	if !ok {
		return nil, engines.BadRequest("could not load configuration")
	}
	token, err := engines.String(r.data, "jwt", "")
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, engines.BadRequest("missing token")
	}
	if len(token) > jwks.MaxToken {
		return nil, engines.BadRequest("jwt is larger than %d bytes", jwks.MaxToken)
	}
	name, role, err := b.roleFor(r, cfg)
	if err != nil {
		return nil, err
	}
	keys, err := b.limit(r, name)
	if err != nil {
		return nil, err
	}
	resp, err := b.jwtLogin(r, cfg, name, role, token)
	if err != nil {
		return nil, err
	}
	b.limiter.Refund(r.now, keys...)
	return resp, nil
}

func (b *Backend) jwtLogin(r *request, cfg Config, name string, role Role, token string) (*engines.Response, error) {
	if role.RoleType == "oidc" {
		return nil, engines.BadRequest("role with oidc role_type is not allowed")
	}
	if len(role.Token.BoundCIDRs) > 0 && !engines.InCIDRs(engines.HostOf(r.RemoteAddr), role.Token.BoundCIDRs) {
		return nil, engines.Errorf(engines.ErrPermissionDenied, "permission denied")
	}
	v, err := b.verifierFor(cfg)
	if err != nil {
		return nil, engines.BadRequest("the auth method's configuration is unusable: %v", err)
	}
	algs, err := jwks.CapAlgorithms(cfg.SupportedAlgs)
	if err != nil {
		return nil, engines.BadRequest("%v", err)
	}
	exp := capjwt.Expected{
		Issuer: v.issuer, Subject: role.BoundSubject, Audiences: role.BoundAudiences, SigningAlgorithms: algs,
		NotBeforeLeeway: leeway(role.NotBeforeLeeway), ExpirationLeeway: leeway(role.ExpirationLeeway),
		ClockSkewLeeway: leeway(role.ClockSkewLeeway), Now: func() time.Time { return r.now },
	}
	val, err := capjwt.NewValidator(v.keys)
	if err != nil {
		return nil, err
	}
	claims, err := val.Validate(r.ctx, token, exp)
	if err != nil {
		return nil, engines.BadRequest("error validating token: %s", cleanErr(err))
	}
	if len(role.BoundAudiences) == 0 {
		if _, has := claims["aud"]; has {
			return nil, engines.BadRequest("audience claim found in JWT but no audiences bound to the role")
		}
	}
	return b.finishLogin(r, name, role, claims)
}

// leeway turns a role's leeway into cap's: 0 in a role means none, which cap spells negative.
func leeway(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// cleanErr keeps cap's message without its internal operation prefixes.
func cleanErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i > 0 && strings.Contains(s[:i], "Provider.") {
		return s[i+2:]
	}
	return s
}

// finishLogin checks the verified claims against the role and issues the token, for JWT
// logins and OIDC callbacks alike.
func (b *Backend) finishLogin(r *request, name string, role Role, claims map[string]any) (*engines.Response, error) {
	if err := jwks.CheckDepth(claims); err != nil {
		return nil, engines.BadRequest("%s", err.Error())
	}
	if err := checkBoundClaims(claims, role.BoundClaims, role.BoundClaimsType == "glob"); err != nil {
		return nil, engines.Errorf(engines.ErrPermissionDenied, "error validating claims: %s", err.Error())
	}
	user, ok := claimValue(claims, role.UserClaim)
	if !ok {
		return nil, engines.BadRequest("claim %q not found in token", role.UserClaim)
	}
	userName, ok := scalar(user)
	if !ok || userName == "" {
		return nil, engines.BadRequest("claim %q could not be converted to string", role.UserClaim)
	}
	var groups []engines.Alias
	if role.GroupsClaim != "" {
		g, ok := claimValue(claims, role.GroupsClaim)
		if !ok {
			return nil, engines.BadRequest("%q claim not found in token", role.GroupsClaim)
		}
		list, ok := g.([]any)
		if !ok {
			list = []any{g}
		}
		if len(list) > 1024 {
			return nil, engines.BadRequest("%q claim holds more than 1024 groups", role.GroupsClaim)
		}
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return nil, engines.BadRequest("group claim %q is not a list of strings", role.GroupsClaim)
			}
			groups = append(groups, engines.Alias{Name: s})
		}
	}
	meta := map[string]string{"role": name}
	aliasMeta := map[string]string{}
	for claim, key := range role.ClaimMappings {
		if v, ok := claimValue(claims, claim); ok {
			if s, ok := scalar(v); ok {
				meta[key], aliasMeta[key] = s, s
			}
		}
	}
	mountPath := b.mountPath(r.Request)
	auth, created, warnings, err := enginetoken.Issue(enginetoken.IssueInput{
		Keyring: b.keyring, Tokens: b.tokens, Mount: r.Mount, BackendMount: b.mount,
		Params: role.Token, BoundCIDRs: role.Token.BoundCIDRs, Metadata: meta,
		DisplayName: displayName(mountPath, userName), Path: mountPath + "login", Now: r.now,
	})
	if err != nil {
		return nil, err
	}
	auth.Alias = &engines.Alias{Name: userName, Metadata: aliasMeta}
	auth.GroupAliases = groups
	created.Request, created.Time = r.ID, r.now
	return &engines.Response{Auth: auth, Warnings: warnings, Events: []ledger.Event{created}}, nil
}

func displayName(mountPath, name string) string {
	source := strings.ReplaceAll(strings.TrimPrefix(mountPath, "auth/"), "/", "-")
	return strings.TrimSuffix(source+name, "-")
}

// claimValue finds a claim by name or by a JSON pointer ("/a/b"), as Vault.
func claimValue(claims map[string]any, name string) (any, bool) {
	if !strings.HasPrefix(name, "/") {
		v, ok := claims[name]
		return v, ok
	}
	var cur any = claims
	for _, part := range strings.Split(strings.TrimPrefix(name, "/"), "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

// checkBoundClaims is Vault's validateBoundClaims: every bound claim must be present and
// match one of its values (exactly, or as a glob).
func checkBoundClaims(claims map[string]any, bound map[string]any, useGlob bool) error {
	for claim, expected := range bound {
		actual, ok := claimValue(claims, claim)
		if !ok {
			return fmt.Errorf("claim %q is missing", claim)
		}
		var want []any
		if l, ok := expected.([]any); ok {
			want = l
		} else {
			want = []any{expected}
		}
		var have []any
		if l, ok := actual.([]any); ok {
			have = l
		} else {
			have = []any{actual}
		}
		found := false
		for _, w := range want {
			ws, _ := scalar(w)
			for _, h := range have {
				hs, ok := scalar(h)
				if !ok {
					continue
				}
				if hs == ws || useGlob && glob.Glob(ws, hs) {
					found = true
				}
			}
		}
		if !found {
			return fmt.Errorf("claim %q does not match any associated bound claim values", claim)
		}
	}
	return nil
}

// validRedirect is Vault's: an allowed URI exactly, or for loopback hosts the same URI on any
// port (the CLI listens on a port of its choosing).
func validRedirect(uri string, allowed []string) bool {
	if slices.Contains(allowed, uri) {
		return true
	}
	in, err := url.Parse(uri)
	if err != nil {
		return false
	}
	switch in.Hostname() {
	case "localhost", "127.0.0.1", "::1":
	default:
		return false
	}
	for _, a := range allowed {
		au, err := url.Parse(a)
		if err != nil {
			continue
		}
		if au.Scheme == in.Scheme && au.Hostname() == in.Hostname() && au.Path == in.Path && au.RawQuery == in.RawQuery {
			return true
		}
	}
	return false
}

// authURL is POST oidc/auth_url: a fresh state, nonce and PKCE verifier, remembered for one
// callback, and the provider's authorization URL carrying them.
func (b *Backend) authURL(r *request) (*engines.Response, error) {
	cfg, ok := b.config()
	if !ok || cfg.ClientID == "" {
		return nil, engines.BadRequest("OIDC login is not configured for this mount")
	}
	name, role, err := b.roleFor(r, cfg)
	if err != nil {
		return nil, err
	}
	redirect, err := engines.String(r.data, "redirect_uri", "")
	if err != nil {
		return nil, err
	}
	if redirect == "" {
		return nil, engines.BadRequest("missing redirect_uri")
	}
	clientNonce, err := engines.String(r.data, "client_nonce", "")
	if err != nil {
		return nil, err
	}
	if role.RoleType != "oidc" {
		return nil, engines.BadRequest("role %q is not an OIDC role", name)
	}
	if !validRedirect(redirect, role.AllowedRedirectURIs) {
		return nil, engines.BadRequest("unauthorized redirect_uri: %s", redirect)
	}
	v, err := b.verifierFor(cfg)
	if err != nil || v.provider == nil {
		return nil, engines.BadRequest("the OIDC provider is unreachable or misconfigured: %v", err)
	}
	verifier, err := capoidc.NewCodeVerifier()
	if err != nil {
		return nil, err
	}
	opts := []capoidc.Option{capoidc.WithPKCE(verifier), capoidc.WithScopes(append([]string{"openid"}, role.OIDCScopes...)...)}
	if role.MaxAge > 0 {
		opts = append(opts, capoidc.WithMaxAge(uint(role.MaxAge/time.Second)))
	}
	if len(role.BoundAudiences) > 0 {
		opts = append(opts, capoidc.WithAudiences(role.BoundAudiences...))
	}
	req, err := capoidc.NewRequest(pendingTTL, redirect, opts...)
	if err != nil {
		return nil, err
	}
	u, err := v.provider.AuthURL(r.ctx, req)
	if err != nil {
		return nil, engines.BadRequest("error building the authorization URL: %s", cleanErr(err))
	}
	b.mu.Lock()
	for s, p := range b.pending {
		if r.now.After(p.expires) {
			delete(b.pending, s)
		}
	}
	full := len(b.pending) >= maxPending
	if !full {
		b.pending[req.State()] = &pending{req: req, role: name, clientNonce: clientNonce, expires: r.now.Add(pendingTTL)}
	}
	b.mu.Unlock()
	if full {
		return nil, engines.Errorf(engines.ErrRateLimited, "too many OIDC logins under way; retry shortly")
	}
	return &engines.Response{Data: map[string]any{"auth_url": u}}, nil
}

var errState = engines.BadRequest("Expired or missing OAuth state.")

// callback is oidc/callback: the state must be one this node handed out and not yet used; the
// code is exchanged with the PKCE verifier and the ID token verified (issuer, audience,
// signature, expiry, and the nonce of this very state).
func (b *Backend) callback(r *request) (*engines.Response, error) {
	state, _ := engines.String(r.data, "state", "")
	code, _ := engines.String(r.data, "code", "")
	clientNonce, _ := engines.String(r.data, "client_nonce", "")
	b.mu.Lock()
	p, ok := b.pending[state]
	delete(b.pending, state) // one callback per state, whatever its outcome
	b.mu.Unlock()
	if !ok || state == "" || r.now.After(p.expires) {
		return nil, errState
	}
	if p.clientNonce != "" && p.clientNonce != clientNonce {
		return nil, engines.BadRequest("invalid client_nonce")
	}
	if e, _ := engines.String(r.data, "error", ""); e != "" {
		desc, _ := engines.String(r.data, "error_description", "")
		return nil, engines.BadRequest("Vault login failed. Error: %s, Error Description: %s", e, desc)
	}
	if code == "" {
		return nil, engines.BadRequest("OAuth code parameter not provided")
	}
	cfg, ok := b.config()
	if !ok {
		return nil, engines.BadRequest("could not load configuration")
	}
	role, ok := b.role(p.role)
	if !ok {
		return nil, engines.BadRequest("role %q could not be found", p.role)
	}
	keys, err := b.limit(r, p.role)
	if err != nil {
		return nil, err
	}
	v, err := b.verifierFor(cfg)
	if err != nil || v.provider == nil {
		return nil, engines.BadRequest("the OIDC provider is unreachable or misconfigured: %v", err)
	}
	tk, err := v.provider.Exchange(r.ctx, p.req, state, code)
	if err != nil {
		return nil, engines.BadRequest("Error exchanging oidc code: %s", cleanErr(err))
	}
	claims := map[string]any{}
	if err := tk.IDToken().Claims(&claims); err != nil {
		return nil, engines.BadRequest("error reading ID token claims: %v", err)
	}
	if n, _ := claims["nonce"].(string); n != p.req.Nonce() {
		return nil, engines.BadRequest("invalid ID token nonce")
	}
	// As Vault does, claims the provider serves only from /userinfo (email and profile, when
	// the ID token is issued beside an access token) are merged in; the subject must match
	// the ID token's. A provider without userinfo, or one that fails, does not fail the login.
	if ts := tk.StaticTokenSource(); ts != nil {
		sub, _ := claims["sub"].(string)
		if err := v.provider.UserInfo(r.ctx, ts, sub, &claims); err != nil {
			slog.Default().Warn("oidc: reading the provider's userinfo endpoint", "mount", b.mount.Path, "error", cleanErr(err))
		}
	}
	resp, err := b.finishLogin(r, p.role, role, claims)
	if err != nil {
		return nil, err
	}
	b.limiter.Refund(r.now, keys...)
	return resp, nil
}
