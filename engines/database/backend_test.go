package database

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/database/dbtest"
	dbview "github.com/ledger-secrets/ledger/projections/database"
)

const (
	opRead   = engines.OpRead
	opUpdate = engines.OpUpdate
	opDelete = engines.OpDelete
	opList   = engines.OpList
)

func TestConfig(t *testing.T) {
	eachDialect(t, func(t *testing.T, e env) {
		h := newHarness(t, e)

		// Verification fails: the answer names the host and the driver's error, never the
		// password.
		msg := h.fails(opUpdate, "config/production-db", map[string]any{"plugin_name": e.plugin,
			"connection_url": e.badURL, "username": e.adminUser, "password": "s3cret-not-shown",
			"allowed_roles": "*"}, engines.ErrBadRequest, "127.0.0.1:1", "connection refused")
		t.Logf("unreachable: %s", msg)
		if strings.Contains(msg, "s3cret-not-shown") {
			t.Fatalf("password echoed: %s", msg)
		}
		// Right server, wrong password: the database's refusal, without the password.
		msg = h.fails(opUpdate, "config/production-db", map[string]any{"plugin_name": e.plugin,
			"connection_url": e.connURL, "username": e.adminUser, "password": "wrong-pw-not-shown"}, engines.ErrBadRequest, "error creating database object")
		t.Logf("wrong password: %s", msg)
		if strings.Contains(msg, "wrong-pw-not-shown") {
			t.Fatalf("password echoed: %s", msg)
		}
		if _, ok := h.view.Config(h.mount.UUID, "production-db"); ok {
			t.Fatal("a config that failed verification was recorded")
		}
		h.fails(opUpdate, "config/x", map[string]any{"plugin_name": "oracle-database-plugin", "connection_url": "x"}, engines.ErrBadRequest, "unsupported plugin_name")
		h.fails(opUpdate, "config/x", map[string]any{"plugin_name": e.plugin}, engines.ErrBadRequest, "connection_url")

		// verify_connection=false records an unreachable database.
		h.ok(opUpdate, "config/later", map[string]any{"plugin_name": e.plugin, "connection_url": e.badURL, "verify_connection": false})

		h.configure("app-*")
		resp := h.ok(opRead, "config/production-db", nil)
		b, _ := json.Marshal(resp.Data)
		if strings.Contains(string(b), adminPassword) || strings.Contains(string(b), `"password"`) {
			t.Fatalf("config read shows the password: %s", b)
		}
		details := resp.Data["connection_details"].(map[string]any)
		if details["username"] != e.adminUser || details["connection_url"] != e.connURL || resp.Data["plugin_name"] != e.plugin ||
			!slices.Equal(resp.Data["allowed_roles"].([]string), []string{"app-*"}) || resp.Data["verify_connection"] != true {
			t.Fatalf("config read: %s", b)
		}
		// An update keeps what it does not name, the password included.
		h.ok(opUpdate, "config/production-db", map[string]any{"allowed_roles": "app-readonly,app-readwrite", "max_open_connections": "2"})
		if c, _ := h.view.Config(h.mount.UUID, "production-db"); c.Password != adminPassword || c.MaxOpenConnections != 2 || len(c.AllowedRoles) != 2 {
			t.Fatalf("update lost fields: %+v", c)
		}
		keys := h.ok(opList, "config/", nil).Data["keys"].([]string)
		if !slices.Equal(keys, []string{"later", "production-db"}) {
			t.Fatalf("LIST config = %v", keys)
		}
		h.ok(opUpdate, "reset/production-db", nil)
		h.fails(opUpdate, "reset/nothing", nil, engines.ErrBadRequest)
		h.ok(opDelete, "config/later", nil)
		if _, err := h.do(opRead, "config/later", nil); !errors.Is(err, engines.ErrNotFound) {
			t.Fatalf("read deleted config: %v", err)
		}
	})
}

func TestLessonRoles(t *testing.T) {
	eachDialect(t, func(t *testing.T, e env) {
		h := newHarness(t, e)
		h.configure("app-readonly,app-readwrite")
		h.lessonRoles()

		role := h.ok(opRead, "roles/app-readonly", nil).Data
		if role["db_name"] != "production-db" || role["default_ttl"] != int64(3600) || role["max_ttl"] != int64(86400) ||
			!slices.Equal(role["creation_statements"].([]string), []string{e.readonly}) {
			t.Fatalf("role read: %v", role)
		}
		if keys := h.ok(opList, "roles", nil).Data["keys"].([]string); !slices.Equal(keys, []string{"app-readonly", "app-readwrite"}) {
			t.Fatalf("LIST roles = %v", keys)
		}

		resp := h.ok(opRead, "creds/app-readonly", nil)
		user, pw := resp.Data["username"].(string), resp.Data["password"].(string)
		if !strings.HasPrefix(user, "v-token-app-read") || len(pw) < 20 {
			t.Fatalf("creds: %q %q", user, pw)
		}
		s := resp.Secret
		if s.LeaseDuration != time.Hour || s.MaxTTL != 24*time.Hour || !s.Renewable {
			t.Fatalf("secret: %+v", s)
		}
		ld, err := ParseLeaseData(s.InternalData)
		if err != nil || ld.Username != user || ld.DBName != "production-db" || ld.Role != "app-readonly" ||
			!slices.Equal(ld.RevocationStatements, []string{e.revocation}) {
			t.Fatalf("internal data: %+v %v", ld, err)
		}
		if strings.Contains(string(s.InternalData), pw) {
			t.Fatal("InternalData holds the password")
		}
		h.loginWorks(user, pw, "SELECT count(*) FROM users", "42")
		if err := insert(e, user, pw); err == nil {
			t.Fatal("readonly user could insert")
		}

		rwUser, rwPW, rwLease := h.creds("app-readwrite")
		if err := insert(e, rwUser, rwPW); err != nil {
			t.Fatalf("readwrite user cannot insert: %v", err)
		}

		// Revocation with the lesson's own statement: the user is gone and its open session
		// ended within a second.
		session := e.hold(t, user, pw)
		lease := leaseOf(h, resp, "app-readonly")
		if err := h.b.RevokeLease(context.Background(), lease); err != nil {
			t.Fatalf("RevokeLease: %v", err)
		}
		h.loginFails(user, pw)
		if exists, _ := e.accountState(t, user); exists {
			t.Fatal("revoked user still exists")
		}
		sessionEnds(t, session)
		if err := h.b.RevokeLease(context.Background(), lease); err != nil {
			t.Fatalf("revoking again: %v", err)
		}
		if err := h.b.RevokeLease(context.Background(), rwLease); err != nil {
			t.Fatalf("RevokeLease readwrite: %v", err)
		}
		h.loginFails(rwUser, rwPW)
	})
}

func insert(e env, user, pw string) error { return e.insert(context.Background(), user, pw) }

func leaseOf(h *harness, resp *engines.Response, role string) engines.Lease {
	now := time.Now()
	return engines.Lease{ID: "database/creds/" + role + "/" + dbtest.Name(""), Path: "creds/" + role,
		MountPath: h.mount.Path, MountUUID: h.mount.UUID, IssueTime: now, ExpireTime: now.Add(resp.Secret.LeaseDuration),
		Renewable: true, InternalData: resp.Secret.InternalData}
}

// sessionEnds waits up to a second for a held session to be cut off.
func sessionEnds(t *testing.T, run func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for run() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the revoked user's open session still works")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRevocationFailure(t *testing.T) {
	eachDialect(t, func(t *testing.T, e env) {
		h := newHarness(t, e)
		h.configure("*")
		h.ok(opUpdate, "roles/broken", map[string]any{"db_name": "production-db", "creation_statements": e.readonly,
			"revocation_statements": `DROP ROLLE "{{name}}"`, "default_ttl": "1h"})
		user, pw, lease := h.creds("broken")
		h.loginWorks(user, pw, "SELECT 1", "1")
		session := e.hold(t, user, pw)

		err := h.b.RevokeLease(context.Background(), lease)
		if err == nil {
			t.Fatal("RevokeLease succeeded although the statement is broken")
		}
		t.Logf("failed revocation: %v", err)
		if strings.Contains(err.Error(), pw) {
			t.Fatalf("error shows the password: %v", err)
		}
		h.loginFails(user, pw)
		sessionEnds(t, session)
		exists, login := e.accountState(t, user)
		if !exists || login {
			t.Fatalf("after a failed revocation: exists=%v login=%v, want a disabled user", exists, login)
		}

		// The operator fixes the role; the retry drops the user for good.
		h.ok(opUpdate, "roles/broken", map[string]any{"revocation_statements": e.revocation})
		if err := h.b.RevokeLease(context.Background(), lease); err != nil {
			t.Fatalf("retry after the fix: %v", err)
		}
		if exists, _ := e.accountState(t, user); exists {
			t.Fatal("user still exists after the retry")
		}
	})
}

func TestDefaultRevocation(t *testing.T) {
	eachDialect(t, func(t *testing.T, e env) {
		h := newHarness(t, e)
		h.configure("*")
		h.ok(opUpdate, "roles/plain", map[string]any{"db_name": "production-db", "creation_statements": e.readwrite})
		user, pw, lease := h.creds("plain")
		h.loginWorks(user, pw, "SELECT count(*) FROM users", "42")
		if err := h.b.RevokeLease(context.Background(), lease); err != nil {
			t.Fatalf("default revocation: %v", err)
		}
		h.loginFails(user, pw)
		if exists, _ := e.accountState(t, user); exists {
			t.Fatal("user still exists")
		}
	})
}

func TestRenew(t *testing.T) {
	eachDialect(t, func(t *testing.T, e env) {
		h := newHarness(t, e)
		h.configure("*")
		h.lessonRoles()
		user, pw, lease := h.creds("app-readonly")
		if e.plugin == "postgresql-database-plugin" {
			until, ok := e.validUntil(t, user)
			if !ok || until.Sub(time.Now().Add(time.Hour)).Abs() > time.Minute {
				t.Fatalf("VALID UNTIL at creation = %v (%v), want about an hour from now", until, ok)
			}
		}
		newExpire := time.Now().Add(3 * time.Hour).Truncate(time.Second)
		if err := h.b.RenewLease(context.Background(), lease, newExpire); err != nil {
			t.Fatalf("RenewLease: %v", err)
		}
		if e.plugin == "postgresql-database-plugin" {
			if until, _ := e.validUntil(t, user); !until.Equal(newExpire) {
				t.Fatalf("VALID UNTIL after renew = %v, want %v", until, newExpire)
			}
		}
		h.loginWorks(user, pw, "SELECT 1", "1")
		if err := h.b.RevokeLease(context.Background(), lease); err != nil {
			t.Fatal(err)
		}
		if err := h.b.RenewLease(context.Background(), lease, newExpire); err == nil {
			t.Fatal("renewing a revoked user succeeded")
		}

		if e.plugin != "postgresql-database-plugin" {
			return
		}
		// Statements that never mention VALID UNTIL still get an expiry that follows the lease.
		h.ok(opUpdate, "roles/forgetful", map[string]any{"db_name": "production-db", "default_ttl": "1h",
			"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}';`,
			"renew_statements":    `ALTER ROLE "{{name}}" CONNECTION LIMIT 5;`})
		user, _, lease = h.creds("forgetful")
		if until, ok := e.validUntil(t, user); !ok || until.Sub(time.Now().Add(time.Hour)).Abs() > time.Minute {
			t.Fatalf("VALID UNTIL without it in the statements = %v (%v)", until, ok)
		}
		if err := h.b.RenewLease(context.Background(), lease, newExpire); err != nil {
			t.Fatal(err)
		}
		if until, _ := e.validUntil(t, user); !until.Equal(newExpire) {
			t.Fatalf("VALID UNTIL after renew with custom statements = %v, want %v", until, newExpire)
		}
		if err := h.b.RevokeLease(context.Background(), lease); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRotateRoot(t *testing.T) {
	eachDialect(t, func(t *testing.T, e env) {
		h := newHarness(t, e)
		h.configure("*")
		h.lessonRoles()
		h.loginWorks(e.adminUser, adminPassword, "SELECT 1", "1")
		h.ok(opUpdate, "rotate-root/production-db", nil)
		h.loginFails(e.adminUser, adminPassword)
		c, _ := h.view.Config(h.mount.UUID, "production-db")
		if c.Password == adminPassword || len(c.Password) < 20 {
			t.Fatalf("the view does not hold a new admin password")
		}
		h.loginWorks(e.adminUser, c.Password, "SELECT 1", "1")
		if b, _ := json.Marshal(h.ok(opRead, "config/production-db", nil).Data); strings.Contains(string(b), c.Password) {
			t.Fatal("config read shows the rotated password")
		}
		// The engine keeps working with the password only it knows.
		user, pw, lease := h.creds("app-readonly")
		h.loginWorks(user, pw, "SELECT count(*) FROM users", "42")
		if err := h.b.RevokeLease(context.Background(), lease); err != nil {
			t.Fatal(err)
		}

		// A rotation whose event never reaches the view (a failed append): this node goes on
		// with the password it set.
		resp, err := h.decide(opUpdate, "rotate-root/production-db", nil)
		if err != nil || len(resp.Events) != 1 || resp.Events[0].Type != dbview.RootRotated {
			t.Fatalf("rotate-root: %+v %v", resp, err)
		}
		h.loginFails(e.adminUser, c.Password)
		user, pw, lease = h.creds("app-readonly")
		h.loginWorks(user, pw, "SELECT 1", "1")
		if err := h.b.RevokeLease(context.Background(), lease); err != nil {
			t.Fatal(err)
		}
		h.fails(opUpdate, "rotate-root/nothing", nil, engines.ErrBadRequest)
	})
}

func TestStaticRole(t *testing.T) {
	eachDialect(t, func(t *testing.T, e env) {
		h := newHarness(t, e)
		h.configure("app,app-*")
		appUser := dbtest.Name("app_user_")
		e.staticUser(t, appUser, "prod-db-2024!")
		h.loginWorks(appUser, "prod-db-2024!", "SELECT 1", "1")

		h.fails(opUpdate, "static-roles/app", map[string]any{"db_name": "production-db", "username": appUser}, engines.ErrBadRequest, "rotation_period")
		h.fails(opUpdate, "static-roles/app", map[string]any{"db_name": "production-db", "username": appUser, "rotation_period": "2s"}, engines.ErrBadRequest, "5 seconds")
		h.fails(opUpdate, "static-roles/other", map[string]any{"db_name": "production-db", "username": appUser, "rotation_period": "1h"}, engines.ErrBadRequest, "not an allowed role")
		h.loginWorks(appUser, "prod-db-2024!", "SELECT 1", "1")
		h.fails(opUpdate, "static-roles/app-ghost", map[string]any{"db_name": "production-db", "username": "nobody_" + dbtest.Name(""), "rotation_period": "1h"}, engines.ErrBadRequest, "does not exist")
		if _, err := h.do(opRead, "static-roles/app-ghost", nil); !errors.Is(err, engines.ErrNotFound) {
			t.Fatalf("a static role whose rotation failed was recorded: %v", err)
		}

		// Writing the static role rotates at once: the leaked password is dead.
		h.ok(opUpdate, "static-roles/app", map[string]any{"db_name": "production-db", "username": appUser, "rotation_period": "1h"})
		h.loginFails(appUser, "prod-db-2024!")
		creds := h.ok(opRead, "static-creds/app", nil).Data
		pw1 := creds["password"].(string)
		if creds["username"] != appUser || len(pw1) < 20 || creds["rotation_period"] != int64(3600) || creds["ttl"].(int64) < 3590 {
			t.Fatalf("static-creds: %v", creds)
		}
		h.loginWorks(appUser, pw1, "SELECT 1", "1")
		read := h.ok(opRead, "static-roles/app", nil).Data
		if _, ok := read["password"]; ok || read["username"] != appUser || read["rotation_period"] != int64(3600) || read["last_vault_rotation"] == "" {
			t.Fatalf("static role read: %v", read)
		}
		h.fails(opUpdate, "static-roles/app", map[string]any{"username": "someone_else"}, engines.ErrBadRequest, "cannot update static account username")
		h.fails(opUpdate, "roles/app", map[string]any{"db_name": "production-db", "creation_statements": e.readonly}, engines.ErrBadRequest, "unique")
		// An update changes the schedule, not the password.
		h.ok(opUpdate, "static-roles/app", map[string]any{"rotation_period": "2h"})
		if got := h.ok(opRead, "static-creds/app", nil).Data["password"]; got != pw1 {
			t.Fatal("updating the static role changed the password")
		}

		h.ok(opUpdate, "rotate-role/app", nil)
		pw2 := h.ok(opRead, "static-creds/app", nil).Data["password"].(string)
		if pw2 == pw1 {
			t.Fatal("rotate-role kept the password")
		}
		h.loginFails(appUser, pw1)
		h.loginWorks(appUser, pw2, "SELECT 1", "1")

		// RotateDue: nothing due now; two hours on, the role is rotated.
		evs, err := h.b.RotateDue(context.Background(), time.Now())
		if err != nil || len(evs) != 0 {
			t.Fatalf("RotateDue now = %d events, %v", len(evs), err)
		}
		evs, err = h.b.RotateDue(context.Background(), time.Now().Add(2*time.Hour+time.Minute))
		if err != nil || len(evs) != 1 || evs[0].Type != dbview.StaticRoleRotated {
			t.Fatalf("RotateDue later = %+v, %v", evs, err)
		}
		// Until the event is applied the rotation is in flight: not rotated twice.
		if again, _ := h.b.RotateDue(context.Background(), time.Now().Add(2*time.Hour+time.Minute+time.Second)); len(again) != 0 {
			t.Fatal("RotateDue rotated a role whose rotation is in flight")
		}
		h.apply(evs)
		pw3 := h.ok(opRead, "static-creds/app", nil).Data["password"].(string)
		h.loginFails(appUser, pw2)
		h.loginWorks(appUser, pw3, "SELECT 1", "1")

		// A rotation whose event was lost is redone once it is clearly lost.
		lost, err := h.decide(opUpdate, "rotate-role/app", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = lost // never applied
		evs, err = h.b.RotateDue(context.Background(), time.Now().Add(2*time.Minute))
		if err != nil || len(evs) != 1 {
			t.Fatalf("RotateDue after a lost rotation = %d events, %v", len(evs), err)
		}
		h.apply(evs)
		pw4 := h.ok(opRead, "static-creds/app", nil).Data["password"].(string)
		h.loginWorks(appUser, pw4, "SELECT 1", "1")

		// Custom rotation statements: the lesson's Part 1 password change.
		h.ok(opUpdate, "static-roles/app", map[string]any{"rotation_statements": e.rotation})
		h.ok(opUpdate, "rotate-role/app", nil)
		pw5 := h.ok(opRead, "static-creds/app", nil).Data["password"].(string)
		h.loginFails(appUser, pw4)
		h.loginWorks(appUser, pw5, "SELECT 1", "1")

		h.ok(opDelete, "static-roles/app", nil)
		h.fails(opRead, "static-creds/app", nil, engines.ErrBadRequest, "unknown role")
	})
}

func TestCreationFailure(t *testing.T) {
	eachDialect(t, func(t *testing.T, e env) {
		h := newHarness(t, e)
		h.configure("app-*")
		// The user is created, then the second statement fails: nothing may be left behind.
		broken := strings.Replace(e.readonly, "GRANT SELECT", "GRANT SELEKT", 1)
		h.ok(opUpdate, "roles/app-broken", map[string]any{"db_name": "production-db", "creation_statements": broken})
		before := h.vUsers(t)
		resp, err := h.do(opRead, "creds/app-broken", nil)
		if err == nil || resp != nil {
			t.Fatalf("creds with a broken statement: %+v, %v", resp, err)
		}
		if msg := strings.ToLower(err.Error()); !errors.Is(err, engines.ErrBadRequest) || !strings.Contains(msg, "selekt") && !strings.Contains(msg, "syntax") {
			t.Fatalf("error = %v, want a 400 with the database's message", err)
		}
		if after := h.vUsers(t); len(after) != len(before) {
			t.Fatalf("a user was left behind: %v", after)
		}

		h.ok(opUpdate, "roles/outsider", map[string]any{"db_name": "production-db", "creation_statements": e.readonly})
		h.fails(opRead, "creds/outsider", nil, engines.ErrBadRequest, `"outsider" is not an allowed role`)
		h.fails(opRead, "creds/nothing", nil, engines.ErrBadRequest, "unknown role")
		h.fails(opUpdate, "roles/x", map[string]any{"db_name": "production-db"}, engines.ErrBadRequest, "empty creation statements")
		h.fails(opUpdate, "roles/x", map[string]any{"creation_statements": e.readonly}, engines.ErrBadRequest, "empty database name")
		h.fails(opUpdate, "roles/x", map[string]any{"db_name": "production-db", "creation_statements": e.readonly, "default_ttl": "2h", "max_ttl": "1h"}, engines.ErrBadRequest, "max_ttl")
	})
}

// vUsers lists the v- users this test's mount can see whose role belongs to the test.
func (h *harness) vUsers(t *testing.T) []string {
	var users []string
	c, _ := h.view.Config(h.mount.UUID, "production-db")
	err := h.b.withPlugin("production-db", c, func(p Plugin) error {
		var err error
		users, err = p.ListUsers(context.Background(), "v-token-app-brok")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return users
}

func TestOrphans(t *testing.T) {
	eachDialect(t, func(t *testing.T, e env) {
		h := newHarness(t, e)
		h.configure("*")
		h.lessonRoles()
		user, _, lease := h.creds("app-readonly")
		stray := "v-stray-" + dbtest.Name("") + "x"
		if e.plugin == "postgresql-database-plugin" {
			e.asAdmin(t, `CREATE ROLE "`+stray+`" LOGIN PASSWORD 'x'`)
		} else {
			e.asAdmin(t, "CREATE USER '"+stray+"'@'%' IDENTIFIED BY 'x'")
		}
		e.cleanupUser(t, stray)
		orphans, err := h.b.Orphans(context.Background(), func(db, u string) bool { return db == "production-db" && u == user })
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(orphans, Orphan{DBName: "production-db", Username: stray}) {
			t.Fatalf("Orphans = %v, want %s", orphans, stray)
		}
		for _, o := range orphans {
			if o.Username == user {
				t.Fatal("a user with a lease was reported")
			}
		}
		// A user created moments ago may still be waiting for its lease: never an orphan.
		orphans, _ = h.b.Orphans(context.Background(), func(string, string) bool { return false })
		for _, o := range orphans {
			if o.Username == user {
				t.Fatal("a user created moments ago was reported")
			}
		}
		if err := h.b.DropOrphans(context.Background(), []Orphan{{DBName: "production-db", Username: stray}}); err != nil {
			t.Fatal(err)
		}
		if exists, _ := e.accountState(t, stray); exists {
			t.Fatal("orphan not dropped")
		}
		if err := h.b.RevokeLease(context.Background(), lease); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPools(t *testing.T) {
	eachDialect(t, func(t *testing.T, e env) {
		h := newHarness(t, e)
		h.configure("*")
		h.lessonRoles()
		current := func() *pool {
			h.b.mu.Lock()
			defer h.b.mu.Unlock()
			return h.b.pools["production-db"]
		}
		first := current()
		if first == nil {
			t.Fatal("the verified pool was not kept")
		}
		_, _, lease := h.creds("app-readonly")
		if current() != first {
			t.Fatal("an unchanged config built a new pool")
		}
		// A changed configuration builds a new pool; the old one is closed once idle.
		h.ok(opUpdate, "config/production-db", map[string]any{"max_open_connections": "3"})
		second := current()
		if second == first || !first.retired {
			t.Fatal("a changed config kept the old pool")
		}
		h.ok(opUpdate, "reset/production-db", nil)
		if current() != nil || !second.retired {
			t.Fatal("reset kept the pool")
		}
		// Many requests at once share the pool.
		var wg sync.WaitGroup
		leases := make(chan engines.Lease, 16)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := h.decide(opRead, "creds/app-readwrite", nil)
				if err != nil {
					t.Error(err)
					return
				}
				e.cleanupUser(t, resp.Data["username"].(string))
				leases <- leaseOf(h, resp, "app-readwrite")
			}()
		}
		wg.Wait()
		close(leases)
		leases2 := []engines.Lease{lease}
		for l := range leases {
			leases2 = append(leases2, l)
		}
		for _, l := range leases2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := h.b.RevokeLease(context.Background(), l); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		h.b.Close()
		if err := h.b.RevokeLease(context.Background(), lease); !errors.Is(err, ErrClosed) {
			t.Fatalf("after Close: %v", err)
		}
	})
}
