package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/ocsp"
)

// challengeServer serves http-01 key authorizations on a loopback port.
type challengeServer struct {
	mu    sync.Mutex
	paths map[string]string
	port  int
}

func startChallengeServer(t *testing.T) *challengeServer {
	t.Helper()
	cs := &challengeServer{paths: map[string]string{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs.port = l.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		body, ok := cs.paths[r.URL.Path]
		cs.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return cs
}

func (cs *challengeServer) set(path, body string) {
	cs.mu.Lock()
	cs.paths[path] = body
	cs.mu.Unlock()
}

// TestPKIACME: golang.org/x/crypto/acme registers, orders a certificate for localhost, answers
// the http-01 challenge from a loopback server, finalizes and downloads a chain that verifies;
// then revokes it through ACME, and OCSP says revoked.
func TestPKIACME(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	h := setupPKI(t, c, map[string]any{"key_type": "ec"})
	cs := startChallengeServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := s.URL + "/v1/pki_int/acme/directory"

	// Disabled until configured, with a clear problem document.
	resp, err := http.Get(dir)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("directory before config/acme: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	_, err = c.Logical().Write("pki_int/config/acme", map[string]any{"enabled": true})
	respErr(t, err, 400, "ACME needs config/cluster path")
	pkiWrite(t, c, "pki_int/config/cluster", map[string]any{"path": s.URL + "/v1/pki_int"})
	pkiWrite(t, c, "pki_int/config/acme", map[string]any{"enabled": true, "http01_port": cs.port})

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &acme.Client{Key: key, DirectoryURL: dir}
	acct, err := cl.Register(ctx, &acme.Account{Contact: []string{"mailto:ops@example.com"}}, acme.AcceptTOS)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if acct.Status != acme.StatusValid || !strings.HasPrefix(acct.URI, s.URL+"/v1/pki_int/acme/account/") {
		t.Fatalf("account %+v", acct)
	}
	if _, err := cl.Register(ctx, &acme.Account{}, acme.AcceptTOS); !errors.Is(err, acme.ErrAccountAlreadyExists) {
		t.Fatalf("second register with the same key: %v", err)
	}

	order, err := cl.AuthorizeOrder(ctx, acme.DomainIDs("localhost"))
	if err != nil {
		t.Fatalf("new order: %v", err)
	}
	for _, u := range order.AuthzURLs {
		z, err := cl.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var chal *acme.Challenge
		for _, ch := range z.Challenges {
			if ch.Type == "http-01" {
				chal = ch
			}
		}
		if chal == nil {
			t.Fatalf("no http-01 challenge in %+v", z)
		}
		body, err := cl.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			t.Fatal(err)
		}
		cs.set(cl.HTTP01ChallengePath(chal.Token), body)
		if _, err := cl.Accept(ctx, chal); err != nil {
			t.Fatalf("accept: %v", err)
		}
		if _, err := cl.WaitAuthorization(ctx, z.URI); err != nil {
			t.Fatalf("authorization: %v", err)
		}
	}
	if order, err = cl.WaitOrder(ctx, order.URI); err != nil || order.Status != acme.StatusReady {
		t.Fatalf("order not ready: %v %+v", err, order)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"}}, leafKey)
	ders, _, err := cl.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		t.Fatalf("finalize: %v", err)
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(parsePEMCert(t, h.root))
	for _, d := range ders[1:] {
		ic, _ := x509.ParseCertificate(d)
		inters.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: roots, Intermediates: inters}); err != nil {
		t.Fatalf("ACME certificate does not verify: %v", err)
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&leafKey.PublicKey) {
		t.Fatal("certificate is not for the CSR's key")
	}

	// A CSR that asks for more than the order is refused.
	order2, err := cl.AuthorizeOrder(ctx, acme.DomainIDs("localhost"))
	if err != nil {
		t.Fatal(err)
	}
	badCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"localhost", "evil.example.com"}}, leafKey)
	if _, _, err := cl.CreateOrderCert(ctx, order2.FinalizeURL, badCSR, false); err == nil {
		t.Fatal("finalize of an order that is not ready (and with extra names) succeeded")
	}
	// A challenge answered wrongly makes the authorization invalid.
	z, err := cl.GetAuthorization(ctx, order2.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	cs.set(cl.HTTP01ChallengePath(z.Challenges[0].Token), "wrong")
	cl.Accept(ctx, z.Challenges[0])
	if _, err := cl.WaitAuthorization(ctx, z.URI); err == nil {
		t.Fatal("a wrong key authorization validated")
	}

	// Revocation through ACME by the ordering account; OCSP then says revoked.
	if err := cl.RevokeCert(ctx, nil, ders[0], acme.CRLReasonUnspecified); err != nil {
		t.Fatalf("revoke-cert: %v", err)
	}
	inter := parsePEMCert(t, h.inter)
	reqDER, _ := ocsp.CreateRequest(leaf, inter, nil)
	oresp, err := http.Post(s.URL+"/v1/pki_int/ocsp", "application/ocsp-request", strings.NewReader(string(reqDER)))
	if err != nil {
		t.Fatal(err)
	}
	defer oresp.Body.Close()
	b := make([]byte, 0, 4096)
	buf := make([]byte, 4096)
	for {
		n, err := oresp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	if r, err := ocsp.ParseResponseForCert(b, leaf, inter); err != nil || r.Status != ocsp.Revoked {
		t.Fatalf("OCSP after ACME revoke: %v %+v", err, r)
	}

	// A request with a replayed nonce or a forged key is refused with a problem document.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	intruder := &acme.Client{Key: other, DirectoryURL: dir}
	if _, err := intruder.GetReg(ctx, acct.URI); err == nil {
		t.Fatal("another key read the account")
	}
	verifyOK(t, c, "genesis")
}
