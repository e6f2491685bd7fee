package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	glob "github.com/ryanuber/go-glob"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	pkiview "github.com/ledger-secrets/ledger/projections/pki"
)

// hostnameRE is Vault's hostname check (RFC 1123 labels, optional trailing dot).
var hostnameRE = regexp.MustCompile(`^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])\.?$`)

// nameAllowed applies a role's domain rules to one DNS name or email address, as Vault's
// validateNames does.
func nameAllowed(r pkiview.Role, name string) bool {
	sanitized := name
	email, emailDomain := false, ""
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		email, emailDomain = true, name[i+1:]
		sanitized = emailDomain
	}
	wildcard := false
	if strings.Contains(sanitized, "*") {
		if !r.AllowWildcardCertificates {
			return false
		}
		if rest, ok := strings.CutPrefix(sanitized, "*."); ok && !strings.Contains(rest, "*") {
			wildcard, sanitized = true, rest
		} else if r.EnforceHostnames {
			return false
		}
	}
	if r.EnforceHostnames && !hostnameRE.MatchString(sanitized) {
		return false
	}
	if r.AllowAnyName {
		return true
	}
	if r.AllowLocalhost && (name == "localhost" || name == "localdomain" || (email && emailDomain == "localhost")) {
		return true
	}
	for _, d := range r.AllowedDomains {
		if r.AllowBareDomains && (strings.EqualFold(name, d) || (email && strings.EqualFold(emailDomain, d))) {
			return true
		}
		if r.AllowSubdomains {
			ln, ld := strings.ToLower(sanitized), strings.ToLower(d)
			if strings.HasSuffix(ln, "."+ld) || (wildcard && ln == ld) {
				return true
			}
		}
		if r.AllowGlobDomains && strings.Contains(d, "*") && glob.Glob(strings.ToLower(d), strings.ToLower(name)) {
			return true
		}
	}
	return false
}

// checkNames validates a request's names against the role. The error names the first name
// refused, in Vault's words.
func checkNames(r pkiview.Role, n names, cnInSANs bool) error {
	if n.cn != "" && net.ParseIP(n.cn) == nil {
		validate := false
		for _, v := range r.CNValidations {
			if v == "hostname" || (v == "email" && strings.Contains(n.cn, "@")) {
				validate = true
			}
			if v == "disabled" {
				validate = false
				break
			}
		}
		if len(r.CNValidations) == 0 {
			validate = true
		}
		if validate && !nameAllowed(r, n.cn) {
			return engines.BadRequest("common name %s not allowed by this role", n.cn)
		}
	}
	for _, d := range append(append([]string{}, n.dns...), n.emails...) {
		if cnInSANs && strings.EqualFold(d, n.cn) {
			continue
		}
		if !nameAllowed(r, d) {
			return engines.BadRequest("subject alternate name %s not allowed by this role", d)
		}
	}
	if len(n.ips) > 0 && !r.AllowIPSANs {
		return engines.BadRequest("IP Subject Alternative Names are not allowed in this role, but was provided %s", n.ips[0])
	}
	for _, u := range n.uris {
		ok := false
		for _, pat := range r.AllowedURISANs {
			if glob.Glob(pat, u.String()) {
				ok = true
				break
			}
		}
		if !ok {
			return engines.BadRequest("URI Subject Alternative Names are not allowed in this role, but was provided %s", u)
		}
	}
	return nil
}

// checkCSRKey refuses a CSR key that the role's key_type and key_bits do not allow.
func checkCSRKey(r pkiview.Role, pub crypto.PublicKey) error {
	typ, bits := describeKey(pub)
	if typ == "unknown" {
		return engines.BadRequest("unsupported public key type in the CSR")
	}
	if r.KeyType == "any" {
		if typ == "rsa" && bits < 2048 {
			return engines.BadRequest("RSA keys < 2048 bits are unsafe and not supported: got %d bits", bits)
		}
		return nil
	}
	if typ != r.KeyType {
		return engines.BadRequest("role requires keys of type %s, but the CSR's key is of type %s", r.KeyType, typ)
	}
	switch typ {
	case "rsa":
		if bits < r.KeyBits {
			return engines.BadRequest("role requires a minimum of a %d-bit key, but CSR's key is %d bits", r.KeyBits, bits)
		}
	case "ec":
		if bits != r.KeyBits {
			return engines.BadRequest("role requires a P-%d key, but CSR's key is P-%d", r.KeyBits, bits)
		}
	}
	return nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, p := range strings.Split(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, strconv.ErrSyntax
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, strconv.ErrSyntax
	}
	return oid, nil
}

// usages returns the key usage and extended key usages of a role.
func usages(r pkiview.Role, pub crypto.PublicKey) (x509.KeyUsage, []x509.ExtKeyUsage, []asn1.ObjectIdentifier) {
	var ku x509.KeyUsage
	_, isRSA := pub.(*rsa.PublicKey)
	for _, u := range r.KeyUsage {
		k := keyUsages[strings.ToLower(u)]
		if !isRSA && k == x509.KeyUsageKeyEncipherment {
			continue // only RSA keys encipher keys
		}
		ku |= k
	}
	var eku []x509.ExtKeyUsage
	if r.ServerFlag {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if r.ClientFlag {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	if r.CodeSigningFlag {
		eku = append(eku, x509.ExtKeyUsageCodeSigning)
	}
	if r.EmailProtectionFlag {
		eku = append(eku, x509.ExtKeyUsageEmailProtection)
	}
	for _, u := range r.ExtKeyUsage {
		eku = append(eku, extKeyUsages[strings.ToLower(u)])
	}
	var oids []asn1.ObjectIdentifier
	for _, o := range r.ExtKeyUsageOIDs {
		if oid, err := parseOID(o); err == nil {
			oids = append(oids, oid)
		}
	}
	return ku, eku, oids
}

// ttlBounds is the role's default and maximum TTL within the mount's.
func (b *Backend) ttlBounds(r pkiview.Role) (time.Duration, time.Duration) {
	max := b.mount.MaxLeaseTTL
	if r.MaxTTL > 0 && r.MaxTTL < max {
		max = r.MaxTTL
	}
	def := r.TTL
	if def == 0 {
		def = b.mount.DefaultLeaseTTL
	}
	return def, max
}

// issueOrSign serves issue/:role and sign/:role (and their issuer/:ref/ forms).
func (b *Backend) issueOrSign(req *engines.Request, roleName, issuerRef string, sign bool) (*engines.Response, error) {
	r, ok := b.view.Role(b.mount.UUID, roleName)
	if !ok {
		return nil, engines.BadRequest("unknown role: %s", roleName)
	}
	if issuerRef == "" {
		issuerRef = r.IssuerRef
	}
	is, err := b.resolveIssuer(issuerRef)
	if err != nil {
		return nil, err
	}
	n, excl, err := requestNames(req.Data)
	if err != nil {
		return nil, err
	}
	var pub crypto.PublicKey
	var key crypto.Signer
	if sign {
		csrText, err := engines.String(req.Data, "csr", "")
		if err != nil {
			return nil, err
		}
		csr, err := parseCSR(csrText)
		if err != nil {
			return nil, err
		}
		if err := checkCSRKey(r, csr.PublicKey); err != nil {
			return nil, err
		}
		pub = csr.PublicKey
		if r.UseCSRCommonName && n.cn == "" {
			n.cn = csr.Subject.CommonName
		}
		if r.UseCSRSANs {
			for _, d := range csr.DNSNames {
				if !containsFold(n.dns, d) {
					n.dns = append(n.dns, d)
				}
			}
			n.emails = append(n.emails, csr.EmailAddresses...)
			n.ips = append(n.ips, csr.IPAddresses...)
			n.uris = append(n.uris, csr.URIs...)
		}
	} else if r.KeyType == "any" {
		return nil, engines.BadRequest("role key type \"any\" not allowed for issuing certificates, only signing")
	}
	if n.cn == "" && r.RequireCN {
		return nil, engines.BadRequest("the common_name field is required, or must be provided in a CSR with \"use_csr_common_name\" set to true, unless \"require_cn\" is set to false")
	}
	n = n.withCN(excl)
	if err := checkNames(r, n, !excl); err != nil {
		return nil, err
	}
	format, err := readFormat(req.Data)
	if err != nil {
		return nil, err
	}
	keyFormat, err := engines.String(req.Data, "private_key_format", "pem")
	if err != nil {
		return nil, err
	}
	if keyFormat != "pem" && keyFormat != "der" && keyFormat != "pkcs8" && keyFormat != "" {
		return nil, engines.BadRequest("unknown private_key_format %q: use pem, der or pkcs8", keyFormat)
	}
	removeRoots, err := engines.Bool(req.Data, "remove_roots_from_chain", false)
	if err != nil {
		return nil, err
	}
	def, max := b.ttlBounds(r)
	notBefore, notAfter, warnings, err := validity(req.Data, req.Now, def, max, r.NotBeforeDuration)
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
	subject, err := subjectFields(map[string]any{}, n.cn, roleSubject(r))
	if err != nil {
		return nil, err
	}
	if !sign {
		if key, err = generateKey(keySpec{typ: r.KeyType, bits: r.KeyBits}); err != nil {
			return nil, err
		}
		pub = key.Public()
	}
	ku, eku, oids := usages(r, pub)
	tmpl := &x509.Certificate{Subject: subject, NotBefore: notBefore, NotAfter: notAfter, KeyUsage: ku,
		ExtKeyUsage: eku, UnknownExtKeyUsage: oids, DNSNames: n.dns, EmailAddresses: n.emails,
		IPAddresses: n.ips, URIs: n.uris, BasicConstraintsValid: true}
	der, serial, err := b.sign(tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	var events []ledger.Event
	if !r.NoStore {
		ev, err := b.certEvent(req, der, "", is.ID, notAfter)
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	data := b.certResponse(der, serial, notAfter, is, format, removeRoots)
	if key != nil {
		if err := putPrivateKey(data, key, keyFormat); err != nil {
			return nil, err
		}
		if format == "pem_bundle" {
			data["certificate"] = data["private_key"].(string) + "\n" + data["certificate"].(string)
		}
	}
	return &engines.Response{Data: data, Warnings: warnings, Events: events}, nil
}

func roleSubject(r pkiview.Role) pkix.Name {
	return pkix.Name{OrganizationalUnit: r.OU, Organization: r.Organization, Country: r.Country,
		Locality: r.Locality, Province: r.Province, StreetAddress: r.StreetAddress, PostalCode: r.PostalCode}
}

// sign gives the template a fresh serial and the mount's AIA URLs and signs it.
func (b *Backend) sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, string, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, "", err
	}
	tmpl.SerialNumber = serial
	b.applyURLs(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, "", engines.BadRequest("unable to sign the certificate: %s", err)
	}
	return der, serialString(serial), nil
}

// certResponse is the answer of issue, sign and sign-verbatim.
func (b *Backend) certResponse(der []byte, serial string, notAfter time.Time, is pkiview.Issuer, format string, removeRoots bool) map[string]any {
	chain := []string{}
	for _, c := range chainPEMs(is) {
		if removeRoots {
			if pc, err := parseCertPEM(c); err == nil && string(pc.RawIssuer) == string(pc.RawSubject) {
				continue
			}
		}
		chain = append(chain, c)
	}
	cert := formatCert(der, format)
	issuing := is.Certificate
	if format == "der" {
		if pc, err := parseCertPEM(is.Certificate); err == nil {
			issuing = b64(pc.Raw)
		}
	}
	if format == "pem_bundle" {
		cert = strings.Join(append([]string{cert}, chain...), "\n")
	}
	return map[string]any{"certificate": cert, "issuing_ca": issuing, "ca_chain": chain,
		"serial_number": serial, "expiration": unix(notAfter)}
}

// signVerbatim serves sign-verbatim[/:role] and issuer/:ref/sign-verbatim: the CSR's subject
// and SANs as they are, with the role (if any) bounding the TTL.
func (b *Backend) signVerbatim(req *engines.Request, roleName, issuerRef string) (*engines.Response, error) {
	r := defaultRole("")
	r.ServerFlag, r.ClientFlag = false, false
	if roleName != "" {
		var ok bool
		if r, ok = b.view.Role(b.mount.UUID, roleName); !ok {
			return nil, engines.BadRequest("unknown role: %s", roleName)
		}
		issuerRef = r.IssuerRef
	}
	if issuerRef == "" {
		var err error
		if issuerRef, err = engines.String(req.Data, "issuer_ref", "default"); err != nil {
			return nil, err
		}
	}
	is, err := b.resolveIssuer(issuerRef)
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
	if typ, bits := describeKey(csr.PublicKey); typ == "rsa" && bits < 2048 {
		return nil, engines.BadRequest("RSA keys < 2048 bits are unsafe and not supported: got %d bits", bits)
	}
	if engines.Has(req.Data, "key_usage") {
		if r.KeyUsage, err = engines.Strings(req.Data, "key_usage"); err != nil {
			return nil, err
		}
	}
	if engines.Has(req.Data, "ext_key_usage") {
		if r.ExtKeyUsage, err = engines.Strings(req.Data, "ext_key_usage"); err != nil {
			return nil, err
		}
	}
	for _, u := range r.KeyUsage {
		if _, ok := keyUsages[strings.ToLower(u)]; !ok {
			return nil, engines.BadRequest("unknown key_usage %q", u)
		}
	}
	for _, u := range r.ExtKeyUsage {
		if _, ok := extKeyUsages[strings.ToLower(u)]; !ok {
			return nil, engines.BadRequest("unknown ext_key_usage %q", u)
		}
	}
	format, err := readFormat(req.Data)
	if err != nil {
		return nil, err
	}
	def, max := b.ttlBounds(r)
	notBefore, notAfter, warnings, err := validity(req.Data, req.Now, def, max, r.NotBeforeDuration)
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
	ku, eku, oids := usages(r, csr.PublicKey)
	tmpl := &x509.Certificate{Subject: csr.Subject, NotBefore: notBefore, NotAfter: notAfter, KeyUsage: ku,
		ExtKeyUsage: eku, UnknownExtKeyUsage: oids, DNSNames: csr.DNSNames, EmailAddresses: csr.EmailAddresses,
		IPAddresses: csr.IPAddresses, URIs: csr.URIs, BasicConstraintsValid: true}
	der, serial, err := b.sign(tmpl, parent, csr.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	var events []ledger.Event
	if !r.NoStore {
		ev, err := b.certEvent(req, der, "", is.ID, notAfter)
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	return &engines.Response{Data: b.certResponse(der, serial, notAfter, is, format, false), Warnings: warnings, Events: events}, nil
}
