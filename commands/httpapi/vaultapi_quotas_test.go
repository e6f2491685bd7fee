package httpapi_test

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

// quotaKeys lists the quotas of a type.
func quotaKeys(t *testing.T, c *vault.Client, typ string) []string {
	t.Helper()
	return listKeys(t, c, "sys/quotas/"+typ)
}

// TestQuotasRateLimit: rate-limit quotas through the official client: their shape, 429 with
// Vault's headers when enabled, the most specific quota wins, exempt paths, role quotas on
// logins, blocking, and bad inputs as 400s that change nothing.
func TestQuotasRateLimit(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	write := func(path string, body map[string]any) {
		t.Helper()
		if _, err := c.Logical().Write(path, body); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}

	cfg, err := c.Logical().Read("sys/quotas/config")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Data["enable_rate_limit_audit_logging"] != false || cfg.Data["enable_rate_limit_response_headers"] != false ||
		!sameStrings(strs(t, cfg.Data["rate_limit_exempt_paths"]), []string{"sys/generate-recovery-token/attempt", "sys/generate-recovery-token/update",
			"sys/generate-root/attempt", "sys/generate-root/update", "sys/health", "sys/seal-status", "sys/unseal"}) {
		t.Fatalf("default quota config = %v", cfg.Data)
	}
	if quotaKeys(t, c, "rate-limit") != nil {
		t.Fatal("a fresh server has rate-limit quotas")
	}

	write("secret/data/a", map[string]any{"data": map[string]any{"v": "1"}})
	write("sys/quotas/rate-limit/kv", map[string]any{"path": "secret/", "rate": 3, "interval": "1h"})
	q, err := c.Logical().Read("sys/quotas/rate-limit/kv")
	if err != nil {
		t.Fatal(err)
	}
	if q.Data["type"] != "rate-limit" || q.Data["name"] != "kv" || q.Data["path"] != "secret/" || q.Data["role"] != "" ||
		num(t, q.Data["interval"]) != 3600 || num(t, q.Data["block_interval"]) != 0 || q.Data["inheritable"] != false {
		t.Fatalf("quota = %v", q.Data)
	}
	if r, _ := q.Data["rate"].(interface{ Float64() (float64, error) }); r == nil {
		t.Fatalf("rate is %T, want a number", q.Data["rate"])
	}

	// Headers off: the limit applies, no headers.
	get := func(path string) rawResp { return raw(t, s.URL, http.MethodGet, path, nil, tokenHeader(s.RootToken)) }
	if r := get("secret/data/a"); r.Status != 200 || r.Header.Get("X-Ratelimit-Limit") != "" {
		t.Fatalf("first read: %d %v", r.Status, r.Header)
	}
	write("sys/quotas/config", map[string]any{"enable_rate_limit_response_headers": true})
	for i, want := range []string{"1", "0"} {
		r := get("secret/data/a")
		if r.Status != 200 || r.Header.Get("X-Ratelimit-Limit") != "3" || r.Header.Get("X-Ratelimit-Remaining") != want {
			t.Fatalf("read %d: %d limit=%q remaining=%q", i+2, r.Status, r.Header.Get("X-Ratelimit-Limit"), r.Header.Get("X-Ratelimit-Remaining"))
		}
		if reset, err := strconv.Atoi(r.Header.Get("X-Ratelimit-Reset")); err != nil || reset < 1 || reset > 3600 {
			t.Fatalf("X-Ratelimit-Reset = %q", r.Header.Get("X-Ratelimit-Reset"))
		}
	}
	r := get("secret/data/a")
	if r.Status != http.StatusTooManyRequests || r.errs(t)[0] != `request path "secret/data/a": rate limit quota exceeded` {
		t.Fatalf("fourth read: %d %s", r.Status, r.Body)
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 3600 || r.Header.Get("X-Ratelimit-Remaining") != "0" {
		t.Fatalf("429 headers: %v", r.Header)
	}
	_, err = c.Logical().Read("secret/data/a")
	respErr(t, err, 429, "rate limit quota exceeded")
	// Other mounts are not limited by a mount quota, and the limit holds before authentication.
	if r := get("sys/mounts"); r.Status != 200 {
		t.Fatalf("sys/mounts under a secret/ quota: %d", r.Status)
	}
	if r := raw(t, s.URL, http.MethodGet, "secret/data/a", nil, nil); r.Status != 429 {
		t.Fatalf("unauthenticated read of a limited path: %d, want 429 before the 403", r.Status)
	}

	// The most specific quota wins: a path quota under the mount with an exempt sub-path.
	write("sys/quotas/rate-limit/one", map[string]any{"path": "secret/data/one", "rate": 1, "interval": "1h", "block_interval": "30m"})
	write("sys/quotas/config", map[string]any{"enable_rate_limit_response_headers": true, "rate_limit_exempt_paths": []string{"secret/data/one/free*"}})
	if r := get("secret/data/one/x"); r.Status != 404 || r.Header.Get("X-Ratelimit-Limit") != "1" {
		t.Fatalf("first read under the path quota: %d %v", r.Status, r.Header)
	}
	r = get("secret/data/one/x")
	if r.Status != 429 || r.Header.Get("Retry-After") != "1800" {
		t.Fatalf("second read under a blocking path quota: %d Retry-After=%q", r.Status, r.Header.Get("Retry-After"))
	}
	for range 3 {
		if r := get("secret/data/one/free/x"); r.Status != 404 {
			t.Fatalf("exempt path: %d", r.Status)
		}
	}
	cfg, _ = c.Logical().Read("sys/quotas/config")
	if got := strs(t, cfg.Data["rate_limit_exempt_paths"]); !sameStrings(got, []string{"secret/data/one/free*"}) || cfg.Data["enable_rate_limit_response_headers"] != true {
		t.Fatalf("config = %v", cfg.Data)
	}

	// Role quotas on logins: bob is limited, alice is not.
	if err := c.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		write("auth/userpass/users/"+u, map[string]any{"password": "pw-" + u})
	}
	write("sys/quotas/rate-limit/bob", map[string]any{"path": "auth/userpass", "role": "bob", "rate": 1, "interval": "1h"})
	login := func(u string) error {
		_, err := s.Client(t, "").Logical().Write("auth/userpass/login/"+u, map[string]any{"password": "pw-" + u})
		return err
	}
	for range 3 {
		if err := login("alice"); err != nil {
			t.Fatalf("alice under bob's quota: %v", err)
		}
	}
	if err := login("bob"); err != nil {
		t.Fatal(err)
	}
	respErr(t, login("bob"), 429, "rate limit quota exceeded")

	// Bad inputs: 400, and nothing changes.
	if err := c.Sys().EnableAuthWithOptions("token2", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"nomount", map[string]any{"path": "nowhere/", "rate": 1}, `invalid mount path "nowhere/"`},
		{"zero", map[string]any{"rate": 0}, "'rate' is invalid"},
		{"negative", map[string]any{"rate": -2}, "'rate' is invalid"},
		{"norate", map[string]any{"path": "secret/"}, `field "rate" is required`},
		{"text", map[string]any{"rate": "lots"}, "expected a number"},
		{"interval", map[string]any{"rate": 1, "interval": "-1s"}, "interval"},
		{"block", map[string]any{"rate": 1, "block_interval": "soon"}, "block_interval"},
		{"roleonkv", map[string]any{"path": "secret/", "role": "x", "rate": 1}, "not a valid auth method with roles"},
		{"roleandsuffix", map[string]any{"path": "auth/userpass/login", "role": "x", "rate": 1}, "both a path suffix and a role"},
		{"rolenopath", map[string]any{"role": "x", "rate": 1}, "needs the path of an auth method"},
		{"similar", map[string]any{"path": "secret/", "rate": 9}, `similar properties exists under the name "kv"`},
		{"typed", map[string]any{"rate": 1, "type": "lease-count"}, `field "type"`},
		{"dots", map[string]any{"path": "secret/../sys/", "rate": 1}, "invalid path"},
		{"-bad", map[string]any{"rate": 1}, "invalid quota name"},
	} {
		_, err := c.Logical().Write("sys/quotas/rate-limit/"+tc.name, tc.body)
		respErr(t, err, 400, tc.want)
	}
	_, err = c.Logical().Write("sys/quotas/config", map[string]any{"enable_rate_limit_response_headers": "maybe"})
	respErr(t, err, 400, "enable_rate_limit_response_headers")
	if got := quotaKeys(t, c, "rate-limit"); !sameStrings(got, []string{"bob", "kv", "one"}) {
		t.Fatalf("refused writes changed the quotas: %v", got)
	}

	// A global quota applies everywhere, the more specific ones keep theirs.
	write("sys/quotas/rate-limit/global", map[string]any{"rate": 1000})
	if q, _ := c.Logical().Read("sys/quotas/rate-limit/global"); q.Data["path"] != "" || q.Data["inheritable"] != true {
		t.Fatalf("global quota = %v", q.Data)
	}
	if r := get("sys/mounts"); r.Status != 200 || r.Header.Get("X-Ratelimit-Limit") != "1000" {
		t.Fatalf("global quota on sys/mounts: %d %v", r.Status, r.Header)
	}

	// Rewriting a quota starts its counters over; deleting it lifts the limit.
	write("sys/quotas/rate-limit/kv", map[string]any{"path": "secret/", "rate": 2, "interval": "1h"})
	if r := get("secret/data/a"); r.Status != 200 || r.Header.Get("X-Ratelimit-Limit") != "2" {
		t.Fatalf("after rewrite: %d %v", r.Status, r.Header)
	}
	if _, err := c.Logical().Delete("sys/quotas/rate-limit/kv"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if r := get("secret/data/a"); r.Status != 200 || r.Header.Get("X-Ratelimit-Limit") != "1000" {
			t.Fatalf("after delete (global quota only): %d %v", r.Status, r.Header)
		}
	}
	if q, err := c.Logical().Read("sys/quotas/rate-limit/kv"); err != nil || q != nil {
		t.Fatalf("deleted quota reads %v %v", q, err)
	}

	// The quota view is rebuilt from the log like every other.
	v, err := c.Logical().Write("sys/ledger/replay/verify", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range v.Data["views"].([]any) {
		if m := e.(map[string]any); m["name"] == "quota" {
			found = m["match"] == true
		}
	}
	if v.Data["ok"] != true || !found {
		t.Fatalf("replay verify does not match the quota view: %v", v.Data)
	}
}

// TestQuotasLeaseCount: lease-count quotas (as OpenBao offers them) limit the live leases under
// a path: login tokens of an auth method and database credentials; revoking frees room.
func TestQuotasLeaseCount(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	if err := c.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("auth/userpass/users/alice", map[string]any{"password": "pw", "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("sys/quotas/lease-count/logins", map[string]any{"path": "auth/userpass/", "max_leases": 2}); err != nil {
		t.Fatal(err)
	}
	login := func() (*vault.Secret, error) {
		return s.Client(t, "").Logical().Write("auth/userpass/login/alice", map[string]any{"password": "pw"})
	}
	first, err := login()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := login(); err != nil {
		t.Fatal(err)
	}
	_, err = login()
	respErr(t, err, 429, "lease count quota exceeded")
	q, err := c.Logical().Read("sys/quotas/lease-count/logins")
	if err != nil {
		t.Fatal(err)
	}
	if q.Data["type"] != "lease-count" || q.Data["path"] != "auth/userpass/" || num(t, q.Data["max_leases"]) != 2 ||
		num(t, q.Data["counter"]) != 2 || q.Data["inheritable"] != false {
		t.Fatalf("lease-count quota = %v", q.Data)
	}
	if err := s.Client(t, first.Auth.ClientToken).Auth().Token().RevokeSelf(""); err != nil {
		t.Fatal(err)
	}
	if _, err := login(); err != nil {
		t.Fatalf("login after a revocation freed room: %v", err)
	}
	if got := quotaKeys(t, c, "lease-count"); !sameStrings(got, []string{"logins"}) {
		t.Fatalf("lease-count list = %v", got)
	}
	for _, tc := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"none", map[string]any{"path": "auth/userpass/"}, `"max_leases" is required`},
		{"zero", map[string]any{"max_leases": 0}, "'max_leases' is invalid"},
		{"nomount", map[string]any{"path": "nowhere/", "max_leases": 1}, "invalid mount path"},
		{"similar", map[string]any{"path": "auth/userpass", "max_leases": 5}, `under the name "logins"`},
	} {
		_, err := c.Logical().Write("sys/quotas/lease-count/"+tc.name, tc.body)
		respErr(t, err, 400, tc.want)
	}
	if got := quotaKeys(t, c, "lease-count"); !sameStrings(got, []string{"logins"}) {
		t.Fatalf("refused writes changed the list: %v", got)
	}

	// Database credentials: one live lease allowed; the refused request creates no user.
	l := dbtest.LessonPostgres(t)
	dbConfigure(t, c, l, "*")
	dbRole(t, c, l, "readonly", "1h", "24h")
	if _, err := c.Logical().Write("sys/quotas/lease-count/db", map[string]any{"path": "database/creds/readonly", "max_leases": 1}); err != nil {
		t.Fatal(err)
	}
	cr := dbCreds(t, c, l, "readonly")
	_, err = c.Logical().Read("database/creds/readonly")
	respErr(t, err, 429, "lease count quota exceeded")
	if n := len(dbLeases(t, c, "database/creds/readonly/")); n != 1 {
		t.Fatalf("%d leases after a refused issue, want 1", n)
	}
	if err := c.Sys().Revoke(cr.leaseID); err != nil {
		t.Fatal(err)
	}
	dbCreds(t, c, l, "readonly")
}

// TestQuotasLeaseCountConcurrent: concurrent logins cannot overshoot a lease-count quota.
func TestQuotasLeaseCountConcurrent(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	if err := c.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("auth/userpass/users/alice", map[string]any{"password": "pw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("sys/quotas/lease-count/three", map[string]any{"path": "auth/userpass/", "max_leases": 3}); err != nil {
		t.Fatal(err)
	}
	const n = 12
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := s.Client(t, "").Logical().Write("auth/userpass/login/alice", map[string]any{"password": "pw"})
			errs <- err
		}()
	}
	ok := 0
	for range n {
		err := <-errs
		if err == nil {
			ok++
			continue
		}
		respErr(t, err, 429, "lease count quota exceeded")
	}
	if ok != 3 {
		t.Fatalf("%d logins succeeded under a quota of 3", ok)
	}
}

// TestQuotasRateLimitAudit: a request refused by a rate limit is audited only when
// enable_rate_limit_audit_logging is set, as in Vault.
func TestQuotasRateLimitAudit(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := c.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": path}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("sys/quotas/rate-limit/one", map[string]any{"path": "secret/data/limited", "rate": 1, "interval": "1h"}); err != nil {
		t.Fatal(err)
	}
	refused := func(lines []auditLine) int {
		n := 0
		for _, l := range find(lines, "response", "read", "secret/data/limited") {
			if strings.Contains(l.Error, "rate limit quota exceeded") {
				n++
			}
		}
		return n
	}
	get := func() int {
		return raw(t, s.URL, http.MethodGet, "secret/data/limited", nil, tokenHeader(s.RootToken)).Status
	}
	if st := get(); st != 404 {
		t.Fatalf("first read: %d", st)
	}
	if st := get(); st != 429 {
		t.Fatalf("second read: %d", st)
	}
	// A later audited request proves the device caught up; the refusal is not in it.
	if _, err := c.Logical().Write("sys/quotas/config", map[string]any{"enable_rate_limit_audit_logging": true}); err != nil {
		t.Fatal(err)
	}
	lines := waitForLines(t, path, 10*time.Second, "the config write audited", func(l []auditLine) bool {
		return len(find(l, "response", "update", "sys/quotas/config")) > 0
	})
	if n := refused(lines); n != 0 {
		t.Fatalf("%d refusals audited without enable_rate_limit_audit_logging", n)
	}
	if st := get(); st != 429 {
		t.Fatalf("third read: %d", st)
	}
	waitForLines(t, path, 10*time.Second, "the refusal audited", func(l []auditLine) bool { return refused(l) == 1 })
}
