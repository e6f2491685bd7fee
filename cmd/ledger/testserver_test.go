package main

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/ledger"
)

// startTestServer runs a real dev server (embedded JetStream in a temp dir, unsealed, KV v2 at
// secret/) on a random loopback port, and returns its address and root token.
func startTestServer(t testing.TB) (string, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d, err := startDev(context.Background(), io.Discard, devOptions{Listener: ln, LogLevel: "error"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close(context.Background()) })
	return d.Addr, d.RootToken
}

// startUninitializedTestServer runs a real server that has not been initialised yet.
func startUninitializedTestServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := startServer(context.Background(), newLogger(io.Discard, "error"), ledger.Options{Dir: t.TempDir()},
		commands.Options{}, "", []listenerSpec{{alreadyListening: ln}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close(context.Background()) })
	return "http://" + ln.Addr().String()
}

func ledgerOptions(dir string) ledger.Options { return ledger.Options{Dir: dir} }
func coreOptions() commands.Options           { return commands.Options{} }
