package httpapi_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"golang.org/x/crypto/ocsp"

	"github.com/ledger-secrets/ledger/engines/hosttools"
)

// pkiWrite writes through the official client and returns the data.
func pkiWrite(t *testing.T, c *vault.Client, path string, data map[string]any) *vault.Secret {
	t.Helper()
	s, err := c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if s == nil {
		t.Fatalf("write %s: no data", path)
	}
	return s
}

func str(t *testing.T, s *vault.Secret, k string) string {
	t.Helper()
	v, ok := s.Data[k].(string)
	if !ok || v == "" {
		t.Fatalf("field %s: want a non-empty string, got %#v", k, s.Data[k])
	}
	return v
}

func parsePEMCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		t.Fatalf("no PEM in %q", s)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pkiHierarchy is a root CA at pki/ and an intermediate at pki_int/ that it signed, with a role
// "web" on the intermediate.
type pkiHierarchy struct {
	root, inter string // PEM
	rootID      string
}

func setupPKI(t *testing.T, c *vault.Client, rootKey map[string]any) pkiHierarchy {
	t.Helper()
	for _, m := range []string{"pki", "pki_int"} {
		if err := c.Sys().Mount(m, &vault.MountInput{Type: "pki", Config: vault.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
			t.Fatal(err)
		}
	}
	req := map[string]any{"common_name": "Ledger Test Root", "ttl": "87600h", "issuer_name": "root-2026"}
	for k, v := range rootKey {
		req[k] = v
	}
	r := pkiWrite(t, c, "pki/root/generate/internal", req)
	if _, ok := r.Data["private_key"]; ok {
		t.Fatal("root/generate/internal returned a private key")
	}
	exp, err := r.Data["expiration"].(json.Number).Int64()
	if err != nil || exp < time.Now().Add(87000*time.Hour).Unix() {
		t.Fatalf("root expiration %v: want a unix time ~10y ahead (%v)", r.Data["expiration"], err)
	}
	h := pkiHierarchy{root: str(t, r, "certificate"), rootID: str(t, r, "issuer_id")}
	csr := pkiWrite(t, c, "pki_int/intermediate/generate/internal", map[string]any{"common_name": "Ledger Test Intermediate", "key_type": "ec", "key_bits": 384})
	signed := pkiWrite(t, c, "pki/root/sign-intermediate", map[string]any{"csr": str(t, csr, "csr"), "common_name": "Ledger Test Intermediate", "ttl": "43800h"})
	h.inter = str(t, signed, "certificate")
	set := pkiWrite(t, c, "pki_int/intermediate/set-signed", map[string]any{"certificate": h.inter + "\n" + h.root})
	if imp, _ := set.Data["imported_issuers"].([]any); len(imp) != 2 {
		t.Fatalf("set-signed imported %v, want the intermediate and the root", set.Data["imported_issuers"])
	}
	pkiWrite(t, c, "pki_int/roles/web", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true,
		"allow_bare_domains": true, "max_ttl": "72h", "ttl": "1h", "key_type": "ec", "key_bits": 256})
	pkiWrite(t, c, "pki_int/config/urls", map[string]any{"ocsp_servers": "http://127.0.0.1:1/v1/pki_int/ocsp"})
	return h
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runOpenSSL(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := hosttools.Need(t, "openssl", "openssl")
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

// TestPKIRootIntermediateIssue: root + intermediate + role + issue gives a chain that Go's
// verifier and the real `openssl verify` accept, for every leaf key type.
func TestPKIRootIntermediateIssue(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	h := setupPKI(t, c, map[string]any{"key_type": "rsa", "key_bits": 2048})
	dir := t.TempDir()
	rootFile := writeFile(t, dir, "root.pem", h.root+"\n")
	interFile := writeFile(t, dir, "inter.pem", h.inter+"\n")

	for _, kt := range []struct {
		typ  string
		bits int
	}{{"rsa", 2048}, {"rsa", 3072}, {"ec", 256}, {"ec", 384}, {"ed25519", 0}} {
		t.Run(fmt.Sprintf("%s-%d", kt.typ, kt.bits), func(t *testing.T) {
			role := fmt.Sprintf("r-%s-%d", kt.typ, kt.bits)
			pkiWrite(t, c, "pki_int/roles/"+role, map[string]any{"allowed_domains": "example.com", "allow_subdomains": true,
				"key_type": kt.typ, "key_bits": kt.bits, "max_ttl": "24h"})
			before := time.Now()
			r := pkiWrite(t, c, "pki_int/issue/"+role, map[string]any{"common_name": "api.example.com", "alt_names": "www.example.com", "ttl": "2h"})
			leaf := parsePEMCert(t, str(t, r, "certificate"))
			if str(t, r, "private_key_type") != kt.typ {
				t.Fatalf("private_key_type %v", r.Data["private_key_type"])
			}
			exp, err := r.Data["expiration"].(json.Number).Int64()
			if err != nil || exp != leaf.NotAfter.Unix() || leaf.NotAfter.Before(before.Add(2*time.Hour-time.Minute)) {
				t.Fatalf("expiration %v, certificate notAfter %v", r.Data["expiration"], leaf.NotAfter)
			}
			if got := str(t, r, "serial_number"); !strings.Contains(got, ":") {
				t.Fatalf("serial_number %q is not colon-separated hex", got)
			}
			blk, _ := pem.Decode([]byte(str(t, r, "private_key")))
			if blk == nil {
				t.Fatal("private_key is not PEM")
			}
			var pub crypto.PublicKey
			switch kt.typ {
			case "rsa":
				k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
				if err != nil || k.N.BitLen() != kt.bits {
					t.Fatalf("rsa key: %v", err)
				}
				pub = &k.PublicKey
			case "ec":
				k, err := x509.ParseECPrivateKey(blk.Bytes)
				if err != nil || k.Curve.Params().BitSize != kt.bits {
					t.Fatalf("ec key: %v", err)
				}
				pub = &k.PublicKey
			case "ed25519":
				k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				pub = k.(ed25519.PrivateKey).Public()
			}
			if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
				t.Fatal("private key does not match the certificate")
			}
			chain, _ := r.Data["ca_chain"].([]any)
			if len(chain) != 2 || chain[0] != h.inter {
				t.Fatalf("ca_chain: want [intermediate, root], got %d entries", len(chain))
			}
			roots, inters := x509.NewCertPool(), x509.NewCertPool()
			roots.AddCert(parsePEMCert(t, h.root))
			inters.AddCert(parsePEMCert(t, h.inter))
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "www.example.com", Roots: roots, Intermediates: inters}); err != nil {
				t.Fatalf("Go chain verification: %v", err)
			}
			leafFile := writeFile(t, dir, role+".pem", str(t, r, "certificate")+"\n")
			if out, err := runOpenSSL(t, "verify", "-CAfile", rootFile, "-untrusted", interFile, leafFile); err != nil || !strings.Contains(out, ": OK") {
				t.Fatalf("openssl verify: %v: %s", err, out)
			}
			// The certificate is stored and served by serial.
			got, err := c.Logical().Read("pki_int/cert/" + str(t, r, "serial_number"))
			if err != nil || got == nil || got.Data["certificate"] != r.Data["certificate"] {
				t.Fatalf("cert/:serial: %v %v", err, got)
			}
		})
	}

	// CA endpoints, unauthenticated as in Vault.
	anon := s.Client(t, "")
	for path, want := range map[string]string{"pki_int/ca/pem": h.inter, "pki/ca/pem": h.root} {
		resp, err := http.Get(s.URL + "/v1/" + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != want {
			t.Fatalf("GET %s: %d %q", path, resp.StatusCode, b)
		}
	}
	resp, err := http.Get(s.URL + "/v1/pki_int/ca")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/pkix-cert" || !bytes.Equal(der, parsePEMCert(t, h.inter).Raw) {
		t.Fatalf("GET ca: content type %q, %d bytes", ct, len(der))
	}
	resp, err = http.Get(s.URL + "/v1/pki_int/ca_chain")
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(chainPEM), h.inter) || !strings.Contains(string(chainPEM), h.root) {
		t.Fatalf("ca_chain: %q", chainPEM)
	}
	if _, err := anon.Logical().Read("pki_int/roles/web"); err == nil {
		t.Fatal("roles readable without a token")
	}
	list, err := c.Logical().List("pki_int/certs")
	if err != nil || list == nil || len(list.Data["keys"].([]any)) < 5 {
		t.Fatalf("LIST certs: %v %v", err, list)
	}
	issuers, err := anon.Logical().List("pki_int/issuers")
	if err != nil || issuers == nil || len(issuers.Data["keys"].([]any)) != 2 {
		t.Fatalf("LIST issuers (unauthenticated): %v %v", err, issuers)
	}
	def, err := c.Logical().Read("pki_int/config/issuers")
	if err != nil || def.Data["default"] == "" {
		t.Fatalf("config/issuers: %v %v", err, def)
	}
	is, err := c.Logical().Read("pki_int/issuer/default")
	if err != nil || is.Data["certificate"] != h.inter || is.Data["key_id"] == "" {
		t.Fatalf("issuer/default: %v %v", err, is)
	}
	rootIs, err := c.Logical().Read("pki/issuer/root-2026")
	if err != nil || rootIs.Data["issuer_id"] != h.rootID {
		t.Fatalf("issuer by name: %v %v", err, rootIs)
	}
}

// TestPKIRootKeyTypes generates roots of every key type (RSA 4096 once: it is slow) and issues
// from each.
func TestPKIRootKeyTypes(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	for i, kt := range []map[string]any{
		{"key_type": "rsa", "key_bits": 4096}, {"key_type": "rsa", "key_bits": 3072}, {"key_type": "ec", "key_bits": 256},
		{"key_type": "ec", "key_bits": 384}, {"key_type": "ed25519"},
	} {
		m := fmt.Sprintf("pki%d", i)
		if err := c.Sys().Mount(m, &vault.MountInput{Type: "pki"}); err != nil {
			t.Fatal(err)
		}
		req := map[string]any{"common_name": "root " + m}
		for k, v := range kt {
			req[k] = v
		}
		r := pkiWrite(t, c, m+"/root/generate/exported", req)
		root := parsePEMCert(t, str(t, r, "certificate"))
		if str(t, r, "private_key_type") != kt["key_type"] {
			t.Fatalf("%v: private_key_type %v", kt, r.Data["private_key_type"])
		}
		switch pk := root.PublicKey.(type) {
		case *rsa.PublicKey:
			if pk.N.BitLen() != kt["key_bits"] {
				t.Fatalf("rsa root of %d bits", pk.N.BitLen())
			}
		case *ecdsa.PublicKey:
			if pk.Curve.Params().BitSize != kt["key_bits"] {
				t.Fatalf("ec root on %s", pk.Curve.Params().Name)
			}
		case ed25519.PublicKey:
		default:
			t.Fatalf("root key %T", pk)
		}
		pkiWrite(t, c, m+"/roles/any", map[string]any{"allow_any_name": true, "key_type": "ec"})
		leaf := pkiWrite(t, c, m+"/issue/any", map[string]any{"common_name": "svc.internal", "ttl": "1h"})
		roots := x509.NewCertPool()
		roots.AddCert(root)
		if _, err := parsePEMCert(t, str(t, leaf, "certificate")).Verify(x509.VerifyOptions{Roots: roots, DNSName: "svc.internal"}); err != nil {
			t.Fatalf("%v: %v", kt, err)
		}
	}
}

// TestPKIMutualTLS: a TLS server and client authenticate each other with issued certificates.
func TestPKIMutualTLS(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	h := setupPKI(t, c, map[string]any{"key_type": "ec"})
	pkiWrite(t, c, "pki_int/roles/svc", map[string]any{"allowed_domains": "localhost", "allow_bare_domains": true,
		"allow_localhost": true, "allow_ip_sans": true, "allowed_uri_sans": "spiffe://ledger/*", "key_type": "ec"})
	pkiWrite(t, c, "pki_int/roles/client", map[string]any{"allow_any_name": true, "server_flag": false, "client_flag": true, "key_type": "ed25519"})
	srv := pkiWrite(t, c, "pki_int/issue/svc", map[string]any{"common_name": "localhost", "ip_sans": "127.0.0.1", "uri_sans": "spiffe://ledger/server"})
	cli := pkiWrite(t, c, "pki_int/issue/client", map[string]any{"common_name": "billing-service"})
	pair := func(r *vault.Secret) tls.Certificate {
		chain := str(t, r, "certificate") + "\n" + str(t, r, "issuing_ca")
		kp, err := tls.X509KeyPair([]byte(chain), []byte(str(t, r, "private_key")))
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(h.root))

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair(srv)},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan string, 4)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			tc := conn.(*tls.Conn)
			if err := tc.Handshake(); err != nil {
				peers <- "handshake: " + err.Error()
			} else {
				peers <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
				tc.Write([]byte("hello"))
			}
			tc.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{pair(cli)}})
	if err != nil {
		t.Fatalf("mTLS dial: %v", err)
	}
	b, _ := io.ReadAll(conn)
	conn.Close()
	if got := <-peers; got != "billing-service" || string(b) != "hello" {
		t.Fatalf("server saw %q, client read %q", got, b)
	}
	// Without a client certificate the server refuses.
	conn, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err == nil {
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate got through")
	}
	if got := <-peers; !strings.HasPrefix(got, "handshake:") {
		t.Fatalf("server accepted a client without a certificate: %q", got)
	}
	// A certificate from another CA is refused by the client verifying the server.
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "localhost"}); err == nil {
		t.Fatal("client trusted a server outside its roots")
	}
	<-peers
}

// TestPKIRevocation: a revoked certificate is in the CRL (Go and `openssl crl`/`verify
// -crl_check`) and OCSP says revoked (Go's ocsp package over GET and POST, and `openssl ocsp`).
func TestPKIRevocation(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	h := setupPKI(t, c, map[string]any{"key_type": "ec"})
	good := pkiWrite(t, c, "pki_int/issue/web", map[string]any{"common_name": "good.example.com"})
	bad := pkiWrite(t, c, "pki_int/issue/web", map[string]any{"common_name": "bad.example.com"})
	serial := str(t, bad, "serial_number")
	rv := pkiWrite(t, c, "pki_int/revoke", map[string]any{"serial_number": serial})
	if rt, err := rv.Data["revocation_time"].(json.Number).Int64(); err != nil || rt < time.Now().Add(-time.Minute).Unix() {
		t.Fatalf("revoke answer %v", rv.Data)
	}
	again := pkiWrite(t, c, "pki_int/revoke", map[string]any{"serial_number": serial})
	if again.Data["revocation_time"].(json.Number) != rv.Data["revocation_time"].(json.Number) {
		t.Fatal("a second revoke changed the revocation time")
	}
	cert, err := c.Logical().Read("pki_int/cert/" + serial)
	if err != nil || cert.Data["revocation_time_rfc3339"] == "" {
		t.Fatalf("cert after revoke: %v %v", err, cert)
	}
	revoked, err := c.Logical().List("pki_int/certs/revoked")
	if err != nil || revoked == nil || len(revoked.Data["keys"].([]any)) != 1 {
		t.Fatalf("certs/revoked: %v %v", err, revoked)
	}

	inter := parsePEMCert(t, h.inter)
	get := func(path string) ([]byte, string) {
		resp, err := http.Get(s.URL + "/v1/" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return b, resp.Header.Get("Content-Type")
	}
	crlDER, ct := get("pki_int/crl")
	if ct != "application/pkix-crl" {
		t.Fatalf("crl content type %q", ct)
	}
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(inter); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	badCert := parsePEMCert(t, str(t, bad, "certificate"))
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(badCert.SerialNumber) != 0 {
		t.Fatalf("CRL entries %v", crl.RevokedCertificateEntries)
	}
	crlPEM, _ := get("pki_int/crl/pem")
	dir := t.TempDir()
	crlFile := writeFile(t, dir, "crl.pem", string(crlPEM))
	chainFile := writeFile(t, dir, "chain.pem", h.inter+"\n"+h.root+"\n")
	interFile := writeFile(t, dir, "inter.pem", h.inter+"\n")
	rootFile := writeFile(t, dir, "root.pem", h.root+"\n")
	if out, err := runOpenSSL(t, "crl", "-in", crlFile, "-CAfile", chainFile, "-noout", "-text"); err != nil ||
		!strings.Contains(out, "verify OK") || !strings.Contains(strings.ToUpper(out), strings.ToUpper(strings.ReplaceAll(serial, ":", ""))) {
		t.Fatalf("openssl crl: %v: %s", err, out)
	}
	badFile := writeFile(t, dir, "bad.pem", str(t, bad, "certificate")+"\n")
	goodFile := writeFile(t, dir, "good.pem", str(t, good, "certificate")+"\n")
	// The root's CRL (empty) is needed too with -crl_check_all; -crl_check checks the leaf only.
	if out, err := runOpenSSL(t, "verify", "-crl_check", "-CRLfile", crlFile, "-CAfile", rootFile, "-untrusted", interFile, badFile); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("openssl verify -crl_check accepted a revoked certificate: %s", out)
	}
	if out, err := runOpenSSL(t, "verify", "-crl_check", "-CRLfile", crlFile, "-CAfile", rootFile, "-untrusted", interFile, goodFile); err != nil {
		t.Fatalf("openssl verify -crl_check refused a good certificate: %v: %s", err, out)
	}

	// OCSP with Go, POST and GET.
	ask := func(leaf *x509.Certificate, method string) *ocsp.Response {
		reqDER, err := ocsp.CreateRequest(leaf, inter, nil)
		if err != nil {
			t.Fatal(err)
		}
		var resp *http.Response
		if method == http.MethodPost {
			resp, err = http.Post(s.URL+"/v1/pki_int/ocsp", "application/ocsp-request", bytes.NewReader(reqDER))
		} else {
			resp, err = http.Get(s.URL + "/v1/pki_int/ocsp/" + base64.StdEncoding.EncodeToString(reqDER))
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.Header.Get("Content-Type") != "application/ocsp-response" {
			t.Fatalf("ocsp %s: content type %q: %s", method, resp.Header.Get("Content-Type"), b)
		}
		r, err := ocsp.ParseResponseForCert(b, leaf, inter)
		if err != nil {
			t.Fatalf("ocsp %s: %v", method, err)
		}
		return r
	}
	for _, m := range []string{http.MethodPost, http.MethodGet} {
		if r := ask(badCert, m); r.Status != ocsp.Revoked || r.RevokedAt.IsZero() {
			t.Fatalf("OCSP %s for the revoked certificate: status %d", m, r.Status)
		}
		if r := ask(parsePEMCert(t, str(t, good, "certificate")), m); r.Status != ocsp.Good {
			t.Fatalf("OCSP %s for the good certificate: status %d", m, r.Status)
		}
	}
	// A malformed OCSP request gets a malformed-request answer, not a crash.
	resp, err := http.Post(s.URL+"/v1/pki_int/ocsp", "application/ocsp-request", strings.NewReader("garbage"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !bytes.Equal(b, ocsp.MalformedRequestErrorResponse) {
		t.Fatalf("garbage OCSP request: %d %x", resp.StatusCode, b)
	}

	// And with the real openssl ocsp client.
	for file, want := range map[string]string{badFile: ": revoked", goodFile: ": good"} {
		out, err := runOpenSSL(t, "ocsp", "-issuer", interFile, "-cert", file, "-url", s.URL+"/v1/pki_int/ocsp", "-CAfile", chainFile, "-no_nonce")
		if err != nil || !strings.Contains(out, want) || !strings.Contains(out, "Response verify OK") {
			t.Fatalf("openssl ocsp %s: want %q: %v: %s", filepath.Base(file), want, err, out)
		}
	}

	// crl/rotate bumps the CRL number; tidy drops nothing unexpired.
	pkiWrite(t, c, "pki_int/crl/rotate", nil)
	crlDER2, _ := get("pki_int/crl")
	crl2, err := x509.ParseRevocationList(crlDER2)
	if err != nil || crl2.Number.Cmp(crl.Number) <= 0 {
		t.Fatalf("crl/rotate: number %v after %v (%v)", crl2.Number, crl.Number, err)
	}
	if _, err := c.Logical().Write("pki_int/tidy", map[string]any{"tidy_cert_store": true, "tidy_revoked_certs": true}); err != nil {
		t.Fatal(err)
	}
	ts, err := c.Logical().Read("pki_int/tidy-status")
	if err != nil || ts.Data["state"] != "Finished" {
		t.Fatalf("tidy-status %v %v", err, ts)
	}
	if _, err := c.Logical().Read("pki_int/cert/" + serial); err != nil {
		t.Fatal(err)
	}

	// The view rebuilt from the log equals the live one (CA keys, certificates, revocations).
	d := verifyOK(t, c, "genesis")
	found := false
	for _, v := range d["views"].([]any) {
		if m := v.(map[string]any); m["name"] == "pki" && m["match"] == true {
			found = true
		}
	}
	if !found {
		t.Fatal("replay verify did not compare the pki view")
	}
}

func localAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
