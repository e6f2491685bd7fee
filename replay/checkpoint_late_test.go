package replay_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/projections"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/seal"
	"github.com/ledger-secrets/ledger/replay"
)

// TestCheckpointLateSectionsReadLast: a checkpoint written with views named last holds their
// sections after the others; unseal's LoadBase (BaseOptions.Later) restores the others without
// reading them, and Base.LaterParts reads, checks and opens them afterwards — into views equal
// to the live ones. Damage confined to the late sections lets the early views load but fails
// LaterParts (the server then rebuilds those views from the log); damage to an early section
// makes the checkpoint unusable, as before. A checkpoint of an earlier build (views in the
// runner's order) still serves every view.
func TestCheckpointLateSectionsReadLast(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	live, store := e.liveWorkload(t)
	const late1, late2 = "kv", "lease" // the largest and a small one, both last
	cp, cut := e.checkpointOf(t, live, late1, late2)
	names, files := tarEntries(t, cp)
	n := len(names)
	if n < 6 || !slices.Equal(names[n-4:], []string{"views/kv.sealed", "views/lease.sealed", "SHA256SUMS", "SHA256SUMS.sealed"}) {
		t.Fatalf("archive order %v: the late views, then the sums, last", names)
	}
	name := replay.AutoName(cut.Seq)
	if err := store.Put(ctx, name, cp, cut.Seq); err != nil {
		t.Fatal(err)
	}
	empty := replay.Digests(newViews())
	load := func(t *testing.T) ([]projections.View, *replay.Base) {
		t.Helper()
		views := newViews()
		base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, views,
			replay.BaseOptions{Later: views[2:]})
		if err != nil || base == nil || base.Seq != cut.Seq {
			t.Fatalf("LoadBase = %+v, %v; want the checkpoint at %d", base, err, cut.Seq)
		}
		return views, base
	}

	t.Run("whole", func(t *testing.T) {
		views, base := load(t)
		got := replay.Digests(views)
		want := replay.Digests(live.Views())
		for i := range views {
			if i < 2 && got[i].Digest != want[i].Digest {
				t.Fatalf("view %s not restored by LoadBase", got[i].Name)
			}
			if i >= 2 && got[i].Digest != empty[i].Digest {
				t.Fatalf("view %s was restored by LoadBase; it is deferred", got[i].Name)
			}
		}
		parts, err := base.LaterParts(e.kr, views[2:])
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range parts {
			if p.Name != views[2+i].Name() || p.Data == nil {
				t.Fatalf("late part %d: %q with %d bytes; want %s", i, p.Name, len(p.Data), views[2+i].Name())
			}
			if err := views[2+i].Restore(p.Data); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range replay.Compare(replay.Digests(live.Views()), replay.Digests(views)) {
			if !r.Match {
				t.Fatalf("view %s: loaded in two steps != live", r.Name)
			}
		}
		if _, ok := views[2].(*kvview.View).Secret(mountUUID, "app/000001"); !ok {
			t.Fatal("a secret of the workload is missing after the late load")
		}
		if _, err := base.LaterParts(e.kr, views[2:]); err == nil {
			t.Fatal("LaterParts a second time succeeded")
		}
	})

	t.Run("given up", func(t *testing.T) {
		views, base := load(t)
		base.Close()
		base.Close()
		if _, err := base.LaterParts(e.kr, views[2:]); err == nil {
			t.Fatal("LaterParts after Close succeeded: the late views would start empty")
		}
	})

	// A section's bytes altered, the archive otherwise intact (sums recomputed by a forger).
	alter := func(section string) []byte {
		fs := map[string][]byte{}
		for k, v := range files {
			fs[k] = bytes.Clone(v)
		}
		fs[section][len(fs[section])/2] ^= 0x20
		return repackBare(t, names, fs)
	}
	put := func(t *testing.T, data []byte) string {
		t.Helper()
		name := replay.AutoName(cut.Seq + 1)
		if err := store.Put(ctx, name, data, cut.Seq+1); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Delete(ctx, name) })
		return name
	}
	t.Run("late section damaged", func(t *testing.T) {
		put(t, alter("views/kv.sealed"))
		views := newViews()
		base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, views,
			replay.BaseOptions{Later: views[2:]})
		if err != nil || base == nil || base.Name != replay.AutoName(cut.Seq+1) {
			t.Fatalf("LoadBase = %v, %v; the early sections are intact and should load", base, err)
		}
		if _, err := base.LaterParts(e.kr, views[2:]); !errors.Is(err, replay.ErrNotAuthentic) && !errors.Is(err, replay.ErrInvalid) {
			t.Fatalf("LaterParts of a damaged late section = %v; want ErrNotAuthentic or ErrInvalid", err)
		}
	})
	// The same with the sums as written (a disk's damage, not a forger's): the early sections
	// are authenticated by their chunks at unseal, not hashed; the late ones are hashed when
	// the file is checked whole, and the mismatch is what LaterParts reports.
	t.Run("late section damaged, sums as written", func(t *testing.T) {
		fs := map[string][]byte{}
		for k, v := range files {
			fs[k] = bytes.Clone(v)
		}
		fs["views/kv.sealed"][len(fs["views/kv.sealed"])/2] ^= 0x20
		put(t, gunzip(t, archive(names, fs)))
		views := newViews()
		base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, views,
			replay.BaseOptions{Later: views[2:]})
		if err != nil || base == nil || base.Name != replay.AutoName(cut.Seq+1) {
			t.Fatalf("LoadBase = %v, %v; the early sections are intact and should load", base, err)
		}
		_, err = base.LaterParts(e.kr, views[2:])
		if !errors.Is(err, replay.ErrInvalid) || !strings.Contains(err.Error(), "views/kv.sealed does not match its checksum") {
			t.Fatalf("LaterParts of a late section that no longer matches SHA256SUMS = %v; want its checksum mismatch", err)
		}
	})
	t.Run("late section cut short", func(t *testing.T) {
		at := bytes.Index(cp, []byte("views/kv.sealed\x00")) // its tar header
		if at < 0 {
			t.Fatal("the kv section's header was not found")
		}
		put(t, cp[:at+4096])
		views := newViews()
		base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, views,
			replay.BaseOptions{Later: views[2:]})
		if err != nil || base == nil || base.Name != replay.AutoName(cut.Seq+1) {
			t.Fatalf("LoadBase = %v, %v; the early sections are intact and should load", base, err)
		}
		if _, err := base.LaterParts(e.kr, views[2:]); !errors.Is(err, replay.ErrInvalid) {
			t.Fatalf("LaterParts of a truncated checkpoint = %v; want ErrInvalid", err)
		}
	})
	t.Run("early section damaged", func(t *testing.T) {
		put(t, alter("views/policy.sealed"))
		_, base := load(t) // the damaged newer one is skipped for the intact one
		base.Close()
	})

	// An earlier build's checkpoint, the views in the runner's order (mount, policy, kv,
	// lease): with policy and lease deferred, only lease is last; policy is read with the
	// others and handed over by LaterParts all the same.
	t.Run("runner order", func(t *testing.T) {
		old, _ := e.checkpointOf(t, live)
		put(t, old)
		views := newViews()
		later := []projections.View{views[1], views[3]}
		base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, views,
			replay.BaseOptions{Later: later})
		if err != nil || base == nil || base.Name != replay.AutoName(cut.Seq+1) {
			t.Fatalf("LoadBase = %v, %v", base, err)
		}
		if views[1].Digest() != empty[1].Digest || views[3].Digest() != empty[3].Digest {
			t.Fatal("a deferred view was restored by LoadBase")
		}
		parts, err := base.LaterParts(e.kr, later)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range parts {
			if p.Name != later[i].Name() {
				t.Fatalf("late part %d is %q; want %s", i, p.Name, later[i].Name())
			}
			if err := later[i].Restore(p.Data); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range replay.Compare(replay.Digests(live.Views()), replay.Digests(views)) {
			if !r.Match {
				t.Fatalf("view %s: loaded from an earlier build's checkpoint != live", r.Name)
			}
		}
	})
}

// TestCheckpointLateSectionsAfterAPause: the late sections are read from the object store
// well after the early ones (a server answers requests meanwhile): the object, left open
// mid-stream for longer than the object store's consumer heartbeats, reads to its end and
// checks.
func TestCheckpointLateSectionsAfterAPause(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses 12 s")
	}
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	e.append(t, mountEvent(t, "secret/", mountUUID))
	e.fillKV(t, mountUUID, 20000, 1, 4) // a kv section of megabytes: many object chunks
	live, store := e.liveStore(t)
	cp, cut := e.checkpointOf(t, live, "kv")
	if len(cp) < 1<<20 {
		t.Fatalf("checkpoint of %d bytes: too small to be left open mid-stream", len(cp))
	}
	if err := store.Put(ctx, replay.AutoName(cut.Seq), cp, cut.Seq); err != nil {
		t.Fatal(err)
	}
	views := newViews()
	base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, views,
		replay.BaseOptions{Later: views[2:3]})
	if err != nil || base == nil {
		t.Fatalf("LoadBase = %+v, %v", base, err)
	}
	time.Sleep(12 * time.Second)
	parts, err := base.LaterParts(e.kr, views[2:3])
	if err != nil {
		t.Fatal(err)
	}
	if err := views[2].Restore(parts[0].Data); err != nil {
		t.Fatal(err)
	}
	if views[2].Digest() != live.Views()[2].Digest() {
		t.Fatal("the kv view read after a pause != live")
	}
}
