package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultFormTimeout is how long Open waits for a JetStream cluster to offer the configured
// replicas: long enough to start the other nodes by hand in other terminals.
const DefaultFormTimeout = 2 * time.Minute

// ClusterOptions make the embedded NATS server one member of a JetStream cluster.
type ClusterOptions struct {
	Name      string   // the cluster's name; every member uses the same
	Listen    string   // host:port this member accepts routes on
	Advertise string   // host:port the others reach Listen at; empty: Listen
	Routes    []string // nats://host:port of the members (this one's own entry is ignored)
	// NoAdvertise keeps the server from gossiping its listen address: members connect only
	// through the routes listed (for networks where Listen is not reachable directly).
	NoAdvertise bool
}

const clusterFile = "LEDGER_CLUSTER"

// checkClusterStamp refuses a data dir that belongs to another cluster (or to a standalone
// node, or a standalone node started on a cluster member's data): its JetStream state would
// fork from, or be overwritten by, the cluster's.
func checkClusterStamp(dir string, c *ClusterOptions) error {
	want := "standalone\n"
	if c != nil {
		want = "cluster " + c.Name + "\n"
	}
	return checkStamp(dir, clusterFile, want, func(got string) error {
		return fmt.Errorf("data dir %s belongs to %q but this node is configured as %q: start it with the config that created the dir, or give it an empty data dir to join as a new member: %w",
			dir, got, strings.TrimSpace(want), ErrFormat)
	})
}

func clusterOptions(opts *server.Options, c *ClusterOptions) error {
	if c == nil {
		return nil
	}
	host, port, err := splitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("cluster listen: %w", err)
	}
	opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port, Advertise: c.Advertise, NoAdvertise: c.NoAdvertise, ConnectRetries: -1}
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("cluster route %q: %w", r, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// ClusterPeers names the NATS servers this node's embedded server sees: itself and every
// server it has a route to, sorted. Nil for an external connection.
func (l *Log) ClusterPeers() []string {
	if l.ns == nil {
		return nil
	}
	names := []string{l.ns.Name()}
	rz, err := l.ns.Routez(&server.RoutezOptions{})
	if err == nil {
		for _, r := range rz.Routes {
			if r.RemoteName != "" && !slices.Contains(names, r.RemoteName) {
				names = append(names, r.RemoteName)
			}
		}
	}
	slices.Sort(names)
	return names
}

// createStream creates (or updates) the log's stream. A cluster that is still forming, or
// has fewer members than cfg.Replicas, answers with a transient error: wait for it up to
// o.FormTimeout, logging what is seen, then refuse with how many peers there are.
func (l *Log) createStream(ctx context.Context, o Options, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	timeout := o.FormTimeout
	if timeout <= 0 {
		timeout = DefaultFormTimeout
	}
	deadline := time.Now().Add(timeout)
	lastLog := time.Now()
	for {
		cctx, cancel := context.WithTimeout(ctx, min(2*time.Second, max(time.Until(deadline), 100*time.Millisecond)))
		st, err := l.js.CreateOrUpdateStream(cctx, cfg)
		cancel()
		if err == nil && cfg.Replicas > 1 {
			// A new replicated stream answers only once its replicas elected a leader.
			ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = st.Info(ictx)
			icancel()
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				// The create was answered before this member's meta layer applied it.
				err = fmt.Errorf("stream created but not yet visible here: %w", context.DeadlineExceeded)
			}
		}
		if err == nil {
			return st, nil
		}
		if cfg.Replicas <= 1 || ctx.Err() != nil || !retryableCreate(err) || time.Now().After(deadline) {
			peers := l.ClusterPeers()
			if cfg.Replicas > 1 && (len(peers) < cfg.Replicas || retryableCreate(err)) {
				seen := "this node sees the cluster through an external NATS connection"
				if l.ns != nil {
					seen = fmt.Sprintf("this node sees %d of them (%s)", len(peers), strings.Join(peers, ", "))
				}
				return nil, fmt.Errorf("create stream %s: %d replicas need %d JetStream servers in the cluster, %s after %s: start the other nodes (check cluster routes and listen), or lower replicas: %w",
					cfg.Name, cfg.Replicas, cfg.Replicas, seen, timeout.Round(time.Second), err)
			}
			return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			l.log.Info("waiting for the JetStream cluster", "replicas", cfg.Replicas, "peers_visible", len(l.ClusterPeers()),
				"peers", strings.Join(l.ClusterPeers(), ","), "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// retryableCreate reports errors a forming cluster gives: no meta leader yet, too few peers,
// a stream another member is creating at the same moment, or a request that timed out while
// the cluster elected.
// Transient reports an error a clustered JetStream answers while it forms or moves a stream's
// leader (timeouts, no responders, "temporarily unavailable"): worth retrying for a while.
func Transient(err error) bool { return err != nil && retryableCreate(err) }

// jsAttempt bounds the first attempt of a JetStream API request on a path that retries. On a
// cluster, a request for a stream whose leader (or for the meta leader, which creates streams
// and consumers) was just killed is not refused but dropped until a successor is elected:
// unbounded, it would wait out the caller's whole context (a minute, for a data-key flush)
// instead of asking again once the successor is there, seconds later. Each later attempt gets
// a second more, up to jsAttemptMax, so that a server that is only slow (a loaded machine)
// still gets the time it needs to answer.
const (
	jsAttempt    = 2 * time.Second
	jsAttemptMax = 10 * time.Second
)

// RetryJS runs fn, each attempt bounded as jsAttempt says, and retries what Transient reports
// for up to within (or until ctx ends). what names the request in the warning logged on
// retries (at most every 5 s; log may be nil).
func RetryJS(ctx context.Context, log *slog.Logger, what string, within time.Duration, fn func(context.Context) error) error {
	began := time.Now()
	backoff := 50 * time.Millisecond
	var warned time.Time
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, min(jsAttempt+time.Duration(attempt)*time.Second, jsAttemptMax))
		err := fn(actx)
		cancel()
		if err == nil || !retryableCreate(err) || ctx.Err() != nil || time.Since(began) > within {
			return err
		}
		if log != nil && time.Since(warned) > 5*time.Second {
			log.Warn("JetStream does not answer yet; asking again", "request", what, "waited", time.Since(began).Round(time.Millisecond), "err", err)
			warned = time.Now()
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

func retryableCreate(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10008 /* cluster temporarily unavailable */, 10023 /* insufficient resources */, 10005 /* no suitable peers */, 10074, /* cluster not available */
			10059 /* stream not found: members starting together race to create it */ :
			return true
		}
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		strings.Contains(err.Error(), "timeout") || strings.Contains(err.Error(), "no responders")
}

// LogReplica is one JetStream server holding a copy of the log, as the log stream's leader
// reports it.
type LogReplica struct {
	Name    string        // the server name: the Ledger node id
	Leader  bool          // the stream's leader (orders the appends; not necessarily the active node)
	Current bool          // caught up with the leader
	Offline bool          // not seen by the leader recently
	Active  time.Duration // since the leader last heard from it (0 for the leader)
	Lag     uint64        // log entries behind the leader
}

// LogCluster is the replication state of the log's stream.
type LogCluster struct {
	Leader      string
	LeaderSince time.Time
	Replicas    []LogReplica // the leader first, then the others sorted by name
	LastSeq     uint64       // the stream's last position
}

// ClusterState asks the log stream's leader (through the JetStream API) who holds a copy of the
// log and how far each copy lags. A stream without a leader (no quorum) answers with an error.
// A standalone node reports itself as the only replica.
func (l *Log) ClusterState(ctx context.Context) (LogCluster, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return LogCluster{}, fmt.Errorf("log stream info: %w", err)
	}
	out := LogCluster{LastSeq: info.State.LastSeq}
	ci := info.Cluster
	if ci == nil || ci.Leader == "" {
		if l.replicas > 1 {
			return LogCluster{}, errors.New("log stream info: the stream has no leader")
		}
		name := "ledger"
		if l.ns != nil {
			name = l.ns.Name()
		}
		out.Leader = name
		out.Replicas = []LogReplica{{Name: name, Leader: true, Current: true}}
		return out, nil
	}
	out.Leader = ci.Leader
	if ci.LeaderSince != nil {
		out.LeaderSince = *ci.LeaderSince
	}
	out.Replicas = append(out.Replicas, LogReplica{Name: ci.Leader, Leader: true, Current: true})
	var others []LogReplica
	for _, p := range ci.Replicas {
		if p == nil || p.Name == ci.Leader {
			continue
		}
		others = append(others, LogReplica{Name: p.Name, Current: p.Current, Offline: p.Offline, Active: p.Active, Lag: p.Lag})
	}
	slices.SortFunc(others, func(a, b LogReplica) int { return strings.Compare(a.Name, b.Name) })
	out.Replicas = append(out.Replicas, others...)
	return out, nil
}

// ErrNotReplica: the server named holds no copy of any of the cluster's streams.
var ErrNotReplica = errors.New("ledger: the server holds no stream replica")

// RemovePeer takes the JetStream server peer (a Ledger node id) out of every stream it holds a
// copy of — the log first, then the audit, data-key and lease streams — through JetStream's
// stream peer-remove, which moves each copy to another server of the cluster. JetStream keeps
// every stream at its replica count: with no other server to move a copy to, it refuses, and
// so does RemovePeer (the log is done first, so a refusal there changes nothing). A later
// refusal leaves the streams already moved moved; calling RemovePeer again finishes the rest.
// It returns the streams moved.
//
// Which streams hold the peer is the meta leader's word, not the streams' own: RemovePeer asks
// peer-remove of every stream, and a stream whose assignment does not list the peer answers
// "peer not a member" and is passed over. (A stream listing gathers each stream leader's info
// and, while leaders change, may repeat a stream or leave one out after a timeout.)
func (l *Log) RemovePeer(ctx context.Context, peer string) ([]string, error) {
	if l.replicas <= 1 {
		return nil, errors.New("ledger: this node is not part of a cluster (replicas = 1)")
	}
	var names []string
	lister := l.js.StreamNames(ctx)
	for name := range lister.Name() {
		names = append(names, name)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	slices.SortStableFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == StreamName:
			return -1
		case b == StreamName:
			return 1
		}
		return strings.Compare(a, b)
	})
	body, _ := json.Marshal(map[string]string{"peer": peer})
	var moved []string
	for _, name := range names {
		msg, err := l.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.PEER.REMOVE."+name, body)
		if err != nil {
			return moved, fmt.Errorf("remove %s from stream %s: %w", peer, name, err)
		}
		var resp struct {
			Success bool                `json:"success"`
			Error   *jetstream.APIError `json:"error"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return moved, fmt.Errorf("remove %s from stream %s: %w", peer, name, err)
		}
		if resp.Error != nil && (resp.Error.ErrorCode == jsErrPeerNotMember || resp.Error.ErrorCode == jetstream.JSErrCodeStreamNotFound) {
			continue // not held, or deleted since the listing
		}
		if resp.Error != nil || !resp.Success {
			desc := "not removed"
			if resp.Error != nil {
				desc = resp.Error.Description
			}
			return moved, fmt.Errorf("remove %s from stream %s: JetStream refused (%s): %w", peer, name, desc, ErrNoReplacement)
		}
		moved = append(moved, name)
	}
	if len(moved) == 0 {
		return nil, fmt.Errorf("%q: %w", peer, ErrNotReplica)
	}
	return moved, nil
}

// jsErrPeerNotMember is JetStream's error code for a peer-remove naming a server that holds no
// copy of the stream (its JSClusterPeerNotMemberErr).
const jsErrPeerNotMember jetstream.ErrorCode = 10040

// ErrNoReplacement: JetStream refused to take a server out of a stream, typically because
// no other server can take its copy (every stream keeps its replica count).
var ErrNoReplacement = errors.New("ledger: JetStream did not move the copy")
