package approle

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	approleview "github.com/ledger-secrets/ledger/projections/approle"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestLessonFlow is the ci-pipeline walk-through of the course, verbatim:
//
//	vault write auth/approle/role/ci-pipeline token_policies="ci-deploy" token_ttl=1h token_max_ttl=4h secret_id_ttl=10m
//	vault read auth/approle/role/ci-pipeline/role-id
//	vault write -f auth/approle/role/ci-pipeline/secret-id
//	vault write auth/approle/login role_id=... secret_id=...
func TestLessonFlow(t *testing.T) {
	h := newHarness(t)
	// The CLI sends key=value pairs as strings.
	h.ok(write("role/ci-pipeline", `{"token_policies":"ci-deploy","token_ttl":"1h","token_max_ttl":"4h","secret_id_ttl":"10m"}`))

	role := h.ok(read("role/ci-pipeline")).Data
	for k, want := range map[string]any{
		"token_policies": []string{"ci-deploy"}, "token_ttl": int64(3600), "token_max_ttl": int64(14400),
		"secret_id_ttl": int64(600), "bind_secret_id": true, "secret_id_num_uses": 0, "token_type": "default",
		"token_bound_cidrs": []string{}, "secret_id_bound_cidrs": []string{}, "local_secret_ids": false,
		"token_no_default_policy": false, "token_period": int64(0), "token_num_uses": 0, "token_explicit_max_ttl": int64(0),
	} {
		if !reflect.DeepEqual(role[k], want) {
			t.Errorf("role %s = %#v, want %#v", k, role[k], want)
		}
	}
	if _, ok := role["policies"]; ok {
		t.Error("deprecated policies shown though only token_policies was written")
	}

	roleID := h.roleID("ci-pipeline")
	if !uuidRE.MatchString(roleID) {
		t.Fatalf("role_id %q is not a UUID", roleID)
	}

	gen := h.ok(call{op: engines.OpUpdate, path: "role/ci-pipeline/secret-id"}).Data // write -f: no body
	secretID, _ := gen["secret_id"].(string)
	if !uuidRE.MatchString(secretID) || !uuidRE.MatchString(gen["secret_id_accessor"].(string)) {
		t.Fatalf("secret-id answer %v", gen)
	}
	if gen["secret_id_ttl"] != int64(600) || gen["secret_id_num_uses"] != 0 {
		t.Fatalf("secret-id ttl/uses %v", gen)
	}

	resp := h.ok(loginFrom("203.0.113.7:41000", roleID, secretID))
	a := resp.Auth
	if a == nil || !strings.HasPrefix(a.ClientToken, "hvs.") || a.Accessor == "" {
		t.Fatalf("login auth %+v", a)
	}
	if !reflect.DeepEqual(a.Policies, []string{"ci-deploy", "default"}) || !reflect.DeepEqual(a.TokenPolicies, a.Policies) {
		t.Fatalf("policies %v / %v", a.Policies, a.TokenPolicies)
	}
	if a.LeaseDuration != time.Hour || !a.Renewable || !a.Orphan || a.TokenType != "service" {
		t.Fatalf("auth %+v", a)
	}
	if !reflect.DeepEqual(a.Metadata, map[string]string{"role_name": "ci-pipeline"}) {
		t.Fatalf("metadata %v", a.Metadata)
	}
	tok, ok := h.tokens.ByMAC(h.kr.MAC("token", a.ClientToken))
	if !ok {
		t.Fatal("token not in the token view")
	}
	if tok.Path != "auth/approle/login" || tok.DisplayName != "approle" || tok.Accessor != a.Accessor || !tok.Orphan ||
		tok.TTL != time.Hour || !tok.ExpireTime.Equal(h.clock().Add(time.Hour)) || tok.ExplicitMaxTTL != 4*time.Hour ||
		!reflect.DeepEqual(tok.Policies, a.Policies) || tok.Meta["role_name"] != "ci-pipeline" {
		t.Fatalf("token entry %+v", tok)
	}

	// role_id alone, secret_id alone.
	h.fails(write("login", fmt.Sprintf(`{"role_id":%q}`, roleID)), engines.ErrBadRequest, "missing secret_id")
	h.fails(write("login", fmt.Sprintf(`{"secret_id":%q}`, secretID)), engines.ErrBadRequest, "missing role_id")

	// The secret ID lives exactly 10 minutes: valid a nanosecond before, dead at the instant.
	h.advance(10*time.Minute - time.Nanosecond)
	h.ok(loginFrom("203.0.113.7:41000", roleID, secretID))
	h.advance(time.Nanosecond)
	h.fails(loginFrom("203.0.113.7:41000", roleID, secretID), engines.ErrBadRequest, "invalid role or secret ID")

	h.noSecretInEvents()
}

func TestLoginErrorsDoNotEnumerate(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/a", `{}`))
	roleID := h.roleID("a")
	secretID, _ := h.secretID("a", "")
	const generic = "invalid role or secret ID"
	for i, c := range []call{
		loginFrom("10.0.0.1:1", "no-such-role-id", secretID),
		loginFrom("10.0.0.2:1", roleID, "no-such-secret-id"),
		loginFrom("10.0.0.3:1", "no-such-role-id", "no-such-secret-id"),
		loginFrom("10.0.0.4:1", roleID, secretID+"x"),
		loginFrom("10.0.0.5:1", strings.ToUpper(roleID), secretID),
	} {
		if err := h.fails(c, engines.ErrBadRequest, generic); err == nil {
			t.Fatalf("case %d", i)
		}
	}
	h.ok(loginFrom("10.0.0.6:1", roleID, secretID))
}

func TestSecretIDOfAnotherRole(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/a", `{"token_policies":"pa"}`))
	h.ok(write("role/b", `{"token_policies":"pb"}`))
	sa, _ := h.secretID("a", "")
	sb, _ := h.secretID("b", "")
	h.fails(loginFrom("10.0.0.1:1", h.roleID("b"), sa), engines.ErrBadRequest, "invalid role or secret ID")
	h.fails(loginFrom("10.0.0.1:1", h.roleID("a"), sb), engines.ErrBadRequest, "invalid role or secret ID")

	// The same custom secret ID on two roles is two credentials, each for its own role.
	h.ok(write("role/a/custom-secret-id", `{"secret_id":"shared-secret"}`))
	h.ok(write("role/b/custom-secret-id", `{"secret_id":"shared-secret"}`))
	h.fails(write("role/a/custom-secret-id", `{"secret_id":"shared-secret"}`), engines.ErrBadRequest, "SecretID is already registered")
	if got := h.ok(loginFrom("10.0.0.2:1", h.roleID("a"), "shared-secret")).Auth.Policies; !reflect.DeepEqual(got, []string{"default", "pa"}) {
		t.Fatalf("a: %v", got)
	}
	if got := h.ok(loginFrom("10.0.0.2:1", h.roleID("b"), "shared-secret")).Auth.Policies; !reflect.DeepEqual(got, []string{"default", "pb"}) {
		t.Fatalf("b: %v", got)
	}
	h.noSecretInEvents()
}

func TestSecretIDNumUses(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/r", `{"secret_id_num_uses":2}`))
	roleID := h.roleID("r")
	h.fails(write("role/r/secret-id", `{"num_uses":3}`), engines.ErrBadRequest, "num_uses cannot be higher than the role's secret_id_num_uses")
	h.fails(write("role/r/secret-id", `{"num_uses":0}`), engines.ErrBadRequest, "num_uses cannot be higher than the role's secret_id_num_uses")
	h.fails(write("role/r/secret-id", `{"num_uses":-1}`), engines.ErrBadRequest, "num_uses cannot be negative")

	sid, acc := h.secretID("r", "")
	h.ok(loginFrom("10.0.0.1:1", roleID, sid))
	got := h.ok(write("role/r/secret-id-accessor/lookup", fmt.Sprintf(`{"secret_id_accessor":%q}`, acc))).Data
	if got["secret_id_num_uses"] != 1 {
		t.Fatalf("after one use: %v", got)
	}
	h.ok(loginFrom("10.0.0.1:1", roleID, sid))
	h.fails(loginFrom("10.0.0.1:1", roleID, sid), engines.ErrBadRequest, "invalid role or secret ID")
	h.fails(write("role/r/secret-id-accessor/lookup", fmt.Sprintf(`{"secret_id_accessor":%q}`, acc)), engines.ErrNotFound, "")

	// A smaller per-secret count.
	one, _ := h.secretID("r", `{"num_uses":1}`)
	h.ok(loginFrom("10.0.0.2:1", roleID, one))
	h.fails(loginFrom("10.0.0.2:1", roleID, one), engines.ErrBadRequest, "invalid role or secret ID")

	// Every use is an event of its own.
	used := 0
	for _, r := range h.recs {
		if r.Type == approleview.SecretIDUsed {
			used++
		}
	}
	if used != 3 {
		t.Fatalf("%d use events, want 3", used)
	}
}

// TestConcurrentLoginsSpendEachUseOnce races logins with one secret ID; the lock key makes the
// second see the first one's use, so a secret ID with n uses yields exactly n tokens.
func TestConcurrentLoginsSpendEachUseOnce(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/r", `{}`))
	roleID := h.roleID("r")
	sid, _ := h.secretID("r", `{"num_uses":2}`)

	const racers = 5 // within the per-role_id budget, so every racer reaches the check
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		wins    int
		invalid int
	)
	start := make(chan struct{})
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := h.do(loginFrom(fmt.Sprintf("10.0.1.%d:1", i), roleID, sid))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case err.Error() == "invalid role or secret ID":
				invalid++
			default:
				t.Errorf("racer: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins != 2 || invalid != racers-2 {
		t.Fatalf("%d logins succeeded and %d were refused, want 2 and %d", wins, invalid, racers-2)
	}
}

func TestCIDRRestrictions(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/net", `{"secret_id_bound_cidrs":"10.0.0.0/8","token_bound_cidrs":["10.0.0.0/8"]}`))
	roleID := h.roleID("net")

	// The secret ID's blocks must lie inside the role's.
	h.fails(write("role/net/secret-id", `{"cidr_list":"192.168.0.0/16"}`), engines.ErrBadRequest, "")
	h.fails(write("role/net/secret-id", `{"cidr_list":"not-a-cidr"}`), engines.ErrBadRequest, "failed to validate CIDR blocks")
	h.fails(write("role/net/secret-id", `{"token_bound_cidrs":"172.16.0.0/12"}`), engines.ErrBadRequest, "")

	sid, _ := h.secretID("net", `{"cidr_list":"10.1.0.0/16","token_bound_cidrs":"10.1.2.0/24"}`)
	tests := []struct {
		name, remote, msg string
	}{
		{"outside the secret's block", "10.2.0.1:5000", `source address "10.2.0.1" unauthorized through CIDR restrictions on the secret ID`},
		{"outside every block", "192.168.1.1:5000", `source address "192.168.1.1" unauthorized through CIDR restrictions on the secret ID`},
		{"no address", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := loginFrom(tc.remote, roleID, sid)
			if tc.remote == "" {
				c.remote = "garbage"
			}
			h.fails(c, engines.ErrBadRequest, tc.msg)
		})
	}
	resp := h.ok(loginFrom("10.1.2.3:5000", roleID, sid))
	tok, _ := h.tokens.ByMAC(h.kr.MAC("token", resp.Auth.ClientToken))
	if !reflect.DeepEqual(tok.BoundCIDRs, []string{"10.1.2.0/24"}) {
		t.Fatalf("token bound to %v, want the secret ID's token_bound_cidrs", tok.BoundCIDRs)
	}

	// Without its own blocks, a secret ID follows the role's, and the token the role's token CIDRs.
	plain, _ := h.secretID("net", "")
	h.fails(loginFrom("[2001:db8::1]:443", roleID, plain), engines.ErrBadRequest, `source address "2001:db8::1" unauthorized by CIDR restrictions on the role`)
	resp = h.ok(loginFrom("10.9.9.9:1", roleID, plain))
	tok, _ = h.tokens.ByMAC(h.kr.MAC("token", resp.Auth.ClientToken))
	if !reflect.DeepEqual(tok.BoundCIDRs, []string{"10.0.0.0/8"}) {
		t.Fatalf("token bound to %v, want the role's", tok.BoundCIDRs)
	}

	// bind_secret_id=false: the role_id and the source address are the credential.
	h.ok(write("role/open", `{"bind_secret_id":false,"secret_id_bound_cidrs":"127.0.0.1/32"}`))
	openID := h.roleID("open")
	h.ok(call{op: engines.OpUpdate, path: "login", body: fmt.Sprintf(`{"role_id":%q}`, openID), remote: "127.0.0.1:9"})
	h.fails(call{op: engines.OpUpdate, path: "login", body: fmt.Sprintf(`{"role_id":%q}`, openID), remote: "127.0.0.2:9"},
		engines.ErrBadRequest, `source address "127.0.0.2" unauthorized by CIDR restrictions on the role`)
	h.fails(write("role/open/secret-id", ""), engines.ErrBadRequest, "bind_secret_id is not set on the role")
}

func TestLoginTokenShape(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/p", `{"token_policies":["Web","web","root-ish"],"token_no_default_policy":true,"token_period":"30m","token_num_uses":3,"token_explicit_max_ttl":"2h"}`))
	sid, _ := h.secretID("p", `{"metadata":"{\"team\":\"payments\",\"role_name\":\"spoofed\"}"}`)
	resp := h.ok(loginFrom("10.0.0.1:1", h.roleID("p"), sid))
	a := resp.Auth
	if !reflect.DeepEqual(a.Policies, []string{"root-ish", "web"}) || a.LeaseDuration != 30*time.Minute || a.NumUses != 3 {
		t.Fatalf("auth %+v", a)
	}
	if !reflect.DeepEqual(a.Metadata, map[string]string{"team": "payments", "role_name": "p"}) {
		t.Fatalf("metadata %v", a.Metadata)
	}
	tok, _ := h.tokens.ByMAC(h.kr.MAC("token", a.ClientToken))
	if tok.Period != 30*time.Minute || tok.ExplicitMaxTTL != 2*time.Hour || tok.NumUses != 3 || tok.UsesLeft != 3 {
		t.Fatalf("token %+v", tok)
	}

	// A TTL above the role's max is capped, with Vault's warning.
	h.ok(write("role/capped", `{"token_max_ttl":"30m"}`)) // the mount's default TTL (768h) applies
	sid, _ = h.secretID("capped", "")
	resp = h.ok(loginFrom("10.0.0.1:1", h.roleID("capped"), sid))
	if resp.Auth.LeaseDuration != 30*time.Minute || len(resp.Warnings) != 1 {
		t.Fatalf("capped: %v %v", resp.Auth.LeaseDuration, resp.Warnings)
	}

	// Tokens from logins cannot be root.
	h.ok(write("role/root", `{"token_policies":"root"}`))
	sid, _ = h.secretID("root", "")
	h.fails(loginFrom("10.0.0.1:1", h.roleID("root"), sid), engines.ErrBadRequest, "auth methods cannot create root tokens")
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t)
	h.ok(write("role/r", `{}`))
	roleID := h.roleID("r")
	sid, _ := h.secretID("r", "")

	for i := range LoginFailures {
		h.fails(loginFrom("198.51.100.1:1000", "guess-role", fmt.Sprintf("guess-%d", i)), engines.ErrBadRequest, "invalid role or secret ID")
	}
	limited := "too many failed login attempts for this user or source; retry after 12s"
	// The source is limited, whatever role_id it tries, even the right credentials.
	h.fails(loginFrom("198.51.100.1:1000", "guess-role", "x"), engines.ErrRateLimited, limited)
	h.fails(loginFrom("198.51.100.1:2000", roleID, sid), engines.ErrRateLimited, limited)
	// The role_id is limited, whatever source tries it.
	h.fails(loginFrom("198.51.100.2:1000", "guess-role", "x"), engines.ErrRateLimited, limited)
	// Others are not.
	h.fails(loginFrom("198.51.100.3:1000", "other-role", "x"), engines.ErrBadRequest, "invalid role or secret ID")
	h.ok(loginFrom("198.51.100.3:1000", roleID, sid))

	// One attempt comes back every 12 seconds.
	h.advance(12 * time.Second)
	h.ok(loginFrom("198.51.100.1:1000", roleID, sid))
	h.fails(loginFrom("198.51.100.1:1000", "guess-role", "x"), engines.ErrBadRequest, "invalid role or secret ID")
	h.fails(loginFrom("198.51.100.1:1000", "guess-role", "x"), engines.ErrRateLimited, limited)

	// Successful logins cost nothing.
	for range 3 * LoginFailures {
		h.ok(loginFrom("198.51.100.9:1", roleID, sid))
	}
	// "missing secret_id" reveals a valid role_id, so it counts as a failure too.
	for range LoginFailures {
		h.fails(call{op: engines.OpUpdate, path: "login", body: fmt.Sprintf(`{"role_id":%q}`, roleID), remote: "198.51.100.10:1"}, engines.ErrBadRequest, "missing secret_id")
	}
	h.fails(loginFrom("198.51.100.11:1", roleID, sid), engines.ErrRateLimited, limited)
}
