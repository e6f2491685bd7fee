package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// operator raft list-peers and operator raft autopilot state|get-config, as Vault spells them,
// over sys/storage/raft/configuration and sys/storage/raft/autopilot/*: the nodes of a Ledger
// cluster, which hold a copy of the log, which one is active, and how healthy each copy is.

// raftConfig is the data of sys/storage/raft/configuration.
type raftConfig struct {
	Config struct {
		Servers []struct {
			NodeID          string `json:"node_id"`
			Address         string `json:"address"`
			Leader          bool   `json:"leader"`
			ProtocolVersion string `json:"protocol_version"`
			Voter           bool   `json:"voter"`
		} `json:"servers"`
		Index uint64 `json:"index"`
	} `json:"config"`
}

// dataInto decodes a response's data into out.
func dataInto(s *Secret, out any) error {
	if s == nil {
		return fmt.Errorf("the server answered with no data")
	}
	b, err := json.Marshal(s.Data)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func (a *app) raftListPeersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list-peers",
		Short: "List the nodes of the cluster: which is active, which hold a copy of the log",
		Long: `List the nodes of the cluster. The leader is the active node (the one holding
the HA lease); a voter holds a copy of the log. Any node answers, standby or active.

Needs read on sys/storage/raft/configuration.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.Get(cmd.Context(), "sys/storage/raft/configuration", nil)
			if err != nil {
				return fail("reading the raft cluster configuration", err)
			}
			if p.format != formatTable {
				return p.Structured(s)
			}
			var cfg raftConfig
			if err := dataInto(s, &cfg); err != nil {
				return fail("reading the raft cluster configuration", err)
			}
			rows := make([][]string, 0, len(cfg.Config.Servers))
			for _, srv := range cfg.Config.Servers {
				state := "follower"
				if srv.Leader {
					state = "leader"
				}
				rows = append(rows, []string{srv.NodeID, srv.Address, state, fmt.Sprint(srv.Voter)})
			}
			return p.Table([]string{"Node", "Address", "State", "Voter"}, rows)
		},
	}
}

// autopilotState is the data of sys/storage/raft/autopilot/state.
type autopilotState struct {
	Healthy          bool     `json:"healthy"`
	FailureTolerance int      `json:"failure_tolerance"`
	Leader           string   `json:"leader"`
	Voters           []string `json:"voters"`
	NonVoters        []string `json:"non_voters"`
	Servers          map[string]struct {
		ID          string            `json:"id"`
		Name        string            `json:"name"`
		Address     string            `json:"address"`
		NodeStatus  string            `json:"node_status"`
		LastContact string            `json:"last_contact"`
		LastTerm    uint64            `json:"last_term"`
		LastIndex   uint64            `json:"last_index"`
		Healthy     bool              `json:"healthy"`
		StableSince string            `json:"stable_since"`
		Status      string            `json:"status"`
		Version     string            `json:"version"`
		NodeType    string            `json:"node_type"`
		Meta        map[string]string `json:"meta"`
	} `json:"servers"`
}

func (a *app) raftAutopilotCmd() *cobra.Command {
	state := &cobra.Command{
		Use:   "state",
		Short: "Print the health of every node's copy of the log",
		Long: `Print whether the cluster is healthy, how many nodes it can lose, and for
each node whether its copy of the log is current: how long since the log's
leader heard from it and which log position it holds.

Needs read on sys/storage/raft/autopilot/state.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.Get(cmd.Context(), "sys/storage/raft/autopilot/state", nil)
			if err != nil {
				return fail("checking autopilot state", err)
			}
			if p.format != formatTable {
				return p.Data(s.Data)
			}
			var st autopilotState
			if err := dataInto(s, &st); err != nil {
				return fail("checking autopilot state", err)
			}
			fmt.Fprint(a.stdout, autopilotText(st))
			return nil
		},
	}
	getConfig := &cobra.Command{
		Use:   "get-config",
		Short: "Print the rules autopilot state applies",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.Get(cmd.Context(), "sys/storage/raft/autopilot/configuration", nil)
			if err != nil {
				return fail("reading autopilot configuration", err)
			}
			return p.Data(s.Data)
		},
	}
	return group("autopilot", "Cluster health as autopilot reports it", state, getConfig)
}

// autopilotText lays the state out as Vault's CLI does.
func autopilotText(st autopilotState) string {
	var b strings.Builder
	kv := func(indent, k string, v any) { fmt.Fprintf(&b, "%s%-*s %v\n", indent, 20-len(indent), k+":", v) }
	kv("", "Healthy", st.Healthy)
	kv("", "Failure Tolerance", st.FailureTolerance)
	kv("", "Leader", st.Leader)
	b.WriteString("Voters:\n")
	for _, v := range st.Voters {
		b.WriteString("   " + v + "\n")
	}
	if len(st.NonVoters) > 0 {
		b.WriteString("Non Voters:\n")
		for _, v := range st.NonVoters {
			b.WriteString("   " + v + "\n")
		}
	}
	b.WriteString("Servers:\n")
	ids := make([]string, 0, len(st.Servers))
	for id := range st.Servers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := st.Servers[id]
		b.WriteString("   " + id + "\n")
		kv("      ", "Name", s.Name)
		kv("      ", "Address", s.Address)
		kv("      ", "Status", s.Status)
		kv("      ", "Node Status", s.NodeStatus)
		kv("      ", "Healthy", s.Healthy)
		kv("      ", "Last Contact", s.LastContact)
		kv("      ", "Last Term", s.LastTerm)
		kv("      ", "Last Index", s.LastIndex)
		kv("      ", "Stable Since", s.StableSince)
		kv("      ", "Version", s.Version)
		kv("      ", "Node Type", s.NodeType)
		if s.Meta["log_leader"] == "true" {
			kv("      ", "Log Leader", true)
		}
	}
	return b.String()
}

func (a *app) operatorStepDownCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "step-down",
		Short: "Make the active node give up the HA lease so that a standby takes over",
		Long: `Make the active node give up the HA lease; a standby takes over within a few
seconds, and the node that stepped down stays a standby for two lease TTLs.
Sent to a standby, the request is forwarded to the active node.

Needs sudo on sys/step-down.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.Call(cmd.Context(), http.MethodPut, "sys/step-down", nil, nil); err != nil {
				return fail("stepping down", err)
			}
			fmt.Fprintf(a.stdout, "Success! Stepped down: %s\n", c.Address())
			return nil
		},
	}
}

func (a *app) raftRemovePeerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove-peer <server_id>",
		Short: "Retire a node: its copies of the log and streams move to another server",
		Long: `Remove a node from the cluster for good. JetStream moves the node's copy of the
log (and of the audit, data-key and lease streams) to another server of the cluster, which
then catches up; the node may already be dead. Every stream keeps its replica count, so
there must be a server to move to: start a new node first (it joins as a non-voter, see
list-peers), then remove the old one.

Needs sudo on sys/storage/raft/remove-peer.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Post(cmd.Context(), "sys/storage/raft/remove-peer", map[string]any{"server_id": args[0]}); err != nil {
				return fail("removing the peer", err)
			}
			fmt.Fprintln(a.stdout, "Peer removed successfully!")
			return nil
		},
	}
}
