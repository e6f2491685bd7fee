package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tokenFileName is the token helper file in the user's home directory, the
// analogue of Vault's ~/.vault-token.
const tokenFileName = ".ledger-token"

// tokenFilePath locates the token helper file from the invocation's
// environment (never the process's, so tests stay hermetic).
func tokenFilePath(env map[string]string) (string, error) {
	home := env["HOME"]
	if home == "" {
		home = env["USERPROFILE"]
	}
	if home == "" {
		return "", errors.New("cannot locate the token helper file: HOME is not set")
	}
	return filepath.Join(home, tokenFileName), nil
}

// readTokenFile returns the stored token, or "" when there is none.
func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read token helper file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeTokenFile stores token with mode 0600. It writes a temporary file
// and renames it so that a pre-existing file with looser permissions is
// replaced, not rewritten in place, and a crash never leaves half a token.
func writeTokenFile(path, token string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tokenFileName+".tmp-*")
	if err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("store token: %w", err)
	}
	if _, err := f.WriteString(token); err != nil {
		f.Close()
		return fmt.Errorf("store token: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("store token: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	return nil
}
