package httpapi_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/ledger"
)

// dataKeys reads ledger_datakeys_count and the shred backlog from sys/metrics.
func dataKeys(t *testing.T, s *testServer) (count, backlog float64) {
	t.Helper()
	code, body := scrape(t, s.URL, s.RootToken, "/v1/sys/metrics?format=prometheus")
	if code != 200 {
		t.Fatalf("sys/metrics: %d %s", code, body)
	}
	mfs := promMetrics(t, body)
	return gaugeValue(t, mfs, "ledger_datakeys_count"), gaugeValue(t, mfs, "ledger_datakeys_shred_backlog")
}

// waitDataKeys waits (at most ShredDeadline plus a margin for a loaded machine) until the
// server holds want data keys and nothing is waiting to be erased.
func waitDataKeys(t *testing.T, s *testServer, want float64) {
	t.Helper()
	deadline := time.Now().Add(ledger.ShredDeadline + 15*time.Second)
	for {
		n, backlog := dataKeys(t, s)
		if n == want && backlog == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v data keys, backlog %v; want %v and 0", n, backlog, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShredMaxVersionsOneConcurrent: max_versions=1 with 16 writers on one path. Every write
// trims the previous version; in the end exactly one version is readable and exactly one data
// key exists (every trimmed key erased), and nothing acknowledged was lost.
func TestShredMaxVersionsOneConcurrent(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	kv := root.KVv2("secret")
	if err := kv.PutMetadata(t.Context(), "hot", vault.KVMetadataPutInput{MaxVersions: 1}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 15
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			c := s.Client(t, s.RootToken)
			for i := range each {
				if _, err := c.KVv2("secret").Put(t.Context(), "hot", map[string]any{"w": w, "i": i}); err != nil {
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
	meta, err := kv.GetMetadata(t.Context(), "hot")
	if err != nil {
		t.Fatal(err)
	}
	if meta.CurrentVersion != writers*each || len(meta.Versions) != 1 {
		t.Fatalf("current_version %d with %d versions kept, want %d and 1", meta.CurrentVersion, len(meta.Versions), writers*each)
	}
	if sec, err := kv.Get(t.Context(), "hot"); err != nil || sec.VersionMetadata.Version != writers*each {
		t.Fatalf("latest version unreadable: %v %+v", err, sec)
	}
	if _, err := kv.GetVersion(t.Context(), "hot", 1); err == nil {
		t.Fatal("version 1 still readable")
	}
	waitDataKeys(t, s, 1)
}

// TestShredManyVersionsAndMountDisable: one destroy request naming hundreds of versions, and
// a mount with thousands of paths disabled at once: afterwards no data key of them is left,
// and another mount's values are untouched. (The 10k-version and 100k-path sizes run in
// ledger's TestDataKeysShredMany and BenchmarkDataKeysShredMount.)
func TestShredManyVersionsAndMountDisable(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	kv := root.KVv2("secret")
	const versions = 400
	if err := kv.PutMetadata(t.Context(), "deep", vault.KVMetadataPutInput{MaxVersions: versions}); err != nil {
		t.Fatal(err)
	}
	for i := range versions {
		if _, err := kv.Put(t.Context(), "deep", map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	all := make([]int, versions-1)
	for i := range all {
		all[i] = i + 1
	}
	// Versions that do not exist are ignored, as Vault does.
	if err := kv.Destroy(t.Context(), "deep", append(all, 99999)); err != nil {
		t.Fatal(err)
	}
	waitDataKeys(t, s, 1)
	if sec, err := kv.Get(t.Context(), "deep"); err != nil || fmt.Sprint(sec.Data["i"]) != fmt.Sprint(versions-1) {
		t.Fatalf("the one version not destroyed: %v %+v", err, sec)
	}
	if _, err := root.Logical().Write("secret/destroy/deep", map[string]any{"versions": "not-a-list"}); err == nil {
		t.Fatal("destroy with a bad versions field accepted")
	}

	if err := root.Sys().Mount("bulk", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	const paths = 2000
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			c := s.Client(t, s.RootToken).KVv2("bulk")
			for i := w; i < paths; i += 16 {
				if _, err := c.Put(t.Context(), fmt.Sprintf("p/%05d", i), map[string]any{"i": i}); err != nil {
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
	waitDataKeys(t, s, paths+1)
	if err := root.Sys().Unmount("bulk"); err != nil {
		t.Fatal(err)
	}
	waitDataKeys(t, s, 1)
	if sec, err := kv.Get(t.Context(), "deep"); err != nil || fmt.Sprint(sec.Data["i"]) != fmt.Sprint(versions-1) {
		t.Fatalf("another mount's value lost: %v", err)
	}
}
