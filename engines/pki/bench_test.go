package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	pkiview "github.com/ledger-secrets/ledger/projections/pki"
)

func apply(b testing.TB, v *pkiview.View, typ string, p any) {
	raw, _ := json.Marshal(p)
	if err := v.Apply(ledger.Record{Event: ledger.Event{Type: typ, Payload: raw, Time: time.Now()}}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCRLBuild signs the CRL of an issuer with 100 000 revoked certificates (P-256 CA),
// the case a large fleet with short-lived certificates and no tidy would reach.
func BenchmarkCRLBuild(b *testing.B) {
	const revoked = 100000
	v := pkiview.New()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "crl bench"}, NotBefore: time.Now(),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	apply(b, v, pkiview.KeyCreated, pkiview.KeyPayload{Mount: "m", Key: pkiview.Key{ID: "k", Type: "ec", Bits: 256, Material: kder}})
	is := pkiview.Issuer{ID: "i", KeyID: "k", Certificate: certPEM(der), Serial: "01", NotAfter: tmpl.NotAfter, Created: time.Now()}
	apply(b, v, pkiview.IssuerCreated, pkiview.IssuerPayload{Mount: "m", Issuer: is})
	for i := range revoked {
		s := serialString(big.NewInt(int64(i + 1000)))
		apply(b, v, pkiview.CertStored, pkiview.CertPayload{Mount: "m", Cert: pkiview.Cert{Serial: s, Certificate: "x", IssuerID: "i", NotAfter: time.Now().Add(time.Hour)}})
		apply(b, v, pkiview.CertRevoked, pkiview.RevokedPayload{Mount: "m", Serial: s, Time: time.Now()})
	}
	be := New(v, engines.Mount{UUID: "m"})
	b.ResetTimer()
	var size int
	start := time.Now()
	for range b.N {
		crl, err := be.BuildCRL(is, v.CRL("m", "i"))
		if err != nil {
			b.Fatal(err)
		}
		size = len(crl)
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/build")
	b.ReportMetric(float64(size)/1e6, "MB")
	parsed, err := x509.ParseRevocationList(func() []byte { c, _ := be.BuildCRL(is, v.CRL("m", "i")); return c }())
	if err != nil || len(parsed.RevokedCertificateEntries) != revoked {
		b.Fatalf("CRL has %d entries (%v)", len(parsed.RevokedCertificateEntries), err)
	}
}

func recordOf(ev ledger.Event) ledger.Record { return ledger.Record{Event: ev} }
