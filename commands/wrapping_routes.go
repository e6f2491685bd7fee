package commands

import "github.com/ledger-secrets/ledger/engines"

// wrappingRoutes describes sys/wrapping/* and sys/remount for path-help and OpenAPI.
func wrappingRoutes() []engines.Route {
	tok := []engines.Field{{Name: "token", Type: "string", Description: "The wrapping token; default: the request's own token."}}
	return []engines.Route{
		{Pattern: "wrapping/wrap", Operations: opsU, ArbitraryInput: true,
			Summary: "Wrap the given data in a single-use wrapping token (the TTL comes from X-Vault-Wrap-TTL)."},
		{Pattern: "wrapping/unwrap", Operations: opsU, Summary: "Return the response a wrapping token holds, once.", Fields: tok},
		{Pattern: "wrapping/lookup", Operations: opsRU, Summary: "Look up a wrapping token's creation path, time and TTL, without opening it (no authentication needed).", Fields: tok},
		{Pattern: "wrapping/rewrap", Operations: opsU, Summary: "Move a wrapped response to a new wrapping token with the same TTL; the old token stops working.", Fields: tok},
		{Pattern: "remount", Operations: opsU, Summary: "Move a secrets engine or auth method to another path, with its data and leases.",
			Fields: []engines.Field{{Name: "from", Type: "string", Description: "The mount's current path."},
				{Name: "to", Type: "string", Description: "The new path."}}},
		{Pattern: "remount/status/{migration_id}", Operations: opsR, Summary: "The status of a move started with sys/remount.",
			Fields: []engines.Field{pathField("migration_id", "The migration ID sys/remount answered.")}},
	}
}
