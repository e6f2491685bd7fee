package quota

import (
	"encoding/json"
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

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, []ledger.Record{
		rec(1, Written, Quota{Type: TypeRateLimit, Name: "global", Rate: 10, Interval: time.Second}),
		rec(2, Written, Quota{Type: TypeLeaseCount, Name: "db", MountPath: "database/", MaxLeases: 3}),
		rec(3, ConfigWritten, Config{EnableRateLimitResponseHeaders: true, RateLimitExemptPaths: []string{"sys/x"}}),
		rec(4, Deleted, DeletedPayload{Type: TypeRateLimit, Name: "global"}),
		rec(5, Written, Quota{Type: TypeRateLimit, Name: "kv", MountPath: "secret/", PathSuffix: "data/a", Rate: 2}),
	})
}

func TestConfigDefaults(t *testing.T) {
	v := New()
	if c := v.Config(); c.Configured || len(c.RateLimitExemptPaths) != len(DefaultExemptPaths) {
		t.Fatalf("default config %+v", c)
	}
	v.Apply(rec(1, ConfigWritten, Config{}))
	if c := v.Config(); !c.Configured || len(c.RateLimitExemptPaths) != 0 {
		t.Fatalf("written empty config %+v", c)
	}
	v.Apply(rec(2, Written, Quota{Type: "bogus", Name: "x"}))
	if len(v.Names("bogus")) != 0 {
		t.Fatal("unknown quota type stored")
	}
}
