package database

import (
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines/database/mysql"
	"github.com/ledger-secrets/ledger/engines/database/postgresql"
)

func TestGenerateUsername(t *testing.T) {
	now := time.Unix(1767225600, 0)
	tests := []struct {
		name, tmpl, display, role string
		max                       int
		prefix                    string
		wantLen                   int
	}{
		{name: "postgresql default", tmpl: postgresql.DefaultUsernameTemplate, display: "token", role: "app-readonly", max: 63,
			prefix: "v-token-app-read-", wantLen: len("v-token-app-read-") + 20 + 1 + 10},
		{name: "mysql default is cut at 32", tmpl: mysql.DefaultUsernameTemplate, display: "approle", role: "app-readonly", max: 32,
			prefix: "v-approle-app-readon-", wantLen: 32},
		{name: "hostile display name", tmpl: postgresql.DefaultUsernameTemplate, display: `x"; DROP`, role: "r", max: 63,
			prefix: "v-x___DROP"[:10], wantLen: 0},
		{name: "custom", tmpl: `{{ .RoleName | uppercase }}-{{ unix_time }}`, display: "t", role: "ro", max: 63, prefix: "RO-1767225600", wantLen: 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := GenerateUsername(tt.tmpl, tt.display, tt.role, now, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got, tt.prefix) || (tt.wantLen != 0 && len(got) != tt.wantLen) || len(got) > tt.max {
				t.Fatalf("got %q (%d)", got, len(got))
			}
			if strings.ContainsAny(got, `"'`) {
				t.Fatalf("quote in %q", got)
			}
		})
	}
	if _, err := GenerateUsername(`{{ "a'b" }}`, "t", "r", now, 63); err == nil {
		t.Fatal("a username with a quote was accepted")
	}
	if _, err := GenerateUsername(`{{ nope }}`, "t", "r", now, 63); err == nil {
		t.Fatal("an unknown function was accepted")
	}
}

func TestNewPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		p, err := NewPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) < 20 || !strings.ContainsAny(p, "abcdefghijklmnopqrstuvwxyz") || !strings.ContainsAny(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") ||
			!strings.ContainsAny(p, "0123456789") || !strings.Contains(p, "-") || strings.Trim(p, passwordCharset) != "" {
			t.Fatalf("password %q breaks the rules", p)
		}
		if seen[p] {
			t.Fatal("repeated password")
		}
		seen[p] = true
	}
}

func TestRedactConnURL(t *testing.T) {
	tests := map[string]string{
		"postgresql://{{username}}:{{password}}@h:5432/db":   "postgresql://{{username}}:{{password}}@h:5432/db",
		"postgresql://admin:s3cret@h:5432/db?x=a@b":          "postgresql://admin:*****@h:5432/db?x=a@b",
		"{{username}}:{{password}}@tcp(127.0.0.1:3306)/":     "{{username}}:{{password}}@tcp(127.0.0.1:3306)/",
		"root:p@ss@tcp(127.0.0.1:3306)/db":                   "root:*****@tcp(127.0.0.1:3306)/db",
		"host=h user={{username}} password=s3cret dbname=db": "host=h user={{username}} password=***** dbname=db",
		"host=h password={{password}}":                       "host=h password={{password}}",
	}
	for in, want := range tests {
		if got := redactConnURL(in); got != want {
			t.Errorf("redactConnURL(%q) = %q, want %q", in, got, want)
		}
	}
}
