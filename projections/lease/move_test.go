package lease

import (
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

// A moved mount's leases take the new prefix, keep their owner and expiry; other mounts'
// leases (even under a path sharing the prefix) are left alone.
func TestMountMoved(t *testing.T) {
	a, b, other := issued("database/creds/ro/a", "t1", time.Hour), issued("database/creds/ro/b", "t2", 2*time.Hour), issued("database2/creds/ro/c", "t1", time.Hour)
	a.MountUUID, b.MountUUID, other.MountUUID = "u1", "u1", "u2"
	recs := []ledger.Record{
		rec(1, Issued, a), rec(2, Issued, b), rec(3, Issued, other),
		rec(4, mount.Moved, mount.MovedPayload{From: "database/", To: "db/prod/", UUID: "u1", MigrationID: "m"}),
	}
	viewtest.Conformance(t, func() projections.View { return New() }, recs)
	v := New()
	for _, r := range recs {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if ids := v.WithPrefix("database/"); len(ids) != 0 {
		t.Fatalf("left under the old prefix: %v", ids)
	}
	e, ok := v.Get("db/prod/creds/ro/a")
	if !ok || e.MountPath != "db/prod/" || !e.ExpireTime.Equal(t0.Add(time.Hour)) {
		t.Fatalf("moved lease: %+v %v", e, ok)
	}
	if got := v.ByToken("t1"); len(got) != 2 || got[0] != "database2/creds/ro/c" || got[1] != "db/prod/creds/ro/a" {
		t.Fatalf("by token after the move: %v", got)
	}
	if exp := v.Expiring(t0.Add(3*time.Hour), 10); len(exp) != 3 {
		t.Fatalf("expiry index after the move: %d", len(exp))
	}
}
