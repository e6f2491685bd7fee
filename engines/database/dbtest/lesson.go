package dbtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// The lesson's Part 7 figures.
const (
	LessonAdminPassword  = "vault-managed-2026" // the admin password the lesson types
	LessonUsers          = 42857                // rows of the lesson's users table
	LessonLeakedPassword = "prod-db-2024!"      // the leaked password of the lesson's app_user
)

// The lesson's Part 7 role statements for PostgreSQL, verbatim as the shell hands them over
// (the line continuations joined).
const (
	LessonPostgresReadonly   = `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";`
	LessonPostgresReadwrite  = `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{{name}}";`
	LessonPostgresRevocation = `DROP ROLE IF EXISTS "{{name}}";`
)

// Lesson is a database prepared as the lesson's Part 7 finds it after Step 1: an admin account
// made the lesson's way (PostgreSQL: LOGIN CREATEROLE with ALL on schema public; MySQL: every
// privilege WITH GRANT OPTION) whose password is LessonAdminPassword, owning a users table of
// LessonUsers rows. Account names are unique (database servers are shared between test
// binaries); everything is dropped when the test ends.
type Lesson struct {
	Plugin        string // plugin_name
	ConnectionURL string // with {{username}} and {{password}}, to the lesson's database
	AdminUser     string
	AdminPassword string
	// The roles' statements in this database's dialect: the lesson's own for PostgreSQL.
	Readonly, Readwrite, Revocation string
	// Super is the superuser's URL (PostgreSQL) or DSN (MySQL) to the lesson's database.
	Super string

	mysql bool
}

// LessonPostgres prepares the lesson in a database of the test's PostgreSQL.
func LessonPostgres(t testing.TB) *Lesson {
	t.Helper()
	db := PostgresDB(t)
	admin := Name("vault_admin_")
	PostgresExec(t, db,
		"CREATE ROLE "+admin+" WITH LOGIN PASSWORD '"+LessonAdminPassword+"' CREATEROLE",
		"GRANT ALL ON SCHEMA public TO "+admin)
	PostgresCleanupRole(t, db, admin)
	PostgresExec(t, PostgresAs(db, admin, LessonAdminPassword),
		"CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL)",
		fmt.Sprintf("INSERT INTO users SELECT g, 'user' || g || '@example.com' FROM generate_series(1, %d) g", LessonUsers))
	return &Lesson{
		Plugin: "postgresql-database-plugin", ConnectionURL: PostgresTemplate(db),
		AdminUser: admin, AdminPassword: LessonAdminPassword,
		Readonly: LessonPostgresReadonly, Readwrite: LessonPostgresReadwrite, Revocation: LessonPostgresRevocation,
		Super: db,
	}
}

// LessonMySQL prepares the lesson in a database of the test's MySQL or MariaDB, with the
// MySQL equivalents of the lesson's statements (MySQL accounts have no VALID UNTIL).
func LessonMySQL(t testing.TB) *Lesson {
	t.Helper()
	dsn, name := MySQLDB(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("dbtest: bad MySQL DSN: %v", err)
	}
	admin := Name("vadm_")
	MySQLExec(t, dsn,
		"CREATE USER '"+admin+"'@'%' IDENTIFIED BY '"+LessonAdminPassword+"'",
		"GRANT ALL PRIVILEGES ON *.* TO '"+admin+"'@'%' WITH GRANT OPTION")
	l := &Lesson{
		Plugin:        "mysql-database-plugin",
		ConnectionURL: fmt.Sprintf("{{username}}:{{password}}@%s(%s)/%s", cfg.Net, cfg.Addr, name),
		AdminUser:     admin, AdminPassword: LessonAdminPassword,
		Readonly:   "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON `" + name + "`.* TO '{{name}}'@'%';",
		Readwrite:  "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT, INSERT, UPDATE, DELETE ON `" + name + "`.* TO '{{name}}'@'%';",
		Revocation: "DROP USER IF EXISTS '{{name}}'@'%';",
		Super:      dsn,
		mysql:      true,
	}
	l.CleanupUser(t, admin)
	values := make([]string, 0, LessonUsers)
	for i := 1; i <= LessonUsers; i++ {
		values = append(values, fmt.Sprintf("(%d,'user%d@example.com')", i, i))
	}
	MySQLExec(t, dsn, "CREATE TABLE users (id int PRIMARY KEY, email varchar(64) NOT NULL)",
		"INSERT INTO users VALUES "+strings.Join(values, ","))
	return l
}

// IsMySQL reports whether the lesson runs on MySQL or MariaDB.
func (l *Lesson) IsMySQL() bool { return l.mysql }

// Login connects as user with password, runs query and returns the first value.
func (l *Lesson) Login(ctx context.Context, user, password, query string) (string, error) {
	if l.mysql {
		return MySQLLogin(ctx, l.Super, user, password, query)
	}
	return PostgresLogin(ctx, l.Super, user, password, query)
}

// Insert adds a row to users as user.
func (l *Lesson) Insert(ctx context.Context, user, password string) error {
	if l.mysql {
		return MySQLExecContext(ctx, MySQLAs(l.Super, user, password), "INSERT INTO users VALUES (0, 'intruder@example.com')")
	}
	_, err := PostgresLogin(ctx, l.Super, user, password,
		"WITH i AS (INSERT INTO users VALUES (0, 'intruder@example.com') RETURNING id) SELECT count(*) FROM i")
	return err
}

// Exec runs statements as the superuser in the lesson's database.
func (l *Lesson) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	if l.mysql {
		MySQLExec(t, l.Super, stmts...)
		return
	}
	PostgresExec(t, l.Super, stmts...)
}

// Account reports whether the account exists and whether it has the right to log in: the LOGIN
// attribute of a PostgreSQL role (NOLOGIN: false), an unlocked MySQL account.
func (l *Lesson) Account(t testing.TB, user string) (exists, canLogin bool) {
	t.Helper()
	ctx := context.Background()
	if l.mysql {
		n, err := MySQLQuery(ctx, l.Super, "SELECT count(*) FROM mysql.user WHERE User = "+mysqlLiteral(user))
		if err != nil {
			t.Fatalf("dbtest: look up %s: %v", user, err)
		}
		if n == "0" {
			return false, false
		}
		create, err := MySQLQuery(ctx, l.Super, "SHOW CREATE USER "+mysqlLiteral(user)+"@'%'")
		if err != nil && strings.Contains(err.Error(), "Error 1133") {
			// Dropped between the count and this look-up (a revocation running meanwhile): gone.
			return false, false
		}
		if err != nil {
			t.Fatalf("dbtest: look up %s: %v", user, err)
		}
		return true, !strings.Contains(create, "ACCOUNT LOCK")
	}
	s, err := PostgresQuery(ctx, l.Super, "SELECT coalesce((SELECT rolcanlogin::text FROM pg_catalog.pg_roles WHERE rolname = "+pgLiteral(user)+"), 'none')")
	if err != nil {
		t.Fatalf("dbtest: look up %s: %v", user, err)
	}
	return s != "none", s == "true"
}

// pgCanLogin is true for a pg_authid row the server would let log in with a password.
const pgCanLogin = "rolcanlogin AND rolpassword IS NOT NULL AND (rolvaliduntil IS NULL OR rolvaliduntil > now())"

// LoginRoles counts the PostgreSQL roles whose name starts with prefix and that the server
// would let log in now: LOGIN, a password, and a VALID UNTIL not passed.
func (l *Lesson) LoginRoles(t testing.TB, prefix string) int {
	t.Helper()
	if l.mysql {
		t.Fatal("dbtest: LoginRoles is for PostgreSQL")
	}
	s, err := PostgresQuery(context.Background(), l.Super,
		"SELECT count(*) FROM pg_catalog.pg_authid WHERE starts_with(rolname::text, "+pgLiteral(prefix)+") AND "+pgCanLogin)
	if err != nil {
		t.Fatalf("dbtest: count roles: %v", err)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("dbtest: count roles: %q", s)
	}
	return n
}

// Roles counts the PostgreSQL roles whose name starts with prefix.
func (l *Lesson) Roles(t testing.TB, prefix string) int {
	t.Helper()
	if l.mysql {
		t.Fatal("dbtest: Roles is for PostgreSQL")
	}
	s, err := PostgresQuery(context.Background(), l.Super,
		"SELECT count(*) FROM pg_catalog.pg_roles WHERE starts_with(rolname::text, "+pgLiteral(prefix)+")")
	if err != nil {
		t.Fatalf("dbtest: count roles: %v", err)
	}
	n, _ := strconv.Atoi(s)
	return n
}

// Users counts the accounts (MySQL) or roles (PostgreSQL) whose name starts with prefix.
func (l *Lesson) Users(t testing.TB, prefix string) int {
	t.Helper()
	if !l.mysql {
		return l.Roles(t, prefix)
	}
	s, err := MySQLQuery(context.Background(), l.Super,
		"SELECT count(*) FROM mysql.user WHERE LEFT(User, CHAR_LENGTH("+mysqlLiteral(prefix)+")) = "+mysqlLiteral(prefix))
	if err != nil {
		t.Fatalf("dbtest: count users: %v", err)
	}
	n, _ := strconv.Atoi(s)
	return n
}

// ValidUntil reads a PostgreSQL role's VALID UNTIL (false: none, or a MySQL lesson).
func (l *Lesson) ValidUntil(t testing.TB, user string) (time.Time, bool) {
	t.Helper()
	if l.mysql {
		return time.Time{}, false
	}
	s, err := PostgresQuery(context.Background(), l.Super,
		"SELECT coalesce(extract(epoch FROM rolvaliduntil)::bigint::text, '') FROM pg_catalog.pg_roles WHERE rolname = "+pgLiteral(user))
	if err != nil {
		t.Fatalf("dbtest: VALID UNTIL of %s: %v", user, err)
	}
	if s == "" {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("dbtest: VALID UNTIL of %s: %q", user, s)
	}
	return time.Unix(sec, 0), true
}

// StaticUser creates an existing application account, as the lesson's app_user, with password
// and SELECT on users, that the admin may manage; it is dropped when the test ends.
func (l *Lesson) StaticUser(t testing.TB, user, password string) {
	t.Helper()
	if l.mysql {
		dsn, err := mysql.ParseDSN(l.Super)
		if err != nil {
			t.Fatal(err)
		}
		MySQLExec(t, l.Super, "CREATE USER "+mysqlLiteral(user)+"@'%' IDENTIFIED BY "+mysqlLiteral(password),
			"GRANT SELECT ON `"+dsn.DBName+"`.* TO "+mysqlLiteral(user)+"@'%'")
		l.CleanupUser(t, user)
		return
	}
	q := pgx.Identifier{user}.Sanitize()
	PostgresRole(t, l.Super, user, password, "")
	// PostgreSQL 16 and later let a CREATEROLE admin manage only the roles it administers.
	PostgresExec(t, l.Super, "GRANT SELECT ON users TO "+q, "GRANT "+q+" TO "+pgx.Identifier{l.AdminUser}.Sanitize()+" WITH ADMIN OPTION")
}

// CleanupUser drops the account, if it still exists, when the test ends: the users Ledger
// creates outlive a test that fails before revoking them.
func (l *Lesson) CleanupUser(t testing.TB, user string) {
	if !l.mysql {
		PostgresCleanupRole(t, l.Super, user)
		return
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := mysqlExec(ctx, l.Super, "DROP USER IF EXISTS "+mysqlLiteral(user)+"@'%'"); err != nil {
			t.Logf("dbtest: drop user %s: %v", user, err)
		}
	})
}

func mysqlLiteral(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}
