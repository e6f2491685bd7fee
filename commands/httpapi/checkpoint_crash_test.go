package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// TestCrashDuringCheckpointWrite: the server writes checkpoints (automatic snapshots) back to
// back — every 20 ms, each about a megabyte — while clients write and delete secrets; it is
// killed with SIGKILL at a random moment, three times over, so kills land inside checkpoint
// writes (and their pruning). After each restart and unseal: every write the clients saw
// acknowledged reads back with its value, every delete they saw acknowledged stays deleted,
// and a destroyed version stays destroyed — nothing lost, nothing resurrected.
func TestCrashDuringCheckpointWrite(t *testing.T) {
	t.Setenv(childSnapshotEnv, "20ms")
	srv := startChild(t, t.TempDir())
	c := srv.client("")
	init, root := srv.initUnseal()
	if err := root.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// One client (and so one connection pool) per role: a client per request would spend
	// the test on connection set-up.
	var cmu, mu sync.Mutex
	clients := map[int]*vault.KVv2{}
	kvFor := func(w int) *vault.KVv2 {
		cmu.Lock()
		defer cmu.Unlock()
		if clients[w] == nil {
			clients[w] = srv.client(init.RootToken).KVv2("secret")
		}
		return clients[w]
	}
	kv := func() *vault.KVv2 { return kvFor(-1) }
	pad := strings.Repeat("x", 2<<10) // 400 secrets make a 1 MB checkpoint
	value := func(i, round int) string { return fmt.Sprintf("ckpt-%05d-r%d-%s", i, round, pad) }

	want := map[int]string{}  // acknowledged writes: path index → value
	deleted := map[int]bool{} // acknowledged metadata deletes
	// An answered request's outcome is known; one cut short by the kill may or may not have
	// committed, so its path is checked no more.
	settle := func(i int, err error, del bool, v string) {
		mu.Lock()
		defer mu.Unlock()
		delete(want, i)
		delete(deleted, i)
		switch {
		case err != nil:
		case del:
			deleted[i] = true
		default:
			want[i] = v
		}
	}
	write := func(kv *vault.KVv2, i, round int) error {
		_, err := kv.Put(ctx, fmt.Sprintf("c/%05d", i), map[string]any{"v": value(i, round)})
		settle(i, err, false, value(i, round))
		return err
	}
	if err := hammerN(t, 16, 400, func(i int) error { return write(kvFor(i%16), i, 0) }); err != nil {
		t.Fatal(err)
	}
	// Version 1 of c/00000 destroyed, version 2 written: the destroyed one must stay destroyed.
	if err := write(kv(), 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := kv().Destroy(ctx, "c/00000", []int{1}); err != nil {
		t.Fatal(err)
	}

	for round := 1; round <= 3; round++ {
		// Writers and deleters run until the kill; their outcome is known only for the
		// requests they saw answered.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				kv := kvFor(w)
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					// Each writer has paths of its own (so the order of its answers is
					// the order of its effects): it writes a path, then deletes it half the
					// time, so checkpoints are cut between a write and its delete.
					i := 1 + w + 8*((n/2*13+round*5)%61)
					if n%4 == 1 {
						err := kv.DeleteMetadata(ctx, fmt.Sprintf("c/%05d", i))
						settle(i, err, true, "")
						continue
					}
					_ = write(kv, i, round)
				}
			}()
		}
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		srv.kill9()
		close(stop)
		wg.Wait()

		srv.start()
		if _, err := c.Sys().Unseal(init.Keys[0]); err != nil {
			t.Fatalf("round %d: unseal after SIGKILL: %v", round, err)
		}
		t.Logf("round %d: restarted and unsealed; checking %d writes and %d deletes", round, len(want), len(deleted))
		if len(deleted) == 0 {
			t.Fatalf("round %d: no delete was acknowledged before the kill: the round tests nothing", round)
		}
		mu.Lock()
		for i, v := range want {
			sec, err := kv().Get(ctx, fmt.Sprintf("c/%05d", i))
			if err != nil {
				t.Fatalf("round %d: acknowledged write c/%05d lost: %v", round, i, err)
			}
			if got, _ := sec.Data["v"].(string); got != v {
				t.Fatalf("round %d: c/%05d reads %.20q…, want %.20q…", round, i, got, v)
			}
		}
		for i := range deleted {
			_, err := kv().Get(ctx, fmt.Sprintf("c/%05d", i))
			if !errors.Is(err, vault.ErrSecretNotFound) {
				t.Fatalf("round %d: deleted c/%05d came back (err %v)", round, i, err)
			}
		}
		mu.Unlock()
		if _, ok := want[0]; ok {
			if v1, err := kv().GetVersion(ctx, "c/00000", 1); err == nil && v1.Data != nil {
				t.Fatalf("round %d: destroyed version 1 of c/00000 readable again", round)
			}
		}
	}
	// The kills landed in the node's local copies of its checkpoints too (written with each
	// one): the copies were there to be read, and what a kill left half-written was swept.
	copies, err := filepath.Glob(filepath.Join(srv.dir, "checkpoints", "*.checkpoint"))
	if err != nil || len(copies) == 0 {
		t.Fatalf("local checkpoint copies after the crashes: %v, %v", copies, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		tmps, _ := filepath.Glob(filepath.Join(srv.dir, "checkpoints", "*.tmp"))
		if len(tmps) <= 1 { // at most the copy being written now
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("temporary copies not swept: %v", tmps)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The server still writes.
	if err := write(kv(), 5000, 9); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.url() + "/v1/sys/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health after the crashes: %v %v", resp, err)
	}
	resp.Body.Close()
}
