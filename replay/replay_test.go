package replay_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/lease"
	"github.com/ledger-secrets/ledger/projections/policy"
	"github.com/ledger-secrets/ledger/projections/seal"
	"github.com/ledger-secrets/ledger/replay"
)

const mountUUID = "9b2e4c1a-1111-4222-8333-444455556666"

// secretPolicy is a policy whose text is the marker the snapshot must not show in clear.
const secretMarker = "policy-marker-7c1d95e3a0"

func policyEvent(name, text string) ledger.Event {
	b, _ := json.Marshal(policy.WrittenPayload{Name: name, Text: text})
	return ledger.Event{Type: policy.Written, Subject: ledger.SubjectFor("policy", name), Payload: b}
}

// workload appends a bit of everything these views know.
func workload(t *testing.T, e *env) {
	t.Helper()
	e.append(t, mountEvent(t, "secret/", mountUUID))
	e.fillKV(t, mountUUID, 300, 25, 3)
	e.append(t, policyEvent("app", `path "secret/*" { capabilities = ["read"] } # `+secretMarker))
	e.append(t, leaseIssued("database/creds/app/a", time.Now().Add(time.Hour)), leaseIssued("database/creds/app/b", time.Now().Add(2*time.Hour)))
	e.append(t, leaseRenewed("database/creds/app/a", time.Now().Add(3*time.Hour)))
}

func TestSnapshotRoundTrip(t *testing.T) {
	e := newEnv(t)
	workload(t, e)
	live := projections.NewRunner(e.log, e.kr, newViews()...)
	if err := live.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, cut := e.snapshotOf(t, live, []byte(`{"v":1,"keys":{}}`))
	if bytes.Contains(data, []byte(secretMarker)) {
		t.Fatal("the snapshot file holds a policy text in clear")
	}
	names, files := tarEntries(t, data)
	if names[0] != "meta.json" || names[len(names)-1] != "SHA256SUMS.sealed" {
		t.Fatalf("archive order %v: meta.json first, SHA256SUMS.sealed last (Vault's client checks the latter)", names)
	}
	for n, b := range files {
		if bytes.Contains(b, []byte(secretMarker)) {
			t.Fatalf("%s holds a policy text in clear", n)
		}
	}

	f, err := replay.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.Seq != cut.Seq || f.Header.ClusterID != testCluster || !f.Header.HasDataKeys() {
		t.Fatalf("header %+v", f.Header)
	}
	kr, err := f.Keyring(e.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Open(kr)
	if err != nil {
		t.Fatal(err)
	}
	restored := newViews()
	if _, err := s.Restore(restored, replay.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, v := range restored {
		if v.Digest() != live.Views()[i].Digest() {
			t.Fatalf("view %s: restored digest differs", v.Name())
		}
	}
	if string(s.DataKeys) != `{"v":1,"keys":{}}` {
		t.Fatalf("data keys %q", s.DataKeys)
	}
	// A snapshot of another keyring does not open.
	other, _ := ledger.NewKeyring(time.Now())
	if _, err := f.Open(other); !errors.Is(err, replay.ErrNotAuthentic) {
		t.Fatalf("open with another keyring: %v, want ErrNotAuthentic", err)
	}
	// Open decrypted the sections in place: the same File does not open twice, and says so.
	if _, err := f.Open(kr); err == nil || !strings.Contains(err.Error(), "already opened") {
		t.Fatalf("second open: %v", err)
	}
	if again, err := replay.Decode(data); err != nil {
		t.Fatal(err)
	} else if _, err := again.Open(kr); err != nil {
		t.Fatalf("the bytes decoded again do not open: %v", err)
	}
}

// TestDecodeRefusesBadFiles: whatever is wrong with the file, Decode says so clearly and never
// panics; a forgery with recomputed checksums passes Decode but not Open.
func TestDecodeRefusesBadFiles(t *testing.T) {
	e := newEnv(t)
	workload(t, e)
	live := projections.NewRunner(e.log, e.kr, newViews()...)
	if err := live.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, _ := e.snapshotOf(t, live, nil)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a Ledger snapshot"},
		{"garbage", []byte("hello, this is not a snapshot at all"), "not a Ledger snapshot"},
		{"half", data[:len(data)/2], "truncated"},
		{"all but the last byte", data[:len(data)-1], ""},
		{"first 100 bytes", data[:100], "truncated"},
		{"bit flipped mid-file", flip(data, len(data)/2), "corrupted"},
		{"bit flipped near the end", flip(data, len(data)-40), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replay.Decode(tc.data)
			if !errors.Is(err, replay.ErrInvalid) {
				t.Fatalf("Decode = %v, want ErrInvalid", err)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("message %q does not say %q", err, tc.want)
			}
		})
	}
	// Read from a stream (the object store's parts), the same file decodes to the same thing in
	// whatever pieces it comes; a stream that fails is an error of the read, not a verdict on
	// the file; a stream shorter or longer than it said is refused.
	t.Run("from a stream", func(t *testing.T) {
		want, err := replay.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		got, err := replay.DecodeFrom(iotest.OneByteReader(bytes.NewReader(data)), int64(len(data)))
		if err != nil || got.SHA256 != want.SHA256 || got.SHA256 != sha256.Sum256(data) || got.Size != want.Size || !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("DecodeFrom = %v, or it differs from Decode", err)
		}
		if _, err := got.Open(e.kr); err != nil {
			t.Fatal(err)
		}
		broken := io.MultiReader(bytes.NewReader(data[:len(data)/2]), iotest.ErrReader(errors.New("connection reset")))
		if _, err := replay.DecodeFrom(broken, int64(len(data))); err == nil || errors.Is(err, replay.ErrInvalid) || !strings.Contains(err.Error(), "connection reset") {
			t.Fatalf("a failing stream: %v", err)
		}
		for _, size := range []int64{int64(len(data)) - 1, int64(len(data)) + 1} {
			if _, err := replay.DecodeFrom(bytes.NewReader(data), size); !errors.Is(err, replay.ErrInvalid) {
				t.Fatalf("%d bytes said to be %d: %v", len(data), size, err)
			}
		}
		if _, err := replay.DecodeFrom(bytes.NewReader(append(bytes.Clone(data), "trailing"...)), int64(len(data))+8); err != nil {
			t.Fatalf("bytes after the gzip stream (Decode accepts them): %v", err)
		}
	})
	// Every possible truncation is refused.
	for n := 0; n < len(data); n += max(1, len(data)/97) {
		if _, err := replay.Decode(data[:n]); !errors.Is(err, replay.ErrInvalid) {
			t.Fatalf("truncated to %d of %d bytes: %v", n, len(data), err)
		}
	}

	names, files := tarEntries(t, data)
	t.Run("forged view with recomputed sums", func(t *testing.T) {
		fs := map[string][]byte{}
		for k, v := range files {
			fs[k] = append([]byte(nil), v...)
		}
		b := fs["views/kv.sealed"]
		b[len(b)/2] ^= 1
		f, err := replay.Decode(repack(t, names, fs))
		if err != nil {
			t.Fatalf("a forgery with recomputed sums passes the keyless checks, got %v", err)
		}
		if _, err := f.Open(e.kr); !errors.Is(err, replay.ErrNotAuthentic) {
			t.Fatalf("Open = %v, want ErrNotAuthentic", err)
		}
	})
	t.Run("forged header with recomputed sums", func(t *testing.T) {
		fs := map[string][]byte{}
		for k, v := range files {
			fs[k] = append([]byte(nil), v...)
		}
		fs["meta.json"] = bytes.Replace(fs["meta.json"], []byte(testCluster), []byte("00000000-0000-4000-8000-000000000000"), 1)
		f, err := replay.Decode(repack(t, names, fs))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Open(e.kr); !errors.Is(err, replay.ErrNotAuthentic) {
			t.Fatalf("Open = %v, want ErrNotAuthentic: the header is bound to every chunk", err)
		}
	})
	t.Run("entry claiming a terabyte", func(t *testing.T) {
		// A header may say anything: Decode must not allocate what it claims before the bytes
		// come. The entry is cut short, so the file is truncated.
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		if err := tw.WriteHeader(&tar.Header{Name: "meta.json", Mode: 0o600, Size: 1 << 40, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files["meta.json"]); err != nil {
			t.Fatal(err)
		}
		gz.Close() // not tw.Close: it would insist on the terabyte
		_, err := replay.Decode(buf.Bytes())
		if !errors.Is(err, replay.ErrInvalid) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("Decode = %v, want ErrInvalid saying truncated", err)
		}
	})
	t.Run("section dropped", func(t *testing.T) {
		var keep []string
		for _, n := range names {
			if n != "views/lease.sealed" {
				keep = append(keep, n)
			}
		}
		if _, err := replay.Decode(repack(t, keep, files)); !errors.Is(err, replay.ErrInvalid) {
			t.Fatalf("Decode = %v, want ErrInvalid", err)
		}
	})
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x10
	return c
}

// TestLoadBaseReplaysTheTail: unseal = newest snapshot + the batches after it, and that equals
// a replay from genesis. A lease renewed after the snapshot keeps its renewed expiry: the
// renewal is in the tail, so a restart never revives a stale TTL (the vault#22275 failure).
func TestLoadBaseReplaysTheTail(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	workload(t, e)
	e.append(t, leaseIssued("database/creds/app/short", time.Now().Add(time.Second)))
	live, store := e.liveStore(t)
	data, cut := e.snapshotOf(t, live, nil)
	if err := store.Put(ctx, replay.AutoName(cut.Seq), data, cut.Seq); err != nil {
		t.Fatal(err)
	}
	// After the snapshot: the short lease is renewed for an hour, more writes arrive.
	e.append(t, leaseRenewed("database/creds/app/short", time.Now().Add(time.Hour)))
	e.fillKV(t, mountUUID, 50, 10, 1)
	if err := live.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	head, _ := live.Head()

	st := seal.State{Initialized: true, ClusterID: testCluster}
	views := newViews()
	base, err := replay.LoadBase(ctx, e.log.JetStream(), store, st, e.kr, views, replay.BaseOptions{})
	if err != nil || base == nil || base.Seq != cut.Seq {
		t.Fatalf("LoadBase = %+v, %v; want the snapshot at %d", base, err, cut.Seq)
	}
	stats, err := replay.Replay(ctx, e.log, e.kr, views, base.Seq, base.Hash, head, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Events != 51 {
		t.Fatalf("tail replay applied %d events, want 51 (1 renewal + 50 writes)", stats.Events)
	}
	for _, r := range replay.Compare(replay.Digests(live.Views()), replay.Digests(views)) {
		if !r.Match {
			t.Fatalf("view %s: snapshot + tail != live", r.Name)
		}
	}
	leases := views[3].(*lease.View)
	if got := leases.Expiring(time.Now().Add(time.Minute), 10); len(got) != 0 {
		t.Fatalf("after snapshot + tail, leases expiring within a minute: %v (the renewal after the snapshot was lost)", got)
	}

	// From genesis, for comparison (replay verify's path).
	fresh := newViews()
	if _, err := replay.Replay(ctx, e.log, e.kr, fresh, 0, [32]byte{}, head, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range replay.Compare(replay.Digests(live.Views()), replay.Digests(fresh)) {
		if !r.Match {
			t.Fatalf("view %s: genesis replay != live", r.Name)
		}
	}
}

// TestLoadBaseSkipsBadSnapshots: an automatic snapshot only saves time, so one that is
// corrupt, of another cluster or of another log position is skipped and the views start at
// genesis, empty.
func TestLoadBaseSkipsBadSnapshots(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	live, store := e.liveWorkload(t)
	data, cut := e.snapshotOf(t, live, nil)
	if err := store.Put(ctx, replay.AutoName(cut.Seq), flip(data, len(data)/2), cut.Seq); err != nil {
		t.Fatal(err)
	}
	views := newViews()
	empty := replay.Digests(newViews())
	for _, st := range []seal.State{{ClusterID: testCluster}, {ClusterID: "another-cluster"}} {
		base, err := replay.LoadBase(ctx, e.log.JetStream(), store, st, e.kr, views, replay.BaseOptions{})
		if err != nil || base != nil {
			t.Fatalf("LoadBase = %+v, %v; want nil (genesis)", base, err)
		}
		for _, r := range replay.Compare(empty, replay.Digests(views)) {
			if !r.Match {
				t.Fatalf("view %s not left empty after a skipped snapshot", r.Name)
			}
		}
		// The good file, but judged against another cluster: skipped as well.
		if err := store.Put(ctx, replay.AutoName(cut.Seq), data, cut.Seq); err != nil {
			t.Fatal(err)
		}
	}
	// A restore the log points to that cannot be loaded is an error, not a silent genesis.
	st := seal.State{ClusterID: testCluster, Restore: &seal.Restore{Seq: cut.Seq, Object: "restore/missing"}}
	if _, err := replay.LoadBase(ctx, e.log.JetStream(), store, st, e.kr, newViews(), replay.BaseOptions{SkipAuto: true}); err == nil {
		t.Fatal("a missing restored snapshot must fail the load")
	}
}

// TestLoadBaseSkipsTombstones: a newer checkpoint deleted the object store's own way (as builds
// before Store.remove did) leaves its name behind; unseal passes over it quietly to the newest
// snapshot that exists.
func TestLoadBaseSkipsTombstones(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	live, store := e.liveWorkload(t)
	data, cut := e.snapshotOf(t, live, nil)
	for _, seq := range []uint64{cut.Seq, cut.Seq + 1} {
		if err := store.Put(ctx, replay.AutoName(seq), data, seq); err != nil {
			t.Fatal(err)
		}
	}
	obs, err := e.log.JetStream().ObjectStore(ctx, replay.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.Delete(ctx, replay.AutoName(cut.Seq+1)); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, newViews(),
		replay.BaseOptions{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil || base == nil || base.Name != replay.AutoName(cut.Seq) {
		t.Fatalf("LoadBase = %+v, %v; want the snapshot at %d", base, err, cut.Seq)
	}
	if logged.Len() != 0 {
		t.Fatalf("a tombstone was reported: %s", logged.String())
	}
	// From the bucket a file decodes without its whole-file digest (the object store checked
	// each part's), everything else as from bytes.
	f, err := store.Decode(ctx, replay.AutoName(cut.Seq))
	if err != nil || f.SHA256 != ([32]byte{}) || f.Header.Seq != cut.Seq || f.Size != int64(len(data)) {
		t.Fatalf("Store.Decode = %+v, %v", f, err)
	}
	if _, err := f.Open(e.kr); err != nil {
		t.Fatal(err)
	}
}

// TestReplayDetectsBrokenChain: replay checks the hash chain from where it starts.
func TestReplayDetectsBrokenChain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	workload(t, e)
	head, err := e.log.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = replay.Replay(ctx, e.log, e.kr, newViews(), 2, [32]byte{1}, head, nil)
	if !errors.Is(err, ledger.ErrCorrupt) {
		t.Fatalf("replay from a wrong hash = %v, want ErrCorrupt", err)
	}
}

// liveWorkload writes the workload, folds it into a live runner's views and opens the
// snapshot store.
func (e *env) liveWorkload(t *testing.T) (*projections.Runner, *replay.Store) {
	t.Helper()
	workload(t, e)
	return e.liveStore(t)
}

// liveStore folds what the log holds into a live runner's views and opens the snapshot store.
func (e *env) liveStore(t *testing.T) (*projections.Runner, *replay.Store) {
	t.Helper()
	live := projections.NewRunner(e.log, e.kr, newViews()...)
	if err := live.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	store, err := replay.OpenStore(context.Background(), e.log.JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return live, store
}
