package commands

import (
	"bytes"
	"context"
	"testing"
	"time"

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

// TestSharedAuditDeadline: requests close together share one context, whose deadline is the
// timeout from about now, and a later request gets a new one; each ends at its deadline.
func TestSharedAuditDeadline(t *testing.T) {
	s := &sharedDeadline{timeout: 300 * time.Millisecond}
	start := time.Now()
	a, b := s.context(), s.context()
	if a != b {
		t.Fatal("two requests a moment apart got different contexts")
	}
	dl, ok := a.Deadline()
	if !ok || dl.After(time.Now().Add(s.timeout)) || dl.Before(start.Add(s.timeout-sharedDeadlineStep)) {
		t.Fatalf("deadline %v from the start (set %v), want within %v of %v", dl.Sub(start), ok, sharedDeadlineStep, s.timeout)
	}
	time.Sleep(sharedDeadlineStep + 10*time.Millisecond)
	c := s.context()
	if c == a {
		t.Fatal("a request a step later got the old context")
	}
	if dl2, _ := c.Deadline(); !dl2.After(dl) {
		t.Fatalf("the new context's deadline %v is not after the old one's %v", dl2, dl)
	}
	select {
	case <-a.Done():
	case <-time.After(time.Second):
		t.Fatal("the shared context did not end at its deadline")
	}
	if c.Err() != nil && time.Since(start) < s.timeout+sharedDeadlineStep {
		t.Fatalf("the newer context ended early: %v", c.Err())
	}
}
