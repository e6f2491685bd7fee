package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

func snapMarker(i int) string { return fmt.Sprintf("snap-marker-%03d-4be1f0c7d2", i) }

// TestSnapshotRestoreOntoFreshServer is issue 5's done-when: a snapshot saved with the official
// client and restored (-force) onto a fresh server — new data dir, never initialised — is
// opened by the original unseal keys and root token, every secret is back (destroyed ones stay
// destroyed), the server keeps working across a SIGKILL, and no value is in clear in the
// snapshot or in either data dir. Both servers are separate processes.
func TestSnapshotRestoreOntoFreshServer(t *testing.T) {
	ctx := context.Background()
	a := startChild(t, t.TempDir())
	ac := a.client("")
	init, err := ac.Sys().Init(&vault.InitRequest{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range init.Keys[:2] {
		if _, err := ac.Sys().Unseal(k); err != nil {
			t.Fatal(err)
		}
	}
	root := a.client(init.RootToken)
	if err := root.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	kv := root.KVv2("secret")
	for i := range n {
		if _, err := kv.Put(ctx, fmt.Sprintf("app/k%02d", i), map[string]any{"password": snapMarker(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Version 2 of k00, then version 1 destroyed: its value must not come back.
	if _, err := kv.Put(ctx, "app/k00", map[string]any{"password": snapMarker(100)}); err != nil {
		t.Fatal(err)
	}
	if err := kv.Destroy(ctx, "app/k00", []int{1}); err != nil {
		t.Fatal(err)
	}
	putPolicy(t, root, "reader", `path "secret/data/app/*" { capabilities = ["read"] }`)
	reader := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"reader"}})

	snap := save(t, root)
	assertNoClear(t, "the snapshot", snap, append(markersUpTo(n), snapMarker(100), init.RootToken, reader.ClientToken)...)

	// A fresh server: new data dir, not initialised, no token anywhere.
	b := startChild(t, t.TempDir())
	bc := b.client("")
	if err := bc.Sys().RaftSnapshotRestore(bytes.NewReader(snap), true); err != nil {
		t.Fatalf("restore onto a fresh server: %v", err)
	}
	st, err := bc.Sys().SealStatus()
	if err != nil || !st.Initialized || !st.Sealed || st.T != 2 || st.N != 3 {
		t.Fatalf("after restore: %+v %v; want initialised, sealed, 2 of 3", st, err)
	}
	for _, k := range init.Keys[1:3] { // any threshold of the original keys
		if _, err := bc.Sys().Unseal(k); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		broot := b.client(init.RootToken)
		for i := range n {
			want := snapMarker(i)
			if i == 0 {
				want = snapMarker(100)
			}
			s, err := broot.KVv2("secret").Get(ctx, fmt.Sprintf("app/k%02d", i))
			if err != nil || s.Data["password"] != want {
				t.Fatalf("%s: k%02d = %v, %v; want %s", when, i, s, err, want)
			}
		}
		v1, err := broot.KVv2("secret").GetVersion(ctx, "app/k00", 1)
		if err == nil && v1 != nil && v1.Data != nil {
			t.Fatalf("%s: destroyed version 1 came back: %v", when, v1.Data)
		}
		s, err := b.client(reader.ClientToken).KVv2("secret").Get(ctx, "app/k05")
		if err != nil || s.Data["password"] != snapMarker(5) {
			t.Fatalf("%s: the reader token does not read: %v", when, err)
		}
		_, err = b.client(reader.ClientToken).KVv2("secret").Put(ctx, "app/x", map[string]any{"a": "b"})
		denied(t, err)
	}
	check("after restore")
	if _, err := b.client(init.RootToken).KVv2("secret").Put(ctx, "app/after", map[string]any{"password": snapMarker(200)}); err != nil {
		t.Fatal(err)
	}

	// SIGKILL: the restored state and what was written after it come back with the same keys.
	b.kill9()
	b.start()
	for _, k := range init.Keys[:2] {
		if _, err := bc.Sys().Unseal(k); err != nil {
			t.Fatal(err)
		}
	}
	check("after SIGKILL")
	s, err := b.client(init.RootToken).KVv2("secret").Get(ctx, "app/after")
	if err != nil || s.Data["password"] != snapMarker(200) {
		t.Fatalf("write after restore lost across SIGKILL: %v %v", s, err)
	}
	for _, dir := range []string{a.dir, b.dir} {
		for _, f := range dataDirFiles(t, dir) {
			data, err := os.ReadFile(f)
			if err == nil {
				assertNoClear(t, f, data, append(markersUpTo(n), snapMarker(100), snapMarker(200), init.RootToken)...)
			}
		}
	}
}

func markersUpTo(n int) []string {
	var out []string
	for i := range n {
		out = append(out, snapMarker(i))
	}
	return out
}

// TestSnapshotRestoreForceOntoInitialisedServer: Vault's way — a new cluster, initialised and
// unsealed, restores another cluster's snapshot with snapshot-force. Without force it is
// refused and nothing changes; with force the server seals, its own keys and token stop
// working and the snapshot's open it.
func TestSnapshotRestoreForceOntoInitialisedServer(t *testing.T) {
	ctx := context.Background()
	a := newSnapServer(t, true)
	aroot := a.Client(t, a.RootToken)
	if _, err := aroot.KVv2("secret").Put(ctx, "db", map[string]any{"password": snapMarker(1)}); err != nil {
		t.Fatal(err)
	}
	snap := save(t, aroot)

	c := newSnapServer(t, true)
	croot := c.Client(t, c.RootToken)
	if _, err := croot.KVv2("secret").Put(ctx, "db", map[string]any{"password": "c-own-value"}); err != nil {
		t.Fatal(err)
	}
	before := c.lastSeq(t)
	err := croot.Sys().RaftSnapshotRestore(bytes.NewReader(snap), false)
	respErr(t, err, http.StatusBadRequest, "another cluster")
	respErr(t, err, http.StatusBadRequest, "-force")
	respErr(t, err, http.StatusBadRequest, "nothing was changed")
	if got := c.lastSeq(t); got != before {
		t.Fatalf("a refused restore appended to the log: seq %d → %d", before, got)
	}
	if s, err := croot.KVv2("secret").Get(ctx, "db"); err != nil || s.Data["password"] != "c-own-value" {
		t.Fatalf("after a refused restore: %v %v", s, err)
	}
	// A token without sudo may not restore, forced or not.
	putPolicy(t, croot, "snap-rw", `path "sys/storage/raft/*" { capabilities = ["read", "update", "create"] }`)
	weak := newToken(t, croot, &vault.TokenCreateRequest{Policies: []string{"snap-rw"}})
	denied(t, c.Client(t, weak.ClientToken).Sys().RaftSnapshotRestore(bytes.NewReader(snap), true))
	denied(t, c.Client(t, weak.ClientToken).Sys().RaftSnapshot(&bytes.Buffer{}))

	if err := croot.Sys().RaftSnapshotRestore(bytes.NewReader(snap), true); err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	cc := c.Client(t, "")
	if st, _ := cc.Sys().SealStatus(); !st.Sealed {
		t.Fatal("after a forced restore of another cluster the server must be sealed")
	}
	// C's own keys no longer open it.
	for i, k := range c.Keys[:2] {
		_, err := cc.Sys().Unseal(k)
		if i == 1 {
			respErr(t, err, http.StatusBadRequest, "do not reconstruct")
		}
	}
	c.unseal(t, a.Keys[0], a.Keys[2])
	if s, err := c.Client(t, a.RootToken).KVv2("secret").Get(ctx, "db"); err != nil || s.Data["password"] != snapMarker(1) {
		t.Fatalf("after forced restore: %v %v", s, err)
	}
	_, err = c.Client(t, c.RootToken).Logical().Read("auth/token/lookup-self")
	denied(t, err)
	if st, _ := cc.Sys().SealStatus(); st.ClusterID == "" {
		t.Fatal("no cluster id")
	}
}

// TestSnapshotRestoreSameCluster: a snapshot of the server's own cluster restores without
// force, rolls the state back to the snapshot and leaves the server unsealed.
func TestSnapshotRestoreSameCluster(t *testing.T) {
	ctx := context.Background()
	s := newSnapServer(t, true)
	root := s.Client(t, s.RootToken)
	kv := root.KVv2("secret")
	if _, err := kv.Put(ctx, "cfg", map[string]any{"v": "one"}); err != nil {
		t.Fatal(err)
	}
	snap := save(t, root)
	// After the snapshot the keyring rotates: data keys sealed under the new term are not
	// part of the restored state, and must not stop it from opening.
	if err := root.Sys().Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "cfg", map[string]any{"v": "two"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "later", map[string]any{"v": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().RaftSnapshotRestore(bytes.NewReader(snap), false); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Client(t, "").Sys().SealStatus(); st.Sealed {
		t.Fatal("a restore of the server's own cluster should leave it unsealed")
	}
	got, err := kv.Get(ctx, "cfg")
	if err != nil || got.Data["v"] != "one" || got.VersionMetadata.Version != 1 {
		t.Fatalf("cfg after restore = %v %v, want v=one at version 1", got, err)
	}
	if _, err := kv.Get(ctx, "later"); !isNotFound(err) {
		t.Fatalf("a secret written after the snapshot survived the restore: %v", err)
	}
	// The node goes on from the restore, and a restart (seal + unseal) gives the same state.
	if _, err := kv.Put(ctx, "cfg", map[string]any{"v": "three"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	s.unseal(t, s.Keys[1], s.Keys[2])
	got, err = kv.Get(ctx, "cfg")
	if err != nil || got.Data["v"] != "three" || got.VersionMetadata.Version != 2 {
		t.Fatalf("cfg after reseal = %v %v, want v=three at version 2", got, err)
	}
}

// TestSnapshotRestoreRefusesBadFiles: truncated, corrupted, foreign and empty files are refused
// with a message that says what is wrong, and the server — unsealed, or fresh — is unchanged.
func TestSnapshotRestoreRefusesBadFiles(t *testing.T) {
	ctx := context.Background()
	s := newSnapServer(t, true)
	root := s.Client(t, s.RootToken)
	if _, err := root.KVv2("secret").Put(ctx, "keep", map[string]any{"v": "kept"}); err != nil {
		t.Fatal(err)
	}
	snap := save(t, root)
	corrupt := append([]byte(nil), snap...)
	corrupt[len(corrupt)/2] ^= 0x01
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", snap[:len(snap)*2/3], "truncated"},
		{"corrupted", corrupt, "corrupted"},
		{"not a snapshot", []byte(`{"this":"is json"}`), "not a Ledger snapshot"},
		{"empty", nil, "empty"},
	}
	fresh := newSnapServer(t, false)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.lastSeq(t)
			for _, force := range []bool{false, true} {
				err := root.Sys().RaftSnapshotRestore(bytes.NewReader(tc.data), force)
				respErr(t, err, http.StatusBadRequest, tc.want)
				respErr(t, err, http.StatusBadRequest, "nothing was changed")
				err = fresh.Client(t, "").Sys().RaftSnapshotRestore(bytes.NewReader(tc.data), force)
				respErr(t, err, http.StatusBadRequest, tc.want)
			}
			if got := s.lastSeq(t); got != before {
				t.Fatalf("a refused restore appended to the log: %d → %d", before, got)
			}
			if v, err := root.KVv2("secret").Get(ctx, "keep"); err != nil || v.Data["v"] != "kept" {
				t.Fatalf("after a refused restore: %v %v", v, err)
			}
			if st, _ := fresh.Client(t, "").Sys().SealStatus(); st.Initialized {
				t.Fatal("a refused restore initialised the fresh server")
			}
		})
	}
	// Sealed and initialised: refused with 503, nothing read.
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	respErr(t, root.Sys().RaftSnapshotRestore(bytes.NewReader(snap), true), http.StatusServiceUnavailable, "sealed")
	// The JSON route answers with a pointer to the binary one rather than a confusing error.
	s.unseal(t, s.Keys[0], s.Keys[1])
	r := raw(t, s.URL, http.MethodGet, "sys/storage/raft/snapshot", nil, map[string]string{"X-Vault-Token": "nope"})
	if r.Status != http.StatusForbidden {
		t.Fatalf("download with a bad token = %d, want 403", r.Status)
	}
}
