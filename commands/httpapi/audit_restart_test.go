package httpapi_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// TestAuditFileDeviceAcrossKill9: the server is killed with SIGKILL while writes stream in and
// the file device is delivering; after restart and unseal the device resumes from its durable
// consumers: every acknowledged write's record is in the file exactly once, in log order.
func TestAuditFileDeviceAcrossKill9(t *testing.T) {
	var mu sync.Mutex
	acked := map[string]bool{}
	root, path := killedWhileBusy(t, 4, nil, func(root *vault.Client, w, i int) error {
		p := fmt.Sprintf("crash/%d-%d", w, i)
		if _, err := root.KVv2("secret").Put(t.Context(), p, map[string]any{"v": "x"}); err != nil {
			return err
		}
		mu.Lock()
		acked["secret/data/"+p] = true
		mu.Unlock()
		return nil
	}, func(path string) bool {
		return len(readAuditFile(t, path)) > 40 // the device delivering
	})
	for i := range 5 {
		p := fmt.Sprintf("crash/after-%d", i)
		if _, err := root.KVv2("secret").Put(t.Context(), p, map[string]any{"v": "x"}); err != nil {
			t.Fatal(err)
		}
		acked["secret/data/"+p] = true
	}
	lines := waitForLines(t, path, 30*time.Second, "the device caught up after the restart", func(ls []auditLine) bool {
		return len(find(ls, "response", "create", "secret/data/crash/after-4")) > 0
	})
	count := map[string]int{}
	type key struct {
		seq   uint64
		index uint32
		typ   string
	}
	var last *key
	seen := map[key]bool{}
	for _, l := range lines {
		if l.Ledger.Stream != "LEDGER" {
			continue
		}
		k := key{l.Ledger.Seq, l.Ledger.Index, l.Type}
		if seen[k] {
			t.Fatalf("entry %+v written twice", k)
		}
		seen[k] = true
		if last != nil && (k.seq < last.seq || (k.seq == last.seq && k.index < last.index)) {
			t.Fatalf("entry %+v after %+v", k, *last)
		}
		last = &k
		if l.Type == "response" && l.Request.Operation == "create" {
			count[l.Request.Path]++
		}
	}
	for p := range acked {
		if count[p] != 1 {
			t.Errorf("acknowledged write %s: %d records", p, count[p])
		}
	}
	t.Logf("%d acknowledged writes, %d write records, %d lines", len(acked), len(count), len(lines))
}

// killedWhileBusy starts a child server with KV v2 at secret/ and a file audit device, runs
// setup, then workers that each call do (with their number and a counter) until it fails or
// the server is killed; once enough holds (given the device's file) it kills the server with
// SIGKILL, starts and unseals it again, and returns the root client and the device's file.
func killedWhileBusy(t *testing.T, workers int, setup func(root *vault.Client), do func(root *vault.Client, w, i int) error, enough func(path string) bool) (*vault.Client, string) {
	t.Helper()
	srv := startChild(t, t.TempDir())
	c := srv.client("")
	init, root := srv.initUnseal()
	if err := root.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(root)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := root.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": path}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if do(root, w, i) != nil {
					return // the server died under us
				}
			}
		})
	}
	eventually(t, 20*time.Second, "the workers' progress before the kill", func() bool { return enough(path) })
	srv.kill9()
	close(stop)
	wg.Wait()
	srv.start()
	if _, err := c.Sys().Unseal(init.Keys[0]); err != nil {
		t.Fatal(err)
	}
	return root, path
}
