package userpass

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func rec(t *testing.T, seq uint64, typ string, payload any) ledger.Record {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Record{Event: ledger.Event{Type: typ, Time: t0, Payload: b}, Pos: ledger.Position{Seq: seq}}
}

func user(name, hash string, pols ...string) User {
	return User{Name: name, PasswordHash: hash, Token: tokenview.Params{Policies: pols}, Created: t0, Updated: t0}
}

func TestFold(t *testing.T) {
	dis, _ := json.Marshal(mount.DisabledPayload{Path: "auth/old/", UUID: "m3"})
	recs := []ledger.Record{
		rec(t, 1, UserWritten, UserWrittenPayload{Mount: "m1", User: user("alice", "$argon2id$h1", "dev")}),
		rec(t, 2, UserWritten, UserWrittenPayload{Mount: "m1", User: user("bob", "$argon2id$h2")}),
		rec(t, 3, UserWritten, UserWrittenPayload{Mount: "m1", User: user("alice", "$argon2id$h3", "ops")}),
		rec(t, 4, UserWritten, UserWrittenPayload{Mount: "m2", User: user("alice", "$argon2id$h4")}),
		rec(t, 5, UserDeleted, UserDeletedPayload{Mount: "m1", Name: "bob"}),
		rec(t, 6, UserWritten, UserWrittenPayload{Mount: "m3", User: user("carol", "$argon2id$h5")}),
		{Event: ledger.Event{Type: mount.Disabled, Payload: dis}, Pos: ledger.Position{Seq: 7}},
		rec(t, 8, UserWritten, UserWrittenPayload{Mount: "m3", User: user("late", "$argon2id$h6")}),
	}
	v := New()
	for _, r := range recs {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.Users("m1"); !reflect.DeepEqual(got, []string{"alice"}) {
		t.Fatalf("m1 users %v", got)
	}
	if u, ok := v.User("m1", "alice"); !ok || u.PasswordHash != "$argon2id$h3" || !reflect.DeepEqual(u.Token.Policies, []string{"ops"}) {
		t.Fatalf("alice %+v", u)
	}
	if u, _ := v.User("m2", "alice"); u.PasswordHash != "$argon2id$h4" {
		t.Fatal("mounts are not separate")
	}
	if got := v.Users("m3"); len(got) != 0 {
		t.Fatalf("users of a disabled mount: %v", got)
	}
	viewtest.Conformance(t, func() projections.View { return New() }, recs)
}

func TestMalformed(t *testing.T) {
	for _, r := range []ledger.Record{
		{Event: ledger.Event{Type: UserWritten, Payload: []byte("{")}},
		rec(t, 1, UserWritten, UserWrittenPayload{Mount: "m", User: User{Name: "nohash"}}),
	} {
		if err := New().Apply(r); err == nil {
			t.Errorf("accepted %s", r.Payload)
		}
	}
}
