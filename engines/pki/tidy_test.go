package pki

import (
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	pkiview "github.com/ledger-secrets/ledger/projections/pki"
)

// TestAutoTidyDue: nothing while disabled; when enabled, expired certificates past the safety
// buffer go (revoked ones only with tidy_revoked_certs), and the next run waits the interval.
func TestAutoTidyDue(t *testing.T) {
	v := pkiview.New()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []pkiview.Cert{
		{Serial: "01", IssuerID: "i", NotAfter: now.Add(-100 * time.Hour)},
		{Serial: "02", IssuerID: "i", NotAfter: now.Add(-100 * time.Hour)},
		{Serial: "03", IssuerID: "i", NotAfter: now.Add(-time.Hour)}, // inside the safety buffer
		{Serial: "04", IssuerID: "i", NotAfter: now.Add(time.Hour)},
	} {
		apply(t, v, pkiview.CertStored, pkiview.CertPayload{Mount: "m", Cert: c})
	}
	apply(t, v, pkiview.CertRevoked, pkiview.RevokedPayload{Mount: "m", Serial: "02", Time: now.Add(-200 * time.Hour)})
	b := New(v, engines.Mount{UUID: "m"})
	if evs := b.AutoTidyDue(now); evs != nil {
		t.Fatalf("auto-tidy ran while disabled: %d events", len(evs))
	}
	apply(t, v, pkiview.ConfigWritten, pkiview.ConfigPayload{Mount: "m", Config: pkiview.Config{AutoTidy: pkiview.AutoTidy{
		Enabled: true, Interval: time.Hour, TidyCertStore: true, SafetyBuffer: 72 * time.Hour}}})
	evs := b.AutoTidyDue(now)
	if len(evs) != 1 {
		t.Fatalf("want one tidy event, got %d", len(evs))
	}
	for _, ev := range evs {
		if err := v.Apply(recordOf(ev)); err != nil {
			t.Fatal(err)
		}
	}
	for serial, want := range map[string]bool{"01": false, "02": true, "03": true, "04": true} {
		if _, ok := v.Cert("m", serial); ok != want {
			t.Errorf("cert %s stored=%v, want %v", serial, ok, want)
		}
	}
	if evs := b.AutoTidyDue(now.Add(30 * time.Minute)); evs != nil {
		t.Fatal("auto-tidy ran again before its interval")
	}
	if evs := b.AutoTidyDue(now.Add(2 * time.Hour)); len(evs) != 1 {
		t.Fatal("auto-tidy did not run after its interval")
	}
}

func TestCRLRotateDue(t *testing.T) {
	v := pkiview.New()
	apply(t, v, pkiview.IssuerCreated, pkiview.IssuerPayload{Mount: "m", Issuer: pkiview.Issuer{ID: "i", KeyID: "k"}})
	apply(t, v, pkiview.IssuerCreated, pkiview.IssuerPayload{Mount: "m", Issuer: pkiview.Issuer{ID: "nokey"}})
	b := New(v, engines.Mount{UUID: "m"})
	// apply stamps records with the wall clock: the CRL is fresh at that time.
	if evs := b.CRLRotateDue(time.Now()); len(evs) != 0 {
		t.Fatalf("a fresh CRL was rotated: %d events", len(evs))
	}
	if evs := b.CRLRotateDue(time.Now().Add(37 * time.Hour)); len(evs) != 1 {
		t.Fatalf("want the keyed issuer's CRL rotated past half its 72h expiry, got %d events", len(evs))
	}
}
