package token

import "time"

// Params are Vault's tokenutil fields (token_*) of an auth method's role or user: how the
// tokens its logins issue look. The approle and userpass views store them inside their events
// and snapshots under these JSON names, so the names must never change.
type Params struct {
	Policies        []string      `json:"policies,omitempty"`
	TTL             time.Duration `json:"ttl,omitempty"`
	MaxTTL          time.Duration `json:"max_ttl,omitempty"`
	ExplicitMaxTTL  time.Duration `json:"explicit_max_ttl,omitempty"`
	Period          time.Duration `json:"period,omitempty"`
	NumUses         int           `json:"num_uses,omitempty"`
	NoDefaultPolicy bool          `json:"no_default_policy,omitempty"`
	BoundCIDRs      []string      `json:"bound_cidrs,omitempty"`
	Type            string        `json:"type,omitempty"` // "default" or "service"; "" reads as "default"
}
