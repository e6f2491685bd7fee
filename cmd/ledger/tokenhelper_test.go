package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTokenFileMode0600(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	path, err := tokenFilePath(map[string]string{"HOME": home})
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(home, ".ledger-token") {
		t.Errorf("path = %s", path)
	}
	// A pre-existing, world-readable file must end up 0600 too.
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeTokenFile(path, "hvs.new"); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("token file mode = %o, want 600", mode)
	}
	got, err := readTokenFile(path)
	if err != nil || got != "hvs.new" {
		t.Errorf("readTokenFile = %q, %v; want hvs.new", got, err)
	}
	entries, _ := os.ReadDir(home)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestTokenFileMissing(t *testing.T) {
	t.Parallel()
	got, err := readTokenFile(filepath.Join(t.TempDir(), ".ledger-token"))
	if err != nil || got != "" {
		t.Errorf("missing token file: %q, %v; want empty, nil", got, err)
	}
	if _, err := tokenFilePath(map[string]string{}); err == nil {
		t.Error("want an error without HOME")
	}
}
