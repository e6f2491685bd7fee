package token

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
)

func TestCreateAndLookup(t *testing.T) {
	h := newHarness(t)
	resp := h.write(h.root(), "create", `{"policies": ["web", "Stage", "web"], "meta": {"user": "armon"},
		"ttl": "1h", "display_name": "my app!", "renewable": true}`)
	a := resp.Auth
	if a == nil || !strings.HasPrefix(a.ClientToken, "hvs.") || len(a.Accessor) != 24 {
		t.Fatalf("auth = %+v", a)
	}
	want := []string{"default", "stage", "web"}
	if !reflect.DeepEqual(a.Policies, want) || !reflect.DeepEqual(a.TokenPolicies, want) {
		t.Fatalf("policies = %v / %v, want %v", a.Policies, a.TokenPolicies, want)
	}
	if a.LeaseDuration != time.Hour || !a.Renewable || a.Orphan || a.TokenType != "service" ||
		a.EntityID != "" || a.Metadata["user"] != "armon" || a.NumUses != 0 {
		t.Fatalf("auth = %+v", a)
	}
	if !reflect.DeepEqual(resp.Warnings, []string{`Policy "stage" does not exist`}) {
		t.Fatalf("warnings = %q", resp.Warnings)
	}
	if len(resp.Events) != 1 || resp.Events[0].Type != "token.created.v1" {
		t.Fatalf("events = %+v", resp.Events)
	}

	d := h.lookup(a.ClientToken)
	checks := map[string]any{
		"id": a.ClientToken, "accessor": a.Accessor, "creation_time": epoch.Unix(),
		"creation_ttl": int64(3600), "ttl": int64(3600), "explicit_max_ttl": int64(0),
		"display_name": "token-my-app", "entity_id": "", "num_uses": 0, "orphan": false,
		"path": "auth/token/create", "policies": want, "renewable": true, "type": "service",
		"meta": map[string]string{"user": "armon"}, "expire_time": epoch.Add(time.Hour),
		"issue_time": epoch,
	}
	for k, v := range checks {
		if !reflect.DeepEqual(d[k], v) {
			t.Errorf("lookup %s = %#v, want %#v", k, d[k], v)
		}
	}
	if _, ok := d["period"]; ok {
		t.Error("lookup has period for a non-periodic token")
	}

	// lookup-self: id only when the pipeline passed the caller's token along.
	c := h.caller(a.ClientToken)
	self := h.write(c, "lookup-self", "").Data
	if id, ok := self["id"]; !ok || id != "" || self["accessor"] != a.Accessor {
		t.Fatalf("lookup-self without the token in ctx: id=%#v accessor=%v", self["id"], self["accessor"])
	}
	ctx := WithClientToken(context.Background(), a.ClientToken)
	r, err := h.do(ctx, c, engines.OpRead, "lookup-self", nil)
	if err != nil || r.Data["id"] != a.ClientToken || r.Data["ttl"] != int64(3600) || r.Data["renewable"] != true || r.Data["type"] != "service" {
		t.Fatalf("GET lookup-self = %+v, %v", r, err)
	}
	// A token in ctx that is not the caller's is ignored.
	r, _ = h.do(WithClientToken(context.Background(), h.rootTok), c, engines.OpRead, "lookup-self", nil)
	if r.Data["id"] != "" {
		t.Fatal("lookup-self answered with a token that is not the caller's")
	}
	// lookup with no token is lookup-self, as in Vault.
	r, _ = h.do(ctx, c, engines.OpUpdate, "lookup", nil)
	if r.Data["accessor"] != a.Accessor {
		t.Fatal("lookup without token did not look up the caller")
	}
	// lookup-accessor never reveals the token.
	r = h.write(h.root(), "lookup-accessor", `{"accessor": "`+a.Accessor+`"}`)
	if r.Data["id"] != "" || r.Data["display_name"] != "token-my-app" {
		t.Fatalf("lookup-accessor = %+v", r.Data)
	}

	// The root token: no expiry, not renewable, orphan.
	rd := h.lookup(h.rootTok)
	if rd["ttl"] != int64(0) || rd["expire_time"] != nil || rd["renewable"] != false || rd["orphan"] != true ||
		!reflect.DeepEqual(rd["policies"], []string{"root"}) || rd["meta"].(map[string]string) != nil {
		t.Fatalf("root lookup = %+v", rd)
	}

	// LIST accessors.
	r, err = h.do(context.Background(), h.root(), engines.OpList, "accessors/", nil)
	if err != nil || len(r.Data["keys"].([]string)) != 2 {
		t.Fatalf("list accessors = %+v, %v", r, err)
	}
}

func TestCreatePolicies(t *testing.T) {
	h := newHarness(t)
	parent, _ := h.create(h.root(), `{"policies": ["web", "db"], "ttl": "2h"}`)
	pc := h.caller(parent)
	noDefault, _ := h.create(h.root(), `{"policies": ["web"], "no_default_policy": true}`)

	cases := []struct {
		name   string
		caller *engines.Caller
		body   string
		want   []string
		err    string
	}{
		{"root's child inherits root", h.root(), `{}`, []string{"root"}, ""},
		{"inherits the parent's", pc, `{}`, []string{"db", "default", "web"}, ""},
		{"subset gets default", pc, `{"policies": ["web"]}`, []string{"default", "web"}, ""},
		{"subset without default", pc, `{"policies": "web", "no_default_policy": true}`, []string{"web"}, ""},
		{"explicit default allowed", pc, `{"policies": ["default"]}`, []string{"default"}, ""},
		{"not a subset", pc, `{"policies": ["web", "admin"]}`, nil, "child policies must be subset of parent"},
		{"root not a subset", pc, `{"policies": ["root"]}`, nil, "child policies must be subset of parent"},
		{"parent without default", h.caller(noDefault), `{"policies": ["web"]}`, []string{"web"}, ""},
		{"parent without default asks it", h.caller(noDefault), `{"policies": ["default"]}`, nil, "child policies must be subset of parent"},
		{"root may give anything", h.root(), `{"policies": ["admin"]}`, []string{"admin", "default"}, ""},
		{"root token", h.root(), `{"policies": ["root", "web"]}`, []string{"root"}, ""},
		{"internal policy", h.root(), `{"policies": ["response-wrapping"]}`, nil, `cannot assign policy "response-wrapping"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.do(context.Background(), tc.caller, engines.OpUpdate, "create", body(t, tc.body))
			if tc.err != "" {
				wantErr(t, err, engines.ErrBadRequest, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(resp.Auth.Policies, tc.want) {
				t.Fatalf("policies = %v, want %v", resp.Auth.Policies, tc.want)
			}
		})
	}
}

func TestCreateSudoOption(t *testing.T) {
	var asked []string
	sudoers := map[string]bool{}
	h := newHarness(t, WithSudo(func(c *engines.Caller, path string) bool {
		asked = append(asked, path)
		return c.Root || sudoers[c.Accessor]
	}))
	tok, auth := h.create(h.root(), `{"policies": ["ops"], "ttl": "1h"}`)
	sudoers[auth.Accessor] = true
	c := h.caller(tok)
	resp := h.write(c, "create", `{"policies": ["admin"], "no_parent": true, "period": "10m"}`)
	if !reflect.DeepEqual(resp.Auth.Policies, []string{"admin", "default"}) || !resp.Auth.Orphan || resp.Auth.LeaseDuration != 10*time.Minute {
		t.Fatalf("sudo create = %+v", resp.Auth)
	}
	// Sudo is not root: a root token still needs a root parent.
	_, err := h.do(context.Background(), c, engines.OpUpdate, "create", body(t, `{"policies": ["root"]}`))
	wantErr(t, err, engines.ErrBadRequest, "root tokens may not be created without parent token being root")
	if asked[len(asked)-1] != "auth/token/create" {
		t.Fatalf("sudo asked for %q", asked[len(asked)-1])
	}
}

func TestCreateTTL(t *testing.T) {
	type want struct {
		ttl       time.Duration
		renewable bool
		warning   string
	}
	cases := []struct {
		name     string
		def, max time.Duration
		body     string
		want     want
	}{
		{"mount default", time.Hour, 2 * time.Hour, `{"policies": "web"}`, want{time.Hour, true, ""}},
		{"system default", 0, 0, `{"policies": "web"}`, want{768 * time.Hour, true, ""}},
		{"asked", time.Hour, 2 * time.Hour, `{"ttl": 90}`, want{90 * time.Second, true, ""}},
		{"capped by mount max", time.Hour, 2 * time.Hour, `{"ttl": "3h"}`,
			want{2 * time.Hour, true, `TTL of "3h" exceeded the effective max_ttl of "2h"; TTL value is capped accordingly`}},
		{"capped by explicit max", time.Hour, 2 * time.Hour, `{"ttl": "1h", "explicit_max_ttl": "30m"}`,
			want{30 * time.Minute, true, `TTL of "1h" exceeded the effective max_ttl of "30m"; TTL value is capped accordingly`}},
		{"periodic", time.Hour, 2 * time.Hour, `{"period": "15m", "ttl": "1h"}`, want{15 * time.Minute, true, ""}},
		{"period capped", time.Hour, 2 * time.Hour, `{"period": "3h"}`,
			want{2 * time.Hour, true, `period of "3h" exceeded the effective max_ttl of "2h"; period value is capped accordingly`}},
		{"not renewable", time.Hour, 2 * time.Hour, `{"policies": "web", "renewable": false}`, want{time.Hour, false, ""}},
		{"root never expires", time.Hour, 2 * time.Hour, `{"policies": ["root"]}`, want{0, false, ""}},
		{"root with ttl", time.Hour, 2 * time.Hour, `{"policies": ["root"], "ttl": "10m"}`, want{10 * time.Minute, true, ""}},
		{"root with explicit max", time.Hour, 2 * time.Hour, `{"policies": ["root"], "explicit_max_ttl": "5m"}`, want{5 * time.Minute, true, ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.mount.DefaultLeaseTTL, h.mount.MaxLeaseTTL = tc.def, tc.max
			tok, a := h.create(h.root(), tc.body)
			if a.LeaseDuration != tc.want.ttl || a.Renewable != tc.want.renewable {
				t.Fatalf("ttl %v renewable %v, want %+v", a.LeaseDuration, a.Renewable, tc.want)
			}
			e, _ := h.view.ByMAC(h.kr.MAC("token", tok))
			if tc.want.ttl == 0 && !e.ExpireTime.IsZero() || tc.want.ttl > 0 && !e.ExpireTime.Equal(epoch.Add(tc.want.ttl)) {
				t.Fatalf("view expire time %v", e.ExpireTime)
			}
			resp := h.lookup(tok)
			if resp["ttl"] != seconds(tc.want.ttl) {
				t.Fatalf("lookup ttl = %v", resp["ttl"])
			}
		})
	}
	// Warnings come back on the create response.
	for _, tc := range cases {
		if tc.want.warning == "" {
			continue
		}
		h := newHarness(t)
		h.mount.DefaultLeaseTTL, h.mount.MaxLeaseTTL = tc.def, tc.max
		resp := h.write(h.root(), "create", tc.body)
		if len(resp.Warnings) != 1 || resp.Warnings[0] != tc.want.warning {
			t.Errorf("%s: warnings %q, want %q", tc.name, resp.Warnings, tc.want.warning)
		}
	}
}

func TestChildCannotOutliveParent(t *testing.T) {
	h := newHarness(t)
	parent, _ := h.create(h.root(), `{"ttl": "10m", "policies": ["web"]}`)
	h.now = h.now.Add(4 * time.Minute)
	resp := h.write(h.caller(parent), "create", `{"ttl": "1h"}`)
	if resp.Auth.LeaseDuration != 6*time.Minute {
		t.Fatalf("child ttl = %v, want the parent's remaining 6m", resp.Auth.LeaseDuration)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `parent token's remaining TTL of "6m"`) {
		t.Fatalf("warnings = %q", resp.Warnings)
	}
	// An orphan is not bound by its creator.
	resp = h.write(h.caller(parent), "create-orphan", `{"ttl": "1h"}`)
	if resp.Auth.LeaseDuration != time.Hour || !resp.Auth.Orphan {
		t.Fatalf("create-orphan = %+v", resp.Auth)
	}
	d := h.lookup(resp.Auth.ClientToken)
	if d["orphan"] != true || d["path"] != "auth/token/create-orphan" {
		t.Fatalf("orphan lookup = %+v", d)
	}
	// A non-expiring root token cannot come from an expiring root token.
	expiringRoot, _ := h.create(h.root(), `{"policies": ["root"], "ttl": "1h"}`)
	_, err := h.do(context.Background(), h.caller(expiringRoot), engines.OpUpdate, "create", body(t, `{"policies": ["root"]}`))
	wantErr(t, err, engines.ErrBadRequest, "expiring root tokens cannot create non-expiring root tokens")
}

func TestCreateMalformed(t *testing.T) {
	h := newHarness(t)
	limited, _ := h.create(h.root(), `{"num_uses": 3, "policies": ["web"]}`)
	plain, _ := h.create(h.root(), `{"policies": ["web"]}`)
	cases := []struct {
		name   string
		caller *engines.Caller
		path   string
		body   string
		kind   error
		msg    string
	}{
		{"negative ttl string", h.root(), "create", `{"ttl": "-5s"}`, engines.ErrBadRequest, "ttl must be positive"},
		{"negative ttl number", h.root(), "create", `{"ttl": -5}`, engines.ErrBadRequest, "ttl must be positive"},
		{"ttl wrong type", h.root(), "create", `{"ttl": true}`, engines.ErrBadRequest, `field "ttl": expected a duration such as "1h" or a number of seconds`},
		{"ttl garbage", h.root(), "create", `{"ttl": "soon"}`, engines.ErrBadRequest, `field "ttl": expected a duration such as "1h" or a number of seconds`},
		{"negative explicit max", h.root(), "create", `{"explicit_max_ttl": "-1h"}`, engines.ErrBadRequest, "explicit_max_ttl must be positive"},
		{"negative period", h.root(), "create", `{"period": -1}`, engines.ErrBadRequest, "period must be positive"},
		{"policies wrong type", h.root(), "create", `{"policies": 5}`, engines.ErrBadRequest, `field "policies": expected a list of strings`},
		{"policies mixed list", h.root(), "create", `{"policies": ["a", 1]}`, engines.ErrBadRequest, `field "policies": expected a list of strings`},
		{"meta wrong type", h.root(), "create", `{"meta": ["a"]}`, engines.ErrBadRequest, `field "meta": expected an object of strings`},
		{"meta values", h.root(), "create", `{"meta": {"a": 1}}`, engines.ErrBadRequest, `field "meta": values must be strings`},
		{"num_uses wrong type", h.root(), "create", `{"num_uses": "many"}`, engines.ErrBadRequest, `field "num_uses": expected an integer`},
		{"num_uses negative", h.root(), "create", `{"num_uses": -1}`, engines.ErrBadRequest, "number of uses cannot be negative"},
		{"renewable wrong type", h.root(), "create", `{"renewable": "maybe"}`, engines.ErrBadRequest, `field "renewable": expected a boolean`},
		{"batch", h.root(), "create", `{"type": "batch"}`, engines.ErrBadRequest, "batch tokens are not supported"},
		{"unknown type", h.root(), "create", `{"type": "shiny"}`, engines.ErrBadRequest, "invalid 'token_type' value"},
		{"id as root", h.root(), "create", `{"id": "hvs.chosen"}`, engines.ErrBadRequest, "custom token IDs are not supported"},
		{"id without sudo", h.caller(plain), "create", `{"id": "hvs.chosen"}`, engines.ErrBadRequest, "root or sudo privileges required to specify token id"},
		{"entity alias", h.root(), "create", `{"entity_alias": "x"}`, engines.ErrBadRequest, "'entity_alias' is only allowed in combination with token role"},
		{"orphan without sudo", h.caller(plain), "create", `{"no_parent": true}`, engines.ErrBadRequest, "root or sudo privileges required to create orphan token"},
		{"period without sudo", h.caller(plain), "create", `{"period": "1h"}`, engines.ErrBadRequest, "root or sudo privileges required to create periodic token"},
		{"limited parent", h.caller(limited), "create", `{}`, engines.ErrBadRequest, "restricted use token cannot generate child tokens"},
		{"role", h.root(), "create/deployer", `{}`, engines.ErrBadRequest, "unknown role deployer"},
		{"create by GET", h.root(), "create", "", engines.ErrUnsupported, "unsupported operation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op := engines.OpUpdate
			if tc.body == "" {
				op = engines.OpRead
			}
			before := h.view.Len()
			_, err := h.do(context.Background(), tc.caller, op, tc.path, body(t, tc.body))
			wantErr(t, err, tc.kind, tc.msg)
			if h.view.Len() != before {
				t.Fatal("a refused create changed the view")
			}
		})
	}
	// A caller whose token vanished (revoked under it) cannot create.
	c := h.caller(plain)
	h.write(h.root(), "revoke", `{"token": "`+plain+`"}`)
	_, err := h.do(context.Background(), c, engines.OpUpdate, "create", nil)
	wantErr(t, err, engines.ErrBadRequest, "parent token lookup failed: no parent found")
}

func TestLookupRefusals(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name string
		path string
		body string
		kind error
		msg  string
	}{
		{"unknown token", "lookup", `{"token": "hvs.NOTATOKENNOTATOKENNOTATO"}`, engines.ErrPermissionDenied, "bad token"},
		{"token wrong type", "lookup", `{"token": [1]}`, engines.ErrBadRequest, `field "token": expected a string`},
		{"missing accessor", "lookup-accessor", `{}`, engines.ErrBadRequest, "missing accessor"},
		{"unknown accessor", "lookup-accessor", `{"accessor": "abc"}`, engines.ErrBadRequest, "invalid accessor"},
		{"accessor wrong type", "lookup-accessor", `{"accessor": {}}`, engines.ErrBadRequest, `field "accessor": expected a string`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.do(context.Background(), h.root(), engines.OpUpdate, tc.path, body(t, tc.body))
			wantErr(t, err, tc.kind, tc.msg)
			if strings.Contains(err.Error(), "NOTATOKEN") {
				t.Fatal("error echoes the token")
			}
		})
	}
}
