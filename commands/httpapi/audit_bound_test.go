package httpapi_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/audit"
)

// TestAuditRecordBounded: an allowed KV write of 50,000 fields, its read (a LEDGER_AUDIT record),
// and an allowed write with a 900 KB value under a key the device keeps in the clear all give
// audit lines of a few KB, with a ledger_audit_truncated marker that is a string; the big value
// is in the file only as its HMAC, and no value is in the file in clear.
func TestAuditRecordBounded(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := root.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{
		Type: "file", Options: map[string]string{"file_path": path, "audit_non_hmac_request_keys": "note"},
	}); err != nil {
		t.Fatal(err)
	}
	// The listener refuses an object of more than 10,000 keys (as Vault does), so the 50,000
	// fields come as five objects of 10,000.
	wide := make(map[string]any, 5)
	for g := range 5 {
		m := make(map[string]any, 10000)
		for i := range 10000 {
			m[fmt.Sprintf("f%05d", i)] = fmt.Sprintf("wide-secret-%d-%05d", g, i)
		}
		wide[fmt.Sprintf("g%d", g)] = m
	}
	if _, err := root.KVv2("secret").Put(t.Context(), "wide", wide); err != nil {
		t.Fatal(err)
	}
	if got, err := root.KVv2("secret").Get(t.Context(), "wide"); err != nil || len(got.Data) != 5 {
		t.Fatalf("kv get wide: %v", err)
	}
	big := strings.Repeat("big-secret-", 900_000/11)
	if _, err := root.KVv2("secret").Put(t.Context(), "big", map[string]any{"note": big, "small": "kept-short"}); err != nil {
		t.Fatal(err)
	}

	lines := waitForLines(t, path, 20*time.Second, "the wide put and read and the big put", func(ls []auditLine) bool {
		return len(find(ls, "response", "create", "secret/data/wide")) == 1 && len(find(ls, "response", "read", "secret/data/wide")) == 1 &&
			len(find(ls, "response", "create", "secret/data/big")) == 1
	})
	const limit = 16 << 10
	marker := func(m map[string]any, what string) string {
		t.Helper()
		inner, _ := m["data"].(map[string]any)
		mk, ok := inner[audit.TruncatedKey].(string)
		if !ok || !strings.Contains(mk, "audit record bounded") {
			t.Fatalf("%s: no string %s marker in data.data (%d keys)", what, audit.TruncatedKey, len(inner))
		}
		return mk
	}
	for _, op := range []string{"create", "read"} {
		for _, typ := range []string{"request", "response"} {
			ls := find(lines, typ, op, "secret/data/wide")
			if len(ls) != 1 {
				t.Fatalf("%d %s %s lines for wide", len(ls), typ, op)
			}
			if n := len(ls[0].Raw); n > limit {
				t.Errorf("%s %s line for 50,000 fields is %d bytes, want <= %d", typ, op, n, limit)
			}
		}
	}
	if mk := marker(find(lines, "request", "create", "secret/data/wide")[0].Request.Data, "wide put"); !strings.Contains(mk, "4 of 5 entries dropped") {
		t.Errorf("wide put marker = %q", mk)
	}
	marker(find(lines, "response", "read", "secret/data/wide")[0].Response.Data, "wide read")

	bl := find(lines, "request", "create", "secret/data/big")[0]
	if n := len(bl.Raw); n > limit {
		t.Errorf("big put line is %d bytes, want <= %d", n, limit)
	}
	if mk := marker(bl.Request.Data, "big put"); !strings.Contains(mk, "values longer than") {
		t.Errorf("big put marker = %q", mk)
	}
	inner, _ := bl.Request.Data["data"].(map[string]any)
	if note, _ := inner["note"].(string); note != hmacOf(t, root, "file", big) {
		t.Errorf("big note in the record = %.100q, want its HMAC", note)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(b)
	if leak := containsAny(raw, "big-secret-big-secret", "wide-secret-0-00001", "kept-short"); leak != "" {
		t.Fatalf("audit file holds %q in clear", leak)
	}
}

func hmacOf(t *testing.T, c *vault.Client, device, s string) string {
	t.Helper()
	h, err := c.Sys().AuditHash(device, s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
