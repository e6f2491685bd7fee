// Package mysql is the database engine's MySQL and MariaDB plugin (Vault's
// mysql-database-plugin) on go-sql-driver/mysql: a database/sql pool per connection
// configuration, users managed with Vault's statement templates.
//
// A MySQL account is a user *and* a host; the plugin's defaults act on every host a user name
// has, so 'v-x'@'%' and a stray 'v-x'@'localhost' go together. Revocation locks the accounts
// and kills their connections before anything else runs, so even statements that fail leave
// nothing that can log in.
package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/ledger-secrets/ledger/engines/database/dbplugin"
)

// Name is the plugin_name of MySQL and MariaDB connections.
const Name = "mysql-database-plugin"

// MaxUsernameLength is MySQL 5.7+'s and MariaDB's limit for a user name.
const MaxUsernameLength = 32

// DefaultUsernameTemplate is Vault's default for MySQL: shorter parts than PostgreSQL's.
const DefaultUsernameTemplate = `{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 10) (.RoleName | truncate 10) (random 20) (unix_time) | truncate 32 }}`

// errUnknownThread: the connection to KILL ended on its own.
const errUnknownThread = 1094

// Driver describes the plugin to the engine.
func Driver() dbplugin.Driver {
	return dbplugin.Driver{
		Name: Name, MaxUsernameLength: MaxUsernameLength, DefaultUsernameTemplate: DefaultUsernameTemplate,
		Open: func(cfg dbplugin.Config) (dbplugin.Plugin, error) { return Open(cfg) },
	}
}

// Plugin is one MySQL connection configuration and its pool.
type Plugin struct {
	db     *sql.DB
	host   string
	secret string
}

var _ dbplugin.Plugin = (*Plugin)(nil)

// Open parses cfg (connection_url is a go-sql-driver DSN: "{{username}}:{{password}}@tcp(host:3306)/")
// and builds the pool; it does not connect.
func Open(cfg dbplugin.Config) (*Plugin, error) {
	dsn := dbplugin.FillURL(cfg.ConnectionURL, cfg.Username, cfg.Password, dbplugin.URLStyleRaw)
	dc, err := driver.ParseDSN(dsn)
	if err != nil {
		return nil, dbplugin.RedactErr(fmt.Errorf("invalid connection_url: %w", err), cfg.Password, dsn)
	}
	if dc.Timeout == 0 {
		dc.Timeout = 10 * time.Second
	}
	conn, err := driver.NewConnector(dc)
	if err != nil {
		return nil, dbplugin.RedactErr(fmt.Errorf("invalid connection_url: %w", err), cfg.Password, dsn)
	}
	p := &Plugin{db: sql.OpenDB(conn), host: dc.Addr, secret: cfg.Password}
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

// literal quotes a string for MySQL whether or not NO_BACKSLASH_ESCAPES is set, as long as the
// value holds no backslash (user names and generated passwords hold none).
func literal(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

func account(user, host string) string { return literal(user) + "@" + literal(host) }

func render(entries []string, v dbplugin.Vars) []string {
	stmts := dbplugin.Split(entries, dbplugin.MySQL)
	for i, s := range stmts {
		stmts[i] = dbplugin.Render(s, v)
	}
	return stmts
}

// execAll runs statements in order on one session. MySQL commits DDL implicitly, so a
// transaction would not make them atomic; callers undo what a failure leaves.
func (p *Plugin) execAll(ctx context.Context, stmts []string) error {
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// hosts lists the hosts of the accounts named user.
func (p *Plugin) hosts(ctx context.Context, user string) ([]string, error) {
	rows, err := p.db.QueryContext(ctx, "SELECT Host FROM mysql.user WHERE User = ? ORDER BY Host", user)
	if err != nil {
		return nil, p.redact(fmt.Errorf("look up user: %w", err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, p.redact(fmt.Errorf("look up user: %w", err))
		}
		out = append(out, h)
	}
	return out, p.redact(rows.Err())
}

// kill ends the user's connections, but not ours.
func (p *Plugin) kill(ctx context.Context, user string) error {
	rows, err := p.db.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()", user)
	if err != nil {
		return p.redact(fmt.Errorf("list connections of %s: %w", user, err))
	}
	var ids []uint64
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return p.redact(fmt.Errorf("list connections of %s: %w", user, err))
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if _, err := p.db.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); err != nil {
			var me *driver.MySQLError
			if errors.As(err, &me) && me.Number == errUnknownThread {
				continue
			}
			return p.redact(fmt.Errorf("kill connection of %s: %w", user, err))
		}
	}
	return nil
}

// lockOut locks every account of the user and kills its connections.
func (p *Plugin) lockOut(ctx context.Context, user string, hosts []string) error {
	for _, h := range hosts {
		if _, err := p.db.ExecContext(ctx, "ALTER USER "+account(user, h)+" ACCOUNT LOCK"); err != nil {
			return p.redact(fmt.Errorf("lock %s: %w", user, err))
		}
	}
	return p.kill(ctx, user)
}

// CreateUser implements dbplugin.Plugin. CREATE USER commits at once, so a failure part-way runs
// the rollback statements and then drops every account of the name.
func (p *Plugin) CreateUser(ctx context.Context, u dbplugin.NewUser) error {
	v := dbplugin.Vars{Username: u.Username, Password: u.Password, Expiration: u.Expiration}
	stmts := render(u.Creation, v)
	if len(stmts) == 0 {
		return errors.New("no creation statements")
	}
	err := p.execAll(ctx, stmts)
	if err == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	if rb := render(u.Rollback, v); len(rb) > 0 {
		if rerr := p.execAll(cctx, rb); rerr != nil {
			errs = append(errs, fmt.Errorf("rollback statements: %w", rerr))
		}
	}
	if rerr := p.RevokeUser(cctx, nil, u.Username); rerr != nil {
		errs = append(errs, fmt.Errorf("drop partly created user: %w", rerr))
	}
	return p.redact(errors.Join(append([]error{fmt.Errorf("create user: %w", err)}, errs...)...), u.Password)
}

// RevokeUser implements dbplugin.Plugin.
func (p *Plugin) RevokeUser(ctx context.Context, statements []string, user string) error {
	hosts, err := p.hosts(ctx, user)
	if err != nil || len(hosts) == 0 {
		return err
	}
	if err := p.lockOut(ctx, user, hosts); err != nil {
		return err
	}
	stmts := render(statements, dbplugin.Vars{Username: user})
	if len(stmts) == 0 {
		for _, h := range hosts {
			stmts = append(stmts, "DROP USER IF EXISTS "+account(user, h))
		}
	}
	if err := p.execAll(ctx, stmts); err != nil {
		return p.redact(fmt.Errorf("revoke %s: %w", user, err))
	}
	// Statements that keep the account must not keep it usable.
	return p.DisableUser(ctx, user)
}

// DisableUser implements dbplugin.Plugin: every account of the user gets a random password
// nobody knows and is locked; its connections are killed.
func (p *Plugin) DisableUser(ctx context.Context, user string) error {
	hosts, err := p.hosts(ctx, user)
	if err != nil || len(hosts) == 0 {
		return err
	}
	var r [24]byte
	if _, err := rand.Read(r[:]); err != nil {
		return fmt.Errorf("random: %w", err)
	}
	junk := hex.EncodeToString(r[:])
	for _, h := range hosts {
		if _, err := p.db.ExecContext(ctx, "ALTER USER "+account(user, h)+" IDENTIFIED BY "+literal(junk)+" ACCOUNT LOCK"); err != nil {
			return p.redact(fmt.Errorf("disable %s: %w", user, err), junk)
		}
	}
	return p.kill(ctx, user)
}

// RenewUser implements dbplugin.Plugin. MySQL accounts have no expiry time, so without renew
// statements there is nothing to move; the user must still exist.
func (p *Plugin) RenewUser(ctx context.Context, statements []string, user string, expiration time.Time) error {
	hosts, err := p.hosts(ctx, user)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		return fmt.Errorf("renew %s: %w", user, dbplugin.ErrNoUser)
	}
	stmts := render(statements, dbplugin.Vars{Username: user, Expiration: expiration})
	if err := p.execAll(ctx, stmts); err != nil {
		return p.redact(fmt.Errorf("renew %s: %w", user, err))
	}
	return nil
}

// SetPassword implements dbplugin.Plugin.
func (p *Plugin) SetPassword(ctx context.Context, statements []string, user, password string) error {
	hosts, err := p.hosts(ctx, user)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		return fmt.Errorf("set password of %q: %w", user, dbplugin.ErrNoUser)
	}
	stmts := render(statements, dbplugin.Vars{Username: user, Password: password})
	if len(stmts) == 0 {
		for _, h := range hosts {
			stmts = append(stmts, "ALTER USER "+account(user, h)+" IDENTIFIED BY "+literal(password))
		}
	}
	if err := p.execAll(ctx, stmts); err != nil {
		return p.redact(fmt.Errorf("set password of %q: %w", user, err), password)
	}
	return nil
}

// ListUsers implements dbplugin.Plugin.
func (p *Plugin) ListUsers(ctx context.Context, prefix string) ([]string, error) {
	rows, err := p.db.QueryContext(ctx,
		"SELECT DISTINCT User FROM mysql.user WHERE LEFT(User, CHAR_LENGTH(?)) = ? ORDER BY User", prefix, prefix)
	if err != nil {
		return nil, p.redact(fmt.Errorf("list users: %w", err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, p.redact(fmt.Errorf("list users: %w", err))
		}
		out = append(out, s)
	}
	return out, p.redact(rows.Err())
}
