package httpapi_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// TestAuditFileDeviceOutage: the file device's directory is replaced by a regular file for a
// while (a real failure, which root cannot bypass: open fails with ENOTDIR). Requests go on,
// the device lags and says so, and once the directory is back every record arrives once, in
// order.
func TestAuditFileDeviceOutage(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	base := t.TempDir()
	dir := filepath.Join(base, "logs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.log")
	if err := root.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": path}}); err != nil {
		t.Fatal(err)
	}
	put := func(i int) {
		t.Helper()
		if _, err := root.KVv2("secret").Put(t.Context(), fmt.Sprintf("seq/%03d", i), map[string]any{"n": fmt.Sprint(i)}); err != nil {
			t.Fatalf("put %d while the device is down: %v", i, err)
		}
		if _, err := root.KVv2("secret").Get(t.Context(), fmt.Sprintf("seq/%03d", i)); err != nil {
			t.Fatalf("get %d while the device is down: %v", i, err)
		}
	}
	const before, during, after = 5, 20, 5
	for i := range before {
		put(i)
	}
	waitForLines(t, path, 10*time.Second, "records before the outage", func(ls []auditLine) bool {
		return len(find(ls, "response", "read", fmt.Sprintf("secret/data/seq/%03d", before-1))) == 1
	})

	// The outage: the directory moves away and a regular file takes its name.
	away := filepath.Join(base, "logs.away")
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := before; i < before+during; i++ {
		put(i)
	}
	var status map[string]any
	eventually(t, 10*time.Second, "the device reports its failure", func() bool {
		_, data := sysLedger(t, s, s.RootToken, "GET", "devices")
		list, _ := data["devices"].([]any)
		if len(list) != 1 {
			return false
		}
		status, _ = list[0].(map[string]any)
		return status["healthy"] == false && num(t, status["failures"]) > 0 && status["last_error"] != nil && num(t, status["pending"]) > 0
	})
	t.Logf("device while down: %v", status)

	// Restored.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, dir); err != nil {
		t.Fatal(err)
	}
	for i := before + during; i < before+during+after; i++ {
		put(i)
	}
	total := before + during + after
	lines := waitForLines(t, path, 60*time.Second, "every record after the outage", func(ls []auditLine) bool {
		return len(find(ls, "response", "read", fmt.Sprintf("secret/data/seq/%03d", total-1))) >= 1 &&
			len(find(ls, "response", "create", fmt.Sprintf("secret/data/seq/%03d", total-1))) >= 1
	})
	eventually(t, 10*time.Second, "the device reports it recovered", func() bool {
		_, data := sysLedger(t, s, s.RootToken, "GET", "devices")
		list, _ := data["devices"].([]any)
		status, _ = list[0].(map[string]any)
		return status["healthy"] == true
	})
	lines = readAuditFile(t, path)

	// Every record once, in order: per stream, positions strictly increase, request before
	// response; and each put and get is there exactly once.
	type key struct {
		stream string
		seq    uint64
		index  uint32
		typ    string
	}
	seen := map[key]bool{}
	last := map[string]key{}
	for _, l := range lines {
		if l.Ledger == nil {
			t.Fatalf("line without position: %s", l.Raw)
		}
		k := key{l.Ledger.Stream, l.Ledger.Seq, l.Ledger.Index, l.Type}
		if seen[k] {
			t.Fatalf("duplicate entry %+v", k)
		}
		seen[k] = true
		if p, ok := last[k.stream]; ok {
			inOrder := k.seq > p.seq || (k.seq == p.seq && (k.index > p.index || (k.index == p.index && p.typ == "request" && k.typ == "response")))
			if !inOrder {
				t.Fatalf("%s out of order: %+v after %+v", k.stream, k, p)
			}
		}
		last[k.stream] = k
	}
	for i := range total {
		p := fmt.Sprintf("secret/data/seq/%03d", i)
		for _, op := range []string{"create", "read"} {
			for _, typ := range []string{"request", "response"} {
				if n := len(find(lines, typ, op, p)); n != 1 {
					t.Errorf("%s %s %s: %d entries, want 1", typ, op, p, n)
				}
			}
		}
	}
}
