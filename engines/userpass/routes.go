package userpass

import (
	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
)

var _ engines.Describer = (*Backend)(nil)

// Routes implements engines.Describer with Vault's userpass paths.
func (b *Backend) Routes() []engines.Route { return routeTable }

// routeTable is built once; callers only read it.
var routeTable = buildRoutes()

func buildRoutes() []engines.Route {
	f := func(name, typ, desc string) engines.Field {
		return engines.Field{Name: name, Type: typ, Description: desc}
	}
	user := engines.Field{Name: "username", Type: "string", In: "path", Description: "Username of the user."}
	pw := f("password", "string", "The password (never returned).")
	return []engines.Route{
		{Pattern: "users", Operations: []engines.Operation{engines.OpList}, Summary: "List the users."},
		{Pattern: "users/{username}", Operations: []engines.Operation{engines.OpRead, engines.OpUpdate, engines.OpDelete}, Summary: "Create, read, update or delete a user.",
			Fields: append([]engines.Field{user, pw,
				f("policies", "[]string", "Deprecated name of token_policies."),
				f("ttl", "duration", "Deprecated name of token_ttl."),
				f("max_ttl", "duration", "Deprecated name of token_max_ttl."),
				f("bound_cidrs", "[]string", "Deprecated name of token_bound_cidrs.")}, enginetoken.ParamDescriptions()...)},
		{Pattern: "users/{username}/password", Operations: []engines.Operation{engines.OpUpdate}, Summary: "Change a user's password.", Fields: []engines.Field{user, pw}},
		{Pattern: "users/{username}/policies", Operations: []engines.Operation{engines.OpUpdate}, Summary: "Change a user's policies.",
			Fields: []engines.Field{user, f("policies", "[]string", "Deprecated name of token_policies."), f("token_policies", "[]string", "The policies of the user's tokens.")}},
		{Pattern: "login/{username}", Operations: []engines.Operation{engines.OpUpdate}, Summary: "Log in with a username and password.", Fields: []engines.Field{user, pw}},
	}
}
