package dbplugin

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name    string
		dialect Dialect
		in      []string
		want    []string
	}{
		{name: "lesson readonly", dialect: PostgreSQL,
			in: []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";`},
			want: []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'`,
				`GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}"`}},
		{name: "entries and empties", dialect: PostgreSQL, in: []string{"SELECT 1;;", " ", "SELECT 2"},
			want: []string{"SELECT 1", "SELECT 2"}},
		{name: "semicolon in string and identifier", dialect: PostgreSQL, in: []string{`SELECT 'a;b', "c;d"; SELECT 'it''s;'`},
			want: []string{`SELECT 'a;b', "c;d"`, `SELECT 'it''s;'`}},
		{name: "dollar body", dialect: PostgreSQL, in: []string{"DO $x$ BEGIN PERFORM 1; END $x$; SELECT $1"},
			want: []string{"DO $x$ BEGIN PERFORM 1; END $x$", "SELECT $1"}},
		{name: "comments", dialect: PostgreSQL, in: []string{"SELECT 1 -- a; b\n; /* c; /* d; */ e; */ SELECT 2"},
			want: []string{"SELECT 1 -- a; b", "/* c; /* d; */ e; */ SELECT 2"}},
		{name: "mysql backslash and hash", dialect: MySQL, in: []string{"SELECT 'a\\';b'; # x; y\nSELECT `q;r`"},
			want: []string{"SELECT 'a\\';b'", "# x; y\nSELECT `q;r`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Split(tt.in, tt.dialect); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Split = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRender(t *testing.T) {
	exp := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := Render(`CREATE ROLE "{{name}}" PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' -- {{username}}`,
		Vars{Username: "v-a", Password: "pw", Expiration: exp})
	want := `CREATE ROLE "v-a" PASSWORD 'pw' VALID UNTIL '2026-01-02 03:04:05+0000' -- v-a`
	if got != want {
		t.Fatalf("got %q", got)
	}
}

func TestFillURL(t *testing.T) {
	tests := []struct {
		style URLStyle
		in    string
		want  string
	}{
		{URLStyleURL, "postgres://{{username}}:{{password}}@h/db", "postgres://a%40b:p%3A%2F%40%25%20x@h/db"},
		{URLStyleKeyValue, "user={{username}} password={{password}}", `user='a@b' password='p:/@% x'`},
		{URLStyleRaw, "{{username}}:{{password}}@tcp(h)/", "a@b:p:/@% x@tcp(h)/"},
	}
	for _, tt := range tests {
		got := FillURL(tt.in, "a@b", "p:/@% x", tt.style)
		if got != tt.want {
			t.Errorf("style %d: got %q want %q", tt.style, got, tt.want)
		}
	}
}

func TestRedactErr(t *testing.T) {
	err := RedactErr(errors.Join(errors.New("near 's3cr/t' and s3cr%2Ft"), ErrNoUser), "s3cr/t")
	if strings.Contains(err.Error(), "s3cr") {
		t.Fatalf("secret in %q", err)
	}
	if !errors.Is(err, ErrNoUser) {
		t.Fatal("lost ErrNoUser")
	}
	if RedactErr(nil, "x") != nil {
		t.Fatal("nil not kept")
	}
}
