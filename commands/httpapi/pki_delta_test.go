package httpapi_test

import (
	"crypto/x509"
	"encoding/asn1"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
)

// TestPKIDeltaCRL: with enable_delta, a revocation appears in the delta CRL (numbered above the
// complete CRL, with a critical delta CRL indicator naming it) and `openssl verify -use_deltas`
// refuses the certificate; crl/rotate folds it into the complete CRL.
func TestPKIDeltaCRL(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	h := setupPKI(t, c, map[string]any{"key_type": "ec"})
	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get(s.URL + "/v1/" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	_, err := c.Logical().Read("pki_int/crl/delta")
	if resp := raw(t, s.URL, http.MethodGet, "pki_int/crl/delta", nil, nil); resp.Status != 400 || !strings.Contains(string(resp.Body), "enable_delta") {
		t.Fatalf("delta CRL while disabled: %d %s (%v)", resp.Status, resp.Body, err)
	}
	pkiWrite(t, c, "pki_int/config/urls", map[string]any{"crl_distribution_points": s.URL + "/v1/pki_int/crl"})
	pkiWrite(t, c, "pki_int/config/crl", map[string]any{"enable_delta": true})
	bad := pkiWrite(t, c, "pki_int/issue/web", map[string]any{"common_name": "bad.example.com"})
	pkiWrite(t, c, "pki_int/revoke", map[string]any{"serial_number": str(t, bad, "serial_number")})
	badCert := parsePEMCert(t, str(t, bad, "certificate"))

	full, err := x509.ParseRevocationList(get("pki_int/crl"))
	if err != nil {
		t.Fatal(err)
	}
	delta, err := x509.ParseRevocationList(get("pki_int/crl/delta"))
	if err != nil {
		t.Fatal(err)
	}
	inter := parsePEMCert(t, h.inter)
	if err := delta.CheckSignatureFrom(inter); err != nil {
		t.Fatal(err)
	}
	if len(full.RevokedCertificateEntries) != 0 || len(delta.RevokedCertificateEntries) != 1 ||
		delta.RevokedCertificateEntries[0].SerialNumber.Cmp(badCert.SerialNumber) != 0 {
		t.Fatalf("complete CRL has %d entries, delta %d", len(full.RevokedCertificateEntries), len(delta.RevokedCertificateEntries))
	}
	var base *big.Int
	for _, e := range delta.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 27}) && e.Critical {
			asn1.Unmarshal(e.Value, &base)
		}
	}
	if base == nil || base.Cmp(full.Number) != 0 || delta.Number.Cmp(full.Number) <= 0 {
		t.Fatalf("delta CRL %v indicates base %v; complete CRL is %v", delta.Number, base, full.Number)
	}

	dir := t.TempDir()
	rootFile := writeFile(t, dir, "root.pem", h.root+"\n")
	interFile := writeFile(t, dir, "inter.pem", h.inter+"\n")
	badFile := writeFile(t, dir, "bad.pem", str(t, bad, "certificate")+"\n")
	fullFile := writeFile(t, dir, "full.pem", string(get("pki_int/crl/pem")))
	deltaFile := writeFile(t, dir, "delta.pem", string(get("pki_int/crl/delta/pem")))
	if out, err := runOpenSSL(t, "verify", "-crl_check", "-CRLfile", fullFile, "-CAfile", rootFile, "-untrusted", interFile, badFile); err != nil {
		t.Fatalf("the complete CRL alone should not list the certificate yet: %v %s", err, out)
	}
	if out, err := runOpenSSL(t, "verify", "-crl_check", "-use_deltas", "-CRLfile", fullFile, "-CRLfile", deltaFile, "-CAfile", rootFile, "-untrusted", interFile, badFile); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("openssl verify -use_deltas accepted a certificate revoked in the delta CRL: %v %s", err, out)
	}

	pkiWrite(t, c, "pki_int/crl/rotate", nil)
	full2, _ := x509.ParseRevocationList(get("pki_int/crl"))
	delta2, _ := x509.ParseRevocationList(get("pki_int/crl/delta"))
	if len(full2.RevokedCertificateEntries) != 1 || len(delta2.RevokedCertificateEntries) != 0 || full2.Number.Cmp(delta.Number) <= 0 {
		t.Fatalf("after rotate: complete %d entries (#%v), delta %d", len(full2.RevokedCertificateEntries), full2.Number, len(delta2.RevokedCertificateEntries))
	}
	// Turning deltas off folds anything only in a delta into the complete CRL.
	other := pkiWrite(t, c, "pki_int/issue/web", map[string]any{"common_name": "other.example.com"})
	pkiWrite(t, c, "pki_int/revoke", map[string]any{"serial_number": str(t, other, "serial_number")})
	pkiWrite(t, c, "pki_int/config/crl", map[string]any{"enable_delta": false})
	full3, _ := x509.ParseRevocationList(get("pki_int/crl"))
	if len(full3.RevokedCertificateEntries) != 2 {
		t.Fatalf("after disabling deltas the complete CRL has %d entries, want 2", len(full3.RevokedCertificateEntries))
	}
	verifyOK(t, c, "genesis")
}
