package replay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledger-secrets/ledger/ledger"
)

// openPartedStore opens a snapshot bucket on a fresh embedded log, with 1,000-byte parts.
func openPartedStore(t *testing.T) *Store {
	t.Helper()
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s, err := OpenStore(context.Background(), l.JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	s.partSize = 1000
	return s
}

// TestStoreParts: a snapshot larger than a part is stored as several objects, read back whole,
// replaced without mixing old and new parts, listed once and deleted with its parts.
func TestStoreParts(t *testing.T) {
	ctx := context.Background()
	s := openPartedStore(t)
	one, two := make([]byte, 3500), make([]byte, 1200)
	rand.Read(one)
	rand.Read(two)
	if err := s.Put(ctx, AutoName(7), one, 7); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, AutoName(7)); err != nil || !bytes.Equal(got, one) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	if err := s.Put(ctx, AutoName(7), two, 7); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, AutoName(7)); err != nil || !bytes.Equal(got, two) {
		t.Fatalf("get after replace: %d bytes, %v", len(got), err)
	}
	objs, _ := s.obs.List(ctx)
	if len(objs) != 2 {
		t.Fatalf("objects after replace: %d, want 2 (the old parts are gone)", len(objs))
	}
	auto, err := s.Auto(ctx)
	if err != nil || len(auto) != 1 || auto[0].Seq != 7 {
		t.Fatalf("auto = %+v, %v", auto, err)
	}
	if err := s.Delete(ctx, AutoName(7)); err != nil {
		t.Fatal(err)
	}
	if objs, _ := s.obs.List(ctx); len(objs) != 0 {
		t.Fatalf("%d objects left after delete", len(objs))
	}
}

// TestStorePutFrom: a streamed snapshot is stored in parts as it is written — sizes that end
// inside a part, on a part boundary and at zero — reads back whole, replaces the old one
// without leaving its parts, and a writer that fails half-way stores nothing under the name and
// leaves no parts behind.
func TestStorePutFrom(t *testing.T) {
	ctx := context.Background()
	s := openPartedStore(t)
	writeIn := func(data []byte, piece int, fail error) func(io.Writer) error {
		return func(w io.Writer) error {
			for len(data) > 0 {
				n := min(piece, len(data))
				if _, err := w.Write(data[:n]); err != nil {
					return err
				}
				data = data[n:]
			}
			return fail
		}
	}
	name := AutoName(9)
	// First part as large as the others, then smaller (held in memory: 400 bytes).
	for _, first := range []int{1000, 400} {
		s.firstPart = first
		for _, size := range []int{3500, 3000, 999, 0} {
			data := make([]byte, size)
			rand.Read(data)
			if err := s.PutFrom(ctx, name, 9, writeIn(data, 333, nil)); err != nil {
				t.Fatalf("first part %d, %d bytes: %v", first, size, err)
			}
			if got, err := s.Get(ctx, name); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("first part %d, %d bytes: read back %d bytes, %v", first, size, len(got), err)
			}
			objs, _ := s.obs.List(ctx)
			want := 1
			if size > first {
				want += (size - first + 999) / 1000
			}
			if len(objs) != want {
				t.Fatalf("first part %d, %d bytes: %d objects, want %d (one per part, none left of the last version)", first, size, len(objs), want)
			}
		}
	}
	kept := []byte("the last good snapshot")
	if err := s.PutFrom(ctx, name, 9, writeIn(kept, 5, nil)); err != nil {
		t.Fatal(err)
	}
	half := make([]byte, 2500)
	boom := errors.New("sealing failed")
	if err := s.PutFrom(ctx, name, 10, writeIn(half, 700, boom)); !errors.Is(err, boom) {
		t.Fatalf("failing writer: %v, want its error", err)
	}
	if got, err := s.Get(ctx, name); err != nil || !bytes.Equal(got, kept) {
		t.Fatalf("after a failed write the old snapshot reads %q, %v", got, err)
	}
	if objs, _ := s.obs.List(ctx); len(objs) != 1 {
		t.Fatalf("%d objects after a failed write, want 1 (its parts removed)", len(objs))
	}
}

// TestStorePrune: pruning keeps the newest automatic snapshots and uploaded ones younger than
// an hour (and the one the log's restore points to), removes the rest with their parts, and
// leaves nothing else.
func TestStorePrune(t *testing.T) {
	ctx := context.Background()
	s, data := storeWithSnapshots(t, 5, "young")
	deleted, err := s.Prune(ctx, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{AutoName(3), AutoName(2), AutoName(1)}
	if len(deleted) != len(want) {
		t.Fatalf("deleted %v, want %v", deleted, want)
	}
	for i := range want {
		if deleted[i] != want[i] {
			t.Fatalf("deleted %v, want %v", deleted, want)
		}
	}
	auto, err := s.Auto(ctx)
	if err != nil || len(auto) != 2 || auto[0].Seq != 5 || auto[1].Seq != 4 {
		t.Fatalf("auto after prune = %+v, %v", auto, err)
	}
	if r, err := s.Restored(ctx); err != nil || len(r) != 1 || r[0].Name != RestoreName("young") {
		t.Fatalf("restored after prune = %+v, %v (a young upload is kept)", r, err)
	}
	objs, _ := s.obs.List(ctx)
	if live := len(objs); live != 3*3 {
		t.Fatalf("%d objects after prune, want 9 (three snapshots of three parts)", live)
	}
	if deleted, err := s.Prune(ctx, 2, ""); err != nil || len(deleted) != 0 {
		t.Fatalf("second prune deleted %v, %v", deleted, err)
	}

	// Between full listings Prune works from what the Store stored itself; a snapshot another
	// node stored meanwhile is kept until the next full listing, which prunes it normally.
	other := &Store{obs: s.obs, js: s.js, partSize: s.partSize, firstPart: s.firstPart, now: time.Now}
	if err := other.Put(ctx, AutoName(100), data, 100); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{6, 7} {
		if err := s.Put(ctx, AutoName(seq), data, seq); err != nil {
			t.Fatal(err)
		}
	}
	deleted, err = s.Prune(ctx, 2, "")
	if err != nil || len(deleted) != 2 || deleted[0] != AutoName(5) || deleted[1] != AutoName(4) {
		t.Fatalf("prune from memory deleted %v, %v; want seqs 5 and 4", deleted, err)
	}
	s.now = func() time.Time { return time.Now().Add(2 * fullListEvery) }
	deleted, err = s.Prune(ctx, 2, "")
	if err != nil || len(deleted) != 1 || deleted[0] != AutoName(6) {
		t.Fatalf("prune after a full listing deleted %v, %v; want seq 6", deleted, err)
	}
	auto, err = s.Auto(ctx)
	if err != nil || len(auto) != 2 || auto[0].Seq != 100 || auto[1].Seq != 7 {
		t.Fatalf("auto at the end = %+v, %v", auto, err)
	}
}

// TestStoreAutoNames: unseal's listing from the bucket's subjects names the automatic snapshots
// newest first and nothing else (no upload, no part); Delete leaves no tombstone behind, and a
// tombstone an older build left is listed but does not open (ErrObjectNotFound, which
// LoadBase skips).
func TestStoreAutoNames(t *testing.T) {
	ctx := context.Background()
	s, _ := storeWithSnapshots(t, 3, "upload")
	names := func() []uint64 {
		t.Helper()
		auto, err := s.AutoNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, in := range auto {
			if in.Name != AutoName(in.Seq) {
				t.Fatalf("%q listed as seq %d", in.Name, in.Seq)
			}
			seqs = append(seqs, in.Seq)
		}
		return seqs
	}
	if got := names(); !slices.Equal(got, []uint64{3, 2, 1}) {
		t.Fatalf("AutoNames = %v, want [3 2 1]", got)
	}
	if err := s.Delete(ctx, AutoName(2)); err != nil {
		t.Fatal(err)
	}
	if got := names(); !slices.Equal(got, []uint64{3, 1}) {
		t.Fatalf("AutoNames after a delete = %v, want [3 1]", got)
	}
	// No tombstone left: one metadata subject per live object (three snapshots of three parts).
	st, err := s.bucketStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(metaPrefix+">"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(info.State.Subjects); n != 9 {
		t.Fatalf("%d metadata subjects after the delete, want 9", n)
	}
	// An object deleted the object store's own way keeps its name as a tombstone.
	if err := s.obs.Delete(ctx, AutoName(3)); err != nil {
		t.Fatal(err)
	}
	if got := names(); !slices.Equal(got, []uint64{3, 1}) {
		t.Fatalf("AutoNames with a tombstone = %v, want [3 1]", got)
	}
	if _, err := s.Decode(ctx, AutoName(3)); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("opening a tombstone: %v, want ErrObjectNotFound", err)
	}
}

// TestStorePutSlowAcks: a checkpoint is stored even when its chunks' acks come later than the
// JetStream default timeout after their publish (as under a write burst on two cores, where
// every checkpoint failed with "timeout waiting for ack"): a put without a deadline gets one
// for the whole of it instead of the per-publish default. The handle's default here is 1 ms, so
// without that every part of this 24 MiB snapshot fails.
func TestStorePutSlowAcks(t *testing.T) {
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	js, err := jetstream.New(l.JetStream().Conn(), jetstream.WithDefaultTimeout(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	octx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := OpenStore(octx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 24<<20)
	rand.Read(data)
	if err := s.Put(context.Background(), AutoName(5), data, 5); err != nil {
		t.Fatalf("put with slow acks: %v", err)
	}
	if got, err := s.Get(octx, AutoName(5)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
}

// storeWithSnapshots is a parted store holding automatic snapshots 1..autos and an uploaded
// one named upload at sequence 9, all of data: three parts each.
func storeWithSnapshots(t *testing.T, autos uint64, upload string) (*Store, []byte) {
	t.Helper()
	ctx := context.Background()
	s := openPartedStore(t)
	data := make([]byte, 2500)
	rand.Read(data)
	for seq := uint64(1); seq <= autos; seq++ {
		if err := s.Put(ctx, AutoName(seq), data, seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, RestoreName(upload), data, 9); err != nil {
		t.Fatal(err)
	}
	return s, data
}

// TestStoreReadChecks: a snapshot part whose stored bytes do not match its metadata — another
// digest, size or chunk count than what is there — is an error when read, never data.
func TestStoreReadChecks(t *testing.T) {
	ctx := context.Background()
	s := openPartedStore(t)
	data := make([]byte, 2500)
	rand.Read(data)
	cases := []struct {
		name   string
		tamper func(*jetstream.ObjectInfo)
		want   string
	}{
		{"digest", func(i *jetstream.ObjectInfo) { i.Digest = "SHA-256=" + strings.Repeat("A", 43) + "=" }, "digest does not match"},
		{"size larger", func(i *jetstream.ObjectInfo) { i.Size++ }, "its size is"},
		{"size smaller", func(i *jetstream.ObjectInfo) { i.Size-- }, "longer than its size"},
		{"chunks", func(i *jetstream.ObjectInfo) { i.Chunks++ }, "chunks missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := AutoName(9)
			if err := s.Put(ctx, name, data, 9); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Get(ctx, name); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("untampered: %d bytes, %v", len(got), err)
			}
			info, err := s.obs.GetInfo(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(info)
			info.ModTime = time.Time{}
			b, err := json.Marshal(info)
			if err != nil {
				t.Fatal(err)
			}
			m := nats.NewMsg(metaSubject(name))
			m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
			m.Data = b
			if _, err := s.js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, name)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("tampered %s: %d bytes, %v; want an error saying %q", tc.name, len(got), err, tc.want)
			}
			if tc.name == "digest" && !errors.Is(err, jetstream.ErrDigestMismatch) {
				t.Fatalf("a wrong digest: %v, want jetstream.ErrDigestMismatch", err)
			}
		})
	}
}

// TestStoreDedupeWindowNarrowed: with local copies (UseLocal) the bucket's stream keeps
// JetStream's least duplicate window, on creation and on every later open (nats.go's
// CreateOrUpdateObjectStore puts the two-minute default back), since a restart reloads every
// message inside the window.
func TestStoreDedupeWindowNarrowed(t *testing.T) {
	ctx := context.Background()
	l, err := ledger.Open(ctx, ledger.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for open := range 2 {
		s, err := OpenStore(ctx, l.JetStream(), 1)
		if err != nil {
			t.Fatal(err)
		}
		local, err := OpenLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		s.UseLocal(ctx, local)
		st, err := l.JetStream().Stream(ctx, "OBJ_"+Bucket)
		if err != nil {
			t.Fatal(err)
		}
		if d := st.CachedInfo().Config.Duplicates; d != bucketDedupe {
			t.Fatalf("open %d: the bucket's duplicate window is %s, want %s", open+1, d, bucketDedupe)
		}
	}
}
