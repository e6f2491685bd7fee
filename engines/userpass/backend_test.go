package userpass

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
	userpassview "github.com/ledger-secrets/ledger/projections/userpass"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func TestUserLifecycle(t *testing.T) {
	h := newHarness(t)
	h.fails(listing("users/"), engines.ErrNotFound, "")
	h.user("Alice", "correct horse battery staple", `"token_policies":"dev,ops","token_ttl":"1h"`)
	h.user("bob", "hunter2-but-longer", `"policies":"reader"`)
	if got := h.ok(listing("users/")).Data["keys"]; !reflect.DeepEqual(got, []string{"alice", "bob"}) {
		t.Fatalf("list %v", got)
	}
	d := h.ok(read("users/ALICE")).Data
	if !reflect.DeepEqual(d["token_policies"], []string{"dev", "ops"}) || d["token_ttl"] != int64(3600) || d["token_type"] != "default" {
		t.Fatalf("read %v", d)
	}
	for k := range d {
		if strings.Contains(k, "password") || strings.Contains(k, "hash") {
			t.Fatalf("read shows %s", k)
		}
	}
	if d := h.ok(read("users/bob")).Data; !reflect.DeepEqual(d["policies"], []string{"reader"}) || !reflect.DeepEqual(d["token_policies"], []string{"reader"}) {
		t.Fatalf("legacy policies %v", d)
	}

	resp := h.ok(h.loginFrom("192.0.2.10:5000", "alice", "correct horse battery staple"))
	a := resp.Auth
	if a == nil || !strings.HasPrefix(a.ClientToken, "hvs.") || !reflect.DeepEqual(a.Policies, []string{"default", "dev", "ops"}) ||
		a.LeaseDuration != time.Hour || !a.Renewable || !a.Orphan || a.TokenType != "service" ||
		!reflect.DeepEqual(a.Metadata, map[string]string{"username": "alice"}) {
		t.Fatalf("auth %+v", a)
	}
	tok, ok := h.tokens.ByMAC(h.kr.MAC("token", a.ClientToken))
	if !ok || tok.Path != "auth/userpass/login/alice" || tok.DisplayName != "userpass-alice" || tok.Meta["username"] != "alice" || !tok.Orphan {
		t.Fatalf("token entry %+v", tok)
	}
	h.ok(h.loginFrom("192.0.2.10:5000", "ALICE", "correct horse battery staple")) // names are case-insensitive

	h.fails(h.loginFrom("192.0.2.11:5000", "alice", "wrong"), engines.ErrBadRequest, "invalid username or password")
	h.fails(h.loginFrom("192.0.2.12:5000", "mallory", "wrong"), engines.ErrBadRequest, "invalid username or password")
	h.fails(write("login/alice", `{}`), engines.ErrBadRequest, "missing password")

	// Password and policy changes.
	h.mu.Lock()
	h.secrets = append(h.secrets, "new-password-1")
	h.mu.Unlock()
	h.ok(write("users/alice/password", `{"password":"new-password-1"}`))
	h.fails(h.loginFrom("192.0.2.13:5000", "alice", "correct horse battery staple"), engines.ErrBadRequest, "invalid username or password")
	h.ok(write("users/alice/policies", `{"token_policies":"Admin"}`))
	if got := h.ok(h.loginFrom("192.0.2.13:5000", "alice", "new-password-1")).Auth.Policies; !reflect.DeepEqual(got, []string{"admin", "default"}) {
		t.Fatalf("policies after change %v", got)
	}
	if d := h.ok(read("users/alice")).Data; d["token_ttl"] != int64(3600) {
		t.Fatalf("a policy change lost the TTL: %v", d)
	}
	h.fails(write("users/nobody/password", `{"password":"x"}`), engines.ErrBadRequest, "username does not exist")
	h.fails(write("users/nobody/policies", `{"token_policies":"x"}`), engines.ErrBadRequest, "username does not exist")

	// An update without a password keeps it.
	h.ok(write("users/alice", `{"token_ttl":"2h"}`))
	h.ok(h.loginFrom("192.0.2.13:5000", "alice", "new-password-1"))

	h.ok(del("users/alice"))
	h.fails(h.loginFrom("192.0.2.14:5000", "alice", "new-password-1"), engines.ErrBadRequest, "invalid username or password")
	h.fails(read("users/alice"), engines.ErrNotFound, "")
	h.noSecretInEvents()
}

func TestUserValidation(t *testing.T) {
	h := newHarness(t)
	tests := []struct{ name, path, body, msg string }{
		{"no password", "users/u", `{"token_policies":"x"}`, "missing password"},
		{"empty password", "users/u", `{"password":""}`, "missing password"},
		{"password not a string", "users/u", `{"password":{"a":1}}`, `field "password": expected a string`},
		{"slash", "users/a/b", `{"password":"p"}`, `invalid username "a/b": usernames cannot contain "/"`},
		{"batch", "users/u", `{"password":"p","token_type":"batch"}`, "batch tokens are not supported"},
		{"ttl over max", "users/u", `{"password":"p","token_ttl":"2h","token_max_ttl":"1h"}`, "'token_ttl' cannot be greater than 'token_max_ttl'"},
		{"bad cidr", "users/u", `{"password":"p","token_bound_cidrs":"nope"}`, "invalid token_bound_cidrs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.fails(write(tc.path, tc.body), engines.ErrBadRequest, tc.msg)
		})
	}
	if len(h.recs) != 0 {
		t.Fatal("a refused write decided events")
	}
	ok, err := h.b.Exists(context.Background(), &engines.Request{Op: engines.OpUpdate, Path: "users/u"})
	if err != nil || ok {
		t.Fatalf("Exists on a new user: %v %v", ok, err)
	}
}

// TestPasswordNeverInClear checks the event carries the argon2id hash with its parameters, and
// that neither events, errors, responses nor snapshots carry the password.
func TestPasswordNeverInClear(t *testing.T) {
	h := newHarness(t)
	const pw = "s3cr3t-Pa55word!"
	h.user("carol", pw, "")
	h.fails(h.loginFrom("192.0.2.1:1", "carol", pw+"x"), engines.ErrBadRequest, "invalid username or password")

	var written userpassview.UserWrittenPayload
	found := false
	for _, r := range h.recs {
		if bytes.Contains(r.Payload, []byte(pw)) {
			t.Fatalf("event %s carries the password", r.Type)
		}
		if r.Type == userpassview.UserWritten {
			if err := json.Unmarshal(r.Payload, &written); err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	if !found || !strings.HasPrefix(written.User.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("stored hash %q", written.User.PasswordHash)
	}
	if !verify(written.User.PasswordHash, []byte(pw)) || verify(written.User.PasswordHash, []byte(pw+"x")) {
		t.Fatal("stored hash does not verify the password")
	}
	snap, err := h.view.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	h.noSecretIn(string(snap))
	h.noSecretIn(fmt.Sprint(h.ok(read("users/carol")).Data))
}

// TestUnknownUserCostsAHash: a login for a user that does not exist verifies against the dummy
// hash, so it takes about as long as a wrong password for one that does. Without it, it would
// be thousands of times faster; the bound is loose so the test is not flaky.
func TestUnknownUserCostsAHash(t *testing.T) {
	h := newHarness(t)
	h.user("dave", "password-of-dave", "")
	measure := func(user string) time.Duration {
		var ds []time.Duration
		for i := range 3 {
			h.advance(time.Minute) // stay within the rate limits
			start := time.Now()
			h.fails(h.loginFrom(fmt.Sprintf("192.0.2.%d:1", i+1), user, "wrong"), engines.ErrBadRequest, "invalid username or password")
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[1]
	}
	known, unknown := measure("dave"), measure("nobody-by-this-name")
	if unknown*10 < known {
		t.Fatalf("unknown user %v, known user %v: the unknown user's login skipped the hash", unknown, known)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t)
	h.user("erin", "erins-password", "")
	h.user("frank", "franks-password", "")
	limited := "too many failed login attempts for this user or source; retry after 12s"

	// Per user: five failures from five sources lock the user out everywhere, right password or not.
	for i := range LoginFailures {
		h.fails(h.loginFrom(fmt.Sprintf("203.0.113.%d:1", i+1), "erin", "guess"), engines.ErrBadRequest, "invalid username or password")
	}
	h.fails(h.loginFrom("203.0.113.99:1", "erin", "erins-password"), engines.ErrRateLimited, limited)
	h.ok(h.loginFrom("203.0.113.99:1", "frank", "franks-password")) // others are not affected

	// Per source: five failures against five users (existing or not) lock the source out.
	for i := range LoginFailures {
		h.fails(h.loginFrom("198.51.100.7:4000", fmt.Sprintf("user%d", i), "guess"), engines.ErrBadRequest, "invalid username or password")
	}
	h.fails(h.loginFrom("198.51.100.7:4001", "frank", "franks-password"), engines.ErrRateLimited, limited)
	h.ok(h.loginFrom("198.51.100.8:4000", "frank", "franks-password"))

	// The budget comes back with time.
	h.advance(12 * time.Second)
	h.ok(h.loginFrom("198.51.100.7:4000", "frank", "franks-password"))
	h.ok(h.loginFrom("203.0.113.99:1", "erin", "erins-password"))

	// Successes cost nothing.
	h.advance(time.Minute)
	for range LoginFailures + 1 {
		h.ok(h.loginFrom("198.51.100.9:1", "frank", "franks-password"))
	}
	h.noSecretInEvents()
}

func TestBoundCIDRs(t *testing.T) {
	h := newHarness(t)
	h.user("gina", "ginas-password", `"token_bound_cidrs":["10.0.0.0/8","192.0.2.5"]`)
	h.fails(h.loginFrom("172.16.0.1:1", "gina", "ginas-password"), engines.ErrPermissionDenied, "permission denied")
	resp := h.ok(h.loginFrom("10.1.2.3:1", "gina", "ginas-password"))
	tok, _ := h.tokens.ByMAC(h.kr.MAC("token", resp.Auth.ClientToken))
	if !reflect.DeepEqual(tok.BoundCIDRs, []string{"10.0.0.0/8", "192.0.2.5"}) {
		t.Fatalf("token bound to %v", tok.BoundCIDRs)
	}
	h.ok(h.loginFrom("192.0.2.5:1", "gina", "ginas-password"))
	// The deprecated bound_cidrs is token_bound_cidrs.
	h.ok(write("users/gina", `{"bound_cidrs":"127.0.0.1"}`))
	if d := h.ok(read("users/gina")).Data; !reflect.DeepEqual(d["bound_cidrs"], []string{"127.0.0.1"}) || !reflect.DeepEqual(d["token_bound_cidrs"], []string{"127.0.0.1"}) {
		t.Fatalf("legacy bound_cidrs %v", d)
	}
}

func TestPHC(t *testing.T) {
	h := hashPassword([]byte("pw"))
	if !verify(h, []byte("pw")) || verify(h, []byte("pW")) {
		t.Fatal("round trip")
	}
	bad := []string{
		"", "plain", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", // 4 GiB: refused
		"$argon2id$v=19$m=19456,t=99,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$a2V5a2V5a2V5a2V5a2V5",
	}
	for _, s := range bad {
		if _, ok := parsePHC(s); ok {
			t.Errorf("parsePHC accepted %q", s)
		}
		if verify(s, []byte("pw")) {
			t.Errorf("verify accepted %q", s)
		}
	}
}

func TestViewConformance(t *testing.T) {
	h := newHarness(t)
	h.user("a", "pw-a", `"token_policies":"x"`)
	h.user("b", "pw-b", `"policies":"y","ttl":"1h"`)
	h.ok(h.loginFrom("10.0.0.1:1", "a", "pw-a"))
	h.ok(write("users/a/policies", `{"token_policies":"z"}`))
	h.ok(write("users/b/password", `{"password":"pw-b2"}`))
	h.ok(del("users/a"))
	h.user("c", "pw-c", "")

	recs := append([]ledger.Record(nil), h.recs...)
	newView := func() projections.View { return userpassview.New() }
	viewtest.Conformance(t, newView, recs)

	dis, _ := json.Marshal(mount.DisabledPayload{Path: "auth/userpass/", UUID: h.mount.UUID})
	last := recs[len(recs)-1].Pos.Seq
	recs = append(recs,
		ledger.Record{Event: ledger.Event{Type: mount.Disabled, Payload: dis}, Pos: ledger.Position{Seq: last + 1}},
		ledger.Record{Event: recs[0].Event, Pos: ledger.Position{Seq: last + 2}}, // a straggler
	)
	v := userpassview.New()
	for _, r := range recs {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if users := v.Users(h.mount.UUID); len(users) != 0 {
		t.Fatalf("users after the mount was disabled: %v", users)
	}
	viewtest.Conformance(t, newView, recs)
}
