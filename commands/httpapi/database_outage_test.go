package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

// TestDatabaseOutageAcrossRestart: PostgreSQL is down when leases expire, and Ledger is killed
// (SIGKILL) and restarted meanwhile. The leases stay open while revocation fails — never
// forgotten — and once PostgreSQL is back the revocations complete on their own. Afterwards the
// users Ledger made that can log in are exactly the open leases.
//
// Not parallel: it stops the package's PostgreSQL, which parallel tests wait for.
func TestDatabaseOutageAcrossRestart(t *testing.T) {
	l := dbtest.LessonPostgres(t)
	srv := startChild(t, t.TempDir())
	c := srv.client("")
	init, root := srv.initUnseal()
	dbConfigure(t, root, l, "outage,keeper")
	dbRole(t, root, l, "outage", "3s", "1h")
	dbRole(t, root, l, "keeper", "1h", "24h")
	// Users are v-<display name>-<role, 8 characters>-…: these prefixes pick this test's out of
	// the cluster's roles.
	const mine, expiring = "v-root-", "v-root-outage-"

	var short, long []dbCred
	for range 5 {
		short = append(short, dbCreds(t, root, l, "outage"))
	}
	for range 3 {
		long = append(long, dbCreds(t, root, l, "keeper"))
	}
	expiry := time.Now().Add(3 * time.Second)
	for _, cr := range append(append([]dbCred{}, short...), long...) {
		if !dbLogs(l, cr) {
			t.Fatalf("%s cannot log in before the outage", cr.username)
		}
	}

	restartPG := dbtest.PostgresOutage(t)
	// The leases expire while the database is down: the live node tries, fails and keeps them.
	time.Sleep(time.Until(expiry) + 1500*time.Millisecond)
	if keys := dbLeases(t, root, "database/creds/outage/"); len(keys) != len(short) {
		t.Fatalf("while PostgreSQL is down, %d expired leases are listed, want all %d kept for retry", len(keys), len(short))
	}
	look, err := root.Sys().Lookup(short[0].leaseID)
	if err != nil || look == nil || look.Data["revocation_error"] == nil {
		t.Errorf("lookup of a lease whose revocation failed: want revocation_error, got %+v, %v", look, err)
	}

	srv.kill9()
	srv.start()
	if _, err := c.Sys().Unseal(init.Keys[0]); err != nil {
		t.Fatal(err)
	}
	// The restarted node retries (and fails) while the database is still down.
	time.Sleep(1500 * time.Millisecond)
	if keys := dbLeases(t, root, "database/creds/outage/"); len(keys) != len(short) {
		t.Fatalf("after the restart, with PostgreSQL down, %d expired leases are listed, want %d", len(keys), len(short))
	}

	restartPG()
	if !dbPoll(20*time.Second, func() bool {
		return len(dbLeases(t, root, "database/creds/outage/")) == 0 && l.Roles(t, expiring) == 0
	}) {
		t.Fatalf("20s after PostgreSQL came back: %d expired leases open, %d of their users left",
			len(dbLeases(t, root, "database/creds/outage/")), l.Roles(t, expiring))
	}
	for _, cr := range short {
		if dbLogs(l, cr) {
			t.Errorf("%s logs in after its lease was revoked", cr.username)
		}
	}
	for _, cr := range long {
		if !dbLogs(l, cr) {
			t.Errorf("%s, whose lease is open, cannot log in after the outage", cr.username)
		}
	}
	open := len(dbLeases(t, root, "database/creds/outage/")) + len(dbLeases(t, root, "database/creds/keeper/"))
	if n := l.LoginRoles(t, mine); n != open || open != len(long) {
		t.Errorf("after the outage: %d of Ledger's users can log in, %d leases are open; want both %d", n, open, len(long))
	}
	if code := healthCode(t, srv.url(), ""); code != http.StatusOK {
		t.Errorf("health after the outage = %d", code)
	}
}
