package httpapi_test

import (
	"context"
	"testing"

	"github.com/ledger-secrets/ledger/audit"
	"github.com/ledger-secrets/ledger/commands"
)

// TestAuditRetentionDefault: with nothing configured, LEDGER_AUDIT is bounded by age and bytes.
func TestAuditRetentionDefault(t *testing.T) {
	s := startServer(t)
	st, err := s.Log.JetStream().Stream(context.Background(), audit.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != commands.DefaultAuditRetentionAge || info.Config.MaxBytes != commands.DefaultAuditRetentionBytes {
		t.Fatalf("LEDGER_AUDIT max_age %v max_bytes %d; want the defaults %v and %d", info.Config.MaxAge, info.Config.MaxBytes,
			commands.DefaultAuditRetentionAge, commands.DefaultAuditRetentionBytes)
	}
}
