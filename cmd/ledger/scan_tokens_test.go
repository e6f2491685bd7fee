package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestTokenise(t *testing.T) {
	for _, c := range []struct {
		line string
		want []string
	}{
		{`DB_PASSWORD="prod-db-2024!"`, []string{"prod-db-2024!"}},
		{`password: correct horse battery staple`, []string{"correct horse battery staple"}},
		{`url = postgres://app:s3cur3_p@ss@db:5432/x`, []string{"s3cur3_p@ss"}},
		{`url = postgres://app:hunter2hunter2@db:5432/x`, []string{"hunter2hunter2"}},
		{`export TOKEN=hvs.CAESIJabcdef`, []string{"hvs.CAESIJabcdef"}},
		{`const k = 'A1b-2Cd-3Ef-4Gh';`, []string{"A1b-2Cd-3Ef-4Gh"}},
		{"caf\xe9 pw=valid-after-invalid", []string{"valid-after-invalid"}},
	} {
		var got []string
		tokenise([]byte(c.line), func(s string) { got = append(got, s) })
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q: candidates %q lack %q", c.line, got, w)
			}
		}
		for _, g := range got {
			if len(g) < scanMinLen || !strings.Contains(c.line, g) {
				t.Errorf("%q: bad candidate %q", c.line, g)
			}
		}
	}
	var got []string
	tokenise([]byte("short x=abc \xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"), func(s string) { got = append(got, s) })
	if len(got) != 0 {
		t.Errorf("short or invalid UTF-8 candidates kept: %q", got)
	}
}

func TestScanFilesBadInputs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("bin", "abc\x00secret=binary-secret-1")
	write("huge", strings.Repeat("x", 5000)+"\nsecret=past-the-limit-1\n")
	write("latin1", "\xe9\xe9\xe9 secret=in-latin1-file-1\n")
	write("longline", strings.Repeat("y", 3<<20)+"\n")
	if err := os.MkdirAll(filepath.Join(dir, ".git"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(".git/config", "secret=inside-dot-git-1")
	c := newCandidates()
	if err := c.scanTree(context.Background(), dir, 4096); err != nil {
		t.Fatal(err)
	}
	if c.binary != 1 || c.huge < 1 || c.files != 4 {
		t.Fatalf("files %d binary %d huge %d", c.files, c.binary, c.huge)
	}
	for _, s := range []string{"binary-secret-1", "past-the-limit-1", "inside-dot-git-1"} {
		if _, ok := c.where[s]; ok {
			t.Errorf("%s was read", s)
		}
	}
	if locs := c.where["in-latin1-file-1"]; len(locs) != 1 || locs[0].Line != 1 {
		t.Errorf("a file with invalid UTF-8 was not read: %v", locs)
	}
}
