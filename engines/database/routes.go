package database

import "github.com/ledger-secrets/ledger/engines"

var _ engines.Describer = (*Backend)(nil)

// Routes implements engines.Describer with Vault's database paths.
func (b *Backend) Routes() []engines.Route { return routeTable }

// routeTable is built once; callers only read it.
var routeTable = buildRoutes()

func buildRoutes() []engines.Route {
	f := func(name, typ, desc string) engines.Field {
		return engines.Field{Name: name, Type: typ, Description: desc}
	}
	name := engines.Field{Name: "name", Type: "string", In: "path", Description: "Name of the connection or role."}
	var (
		r   = []engines.Operation{engines.OpRead}
		l   = []engines.Operation{engines.OpList}
		u   = []engines.Operation{engines.OpUpdate}
		rud = []engines.Operation{engines.OpRead, engines.OpUpdate, engines.OpDelete}
	)
	return []engines.Route{
		{Pattern: "config", Operations: l, Summary: "List the configured connections."},
		{Pattern: "config/{name}", Operations: rud, Summary: "Configure, read or delete a database connection.",
			Description: "Plugin-specific connection fields are accepted beside the ones listed.",
			Fields: []engines.Field{name,
				f("plugin_name", "string", "The database plugin: postgresql-database-plugin, mysql-database-plugin, …"),
				f("connection_url", "string", "The connection string, with {{username}} and {{password}} templates."),
				f("username", "string", "The administrator's username."),
				f("password", "string", "The administrator's password (never returned)."),
				f("password_policy", "string", "The password policy generated passwords follow."),
				f("username_template", "string", "The template of generated usernames."),
				f("max_open_connections", "int", "The most open connections to the database."),
				f("max_idle_connections", "int", "The most idle connections kept."),
				f("max_connection_lifetime", "duration", "How long a connection may be reused."),
				f("allowed_roles", "[]string", "The roles allowed to use this connection; * for all."),
				f("root_rotation_statements", "[]string", "Statements that rotate the administrator's password."),
				f("verify_connection", "bool", "Connect once before saving (default true)."),
				f("plugin_version", "string", "Accepted for compatibility.")},
			ArbitraryInput: true},
		{Pattern: "reset/{name}", Operations: u, Summary: "Close and reopen a connection.", Fields: []engines.Field{name}},
		{Pattern: "rotate-root/{name}", Operations: u, Summary: "Rotate the administrator's password; only Ledger knows the new one.", Fields: []engines.Field{name}},
		{Pattern: "roles", Operations: l, Summary: "List the dynamic roles."},
		{Pattern: "roles/{name}", Operations: rud, Summary: "Manage a dynamic role: credentials created on read of creds/:name.",
			Fields: []engines.Field{name,
				f("db_name", "string", "The connection the role uses."),
				f("creation_statements", "[]string", "Statements that create the user; {{name}}, {{password}}, {{expiration}} are filled in."),
				f("revocation_statements", "[]string", "Statements that drop the user."),
				f("rollback_statements", "[]string", "Statements run when creation fails."),
				f("renew_statements", "[]string", "Statements run on renewal."),
				f("default_ttl", "duration", "The default lease duration."),
				f("max_ttl", "duration", "The maximum lease duration."),
				f("credential_type", "string", "password (the only type served)."),
				f("credential_config", "map", "Accepted for compatibility.")}},
		{Pattern: "creds/{name}", Operations: r, Summary: "Create credentials from a dynamic role, under a lease.", Fields: []engines.Field{name}},
		{Pattern: "static-roles", Operations: l, Summary: "List the static roles."},
		{Pattern: "static-roles/{name}", Operations: rud, Summary: "Manage a static role: an existing user whose password Ledger rotates.",
			Fields: []engines.Field{name,
				f("db_name", "string", "The connection the role uses."),
				f("username", "string", "The existing database user."),
				f("rotation_period", "duration", "How often the password is rotated."),
				f("rotation_statements", "[]string", "Statements that set the password."),
				f("credential_type", "string", "password (the only type served).")}},
		{Pattern: "static-creds/{name}", Operations: r, Summary: "The current credentials of a static role.", Fields: []engines.Field{name}},
		{Pattern: "rotate-role/{name}", Operations: u, Summary: "Rotate a static role's password now.", Fields: []engines.Field{name}},
	}
}
