package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/lease"
)

// dbPut writes body to path over raw HTTP, so the whole answer can be searched for secrets.
func dbPut(t *testing.T, s *testServer, path string, body map[string]any) rawResp {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return raw(t, s.URL, http.MethodPut, path, bytes.NewReader(b), tokenHeader(s.RootToken))
}

// dbBad asserts a 400 whose errors contain each of want.
func dbBad(t *testing.T, what string, r rawResp, want ...string) string {
	t.Helper()
	if r.Status != http.StatusBadRequest {
		t.Fatalf("%s: status %d, want 400: %s", what, r.Status, trunc(r.Body))
	}
	msg := strings.Join(r.errs(t), " ")
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("%s: %q does not contain %q", what, msg, w)
		}
	}
	return msg
}

// generatedPassword matches a password by Ledger's default rules inside a quoted SQL literal.
var generatedPassword = regexp.MustCompile(`'[A-Za-z0-9-]{20}'`)

// TestDatabaseAPIBadConnection: a connection URL that does not connect is a 400 that names the
// host and the error, never echoes a credential (given as fields or inside the URL), and records
// nothing.
func TestDatabaseAPIBadConnection(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	if err := root.Sys().Mount("database", &vault.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	const fieldSecret, urlSecret = "field-secret-8c1d2e", "url-secret-5b7f9a"
	tests := []struct {
		name, plugin, url string
		fields            map[string]any
		want              []string
	}{
		{name: "postgres templated", plugin: "postgresql-database-plugin",
			url:    "postgresql://{{username}}:{{password}}@127.0.0.1:1/myapp?sslmode=disable",
			fields: map[string]any{"username": "vault_admin", "password": fieldSecret},
			want:   []string{"127.0.0.1:1", "connection refused"}},
		{name: "postgres literal credentials", plugin: "postgresql-database-plugin",
			url:  "postgresql://vault_admin:" + urlSecret + "@127.0.0.1:1/myapp?sslmode=disable",
			want: []string{"127.0.0.1:1", "connection refused"}},
		{name: "mysql templated", plugin: "mysql-database-plugin",
			url:    "{{username}}:{{password}}@tcp(127.0.0.1:1)/myapp",
			fields: map[string]any{"username": "vault_admin", "password": fieldSecret},
			want:   []string{"127.0.0.1:1", "connection refused"}},
		{name: "mysql literal credentials", plugin: "mysql-database-plugin",
			url:  "vault_admin:" + urlSecret + "@tcp(127.0.0.1:1)/myapp",
			want: []string{"127.0.0.1:1", "connection refused"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("unreachable-%d", i)
			body := map[string]any{"plugin_name": tt.plugin, "connection_url": tt.url, "allowed_roles": "*"}
			for k, v := range tt.fields {
				body[k] = v
			}
			r := dbPut(t, s, "database/config/"+name, body)
			dbBad(t, "config with "+tt.name, r, tt.want...)
			noLeak(t, "config with "+tt.name, r.Body, fieldSecret, urlSecret)
			if got := raw(t, s.URL, http.MethodGet, "database/config/"+name, nil, tokenHeader(s.RootToken)); got.Status != http.StatusNotFound {
				t.Errorf("a config that did not connect was recorded: GET = %d %s", got.Status, trunc(got.Body))
			}
		})
	}
}

// TestDatabaseAPIBadInput: a role not in allowed_roles, creation statements that do not parse,
// TTLs above max_ttl, renewing what cannot be renewed and revoking an empty prefix — each
// refused (or capped) with nothing left behind in the database or the lease table.
func TestDatabaseAPIBadInput(t *testing.T) {
	t.Parallel()
	eachLessonDB(t, func(t *testing.T, l *dbtest.Lesson) {
		s := startServer(t)
		root := s.Client(t, s.RootToken)
		dbConfigure(t, root, l, "app-readonly,syntax-err,capped")
		dbRole(t, root, l, "app-readonly", "1h", "24h")

		// A database that answers but refuses the password: 400 with its message, the
		// password not echoed, nothing recorded.
		const wrong = "wrong-password-3e9d1c"
		r := dbPut(t, s, "database/config/wrong-password", map[string]any{"plugin_name": l.Plugin,
			"connection_url": l.ConnectionURL, "username": l.AdminUser, "password": wrong, "allowed_roles": "*"})
		if l.IsMySQL() {
			dbBad(t, "config with a wrong password", r, "Access denied")
		} else {
			dbBad(t, "config with a wrong password", r, "password authentication failed")
		}
		noLeak(t, "config with a wrong password", r.Body, wrong)

		// Not in allowed_roles: refused before any user is made.
		dbRole(t, root, l, "not-allowed", "1h", "24h")
		r = raw(t, s.URL, http.MethodGet, "database/creds/not-allowed", nil, tokenHeader(s.RootToken))
		dbBad(t, "creds of a role not in allowed_roles", r, `"not-allowed" is not an allowed role`)
		if n := l.Users(t, "v-root-not-allowe"); n != 0 {
			t.Errorf("%d users made for a role not in allowed_roles", n)
		}
		if keys := dbLeases(t, root, "database/creds/not-allowed/"); len(keys) != 0 {
			t.Errorf("leases for a role not in allowed_roles: %q", keys)
		}

		// Creation statements with a syntax error in the second statement: the first one
		// (CREATE) ran; nothing of it may remain, and no lease.
		bad := strings.Replace(l.Readonly, "GRANT SELECT", "GRANTT SELECT", 1)
		if _, err := root.Logical().Write("database/roles/syntax-err", map[string]any{
			"db_name": "production-db", "creation_statements": bad, "revocation_statements": l.Revocation,
		}); err != nil {
			t.Fatal(err)
		}
		r = raw(t, s.URL, http.MethodGet, "database/creds/syntax-err", nil, tokenHeader(s.RootToken))
		msg := dbBad(t, "creds with a syntax error", r, "syntax")
		if generatedPassword.MatchString(msg) {
			t.Errorf("the error echoes the generated password: %q", msg)
		}
		if n := l.Users(t, "v-root-syntax-e"); n != 0 {
			t.Errorf("%d users left behind by creation statements that failed", n)
		}
		if keys := dbLeases(t, root, "database/creds/syntax-err/"); len(keys) != 0 {
			t.Errorf("leases for creation statements that failed: %q", keys)
		}

		// Renewing past max_ttl: capped, with a warning in the response.
		ro := dbCreds(t, root, l, "app-readonly")
		sec, err := root.Sys().Renew(ro.leaseID, int((48 * time.Hour).Seconds()))
		if err != nil {
			t.Fatalf("renew past max_ttl: %v", err)
		}
		if d := time.Duration(sec.LeaseDuration) * time.Second; d > 24*time.Hour || d < 23*time.Hour {
			t.Errorf("renew past a 24h max_ttl: lease_duration %s", d)
		}
		if len(sec.Warnings) == 0 || !strings.Contains(strings.Join(sec.Warnings, " "), "capped") {
			t.Errorf("renew past max_ttl: warnings %q, want one saying the TTL was capped", sec.Warnings)
		}

		// default_ttl above max_ttl: refused at the role, as Vault does.
		_, err = root.Logical().Write("database/roles/capped", map[string]any{
			"db_name": "production-db", "creation_statements": l.Readonly, "default_ttl": "2h", "max_ttl": "1h"})
		respErr(t, err, http.StatusBadRequest, "ttl cannot be greater than max_ttl")

		// The role's TTL above the mount's max_lease_ttl: the lease and the database's own
		// expiry are capped to the mount's.
		dbRole(t, root, l, "capped", "1h", "2h")
		if err := root.Sys().TuneMount("database", vault.MountConfigInput{MaxLeaseTTL: "10m"}); err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		cr := dbCreds(t, root, l, "capped")
		if cr.ttl != 10*time.Minute {
			t.Errorf("lease_duration %s for a 1h role under a 10m mount, want 10m", cr.ttl)
		}
		if until, ok := l.ValidUntil(t, cr.username); !l.IsMySQL() && (!ok || until.After(before.Add(10*time.Minute+30*time.Second))) {
			t.Errorf("VALID UNTIL %v (set %v) outlives the capped lease (about %v)", until, ok, before.Add(10*time.Minute))
		}

		// Renewing an unknown lease, a revoked one, and one that is not renewable.
		_, err = root.Sys().Renew("database/creds/app-readonly/doesnotexist", 60)
		respErr(t, err, http.StatusBadRequest, "lease not found")
		if err := root.Sys().Revoke(ro.leaseID); err != nil {
			t.Fatal(err)
		}
		if dbLogs(l, ro) {
			t.Error("a revoked credential still logs in")
		}
		_, err = root.Sys().Renew(ro.leaseID, 60)
		respErr(t, err, http.StatusBadRequest, "lease not found")
		id := fixedLease(t, s, root, false)
		_, err = root.Sys().Renew(id, 60)
		respErr(t, err, http.StatusBadRequest, "not renewable")

		// Revoking an empty prefix would revoke everything: refused, in every spelling.
		for _, p := range []string{"sys/leases/revoke-prefix/", "sys/leases/revoke-prefix//", "sys/revoke-prefix/", "sys/revoke-prefix"} {
			dbBad(t, "PUT "+p, dbPut(t, s, p, map[string]any{}), "empty prefix")
		}
		if err := root.Sys().RevokePrefix(""); err == nil {
			t.Error("revoke-prefix of \"\" succeeded")
		}
		if keys := dbLeases(t, root, "database/creds/capped/"); len(keys) != 1 {
			t.Errorf("leases after the refused revoke-prefix: %q, want the capped one", keys)
		}

		// A connection with open leases cannot be deleted: nothing could revoke them after.
		_, err = root.Logical().Delete("database/config/production-db")
		respErr(t, err, http.StatusBadRequest, "open lease")
		if err := root.Sys().RevokePrefix("database/creds/"); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Logical().Delete("database/config/production-db"); err != nil {
			t.Fatalf("delete after the leases were revoked: %v", err)
		}
	})
}

// fixedLease registers a lease with no side effect under secret/ straight in the log — the
// database engine's leases are all renewable, so the API cannot make one that is not — and
// waits until the lease view holds it.
func fixedLease(t *testing.T, s *testServer, root *vault.Client, renewable bool) string {
	t.Helper()
	m, err := root.Sys().GetMount("secret")
	if err != nil {
		t.Fatal(err)
	}
	id := "secret/fixed/" + dbtest.Name("")
	now := time.Now().UTC()
	b, _ := json.Marshal(lease.IssuedPayload{ID: id, MountUUID: m.UUID, MountPath: "secret/", Path: "fixed",
		IssueTime: now, ExpireTime: now.Add(time.Hour), MaxExpire: now.Add(2 * time.Hour), Renewable: renewable})
	if _, err := s.Log.Append(context.Background(), []ledger.Event{{Type: lease.Issued, Subject: ledger.SubjectFor("lease", id), Payload: b}}); err != nil {
		t.Fatal(err)
	}
	if !dbPoll(5*time.Second, func() bool { sec, err := root.Sys().Lookup(id); return err == nil && sec != nil }) {
		t.Fatalf("lease %s not in the lease view after 5s", id)
	}
	return id
}
