package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands/httpapi"
)

// vaultRaftServer and vaultRaftConfig mirror Vault's physical/raft RaftServer and
// RaftConfigurationResponse (the data.config of sys/storage/raft/configuration), field for
// field; decoding with DisallowUnknownFields proves there is nothing else.
type vaultRaftServer struct {
	NodeID          string `json:"node_id"`
	Address         string `json:"address"`
	Leader          bool   `json:"leader"`
	ProtocolVersion string `json:"protocol_version"`
	Voter           bool   `json:"voter"`
}

type vaultRaftConfig struct {
	Servers []*vaultRaftServer `json:"servers"`
	Index   uint64             `json:"index"`
}

// readyHACluster is initHACluster returning the root token.
func readyHACluster(t *testing.T, nodes []*haTestNode) string {
	t.Helper()
	return initHACluster(t, nodes).RootToken
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// raftConfig reads sys/storage/raft/configuration through the Vault client and checks it the
// way Vault's own CLI reads it (type assertions on each field) and field for field.
func raftConfig(t *testing.T, c *vault.Client) vaultRaftConfig {
	t.Helper()
	s, err := c.Logical().Read("sys/storage/raft/configuration")
	if err != nil {
		t.Fatalf("read raft configuration: %v", err)
	}
	if s == nil || s.Data == nil {
		t.Fatal("raft configuration: no data")
	}
	cfg, ok := s.Data["config"].(map[string]any)
	if !ok {
		t.Fatalf("data.config is %T", s.Data["config"])
	}
	for _, raw := range cfg["servers"].([]any) {
		srv := raw.(map[string]any)
		_ = srv["node_id"].(string)
		_ = srv["address"].(string)
		_ = srv["leader"].(bool)
		_ = srv["voter"].(bool)
		_ = srv["protocol_version"].(string)
	}
	b, _ := json.Marshal(cfg)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var out vaultRaftConfig
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("data.config does not decode into Vault's RaftConfigurationResponse: %v\n%s", err, b)
	}
	return out
}

func nodeName(i int) string { return "node" + string(rune('1'+i)) }

// TestRaftOpsOverHTTP: sys/storage/raft/configuration, autopilot state and configuration,
// snapshots and step-down on a three-node cluster, through the official Vault client, from the
// active node and from standbys; ACL refusals and bad input; a killed node shows unhealthy.
func TestRaftOpsOverHTTP(t *testing.T) {
	nodes := startHACluster(t)
	root := readyHACluster(t, nodes)
	act := activeIndex(nodes, -1)
	sb := (act + 1) % 3
	t.Logf("active: node%d", act+1)
	names := []string{"node1", "node2", "node3"}

	// Configuration: three voters, one leader (the active node), the same from any node.
	for _, i := range []int{act, sb, 3 - act - sb} {
		cfg := raftConfig(t, haClient(t, nodes[i].url, root))
		if len(cfg.Servers) != 3 {
			t.Fatalf("node%d: %d servers, want 3: %+v", i+1, len(cfg.Servers), cfg.Servers)
		}
		var leaders []string
		var ids []string
		for _, s := range cfg.Servers {
			ids = append(ids, s.NodeID)
			if s.Leader {
				leaders = append(leaders, s.NodeID)
			}
			if !s.Voter || s.ProtocolVersion == "" {
				t.Errorf("node%d: server %+v: want a voter with a protocol version", i+1, s)
			}
			want := nodes[slices.Index(names, s.NodeID)].url
			if s.Address != want {
				t.Errorf("node%d: server %s address %q, want %q", i+1, s.NodeID, s.Address, want)
			}
		}
		slices.Sort(ids)
		if !slices.Equal(ids, names) || len(leaders) != 1 || leaders[0] != nodeName(act) {
			t.Fatalf("node%d: servers %v leaders %v, want %v with leader %s", i+1, ids, leaders, names, nodeName(act))
		}
		if cfg.Index == 0 {
			t.Errorf("node%d: config index 0 on an initialised cluster", i+1)
		}
	}

	// Autopilot state through the Vault client's own call, from a standby and from the active.
	for _, i := range []int{sb, act} {
		var st *vault.AutopilotState
		waitFor(t, 30*time.Second, "healthy autopilot state", func() bool {
			var err error
			st, err = haClient(t, nodes[i].url, root).Sys().RaftAutopilotState()
			if err != nil {
				t.Fatalf("node%d autopilot state: %v", i+1, err)
			}
			return st.Healthy
		})
		voters := slices.Clone(st.Voters)
		slices.Sort(voters)
		if st.FailureTolerance != 1 || st.Leader != nodeName(act) || !slices.Equal(voters, names) || len(st.NonVoters) != 0 || len(st.Servers) != 3 {
			t.Fatalf("node%d autopilot state: %s", i+1, st)
		}
		logLeaders := 0
		for id, s := range st.Servers {
			wantStatus := "voter"
			if id == nodeName(act) {
				wantStatus = "leader"
			}
			if s.ID != id || s.Name != id || !s.Healthy || s.NodeStatus != "alive" || s.Status != wantStatus || s.NodeType != "voter" ||
				s.LastIndex == 0 || s.LastTerm == 0 || s.Version == "" || s.StableSince == "" || s.LastContact == "" {
				t.Errorf("node%d: server %s: %s", i+1, id, s)
			}
			if _, err := time.Parse(time.RFC3339Nano, s.StableSince); err != nil {
				t.Errorf("stable_since %q: %v", s.StableSince, err)
			}
			if _, err := time.ParseDuration(s.LastContact); err != nil {
				t.Errorf("last_contact %q: %v", s.LastContact, err)
			}
		}
		raw, err := haClient(t, nodes[i].url, root).Logical().Read("sys/storage/raft/autopilot/state")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range raw.Data["servers"].(map[string]any) {
			if s.(map[string]any)["meta"].(map[string]any)["log_leader"] == "true" {
				logLeaders++
			}
		}
		if logLeaders != 1 {
			t.Errorf("node%d: %d servers marked log_leader, want 1", i+1, logLeaders)
		}
	}
	apc, err := haClient(t, nodes[sb].url, root).Sys().RaftAutopilotConfiguration()
	if err != nil || apc == nil || apc.LastContactThreshold != 10*time.Second || apc.MaxTrailingLogs != 1000 || apc.CleanupDeadServers {
		t.Fatalf("autopilot configuration: %+v %v", apc, err)
	}
	err = haClient(t, nodes[sb].url, root).Sys().PutRaftAutopilotConfiguration(&vault.AutopilotConfig{CleanupDeadServers: true, MinQuorum: 3})
	respErr(t, err, http.StatusBadRequest, "fixed")

	// ACL: as in Vault these need the path's capability, not sudo; a token without it is refused.
	rootC := haClient(t, nodes[act].url, root)
	putPolicy(t, rootC, "raft-reader", `path "sys/storage/raft/configuration" { capabilities = ["read"] }`)
	reader := newToken(t, rootC, &vault.TokenCreateRequest{Policies: []string{"raft-reader"}})
	plain := newToken(t, rootC, &vault.TokenCreateRequest{Policies: []string{"default"}})
	// Created on the active node; the standby answers from its own applied position, which may
	// not have reached them yet under load (these clients present no X-Vault-Index).
	eventually(t, 10*time.Second, "the standby knows the new tokens", func() bool {
		for _, tok := range []string{reader.ClientToken, plain.ClientToken} {
			if _, err := haClient(t, nodes[sb].url, tok).Auth().Token().LookupSelf(); err != nil {
				return false
			}
		}
		return true
	})
	if cfg := raftConfig(t, haClient(t, nodes[sb].url, reader.ClientToken)); len(cfg.Servers) != 3 {
		t.Fatalf("reader token: %+v", cfg)
	}
	_, err = haClient(t, nodes[sb].url, plain.ClientToken).Logical().Read("sys/storage/raft/configuration")
	denied(t, err)
	_, err = haClient(t, nodes[sb].url, reader.ClientToken).Sys().RaftAutopilotState()
	denied(t, err)
	_, err = haClient(t, nodes[sb].url, "").Sys().RaftAutopilotState()
	if err == nil {
		t.Fatal("autopilot state without a token answered")
	}
	err = haClient(t, nodes[sb].url, reader.ClientToken).Sys().RaftSnapshot(&bytes.Buffer{})
	denied(t, err)

	// remove-peer: sudo; bad input refused; with three servers for three copies there is
	// nowhere to move a voter's copy, so JetStream refuses and nothing changes.
	removePeer := func(c *vault.Client, body map[string]any) error {
		_, err := c.Logical().Write("sys/storage/raft/remove-peer", body)
		return err
	}
	putPolicy(t, rootC, "raft-remover", `path "sys/storage/raft/remove-peer" { capabilities = ["update"] }`)
	remover := newToken(t, rootC, &vault.TokenCreateRequest{Policies: []string{"raft-remover"}})
	denied(t, removePeer(haClient(t, nodes[sb].url, remover.ClientToken), map[string]any{"server_id": nodeName(sb)}))
	respErr(t, removePeer(haClient(t, nodes[sb].url, root), map[string]any{}), http.StatusBadRequest, "missing server_id")
	respErr(t, removePeer(haClient(t, nodes[sb].url, root), map[string]any{"server_id": 7}), http.StatusBadRequest, "must be a string")
	respErr(t, removePeer(haClient(t, nodes[sb].url, root), map[string]any{"server_id": "node9"}), http.StatusBadRequest, "not a voter")
	respErr(t, removePeer(haClient(t, nodes[sb].url, root), map[string]any{"server_id": nodeName(sb)}), http.StatusBadRequest, "add a node first")
	if cfg := raftConfig(t, rootC); len(cfg.Servers) != 3 || !cfg.Servers[0].Voter || !cfg.Servers[1].Voter || !cfg.Servers[2].Voter {
		t.Fatalf("after a refused remove-peer: %+v", cfg.Servers)
	}

	// Snapshot saved through a standby, restored through the other standby (both forwarded to
	// the active node): a secret written after the snapshot is gone everywhere.
	if err := rootC.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	kv := func(i int) *vault.KVv2 { return haClient(t, nodes[i].url, root).KVv2("secret") }
	if _, err := kv(act).Put(context.Background(), "before", map[string]any{"v": "1"}); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := haClient(t, nodes[sb].url, root).Sys().RaftSnapshot(&snap); err != nil {
		t.Fatalf("snapshot through a standby: %v", err)
	}
	if _, err := kv(act).Put(context.Background(), "after", map[string]any{"v": "2"}); err != nil {
		t.Fatal(err)
	}
	other := 3 - act - sb
	// Garbage first: refused with 400, and nothing changed (the later secret is still there).
	err = haClient(t, nodes[other].url, root).Sys().RaftSnapshotRestore(strings.NewReader("not a snapshot at all"), false)
	respErr(t, err, http.StatusBadRequest, "nothing was changed")
	if s, err := kv(act).Get(context.Background(), "after"); err != nil || s.Data["v"] != "2" {
		t.Fatalf("after a refused restore: %v %v", s, err)
	}
	if err := haClient(t, nodes[other].url, root).Sys().RaftSnapshotRestore(bytes.NewReader(snap.Bytes()), false); err != nil {
		t.Fatalf("restore through a standby: %v", err)
	}
	for _, i := range []int{act, sb, other} {
		waitFor(t, 30*time.Second, "the restore on node"+string(rune('1'+i)), func() bool {
			_, err := kv(i).Get(context.Background(), "after")
			return errors.Is(err, vault.ErrSecretNotFound)
		})
		if s, err := kv(i).Get(context.Background(), "before"); err != nil || s.Data["v"] != "1" {
			t.Fatalf("node%d after restore: %v %v", i+1, s, err)
		}
	}

	// Step-down sent to a standby is forwarded: the active node gives up the lease. The
	// restore may itself have moved the lease (a node is not eligible while it reopens on the
	// restored log), so step down whichever node is active now. Right after the restore the
	// standby may not know the active node yet (Vault's 500 "active cluster node not found",
	// which changes nothing): ask again then.
	act = haWaitActive(t, nodes, -1)
	sb = (act + 1) % 3
	haPoll(t, "step-down through a standby", 30*time.Second, func() error {
		err := haClient(t, nodes[sb].url, root).Sys().StepDown()
		if err != nil && !strings.Contains(err.Error(), "active cluster node not found") {
			t.Fatalf("step-down through a standby: %v", err)
		}
		return err
	})
	waitFor(t, 30*time.Second, "new active node after step-down", func() bool {
		i := activeIndex(nodes, act)
		return i >= 0 && nodes[act].core.IsStandby()
	})
	act = activeIndex(nodes, act)
	waitFor(t, 30*time.Second, "configuration naming the new leader", func() bool {
		for _, s := range raftConfig(t, haClient(t, nodes[sb].url, root)).Servers {
			if s.Leader {
				return s.NodeID == nodeName(act)
			}
		}
		return false
	})

	// Kill a standby: autopilot (asked of the active node) says unhealthy, that node failed.
	dead := (act + 1) % 3
	nodes[dead].stop()
	var st *vault.AutopilotState
	// While the log's cluster re-forms around the loss, the state may know nothing of any
	// server (every one unhealthy, none "failed"); wait for the log's leader to answer.
	waitFor(t, 60*time.Second, "autopilot noticing the dead node", func() bool {
		st, err = haClient(t, nodes[act].url, root).Sys().RaftAutopilotState()
		return err == nil && !st.Healthy && st.Servers[nodeName(dead)] != nil && !st.Servers[nodeName(dead)].Healthy &&
			st.Servers[nodeName(dead)].NodeStatus == "failed"
	})
	if st.FailureTolerance != 0 || st.Leader != nodeName(act) || st.Servers[nodeName(dead)].NodeStatus != "failed" {
		t.Fatalf("autopilot with node%d dead: %s", dead+1, st)
	}
	for id, s := range st.Servers {
		if id != nodeName(dead) && !s.Healthy {
			t.Errorf("live node %s reported unhealthy: %s", id, s)
		}
	}
}

// TestRaftRemovePeer: four nodes, the streams on three of them (the fourth a non-voter). A
// voter dies for good; remove-peer through a standby moves its copies to the fourth node,
// which becomes a voter; the dead node is no voter any more; the cluster is healthy again
// and a write made afterwards is read on the new voter.
func TestRaftRemovePeer(t *testing.T) {
	nodes := startHAClusterN(t, 4, httpapi.Options{})
	root := readyHACluster(t, nodes)
	act := activeIndex(nodes, -1)
	index := func(id string) int { return int(id[len("node")] - '1') }
	var cfg vaultRaftConfig
	spare := -1
	waitFor(t, 60*time.Second, "three voters and one non-voter", func() bool {
		cfg = raftConfig(t, haClient(t, nodes[act].url, root))
		voters := 0
		for _, s := range cfg.Servers {
			if s.Voter {
				voters++
			} else {
				spare = index(s.NodeID)
			}
		}
		return len(cfg.Servers) == 4 && voters == 3 && spare >= 0
	})
	victim := -1
	for _, s := range cfg.Servers {
		if i := index(s.NodeID); s.Voter && i != act && victim < 0 {
			victim = i
		}
	}
	via := -1
	for i := range nodes {
		if i != act && i != victim && via < 0 {
			via = i
		}
	}
	t.Logf("active node%d, spare node%d, removing node%d through node%d", act+1, spare+1, victim+1, via+1)
	nodes[victim].stop()
	c := haClient(t, nodes[via].url, root)
	haPoll(t, "remove-peer", 30*time.Second, func() error {
		_, err := c.Logical().Write("sys/storage/raft/remove-peer", map[string]any{"server_id": nodeName(victim)})
		return err
	})
	waitFor(t, 90*time.Second, "the spare node a voter, the removed one not", func() bool {
		cfg = raftConfig(t, haClient(t, nodes[act].url, root))
		voter := map[string]bool{}
		for _, s := range cfg.Servers {
			voter[s.NodeID] = s.Voter
		}
		return voter[nodeName(spare)] && !voter[nodeName(victim)] && voter[nodeName(act)] && voter[nodeName(via)]
	})
	waitFor(t, 90*time.Second, "autopilot healthy with three voters", func() bool {
		st, err := haClient(t, nodes[act].url, root).Sys().RaftAutopilotState()
		return err == nil && st.Healthy && len(st.Voters) == 3 && !slices.Contains(st.Voters, nodeName(victim))
	})
	if err := haClient(t, nodes[act].url, root).Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := haClient(t, nodes[act].url, root).KVv2("secret").Put(context.Background(), "after-removal", map[string]any{"v": "1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the write read on the new voter", func() bool {
		s, err := haClient(t, nodes[spare].url, root).KVv2("secret").Get(context.Background(), "after-removal")
		return err == nil && s.Data["v"] == "1"
	})
	// Removing it again: once the meta leader has applied every stream's new assignment the
	// node holds nothing, and the answer is a 400. An assignment is proposed when peer-remove
	// answers and applied a moment later, so: ask until the answer is a 400.
	var err error
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, err = c.Logical().Write("sys/storage/raft/remove-peer", map[string]any{"server_id": nodeName(victim)})
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest || time.Now().After(deadline) {
			break
		}
	}
	respErr(t, err, http.StatusBadRequest, "not a voter")
}
