package commands

import (
	"strings"

	"github.com/ledger-secrets/ledger/engines"
)

// activeOnly reports a request a standby must not answer from its own views, whatever the
// method: any path that needs sudo, and paths whose answer lives in the active node's memory
// (engines.ActiveOnly). sys/ is the HTTP edge's to decide (it forwards all of it but the
// node-local paths, which each node answers about itself). Handle answers them ErrStandby before authentication or audit, so the
// HTTP edge forwards them and the active node authorises and audits them once.
func (c *Core) activeOnly(st *unsealed, path string) bool {
	if path == "sys" || strings.HasPrefix(path, "sys/") {
		return false
	}
	rt, err := c.route(st, path)
	if err != nil {
		return false // the standby answers the routing error itself, as the active node would
	}
	if sp, ok := rt.backend.(engines.PathsSpecial); ok && matchAny(sp.Sudo(), rt.rel) {
		return true
	}
	if ao, ok := rt.backend.(engines.ActiveOnly); ok && matchAny(ao.ActiveOnly(), rt.rel) {
		return true
	}
	return false
}
