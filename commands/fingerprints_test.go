package commands

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
)

// newTestCore is an initialised, unsealed core over an embedded JetStream in a temp dir.
func newTestCore(t testing.TB) (*Core, *InitResult) {
	t.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, ledger.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, l, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); l.Close() })
	res, err := c.Init(ctx, InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	return c, res
}

// TestFingerprintBackfill: values written before fingerprints existed (simulated by emptying
// the fingerprint view, as a server of an earlier build would have it) are fingerprinted by the
// backfill, once: a second run appends nothing, and a run resumed past a path leaves it alone.
func TestFingerprintBackfill(t *testing.T) {
	ctx := context.Background()
	c, res := newTestCore(t)
	do := func(op engines.Operation, path string, data map[string]any) {
		t.Helper()
		if _, err := c.Handle(ctx, &Request{Op: op, Path: path, Data: data, Token: res.RootToken}); err != nil {
			t.Fatalf("%s %s: %v", op, path, err)
		}
	}
	do(engines.OpUpdate, "sys/mounts/secret", map[string]any{"type": "kv", "options": map[string]any{"version": "2"}})
	do(engines.OpUpdate, "secret/data/a", map[string]any{"data": map[string]any{"password": "first-password-1"}})
	do(engines.OpUpdate, "secret/data/a", map[string]any{"data": map[string]any{"password": "second-password-2"}})
	do(engines.OpUpdate, "secret/data/b", map[string]any{"data": map[string]any{"password": "other-password-3"}})
	do(engines.OpUpdate, "secret/destroy/a", map[string]any{"versions": []any{1}})

	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	kr := st.keyring.Load()
	fp := func(v string) []fpview.Location { return st.fingerprints.Lookup(kr.Fingerprint([]byte(v))) }
	if ls := fp("second-password-2"); len(ls) != 1 || ls[0].Backfill || ls[0].Version != 2 {
		t.Fatalf("a write records its fingerprint: %+v", ls)
	}
	if ls := fp("first-password-1"); len(ls) != 1 || ls[0].State != fpview.StateDestroyed {
		t.Fatalf("a destroyed version keeps its fingerprint: %+v", ls)
	}

	empty, err := fpview.New().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.fingerprints.Restore(empty); err != nil {
		t.Fatal(err)
	}
	if err := c.runBackfill(ctx, st); err != nil {
		t.Fatal(err)
	}
	if ls := fp("second-password-2"); len(ls) != 1 || !ls[0].Backfill || ls[0].Version != 2 || ls[0].State != fpview.StateLive {
		t.Fatalf("backfilled: %+v", ls)
	}
	if ls := fp("first-password-1"); len(ls) != 0 {
		t.Fatalf("a version destroyed before the backfill cannot be fingerprinted, got %+v", ls)
	}
	if bf := st.fingerprints.Backfill(); !bf.Done || bf.Count != 2 {
		t.Fatalf("progress %+v", bf)
	}
	head, _ := st.runner.Head()
	if err := c.runBackfill(ctx, st); err != nil {
		t.Fatal(err)
	}
	if again, _ := st.runner.Head(); again != head {
		t.Fatalf("a second backfill appended (head %d → %d)", head, again)
	}

	// Resumed from a cursor past secret/a: only b is (re)considered.
	m, _ := st.mounts.Get("secret/")
	if err := st.fingerprints.Restore(empty); err != nil {
		t.Fatal(err)
	}
	if err := c.commit(ctx, st, []ledger.Event{mustEvent(t, fpview.BackfillPayload{Cursor: m.UUID + "\x00a", Count: 1})}); err != nil {
		t.Fatal(err)
	}
	if err := c.runBackfill(ctx, st); err != nil {
		t.Fatal(err)
	}
	if len(fp("second-password-2")) != 0 || len(fp("other-password-3")) != 1 {
		t.Fatal("the resumed backfill did not start after its cursor")
	}
}

func mustEvent(t *testing.T, p fpview.BackfillPayload) ledger.Event {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Event{Type: fpview.BackfillProgressed, Subject: fpview.Subject, Payload: b}
}
