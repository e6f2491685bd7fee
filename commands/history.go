package commands

import (
	"context"

	"github.com/ledger-secrets/ledger/engines"
)

// ledgerPaths serves the sys routes of issue 5 (history); until it is built it answers 404 like any
// path this build does not serve.
func (s *sysBackend) ledgerPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: history is not built yet", "sys/ledger/"+p)
}
