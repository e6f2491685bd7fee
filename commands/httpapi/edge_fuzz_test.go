package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/ledger"
)

// FuzzHTTPEdge sends arbitrary method, path bytes, query and body, with and without the root
// token, to one real server (JetStream on a temp dir, the whole pipeline, HTTP on loopback)
// and requires no 5xx and no panic (the edge turns a panic into a 500). A request that seals
// the server answers, and the server is unsealed again; 503 then is expected. The seeds run in
// every `go test`; `go test -fuzz=FuzzHTTPEdge ./commands/httpapi` runs longer.
func FuzzHTTPEdge(f *testing.F) {
	seeds := []struct {
		method, path, query, body string
		root                      bool
	}{
		{"GET", "sys/health", "", "", false},
		{"GET", "sys/seal-status", "", "", false},
		{"PUT", "secret/data/a", "", `{"data":{"k":"v"}}`, true},
		{"GET", "secret/data/a", "version=1", "", true},
		{"GET", "secret/data/a", "version=x", "", true},
		{"LIST", "secret/metadata/", "", "", true},
		{"GET", "secret/metadata", "list=true", "", true},
		{"POST", "secret/data/x-\xff", "", `{"data":{}}`, true},
		{"DELETE", "secret/metadata/a", "", "", true},
		{"POST", "sys/mounts/kv1", "", `{"type":"kv"}`, true},
		{"POST", "sys/mounts/x", "", `{"type":"nope"}`, true},
		{"POST", "sys/policies/acl/p", "", `{"policy":"path \"a\" {capabilities=[\"read\"]}"}`, true},
		{"POST", "sys/policies/acl/p", "", `{"policy":"path {"}`, true},
		{"POST", "auth/token/create", "", `{"ttl":"-1h"}`, true},
		{"POST", "auth/token/create", "", `{"policies":"x","num_uses":1e99}`, true},
		{"POST", "sys/auth/userpass", "", `{"type":"userpass"}`, true},
		{"POST", "auth/userpass/login/u", "", `{"password":1}`, false},
		{"POST", "sys/wrapping/wrap", "", `{"a":1}`, true},
		{"POST", "sys/wrapping/unwrap", "", `{"token":"x"}`, false},
		{"POST", "sys/remount", "", `{"from":"secret","to":"sys"}`, true},
		{"GET", "sys/internal/ui/mounts", "", "", false},
		{"PUT", "sys/seal", "", "", true},
		{"GET", "../../etc/passwd", "", "", true},
		{"GET", "secret//data/./a/..", "", "", true},
		{"PATCH", "secret/data/a", "", `{"data":null}`, true},
		{"POST", "sys/ledger/replay/verify", "", "", false},
		{"OPTIONS", "", "", "", false},
		{"GET", "sys/metrics", "format=prometheus", "", true},
		{"POST", "transit/encrypt/k", "", `{"plaintext":"!!"}`, true},
		{"POST", "sys/tools/random/99999999", "", "", true},
		{"POST", "secret/data/a", "", `{"data":{"k":"v"}`, true},
		{"POST", "secret/data/a", "", "\x00\xff[", true},
	}
	for _, s := range seeds {
		f.Add(s.method, []byte(s.path), s.query, []byte(s.body), s.root)
	}
	srv, unsealKey := startFuzzServer(f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	client := &http.Client{Timeout: 30 * time.Second}
	host := strings.TrimPrefix(srv.URL, "http://")
	f.Fuzz(func(t *testing.T, method string, path []byte, query string, body []byte, root bool) {
		// Arbitrary bytes reach the handler: EscapedPath percent-encodes what needs it.
		u := &url.URL{Scheme: "http", Host: host, Path: "/v1/" + string(path), RawQuery: query}
		req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
		if err != nil {
			return // not an HTTP request the client can send (bad method or URL)
		}
		if root {
			req.Header.Set("X-Vault-Token", srv.RootToken)
		}
		resp, err := client.Do(req)
		if err != nil {
			return // the client refused to write it (e.g. control bytes in the query)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode < 500 {
			return
		}
		if resp.StatusCode == http.StatusServiceUnavailable && !srv.Core.Unsealed() {
			// A root request may seal the server; that is its answer, not a fault.
			if _, err := srv.Core.Unseal(context.Background(), unsealKey); err != nil {
				t.Fatalf("unseal again: %v", err)
			}
			return
		}
		t.Fatalf("%q %q ?%q body %q root=%v: %d %s", method, path, query, body, root, resp.StatusCode, b)
	})
}

// startFuzzServer is startServer, keeping the unseal key so a fuzzed seal can be undone.
func startFuzzServer(t testing.TB, logger *slog.Logger) (*testServer, []byte) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	core, err := commands.New(ctx, l, commands.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(httpapi.New(core, httpapi.Options{Logger: logger}))
	t.Cleanup(func() {
		hs.Close()
		core.Close()
		l.Close()
	})
	res, err := core.Init(ctx, commands.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	s := &testServer{URL: hs.URL, RootToken: res.RootToken, Dir: dir, Core: core, Log: l}
	root := s.Client(t, res.RootToken)
	if err := root.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	return s, res.Keys[0]
}
