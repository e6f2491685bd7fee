package token

import (
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// renewPath is auth/token/renew (token in the body), renew-self and renew-accessor.
func (b *Backend) renewPath(r *request, path string) (*engines.Response, error) {
	var (
		e     tokenview.Entry
		tok   string
		found bool
	)
	switch path {
	case "renew":
		var err error
		if tok, err = engines.String(r.data, "token", ""); err != nil {
			return nil, err
		}
		if tok == "" {
			return nil, engines.BadRequest("missing token ID")
		}
		e, found = b.live(b.macOf(tok), r.now)
	case "renew-self":
		tok = b.clientToken(r.ctx, r.Caller)
		e, found = b.live(r.Caller.TokenMAC, r.now)
	case "renew-accessor":
		var err error
		if e, err = b.byAccessor(r); err != nil {
			return nil, err
		}
		found = true // the accessor is answered, never the token
	}
	if !found {
		return nil, engines.BadRequest("token not found")
	}
	return b.renew(r, e, tok)
}

// renew extends a token's lease as Vault's expiration manager does.
func (b *Backend) renew(r *request, e tokenview.Entry, tok string) (*engines.Response, error) {
	increment, err := engines.Duration(r.data, "increment", 0)
	if err != nil {
		return nil, err
	}
	// Non-expiring tokens (root) have no lease to renew: Vault answers exactly this.
	if !e.Expires() || !e.Renewable {
		return nil, engines.BadRequest("lease is not renewable")
	}
	def, max := LeaseTTLs(r.Mount, b.mount)
	ttl, warnings, err := calculateTTL(def, max, increment, e.TTL, e.Period, e.ExplicitMaxTTL, e.CreationTime, r.now)
	if err != nil {
		return nil, err
	}
	if e.ParentMAC != "" {
		if parent, ok := b.view.ByMAC(e.ParentMAC); ok && parent.Expires() {
			var w string
			if ttl, w = capByParent(ttl, parent.ExpireTime, r.now); w != "" {
				warnings = append(warnings, w)
			}
		}
	}
	ev := renewedEvent(tokenview.RenewedPayload{MAC: e.MAC, TTL: ttl, ExpireTime: r.now.Add(ttl), RenewTime: r.now})
	return &engines.Response{
		Warnings: warnings,
		Auth: &engines.Auth{
			ClientToken:   tok,
			Accessor:      e.Accessor,
			Policies:      append([]string(nil), e.Policies...),
			TokenPolicies: append([]string(nil), e.Policies...),
			Metadata:      copyMeta(e.Meta),
			LeaseDuration: ttl,
			Renewable:     true,
			EntityID:      e.EntityID,
			TokenType:     "service",
			Orphan:        e.ParentMAC == "",
			NumUses:       e.UsesLeft,
		},
		Events: stamp(r, []ledger.Event{ev}),
	}, nil
}
