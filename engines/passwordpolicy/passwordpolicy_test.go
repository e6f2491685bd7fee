package passwordpolicy

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

const alnum = `
length = 20
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 1
}
rule "charset" {
  charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 1
}
rule "charset" {
  charset = "0123456789"
  min-chars = 2
}
`

func TestGenerateFollowsRules(t *testing.T) {
	p, err := Check(context.Background(), alnum)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 200 {
		pw, err := p.Generate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if utf8.RuneCountInString(pw) != 20 {
			t.Fatalf("%q has %d characters", pw, len(pw))
		}
		if !strings.ContainsAny(pw, "abcdefghijklmnopqrstuvwxyz") || !strings.ContainsAny(pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Fatalf("%q breaks a rule", pw)
		}
		digits := 0
		for _, r := range pw {
			if r >= '0' && r <= '9' {
				digits++
			}
		}
		if digits < 2 {
			t.Fatalf("%q has %d digits, want ≥ 2", pw, digits)
		}
		seen[pw] = true
	}
	if len(seen) < 200 {
		t.Fatalf("only %d distinct passwords in 200", len(seen))
	}
}

func TestParseForms(t *testing.T) {
	for name, text := range map[string]string{
		"base64":     base64.StdEncoding.EncodeToString([]byte(alnum)),
		"json":       `{"length": 8, "rule": {"charset": {"charset": "ab", "min-chars": 1}}}`,
		"string len": "length = \"12\"\nrule \"charset\" { charset = \"xyz\" }",
		"unicode":    "length = 6\nrule \"charset\" {\n charset = \"äöü\"\n min-chars = 2\n}",
	} {
		p, err := Check(context.Background(), text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := p.Generate(context.Background()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestInvalidPolicies(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"", "empty"},
		{"length = 4\nrule \"charset\" {\n charset = \"abc\"\n min-chars = 5\n}", "require at least 5 characters but 4 is specified"},
		{"length = 3\nrule \"charset\" { charset = \"abc\" }", "between 4 and 100"},
		{"length = 101\nrule \"charset\" { charset = \"abc\" }", "between 4 and 100"},
		{"length = 0\nrule \"charset\" { charset = \"abc\" }", "length must be > 0"},
		{"length = 10", "no charset"},
		{"rule \"charset\" { charset = \"abc\" }", "length"},
		{"length = 10\nrule \"charset\" { charset = \"a\tb\" }", "non-printable"},
		{"length = 10\nrule \"regex\" { pattern = \".*\" }", "unrecognized rule type"},
		{"length = 10\nrule \"charset\" {\n charset = \"ab\"\n min-chars = -1\n}", "cannot be negative"},
		{"length = 10\nrule \"charset\" {\n charset = \"ab\"\n extra = 1\n}", "Unsupported argument"},
		{"length = 10.5\nrule \"charset\" { charset = \"ab\" }", "whole number"},
		{"length = 10 rule", "unable to decode"},
		{"length = 10\nrule \"charset\" { charset = \"\" }", "no charset"},
		// Possible in principle, hopeless in practice: refused at write time.
		{"length = 100\nrule \"charset\" {\n charset = \"abcdefghijklmnopqrstuvwxyz0123456789\"\n}\nrule \"charset\" {\n charset = \"a\"\n min-chars = 50\n}\nrule \"charset\" {\n charset = \"b\"\n min-chars = 50\n}", "unable to generate"},
	} {
		_, err := Check(context.Background(), tc.text)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want ErrInvalid containing %q", tc.text, err, tc.want)
		}
	}
}
