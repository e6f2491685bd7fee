package httpapi_test

import (
	"testing"
	"unicode"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

const digitsPolicy = `
length = 24
rule "charset" {
  charset   = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 2
}
rule "charset" {
  charset   = "0123456789"
  min-chars = 6
}
`

// followsDigitsPolicy reports whether pw could come from digitsPolicy.
func followsDigitsPolicy(pw string) bool {
	if len(pw) != 24 {
		return false
	}
	lower, digits := 0, 0
	for _, r := range pw {
		switch {
		case r >= 'a' && r <= 'z':
			lower++
		case unicode.IsDigit(r):
			digits++
		default:
			return false
		}
	}
	return lower >= 2 && digits >= 6
}

// TestPasswordPolicies: write, read, list, generate, delete through the official client; the bad
// inputs are 400s that change nothing (in particular a policy that cannot generate is refused at
// write time); the view rebuilds from the log like every other.
func TestPasswordPolicies(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	if keys := listKeys(t, c, "sys/policies/password"); keys != nil {
		t.Fatalf("fresh server lists password policies %v", keys)
	}
	if _, err := c.Logical().Write("sys/policies/password/digits", map[string]any{"policy": digitsPolicy}); err != nil {
		t.Fatal(err)
	}
	sec, err := c.Logical().Read("sys/policies/password/digits")
	if err != nil || sec.Data["policy"] != digitsPolicy {
		t.Fatalf("read = %v, %v", sec, err)
	}
	seen := map[string]bool{}
	for range 20 {
		g, err := c.Logical().Read("sys/policies/password/digits/generate")
		if err != nil {
			t.Fatal(err)
		}
		pw, _ := g.Data["password"].(string)
		if !followsDigitsPolicy(pw) {
			t.Fatalf("generated %q does not follow the policy", pw)
		}
		seen[pw] = true
	}
	if len(seen) != 20 {
		t.Fatalf("only %d distinct passwords in 20", len(seen))
	}
	if _, err := c.Logical().Write("sys/policies/password/short", map[string]any{"policy": "length = 8\nrule \"charset\" {\n charset = \"ab\"\n}\n"}); err != nil {
		t.Fatal(err)
	}
	if keys := listKeys(t, c, "sys/policies/password"); !sameStrings(keys, []string{"digits", "short"}) {
		t.Fatalf("list = %v", keys)
	}

	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		want   string
	}{
		{"impossible", map[string]any{"policy": "length = 4\nrule \"charset\" {\n charset = \"abc\"\n min-chars = 5\n}\n"}, 400, "require at least 5 characters but 4 is specified"},
		{"hopeless", map[string]any{"policy": "length = 100\nrule \"charset\" {\n charset = \"abcdefghijklmnopqrstuvwxyz\"\n}\nrule \"charset\" {\n charset = \"a\"\n min-chars = 50\n}\nrule \"charset\" {\n charset = \"b\"\n min-chars = 50\n}\n"}, 400, "unable to generate"},
		{"too-short", map[string]any{"policy": "length = 2\nrule \"charset\" {\n charset = \"ab\"\n}\n"}, 400, "between 4 and 100"},
		{"nocharset", map[string]any{"policy": "length = 10"}, 400, "no charset"},
		{"garbage", map[string]any{"policy": "length = = 3"}, 400, "unable to decode"},
		{"badrule", map[string]any{"policy": "length = 10\nrule \"regexp\" {\n charset = \"ab\"\n}\n"}, 400, "unrecognized rule type"},
		{"empty", map[string]any{"policy": ""}, 400, "missing policy"},
		{"none", map[string]any{}, 400, "missing policy"},
		{"typed", map[string]any{"policy": []string{"x"}}, 400, "expected a string"},
		{"-bad-name", map[string]any{"policy": digitsPolicy}, 400, "invalid password policy name"},
	} {
		_, err := c.Logical().Write("sys/policies/password/"+tc.name, tc.body)
		respErr(t, err, tc.status, tc.want)
	}
	// Rewriting an existing policy with a bad one leaves the old one in place.
	_, err = c.Logical().Write("sys/policies/password/digits", map[string]any{"policy": "length = 4\nrule \"charset\" {\n charset = \"abc\"\n min-chars = 5\n}\n"})
	respErr(t, err, 400, "require at least")
	if sec, _ := c.Logical().Read("sys/policies/password/digits"); sec == nil || sec.Data["policy"] != digitsPolicy {
		t.Fatalf("a refused rewrite changed the policy: %v", sec)
	}
	if keys := listKeys(t, c, "sys/policies/password"); !sameStrings(keys, []string{"digits", "short"}) {
		t.Fatalf("refused writes changed the list: %v", keys)
	}
	if sec, err := c.Logical().Read("sys/policies/password/nope/generate"); err == nil && sec != nil {
		t.Fatalf("generate from a missing policy = %v", sec)
	}
	if sec, err := c.Logical().Read("sys/policies/password/nope"); err != nil || sec != nil {
		t.Fatalf("read missing = %v %v, want 404", sec, err)
	}

	// A token without a policy granting it cannot read or generate.
	tok := newToken(t, c, &vault.TokenCreateRequest{Policies: []string{"default"}})
	_, err = s.Client(t, tok.ClientToken).Logical().Read("sys/policies/password/digits/generate")
	denied(t, err)

	// The view is rebuilt from the log like every other.
	v, err := c.Logical().Write("sys/ledger/replay/verify", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range v.Data["views"].([]any) {
		m := e.(map[string]any)
		if m["name"] == "password_policy" {
			found = m["match"] == true
		}
	}
	if v.Data["ok"] != true || !found {
		t.Fatalf("replay verify does not match the password policy view: %v", v.Data)
	}

	if _, err := c.Logical().Delete("sys/policies/password/short"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Delete("sys/policies/password/short"); err != nil {
		t.Fatalf("deleting an absent policy: %v", err)
	}
	if keys := listKeys(t, c, "sys/policies/password"); !sameStrings(keys, []string{"digits"}) {
		t.Fatalf("list after delete = %v", keys)
	}
}

// TestDatabasePasswordPolicy: a connection that names a password policy issues passwords from it
// (dynamic credentials and root rotation) that log in; a policy that does not exist is a 400
// and no database user is left behind.
func TestDatabasePasswordPolicy(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	l := dbtest.LessonPostgres(t)
	if _, err := c.Logical().Write("sys/policies/password/db", map[string]any{"policy": digitsPolicy}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sys().Mount("database", &vault.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("database/config/production-db", map[string]any{
		"plugin_name": l.Plugin, "connection_url": l.ConnectionURL, "allowed_roles": "*",
		"username": l.AdminUser, "password": l.AdminPassword, "password_policy": "db",
	}); err != nil {
		t.Fatal(err)
	}
	cfg, err := c.Logical().Read("database/config/production-db")
	if err != nil || cfg.Data["password_policy"] != "db" {
		t.Fatalf("config = %v %v", cfg, err)
	}
	if _, err := c.Logical().Write("database/rotate-root/production-db", nil); err != nil {
		t.Fatalf("rotate-root with a policy: %v", err)
	}
	dbRole(t, c, l, "readonly", "1h", "24h")
	for range 3 {
		cr := dbCreds(t, c, l, "readonly")
		if !followsDigitsPolicy(cr.password) {
			t.Fatalf("database password %q does not follow the connection's policy", cr.password)
		}
		if !dbLogs(l, cr) {
			t.Fatalf("the credential %s does not log in", cr.username)
		}
	}

	// A connection naming a missing policy refuses to issue, rather than issue weaker passwords.
	if _, err := c.Logical().Write("database/config/production-db", map[string]any{"password_policy": "missing"}); err != nil {
		t.Fatal(err)
	}
	before := dbLeases(t, c, "database/creds/readonly/")
	_, err = c.Logical().Read("database/creds/readonly")
	respErr(t, err, 400, `password policy "missing" does not exist`)
	if after := dbLeases(t, c, "database/creds/readonly/"); len(after) != len(before) {
		t.Fatalf("a refused credential left a lease: %d → %d", len(before), len(after))
	}
}
