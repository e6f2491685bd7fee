package httpapi

import (
	"regexp"
	"testing"
)

// TestRequestIDShape: request ids are Vault's 8-4-4-4-12 lowercase hex and do not repeat.
func TestRequestIDShape(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		if !shape.MatchString(id) {
			t.Fatalf("request id %q is not 8-4-4-4-12 hex", id)
		}
		if seen[id] {
			t.Fatalf("request id %q repeated", id)
		}
		seen[id] = true
	}
}
