package token

import (
	"fmt"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// nonAssignable are Vault's internal policies, never given to a token.
var nonAssignable = []string{"response-wrapping", "control-group"}

// createParams are the body of create and create-orphan.
type createParams struct {
	id              string
	policies        []string
	meta            map[string]string
	noParent        bool
	noDefaultPolicy bool
	renewable       bool
	ttl             time.Duration
	explicitMaxTTL  time.Duration
	period          time.Duration
	displayName     string
	numUses         int
	tokenType       string
	entityAlias     string
}

func parseCreate(data map[string]any) (createParams, error) {
	var (
		p   createParams
		err error
	)
	if p.id, err = engines.String(data, "id", ""); err != nil {
		return p, err
	}
	if p.policies, err = engines.Strings(data, "policies"); err != nil {
		return p, err
	}
	if p.meta, err = engines.StringMap(data, "meta"); err != nil {
		return p, err
	}
	if p.noParent, err = engines.Bool(data, "no_parent", false); err != nil {
		return p, err
	}
	if p.noDefaultPolicy, err = engines.Bool(data, "no_default_policy", false); err != nil {
		return p, err
	}
	if p.renewable, err = engines.Bool(data, "renewable", true); err != nil {
		return p, err
	}
	if p.displayName, err = engines.String(data, "display_name", ""); err != nil {
		return p, err
	}
	if p.numUses, err = engines.Int(data, "num_uses", 0); err != nil {
		return p, err
	}
	if p.tokenType, err = engines.String(data, "type", ""); err != nil {
		return p, err
	}
	if p.entityAlias, err = engines.String(data, "entity_alias", ""); err != nil {
		return p, err
	}
	if p.explicitMaxTTL, err = positiveDuration(data, "explicit_max_ttl"); err != nil {
		return p, err
	}
	if p.period, err = positiveDuration(data, "period"); err != nil {
		return p, err
	}
	if p.ttl, err = positiveDuration(data, "ttl"); err != nil {
		return p, err
	}
	if p.ttl == 0 {
		// "lease" is Vault's deprecated name for ttl.
		if p.ttl, err = positiveDuration(data, "lease"); err != nil {
			return p, err
		}
	}
	return p, nil
}

// create is auth/token/create, auth/token/create-orphan and, with a role,
// auth/token/create/:role, following Vault's handleCreateCommon (without batch tokens or
// chosen token IDs).
func (b *Backend) create(r *request, orphanPath bool, role *tokenview.Role) (*engines.Response, error) {
	parent, ok := b.live(r.Caller.TokenMAC, r.now)
	if !ok {
		return nil, engines.BadRequest("parent token lookup failed: no parent found")
	}
	// A token with a restricted number of uses could escape its count through children.
	if parent.NumUses > 0 {
		return nil, engines.BadRequest("restricted use token cannot generate child tokens")
	}
	isSudo := b.sudo(r.Caller, b.mountPath(r.Request)+r.Path)

	p, err := parseCreate(r.data)
	if err != nil {
		return nil, err
	}
	switch p.tokenType {
	case "", "service":
	case "batch":
		return nil, engines.BadRequest("batch tokens are not supported")
	default:
		return nil, engines.BadRequest("invalid 'token_type' value")
	}
	if p.numUses < 0 {
		return nil, engines.BadRequest("number of uses cannot be negative")
	}
	if p.entityAlias != "" {
		if role == nil {
			return nil, engines.BadRequest("'entity_alias' is only allowed in combination with token role")
		}
		return nil, engines.BadRequest("'entity_alias' is not supported: Ledger has no identity store")
	}
	if role != nil {
		applyRole(*role, &p)
	}
	if p.id != "" {
		// Chosen token strings would be guessable and would bypass our format; only the dev
		// root token, set up outside this engine, has one.
		if !isSudo {
			return nil, engines.BadRequest("root or sudo privileges required to specify token id")
		}
		return nil, engines.BadRequest("custom token IDs are not supported")
	}

	// Policies, exactly as Vault decides them: inherit the parent's when none are asked for;
	// otherwise a caller without sudo gets a subset of its own, plus "default" if it has it.
	var addDefault bool
	switch {
	case role != nil:
		if p.policies, err = rolePolicies(*role, p.policies, parent.Policies, isSudo, p.noDefaultPolicy); err != nil {
			return nil, err
		}
	case len(p.policies) == 0:
		p.policies = SanitizePolicies(parent.Policies, false)
	case !isSudo:
		if !subset(SanitizePolicies(parent.Policies, false), SanitizePolicies(p.policies, false)) {
			return nil, engines.BadRequest("child policies must be subset of parent")
		}
		addDefault = !p.noDefaultPolicy && contains(parent.Policies, "default")
	default:
		addDefault = !p.noDefaultPolicy
	}
	policies := SanitizePolicies(p.policies, addDefault)
	if p.noDefaultPolicy {
		policies = without(policies, "default")
	}
	for _, pol := range policies {
		if contains(nonAssignable, pol) {
			return nil, engines.BadRequest("cannot assign policy %q", pol)
		}
	}
	isRoot := contains(policies, "root")
	if isRoot && !contains(parent.Policies, "root") {
		return nil, engines.BadRequest("root tokens may not be created without parent token being root")
	}

	orphan := orphanPath
	if role != nil && role.Orphan {
		orphan = true
	} else if p.noParent {
		if !isSudo {
			return nil, engines.BadRequest("root or sudo privileges required to create orphan token")
		}
		orphan = true
	}
	if p.period > 0 && !isSudo && (role == nil || role.Period == 0) {
		return nil, engines.BadRequest("root or sudo privileges required to create periodic token")
	}

	// TTL: Vault's CalculateTTL from now, except for root tokens asking for none.
	var warnings []string
	ttl := p.ttl
	if p.period > 0 || ttl > 0 || !isRoot {
		def, max := LeaseTTLs(r.Mount, b.mount)
		var w []string
		if ttl, w, err = calculateTTL(def, max, 0, ttl, p.period, p.explicitMaxTTL, r.now, r.now); err != nil {
			return nil, err
		}
		warnings = append(warnings, w...)
	}
	if ttl == 0 && p.explicitMaxTTL > 0 {
		ttl = p.explicitMaxTTL // root tokens are still bound by an explicit max TTL
	}
	renewable := p.renewable
	if ttl == 0 {
		if parent.Expires() {
			return nil, engines.BadRequest("expiring root tokens cannot create non-expiring root tokens")
		}
		renewable = false // a token that never expires has nothing to renew
	}
	if !orphan && parent.Expires() {
		var w string
		if ttl, w = capByParent(ttl, parent.ExpireTime, r.now); w != "" {
			warnings = append(warnings, w)
		}
	}

	displayName := "token"
	if p.displayName != "" {
		displayName = strings.TrimSuffix(displayNameSanitize.ReplaceAllString("token-"+p.displayName, "-"), "-")
	}
	meta := p.meta
	if len(meta) == 0 {
		meta = nil
	}

	tokenPath := b.mountPath(r.Request) + r.Path
	if role != nil {
		tokenPath = rolePath(b.mountPath(r.Request), *role)
	}
	tok, accessor := NewToken()
	cp := tokenview.CreatedPayload{
		MAC:            b.macOf(tok),
		Accessor:       accessor,
		Policies:       policies,
		Orphan:         orphan,
		DisplayName:    displayName,
		Meta:           meta,
		Path:           tokenPath,
		CreationTime:   r.now,
		TTL:            ttl,
		ExplicitMaxTTL: p.explicitMaxTTL,
		Period:         p.period,
		NumUses:        p.numUses,
		Renewable:      renewable,
		Type:           "service",
	}
	if !orphan {
		cp.ParentMAC = parent.MAC
		cp.EntityID = parent.EntityID
		if ttl > 0 {
			cp.BoundCIDRs = append([]string(nil), parent.BoundCIDRs...)
		}
	}
	if role != nil && len(role.BoundCIDRs) > 0 {
		cp.BoundCIDRs = append([]string(nil), role.BoundCIDRs...)
	}
	if ttl > 0 {
		cp.ExpireTime = r.now.Add(ttl)
	}

	for _, pol := range policies {
		if pol != "root" && b.policyExists != nil && !b.policyExists(pol) {
			warnings = append(warnings, fmt.Sprintf("Policy %q does not exist", pol))
		}
	}
	return &engines.Response{
		Warnings: warnings,
		Auth: &engines.Auth{
			ClientToken:   tok,
			Accessor:      accessor,
			Policies:      append([]string(nil), policies...),
			TokenPolicies: append([]string(nil), policies...),
			Metadata:      meta,
			LeaseDuration: ttl,
			Renewable:     renewable,
			EntityID:      cp.EntityID,
			TokenType:     "service",
			Orphan:        orphan,
			NumUses:       p.numUses,
		},
		Events: stamp(r, []ledger.Event{CreatedEvent(cp, r.Caller.Accessor)}),
	}, nil
}
