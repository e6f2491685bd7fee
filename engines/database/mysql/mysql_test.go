package mysql

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/ledger-secrets/ledger/engines/database/dbplugin"
	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

// open returns a plugin connected as a fresh admin to a fresh database with a users table.
func open(t *testing.T) (*Plugin, string, string) {
	t.Helper()
	dsn, name := dbtest.MySQLDB(t)
	admin, pw := dbtest.Name("vadm_"), "vault-managed-2026"
	dbtest.MySQLExec(t, dsn,
		"CREATE USER '"+admin+"'@'%' IDENTIFIED BY '"+pw+"'",
		"GRANT ALL PRIVILEGES ON *.* TO '"+admin+"'@'%' WITH GRANT OPTION",
		"CREATE TABLE users (id int)", "INSERT INTO users VALUES (1), (2), (3)")
	t.Cleanup(func() {
		_ = dbtest.MySQLExecContext(context.Background(), dsn, "DROP USER IF EXISTS '"+admin+"'@'%'")
	})
	c, err := driver.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Open(dbplugin.Config{ConnectionURL: fmt.Sprintf("{{username}}:{{password}}@%s(%s)/%s", c.Net, c.Addr, name),
		Username: admin, Password: pw, MaxOpenConnections: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p, dsn, name
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	p, dsn, db := open(t)
	user, pw := dbtest.Name("v-test-"), "A1a-"+dbtest.Name("")
	err := p.CreateUser(ctx, dbplugin.NewUser{Username: user, Password: pw, Expiration: time.Now().Add(time.Hour),
		Creation: []string{"CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON `" + db + "`.* TO '{{name}}'@'%';"}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := dbtest.MySQLLogin(ctx, dsn, user, pw, "SELECT count(*) FROM users"); err != nil || n != "3" {
		t.Fatalf("login: %q %v", n, err)
	}
	if users, err := p.ListUsers(ctx, "v-test-"); err != nil || len(users) != 1 || users[0] != user {
		t.Fatalf("ListUsers = %v, %v", users, err)
	}
	if err := p.RenewUser(ctx, nil, user, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatalf("renew without statements: %v", err)
	}
	if err := p.RevokeUser(ctx, nil, user); err != nil {
		t.Fatal(err)
	}
	if _, err := dbtest.MySQLLogin(ctx, dsn, user, pw, "SELECT 1"); err == nil {
		t.Fatal("revoked user still logs in")
	}
	if err := p.RevokeUser(ctx, nil, user); err != nil {
		t.Fatalf("revoking a gone user: %v", err)
	}
	if err := p.RenewUser(ctx, nil, user, time.Now()); !errors.Is(err, dbplugin.ErrNoUser) {
		t.Fatalf("renew of a gone user: %v", err)
	}

	// Creation that fails after CREATE USER committed leaves no account behind.
	user2 := dbtest.Name("v-test-")
	err = p.CreateUser(ctx, dbplugin.NewUser{Username: user2, Password: pw,
		Creation: []string{"CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELEKT ON *.* TO '{{name}}'@'%'"}})
	if err == nil {
		t.Fatal("broken creation succeeded")
	}
	if users, _ := p.ListUsers(ctx, user2); len(users) != 0 {
		t.Fatalf("left behind: %v", users)
	}
}
