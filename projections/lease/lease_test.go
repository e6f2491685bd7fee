package lease

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func rec(seq uint64, typ string, p any) ledger.Record {
	b, _ := json.Marshal(p)
	return ledger.Record{Event: ledger.Event{Type: typ, Payload: b}, Pos: ledger.Position{Seq: seq}}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func issued(id, tok string, ttl time.Duration) IssuedPayload {
	return IssuedPayload{ID: id, MountPath: "database/", Path: "creds/ro", TokenMAC: tok, IssueTime: t0,
		ExpireTime: t0.Add(ttl), MaxExpire: t0.Add(24 * time.Hour), Renewable: true, InternalData: []byte(`{"u":"x"}`)}
}

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, []ledger.Record{
		rec(1, Issued, issued("database/creds/ro/a", "t1", time.Hour)),
		rec(2, Issued, issued("database/creds/ro/b", "t1", 2*time.Hour)),
		rec(3, Renewed, RenewedPayload{ID: "database/creds/ro/a", ExpireTime: t0.Add(3 * time.Hour), RenewTime: t0.Add(time.Minute)}),
		rec(4, RevocationFailed, FailedPayload{ID: "database/creds/ro/b", Error: "connection refused", Attempts: 1}),
		rec(5, Revoked, RevokedPayload{ID: "database/creds/ro/b", Reason: "expired"}),
		rec(6, Issued, issued("database/creds/rw/c", "t2", time.Minute)),
	})
}

func TestIndexes(t *testing.T) {
	v := New()
	for i := range 50 {
		v.Apply(rec(uint64(i+1), Issued, issued(fmt.Sprintf("database/creds/ro/%02d", i), fmt.Sprintf("t%d", i%2), time.Duration(50-i)*time.Minute)))
	}
	due := v.Expiring(t0.Add(10*time.Minute), 100)
	if len(due) != 10 || due[0].ID != "database/creds/ro/49" || due[9].ID != "database/creds/ro/40" {
		t.Fatalf("expiring: %d, first %v", len(due), due)
	}
	if got := v.Expiring(t0.Add(time.Hour), 5); len(got) != 5 {
		t.Fatalf("limit ignored: %d", len(got))
	}
	if n := len(v.ByToken("t0")); n != 25 {
		t.Fatalf("by token: %d", n)
	}
	v.Apply(rec(60, Revoked, RevokedPayload{ID: "database/creds/ro/49"}))
	if next, _ := v.NextExpiry(); !next.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("next expiry %v", next)
	}
	if kids := v.Children("database/creds/"); len(kids) != 1 || kids[0] != "ro/" {
		t.Fatalf("children %v", kids)
	}
}
