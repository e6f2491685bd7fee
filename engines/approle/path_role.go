package approle

import (
	"fmt"

	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
	approleview "github.com/ledger-secrets/ledger/projections/approle"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// roleFields are the parameters of role/<name>, for the "ignored these unrecognized
// parameters" warning.
var roleFields = append([]string{
	"role_name", "bind_secret_id", "secret_id_bound_cidrs", "bound_cidr_list", "secret_id_num_uses",
	"secret_id_ttl", "local_secret_ids", "role_id", "policies", "period",
}, enginetoken.ParamFields()...)

// listRoles is LIST role.
func (b *Backend) listRoles() (*engines.Response, error) {
	keys := b.view.Roles(b.mount.UUID)
	if len(keys) == 0 {
		return nil, engines.ErrNotFound
	}
	return &engines.Response{Data: map[string]any{"keys": keys}}, nil
}

// roleData is Vault's answer to a role read.
func roleData(r approleview.Role) map[string]any {
	d := map[string]any{
		"bind_secret_id":        r.BindSecretID,
		"secret_id_bound_cidrs": list(r.SecretIDBoundCIDRs),
		"secret_id_num_uses":    r.SecretIDNumUses,
		"secret_id_ttl":         seconds(r.SecretIDTTL),
		"local_secret_ids":      r.LocalSecretIDs,
	}
	enginetoken.PopulateParams(d, r.Token)
	// Backwards compatible data, shown only when the deprecated fields were used.
	if r.LegacyPeriod != 0 {
		d["period"] = seconds(r.LegacyPeriod)
	}
	if len(r.LegacyPolicies) > 0 {
		d["policies"] = list(r.LegacyPolicies)
	}
	return d
}

// readRole is GET role/<name>.
func (b *Backend) readRole(name string) (*engines.Response, error) {
	role, ok := b.view.Role(b.mount.UUID, name)
	if !ok {
		return nil, engines.ErrNotFound
	}
	return &engines.Response{Data: roleData(role)}, nil
}

// writeRole is POST role/<name> (and, with data reduced to one field, the per-field
// endpoints), following Vault's pathRoleCreateUpdate.
func (b *Backend) writeRole(r *request, name string, data map[string]any) (*engines.Response, error) {
	old, exists := b.view.Role(b.mount.UUID, name)
	role := old
	create := !exists
	if create {
		// An update of a role that is not there (it went between the existence check and now)
		// creates it, as the create it would have been a moment earlier.
		role = approleview.Role{Name: name, Key: newUUID(), BindSecretID: true, Token: tokenview.Params{Type: "default"}, Created: r.now}
	}
	role.Updated = r.now

	warnings, err := enginetoken.ParseParams(data, &role.Token)
	if err != nil {
		return nil, err
	}
	if engines.Has(data, "local_secret_ids") {
		if !create {
			return nil, engines.BadRequest("local_secret_ids can only be modified during role creation")
		}
		if role.LocalSecretIDs, err = engines.Bool(data, "local_secret_ids", false); err != nil {
			return nil, err
		}
	}
	if engines.Has(data, "role_id") {
		if role.RoleID, err = engines.String(data, "role_id", ""); err != nil {
			return nil, err
		}
	} else if create {
		role.RoleID = newUUID()
	}
	if role.RoleID == "" {
		return nil, engines.BadRequest("invalid role_id supplied, or failed to generate a role_id")
	}
	if len(role.RoleID) > maxInput {
		return nil, engines.BadRequest("role_id is longer than maximum of %d bytes", maxInput)
	}
	if engines.Has(data, "bind_secret_id") {
		if role.BindSecretID, err = engines.Bool(data, "bind_secret_id", true); err != nil {
			return nil, err
		}
	}
	for _, key := range []string{"secret_id_bound_cidrs", "bound_cidr_list"} {
		if !engines.Has(data, key) {
			continue
		}
		cidrs, err := engines.Strings(data, key)
		if err != nil {
			return nil, err
		}
		if err := engines.CheckCIDRs("invalid CIDR blocks", cidrs); err != nil {
			return nil, err
		}
		role.SecretIDBoundCIDRs = cidrs
		break // secret_id_bound_cidrs wins over the deprecated bound_cidr_list
	}
	if engines.Has(data, "secret_id_num_uses") {
		if role.SecretIDNumUses, err = engines.Int(data, "secret_id_num_uses", 0); err != nil {
			return nil, err
		}
		if role.SecretIDNumUses < 0 {
			return nil, engines.BadRequest("secret_id_num_uses cannot be negative")
		}
	}
	if engines.Has(data, "secret_id_ttl") {
		if role.SecretIDTTL, err = engines.NonNegativeDuration(data, "secret_id_ttl"); err != nil {
			return nil, err
		}
	}
	if err := upgradeLegacy(data, &role); err != nil {
		return nil, err
	}
	if role.Token.TTL > 0 && role.Token.MaxTTL > 0 && role.Token.TTL > role.Token.MaxTTL {
		return nil, engines.BadRequest("'token_ttl' cannot be greater than 'token_max_ttl'")
	}
	_, mountMax := enginetoken.LeaseTTLs(r.Mount, b.mount)
	if role.Token.Period > mountMax {
		return nil, engines.BadRequest("period of %q is greater than the backend's maximum lease TTL of %q", enginetoken.HumanDuration(role.Token.Period), enginetoken.HumanDuration(mountMax))
	}
	if role.Token.MaxTTL > mountMax {
		warnings = append(warnings, "token_max_ttl is greater than the backend mount's maximum TTL value; issued tokens' max TTL value will be truncated")
	}
	if !role.BindSecretID && len(role.SecretIDBoundCIDRs) == 0 && len(role.Token.BoundCIDRs) == 0 {
		return nil, engines.BadRequest("at least one constraint should be enabled on the role")
	}
	if other, ok := b.view.RoleByRoleID(b.mount.UUID, role.RoleID); ok && other.Name != name {
		return nil, engines.BadRequest("role_id already in use")
	}
	if unknown := engines.Unknown(data, roleFields...); len(unknown) > 0 {
		warnings = append(warnings, fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown))
	}
	ev := b.event(r, approleview.RoleWritten, name, approleview.RoleWrittenPayload{Mount: b.mount.UUID, Role: role})
	return &engines.Response{Warnings: warnings, Events: []ledger.Event{ev}}, nil
}

// upgradeLegacy applies the deprecated "policies" and "period" as Vault's
// tokenutil.UpgradeValue: alone they set their token_* twin; beside it they mirror it; when only
// the new field is given the old one is cleared.
func upgradeLegacy(data map[string]any, role *approleview.Role) error {
	if err := enginetoken.UpgradePolicies(data, &role.Token, &role.LegacyPolicies); err != nil {
		return err
	}
	return enginetoken.UpgradeDuration(data, "period", "token_period", &role.LegacyPeriod, &role.Token.Period)
}

// deleteRole is DELETE role/<name>: the role and every secret ID of it.
func (b *Backend) deleteRole(r *request, name string) (*engines.Response, error) {
	if _, ok := b.view.Role(b.mount.UUID, name); !ok {
		return &engines.Response{}, nil
	}
	ev := b.event(r, approleview.RoleDeleted, name, approleview.RoleDeletedPayload{Mount: b.mount.UUID, Name: name})
	return &engines.Response{Events: []ledger.Event{ev}}, nil
}

// readRoleID is GET role/<name>/role-id.
func (b *Backend) readRoleID(name string) (*engines.Response, error) {
	role, ok := b.view.Role(b.mount.UUID, name)
	if !ok {
		return nil, engines.ErrNotFound
	}
	return &engines.Response{Data: map[string]any{"role_id": role.RoleID}}, nil
}

// writeRoleID is POST role/<name>/role-id: a custom role_id.
func (b *Backend) writeRoleID(r *request, name string) (*engines.Response, error) {
	if _, ok := b.view.Role(b.mount.UUID, name); !ok {
		return nil, errUnsupportedPath
	}
	id, err := engines.String(r.data, "role_id", "")
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, engines.BadRequest("missing role_id")
	}
	return b.writeRole(r, name, map[string]any{"role_id": id})
}

// fieldPath is one of the per-field endpoints role/<name>/<field>, which exist so that ACLs can
// delegate a single property.
type fieldPath struct {
	read   []string       // keys of the role's read data answered by GET
	inputs []string       // fields accepted by POST; at least one is required
	reset  map[string]any // what DELETE writes: the fields' defaults
}

var roleFieldPaths = map[string]fieldPath{
	"policies":              {read: []string{"token_policies", "policies"}, inputs: []string{"token_policies", "policies"}, reset: map[string]any{"token_policies": []any{}}},
	"secret-id-num-uses":    {read: []string{"secret_id_num_uses"}, inputs: []string{"secret_id_num_uses"}, reset: map[string]any{"secret_id_num_uses": 0.0}},
	"secret-id-ttl":         {read: []string{"secret_id_ttl"}, inputs: []string{"secret_id_ttl"}, reset: map[string]any{"secret_id_ttl": 0.0}},
	"token-ttl":             {read: []string{"token_ttl"}, inputs: []string{"token_ttl"}, reset: map[string]any{"token_ttl": 0.0}},
	"token-max-ttl":         {read: []string{"token_max_ttl"}, inputs: []string{"token_max_ttl"}, reset: map[string]any{"token_max_ttl": 0.0}},
	"token-num-uses":        {read: []string{"token_num_uses"}, inputs: []string{"token_num_uses"}, reset: map[string]any{"token_num_uses": 0.0}},
	"bind-secret-id":        {read: []string{"bind_secret_id"}, inputs: []string{"bind_secret_id"}, reset: map[string]any{"bind_secret_id": true}},
	"secret-id-bound-cidrs": {read: []string{"secret_id_bound_cidrs"}, inputs: []string{"secret_id_bound_cidrs"}, reset: map[string]any{"secret_id_bound_cidrs": []any{}}},
	"bound-cidr-list":       {read: []string{"bound_cidr_list"}, inputs: []string{"bound_cidr_list"}, reset: map[string]any{"secret_id_bound_cidrs": []any{}}},
	"token-bound-cidrs":     {read: []string{"token_bound_cidrs"}, inputs: []string{"token_bound_cidrs"}, reset: map[string]any{"token_bound_cidrs": []any{}}},
	"period":                {read: []string{"token_period", "period"}, inputs: []string{"token_period", "period"}, reset: map[string]any{"token_period": 0.0}},
	"local-secret-ids":      {read: []string{"local_secret_ids"}},
}

// roleField serves role/<name>/<field>.
func (b *Backend) roleField(r *request, name string, f fieldPath) (*engines.Response, error) {
	role, exists := b.view.Role(b.mount.UUID, name)
	switch {
	case r.Op == engines.OpRead:
		if !exists {
			return nil, engines.ErrNotFound
		}
		all := roleData(role)
		all["bound_cidr_list"] = list(role.SecretIDBoundCIDRs)
		d := map[string]any{}
		for _, k := range f.read {
			if v, ok := all[k]; ok {
				d[k] = v
			}
		}
		resp := &engines.Response{Data: d}
		if _, ok := d["bound_cidr_list"]; ok {
			resp.Warnings = []string{`The "bound_cidr_list" field is deprecated and will be removed. Please use "secret_id_bound_cidrs" instead.`}
		}
		return resp, nil
	case isWrite(r.Op) && len(f.inputs) > 0:
		if !exists {
			return nil, errUnsupportedPath
		}
		in := map[string]any{}
		for _, k := range f.inputs {
			if v, ok := r.data[k]; ok {
				in[k] = v
			}
		}
		if len(in) == 0 {
			return nil, engines.BadRequest("missing %s", f.inputs[0])
		}
		if v, ok := in["bound_cidr_list"]; ok {
			delete(in, "bound_cidr_list")
			in["secret_id_bound_cidrs"] = v
		}
		if _, ok := in["secret_id_bound_cidrs"]; ok {
			if cidrs, _ := engines.Strings(in, "secret_id_bound_cidrs"); len(cidrs) == 0 {
				return nil, engines.BadRequest("missing bound_cidr_list")
			}
		}
		return b.writeRole(r, name, in)
	case r.Op == engines.OpDelete && len(f.inputs) > 0:
		if !exists {
			return &engines.Response{}, nil
		}
		in := make(map[string]any, len(f.reset))
		for k, v := range f.reset {
			in[k] = v
		}
		return b.writeRole(r, name, in)
	}
	return nil, errUnsupportedOp
}
