package database

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func rec(t *testing.T, seq uint64, typ string, payload any) ledger.Record {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Record{Event: ledger.Event{Type: typ, Payload: b, Time: t0}, Pos: ledger.Position{Seq: seq}}
}

func history(t *testing.T) []ledger.Record {
	cfg := Config{PluginName: "postgresql-database-plugin", ConnectionURL: "postgres://{{username}}:{{password}}@h/db",
		Username: "vault_admin", Password: "vault-managed-2026", AllowedRoles: []string{"app-*"}, VerifyConnection: true}
	return []ledger.Record{
		rec(t, 1, ConfigWritten, ConfigPayload{Mount: "m1", Name: "production-db", Config: cfg}),
		rec(t, 2, RoleWritten, RolePayload{Mount: "m1", Name: "app-readonly", Role: Role{DBName: "production-db",
			CreationStatements: []string{`CREATE ROLE "{{name}}"`}, DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour}}),
		rec(t, 3, RootRotated, RootRotatedPayload{Mount: "m1", Name: "production-db", Password: "only-ledger-knows"}),
		rec(t, 4, StaticRoleWritten, StaticRolePayload{Mount: "m1", Name: "app", Role: StaticRole{DBName: "production-db",
			Username: "app_user", RotationPeriod: time.Hour, Password: "p1", LastRotation: t0, Generation: 1}}),
		rec(t, 5, StaticRoleRotated, StaticRotatedPayload{Mount: "m1", Name: "app", Password: "p3", Time: t0.Add(2 * time.Minute), Generation: 3}),
		// Generation 2 reached the log after 3: the database holds p3, and so must the view.
		rec(t, 6, StaticRoleRotated, StaticRotatedPayload{Mount: "m1", Name: "app", Password: "p2", Time: t0.Add(time.Minute), Generation: 2}),
		rec(t, 7, StaticRoleWritten, StaticRolePayload{Mount: "m1", Name: "app", Role: StaticRole{DBName: "production-db",
			Username: "app_user", RotationPeriod: 2 * time.Hour, Password: "p1", LastRotation: t0, Generation: 1}}),
		rec(t, 8, ConfigWritten, ConfigPayload{Mount: "m2", Name: "other", Config: cfg}),
		rec(t, 9, RoleWritten, RolePayload{Mount: "m1", Name: "gone", Role: Role{DBName: "production-db"}}),
		rec(t, 10, RoleDeleted, DeletedPayload{Mount: "m1", Name: "gone"}),
		rec(t, 11, mount.Disabled, mount.DisabledPayload{Path: "db2/", UUID: "m2"}),
		rec(t, 12, ConfigWritten, ConfigPayload{Mount: "m2", Name: "late", Config: cfg}),
	}
}

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, history(t))
}

func TestApply(t *testing.T) {
	v := New()
	for _, r := range history(t) {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	c, ok := v.Config("m1", "production-db")
	if !ok || c.Password != "only-ledger-knows" {
		t.Fatalf("config after root rotation: %+v %v", c, ok)
	}
	sr, _ := v.StaticRole("m1", "app")
	if sr.Password != "p3" || sr.Generation != 3 || !sr.LastRotation.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("static role keeps the highest generation: %+v", sr)
	}
	if sr.RotationPeriod != 2*time.Hour {
		t.Fatalf("static role definition not updated: %+v", sr)
	}
	if got := v.Roles("m1"); len(got) != 1 || got[0] != "app-readonly" {
		t.Fatalf("roles: %v", got)
	}
	if got := v.Configs("m2"); len(got) != 0 {
		t.Fatalf("disabled mount kept state: %v", got)
	}
	if got := v.Mounts(); len(got) != 1 || got[0] != "m1" {
		t.Fatalf("mounts: %v", got)
	}
	// Unknown events are ignored; undecodable ones are errors.
	if err := v.Apply(ledger.Record{Event: ledger.Event{Type: "kv.version.written.v1", Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := v.Apply(ledger.Record{Event: ledger.Event{Type: RoleWritten, Payload: []byte("x")}}); err == nil {
		t.Fatal("garbage payload accepted")
	}
}
