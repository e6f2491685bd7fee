package httpapi_test

import (
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
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
	return startServerWith(t, commands.Options{})
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
