package cubbyhole

import "github.com/ledger-secrets/ledger/engines"

var _ engines.Describer = (*Backend)(nil)

// Routes implements engines.Describer: one path of any data, private to the token.
func (b *Backend) Routes() []engines.Route { return routeTable }

// routeTable is built once; callers only read it.
var routeTable = buildRoutes()

func buildRoutes() []engines.Route {
	return []engines.Route{{Pattern: "{path...}",
		Operations:     []engines.Operation{engines.OpRead, engines.OpList, engines.OpUpdate, engines.OpDelete},
		Summary:        "Read, write, list or delete a secret in the calling token's cubbyhole.",
		Description:    "Every token has its own cubbyhole; no other token, root included, can read it. It is shredded when the token is revoked or expires.",
		Fields:         []engines.Field{{Name: "path", Type: "string", In: "path", Description: "Location of the secret."}},
		ArbitraryInput: true}}
}
