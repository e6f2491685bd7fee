package httpapi_test

import (
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// TestAuditReadsAcrossKill9: a read is answered once its record is in the node's audit spool,
// before JetStream has it. The server is killed with SIGKILL while reads stream in; after the
// restart and unseal every answered read's record reaches the audit device, exactly once.
func TestAuditReadsAcrossKill9(t *testing.T) {
	var mu sync.Mutex
	answered := map[string]bool{} // request ids of the reads answered
	put := func(root *vault.Client) {
		if _, err := root.KVv2("secret").Put(t.Context(), "r", map[string]any{"v": "x"}); err != nil {
			t.Fatal(err)
		}
	}
	_, path := killedWhileBusy(t, 8, put, func(root *vault.Client, _, _ int) error {
		s, err := root.KVv2("secret").Get(t.Context(), "r")
		if err != nil {
			return err
		}
		mu.Lock()
		answered[s.Raw.RequestID] = true
		mu.Unlock()
		return nil
	}, func(string) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(answered) >= 2000
	})
	count := map[string]int{}
	waitForLines(t, path, 60*time.Second, "every answered read's record delivered", func(ls []auditLine) bool {
		clear(count)
		for _, l := range ls {
			if l.Type == "response" && l.Request.Operation == "read" && l.Request.Path == "secret/data/r" {
				count[l.Request.ID]++
			}
		}
		for id := range answered {
			if count[id] == 0 {
				return false
			}
		}
		return true
	})
	for id := range answered {
		if count[id] != 1 {
			t.Errorf("answered read %s: %d records", id, count[id])
		}
	}
	t.Logf("%d reads answered before the kill, %d read records delivered", len(answered), len(count))
}
