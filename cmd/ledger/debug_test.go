package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebugArchive: ledger debug against a real server writes a tar.gz with the index, host
// info, status, metrics in both shapes, profiles, the redacted config and the log tail.
func TestDebugArchive(t *testing.T) {
	addr, token := startTestServer(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ledger.hcl")
	os.WriteFile(cfg, []byte(`storage "jetstream" {
  url        = "nats://user:s3cret@nats:4222"
  creds_file = "/etc/secret.creds"
}
listener "tcp" {
  address = "127.0.0.1:8200"
  tls_cert_file = "/tls/cert.pem"
  tls_key_file  = "/tls/key.pem"
}`), 0o600)
	logf := filepath.Join(dir, "server.log")
	os.WriteFile(logf, []byte("level=INFO msg=started\n"), 0o600)
	out := filepath.Join(dir, "d.tar.gz")
	env := map[string]string{"HOME": dir, "VAULT_ADDR": addr, "VAULT_TOKEN": token}
	var stdout, stderr bytes.Buffer
	code := run([]string{"debug", "-duration=2s", "-interval=1s", "-output=" + out, "-config=" + cfg, "-log-file=" + logf},
		env, strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("debug: %d %s %s", code, stdout.String(), stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		parts := strings.Split(h.Name, "/")
		files[parts[len(parts)-1]] = b
		files[h.Name] = b
	}
	for _, want := range []string{"index.json", "host-info.json", "seal-status.json", "health.json", "metrics.prom", "metrics.json", "goroutine.prof", "heap.prof", "profile.prof", "config.json", "server.log.log"} {
		if len(files[want]) == 0 {
			t.Fatalf("archive lacks %s; has %d files", want, len(files))
		}
	}
	var idx struct{ Errors []string }
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Errors) != 0 {
		t.Fatalf("index: %v %v", err, idx.Errors)
	}
	if !bytes.Contains(files["metrics.prom"], []byte("vault_core_handle_request")) {
		t.Fatal("metrics.prom is not the Prometheus text")
	}
	for _, secret := range []string{"s3cret", "/etc/secret.creds", "/tls/key.pem"} {
		if bytes.Contains(files["config.json"], []byte(secret)) {
			t.Fatalf("config not redacted: %s", files["config.json"])
		}
	}

	// Bad input: an existing archive is never overwritten; an unknown target is a usage error.
	if code := run([]string{"debug", "-duration=1s", "-interval=1s", "-output=" + out}, env, strings.NewReader(""), io.Discard, io.Discard); code == 0 {
		t.Fatal("overwrote an existing archive")
	}
	if code := run([]string{"debug", "-target=everything"}, env, strings.NewReader(""), io.Discard, io.Discard); code == 0 {
		t.Fatal("unknown target accepted")
	}
	if code := run([]string{"debug", "-duration=1s", "-interval=5s"}, env, strings.NewReader(""), io.Discard, io.Discard); code == 0 {
		t.Fatal("interval above duration accepted")
	}
}
