package main

import (
	"context"
	"fmt"

	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/ledger"
)

// startCLICluster runs three real servers (startServer, as `ledger server` does) forming one
// JetStream cluster with HA, each on its own loopback API port; it returns their addresses.
func startCLICluster(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	var routes, listens, addrs []string
	var lns []net.Listener
	for range 3 {
		route := freeAddr(t)
		listens, routes = append(listens, route), append(routes, "nats://"+route)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns, addrs = append(lns, ln), append(addrs, "http://"+ln.Addr().String())
	}
	servers := make([]*server, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			name := fmt.Sprintf("node%d", i+1)
			servers[i], errs[i] = startServer(context.Background(), newLogger(os.Stderr, "error"),
				ledger.Options{Dir: filepath.Join(dir, name), Replicas: 3, NodeName: name,
					Cluster: &ledger.ClusterOptions{Name: "cli", Listen: listens[i], Routes: routes}},
				commands.Options{Replicas: 3, HA: &commands.HAOptions{Node: name, APIAddr: addrs[i], TTL: 3 * time.Second}},
				addrs[i], []listenerSpec{{alreadyListening: lns[i]}})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node%d: %v", i+1, err)
		}
		s := servers[i]
		t.Cleanup(func() { s.close(context.Background()) })
	}
	return addrs
}

// retryOK runs a command until it succeeds (a forming cluster refuses for a while).
func (c *cli) retryOK(d time.Duration, args ...string) string {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := c.run(args...)
		if r.code == 0 {
			return r.stdout
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("ledger %s: %s", strings.Join(args, " "), r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// peersTable parses list-peers output into node → state, checking the header and the voters.
func peersTable(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || strings.Join(strings.Fields(lines[0]), " ") != "Node Address State Voter" {
		t.Fatalf("list-peers header:\n%s", out)
	}
	states := map[string]string{}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 4 || f[3] != "true" {
			t.Fatalf("list-peers row %q:\n%s", l, out)
		}
		states[f[0]] = f[2]
	}
	return states
}

func leaderOf(states map[string]string) string {
	for n, s := range states {
		if s == "leader" {
			return n
		}
	}
	return ""
}

// activeByStatus polls `ledger status` on every node until one other than node index not
// (-1: any) reports HA Mode active and returns its index, or -1 after d. It leaves c.addr on
// the last node asked.
func (c *cli) activeByStatus(addrs []string, not int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		active := -1
		for i, a := range addrs {
			c.addr = a
			if hasRow(c.ok("status"), "HA Mode", "active") {
				active = i
			}
		}
		if (active >= 0 && active != not) || time.Now().After(deadline) {
			return active
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestOperatorRaftCLI: the lesson's Part 10 commands against a three-node cluster: status,
// list-peers and autopilot state from a standby, snapshot save through one standby and restore
// through another, step-down through a standby, and a token without the capability refused.
func TestOperatorRaftCLI(t *testing.T) {
	addrs := startCLICluster(t)
	c := &cli{t: t, addr: addrs[2], home: t.TempDir()}
	init := decodeJSON(t, c.retryOK(60*time.Second, "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json"))
	key := init["unseal_keys_b64"].([]any)[0].(string)
	c.token = init["root_token"].(string)
	for _, a := range addrs {
		c.addr = a
		c.retryOK(60*time.Second, "operator", "unseal", key)
	}

	// status on every node: HA enabled, one active, the standbys name it.
	active := c.activeByStatus(addrs, -1, 60*time.Second)
	if active < 0 {
		t.Fatal("no node reports HA Mode active")
	}
	sb, other := (active+1)%3, (active+2)%3
	c.addr = addrs[sb]
	st := c.ok("status")
	if !hasRow(st, "HA Enabled", "true") || !hasRow(st, "HA Mode", "standby") || !hasRow(st, "Active Node Address", addrs[active]) {
		t.Fatalf("status on a standby:\n%s", st)
	}
	if js := decodeJSON(t, c.ok("status", "-format=json")); js["ha_enabled"] != true || js["leader_address"] != addrs[active] {
		t.Fatalf("status -format=json on a standby: %v", js)
	}

	// list-peers from a standby: three voters, one leader, the active node.
	states := peersTable(t, c.ok("operator", "raft", "list-peers"))
	if len(states) != 3 || leaderOf(states) != fmt.Sprintf("node%d", active+1) {
		t.Fatalf("list-peers: %v, active is node%d", states, active+1)
	}
	js := decodeJSON(t, c.ok("operator", "raft", "list-peers", "-format=json"))
	if servers := mapOf(mapOf(js["data"])["config"])["servers"].([]any); len(servers) != 3 {
		t.Fatalf("list-peers -format=json: %v", js)
	}

	// autopilot state from a standby: healthy, with the active node as leader.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := c.ok("operator", "raft", "autopilot", "state")
		if hasRow(out, "Healthy:", "true") && hasRow(out, "Leader:", fmt.Sprintf("node%d", active+1)) &&
			hasRow(out, "Failure Tolerance:", "1") && strings.Count(out, "Node Status:   alive") == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("autopilot state:\n%s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if cfg := decodeJSON(t, c.ok("operator", "raft", "autopilot", "get-config", "-format=json")); cfg["max_trailing_logs"] == nil {
		t.Fatalf("autopilot get-config: %v", cfg)
	}

	// Snapshot saved through a standby, restored through the other one.
	c.ok("secrets", "enable", "-version=2", "-path=secret", "kv")
	c.ok("kv", "put", "secret/app", "v=before")
	file := filepath.Join(t.TempDir(), "cluster.snap")
	if out := c.ok("operator", "raft", "snapshot", "save", file); !strings.Contains(out, "Success! Saved snapshot to "+file) {
		t.Fatalf("snapshot save: %s", out)
	}
	c.ok("kv", "put", "secret/app", "v=after")
	c.addr = addrs[other]
	if out := c.ok("operator", "raft", "snapshot", "restore", file); !strings.Contains(out, "Success! Restored") {
		t.Fatalf("snapshot restore: %s", out)
	}
	for _, a := range addrs {
		c.addr = a
		deadline := time.Now().Add(60 * time.Second)
		for {
			r := c.run("kv", "get", "-field=v", "secret/app")
			if r.code == 0 && r.stdout == "before\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after restore, %s answers %s", a, r)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// The restore may itself have moved the lease (a node is not eligible while it reopens on
	// the restored log): the step-down below is of whichever node is active now.
	active = c.activeByStatus(addrs, -1, 60*time.Second)
	if active < 0 {
		t.Fatal("no node reports HA Mode active after the restore")
	}
	sb = (active + 1) % 3

	// A token without sudo cannot step the active node down, nor list peers.
	c.addr = addrs[sb]
	plain := decodeJSON(t, c.ok("token", "create", "-policy=default", "-format=json"))
	weak := mapOf(plain["auth"])["client_token"].(string)
	r := c.runEnv(c.env("VAULT_TOKEN", weak), "", "operator", "step-down")
	expect(t, r, 2, "permission denied")
	r = c.runEnv(c.env("VAULT_TOKEN", weak), "", "operator", "raft", "list-peers")
	expect(t, r, 2, "permission denied")

	// step-down through a standby: the active node steps down and another takes over. Vault's
	// 500 "active cluster node not found" (the standby does not know the active node for a
	// moment) changes nothing: ask again then.
	var out string
	for try := 0; ; try++ {
		r := c.run("operator", "step-down")
		if r.code == 0 {
			out = r.stdout
			break
		}
		if try == 50 || !strings.Contains(r.stderr, "active cluster node not found") {
			t.Fatalf("step-down: %s", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out, "Success! Stepped down") {
		t.Fatalf("step-down: %s", out)
	}
	// Each node's own status says whether it holds the lease now.
	now := c.activeByStatus(addrs, active, 60*time.Second)
	if now < 0 || now == active {
		t.Fatalf("the lease did not move from node%d after step-down", active+1)
	}
	t.Logf("step-down moved the lease from node%d to node%d", active+1, now+1)
}

// TestOperatorRaftStandalone: a node without HA answers with itself as the only server, the
// leader and a voter; autopilot says healthy with no failure tolerance.
func TestOperatorRaftStandalone(t *testing.T) {
	c := newCLI(t)
	states := peersTable(t, c.ok("operator", "raft", "list-peers"))
	if len(states) != 1 || leaderOf(states) == "" {
		t.Fatalf("standalone list-peers: %v", states)
	}
	out := c.ok("operator", "raft", "autopilot", "state")
	if !hasRow(out, "Healthy:", "true") || !hasRow(out, "Failure Tolerance:", "0") || !hasRow(out, "Leader:", leaderOf(states)) {
		t.Fatalf("standalone autopilot state:\n%s", out)
	}
	r := c.run("operator", "raft", "list-peers", "extra")
	expect(t, r, 2, "Usage")
}
