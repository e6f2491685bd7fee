package httpapi_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/ledger"
)

// startServerLogged is startServer with Core options of the test's choosing (a log level variable,
// say). It has no KV mount.
func startServerLogged(t testing.TB, opts commands.Options) *testServer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir, Logger: opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	core, err := commands.New(ctx, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(httpapi.New(core, httpapi.Options{Logger: opts.Logger}))
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
	return &testServer{URL: hs.URL, RootToken: res.RootToken, Dir: dir, Core: core, Log: l}
}
