package commands

import "testing"

func TestMatchSegments(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"issuer/+/pem", "issuer/default/pem", true},
		{"issuer/+/pem", "issuer//pem", false},
		{"issuer/+/pem", "issuer/a/b/pem", false},
		{"issuer/+/pem", "issuer/a", false},
		{"issuer/+/crl/*", "issuer/a/crl/pem", true},
		{"issuer/+/crl/*", "issuer/a/crl", false},
		{"issuer/+", "issuer/a", true},
	} {
		if got := matchSegments(tc.pattern, tc.path); got != tc.want {
			t.Errorf("matchSegments(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
	if !matchAny([]string{"issuer/+/json"}, "issuer/x/json") || matchAny([]string{"issuer/+/json"}, "issuer/x") {
		t.Fatal("matchAny does not honour + patterns")
	}
}
