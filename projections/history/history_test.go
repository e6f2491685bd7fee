package history

import (
	"encoding/binary"
	"encoding/json"
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

func applied(t *testing.T) *View {
	t.Helper()
	v := New()
	for _, r := range sample() {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// A checkpoint written by an earlier build (format 1, JSON) restores to the same index.
func TestRestoresFormat1(t *testing.T) {
	v := applied(t)
	old := snapshot{Version: 1, Subjects: map[string][][2]uint64{}}
	for subj, ps := range v.subjects {
		for _, p := range ps {
			old.Subjects[subj] = append(old.Subjects[subj], [2]uint64{p.Seq, uint64(p.Index)})
		}
	}
	data, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(data); err != nil {
		t.Fatal(err)
	}
	if r.Digest() != v.Digest() {
		t.Fatal("format 1 restored to a different index")
	}
	if got := r.Positions(secretA); !slices.Equal(got, v.Positions(secretA)) {
		t.Fatalf("Positions = %v", got)
	}
}

func TestRestoreRefusesBadBinary(t *testing.T) {
	good, err := applied(t).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if good[0] != snapshotBinary {
		t.Fatalf("snapshot starts with %#x, want format %d", good[0], snapshotBinary)
	}
	// Every truncation, and a byte more, is refused without a panic and leaves the view alone.
	v := applied(t)
	before := v.Digest()
	for n := 1; n <= len(good); n++ {
		data := good[:n]
		if n == len(good) {
			data = append(slices.Clone(good), 0)
		}
		if err := v.Restore(data); err == nil {
			t.Fatalf("Restore accepted %d of %d bytes", n, len(good))
		}
	}
	if v.Digest() != before {
		t.Fatal("a refused Restore changed the view")
	}
	// enc builds a format-2 snapshot: a string is length-prefixed, a number a uvarint (the
	// format byte 2 is its own uvarint).
	enc := func(parts ...any) []byte {
		var b []byte
		for _, p := range parts {
			switch p := p.(type) {
			case string:
				b = projections.AppendString(b, p)
			case int:
				b = binary.AppendUvarint(b, uint64(p))
			case uint64:
				b = binary.AppendUvarint(b, p)
			}
		}
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"subjects out of order", enc(2, 2, "kv.b", 1, 1, 0, "kv.a", 1, 1, 0)},
		{"subject repeated", enc(2, 2, "kv.a", 1, 1, 0, "kv.a", 1, 1, 0)},
		{"position repeated", enc(2, 1, "kv.a", 2, 5, 0, 0, 0)},
		{"index out of range", enc(2, 1, "kv.a", 1, 5, uint64(1)<<33)},
		{"sequence overflows", enc(2, 1, "kv.a", 2, uint64(1)<<63, 0, uint64(1)<<63, 0)},
		{"count beyond the input", enc(2, 1, "kv.a", 1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := New().Restore(tc.data); err == nil {
				t.Fatalf("Restore accepted %x", tc.data)
			}
		})
	}
}
