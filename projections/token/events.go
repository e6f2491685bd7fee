package token

import "time"

// Event types of the token view. The token engine decides them; init writes the first
// TokenCreated for the root token.
const (
	Created = "token.created.v1"
	Renewed = "token.renewed.v1"
	Used    = "token.used.v1"    // one use of a token with num_uses; at zero uses left it is gone
	Revoked = "token.revoked.v1" // revoked or expired; one event per token
)

// CreatedPayload describes a new token. The token string itself is never stored: only its MAC.
type CreatedPayload struct {
	MAC            string            `json:"mac"`
	Accessor       string            `json:"accessor"`
	ParentMAC      string            `json:"parent_mac,omitempty"`
	Policies       []string          `json:"policies"`
	Orphan         bool              `json:"orphan"`
	DisplayName    string            `json:"display_name"`
	Meta           map[string]string `json:"meta,omitempty"`
	Path           string            `json:"path"`
	CreationTime   time.Time         `json:"creation_time"`
	TTL            time.Duration     `json:"ttl"`
	ExplicitMaxTTL time.Duration     `json:"explicit_max_ttl,omitempty"`
	Period         time.Duration     `json:"period,omitempty"`
	NumUses        int               `json:"num_uses,omitempty"`
	Renewable      bool              `json:"renewable"`
	Type           string            `json:"type"` // "service"
	EntityID       string            `json:"entity_id,omitempty"`
	BoundCIDRs     []string          `json:"bound_cidrs,omitempty"`
	// ExpireTime is zero for tokens that never expire (root).
	ExpireTime time.Time `json:"expire_time"`
}

// RenewedPayload moves a token's expiry.
type RenewedPayload struct {
	MAC        string        `json:"mac"`
	TTL        time.Duration `json:"ttl"`
	ExpireTime time.Time     `json:"expire_time"`
	RenewTime  time.Time     `json:"renew_time"`
}

// UsedPayload records one use of a limited-use token.
type UsedPayload struct {
	MAC string `json:"mac"`
}

// RevokedPayload removes a token. Reason is "revoked", "expired", "parent revoked" or
// "uses exhausted"; children re-parented to nothing when OrphanChildren is set.
type RevokedPayload struct {
	MAC            string `json:"mac"`
	Reason         string `json:"reason"`
	OrphanChildren bool   `json:"orphan_children,omitempty"`
}
