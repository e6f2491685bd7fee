package commands

import (
	"context"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
)

// auditEvents returns the audit record of a write as events to append in the write's own batch,
// so the record and the change it describes are durable together.
//
// Until the audit package lands (issue 5) writes are traced only by their own events, which
// carry the actor's accessor and the request id.
func (c *Core) auditEvents(st *unsealed, r *Request, trail *auditTrail, resp *engines.Response) []ledger.Event {
	return nil
}

// auditRecord stores the audit record of a request that appended nothing (a read, a denial, a
// failure) before the answer leaves. An error fails the request.
func (c *Core) auditRecord(ctx context.Context, st *unsealed, r *Request, trail *auditTrail, resp *engines.Response, err error) error {
	return nil
}
