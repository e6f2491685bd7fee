package commands

import (
	"context"

	"github.com/ledger-secrets/ledger/engines"
)

// auditPaths serves the sys routes of issue 5 (audit); until it is built it answers 404 like any
// path this build does not serve.
func (s *sysBackend) auditPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: audit devices are not built yet", "sys/"+p)
}

// auditLedgerPaths serves Ledger's own audit endpoints under sys/ledger/audit/ (verify, tail,
// query over the log).
func (s *sysBackend) auditLedgerPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: audit queries are not built yet", "sys/ledger/audit/"+p)
}
