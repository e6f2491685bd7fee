package pki

import (
	"crypto/x509"
	"sort"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	pkiview "github.com/ledger-secrets/ledger/projections/pki"
)

var keyUsages = map[string]x509.KeyUsage{
	"digitalsignature": x509.KeyUsageDigitalSignature, "contentcommitment": x509.KeyUsageContentCommitment,
	"keyencipherment": x509.KeyUsageKeyEncipherment, "dataencipherment": x509.KeyUsageDataEncipherment,
	"keyagreement": x509.KeyUsageKeyAgreement, "certsign": x509.KeyUsageCertSign, "crlsign": x509.KeyUsageCRLSign,
	"encipheronly": x509.KeyUsageEncipherOnly, "decipheronly": x509.KeyUsageDecipherOnly,
}

var extKeyUsages = map[string]x509.ExtKeyUsage{
	"any": x509.ExtKeyUsageAny, "serverauth": x509.ExtKeyUsageServerAuth, "clientauth": x509.ExtKeyUsageClientAuth,
	"codesigning": x509.ExtKeyUsageCodeSigning, "emailprotection": x509.ExtKeyUsageEmailProtection,
	"ipsecendsystem": x509.ExtKeyUsageIPSECEndSystem, "ipsectunnel": x509.ExtKeyUsageIPSECTunnel,
	"ipsecuser": x509.ExtKeyUsageIPSECUser, "timestamping": x509.ExtKeyUsageTimeStamping,
	"ocspsigning": x509.ExtKeyUsageOCSPSigning, "microsoftservergatedcrypto": x509.ExtKeyUsageMicrosoftServerGatedCrypto,
	"netscapeservergatedcrypto": x509.ExtKeyUsageNetscapeServerGatedCrypto,
}

func defaultRole(name string) pkiview.Role {
	return pkiview.Role{Name: name, AllowLocalhost: true, AllowWildcardCertificates: true, EnforceHostnames: true,
		AllowIPSANs: true, ServerFlag: true, ClientFlag: true, KeyType: "rsa", KeyBits: 2048, SignatureBits: 256,
		KeyUsage: []string{"DigitalSignature", "KeyAgreement", "KeyEncipherment"}, UseCSRCommonName: true,
		UseCSRSANs: true, RequireCN: true, NotBeforeDuration: 30 * time.Second, IssuerRef: "default",
		CNValidations: []string{"email", "hostname"}, AllowedDomains: []string{}, AllowedURISANs: []string{},
		ExtKeyUsage: []string{}, ExtKeyUsageOIDs: []string{}}
}

func roleData(r pkiview.Role) map[string]any {
	l := func(s []string) []string { return nonNil(s) }
	return map[string]any{
		"ttl": int64(r.TTL / time.Second), "max_ttl": int64(r.MaxTTL / time.Second),
		"allow_localhost": r.AllowLocalhost, "allowed_domains": l(r.AllowedDomains), "allowed_domains_template": false,
		"allow_bare_domains": r.AllowBareDomains, "allow_subdomains": r.AllowSubdomains,
		"allow_glob_domains": r.AllowGlobDomains, "allow_wildcard_certificates": r.AllowWildcardCertificates,
		"allow_any_name": r.AllowAnyName, "enforce_hostnames": r.EnforceHostnames, "allow_ip_sans": r.AllowIPSANs,
		"allowed_uri_sans": l(r.AllowedURISANs), "allowed_uri_sans_template": false, "allowed_other_sans": []string{},
		"allowed_serial_numbers": []string{}, "server_flag": r.ServerFlag, "client_flag": r.ClientFlag,
		"code_signing_flag": r.CodeSigningFlag, "email_protection_flag": r.EmailProtectionFlag,
		"key_type": r.KeyType, "key_bits": r.KeyBits, "signature_bits": r.SignatureBits, "use_pss": false,
		"key_usage": l(r.KeyUsage), "ext_key_usage": l(r.ExtKeyUsage), "ext_key_usage_oids": l(r.ExtKeyUsageOIDs),
		"use_csr_common_name": r.UseCSRCommonName, "use_csr_sans": r.UseCSRSANs, "ou": l(r.OU),
		"organization": l(r.Organization), "country": l(r.Country), "locality": l(r.Locality),
		"province": l(r.Province), "street_address": l(r.StreetAddress), "postal_code": l(r.PostalCode),
		"generate_lease": r.GenerateLease, "no_store": r.NoStore, "require_cn": r.RequireCN,
		"policy_identifiers": []string{}, "basic_constraints_valid_for_non_ca": false,
		"not_before_duration": int64(r.NotBeforeDuration / time.Second), "not_after": "",
		"issuer_ref": r.IssuerRef, "cn_validations": l(r.CNValidations), "allow_token_displayname": false,
	}
}

func (b *Backend) listRoles() *engines.Response {
	st, _ := b.view.Mount(b.mount.UUID)
	names := make([]string, 0, len(st.Roles))
	for n := range st.Roles {
		names = append(names, n)
	}
	sort.Strings(names)
	return listResp(names)
}

var roleFields = []string{"ttl", "max_ttl", "allow_localhost", "allowed_domains", "allow_bare_domains",
	"allow_subdomains", "allow_glob_domains", "allow_wildcard_certificates", "allow_any_name", "enforce_hostnames",
	"allow_ip_sans", "allowed_uri_sans", "server_flag", "client_flag", "code_signing_flag", "email_protection_flag",
	"key_type", "key_bits", "signature_bits", "key_usage", "ext_key_usage", "ext_key_usage_oids",
	"use_csr_common_name", "use_csr_sans", "ou", "organization", "country", "locality", "province",
	"street_address", "postal_code", "generate_lease", "no_store", "require_cn", "not_before_duration",
	"issuer_ref", "cn_validations"}

func (b *Backend) roleOp(req *engines.Request, name string) (*engines.Response, error) {
	if !nameRE.MatchString(name) {
		return nil, engines.BadRequest("invalid role name %q", name)
	}
	cur, exists := b.view.Role(b.mount.UUID, name)
	switch req.Op {
	case engines.OpRead:
		if !exists {
			return nil, engines.ErrNotFound
		}
		return &engines.Response{Data: roleData(cur)}, nil
	case engines.OpDelete:
		if !exists {
			return nil, nil
		}
		ev, err := b.event(req, pkiview.RoleDeleted, "role/"+name, pkiview.DeletedPayload{Mount: b.mount.UUID, ID: name})
		if err != nil {
			return nil, err
		}
		return &engines.Response{Events: []ledger.Event{ev}}, nil
	case engines.OpCreate, engines.OpUpdate, engines.OpPatch:
		base := defaultRole(name)
		if req.Op == engines.OpPatch {
			if !exists {
				return nil, engines.ErrNotFound
			}
			base = cur
		}
		var warnings []string
		if unknown := engines.Unknown(req.Data, append(roleFields, "allowed_domains_template", "allowed_uri_sans_template",
			"allowed_other_sans", "allowed_serial_numbers", "use_pss", "policy_identifiers", "basic_constraints_valid_for_non_ca",
			"not_after", "allow_token_displayname")...); len(unknown) > 0 {
			warnings = append(warnings, "unknown fields ignored: "+strings.Join(unknown, ", "))
		}
		r, err := b.readRole(req.Data, base)
		if err != nil {
			return nil, err
		}
		if r.MaxTTL > 0 && r.TTL > r.MaxTTL {
			return nil, engines.BadRequest("\"ttl\" value must be less than \"max_ttl\" value")
		}
		if r.MaxTTL > b.mount.MaxLeaseTTL {
			warnings = append(warnings, "max_ttl is greater than the mount's max TTL; the mount's max TTL applies")
		}
		if r.IssuerRef != "default" {
			if _, err := b.resolveIssuer(r.IssuerRef); err != nil {
				return nil, err
			}
		}
		ev, err := b.event(req, pkiview.RoleWritten, "role/"+name, pkiview.RolePayload{Mount: b.mount.UUID, Role: r})
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: roleData(r), Warnings: warnings, Events: []ledger.Event{ev}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

func (b *Backend) readRole(d map[string]any, r pkiview.Role) (pkiview.Role, error) {
	var err error
	durs := []struct {
		k   string
		dst *time.Duration
	}{{"ttl", &r.TTL}, {"max_ttl", &r.MaxTTL}, {"not_before_duration", &r.NotBeforeDuration}}
	for _, f := range durs {
		if engines.Negative(d[f.k]) {
			return r, engines.BadRequest("%q cannot be negative", f.k)
		}
		if *f.dst, err = engines.Duration(d, f.k, *f.dst); err != nil {
			return r, err
		}
	}
	bools := []struct {
		k   string
		dst *bool
	}{{"allow_localhost", &r.AllowLocalhost}, {"allow_bare_domains", &r.AllowBareDomains},
		{"allow_subdomains", &r.AllowSubdomains}, {"allow_glob_domains", &r.AllowGlobDomains},
		{"allow_wildcard_certificates", &r.AllowWildcardCertificates}, {"allow_any_name", &r.AllowAnyName},
		{"enforce_hostnames", &r.EnforceHostnames}, {"allow_ip_sans", &r.AllowIPSANs}, {"server_flag", &r.ServerFlag},
		{"client_flag", &r.ClientFlag}, {"code_signing_flag", &r.CodeSigningFlag},
		{"email_protection_flag", &r.EmailProtectionFlag}, {"use_csr_common_name", &r.UseCSRCommonName},
		{"use_csr_sans", &r.UseCSRSANs}, {"generate_lease", &r.GenerateLease}, {"no_store", &r.NoStore},
		{"require_cn", &r.RequireCN}}
	for _, f := range bools {
		if *f.dst, err = engines.Bool(d, f.k, *f.dst); err != nil {
			return r, err
		}
	}
	lists := []struct {
		k   string
		dst *[]string
	}{{"allowed_domains", &r.AllowedDomains}, {"allowed_uri_sans", &r.AllowedURISANs}, {"key_usage", &r.KeyUsage},
		{"ext_key_usage", &r.ExtKeyUsage}, {"ext_key_usage_oids", &r.ExtKeyUsageOIDs}, {"ou", &r.OU},
		{"organization", &r.Organization}, {"country", &r.Country}, {"locality", &r.Locality},
		{"province", &r.Province}, {"street_address", &r.StreetAddress}, {"postal_code", &r.PostalCode},
		{"cn_validations", &r.CNValidations}}
	for _, f := range lists {
		if !engines.Has(d, f.k) {
			continue
		}
		v, err := engines.Strings(d, f.k)
		if err != nil {
			return r, err
		}
		if v == nil {
			v = []string{}
		}
		*f.dst = v
	}
	if r.KeyType, err = engines.String(d, "key_type", r.KeyType); err != nil {
		return r, err
	}
	bits := r.KeyBits
	if engines.Has(d, "key_type") && !engines.Has(d, "key_bits") {
		bits = 0
	}
	if bits, err = engines.Int(d, "key_bits", bits); err != nil {
		return r, err
	}
	spec, err := checkKeySpec(r.KeyType, bits, true)
	if err != nil {
		return r, err
	}
	r.KeyBits = spec.bits
	if r.SignatureBits, err = engines.Int(d, "signature_bits", r.SignatureBits); err != nil {
		return r, err
	}
	switch r.SignatureBits {
	case 0:
		r.SignatureBits = 256
	case 256, 384, 512:
	default:
		return r, engines.BadRequest("unsupported signature_bits %d: use 256, 384 or 512", r.SignatureBits)
	}
	for _, u := range r.KeyUsage {
		if _, ok := keyUsages[strings.ToLower(u)]; !ok {
			return r, engines.BadRequest("unknown key_usage %q", u)
		}
	}
	for _, u := range r.ExtKeyUsage {
		if _, ok := extKeyUsages[strings.ToLower(u)]; !ok {
			return r, engines.BadRequest("unknown ext_key_usage %q", u)
		}
	}
	for _, o := range r.ExtKeyUsageOIDs {
		if _, err := parseOID(o); err != nil {
			return r, engines.BadRequest("ext_key_usage_oids: %q is not an OID", o)
		}
	}
	for _, v := range r.CNValidations {
		switch v {
		case "email", "hostname", "disabled":
		default:
			return r, engines.BadRequest("unknown cn_validations value %q: use email, hostname or disabled", v)
		}
	}
	if r.IssuerRef, err = engines.String(d, "issuer_ref", r.IssuerRef); err != nil {
		return r, err
	}
	if r.IssuerRef == "" {
		r.IssuerRef = "default"
	}
	if r.GenerateLease {
		return r, engines.BadRequest("generate_lease is not supported yet by this server; revoke certificates with revoke")
	}
	return r, nil
}
