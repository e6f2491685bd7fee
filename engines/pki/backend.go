// Package pki is Vault's PKI secrets engine: CA setup (generated or imported roots and
// intermediates, several issuers per mount), roles, certificate issuance from generated keys and
// from CSRs, revocation with CRLs and OCSP, and tidy, at Vault's paths and in Vault's request and
// response shapes.
//
// CA keys are generated here when a request decides to create them and travel only inside the
// events (sealed by the log) to the view (projections/pki), which keeps them in memory. Private
// keys of issued certificates are returned once and never recorded anywhere.
package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	pkiview "github.com/ledger-secrets/ledger/projections/pki"
)

// Backend is one PKI mount.
type Backend struct {
	view  *pkiview.View
	mount engines.Mount

	// signers caches parsed CA keys by key ID; parsing an RSA key costs about as much as a
	// signature. Entries are dropped when the view no longer has the key.
	signersMu sync.Mutex
	signers   map[string]crypto.Signer

	// crls caches signed CRLs by issuer ID and CRL number: a CRL changes only when its number
	// does (a revocation or a rotation), so a cached one is the current one.
	crlMu sync.Mutex
	crls  map[string]cachedCRL

	nonces nonces // ACME anti-replay nonces, in memory only
}

type cachedCRL struct {
	number int64
	der    []byte
}

var (
	_ engines.Backend      = (*Backend)(nil)
	_ engines.Locker       = (*Backend)(nil)
	_ engines.PathsSpecial = (*Backend)(nil)
)

// New builds the backend for mount m over the PKI view.
func New(view *pkiview.View, m engines.Mount) *Backend {
	return &Backend{view: view, mount: m, signers: map[string]crypto.Signer{}, crls: map[string]cachedCRL{}}
}

// Unauthenticated implements engines.PathsSpecial: what Vault serves without a token (CA
// certificates, CRLs, OCSP, stored certificates, ACME, which authenticates by JWS).
func (b *Backend) Unauthenticated() []string {
	return []string{"cert/*", "ca/pem", "ca_chain", "ca", "crl", "crl/pem", "crl/delta", "crl/delta/pem",
		"ocsp", "ocsp/*", "issuers/", "issuer/+/pem", "issuer/+/der", "issuer/+/json",
		"issuer/+/crl", "issuer/+/crl/pem", "issuer/+/crl/der", "issuer/+/crl/delta", "issuer/+/crl/delta/pem",
		"issuer/+/crl/delta/der", "acme/*"}
}

// Sudo implements engines.PathsSpecial.
func (b *Backend) Sudo() []string {
	return []string{"root", "root/sign-self-issued", "issuer/+/sign-self-issued", "root/rotate/*"}
}

var nameRE = regexp.MustCompile(`^\w(?:[\w\-.@]*\w)?$`)

// LockKey implements engines.Locker. Every change to keys, issuers and mount configuration
// takes one lock, so the default issuer and the CA setup never interleave; roles lock by name,
// revocations by serial. Issuance takes none: certificates are independent of each other.
func (b *Backend) LockKey(req *engines.Request) string {
	p := req.Path
	switch {
	case strings.HasPrefix(p, "roles/"):
		return p
	case p == "revoke" || p == "revoke-with-key":
		s, _ := engines.String(req.Data, "serial_number", "")
		return "revoke/" + s
	case strings.HasPrefix(p, "issue/"), strings.HasPrefix(p, "sign/"), strings.HasPrefix(p, "sign-verbatim"),
		strings.HasPrefix(p, "issuer/") && (strings.Contains(p, "/issue/") || strings.Contains(p, "/sign/") || strings.HasSuffix(p, "/sign-verbatim")):
		return ""
	case p == "ocsp" || strings.HasPrefix(p, "ocsp/"):
		return "" // an OCSP POST decides nothing
	case strings.HasPrefix(p, "acme/"):
		return "acme"
	}
	return "ca"
}

// HandleRequest implements engines.Backend.
func (b *Backend) HandleRequest(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	p := req.Path
	op := req.Op
	write := op == engines.OpCreate || op == engines.OpUpdate
	read := op == engines.OpRead
	seg := strings.Split(p, "/")
	switch {
	case strings.HasPrefix(p, "acme/") || p == "acme":
		return b.acme(ctx, req, strings.TrimPrefix(strings.TrimPrefix(p, "acme"), "/"))
	case p == "root/generate/internal" || p == "root/generate/exported":
		if write {
			return b.generateRoot(req, seg[2] == "exported", false)
		}
	case p == "root/rotate/internal" || p == "root/rotate/exported":
		if write {
			return b.generateRoot(req, seg[2] == "exported", true)
		}
	case p == "intermediate/generate/internal" || p == "intermediate/generate/exported":
		if write {
			return b.generateIntermediate(req, seg[2] == "exported")
		}
	case strings.HasPrefix(p, "root/generate/") || strings.HasPrefix(p, "intermediate/generate/") || strings.HasPrefix(p, "root/rotate/"):
		return nil, engines.BadRequest("unsupported type %q: use internal or exported", seg[len(seg)-1])
	case p == "root/sign-intermediate":
		if write {
			return b.signIntermediate(req, "")
		}
	case len(seg) == 3 && seg[0] == "issuer" && seg[2] == "sign-intermediate":
		if write {
			return b.signIntermediate(req, seg[1])
		}
	case p == "intermediate/set-signed":
		if write {
			return b.importBundle(req, "certificate", true)
		}
	case p == "config/ca" || p == "issuers/import/bundle" || p == "issuers/import/cert":
		if write {
			return b.importBundle(req, "pem_bundle", false)
		}
	case p == "root":
		if op == engines.OpDelete {
			return b.deleteAll(req)
		}
	case p == "issuers/" || p == "issuers":
		if op == engines.OpList || read {
			return b.listIssuers(), nil
		}
	case p == "keys/" || p == "keys":
		if op == engines.OpList || read {
			return b.listKeys(), nil
		}
	case len(seg) == 2 && seg[0] == "key":
		return b.keyOp(req, seg[1])
	case len(seg) == 2 && seg[0] == "issuer":
		return b.issuerOp(req, seg[1])
	case len(seg) >= 3 && seg[0] == "issuer" && (seg[2] == "pem" || seg[2] == "der" || seg[2] == "json") && len(seg) == 3:
		if read {
			return b.readIssuerCert(seg[1], seg[2])
		}
	case len(seg) >= 3 && len(seg) <= 5 && seg[0] == "issuer" && seg[2] == "crl":
		if read {
			format := "json"
			if len(seg) > 3 {
				format = strings.Join(seg[3:], "/")
			}
			if format == "delta" {
				format = "delta/json"
			}
			return b.readCRL(req, seg[1], format)
		}
	case len(seg) == 4 && seg[0] == "issuer" && (seg[2] == "issue" || seg[2] == "sign"):
		if write {
			return b.issueOrSign(req, seg[3], seg[1], seg[2] == "sign")
		}
	case len(seg) == 3 && seg[0] == "issuer" && seg[2] == "sign-verbatim":
		if write {
			return b.signVerbatim(req, "", seg[1])
		}
	case p == "config/issuers":
		return b.configIssuers(req)
	case p == "config/keys":
		return b.configKeys(req)
	case p == "config/urls":
		return b.configURLs(req)
	case p == "config/crl":
		return b.configCRL(req)
	case p == "config/auto-tidy":
		return b.configAutoTidy(req)
	case p == "config/cluster":
		return b.configCluster(req)
	case p == "config/acme":
		return b.configAcme(req)
	case p == "roles/" || p == "roles":
		if op == engines.OpList {
			return b.listRoles(), nil
		}
	case len(seg) == 2 && seg[0] == "roles":
		return b.roleOp(req, seg[1])
	case len(seg) == 2 && seg[0] == "issue":
		if write {
			return b.issueOrSign(req, seg[1], "", false)
		}
	case len(seg) == 2 && seg[0] == "sign":
		if write {
			return b.issueOrSign(req, seg[1], "", true)
		}
	case p == "sign-verbatim":
		if write {
			return b.signVerbatim(req, "", "")
		}
	case len(seg) == 2 && seg[0] == "sign-verbatim":
		if write {
			return b.signVerbatim(req, seg[1], "")
		}
	case p == "certs/" || p == "certs":
		if op == engines.OpList {
			return listResp(b.view.Serials(b.mount.UUID, false)), nil
		}
	case p == "certs/revoked/" || p == "certs/revoked":
		if op == engines.OpList {
			return listResp(b.view.Serials(b.mount.UUID, true)), nil
		}
	case len(seg) >= 2 && seg[0] == "cert":
		if read {
			return b.readCert(seg[1], strings.Join(seg[2:], "/"))
		}
	case p == "ca" || p == "ca/pem":
		if read {
			f := "der"
			if p == "ca/pem" {
				f = "pem"
			}
			return b.readIssuerCert("default", f)
		}
	case p == "ca_chain":
		if read {
			return b.readChain()
		}
	case p == "crl" || p == "crl/pem":
		if read {
			f := "der"
			if p == "crl/pem" {
				f = "pem"
			}
			return b.readCRL(req, "default", f)
		}
	case p == "crl/delta" || p == "crl/delta/pem":
		if read {
			f := "delta"
			if p == "crl/delta/pem" {
				f = "delta/pem"
			}
			return b.readCRL(req, "default", f)
		}
	case p == "crl/rotate":
		if read || write {
			return b.rotateCRL(req)
		}
	case p == "revoke":
		if write {
			return b.revoke(req)
		}
	case p == "ocsp" || strings.HasPrefix(p, "ocsp/"):
		if read || write {
			return b.ocsp(req, strings.TrimPrefix(strings.TrimPrefix(p, "ocsp"), "/"))
		}
	case p == "tidy":
		if write {
			return b.tidy(req)
		}
	case p == "tidy-status":
		if read {
			return b.tidyStatus(), nil
		}
	default:
		return nil, engines.Errorf(engines.ErrNotFound, "unsupported path")
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

func listResp(keys []string) *engines.Response {
	if keys == nil {
		keys = []string{}
	}
	return &engines.Response{Data: map[string]any{"keys": keys}}
}

func (b *Backend) subject(parts ...string) string {
	return ledger.SubjectFor("pki", append([]string{b.mount.UUID}, parts...)...)
}

func (b *Backend) event(req *engines.Request, typ, aggregate string, payload any) (ledger.Event, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return ledger.Event{}, fmt.Errorf("encode %s: %w", typ, err)
	}
	ev := ledger.Event{Type: typ, Subject: b.subject(aggregate), Time: req.Now, Request: req.ID, Payload: p}
	if req.Caller != nil {
		ev.Actor = req.Caller.Accessor
	}
	return ev, nil
}

// signer returns the parsed CA key of an issuer.
func (b *Backend) signer(is pkiview.Issuer) (crypto.Signer, error) {
	if is.KeyID == "" {
		return nil, engines.BadRequest("issuer %s has no key in this mount and cannot sign", is.ID)
	}
	b.signersMu.Lock()
	defer b.signersMu.Unlock()
	if s, ok := b.signers[is.KeyID]; ok {
		if _, still := b.view.Key(b.mount.UUID, is.KeyID); still {
			return s, nil
		}
		delete(b.signers, is.KeyID)
	}
	k, ok := b.view.Key(b.mount.UUID, is.KeyID)
	if !ok {
		return nil, engines.BadRequest("the key of issuer %s was deleted; it cannot sign", is.ID)
	}
	s, err := parseKey(k.Material)
	if err != nil {
		return nil, err
	}
	b.signers[is.KeyID] = s
	return s, nil
}

// resolveIssuer finds an issuer by "default", ID or name.
func (b *Backend) resolveIssuer(ref string) (pkiview.Issuer, error) {
	st, _ := b.view.Mount(b.mount.UUID)
	if ref == "" || ref == "default" {
		if is := st.Issuers[st.Config.DefaultIssuer]; is != nil {
			return *is, nil
		}
		if ref == "default" || ref == "" {
			return pkiview.Issuer{}, engines.BadRequest("no default issuer currently configured")
		}
	}
	if is := st.Issuers[ref]; is != nil {
		return *is, nil
	}
	for _, is := range st.Issuers {
		if is.Name == ref {
			return *is, nil
		}
	}
	return pkiview.Issuer{}, engines.BadRequest("unable to find PKI issuer for reference: %s", ref)
}

// resolveKey finds a key by "default", ID or name.
func (b *Backend) resolveKey(ref string) (pkiview.Key, error) {
	st, _ := b.view.Mount(b.mount.UUID)
	if ref == "" || ref == "default" {
		if k := st.Keys[st.Config.DefaultKey]; k != nil {
			return *k, nil
		}
		return pkiview.Key{}, engines.BadRequest("no default key currently configured")
	}
	if k := st.Keys[ref]; k != nil {
		return *k, nil
	}
	for _, k := range st.Keys {
		if k.Name == ref {
			return *k, nil
		}
	}
	return pkiview.Key{}, engines.BadRequest("unable to find PKI key for reference: %s", ref)
}

// chainPEMs returns an issuer's chain as PEM strings: its own certificate first.
func chainPEMs(is pkiview.Issuer) []string {
	if len(is.ManualChain) > 0 {
		return is.ManualChain
	}
	if len(is.CAChain) > 0 {
		return is.CAChain
	}
	return []string{is.Certificate}
}

// raw is a response whose body is sent as is, with a content type (Vault's http_raw_body).
func raw(contentType string, body []byte, status int) *engines.Response {
	return &engines.Response{Data: map[string]any{
		"http_content_type": contentType, "http_raw_body": body, "http_status_code": status,
	}}
}

func unix(t time.Time) int64 { return t.Unix() }

// parseCertOrErr parses a CA certificate, refusing what cannot be one.
func checkCA(c *x509.Certificate) error {
	if !c.BasicConstraintsValid || !c.IsCA {
		return engines.BadRequest("certificate %s is not a CA certificate (basic constraints CA:TRUE missing)", serialString(c.SerialNumber))
	}
	return nil
}
