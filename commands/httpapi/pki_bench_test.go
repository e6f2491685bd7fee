package httpapi_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"golang.org/x/crypto/ocsp"
)

// BenchmarkPKIHTTP measures pki/issue over loopback HTTP per key type at 1 and 16 clients,
// beside raw Go (key generation + x509.CreateCertificate under the same P-384 CA key) in the
// same run, and OCSP answers/s (POST). Run with -benchtime 1x.
func BenchmarkPKIHTTP(b *testing.B) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"}, NotBefore: time.Now(),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	gen := map[string]func() crypto.Signer{
		"rsa-2048": func() crypto.Signer { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k },
		"rsa-4096": func() crypto.Signer { k, _ := rsa.GenerateKey(rand.Reader, 4096); return k },
		"ec-256":   func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k },
		"ec-384":   func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader); return k },
		"ed25519":  func() crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k },
	}
	types := []struct {
		name, typ string
		bits      int
	}{{"rsa-2048", "rsa", 2048}, {"rsa-4096", "rsa", 4096}, {"ec-256", "ec", 256}, {"ec-384", "ec", 384}, {"ed25519", "ed25519", 0}}

	s := startServer(b)
	c := s.Client(b, s.RootToken)
	if err := c.Sys().Mount("pki", &vault.MountInput{Type: "pki", Config: vault.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Logical().Write("pki/root/generate/internal", map[string]any{"common_name": "bench", "key_type": "ec", "key_bits": 384, "ttl": "8760h"}); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	for _, kt := range types {
		if _, err := c.Logical().Write("pki/roles/"+kt.name, map[string]any{"allow_any_name": true, "key_type": kt.typ, "key_bits": kt.bits, "ttl": "1h"}); err != nil {
			b.Fatal(err)
		}
		var rawRate float64
		for _, conc := range []int{1, 16} {
			b.Run(fmt.Sprintf("raw-go/%s/c=%d", kt.name, conc), func(b *testing.B) {
				r := hammer(b, conc, func(w, i int) error {
					k := gen[kt.name]()
					tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(w<<32 | i + 2)), Subject: pkix.Name{CommonName: "svc.internal"},
						DNSNames: []string{"svc.internal"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
					_, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
					return err
				})
				if conc == 1 {
					rawRate = r.rate
				}
				report(b, r, "certs/s")
			})
			body := []byte(`{"common_name":"svc.internal"}`)
			b.Run(fmt.Sprintf("issue/%s/c=%d", kt.name, conc), func(b *testing.B) {
				r := hammer(b, conc, func(int, int) error { return do(client, "POST", s.URL+"/v1/pki/issue/"+kt.name, s.RootToken, body) })
				report(b, r, "certs/s")
				if rawRate > 0 {
					b.ReportMetric(r.rate/rawRate, "x-raw-go-c1")
				}
			})
		}
	}

	// OCSP: one stored certificate, asked about again and again.
	r, err := c.Logical().Write("pki/issue/ec-256", map[string]any{"common_name": "ocsp.internal"})
	if err != nil {
		b.Fatal(err)
	}
	leaf := parsePEMCertB(b, r.Data["certificate"].(string))
	root, _ := c.Logical().Read("pki/cert/ca")
	issuer := parsePEMCertB(b, root.Data["certificate"].(string))
	reqDER, _ := ocsp.CreateRequest(leaf, issuer, nil)
	for _, conc := range []int{1, 16} {
		b.Run(fmt.Sprintf("ocsp/c=%d", conc), func(b *testing.B) {
			report(b, hammer(b, conc, func(int, int) error {
				req, _ := http.NewRequest("POST", s.URL+"/v1/pki/ocsp", bytes.NewReader(reqDER))
				req.Header.Set("Content-Type", "application/ocsp-request")
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				var buf [4096]byte
				for {
					if _, err := resp.Body.Read(buf[:]); err != nil {
						break
					}
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return fmt.Errorf("ocsp: %d", resp.StatusCode)
				}
				return nil
			}), "answers/s")
		})
	}
}

func parsePEMCertB(b *testing.B, s string) *x509.Certificate {
	b.Helper()
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		b.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	return c
}
