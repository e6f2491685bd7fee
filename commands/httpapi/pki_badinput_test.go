package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

func csrPEM(t *testing.T, key any, cn string, dns []string, ips []net.IP) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns, IPAddresses: ips}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// TestPKIBadInput: every bad input of the issue is a clear 4xx and nothing is issued.
func TestPKIBadInput(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	setupPKI(t, c, map[string]any{"key_type": "ec"})
	pkiWrite(t, c, "pki_int/roles/strict", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true,
		"allow_wildcard_certificates": false, "allow_ip_sans": false, "allow_localhost": false, "max_ttl": "1h", "key_type": "ec"})
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	count := func() int {
		l, err := c.Logical().List("pki_int/certs")
		if err != nil || l == nil {
			return 0
		}
		return len(l.Data["keys"].([]any))
	}
	before := count()

	for _, tc := range []struct {
		name, path string
		data       map[string]any
		status     int
		want       string
	}{
		{"CSR with a name the role does not allow", "pki_int/sign/strict",
			map[string]any{"csr": csrPEM(t, ecKey, "api.example.com", []string{"evil.attacker.net"}, nil)}, 400, "subject alternate name evil.attacker.net not allowed by this role"},
		{"CN outside the allowed domains", "pki_int/issue/strict", map[string]any{"common_name": "www.other.org"}, 400, "common name www.other.org not allowed by this role"},
		{"bare domain without allow_bare_domains", "pki_int/issue/strict", map[string]any{"common_name": "example.com"}, 400, "common name example.com not allowed by this role"},
		{"wildcard CN not allowed", "pki_int/issue/strict", map[string]any{"common_name": "*.example.com"}, 400, "common name *.example.com not allowed by this role"},
		{"wildcard SAN not allowed", "pki_int/issue/strict", map[string]any{"common_name": "a.example.com", "alt_names": "*.example.com"}, 400, "subject alternate name *.example.com not allowed"},
		{"IP SAN not allowed", "pki_int/issue/strict", map[string]any{"common_name": "a.example.com", "ip_sans": "10.0.0.1"}, 400, "IP Subject Alternative Names are not allowed in this role, but was provided 10.0.0.1"},
		{"IP SAN in a CSR not allowed", "pki_int/sign/strict",
			map[string]any{"csr": csrPEM(t, ecKey, "a.example.com", nil, []net.IP{net.ParseIP("192.168.1.1")})}, 400, "IP Subject Alternative Names are not allowed"},
		{"malformed IP SAN", "pki_int/issue/web", map[string]any{"common_name": "a.example.com", "ip_sans": "300.1.1.1"}, 400, "not a valid IP address"},
		{"localhost when not allowed", "pki_int/issue/strict", map[string]any{"common_name": "localhost"}, 400, "common name localhost not allowed"},
		{"issuer reference that does not exist", "pki_int/issuer/nope/issue/web", map[string]any{"common_name": "a.example.com"}, 400, "unable to find PKI issuer for reference: nope"},
		{"role with an issuer that does not exist", "pki_int/roles/broken", map[string]any{"issuer_ref": "nope", "allow_any_name": true}, 400, "unable to find PKI issuer for reference: nope"},
		{"sign-intermediate with an unknown issuer", "pki/issuer/nope/sign-intermediate", map[string]any{"csr": csrPEM(t, ecKey, "x", nil, nil), "common_name": "x"}, 400, "unable to find PKI issuer"},
		{"malformed CSR PEM", "pki_int/sign/web", map[string]any{"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}, 400, "certificate request could not be parsed"},
		{"CSR that is not PEM or base64", "pki_int/sign/web", map[string]any{"csr": "not a csr!"}, 400, "csr: not PEM and not base64 DER"},
		{"CSR of the wrong PEM type", "pki_int/sign/web", map[string]any{"csr": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, 400, "expected a CERTIFICATE REQUEST PEM block"},
		{"missing CSR", "pki_int/sign/web", map[string]any{"common_name": "a.example.com"}, 400, "the csr field is required"},
		{"CSR key of the wrong curve", "pki_int/sign/web", map[string]any{"csr": csrPEM(t, p384, "a.example.com", nil, nil)}, 400, "role requires a P-256 key, but CSR's key is P-384"},
		{"CSR key of the wrong type", "pki_int/sign/web", map[string]any{"csr": csrPEM(t, smallRSA, "a.example.com", nil, nil)}, 400, "role requires keys of type ec"},
		{"sign-verbatim with a weak RSA key", "pki_int/sign-verbatim", map[string]any{"csr": csrPEM(t, smallRSA, "a.example.com", nil, nil)}, 400, "RSA keys < 2048 bits are unsafe"},
		{"malformed PEM bundle", "pki_int/config/ca", map[string]any{"pem_bundle": "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END RSA PRIVATE KEY-----\n"}, 400, "error parsing rsa private key"},
		{"PEM bundle with no PEM at all", "pki_int/config/ca", map[string]any{"pem_bundle": "hello"}, 400, "not a valid PEM bundle"},
		{"set-signed with a certificate for no key of the mount", "pki/intermediate/set-signed", map[string]any{"certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}, 400, "unable to parse certificate 1 of the bundle"},
		{"revoke of an unknown serial", "pki_int/revoke", map[string]any{"serial_number": "01:02:03"}, 400, "certificate with serial 01:02:03 not found"},
		{"revoke of a malformed serial", "pki_int/revoke", map[string]any{"serial_number": "zz-top"}, 400, "invalid serial number"},
		{"revoke without a serial", "pki_int/revoke", map[string]any{}, 400, "exactly one of serial_number or certificate must be given"},
		{"unknown role", "pki_int/issue/nope", map[string]any{"common_name": "a.example.com"}, 400, "unknown role: nope"},
		{"missing common name", "pki_int/issue/web", map[string]any{}, 400, "the common_name field is required"},
		{"bad key type for a root", "pki/root/generate/internal", map[string]any{"common_name": "x", "key_type": "dsa"}, 400, "unknown key type: dsa"},
		{"bad RSA size", "pki/root/generate/internal", map[string]any{"common_name": "x", "key_type": "rsa", "key_bits": 1024}, 400, "unsupported bit length for RSA key: 1024"},
		{"bad generate type", "pki/root/generate/kms", map[string]any{"common_name": "x"}, 400, "unsupported type \"kms\": use internal or exported"},
		{"role ttl above max_ttl", "pki_int/roles/bad", map[string]any{"ttl": "2h", "max_ttl": "1h"}, 400, "\"ttl\" value must be less than \"max_ttl\" value"},
		{"role key_usage unknown", "pki_int/roles/bad", map[string]any{"key_usage": "Teleport"}, 400, "unknown key_usage \"Teleport\""},
		{"ttl and not_after together", "pki_int/issue/web", map[string]any{"common_name": "a.example.com", "ttl": "1h", "not_after": "2030-01-01T00:00:00Z"}, 400, "either ttl or not_after"},
		{"ttl that is not a duration", "pki_int/issue/web", map[string]any{"common_name": "a.example.com", "ttl": "soon"}, 400, "field \"ttl\""},
		{"leaf beyond the CA", "pki_int/issue/web", map[string]any{"common_name": "a.example.com", "not_after": "2090-01-01T00:00:00Z"}, 400, "beyond the expiration of the CA certificate"},
		{"bad URL in config/urls", "pki_int/config/urls", map[string]any{"ocsp_servers": "not a url"}, 400, "invalid URL in ocsp_servers"},
		{"default issuer that does not exist", "pki_int/config/issuers", map[string]any{"default": "nope"}, 400, "unable to find PKI issuer for reference: nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Logical().Write(tc.path, tc.data)
			if tc.want == "" {
				var re *vault.ResponseError
				if err == nil || !errors.As(err, &re) || re.StatusCode != tc.status {
					t.Fatalf("want %d, got %v", tc.status, err)
				}
				return
			}
			respErr(t, err, tc.status, tc.want)
			if strings.Contains(err.Error(), "c2VjcmV0") || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("error echoes the input: %v", err)
			}
		})
	}
	if after := count(); after != before {
		t.Fatalf("bad requests issued certificates: %d stored before, %d after", before, after)
	}

	// TTL above the role's max: capped at max_ttl, with Vault's warning.
	r := pkiWrite(t, c, "pki_int/issue/strict", map[string]any{"common_name": "a.example.com", "ttl": "30h"})
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "is longer than permitted maxTTL") {
		t.Fatalf("warnings %v", r.Warnings)
	}
	if na := parsePEMCert(t, str(t, r, "certificate")).NotAfter; na.After(time.Now().Add(time.Hour + time.Minute)) {
		t.Fatalf("notAfter %v not capped at max_ttl 1h", na)
	}

	// An unauthenticated client may read the CA and CRL, but not issue.
	anon := s.Client(t, "")
	if _, err := anon.Logical().Write("pki_int/issue/web", map[string]any{"common_name": "a.example.com"}); err == nil {
		t.Fatal("issued without a token")
	} else {
		respErr(t, err, http.StatusForbidden, "permission denied")
	}
	// issuer/:ref/pem is public; issuer/:ref itself (writable) is not.
	if _, err := anon.Logical().Write("pki_int/issuer/default", map[string]any{"issuer_name": "hijack"}); err == nil {
		t.Fatal("issuer renamed without a token")
	}
	// Unknown paths are 404, unsupported operations 405.
	if got := raw(t, s.URL, http.MethodGet, "pki_int/nonsense", nil, tokenHeader(s.RootToken)); got.Status != http.StatusNotFound {
		t.Fatalf("unknown path: %d", got.Status)
	}
	if _, err := c.Logical().Delete("pki_int/issue/web"); err == nil {
		t.Fatal("DELETE issue/web answered")
	} else {
		respErr(t, err, http.StatusMethodNotAllowed, "unsupported operation")
	}
}
