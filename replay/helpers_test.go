package replay_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/lease"
	"github.com/ledger-secrets/ledger/projections/mount"
	"github.com/ledger-secrets/ledger/projections/policy"
	"github.com/ledger-secrets/ledger/replay"
)

const testCluster = "3f1c9a7e-0000-4000-8000-00000000c1a5"

// env is a real log on an embedded JetStream with a keyring, as a node has it unsealed.
type env struct {
	log     *ledger.Log
	kr      *ledger.Keyring
	rootKey []byte
}

func newEnv(t testing.TB) *env {
	t.Helper()
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	kr, err := ledger.NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l.SetKeyring(kr)
	root := make([]byte, ledger.RootKeySize)
	rand.Read(root)
	return &env{log: l, kr: kr, rootKey: root}
}

// newViews is the set of views these tests replay into.
func newViews() []projections.View {
	return []projections.View{mount.New(), policy.New(), kvview.New(), lease.New()}
}

func (e *env) append(t testing.TB, evs ...ledger.Event) uint64 {
	t.Helper()
	pos, err := e.log.Append(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	return pos[len(pos)-1].Seq
}

func mountEvent(t testing.TB, path, uuid string) ledger.Event {
	b, err := json.Marshal(mount.Entry{Path: path, Type: "kv", UUID: uuid, Accessor: "kv_" + uuid[:8], Options: map[string]string{"version": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Event{Type: mount.Enabled, Subject: ledger.SubjectFor("mount", path), Payload: b}
}

// kvEvent is a KV v2 write as the engine decides it: ciphertext and a key id, never a value.
func kvEvent(mountUUID string, i int, version uint64) ledger.Event {
	sealed := make([]byte, 64)
	rand.Read(sealed)
	p := kvview.VersionWrittenPayload{Mount: mountUUID, Path: fmt.Sprintf("app/%06d", i), Version: version,
		Created: time.Unix(1_700_000_000+int64(i), 0).UTC(), KeyID: fmt.Sprintf("kv.%s.%d.%d", mountUUID[:8], i, version),
		Sealed: sealed, Oldest: 1}
	b, _ := json.Marshal(p)
	return ledger.Event{Type: kvview.VersionWritten, Subject: ledger.SubjectFor("kv", mountUUID, p.Path), Payload: b}
}

// kvWrite is kvEvent for version v of secret i under max_versions=keep: older versions trimmed.
func kvWrite(mountUUID string, i int, v uint64, keep uint64) ledger.Event {
	e := kvEvent(mountUUID, i, v)
	if v > keep {
		var p kvview.VersionWrittenPayload
		json.Unmarshal(e.Payload, &p)
		p.Trim, p.Oldest = []uint64{v - keep}, v-keep+1
		e.Payload, _ = json.Marshal(p)
	}
	return e
}

// fillChurn appends rounds writes to each of secrets paths, keeping keep versions of each: a
// log whose history is much longer than its state, as real logs are.
func (e *env) fillChurn(t testing.TB, mountUUID string, secrets, rounds int, keep uint64) {
	t.Helper()
	for v := 1; v <= rounds; v++ {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		chunk := (secrets + 3) / 4
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w * chunk; i < min((w+1)*chunk, secrets); i += 512 {
					var evs []ledger.Event
					for j := i; j < min(i+512, (w+1)*chunk, secrets); j++ {
						evs = append(evs, kvWrite(mountUUID, j, uint64(v), keep))
					}
					if _, err := e.log.Append(context.Background(), evs); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func leaseIssued(id string, expire time.Time) ledger.Event {
	b, _ := json.Marshal(lease.IssuedPayload{ID: id, MountUUID: "db-uuid", MountPath: "database/", Path: "creds/app",
		IssueTime: expire.Add(-time.Hour), ExpireTime: expire, MaxExpire: expire.Add(24 * time.Hour), Renewable: true})
	return ledger.Event{Type: lease.Issued, Subject: ledger.SubjectFor("lease", id), Payload: b}
}

func leaseRenewed(id string, expire time.Time) ledger.Event {
	b, _ := json.Marshal(lease.RenewedPayload{ID: id, ExpireTime: expire, RenewTime: time.Now()})
	return ledger.Event{Type: lease.Renewed, Subject: ledger.SubjectFor("lease", id), Payload: b}
}

// fillKV appends n KV writes in batches of per, from workers goroutines (so batches also get
// group-committed together, as under load).
func (e *env) fillKV(t testing.TB, mountUUID string, n, per, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	chunk := (n + workers - 1) / workers
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lo, hi := w*chunk, min((w+1)*chunk, n)
			for i := lo; i < hi; i += per {
				evs := make([]ledger.Event, 0, per)
				for j := i; j < min(i+per, hi); j++ {
					evs = append(evs, kvEvent(mountUUID, j, 1))
				}
				if _, err := e.log.Append(context.Background(), evs); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// snapshotOf cuts the runner's views into a sealed snapshot file.
func (e *env) snapshotOf(t testing.TB, r *projections.Runner, dataKeys []byte) ([]byte, replay.Cut) {
	t.Helper()
	return e.encodeCut(t, r, dataKeys, (*replay.Snapshot).Encode)
}

// checkpointOf cuts the runner's views into a checkpoint, as a server stores it in its bucket,
// the views named in last written last.
func (e *env) checkpointOf(t testing.TB, r *projections.Runner, last ...string) ([]byte, replay.Cut) {
	t.Helper()
	return e.encodeCut(t, r, nil, func(s *replay.Snapshot, w io.Writer, kr *ledger.Keyring) (int64, error) {
		return s.EncodeCheckpoint(w, kr, last...)
	})
}

// encodeCut cuts the runner's views and encodes them, sealed by e's keys.
func (e *env) encodeCut(t testing.TB, r *projections.Runner, dataKeys []byte,
	encode func(*replay.Snapshot, io.Writer, *ledger.Keyring) (int64, error)) ([]byte, replay.Cut) {
	t.Helper()
	cut, err := replay.Capture(r, true)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := e.kr.Wrap(e.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	s := &replay.Snapshot{ClusterID: testCluster, ClusterName: "test", Seq: cut.Seq, Hash: cut.Hash, Created: time.Now(),
		Seal: replay.SealConfig{Shares: 3, Threshold: 2, Term: e.kr.Term(), Keyring: wrapped}, Views: cut.Views, DataKeys: dataKeys}
	var buf bytes.Buffer
	if _, err := encode(s, &buf, e.kr); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), cut
}

// tarEntries unpacks a snapshot file's archive, or a checkpoint's (no gzip layer).
func tarEntries(t testing.TB, data []byte) (names []string, files map[string][]byte) {
	t.Helper()
	var body io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(body)
		if err != nil {
			t.Fatal(err)
		}
		body = gz
	}
	tr := tar.NewReader(body)
	files = map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names = append(names, h.Name)
		files[h.Name] = b
	}
}

// repackBare is repack for a checkpoint: the archive without the gzip layer.
func repackBare(t testing.TB, names []string, files map[string][]byte) []byte {
	t.Helper()
	return gunzip(t, repack(t, names, files))
}

// gunzip returns what a gzip stream holds.
func gunzip(t testing.TB, gzipped []byte) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(gzipped))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// repack writes an archive again, with SHA256SUMS recomputed: what a forger who knows the format
// but not the keyring can do.
func repack(t testing.TB, names []string, files map[string][]byte) []byte {
	t.Helper()
	var sums strings.Builder
	for _, n := range names {
		if n != "SHA256SUMS" && n != "SHA256SUMS.sealed" {
			fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(files[n]), n)
		}
	}
	files["SHA256SUMS"] = []byte(sums.String())
	return archive(names, files)
}

// archive writes entries as a snapshot archive, as given (SHA256SUMS included).
func archive(names []string, files map[string][]byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o600, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
		tw.Write(files[n])
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}
