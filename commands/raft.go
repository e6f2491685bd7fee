package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
)

// sys/storage/raft/configuration and sys/storage/raft/autopilot/{state,configuration}: Vault's
// view of its integrated storage, answered from the real replication state of Ledger's log.
//
// Ledger has no raft of its own: the log is a JetStream stream whose replicas form a raft
// group inside NATS. The mapping:
//   - a server is a Ledger node (its node id is its NATS server name);
//   - a voter is a node holding a copy of the log (a replica of the log stream); a node of the
//     cluster that announces itself in the HA bucket but holds no copy is a non-voter;
//   - the leader is the active node (the holder of the HA lease), as in Vault, where the
//     active node is the raft leader. The stream's own leader, which orders the appends, is
//     named in each server's meta (log_leader) of the autopilot state;
//   - a server's lag is in log positions, as the stream's leader reports it; last_term is the
//     epoch of the current lease (Ledger's term: every batch carries it);
//   - address is the node's api_addr as it announced it (Ledger nodes forward requests to each
//     other there; the log travels over the NATS routes of the cluster config).
//
// A node without HA (standalone) answers with a one-server configuration: itself, leader and
// voter. Every node answers from what it sees (the stream's leader answers the replication
// part), so a standby answers the same peers as the active node.

// Autopilot's settings, fixed in Ledger (Vault's defaults): a server is healthy while the
// stream's leader heard from it within lastContactThreshold and it is at most maxTrailingLogs
// positions behind.
const (
	raftLastContactThreshold    = 10 * time.Second
	raftDeadServerThreshold     = 24 * time.Hour
	raftMaxTrailingLogs         = 1000
	raftServerStabilizationTime = 10 * time.Second
)

// raftTracker remembers, per node, what one request cannot see: the address of a node that
// stopped announcing itself, and since when a server has been healthy.
type raftTracker struct {
	mu          sync.Mutex
	addresses   map[string]string
	stableSince map[string]time.Time
	voters      []string // the log's replica set last seen (for answers while it has no leader)
}

// raftServer is one node as the raft endpoints report it.
type raftServer struct {
	ID      string
	Address string
	Voter   bool
	Active  bool               // holds the HA lease
	Member  bool               // announced itself in the HA bucket within the lease TTL
	Replica *ledger.LogReplica // nil: holds no copy of the log (or unknown: no quorum)
}

type raftView struct {
	servers  []raftServer
	cluster  ledger.LogCluster
	quorum   bool // the log stream answered (it has a leader)
	leader   string
	epoch    uint64
	observed time.Time
}

// raftState gathers the log's replication state, the HA members and the lease holder.
func (c *Core) raftState(ctx context.Context) raftView {
	v := raftView{observed: time.Now()}
	t := &c.misc.raft
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lc, err := c.log.ClusterState(cctx)
	v.quorum = err == nil
	v.cluster = lc

	var members []ledger.Member
	self, selfAddr := "", ""
	if c.ha != nil {
		self, selfAddr = c.opts.HA.Node, c.opts.HA.APIAddr
		st := c.HAStatus(cctx)
		if st.LeaderKnown {
			v.leader, v.epoch = st.Leader.Node, st.Leader.Epoch
		}
		members, _ = c.HAMembers(cctx)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.addresses == nil {
		t.addresses, t.stableSince = map[string]string{}, map[string]time.Time{}
	}
	if selfAddr != "" {
		t.addresses[self] = selfAddr
	}
	for _, m := range members {
		if m.APIAddr != "" {
			t.addresses[m.Node] = m.APIAddr
		}
	}
	seen := map[string]bool{}
	add := func(s raftServer) {
		if seen[s.ID] || s.ID == "" {
			return
		}
		seen[s.ID] = true
		s.Address = t.addresses[s.ID]
		s.Active = s.ID == v.leader
		v.servers = append(v.servers, s)
	}
	if v.quorum {
		t.voters = t.voters[:0]
		for i := range lc.Replicas {
			r := lc.Replicas[i]
			t.voters = append(t.voters, r.Name)
			add(raftServer{ID: r.Name, Voter: true, Replica: &r})
		}
		if c.ha == nil && len(lc.Replicas) == 1 {
			v.leader = lc.Replicas[0].Name // standalone: the node is its own leader
			v.servers[0].Active = true
		}
	} else {
		// No answer from the log's leader: the voters last seen, with nothing known about them.
		for _, id := range t.voters {
			add(raftServer{ID: id, Voter: true})
		}
		for _, id := range c.log.ClusterPeers() {
			add(raftServer{ID: id, Voter: true})
		}
	}
	for _, m := range members {
		add(raftServer{ID: m.Node})
	}
	if self != "" {
		add(raftServer{ID: self, Voter: !v.quorum})
	}
	for i := range v.servers {
		v.servers[i].Member = slices.ContainsFunc(members, func(m ledger.Member) bool { return m.Node == v.servers[i].ID })
	}
	slices.SortStableFunc(v.servers, func(a, b raftServer) int {
		if a.Active != b.Active {
			if a.Active {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return v
}

// healthy applies autopilot's rule to one server: a voter by its copy of the log, a
// non-voter by its announcements.
func (s raftServer) healthy() bool {
	r := s.Replica
	if !s.Voter {
		return s.Member
	}
	if r == nil {
		return false
	}
	if r.Leader {
		return true
	}
	return !r.Offline && r.Active < raftLastContactThreshold && r.Lag <= raftMaxTrailingLogs
}

// raftConfigurationPath answers sys/storage/raft/configuration in Vault's shape.
func (s *sysBackend) raftConfigurationPath(ctx context.Context) (*engines.Response, error) {
	v := s.c.raftState(ctx)
	servers := make([]map[string]any, 0, len(v.servers))
	for _, srv := range v.servers {
		servers = append(servers, map[string]any{
			"node_id": srv.ID, "address": srv.Address, "leader": srv.Active,
			"protocol_version": strconv.Itoa(ledger.FormatVersion), "voter": srv.Voter,
		})
	}
	return &engines.Response{Data: map[string]any{
		"config": map[string]any{"servers": servers, "index": v.cluster.LastSeq},
	}}, nil
}

// raftAutopilotStatePath answers sys/storage/raft/autopilot/state in Vault's shape.
func (s *sysBackend) raftAutopilotStatePath(ctx context.Context) (*engines.Response, error) {
	v := s.c.raftState(ctx)
	t := &s.c.misc.raft
	servers := map[string]any{}
	voters, nonVoters := []string{}, []string{}
	healthyVoters, allHealthy := 0, v.quorum
	t.mu.Lock()
	for _, srv := range v.servers {
		ok := srv.healthy()
		if !ok {
			delete(t.stableSince, srv.ID)
		} else if _, was := t.stableSince[srv.ID]; !was {
			t.stableSince[srv.ID] = v.observed
		}
		since := t.stableSince[srv.ID]
		status, nodeType := "non-voter", "non-voter"
		if srv.Voter {
			voters = append(voters, srv.ID)
			status, nodeType = "voter", "voter"
			if ok {
				healthyVoters++
			}
		} else {
			nonVoters = append(nonVoters, srv.ID)
		}
		if !ok {
			allHealthy = false
		}
		if srv.Active {
			status = "leader"
		}
		nodeStatus, lastContact, lastIndex, logLeader := "unknown", "", uint64(0), false
		if r := srv.Replica; r != nil {
			nodeStatus, lastContact = "alive", r.Active.String()
			if r.Offline {
				nodeStatus = "failed"
			}
			lastIndex = v.cluster.LastSeq - min(r.Lag, v.cluster.LastSeq)
			logLeader = r.Leader
		} else if srv.Member {
			nodeStatus = "alive" // a non-voter that announced itself within the lease TTL
		}
		stable := ""
		if !since.IsZero() {
			stable = since.UTC().Format(time.RFC3339Nano)
		}
		servers[srv.ID] = map[string]any{
			"id": srv.ID, "name": srv.ID, "address": srv.Address, "node_status": nodeStatus,
			"last_contact": lastContact, "last_term": v.epoch, "last_index": lastIndex,
			"healthy": ok, "stable_since": stable, "status": status, "version": Version,
			"node_type": nodeType,
			"meta":      map[string]string{"log_leader": strconv.FormatBool(logLeader)},
		}
	}
	t.mu.Unlock()
	quorum := len(voters)/2 + 1
	tolerance := max(healthyVoters-quorum, 0)
	data := map[string]any{
		"healthy": allHealthy && v.leader != "", "failure_tolerance": tolerance, "leader": v.leader,
		"voters": voters, "servers": servers,
	}
	if len(nonVoters) > 0 {
		data["non_voters"] = nonVoters
	}
	return &engines.Response{Data: data}, nil
}

// raftRemovePeerPath answers sys/storage/raft/remove-peer (Vault's shape: server_id): the
// node's JetStream server gives up its copy of every stream, which JetStream moves to another
// server — so a node can be retired for good. JetStream keeps every stream at its replica
// count, so there must be a server to move to: add a node first (it joins as a non-voter).
func (s *sysBackend) raftRemovePeerPath(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	if req.Op != engines.OpUpdate && req.Op != engines.OpCreate {
		return nil, engines.Errorf(engines.ErrUnsupported, "remove-peer is a write: POST server_id")
	}
	raw, present := req.Data["server_id"]
	id, isString := raw.(string)
	if present && raw != nil && !isString {
		return nil, engines.BadRequest("server_id must be a string: the node's id as list-peers shows it")
	}
	if id == "" {
		return nil, engines.BadRequest("missing server_id: the id of the node to remove, as `ledger operator raft list-peers` shows it")
	}
	if s.c.ha == nil {
		return nil, engines.BadRequest("this server is not part of a cluster: there is no peer to remove")
	}
	moved, err := s.c.log.RemovePeer(ctx, id)
	switch {
	case errors.Is(err, ledger.ErrNotReplica):
		return nil, engines.BadRequest("%q holds no copy of the log or of any other stream: it is not a voter (see list-peers); nothing was changed", id)
	case errors.Is(err, ledger.ErrNoReplacement) && len(moved) == 0:
		return nil, engines.BadRequest("%v. Every stream keeps its %d copies, and no other server can take this one's: add a node first (it joins as a non-voter), then remove this one; nothing was changed", err, max(s.c.opts.Replicas, 1))
	case err != nil:
		return nil, fmt.Errorf("%w; moved so far: %s; run remove-peer again to finish", err, strings.Join(moved, ", "))
	}
	s.c.logger.Warn("raft: peer removed: its copies of the streams move to other servers", "server_id", id, "streams", moved)
	return nil, nil
}

// raftAutopilotConfigPath answers sys/storage/raft/autopilot/configuration: the fixed rules
// the state above applies. Ledger does not change membership by itself (no dead-server
// cleanup), so there is nothing to configure.
func (s *sysBackend) raftAutopilotConfigPath(req *engines.Request) (*engines.Response, error) {
	if req.Op != engines.OpRead {
		return nil, engines.BadRequest("autopilot configuration is fixed in Ledger: it never removes servers by itself; remove one with sys/storage/raft/remove-peer")
	}
	return &engines.Response{Data: map[string]any{
		"cleanup_dead_servers":               false,
		"last_contact_threshold":             raftLastContactThreshold.String(),
		"dead_server_last_contact_threshold": raftDeadServerThreshold.String(),
		"max_trailing_logs":                  raftMaxTrailingLogs,
		"min_quorum":                         0,
		"server_stabilization_time":          raftServerStabilizationTime.String(),
		"disable_upgrade_migration":          false,
	}}, nil
}
