package commands

import (
	"context"
	"time"

	enginepki "github.com/ledger-secrets/ledger/engines/pki"
	"github.com/ledger-secrets/ledger/projections/mount"
)

// autoTidyPKI honours PKI mounts' config/auto-tidy on the active node: when a mount's interval
// has passed since its last tidy, expired certificates (past the safety buffer) leave the store.
// It also starts new complete CRLs before the current ones reach half their expiry.
func (c *Core) autoTidyPKI(ctx context.Context, st *unsealed) {
	every(ctx, 30*time.Second, func() {
		eachBackend(c, st, "pki", func(m mount.Entry, pb *enginepki.Backend) {
			now := time.Now().UTC()
			evs := append(pb.AutoTidyDue(now), pb.CRLRotateDue(now)...)
			if len(evs) == 0 {
				return
			}
			if err := c.commit(ctx, st, evs); err != nil && ctx.Err() == nil {
				c.logger.Error("pki auto-tidy", "mount", m.Path, "err", err)
			}
		})
	})
}
