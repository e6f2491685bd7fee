package approle

import (
	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
)

var _ engines.Describer = (*Backend)(nil)

// Routes implements engines.Describer with Vault's AppRole paths.
func (b *Backend) Routes() []engines.Route { return routeTable }

// routeTable is built once; callers only read it.
var routeTable = buildRoutes()

func buildRoutes() []engines.Route {
	f := func(name, typ, desc string) engines.Field {
		return engines.Field{Name: name, Type: typ, Description: desc}
	}
	role := engines.Field{Name: "role_name", Type: "string", In: "path", Description: "Name of the role."}
	var (
		u   = []engines.Operation{engines.OpUpdate}
		rud = []engines.Operation{engines.OpRead, engines.OpUpdate, engines.OpDelete}
	)
	roleFields := append([]engines.Field{role,
		f("bind_secret_id", "bool", "Require a secret_id at login (default true)."),
		f("secret_id_bound_cidrs", "[]string", "CIDR blocks a secret_id may log in from."),
		f("bound_cidr_list", "[]string", "Deprecated name of secret_id_bound_cidrs."),
		f("secret_id_num_uses", "int", "How many logins a secret_id allows; 0 unlimited."),
		f("secret_id_ttl", "duration", "How long a secret_id lives; 0 forever."),
		f("local_secret_ids", "bool", "Accepted for compatibility."),
		f("role_id", "string", "A RoleID to use instead of a generated one."),
		f("policies", "[]string", "Deprecated name of token_policies."),
		f("period", "duration", "Deprecated name of token_period.")}, enginetoken.ParamDescriptions()...)
	secretIDFields := []engines.Field{role,
		f("metadata", "string", "JSON object of string metadata attached to tokens logged in with this secret_id."),
		f("cidr_list", "[]string", "CIDR blocks the secret_id may log in from."),
		f("token_bound_cidrs", "[]string", "CIDR blocks the tokens may be used from."),
		f("num_uses", "int", "How many logins the secret_id allows."),
		f("ttl", "duration", "How long the secret_id lives.")}
	return []engines.Route{
		{Pattern: "login", Operations: u, Summary: "Log in with a RoleID and a SecretID.",
			Fields: []engines.Field{f("role_id", "string", "The RoleID of the role."), f("secret_id", "string", "The SecretID.")}},
		{Pattern: "role", Operations: []engines.Operation{engines.OpList}, Summary: "List the roles."},
		{Pattern: "role/{role_name}", Operations: rud, Summary: "Create, read, update or delete a role.", Fields: roleFields},
		{Pattern: "role/{role_name}/role-id", Operations: []engines.Operation{engines.OpRead, engines.OpUpdate}, Summary: "Read or set the RoleID of a role.",
			Fields: []engines.Field{role, f("role_id", "string", "The RoleID.")}},
		{Pattern: "role/{role_name}/secret-id", Operations: []engines.Operation{engines.OpList, engines.OpUpdate}, Summary: "Generate a SecretID (write) or list SecretID accessors (LIST).", Fields: secretIDFields},
		{Pattern: "role/{role_name}/custom-secret-id", Operations: u, Summary: "Register a SecretID of your choosing.",
			Fields: append(secretIDFields, f("secret_id", "string", "The SecretID."))},
		{Pattern: "role/{role_name}/secret-id/lookup", Operations: u, Summary: "Read a SecretID's properties.",
			Fields: []engines.Field{role, f("secret_id", "string", "The SecretID.")}},
		{Pattern: "role/{role_name}/secret-id/destroy", Operations: []engines.Operation{engines.OpUpdate, engines.OpDelete}, Summary: "Destroy a SecretID.",
			Fields: []engines.Field{role, f("secret_id", "string", "The SecretID.")}},
		{Pattern: "role/{role_name}/secret-id-accessor/lookup", Operations: u, Summary: "Read a SecretID's properties by its accessor.",
			Fields: []engines.Field{role, f("secret_id_accessor", "string", "The accessor of the SecretID.")}},
		{Pattern: "role/{role_name}/secret-id-accessor/destroy", Operations: []engines.Operation{engines.OpUpdate, engines.OpDelete}, Summary: "Destroy a SecretID by its accessor.",
			Fields: []engines.Field{role, f("secret_id_accessor", "string", "The accessor of the SecretID.")}},
		{Pattern: "tidy/secret-id", Operations: u, Summary: "Remove expired SecretIDs."},
	}
}
