package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServerConfigErrorsExit1NamingFileAndLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "ledger.hcl")
	os.WriteFile(bad, []byte("storage \"jetstream\" {\n  path = \"/tmp/x\"\n}\nlistener \"tcp\" {\n  address = \n}\n"), 0o600)
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"missing file", []string{"server", "-config=" + filepath.Join(dir, "nope.hcl")}, 1, []string{"nope.hcl"}},
		{"syntax error", []string{"server", "-config=" + bad}, 1, []string{"ledger.hcl:5"}},
		{"no config at all", []string{"server"}, 2, []string{"-config"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, map[string]string{}, strings.NewReader(""), &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr does not name %q:\n%s", w, errOut.String())
				}
			}
		})
	}
}

func TestServerRefusesIncompatibleDataDir(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o700)
	os.WriteFile(filepath.Join(data, "LEDGER_FORMAT"), []byte("ledger-format 7\n"), 0o600)
	cfg := filepath.Join(dir, "ledger.hcl")
	os.WriteFile(cfg, fmt.Appendf(nil, "storage \"jetstream\" { path = %q }\nlistener \"tcp\" {\n  address = \"127.0.0.1:0\"\n  tls_disable = true\n}\n", data), 0o600)
	var out, errOut bytes.Buffer
	code := run([]string{"server", "-config=" + cfg}, map[string]string{}, strings.NewReader(""), &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "ledger-format 7") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut.String())
	}
	entries, _ := os.ReadDir(data)
	if len(entries) != 1 {
		t.Fatalf("the refused data dir was written to: %v", entries)
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ledger-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServerTLSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := startServer(context.Background(), newLogger(os.Stderr, "error"), ledgerOptions(filepath.Join(dir, "data")), coreOptions(),
		"", []listenerSpec{{alreadyListening: ln, tlsCert: certFile, tlsKey: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close(context.Background())
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + ln.Addr().String() + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusNotImplemented || body["initialized"] != false {
		t.Fatalf("health over TLS: %d %v", resp.StatusCode, body)
	}
	// Plain HTTP to a TLS listener is refused.
	if resp, err := http.Get("http://" + ln.Addr().String() + "/v1/sys/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotImplemented {
			t.Fatal("plain HTTP was served by a TLS listener")
		}
	}
}
