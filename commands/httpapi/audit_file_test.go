package httpapi_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// TestAuditFileDevice: with a file device, a KV put, a KV read and a denied read appear as
// request and response records for secret/data/…; no value or token is in the file in clear;
// sys/audit-hash of the value is found in it.
func TestAuditFileDevice(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := root.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{
		Type: "file", Description: "the test's file", Options: map[string]string{"file_path": path},
	}); err != nil {
		t.Fatal(err)
	}
	devices, err := root.Sys().ListAudit()
	if err != nil {
		t.Fatal(err)
	}
	if d := devices["file/"]; d == nil || d.Type != "file" || d.Path != "file/" || d.Options["file_path"] != path || d.Description != "the test's file" {
		t.Fatalf("sys/audit = %+v", devices)
	}

	const value = "correct-horse-battery-staple-7421"
	if _, err := root.KVv2("secret").Put(t.Context(), "app/db", map[string]any{"password": value}); err != nil {
		t.Fatal(err)
	}
	got, err := root.KVv2("secret").Get(t.Context(), "app/db")
	if err != nil || got.Data["password"] != value {
		t.Fatalf("kv get = %+v, %v", got, err)
	}
	putPolicy(t, root, "other-only", `path "secret/data/other/*" { capabilities = ["read"] }`)
	limited := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"other-only"}})
	_, err = s.Client(t, limited.ClientToken).KVv2("secret").Get(t.Context(), "app/db")
	denied(t, err)

	const p = "secret/data/app/db"
	lines := waitForLines(t, path, 10*time.Second, "put, read and denied read in the audit file", func(ls []auditLine) bool {
		return len(find(ls, "response", "create", p)) == 1 && len(find(ls, "response", "read", p)) == 2
	})
	for _, typ := range []string{"request", "response"} {
		if n := len(find(lines, typ, "create", p)); n != 1 {
			t.Errorf("%d %s entries for the put, want 1", n, typ)
		}
		if n := len(find(lines, typ, "read", p)); n != 2 {
			t.Errorf("%d %s entries for the reads, want 2", n, typ)
		}
	}
	var ok, refused []auditLine
	for _, l := range find(lines, "response", "read", p) {
		if l.Error == "" {
			ok = append(ok, l)
		} else {
			refused = append(refused, l)
		}
	}
	if len(ok) != 1 || len(refused) != 1 || refused[0].Error != "permission denied" {
		t.Fatalf("reads: %d ok, %d refused %+v", len(ok), len(refused), refused)
	}
	read := ok[0]
	if read.Response == nil || read.Request.MountType != "kv" {
		t.Fatalf("read response entry: %s", read.Raw)
	}
	inner, _ := read.Response.Data["data"].(map[string]any)
	if pw, _ := inner["password"].(string); !strings.HasPrefix(pw, "hmac-sha256:") {
		t.Fatalf("response data.data.password = %q, want an HMAC", pw)
	}
	if !strings.HasPrefix(read.Request.ClientToken, "hmac-sha256:") || !strings.HasPrefix(read.Request.ClientTokenAccessor, "hmac-sha256:") {
		t.Fatalf("request client_token %q / accessor %q: want HMACs", read.Request.ClientToken, read.Request.ClientTokenAccessor)
	}
	if refused[0].Auth == nil || refused[0].Auth["display_name"] == nil {
		t.Fatalf("denied read: no auth block: %s", refused[0].Raw)
	}
	if put := find(lines, "request", "create", p)[0]; put.Ledger == nil || put.Ledger.Stream != "LEDGER" {
		t.Fatalf("the put's record does not come from the log: %s", put.Raw)
	}
	if read.Ledger == nil || read.Ledger.Stream != "LEDGER_AUDIT" {
		t.Fatalf("the read's record does not come from LEDGER_AUDIT: %s", read.Raw)
	}

	if os.Getenv("AUDIT_DEBUG") != "" {
		for _, l := range lines {
			t.Log(l.Raw)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if leak := containsAny(string(raw), value, s.RootToken, limited.ClientToken, limited.Accessor); leak != "" {
		t.Fatalf("the audit file holds %q in clear", leak)
	}
	hash, err := root.Sys().AuditHash("file", value)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "hmac-sha256:") || !strings.Contains(string(raw), hash) {
		t.Fatalf("sys/audit-hash = %q, not found in the audit file", hash)
	}
	tokHash, _ := root.Sys().AuditHash("file", limited.ClientToken)
	if refused[0].Request.ClientToken != tokHash {
		t.Fatalf("denied read's client_token %q, want audit-hash of the token %q", refused[0].Request.ClientToken, tokHash)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if _, err := root.Sys().AuditHash("nosuch", "x"); err == nil {
		t.Fatal("audit-hash of an unknown device succeeded")
	}

	// A device with a working sink never fails, idles without errors, and catches up fully.
	time.Sleep(6 * time.Second) // past an idle fetch's wait
	eventually(t, 10*time.Second, "the device caught up", func() bool {
		_, data := sysLedger(t, s, s.RootToken, "GET", "devices")
		list, _ := data["devices"].([]any)
		st, _ := list[0].(map[string]any)
		if num(t, st["failures"]) != 0 || st["healthy"] != true {
			t.Fatalf("a healthy device reports failures: %v", st)
		}
		return num(t, st["pending"]) == 0 && num(t, st["delivered"]) >= int64(len(lines))
	})

	// Disabled: no more lines.
	if err := root.Sys().DisableAudit("file"); err != nil {
		t.Fatal(err)
	}
	if devices, _ := root.Sys().ListAudit(); len(devices) != 0 {
		t.Fatalf("after disable, sys/audit = %+v", devices)
	}
	before := len(readAuditFile(t, path))
	root.KVv2("secret").Put(t.Context(), "app/after", map[string]any{"k": "v"})
	time.Sleep(500 * time.Millisecond)
	for _, l := range readAuditFile(t, path)[before:] {
		if l.Request.Path == "secret/data/app/after" {
			t.Fatalf("a disabled device still writes: %s", l.Raw)
		}
	}
}
