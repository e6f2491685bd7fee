package database

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/database/dbtest"
	"github.com/ledger-secrets/ledger/ledger"
	dbview "github.com/ledger-secrets/ledger/projections/database"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// env is one database prepared for a test: an admin account like the lesson's vault_admin
// (password "vault-managed-2026"), a users table with 42 rows, and the statements of the
// lesson's roles in this database's dialect.
type env struct {
	plugin        string
	connURL       string // templated with {{username}}/{{password}}
	badURL        string // nothing listens there
	adminUser     string
	adminPassword string
	readonly      string // creation statements
	readwrite     string
	revocation    string // the lesson's revocation statement
	rotation      string // the lesson's Part 1 password change, as a rotation statement
	// login connects as user and runs query, returning the first value.
	login func(ctx context.Context, user, password, query string) (string, error)
	// insert adds a row to users as user.
	insert func(ctx context.Context, user, password string) error
	// hold opens a session as user and returns a function that runs a query on it.
	hold func(t *testing.T, user, password string) func() error
	// asSuper runs statements as the database superuser in the test's database.
	asSuper func(t *testing.T, stmts ...string)
	// asAdmin runs statements as the admin (whose password must not have been rotated yet).
	asAdmin func(t *testing.T, stmts ...string)
	// staticUser creates an account with a password, dropped at the end.
	staticUser func(t *testing.T, name, password string)
	// cleanupUser drops an account at the end of the test, if it still exists.
	cleanupUser func(t *testing.T, name string)
	// validUntil reads the account's expiry (PostgreSQL only).
	validUntil func(t *testing.T, name string) (time.Time, bool)
	// accountState reports whether the account exists and may log in: (exists, login allowed).
	accountState func(t *testing.T, name string) (exists, login bool)
}

type dialect struct {
	name  string
	setup func(t *testing.T) env
}

var dialects = []dialect{{"postgresql", postgresEnv}, {"mysql", mysqlEnv}}

// eachDialect runs f against PostgreSQL and MySQL/MariaDB, in parallel.
func eachDialect(t *testing.T, f func(t *testing.T, e env)) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			f(t, d.setup(t))
		})
	}
}

const adminPassword = "vault-managed-2026"

// The lesson's Part 7 statements, verbatim.
const (
	pgReadonly  = `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";`
	pgReadwrite = `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{{name}}";`
	pgRevoke    = `DROP ROLE IF EXISTS "{{name}}";`
)

func postgresEnv(t *testing.T) env {
	db := dbtest.PostgresDB(t)
	admin := dbtest.Name("vault_admin_")
	dbtest.PostgresRole(t, db, admin, adminPassword, "CREATEROLE")
	dbtest.PostgresExec(t, db, `GRANT ALL ON SCHEMA public TO `+admin)
	adminURL := dbtest.PostgresAs(db, admin, adminPassword)
	dbtest.PostgresExec(t, adminURL, `CREATE TABLE users (id int)`, `INSERT INTO users SELECT generate_series(1, 42)`)
	// state reads the role: whether it exists, may log in, and its VALID UNTIL.
	state := func(t *testing.T, name string) (exists, login bool, until time.Time, hasUntil bool) {
		s, err := dbtest.PostgresQuery(context.Background(), db, fmt.Sprintf(
			"SELECT coalesce((SELECT rolcanlogin::text || '|' || coalesce(extract(epoch FROM rolvaliduntil)::bigint::text, '') FROM pg_roles WHERE rolname = '%s'), 'none')", name))
		if err != nil {
			t.Fatal(err)
		}
		if s == "none" {
			return false, false, time.Time{}, false
		}
		canLogin, epoch, _ := strings.Cut(s, "|")
		if epoch == "" {
			return true, canLogin == "true", time.Time{}, false
		}
		sec, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return true, canLogin == "true", time.Unix(sec, 0), true
	}
	return env{
		plugin:        "postgresql-database-plugin",
		connURL:       dbtest.PostgresTemplate(db),
		badURL:        "postgres://{{username}}:{{password}}@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5",
		adminUser:     admin,
		adminPassword: adminPassword,
		readonly:      pgReadonly,
		readwrite:     pgReadwrite,
		revocation:    pgRevoke,
		rotation:      `ALTER USER {{name}} PASSWORD '{{password}}';`,
		login: func(ctx context.Context, user, password, query string) (string, error) {
			return dbtest.PostgresLogin(ctx, db, user, password, query)
		},
		insert: func(ctx context.Context, user, password string) error {
			_, err := dbtest.PostgresLogin(ctx, db, user, password, "WITH i AS (INSERT INTO users VALUES (43) RETURNING id) SELECT count(*) FROM i")
			return err
		},
		hold: func(t *testing.T, user, password string) func() error {
			return dbtest.PostgresSession(t, dbtest.PostgresAs(db, user, password))
		},
		asSuper: func(t *testing.T, stmts ...string) { dbtest.PostgresExec(t, db, stmts...) },
		asAdmin: func(t *testing.T, stmts ...string) { dbtest.PostgresExec(t, adminURL, stmts...) },
		staticUser: func(t *testing.T, name, password string) {
			dbtest.PostgresRole(t, db, name, password, "")
			// PostgreSQL 16 and later let a CREATEROLE admin change only roles it administers.
			dbtest.PostgresExec(t, db, "GRANT "+name+" TO "+admin+" WITH ADMIN OPTION")
		},
		cleanupUser: func(t *testing.T, name string) { dbtest.PostgresCleanupRole(t, db, name) },
		validUntil: func(t *testing.T, name string) (time.Time, bool) {
			_, _, until, ok := state(t, name)
			return until, ok
		},
		accountState: func(t *testing.T, name string) (bool, bool) {
			exists, login, _, _ := state(t, name)
			return exists, login
		},
	}
}

func mysqlEnv(t *testing.T) env {
	dsn, name := dbtest.MySQLDB(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin := dbtest.Name("vadm_")
	dbtest.MySQLExec(t, dsn,
		"CREATE USER '"+admin+"'@'%' IDENTIFIED BY '"+adminPassword+"'",
		"GRANT ALL PRIVILEGES ON *.* TO '"+admin+"'@'%' WITH GRANT OPTION")
	dropUser := func(t *testing.T, user string) {
		t.Cleanup(func() {
			if err := dbtest.MySQLExecContext(context.Background(), dsn, "DROP USER IF EXISTS '"+user+"'@'%'"); err != nil {
				t.Logf("drop user %s: %v", user, err)
			}
		})
	}
	dropUser(t, admin)
	values := make([]string, 42)
	for i := range values {
		values[i] = fmt.Sprintf("(%d)", i+1)
	}
	dbtest.MySQLExec(t, dsn, "CREATE TABLE users (id int)", "INSERT INTO users VALUES "+strings.Join(values, ","))
	adminDSN := dbtest.MySQLAs(dsn, admin, adminPassword)
	// state reads the account: whether it exists and is not locked.
	state := func(t *testing.T, user string) (bool, bool) {
		n, err := dbtest.MySQLQuery(context.Background(), dsn, "SELECT count(*) FROM mysql.user WHERE User = '"+user+"'")
		if err != nil {
			t.Fatal(err)
		}
		if n == "0" {
			return false, false
		}
		create, err := dbtest.MySQLQuery(context.Background(), dsn, "SHOW CREATE USER '"+user+"'@'%'")
		if err != nil && strings.Contains(err.Error(), "Error 1133") {
			return false, false // dropped since the count
		}
		if err != nil {
			t.Fatal(err)
		}
		return true, !strings.Contains(create, "ACCOUNT LOCK")
	}
	return env{
		plugin:        "mysql-database-plugin",
		connURL:       fmt.Sprintf("{{username}}:{{password}}@%s(%s)/%s", cfg.Net, cfg.Addr, name),
		badURL:        "{{username}}:{{password}}@tcp(127.0.0.1:1)/",
		adminUser:     admin,
		adminPassword: adminPassword,
		readonly:      "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON `" + name + "`.* TO '{{name}}'@'%';",
		readwrite:     "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT, INSERT, UPDATE, DELETE ON `" + name + "`.* TO '{{name}}'@'%';",
		revocation:    "DROP USER IF EXISTS '{{name}}'@'%';",
		rotation:      "ALTER USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
		login: func(ctx context.Context, user, password, query string) (string, error) {
			return dbtest.MySQLLogin(ctx, dsn, user, password, query)
		},
		insert: func(ctx context.Context, user, password string) error {
			return dbtest.MySQLExecContext(ctx, dbtest.MySQLAs(dsn, user, password), "INSERT INTO users VALUES (43)")
		},
		hold: func(t *testing.T, user, password string) func() error {
			return dbtest.MySQLSession(t, dbtest.MySQLAs(dsn, user, password))
		},
		asSuper: func(t *testing.T, stmts ...string) { dbtest.MySQLExec(t, dsn, stmts...) },
		asAdmin: func(t *testing.T, stmts ...string) { dbtest.MySQLExec(t, adminDSN, stmts...) },
		staticUser: func(t *testing.T, user, password string) {
			dbtest.MySQLExec(t, dsn, "CREATE USER '"+user+"'@'%' IDENTIFIED BY '"+password+"'", "GRANT SELECT ON `"+name+"`.* TO '"+user+"'@'%'")
			dropUser(t, user)
		},
		cleanupUser: func(t *testing.T, user string) { dropUser(t, user) },
		validUntil:  func(t *testing.T, name string) (time.Time, bool) { return time.Time{}, false },
		accountState: func(t *testing.T, user string) (bool, bool) {
			return state(t, user)
		},
	}
}

// harness plays the pipeline around one backend: it decides with HandleRequest and applies the
// returned events to a real view, in order. No log: the view is what the engine reads.
type harness struct {
	t     *testing.T
	e     env
	view  *dbview.View
	b     *Backend
	mount engines.Mount
	seq   uint64
	reqs  atomic.Int64
}

func newHarness(t *testing.T, e env) *harness {
	h := &harness{t: t, e: e, view: dbview.New(), mount: engines.Mount{Path: "database/", Type: "database",
		UUID: dbtest.Name("mount-"), Accessor: "database_1", DefaultLeaseTTL: 768 * time.Hour, MaxLeaseTTL: 768 * time.Hour}}
	h.b = New(h.view, h.mount, nil)
	t.Cleanup(h.b.Close)
	return h
}

func (h *harness) request(op engines.Operation, path string, data map[string]any) *engines.Request {
	n := h.reqs.Add(1)
	if data == nil {
		data = map[string]any{}
	}
	return &engines.Request{ID: fmt.Sprintf("req-%d", n), Op: op, Path: path, Mount: h.mount, Data: data,
		Caller: &engines.Caller{DisplayName: "token", Accessor: "accessor-1", Policies: []string{"root"}, Root: true},
		Now:    time.Now().UTC()}
}

// decide runs a request without applying its events (an append that failed).
func (h *harness) decide(op engines.Operation, path string, data map[string]any) (*engines.Response, error) {
	ctx := context.Background()
	req := h.request(op, path, data)
	if op == engines.OpUpdate {
		exists, err := h.b.Exists(ctx, req)
		if err != nil {
			return nil, err
		}
		if !exists {
			req.Op = engines.OpCreate
		}
	}
	return h.b.HandleRequest(ctx, req)
}

func (h *harness) do(op engines.Operation, path string, data map[string]any) (*engines.Response, error) {
	resp, err := h.decide(op, path, data)
	if err != nil {
		return nil, err
	}
	h.apply(resp.Events)
	if resp.Secret != nil {
		if u, ok := resp.Data["username"].(string); ok {
			h.e.cleanupUser(h.t, u)
		}
	}
	return resp, nil
}

func (h *harness) apply(events []ledger.Event) {
	h.t.Helper()
	for _, ev := range events {
		h.seq++
		if err := h.view.Apply(ledger.Record{Event: ev, Pos: ledger.Position{Seq: h.seq}}); err != nil {
			h.t.Fatalf("apply %s: %v", ev.Type, err)
		}
	}
}

func (h *harness) ok(op engines.Operation, path string, data map[string]any) *engines.Response {
	h.t.Helper()
	resp, err := h.do(op, path, data)
	if err != nil {
		h.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

// fails expects an error of kind whose message contains each of want.
func (h *harness) fails(op engines.Operation, path string, data map[string]any, kind error, want ...string) string {
	h.t.Helper()
	resp, err := h.do(op, path, data)
	if err == nil {
		h.t.Fatalf("%s %s succeeded (%+v), want %v", op, path, resp, kind)
	}
	if !errors.Is(err, kind) {
		h.t.Fatalf("%s %s: %v, want %v", op, path, err, kind)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			h.t.Fatalf("%s %s: %q does not contain %q", op, path, err, w)
		}
	}
	return err.Error()
}

// configure writes config/production-db for the env's admin, allowing roles.
func (h *harness) configure(roles string) {
	h.ok(engines.OpUpdate, "config/production-db", map[string]any{
		"plugin_name": h.e.plugin, "connection_url": h.e.connURL, "allowed_roles": roles,
		"username": h.e.adminUser, "password": h.e.adminPassword,
	})
}

// lessonRoles writes the lesson's app-readonly and app-readwrite roles.
func (h *harness) lessonRoles() {
	h.ok(engines.OpUpdate, "roles/app-readonly", map[string]any{"db_name": "production-db",
		"creation_statements": h.e.readonly, "revocation_statements": h.e.revocation, "default_ttl": "1h", "max_ttl": "24h"})
	h.ok(engines.OpUpdate, "roles/app-readwrite", map[string]any{"db_name": "production-db",
		"creation_statements": h.e.readwrite, "revocation_statements": h.e.revocation, "default_ttl": "30m", "max_ttl": "4h"})
}

// creds reads creds/role and returns the user, its password and the lease to revoke it with.
func (h *harness) creds(role string) (string, string, engines.Lease) {
	h.t.Helper()
	resp := h.ok(engines.OpRead, "creds/"+role, nil)
	if resp.Secret == nil {
		h.t.Fatal("creds without a Secret")
	}
	now := time.Now()
	l := engines.Lease{ID: "database/creds/" + role + "/" + dbtest.Name(""), Path: "creds/" + role, MountPath: h.mount.Path,
		MountUUID: h.mount.UUID, IssueTime: now, ExpireTime: now.Add(resp.Secret.LeaseDuration), Renewable: resp.Secret.Renewable,
		InternalData: resp.Secret.InternalData}
	return resp.Data["username"].(string), resp.Data["password"].(string), l
}

// loginFails waits up to a second for a login to be refused.
func (h *harness) loginFails(user, password string) {
	h.t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		_, err := h.e.login(context.Background(), user, password, "SELECT 1")
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s still logs in", user)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) loginWorks(user, password, query, want string) {
	h.t.Helper()
	got, err := h.e.login(context.Background(), user, password, query)
	if err != nil {
		h.t.Fatalf("login as %s: %v", user, err)
	}
	if want != "" && got != want {
		h.t.Fatalf("%s as %s = %q, want %q", query, user, got, want)
	}
}
