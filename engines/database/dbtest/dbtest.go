// Package dbtest gives tests real databases: a PostgreSQL (LEDGER_TEST_POSTGRES_URL, else a
// private server started from the installed binaries, one per test binary) and a MySQL or
// MariaDB (LEDGER_TEST_MYSQL_URL, else root on 127.0.0.1:3306). Each test gets a database of
// its own. When no database can be had, tests are skipped — unless CI=true, where they fail.
//
// A package that uses the private PostgreSQL stops it at the end with
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
//
// Without it the server still dies with the test binary (it is started with a parent-death
// signal), leaving only its temporary directory behind.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// Environment variables.
const (
	EnvPostgresURL = "LEDGER_TEST_POSTGRES_URL" // admin URL of a PostgreSQL to use instead
	EnvMySQLURL    = "LEDGER_TEST_MYSQL_URL"    // admin DSN of a MySQL/MariaDB
	DefaultMySQL   = "root:@tcp(127.0.0.1:3306)/"
)

// unavailable skips the test, or fails it under CI=true, where a missing database is a broken
// pipeline rather than a developer machine without one.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("dbtest: %s (CI=true: a database is required)", msg)
	}
	t.Skipf("dbtest: %s", msg)
}

// Name returns prefix followed by 12 random hex digits: unique names for databases and roles.
func Name(prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("dbtest: crypto/rand unavailable")
	}
	return prefix + hex.EncodeToString(b[:])
}

// --- PostgreSQL ---

var pg struct {
	once sync.Once
	srv  *pgServer
	url  string
	err  error
}

// PostgresURL returns the URL of a PostgreSQL superuser: LEDGER_TEST_POSTGRES_URL, else the
// private server (started on first use; a few seconds).
func PostgresURL(t testing.TB) string {
	t.Helper()
	pg.once.Do(func() {
		if u := os.Getenv(EnvPostgresURL); u != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			pg.url, pg.err = u, pgExec(ctx, u, "SELECT 1")
			return
		}
		pg.srv, pg.url, pg.err = startPostgres()
	})
	if pg.err != nil {
		unavailable(t, "no PostgreSQL: %v", pg.err)
	}
	return pg.url
}

// PostgresDB creates a database for this test and returns the superuser's URL to it. The
// database is dropped (its sessions ended) when the test ends.
func PostgresDB(t testing.TB) string {
	t.Helper()
	admin := PostgresURL(t)
	name := Name("t_")
	PostgresExec(t, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pgExec(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("dbtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("dbtest: %s is not a URL: %v", EnvPostgresURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// PostgresRole creates a login role in the cluster (attrs such as "CREATEROLE" appended) and
// drops it, with what it owns and was granted in dbURL's database, when the test ends.
func PostgresRole(t testing.TB, dbURL, name, password, attrs string) {
	t.Helper()
	q := pgx.Identifier{name}.Sanitize()
	PostgresExec(t, dbURL, "CREATE ROLE "+q+" WITH LOGIN PASSWORD '"+strings.ReplaceAll(password, "'", "''")+"' "+attrs)
	PostgresCleanupRole(t, dbURL, name)
}

// PostgresCleanupRole drops the role (if it exists), with what it owns and was granted in
// dbURL's database, when the test ends.
func PostgresCleanupRole(t testing.TB, dbURL, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := pgx.Identifier{name}.Sanitize()
		_ = pgExec(ctx, dbURL, "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "+pgLiteral(name)+") THEN "+
			"EXECUTE 'REASSIGN OWNED BY "+strings.ReplaceAll(q, "'", "''")+" TO CURRENT_USER'; "+
			"EXECUTE 'DROP OWNED BY "+strings.ReplaceAll(q, "'", "''")+"'; END IF; END $$")
		if err := pgExec(ctx, dbURL, "DROP ROLE IF EXISTS "+q); err != nil {
			t.Logf("dbtest: drop role %s: %v", name, err)
		}
	})
}

func pgLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// PostgresTemplate turns a connection URL into Vault's templated form: its user-info becomes
// {{username}}:{{password}}.
func PostgresTemplate(connURL string) string {
	u, err := url.Parse(connURL)
	if err != nil {
		return connURL
	}
	u.User = nil
	rest := strings.TrimPrefix(u.String(), u.Scheme+"://")
	return u.Scheme + "://{{username}}:{{password}}@" + rest
}

// PostgresExec runs statements on one connection, failing the test on an error.
func PostgresExec(t testing.TB, connURL string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pgExec(ctx, connURL, stmts...); err != nil {
		t.Fatal(err)
	}
}

func pgExec(ctx context.Context, connURL string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// PostgresAs returns connURL with another user and password.
func PostgresAs(connURL, username, password string) string {
	u, err := url.Parse(connURL)
	if err != nil {
		return connURL
	}
	u.User = url.UserPassword(username, password)
	return u.String()
}

// PostgresLogin connects as username with password, runs query and returns the first column
// of its first row as text (nil error: the login works and the query is allowed).
func PostgresLogin(ctx context.Context, connURL, username, password, query string) (string, error) {
	return PostgresQuery(ctx, PostgresAs(connURL, username, password), query)
}

// PostgresQuery connects with connURL, runs query and returns the first column of its first
// row as text ("" for NULL).
func PostgresQuery(ctx context.Context, connURL, query string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var out any
	if err := conn.QueryRow(ctx, query).Scan(&out); err != nil {
		return "", err
	}
	if out == nil {
		return "", nil
	}
	return fmt.Sprint(out), nil
}

// PostgresSession opens a session with connURL and returns a function that runs a query on
// that very session, to see whether it survives. The session is closed when the test ends.
func PostgresSession(t testing.TB, connURL string) func() error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		t.Fatalf("dbtest: open session: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := conn.Exec(ctx, "SELECT 1")
		return err
	}
}

// pgServer is a private PostgreSQL in a temporary directory.
type pgServer struct {
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the server process has exited
}

// Main runs the package's tests, then stops the private PostgreSQL if one was started.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the private PostgreSQL (if started) and removes its directory.
func Stop() {
	if pg.srv != nil {
		pg.srv.stop()
	}
}

// findBin locates the directory of initdb and postgres: the newest /usr/lib/postgresql/*/bin,
// else $PATH.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("initdb not found under /usr/lib/postgresql/*/bin nor in $PATH")
}

// asPostgres returns the credentials to run the server with: initdb refuses root, so as root
// the server runs as the "postgres" OS user; otherwise as ourselves.
func asPostgres() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and no postgres OS user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startPostgres() (*pgServer, string, error) {
	bin, err := findBin()
	if err != nil {
		return nil, "", err
	}
	cred, err := asPostgres()
	if err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp("", "ledger-pg-")
	if err != nil {
		return nil, "", err
	}
	fail := func(err error) (*pgServer, string, error) {
		os.RemoveAll(dir)
		return nil, "", err
	}
	password := Name("pw-")
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return fail(err)
	}
	if cred != nil {
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return fail(err)
			}
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--pwfile="+pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, strings.TrimSpace(string(out))))
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		srv, err := launch(bin, dir, data, port, cred)
		if err != nil {
			lastErr = err
			continue
		}
		u := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", password, port)
		if err := srv.waitReady(u); err != nil {
			srv.kill()
			lastErr = err
			continue
		}
		return srv, u, nil
	}
	return fail(lastErr)
}

// launch starts postgres on port. The process is started from a goroutine locked to its OS
// thread, which stays blocked in Wait for the server's life: the parent-death signal is tied
// to that thread, so the server is stopped when the test binary dies, and only then.
func launch(bin, dir, data string, port int, cred *syscall.Credential) (*pgServer, error) {
	logf, err := os.OpenFile(filepath.Join(dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "log_min_messages=warning")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGINT}
	srv := &pgServer{dir: dir, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer logf.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			close(srv.done)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(srv.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	return srv, nil
}

func (s *pgServer) waitReady(u string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, u)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			return fmt.Errorf("postgres exited: %s", strings.TrimSpace(string(log)))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after 60s: %w", err)
		}
	}
}

func (s *pgServer) kill() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-s.done
}

func (s *pgServer) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			s.kill()
		}
	}
	os.RemoveAll(s.dir)
}

// --- MySQL / MariaDB ---

var my struct {
	once sync.Once
	err  error
}

// MySQLURL returns an admin DSN: LEDGER_TEST_MYSQL_URL, else root on 127.0.0.1:3306.
func MySQLURL(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvMySQLURL)
	if dsn == "" {
		dsn = DefaultMySQL
	}
	my.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		my.err = mysqlExec(ctx, dsn, "SELECT 1")
	})
	if my.err != nil {
		unavailable(t, "no MySQL at %s: %v", redactDSN(dsn), my.err)
	}
	return dsn
}

func redactDSN(dsn string) string {
	if c, err := mysql.ParseDSN(dsn); err == nil && c.Passwd != "" {
		c.Passwd = "****"
		return c.FormatDSN()
	}
	return dsn
}

// MySQLDB creates a database for this test and returns (admin DSN to it, its name). The
// database is dropped when the test ends.
func MySQLDB(t testing.TB) (string, string) {
	t.Helper()
	admin := MySQLURL(t)
	name := Name("t_")
	MySQLExec(t, admin, "CREATE DATABASE `"+name+"`")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := mysqlExec(ctx, admin, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Logf("dbtest: drop database %s: %v", name, err)
		}
	})
	c, err := mysql.ParseDSN(admin)
	if err != nil {
		t.Fatalf("dbtest: bad MySQL DSN: %v", err)
	}
	c.DBName = name
	return c.FormatDSN(), name
}

// MySQLExec runs statements on one connection, failing the test on an error.
func MySQLExec(t testing.TB, dsn string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mysqlExec(ctx, dsn, stmts...); err != nil {
		t.Fatal(err)
	}
}

func mysqlExec(ctx context.Context, dsn string, stmts ...string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// MySQLAs returns dsn with another user and password.
func MySQLAs(dsn, username, password string) string {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return dsn
	}
	c.User, c.Passwd = username, password
	return c.FormatDSN()
}

// MySQLLogin connects as username with password, runs query and returns the first column of
// its first row as text.
func MySQLLogin(ctx context.Context, dsn, username, password, query string) (string, error) {
	return MySQLQuery(ctx, MySQLAs(dsn, username, password), query)
}

// MySQLQuery connects with dsn, runs query and returns the first column of its first row as
// text ("" for NULL).
func MySQLQuery(ctx context.Context, dsn, query string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var s sql.NullString
	if err := db.QueryRowContext(ctx, query).Scan(&s); err != nil {
		return "", err
	}
	return s.String, nil
}

// MySQLExecContext runs statements on one connection.
func MySQLExecContext(ctx context.Context, dsn string, stmts ...string) error {
	return mysqlExec(ctx, dsn, stmts...)
}

// MySQLSession opens a session with dsn and returns a function that runs a query on that very
// session, to see whether it survives. The session is closed when the test ends.
func MySQLSession(t testing.TB, dsn string) func() error {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("dbtest: open session: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		t.Fatalf("dbtest: open session: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		db.Close()
	})
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := conn.ExecContext(ctx, "SELECT 1")
		return err
	}
}
