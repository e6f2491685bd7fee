package jwt

import (
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/authrole"
)

// Role is one role, as stored in the log.
type Role struct {
	RoleType            string            `json:"role_type"`
	BoundAudiences      []string          `json:"bound_audiences,omitempty"`
	BoundSubject        string            `json:"bound_subject,omitempty"`
	BoundClaims         map[string]any    `json:"bound_claims,omitempty"`
	BoundClaimsType     string            `json:"bound_claims_type"`
	ClaimMappings       map[string]string `json:"claim_mappings,omitempty"`
	UserClaim           string            `json:"user_claim"`
	GroupsClaim         string            `json:"groups_claim,omitempty"`
	OIDCScopes          []string          `json:"oidc_scopes,omitempty"`
	AllowedRedirectURIs []string          `json:"allowed_redirect_uris,omitempty"`
	ClockSkewLeeway     time.Duration     `json:"clock_skew_leeway"`
	ExpirationLeeway    time.Duration     `json:"expiration_leeway"`
	NotBeforeLeeway     time.Duration     `json:"not_before_leeway"`
	MaxAge              time.Duration     `json:"max_age,omitempty"`
	VerboseOIDCLogging  bool              `json:"verbose_oidc_logging,omitempty"`
	enginetoken.RoleParams
}

var roleFields = append([]string{"role_type", "bound_audiences", "bound_subject", "bound_claims", "bound_claims_type",
	"claim_mappings", "user_claim", "groups_claim", "oidc_scopes", "allowed_redirect_uris", "clock_skew_leeway",
	"expiration_leeway", "not_before_leeway", "max_age", "verbose_oidc_logging", "user_claim_json_pointer"}, enginetoken.RoleParamFields()...)

func (b *Backend) role(name string) (Role, bool) {
	raw, ok := b.view.Role(b.mount.UUID, name)
	if !ok {
		return Role{}, false
	}
	var r Role
	if err := json.Unmarshal(raw, &r); err != nil {
		return Role{}, false
	}
	return r, true
}

func secs(d time.Duration) int64 { return int64(d / time.Second) }

func (b *Backend) readRole(name string) (*engines.Response, error) {
	role, ok := b.role(name)
	if !ok {
		return nil, engines.ErrNotFound
	}
	d := map[string]any{
		"role_type": role.RoleType, "bound_audiences": append([]string{}, role.BoundAudiences...),
		"bound_subject": role.BoundSubject, "bound_claims": role.BoundClaims, "bound_claims_type": role.BoundClaimsType,
		"claim_mappings": role.ClaimMappings, "user_claim": role.UserClaim, "user_claim_json_pointer": false,
		"groups_claim": role.GroupsClaim, "oidc_scopes": append([]string{}, role.OIDCScopes...),
		"allowed_redirect_uris": append([]string{}, role.AllowedRedirectURIs...),
		"clock_skew_leeway":     secs(role.ClockSkewLeeway), "expiration_leeway": secs(role.ExpirationLeeway),
		"not_before_leeway": secs(role.NotBeforeLeeway), "max_age": secs(role.MaxAge),
		"verbose_oidc_logging": role.VerboseOIDCLogging,
	}
	role.Populate(d)
	return &engines.Response{Data: d}, nil
}

// writeRole is POST role/<name>, following Vault's pathRoleCreateUpdate.
func (b *Backend) writeRole(r *request, name string) (*engines.Response, error) {
	role, exists := b.role(name)
	if !exists {
		role = Role{RoleType: "oidc", BoundClaimsType: "string", ClockSkewLeeway: 60 * time.Second,
			ExpirationLeeway: 150 * time.Second, NotBeforeLeeway: 150 * time.Second}
		role.Token.Type = "default"
	}
	warnings, err := role.Parse(r.data)
	if err != nil {
		return nil, err
	}
	for key, dst := range map[string]*string{"role_type": &role.RoleType, "bound_subject": &role.BoundSubject,
		"bound_claims_type": &role.BoundClaimsType, "user_claim": &role.UserClaim, "groups_claim": &role.GroupsClaim} {
		if engines.Has(r.data, key) {
			if *dst, err = engines.String(r.data, key, ""); err != nil {
				return nil, err
			}
		}
	}
	for key, dst := range map[string]*[]string{"bound_audiences": &role.BoundAudiences, "oidc_scopes": &role.OIDCScopes, "allowed_redirect_uris": &role.AllowedRedirectURIs} {
		if engines.Has(r.data, key) {
			if *dst, err = engines.Strings(r.data, key); err != nil {
				return nil, err
			}
		}
	}
	for key, dst := range map[string]*time.Duration{"clock_skew_leeway": &role.ClockSkewLeeway, "expiration_leeway": &role.ExpirationLeeway, "not_before_leeway": &role.NotBeforeLeeway, "max_age": &role.MaxAge} {
		if engines.Has(r.data, key) {
			if *dst, err = engines.Duration(r.data, key, 0); err != nil {
				return nil, err
			}
		}
	}
	if role.MaxAge < 0 {
		return nil, engines.BadRequest("max_age cannot be negative")
	}
	if engines.Has(r.data, "verbose_oidc_logging") {
		if role.VerboseOIDCLogging, err = engines.Bool(r.data, "verbose_oidc_logging", false); err != nil {
			return nil, err
		}
	}
	if engines.Has(r.data, "claim_mappings") {
		if role.ClaimMappings, err = engines.StringMap(r.data, "claim_mappings"); err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, v := range role.ClaimMappings {
			if seen[v] {
				return nil, engines.BadRequest("multiple keys are mapped to metadata key %q", v)
			}
			seen[v] = true
		}
	}
	if engines.Has(r.data, "bound_claims") {
		bc, ok := r.data["bound_claims"].(map[string]any)
		if r.data["bound_claims"] != nil && !ok {
			return nil, engines.BadRequest("field \"bound_claims\": expected an object")
		}
		for k, v := range bc {
			switch x := v.(type) {
			case string, bool, float64, json.Number:
			case []any:
				for _, e := range x {
					switch e.(type) {
					case string, bool, float64, json.Number:
					default:
						return nil, engines.BadRequest("bound claim %q: values must be strings, numbers or booleans", k)
					}
				}
			default:
				return nil, engines.BadRequest("bound claim %q: values must be strings, numbers or booleans", k)
			}
		}
		role.BoundClaims = bc
	}
	switch role.RoleType {
	case "jwt", "oidc":
	case "":
		role.RoleType = "oidc"
	default:
		return nil, engines.BadRequest("invalid 'role_type': %s", role.RoleType)
	}
	switch role.BoundClaimsType {
	case "", "string":
		role.BoundClaimsType = "string"
	case "glob":
		for k, v := range role.BoundClaims {
			if _, ok := v.(string); !ok {
				if l, ok := v.([]any); ok {
					for _, e := range l {
						if _, ok := e.(string); !ok {
							return nil, engines.BadRequest("claim %q is not a string or list: %v", k, v)
						}
					}
					continue
				}
				return nil, engines.BadRequest("claim %q is not a string or list: %v", k, v)
			}
		}
	default:
		return nil, engines.BadRequest("invalid 'bound_claims_type': %s", role.BoundClaimsType)
	}
	if role.UserClaim == "" {
		return nil, engines.BadRequest("a user claim must be defined on the role")
	}
	if role.RoleType == "oidc" && len(role.AllowedRedirectURIs) == 0 {
		return nil, engines.BadRequest("'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified.")
	}
	for _, u := range role.AllowedRedirectURIs {
		if pu, err := url.Parse(u); err != nil || pu.Scheme == "" || pu.Host == "" {
			return nil, engines.BadRequest("invalid allowed_redirect_uris entry %q", u)
		}
	}
	if role.RoleType == "jwt" && len(role.BoundAudiences) == 0 && len(role.BoundClaims) == 0 && role.BoundSubject == "" {
		return nil, engines.BadRequest("must have at least one bound constraint when creating/updating a role")
	}
	if unknown := engines.Unknown(r.data, roleFields...); len(unknown) > 0 {
		warnings = append(warnings, fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown))
	}
	raw, err := json.Marshal(role)
	if err != nil {
		return nil, err
	}
	ev := b.event(r, authrole.RoleWritten, name, authrole.RoleWrittenPayload{Mount: b.mount.UUID, Name: name, Role: raw})
	return &engines.Response{Warnings: warnings, Events: []ledger.Event{ev}}, nil
}

func (b *Backend) deleteRole(r *request, name string) (*engines.Response, error) {
	if _, ok := b.role(name); !ok {
		return &engines.Response{}, nil
	}
	ev := b.event(r, authrole.RoleDeleted, name, authrole.RoleDeletedPayload{Mount: b.mount.UUID, Name: name})
	return &engines.Response{Events: []ledger.Event{ev}}, nil
}
