package commands

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/audit"
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
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

// TestWriteRecordStoredCompact: a write's audit record sits in the write's batch compressed
// (audit.CompactEvent), and reads back as the record of that write.
func TestWriteRecordStoredCompact(t *testing.T) {
	ctx := context.Background()
	c, res := newTestCore(t)
	for _, r := range []*Request{
		{ID: "req-mount", Op: engines.OpUpdate, Path: "sys/mounts/secret", Data: map[string]any{"type": "kv", "options": map[string]any{"version": "2"}}},
		{ID: "req-write", Op: engines.OpUpdate, Path: "secret/data/app", Data: map[string]any{"data": map[string]any{"password": "compact-record-check"}}},
	} {
		r.Token = res.RootToken
		if _, err := c.Handle(ctx, r); err != nil {
			t.Fatalf("%s %s: %v", r.Op, r.Path, err)
		}
	}
	last, err := c.log.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kr := c.st.keyring.Load()
	var found int
	err = c.log.ReadRange(ctx, 1, last, false, func(b ledger.Batch) error {
		for i, e := range b.Events {
			if e.Type() != audit.Recorded {
				continue
			}
			rec, err := e.Open(kr, ledger.Position{Seq: b.Seq, Index: uint32(i)})
			if err != nil {
				return err
			}
			if rec.Request != "req-write" {
				continue
			}
			found++
			if len(rec.Payload) == 0 || rec.Payload[0] != 0x01 {
				t.Errorf("the write's record is stored as %q…, not compressed", rec.Payload[:min(len(rec.Payload), 16)])
			}
			if bytes.Contains(rec.Payload, []byte("compact-record-check")) {
				t.Error("the record holds the secret")
			}
			ar, err := audit.Decode(rec.Payload)
			if err != nil {
				return err
			}
			if ar.Request.Path != "secret/data/app" || ar.Request.ID != "req-write" || ar.Response == nil {
				t.Errorf("decoded record: request %+v, response %+v", ar.Request, ar.Response)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found != 1 {
		t.Fatalf("%d records of the write in the log, want 1", found)
	}
}
