package main

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/replay"
)

// TestSnapshotCLI: save, inspect, refuse a bad copy without contacting the server, restore
// onto a fresh server, unseal it with the original key, read the secret back; replay verify.
func TestSnapshotCLI(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d, err := startDev(context.Background(), io.Discard, devOptions{Listener: ln, LogLevel: "error"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close(context.Background()) })
	c := &cli{t: t, addr: d.Addr, token: d.RootToken, home: t.TempDir()}
	c.ok("kv", "put", "secret/app", "password=cli-marker-51e0a9")

	dir := t.TempDir()
	file := filepath.Join(dir, "ledger.snap")
	out := c.ok("operator", "raft", "snapshot", "save", file)
	if !strings.Contains(out, "Success! Saved snapshot to "+file) {
		t.Fatalf("save said %q", out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "cli-marker-51e0a9") {
		t.Fatal("the snapshot file holds the secret in clear")
	}
	out = c.ok("operator", "snapshot", "inspect", file)
	if !hasRow(out, "Unseal Keys", "1 of 1") || !strings.Contains(out, "kv (") {
		t.Fatalf("inspect:\n%s", out)
	}

	truncated := filepath.Join(dir, "truncated.snap")
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.run("operator", "raft", "snapshot", "restore", "-force", truncated)
	expect(t, r, 1, "truncated")
	expect(t, r, 1, "Nothing was sent to the server")

	// The same cluster: restore without -force works and leaves the server unsealed.
	c.ok("kv", "put", "secret/app", "password=changed")
	c.ok("operator", "raft", "snapshot", "restore", file)
	if got := c.ok("kv", "get", "-field=password", "secret/app"); strings.TrimSpace(got) != "cli-marker-51e0a9" {
		t.Fatalf("after restore: %q", got)
	}

	out = c.ok("replay", "verify")
	if !hasRow(out, "Result", "OK: rebuilt views equal the live ones") || !strings.Contains(out, "Events/s") {
		t.Fatalf("replay verify:\n%s", out)
	}

	// Another cluster (a second dev server) refuses without -force, and says what to do.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d2, err := startDev(context.Background(), io.Discard, devOptions{Listener: ln2, LogLevel: "error"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.close(context.Background()) })
	c2 := &cli{t: t, addr: d2.Addr, token: d2.RootToken, home: t.TempDir()}
	r = c2.run("operator", "snapshot", "restore", file)
	expect(t, r, 2, "another cluster")
	expect(t, r, 2, "run the command again with -force")

	// A fresh server: restore, then the original unseal key and root token open it.
	fresh := &cli{t: t, addr: startUninitializedTestServer(t), home: t.TempDir()}
	out = fresh.ok("operator", "raft", "snapshot", "restore", "-force", file)
	if !strings.Contains(out, "The server is sealed. Unseal it with 1 of the snapshot's 1 unseal keys") {
		t.Fatalf("restore onto a fresh server said %q", out)
	}
	fresh.ok("operator", "unseal", d.UnsealKey)
	fresh.token = d.RootToken
	if got := fresh.ok("kv", "get", "-field=password", "secret/app"); strings.TrimSpace(got) != "cli-marker-51e0a9" {
		t.Fatalf("on the restored server: %q", got)
	}
}

// TestReplayRebuildCLI: on a stopped node, replay rebuild reads the unseal key from stdin,
// replays the log and stores a fresh automatic snapshot that the next unseal starts from.
func TestReplayRebuildCLI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := startServer(ctx, newLogger(io.Discard, "error"), ledger.Options{Dir: dir}, commands.Options{}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.core.Init(ctx, commands.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.core.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	_, err = s.core.Handle(ctx, &commands.Request{ID: "m", Op: engines.OpUpdate, Path: "sys/mounts/secret", Token: res.RootToken,
		Data: map[string]any{"type": "kv", "options": map[string]any{"version": "2"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "b", "c"} {
		if _, err := s.core.Handle(ctx, &commands.Request{ID: p, Op: engines.OpUpdate, Path: "secret/data/" + p, Token: res.RootToken,
			Data: map[string]any{"data": map[string]any{"v": p}}}); err != nil {
			t.Fatal(err)
		}
	}
	s.close(ctx)

	key := base64.StdEncoding.EncodeToString(res.Keys[0])
	c := &cli{t: t, home: t.TempDir()}
	r := c.runEnv(c.env(), "not-a-key\n", "replay", "rebuild", "-data-dir", dir)
	expect(t, r, 1, "key")
	r = c.runEnv(c.env(), key+"\n", "replay", "rebuild", "-data-dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "Success! Rebuilt the views") || !hasRow(r.stdout, "Rebuilt From", "genesis") {
		t.Fatalf("rebuild: %s", r)
	}

	l, auto := storedAutoSnapshots(t, dir)
	defer l.Close()
	if len(auto) != 1 {
		t.Fatalf("automatic snapshots after rebuild: %v", auto)
	}
	last, _ := l.LastSeq(ctx)
	if auto[0].Seq != last {
		t.Fatalf("rebuilt snapshot at %d, log ends at %d", auto[0].Seq, last)
	}
	core, err := commands.New(ctx, l, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer core.Close()
	if _, err := core.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	resp, err := core.Handle(ctx, &commands.Request{ID: "r", Op: engines.OpRead, Path: "secret/data/b", Token: res.RootToken})
	if err != nil || resp.Data["data"].(map[string]any)["v"] != "b" {
		t.Fatalf("read after rebuild: %v %v", resp, err)
	}
}

// storedAutoSnapshots opens a stopped node's log in dir and lists its automatic snapshots; the
// caller closes the log.
func storedAutoSnapshots(t *testing.T, dir string) (*ledger.Log, []replay.Info) {
	t.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	store, err := replay.OpenStore(ctx, l.JetStream(), 1)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	auto, err := store.Auto(ctx)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	return l, auto
}
