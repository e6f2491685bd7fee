package database

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	dbview "github.com/ledger-secrets/ledger/projections/database"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
)

// MinRotationPeriod is Vault's lower bound for a static role's rotation_period.
const MinRotationPeriod = 5 * time.Second

// lostRotationAfter: a rotation made in the database whose event has not reached the view
// after this long is taken as lost (its append failed), and RotateDue rotates again so the
// view and the database agree. Until then it is in flight and RotateDue leaves the role alone.
const lostRotationAfter = time.Minute

// handleStaticRole serves static-roles/:name.
func (b *Backend) handleStaticRole(ctx context.Context, req *engines.Request, name string) (*engines.Response, error) {
	switch req.Op {
	case engines.OpRead:
		r, ok := b.view.StaticRole(b.mount.UUID, name)
		if !ok {
			return nil, engines.ErrNotFound
		}
		return &engines.Response{Data: map[string]any{
			"db_name":             r.DBName,
			"username":            r.Username,
			"rotation_statements": nonNil(r.RotationStatements),
			"rotation_period":     seconds(r.RotationPeriod),
			"last_vault_rotation": r.LastRotation.UTC().Format(time.RFC3339Nano),
			"ttl":                 seconds(staticTTL(r, req.Now)),
			"credential_type":     "password",
		}}, nil
	case engines.OpCreate, engines.OpUpdate:
		return b.writeStaticRole(ctx, req, name)
	case engines.OpDelete:
		if _, ok := b.view.StaticRole(b.mount.UUID, name); !ok {
			return respond(), nil
		}
		ev, err := event(req, req.Now, dbview.StaticRoleDeleted, b.subject("static-roles/"+name), dbview.DeletedPayload{Mount: b.mount.UUID, Name: name})
		if err != nil {
			return nil, err
		}
		return respond(ev), nil
	}
	return nil, unsupported()
}

// staticTTL is the time left until the next scheduled rotation.
func staticTTL(r dbview.StaticRole, now time.Time) time.Duration {
	return max(r.LastRotation.Add(r.RotationPeriod).Sub(now), 0)
}

// writeStaticRole creates or updates a static role. Creating one rotates the account's password
// at once — the password anyone knew stops working before the role is recorded — and the event
// carries the new password. An update changes the schedule or statements, never the account.
func (b *Backend) writeStaticRole(ctx context.Context, req *engines.Request, name string) (*engines.Response, error) {
	if err := checkName("role", name); err != nil {
		return nil, err
	}
	if _, ok := b.view.Role(b.mount.UUID, name); ok {
		return nil, engines.BadRequest("Role and Static Role names must be unique")
	}
	d := req.Data
	r, exists := b.view.StaticRole(b.mount.UUID, name)
	var err error
	for _, f := range []struct {
		key string
		dst *string
		cur string
		msg string
	}{
		{"db_name", &r.DBName, r.DBName, "cannot update static role db_name"},
		{"username", &r.Username, r.Username, "cannot update static account username"},
	} {
		if !engines.Has(d, f.key) {
			continue
		}
		v, err := engines.String(d, f.key, "")
		if err != nil {
			return nil, err
		}
		if exists && v != f.cur {
			return nil, engines.BadRequest("%s", f.msg)
		}
		*f.dst = v
	}
	if engines.Has(d, "rotation_period") {
		if r.RotationPeriod, err = engines.Duration(d, "rotation_period", 0); err != nil {
			return nil, err
		}
	}
	if engines.Has(d, "rotation_statements") {
		if r.RotationStatements, err = statements(d, "rotation_statements"); err != nil {
			return nil, err
		}
	}
	switch {
	case r.DBName == "":
		return nil, engines.BadRequest("database name is a required field")
	case r.Username == "":
		return nil, engines.BadRequest("username is a required field to create a static account")
	case r.RotationPeriod == 0:
		return nil, engines.BadRequest("rotation_period is required to create static accounts")
	case r.RotationPeriod < MinRotationPeriod:
		return nil, engines.BadRequest("rotation_period must be %d seconds or more", int(MinRotationPeriod/time.Second))
	}
	c, ok := b.view.Config(b.mount.UUID, r.DBName)
	if !ok {
		return nil, engines.BadRequest("failed to find entry for connection with name: %q", r.DBName)
	}
	if !allowed(c.AllowedRoles, name) {
		return nil, engines.BadRequest("%q is not an allowed role", name)
	}
	if !exists {
		pw, gen, err := b.rotateStatic(ctx, name, r, c, req.Now)
		if err != nil {
			return nil, err
		}
		r.Password, r.LastRotation, r.Generation = pw, req.Now.UTC(), gen
	}
	ev, err := event(req, req.Now, dbview.StaticRoleWritten, b.subject("static-roles/"+name), dbview.StaticRolePayload{Mount: b.mount.UUID, Name: name, Role: r})
	if err != nil {
		return nil, err
	}
	evs := []ledger.Event{ev}
	if !exists {
		fp, err := b.fingerprintEvents(req, req.Now, fpview.KindStaticRole, "static-roles/"+name, r.Generation, "", r.Password)
		if err != nil {
			return nil, err
		}
		evs = append(evs, fp...)
	}
	return respond(evs...), nil
}

// staticCreds serves static-creds/:name.
func (b *Backend) staticCreds(req *engines.Request, name string) (*engines.Response, error) {
	r, ok := b.view.StaticRole(b.mount.UUID, name)
	if !ok {
		return nil, engines.BadRequest("unknown role: %s", name)
	}
	return &engines.Response{Data: map[string]any{
		"username":            r.Username,
		"password":            r.Password,
		"last_vault_rotation": r.LastRotation.UTC().Format(time.RFC3339Nano),
		"rotation_period":     seconds(r.RotationPeriod),
		"ttl":                 seconds(staticTTL(r, req.Now)),
	}}, nil
}

// rotateRole serves rotate-role/:name.
func (b *Backend) rotateRole(ctx context.Context, req *engines.Request, name string) (*engines.Response, error) {
	r, ok := b.view.StaticRole(b.mount.UUID, name)
	if !ok {
		return nil, engines.BadRequest("no static role found for role name")
	}
	evs, err := b.rotateEvents(ctx, req, name, r, req.Now)
	if err != nil {
		return nil, err
	}
	return respond(evs...), nil
}

// rotateEvents rotates a recorded static role and returns the events that record it: the
// rotation and the new password's fingerprint.
func (b *Backend) rotateEvents(ctx context.Context, req *engines.Request, name string, r dbview.StaticRole, now time.Time) ([]ledger.Event, error) {
	c, ok := b.view.Config(b.mount.UUID, r.DBName)
	if !ok {
		return nil, engines.BadRequest("failed to find entry for connection with name: %q", r.DBName)
	}
	pw, gen, err := b.rotateStatic(ctx, name, r, c, now)
	if err != nil {
		return nil, err
	}
	ev, err := event(req, now, dbview.StaticRoleRotated, b.subject("static-roles/"+name),
		dbview.StaticRotatedPayload{Mount: b.mount.UUID, Name: name, Password: pw, Time: now.UTC(), Generation: gen})
	if err != nil {
		return nil, err
	}
	fp, err := b.fingerprintEvents(req, now, fpview.KindStaticRole, "static-roles/"+name, gen, "", pw)
	if err != nil {
		return nil, err
	}
	return append([]ledger.Event{ev}, fp...), nil
}

func (b *Backend) roleLock(name string) *sync.Mutex {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.roleLocks[name]
	if l == nil {
		l = &sync.Mutex{}
		b.roleLocks[name] = l
	}
	return l
}

// rotateStatic sets a new password for the static role's account in the database. Rotations of
// one role are serialised here and numbered: the generation is above both the view's and the
// last one made here, so the view keeps the password the database got last, whatever order the
// events reach the log in.
func (b *Backend) rotateStatic(ctx context.Context, name string, r dbview.StaticRole, c dbview.Config, now time.Time) (string, uint64, error) {
	l := b.roleLock(name)
	l.Lock()
	defer l.Unlock()
	gen := uint64(0)
	if cur, ok := b.view.StaticRole(b.mount.UUID, name); ok {
		gen = cur.Generation
	}
	b.mu.Lock()
	gen = max(gen, b.pendingRot[name].generation) + 1
	b.mu.Unlock()
	pw, err := b.newPassword(ctx, c)
	if err != nil {
		return "", 0, err
	}
	err = b.withPlugin(r.DBName, c, func(p Plugin) error {
		return p.SetPassword(ctx, r.RotationStatements, r.Username, pw)
	})
	if err != nil {
		return "", 0, b.userError(fmt.Errorf("failed to rotate the password of static role %q: %w", name, err), pw, c.Password)
	}
	b.mu.Lock()
	b.pendingRot[name] = pendingStatic{generation: gen, at: now}
	b.mu.Unlock()
	return pw, gen, nil
}

// RotateDue rotates, in the database, the passwords of this mount's static roles whose
// rotation_period has elapsed at now, and returns the events that record them, for the active
// node to append (the same way the pipeline appends a response's events). A role whose last
// rotation made here has not reached the view is in flight and skipped, unless it is older than
// a minute: then its append was lost and the role is rotated again, so static-creds and the
// database agree. Failures do not stop the other roles; they are returned joined, with the
// events of the roles that did rotate.
func (b *Backend) RotateDue(ctx context.Context, now time.Time) ([]ledger.Event, error) {
	var events []ledger.Event
	var errs []error
	for _, name := range b.view.StaticRoles(b.mount.UUID) {
		r, ok := b.view.StaticRole(b.mount.UUID, name)
		if !ok {
			continue
		}
		due := !now.Before(r.LastRotation.Add(r.RotationPeriod))
		b.mu.Lock()
		ps, pending := b.pendingRot[name]
		b.mu.Unlock()
		if pending && ps.generation > r.Generation {
			due = now.Sub(ps.at) >= lostRotationAfter
		}
		if !due {
			continue
		}
		evs, err := b.rotateEvents(ctx, nil, name, r, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("rotate static role %q: %w", name, err))
			continue
		}
		events = append(events, evs...)
	}
	return events, errors.Join(errs...)
}
