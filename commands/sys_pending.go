package commands

import (
	"context"

	"github.com/ledger-secrets/ledger/engines"
)

// Routes whose implementations arrive with issue 5 (audit devices, snapshots, history). Until
// then they answer 404 like any path this build does not serve.

func (s *sysBackend) auditPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: audit devices are not built yet", "sys/"+p)
}

func (s *sysBackend) snapshotPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: snapshots are not built yet", "sys/"+p)
}

func (s *sysBackend) ledgerPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: history is not built yet", "sys/ledger/"+p)
}
