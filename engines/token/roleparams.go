package token

import (
	"time"

	"github.com/ledger-secrets/ledger/engines"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// RoleParams are the token fields of a role of the Kubernetes and JWT/OIDC methods: Vault's
// tokenutil fields plus the deprecated policies, ttl, max_ttl, period and bound_cidrs that
// the lesson still uses (`policies=myapp-secrets ttl=1h`). The JSON names are stored in events.
type RoleParams struct {
	Token            tokenview.Params `json:"token"`
	LegacyPolicies   []string         `json:"legacy_policies,omitempty"`
	LegacyTTL        time.Duration    `json:"legacy_ttl,omitempty"`
	LegacyMaxTTL     time.Duration    `json:"legacy_max_ttl,omitempty"`
	LegacyPeriod     time.Duration    `json:"legacy_period,omitempty"`
	LegacyBoundCIDRs []string         `json:"legacy_bound_cidrs,omitempty"`
}

// RoleParamFields are the fields RoleParams.Parse reads.
func RoleParamFields() []string {
	return append(ParamFields(), "policies", "ttl", "max_ttl", "period", "bound_cidrs")
}

// Parse merges the token fields present in data, new and deprecated, with Vault's rules.
func (rp *RoleParams) Parse(data map[string]any) ([]string, error) {
	warnings, err := ParseParams(data, &rp.Token)
	if err != nil {
		return nil, err
	}
	if engines.Has(data, "token_policies") {
		rp.Token.Policies = SanitizePolicies(rp.Token.Policies, false)
	}
	if err := UpgradePolicies(data, &rp.Token, &rp.LegacyPolicies); err != nil {
		return nil, err
	}
	for _, d := range []struct {
		old, new      string
		legacy, token *time.Duration
	}{
		{"ttl", "token_ttl", &rp.LegacyTTL, &rp.Token.TTL},
		{"max_ttl", "token_max_ttl", &rp.LegacyMaxTTL, &rp.Token.MaxTTL},
		{"period", "token_period", &rp.LegacyPeriod, &rp.Token.Period},
	} {
		if err := UpgradeDuration(data, d.old, d.new, d.legacy, d.token); err != nil {
			return nil, err
		}
	}
	switch {
	case engines.Has(data, "token_bound_cidrs") && engines.Has(data, "bound_cidrs"):
		rp.LegacyBoundCIDRs = rp.Token.BoundCIDRs
	case engines.Has(data, "token_bound_cidrs"):
		rp.LegacyBoundCIDRs = nil
	case engines.Has(data, "bound_cidrs"):
		cidrs, err := engines.Strings(data, "bound_cidrs")
		if err != nil {
			return nil, err
		}
		if err := engines.CheckCIDRs("invalid bound_cidrs", cidrs); err != nil {
			return nil, err
		}
		rp.LegacyBoundCIDRs, rp.Token.BoundCIDRs = cidrs, cidrs
	}
	if rp.Token.TTL > 0 && rp.Token.MaxTTL > 0 && rp.Token.TTL > rp.Token.MaxTTL {
		return nil, engines.BadRequest("ttl should not be greater than max ttl")
	}
	return warnings, nil
}

// Populate sets the token fields of a role read in d, the deprecated ones only when used.
func (rp RoleParams) Populate(d map[string]any) {
	PopulateParams(d, rp.Token)
	if len(rp.LegacyPolicies) > 0 {
		d["policies"] = d["token_policies"]
	}
	if rp.LegacyTTL > 0 {
		d["ttl"] = seconds(rp.LegacyTTL)
	}
	if rp.LegacyMaxTTL > 0 {
		d["max_ttl"] = seconds(rp.LegacyMaxTTL)
	}
	if rp.LegacyPeriod > 0 {
		d["period"] = seconds(rp.LegacyPeriod)
	}
	if len(rp.LegacyBoundCIDRs) > 0 {
		d["bound_cidrs"] = append([]string{}, rp.LegacyBoundCIDRs...)
	}
}
