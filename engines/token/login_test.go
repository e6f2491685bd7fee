package token

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

func TestParseParams(t *testing.T) {
	tests := []struct {
		name     string
		data     map[string]any
		want     tokenview.Params
		warnings int
		bad      bool
	}{
		{name: "absent fields keep the old values", data: map[string]any{}, want: tokenview.Params{TTL: time.Hour, Type: "default"}},
		{name: "all fields", data: map[string]any{
			"token_bound_cidrs": "10.0.0.0/8,192.0.2.5", "token_explicit_max_ttl": "3h", "token_max_ttl": "2h",
			"token_no_default_policy": true, "token_num_uses": float64(3), "token_period": "0", "token_policies": "a,b",
			"token_type": "service", "token_ttl": "90m",
		}, want: tokenview.Params{
			BoundCIDRs: []string{"10.0.0.0/8", "192.0.2.5"}, ExplicitMaxTTL: 3 * time.Hour, MaxTTL: 2 * time.Hour,
			NoDefaultPolicy: true, NumUses: 3, Policies: []string{"a", "b"}, Type: "service", TTL: 90 * time.Minute,
		}},
		{name: "default-service warns", data: map[string]any{"token_type": "default-service"}, want: tokenview.Params{TTL: time.Hour, Type: "service"}, warnings: 1},
		{name: "batch refused", data: map[string]any{"token_type": "batch"}, bad: true},
		{name: "negative ttl", data: map[string]any{"token_ttl": "-1s"}, bad: true},
		{name: "negative uses", data: map[string]any{"token_num_uses": -1}, bad: true},
		{name: "bad cidr", data: map[string]any{"token_bound_cidrs": "nope"}, bad: true},
		{name: "ttl above max", data: map[string]any{"token_max_ttl": "30m"}, bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tokenview.Params{TTL: time.Hour, Type: "default"}
			warnings, err := ParseParams(tc.data, &p)
			if tc.bad {
				if !errors.Is(err, engines.ErrBadRequest) {
					t.Fatalf("got %v, want a bad request", err)
				}
				return
			}
			if err != nil || len(warnings) != tc.warnings || !reflect.DeepEqual(p, tc.want) {
				t.Fatalf("got %+v, %v, %v; want %+v with %d warnings", p, warnings, err, tc.want, tc.warnings)
			}
			for k := range tc.data {
				if len(engines.Unknown(map[string]any{k: nil}, ParamFields()...)) != 0 {
					t.Fatalf("%s is read by ParseParams but missing from ParamFields", k)
				}
			}
		})
	}
}

func TestPopulateParamsShowsEmptyListsAndSeconds(t *testing.T) {
	d := map[string]any{}
	PopulateParams(d, tokenview.Params{TTL: 90 * time.Second})
	if d["token_ttl"] != int64(90) || d["token_type"] != "default" {
		t.Fatalf("got %v", d)
	}
	for _, k := range []string{"token_bound_cidrs", "token_policies"} {
		if l, ok := d[k].([]string); !ok || l == nil {
			t.Fatalf("%s = %#v, want an empty list", k, d[k])
		}
	}
}

func TestLeaseTTLs(t *testing.T) {
	tuned := engines.Mount{DefaultLeaseTTL: time.Hour, MaxLeaseTTL: 2 * time.Hour}
	built := engines.Mount{DefaultLeaseTTL: 3 * time.Hour, MaxLeaseTTL: 4 * time.Hour}
	tests := []struct {
		name             string
		req, backend     engines.Mount
		wantDef, wantMax time.Duration
	}{
		{"request's tuning wins", tuned, built, time.Hour, 2 * time.Hour},
		{"backend's when the request has none", engines.Mount{}, built, 3 * time.Hour, 4 * time.Hour},
		{"Vault's 32 days when neither", engines.Mount{}, engines.Mount{}, defaultTTL, defaultMaxTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			def, max := LeaseTTLs(tc.req, tc.backend)
			if def != tc.wantDef || max != tc.wantMax {
				t.Fatalf("got %v, %v; want %v, %v", def, max, tc.wantDef, tc.wantMax)
			}
		})
	}
}

// TestIssue checks the TTL rules of a login token and that its Created event is one the token
// view accepts, under the MAC of the token handed out.
func TestIssue(t *testing.T) {
	mount := engines.Mount{DefaultLeaseTTL: time.Hour, MaxLeaseTTL: 4 * time.Hour}
	tests := []struct {
		name            string
		params          tokenview.Params
		wantTTL         time.Duration
		wantExplicitMax time.Duration
		warnings        int
	}{
		{name: "mount default", params: tokenview.Params{}, wantTTL: time.Hour},
		{name: "own ttl", params: tokenview.Params{TTL: 2 * time.Hour}, wantTTL: 2 * time.Hour},
		{name: "ttl capped by max ttl, which bounds renewals", params: tokenview.Params{TTL: 3 * time.Hour, MaxTTL: 2 * time.Hour}, wantTTL: 2 * time.Hour, wantExplicitMax: 2 * time.Hour, warnings: 1},
		{name: "ttl capped by the mount", params: tokenview.Params{TTL: 5 * time.Hour}, wantTTL: 4 * time.Hour, warnings: 1},
		{name: "period replaces ttl", params: tokenview.Params{TTL: 2 * time.Hour, Period: 30 * time.Minute}, wantTTL: 30 * time.Minute},
		{name: "period capped", params: tokenview.Params{Period: 5 * time.Hour, ExplicitMaxTTL: 3 * time.Hour}, wantTTL: 3 * time.Hour, wantExplicitMax: 3 * time.Hour, warnings: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := ledger.NewKeyring(epoch)
			if err != nil {
				t.Fatal(err)
			}
			view := tokenview.New()
			auth, ev, warnings, err := Issue(IssueInput{
				Keyring: kr, Tokens: view, Mount: mount, Params: tc.params,
				Metadata: map[string]string{"role_name": "web"}, DisplayName: "approle", Path: "auth/approle/login", Now: epoch,
			})
			if err != nil {
				t.Fatal(err)
			}
			if auth.LeaseDuration != tc.wantTTL || len(warnings) != tc.warnings {
				t.Fatalf("ttl %v with warnings %q; want %v with %d", auth.LeaseDuration, warnings, tc.wantTTL, tc.warnings)
			}
			if err := view.Apply(ledger.Record{Event: ev, Pos: ledger.Position{Seq: 1}}); err != nil {
				t.Fatal(err)
			}
			e, ok := view.ByMAC(kr.MAC("token", auth.ClientToken))
			if !ok {
				t.Fatal("issued token not in the view")
			}
			if !e.Orphan || e.ExplicitMaxTTL != tc.wantExplicitMax || !e.ExpireTime.Equal(epoch.Add(tc.wantTTL)) || e.Accessor != auth.Accessor {
				t.Fatalf("entry %+v", e)
			}
			if !reflect.DeepEqual(auth.Policies, []string{"default"}) || auth.Metadata["role_name"] != "web" {
				t.Fatalf("auth %+v", auth)
			}
		})
	}
	t.Run("root refused", func(t *testing.T) {
		kr, err := ledger.NewKeyring(epoch)
		if err != nil {
			t.Fatal(err)
		}
		_, _, _, err = Issue(IssueInput{Keyring: kr, Params: tokenview.Params{Policies: []string{"root"}}, Now: epoch})
		if !errors.Is(err, engines.ErrBadRequest) {
			t.Fatalf("got %v, want a bad request", err)
		}
	})
}

func TestUpgradeLegacy(t *testing.T) {
	tests := []struct {
		name                 string
		data                 map[string]any
		token, legacy        []string
		period, legacyPeriod time.Duration
	}{
		{name: "old alone sets the new", data: map[string]any{"policies": "B,a", "period": "1h"},
			token: []string{"a", "b"}, legacy: []string{"a", "b"}, period: time.Hour, legacyPeriod: time.Hour},
		{name: "both: the old mirrors the new", data: map[string]any{"token_policies": "x", "policies": "y", "token_period": "2h", "period": "1h"},
			token: []string{"x"}, legacy: []string{"x"}, period: 2 * time.Hour, legacyPeriod: 2 * time.Hour},
		{name: "new alone clears the old", data: map[string]any{"token_policies": "x", "token_period": "2h"},
			token: []string{"x"}, period: 2 * time.Hour},
		{name: "neither leaves both", data: map[string]any{},
			token: []string{"p"}, legacy: []string{"p"}, period: time.Minute, legacyPeriod: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tokenview.Params{Policies: []string{"p"}, Period: time.Minute}
			legacy, legacyPeriod := []string{"p"}, time.Minute
			if _, err := ParseParams(tc.data, &p); err != nil {
				t.Fatal(err)
			}
			if err := UpgradePolicies(tc.data, &p, &legacy); err != nil {
				t.Fatal(err)
			}
			if err := UpgradeDuration(tc.data, "period", "token_period", &legacyPeriod, &p.Period); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Policies, tc.token) || !reflect.DeepEqual(legacy, tc.legacy) || p.Period != tc.period || legacyPeriod != tc.legacyPeriod {
				t.Fatalf("got %q %q %v %v", p.Policies, legacy, p.Period, legacyPeriod)
			}
		})
	}
	var d time.Duration
	if err := UpgradeDuration(map[string]any{"ttl": "-1"}, "ttl", "token_ttl", &d, &d); err == nil || err.Error() != "'ttl' cannot be negative" {
		t.Fatalf("negative legacy duration: got %v", err)
	}
}
