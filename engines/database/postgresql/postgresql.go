// Package postgresql is the database engine's PostgreSQL plugin (Vault's
// postgresql-database-plugin) on pgx/v5: a database/sql pool per connection configuration, with
// Vault's pool settings, and users managed with Vault's statement templates.
//
// VALID UNTIL always follows the lease: creation and renewal end by setting it, so even custom
// statements that omit it leave a password the server refuses once the lease is over.
//
// Revocation never leaves a working credential behind. The default revocation locks the role
// out, ends its sessions, hands what it owns to the admin, drops its privileges and drops it.
// Custom revocation statements run after the lock-out; when they fail only because the role
// still holds privileges (the lesson's bare DROP ROLE after a GRANT), the dependencies are
// dropped and the statements tried once more.
package postgresql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/ledger-secrets/ledger/engines/database/dbplugin"
)

// Name is the plugin_name of PostgreSQL connections.
const Name = "postgresql-database-plugin"

// MaxUsernameLength is PostgreSQL's identifier limit (NAMEDATALEN-1).
const MaxUsernameLength = 63

// DefaultUsernameTemplate is Vault's default for PostgreSQL.
const DefaultUsernameTemplate = `{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}`

// sqlstateDependentObjects: "role cannot be dropped because some objects depend on it".
const sqlstateDependentObjects = "2BP01"

// Driver describes the plugin to the engine.
func Driver() dbplugin.Driver {
	return dbplugin.Driver{
		Name: Name, MaxUsernameLength: MaxUsernameLength, DefaultUsernameTemplate: DefaultUsernameTemplate,
		Open: func(cfg dbplugin.Config) (dbplugin.Plugin, error) { return Open(cfg) },
	}
}

// Plugin is one PostgreSQL connection configuration and its pool.
type Plugin struct {
	db     *sql.DB
	host   string
	secret string // the admin password, redacted from every error
}

var _ dbplugin.Plugin = (*Plugin)(nil)

// Open parses cfg and builds the pool; it does not connect. connection_url is a URL
// (postgres://…) or PostgreSQL's key=value form.
func Open(cfg dbplugin.Config) (*Plugin, error) {
	style := dbplugin.URLStyleKeyValue
	if strings.HasPrefix(cfg.ConnectionURL, "postgres://") || strings.HasPrefix(cfg.ConnectionURL, "postgresql://") {
		style = dbplugin.URLStyleURL
	}
	conn := dbplugin.FillURL(cfg.ConnectionURL, cfg.Username, cfg.Password, style)
	cc, err := pgx.ParseConfig(conn)
	if err != nil {
		return nil, dbplugin.RedactErr(fmt.Errorf("invalid connection_url: %w", err), cfg.Password, conn)
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = 10 * time.Second
	}
	p := &Plugin{host: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), secret: cfg.Password}
	if strings.HasPrefix(cc.Host, "/") {
		p.host = cc.Host
	}
	p.db = stdlib.OpenDB(*cc)
	open := cfg.MaxOpenConnections
	if open <= 0 {
		open = 4
	}
	idle := cfg.MaxIdleConnections
	if idle <= 0 || idle > open {
		idle = open
	}
	p.db.SetMaxOpenConns(open)
	p.db.SetMaxIdleConns(idle)
	p.db.SetConnMaxLifetime(cfg.MaxConnectionLifetime)
	return p, nil
}

// Close implements dbplugin.Plugin.
func (p *Plugin) Close() error { return p.db.Close() }

func (p *Plugin) redact(err error, secrets ...string) error {
	return dbplugin.RedactErr(err, append(secrets, p.secret)...)
}

// Verify implements dbplugin.Plugin.
func (p *Plugin) Verify(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := p.db.PingContext(ctx); err != nil {
		return p.redact(fmt.Errorf("error verifying connection to %s: %w", p.host, err))
	}
	return nil
}

func ident(s string) string   { return pgx.Identifier{s}.Sanitize() }
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// advisoryKey names the advisory lock Ledger's user-management transactions take. Concurrent
// GRANTs and REVOKEs on one table rewrite the same catalog row and fail with "tuple concurrently
// updated"; holding this lock for the transaction serialises them, across Ledger nodes too.
const advisoryKey int64 = 0x4c6564676572 // "Ledger"

// SQLSTATEs worth another try: a catalog row updated under us, serialisation, deadlock.
var retryable = map[string]bool{"XX000": true, "40001": true, "40P01": true}

// execTx runs statements in one transaction, serialised with Ledger's other user changes in
// this database, and tries again (up to three times) when PostgreSQL reports a conflict that a
// retry resolves.
func (p *Plugin) execTx(ctx context.Context, stmts []string) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = p.execTxOnce(ctx, stmts)
		var pgErr *pgconn.PgError
		if err == nil || attempt == 3 || !errors.As(err, &pgErr) || !retryable[pgErr.Code] ||
			(pgErr.Code == "XX000" && !strings.Contains(pgErr.Message, "concurrently")) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
}

func (p *Plugin) execTxOnce(ctx context.Context, stmts []string) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_catalog.pg_advisory_xact_lock($1)", advisoryKey); err != nil {
		_ = tx.Rollback()
		return err
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

func render(entries []string, v dbplugin.Vars) []string {
	stmts := dbplugin.Split(entries, dbplugin.PostgreSQL)
	for i, s := range stmts {
		stmts[i] = dbplugin.Render(s, v)
	}
	return stmts
}

func (p *Plugin) exists(ctx context.Context, name string) (bool, error) {
	var n int
	err := p.db.QueryRowContext(ctx, "SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname = $1", name).Scan(&n)
	if err != nil {
		return false, p.redact(fmt.Errorf("look up role: %w", err))
	}
	return n > 0, nil
}

// becomeMember grants the role to the admin when the admin is no superuser. A CREATEROLE admin
// may grant itself the roles it manages, and needs their privileges to end their sessions and
// to reassign or drop what they own. Best effort: a superuser needs none of it, and what it
// cannot do shows up as the error of the step that needed it.
func (p *Plugin) becomeMember(ctx context.Context, name string) {
	var super bool
	if err := p.db.QueryRowContext(ctx, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").Scan(&super); err != nil || super {
		return
	}
	_, _ = p.db.ExecContext(ctx, "GRANT "+ident(name)+" TO CURRENT_USER")
}

// terminate ends every session of the role but our own.
func (p *Plugin) terminate(ctx context.Context, name string) error {
	_, err := p.db.ExecContext(ctx,
		"SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename = $1 AND pid <> pg_catalog.pg_backend_pid()", name)
	if err != nil {
		return p.redact(fmt.Errorf("terminate sessions of %s: %w", name, err))
	}
	return nil
}

// lockOut stops new logins and ends the sessions there are.
func (p *Plugin) lockOut(ctx context.Context, name string) error {
	if _, err := p.db.ExecContext(ctx, "ALTER ROLE "+ident(name)+" WITH NOLOGIN"); err != nil {
		return p.redact(fmt.Errorf("lock out %s: %w", name, err))
	}
	return p.terminate(ctx, name)
}

// CreateUser implements dbplugin.Plugin. PostgreSQL rolls the failed transaction back, which
// undoes CREATE ROLE; the rollback statements and a final drop cover what a transaction cannot.
func (p *Plugin) CreateUser(ctx context.Context, u dbplugin.NewUser) error {
	v := dbplugin.Vars{Username: u.Username, Password: u.Password, Expiration: u.Expiration}
	stmts := render(u.Creation, v)
	if len(stmts) == 0 {
		return errors.New("no creation statements")
	}
	if !u.Expiration.IsZero() {
		stmts = append(stmts, validUntil(u.Username, u.Expiration))
	}
	err := p.execTx(ctx, stmts)
	if err == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	if rb := render(u.Rollback, v); len(rb) > 0 {
		if rerr := p.execTx(cctx, rb); rerr != nil {
			errs = append(errs, fmt.Errorf("rollback statements: %w", rerr))
		}
	}
	if rerr := p.RevokeUser(cctx, nil, u.Username); rerr != nil {
		errs = append(errs, fmt.Errorf("drop partly created user: %w", rerr))
	}
	return p.redact(errors.Join(append([]error{fmt.Errorf("create user: %w", err)}, errs...)...), u.Password)
}

// RevokeUser implements dbplugin.Plugin.
func (p *Plugin) RevokeUser(ctx context.Context, statements []string, name string) error {
	ok, err := p.exists(ctx, name)
	if err != nil || !ok {
		return err
	}
	p.becomeMember(ctx, name)
	if err := p.lockOut(ctx, name); err != nil {
		return err
	}
	stmts := render(statements, dbplugin.Vars{Username: name})
	if len(stmts) == 0 {
		stmts = p.defaultRevocation(ctx, name)
	}
	err = p.execTx(ctx, stmts)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == sqlstateDependentObjects {
		// The statements drop the role but it still holds privileges or objects here: hand
		// them over and drop them, then run the statements again.
		if derr := p.execTx(ctx, dropDependencies(name)); derr != nil {
			return p.redact(fmt.Errorf("revoke %s: %w; dropping its privileges: %w", name, err, derr))
		}
		err = p.execTx(ctx, stmts)
	}
	if err != nil {
		return p.redact(fmt.Errorf("revoke %s: %w", name, err))
	}
	// Statements that keep the role (REVOKE only, say) must not keep it usable.
	return p.DisableUser(ctx, name)
}

func dropDependencies(name string) []string {
	return []string{"REASSIGN OWNED BY " + ident(name) + " TO CURRENT_USER", "DROP OWNED BY " + ident(name)}
}

// defaultRevocation takes every privilege away, hands the role's objects to the admin and drops
// the role. DROP OWNED already revokes what was granted in this database; the explicit REVOKEs
// on the public schema are Vault's default, kept for readers of the audit trail.
func (p *Plugin) defaultRevocation(ctx context.Context, name string) []string {
	q := ident(name)
	var stmts []string
	var public bool
	if err := p.db.QueryRowContext(ctx, "SELECT to_regnamespace('public') IS NOT NULL").Scan(&public); err == nil && public {
		stmts = append(stmts,
			"REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "+q,
			"REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM "+q,
			"REVOKE ALL PRIVILEGES ON ALL FUNCTIONS IN SCHEMA public FROM "+q,
			"REVOKE ALL PRIVILEGES ON SCHEMA public FROM "+q)
	}
	stmts = append(stmts, dropDependencies(name)...)
	return append(stmts, "DROP ROLE IF EXISTS "+q)
}

// DisableUser implements dbplugin.Plugin.
func (p *Plugin) DisableUser(ctx context.Context, name string) error {
	ok, err := p.exists(ctx, name)
	if err != nil || !ok {
		return err
	}
	p.becomeMember(ctx, name)
	if _, err := p.db.ExecContext(ctx, "ALTER ROLE "+ident(name)+" WITH NOLOGIN PASSWORD NULL VALID UNTIL '1970-01-01 00:00:00+00'"); err != nil {
		return p.redact(fmt.Errorf("disable %s: %w", name, err))
	}
	return p.terminate(ctx, name)
}

// validUntil sets the role's expiry. Creation and renewal always end with it, whatever the
// role's statements say: the database itself then refuses the password once the lease is over,
// even if Ledger is down at that moment.
func validUntil(name string, t time.Time) string {
	return "ALTER ROLE " + ident(name) + " VALID UNTIL " + literal(t.Format(dbplugin.ExpirationFormat))
}

// RenewUser implements dbplugin.Plugin: the renew statements, then VALID UNTIL moves to the new
// expiry.
func (p *Plugin) RenewUser(ctx context.Context, statements []string, name string, expiration time.Time) error {
	ok, err := p.exists(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("renew %s: %w", name, dbplugin.ErrNoUser)
	}
	stmts := append(render(statements, dbplugin.Vars{Username: name, Expiration: expiration}), validUntil(name, expiration))
	if err := p.execTx(ctx, stmts); err != nil {
		return p.redact(fmt.Errorf("renew %s: %w", name, err))
	}
	return nil
}

// SetPassword implements dbplugin.Plugin.
func (p *Plugin) SetPassword(ctx context.Context, statements []string, name, password string) error {
	ok, err := p.exists(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("set password of %q: %w", name, dbplugin.ErrNoUser)
	}
	stmts := render(statements, dbplugin.Vars{Username: name, Password: password})
	if len(stmts) == 0 {
		stmts = []string{"ALTER ROLE " + ident(name) + " WITH PASSWORD " + literal(password)}
	}
	if err := p.execTx(ctx, stmts); err != nil {
		return p.redact(fmt.Errorf("set password of %q: %w", name, err), password)
	}
	return nil
}

// ListUsers implements dbplugin.Plugin.
func (p *Plugin) ListUsers(ctx context.Context, prefix string) ([]string, error) {
	rows, err := p.db.QueryContext(ctx,
		"SELECT rolname::text FROM pg_catalog.pg_roles WHERE starts_with(rolname::text, $1::text) ORDER BY 1", prefix)
	if err != nil {
		return nil, p.redact(fmt.Errorf("list roles: %w", err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, p.redact(fmt.Errorf("list roles: %w", err))
		}
		out = append(out, s)
	}
	return out, p.redact(rows.Err())
}
