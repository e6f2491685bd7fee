package database

import (
	"context"
	"fmt"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	dbview "github.com/ledger-secrets/ledger/projections/database"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
)

// rotateRoot serves rotate-root/:name: the admin password becomes one only Ledger knows. The
// database changes first; the event carries the new password (sealed by the log). Until the
// view applies it the engine connects with the new password, remembered here, so the engine
// keeps working on this node even if the append fails.
func (b *Backend) rotateRoot(ctx context.Context, req *engines.Request, name string) (*engines.Response, error) {
	c, ok := b.view.Config(b.mount.UUID, name)
	if !ok {
		return nil, engines.BadRequest("failed to find entry for connection with name: %q", name)
	}
	if c.Username == "" {
		return nil, engines.BadRequest("unable to rotate root credentials: no username in configuration")
	}
	if c.Password == "" {
		return nil, engines.BadRequest("unable to rotate root credentials: no password in configuration")
	}
	pw, err := b.newPassword(ctx, c)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	current := b.effectiveLocked(name, c).Password
	b.mu.Unlock()
	err = b.withPlugin(name, c, func(p Plugin) error {
		return p.SetPassword(ctx, c.RootRotationStatements, c.Username, pw)
	})
	if err != nil {
		return nil, b.userError(fmt.Errorf("failed to update user: %w", err), pw, c.Password, current)
	}
	b.mu.Lock()
	b.pendingRoot[name] = pendingRoot{old: c.Password, new: pw}
	b.mu.Unlock()
	// Connections open under the old password keep working on the server side, but the pool
	// is rebuilt so every new one proves the new password.
	b.reset(name)
	ev, err := event(req, req.Now, dbview.RootRotated, b.subject("config/"+name), dbview.RootRotatedPayload{Mount: b.mount.UUID, Name: name, Password: pw})
	if err != nil {
		return nil, err
	}
	fp, err := b.fingerprintEvents(req, req.Now, fpview.KindRoot, "config/"+name, 0, "", pw)
	if err != nil {
		return nil, err
	}
	return respond(append([]ledger.Event{ev}, fp...)...), nil
}
