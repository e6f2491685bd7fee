package pki

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
)

// names is what a request asks to be in a certificate's subject and SANs.
type names struct {
	cn     string
	dns    []string
	emails []string
	ips    []net.IP
	uris   []*url.URL
}

// requestNames reads common_name, alt_names, ip_sans, uri_sans and exclude_cn_from_sans.
func requestNames(data map[string]any) (names, bool, error) {
	var n names
	var err error
	if n.cn, err = engines.String(data, "common_name", ""); err != nil {
		return n, false, err
	}
	n.cn = strings.TrimSpace(n.cn)
	alt, err := engines.Strings(data, "alt_names")
	if err != nil {
		return n, false, err
	}
	for _, a := range alt {
		if strings.Contains(a, "@") {
			n.emails = append(n.emails, a)
		} else {
			n.dns = append(n.dns, a)
		}
	}
	ips, err := engines.Strings(data, "ip_sans")
	if err != nil {
		return n, false, err
	}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return n, false, engines.BadRequest("the value %q is not a valid IP address", s)
		}
		n.ips = append(n.ips, ip)
	}
	uris, err := engines.Strings(data, "uri_sans")
	if err != nil {
		return n, false, err
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" {
			return n, false, engines.BadRequest("the value %q is not a valid URI", s)
		}
		n.uris = append(n.uris, u)
	}
	excl, err := engines.Bool(data, "exclude_cn_from_sans", false)
	if err != nil {
		return n, false, err
	}
	return n, excl, nil
}

// withCN adds the common name to the SANs, as Vault does unless exclude_cn_from_sans: an
// email-like CN to the emails, an IP to the IP SANs, anything else to the DNS names.
func (n names) withCN(exclude bool) names {
	if exclude || n.cn == "" {
		return n
	}
	switch {
	case strings.Contains(n.cn, "@"):
		if !containsFold(n.emails, n.cn) {
			n.emails = append([]string{n.cn}, n.emails...)
		}
	case net.ParseIP(n.cn) != nil:
		ip := net.ParseIP(n.cn)
		for _, have := range n.ips {
			if have.Equal(ip) {
				return n
			}
		}
		n.ips = append([]net.IP{ip}, n.ips...)
	default:
		if !containsFold(n.dns, n.cn) {
			n.dns = append([]string{n.cn}, n.dns...)
		}
	}
	return n
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

// subjectFields reads the subject's optional attributes (ou, organization, …) from data,
// falling back to the role's values.
func subjectFields(data map[string]any, cn string, def pkix.Name) (pkix.Name, error) {
	name := pkix.Name{CommonName: cn}
	fields := []struct {
		key string
		dst *[]string
		def []string
	}{
		{"ou", &name.OrganizationalUnit, def.OrganizationalUnit},
		{"organization", &name.Organization, def.Organization},
		{"country", &name.Country, def.Country},
		{"locality", &name.Locality, def.Locality},
		{"province", &name.Province, def.Province},
		{"street_address", &name.StreetAddress, def.StreetAddress},
		{"postal_code", &name.PostalCode, def.PostalCode},
	}
	for _, f := range fields {
		v, err := engines.Strings(data, f.key)
		if err != nil {
			return name, err
		}
		if v == nil {
			v = f.def
		}
		*f.dst = v
	}
	sn, err := engines.String(data, "serial_number", "")
	if err != nil {
		return name, err
	}
	name.SerialNumber = sn
	return name, nil
}

// validity computes notBefore and notAfter from ttl or not_after, capped at max (with a
// warning, as Vault does). def is the TTL when the request names none.
func validity(data map[string]any, now time.Time, def, max, notBeforeDur time.Duration) (time.Time, time.Time, []string, error) {
	var warnings []string
	ttl, err := engines.Duration(data, "ttl", 0)
	if err != nil {
		return time.Time{}, time.Time{}, nil, err
	}
	na, err := engines.String(data, "not_after", "")
	if err != nil {
		return time.Time{}, time.Time{}, nil, err
	}
	if na != "" && ttl != 0 {
		return time.Time{}, time.Time{}, nil, engines.BadRequest("either ttl or not_after should be provided, not both")
	}
	notBefore := now.Add(-notBeforeDur)
	if na != "" {
		t, err := time.Parse(time.RFC3339, na)
		if err != nil {
			return time.Time{}, time.Time{}, nil, engines.BadRequest("not_after: expected a UTC time in the form YYYY-MM-ddTHH:MM:SSZ")
		}
		if !t.After(now) {
			return time.Time{}, time.Time{}, nil, engines.BadRequest("not_after is in the past")
		}
		return notBefore, t.UTC(), nil, nil
	}
	if ttl == 0 {
		ttl = def
	}
	if max > 0 && ttl > max {
		warnings = append(warnings, "TTL \""+ttl.String()+"\" is longer than permitted maxTTL \""+max.String()+"\", so maxTTL is being used")
		ttl = max
	}
	return notBefore, now.Add(ttl).UTC().Truncate(time.Second), warnings, nil
}

func emptyName() pkix.Name { return pkix.Name{} }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// basicConstraintsExt is a CA:TRUE basic constraints extension for a CSR.
func basicConstraintsExt(maxPath int) (pkix.Extension, error) {
	type bc struct {
		IsCA       bool `asn1:"optional"`
		MaxPathLen int  `asn1:"optional,default:-1"`
	}
	v, err := asn1.Marshal(bc{IsCA: true, MaxPathLen: maxPath})
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: v}, nil
}
