package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/seal"
	"github.com/ledger-secrets/ledger/replay"
)

// twoCheckpoints stores a checkpoint of live, writes more secrets and stores another, then
// destroys a secret, which no checkpoint may bring back; it returns both checkpoints, where
// each was cut, and the log's head.
func twoCheckpoints(t *testing.T, e *env, live *projections.Runner, store *replay.Store) (older []byte, olderCut replay.Cut, newer []byte, cut replay.Cut, head uint64) {
	t.Helper()
	ctx := context.Background()
	older, olderCut = e.checkpointOf(t, live)
	if err := store.Put(ctx, replay.AutoName(olderCut.Seq), older, olderCut.Seq); err != nil {
		t.Fatal(err)
	}
	e.fillKV(t, mountUUID, 20, 5, 1)
	if err := live.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	newer, cut = e.checkpointOf(t, live)
	if err := store.Put(ctx, replay.AutoName(cut.Seq), newer, cut.Seq); err != nil {
		t.Fatal(err)
	}
	e.append(t, ledger.Event{Type: kvview.MetadataDeleted, Subject: ledger.SubjectFor("kv", mountUUID, kvPath(3)),
		Payload: mustJSON(t, kvview.PathPayload{Mount: mountUUID, Path: kvPath(3)})})
	if err := live.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	head, _ = live.Head()
	return older, olderCut, newer, cut, head
}

// localCopy is where a Local in dir keeps its copy of the checkpoint at seq.
func localCopy(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.checkpoint", seq))
}

// TestLoadBaseLocalCopy: a store with a local copy (UseLocal) writes each checkpoint to the
// bucket and, byte for byte, to the node's directory; unseal reads the copy. A copy that is
// cut short, altered, sealed under another keyring, or of another position of the log is
// checked like the bucket's object: a bad one is dropped and the bucket's read instead, and
// whatever is loaded, the views plus the log's tail equal the live views (no secret from a
// checkpoint the log contradicts). Pruning the bucket prunes the copies and the temporary
// files a crash leaves; a failed store leaves no copy.
func TestLoadBaseLocalCopy(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	live, store := e.liveWorkload(t)
	dir := filepath.Join(t.TempDir(), "checkpoints")
	local, err := replay.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	store.UseLocal(ctx, local)

	older, olderCut, good, cut, head := twoCheckpoints(t, e, live, store)
	name := replay.AutoName(cut.Seq)
	if got, err := os.ReadFile(localCopy(dir, cut.Seq)); err != nil || !bytes.Equal(got, good) {
		t.Fatalf("local copy: %d bytes, %v; want the %d bytes stored", len(got), err, len(good))
	}
	if fi, err := os.Stat(localCopy(dir, cut.Seq)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("local copy mode: %v, %v; want 0600", fi, err)
	}

	load := func(t *testing.T, wantSeq uint64, wantLocal bool) {
		t.Helper()
		views := newViews()
		base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, views, replay.BaseOptions{})
		if err != nil || base == nil {
			t.Fatalf("LoadBase = %+v, %v", base, err)
		}
		if base.Seq != wantSeq || base.Took.Local != wantLocal {
			t.Fatalf("loaded seq %d (local copy %v); want %d (local copy %v)", base.Seq, base.Took.Local, wantSeq, wantLocal)
		}
		checkTail(t, e, live, views, base, head)
	}
	t.Run("read from the copy", func(t *testing.T) { load(t, cut.Seq, true) })

	other := newEnv(t)
	for _, tc := range []struct {
		name string
		data func(t *testing.T) []byte
		seq  uint64 // what loads: the copy's own position, or the bucket's (cut.Seq)
		ok   bool   // the copy itself is used
	}{
		{"cut short", func(t *testing.T) []byte { return good[:len(good)*2/3] }, cut.Seq, false},
		{"empty", func(t *testing.T) []byte { return nil }, cut.Seq, false},
		{"a byte altered", func(t *testing.T) []byte { b := bytes.Clone(good); b[len(b)/2] ^= 1; return b }, cut.Seq, false},
		{"sealed under another keyring", func(t *testing.T) []byte {
			f, err := store.Decode(ctx, name) // the bucket's object: the same bytes
			if err != nil {
				t.Fatal(err)
			}
			s, err := f.Open(e.kr)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := s.EncodeCheckpoint(&buf, other.kr); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}, cut.Seq, false},
		// A whole, authentic checkpoint of an earlier position under the newer name: the
		// views start from where it was taken and the tail after it is replayed.
		{"an older checkpoint", func(t *testing.T) []byte { return older }, olderCut.Seq, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(localCopy(dir, cut.Seq), tc.data(t), 0o600); err != nil {
				t.Fatal(err)
			}
			load(t, tc.seq, tc.ok)
			_, err := os.Stat(localCopy(dir, cut.Seq))
			if tc.ok != (err == nil) {
				t.Fatalf("copy kept: %v; want %v", err == nil, tc.ok)
			}
			if !tc.ok {
				// Dropped: the next unseal reads the bucket's without trying it again.
				load(t, cut.Seq, false)
			}
		})
	}

	t.Run("prune", func(t *testing.T) {
		if err := os.WriteFile(localCopy(dir, cut.Seq), good, 0o600); err != nil {
			t.Fatal(err)
		}
		stray := filepath.Join(dir, "checkpoint-123.tmp")
		orphan := localCopy(dir, 1) // a copy whose object the bucket does not hold
		for _, p := range []string{stray, orphan} {
			if err := os.WriteFile(p, []byte("left by a crash"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := store.Prune(ctx, 1, ""); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{stray, orphan, localCopy(dir, olderCut.Seq)} {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s survived the prune: %v", filepath.Base(p), err)
			}
		}
		if _, err := os.Stat(localCopy(dir, cut.Seq)); err != nil {
			t.Fatalf("the kept checkpoint's copy: %v", err)
		}
		load(t, cut.Seq, true)
	})

	t.Run("a failed store leaves no copy", func(t *testing.T) {
		failing := replay.AutoName(head)
		err := store.PutFrom(ctx, failing, head, func(w io.Writer) error {
			if _, err := w.Write(good[:len(good)/2]); err != nil {
				return err
			}
			return errors.New("encoder failed")
		})
		if err == nil {
			t.Fatal("PutFrom succeeded with a failing writer")
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range entries {
			if en.Name() != filepath.Base(localCopy(dir, cut.Seq)) {
				t.Errorf("left in the directory: %s", en.Name())
			}
		}
	})
}

// checkTail replays the log after base into views and compares them with live's: equal, and
// the secret deleted after every checkpoint is absent.
func checkTail(t *testing.T, e *env, live *projections.Runner, views []projections.View, base *replay.Base, head uint64) {
	t.Helper()
	if _, err := replay.Replay(context.Background(), e.log, e.kr, views, base.Seq, base.Hash, head, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range replay.Compare(replay.Digests(live.Views()), replay.Digests(views)) {
		if !r.Match {
			t.Fatalf("view %s: checkpoint + tail != live", r.Name)
		}
	}
	if _, ok := views[2].(*kvview.View).Secret(mountUUID, kvPath(3)); ok {
		t.Fatal("a deleted secret came back")
	}
}

// TestLoadBasePrefetched: a node's newest checkpoint copy read ahead of unseal
// (PrefetchLocal, Store.UsePrefetched) is what LoadBase loads in place of the copy — checked
// the same way, so the views plus the log's tail equal the live views — once; a prefetch
// that stopped before other sections than the load defers, or that was released, is not
// used; a directory without copies prefetches nothing.
func TestLoadBasePrefetched(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	live, store := e.liveWorkload(t)
	dir := filepath.Join(t.TempDir(), "checkpoints")
	if p := replay.PrefetchLocal(dir, nil, time.Minute); p != nil {
		t.Fatalf("prefetch of a missing directory: %q", p.Name())
	}
	local, err := replay.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	store.UseLocal(ctx, local)
	if p := replay.PrefetchLocal(dir, nil, time.Minute); p != nil {
		t.Fatalf("prefetch of an empty directory: %q", p.Name())
	}
	_, _, _, cut, head := twoCheckpoints(t, e, live, store)
	views := newViews()
	lastView := views[len(views)-1].Name() // the checkpoint's last section (runner order)

	// prefetch reads the newest copy ahead, then takes the copy away: a load that still says
	// "local copy" can only have used what was read ahead.
	prefetch := func(t *testing.T, late func(string) bool) *replay.Prefetch {
		t.Helper()
		p := replay.PrefetchLocal(dir, late, time.Minute)
		if p == nil || p.Name() != replay.AutoName(cut.Seq) {
			t.Fatalf("prefetch = %v; want the newest copy, %s", p, replay.AutoName(cut.Seq))
		}
		<-p.Ready()
		if err := os.Rename(localCopy(dir, cut.Seq), localCopy(dir, cut.Seq)+".away"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Rename(localCopy(dir, cut.Seq)+".away", localCopy(dir, cut.Seq)) })
		store.UsePrefetched(p)
		t.Cleanup(func() { store.UsePrefetched(nil); p.Close() })
		return p
	}
	load := func(t *testing.T, wantLocal bool) {
		t.Helper()
		views := newViews()
		base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, views, replay.BaseOptions{})
		if err != nil || base == nil {
			t.Fatalf("LoadBase = %+v, %v", base, err)
		}
		defer base.Close()
		if base.Seq != cut.Seq || base.Took.Local != wantLocal {
			t.Fatalf("loaded seq %d (local copy %v); want %d (local copy %v)", base.Seq, base.Took.Local, cut.Seq, wantLocal)
		}
		checkTail(t, e, live, views, base, head)
	}

	t.Run("taken once", func(t *testing.T) {
		prefetch(t, nil)
		load(t, true)
		load(t, false) // taken: the copy is away, so the bucket's
	})
	t.Run("other late sections", func(t *testing.T) {
		prefetch(t, func(view string) bool { return view == lastView })
		load(t, false)
	})
	t.Run("released", func(t *testing.T) {
		prefetch(t, nil).Close()
		load(t, false)
	})
}
