package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/agent/config"
)

func TestFileSink(t *testing.T) {
	dir := t.TempDir()
	s := FileSink{Path: filepath.Join(dir, "token"), Mode: 0o600}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"first", "second"} {
		if err := s.Write(tok); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(s.Path)
		fi, _ := os.Stat(s.Path)
		if string(b) != tok || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%q mode %o", b, fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("leftover temp files: %v", entries)
	}
	if err := (FileSink{Path: filepath.Join(dir, "nope", "token")}).Check(); err == nil || !strings.Contains(err.Error(), "must exist and be writable") {
		t.Errorf("missing dir: %v", err)
	}
}

// The secret ID file is removed after reading, and the cached value is used
// for the next login; a new file replaces it.
func TestAppRoleSecretIDCache(t *testing.T) {
	dir := t.TempDir()
	sid := filepath.Join(dir, "sid")
	os.WriteFile(sid, []byte("s1\n"), 0o600)
	a := &appRole{cfg: config.Method{SecretIDFile: sid, RemoveSecretIDFile: true}}
	for i, want := range []string{"s1", "s1"} {
		got, err := a.readSecretID()
		if err != nil || got != want {
			t.Fatalf("read %d: %q %v", i, got, err)
		}
		if _, err := os.Stat(sid); !os.IsNotExist(err) {
			t.Fatalf("secret ID file still there")
		}
	}
	os.WriteFile(sid, []byte("s2"), 0o600)
	if got, _ := a.readSecretID(); got != "s2" {
		t.Errorf("new file: %q", got)
	}
	empty := &appRole{cfg: config.Method{SecretIDFile: filepath.Join(dir, "none")}}
	if _, err := empty.readSecretID(); err == nil {
		t.Error("no file and nothing cached: no error")
	}
}
