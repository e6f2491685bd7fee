package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	capjwt "github.com/hashicorp/cap/jwt"
	"github.com/ryanuber/go-glob"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/jwks"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
)

// The in-cluster files Vault falls back to when the configuration names no CA or reviewer.
const (
	localCACert = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	localJWT    = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// verifier is what a configuration builds once: the HTTP client towards the API server and the
// key set (nil: TokenReview verifies).
type verifier struct {
	cfg    Config
	client *http.Client
	keys   capjwt.KeySet
	local  bool // validated locally, no TokenReview
}

func (b *Backend) verifierFor(c Config) (*verifier, error) {
	raw, _ := json.Marshal(c)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.verifier != nil && b.cfgRaw == string(raw) {
		return b.verifier, nil
	}
	ca := c.CACert
	if ca == "" && !c.DisableLocalCAJWT {
		if pem, err := os.ReadFile(localCACert); err == nil {
			ca = string(pem)
		}
	}
	client, err := jwks.HTTPClient(ca)
	if err != nil {
		return nil, err
	}
	v := &verifier{cfg: c, client: client, keys: jwks.Unverified{}}
	if len(c.PEMKeys) > 0 {
		keys, err := jwks.ParsePEMKeys(c.PEMKeys)
		if err != nil {
			return nil, err
		}
		if v.keys, err = jwks.Static(keys); err != nil {
			return nil, err
		}
	} else if c.JWKSURL != "" {
		kc, err := jwks.HTTPClient(c.JWKSCAPEM)
		if err != nil {
			return nil, err
		}
		v.keys = jwks.NewRemote(kc, c.JWKSURL)
	}
	v.local = c.ReviewerJWT == "" && (len(c.PEMKeys) > 0 || c.JWKSURL != "")
	b.verifier, b.cfgRaw = v, string(raw)
	return v, nil
}

// serviceAccount is who a JWT names, from the claims of a projected (1.21+) token or of a
// legacy secret-based one.
type serviceAccount struct {
	Namespace, Name, UID, SecretName string
	Audience                         []string
}

func claimString(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func serviceAccountOf(claims map[string]any) serviceAccount {
	sa := serviceAccount{
		Namespace:  claimString(claims, "kubernetes.io/serviceaccount/namespace"),
		Name:       claimString(claims, "kubernetes.io/serviceaccount/service-account.name"),
		UID:        claimString(claims, "kubernetes.io/serviceaccount/service-account.uid"),
		SecretName: claimString(claims, "kubernetes.io/serviceaccount/secret.name"),
	}
	if k, ok := claims["kubernetes.io"].(map[string]any); ok {
		sa.Namespace = claimString(k, "namespace")
		if s, ok := k["serviceaccount"].(map[string]any); ok {
			sa.Name, sa.UID = claimString(s, "name"), claimString(s, "uid")
		}
	}
	switch a := claims["aud"].(type) {
	case string:
		sa.Audience = []string{a}
	case []any:
		for _, e := range a {
			if s, ok := e.(string); ok {
				sa.Audience = append(sa.Audience, s)
			}
		}
	}
	return sa
}

var errDenied = engines.Errorf(engines.ErrPermissionDenied, "permission denied")

// login is POST login: role and jwt for a token.
func (b *Backend) login(r *request) (*engines.Response, error) {
	roleName, err := engines.String(r.data, "role", "")
	if err != nil {
		return nil, err
	}
	if roleName == "" {
		return nil, engines.BadRequest("missing role")
	}
	jwt, err := engines.String(r.data, "jwt", "")
	if err != nil {
		return nil, err
	}
	if jwt == "" {
		return nil, engines.BadRequest("missing jwt")
	}
	if len(jwt) > jwks.MaxToken {
		return nil, engines.BadRequest("jwt is larger than %d bytes", jwks.MaxToken)
	}
	host := engines.HostOf(r.RemoteAddr)
	keys := []string{"addr\x00" + host, "role\x00" + roleName}
	if ok, wait := b.limiter.Take(r.now, keys...); !ok {
		return nil, engines.Errorf(engines.ErrRateLimited, "too many failed login attempts for this role or source; retry after %ds", int64(math.Ceil(wait.Seconds())))
	}
	resp, err := b.verifyLogin(r, roleName, jwt, host)
	if err != nil {
		return nil, err // the failure stays counted; the pipeline audits it like any error
	}
	b.limiter.Refund(r.now, keys...)
	return resp, nil
}

func (b *Backend) verifyLogin(r *request, roleName, jwt, host string) (*engines.Response, error) {
	role, ok := b.role(roleName)
	if !ok {
		return nil, engines.BadRequest("invalid role name %q", roleName)
	}
	if len(role.Token.BoundCIDRs) > 0 && !engines.InCIDRs(host, role.Token.BoundCIDRs) {
		return nil, errDenied
	}
	cfg, ok := b.config()
	if !ok {
		return nil, engines.BadRequest("could not load backend configuration: write auth/kubernetes/config first")
	}
	v, err := b.verifierFor(cfg)
	if err != nil {
		return nil, engines.BadRequest("kubernetes auth configuration is unusable: %v", err)
	}
	sa, err := b.validate(r, v, jwt, role)
	if err != nil {
		return nil, err
	}
	if sa.UID == "" {
		return nil, engines.BadRequest("could not parse UID from claims")
	}
	if !v.local {
		if err := b.review(r.ctx, v, jwt, role, sa); err != nil {
			return nil, errDenied
		}
	}
	alias := sa.UID
	if role.AliasNameSource == aliasSourceName {
		alias = sa.Namespace + "/" + sa.Name
	}
	meta := map[string]string{
		"service_account_uid":         sa.UID,
		"service_account_name":        sa.Name,
		"service_account_namespace":   sa.Namespace,
		"service_account_secret_name": sa.SecretName,
		"role":                        roleName,
	}
	mountPath := b.mountPath(r.Request)
	auth, created, warnings, err := enginetoken.Issue(enginetoken.IssueInput{
		Keyring: b.keyring, Tokens: b.tokens, Mount: r.Mount, BackendMount: b.mount,
		Params: role.Token, BoundCIDRs: role.Token.BoundCIDRs, Metadata: meta,
		DisplayName: displayName(mountPath, sa.Namespace+"-"+sa.Name),
		Path:        mountPath + "login", Now: r.now,
	})
	if err != nil {
		return nil, err
	}
	aliasMeta := map[string]string{
		"service_account_uid": sa.UID, "service_account_name": sa.Name,
		"service_account_namespace": sa.Namespace, "service_account_secret_name": sa.SecretName,
	}
	if cfg.UseAnnotations {
		ann, err := b.annotations(r.ctx, v, jwt, sa)
		if err != nil {
			slog.Default().Warn("kubernetes auth: reading the service account's annotations", "mount", b.mount.Path,
				"service_account", sa.Namespace+"/"+sa.Name, "error", err)
			return nil, errDenied
		}
		for _, k := range slices.Sorted(maps.Keys(ann)) {
			key, ok := strings.CutPrefix(k, AnnotationPrefix)
			if !ok || key == "" {
				continue
			}
			if _, taken := aliasMeta[key]; taken {
				warnings = append(warnings, fmt.Sprintf("annotation %q was ignored: %q is set by the auth method", k, key))
				continue
			}
			aliasMeta[key] = ann[k]
		}
	}
	auth.Alias = &engines.Alias{Name: alias, Metadata: aliasMeta}
	created.Request, created.Time = r.ID, r.now
	return &engines.Response{Auth: auth, Warnings: warnings, Events: []ledger.Event{created}}, nil
}

// validate checks the JWT's algorithm, signature (when validated locally), issuer, audience and
// times, then the service account it names against the role. Every failure is a 403.
func (b *Backend) validate(r *request, v *verifier, jwt string, role Role) (serviceAccount, error) {
	algs, _ := jwks.CapAlgorithms(nil)
	exp := capjwt.Expected{SigningAlgorithms: algs, Now: func() time.Time { return r.now }}
	if !v.cfg.DisableISSValidation {
		exp.Issuer = v.cfg.Issuer
		if exp.Issuer == "" {
			exp.Issuer = "kubernetes/serviceaccount"
		}
	}
	if strings.TrimSpace(role.Audience) != "" {
		exp.Audiences = []string{role.Audience}
	}
	val, err := capjwt.NewValidator(v.keys)
	if err != nil {
		return serviceAccount{}, err
	}
	claims, err := val.ValidateAllowMissingIatNbfExp(r.ctx, jwt, exp)
	if err != nil {
		return serviceAccount{}, engines.Errorf(engines.ErrPermissionDenied, "%s", err.Error())
	}
	if err := jwks.CheckDepth(claims); err != nil {
		return serviceAccount{}, engines.BadRequest("%s", err.Error())
	}
	sa := serviceAccountOf(claims)
	if !slices.Equal(role.Names, []string{"*"}) && !containsGlob(role.Names, sa.Name) {
		return serviceAccount{}, engines.Errorf(engines.ErrPermissionDenied, "service account name not authorized")
	}
	allowed := len(role.Namespaces) > 0 && (role.Namespaces[0] == "*" || containsGlob(role.Namespaces, sa.Namespace))
	var selErr error
	if !allowed && role.NamespaceSelector != "" && sa.Namespace != "" {
		allowed, selErr = b.namespaceMatches(r.ctx, v, jwt, sa.Namespace, role.NamespaceSelector)
	}
	if !allowed {
		msg := "namespace not authorized"
		if selErr != nil {
			msg += " err=" + selErr.Error()
		}
		return serviceAccount{}, engines.Errorf(engines.ErrPermissionDenied, "%s", msg)
	}
	return sa, nil
}

func containsGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if glob.Glob(p, s) {
			return true
		}
	}
	return false
}

// reviewerJWT is the bearer for the API server: the configured reviewer JWT, the pod's own
// token when Ledger runs in a cluster, else the JWT being reviewed, as Vault.
func reviewerJWT(c Config, jwt string) string {
	if c.ReviewerJWT != "" {
		return c.ReviewerJWT
	}
	if !c.DisableLocalCAJWT {
		if b, err := os.ReadFile(localJWT); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
	}
	return jwt
}

func apiURL(host, path string) string {
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	return strings.TrimSuffix(host, "/") + path
}

// review asks the cluster's TokenReview API whether jwt is valid and checks that it names the
// same service account as its claims.
func (b *Backend) review(ctx context.Context, v *verifier, jwt string, role Role, sa serviceAccount) error {
	aud := sa.Audience
	if role.Audience != "" {
		aud = []string{role.Audience}
	}
	tr := authv1.TokenReview{
		TypeMeta: metav1.TypeMeta{Kind: "TokenReview", APIVersion: "authentication.k8s.io/v1"},
		Spec:     authv1.TokenReviewSpec{Token: jwt, Audiences: aud},
	}
	body, err := json.Marshal(tr)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL(v.cfg.Host, "/apis/authentication.k8s.io/v1/tokenreviews"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+reviewerJWT(v.cfg, jwt))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return fmt.Errorf("token review: %w", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
	case http.StatusUnauthorized, http.StatusForbidden:
		return errors.New("lookup failed: service account unauthorized; this could mean it has been deleted or recreated with a new token")
	default:
		return fmt.Errorf("token review answered %s", resp.Status)
	}
	var out authv1.TokenReview
	if err := json.Unmarshal(rb, &out); err != nil {
		return fmt.Errorf("decode token review: %w", err)
	}
	if out.Status.Error != "" {
		return fmt.Errorf("lookup failed: %s", out.Status.Error)
	}
	if !out.Status.Authenticated {
		return errors.New("lookup failed: service account jwt not valid")
	}
	parts := strings.Split(out.Status.User.Username, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" {
		return errors.New("lookup failed: unexpected username format")
	}
	if parts[2] != sa.Namespace || parts[3] != sa.Name {
		return errors.New("JWT names did not match")
	}
	if out.Status.User.UID != sa.UID {
		return errors.New("JWT UIDs did not match")
	}
	return nil
}

// namespaceMatches reads the namespace's labels from the API server and matches the selector.
func (b *Backend) namespaceMatches(ctx context.Context, v *verifier, jwt, ns, selector string) (bool, error) {
	sel, err := parseSelector(selector)
	if err != nil {
		return false, err
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, err
	}
	var n corev1.Namespace
	if err := getObject(ctx, v, jwt, "/api/v1/namespaces/"+url.PathEscape(ns), &n); err != nil {
		return false, fmt.Errorf("failed to get namespace: %w", err)
	}
	return s.Matches(labels.Set(n.Labels)), nil
}

// getObject GETs one API object with the reviewer JWT (or, without one, the login's own) and
// decodes it into out, an API type.
func getObject(ctx context.Context, v *verifier, jwt, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL(v.cfg.Host, path), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+reviewerJWT(v.cfg, jwt))
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the API server answered %d", resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

// AnnotationPrefix marks the service-account annotations that become alias metadata when
// use_annotations_as_alias_metadata is set: "vault.hashicorp.com/alias-metadata-team: payments"
// gives the alias team=payments, for templated policies.
const AnnotationPrefix = "vault.hashicorp.com/alias-metadata-"

// annotations reads the service account from the API server and returns its annotations.
func (b *Backend) annotations(ctx context.Context, v *verifier, jwt string, sa serviceAccount) (map[string]string, error) {
	var acct corev1.ServiceAccount
	if err := getObject(ctx, v, jwt, "/api/v1/namespaces/"+url.PathEscape(sa.Namespace)+"/serviceaccounts/"+url.PathEscape(sa.Name), &acct); err != nil {
		return nil, fmt.Errorf("get serviceaccount: %w", err)
	}
	if string(acct.UID) != "" && string(acct.UID) != sa.UID {
		return nil, errors.New("the service account's UID differs from the token's (it was deleted and recreated)")
	}
	return acct.Annotations, nil
}

// displayName is Vault's for login tokens: the mount path without "auth/", dashes for slashes,
// then the method's own display name.
func displayName(mountPath, name string) string {
	source := strings.ReplaceAll(strings.TrimPrefix(mountPath, "auth/"), "/", "-")
	return strings.TrimSuffix(source+name, "-")
}
