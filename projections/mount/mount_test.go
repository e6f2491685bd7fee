package mount

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

func sample() []ledger.Record {
	hour := time.Hour
	return []ledger.Record{
		rec(1, Enabled, Entry{Path: "secret/", Type: "kv", UUID: "u1", Options: map[string]string{"version": "2"}}),
		rec(2, Enabled, Entry{Path: "secret/team/", Type: "kv", UUID: "u2"}),
		rec(3, Enabled, Entry{Path: "auth/token/", Type: "token", UUID: "u3"}),
		rec(4, Tuned, TunedPayload{Path: "secret/", MaxLeaseTTL: &hour}),
		rec(5, Disabled, DisabledPayload{Path: "secret/team/", UUID: "u2"}),
		rec(6, Enabled, Entry{Path: "kv1/", Type: "kv", UUID: "u4"}),
	}
}

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, sample())
}

func TestLongestPrefixMatch(t *testing.T) {
	v := New()
	for _, r := range sample()[:3] {
		v.Apply(r)
	}
	tests := []struct{ path, want string }{
		{"secret/data/x", "secret/"},
		{"secret/team/data/x", "secret/team/"},
		{"secret/teamwork", "secret/"},
		{"secret", "secret/"},
		{"auth/token/lookup-self", "auth/token/"},
		{"nope/x", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			e, ok := v.Match(tc.path)
			if tc.want == "" {
				if ok {
					t.Fatalf("matched %s", e.Path)
				}
				return
			}
			if !ok || e.Path != tc.want {
				t.Fatalf("got %q", e.Path)
			}
		})
	}
}
