package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/commands"
)

// TestAuditFailClosed: when a read's record cannot be stored, the read is refused and the
// value never leaves; writes, whose records travel in their own batches, go on.
func TestAuditFailClosed(t *testing.T) {
	t.Run("spooled", func(t *testing.T) { testAuditFailClosed(t, false) })
	t.Run("direct", func(t *testing.T) { testAuditFailClosed(t, true) })
}

// testAuditFailClosed: with direct reads (audit_read_spool = false) each read waits for
// JetStream's ack, so the first read after the stream refuses records is refused.
func testAuditFailClosed(t *testing.T, direct bool) {
	s := startServerWith(t, commands.Options{Audit: commands.AuditOptions{RetentionAge: 48 * time.Hour, RetentionBytes: 1 << 30, DirectReads: direct}})
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
	// Sealing a stream is one-way: from now on it refuses every record. A read's record is
	// kept in the node's audit spool before the read is answered, and JetStream refusing what
	// the spool ships makes the spool refuse more: a read or two may still be answered, with
	// its record kept (not dropped), then every read is refused.
	cfg := info.Config
	cfg.Sealed = true
	if _, err := s.Log.JetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	answered := 0
	for {
		r := raw(t, s.URL, "GET", "secret/data/fc", nil, tokenHeader(s.RootToken))
		if r.Status == http.StatusInternalServerError {
			noLeak(t, "read without an audit record", r.Body, value)
			break
		}
		if r.Status != http.StatusOK {
			t.Fatalf("read: %d %s", r.Status, trunc(r.Body))
		}
		answered++
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%d reads answered in the %s after LEDGER_AUDIT began refusing records", answered, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if answered > 3 || direct && answered > 0 {
		t.Errorf("%d reads answered after LEDGER_AUDIT began refusing records (direct reads: %v)", answered, direct)
	}
	// The answered reads' records wait in the spool.
	// (Read in process: sys/metrics is a request too, refused without its record.)
	body, _, err := s.Core.Telemetry().Render("")
	if err != nil {
		t.Fatal(err)
	}
	var metrics struct {
		Gauges []struct {
			Name  string
			Value float64
		}
	}
	if err := json.Unmarshal(body, &metrics); err != nil {
		t.Fatal(err)
	}
	backlog := -1.0
	for _, g := range metrics.Gauges {
		if g.Name == "ledger.audit.spool_backlog" {
			backlog = g.Value
		}
	}
	if backlog < float64(answered) || direct && backlog != 0 {
		t.Fatalf("ledger_audit_spool_backlog = %v after %d answered reads whose records JetStream refused", backlog, answered)
	}
	// Still refused a moment later: the spool keeps trying, and keeps refusing until it ships.
	time.Sleep(100 * time.Millisecond)
	if r := raw(t, s.URL, "GET", "secret/data/fc", nil, tokenHeader(s.RootToken)); r.Status != http.StatusInternalServerError {
		t.Fatalf("read while LEDGER_AUDIT refuses records: %d", r.Status)
	}
	if _, err := root.KVv2("secret").Put(t.Context(), "fc", map[string]any{"v": "next"}); err != nil {
		t.Fatalf("a write failed with LEDGER_AUDIT refusing: %v", err)
	}
}
