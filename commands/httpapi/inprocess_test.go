package httpapi_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/ledger"
)

// testServer is a real Ledger — embedded JetStream on a temp dir, the full pipeline, the HTTP
// API on a loopback port — initialised with one share, unsealed, with KV v2 at secret/ (as a
// dev server has it).
type testServer struct {
	URL       string
	RootToken string
	UnsealKey string
	Dir       string
	Core      *commands.Core
	Log       *ledger.Log
}

func startServer(t testing.TB) *testServer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
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
	if err := s.Client(t, res.RootToken).Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// Client is an official Vault client for the server, with token set ("" for none).
func (s *testServer) Client(t testing.TB, token string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = s.URL
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}
