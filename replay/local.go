package replay

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Local is a node's own copy of the checkpoints it stores in the bucket (Store.UseLocal): one
// file per checkpoint, in a directory beside the embedded JetStream server's, byte for byte the
// object. Unseal reads the newest checkpoint from here when it can: read from the bucket, a
// checkpoint's bytes are copied several times on their way (JetStream's block cache, its
// message, the in-process connection, the client's message, the section buffer), mostly into
// fresh memory; at a million secrets that read was a quarter of a restart (README:
// Checkpoints).
//
// The copy is a cache, never the only copy: it is written while the object is (from the same
// encoder, so it costs no second cut or sealing) and named only once the object is stored, it
// is not fsync'd, and a copy that is missing, cut short or altered is skipped for the
// bucket's. It is checked exactly as an uploaded snapshot file is (framing, every entry's
// checksum, the seals under the keyring) and then as the bucket's object is (the cluster, and
// the log's batch at the checkpoint's position). Like the bucket it holds sealed sections only,
// in files only this user may read.
type Local struct {
	dir     string
	mu      sync.Mutex
	writing map[string]bool // temporary files being written (never swept)
}

const (
	localSuffix    = ".checkpoint"
	localTmpSuffix = ".tmp"
)

// OpenLocal creates (or opens) the directory of a node's checkpoint copies.
func OpenLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint copies: %w", err)
	}
	return &Local{dir: dir, writing: map[string]bool{}}, nil
}

// path is where the copy of automatic snapshot name lives; false for any other name (uploads
// and restored snapshots are read from the bucket only).
func (l *Local) path(name string) (string, bool) {
	seq, ok := autoSeq(name)
	if !ok {
		return "", false
	}
	return filepath.Join(l.dir, fmt.Sprintf("%020d%s", seq, localSuffix)), true
}

// localWrite writes a copy beside the object. A failure to write it never fails the object's
// store: it only means there is no copy (commit says so).
type localWrite struct {
	l    *Local
	f    *os.File
	path string
	err  error
}

// create starts the copy of checkpoint name; nil when name has none, or the file cannot be made.
func (l *Local) create(name string) *localWrite {
	p, ok := l.path(name)
	if !ok {
		return nil
	}
	f, err := os.CreateTemp(l.dir, "checkpoint-*"+localTmpSuffix) // mode 0600
	if err != nil {
		return nil
	}
	l.mu.Lock()
	l.writing[filepath.Base(f.Name())] = true
	l.mu.Unlock()
	return &localWrite{l: l, f: f, path: p}
}

func (w *localWrite) Write(p []byte) (int, error) {
	if w.err == nil {
		_, w.err = w.f.Write(p)
	}
	return len(p), nil
}

// commit names the copy, once its object is stored. Not fsync'd: a copy a crash of the
// machine leaves short or empty fails its checks and the bucket's is read instead.
func (w *localWrite) commit() error {
	defer w.done()
	if err := w.f.Close(); w.err == nil {
		w.err = err
	}
	if w.err == nil {
		w.err = os.Rename(w.f.Name(), w.path)
	}
	if w.err != nil {
		os.Remove(w.f.Name())
	}
	return w.err
}

// abort drops the copy (the object was not stored).
func (w *localWrite) abort() {
	defer w.done()
	w.f.Close()
	os.Remove(w.f.Name())
}

func (w *localWrite) done() {
	w.l.mu.Lock()
	delete(w.l.writing, filepath.Base(w.f.Name()))
	w.l.mu.Unlock()
}

// open opens the copy of checkpoint name and gives its size; an error wrapping os.ErrNotExist
// when there is none.
func (l *Local) open(name string) (*os.File, int64, error) {
	p, ok := l.path(name)
	if !ok {
		return nil, 0, fmt.Errorf("checkpoint copy of %s: %w", name, os.ErrNotExist)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// remove deletes the copy of checkpoint name, if any.
func (l *Local) remove(name string) {
	if p, ok := l.path(name); ok {
		os.Remove(p)
	}
}

// keepOnly deletes every copy but those of names, and temporary files a crash left behind.
func (l *Local) keepOnly(names []string) {
	keep := map[string]bool{}
	for _, n := range names {
		if p, ok := l.path(n); ok {
			keep[filepath.Base(p)] = true
		}
	}
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasSuffix(n, localSuffix) && !keep[n]:
		case strings.HasSuffix(n, localTmpSuffix) && !l.writing[n]:
		default:
			continue
		}
		os.Remove(filepath.Join(l.dir, n))
	}
}

// tee writes what write writes to w and to lw as well (lw nil: to w only).
func tee(write func(io.Writer) error, lw *localWrite) func(io.Writer) error {
	if lw == nil {
		return write
	}
	return func(w io.Writer) error { return write(io.MultiWriter(w, lw)) }
}
