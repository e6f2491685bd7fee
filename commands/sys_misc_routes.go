package commands

import "github.com/ledger-secrets/ledger/engines"

// miscRoutes describes the small sys endpoints (sys_misc.go) for help, OpenAPI and Vault's
// "ignored these unrecognized parameters" warning.
func miscRoutes() []engines.Route {
	name := pathField("name", "The name.")
	opsD := []engines.Operation{engines.OpRead, engines.OpList}
	rateFields := []engines.Field{name,
		{Name: "type", Type: "string", Description: "The type of the quota (the path's)."},
		{Name: "path", Type: "string", Description: "The mount (or mount and path suffix) the quota applies to; empty for every request."},
		{Name: "role", Type: "string", Description: "The login role on an auth mount the quota applies to."},
		{Name: "inheritable", Type: "bool", Description: "Recorded for compatibility; Ledger has one namespace."}}
	randomFields := []engines.Field{
		{Name: "bytes", Type: "int", Description: "The number of bytes (default 32, at most 131072)."},
		{Name: "format", Type: "string", Description: "hex or base64 (default)."},
		{Name: "source", Type: "string", Description: "platform (default), seal or all."}}
	hashFields := []engines.Field{
		{Name: "input", Type: "string", Description: "The base64 input."},
		{Name: "format", Type: "string", Description: "hex (default) or base64."},
		{Name: "algorithm", Type: "string", Description: "sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-224, sha3-256, sha3-384, sha3-512."}}
	loggerFields := []engines.Field{{Name: "level", Type: "string", Description: "trace, debug, info, warn or error."}}
	return []engines.Route{
		{Pattern: "tools/random", Operations: opsU, Summary: "Random bytes.", Fields: randomFields},
		{Pattern: "tools/random/{urlbytes}", Operations: opsU, Summary: "Random bytes (a count or a source in the path).",
			Fields: append([]engines.Field{pathField("urlbytes", "The byte count or the source.")}, randomFields...)},
		{Pattern: "tools/random/{source}/{urlbytes}", Operations: opsU, Summary: "Random bytes from a source.",
			Fields: append([]engines.Field{pathField("source", "The source."), pathField("urlbytes", "The byte count.")}, randomFields...)},
		{Pattern: "tools/hash", Operations: opsU, Summary: "The hash of the input.", Fields: hashFields},
		{Pattern: "tools/hash/{urlalgorithm}", Operations: opsU, Summary: "The hash of the input with an algorithm.",
			Fields: append([]engines.Field{pathField("urlalgorithm", "The algorithm.")}, hashFields...)},
		{Pattern: "host-info", Operations: opsR, Summary: "CPU, memory, disk and host information of the node."},
		{Pattern: "version-history", Operations: opsD, Summary: "The versions installed, with their install time."},
		{Pattern: "in-flight-req", Operations: opsR, Summary: "The requests being served."},
		{Pattern: "loggers", Operations: opsRUD, Summary: "Read, change or revert the level of every logger.", Fields: loggerFields},
		{Pattern: "loggers/{name}", Operations: opsRUD, Summary: "Read, change or revert the level of a logger.",
			Fields: append([]engines.Field{name}, loggerFields...)},
		{Pattern: "plugins/catalog", Operations: opsR, Summary: "The built-in plugins, by type."},
		{Pattern: "plugins/catalog/{type}", Operations: opsRL, Summary: "The built-in plugins of a type.", Fields: []engines.Field{pathField("type", "auth, database or secret.")}},
		{Pattern: "plugins/catalog/{type}/{name}", Operations: opsR, Summary: "A built-in plugin.",
			Fields: []engines.Field{pathField("type", "auth, database or secret."), name}},
		{Pattern: "policies/password", Operations: opsRL, Summary: "List the password policies."},
		{Pattern: "policies/password/{name}", Operations: opsRUD, Summary: "Read, write or delete a password policy.",
			Fields: []engines.Field{name, {Name: "policy", Type: "string", Description: "The policy in HCL, JSON or base64."}}},
		{Pattern: "policies/password/{name}/generate", Operations: opsR, Summary: "Generate a password from a policy.", Fields: []engines.Field{name}},
		{Pattern: "quotas/config", Operations: opsRU, Summary: "Read or write the quota configuration.",
			Fields: []engines.Field{{Name: "enable_rate_limit_audit_logging", Type: "bool", Description: "Audit requests refused by rate limits."},
				{Name: "enable_rate_limit_response_headers", Type: "bool", Description: "Send X-Ratelimit-* and Retry-After headers."},
				{Name: "rate_limit_exempt_paths", Type: "[]string", Description: "Paths no rate limit applies to (a trailing * is a prefix)."}}},
		{Pattern: "quotas/rate-limit", Operations: opsRL, Summary: "List the rate-limit quotas."},
		{Pattern: "quotas/rate-limit/{name}", Operations: opsRUD, Summary: "Read, write or delete a rate-limit quota.",
			Fields: append(append([]engines.Field{}, rateFields...),
				engines.Field{Name: "rate", Type: "string", Description: "Requests allowed per interval per client address."},
				engines.Field{Name: "interval", Type: "duration", Description: "The interval (default 1s)."},
				engines.Field{Name: "block_interval", Type: "duration", Description: "How long a client over the rate is refused."})},
		{Pattern: "quotas/lease-count", Operations: opsRL, Summary: "List the lease-count quotas."},
		{Pattern: "quotas/lease-count/{name}", Operations: opsRUD, Summary: "Read, write or delete a lease-count quota.",
			Fields: append(append([]engines.Field{}, rateFields...),
				engines.Field{Name: "max_leases", Type: "int", Description: "The most live leases under the path."})},
		{Pattern: "config/cors", Operations: opsRUD, Summary: "Read, configure or disable CORS.",
			Fields: []engines.Field{{Name: "allowed_origins", Type: "[]string", Description: "Origins allowed, or *."},
				{Name: "allowed_headers", Type: "[]string", Description: "Request headers allowed besides Vault's standard ones."},
				{Name: "enabled", Type: "bool", Description: "Accepted for compatibility; writing enables CORS."}}},
		{Pattern: "internal/counters/activity", Operations: opsR, Summary: "Client counts per mount and month.",
			Fields: []engines.Field{{Name: "start_time", Type: "string", Description: "Start of the range, RFC 3339 or unix seconds."},
				{Name: "end_time", Type: "string", Description: "End of the range, RFC 3339 or unix seconds."},
				{Name: "limit_namespaces", Type: "int", Description: "Accepted for compatibility; Ledger has one namespace."}}},
	}
}
