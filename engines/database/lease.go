package database

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	dbview "github.com/ledger-secrets/ledger/projections/database"
)

// ErrConfigGone: the lease's database configuration no longer exists, so the engine cannot
// reach the database to revoke or renew.
var ErrConfigGone = errors.New("database: connection configuration not found")

// leaseTarget resolves a lease to its configuration and the role's current statements (or the
// ones recorded at creation when the role is gone or moved to another database).
func (b *Backend) leaseTarget(l engines.Lease) (LeaseData, dbview.Config, dbview.Role, error) {
	d, err := ParseLeaseData(l.InternalData)
	if err != nil {
		return LeaseData{}, dbview.Config{}, dbview.Role{}, err
	}
	mountUUID := l.MountUUID
	if mountUUID == "" {
		mountUUID = b.mount.UUID
	}
	c, ok := b.view.Config(mountUUID, d.DBName)
	if !ok {
		return d, c, dbview.Role{}, fmt.Errorf("%w: %q", ErrConfigGone, d.DBName)
	}
	r, ok := b.view.Role(mountUUID, d.Role)
	if !ok || r.DBName != d.DBName {
		r = dbview.Role{DBName: d.DBName, RevocationStatements: d.RevocationStatements, RenewStatements: d.RenewStatements}
	}
	return d, c, r, nil
}

// RevokeLease implements engines.LeaseBackend: it drops the lease's user with the role's
// revocation statements, or the plugin's default. A user already gone is revoked. When
// revocation fails, the user is first made unusable (no login, no password, no session) and
// then the error returned, for the expiration manager to retry and show; the credential stops
// working either way.
func (b *Backend) RevokeLease(ctx context.Context, l engines.Lease) error {
	d, c, r, err := b.leaseTarget(l)
	if err != nil {
		return fmt.Errorf("revoke lease %s: %w", l.ID, err)
	}
	return b.withPlugin(d.DBName, c, func(p Plugin) error {
		err := p.RevokeUser(ctx, r.RevocationStatements, d.Username)
		if err == nil {
			return nil
		}
		if derr := p.DisableUser(ctx, d.Username); derr != nil {
			return fmt.Errorf("%w; disabling the user also failed: %w", err, derr)
		}
		b.logger.Warn("revocation failed; user disabled, lease kept for retry",
			"lease_id", l.ID, "db_name", d.DBName, "username", d.Username, "err", err)
		return fmt.Errorf("%w (the user is disabled and cannot log in; revocation will be retried)", err)
	})
}

// RenewLease implements engines.LeaseBackend: the user's expiry in the database follows the
// lease (PostgreSQL's VALID UNTIL), with the role's renew statements if it has some.
func (b *Backend) RenewLease(ctx context.Context, l engines.Lease, newExpire time.Time) error {
	d, c, r, err := b.leaseTarget(l)
	if err != nil {
		return fmt.Errorf("renew lease %s: %w", l.ID, err)
	}
	return b.withPlugin(d.DBName, c, func(p Plugin) error {
		return p.RenewUser(ctx, r.RenewStatements, d.Username, newExpire.UTC())
	})
}

// Orphan is a database user that looks like one Ledger created but that no lease owns.
type Orphan struct {
	DBName   string
	Username string
}

// OrphanPrefix starts every user name the default username templates produce.
const OrphanPrefix = "v-"

// OrphanGrace: users created less than this ago (by this process, or by a name whose
// unix_time says so) are never orphans: their lease may still be on its way to the log.
const OrphanGrace = 5 * time.Minute

// Orphans lists, for every configuration of this mount, the users named with Ledger's "v-"
// prefix that owned reports no lease for, under any of the mount's configuration names (two
// configurations may reach the same server). A crash between creating a user and registering
// its lease leaves such a user. Users younger than OrphanGrace are left out. Configurations
// whose database cannot be reached are reported in the error, the others still listed.
func (b *Backend) Orphans(ctx context.Context, owned func(dbName, username string) bool) ([]Orphan, error) {
	now := time.Now()
	names := b.view.Configs(b.mount.UUID)
	var out []Orphan
	var errs []error
	seen := map[string]bool{}
	for _, name := range names {
		c, ok := b.view.Config(b.mount.UUID, name)
		if !ok {
			continue
		}
		var users []string
		err := b.withPlugin(name, c, func(p Plugin) error {
			var err error
			users, err = p.ListUsers(ctx, OrphanPrefix)
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("list users of %q: %w", name, err))
			continue
		}
		for _, u := range users {
			if seen[u] || b.young(u, now) {
				continue
			}
			mine := false
			for _, n := range names {
				if owned(n, u) {
					mine = true
					break
				}
			}
			if !mine {
				seen[u] = true
				out = append(out, Orphan{DBName: name, Username: u})
			}
		}
	}
	return out, errors.Join(errs...)
}

// young reports whether a user may still be waiting for its lease.
func (b *Backend) young(username string, now time.Time) bool {
	b.mu.Lock()
	t, ok := b.created[username]
	b.mu.Unlock()
	if ok && now.Sub(t) < OrphanGrace {
		return true
	}
	// The default templates end in -<unix_time> (when not truncated away).
	if i := strings.LastIndexByte(username, '-'); i >= 0 && len(username)-i-1 >= 9 {
		if sec, err := strconv.ParseInt(username[i+1:], 10, 64); err == nil {
			return now.Sub(time.Unix(sec, 0)) < OrphanGrace
		}
	}
	return false
}

// DropOrphans drops the orphans with the plugin's default revocation (privileges, sessions and
// the user). It goes on past failures and returns them joined.
func (b *Backend) DropOrphans(ctx context.Context, orphans []Orphan) error {
	var errs []error
	for _, o := range orphans {
		c, ok := b.view.Config(b.mount.UUID, o.DBName)
		if !ok {
			errs = append(errs, fmt.Errorf("drop orphan %s: %w: %q", o.Username, ErrConfigGone, o.DBName))
			continue
		}
		err := b.withPlugin(o.DBName, c, func(p Plugin) error { return p.RevokeUser(ctx, nil, o.Username) })
		if err != nil {
			errs = append(errs, fmt.Errorf("drop orphan %s: %w", o.Username, err))
			continue
		}
		b.logger.Info("dropped orphan database user", "db_name", o.DBName, "username", o.Username)
	}
	return errors.Join(errs...)
}
