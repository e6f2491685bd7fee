package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	pkiview "github.com/ledger-secrets/ledger/projections/pki"
)

// caRequest is what generating a CA certificate or its CSR reads from a request.
type caRequest struct {
	spec      keySpec
	names     names
	keyName   string
	issuer    string
	maxPath   int
	permitted []string
	notBefore time.Duration
	format    string
	keyFormat string
}

func (b *Backend) readCARequest(req *engines.Request) (caRequest, error) {
	var c caRequest
	var err error
	typ, err := engines.String(req.Data, "key_type", "rsa")
	if err != nil {
		return c, err
	}
	bits, err := engines.Int(req.Data, "key_bits", 0)
	if err != nil {
		return c, err
	}
	if c.spec, err = checkKeySpec(typ, bits, false); err != nil {
		return c, err
	}
	var excl bool
	if c.names, excl, err = requestNames(req.Data); err != nil {
		return c, err
	}
	c.names = c.names.withCN(excl)
	if c.keyName, err = engines.String(req.Data, "key_name", ""); err != nil {
		return c, err
	}
	if c.issuer, err = engines.String(req.Data, "issuer_name", ""); err != nil {
		return c, err
	}
	for _, n := range []string{c.keyName, c.issuer} {
		if n != "" && (!nameRE.MatchString(n) || n == "default") {
			return c, engines.BadRequest("name %q is invalid: use letters, digits, '-', '_' and '.', and not \"default\"", n)
		}
	}
	if c.maxPath, err = engines.Int(req.Data, "max_path_length", -1); err != nil {
		return c, err
	}
	if c.permitted, err = engines.Strings(req.Data, "permitted_dns_domains"); err != nil {
		return c, err
	}
	if c.notBefore, err = engines.Duration(req.Data, "not_before_duration", 30*time.Second); err != nil {
		return c, err
	}
	if c.format, err = readFormat(req.Data); err != nil {
		return c, err
	}
	if c.keyFormat, err = engines.String(req.Data, "private_key_format", "pem"); err != nil {
		return c, err
	}
	if c.keyFormat != "pem" && c.keyFormat != "der" && c.keyFormat != "pkcs8" && c.keyFormat != "" {
		return c, engines.BadRequest("unknown private_key_format %q: use pem, der or pkcs8", c.keyFormat)
	}
	return c, nil
}

func readFormat(data map[string]any) (string, error) {
	f, err := engines.String(data, "format", "pem")
	if err != nil {
		return "", err
	}
	switch f {
	case "", "pem":
		return "pem", nil
	case "der", "pem_bundle":
		return f, nil
	}
	return "", engines.BadRequest("unknown format %q: use pem, der or pem_bundle", f)
}

// checkNamesFree refuses a key or issuer name already used in the mount.
func checkNamesFree(st pkiview.State, keyName, issuerName string) error {
	for _, k := range st.Keys {
		if keyName != "" && k.Name == keyName {
			return engines.BadRequest("key name %q is already in use", keyName)
		}
	}
	for _, is := range st.Issuers {
		if issuerName != "" && is.Name == issuerName {
			return engines.BadRequest("issuer name %q is already in use", issuerName)
		}
	}
	return nil
}

// newID is a random (version 4) UUID, the form Vault gives issuer and key IDs.
func newID() string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		panic("pki: crypto/rand unavailable")
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// generateRoot serves root/generate/:type and root/rotate/:type: a new key and a self-signed
// CA certificate, which becomes the default issuer when the mount has none (rotate never
// changes the default, as in Vault).
func (b *Backend) generateRoot(req *engines.Request, exported, rotate bool) (*engines.Response, error) {
	c, err := b.readCARequest(req)
	if err != nil {
		return nil, err
	}
	if c.names.cn == "" {
		return nil, engines.BadRequest("the common_name field is required")
	}
	st, _ := b.view.Mount(b.mount.UUID)
	if err := checkNamesFree(st, c.keyName, c.issuer); err != nil {
		return nil, err
	}
	subject, err := subjectFields(req.Data, c.names.cn, pkixEmpty)
	if err != nil {
		return nil, err
	}
	notBefore, notAfter, warnings, err := validity(req.Data, req.Now, b.mount.MaxLeaseTTL, b.mount.MaxLeaseTTL, c.notBefore)
	if err != nil {
		return nil, err
	}
	key, err := generateKey(c.spec)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, MaxPathLen: c.maxPath, MaxPathLenZero: c.maxPath == 0,
		DNSNames: c.names.dns, EmailAddresses: c.names.emails, IPAddresses: c.names.ips, URIs: c.names.uris,
		PermittedDNSDomains: c.permitted,
	}
	b.applyURLs(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, engines.BadRequest("unable to create the CA certificate: %s", err)
	}
	keyEv, k, err := b.keyEvent(req, key, c.keyName)
	if err != nil {
		return nil, err
	}
	pemCert := certPEM(der)
	is := pkiview.Issuer{ID: newID(), Name: c.issuer, KeyID: k.ID, Certificate: pemCert, CAChain: []string{pemCert},
		LeafNotAfterBehavior: "err", Usage: defaultUsage, Serial: serialString(serial), NotAfter: notAfter, Created: req.Now}
	isEv, err := b.event(req, pkiview.IssuerCreated, "ca", pkiview.IssuerPayload{Mount: b.mount.UUID, Issuer: is})
	if err != nil {
		return nil, err
	}
	certEv, err := b.certEvent(req, der, serial.String(), is.ID, notAfter)
	if err != nil {
		return nil, err
	}
	if rotate && st.Config.DefaultIssuer != "" {
		warnings = append(warnings, "this mount's default issuer is unchanged; set config/issuers to use the new root")
	}
	data := map[string]any{
		"certificate": formatCert(der, c.format), "issuing_ca": formatCert(der, c.format),
		"serial_number": is.Serial, "expiration": unix(notAfter), "issuer_id": is.ID, "issuer_name": is.Name,
		"key_id": k.ID, "key_name": k.Name,
	}
	if exported {
		if err := putPrivateKey(data, key, c.keyFormat); err != nil {
			return nil, err
		}
	}
	events := []ledger.Event{keyEv, isEv, certEv}
	if rotate && st.Config.DefaultIssuer != "" {
		// A rotation leaves the default where it was: pin it explicitly, so the view's "the
		// first issuer becomes the default" rule does not apply.
		cfg := st.Config
		cfg.DefaultFollowsLatestIssuer = false
		ev, err := b.event(req, pkiview.ConfigWritten, "ca", pkiview.ConfigPayload{Mount: b.mount.UUID, Config: cfg})
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	return &engines.Response{Data: data, Warnings: warnings, Events: events}, nil
}

var pkixEmpty = emptyName()

const defaultUsage = "read-only,issuing-certificates,crl-signing,ocsp-signing"

// keyEvent records a new CA key.
func (b *Backend) keyEvent(req *engines.Request, key crypto.Signer, name string) (ledger.Event, pkiview.Key, error) {
	der, err := marshalKey(key)
	if err != nil {
		return ledger.Event{}, pkiview.Key{}, err
	}
	typ, bits := describeKey(key.Public())
	k := pkiview.Key{ID: newID(), Name: name, Type: typ, Bits: bits, Material: der}
	ev, err := b.event(req, pkiview.KeyCreated, "ca", pkiview.KeyPayload{Mount: b.mount.UUID, Key: k})
	return ev, k, err
}

// certEvent stores an issued certificate (serial given as decimal for the record's sake only).
func (b *Backend) certEvent(req *engines.Request, der []byte, _ string, issuerID string, notAfter time.Time) (ledger.Event, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return ledger.Event{}, err
	}
	serial := serialString(c.SerialNumber)
	return b.event(req, pkiview.CertStored, "cert/"+serial, pkiview.CertPayload{Mount: b.mount.UUID, Cert: pkiview.Cert{
		Serial: serial, Certificate: certPEM(der), IssuerID: issuerID, NotAfter: notAfter.UTC()}})
}

func putPrivateKey(data map[string]any, key crypto.Signer, format string) error {
	if format == "der" {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		typ, _ := describeKey(key.Public())
		data["private_key"], data["private_key_type"] = b64(der), typ
		return nil
	}
	s, typ, err := keyPEM(key, format)
	if err != nil {
		return err
	}
	data["private_key"], data["private_key_type"] = s, typ
	return nil
}

// formatCert renders DER as the request's format asks: PEM (default), base64 DER.
func formatCert(der []byte, format string) string {
	if format == "der" {
		return b64(der)
	}
	return certPEM(der)
}

// applyURLs puts the mount's AIA URLs (config/urls) into a certificate template.
func (b *Backend) applyURLs(tmpl *x509.Certificate) {
	u := b.view.Config(b.mount.UUID).URLs
	tmpl.IssuingCertificateURL = u.IssuingCertificates
	tmpl.CRLDistributionPoints = u.CRLDistributionPoints
	tmpl.OCSPServer = u.OCSPServers
}

// generateIntermediate serves intermediate/generate/:type: a new key and a CSR for it. The key
// is kept; intermediate/set-signed later pairs it with the signed certificate.
func (b *Backend) generateIntermediate(req *engines.Request, exported bool) (*engines.Response, error) {
	c, err := b.readCARequest(req)
	if err != nil {
		return nil, err
	}
	if c.names.cn == "" {
		return nil, engines.BadRequest("the common_name field is required")
	}
	st, _ := b.view.Mount(b.mount.UUID)
	if err := checkNamesFree(st, c.keyName, ""); err != nil {
		return nil, err
	}
	subject, err := subjectFields(req.Data, c.names.cn, pkixEmpty)
	if err != nil {
		return nil, err
	}
	key, err := generateKey(c.spec)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{Subject: subject, DNSNames: c.names.dns, EmailAddresses: c.names.emails,
		IPAddresses: c.names.ips, URIs: c.names.uris}
	if add, _ := engines.Bool(req.Data, "add_basic_constraints", false); add {
		ext, err := basicConstraintsExt(c.maxPath)
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, engines.BadRequest("unable to create the CSR: %s", err)
	}
	keyEv, k, err := b.keyEvent(req, key, c.keyName)
	if err != nil {
		return nil, err
	}
	data := map[string]any{"key_id": k.ID}
	if c.format == "der" {
		data["csr"] = b64(csr)
	} else {
		data["csr"] = strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})))
	}
	if exported {
		if err := putPrivateKey(data, key, c.keyFormat); err != nil {
			return nil, err
		}
	}
	return &engines.Response{Data: data, Events: []ledger.Event{keyEv}}, nil
}

// parseCSR reads a CSR in PEM (or base64 DER) and checks its signature.
func parseCSR(s string) (*x509.CertificateRequest, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, engines.BadRequest("the csr field is required")
	}
	var der []byte
	if blk, _ := pem.Decode([]byte(s)); blk != nil {
		if blk.Type != "CERTIFICATE REQUEST" && blk.Type != "NEW CERTIFICATE REQUEST" {
			return nil, engines.BadRequest("csr: expected a CERTIFICATE REQUEST PEM block, got %q", blk.Type)
		}
		der = blk.Bytes
	} else if d, err := unb64(s); err == nil {
		der = d
	} else {
		return nil, engines.BadRequest("csr: not PEM and not base64 DER")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, engines.BadRequest("certificate request could not be parsed: %s", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, engines.BadRequest("request signature invalid: %s", err)
	}
	return csr, nil
}

// signIntermediate serves root/sign-intermediate and issuer/:ref/sign-intermediate.
func (b *Backend) signIntermediate(req *engines.Request, ref string) (*engines.Response, error) {
	if ref == "" {
		var err error
		if ref, err = engines.String(req.Data, "issuer_ref", "default"); err != nil {
			return nil, err
		}
	}
	is, err := b.resolveIssuer(ref)
	if err != nil {
		return nil, err
	}
	csrText, err := engines.String(req.Data, "csr", "")
	if err != nil {
		return nil, err
	}
	csr, err := parseCSR(csrText)
	if err != nil {
		return nil, err
	}
	useCSR, err := engines.Bool(req.Data, "use_csr_values", false)
	if err != nil {
		return nil, err
	}
	n, excl, err := requestNames(req.Data)
	if err != nil {
		return nil, err
	}
	subject, err := subjectFields(req.Data, n.cn, pkixEmpty)
	if err != nil {
		return nil, err
	}
	if useCSR {
		subject = csr.Subject
		n = names{cn: csr.Subject.CommonName, dns: csr.DNSNames, emails: csr.EmailAddresses, ips: csr.IPAddresses, uris: csr.URIs}
	} else if n.cn == "" {
		return nil, engines.BadRequest("the common_name field is required")
	}
	n = n.withCN(excl)
	maxPath, err := engines.Int(req.Data, "max_path_length", -1)
	if err != nil {
		return nil, err
	}
	permitted, err := engines.Strings(req.Data, "permitted_dns_domains")
	if err != nil {
		return nil, err
	}
	nbd, err := engines.Duration(req.Data, "not_before_duration", 30*time.Second)
	if err != nil {
		return nil, err
	}
	format, err := readFormat(req.Data)
	if err != nil {
		return nil, err
	}
	notBefore, notAfter, warnings, err := validity(req.Data, req.Now, b.mount.DefaultLeaseTTL, b.mount.MaxLeaseTTL, nbd)
	if err != nil {
		return nil, err
	}
	parent, err := parseCertPEM(is.Certificate)
	if err != nil {
		return nil, err
	}
	if notAfter, err = capToIssuer(is, parent, notAfter); err != nil {
		return nil, err
	}
	signer, err := b.signer(is)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, MaxPathLen: maxPath, MaxPathLenZero: maxPath == 0,
		DNSNames: n.dns, EmailAddresses: n.emails, IPAddresses: n.ips, URIs: n.uris, PermittedDNSDomains: permitted,
	}
	b.applyURLs(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, csr.PublicKey, signer)
	if err != nil {
		return nil, engines.BadRequest("unable to sign the intermediate: %s", err)
	}
	ev, err := b.certEvent(req, der, "", is.ID, notAfter)
	if err != nil {
		return nil, err
	}
	chain := append([]string{certPEM(der)}, chainPEMs(is)...)
	return &engines.Response{Data: map[string]any{
		"certificate": formatCert(der, format), "issuing_ca": is.Certificate, "ca_chain": chain,
		"serial_number": serialString(serial), "expiration": unix(notAfter),
	}, Warnings: warnings, Events: []ledger.Event{ev}}, nil
}

// capToIssuer applies the issuer's leaf_not_after_behavior to a notAfter beyond its own.
func capToIssuer(is pkiview.Issuer, parent *x509.Certificate, notAfter time.Time) (time.Time, error) {
	if !notAfter.After(parent.NotAfter) {
		return notAfter, nil
	}
	switch is.LeafNotAfterBehavior {
	case "truncate":
		return parent.NotAfter, nil
	case "permit":
		return notAfter, nil
	}
	return notAfter, engines.BadRequest("cannot satisfy request, as TTL would result in notAfter of %s that is beyond the expiration of the CA certificate at %s",
		notAfter.UTC().Format(time.RFC3339), parent.NotAfter.UTC().Format(time.RFC3339))
}

// importBundle serves config/ca, issuers/import/* (field pem_bundle: certificates and keys) and
// intermediate/set-signed (field certificate: certificates whose keys the mount holds).
func (b *Backend) importBundle(req *engines.Request, field string, setSigned bool) (*engines.Response, error) {
	text, err := engines.String(req.Data, field, "")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(text) == "" {
		return nil, engines.BadRequest("the %s field is required", field)
	}
	var certs []*x509.Certificate
	var keys []crypto.Signer
	rest := []byte(text)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch {
		case blk.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, engines.BadRequest("unable to parse certificate %d of the bundle: %s", len(certs)+1, err)
			}
			certs = append(certs, c)
		case strings.HasSuffix(blk.Type, "PRIVATE KEY"):
			if setSigned {
				return nil, engines.BadRequest("intermediate/set-signed takes certificates only; import keys with config/ca")
			}
			k, err := parsePrivatePEM(blk)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		default:
			return nil, engines.BadRequest("unsupported PEM block type %q in %s", blk.Type, field)
		}
	}
	if len(bytes.TrimSpace(rest)) > 0 || (len(certs) == 0 && len(keys) == 0) {
		return nil, engines.BadRequest("%s is not a valid PEM bundle: no PEM data found, or trailing data after the last block", field)
	}
	if setSigned && len(certs) == 0 {
		return nil, engines.BadRequest("no certificates found in the certificate field")
	}
	st, _ := b.view.Mount(b.mount.UUID)
	var events []ledger.Event
	importedKeys, existingKeys := []string{}, []string{}
	known := map[string]pkiview.Key{}
	for id, k := range st.Keys {
		known[id] = *k
	}
	for _, k := range keys {
		if id := matchKey(known, k.Public()); id != "" {
			existingKeys = append(existingKeys, id)
			continue
		}
		ev, nk, err := b.keyEvent(req, k, "")
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
		known[nk.ID] = nk
		importedKeys = append(importedKeys, nk.ID)
	}
	importedIssuers, existingIssuers := []string{}, []string{}
	mapping := map[string]any{}
	all := map[string]pkiview.Issuer{}
	for id, is := range st.Issuers {
		all[id] = *is
	}
	var created []string
	for i, c := range certs {
		if err := checkCA(c); err != nil {
			return nil, err
		}
		p := certPEM(c.Raw)
		if id := matchIssuer(all, p); id != "" {
			existingIssuers = append(existingIssuers, id)
			continue
		}
		keyID := matchKey(known, c.PublicKey)
		if setSigned && i == 0 && keyID == "" {
			return nil, engines.BadRequest("the certificate's public key matches no key of this mount; generate the CSR with intermediate/generate first")
		}
		is := pkiview.Issuer{ID: newID(), KeyID: keyID, Certificate: p, LeafNotAfterBehavior: "err", Usage: defaultUsage,
			Serial: serialString(c.SerialNumber), NotAfter: c.NotAfter.UTC(), Created: req.Now}
		all[is.ID] = is
		created = append(created, is.ID)
		importedIssuers = append(importedIssuers, is.ID)
		mapping[is.ID] = keyID
	}
	chains := buildChains(all)
	for _, id := range created {
		is := all[id]
		is.CAChain = chains[id]
		ev, err := b.event(req, pkiview.IssuerCreated, "ca", pkiview.IssuerPayload{Mount: b.mount.UUID, Issuer: is})
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	// Issuers imported earlier may now chain further (a root imported after its intermediate).
	for id, is := range st.Issuers {
		if ch := chains[id]; len(ch) != len(is.CAChain) {
			up := *is
			up.CAChain = ch
			ev, err := b.event(req, pkiview.IssuerUpdated, "ca", pkiview.IssuerPayload{Mount: b.mount.UUID, Issuer: up})
			if err != nil {
				return nil, err
			}
			events = append(events, ev)
		}
	}
	data := map[string]any{"imported_issuers": importedIssuers, "imported_keys": importedKeys, "mapping": mapping,
		"existing_issuers": existingIssuers, "existing_keys": existingKeys}
	var warnings []string
	if len(created) == 0 && len(importedKeys) == 0 {
		warnings = append(warnings, "everything in the bundle was already imported")
	}
	return &engines.Response{Data: data, Warnings: warnings, Events: events}, nil
}

func matchKey(keys map[string]pkiview.Key, pub crypto.PublicKey) string {
	for id, k := range keys {
		s, err := parseKey(k.Material)
		if err == nil && samePublic(s.Public(), pub) {
			return id
		}
	}
	return ""
}

func matchIssuer(all map[string]pkiview.Issuer, p string) string {
	for id, is := range all {
		if is.Certificate == p {
			return id
		}
	}
	return ""
}

// buildChains computes each issuer's chain (itself, then each parent found among the issuers
// by signature) up to a self-signed root or a parent the mount does not have.
func buildChains(all map[string]pkiview.Issuer) map[string][]string {
	parsed := map[string]*x509.Certificate{}
	for id, is := range all {
		if c, err := parseCertPEM(is.Certificate); err == nil {
			parsed[id] = c
		}
	}
	out := map[string][]string{}
	for id := range all {
		c := parsed[id]
		if c == nil {
			continue
		}
		chain := []string{all[id].Certificate}
		seen := map[string]bool{id: true}
		for cur := c; ; {
			if bytes.Equal(cur.RawIssuer, cur.RawSubject) && cur.CheckSignatureFrom(cur) == nil {
				break
			}
			next := ""
			for pid, pc := range parsed {
				if !seen[pid] && bytes.Equal(cur.RawIssuer, pc.RawSubject) && cur.CheckSignatureFrom(pc) == nil {
					next = pid
					break
				}
			}
			if next == "" {
				break
			}
			seen[next] = true
			chain = append(chain, all[next].Certificate)
			cur = parsed[next]
		}
		out[id] = chain
	}
	return out
}

// deleteAll serves DELETE root: every issuer and key of the mount goes (the keys' material
// stays only in the sealed log).
func (b *Backend) deleteAll(req *engines.Request) (*engines.Response, error) {
	st, _ := b.view.Mount(b.mount.UUID)
	var events []ledger.Event
	for id := range st.Issuers {
		ev, err := b.event(req, pkiview.IssuerDeleted, "ca", pkiview.DeletedPayload{Mount: b.mount.UUID, ID: id})
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	for id := range st.Keys {
		ev, err := b.event(req, pkiview.KeyDeleted, "ca", pkiview.DeletedPayload{Mount: b.mount.UUID, ID: id})
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	return &engines.Response{Events: events}, nil
}
