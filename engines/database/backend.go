// Package database is Vault's database secrets engine: connection configurations, dynamic roles
// whose credentials are database users created on demand and dropped when their lease ends,
// static roles whose existing account's password Ledger rotates, and root rotation, with
// Vault's paths, fields and responses. Each kind of database is a plugin (package dbplugin's
// contract, one sub-package per database); the engine holds one pool per configuration.
//
// Side effects come before events. The engine changes the database while it decides, then
// answers with the events that record it (a new password travels only inside them, sealed by
// the log); for credentials it answers with a Secret and the pipeline registers the lease.
// When a statement fails, the answer is a 400 with the database's message (no password, no
// credentials of the connection URL) and nothing is left behind.
//
// No credential outlives its lease. RevokeLease runs the role's revocation statements (or the
// plugin's default, which drops the user with its privileges and sessions); if they fail, it
// first makes the user unusable and only then returns the error, so the expiration manager's
// retries never leave a working login behind.
package database

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/database/dbplugin"
	"github.com/ledger-secrets/ledger/engines/database/mysql"
	"github.com/ledger-secrets/ledger/engines/database/postgresql"
	"github.com/ledger-secrets/ledger/ledger"
	dbview "github.com/ledger-secrets/ledger/projections/database"
)

// Plugin is what the engine asks of a database (see package dbplugin).
type Plugin = dbplugin.Plugin

// Driver names a plugin and opens instances of it (see package dbplugin).
type Driver = dbplugin.Driver

// Backend is one database secrets engine mount.
type Backend struct {
	view    *dbview.View
	mount   engines.Mount
	logger  *slog.Logger
	drivers map[string]Driver

	mu          sync.Mutex
	pools       map[string]*pool       // by config name
	pendingRoot map[string]pendingRoot // by config name
	closed      bool
	created     map[string]time.Time     // users this process created lately, by name
	roleLocks   map[string]*sync.Mutex   // static role name → serialises its rotations
	pendingRot  map[string]pendingStatic // static role name → last rotation decided here

	// liveLeases counts the open leases issued under a connection config. A config with open
	// leases cannot be deleted: its leases could then never be revoked, and a MySQL account has
	// no expiry of its own, so the credential would keep working.
	liveLeases func(dbName string) int

	genPassword func(ctx context.Context, policy string) (string, error) // see WithPasswordGenerator
	fingerprint func([]byte) string                                      // see WithFingerprint
}

// pool is a plugin instance built from one configuration, shared by requests and closed once
// it is retired and no request uses it.
type pool struct {
	key     [32]byte
	plugin  Plugin
	refs    int
	retired bool
}

// pendingRoot is an admin password rotate-root set in the database whose event the view may
// not have applied yet (or never will, if the append failed): while the view still holds old,
// the engine connects with new, which is what the database now wants.
type pendingRoot struct{ old, new string }

// pendingStatic is the last static rotation this backend made in the database.
type pendingStatic struct {
	generation uint64
	at         time.Time
}

var (
	_ engines.Backend          = (*Backend)(nil)
	_ engines.LeaseBackend     = (*Backend)(nil)
	_ engines.ExistenceChecker = (*Backend)(nil)
	_ engines.Locker           = (*Backend)(nil)
)

// Option configures a Backend.
type Option func(*Backend)

// WithLeaseCount tells the engine how many open leases a connection config has (the pipeline
// owns the lease view). Without it, deleting a config is never refused.
func WithLeaseCount(f func(dbName string) int) Option { return func(b *Backend) { b.liveLeases = f } }

// WithDriver adds (or replaces, by name) a plugin.
func WithDriver(d Driver) Option { return func(b *Backend) { b.drivers[d.Name] = d } }

// New builds the engine for mount m over view, with the PostgreSQL and MySQL plugins.
func New(view *dbview.View, m engines.Mount, logger *slog.Logger, opts ...Option) *Backend {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Backend{
		view: view, mount: m, logger: logger.With("mount", m.Path),
		drivers:     map[string]Driver{},
		pools:       map[string]*pool{},
		pendingRoot: map[string]pendingRoot{},
		created:     map[string]time.Time{},
		roleLocks:   map[string]*sync.Mutex{},
		pendingRot:  map[string]pendingStatic{},
	}
	for _, d := range []Driver{postgresql.Driver(), mysql.Driver()} {
		b.drivers[d.Name] = d
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Close closes every pool (waiting for requests using them). The backend serves no database
// call afterwards.
func (b *Backend) Close() {
	b.mu.Lock()
	b.closed = true
	var done []Plugin
	for name, p := range b.pools {
		if pl := b.retireLocked(p); pl != nil {
			done = append(done, pl)
		}
		delete(b.pools, name)
	}
	b.mu.Unlock()
	closePlugins(done)
}

func closePlugins(ps []Plugin) {
	for _, p := range ps {
		_ = p.Close()
	}
}

// retireLocked marks p retired and returns its plugin if nobody uses it any more (the caller
// closes it outside the lock).
func (b *Backend) retireLocked(p *pool) Plugin {
	p.retired = true
	if p.refs == 0 {
		return p.plugin
	}
	return nil
}

// ErrClosed: the backend was closed.
var ErrClosed = errors.New("database: backend closed")

// connKey identifies what a pool is built from: a change of any of these fields builds a new pool.
func connKey(c dbview.Config) [32]byte {
	b, _ := json.Marshal([]any{c.PluginName, c.ConnectionURL, c.Username, c.Password,
		c.MaxOpenConnections, c.MaxIdleConnections, c.MaxConnectionLifetime})
	return sha256.Sum256(b)
}

func pluginConfig(c dbview.Config) dbplugin.Config {
	return dbplugin.Config{ConnectionURL: c.ConnectionURL, Username: c.Username, Password: c.Password,
		MaxOpenConnections: c.MaxOpenConnections, MaxIdleConnections: c.MaxIdleConnections,
		MaxConnectionLifetime: c.MaxConnectionLifetime}
}

// effectiveLocked is the configuration to connect with: the view's, with the admin password a
// rotate-root set when its event has not reached the view.
func (b *Backend) effectiveLocked(name string, c dbview.Config) dbview.Config {
	if pr, ok := b.pendingRoot[name]; ok {
		if subtle.ConstantTimeCompare([]byte(c.Password), []byte(pr.old)) == 1 {
			c.Password = pr.new
		} else {
			delete(b.pendingRoot, name) // the view moved on: applied, or rewritten by a user
		}
	}
	return c
}

// acquire returns the pool of config name, built from c if there is none or c changed. The
// caller releases it.
func (b *Backend) acquire(name string, c dbview.Config) (*pool, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	c = b.effectiveLocked(name, c)
	key := connKey(c)
	if p := b.pools[name]; p != nil && p.key == key {
		p.refs++
		b.mu.Unlock()
		return p, nil
	}
	b.mu.Unlock()

	pl, err := b.open(c)
	if err != nil {
		return nil, err
	}
	return b.install(name, key, pl, true)
}

func (b *Backend) open(c dbview.Config) (Plugin, error) {
	d, ok := b.drivers[c.PluginName]
	if !ok {
		return nil, engines.BadRequest("unsupported plugin_name %q", c.PluginName)
	}
	pl, err := d.Open(pluginConfig(c))
	if err != nil {
		return nil, engines.BadRequest("error creating database object: %s", dbplugin.Redact(err.Error(), c.Password))
	}
	return pl, nil
}

// install makes pl the pool of config name, retiring the previous one. With ref, the new pool
// is returned acquired. A concurrent install of the same key wins; pl is then closed.
func (b *Backend) install(name string, key [32]byte, pl Plugin, ref bool) (*pool, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = pl.Close()
		return nil, ErrClosed
	}
	var done []Plugin
	p := b.pools[name]
	if p != nil && p.key == key {
		done = append(done, pl) // someone built the same pool meanwhile
	} else {
		if p != nil {
			if old := b.retireLocked(p); old != nil {
				done = append(done, old)
			}
		}
		p = &pool{key: key, plugin: pl}
		b.pools[name] = p
	}
	if ref {
		p.refs++
	}
	b.mu.Unlock()
	closePlugins(done)
	return p, nil
}

func (b *Backend) release(p *pool) {
	b.mu.Lock()
	p.refs--
	var done Plugin
	if p.retired && p.refs == 0 {
		done = p.plugin
	}
	b.mu.Unlock()
	if done != nil {
		_ = done.Close()
	}
}

// reset retires the pool of config name; the next use builds one from the view.
func (b *Backend) reset(name string) {
	b.mu.Lock()
	var done Plugin
	if p := b.pools[name]; p != nil {
		done = b.retireLocked(p)
		delete(b.pools, name)
	}
	b.mu.Unlock()
	if done != nil {
		_ = done.Close()
	}
}

// withPlugin runs f with the pool of the named configuration.
func (b *Backend) withPlugin(name string, c dbview.Config, f func(Plugin) error) error {
	p, err := b.acquire(name, c)
	if err != nil {
		return err
	}
	defer b.release(p)
	return f(p.plugin)
}

// --- routing ---

// nameRE is Vault's GenericNameRegex: names of configs and roles.
var nameRE = regexp.MustCompile(`^\w(([\w.-]+)?\w)?$`)

func checkName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return engines.BadRequest("invalid %s name %q", kind, name)
	}
	return nil
}

// split separates a request path into its endpoint and the name after it.
func split(path string) (endpoint, name string) {
	path = strings.TrimSuffix(path, "/")
	endpoint, name, _ = strings.Cut(path, "/")
	return endpoint, name
}

// HandleRequest implements engines.Backend.
func (b *Backend) HandleRequest(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	if req.Now.IsZero() {
		req.Now = time.Now().UTC()
	}
	endpoint, name := split(req.Path)
	if name == "" && req.Op == engines.OpList {
		switch endpoint {
		case "config":
			return list(b.view.Configs(b.mount.UUID))
		case "roles":
			return list(b.view.Roles(b.mount.UUID))
		case "static-roles":
			return list(b.view.StaticRoles(b.mount.UUID))
		}
	}
	if name == "" || strings.Contains(name, "/") {
		return nil, engines.Errorf(engines.ErrNotFound, "unsupported path")
	}
	switch endpoint {
	case "config":
		return b.handleConfig(ctx, req, name)
	case "roles":
		return b.handleRole(req, name)
	case "creds":
		if req.Op != engines.OpRead {
			return nil, unsupported()
		}
		return b.creds(ctx, req, name)
	case "static-roles":
		return b.handleStaticRole(ctx, req, name)
	case "static-creds":
		if req.Op != engines.OpRead {
			return nil, unsupported()
		}
		return b.staticCreds(req, name)
	case "rotate-root":
		if !isWrite(req.Op) {
			return nil, unsupported()
		}
		return b.rotateRoot(ctx, req, name)
	case "rotate-role":
		if !isWrite(req.Op) {
			return nil, unsupported()
		}
		return b.rotateRole(ctx, req, name)
	case "reset":
		if !isWrite(req.Op) {
			return nil, unsupported()
		}
		return b.resetConfig(name)
	}
	return nil, engines.Errorf(engines.ErrNotFound, "unsupported path")
}

func unsupported() error { return engines.Errorf(engines.ErrUnsupported, "unsupported operation") }

func isWrite(op engines.Operation) bool { return op == engines.OpCreate || op == engines.OpUpdate }

func list(keys []string) (*engines.Response, error) {
	if len(keys) == 0 {
		return nil, engines.ErrNotFound
	}
	return &engines.Response{Data: map[string]any{"keys": keys}}, nil
}

// Exists implements engines.ExistenceChecker: writes to an existing config, role or static role
// are updates, to a new one creates. The action endpoints always exist.
func (b *Backend) Exists(_ context.Context, req *engines.Request) (bool, error) {
	endpoint, name := split(req.Path)
	var ok bool
	switch endpoint {
	case "config":
		_, ok = b.view.Config(b.mount.UUID, name)
	case "roles":
		_, ok = b.view.Role(b.mount.UUID, name)
	case "static-roles":
		_, ok = b.view.StaticRole(b.mount.UUID, name)
	default:
		return true, nil
	}
	return ok, nil
}

// ActiveOnly implements engines.ActiveOnly: reading creds/<role> creates a user in the database
// and issues a lease, so a standby forwards it before touching the database (one owner for
// side effects) instead of creating the user, failing to record its lease and dropping it.
func (b *Backend) ActiveOnly() []string { return []string{"creds/*"} }

// LockKey implements engines.Locker: the aggregate a write decides about. rotate-root and reset
// act on the configuration, rotate-role on the static role.
func (b *Backend) LockKey(req *engines.Request) string {
	endpoint, name := split(req.Path)
	switch endpoint {
	case "config", "rotate-root", "reset":
		return "config/" + name
	case "roles":
		return "roles/" + name
	case "static-roles", "rotate-role":
		return "static-roles/" + name
	}
	return ""
}

// --- events ---

func (b *Backend) subject(path string) string {
	return ledger.SubjectFor("database", b.mount.UUID, path)
}

func event(req *engines.Request, now time.Time, typ, subject string, payload any) (ledger.Event, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return ledger.Event{}, fmt.Errorf("encode %s: %w", typ, err)
	}
	ev := ledger.Event{Type: typ, Subject: subject, Time: now, Payload: p}
	if req != nil {
		ev.Request = req.ID
		if req.Caller != nil {
			ev.Actor = req.Caller.Accessor
		}
	}
	return ev, nil
}

func respond(events ...ledger.Event) *engines.Response { return &engines.Response{Events: events} }

// statements reads a statement list: a JSON array, or one string (kept whole: commas belong to
// SQL, as in Vault's TypeStringSlice). Entries are trimmed, empty ones dropped.
func statements(data map[string]any, key string) ([]string, error) {
	v, ok := data[key]
	if !ok || v == nil {
		return nil, nil
	}
	var raw []string
	switch t := v.(type) {
	case string:
		raw = []string{t}
	case []string:
		raw = t
	case []any:
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, engines.BadRequest("field %q: expected a list of strings", key)
			}
			raw = append(raw, s)
		}
	default:
		return nil, engines.BadRequest("field %q: expected a list of strings", key)
	}
	out := []string{}
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// nonNil keeps lists as [] rather than null in responses, as Vault answers.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }
