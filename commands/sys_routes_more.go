package commands

import "github.com/ledger-secrets/ledger/engines"

// moreSysRoutes describes the small sys endpoints clients read (issue 9): their fields feed
// the unknown-field warning, help and the OpenAPI document like every other route.
func moreSysRoutes() []engines.Route {
	f := func(name, typ, desc string) engines.Field {
		return engines.Field{Name: name, Type: typ, Description: desc}
	}
	randomFields := []engines.Field{
		f("bytes", "int", "The number of bytes to return (default 32)."),
		f("format", "string", "base64 (default) or hex."),
		f("source", "string", "platform (default), seal or all.")}
	hashFields := []engines.Field{
		f("input", "string", "Base64 input to hash."),
		f("format", "string", "hex (default) or base64."),
		f("algorithm", "string", "sha2-256 (default), sha2-224, sha2-384, sha2-512, sha3-*.")}
	quota := []engines.Field{pathField("name", "The name of the quota."),
		f("type", "string", "The quota type."), f("name", "string", "The name of the quota."),
		f("path", "string", "The mount or path the quota applies to; empty for every path."),
		f("role", "string", "A login role of the mount the quota applies to."),
		f("inheritable", "bool", "The quota applies below its path too.")}
	return []engines.Route{
		{Pattern: "tools/random", Operations: opsU, Summary: "Random bytes.", Fields: randomFields},
		{Pattern: "tools/random/{urlbytes}", Operations: opsU, Summary: "Random bytes; the count (or source) in the path.",
			Fields: append(append([]engines.Field{}, randomFields...), pathField("urlbytes", "The number of bytes, or the source."))},
		{Pattern: "tools/random/{source}/{urlbytes}", Operations: opsU, Summary: "Random bytes from a source.",
			Fields: append(append([]engines.Field{}, randomFields...), pathField("source", "platform, seal or all."), pathField("urlbytes", "The number of bytes."))},
		{Pattern: "tools/hash", Operations: opsU, Summary: "The hash of an input.", Fields: hashFields},
		{Pattern: "tools/hash/{urlalgorithm}", Operations: opsU, Summary: "The hash of an input with the algorithm in the path.",
			Fields: append(append([]engines.Field{}, hashFields...), pathField("urlalgorithm", "The hash algorithm."))},
		{Pattern: "loggers", Operations: []engines.Operation{engines.OpRead, engines.OpUpdate, engines.OpDelete}, Summary: "Read, set or reset the log level of every logger.",
			Fields: []engines.Field{f("level", "string", "trace, debug, info, warn or error.")}},
		{Pattern: "loggers/{name}", Operations: []engines.Operation{engines.OpRead, engines.OpUpdate, engines.OpDelete}, Summary: "Read, set or reset the log level of one logger.",
			Fields: []engines.Field{pathField("name", "The logger."), f("level", "string", "trace, debug, info, warn or error.")}},
		{Pattern: "policies/password", Operations: opsL, Summary: "List the password policies."},
		{Pattern: "policies/password/{name}", Operations: opsRUD, Summary: "Read, write or delete a password policy.",
			Fields: []engines.Field{pathField("name", "The name of the policy."), f("policy", "string", "The policy, in HCL: length and rule \"charset\" blocks.")}},
		{Pattern: "policies/password/{name}/generate", Operations: opsR, Summary: "Generate a password from a policy.",
			Fields: []engines.Field{pathField("name", "The name of the policy.")}},
		{Pattern: "quotas/config", Operations: opsRU, Summary: "Read or write the quota configuration.",
			Fields: []engines.Field{f("enable_rate_limit_audit_logging", "bool", "Audit requests refused by a rate limit."),
				f("enable_rate_limit_response_headers", "bool", "Send the X-Ratelimit-* headers."),
				f("rate_limit_exempt_paths", "[]string", "Paths no rate limit applies to.")}},
		{Pattern: "quotas/rate-limit", Operations: opsL, Summary: "List the rate-limit quotas."},
		{Pattern: "quotas/rate-limit/{name}", Operations: opsRUD, Summary: "Read, write or delete a rate-limit quota.",
			Fields: append(append([]engines.Field{}, quota...), f("rate", "number", "Requests allowed per interval."),
				f("interval", "duration", "The interval of the rate (default 1s)."),
				f("block_interval", "duration", "How long a client over the limit is refused."))},
		{Pattern: "quotas/lease-count", Operations: opsL, Summary: "List the lease-count quotas."},
		{Pattern: "quotas/lease-count/{name}", Operations: opsRUD, Summary: "Read, write or delete a lease-count quota.",
			Fields: append(append([]engines.Field{}, quota...), f("max_leases", "int", "The most leases the path may hold."))},
		{Pattern: "plugins/catalog", Operations: opsR, Summary: "The built-in plugins."},
		{Pattern: "plugins/catalog/{type}", Operations: opsL, Summary: "The built-in plugins of a type.", Fields: []engines.Field{pathField("type", "secret, auth or database.")}},
		{Pattern: "plugins/catalog/{type}/{name}", Operations: opsR, Summary: "One built-in plugin.",
			Fields: []engines.Field{pathField("type", "secret, auth or database."), pathField("name", "The plugin.")}},
		{Pattern: "internal/counters/activity", Operations: opsR, Summary: "Client counts per mount and month, from the log.",
			Fields: []engines.Field{f("start_time", "string", "Start of the period, RFC 3339."), f("end_time", "string", "End of the period, RFC 3339."),
				f("limit_namespaces", "int", "Accepted for compatibility.")}},
		{Pattern: "config/cors", Operations: opsRUD, Summary: "Read, write or delete the CORS configuration.",
			Fields: []engines.Field{f("enabled", "bool", "Apply CORS."), f("allowed_origins", "[]string", "Allowed origins, or *."),
				f("allowed_headers", "[]string", "Headers allowed beside the standard ones.")}},
		{Pattern: "host-info", Operations: opsR, Summary: "CPU, disk, host and memory of the server."},
		{Pattern: "version-history", Operations: opsL, Summary: "The versions this cluster has run."},
		{Pattern: "in-flight-req", Operations: opsR, Summary: "The requests being served now."},
		{Pattern: "remount", Operations: opsU, Summary: "Move a mount with its data, leases and policies' paths untouched.",
			Fields: []engines.Field{f("from", "string", "The mount to move."), f("to", "string", "Where to move it.")}},
		{Pattern: "remount/status/{migration_id}", Operations: opsR, Summary: "The status of a move.", Fields: []engines.Field{pathField("migration_id", "The ID returned by sys/remount.")}},
		{Pattern: "wrapping/wrap", Operations: opsU, Summary: "Wrap arbitrary data in a single-use token.", ArbitraryInput: true},
		{Pattern: "wrapping/unwrap", Operations: opsU, Summary: "Unwrap a wrapping token, once.", Fields: []engines.Field{f("token", "string", "The wrapping token; else the request's own.")}},
		{Pattern: "wrapping/lookup", Operations: opsRU, Summary: "Look up a wrapping token's properties.", Fields: []engines.Field{f("token", "string", "The wrapping token.")}},
		{Pattern: "wrapping/rewrap", Operations: opsU, Summary: "Rewrap a wrapping token's response in a new token.", Fields: []engines.Field{f("token", "string", "The wrapping token.")}},
		{Pattern: "metrics", Operations: opsR, Summary: "Telemetry: Prometheus text with format=prometheus, else Vault's JSON.",
			Fields: []engines.Field{f("format", "string", "prometheus for the text format.")}},
	}
}
