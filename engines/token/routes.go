package token

import "github.com/ledger-secrets/ledger/engines"

var _ engines.Describer = (*Backend)(nil)

// ParamDescriptions describes the token_* fields ParseParams reads, for the routes of the
// auth methods that issue tokens.
func ParamDescriptions() []engines.Field {
	f := func(name, typ, desc string) engines.Field {
		return engines.Field{Name: name, Type: typ, Description: desc}
	}
	return []engines.Field{
		f("token_bound_cidrs", "[]string", "CIDR blocks the issued tokens may be used from."),
		f("token_explicit_max_ttl", "duration", "A hard cap on the issued tokens' lifetime, renewals included."),
		f("token_max_ttl", "duration", "The maximum lifetime of the issued tokens."),
		f("token_no_default_policy", "bool", "Do not add the default policy to the issued tokens."),
		f("token_num_uses", "int", "How many requests an issued token may make; 0 unlimited."),
		f("token_period", "duration", "Make the issued tokens periodic with this period."),
		f("token_policies", "[]string", "The policies of the issued tokens."),
		f("token_type", "string", "service, batch, default, default-service or default-batch."),
		f("token_ttl", "duration", "The initial lifetime of the issued tokens."),
	}
}

// Routes implements engines.Describer with Vault's token store paths.
func (b *Backend) Routes() []engines.Route { return routeTable }

// routeTable is built once; callers only read it.
var routeTable = buildRoutes()

func buildRoutes() []engines.Route {
	f := func(name, typ, desc string) engines.Field {
		return engines.Field{Name: name, Type: typ, Description: desc}
	}
	u := []engines.Operation{engines.OpUpdate}
	ru := []engines.Operation{engines.OpRead, engines.OpUpdate}
	roleName := engines.Field{Name: "role_name", Type: "string", In: "path", Description: "Name of the role."}
	create := []engines.Field{
		f("id", "string", "The token value (root only)."),
		f("role_name", "string", "The role to create the token against."),
		f("policies", "[]string", "The policies of the token; a subset of the caller's unless the caller has sudo."),
		f("meta", "map", "Arbitrary string metadata, shown in audit logs."),
		f("no_parent", "bool", "Create an orphan token (sudo)."),
		f("no_default_policy", "bool", "Do not add the default policy."),
		f("renewable", "bool", "The token may be renewed (default true)."),
		f("lease", "duration", "Deprecated name of ttl.").AsDeprecated(),
		f("ttl", "duration", "The initial lifetime of the token."),
		f("type", "string", "service (default) or batch."),
		f("explicit_max_ttl", "duration", "A hard cap on the token's lifetime."),
		f("display_name", "string", "The display name of the token."),
		f("num_uses", "int", "How many requests the token may make; 0 unlimited."),
		f("period", "duration", "Make the token periodic with this period (sudo)."),
		f("entity_alias", "string", "Accepted for compatibility; Ledger has no identity store."),
	}
	token := f("token", "string", "The token.")
	accessor := f("accessor", "string", "The accessor of the token.")
	increment := f("increment", "duration", "The requested extension of the token's lifetime.")
	roleFields := append([]engines.Field{roleName,
		f("allowed_policies", "[]string", "Policies a token created against the role may have; empty: the creator's."),
		f("disallowed_policies", "[]string", "Policies a token created against the role may not have."),
		f("allowed_policies_glob", "[]string", "Glob patterns of allowed policies."),
		f("disallowed_policies_glob", "[]string", "Glob patterns of disallowed policies."),
		f("orphan", "bool", "Tokens created against the role are orphans."),
		f("renewable", "bool", "Tokens created against the role may be renewed (default true)."),
		f("path_suffix", "string", "A suffix of the tokens' path, for revocation by prefix."),
		f("allowed_entity_aliases", "[]string", "Entity aliases tokens of the role may be created with."),
		f("period", "duration", "Deprecated name of token_period.").AsDeprecated(),
		f("explicit_max_ttl", "duration", "Deprecated name of token_explicit_max_ttl.").AsDeprecated(),
		f("bound_cidrs", "[]string", "Deprecated name of token_bound_cidrs.").AsDeprecated(),
	}, roleParams()...)
	return []engines.Route{
		{Pattern: "create", Operations: u, Summary: "Create a child token (or an orphan, with no_parent and sudo).", Fields: create},
		{Pattern: "create-orphan", Operations: u, Summary: "Create an orphan token.", Fields: create},
		{Pattern: "create/{role_name}", Operations: u, Summary: "Create a token against a role.", Fields: append([]engines.Field{roleName}, create...)},
		{Pattern: "lookup", Operations: ru, Summary: "The properties of a token.", Fields: []engines.Field{token}},
		{Pattern: "lookup-self", Operations: []engines.Operation{engines.OpRead}, Summary: "The properties of the calling token."},
		{Pattern: "lookup-accessor", Operations: u, Summary: "The properties of the token behind an accessor.", Fields: []engines.Field{accessor}},
		{Pattern: "renew", Operations: u, Summary: "Renew a token.", Fields: []engines.Field{token, increment}},
		{Pattern: "renew-self", Operations: u, Summary: "Renew the calling token.", Fields: []engines.Field{increment}},
		{Pattern: "renew-accessor", Operations: u, Summary: "Renew the token behind an accessor.", Fields: []engines.Field{accessor, increment}},
		{Pattern: "revoke", Operations: u, Summary: "Revoke a token and its children.", Fields: []engines.Field{token}},
		{Pattern: "revoke-self", Operations: u, Summary: "Revoke the calling token and its children."},
		{Pattern: "revoke-accessor", Operations: u, Summary: "Revoke the token behind an accessor.", Fields: []engines.Field{accessor}},
		{Pattern: "revoke-orphan", Operations: u, Summary: "Revoke a token, leaving its children as orphans (sudo).", Fields: []engines.Field{token}},
		{Pattern: "accessors", Operations: []engines.Operation{engines.OpList}, Summary: "List the accessors of every token (sudo)."},
		{Pattern: "roles", Operations: []engines.Operation{engines.OpList}, Summary: "List the token roles."},
		{Pattern: "roles/{role_name}", Operations: []engines.Operation{engines.OpRead, engines.OpUpdate, engines.OpDelete}, Summary: "Create, read, update or delete a token role.", Fields: roleFields},
	}
}

// roleParams are the token_* fields a token role takes: Vault's allow-list for roles, without
// token_ttl, token_max_ttl and token_policies.
func roleParams() []engines.Field {
	var out []engines.Field
	for _, f := range ParamDescriptions() {
		switch f.Name {
		case "token_ttl", "token_max_ttl", "token_policies":
			continue
		}
		out = append(out, f)
	}
	return out
}
