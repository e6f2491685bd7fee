package approle

import (
	"fmt"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
	approleview "github.com/ledger-secrets/ledger/projections/approle"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// The token-issuing code below is the same as engines/userpass's: both follow Vault's
// tokenutil. It belongs with the token store (engines/token, which owns token semantics) once
// a third auth method needs it.

// Default lease TTLs when neither the request's mount nor the backend's says (Vault's 32 days).
const (
	defaultTTL    = 768 * time.Hour
	defaultMaxTTL = 768 * time.Hour
)

// tokenFields are Vault's tokenutil fields, shared by every auth method's roles.
var tokenFields = []string{
	"token_bound_cidrs", "token_explicit_max_ttl", "token_max_ttl", "token_no_default_policy",
	"token_num_uses", "token_period", "token_policies", "token_type", "token_ttl",
}

// parseTokenFields merges the token_* fields present in data into t, with Vault's
// tokenutil.ParseTokenFields rules and messages. Batch tokens are refused: Ledger issues
// service tokens only.
func parseTokenFields(data map[string]any, t *approleview.TokenParams) (warnings []string, err error) {
	if engines.Has(data, "token_bound_cidrs") {
		cidrs, err := engines.Strings(data, "token_bound_cidrs")
		if err != nil {
			return nil, err
		}
		if err := checkCIDRs("invalid token_bound_cidrs", cidrs); err != nil {
			return nil, err
		}
		t.BoundCIDRs = cidrs
	}
	for _, f := range []struct {
		key string
		dst *time.Duration
	}{
		{"token_explicit_max_ttl", &t.ExplicitMaxTTL},
		{"token_max_ttl", &t.MaxTTL},
		{"token_period", &t.Period},
		{"token_ttl", &t.TTL},
	} {
		if !engines.Has(data, f.key) {
			continue
		}
		d, err := nonNegativeDuration(data, f.key)
		if err != nil {
			return nil, err
		}
		*f.dst = d
	}
	if engines.Has(data, "token_no_default_policy") {
		if t.NoDefaultPolicy, err = engines.Bool(data, "token_no_default_policy", false); err != nil {
			return nil, err
		}
	}
	if engines.Has(data, "token_policies") {
		if t.Policies, err = engines.Strings(data, "token_policies"); err != nil {
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
			t.Type = "default"
		case "service":
			t.Type = "service"
		case "default-service":
			t.Type = "service"
			warnings = append(warnings, "default-service has no useful meaning; adjusting to service")
		case "batch", "default-batch":
			return nil, engines.BadRequest("batch tokens are not supported")
		default:
			return nil, engines.BadRequest("invalid 'token_type' value %q", typ)
		}
	}
	if engines.Has(data, "token_num_uses") {
		if t.NumUses, err = engines.Int(data, "token_num_uses", 0); err != nil {
			return nil, err
		}
		if t.NumUses < 0 {
			return nil, engines.BadRequest("'token_num_uses' cannot be negative")
		}
	}
	if t.TTL > 0 && t.MaxTTL > 0 && t.TTL > t.MaxTTL {
		return nil, engines.BadRequest("'token_ttl' cannot be greater than 'token_max_ttl'")
	}
	return warnings, nil
}

// populateTokenData is tokenutil.PopulateTokenData: the token_* fields of a read.
func populateTokenData(d map[string]any, t approleview.TokenParams) {
	typ := t.Type
	if typ == "" {
		typ = "default"
	}
	d["token_bound_cidrs"] = list(t.BoundCIDRs)
	d["token_explicit_max_ttl"] = seconds(t.ExplicitMaxTTL)
	d["token_max_ttl"] = seconds(t.MaxTTL)
	d["token_no_default_policy"] = t.NoDefaultPolicy
	d["token_period"] = seconds(t.Period)
	d["token_policies"] = list(t.Policies)
	d["token_type"] = typ
	d["token_ttl"] = seconds(t.TTL)
	d["token_num_uses"] = t.NumUses
}

// login is what a successful login hands to issue.
type login struct {
	params      approleview.TokenParams
	boundCIDRs  []string
	meta        map[string]string
	displayName string
	path        string // e.g. "auth/approle/login", recorded in the token
}

// issue decides the token of a successful login exactly as the token store records any token
// (enginetoken.NewToken, CreatedEvent with the keyring MAC), with the TTL Vault's core gives a
// login: the role's TTL or the mount's default, capped by the role's max TTL, the explicit max
// TTL and the mount's max; a period replaces the TTL. Login tokens are orphans.
//
// The token view keeps no "max TTL of the issuing role", and renewals go through
// auth/token/renew, which knows only the mount's max and the token's explicit max. So that a
// role's token_max_ttl still bounds renewals, a non-periodic token carries the effective max as
// its explicit max TTL when it is tighter than the mount's.
func (b *Backend) issue(r *request, in login) (*engines.Auth, ledger.Event, []string, error) {
	t := in.params
	policies := sanitizePolicies(t.Policies, !t.NoDefaultPolicy)
	for _, p := range policies {
		if p == "root" {
			return nil, ledger.Event{}, nil, engines.BadRequest("auth methods cannot create root tokens")
		}
	}
	def, mountMax := b.leaseTTLs(r.Request)
	maxTTL := mountMax
	if t.MaxTTL > 0 && t.MaxTTL < maxTTL {
		maxTTL = t.MaxTTL
	}
	if t.ExplicitMaxTTL > 0 && t.ExplicitMaxTTL < maxTTL {
		maxTTL = t.ExplicitMaxTTL
	}
	var (
		warnings    []string
		ttl         time.Duration
		explicitMax = t.ExplicitMaxTTL
	)
	if t.Period > 0 {
		ttl = t.Period
		if ttl > maxTTL {
			warnings = append(warnings, fmt.Sprintf("period of %q exceeded the effective max_ttl of %q; period value is capped accordingly", humanDuration(ttl), humanDuration(maxTTL)))
			ttl = maxTTL
		}
	} else {
		ttl = t.TTL
		if ttl <= 0 {
			ttl = def
		}
		if ttl > maxTTL {
			warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly", humanDuration(ttl), humanDuration(maxTTL)))
			ttl = maxTTL
		}
		if maxTTL < mountMax {
			explicitMax = maxTTL
		}
	}

	tok, accessor := b.newToken()
	meta := in.meta
	if len(meta) == 0 {
		meta = nil
	}
	cp := tokenview.CreatedPayload{
		MAC:            b.keyring.MAC("token", tok),
		Accessor:       accessor,
		Policies:       policies,
		Orphan:         true,
		DisplayName:    in.displayName,
		Meta:           meta,
		Path:           in.path,
		CreationTime:   r.now,
		TTL:            ttl,
		ExplicitMaxTTL: explicitMax,
		Period:         t.Period,
		NumUses:        t.NumUses,
		Renewable:      true,
		Type:           "service",
		BoundCIDRs:     append([]string(nil), in.boundCIDRs...),
		ExpireTime:     r.now.Add(ttl),
	}
	ev := enginetoken.CreatedEvent(cp, "")
	auth := &engines.Auth{
		ClientToken:   tok,
		Accessor:      accessor,
		Policies:      append([]string(nil), policies...),
		TokenPolicies: append([]string(nil), policies...),
		Metadata:      copyMap(meta),
		LeaseDuration: ttl,
		Renewable:     true,
		TokenType:     "service",
		Orphan:        true,
		NumUses:       t.NumUses,
	}
	return auth, ev, warnings, nil
}

// newToken draws a token and accessor the token view does not hold. A collision of ~143 random
// bits does not happen; the check costs two map reads and makes it impossible by construction.
func (b *Backend) newToken() (tok, accessor string) {
	for {
		tok, accessor = enginetoken.NewToken()
		if b.tokens == nil {
			return tok, accessor
		}
		_, t := b.tokens.ByMAC(b.keyring.MAC("token", tok))
		_, a := b.tokens.ByAccessor(accessor)
		if !t && !a {
			return tok, accessor
		}
	}
}

// leaseTTLs are the mount's effective default and max TTL, per request (tuning may change).
func (b *Backend) leaseTTLs(req *engines.Request) (def, max time.Duration) {
	def, max = req.Mount.DefaultLeaseTTL, req.Mount.MaxLeaseTTL
	if def <= 0 {
		def = b.mount.DefaultLeaseTTL
	}
	if max <= 0 {
		max = b.mount.MaxLeaseTTL
	}
	if def <= 0 {
		def = defaultTTL
	}
	if max <= 0 {
		max = defaultMaxTTL
	}
	return def, max
}
