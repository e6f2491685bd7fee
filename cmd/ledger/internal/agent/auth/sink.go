package auth

import (
	"fmt"
	"os"
	"path/filepath"
)

// FileSink writes the current token to a file with a fixed mode.
type FileSink struct {
	Path string
	Mode os.FileMode
}

// Check fails when the sink's directory is missing or not writable, so that
// the agent stops at start instead of authenticating for nobody.
func (s FileSink) Check() error {
	dir := filepath.Dir(s.Path)
	f, err := os.CreateTemp(dir, ".ledger-agent-check-*")
	if err != nil {
		return fmt.Errorf("sink %s: the directory %s must exist and be writable: %w", s.Path, dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Write replaces the file atomically: a reader sees the old token or the
// new one, never a partial write, and the file never exists with a wider
// mode than configured.
func (s FileSink) Write(token string) error {
	return WriteAtomic(s.Path, []byte(token), s.Mode)
}

// WriteAtomic writes data to path through a temporary file in the same
// directory, created with mode, synced, then renamed over path.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes the file 0600; chmod before any byte is written.
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return nil
}
