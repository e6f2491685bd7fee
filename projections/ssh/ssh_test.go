package ssh

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
	return ledger.Record{Event: ledger.Event{Type: typ, Payload: b}, Pos: ledger.Position{Seq: seq}}
}

func sample() []ledger.Record {
	return []ledger.Record{
		rec(1, CAConfigured, CAPayload{Mount: "m1", CA: CA{PrivateKey: []byte("secret"), PublicKey: "ssh-ed25519 AAAA"}}),
		rec(2, CAConfigured, CAPayload{Mount: "m1", CA: CA{PrivateKey: []byte("second"), PublicKey: "ssh-ed25519 BBBB"}}), // lost a race: ignored
		rec(3, RoleWritten, RolePayload{Mount: "m1", Role: Role{Name: "u", KeyType: "ca", AllowedUsers: "*", TTL: time.Hour,
			DefaultExtensions: map[string]string{"permit-pty": ""}, AllowedUserKeyLengths: map[string][]int{"rsa": {2048}}}}),
		rec(4, RoleWritten, RolePayload{Mount: "m1", Role: Role{Name: "gone", KeyType: "otp"}}),
		rec(5, RoleDeleted, DeletedPayload{Mount: "m1", ID: "gone"}),
		rec(6, OTPIssued, OTPPayload{Mount: "m1", OTP: OTP{Hash: "h1", Username: "ubuntu", IP: "10.0.0.1", Role: "o", Expires: t0}}),
		rec(7, OTPIssued, OTPPayload{Mount: "m1", OTP: OTP{Hash: "h2", Username: "ubuntu", IP: "10.0.0.2", Role: "o", Expires: t0}}),
		rec(8, OTPUsed, OTPUsedPayload{Mount: "m1", Hash: "h1"}),
		rec(9, CAConfigured, CAPayload{Mount: "m2", CA: CA{PrivateKey: []byte("x"), PublicKey: "y"}}),
		rec(10, CADeleted, DeletedPayload{Mount: "m2"}),
		rec(11, mount.Disabled, mount.DisabledPayload{Path: "ssh3/", UUID: "m3"}),
		rec(12, RoleWritten, RolePayload{Mount: "m3", Role: Role{Name: "late"}}),
		rec(13, "unrelated.v1", map[string]string{}),
	}
}

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, sample())
}

func TestApply(t *testing.T) {
	v := New()
	for _, r := range sample() {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if ca, ok := v.CA("m1"); !ok || string(ca.PrivateKey) != "secret" {
		t.Fatalf("CA %v %v: the first configuration must win", ca, ok)
	}
	if _, ok := v.CA("m2"); ok {
		t.Fatal("deleted CA still there")
	}
	if _, ok := v.OTP("m1", "h1"); ok {
		t.Fatal("used OTP still there")
	}
	if _, ok := v.OTP("m1", "h2"); !ok {
		t.Fatal("unused OTP missing")
	}
	if got := v.Roles("m1"); len(got) != 1 || got[0] != "u" {
		t.Fatalf("roles %v", got)
	}
	if _, ok := v.Role("m3", "late"); ok {
		t.Fatal("event after disable applied")
	}
}
