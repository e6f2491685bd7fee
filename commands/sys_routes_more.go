package commands

import "github.com/ledger-secrets/ledger/engines"

// moreSysRoutes describes sys paths not described elsewhere (sys_misc_routes.go and
// wrapping_routes.go hold the rest).
func moreSysRoutes() []engines.Route {
	return append([]engines.Route{
		{Pattern: "metrics", Operations: opsR, Summary: "Telemetry: Prometheus text with format=prometheus, else Vault's JSON.",
			Fields: []engines.Field{{Name: "format", Type: "string", Description: "prometheus for the text format."}}},
	}, leakResponseRoutes()...)
}
