package commands

import (
	"context"

	"github.com/ledger-secrets/ledger/engines"
)

// snapshotPaths serves the sys routes of issue 5 (snapshot); until it is built it answers 404 like any
// path this build does not serve.
func (s *sysBackend) snapshotPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: snapshots are not built yet", "sys/"+p)
}

// replayPaths serves sys/ledger/replay/ (verify: rebuild every view beside the live ones).
func (s *sysBackend) replayPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: replay is not built yet", "sys/ledger/replay/"+p)
}
