package main

// The lesson's Part 7 (dynamic database secrets), run with the ledger CLI in-process against a
// dev server and a real database: the test's private PostgreSQL and the MariaDB (or MySQL) at
// 127.0.0.1:3306, each prepared by dbtest as the lesson's Step 1 leaves it.

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

func TestMain(m *testing.M) {
	runMainIfAsked()
	dbtest.Main(m)
}

// dbLessons are the databases every lesson test runs against.
var dbLessons = []struct {
	name  string
	setup func(testing.TB) *dbtest.Lesson
}{{"postgresql", dbtest.LessonPostgres}, {"mysql", dbtest.LessonMySQL}}

// eachDB runs f once per database, in parallel.
func eachDB(t *testing.T, f func(t *testing.T, l *dbtest.Lesson)) {
	for _, d := range dbLessons {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			f(t, d.setup(t))
		})
	}
}

// dbLessonCLI is the lesson's Steps 2 and 3 typed at the CLI: the engine enabled, production-db
// configured with the admin's typed password and its root rotated, and the two roles with the
// lesson's statements and TTLs.
func dbLessonCLI(t *testing.T, l *dbtest.Lesson) *cli {
	t.Helper()
	c := newCLI(t)
	if out := c.ok("secrets", "enable", "database"); !strings.Contains(out, "Success! Enabled the database secrets engine at: database/") {
		t.Fatalf("secrets enable database printed %q", out)
	}
	c.ok("write", "database/config/production-db",
		"plugin_name="+l.Plugin,
		"connection_url="+l.ConnectionURL,
		"allowed_roles=app-readonly,app-readwrite",
		"username="+l.AdminUser,
		"password="+l.AdminPassword)
	c.ok("write", "-f", "database/rotate-root/production-db")
	c.ok("write", "database/roles/app-readonly",
		"db_name=production-db",
		"creation_statements="+l.Readonly,
		"revocation_statements="+l.Revocation,
		"default_ttl=1h",
		"max_ttl=24h")
	c.ok("write", "database/roles/app-readwrite",
		"db_name=production-db",
		"creation_statements="+l.Readwrite,
		"revocation_statements="+l.Revocation,
		"default_ttl=30m",
		"max_ttl=4h")
	return c
}

// dbAllowRoles adds roles to production-db's allowed_roles (the lesson's two stay).
func dbAllowRoles(c *cli, roles ...string) {
	c.t.Helper()
	c.ok("write", "database/config/production-db", "allowed_roles=app-readonly,app-readwrite,"+strings.Join(roles, ","))
}

// dbCred is one credential read from database/creds/<role>.
type dbCred struct {
	leaseID, duration, username, password string
}

var dbRowRE = regexp.MustCompile(`(?m)^(\S+)\s+(.*?)\s*$`)

// dbRows reads a Key/Value table.
func dbRows(table string) map[string]string {
	out := map[string]string{}
	for _, m := range dbRowRE.FindAllStringSubmatch(table, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// dbReadCreds runs `ledger read database/creds/<role>` and parses the lesson's table; the user is
// dropped at the end of the test if it still exists.
func dbReadCreds(t *testing.T, c *cli, l *dbtest.Lesson, role string) dbCred {
	t.Helper()
	r := dbRows(c.ok("read", "database/creds/"+role))
	cr := dbCred{leaseID: r["lease_id"], duration: r["lease_duration"], username: r["username"], password: r["password"]}
	if !strings.HasPrefix(cr.leaseID, "database/creds/"+role+"/") || cr.username == "" || cr.password == "" || cr.duration == "" {
		t.Fatalf("read database/creds/%s: want lease_id, lease_duration, username and password, got %q", role, r)
	}
	l.CleanupUser(t, cr.username)
	if !strings.HasPrefix(cr.username, "v-") {
		t.Errorf("username %q lacks Ledger's v- prefix", cr.username)
	}
	return cr
}

// dbPoll polls cond every 50 ms until it holds or d has passed.
func dbPoll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dbDead asserts that, within d, the credential no longer logs in and its account is gone or may
// not log in.
func dbDead(t *testing.T, l *dbtest.Lesson, cr dbCred, d time.Duration) {
	t.Helper()
	ok := dbPoll(d, func() bool {
		if _, err := l.Login(context.Background(), cr.username, cr.password, "SELECT 1"); err == nil {
			return false
		}
		_, canLogin := l.Account(t, cr.username)
		return !canLogin
	})
	if !ok {
		exists, canLogin := l.Account(t, cr.username)
		t.Fatalf("%s: not dead within %s (account exists=%v, may log in=%v)", cr.username, d, exists, canLogin)
	}
}

// dbCountUsers runs the lesson's query as the credential.
func dbCountUsers(t *testing.T, l *dbtest.Lesson, cr dbCred) {
	t.Helper()
	got, err := l.Login(context.Background(), cr.username, cr.password, "SELECT count(*) FROM users")
	if err != nil {
		t.Fatalf("SELECT count(*) FROM users as %s: %v", cr.username, err)
	}
	if got != "42857" {
		t.Fatalf("SELECT count(*) FROM users as %s = %s, want 42857", cr.username, got)
	}
}

// dbLeaseKeys lists sys/leases/lookup/<prefix> (none: Vault's exit 2, "No value found").
func dbLeaseKeys(t *testing.T, c *cli, prefix string) []string {
	t.Helper()
	r := c.run("list", "-format=json", "sys/leases/lookup/"+prefix)
	if r.code == 2 && strings.Contains(r.stderr, "No value found") {
		return nil
	}
	if r.code != 0 {
		t.Fatalf("list sys/leases/lookup/%s: %s", prefix, r)
	}
	var keys []string
	for _, line := range strings.Split(strings.Trim(strings.TrimSpace(r.stdout), "[]"), ",") {
		if k := strings.Trim(strings.TrimSpace(line), `"`); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// dbLeaseExpiry reads a lease's expire_time with `ledger lease lookup`.
func dbLeaseExpiry(t *testing.T, c *cli, id string) time.Time {
	t.Helper()
	m := decodeJSON(t, c.ok("lease", "lookup", "-format=json", id))
	s, _ := mapOf(m["data"])["expire_time"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("lease lookup %s: expire_time %q: %v", id, s, err)
	}
	return at
}

// dbNear reports whether got is within slack of want.
func dbNear(got, want time.Time, slack time.Duration) bool {
	d := got.Sub(want)
	return d > -slack && d < slack
}

// TestE2EDatabaseLesson is Part 7 as the lesson types it, with `ledger` for `vault`: the admin
// password typed once and rotated away, the two roles with the lesson's statements, creds that
// work for SELECT and not for INSERT, then Step 5: renew (VALID UNTIL follows; max_ttl caps with
// a warning), revoke, and revoke -prefix.
func TestE2EDatabaseLesson(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, l *dbtest.Lesson) {
		ctx := context.Background()
		if _, err := l.Login(ctx, l.AdminUser, l.AdminPassword, "SELECT 1"); err != nil {
			t.Fatalf("the admin's typed password should work before rotate-root: %v", err)
		}
		c := dbLessonCLI(t, l)
		if _, err := l.Login(ctx, l.AdminUser, l.AdminPassword, "SELECT 1"); err == nil {
			t.Fatal("after rotate-root the typed admin password still logs in")
		}

		// Step 4.
		issued := time.Now()
		ro := dbReadCreds(t, c, l, "app-readonly")
		if ro.duration != "1h" {
			t.Errorf("lease_duration = %q, want 1h", ro.duration)
		}
		dbCountUsers(t, l, ro)
		if err := l.Insert(ctx, ro.username, ro.password); err == nil {
			t.Error("app-readonly credential could INSERT")
		}
		rw := dbReadCreds(t, c, l, "app-readwrite")
		if rw.duration != "30m" {
			t.Errorf("app-readwrite lease_duration = %q, want 30m", rw.duration)
		}
		if err := l.Insert(ctx, rw.username, rw.password); err != nil {
			t.Errorf("app-readwrite credential cannot INSERT: %v", err)
		}
		l.Exec(t, "DELETE FROM users WHERE id = 0") // back to the lesson's 42857
		if until, ok := l.ValidUntil(t, ro.username); !l.IsMySQL() && (!ok || !dbNear(until, issued.Add(time.Hour), 30*time.Second)) {
			t.Errorf("VALID UNTIL = %v (set %v), want about %v", until, ok, issued.Add(time.Hour))
		}

		// Step 5: renew. The increment counts from now, as Vault's does; VALID UNTIL follows.
		for _, inc := range []struct {
			flag string
			d    time.Duration
		}{{"30m", 30 * time.Minute}, {"2h", 2 * time.Hour}} {
			before := time.Now()
			r := dbRows(c.ok("lease", "renew", "-increment="+inc.flag, ro.leaseID))
			if r["lease_id"] != ro.leaseID || r["lease_duration"] != inc.flag {
				t.Errorf("lease renew -increment=%s: lease_id %q, lease_duration %q", inc.flag, r["lease_id"], r["lease_duration"])
			}
			if at := dbLeaseExpiry(t, c, ro.leaseID); !dbNear(at, before.Add(inc.d), 30*time.Second) {
				t.Errorf("after renew -increment=%s the lease expires at %v, want about %v", inc.flag, at, before.Add(inc.d))
			}
			if until, ok := l.ValidUntil(t, ro.username); !l.IsMySQL() && (!ok || !dbNear(until, before.Add(inc.d), 30*time.Second)) {
				t.Errorf("after renew -increment=%s VALID UNTIL = %v, want about %v", inc.flag, until, before.Add(inc.d))
			}
		}
		// Past max_ttl (24h from issue): capped, with the server's warning printed.
		r := c.run("lease", "renew", "-increment=48h", ro.leaseID)
		if r.code != 0 || !strings.Contains(r.stderr, "WARNING!") || !strings.Contains(r.stderr, "capped") {
			t.Errorf("renew past max_ttl: want success with a capping warning, got %s", r)
		}
		maxExpire := issued.Add(24 * time.Hour)
		if at := dbLeaseExpiry(t, c, ro.leaseID); !dbNear(at, maxExpire, 30*time.Second) {
			t.Errorf("renew past max_ttl: lease expires at %v, want about %v", at, maxExpire)
		}
		if until, ok := l.ValidUntil(t, ro.username); !l.IsMySQL() && (!ok || !dbNear(until, maxExpire, 30*time.Second)) {
			t.Errorf("renew past max_ttl: VALID UNTIL = %v, want about %v", until, maxExpire)
		}
		dbCountUsers(t, l, ro)

		// Revoke one lease (queued, as Vault's CLI does without -sync): dead within a second.
		if out := c.ok("lease", "revoke", ro.leaseID); !strings.Contains(out, "All revocation operations queued successfully!") {
			t.Errorf("lease revoke printed %q", out)
		}
		dbDead(t, l, ro, time.Second)
		if !dbPoll(2*time.Second, func() bool { return len(dbLeaseKeys(t, c, "database/creds/app-readonly/")) == 0 }) {
			t.Fatalf("the revoked lease is still listed: %q", dbLeaseKeys(t, c, "database/creds/app-readonly/"))
		}
		dbCountUsers(t, l, rw)

		// Nuclear option: every credential of app-readonly, and only those: not those of a role
		// whose name merely starts the same.
		dbAllowRoles(c, "app-readonly-batch")
		c.ok("write", "database/roles/app-readonly-batch",
			"db_name=production-db",
			"creation_statements="+l.Readonly,
			"revocation_statements="+l.Revocation,
			"default_ttl=1h",
			"max_ttl=24h")
		sibling := dbReadCreds(t, c, l, "app-readonly-batch")
		var batch []dbCred
		for range 3 {
			cr := dbReadCreds(t, c, l, "app-readonly")
			dbCountUsers(t, l, cr)
			batch = append(batch, cr)
		}
		if n := len(dbLeaseKeys(t, c, "database/creds/app-readonly/")); n != 3 {
			t.Fatalf("%d app-readonly leases before revoke -prefix, want 3", n)
		}
		if out := c.ok("lease", "revoke", "-prefix", "database/creds/app-readonly/"); !strings.Contains(out, "All revocation operations queued successfully!") {
			t.Errorf("lease revoke -prefix printed %q", out)
		}
		for _, cr := range batch {
			dbDead(t, l, cr, time.Second)
		}
		if keys := dbLeaseKeys(t, c, "database/creds/app-readonly/"); len(keys) != 0 {
			t.Errorf("leases left under database/creds/app-readonly/: %q", keys)
		}
		for _, role := range []struct {
			name string
			cr   dbCred
		}{{"app-readwrite", rw}, {"app-readonly-batch", sibling}} {
			dbCountUsers(t, l, role.cr)
			if keys := dbLeaseKeys(t, c, "database/creds/"+role.name+"/"); len(keys) != 1 {
				t.Errorf("%s leases after revoking app-readonly's: %q, want 1", role.name, keys)
			}
		}
	})
}

// TestE2EDatabaseExpiry: a credential whose lease ends is dropped by the expiration manager, with
// no request to prompt it.
func TestE2EDatabaseExpiry(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, l *dbtest.Lesson) {
		c := dbLessonCLI(t, l)
		dbAllowRoles(c, "short-lived")
		c.ok("write", "database/roles/short-lived",
			"db_name=production-db",
			"creation_statements="+l.Readonly,
			"revocation_statements="+l.Revocation,
			"default_ttl=2s",
			"max_ttl=1h")
		cr := dbReadCreds(t, c, l, "short-lived")
		expires := time.Now().Add(2 * time.Second)
		if cr.duration != "2s" {
			t.Errorf("lease_duration = %q, want 2s", cr.duration)
		}
		dbCountUsers(t, l, cr)
		// Only the database is watched from here on: nothing asks Ledger anything.
		if !dbPoll(time.Until(expires)+10*time.Second, func() bool {
			exists, _ := l.Account(t, cr.username)
			return !exists
		}) {
			exists, canLogin := l.Account(t, cr.username)
			t.Fatalf("%s still exists 10s after its lease expired (may log in: %v)", cr.username, canLogin && exists)
		}
		if _, err := l.Login(context.Background(), cr.username, cr.password, "SELECT 1"); err == nil {
			t.Fatal("an expired credential logs in")
		}
		// The user is dropped first, then the lease's end is committed: give that a moment.
		var keys []string
		if !dbPoll(10*time.Second, func() bool {
			keys = dbLeaseKeys(t, c, "database/creds/short-lived/")
			return len(keys) == 0
		}) {
			t.Errorf("expired lease still listed 10s after its user was dropped: %q", keys)
		}
	})
}

// TestE2EDatabaseStaticRole: the leaked password of the lesson's app_user stops working the
// moment a static role takes the account over; static-creds hands out the one that works.
func TestE2EDatabaseStaticRole(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, l *dbtest.Lesson) {
		ctx := context.Background()
		c := dbLessonCLI(t, l)
		dbAllowRoles(c, "app-user")
		appUser := dbtest.Name("app_user_")
		l.StaticUser(t, appUser, dbtest.LessonLeakedPassword)
		dbCountUsers(t, l, dbCred{username: appUser, password: dbtest.LessonLeakedPassword})

		c.ok("write", "database/static-roles/app-user", "db_name=production-db", "username="+appUser, "rotation_period=24h")
		if _, err := l.Login(ctx, appUser, dbtest.LessonLeakedPassword, "SELECT 1"); err == nil {
			t.Fatalf("%s still logs in with the leaked password after the static role was written", appUser)
		}
		r := dbRows(c.ok("read", "database/static-creds/app-user"))
		if r["username"] != appUser || r["password"] == "" || r["password"] == dbtest.LessonLeakedPassword {
			t.Fatalf("read database/static-creds/app-user: %q", r)
		}
		pw := strings.TrimSpace(c.ok("read", "-field=password", "database/static-creds/app-user"))
		if pw != r["password"] {
			t.Fatalf("-field=password printed %q, the table %q", pw, r["password"])
		}
		dbCountUsers(t, l, dbCred{username: appUser, password: pw})
	})
}
