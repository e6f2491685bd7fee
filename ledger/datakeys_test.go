package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func openDataKeys(t testing.TB, l *Log, k *Keyring) *DataKeys {
	t.Helper()
	d, err := OpenDataKeys(context.Background(), l.JetStream(), 1)
	if err != nil {
		t.Fatalf("open data keys: %v", err)
	}
	if err := d.Load(context.Background(), k); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// filesContaining lists the files under dir whose bytes contain needle.
func filesContaining(t testing.TB, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a temp file renamed away while we walked
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// storedBlob is the sealed key as the stream holds it, inside the message that carries it.
func storedBlob(t testing.TB, d *DataKeys, id string) []byte {
	t.Helper()
	loc, ok := d.location(id)
	if !ok {
		t.Fatalf("stored %s: not in the index", id)
	}
	m, err := d.stream.GetLastMsgForSubject(context.Background(), loc.subject)
	if err != nil {
		t.Fatalf("stored %s: %v", id, err)
	}
	entries, err := decodeDataKeys(loc.subject, m.Data)
	if err != nil {
		t.Fatalf("stored %s: %v", id, err)
	}
	for _, e := range entries {
		if e.id == id {
			return e.sealed
		}
	}
	t.Fatalf("stored %s: not in its message", id)
	return nil
}

// newBatch creates the keys ids in ONE message: it holds the writer back until every New has
// queued, so the writer's first flush takes them all. It returns the keys and the message's
// sequence.
func newBatch(t testing.TB, d *DataKeys, k *Keyring, ids ...string) (map[string][]byte, uint64) {
	t.Helper()
	d.stopWriter()
	keys := make([][]byte, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { keys[i], errs[i] = d.New(context.Background(), k, id) })
	}
	for len(d.reqs) < len(ids) {
		time.Sleep(time.Millisecond)
	}
	d.startWriter()
	wg.Wait()
	out := map[string][]byte{}
	var seq uint64
	for i, id := range ids {
		if errs[i] != nil {
			t.Fatalf("new %s: %v", id, errs[i])
		}
		out[id] = keys[i]
		loc, _ := d.location(id)
		if i > 0 && loc.seq != seq {
			t.Fatalf("%s stored at seq %d, %s at %d: not one message", ids[0], seq, id, loc.seq)
		}
		seq = loc.seq
	}
	return out, seq
}

// streamMsgs is the number of messages the data-key stream holds.
func streamMsgs(t testing.TB, d *DataKeys) uint64 {
	t.Helper()
	info, err := d.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestDataKeysNewGetFetch(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	d := openDataKeys(t, l, k)

	key, err := d.New(ctx, k, "kv.m1.a")
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != DataKeySize {
		t.Fatalf("key is %d bytes", len(key))
	}
	got, ok := d.Get("kv.m1.a")
	if !ok || !bytes.Equal(got, key) {
		t.Fatal("Get does not return the new key")
	}
	clear(got) // a caller clearing its copy must not damage the store
	if again, _ := d.Get("kv.m1.a"); !bytes.Equal(again, key) {
		t.Fatal("Get hands out the stored slice")
	}
	if bytes.Contains(storedBlob(t, d, "kv.m1.a"), key) {
		t.Fatal("key stored in the clear")
	}
	if _, err := d.New(ctx, k, "kv.m1.a"); !errors.Is(err, ErrConflict) {
		t.Fatalf("second New with the same id: %v, want ErrConflict", err)
	}
	if _, err := d.New(ctx, nil, "kv.m1.b"); !errors.Is(err, ErrSealed) {
		t.Fatalf("New without keyring: %v", err)
	}
	for _, bad := range []string{"", "a..b", "a.*", "a b", ".a", "a.", "x>"} {
		if _, err := d.New(ctx, k, bad); err == nil {
			t.Fatalf("id %q accepted", bad)
		}
	}

	// Another node's DataKeys (same stream, loaded earlier) finds the key with Fetch.
	other := openDataKeys(t, l, k)
	if _, err := d.New(ctx, k, "kv.m1.later"); err != nil {
		t.Fatal(err)
	}
	if _, ok := other.Get("kv.m1.later"); ok {
		t.Fatal("key appeared without Fetch")
	}
	fk, err := other.Fetch(ctx, k, "kv.m1.later")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := d.Get("kv.m1.later"); !bytes.Equal(fk, want) {
		t.Fatal("Fetch returned another key")
	}
	if _, err := other.Fetch(ctx, k, "kv.m1.never"); !errors.Is(err, ErrNoDataKey) {
		t.Fatalf("Fetch of a missing key: %v", err)
	}

	ids, err := d.List(ctx, "kv.m1")
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0].ID != "kv.m1.a" || ids[1].ID != "kv.m1.later" || ids[0].Seq == 0 || ids[0].Stored.IsZero() {
		t.Fatalf("List = %+v", ids)
	}
	if none, err := d.List(ctx, "kv.nomount"); err != nil || len(none) != 0 {
		t.Fatalf("List of an empty prefix = %v, %v", none, err)
	}

	d.Close()
	if _, ok := d.Get("kv.m1.a"); ok {
		t.Fatal("key survived Close")
	}
	if _, err := d.New(ctx, k, "kv.m1.c"); !errors.Is(err, ErrSealed) {
		t.Fatalf("New after Close: %v", err)
	}
	if err := d.Load(ctx, k); err != nil {
		t.Fatal(err)
	}
	if got, ok := d.Get("kv.m1.a"); !ok || !bytes.Equal(got, key) {
		t.Fatal("Load did not bring the key back")
	}
}

func TestDataKeysShredErasesFromDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	d := openDataKeys(t, l, k)

	// Enough keys that the victim sits in the middle of a block, not at either end, and in the
	// middle of a message it shares with four neighbours.
	var victim, victimBlob []byte
	keys := map[string][]byte{}
	for b := range 4 {
		var ids []string
		for i := range 5 {
			ids = append(ids, fmt.Sprintf("kv.m.k%02d", 5*b+i))
		}
		batch, _ := newBatch(t, d, k, ids...)
		maps.Copy(keys, batch)
		if b == 1 {
			victim, victimBlob = keys["kv.m.k07"], storedBlob(t, d, "kv.m.k07")
		}
	}
	var neighbourBlobs [][]byte // k08 shares the victim's message, k12 does not
	for _, id := range []string{"kv.m.k05", "kv.m.k06", "kv.m.k08", "kv.m.k09", "kv.m.k12"} {
		neighbourBlobs = append(neighbourBlobs, storedBlob(t, d, id))
	}

	if hits := filesContaining(t, dir, victimBlob); len(hits) == 0 {
		t.Fatal("control: the sealed key is not on disk before Shred, so the search proves nothing")
	}
	if err := d.Shred(ctx, "kv.m.k07"); err != nil {
		t.Fatal(err)
	}
	if hits := filesContaining(t, dir, victimBlob); len(hits) != 0 {
		t.Fatalf("sealed key still on disk after Shred: %v", hits)
	}
	if hits := filesContaining(t, dir, victim); len(hits) != 0 {
		t.Fatalf("key bytes on disk: %v", hits)
	}
	for i, blob := range neighbourBlobs {
		if hits := filesContaining(t, dir, blob); len(hits) == 0 {
			t.Fatalf("Shred erased neighbour %d", i)
		}
	}
	if _, ok := d.Get("kv.m.k07"); ok {
		t.Fatal("shredded key still in memory")
	}
	if _, err := d.Fetch(ctx, k, "kv.m.k07"); !errors.Is(err, ErrNoDataKey) {
		t.Fatalf("Fetch after Shred: %v", err)
	}
	// Idempotent, also for a node that never had the key in memory and for unknown ids.
	if err := d.Shred(ctx, "kv.m.k07"); err != nil {
		t.Fatalf("second Shred: %v", err)
	}
	other := openDataKeys(t, l, k)
	if err := other.Shred(ctx, "kv.m.k07"); err != nil {
		t.Fatalf("Shred from a node without the key: %v", err)
	}
	if err := other.Shred(ctx, "kv.m.never"); err != nil {
		t.Fatalf("Shred of an unknown id: %v", err)
	}
	// A node that did not load the key shreds it by looking it up in the stream.
	if _, err := d.New(ctx, k, "kv.m.fresh"); err != nil {
		t.Fatal(err)
	}
	freshBlob := storedBlob(t, d, "kv.m.fresh")
	if err := other.Shred(ctx, "kv.m.fresh"); err != nil {
		t.Fatal(err)
	}
	if hits := filesContaining(t, dir, freshBlob); len(hits) != 0 {
		t.Fatalf("key shredded by another node still on disk: %v", hits)
	}

	// Restart: the shredded keys stay gone, the others come back.
	l.Close()
	l2 := openTest(t, dir)
	d2 := openDataKeys(t, l2, k)
	if _, ok := d2.Get("kv.m.k07"); ok {
		t.Fatal("shredded key came back after restart")
	}
	if d2.Len() != 19 {
		t.Fatalf("after restart %d keys, want 19", d2.Len())
	}
	if hits := filesContaining(t, dir, victimBlob); len(hits) != 0 {
		t.Fatalf("sealed key on disk after restart: %v", hits)
	}
	for _, id := range []string{"kv.m.k05", "kv.m.k06", "kv.m.k08", "kv.m.k09"} {
		if got, ok := d2.Get(id); !ok || !bytes.Equal(got, keys[id]) {
			t.Fatalf("neighbour %s in the victim's message lost after restart", id)
		}
	}
}

func TestDataKeysSnapshotRestore(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	keys := map[string][]byte{}
	for _, id := range []string{"kv.a.1", "kv.a.2", "kv.b.1"} {
		key, err := d.New(ctx, k, id)
		if err != nil {
			t.Fatal(err)
		}
		keys[id] = key
	}
	if err := d.Shred(ctx, "kv.a.2"); err != nil {
		t.Fatal(err)
	}
	snap, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(snap, keys["kv.a.2"]) || bytes.Contains(snap, []byte("kv.a.2")) {
		t.Fatal("snapshot holds a shredded key")
	}
	for id, key := range keys {
		if bytes.Contains(snap, key) {
			t.Fatalf("snapshot holds key %s in the clear", id)
		}
	}

	// Restore into an empty data dir.
	l2 := openTest(t, t.TempDir())
	d2, err := OpenDataKeys(ctx, l2.JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.Restore(ctx, testKeyring(t), snap); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore under another keyring: %v, want ErrCorrupt", err)
	}
	if err := d2.Restore(ctx, k, []byte("not a snapshot")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore garbage: %v", err)
	}
	if err := d2.Restore(ctx, k, snap); err != nil {
		t.Fatal(err)
	}
	if err := d2.Restore(ctx, k, snap); err != nil { // again: keys already there are kept
		t.Fatalf("second restore: %v", err)
	}
	for _, id := range []string{"kv.a.1", "kv.b.1"} {
		if got, ok := d2.Get(id); !ok || !bytes.Equal(got, keys[id]) {
			t.Fatalf("key %s not restored", id)
		}
	}
	if _, ok := d2.Get("kv.a.2"); ok || d2.Len() != 2 {
		t.Fatalf("restored %d keys, shredded one present: %v", d2.Len(), ok)
	}
}

func TestDataKeysConcurrent(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				id := fmt.Sprintf("kv.c.g%d-%d", g, i)
				if _, err := d.New(ctx, k, id); err != nil {
					errs <- err
					return
				}
				if _, ok := d.Get(id); !ok {
					errs <- fmt.Errorf("%s missing", id)
					return
				}
				if i%2 == 0 {
					if err := d.Shred(ctx, id); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if d.Len() != 32 {
		t.Fatalf("%d keys, want 32", d.Len())
	}
	if err := d.Load(ctx, k); err != nil || d.Len() != 32 {
		t.Fatalf("reload: %d keys, %v", d.Len(), err)
	}
}

// More keys, and more messages, than one fetch carries: Load and List page through the stream.
func TestDataKeysLoadMany(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 160 {
				if _, err := d.New(ctx, k, fmt.Sprintf("kv.m.g%d-%d", g, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// One writer at a time: one message per key, so the stream holds more than 1024 messages.
	for i := range 1030 {
		if _, err := d.New(ctx, k, fmt.Sprintf("kv.m.s%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := streamMsgs(t, d); n <= 1024 {
		t.Fatalf("control: %d messages, not more than one fetch", n)
	}
	const want = 2560 + 1030
	d2 := openDataKeys(t, l, k)
	if d2.Len() != want {
		t.Fatalf("loaded %d", d2.Len())
	}
	list, err := d2.List(ctx, "kv.m")
	if err != nil || len(list) != want {
		t.Fatalf("list %d %v", len(list), err)
	}
}

// TestDataKeysGroupCommit: concurrent New calls share messages (and so fsyncs).
func TestDataKeysGroupCommit(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	const writers, each = 64, 20
	keys := make([]map[string][]byte, writers)
	var wg sync.WaitGroup
	for g := range writers {
		keys[g] = map[string][]byte{}
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("kv.gc.w%d-%d", g, i)
				key, err := d.New(ctx, k, id)
				if err != nil {
					t.Error(err)
					return
				}
				keys[g][id] = key
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	msgs := streamMsgs(t, d)
	t.Logf("%d keys in %d messages", writers*each, msgs)
	if msgs*4 > writers*each {
		t.Fatalf("%d keys took %d messages: not group-committed", writers*each, msgs)
	}
	d2 := openDataKeys(t, l, k)
	if d2.Len() != writers*each {
		t.Fatalf("reloaded %d keys, want %d", d2.Len(), writers*each)
	}
	for _, m := range keys {
		for id, key := range m {
			if got, ok := d2.Get(id); !ok || !bytes.Equal(got, key) {
				t.Fatalf("key %s does not reload", id)
			}
		}
	}
}

// TestDataKeysShredSharedMessage: shredding one key of a message rewrites its neighbours
// elsewhere first; they load after a restart, the victim is nowhere on disk.
func TestDataKeysShredSharedMessage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	ids := []string{"kv.s.a", "kv.s.b", "kv.s.c", "kv.s.d", "kv.s.e"}
	keys, seq := newBatch(t, d, k, ids...)
	blobs := map[string][]byte{}
	for _, id := range ids {
		blobs[id] = storedBlob(t, d, id)
	}
	if hits := filesContaining(t, dir, blobs["kv.s.c"]); len(hits) == 0 {
		t.Fatal("control: the sealed key is not on disk")
	}
	if err := d.Shred(ctx, "kv.s.c"); err != nil {
		t.Fatal(err)
	}
	var moved uint64
	for _, id := range []string{"kv.s.a", "kv.s.b", "kv.s.d", "kv.s.e"} {
		loc, ok := d.location(id)
		if !ok || loc.seq <= seq || (moved != 0 && loc.seq != moved) {
			t.Fatalf("survivor %s at %+v, want one new message after %d", id, loc, seq)
		}
		moved = loc.seq
	}
	if _, err := d.stream.GetMsg(ctx, seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("old message still there: %v", err)
	}
	for what, needle := range map[string][]byte{"sealed key": blobs["kv.s.c"], "key": keys["kv.s.c"]} {
		if hits := filesContaining(t, dir, needle); len(hits) != 0 {
			t.Fatalf("%s on disk after Shred: %v", what, hits)
		}
	}

	// Restart: reopen the log on the same dir and Load.
	l.Close()
	l2 := openTest(t, dir)
	d2 := openDataKeys(t, l2, k)
	if d2.Len() != 4 {
		t.Fatalf("after restart %d keys, want 4", d2.Len())
	}
	for _, id := range []string{"kv.s.a", "kv.s.b", "kv.s.d", "kv.s.e"} {
		if got, ok := d2.Get(id); !ok || !bytes.Equal(got, keys[id]) {
			t.Fatalf("survivor %s lost", id)
		}
		if hits := filesContaining(t, dir, blobs[id]); len(hits) == 0 {
			t.Fatalf("survivor %s not on disk", id)
		}
	}
	if _, err := d2.Fetch(ctx, k, "kv.s.c"); !errors.Is(err, ErrNoDataKey) {
		t.Fatalf("Fetch of the shredded key after restart: %v", err)
	}
	// Shred the rest one by one: the last one leaves no message behind.
	for _, id := range []string{"kv.s.a", "kv.s.b", "kv.s.d", "kv.s.e"} {
		if err := d2.Shred(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := streamMsgs(t, d2); n != 0 || d2.Len() != 0 {
		t.Fatalf("after shredding all: %d messages, %d keys", n, d2.Len())
	}
	for id, blob := range blobs {
		if hits := filesContaining(t, dir, blob); len(hits) != 0 {
			t.Fatalf("%s on disk: %v", id, hits)
		}
	}
}

// TestDataKeysShredMany: a batch of shreds rewrites each message it touches once.
func TestDataKeysShredMany(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	a, _ := newBatch(t, d, k, "kv.sm.a0", "kv.sm.a1", "kv.sm.a2", "kv.sm.a3", "kv.sm.a4")
	b, _ := newBatch(t, d, k, "kv.sm.b0", "kv.sm.b1", "kv.sm.b2")
	c, _ := newBatch(t, d, k, "kv.sm.c0", "kv.sm.c1")
	all := map[string][]byte{}
	for _, m := range []map[string][]byte{a, b, c} {
		maps.Copy(all, m)
	}
	blobs := map[string][]byte{}
	for id := range all {
		blobs[id] = storedBlob(t, d, id)
	}
	last := func() uint64 {
		info, err := d.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	before := last()
	victims := []string{"kv.sm.a1", "kv.sm.a3", "kv.sm.b2", "kv.sm.c0", "kv.sm.c1", "kv.sm.never", "kv.sm.a1"}
	if err := d.ShredMany(ctx, victims); err != nil {
		t.Fatal(err)
	}
	if got := last() - before; got != 2 { // a and b rewritten once each; c only deleted
		t.Fatalf("ShredMany stored %d messages, want 2", got)
	}
	if n := streamMsgs(t, d); n != 2 {
		t.Fatalf("stream holds %d messages, want 2", n)
	}
	if err := d.ShredMany(ctx, victims); err != nil {
		t.Fatalf("again: %v", err)
	}
	if err := d.ShredMany(ctx, []string{"kv.sm.ok", "bad..id"}); err == nil {
		t.Fatal("bad id accepted")
	}

	l.Close()
	l2 := openTest(t, dir)
	d2 := openDataKeys(t, l2, k)
	for id, key := range all {
		got, ok := d2.Get(id)
		hits := filesContaining(t, dir, blobs[id])
		if slices.Contains(victims, id) {
			if ok || len(hits) != 0 {
				t.Fatalf("shredded %s: in memory %v, on disk %v", id, ok, hits)
			}
			continue
		}
		if !ok || !bytes.Equal(got, key) || len(hits) == 0 {
			t.Fatalf("survivor %s lost (memory %v, disk %v)", id, ok, hits)
		}
	}
	if d2.Len() != 5 {
		t.Fatalf("%d keys after restart, want 5", d2.Len())
	}
}

// TestDataKeysShredCrash: a crash after a shred stored the survivors but before it deleted the
// old message leaves two copies of the survivors. Readers count each key once, the victim is not
// loaded, and Load — or the next shred touching the message — erases the old copy.
func TestDataKeysShredCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	keys, _ := newBatch(t, d, k, "kv.cr.k1", "kv.cr.k2", "kv.cr.k3")
	other, _ := newBatch(t, d, k, "kv.cr.k4", "kv.cr.k5")
	maps.Copy(keys, other)
	blobs := map[string][]byte{}
	for id := range keys {
		blobs[id] = storedBlob(t, d, id)
	}
	// The first half of Shred(victim): the survivors stored again on the message's subject.
	halfShred := func(victim string) uint64 {
		t.Helper()
		loc, _ := d.location(victim)
		m, err := d.stream.GetLastMsgForSubject(ctx, loc.subject)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := decodeDataKeys(loc.subject, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		survivors := slices.DeleteFunc(entries, func(e dkEntry) bool { return e.id == victim })
		fence := m.Sequence
		if _, err := d.store(ctx, loc.subject, newID(), encodeDataKeys(survivors), &fence); err != nil {
			t.Fatal(err)
		}
		return m.Sequence
	}
	old1 := halfShred("kv.cr.k1")
	old4 := halfShred("kv.cr.k4")

	// Readers that do not write: each key once, the victims not at all.
	list, err := d.List(ctx, "kv.cr")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range list {
		listed = append(listed, e.ID)
	}
	if want := []string{"kv.cr.k2", "kv.cr.k3", "kv.cr.k5"}; !slices.Equal(listed, want) {
		t.Fatalf("List = %v, want %v", listed, want)
	}
	snap, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(snap, []byte("kv.cr.k1")) || bytes.Contains(snap, []byte("kv.cr.k4")) {
		t.Fatal("snapshot holds a half-shredded key")
	}

	// The next shred touching the second message finishes it (lazily, without a Load).
	if err := d.Shred(ctx, "kv.cr.k4"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.stream.GetMsg(ctx, old4); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("old copy of the second message not erased by Shred: %v", err)
	}

	// A restart and Load finishes the first.
	l.Close()
	l2 := openTest(t, dir)
	d2 := openDataKeys(t, l2, k)
	if d2.Len() != 3 {
		t.Fatalf("loaded %d keys, want 3", d2.Len())
	}
	for _, id := range []string{"kv.cr.k2", "kv.cr.k3", "kv.cr.k5"} {
		if got, ok := d2.Get(id); !ok || !bytes.Equal(got, keys[id]) {
			t.Fatalf("survivor %s lost", id)
		}
	}
	for _, id := range []string{"kv.cr.k1", "kv.cr.k4"} {
		if _, ok := d2.Get(id); ok {
			t.Fatalf("half-shredded %s loaded", id)
		}
		if hits := filesContaining(t, dir, blobs[id]); len(hits) != 0 {
			t.Fatalf("half-shredded %s still on disk after Load: %v", id, hits)
		}
	}
	if _, err := d2.stream.GetMsg(ctx, old1); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("old copy of the first message not erased by Load: %v", err)
	}
	if list, err := d2.List(ctx, "kv.cr"); err != nil || len(list) != 3 {
		t.Fatalf("List after Load = %v, %v", list, err)
	}
}

// TestDataKeysFirstLayout: keys stored one per message (subject ledger.datakey.<id>) by the
// first layout load, fetch and shred like the others.
func TestDataKeysFirstLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	key := bytes.Repeat([]byte{7}, DataKeySize)
	sealed, err := k.Seal(key, adDataKey("kv.old.a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.JetStream().Publish(ctx, DataKeySubjectPrefix+"kv.old.a", sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := d.New(ctx, k, "kv.old.b"); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Fetch(ctx, k, "kv.old.a"); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("Fetch of a first-layout key: %v", err)
	}
	d2 := openDataKeys(t, l, k)
	if got, ok := d2.Get("kv.old.a"); !ok || !bytes.Equal(got, key) || d2.Len() != 2 {
		t.Fatalf("Load of a first-layout key: %v, %d keys", ok, d2.Len())
	}
	if list, err := d2.List(ctx, "kv.old"); err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v", list, err)
	}
	if err := d2.Shred(ctx, "kv.old.a"); err != nil {
		t.Fatal(err)
	}
	if hits := filesContaining(t, dir, sealed); len(hits) != 0 {
		t.Fatalf("first-layout key on disk after Shred: %v", hits)
	}
	if _, err := d.Fetch(ctx, k, "kv.old.b"); err != nil {
		t.Fatal(err)
	}
}

// TestDataKeysConcurrentAll runs New, Get, Fetch, Shred, ShredMany, Load, List and Snapshot at
// once (for -race and deadlocks), then checks what survived.
func TestDataKeysConcurrentAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	other := openDataKeys(t, l, k) // a second node over the same stream
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		kept    sync.Map // id → key
		created atomic.Int64
	)
	for g := range 16 {
		wg.Go(func() {
			var batch []string
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("kv.all.g%d-%d", g, i)
				key, err := d.New(ctx, k, id)
				if err != nil {
					t.Error(err)
					return
				}
				created.Add(1)
				if got, ok := d.Get(id); !ok || !bytes.Equal(got, key) {
					t.Errorf("%s: Get after New", id)
					return
				}
				switch i % 4 {
				case 0:
					if err := d.Shred(ctx, id); err != nil {
						t.Error(err)
						return
					}
					if _, ok := d.Get(id); ok {
						t.Errorf("%s: Get after Shred", id)
						return
					}
				case 1:
					batch = append(batch, id)
					if len(batch) == 3 {
						if err := other.ShredMany(ctx, batch); err != nil {
							t.Error(err)
							return
						}
						batch = nil
					}
				default:
					kept.Store(id, key)
					if got, err := other.Fetch(ctx, k, id); err != nil || !bytes.Equal(got, key) {
						t.Errorf("%s: Fetch from the other node: %v", id, err)
						return
					}
				}
			}
			if len(batch) > 0 {
				if err := d.ShredMany(ctx, batch); err != nil {
					t.Error(err)
				}
			}
		})
	}
	readers := []func() error{
		func() error { return d.Load(ctx, k) },
		func() error { _, err := d.List(ctx, "kv.all"); return err },
		func() error { _, err := other.Snapshot(ctx); return err },
	}
	for _, read := range readers {
		wg.Go(func() {
			for !stop.Load() {
				if err := read(); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		return
	}
	want := 0
	kept.Range(func(id, key any) bool {
		want++
		return true
	})
	t.Logf("%d keys created, %d kept", created.Load(), want)
	if want == 0 || created.Load() < 32 {
		t.Fatalf("control: only %d keys created, %d kept", created.Load(), want)
	}
	d3 := openDataKeys(t, l, k)
	if d3.Len() != want {
		t.Fatalf("reloaded %d keys, want %d", d3.Len(), want)
	}
	kept.Range(func(id, key any) bool {
		if got, ok := d3.Get(id.(string)); !ok || !bytes.Equal(got, key.([]byte)) {
			t.Errorf("%s lost", id)
		}
		return true
	})
	if list, err := d3.List(ctx, "kv.all"); err != nil || len(list) != want {
		t.Fatalf("List: %d keys, %v; want %d", len(list), err, want)
	}
}

// BenchmarkDataKeysNew measures durable data-key creation (SyncAlways: every message fsync'd)
// at 1, 16 and 64 concurrent callers, each for a fixed window; keys/msg shows the group commit.
// Run with -benchtime 1x.
func BenchmarkDataKeysNew(b *testing.B) {
	const window = 2 * time.Second
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", conc), func(b *testing.B) {
			ctx := context.Background()
			l, err := Open(ctx, Options{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			k := testKeyring(b)
			d, err := OpenDataKeys(ctx, l.JetStream(), 1)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			var wg sync.WaitGroup
			lat := make([][]time.Duration, conc)
			deadline := time.Now().Add(window)
			start := time.Now()
			for w := range conc {
				wg.Go(func() {
					for i := 0; time.Now().Before(deadline); i++ {
						t0 := time.Now()
						key, err := d.New(ctx, k, fmt.Sprintf("kv.bench.w%d-%d", w, i))
						if err != nil {
							b.Error(err)
							return
						}
						clear(key)
						lat[w] = append(lat[w], time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			all := slices.Concat(lat...)
			if len(all) == 0 {
				b.Fatal("no keys created")
			}
			slices.Sort(all)
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "keys/s")
			b.ReportMetric(float64(len(all))/float64(streamMsgs(b, d)), "keys/msg")
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		})
	}
}
