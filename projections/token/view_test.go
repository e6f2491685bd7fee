package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type history struct {
	t    *testing.T
	recs []ledger.Record
}

func (l *history) add(typ string, payload any) ledger.Record {
	l.t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		l.t.Fatal(err)
	}
	r := ledger.Record{
		Event: ledger.Event{Type: typ, Payload: b, Time: t0},
		Pos:   ledger.Position{Seq: uint64(len(l.recs) + 1)},
	}
	l.recs = append(l.recs, r)
	return r
}

func created(mac, parent string, ttl time.Duration, uses int) CreatedPayload {
	p := CreatedPayload{
		MAC: mac, Accessor: "acc-" + mac, ParentMAC: parent, Orphan: parent == "",
		Policies: []string{"default", "p-" + mac}, DisplayName: "token", Path: "auth/token/create",
		CreationTime: t0, TTL: ttl, NumUses: uses, Renewable: true, Type: "service",
		Meta: map[string]string{"who": mac},
	}
	if ttl > 0 {
		p.ExpireTime = t0.Add(ttl)
	}
	return p
}

// realistic is a token life: a root token, a tree under it, renewals, a limited-use token used
// up, a tree revoked children first, and a revoke-orphan.
func realistic(t *testing.T) []ledger.Record {
	l := &history{t: t}
	l.add(Created, created("root", "", 0, 0))
	l.add(Created, created("a", "root", time.Hour, 0))
	l.add(Created, created("b", "a", 30*time.Minute, 0))
	l.add(Created, created("c", "b", 10*time.Minute, 0))
	l.add(Created, created("lim", "", time.Hour, 2))
	l.add("kv.version.written.v1", map[string]string{"path": "ignored"})
	l.add(Renewed, RenewedPayload{MAC: "a", TTL: 2 * time.Hour, ExpireTime: t0.Add(3 * time.Hour), RenewTime: t0.Add(time.Hour)})
	l.add(Used, UsedPayload{MAC: "lim"})
	l.add(Used, UsedPayload{MAC: "a"}) // unlimited: no effect
	l.add(Created, created("p", "root", time.Hour, 0))
	l.add(Created, created("q", "p", time.Hour, 0))
	l.add(Created, created("r", "q", time.Hour, 0))
	l.add(Revoked, RevokedPayload{MAC: "c", Reason: "parent revoked"})
	l.add(Revoked, RevokedPayload{MAC: "b", Reason: "parent revoked"})
	l.add(Revoked, RevokedPayload{MAC: "a", Reason: "revoked"})
	l.add(Used, UsedPayload{MAC: "lim"})
	l.add(Revoked, RevokedPayload{MAC: "p", Reason: "revoked", OrphanChildren: true})
	l.add(Revoked, RevokedPayload{MAC: "gone", Reason: "revoked"})
	l.add(RoleWritten, Role{Name: "ci", AllowedPolicies: []string{"deploy"}, Renewable: true, Period: time.Hour})
	l.add(RoleWritten, Role{Name: "nomad", DisallowedPolicies: []string{"root"}, Orphan: true, NumUses: 3})
	l.add(RoleWritten, Role{Name: "ci", AllowedPolicies: []string{"deploy", "read"}, Renewable: false, ExplicitMaxTTL: 2 * time.Hour})
	l.add(RoleWritten, Role{Name: "gone-role", Renewable: true})
	l.add(RoleDeleted, RoleDeletedPayload{Name: "gone-role"})
	l.add(RoleDeleted, RoleDeletedPayload{Name: "never-was"})
	return l.recs
}

func TestConformance(t *testing.T) {
	viewtest.Conformance(t, func() projections.View { return New() }, realistic(t))
}

func applyAll(t *testing.T, v *View, recs []ledger.Record) {
	t.Helper()
	for _, r := range recs {
		if err := v.Apply(r); err != nil {
			t.Fatalf("apply %s at %s: %v", r.Type, r.Pos, err)
		}
	}
}

func TestRealisticEndState(t *testing.T) {
	v := New()
	applyAll(t, v, realistic(t))

	if got, want := v.Len(), 3; got != want {
		t.Fatalf("Len = %d, want %d (root, q, r)", got, want)
	}
	for _, gone := range []string{"a", "b", "c", "lim", "p"} {
		if _, ok := v.ByMAC(gone); ok {
			t.Errorf("%s still in view", gone)
		}
		if _, ok := v.ByAccessor("acc-" + gone); ok {
			t.Errorf("accessor of %s still in view", gone)
		}
	}
	q, ok := v.ByMAC("q")
	if !ok || q.ParentMAC != "" || !q.Orphan {
		t.Fatalf("q after revoke-orphan of p = %+v, want an orphan", q)
	}
	if kids := v.Children("q"); !reflect.DeepEqual(kids, []string{"r"}) {
		t.Fatalf("Children(q) = %v", kids)
	}
	if kids := v.Children("p"); len(kids) != 0 {
		t.Fatalf("Children(p) = %v after revoke-orphan", kids)
	}
	if got := v.Accessors(); !reflect.DeepEqual(got, []string{"acc-q", "acc-r", "acc-root"}) {
		t.Fatalf("Accessors = %v", got)
	}
	if kids := v.Children("root"); len(kids) != 0 {
		t.Fatalf("Children(root) = %v", kids)
	}
}

func TestRenewUseAndCopySemantics(t *testing.T) {
	l := &history{t: t}
	v := New()
	applyAll(t, v, []ledger.Record{
		l.add(Created, created("a", "", time.Hour, 3)),
	})
	before, _ := v.ByMAC("a")
	applyAll(t, v, []ledger.Record{
		l.add(Renewed, RenewedPayload{MAC: "a", TTL: 2 * time.Hour, ExpireTime: t0.Add(2 * time.Hour), RenewTime: t0.Add(time.Minute)}),
		l.add(Used, UsedPayload{MAC: "a"}),
	})
	after, _ := v.ByMAC("a")
	if before.TTL != time.Hour || before.UsesLeft != 3 || !before.LastRenewal.IsZero() {
		t.Fatalf("an Entry read before Apply changed: %+v", before)
	}
	if after.TTL != 2*time.Hour || after.CreationTTL != time.Hour || after.UsesLeft != 2 ||
		!after.ExpireTime.Equal(t0.Add(2*time.Hour)) || !after.LastRenewal.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after renew+use: %+v", after)
	}
	applyAll(t, v, []ledger.Record{l.add(Used, UsedPayload{MAC: "a"})})
	if e, ok := v.ByMAC("a"); !ok || e.UsesLeft != 1 {
		t.Fatalf("after 2 uses: %+v %v", e, ok)
	}
	applyAll(t, v, []ledger.Record{l.add(Used, UsedPayload{MAC: "a"})})
	if _, ok := v.ByMAC("a"); ok {
		t.Fatal("token with num_uses 3 survived its third use")
	}
	if _, ok := v.NextExpiry(); ok {
		t.Fatal("used-up token left in the expiry index")
	}
}

func TestExpiryIndex(t *testing.T) {
	l := &history{t: t}
	v := New()
	if _, ok := v.NextExpiry(); ok {
		t.Fatal("empty view has a next expiry")
	}
	// 200 tokens expiring one minute apart, created in a scrambled order, plus a root token.
	applyAll(t, v, []ledger.Record{l.add(Created, created("root", "", 0, 0))})
	for i := 0; i < 200; i++ {
		n := (i * 37) % 200
		applyAll(t, v, []ledger.Record{l.add(Created, created(fmt.Sprintf("t%03d", n), "", time.Duration(n+1)*time.Minute, 0))})
	}
	next, ok := v.NextExpiry()
	if !ok || !next.Equal(t0.Add(time.Minute)) {
		t.Fatalf("NextExpiry = %v %v", next, ok)
	}
	if got := v.Expiring(t0, 0); len(got) != 0 {
		t.Fatalf("Expiring before any expiry = %d entries", len(got))
	}
	now := t0.Add(50 * time.Minute) // t000..t049 expired (t049 exactly at now)
	all := v.Expiring(now, 0)
	if len(all) != 50 {
		t.Fatalf("Expiring(now, 0) = %d entries, want 50", len(all))
	}
	for i, e := range all {
		if want := fmt.Sprintf("t%03d", i); e.MAC != want {
			t.Fatalf("Expiring[%d] = %s, want %s (earliest first)", i, e.MAC, want)
		}
	}
	if got := v.Expiring(now, 7); len(got) != 7 || got[6].MAC != "t006" {
		t.Fatalf("Expiring(now, 7) = %d entries ending %s", len(got), got[len(got)-1].MAC)
	}
	// Renewing the earliest moves it out; revoking the next removes it.
	applyAll(t, v, []ledger.Record{
		l.add(Renewed, RenewedPayload{MAC: "t000", TTL: time.Hour, ExpireTime: t0.Add(10 * time.Hour), RenewTime: now}),
		l.add(Revoked, RevokedPayload{MAC: "t001", Reason: "expired"}),
	})
	if got := v.Expiring(now, 1); len(got) != 1 || got[0].MAC != "t002" {
		t.Fatalf("after renew/revoke, first expiring = %+v", got)
	}
	if next, _ := v.NextExpiry(); !next.Equal(t0.Add(3 * time.Minute)) {
		t.Fatalf("NextExpiry = %v", next)
	}
	if n := len(v.Expiring(t0.Add(1000*time.Hour), 0)); n != 199 {
		t.Fatalf("everything expiring = %d, want 199 (the root token never expires)", n)
	}
	// Restore rebuilds the index.
	snap, err := v.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	w := New()
	if err := w.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(macs(w.Expiring(now, 0)), macs(v.Expiring(now, 0))) {
		t.Fatal("expiry index differs after restore")
	}
}

func macs(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.MAC
	}
	return out
}

func TestApplyRejectsMalformed(t *testing.T) {
	cases := []struct {
		name, typ string
		payload   string
	}{
		{"created not json", Created, "{"},
		{"created wrong type", Created, `{"mac": 7}`},
		{"created without mac", Created, `{"accessor": "x"}`},
		{"created without accessor", Created, `{"mac": "x"}`},
		{"renewed without mac", Renewed, `{"ttl": 5}`},
		{"renewed bad ttl", Renewed, `{"mac": "x", "ttl": "1h"}`},
		{"used not json", Used, `nope`},
		{"used without mac", Used, `{}`},
		{"revoked without mac", Revoked, `{"reason": "revoked"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := New()
			err := v.Apply(ledger.Record{Event: ledger.Event{Type: tc.typ, Payload: []byte(tc.payload)}})
			if !errors.Is(err, errMalformed) {
				t.Fatalf("Apply = %v, want a malformed-payload error", err)
			}
			if v.Len() != 0 {
				t.Fatal("malformed event changed the view")
			}
		})
	}
	if err := New().Apply(ledger.Record{Event: ledger.Event{Type: "other.v1", Payload: []byte("{")}}); err != nil {
		t.Fatalf("unknown type: %v", err)
	}
}

func TestRestoreRejects(t *testing.T) {
	for name, data := range map[string]string{
		"garbage":           "not a snapshot",
		"version":           `{"v": 2, "tokens": []}`,
		"no mac":            `{"v": 1, "tokens": [{"accessor": "a"}]}`,
		"duplicate mac":     `{"v": 1, "tokens": [{"mac": "m", "accessor": "a"}, {"mac": "m", "accessor": "b"}]}`,
		"duplicate accessr": `{"v": 1, "tokens": [{"mac": "m", "accessor": "a"}, {"mac": "n", "accessor": "a"}]}`,
	} {
		if err := New().Restore([]byte(data)); err == nil {
			t.Errorf("%s: Restore accepted it", name)
		}
	}
}

// TestConcurrentReads runs readers against a writer; -race checks the locking.
func TestConcurrentReads(t *testing.T) {
	l := &history{t: t}
	var recs []ledger.Record
	for i := 0; i < 300; i++ {
		recs = append(recs, l.add(Created, created(fmt.Sprintf("m%d", i), "", time.Duration(i+1)*time.Second, 0)))
		if i%3 == 0 {
			recs = append(recs, l.add(Revoked, RevokedPayload{MAC: fmt.Sprintf("m%d", i/2), Reason: "revoked"}))
		}
	}
	v := New()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v.ByMAC("m1")
				v.ByAccessor("acc-m2")
				v.Expiring(t0.Add(time.Minute), 10)
				v.NextExpiry()
				v.Accessors()
				v.Children("x")
				v.Digest()
			}
		}()
	}
	applyAll(t, v, recs)
	close(stop)
	wg.Wait()
}

func BenchmarkByMAC(b *testing.B) {
	v := New()
	for i := 0; i < 10000; i++ {
		p := created(fmt.Sprintf("m%d", i), "", time.Hour, 0)
		raw, _ := json.Marshal(p)
		if err := v.Apply(ledger.Record{Event: ledger.Event{Type: Created, Payload: raw}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := v.ByMAC("m5000"); !ok {
			b.Fatal("missing")
		}
	}
}

// A create and its parent's revocation can land in either order; the child never survives.
func TestChildNeverOutlivesParentInEitherOrder(t *testing.T) {
	mk := func(seq uint64, typ string, p any) ledger.Record {
		b, _ := json.Marshal(p)
		return ledger.Record{Event: ledger.Event{Type: typ, Payload: b}, Pos: ledger.Position{Seq: seq}}
	}
	parent := CreatedPayload{MAC: "p", Accessor: "ap", Policies: []string{"default"}}
	child := CreatedPayload{MAC: "c", Accessor: "ac", ParentMAC: "p", Policies: []string{"default"}}
	grandchild := CreatedPayload{MAC: "g", Accessor: "ag", ParentMAC: "c", Policies: []string{"default"}}
	revoke := RevokedPayload{MAC: "p", Reason: "revoked"}

	t.Run("revocation decided before the child landed", func(t *testing.T) {
		v := New()
		for i, r := range []ledger.Record{mk(1, Created, parent), mk(2, Created, child), mk(3, Created, grandchild), mk(4, Revoked, revoke)} {
			if err := v.Apply(r); err != nil {
				t.Fatal(i, err)
			}
		}
		if v.Len() != 0 {
			t.Fatalf("%d tokens survive their revoked ancestor", v.Len())
		}
	})
	t.Run("child lands after the revocation", func(t *testing.T) {
		v := New()
		for _, r := range []ledger.Record{mk(1, Created, parent), mk(2, Revoked, revoke), mk(3, Created, child)} {
			if err := v.Apply(r); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok := v.ByMAC("c"); ok {
			t.Fatal("a child of a revoked parent was added")
		}
	})
}

func TestRolesEndState(t *testing.T) {
	v := New()
	for _, r := range realistic(t) {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.RoleNames(); !reflect.DeepEqual(got, []string{"ci", "nomad"}) {
		t.Fatalf("roles %v", got)
	}
	ci, ok := v.Role("ci")
	if !ok || !reflect.DeepEqual(ci.AllowedPolicies, []string{"deploy", "read"}) || ci.Renewable || ci.Period != 0 || ci.ExplicitMaxTTL != 2*time.Hour {
		t.Fatalf("ci is not its last write: %+v", ci)
	}
	b, err := v.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	w := New()
	if err := w.Restore(b); err != nil {
		t.Fatal(err)
	}
	if r, ok := w.Role("nomad"); !ok || !r.Orphan || r.NumUses != 3 {
		t.Fatalf("restored nomad: %+v %v", r, ok)
	}
	// A view without roles snapshots as before roles existed, so older digests still match.
	if e := New(); !strings.Contains(mustSnap(t, e), `"tokens":[]`) || strings.Contains(mustSnap(t, e), "roles") {
		t.Fatalf("empty snapshot changed shape: %s", mustSnap(t, e))
	}
	if err := w.Apply(ledger.Record{Event: ledger.Event{Type: RoleWritten, Payload: []byte(`{"name":""}`)}, Pos: ledger.Position{Seq: 999}}); !errors.Is(err, errMalformed) {
		t.Fatalf("role without a name: %v", err)
	}
	if err := w.Restore([]byte(`{"v":1,"tokens":[],"roles":[{"name":"a"},{"name":"a"}]}`)); !errors.Is(err, errMalformed) {
		t.Fatalf("duplicate role in a snapshot: %v", err)
	}
}

func mustSnap(t *testing.T, v *View) string {
	t.Helper()
	b, err := v.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
