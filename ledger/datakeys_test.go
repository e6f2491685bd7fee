package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
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

// storedBlob is the sealed key as the stream holds it.
func storedBlob(t testing.TB, d *DataKeys, id string) []byte {
	t.Helper()
	m, err := d.stream.GetLastMsgForSubject(context.Background(), DataKeySubjectPrefix+id)
	if err != nil {
		t.Fatalf("stored %s: %v", id, err)
	}
	return m.Data
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

	// Enough keys that the victim sits in the middle of a block, not at either end.
	var victim, victimBlob []byte
	for i := range 20 {
		id := fmt.Sprintf("kv.m.k%02d", i)
		key, err := d.New(ctx, k, id)
		if err != nil {
			t.Fatal(err)
		}
		if i == 7 {
			victim, victimBlob = key, storedBlob(t, d, id)
		}
	}
	survivorBlob := storedBlob(t, d, "kv.m.k08")

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
	if hits := filesContaining(t, dir, survivorBlob); len(hits) == 0 {
		t.Fatal("Shred erased a neighbour")
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

// More keys than one fetch carries: Load and List page through the stream.
func TestDataKeysLoadMany(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 160 {
				if _, err := d.New(ctx, k, fmt.Sprintf("kv.m.g%d-%d", g, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	d2 := openDataKeys(t, l, k)
	if d2.Len() != 2560 {
		t.Fatalf("loaded %d", d2.Len())
	}
	list, err := d2.List(ctx, "kv.m")
	if err != nil || len(list) != 2560 {
		t.Fatalf("list %d %v", len(list), err)
	}
}
