package ledger

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// createKeys creates, from writers goroutines, the data keys ids(i) names for each i in [0, n).
func createKeys(tb testing.TB, d *DataKeys, k *Keyring, writers, n int, ids func(i int) []string) {
	tb.Helper()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				for _, id := range ids(i) {
					if _, err := d.New(context.Background(), k, id); err != nil {
						tb.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

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

// settleGarbage waits until d's deleter has deleted the retired messages queued to it.
func settleGarbage(t testing.TB, d *DataKeys) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); d.gcPending.Load() > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d retired wraps messages still queued for deletion after 30 s", d.gcPending.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// streamMsgs is the number of messages the data-key stream holds, once the deleter has deleted
// the retired messages queued to it.
func streamMsgs(t testing.TB, d *DataKeys) uint64 {
	t.Helper()
	settleGarbage(t, d)
	info, err := d.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestDataKeysNewGetFetch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
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
	if hits := filesContaining(t, dir, key); len(hits) != 0 {
		t.Fatalf("key stored in the clear: %v", hits)
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
	d.treeMu.Lock()
	d.noCompact = true // the control below counts one message per key
	d.treeMu.Unlock()
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
			if err := d.Load(ctx, k); err != nil {
				b.Fatal(err)
			}
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

// rootBytes is the root message in force, as stored.
func rootBytes(t testing.TB, d *DataKeys) []byte {
	t.Helper()
	m, err := d.rootStream.GetLastMsgForSubject(context.Background(), dataKeyRootSubj)
	if err != nil {
		t.Fatalf("root: %v", err)
	}
	return m.Data
}

// recoverable is Recoverable, failing the test on an error.
func recoverable(t testing.TB, d *DataKeys, k *Keyring, id string) bool {
	t.Helper()
	ok, err := d.Recoverable(context.Background(), k, id)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestDataKeysShredErasesFromDisk: after Shred the key opens through nothing stored, the root
// that reached it is not on disk, and its neighbours survive a restart.
func TestDataKeysShredErasesFromDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	keys := map[string][]byte{}
	for i := range 200 { // several groups
		id := fmt.Sprintf("kv.m.k%03d", i)
		key, err := d.New(ctx, k, id)
		if err != nil {
			t.Fatal(err)
		}
		keys[id] = key
	}
	const victim = "kv.m.k070"
	if !recoverable(t, d, k, victim) {
		t.Fatal("control: the victim is not recoverable before Shred, so the check proves nothing")
	}
	oldRoot := rootBytes(t, d)
	if hits := filesContaining(t, dir, oldRoot); len(hits) == 0 {
		t.Fatal("control: the root is not on disk before Shred")
	}
	if err := d.Shred(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if recoverable(t, d, k, victim) {
		t.Fatal("victim recoverable from the streams after Shred")
	}
	if hits := filesContaining(t, dir, oldRoot); len(hits) != 0 {
		t.Fatalf("the root that reached the victim is still on disk: %v", hits)
	}
	if hits := filesContaining(t, dir, keys[victim]); len(hits) != 0 {
		t.Fatalf("key bytes on disk: %v", hits)
	}
	if _, ok := d.Get(victim); ok {
		t.Fatal("shredded key still in memory")
	}
	if _, err := d.Fetch(ctx, k, victim); !errors.Is(err, ErrNoDataKey) {
		t.Fatalf("Fetch after Shred: %v", err)
	}
	// Idempotent, also for a node that never had the key in memory and for unknown ids.
	if err := d.Shred(ctx, victim); err != nil {
		t.Fatalf("second Shred: %v", err)
	}
	other := openDataKeys(t, l, k)
	if err := other.Shred(ctx, victim); err != nil {
		t.Fatalf("Shred from a node without the key: %v", err)
	}
	if err := other.Shred(ctx, "kv.m.never"); err != nil {
		t.Fatalf("Shred of an unknown id: %v", err)
	}
	// A node that did not load the key shreds it after catching up; the first node's next
	// write notices (fence) and reloads.
	if _, err := d.New(ctx, k, "kv.m.fresh"); err != nil {
		t.Fatal(err)
	}
	if err := other.Shred(ctx, "kv.m.fresh"); err != nil {
		t.Fatal(err)
	}
	if recoverable(t, d, k, "kv.m.fresh") {
		t.Fatal("key shredded by another node still recoverable")
	}
	if _, err := d.New(ctx, k, "kv.m.after"); err != nil {
		t.Fatalf("New on the first node after the other wrote: %v", err)
	}
	if _, ok := d.Get("kv.m.fresh"); ok {
		t.Fatal("the first node still holds a key the other shredded, after reloading")
	}

	// Restart: the shredded keys stay gone, the others come back.
	l.Close()
	l2 := openTest(t, dir)
	d2 := openDataKeys(t, l2, k)
	if _, ok := d2.Get(victim); ok {
		t.Fatal("shredded key came back after restart")
	}
	if d2.Len() != 200 { // 200 - victim + after
		t.Fatalf("after restart %d keys, want 200", d2.Len())
	}
	for id, key := range keys {
		if id == victim {
			continue
		}
		if got, ok := d2.Get(id); !ok || !bytes.Equal(got, key) {
			t.Fatalf("neighbour %s lost after restart", id)
		}
	}
}

// TestDataKeysShredCostBounded: a shred re-wraps at most a group's and a shelf's worth of keys
// however many keys exist, and destroying a whole group or shelf leaves nothing behind.
func TestDataKeysShredCostBounded(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	const n = 3 * dkGroupSize * dkShelfSize / 2 // 1.5 shelves
	var ids []string
	createKeys(t, d, k, 16, n, func(i int) []string { return []string{fmt.Sprintf("kv.cost.k%05d", i)} })
	for i := range n {
		ids = append(ids, fmt.Sprintf("kv.cost.k%05d", i))
	}
	for _, id := range []string{ids[17], ids[n/2], ids[n-1]} {
		before, _ := d.Stats()
		if err := d.Shred(ctx, id); err != nil {
			t.Fatal(err)
		}
		after, _ := d.Stats()
		if re := after.Rewrapped - before.Rewrapped; re > dkGroupSize+dkShelfSize {
			t.Fatalf("shredding %s re-wrapped %d keys, bound %d", id, re, dkGroupSize+dkShelfSize)
		}
		if after.RootWrites-before.RootWrites != 1 {
			t.Fatalf("shredding %s wrote %d roots", id, after.RootWrites-before.RootWrites)
		}
	}
	// Everything, in one request (one flush), then a reload finds nothing and no garbage.
	if err := d.ShredMany(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if d.Len() != 0 {
		t.Fatalf("%d keys left", d.Len())
	}
	settleGarbage(t, d)
	d2 := openDataKeys(t, l, k)
	if d2.Len() != 0 {
		t.Fatalf("reload: %d keys", d2.Len())
	}
	if n := streamMsgs(t, d2); n > 1 {
		t.Fatalf("%d wraps messages left after everything was shredded, want at most the last", n)
	}
}

// TestDataKeysShredMany: bad ids refuse the whole request; 10k ids in one request destroy
// exactly those, in one flush.
func TestDataKeysShredMany(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	const n = 12_000
	ids := make([]string, n)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				ids[i] = fmt.Sprintf("kv.sm.k%05d", i)
				if _, err := d.New(ctx, k, ids[i]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := d.ShredMany(ctx, []string{ids[0], "bad..id"}); err == nil {
		t.Fatal("bad id accepted")
	}
	if _, ok := d.Get(ids[0]); !ok {
		t.Fatal("a refused request destroyed a key")
	}
	victims := append(slices.Clone(ids[:10_000]), "kv.sm.never", ids[3])
	before, _ := d.Stats()
	if err := d.ShredMany(ctx, victims); err != nil {
		t.Fatal(err)
	}
	after, _ := d.Stats()
	if got := after.Flushes - before.Flushes; got != 1 {
		t.Fatalf("10k shreds took %d flushes", got)
	}
	if err := d.ShredMany(ctx, victims); err != nil {
		t.Fatalf("again: %v", err)
	}
	l.Close()
	l2 := openTest(t, dir)
	d2 := openDataKeys(t, l2, k)
	if d2.Len() != n-10_000 {
		t.Fatalf("%d keys after restart, want %d", d2.Len(), n-10_000)
	}
	for _, id := range []string{ids[0], ids[9_999]} {
		if _, ok := d2.Get(id); ok || recoverable(t, d2, k, id) {
			t.Fatalf("%s survived", id)
		}
	}
	if _, ok := d2.Get(ids[10_000]); !ok {
		t.Fatal("a survivor was lost")
	}
}

// halfFlush runs the first steps of a flush that shreds victim and stops, as a crash would:
// after the wraps (rootToo=false) or after the new root but before the old one is erased.
func halfFlush(t *testing.T, d *DataKeys, victim string, rootToo bool) {
	t.Helper()
	ctx := context.Background()
	d.treeMu.Lock()
	defer d.treeMu.Unlock()
	p, err := d.t.plan(nil, []*dkLeaf{d.t.leaves[victim]})
	if err != nil {
		t.Fatal(err)
	}
	f := d.t.wrapsSeq
	if _, err := d.store(ctx, d.stream, dataKeyWrapsSubj, encodeWraps(p.wires), &f); err != nil {
		t.Fatal(err)
	}
	if !rootToo {
		return
	}
	body, err := encodeRoot(d.kr, p.shelvesAfter())
	if err != nil {
		t.Fatal(err)
	}
	rf := d.t.rootSeq
	if _, err := d.store(ctx, d.rootStream, dataKeyRootSubj, body, &rf); err != nil {
		t.Fatal(err)
	}
}

// TestDataKeysShredCrashSteps: a crash after each step of a shred leaves every survivor
// loadable; the victim is either still there (the shred was not acknowledged) or — once the
// new root is stored — gone after Load, which erases the old root.
func TestDataKeysShredCrashSteps(t *testing.T) {
	ctx := context.Background()
	for _, rootToo := range []bool{false, true} {
		t.Run(fmt.Sprintf("root-stored=%v", rootToo), func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir)
			k := testKeyring(t)
			d := openDataKeys(t, l, k)
			keys := map[string][]byte{}
			for i := range 150 {
				id := fmt.Sprintf("kv.cs.k%03d", i)
				key, err := d.New(ctx, k, id)
				if err != nil {
					t.Fatal(err)
				}
				keys[id] = key
			}
			const victim = "kv.cs.k010"
			oldRoot := rootBytes(t, d)
			halfFlush(t, d, victim, rootToo)
			l.Close()
			l2 := openTest(t, dir)
			d2 := openDataKeys(t, l2, k)
			for id, key := range keys {
				got, ok := d2.Get(id)
				if id == victim {
					if ok != !rootToo {
						t.Fatalf("victim loaded = %v", ok)
					}
					continue
				}
				if !ok || !bytes.Equal(got, key) {
					t.Fatalf("survivor %s lost", id)
				}
			}
			if rootToo {
				if recoverable(t, d2, k, victim) {
					t.Fatal("victim recoverable after Load finished the shred")
				}
				if hits := filesContaining(t, dir, oldRoot); len(hits) != 0 {
					t.Fatalf("old root on disk after Load: %v", hits)
				}
			}
			// The interrupted shred can be finished, and the tree takes new keys.
			if err := d2.Shred(ctx, victim); err != nil {
				t.Fatal(err)
			}
			if _, err := d2.New(ctx, k, "kv.cs.new"); err != nil {
				t.Fatal(err)
			}
			if recoverable(t, d2, k, victim) || d2.Len() != 150 {
				t.Fatalf("after finishing: recoverable=%v, %d keys", recoverable(t, d2, k, victim), d2.Len())
			}
		})
	}
}

// TestDataKeysCrashDuringShred kills (SIGKILL) a child that rotates keys — a New and a Shred of
// the oldest per step, 16 at once — in the middle of its work, four times, and checks after
// each restart: every acknowledged shred is unrecoverable, every acknowledged key that was not
// shredded loads with the same bytes.
func TestDataKeysCrashDuringShred(t *testing.T) {
	if os.Getenv("LEDGER_DK_CRASH_CHILD") != "" {
		t.Skip("child")
	}
	dir := t.TempDir()
	k := testKeyring(t)
	rootKey := bytes.Repeat([]byte{42}, 32)
	kb, err := k.Wrap(rootKey)
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]string{} // id → hex key, acknowledged and not (acknowledged) shredded
	shredded := map[string]bool{}
	for round := range 4 {
		env := []string{"LEDGER_DK_CRASH_CHILD=" + dir, "LEDGER_DK_CRASH_KEYRING=" + hex.EncodeToString(kb),
			fmt.Sprintf("LEDGER_DK_CRASH_ROUND=%d", round)}
		killChild(t, "TestDataKeysCrashChild", env, 150+round*50, func(line string) bool {
			f := strings.Fields(line)
			switch {
			case len(f) == 3 && f[0] == "KEY":
				live[f[1]] = f[2]
			case len(f) == 2 && f[0] == "SHREDDING": // outcome unknown until SHRED
				delete(live, f[1])
			case len(f) == 2 && f[0] == "SHRED":
				shredded[f[1]] = true
				return true
			}
			return false
		})
	}
	l := openTest(t, dir)
	d := openDataKeys(t, l, k)
	for id, want := range live {
		got, ok := d.Get(id)
		if !ok || hex.EncodeToString(got) != want {
			t.Fatalf("acknowledged key %s lost or changed", id)
		}
	}
	for id := range shredded {
		if _, ok := d.Get(id); ok || recoverable(t, d, k, id) {
			t.Fatalf("acknowledged shred of %s undone", id)
		}
	}
	t.Logf("%d keys live, %d shredded across 4 kills", len(live), len(shredded))
}

// TestDataKeysCrashChild is the child of TestDataKeysCrashDuringShred.
func TestDataKeysCrashChild(t *testing.T) {
	dir := os.Getenv("LEDGER_DK_CRASH_CHILD")
	if dir == "" {
		t.Skip("only run as the crash test's child")
	}
	kb, _ := hex.DecodeString(os.Getenv("LEDGER_DK_CRASH_KEYRING"))
	k, err := UnwrapKeyring(bytes.Repeat([]byte{42}, 32), kb)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDataKeys(ctx, l.JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Load(ctx, k); err != nil {
		t.Fatal(err)
	}
	round := os.Getenv("LEDGER_DK_CRASH_ROUND")
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(w, format, args...)
		w.Flush()
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			var hist []string
			for i := 0; ; i++ {
				id := fmt.Sprintf("kv.crash.r%s-g%d-%d", round, g, i)
				key, err := d.New(ctx, k, id)
				if err != nil {
					return
				}
				say("KEY %s %x\n", id, key)
				hist = append(hist, id)
				if len(hist) > 3 {
					say("SHREDDING %s\n", hist[0])
					if err := d.Shred(ctx, hist[0]); err != nil {
						return
					}
					say("SHRED %s\n", hist[0])
					hist = hist[1:]
				}
			}
		})
	}
	wg.Wait()
}

// TestDataKeysFirstLayout: keys of the first layouts (one per message, and batches) are moved
// into the tree by Load, and their messages — sealed under the keyring itself — erased.
func TestDataKeysFirstLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	key := bytes.Repeat([]byte{7}, DataKeySize)
	sealed, err := k.Seal(key, adDataKey("kv.old.a"))
	if err != nil {
		t.Fatal(err)
	}
	d := openDataKeys(t, l, k)
	if _, err := l.JetStream().Publish(ctx, DataKeySubjectPrefix+"kv.old.a", sealed); err != nil {
		t.Fatal(err)
	}
	key2 := bytes.Repeat([]byte{9}, DataKeySize)
	sealed2, _ := k.Seal(key2, adDataKey("kv.old.b"))
	batch := []byte{1}
	batch = binary.AppendUvarint(batch, 1)
	batch = binary.AppendUvarint(batch, uint64(len("kv.old.b")))
	batch = append(batch, "kv.old.b"...)
	batch = binary.AppendUvarint(batch, uint64(len(sealed2)))
	batch = append(batch, sealed2...)
	if _, err := l.JetStream().Publish(ctx, dataKeyBatchSubj+"x1", batch); err != nil {
		t.Fatal(err)
	}
	if err := d.Load(ctx, k); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string][]byte{"kv.old.a": key, "kv.old.b": key2} {
		if got, ok := d.Get(id); !ok || !bytes.Equal(got, want) {
			t.Fatalf("first-layout key %s not loaded", id)
		}
	}
	for _, s := range [][]byte{sealed, sealed2} {
		if hits := filesContaining(t, dir, s); len(hits) != 0 {
			t.Fatalf("first-layout message on disk after the move: %v", hits)
		}
	}
	if err := d.Shred(ctx, "kv.old.a"); err != nil {
		t.Fatal(err)
	}
	d2 := openDataKeys(t, l, k)
	if _, ok := d2.Get("kv.old.a"); ok || d2.Len() != 1 {
		t.Fatalf("after shred and reload: %v, %d keys", ok, d2.Len())
	}
}

// TestDataKeysConcurrentAll runs New, Get, Shred, ShredMany, Load, List and Snapshot at once
// on the writing node, Fetch, List and Snapshot on a second node over the same streams (for
// -race and deadlocks), then checks what survived.
func TestDataKeysConcurrentAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	other := openDataKeys(t, l, k) // a second node over the same streams, reading
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
						if err := d.ShredMany(ctx, batch); err != nil {
							t.Error(err)
							return
						}
						batch = nil
					}
				default:
					kept.Store(id, key)
					if i%8 == 2 {
						if got, err := other.Fetch(ctx, k, id); err != nil || !bytes.Equal(got, key) {
							t.Errorf("%s: Fetch from the other node: %v", id, err)
							return
						}
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
		func() error { _, err := other.List(ctx, "kv.all"); return err },
	}
	for _, read := range readers {
		wg.Go(func() {
			for !stop.Load() {
				if err := read(); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(20 * time.Millisecond)
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

// TestDataKeysShredLater: keys taken out of service are gone from memory at once and
// unrecoverable from the streams within ShredDeadline; a Shred meanwhile takes them along.
func TestDataKeysShredLater(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	for i := range 100 {
		if _, err := d.New(ctx, k, fmt.Sprintf("kv.later.k%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.ShredLater([]string{"kv.later.k001", "kv.later.k050", "bad..id"}); err == nil {
		t.Fatal("bad id accepted")
	}
	start := time.Now()
	if err := d.ShredLater([]string{"kv.later.k001", "kv.later.k050", "kv.later.never"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"kv.later.k001", "kv.later.k050"} {
		if _, ok := d.Get(id); ok {
			t.Fatalf("%s still in memory", id)
		}
		if _, err := d.Fetch(ctx, k, id); !errors.Is(err, ErrNoDataKey) {
			t.Fatalf("Fetch %s: %v", id, err)
		}
	}
	if list, _ := d.List(ctx, "kv.later"); len(list) != 98 {
		t.Fatalf("List: %d keys", len(list))
	}
	// The bound, with room for a loaded machine: the deadline plus the erase itself.
	for recoverable(t, d, k, "kv.later.k050") {
		if time.Since(start) > ShredDeadline+10*time.Second {
			t.Fatalf("still recoverable %v after ShredLater", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if recoverable(t, d, k, "kv.later.k001") {
		t.Fatal("one of two deferred keys erased, not the other")
	}
	// A Shred takes pending deferred keys along, and a reload does not revive them.
	if err := d.ShredLater([]string{"kv.later.k002"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Load(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Get("kv.later.k002"); ok {
		t.Fatal("Load revived a deferred key")
	}
	if err := d.Shred(ctx, "kv.later.k003"); err != nil {
		t.Fatal(err)
	}
	if recoverable(t, d, k, "kv.later.k002") || recoverable(t, d, k, "kv.later.k003") {
		t.Fatal("Shred did not take the deferred key along")
	}
	if st, n := d.Stats(); st.ShredBacklog != 0 || n != 96 {
		t.Fatalf("backlog %d, %d keys", st.ShredBacklog, n)
	}
}

// TestValidDataKeyID: dot-separated tokens of [A-Za-z0-9_-], none empty, within the length.
func TestValidDataKeyID(t *testing.T) {
	for _, ok := range []string{"a", "kv.0f3e.12", "A-b_9.c", "x.y.z", strings.Repeat("a", dataKeyMaxID)} {
		if !validDataKeyID(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", ".", "a.", ".a", "a..b", "a b", "é", "a/b", "a\x00", "kv.é.1", strings.Repeat("a", dataKeyMaxID+1)} {
		if validDataKeyID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestDataKeysOpenGCM: OpenGCM opens what the key seals without handing the key out, keeps the
// cipher of the keys opened last (no more than dkGCMKept), and drops it with the key: a
// shredded or closed key opens nothing.
func TestDataKeysOpenGCM(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	d := openDataKeys(t, l, k)
	key, err := d.New(ctx, k, "kv.gcm.a")
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	ct := aead.Seal(nil, nonce, []byte("s3cret"), []byte("ad"))
	for range 2 { // built, then kept
		pt, found, err := d.OpenGCM(nil, "kv.gcm.a", nonce, ct, []byte("ad"))
		if err != nil || !found || string(pt) != "s3cret" {
			t.Fatalf("OpenGCM = %q, %v, %v", pt, found, err)
		}
	}
	if _, found, err := d.OpenGCM(nil, "kv.gcm.a", nonce, ct, []byte("other")); !found || err == nil {
		t.Fatalf("wrong additional data: found %v, err %v", found, err)
	}
	if _, found, err := d.OpenGCM(nil, "kv.gcm.a", nonce[:5], ct, []byte("ad")); !found || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short nonce: found %v, err %v", found, err)
	}
	if _, found, err := d.OpenGCM(nil, "kv.gcm.none", nonce, ct, []byte("ad")); found || err != nil {
		t.Fatalf("unknown key: found %v, err %v", found, err)
	}
	d.mu.RLock()
	leaf := d.t.leaves["kv.gcm.a"]
	d.mu.RUnlock()
	if leaf.gcm.Load() == nil {
		t.Fatal("the cipher of a key just opened is not kept")
	}
	if err := d.Shred(ctx, "kv.gcm.a"); err != nil {
		t.Fatal(err)
	}
	if leaf.gcm.Load() != nil {
		t.Fatal("the shredded key's cipher is still kept")
	}
	if _, found, _ := d.OpenGCM(nil, "kv.gcm.a", nonce, ct, []byte("ad")); found {
		t.Fatal("a shredded key still opens")
	}

	// The ring: the dkGCMKept+1st key kept drops the first one's cipher.
	leaves := make([]*dkLeaf, dkGCMKept+1)
	for i := range leaves {
		leaves[i] = &dkLeaf{id: fmt.Sprintf("kv.ring.k%d", i)}
		leaves[i].gcm.Store(&leafGCM{aead: aead})
		d.keepGCM(leaves[i])
	}
	if leaves[0].gcm.Load() != nil || leaves[1].gcm.Load() == nil || leaves[dkGCMKept].gcm.Load() == nil {
		t.Fatal("the ring does not drop the oldest cipher, and only it")
	}

	// Close drops every kept cipher with the keys.
	if _, err := d.New(ctx, k, "kv.gcm.b"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := d.OpenGCM(nil, "kv.gcm.b", nonce, ct, []byte("ad")); !found {
		t.Fatal("kv.gcm.b not found")
	}
	d.mu.RLock()
	leaf = d.t.leaves["kv.gcm.b"]
	d.mu.RUnlock()
	d.Close()
	if leaf.gcm.Load() != nil {
		t.Fatal("Close left a cipher kept")
	}
	if _, found, _ := d.OpenGCM(nil, "kv.gcm.b", nonce, ct, []byte("ad")); found {
		t.Fatal("a key opens after Close")
	}
}

// TestWrapsCodec: a wraps message decodes to what was encoded, and every truncation or bad
// byte of one is ErrCorrupt, never a panic or a wrap with a bad id.
func TestWrapsCodec(t *testing.T) {
	ws := []dkWire{
		{kind: dkKindGroup, node: 7, parent: 9, sealed: bytes.Repeat([]byte{1}, 60)},
		{kind: dkKindLeaf, node: 8, parent: 7, created: 12345, id: "kv-mount.00112233445566778899aabbccddeeff", sealed: bytes.Repeat([]byte{2}, 60)},
		{kind: dkKindLeaf, node: 10, parent: 7, created: -1, id: "a.b_c-d", sealed: bytes.Repeat([]byte{3}, 60)},
	}
	decodeWraps := func(data []byte) ([]dkWire, error) {
		var out []dkWire
		err := eachWrap(data, func(w dkWire) { out = append(out, w) })
		return out, err
	}
	msg := encodeWraps(ws)
	got, err := decodeWraps(msg)
	if err != nil || len(got) != len(ws) {
		t.Fatalf("decode: %d wraps, %v", len(got), err)
	}
	for i := range ws {
		if got[i].kind != ws[i].kind || got[i].node != ws[i].node || got[i].parent != ws[i].parent ||
			got[i].created != ws[i].created || got[i].id != ws[i].id || !bytes.Equal(got[i].sealed, ws[i].sealed) {
			t.Errorf("wrap %d: got %+v, want %+v", i, got[i], ws[i])
		}
	}
	for n := range len(msg) {
		if _, err := decodeWraps(msg[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
	bad := func(name string, mutate func(b []byte)) {
		b := slices.Clone(msg)
		mutate(b)
		if _, err := decodeWraps(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	bad("format", func(b []byte) { b[0] = wrapsFormat + 1 })
	bad("kind", func(b []byte) { b[2] = 9 })
	idAt := bytes.Index(msg, []byte("kv-mount."))
	bad("id with a space", func(b []byte) { b[idAt+2] = ' ' })
	bad("id with an empty token", func(b []byte) { b[idAt+8] = '.'; b[idAt+9] = '.' })
	if err := eachWrap(append(slices.Clone(msg), 0), func(dkWire) {}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("trailing byte: %v, want ErrCorrupt", err)
	}
}

// Two live leaves under one id (two New calls that raced on two nodes) load as one: the one
// stored later, with the other's key out of memory and out of its group.
func TestDataKeysLoadSettlesDuplicateIDs(t *testing.T) {
	ctx := context.Background()
	k := testKeyring(t)
	l := openTest(t, t.TempDir())
	d := openDataKeys(t, l, k)
	first, err := d.New(ctx, k, "kv.dup.a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.New(ctx, k, "kv.dup.b"); err != nil {
		t.Fatal(err)
	}
	// The racing node's leaf: same id, another node, under the same group, in a later message.
	d.mu.RLock()
	old := d.t.leaves["kv.dup.a"]
	g := d.t.groups[old.refs[0].parent]
	d.mu.RUnlock()
	second := make([]byte, DataKeySize)
	rand.Read(second)
	node := randomNode()
	w := dkWire{kind: dkKindLeaf, node: node, parent: g.node, created: time.Now().UnixNano(), id: "kv.dup.a",
		sealed: seal(g.aead, second, wrapAD(dkKindLeaf, node, g.node, "kv.dup.a"))}
	if _, err := d.store(ctx, d.stream, dataKeyWrapsSubj, encodeWraps([]dkWire{w}), nil); err != nil {
		t.Fatal(err)
	}
	d.Close()

	fresh := openDataKeys(t, l, k)
	got, ok := fresh.Get("kv.dup.a")
	if !ok || !bytes.Equal(got, second) {
		t.Fatalf("kv.dup.a after load: found %v, the later leaf's key: %v", ok, bytes.Equal(got, second))
	}
	if bytes.Equal(got, first) {
		t.Fatal("the earlier leaf's key won")
	}
	if _, ok := fresh.Get("kv.dup.b"); !ok {
		t.Fatal("kv.dup.b lost")
	}
	if n := fresh.Len(); n != 2 {
		t.Fatalf("%d keys loaded, want 2", n)
	}
	fresh.mu.RLock()
	defer fresh.mu.RUnlock()
	leaves := fresh.t.groups[g.node].leaves
	if leaves[node] == nil || leaves[old.node] != nil {
		t.Fatalf("group holds the later leaf: %v, the earlier one: %v", leaves[node] != nil, leaves[old.node] != nil)
	}
}

// link chains each node's wraps newest first whatever their order in the stream, nodes
// sharing a bucket (same top bits) or not, and counts the nodes and leaves.
func TestDataKeyCandsLink(t *testing.T) {
	var c dkCands
	const a, b, g = uint64(0xabcd_0000_0000_0001), uint64(0xabcd_0000_0000_0002), uint64(0x0100_0000_0000_0000)
	order := []struct {
		node uint64
		kind uint8
	}{{a, dkKindLeaf}, {g, dkKindGroup}, {b, dkKindLeaf}, {a, dkKindLeaf}, {b, dkKindLeaf}, {a, dkKindLeaf}}
	for i, o := range order {
		c.add(dkWire{kind: o.kind, node: o.node}, uint64(10+i))
	}
	// Many other nodes, one wrap each: the buckets are then narrower than the shared prefix.
	for i := range 5000 {
		c.add(dkWire{kind: dkKindLeaf, node: randomNode() | 1<<63 | uint64(i)}, uint64(100+i))
	}
	c.link()
	if c.nodes != 5003 || c.leaves != 5002 {
		t.Fatalf("nodes %d, leaves %d; want 5003 and 5002", c.nodes, c.leaves)
	}
	chain := func(newest int32) []int32 {
		var got []int32
		for i := newest; i >= 0; i = c.at(i).older {
			got = append(got, i)
		}
		return got
	}
	for _, want := range []struct {
		head  int32
		chain []int32
	}{{5, []int32{5, 3, 0}}, {4, []int32{4, 2}}, {1, []int32{1}}} {
		if !c.at(want.head).head || !slices.Equal(chain(want.head), want.chain) {
			t.Errorf("node of wrap %d: head %v, chain %v; want %v", want.head, c.at(want.head).head, chain(want.head), want.chain)
		}
	}
	for _, i := range []int32{0, 2, 3} {
		if c.at(i).head {
			t.Errorf("wrap %d is marked newest; a later wrap of its node follows", i)
		}
	}
	heads := 0
	for i := range c.n {
		if c.at(i).head {
			heads++
		}
	}
	if heads != 5003 {
		t.Errorf("%d newest wraps, want one per node (5003)", heads)
	}
}
