package httpapi_test

import (
	"context"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

// Helpers shared by the database_*_test.go files: the database engine driven with the official
// client against real databases, each prepared by dbtest as the lesson's Part 7 Step 1 leaves it.

// dbLessons are the databases every database test runs against.
var dbLessons = []struct {
	name  string
	setup func(testing.TB) *dbtest.Lesson
}{{"postgresql", dbtest.LessonPostgres}, {"mysql", dbtest.LessonMySQL}}

// eachLessonDB runs f once per database, in parallel.
func eachLessonDB(t *testing.T, f func(t *testing.T, l *dbtest.Lesson)) {
	for _, d := range dbLessons {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			f(t, d.setup(t))
		})
	}
}

// dbConfigure enables the database engine at database/ and writes config/production-db for the
// lesson's admin with allowed_roles, then rotates its root password, as the lesson's Step 2.
func dbConfigure(t testing.TB, c *vault.Client, l *dbtest.Lesson, allowed string) {
	t.Helper()
	if err := c.Sys().Mount("database", &vault.MountInput{Type: "database"}); err != nil {
		t.Fatalf("enable database: %v", err)
	}
	if _, err := c.Logical().Write("database/config/production-db", map[string]any{
		"plugin_name": l.Plugin, "connection_url": l.ConnectionURL, "allowed_roles": allowed,
		"username": l.AdminUser, "password": l.AdminPassword,
	}); err != nil {
		t.Fatalf("write database/config/production-db: %v", err)
	}
	if _, err := c.Logical().Write("database/rotate-root/production-db", nil); err != nil {
		t.Fatalf("rotate-root: %v", err)
	}
}

// dbRole writes database/roles/<name> with the lesson's read-only statements and the TTLs.
func dbRole(t testing.TB, c *vault.Client, l *dbtest.Lesson, name, ttl, maxTTL string) {
	t.Helper()
	if _, err := c.Logical().Write("database/roles/"+name, map[string]any{
		"db_name": "production-db", "creation_statements": l.Readonly, "revocation_statements": l.Revocation,
		"default_ttl": ttl, "max_ttl": maxTTL,
	}); err != nil {
		t.Fatalf("write database/roles/%s: %v", name, err)
	}
}

// dbCred is one credential read from database/creds/<role>.
type dbCred struct {
	leaseID            string
	ttl                time.Duration
	username, password string
}

// dbCreds reads database/creds/<role>; the user is dropped when the test ends if it is left.
func dbCreds(t testing.TB, c *vault.Client, l *dbtest.Lesson, role string) dbCred {
	t.Helper()
	s, err := c.Logical().Read("database/creds/" + role)
	if err != nil {
		t.Fatalf("read database/creds/%s: %v", role, err)
	}
	if s == nil || s.LeaseID == "" {
		t.Fatalf("read database/creds/%s: no lease in %+v", role, s)
	}
	cr := dbCred{leaseID: s.LeaseID, ttl: time.Duration(s.LeaseDuration) * time.Second}
	cr.username, _ = s.Data["username"].(string)
	cr.password, _ = s.Data["password"].(string)
	if cr.username == "" || cr.password == "" {
		t.Fatalf("read database/creds/%s: no username or password", role)
	}
	l.CleanupUser(t, cr.username)
	return cr
}

// dbLogs reports whether the credential logs in now.
func dbLogs(l *dbtest.Lesson, cr dbCred) bool {
	_, err := l.Login(context.Background(), cr.username, cr.password, "SELECT 1")
	return err == nil
}

// dbLeases lists sys/leases/lookup/<prefix>: the open leases under it.
func dbLeases(t testing.TB, c *vault.Client, prefix string) []string {
	t.Helper()
	s, err := c.Logical().List("sys/leases/lookup/" + prefix)
	if err != nil {
		t.Fatalf("list sys/leases/lookup/%s: %v", prefix, err)
	}
	if s == nil {
		return nil
	}
	keys, _ := s.Data["keys"].([]any)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if ks, ok := k.(string); ok {
			out = append(out, ks)
		}
	}
	return out
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
