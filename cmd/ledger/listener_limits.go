package main

import (
	"github.com/ledger-secrets/ledger/cmd/ledger/internal/config"
	"github.com/ledger-secrets/ledger/commands/httpapi"
)

// httpLimits turns a listener's body limits into the HTTP API's.
func httpLimits(l config.ListenerLimits) httpapi.Limits {
	return httpapi.Limits{MaxDepth: l.MaxJSONDepth, MaxObjectEntries: l.MaxJSONObjectEntryCount,
		MaxArrayElements: l.MaxJSONArrayElementCount, MaxStringLength: l.MaxJSONStringValueLength,
		MaxFields: l.MaxRequestFields}
}
