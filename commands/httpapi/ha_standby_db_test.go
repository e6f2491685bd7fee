package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

// TestHAStandbyDatabaseCreds: database/creds/<role> is a read that issues a lease (an append);
// through the official client pointed at a standby it is forwarded to the active node, the
// credential logs in to the real PostgreSQL, its lease is the active node's, and revoking it
// through the standby drops the user. Not forwarded, the standby answers 307 and leaves no
// lease behind, and never creates a user at all (a probe table records every user a role's
// statements create); an unknown role is a clear 4xx with nothing written.
func TestHAStandbyDatabaseCreds(t *testing.T) {
	l := dbtest.LessonPostgres(t)
	// Every user the role "probed" creates leaves a row here, even once it is dropped.
	dbtest.PostgresExec(t, dbtest.PostgresAs(l.Super, l.AdminUser, l.AdminPassword), "CREATE TABLE ledger_probe (name text)")
	probes := func() string {
		t.Helper()
		n, err := dbtest.PostgresQuery(context.Background(), l.Super, "SELECT count(*) FROM ledger_probe")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	h := startHAStandbyCluster(t, httpapi.Options{})
	sb := h.client(t, h.sb1, h.root)
	sb.SetReadYourWrites(true)
	dbConfigure(t, sb, l, "readonly,probed")
	dbRole(t, sb, l, "readonly", "1h", "24h")
	active := h.client(t, h.act, h.root)
	if _, err := sb.Logical().Write("database/roles/probed", map[string]any{
		"db_name": "production-db", "creation_statements": l.Readonly + ` INSERT INTO ledger_probe VALUES ('{{name}}');`,
		"revocation_statements": l.Revocation, "default_ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}
	// A standby told not to forward answers 307 without creating a user: the database never
	// sees a user that a standby made and then dropped.
	h.caughtUp(t)
	if code, _ := h.noForward(t, h.sb2, http.MethodGet, "/v1/database/creds/probed", h.root); code != http.StatusTemporaryRedirect {
		t.Fatalf("no-forwarding creds on a standby: %d, want 307", code)
	}
	if n := probes(); n != "0" {
		t.Fatalf("a standby created %s database user(s) for a request it then redirected", n)
	}
	dbCreds(t, sb, l, "probed") // forwarded: the active node creates it
	if n := probes(); n != "1" {
		t.Fatalf("after one forwarded creds request the database saw %s users created, want 1", n)
	}

	cr := dbCreds(t, sb, l, "readonly")
	if !strings.HasPrefix(cr.leaseID, "database/creds/readonly/") || cr.ttl != time.Hour {
		t.Fatalf("creds through a standby: lease %q ttl %s", cr.leaseID, cr.ttl)
	}
	if !dbLogs(l, cr) {
		t.Fatal("the credential issued through a standby does not log in")
	}
	if got := dbLeases(t, active, "database/creds/readonly/"); len(got) != 1 || !strings.HasSuffix(cr.leaseID, got[0]) {
		t.Fatalf("leases on the active node: %v, want the one of %s", got, cr.leaseID)
	}

	// Not forwarded: 307 to the active node; the standby's attempt left nothing.
	h.caughtUp(t)
	code, loc := h.noForward(t, h.sb2, http.MethodGet, "/v1/database/creds/readonly", h.root)
	if code != http.StatusTemporaryRedirect || loc != h.nodes[h.act].url+"/v1/database/creds/readonly" {
		t.Fatalf("no-forwarding creds on a standby: %d %q", code, loc)
	}
	if got := dbLeases(t, active, "database/creds/readonly/"); len(got) != 1 {
		t.Fatalf("leases after a 307: %v, want only the first", got)
	}

	// Bad input through a standby: roles that do not exist.
	for _, role := range []string{"nosuch", "no-such-role-either"} {
		_, err := h.client(t, h.sb2, h.root).Logical().Read("database/creds/" + role)
		if err == nil || !strings.Contains(err.Error(), "Code: 4") {
			t.Fatalf("creds for %q through a standby: %v, want a 4xx", role, err)
		}
	}
	if got := dbLeases(t, active, "database/creds/readonly/"); len(got) != 1 {
		t.Fatalf("leases after bad requests: %v", got)
	}
	if got := dbLeases(t, active, "database/creds/"); len(got) != 2 {
		t.Fatalf("roles with leases after bad requests: %v, want readonly/ and probed/", got)
	}

	// Revoked through the standby: forwarded, the user is dropped.
	if err := sb.Sys().Revoke(cr.leaseID); err != nil {
		t.Fatalf("revoke through a standby: %v", err)
	}
	if !dbPoll(30*time.Second, func() bool { return !dbLogs(l, cr) }) {
		t.Fatal("the credential still logs in after its lease was revoked through a standby")
	}
}
