package token

import (
	"fmt"
	"maps"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// The token side of auth methods (approle, userpass): Vault's tokenutil fields of a role or a
// user, and the token a successful login gets. It lives with the token store because the
// tokens it issues must follow the store's rules exactly (the same Created event, the same
// MAC, TTLs the store's renewals will honour).

// ParamFields are the request fields ParseParams reads (Vault's tokenutil fields), for an auth
// method's "ignored these unrecognized parameters" warning. Each call returns a new slice.
func ParamFields() []string {
	return []string{
		"token_bound_cidrs", "token_explicit_max_ttl", "token_max_ttl", "token_no_default_policy",
		"token_num_uses", "token_period", "token_policies", "token_type", "token_ttl",
	}
}

// ParseParams merges the token_* fields present in data into p, with Vault's
// tokenutil.ParseTokenFields rules and messages; fields absent from data leave p as it was.
// Batch tokens are refused: Ledger issues service tokens only. Every error is a 400.
func ParseParams(data map[string]any, p *tokenview.Params) (warnings []string, err error) {
	if engines.Has(data, "token_bound_cidrs") {
		cidrs, err := engines.Strings(data, "token_bound_cidrs")
		if err != nil {
			return nil, err
		}
		if err := engines.CheckCIDRs("invalid token_bound_cidrs", cidrs); err != nil {
			return nil, err
		}
		p.BoundCIDRs = cidrs
	}
	for _, f := range []struct {
		key string
		dst *time.Duration
	}{
		{"token_explicit_max_ttl", &p.ExplicitMaxTTL},
		{"token_max_ttl", &p.MaxTTL},
		{"token_period", &p.Period},
		{"token_ttl", &p.TTL},
	} {
		if !engines.Has(data, f.key) {
			continue
		}
		d, err := engines.NonNegativeDuration(data, f.key)
		if err != nil {
			return nil, err
		}
		*f.dst = d
	}
	if engines.Has(data, "token_no_default_policy") {
		if p.NoDefaultPolicy, err = engines.Bool(data, "token_no_default_policy", false); err != nil {
			return nil, err
		}
	}
	if engines.Has(data, "token_policies") {
		if p.Policies, err = engines.Strings(data, "token_policies"); err != nil {
			return nil, err
		}
	}
	if engines.Has(data, "token_type") {
		typ, err := engines.String(data, "token_type", "")
		if err != nil {
			return nil, err
		}
		switch typ {
		case "", "default":
			p.Type = "default"
		case "service":
			p.Type = "service"
		case "default-service":
			p.Type = "service"
			warnings = append(warnings, "default-service has no useful meaning; adjusting to service")
		case "batch", "default-batch":
			return nil, engines.BadRequest("batch tokens are not supported")
		default:
			return nil, engines.BadRequest("invalid 'token_type' value %q", typ)
		}
	}
	if engines.Has(data, "token_num_uses") {
		if p.NumUses, err = engines.Int(data, "token_num_uses", 0); err != nil {
			return nil, err
		}
		if p.NumUses < 0 {
			return nil, engines.BadRequest("'token_num_uses' cannot be negative")
		}
	}
	if p.TTL > 0 && p.MaxTTL > 0 && p.TTL > p.MaxTTL {
		return nil, engines.BadRequest("'token_ttl' cannot be greater than 'token_max_ttl'")
	}
	return warnings, nil
}

// UpgradePolicies applies a role's or user's deprecated "policies" as Vault's
// tokenutil.UpgradeValue: alone it sets token_policies; beside token_policies it mirrors it;
// when only token_policies is given the legacy value is cleared. Both end up sanitized.
func UpgradePolicies(data map[string]any, p *tokenview.Params, legacy *[]string) error {
	switch {
	case engines.Has(data, "token_policies") && engines.Has(data, "policies"):
		*legacy = SanitizePolicies(p.Policies, false)
		p.Policies = *legacy
	case engines.Has(data, "token_policies"):
		*legacy = nil
	case engines.Has(data, "policies"):
		pols, err := engines.Strings(data, "policies")
		if err != nil {
			return err
		}
		*legacy = SanitizePolicies(pols, false)
		p.Policies = *legacy
	}
	return nil
}

// UpgradeDuration is UpgradePolicies for a deprecated duration field (period, ttl, max_ttl)
// and its token_* twin: oldKey and newKey name the fields, legacy and token hold their values.
func UpgradeDuration(data map[string]any, oldKey, newKey string, legacy, token *time.Duration) error {
	switch {
	case engines.Has(data, newKey) && engines.Has(data, oldKey):
		*legacy = *token
	case engines.Has(data, newKey):
		*legacy = 0
	case engines.Has(data, oldKey):
		d, err := engines.NonNegativeDuration(data, oldKey)
		if err != nil {
			return err
		}
		*legacy, *token = d, d
	}
	return nil
}

// PopulateParams is tokenutil.PopulateTokenData: it sets the token_* fields of a read of a role
// or a user in d, durations in whole seconds and lists never null, as Vault shows them.
func PopulateParams(d map[string]any, p tokenview.Params) {
	typ := p.Type
	if typ == "" {
		typ = "default"
	}
	d["token_bound_cidrs"] = append([]string{}, p.BoundCIDRs...)
	d["token_explicit_max_ttl"] = seconds(p.ExplicitMaxTTL)
	d["token_max_ttl"] = seconds(p.MaxTTL)
	d["token_no_default_policy"] = p.NoDefaultPolicy
	d["token_period"] = seconds(p.Period)
	d["token_policies"] = append([]string{}, p.Policies...)
	d["token_type"] = typ
	d["token_ttl"] = seconds(p.TTL)
	d["token_num_uses"] = p.NumUses
}

// IssueInput is what a successful login hands to Issue.
type IssueInput struct {
	Keyring *ledger.Keyring // computes the token's MAC
	// Tokens, when set, is consulted so that a token string or accessor the view already holds
	// is never issued.
	Tokens *tokenview.View
	// Mount is the request's mount, whose tuning may have changed since the backend was built;
	// BackendMount the backend's, for the TTLs Mount does not set (see LeaseTTLs).
	Mount, BackendMount engines.Mount
	Params              tokenview.Params  // the role's or user's token_* fields
	BoundCIDRs          []string          // the token's; may differ from Params.BoundCIDRs
	Metadata            map[string]string // the token's meta; empty reads as none
	DisplayName         string
	Path                string // e.g. "auth/approle/login", recorded in the token
	Now                 time.Time
}

// Issue decides the token of a successful login exactly as the token store records any token
// (NewToken, CreatedEvent with the keyring MAC), with the TTL Vault's core gives a login: the
// role's or user's TTL or the mount's default, capped by its max TTL, the explicit max TTL and
// the mount's max; a period replaces the TTL. Login tokens are orphans. It returns the auth
// block, the Created event (for the caller to stamp with its request) and Vault's warnings; a
// root policy is a 400.
//
// The token view keeps no "max TTL of the issuing role", and renewals go through
// auth/token/renew, which knows only the mount's max and the token's explicit max. So that a
// role's token_max_ttl still bounds renewals, a non-periodic token carries the effective max as
// its explicit max TTL when it is tighter than the mount's.
func Issue(in IssueInput) (*engines.Auth, ledger.Event, []string, error) {
	p := in.Params
	policies := SanitizePolicies(p.Policies, !p.NoDefaultPolicy)
	for _, pol := range policies {
		if pol == "root" {
			return nil, ledger.Event{}, nil, engines.BadRequest("auth methods cannot create root tokens")
		}
	}
	def, mountMax := LeaseTTLs(in.Mount, in.BackendMount)
	maxTTL := mountMax
	if p.MaxTTL > 0 && p.MaxTTL < maxTTL {
		maxTTL = p.MaxTTL
	}
	if p.ExplicitMaxTTL > 0 && p.ExplicitMaxTTL < maxTTL {
		maxTTL = p.ExplicitMaxTTL
	}
	var (
		warnings    []string
		ttl         time.Duration
		explicitMax = p.ExplicitMaxTTL
	)
	if p.Period > 0 {
		ttl = p.Period
		if ttl > maxTTL {
			warnings = append(warnings, fmt.Sprintf("period of %q exceeded the effective max_ttl of %q; period value is capped accordingly", HumanDuration(ttl), HumanDuration(maxTTL)))
			ttl = maxTTL
		}
	} else {
		ttl = p.TTL
		if ttl <= 0 {
			ttl = def
		}
		if ttl > maxTTL {
			warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly", HumanDuration(ttl), HumanDuration(maxTTL)))
			ttl = maxTTL
		}
		if maxTTL < mountMax {
			explicitMax = maxTTL
		}
	}

	tok, accessor := newUnusedToken(in.Keyring, in.Tokens)
	meta := in.Metadata
	if len(meta) == 0 {
		meta = nil
	}
	cp := tokenview.CreatedPayload{
		MAC:            in.Keyring.MAC("token", tok),
		Accessor:       accessor,
		Policies:       policies,
		Orphan:         true,
		DisplayName:    in.DisplayName,
		Meta:           meta,
		Path:           in.Path,
		CreationTime:   in.Now,
		TTL:            ttl,
		ExplicitMaxTTL: explicitMax,
		Period:         p.Period,
		NumUses:        p.NumUses,
		Renewable:      true,
		Type:           "service",
		BoundCIDRs:     append([]string(nil), in.BoundCIDRs...),
		ExpireTime:     in.Now.Add(ttl),
	}
	auth := &engines.Auth{
		ClientToken:   tok,
		Accessor:      accessor,
		Policies:      append([]string(nil), policies...),
		TokenPolicies: append([]string(nil), policies...),
		Metadata:      maps.Clone(meta),
		LeaseDuration: ttl,
		Renewable:     true,
		TokenType:     "service",
		Orphan:        true,
		NumUses:       p.NumUses,
	}
	return auth, CreatedEvent(cp, ""), warnings, nil
}

// newUnusedToken draws a token and accessor that tokens (when not nil) does not hold. A
// collision of ~143 random bits does not happen; the check costs two map reads and makes it
// impossible by construction.
func newUnusedToken(keyring *ledger.Keyring, tokens *tokenview.View) (tok, accessor string) {
	for {
		tok, accessor = NewToken()
		if tokens == nil {
			return tok, accessor
		}
		_, t := tokens.ByMAC(keyring.MAC("token", tok))
		_, a := tokens.ByAccessor(accessor)
		if !t && !a {
			return tok, accessor
		}
	}
}
