package postgresql

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines/database/dbplugin"
	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// open returns a plugin connected as a fresh CREATEROLE admin (the lesson's vault_admin) to a
// fresh database holding a users table the admin owns.
func open(t *testing.T) (*Plugin, string) {
	t.Helper()
	db := dbtest.PostgresDB(t)
	admin, pw := dbtest.Name("vault_admin_"), "vault-managed-2026"
	dbtest.PostgresRole(t, db, admin, pw, "CREATEROLE")
	dbtest.PostgresExec(t, db, `GRANT ALL ON SCHEMA public TO `+admin)
	dbtest.PostgresExec(t, dbtest.PostgresAs(db, admin, pw), `CREATE TABLE users (id int)`, `INSERT INTO users SELECT generate_series(1, 42)`)
	p, err := Open(dbplugin.Config{ConnectionURL: dbtest.PostgresTemplate(db), Username: admin, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p, db
}

const readonly = `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";`

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	p, db := open(t)
	user, pw := dbtest.Name("v-test-"), "A1a-"+dbtest.Name("")
	if err := p.CreateUser(ctx, dbplugin.NewUser{Username: user, Password: pw, Expiration: time.Now().Add(time.Hour), Creation: []string{readonly}}); err != nil {
		t.Fatal(err)
	}
	if n, err := dbtest.PostgresLogin(ctx, db, user, pw, "SELECT count(*) FROM users"); err != nil || n != "42" {
		t.Fatalf("login: %q %v", n, err)
	}
	users, err := p.ListUsers(ctx, "v-test-")
	if err != nil || len(users) != 1 || users[0] != user {
		t.Fatalf("ListUsers = %v, %v", users, err)
	}
	// The lesson's revocation statement, which fails on its own because of the GRANT.
	if err := p.RevokeUser(ctx, []string{`DROP ROLE IF EXISTS "{{name}}";`}, user); err != nil {
		t.Fatal(err)
	}
	if _, err := dbtest.PostgresLogin(ctx, db, user, pw, "SELECT 1"); err == nil {
		t.Fatal("revoked user still logs in")
	}
	if err := p.RevokeUser(ctx, nil, user); err != nil {
		t.Fatalf("revoking a gone user: %v", err)
	}
	if err := p.SetPassword(ctx, nil, "nobody-here", "x"); !errors.Is(err, dbplugin.ErrNoUser) {
		t.Fatalf("SetPassword on a missing user: %v", err)
	}
}
