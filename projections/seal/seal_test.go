package seal

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func rec(seq uint64, typ string, payload any) ledger.Record {
	b, _ := json.Marshal(payload)
	return ledger.Record{Event: ledger.Event{Type: typ, Payload: b, Raw: true}, Pos: ledger.Position{Seq: seq}}
}

func TestConformance(t *testing.T) {
	recs := []ledger.Record{
		rec(1, Initialized, InitializedPayload{Shares: 5, Threshold: 3, Keyring: []byte("k1"), Time: time.Unix(1, 0).UTC()}),
		rec(2, KeyringRotated, RotatedPayload{Term: 2, Keyring: []byte("k2")}),
		rec(3, "other.v1", nil),
		rec(4, KeyringRotated, RotatedPayload{Term: 3, Keyring: []byte("k3")}),
	}
	viewtest.Conformance(t, func() projections.View { return New() }, recs)
}

func TestSecondInitAndStaleRotationIgnored(t *testing.T) {
	v := New()
	for _, r := range []ledger.Record{
		rec(1, Initialized, InitializedPayload{Shares: 5, Threshold: 3, Keyring: []byte("k1")}),
		rec(2, Initialized, InitializedPayload{Shares: 1, Threshold: 1, Keyring: []byte("evil")}),
		rec(3, KeyringRotated, RotatedPayload{Term: 3, Keyring: []byte("k3")}),
		rec(4, KeyringRotated, RotatedPayload{Term: 2, Keyring: []byte("k2")}),
	} {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	s := v.State()
	if s.Shares != 5 || s.Term != 3 || string(s.Keyring) != "k3" {
		t.Fatalf("state %+v", s)
	}
	if err := v.Apply(rec(5, Initialized, "not an object")); err == nil {
		t.Fatal("malformed payload accepted")
	}
}
