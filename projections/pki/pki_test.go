package pki

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func rec(seq uint64, typ string, p any) ledger.Record {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return ledger.Record{Event: ledger.Event{Type: typ, Payload: b, Time: t0.Add(time.Duration(seq) * time.Second)}, Pos: ledger.Position{Seq: seq}}
}

func sample() []ledger.Record {
	return []ledger.Record{
		rec(1, KeyCreated, KeyPayload{Mount: "m1", Key: Key{ID: "k1", Type: "ec", Bits: 256, Material: []byte("secret-1")}}),
		rec(2, IssuerCreated, IssuerPayload{Mount: "m1", Issuer: Issuer{ID: "i1", KeyID: "k1", Certificate: "PEM1", Serial: "01", NotAfter: t0.Add(time.Hour)}}),
		rec(3, RoleWritten, RolePayload{Mount: "m1", Role: Role{Name: "web", AllowedDomains: []string{"example.com"}, TTL: time.Hour}}),
		rec(4, CertStored, CertPayload{Mount: "m1", Cert: Cert{Serial: "aa", Certificate: "C1", IssuerID: "i1", NotAfter: t0.Add(time.Hour)}}),
		rec(5, CertStored, CertPayload{Mount: "m1", Cert: Cert{Serial: "bb", Certificate: "C2", IssuerID: "i1", NotAfter: t0.Add(-time.Hour)}}),
		rec(6, CertRevoked, RevokedPayload{Mount: "m1", Serial: "aa", Time: t0}),
		rec(7, CertRevoked, RevokedPayload{Mount: "m1", Serial: "aa", Time: t0.Add(time.Hour)}), // second revoke: ignored
		rec(8, CRLRotated, CRLRotatedPayload{Mount: "m1", Issuer: "i1", Time: t0}),
		rec(9, ConfigWritten, ConfigPayload{Mount: "m1", Config: Config{DefaultIssuer: "i1", DefaultKey: "k1", URLs: URLs{OCSPServers: []string{"http://x"}}}}),
		rec(10, CertsTidied, TidiedPayload{Mount: "m1", Serials: []string{"bb"}, Status: TidyStatus{State: "Finished", CertStoreDeleted: 1}}),
		rec(11, KeyCreated, KeyPayload{Mount: "m1", Key: Key{ID: "k2", Type: "rsa", Bits: 2048, Material: []byte("secret-2")}}),
		rec(12, KeyDeleted, DeletedPayload{Mount: "m1", ID: "k2"}),
		rec(13, RoleWritten, RolePayload{Mount: "m1", Role: Role{Name: "gone"}}),
		rec(14, RoleDeleted, DeletedPayload{Mount: "m1", ID: "gone"}),
		rec(15, IssuerCreated, IssuerPayload{Mount: "m2", Issuer: Issuer{ID: "i2", Certificate: "PEM2"}}),
		rec(16, mount.Disabled, mount.DisabledPayload{Path: "pki2/", UUID: "m2"}),
		rec(17, IssuerCreated, IssuerPayload{Mount: "m2", Issuer: Issuer{ID: "late"}}), // after the disable: ignored
		rec(18, IssuerUpdated, IssuerPayload{Mount: "m1", Issuer: Issuer{ID: "i1", Name: "renamed", KeyID: "k1", Certificate: "PEM1"}}),
		rec(19, AcmeAccountSet, AcmeAccountPayload{Mount: "m1", Account: AcmeAccount{ID: "acct", Status: "valid"}}),
		rec(20, AcmeOrderSet, AcmeOrderPayload{Mount: "m1", Order: AcmeOrder{ID: "o1", AccountID: "acct", Status: "pending", Authz: []AcmeAuthz{{ID: "z1"}}}}),
		rec(21, "unrelated.event.v1", map[string]string{"x": "y"}),
	}
}

// deltaRecs turn delta CRLs on, revoke into the delta, and turn them off (which folds it).
func deltaRecs() []ledger.Record {
	cfg := Config{DefaultIssuer: "i1", DefaultKey: "k1", CRL: CRLConfig{EnableDelta: true}}
	off := cfg
	off.CRL.EnableDelta = false
	return []ledger.Record{
		rec(30, ConfigWritten, ConfigPayload{Mount: "m1", Config: cfg}),
		rec(31, CertStored, CertPayload{Mount: "m1", Cert: Cert{Serial: "cc", Certificate: "C3", IssuerID: "i1", NotAfter: t0.Add(time.Hour)}}),
		rec(32, CertRevoked, RevokedPayload{Mount: "m1", Serial: "cc", Time: t0}),
		rec(33, ConfigWritten, ConfigPayload{Mount: "m1", Config: off}),
	}
}

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, append(sample(), deltaRecs()...))
}

func TestDeltaNumbers(t *testing.T) {
	v := New()
	recs := append(sample(), deltaRecs()...)
	for _, r := range recs {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
		if r.Type == CertRevoked && r.Pos.Seq == 32 {
			st := v.CRL("m1", "i1")
			c, _ := v.Cert("m1", "cc")
			if st.Number != 5 || st.Seq != 7 || c.RevokedSeq != 7 {
				t.Fatalf("after a delta revocation: complete %d, delta %d, revoked in %d", st.Number, st.Seq, c.RevokedSeq)
			}
		}
	}
	st := v.CRL("m1", "i1")
	c, _ := v.Cert("m1", "cc")
	if st.Number != 8 || c.RevokedSeq > st.Number {
		t.Fatalf("disabling deltas did not fold the revocation into complete CRL: %+v, revoked in %d", st, c.RevokedSeq)
	}
}

func TestApply(t *testing.T) {
	v := New()
	for _, r := range sample() {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := v.Key("m1", "k2"); ok {
		t.Fatal("deleted key still in the view")
	}
	if c, _ := v.Cert("m1", "aa"); !c.RevokedAt.Equal(t0) {
		t.Fatalf("revoked at %v: the first revocation must win", c.RevokedAt)
	}
	if _, ok := v.Cert("m1", "bb"); ok {
		t.Fatal("tidied certificate still stored")
	}
	// Created at 1 (delta #2 reserved); the revocation starts complete CRL 3 (delta #4); the
	// rotation complete CRL 5.
	if st := v.CRL("m1", "i1"); st.Number != 5 || st.Seq != 6 {
		t.Fatalf("CRL number %d (delta %d), want 5 (6)", st.Number, st.Seq)
	}
	if is, _ := v.Issuer("m1", "i1"); is.Name != "renamed" {
		t.Fatalf("issuer %+v", is)
	}
	if _, ok := v.Issuer("m2", "late"); ok {
		t.Fatal("an event after the mount was disabled was applied")
	}
	if got := v.Revoked("m1", "i1"); len(got) != 1 || got[0].Serial != "aa" {
		t.Fatalf("revoked %v", got)
	}
	if cfg := v.Config("m1"); cfg.DefaultIssuer != "i1" {
		t.Fatalf("default issuer %q", cfg.DefaultIssuer)
	}
}
