package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/commands"
)

// TestAuditFailClosed: when a read's record cannot be stored, the read is refused and the
// value never leaves; writes, whose records travel in their own batches, go on.
func TestAuditFailClosed(t *testing.T) {
	s := startServerWith(t, commands.Options{Audit: commands.AuditOptions{RetentionAge: 48 * time.Hour, RetentionBytes: 1 << 30}})
	root := s.Client(t, s.RootToken)
	const value = "do-not-leak-me"
	if _, err := root.KVv2("secret").Put(t.Context(), "fc", map[string]any{"v": value}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := s.Log.JetStream().Stream(ctx, "LEDGER_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The retention settings reach the stream.
	if info.Config.MaxAge != 48*time.Hour || info.Config.MaxBytes != 1<<30 || !info.Config.DenyDelete {
		t.Fatalf("LEDGER_AUDIT config: age %v bytes %d deny delete %v", info.Config.MaxAge, info.Config.MaxBytes, info.Config.DenyDelete)
	}
	// Sealing a stream is one-way: from now on it refuses every record.
	cfg := info.Config
	cfg.Sealed = true
	if _, err := s.Log.JetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := raw(t, s.URL, "GET", "secret/data/fc", nil, tokenHeader(s.RootToken))
	if r.Status != http.StatusInternalServerError {
		t.Fatalf("read without an audit record: %d %s", r.Status, trunc(r.Body))
	}
	noLeak(t, "read without an audit record", r.Body, value)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the refusal took %s", d)
	}
	if _, err := root.KVv2("secret").Put(t.Context(), "fc", map[string]any{"v": "next"}); err != nil {
		t.Fatalf("a write failed with LEDGER_AUDIT refusing: %v", err)
	}
}
