package history

import (
	"slices"
	"testing"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func rec(seq uint64, idx uint32, subject string) ledger.Record {
	return ledger.Record{Event: ledger.Event{Type: "x.happened.v1", Subject: subject}, Pos: ledger.Position{Seq: seq, Index: idx}}
}

var (
	secretA = ledger.SubjectFor("kv", "mount-1", "app/a")
	secretB = ledger.SubjectFor("kv", "mount-1", "app/b")
	pol     = ledger.SubjectFor("policy", "web")
	tok     = ledger.SubjectFor("token", "abc")
)

func sample() []ledger.Record {
	return []ledger.Record{
		rec(1, 0, tok),
		rec(2, 0, secretA),
		rec(2, 1, pol),
		rec(3, 0, secretB),
		rec(4, 0, secretA),
		rec(4, 1, secretA),
		rec(5, 0, pol),
	}
}

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New("kv", "policy") }, sample())
	viewtest.Conformance(t, func() projections.View { return New() }, sample())
}

func TestPositions(t *testing.T) {
	v := New("kv", "policy")
	for _, r := range sample() {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	v.Apply(rec(4, 0, secretA)) // delivered again: ignored
	tests := []struct {
		name    string
		subject string
		want    []ledger.Position
	}{
		{"secret with three events", secretA, []ledger.Position{{Seq: 2}, {Seq: 4}, {Seq: 4, Index: 1}}},
		{"policy", pol, []ledger.Position{{Seq: 2, Index: 1}, {Seq: 5}}},
		{"kind not indexed", tok, nil},
		{"unknown subject", ledger.SubjectFor("kv", "mount-2", "app/a"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := v.Positions(tt.subject); !slices.Equal(got, tt.want) {
				t.Fatalf("Positions = %v, want %v", got, tt.want)
			}
		})
	}
	got := v.Positions(secretA)
	got[0] = ledger.Position{Seq: 99}
	if v.Positions(secretA)[0].Seq != 2 {
		t.Fatal("Positions returned the view's own slice")
	}
}

func TestRestoreRefusesDisorder(t *testing.T) {
	if err := New().Restore([]byte(`{"v":1,"subjects":{"kv.x":[[4,0],[2,0]]}}`)); err == nil {
		t.Fatal("Restore accepted positions out of order")
	}
}
