package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

// Side effects across a failover happen once: a lease that expires while the active node is
// gone is revoked by the next active node, once; an audit device gets every record once.

// crash stops a node as a crash would, as far as the cluster sees it: its NATS server (and so
// its JetStream peer and its connection) goes first, so the node cannot resign its lease or
// finish anything in flight; the others wait for the lease to lapse.
func (n *haTestNode) crash() {
	n.once.Do(func() {
		n.hs.Close()
		n.log.Close()
		n.core.Close()
	})
}

// TestHALeaseExpiringDuringFailoverRevokedOnce: two PostgreSQL credentials with a 10 s TTL,
// issued by the active node. The first expires just after the active node steps down (it stays
// up, as a standby, and must not revoke it); the second after the active node crashed, while
// no node is active yet. The revocation statement records each run in a table, so the
// database itself counts how often each credential was revoked: exactly once.
func TestHALeaseExpiringDuringFailoverRevokedOnce(t *testing.T) {
	l := dbtest.LessonPostgres(t)
	if l.IsMySQL() {
		t.Fatal("want PostgreSQL")
	}
	l.Exec(t, "CREATE TABLE revocations (name text NOT NULL, at timestamptz NOT NULL DEFAULT now())",
		"GRANT INSERT ON revocations TO "+l.AdminUser)
	nodes, root := haBoot(t)
	act := haWaitActive(t, nodes, -1)
	c := haClient(t, nodes[act].url, root)
	dbConfigure(t, c, l, "short")
	if _, err := c.Logical().Write("database/roles/short", map[string]any{
		"db_name": "production-db", "creation_statements": l.Readonly,
		"revocation_statements": `INSERT INTO revocations (name) VALUES ('{{name}}'); DROP ROLE IF EXISTS "{{name}}";`,
		"default_ttl":           "10s",
		"max_ttl":               "10s",
	}); err != nil {
		t.Fatalf("write database/roles/short: %v", err)
	}
	revocations := func(user string) int {
		n, err := dbtest.PostgresQuery(context.Background(), l.Super, "SELECT count(*) FROM revocations WHERE name = '"+user+"'")
		if err != nil {
			t.Fatalf("count revocations: %v", err)
		}
		var v int
		fmt.Sscan(n, &v)
		return v
	}

	for _, kill := range []bool{false, true} {
		act := haWaitActive(t, nodes, -1)
		c := haClient(t, nodes[act].url, root)
		var cr dbCred
		haPoll(t, "issue a credential", 30*time.Second, func() error {
			s, err := c.Logical().Read("database/creds/short")
			if err == nil && (s == nil || s.LeaseID == "") {
				err = fmt.Errorf("no lease in %+v", s)
			}
			if err != nil {
				return err
			}
			cr = dbCred{leaseID: s.LeaseID, ttl: time.Duration(s.LeaseDuration) * time.Second}
			cr.username, _ = s.Data["username"].(string)
			cr.password, _ = s.Data["password"].(string)
			return nil
		})
		l.CleanupUser(t, cr.username)
		issued := time.Now()
		if cr.ttl != 10*time.Second || !dbLogs(l, cr) {
			t.Fatalf("credential: ttl %s, logs in: %v", cr.ttl, dbLogs(l, cr))
		}
		// The fault, 2 s before the lease ends: the crashed node's HA lease (3 s TTL) lapses
		// about when the credential's does.
		time.Sleep(time.Until(issued.Add(8 * time.Second)))
		if kill {
			nodes[act].crash()
			t.Logf("node%d crashed %s after the credential was issued", act+1, time.Since(issued).Round(time.Millisecond))
		} else {
			if err := c.Sys().StepDown(); err != nil {
				t.Fatalf("step-down node%d: %v", act+1, err)
			}
			t.Logf("node%d stepped down %s after the credential was issued", act+1, time.Since(issued).Round(time.Millisecond))
		}
		// The scenario holds only if the lease was still open at the fault.
		if got := revocations(cr.username); got != 0 || !dbLogs(l, cr) || time.Since(issued) >= cr.ttl {
			t.Fatalf("revoked %d times before the fault, %s after issue; logs in: %v", got, time.Since(issued), dbLogs(l, cr))
		}
		skip := -1
		if kill {
			skip = act
		}
		next := haWaitActive(t, nodes, skip)
		t.Logf("node%d active %s after issue", next+1, time.Since(issued).Round(time.Millisecond))
		nc := haClient(t, nodes[next].url, root)
		if !dbPoll(90*time.Second, func() bool { return revocations(cr.username) > 0 }) {
			t.Fatalf("the credential was not revoked within 90 s of its expiry")
		}
		t.Logf("revoked %s after issue", time.Since(issued).Round(time.Millisecond))
		if !dbPoll(30*time.Second, func() bool { return len(dbLeases(t, nc, "database/creds/short/")) == 0 }) {
			t.Errorf("the lease is still listed: %v", dbLeases(t, nc, "database/creds/short/"))
		}
		// Give a second revocation (by any node still up) every chance to happen.
		time.Sleep(5 * time.Second)
		if got := revocations(cr.username); got != 1 {
			t.Errorf("kill=%v: the credential was revoked %d times, want exactly 1", kill, got)
		}
		if dbLogs(l, cr) {
			t.Errorf("kill=%v: the credential still logs in after its revocation", kill)
		}
		if exists, _ := l.Account(t, cr.username); exists {
			t.Errorf("kill=%v: the role %s still exists", kill, cr.username)
		}
	}
}

// haAuditEntry is what the test reads of a line of a file audit device.
type haAuditEntry struct {
	Type    string `json:"type"`
	Request struct {
		ID   string `json:"id"`
		Path string `json:"path"`
	} `json:"request"`
}

// haAuditCounts counts the complete lines of the audit file by (type, request id).
func haAuditCounts(t *testing.T, path string) map[[2]string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1] // a line being written is not complete yet
	} else {
		b = nil
	}
	out := map[[2]string]int{}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e haAuditEntry
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("audit line is not JSON: %v", err)
		}
		out[[2]string{e.Type, e.Request.ID}]++
	}
	return out
}

// TestHAAuditOnceAcrossFailover: a file audit device (its file on storage all nodes share, as
// the nodes of this in-process cluster do), KV writes and reads through all three nodes while
// the active node steps down and later is killed. Every request that was answered has exactly
// one request and one response entry in the file, and no entry appears twice.
func TestHAAuditOnceAcrossFailover(t *testing.T) {
	nodes, root := haBoot(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	haPoll(t, "enable the file device", 30*time.Second, func() error {
		err := haClient(t, nodes[1].url, root).Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{
			Type: "file", Options: map[string]string{"file_path": path}})
		if err != nil && strings.Contains(err.Error(), "already in use") {
			return nil
		}
		return err
	})
	var (
		alive    [3]atomic.Bool
		stop     atomic.Bool
		mu       sync.Mutex
		ids      = map[string]string{} // request id -> what
		failures atomic.Int64
	)
	for i := range alive {
		alive[i].Store(true)
	}
	var wg sync.WaitGroup
	for cl := range 3 {
		wg.Go(func() {
			for n := 0; !stop.Load(); n++ {
				home := cl
				for !alive[home].Load() {
					home = (home + 1) % 3
				}
				c := haClient(t, nodes[home].url, root)
				p := fmt.Sprintf("secret/data/audit/c%d", cl)
				var s *vault.Secret
				var err error
				what := fmt.Sprintf("node%d ", home+1)
				if n%2 == 0 {
					s, err = c.Logical().Write(p, map[string]any{"data": map[string]any{"n": n}})
					what += "write " + p
				} else {
					s, err = c.Logical().Read(p)
					what += "read " + p
				}
				if err != nil || s == nil || s.RequestID == "" {
					failures.Add(1)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				mu.Lock()
				ids[s.RequestID] = what
				mu.Unlock()
			}
		})
	}
	answered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ids)
	}
	waitMore := func(n int) {
		t.Helper()
		want := answered() + n
		if !dbPoll(60*time.Second, func() bool { return answered() >= want }) {
			t.Fatalf("only %d requests answered, want %d", answered(), want)
		}
	}
	waitMore(40)
	act := haWaitActive(t, nodes, -1)
	if err := haClient(t, nodes[act].url, root).Sys().StepDown(); err != nil {
		t.Errorf("step-down node%d: %v", act+1, err)
	}
	t.Logf("node%d stepped down after %d answered requests", act+1, answered())
	haWaitActive(t, nodes, -1)
	waitMore(40)
	act = haWaitActive(t, nodes, -1)
	alive[act].Store(false)
	nodes[act].stop()
	t.Logf("node%d killed after %d answered requests", act+1, answered())
	haWaitActive(t, nodes, act)
	waitMore(40)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d requests answered, %d failed during the failovers", len(ids), failures.Load())

	if !dbPoll(90*time.Second, func() bool {
		got := haAuditCounts(t, path)
		for id := range ids {
			if got[[2]string{"response", id}] == 0 {
				return false
			}
		}
		return true
	}) {
		missing := 0
		got := haAuditCounts(t, path)
		for id, what := range ids {
			if got[[2]string{"response", id}] == 0 {
				if missing++; missing <= 5 {
					t.Errorf("no audit response entry for %s (%s)", id, what)
				}
			}
		}
		t.Fatalf("%d of %d answered requests are missing from the audit file after 90 s", missing, len(ids))
	}
	time.Sleep(3 * time.Second) // a late duplicate has time to arrive
	got := haAuditCounts(t, path)
	total := 0
	for k, n := range got {
		total += n
		if n != 1 {
			t.Errorf("%s entry of request %s (%s) is in the file %d times", k[0], k[1], ids[k[1]], n)
		}
	}
	for id, what := range ids {
		if got[[2]string{"request", id}] != 1 || got[[2]string{"response", id}] != 1 {
			t.Errorf("request %s (%s): %d request and %d response entries, want 1 and 1", id, what,
				got[[2]string{"request", id}], got[[2]string{"response", id}])
		}
	}
	t.Logf("audit file: %d entries, %d distinct; every one of the %d answered requests once", total, len(got), len(ids))
}
