package token

import (
	"fmt"
	"sort"
	"time"
)

// Token role events. A role is written whole (create and update alike) and deleted by name.
const (
	RoleWritten = "token.role.written.v1"
	RoleDeleted = "token.role.deleted.v1"
)

// Role is a token role (auth/token/roles/:name): what tokens created against it through
// auth/token/create/:name look like. The JSON names are stored in events and snapshots and
// must never change.
type Role struct {
	Name                   string        `json:"name"`
	AllowedPolicies        []string      `json:"allowed_policies,omitempty"`
	DisallowedPolicies     []string      `json:"disallowed_policies,omitempty"`
	AllowedPoliciesGlob    []string      `json:"allowed_policies_glob,omitempty"`
	DisallowedPoliciesGlob []string      `json:"disallowed_policies_glob,omitempty"`
	Orphan                 bool          `json:"orphan,omitempty"`
	Renewable              bool          `json:"renewable"`
	PathSuffix             string        `json:"path_suffix,omitempty"`
	AllowedEntityAliases   []string      `json:"allowed_entity_aliases,omitempty"`
	BoundCIDRs             []string      `json:"bound_cidrs,omitempty"`
	ExplicitMaxTTL         time.Duration `json:"explicit_max_ttl,omitempty"`
	NoDefaultPolicy        bool          `json:"no_default_policy,omitempty"`
	NumUses                int           `json:"num_uses,omitempty"`
	Period                 time.Duration `json:"period,omitempty"`
	TokenType              string        `json:"token_type,omitempty"`
}

// RoleDeletedPayload removes a role.
type RoleDeletedPayload struct {
	Name string `json:"name"`
}

// applyRole folds a role event. Callers hold no lock.
func (v *View) applyRole(typ string, payload []byte) error {
	switch typ {
	case RoleWritten:
		var r Role
		if err := decode(payload, &r); err != nil {
			return err
		}
		if r.Name == "" {
			return fmt.Errorf("%s without a name: %w", typ, errMalformed)
		}
		v.mu.Lock()
		v.roles[r.Name] = r
		v.mu.Unlock()
	case RoleDeleted:
		var p RoleDeletedPayload
		if err := decode(payload, &p); err != nil {
			return err
		}
		v.mu.Lock()
		delete(v.roles, p.Name)
		v.mu.Unlock()
	}
	return nil
}

// Role returns the named role. Its slices are shared with the view: read-only.
func (v *View) Role(name string) (Role, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	r, ok := v.roles[name]
	return r, ok
}

// RoleNames returns the names of every role, sorted (LIST auth/token/roles).
func (v *View) RoleNames() []string {
	v.mu.RLock()
	out := make([]string, 0, len(v.roles))
	for n := range v.roles {
		out = append(out, n)
	}
	v.mu.RUnlock()
	sort.Strings(out)
	return out
}

// sortedRoles is the roles for a snapshot, sorted by name. Callers hold the read lock.
func (v *View) sortedRoles() []Role {
	if len(v.roles) == 0 {
		return nil
	}
	out := make([]Role, 0, len(v.roles))
	for _, r := range v.roles {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
