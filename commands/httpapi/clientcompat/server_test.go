// Package clientcompat_test drives a real Ledger with github.com/hashicorp/vault-client-go,
// Vault's generated client, beside the official vault/api suite in commands/httpapi. The
// generated client builds URLs its own way — path parameters escaped (a/b → a%2Fb), a "/"
// appended to every LIST — and decodes answers into typed schema structs, so it catches what
// the hand-written client forgives.
package clientcompat_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	vcg "github.com/hashicorp/vault-client-go"
	"github.com/hashicorp/vault-client-go/schema"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/ledger"
)

// server is a real Ledger — embedded JetStream in a temp dir, the full pipeline, the HTTP API
// on a loopback port — initialised, unsealed, with KV v2 at secret/ as a dev server has it.
type server struct {
	url, root string
}

func start(t *testing.T) *server {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := ledger.Open(ctx, ledger.Options{Dir: t.TempDir(), Logger: logger})
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
	s := &server{url: hs.URL, root: res.RootToken}
	if _, err := s.client(t, s.root).System.MountsEnableSecretsEngine(ctx, "secret", schema.MountsEnableSecretsEngineRequest{
		Type: "kv", Options: map[string]any{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// client is a vault-client-go client for the server with token set ("" for none), without
// retries so a failure shows at once.
func (s *server) client(t *testing.T, token string) *vcg.Client {
	t.Helper()
	c, err := vcg.New(vcg.WithAddress(s.url), vcg.WithRequestTimeout(30*time.Second),
		vcg.WithRetryConfiguration(vcg.RetryConfiguration{RetryMax: 0}))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		if err := c.SetToken(token); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// wantStatus asserts a vault-client-go error of the given status whose messages contain msg.
func wantStatus(t *testing.T, err error, status int, msg string) {
	t.Helper()
	var re *vcg.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want an API error %d", err, status)
	}
	if re.StatusCode != status || !strings.Contains(strings.Join(re.Errors, " "), msg) {
		t.Fatalf("got %d %q, want %d containing %q", re.StatusCode, re.Errors, status, msg)
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
