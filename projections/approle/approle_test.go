package approle

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// log builds records at increasing positions.
type log struct {
	t    *testing.T
	recs []ledger.Record
}

func (l *log) add(typ string, payload any) {
	b, err := json.Marshal(payload)
	if err != nil {
		l.t.Fatal(err)
	}
	n := uint64(len(l.recs) + 1)
	l.recs = append(l.recs, ledger.Record{Event: ledger.Event{Type: typ, Time: t0.Add(time.Duration(n) * time.Second), Payload: b}, Pos: ledger.Position{Seq: n}})
}

func role(name, key, roleID string) Role {
	return Role{Name: name, Key: key, RoleID: roleID, BindSecretID: true, Created: t0, Updated: t0}
}

func secret(mac, acc, roleName, key string, uses int, exp time.Time) SecretID {
	return SecretID{MAC: mac, Accessor: acc, Role: roleName, RoleKey: key, NumUses: uses, CreationTime: t0, ExpirationTime: exp, LastUpdatedTime: t0}
}

func apply(t *testing.T, recs []ledger.Record) *View {
	t.Helper()
	v := New()
	for _, r := range recs {
		if err := v.Apply(r); err != nil {
			t.Fatalf("apply %s: %v", r.Type, err)
		}
	}
	return v
}

func TestFold(t *testing.T) {
	l := &log{t: t}
	l.add(RoleWritten, RoleWrittenPayload{Mount: "m1", Role: role("a", "ka", "rid-a")})
	l.add(RoleWritten, RoleWrittenPayload{Mount: "m1", Role: role("b", "kb", "rid-b")})
	l.add(SecretIDCreated, SecretIDCreatedPayload{Mount: "m1", SecretID: secret("mac1", "acc1", "a", "ka", 2, t0.Add(time.Hour))})
	l.add(SecretIDCreated, SecretIDCreatedPayload{Mount: "m1", SecretID: secret("mac2", "acc2", "a", "ka", 0, time.Time{})})
	l.add(SecretIDCreated, SecretIDCreatedPayload{Mount: "m1", SecretID: secret("mac3", "acc3", "b", "kb", 1, time.Time{})})
	l.add(SecretIDCreated, SecretIDCreatedPayload{Mount: "m1", SecretID: secret("stale", "acc4", "b", "old-key", 0, time.Time{})}) // another incarnation's
	l.add(SecretIDCreated, SecretIDCreatedPayload{Mount: "m1", SecretID: secret("orphan", "acc5", "zz", "kz", 0, time.Time{})})    // no such role
	l.add(SecretIDUsed, SecretIDUsedPayload{Mount: "m1", MAC: "mac1", Time: t0.Add(time.Minute)})
	l.add(SecretIDUsed, SecretIDUsedPayload{Mount: "m1", MAC: "mac3", Time: t0.Add(time.Minute)}) // its last use
	l.add(SecretIDUsed, SecretIDUsedPayload{Mount: "m1", MAC: "mac2", Time: t0.Add(time.Minute)}) // unlimited: nothing to count
	l.add(RoleWritten, RoleWrittenPayload{Mount: "m1", Role: role("a", "ka", "rid-a2")})          // new role_id
	l.add(RoleWritten, RoleWrittenPayload{Mount: "m2", Role: role("a", "k2", "rid-a")})           // same names elsewhere

	v := apply(t, l.recs)
	if got := v.Roles("m1"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("roles %v", got)
	}
	if _, ok := v.RoleByRoleID("m1", "rid-a"); ok {
		t.Fatal("old role_id still resolves")
	}
	if r, ok := v.RoleByRoleID("m1", "rid-a2"); !ok || r.Name != "a" {
		t.Fatal("new role_id does not resolve")
	}
	if r, ok := v.RoleByRoleID("m2", "rid-a"); !ok || r.Key != "k2" {
		t.Fatal("mounts are not separate")
	}
	if got := v.Accessors("m1", "a"); !reflect.DeepEqual(got, []string{"acc1", "acc2"}) {
		t.Fatalf("a's accessors %v", got)
	}
	if got := v.Accessors("m1", "b"); len(got) != 0 {
		t.Fatalf("b's accessors %v: spent or foreign secret IDs kept", got)
	}
	s, ok := v.SecretID("m1", "mac1")
	if !ok || s.NumUses != 1 || !s.LastUpdatedTime.Equal(t0.Add(time.Minute)) {
		t.Fatalf("mac1 %+v", s)
	}
	if s, ok := v.SecretIDByAccessor("m1", "acc2"); !ok || s.MAC != "mac2" || s.NumUses != 0 {
		t.Fatalf("acc2 %+v", s)
	}
	if got := v.Expired("m1", t0.Add(time.Hour), 0); len(got) != 1 || got[0].MAC != "mac1" {
		t.Fatalf("expired %+v", got)
	}
	if forever, _ := v.SecretID("m1", "mac2"); forever.Expired(t0.Add(100 * 365 * 24 * time.Hour)) {
		t.Fatal("a secret ID without expiration expired")
	}
	if !s.Expired(t0.Add(time.Hour)) || s.Expired(t0.Add(time.Hour-time.Nanosecond)) {
		t.Fatal("expiry is not exactly at expiration_time")
	}

	viewtest.Conformance(t, func() projections.View { return New() }, l.recs)
}

func TestDeleteAndDisable(t *testing.T) {
	l := &log{t: t}
	l.add(RoleWritten, RoleWrittenPayload{Mount: "m1", Role: role("a", "ka", "rid-a")})
	l.add(SecretIDCreated, SecretIDCreatedPayload{Mount: "m1", SecretID: secret("mac1", "acc1", "a", "ka", 0, time.Time{})})
	l.add(RoleDeleted, RoleDeletedPayload{Mount: "m1", Name: "a"})
	l.add(RoleWritten, RoleWrittenPayload{Mount: "m1", Role: role("a", "ka2", "rid-a")}) // recreated
	l.add(SecretIDCreated, SecretIDCreatedPayload{Mount: "m1", SecretID: secret("late", "acc9", "a", "ka", 0, time.Time{})})
	l.add(RoleWritten, RoleWrittenPayload{Mount: "m2", Role: role("x", "kx", "rid-x")})
	v := apply(t, l.recs)
	if _, ok := v.SecretID("m1", "mac1"); ok {
		t.Fatal("secret ID survived its role")
	}
	if _, ok := v.SecretID("m1", "late"); ok {
		t.Fatal("the deleted incarnation's secret ID reached the new role")
	}
	if r, ok := v.RoleByRoleID("m1", "rid-a"); !ok || r.Key != "ka2" {
		t.Fatal("recreated role not indexed")
	}

	dis, _ := json.Marshal(mount.DisabledPayload{Path: "auth/approle/", UUID: "m1"})
	l.recs = append(l.recs, ledger.Record{Event: ledger.Event{Type: mount.Disabled, Payload: dis}, Pos: ledger.Position{Seq: 100}})
	l.add(RoleWritten, RoleWrittenPayload{Mount: "m1", Role: role("late", "kl", "rid-l")})
	v = apply(t, l.recs)
	if got := v.Roles("m1"); len(got) != 0 {
		t.Fatalf("roles of a disabled mount: %v", got)
	}
	if got := v.Roles("m2"); !reflect.DeepEqual(got, []string{"x"}) {
		t.Fatalf("another mount was touched: %v", got)
	}
	viewtest.Conformance(t, func() projections.View { return New() }, l.recs)
}

func TestMalformed(t *testing.T) {
	for _, rec := range []ledger.Record{
		{Event: ledger.Event{Type: RoleWritten, Payload: []byte("{")}},
		{Event: ledger.Event{Type: RoleWritten, Payload: []byte(`{"mount":"m","role":{"name":"a"}}`)}},
		{Event: ledger.Event{Type: SecretIDCreated, Payload: []byte(`{"mount":"m","secret_id":{"role":"a"}}`)}},
	} {
		if err := New().Apply(rec); err == nil {
			t.Errorf("accepted %s %s", rec.Type, rec.Payload)
		}
	}
	if err := New().Apply(ledger.Record{Event: ledger.Event{Type: "kv.version.written.v1", Payload: []byte("x")}}); err != nil {
		t.Fatalf("unknown event types must be ignored: %v", err)
	}
}
