package token

import (
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// Token roles (auth/token/roles/:name) shape the tokens created through
// auth/token/create/:name, as Vault's token store roles do. A role with allowed_policies lets
// a caller create tokens with policies it does not hold itself — that is its purpose — so the
// power to grant them is checked when the role is written: a writer without sudo on the role's
// path may only allow policies it holds, and no globs (a glob allows policies that do not
// exist yet). Root and sudo writers are trusted, as with the policies of orphan tokens.

const maxRoleNameLen = 128

func roleEvent(typ, name, actor string, payload any) ledger.Event {
	return event(typ, "role\x00"+name, actor, payload)
}

func (b *Backend) handleRoles(r *request, p string) (*engines.Response, error) {
	name, _ := strings.CutPrefix(p, "roles")
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		if r.Op != engines.OpList {
			return nil, errUnsupportedOp
		}
		return &engines.Response{Data: map[string]any{"keys": b.view.RoleNames()}}, nil
	}
	if err := checkRoleName(name); err != nil {
		return nil, err
	}
	switch {
	case r.Op == engines.OpRead:
		role, ok := b.view.Role(name)
		if !ok {
			return nil, engines.ErrNotFound // Vault: 404 {"errors":[]}
		}
		return &engines.Response{Data: roleJSON(role)}, nil
	case isWrite(r.Op):
		return b.writeRole(r, name)
	case r.Op == engines.OpDelete:
		if _, ok := b.view.Role(name); !ok {
			return nil, nil
		}
		return &engines.Response{Events: stamp(r, []ledger.Event{roleEvent(tokenview.RoleDeleted, name, r.Caller.Accessor, tokenview.RoleDeletedPayload{Name: name})})}, nil
	}
	return nil, errUnsupportedOp
}

func checkRoleName(name string) error {
	switch {
	case len(name) > maxRoleNameLen:
		return engines.BadRequest("role name is longer than %d characters", maxRoleNameLen)
	case strings.ContainsAny(name, "/*") || name == "." || name == "..":
		return engines.BadRequest("invalid role name %q", name)
	}
	return nil
}

func roleJSON(r tokenview.Role) map[string]any {
	typ := r.TokenType
	if typ == "" {
		typ = "default-service"
	}
	return map[string]any{
		"name":                     r.Name,
		"allowed_policies":         nonNil(r.AllowedPolicies),
		"disallowed_policies":      nonNil(r.DisallowedPolicies),
		"allowed_policies_glob":    nonNil(r.AllowedPoliciesGlob),
		"disallowed_policies_glob": nonNil(r.DisallowedPoliciesGlob),
		"allowed_entity_aliases":   nonNil(r.AllowedEntityAliases),
		"orphan":                   r.Orphan,
		"renewable":                r.Renewable,
		"path_suffix":              r.PathSuffix,
		"token_bound_cidrs":        nonNil(r.BoundCIDRs),
		"token_explicit_max_ttl":   seconds(r.ExplicitMaxTTL),
		"explicit_max_ttl":         seconds(r.ExplicitMaxTTL),
		"token_no_default_policy":  r.NoDefaultPolicy,
		"token_num_uses":           r.NumUses,
		"token_period":             seconds(r.Period),
		"period":                   seconds(r.Period),
		"token_type":               typ,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeRole creates or updates a role; on update, fields not in the request keep their value.
func (b *Backend) writeRole(r *request, name string) (*engines.Response, error) {
	role, exists := b.view.Role(name)
	if !exists {
		role = tokenview.Role{Name: name, Renewable: true}
	}
	d := r.data
	var err error
	list := func(key string, dst *[]string, clean func([]string) []string) {
		if err == nil && engines.Has(d, key) {
			var v []string
			if v, err = engines.Strings(d, key); err == nil {
				*dst = clean(v)
			}
		}
	}
	lower := func(v []string) []string { return SanitizePolicies(v, false) }
	asIs := func(v []string) []string { return v }
	list("allowed_policies", &role.AllowedPolicies, lower)
	list("disallowed_policies", &role.DisallowedPolicies, lower)
	list("allowed_policies_glob", &role.AllowedPoliciesGlob, asIs)
	list("disallowed_policies_glob", &role.DisallowedPoliciesGlob, asIs)
	list("allowed_entity_aliases", &role.AllowedEntityAliases, asIs)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		key string
		dst *bool
	}{{"orphan", &role.Orphan}, {"renewable", &role.Renewable}, {"token_no_default_policy", &role.NoDefaultPolicy}} {
		if engines.Has(d, f.key) {
			if *f.dst, err = engines.Bool(d, f.key, false); err != nil {
				return nil, err
			}
		}
	}
	if engines.Has(d, "path_suffix") {
		if role.PathSuffix, err = engines.String(d, "path_suffix", ""); err != nil {
			return nil, err
		}
		role.PathSuffix = strings.Trim(role.PathSuffix, "/")
		if strings.Contains(role.PathSuffix, "..") {
			return nil, engines.BadRequest("error registering path suffix: path cannot contain parent references")
		}
	}
	// The token_* names win over their deprecated spellings, as tokenutil.UpgradeValue.
	for _, f := range []struct {
		key, legacy string
		dst         *time.Duration
	}{{"token_period", "period", &role.Period}, {"token_explicit_max_ttl", "explicit_max_ttl", &role.ExplicitMaxTTL}} {
		key := f.key
		if !engines.Has(d, key) {
			if !engines.Has(d, f.legacy) {
				continue
			}
			key = f.legacy
		}
		if *f.dst, err = engines.NonNegativeDuration(d, key); err != nil {
			return nil, err
		}
	}
	for _, key := range []string{"token_bound_cidrs", "bound_cidrs"} {
		if engines.Has(d, key) {
			cidrs, err := engines.Strings(d, key)
			if err != nil {
				return nil, err
			}
			if err := engines.CheckCIDRs("invalid "+key, cidrs); err != nil {
				return nil, err
			}
			role.BoundCIDRs = cidrs
			break
		}
	}
	if engines.Has(d, "token_num_uses") {
		if role.NumUses, err = engines.Int(d, "token_num_uses", 0); err != nil {
			return nil, err
		}
		if role.NumUses < 0 {
			return nil, engines.BadRequest("'token_num_uses' cannot be negative")
		}
	}
	if engines.Has(d, "token_type") {
		typ, err := engines.String(d, "token_type", "")
		if err != nil {
			return nil, err
		}
		switch typ {
		case "", "default", "default-service":
			role.TokenType = "default-service"
		case "service":
			role.TokenType = "service"
		case "batch", "default-batch":
			return nil, engines.BadRequest("batch tokens are not supported")
		default:
			return nil, engines.BadRequest("invalid 'token_type' value %q", typ)
		}
	}
	for _, g := range append(append([]string{}, role.AllowedPoliciesGlob...), role.DisallowedPoliciesGlob...) {
		if strings.TrimSpace(g) == "" {
			return nil, engines.BadRequest("empty policy glob")
		}
	}
	if len(role.AllowedEntityAliases) > 0 {
		return nil, engines.BadRequest("allowed_entity_aliases is not supported: Ledger has no identity store to create entities in")
	}
	if !b.sudo(r.Caller, b.mountPath(r.Request)+r.Path) {
		if len(role.AllowedPoliciesGlob) > 0 {
			return nil, engines.BadRequest("root or sudo privileges required to set allowed_policies_glob: a glob allows policies the writer does not hold")
		}
		if lacking := missing(SanitizePolicies(r.Caller.Policies, false), without(role.AllowedPolicies, "default")); len(lacking) > 0 {
			return nil, engines.BadRequest("a role cannot allow policies the writing token does not have (%q); root or sudo privileges required", lacking)
		}
	}
	return &engines.Response{Events: stamp(r, []ledger.Event{roleEvent(tokenview.RoleWritten, name, r.Caller.Accessor, role)})}, nil
}

func missing(have, want []string) []string {
	var out []string
	for _, w := range want {
		if !contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

// globMatch is Vault's policy glob: "*" matches any run of characters, "/" included.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

func globAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

// rolePolicies decides the policies of a token created against role, as Vault's
// handleCreateCommon: the requested ones must lie within the role's allowed policies (or,
// when the role allows none, within the parent's unless the caller has sudo); none requested
// means all the role allows (or the parent's); disallowed policies refuse the request;
// "default" is added unless refused by the request, the role or its disallowed lists.
func rolePolicies(role tokenview.Role, requested, parent []string, isSudo, noDefault bool) ([]string, error) {
	final := without(SanitizePolicies(requested, false), "default")
	allowed := role.AllowedPolicies
	switch {
	case len(allowed) > 0 || len(role.AllowedPoliciesGlob) > 0:
		if len(final) == 0 {
			final = without(SanitizePolicies(allowed, false), "default")
			break
		}
		for _, p := range final {
			if !contains(allowed, p) && !globAny(role.AllowedPoliciesGlob, p) {
				return nil, engines.BadRequest("token policies (%q) must be subset of the role's allowed policies (%q) or glob policies (%q)", final, nonNil(allowed), nonNil(role.AllowedPoliciesGlob))
			}
		}
	default:
		parentPols := without(SanitizePolicies(parent, false), "default")
		if len(final) == 0 {
			final = parentPols
		} else if !isSudo && !subset(SanitizePolicies(parent, false), final) {
			return nil, engines.BadRequest("token policies (%q) must be subset of the parent token's policies (%q)", final, parentPols)
		}
	}
	disallowed := func(p string) bool {
		return contains(role.DisallowedPolicies, p) || globAny(role.DisallowedPoliciesGlob, p)
	}
	for _, p := range final {
		if disallowed(p) {
			return nil, engines.BadRequest("token policy %q is disallowed by this role", p)
		}
	}
	addDefault := !noDefault && !role.NoDefaultPolicy && !disallowed("default")
	return SanitizePolicies(final, addDefault), nil
}

// applyRole bounds a token's parameters by its role: period, explicit max TTL and number of
// uses are the role's when it sets them (the role's period needs no sudo), and a role that is
// not renewable makes tokens that are not.
func applyRole(role tokenview.Role, p *createParams) {
	if role.Period > 0 {
		p.period = role.Period
	}
	if role.ExplicitMaxTTL > 0 && (p.explicitMaxTTL == 0 || p.explicitMaxTTL > role.ExplicitMaxTTL) {
		p.explicitMaxTTL = role.ExplicitMaxTTL
	}
	if role.NumUses > 0 && (p.numUses == 0 || p.numUses > role.NumUses) {
		p.numUses = role.NumUses
	}
	if !role.Renewable {
		p.renewable = false
	}
}

// rolePath is the token's path: auth/token/create/<role>[/<suffix>], so revoke-prefix can
// reach every token of a role.
func rolePath(mountPath string, role tokenview.Role) string {
	p := mountPath + "create/" + role.Name
	if role.PathSuffix != "" {
		p += "/" + role.PathSuffix
	}
	return p
}
