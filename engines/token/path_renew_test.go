package token

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
)

func TestRenew(t *testing.T) {
	h := newHarness(t)
	h.mount.DefaultLeaseTTL, h.mount.MaxLeaseTTL = time.Hour, 2*time.Hour
	tok, a := h.create(h.root(), `{"policies": ["web"], "ttl": "1h", "meta": {"k": "v"}}`)

	h.now = epoch.Add(30 * time.Minute)
	resp := h.write(h.root(), "renew", `{"token": "`+tok+`", "increment": "45m"}`)
	ra := resp.Auth
	if ra.ClientToken != tok || ra.Accessor != a.Accessor || ra.LeaseDuration != 45*time.Minute || !ra.Renewable ||
		ra.Metadata["k"] != "v" || ra.TokenType != "service" || len(resp.Warnings) != 0 {
		t.Fatalf("renew = %+v %q", ra, resp.Warnings)
	}
	if len(resp.Events) != 1 || resp.Events[0].Type != "token.renewed.v1" {
		t.Fatalf("events = %+v", resp.Events)
	}
	d := h.lookup(tok)
	if d["ttl"] != int64(45*60) || d["creation_ttl"] != int64(3600) || d["last_renewal_time"] != h.now.Unix() {
		t.Fatalf("lookup after renew: ttl %v creation_ttl %v last_renewal_time %v", d["ttl"], d["creation_ttl"], d["last_renewal_time"])
	}

	// No increment: the current TTL again, from now.
	h.now = epoch.Add(40 * time.Minute)
	if got := h.write(h.caller(tok), "renew-self", "").Auth; got.LeaseDuration != 45*time.Minute || got.ClientToken != "" {
		t.Fatalf("renew-self = %+v", got)
	}
	// renew-self returns the token when the pipeline passed it along.
	r, err := h.do(WithClientToken(context.Background(), tok), h.caller(tok), engines.OpUpdate, "renew-self", nil)
	if err != nil || r.Auth.ClientToken != tok {
		t.Fatalf("renew-self with token = %+v %v", r, err)
	}
	// An increment past the mount max (2h from creation) is capped, with Vault's warning.
	resp = h.write(h.root(), "renew-accessor", `{"accessor": "`+a.Accessor+`", "increment": 7200}`)
	if resp.Auth.LeaseDuration != 80*time.Minute || resp.Auth.ClientToken != "" {
		t.Fatalf("renew-accessor = %+v", resp.Auth)
	}
	if len(resp.Warnings) != 1 || resp.Warnings[0] != `TTL of "2h" exceeded the effective max_ttl of "1h20m"; TTL value is capped accordingly` {
		t.Fatalf("warnings = %q", resp.Warnings)
	}
	if e, _ := h.view.ByMAC(h.kr.MAC("token", tok)); !e.ExpireTime.Equal(epoch.Add(2 * time.Hour)) {
		t.Fatalf("expire time %v, want creation + max", e.ExpireTime)
	}

	// Lowering the mount max afterwards leaves the token past it: no renewal.
	h.mount.MaxLeaseTTL = 30 * time.Minute
	_, err = h.do(context.Background(), h.root(), engines.OpUpdate, "renew", body(t, `{"token": "`+tok+`"}`))
	wantErr(t, err, engines.ErrBadRequest, "past the max TTL, cannot renew")
}

func TestRenewPeriodicAndExplicitMax(t *testing.T) {
	h := newHarness(t)
	per, _ := h.create(h.root(), `{"policies": ["web"], "period": "10m"}`)
	capped, _ := h.create(h.root(), `{"policies": ["web"], "period": "10m", "explicit_max_ttl": "25m"}`)
	if d := h.lookup(per); d["period"] != int64(600) || d["ttl"] != int64(600) {
		t.Fatalf("periodic lookup: period %v ttl %v", d["period"], d["ttl"])
	}
	h.now = epoch.Add(8 * time.Minute)
	if got := h.write(h.root(), "renew", `{"token": "`+per+`", "increment": "1h"}`).Auth.LeaseDuration; got != 10*time.Minute {
		t.Fatalf("periodic renew = %v, want the period", got)
	}
	for i := 0; i < 100; i++ { // a periodic token lives as long as it is renewed in time
		h.now = h.now.Add(8 * time.Minute)
		if got := h.write(h.root(), "renew", `{"token": "`+per+`"}`).Auth.LeaseDuration; got != 10*time.Minute {
			t.Fatalf("renewal %d = %v", i, got)
		}
	}
	h.now = epoch.Add(8 * time.Minute)
	h.write(h.root(), "renew", `{"token": "`+capped+`"}`)
	h.now = epoch.Add(16 * time.Minute)
	if got := h.write(h.root(), "renew", `{"token": "`+capped+`"}`).Auth.LeaseDuration; got != 9*time.Minute {
		t.Fatalf("periodic with explicit max = %v, want the 9m left", got)
	}
	h.now = epoch.Add(24 * time.Minute)
	if got := h.write(h.root(), "renew", `{"token": "`+capped+`"}`).Auth.LeaseDuration; got != time.Minute {
		t.Fatalf("periodic with explicit max = %v, want the 1m left", got)
	}
}

func TestRenewRefusals(t *testing.T) {
	h := newHarness(t)
	fixed, _ := h.create(h.root(), `{"policies": ["web"], "renewable": false}`)
	short, _ := h.create(h.root(), `{"policies": ["web"], "ttl": "1m"}`)
	cases := []struct {
		name   string
		caller *engines.Caller
		path   string
		body   string
		kind   error
		msg    string
	}{
		{"root token", h.root(), "renew-self", "", engines.ErrBadRequest, "lease is not renewable"},
		{"not renewable", h.root(), "renew", `{"token": "` + fixed + `"}`, engines.ErrBadRequest, "lease is not renewable"},
		{"unknown token", h.root(), "renew", `{"token": "hvs.AAAAAAAAAAAAAAAAAAAAAAAA"}`, engines.ErrBadRequest, "token not found"},
		{"missing token", h.root(), "renew", `{}`, engines.ErrBadRequest, "missing token ID"},
		{"token wrong type", h.root(), "renew", `{"token": ["x"]}`, engines.ErrBadRequest, `field "token": expected a string`},
		{"negative increment", h.root(), "renew", `{"token": "` + fixed + `", "increment": "-1h"}`, engines.ErrBadRequest, `field "increment": expected a duration such as "1h" or a number of seconds`},
		{"missing accessor", h.root(), "renew-accessor", `{}`, engines.ErrBadRequest, "missing accessor"},
		{"unknown accessor", h.root(), "renew-accessor", `{"accessor": "nope"}`, engines.ErrBadRequest, "invalid accessor"},
	}
	h.now = epoch.Add(2 * time.Minute) // short has expired, not yet reaped
	cases = append(cases, struct {
		name   string
		caller *engines.Caller
		path   string
		body   string
		kind   error
		msg    string
	}{"expired", h.root(), "renew", `{"token": "` + short + `"}`, engines.ErrBadRequest, "token not found"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.do(context.Background(), tc.caller, engines.OpUpdate, tc.path, body(t, tc.body))
			wantErr(t, err, tc.kind, tc.msg)
			if strings.Contains(err.Error(), "hvs.") {
				t.Fatal("error mentions a token")
			}
		})
	}
}
