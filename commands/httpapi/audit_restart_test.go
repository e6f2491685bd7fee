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
	srv := startChild(t, t.TempDir())
	c := srv.client("")
	init, root := srv.initUnseal()
	if err := root.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := root.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": path}}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("crash/%d-%d", w, i)
				if _, err := root.KVv2("secret").Put(t.Context(), p, map[string]any{"v": "x"}); err != nil {
					return // the server died under us
				}
				mu.Lock()
				acked["secret/data/"+p] = true
				mu.Unlock()
			}
		}()
	}
	waitForLines(t, path, 20*time.Second, "the device delivering", func(ls []auditLine) bool { return len(ls) > 40 })
	srv.kill9()
	close(stop)
	wg.Wait()

	srv.start()
	if _, err := c.Sys().Unseal(init.Keys[0]); err != nil {
		t.Fatal(err)
	}
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
