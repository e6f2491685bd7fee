package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	pkiview "github.com/ledger-secrets/ledger/projections/pki"
)

// ACME (RFC 8555) at MOUNT/acme/…, as Vault 1.14+ serves it: directory, nonces, accounts,
// orders for DNS identifiers, http-01 challenges, finalize with a CSR, certificate download and
// revocation. Requests are authenticated by their JWS, not by a token. Nonces live in memory
// only (a nonce from another node or from before a restart is refused as badNonce, which
// clients retry); accounts and orders are events like everything else.

const (
	acmeNonceTTL  = 10 * time.Minute
	acmeOrderTTL  = 24 * time.Hour
	acmeMaxNonces = 100000
)

// nonces are the outstanding anti-replay nonces of one mount.
type nonces struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (n *nonces) issue(now time.Time) string {
	var b [16]byte
	rand.Read(b[:])
	s := base64.RawURLEncoding.EncodeToString(b[:])
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[string]time.Time{}
	}
	if len(n.m) >= acmeMaxNonces {
		for k, t := range n.m {
			if now.After(t) {
				delete(n.m, k)
			}
		}
		if len(n.m) >= acmeMaxNonces {
			clear(n.m)
		}
	}
	n.m[s] = now.Add(acmeNonceTTL)
	return s
}

// spend consumes a nonce; false when it is unknown, spent or expired.
func (n *nonces) spend(s string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	exp, ok := n.m[s]
	delete(n.m, s)
	return ok && now.Before(exp)
}

// acmeError is an RFC 7807 problem document.
type acmeError struct {
	status int
	typ    string
	detail string
}

func (e *acmeError) Error() string { return e.detail }

func problem(status int, typ, format string, args ...any) *acmeError {
	return &acmeError{status: status, typ: "urn:ietf:params:acme:error:" + typ, detail: fmt.Sprintf(format, args...)}
}

// acmeCtx is one ACME request: its base URL and, after JWS verification, its account or key.
type acmeCtx struct {
	req     *engines.Request
	base    string // https://…/v1/pki/acme
	payload []byte
	jwk     *jose.JSONWebKey
	account *pkiview.AcmeAccount
	events  []ledger.Event
}

func (b *Backend) acmeReply(a *acmeCtx, status int, body any, headers map[string][]string) *engines.Response {
	if headers == nil {
		headers = map[string][]string{}
	}
	headers["Replay-Nonce"] = []string{b.nonces.issue(a.req.Now)}
	headers["Cache-Control"] = []string{"no-store"}
	if a.base != "" {
		headers["Link"] = append(headers["Link"], "<"+a.base+"/directory>;rel=\"index\"")
	}
	ct := "application/json"
	var raw []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		raw, ct = v, "application/pem-certificate-chain"
	case *acmeError:
		raw, _ = json.Marshal(map[string]any{"type": v.typ, "detail": v.detail, "status": v.status})
		ct, status = "application/problem+json", v.status
	default:
		raw, _ = json.Marshal(v)
	}
	data := map[string]any{"http_content_type": ct, "http_raw_body": raw, "http_status_code": status, "http_headers": headers}
	if raw == nil {
		data["http_raw_body"] = []byte{}
	}
	return &engines.Response{Data: data, Events: a.events}
}

// acme serves MOUNT/acme/rest.
func (b *Backend) acme(ctx context.Context, req *engines.Request, rest string) (*engines.Response, error) {
	cfg := b.view.Config(b.mount.UUID)
	a := &acmeCtx{req: req}
	if cfg.ClusterPath != "" {
		a.base = strings.TrimSuffix(cfg.ClusterPath, "/") + "/acme"
	}
	if !cfg.AcmeEnabled {
		return b.acmeReply(a, 0, problem(http.StatusForbidden, "unauthorized", "ACME is disabled on this mount; enable it with config/acme enabled=true"), nil), nil
	}
	if a.base == "" {
		return b.acmeReply(a, 0, problem(http.StatusInternalServerError, "serverInternal", "ACME needs config/cluster path (this mount's external URL, such as https://ledger.example:8200/v1/pki)"), nil), nil
	}
	switch rest {
	case "directory":
		if req.Op != engines.OpRead {
			break
		}
		return b.acmeReply(a, http.StatusOK, map[string]any{
			"newNonce": a.base + "/new-nonce", "newAccount": a.base + "/new-account", "newOrder": a.base + "/new-order",
			"revokeCert": a.base + "/revoke-cert", "keyChange": a.base + "/key-change",
			"meta": map[string]any{"externalAccountRequired": false},
		}, nil), nil
	case "new-nonce":
		if req.Op != engines.OpRead {
			break
		}
		return b.acmeReply(a, http.StatusOK, nil, nil), nil
	}
	if req.Op != engines.OpUpdate && req.Op != engines.OpCreate {
		return b.acmeReply(a, 0, problem(http.StatusMethodNotAllowed, "malformed", "ACME resources are read with POST-as-GET"), nil), nil
	}
	if perr := b.verifyJWS(a, rest); perr != nil {
		return b.acmeReply(a, 0, perr, nil), nil
	}
	resp, perr := b.acmeRoute(ctx, a, rest, cfg)
	if perr != nil {
		var ae *acmeError
		if errors.As(perr, &ae) {
			return b.acmeReply(a, 0, ae, nil), nil
		}
		return nil, perr
	}
	return resp, nil
}

// verifyJWS checks the request's JWS: algorithm, nonce, url, and the key (jwk for new-account,
// kid naming a known account otherwise).
func (b *Backend) verifyJWS(a *acmeCtx, rest string) *acmeError {
	body, err := json.Marshal(a.req.Data)
	if err != nil {
		return problem(http.StatusBadRequest, "malformed", "request is not a JWS")
	}
	jws, err := jose.ParseSigned(string(body), []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.PS256})
	if err != nil || len(jws.Signatures) != 1 {
		return problem(http.StatusBadRequest, "malformed", "request is not a flattened JWS with one signature")
	}
	h := jws.Signatures[0].Protected
	if !b.nonces.spend(h.Nonce, a.req.Now) {
		return problem(http.StatusBadRequest, "badNonce", "unknown, expired or reused nonce")
	}
	u, _ := h.ExtraHeaders["url"].(string)
	if u != a.base+"/"+rest {
		return problem(http.StatusUnauthorized, "unauthorized", "the JWS url header does not match the request URL")
	}
	var key any
	switch {
	case h.JSONWebKey != nil && h.KeyID == "":
		if rest != "new-account" && rest != "revoke-cert" {
			return problem(http.StatusBadRequest, "malformed", "this request must name its account with kid, not jwk")
		}
		if !h.JSONWebKey.IsPublic() || !h.JSONWebKey.Valid() {
			return problem(http.StatusBadRequest, "badPublicKey", "the jwk is not a valid public key")
		}
		a.jwk, key = h.JSONWebKey, h.JSONWebKey.Key
	case h.KeyID != "" && h.JSONWebKey == nil:
		id, ok := strings.CutPrefix(h.KeyID, a.base+"/account/")
		st, _ := b.view.Mount(b.mount.UUID)
		acct := st.Accounts[id]
		if !ok || acct == nil {
			return problem(http.StatusBadRequest, "accountDoesNotExist", "no account %s", h.KeyID)
		}
		if acct.Status != "valid" {
			return problem(http.StatusUnauthorized, "unauthorized", "account is %s", acct.Status)
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(acct.JWK); err != nil {
			return problem(http.StatusInternalServerError, "serverInternal", "stored account key unreadable")
		}
		a.account, a.jwk, key = acct, &jwk, jwk.Key
	default:
		return problem(http.StatusBadRequest, "malformed", "exactly one of jwk and kid must be in the protected header")
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return problem(http.StatusBadRequest, "malformed", "JWS signature does not verify")
	}
	a.payload = payload
	return nil
}

func thumbprint(k *jose.JSONWebKey) string {
	t, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(t)
}

func (b *Backend) acmeRoute(ctx context.Context, a *acmeCtx, rest string, cfg pkiview.Config) (*engines.Response, error) {
	seg := strings.Split(rest, "/")
	switch {
	case rest == "new-account":
		return b.acmeNewAccount(a)
	case len(seg) == 2 && seg[0] == "account":
		if a.account == nil || a.account.ID != seg[1] {
			return nil, problem(http.StatusUnauthorized, "unauthorized", "an account may only read or change itself")
		}
		return b.acmeReply(a, http.StatusOK, b.accountJSON(a, *a.account), nil), nil
	case rest == "new-order":
		return b.acmeNewOrder(a, cfg)
	case len(seg) == 2 && seg[0] == "order":
		o, err := b.ownOrder(a, seg[1])
		if err != nil {
			return nil, err
		}
		return b.acmeReply(a, http.StatusOK, b.orderJSON(a, o), nil), nil
	case len(seg) == 3 && seg[0] == "order" && seg[2] == "finalize":
		return b.acmeFinalize(a, seg[1], cfg)
	case len(seg) == 3 && seg[0] == "order" && seg[2] == "cert":
		o, err := b.ownOrder(a, seg[1])
		if err != nil {
			return nil, err
		}
		c, ok := b.view.Cert(b.mount.UUID, o.CertSerial)
		if o.Status != "valid" || !ok {
			return nil, problem(http.StatusNotFound, "malformed", "the order has no certificate yet")
		}
		is, _ := b.view.Issuer(b.mount.UUID, c.IssuerID)
		pemChain := strings.Join(append([]string{c.Certificate}, chainPEMs(is)...), "\n") + "\n"
		return b.acmeReply(a, http.StatusOK, []byte(pemChain), nil), nil
	case len(seg) == 2 && seg[0] == "authorization":
		o, z, err := b.ownAuthz(a, seg[1])
		if err != nil {
			return nil, err
		}
		return b.acmeReply(a, http.StatusOK, b.authzJSON(a, o, z), nil), nil
	case len(seg) == 3 && seg[0] == "challenge" && seg[2] == "http-01":
		return b.acmeChallenge(ctx, a, seg[1], cfg)
	case rest == "revoke-cert":
		return b.acmeRevoke(a)
	case rest == "key-change":
		return nil, problem(http.StatusBadRequest, "malformed", "key-change is not supported yet by this server")
	}
	return nil, problem(http.StatusNotFound, "malformed", "unknown ACME resource %s", rest)
}

func (b *Backend) accountJSON(a *acmeCtx, acct pkiview.AcmeAccount) map[string]any {
	contact := acct.Contact
	if contact == nil {
		contact = []string{}
	}
	return map[string]any{"status": acct.Status, "contact": contact, "orders": a.base + "/account/" + acct.ID + "/orders"}
}

func (b *Backend) acmeNewAccount(a *acmeCtx) (*engines.Response, error) {
	if a.jwk == nil {
		return nil, problem(http.StatusBadRequest, "malformed", "new-account must carry jwk")
	}
	var p struct {
		Contact            []string        `json:"contact"`
		TermsAgreed        bool            `json:"termsOfServiceAgreed"`
		OnlyReturnExisting bool            `json:"onlyReturnExisting"`
		EAB                json.RawMessage `json:"externalAccountBinding"`
	}
	if len(a.payload) > 0 {
		if err := json.Unmarshal(a.payload, &p); err != nil {
			return nil, problem(http.StatusBadRequest, "malformed", "new-account payload is not a JSON object")
		}
	}
	tp := thumbprint(a.jwk)
	st, _ := b.view.Mount(b.mount.UUID)
	for _, acct := range st.Accounts {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(acct.JWK) == nil && thumbprint(&k) == tp {
			return b.acmeReply(a, http.StatusOK, b.accountJSON(a, *acct), map[string][]string{"Location": {a.base + "/account/" + acct.ID}}), nil
		}
	}
	if p.OnlyReturnExisting {
		return nil, problem(http.StatusBadRequest, "accountDoesNotExist", "no account for this key")
	}
	if len(p.EAB) > 0 && string(p.EAB) != "null" {
		return nil, problem(http.StatusBadRequest, "malformed", "external account binding is not supported yet by this server")
	}
	for _, c := range p.Contact {
		if !strings.HasPrefix(c, "mailto:") {
			return nil, problem(http.StatusBadRequest, "unsupportedContact", "contact %q: only mailto: contacts are supported", c)
		}
	}
	jwkJSON, err := a.jwk.MarshalJSON()
	if err != nil {
		return nil, problem(http.StatusBadRequest, "badPublicKey", "the jwk cannot be stored")
	}
	acct := pkiview.AcmeAccount{ID: newID(), JWK: jwkJSON, Status: "valid", Contact: p.Contact, CreatedAt: a.req.Now}
	ev, err := b.event(a.req, pkiview.AcmeAccountSet, "acme/account/"+acct.ID, pkiview.AcmeAccountPayload{Mount: b.mount.UUID, Account: acct})
	if err != nil {
		return nil, err
	}
	a.events = append(a.events, ev)
	return b.acmeReply(a, http.StatusCreated, b.accountJSON(a, acct), map[string][]string{"Location": {a.base + "/account/" + acct.ID}}), nil
}

// acmePolicy resolves config/acme's default_directory_policy: sign-verbatim (any DNS name the
// CSR asks for, as Vault's default) or role:NAME (the role's name rules and TTLs).
func (b *Backend) acmePolicy(cfg pkiview.Config) (*pkiview.Role, error) {
	pol := cfg.AcmeDefaultRole
	switch {
	case pol == "" || pol == "sign-verbatim":
		return nil, nil
	case pol == "forbid":
		return nil, problem(http.StatusForbidden, "unauthorized", "the default ACME directory is forbidden on this mount")
	case strings.HasPrefix(pol, "role:"):
		r, ok := b.view.Role(b.mount.UUID, strings.TrimPrefix(pol, "role:"))
		if !ok {
			return nil, problem(http.StatusInternalServerError, "serverInternal", "the ACME directory's role %s does not exist", strings.TrimPrefix(pol, "role:"))
		}
		return &r, nil
	}
	return nil, problem(http.StatusInternalServerError, "serverInternal", "unknown default_directory_policy %q", pol)
}

func (b *Backend) acmeNewOrder(a *acmeCtx, cfg pkiview.Config) (*engines.Response, error) {
	if a.account == nil {
		return nil, problem(http.StatusBadRequest, "malformed", "new-order needs an account (kid)")
	}
	var p struct {
		Identifiers []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"identifiers"`
		NotBefore string `json:"notBefore"`
		NotAfter  string `json:"notAfter"`
	}
	if err := json.Unmarshal(a.payload, &p); err != nil || len(p.Identifiers) == 0 {
		return nil, problem(http.StatusBadRequest, "malformed", "new-order needs a JSON payload with identifiers")
	}
	if p.NotBefore != "" || p.NotAfter != "" {
		return nil, problem(http.StatusBadRequest, "malformed", "notBefore and notAfter are not supported in orders")
	}
	role, err := b.acmePolicy(cfg)
	if err != nil {
		return nil, err
	}
	o := pkiview.AcmeOrder{ID: newID(), AccountID: a.account.ID, Status: "pending", Expires: a.req.Now.Add(acmeOrderTTL).UTC()}
	if role != nil {
		o.Role = role.Name
	}
	for _, id := range p.Identifiers {
		v := strings.ToLower(strings.TrimSpace(id.Value))
		if id.Type != "dns" {
			return nil, problem(http.StatusBadRequest, "unsupportedIdentifier", "identifier type %q: only dns is supported", id.Type)
		}
		if strings.HasPrefix(v, "*.") {
			return nil, problem(http.StatusBadRequest, "rejectedIdentifier", "wildcard identifiers need dns-01, which this server does not offer")
		}
		if !hostnameRE.MatchString(v) {
			return nil, problem(http.StatusBadRequest, "rejectedIdentifier", "%q is not a DNS name", id.Value)
		}
		if role != nil && !nameAllowed(*role, v) {
			return nil, problem(http.StatusBadRequest, "rejectedIdentifier", "identifier %s not allowed by role %s", v, role.Name)
		}
		if slices.Contains(o.Identifiers, v) {
			continue
		}
		var tok [32]byte
		rand.Read(tok[:])
		o.Identifiers = append(o.Identifiers, v)
		o.Authz = append(o.Authz, pkiview.AcmeAuthz{ID: newID(), Identifier: v, Status: "pending", Token: base64.RawURLEncoding.EncodeToString(tok[:])})
	}
	if err := b.saveOrder(a, o); err != nil {
		return nil, err
	}
	return b.acmeReply(a, http.StatusCreated, b.orderJSON(a, o), map[string][]string{"Location": {a.base + "/order/" + o.ID}}), nil
}

func (b *Backend) saveOrder(a *acmeCtx, o pkiview.AcmeOrder) error {
	ev, err := b.event(a.req, pkiview.AcmeOrderSet, "acme/order/"+o.ID, pkiview.AcmeOrderPayload{Mount: b.mount.UUID, Order: o})
	if err != nil {
		return err
	}
	a.events = append(a.events, ev)
	return nil
}

func idJSON(v string) map[string]string { return map[string]string{"type": "dns", "value": v} }

func (b *Backend) orderJSON(a *acmeCtx, o pkiview.AcmeOrder) map[string]any {
	ids := make([]map[string]string, len(o.Identifiers))
	for i, v := range o.Identifiers {
		ids[i] = idJSON(v)
	}
	authz := make([]string, len(o.Authz))
	for i, z := range o.Authz {
		authz[i] = a.base + "/authorization/" + z.ID
	}
	m := map[string]any{"status": o.Status, "expires": o.Expires.Format(time.RFC3339), "identifiers": ids,
		"authorizations": authz, "finalize": a.base + "/order/" + o.ID + "/finalize"}
	if o.Status == "valid" {
		m["certificate"] = a.base + "/order/" + o.ID + "/cert"
	}
	return m
}

func (b *Backend) authzJSON(a *acmeCtx, o pkiview.AcmeOrder, z pkiview.AcmeAuthz) map[string]any {
	ch := map[string]any{"type": "http-01", "url": a.base + "/challenge/" + z.ID + "/http-01", "token": z.Token, "status": z.Status}
	if z.Status == "valid" {
		ch["validated"] = z.Validated.Format(time.RFC3339)
	}
	return map[string]any{"identifier": idJSON(z.Identifier), "status": z.Status,
		"expires": o.Expires.Format(time.RFC3339), "challenges": []any{ch}}
}

// ownOrder returns an order of the requesting account.
func (b *Backend) ownOrder(a *acmeCtx, id string) (pkiview.AcmeOrder, error) {
	st, _ := b.view.Mount(b.mount.UUID)
	o := st.Orders[id]
	if o == nil || a.account == nil || o.AccountID != a.account.ID {
		return pkiview.AcmeOrder{}, problem(http.StatusNotFound, "malformed", "no such order")
	}
	c := *o
	c.Authz = slices.Clone(o.Authz)
	if c.Status != "valid" && c.Status != "invalid" && a.req.Now.After(c.Expires) {
		c.Status = "invalid"
	}
	return c, nil
}

func (b *Backend) ownAuthz(a *acmeCtx, id string) (pkiview.AcmeOrder, pkiview.AcmeAuthz, error) {
	st, _ := b.view.Mount(b.mount.UUID)
	for _, o := range st.Orders {
		for _, z := range o.Authz {
			if z.ID == id {
				oo, err := b.ownOrder(a, o.ID)
				return oo, z, err
			}
		}
	}
	return pkiview.AcmeOrder{}, pkiview.AcmeAuthz{}, problem(http.StatusNotFound, "malformed", "no such authorization")
}

// acmeChallenge validates an http-01 challenge now: GET http://IDENTIFIER/.well-known/…
// must answer the key authorization.
func (b *Backend) acmeChallenge(ctx context.Context, a *acmeCtx, authzID string, cfg pkiview.Config) (*engines.Response, error) {
	o, z, err := b.ownAuthz(a, authzID)
	if err != nil {
		return nil, err
	}
	if z.Status == "pending" && o.Status == "pending" {
		port := cfg.AcmeHTTP01Port
		if port == 0 {
			port = 80
		}
		want := z.Token + "." + thumbprint(a.jwk)
		got, ferr := fetchChallenge(ctx, fmt.Sprintf("http://%s:%d/.well-known/acme-challenge/%s", z.Identifier, port, z.Token))
		for i := range o.Authz {
			if o.Authz[i].ID != z.ID {
				continue
			}
			if ferr == nil && got == want {
				o.Authz[i].Status, o.Authz[i].Validated = "valid", a.req.Now.UTC()
			} else {
				o.Authz[i].Status, o.Status = "invalid", "invalid"
			}
			z = o.Authz[i]
		}
		if o.Status == "pending" && !slices.ContainsFunc(o.Authz, func(x pkiview.AcmeAuthz) bool { return x.Status != "valid" }) {
			o.Status = "ready"
		}
		if err := b.saveOrder(a, o); err != nil {
			return nil, err
		}
	}
	ch := map[string]any{"type": "http-01", "url": a.base + "/challenge/" + z.ID + "/http-01", "token": z.Token, "status": z.Status}
	if z.Status == "invalid" {
		ch["error"] = map[string]any{"type": "urn:ietf:params:acme:error:incorrectResponse",
			"detail": "the challenge response at http://" + z.Identifier + "/.well-known/acme-challenge/ was missing or wrong"}
	}
	return b.acmeReply(a, http.StatusOK, ch, map[string][]string{"Link": {"<" + a.base + "/authorization/" + z.ID + ">;rel=\"up\""}}), nil
}

var challengeClient = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	return nil
}}

func fetchChallenge(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := challengeClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return strings.TrimSpace(string(b)), err
}

func (b *Backend) acmeFinalize(a *acmeCtx, id string, cfg pkiview.Config) (*engines.Response, error) {
	o, err := b.ownOrder(a, id)
	if err != nil {
		return nil, err
	}
	if o.Status != "ready" {
		return nil, problem(http.StatusForbidden, "orderNotReady", "order is %s, not ready", o.Status)
	}
	var p struct {
		CSR string `json:"csr"`
	}
	if err := json.Unmarshal(a.payload, &p); err != nil || p.CSR == "" {
		return nil, problem(http.StatusBadRequest, "malformed", "finalize needs a csr")
	}
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(p.CSR, "="))
	if err != nil {
		return nil, problem(http.StatusBadRequest, "badCSR", "csr is not base64url DER")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil || csr.CheckSignature() != nil {
		return nil, problem(http.StatusBadRequest, "badCSR", "csr does not parse or its signature is wrong")
	}
	names := slices.Clone(csr.DNSNames)
	if cn := strings.ToLower(csr.Subject.CommonName); cn != "" && !slices.Contains(names, cn) {
		names = append(names, cn)
	}
	for i := range names {
		names[i] = strings.ToLower(names[i])
	}
	sort.Strings(names)
	names = slices.Compact(names)
	want := slices.Clone(o.Identifiers)
	sort.Strings(want)
	if !slices.Equal(names, want) || len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs) > 0 {
		return nil, problem(http.StatusBadRequest, "badCSR", "the CSR's names must be exactly the order's identifiers")
	}
	if typ, bits := describeKey(csr.PublicKey); typ == "unknown" || (typ == "rsa" && bits < 2048) {
		return nil, problem(http.StatusBadRequest, "badCSR", "the CSR's key is of an unsupported type or too small")
	}
	r := defaultRole("acme")
	if o.Role != "" {
		if rr, ok := b.view.Role(b.mount.UUID, o.Role); ok {
			r = rr
		}
	}
	is, err := b.resolveIssuer(r.IssuerRef)
	if err != nil {
		return nil, problem(http.StatusInternalServerError, "serverInternal", "%s", err.Error())
	}
	parent, err := parseCertPEM(is.Certificate)
	if err != nil {
		return nil, err
	}
	def, max := b.ttlBounds(r)
	notAfter := a.req.Now.Add(min(def, max)).Truncate(time.Second)
	if notAfter.After(parent.NotAfter) {
		notAfter = parent.NotAfter
	}
	signer, err := b.signer(is)
	if err != nil {
		return nil, problem(http.StatusInternalServerError, "serverInternal", "%s", err.Error())
	}
	ku := x509.KeyUsageDigitalSignature
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	cn := csr.Subject.CommonName
	if cn == "" {
		cn = o.Identifiers[0]
	}
	tmpl := &x509.Certificate{Subject: roleSubjectWithCN(r, cn), NotBefore: a.req.Now.Add(-r.NotBeforeDuration), NotAfter: notAfter,
		KeyUsage: ku, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames: o.Identifiers, BasicConstraintsValid: true}
	certDER, serial, err := b.sign(tmpl, parent, csr.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	ev, err := b.certEvent(a.req, certDER, "", is.ID, notAfter)
	if err != nil {
		return nil, err
	}
	a.events = append(a.events, ev)
	o.Status, o.CertSerial = "valid", serial
	if err := b.saveOrder(a, o); err != nil {
		return nil, err
	}
	return b.acmeReply(a, http.StatusOK, b.orderJSON(a, o), map[string][]string{"Location": {a.base + "/order/" + o.ID}}), nil
}

func roleSubjectWithCN(r pkiview.Role, cn string) (n pkix.Name) {
	n = roleSubject(r)
	n.CommonName = cn
	return n
}

// acmeRevoke serves revoke-cert for certificates of the requesting account's orders.
func (b *Backend) acmeRevoke(a *acmeCtx) (*engines.Response, error) {
	var p struct {
		Certificate string `json:"certificate"`
	}
	if err := json.Unmarshal(a.payload, &p); err != nil || p.Certificate == "" {
		return nil, problem(http.StatusBadRequest, "malformed", "revoke-cert needs a certificate")
	}
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(p.Certificate, "="))
	if err != nil {
		return nil, problem(http.StatusBadRequest, "malformed", "certificate is not base64url DER")
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, problem(http.StatusBadRequest, "malformed", "certificate does not parse")
	}
	serial := serialString(c.SerialNumber)
	stored, ok := b.view.Cert(b.mount.UUID, serial)
	if !ok || stored.Certificate != certPEM(der) {
		return nil, problem(http.StatusNotFound, "malformed", "certificate not issued by this mount")
	}
	allowed := false
	if a.account != nil {
		st, _ := b.view.Mount(b.mount.UUID)
		for _, o := range st.Orders {
			if o.CertSerial == serial && o.AccountID == a.account.ID {
				allowed = true
			}
		}
	} else if a.jwk != nil {
		allowed = samePublic(a.jwk.Key, c.PublicKey)
	}
	if !allowed {
		return nil, problem(http.StatusForbidden, "unauthorized", "neither the certificate's key nor the account that ordered it signed this request")
	}
	if !stored.RevokedAt.IsZero() {
		return nil, problem(http.StatusBadRequest, "alreadyRevoked", "certificate already revoked")
	}
	ev, err := b.event(a.req, pkiview.CertRevoked, "cert/"+serial, pkiview.RevokedPayload{Mount: b.mount.UUID, Serial: serial, Time: a.req.Now})
	if err != nil {
		return nil, err
	}
	a.events = append(a.events, ev)
	return b.acmeReply(a, http.StatusOK, nil, nil), nil
}

// configAcme serves config/acme.
func (b *Backend) configAcme(req *engines.Request) (*engines.Response, error) {
	cfg := b.view.Config(b.mount.UUID)
	out := func(c pkiview.Config) map[string]any {
		pol := c.AcmeDefaultRole
		if pol == "" {
			pol = "sign-verbatim"
		}
		eab := c.AcmeEABPolicy
		if eab == "" {
			eab = "not-required"
		}
		roles := c.AcmeAllowedRoles
		if roles == nil {
			roles = []string{"*"}
		}
		port := c.AcmeHTTP01Port
		if port == 0 {
			port = 80
		}
		return map[string]any{"enabled": c.AcmeEnabled, "default_directory_policy": pol, "allowed_roles": roles,
			"allowed_issuers": []string{"*"}, "allow_role_ext_key_usage": false, "eab_policy": eab,
			"dns_resolver": "", "max_ttl": int64(b.mount.MaxLeaseTTL / time.Second), "http01_port": port}
	}
	switch req.Op {
	case engines.OpRead:
		return &engines.Response{Data: out(cfg)}, nil
	case engines.OpCreate, engines.OpUpdate:
		var err error
		if cfg.AcmeEnabled, err = engines.Bool(req.Data, "enabled", cfg.AcmeEnabled); err != nil {
			return nil, err
		}
		if cfg.AcmeDefaultRole, err = engines.String(req.Data, "default_directory_policy", cfg.AcmeDefaultRole); err != nil {
			return nil, err
		}
		switch pol := cfg.AcmeDefaultRole; {
		case pol == "" || pol == "sign-verbatim" || pol == "forbid":
		case strings.HasPrefix(pol, "role:"):
			if _, ok := b.view.Role(b.mount.UUID, strings.TrimPrefix(pol, "role:")); !ok {
				return nil, engines.BadRequest("default_directory_policy: role %q does not exist", strings.TrimPrefix(pol, "role:"))
			}
		default:
			return nil, engines.BadRequest("invalid default_directory_policy %q: use sign-verbatim, forbid or role:NAME", pol)
		}
		if cfg.AcmeEABPolicy, err = engines.String(req.Data, "eab_policy", cfg.AcmeEABPolicy); err != nil {
			return nil, err
		}
		if cfg.AcmeEABPolicy != "" && cfg.AcmeEABPolicy != "not-required" {
			return nil, engines.BadRequest("eab_policy %q: external account binding is not supported yet by this server; use not-required", cfg.AcmeEABPolicy)
		}
		if engines.Has(req.Data, "allowed_roles") {
			if cfg.AcmeAllowedRoles, err = engines.Strings(req.Data, "allowed_roles"); err != nil {
				return nil, err
			}
		}
		if cfg.AcmeHTTP01Port, err = engines.Int(req.Data, "http01_port", cfg.AcmeHTTP01Port); err != nil {
			return nil, err
		}
		if cfg.AcmeHTTP01Port < 0 || cfg.AcmeHTTP01Port > 65535 {
			return nil, engines.BadRequest("http01_port must be a TCP port")
		}
		if cfg.AcmeEnabled && cfg.ClusterPath == "" {
			return nil, engines.BadRequest("ACME needs config/cluster path (this mount's external URL, such as https://ledger.example:8200/v1/pki) set first")
		}
		ev, err := b.writeConfig(req, cfg)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: out(cfg), Events: []ledger.Event{ev}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}
