package commands

import (
	"bytes"
	"context"
	"testing"

	"github.com/ledger-secrets/ledger/engines"
)

// TestAuditRecordBufferCleared: a read's audit record is encoded in a pooled buffer, and the
// buffer holds nothing of it once the record is stored.
func TestAuditRecordBufferCleared(t *testing.T) {
	ctx := context.Background()
	c, res := newTestCore(t)
	do := func(op engines.Operation, path string, data map[string]any) {
		t.Helper()
		if _, err := c.Handle(ctx, &Request{ID: "req-1", Op: op, Path: path, Data: data, Token: res.RootToken}); err != nil {
			t.Fatalf("%s %s: %v", op, path, err)
		}
	}
	do(engines.OpUpdate, "sys/mounts/secret", map[string]any{"type": "kv", "options": map[string]any{"version": "2"}})
	do(engines.OpUpdate, "secret/data/app", map[string]any{"data": map[string]any{"password": "pooled-buffer-check"}})
	do(engines.OpRead, "secret/data/app", nil)
	// The buffer just returned is the one this goroutine gets next (same P, no GC between).
	bp := recordBuffers.Get().(*[]byte)
	defer recordBuffers.Put(bp)
	if b := (*bp)[:cap(*bp)]; bytes.Contains(b, []byte("secret/data/app")) || bytes.Contains(b, []byte("hmac-sha256:")) {
		t.Fatalf("pooled record buffer (%d bytes) still holds the record", cap(b))
	}
}
