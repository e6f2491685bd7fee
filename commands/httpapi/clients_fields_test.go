package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// Unknown body fields are ignored with Vault's warning naming them, on every described
// endpoint (node-vault sends every argument in the body); a known field of the wrong type is
// still a 400 and changes nothing.
func TestUnknownFieldsWarn(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	h := tokenHeader(s.RootToken)
	post := func(path, body string) rawResp {
		t.Helper()
		return raw(t, s.URL, "POST", path, strings.NewReader(body), h)
	}
	warns := func(t *testing.T, r rawResp) []string {
		t.Helper()
		if r.Status != http.StatusOK {
			t.Fatalf("status %d %s, want 200 with warnings", r.Status, r.Body)
		}
		return strs(t, r.json(t)["warnings"])
	}
	ignoredWarning := func(names string) string { return "Endpoint ignored these unrecognized parameters: [" + names + "]" }

	t.Run("node-vault mount with mount_point", func(t *testing.T) {
		w := warns(t, post("sys/mounts/nodekv", `{"mount_point":"nodekv","type":"kv","description":"node test"}`))
		if len(w) != 1 || w[0] != ignoredWarning("mount_point") {
			t.Fatalf("warnings %q", w)
		}
		m, err := c.Sys().ListMounts()
		if err != nil {
			t.Fatal(err)
		}
		if mi := m["nodekv/"]; mi == nil || mi.Type != "kv" || mi.Description != "node test" {
			t.Fatalf("nodekv/ not mounted as asked: %+v", mi)
		}
	})
	t.Run("node-vault auth enable with mount_point", func(t *testing.T) {
		w := warns(t, post("sys/auth/userpass", `{"mount_point":"userpass","type":"userpass"}`))
		if len(w) != 1 || w[0] != ignoredWarning("mount_point") {
			t.Fatalf("warnings %q", w)
		}
		a, err := c.Sys().ListAuth()
		if err != nil {
			t.Fatal(err)
		}
		if a["userpass/"] == nil {
			t.Fatal("userpass/ not enabled")
		}
	})
	t.Run("case shadow: TTL beside ttl", func(t *testing.T) {
		r := post("auth/token/create", `{"policies":["default"],"ttl":"1h","TTL":"5h"}`)
		w := warns(t, r)
		if len(w) != 2 || w[0] != ignoredWarning("TTL") || !strings.Contains(w[1], `did you mean "ttl"`) {
			t.Fatalf("warnings %q", w)
		}
		auth, _ := r.json(t)["auth"].(map[string]any)
		if got := num(t, auth["lease_duration"]); got != 3600 {
			t.Fatalf("lease_duration %d, want 3600: the known field's value, TTL ignored", got)
		}
	})
	t.Run("transit encrypt with an extra field", func(t *testing.T) {
		if r := post("sys/mounts/transit", `{"type":"transit"}`); r.Status != http.StatusNoContent {
			t.Fatalf("mount transit: %d %s", r.Status, r.Body)
		}
		w := warns(t, post("transit/encrypt/k", `{"plaintext":"aGk=","key_name":"k","zeta":1}`))
		if len(w) != 1 || w[0] != ignoredWarning("key_name zeta") {
			t.Fatalf("warnings %q", w)
		}
	})
	t.Run("policy write with an extra field", func(t *testing.T) {
		w := warns(t, post("sys/policies/acl/p1", `{"policy_name":"p1","policy":"path \"x\" { capabilities = [\"read\"] }"}`))
		if len(w) != 1 || w[0] != ignoredWarning("policy_name") {
			t.Fatalf("warnings %q", w)
		}
	})
	t.Run("a path parameter repeated in the body is known", func(t *testing.T) {
		r := post("transit/keys/named", `{"name":"named","type":"aes256-gcm96"}`)
		if r.Status != http.StatusOK || r.json(t)["warnings"] != nil {
			t.Fatalf("create key with its name in the body: %d %s", r.Status, r.Body)
		}
	})
	t.Run("known fields are not warned about", func(t *testing.T) {
		for _, tc := range []struct{ path, body string }{
			{"sys/mounts/secret/tune", `{"default_lease_ttl":"1h","max_lease_ttl":"2h","description":"tuned"}`},
			{"sys/policies/acl/p2", `{"policy":"path \"y\" { capabilities = [\"read\"] }"}`},
			{"auth/token/roles/r1", `{"allowed_policies":["p1"],"token_period":"1h","path_suffix":"x"}`},
			{"secret/data/known", `{"data":{"a":"b"},"options":{"cas":0}}`},
		} {
			r := post(tc.path, tc.body)
			if r.Status == http.StatusOK && r.json(t)["warnings"] != nil || r.Status >= 300 {
				t.Fatalf("POST %s: %d %s", tc.path, r.Status, r.Body)
			}
		}
	})
	t.Run("small sys endpoints warn too", func(t *testing.T) {
		for _, tc := range []struct{ path, body, ignored string }{
			{"sys/tools/random/8", `{"bites":3}`, "bites"},
			{"sys/tools/hash", `{"input":"aGk=","salt":"x"}`, "salt"},
			{"sys/policies/password/pp", `{"policy":"length = 8\nrule \"charset\" {\n  charset = \"abcdefgh\"\n}","length":3}`, "length"},
			{"sys/quotas/rate-limit/q", `{"rate":5,"burst":3}`, "burst"},
			{"sys/quotas/lease-count/lc", `{"max_leases":5,"rate":3}`, "rate"},
			{"sys/quotas/config", `{"enable_rate_limit_audit_logging":false,"x":1}`, "x"},
			{"sys/config/cors", `{"allowed_origins":"https://a.example","max_age":3}`, "max_age"},
		} {
			w := warns(t, post(tc.path, tc.body))
			if len(w) == 0 || w[len(w)-1] != ignoredWarning(tc.ignored) && w[0] != ignoredWarning(tc.ignored) {
				t.Fatalf("POST %s: warnings %q", tc.path, w)
			}
		}
		for _, q := range []string{"sys/quotas/rate-limit/q", "sys/quotas/lease-count/lc"} {
			if r := raw(t, s.URL, "DELETE", q, nil, h); r.Status >= 300 {
				t.Fatalf("DELETE %s: %d %s", q, r.Status, r.Body)
			}
		}
		r := raw(t, s.URL, "GET", "sys/internal/counters/activity?limit=3", nil, h)
		if w := warns(t, r); len(w) != 1 || w[0] != ignoredWarning("limit") {
			t.Fatalf("activity with an unknown query parameter: %q", w)
		}
	})
	t.Run("KV v1 takes any field as data", func(t *testing.T) {
		if r := post("sys/mounts/kv1", `{"type":"kv"}`); r.Status != http.StatusNoContent {
			t.Fatalf("mount kv1: %d %s", r.Status, r.Body)
		}
		if r := post("kv1/app", `{"anything":"goes","mount_point":"x"}`); r.Status != http.StatusNoContent {
			t.Fatalf("kv1 write: %d %s", r.Status, r.Body)
		}
	})
	t.Run("wrong type of a known field stays 400 and mounts nothing", func(t *testing.T) {
		r := post("sys/mounts/badtype", `{"type":["kv"],"mount_point":"badtype"}`)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.errs(t)[0], "type") {
			t.Fatalf("status %d %s, want 400 naming the field", r.Status, r.Body)
		}
		m, err := c.Sys().ListMounts()
		if err != nil {
			t.Fatal(err)
		}
		if m["badtype/"] != nil {
			t.Fatal("badtype/ mounted by a refused request")
		}
	})
	t.Run("sys/init of an initialised server still refuses, fields or not", func(t *testing.T) {
		r := raw(t, s.URL, "PUT", "sys/init", strings.NewReader(`{"secret_shares":1,"secret_threshold":1,"secret_share":3}`), nil)
		if r.Status != http.StatusBadRequest {
			t.Fatalf("re-init: %d %s", r.Status, r.Body)
		}
	})
}
