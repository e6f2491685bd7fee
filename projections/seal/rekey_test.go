package seal

import (
	"testing"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func TestRekeyConformance(t *testing.T) {
	recs := []ledger.Record{
		rec(1, Initialized, InitializedPayload{Shares: 3, Threshold: 2, Keyring: []byte("k1")}),
		rec(2, Rekeyed, RekeyedPayload{Shares: 5, Threshold: 3, Keyring: []byte("k1-under-r2"), Term: 1, Backup: []byte("sealed")}),
		rec(3, KeyringRotated, RotatedPayload{Term: 2, Keyring: []byte("k2-under-r2"), Rekeys: 1}),
		rec(4, RekeyBackupDeleted, struct{}{}),
	}
	viewtest.Conformance(t, func() projections.View { return New() }, recs)
}

// TestRekeyAndRotationRaces: whichever of a rekey and a rotation made on stale state comes
// second is ignored, so the keyring in force is always wrapped under the root key in force.
func TestRekeyAndRotationRaces(t *testing.T) {
	for _, tc := range []struct {
		name    string
		recs    []ledger.Record
		keyring string
		term    uint32
		shares  int
		rekeys  int
	}{
		{"rekey then rotation under the new root", []ledger.Record{
			rec(2, Rekeyed, RekeyedPayload{Shares: 5, Threshold: 3, Keyring: []byte("k1-r2"), Term: 1}),
			rec(3, KeyringRotated, RotatedPayload{Term: 2, Keyring: []byte("k2-r2"), Rekeys: 1}),
		}, "k2-r2", 2, 5, 1},
		{"rotation under the old root after a rekey: ignored", []ledger.Record{
			rec(2, Rekeyed, RekeyedPayload{Shares: 5, Threshold: 3, Keyring: []byte("k1-r2"), Term: 1}),
			rec(3, KeyringRotated, RotatedPayload{Term: 2, Keyring: []byte("k2-r1"), Rekeys: 0}),
		}, "k1-r2", 1, 5, 1},
		{"rekey of an older term after a rotation: ignored", []ledger.Record{
			rec(2, KeyringRotated, RotatedPayload{Term: 2, Keyring: []byte("k2-r1")}),
			rec(3, Rekeyed, RekeyedPayload{Shares: 5, Threshold: 3, Keyring: []byte("k1-r2"), Term: 1}),
		}, "k2-r1", 2, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := New()
			all := append([]ledger.Record{rec(1, Initialized, InitializedPayload{Shares: 3, Threshold: 2, Keyring: []byte("k1-r1")})}, tc.recs...)
			for _, r := range all {
				if err := v.Apply(r); err != nil {
					t.Fatal(err)
				}
			}
			s := v.State()
			if string(s.Keyring) != tc.keyring || s.Term != tc.term || s.Shares != tc.shares || s.Rekeys != tc.rekeys {
				t.Fatalf("state: keyring %q term %d shares %d rekeys %d", s.Keyring, s.Term, s.Shares, s.Rekeys)
			}
		})
	}
	v := New()
	if err := v.Apply(rec(1, Rekeyed, RekeyedPayload{Shares: 2, Threshold: 3, Keyring: []byte("x"), Term: 1})); err == nil {
		t.Fatal("a rekey with threshold above shares was applied")
	}
}
