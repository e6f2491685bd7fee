package commands

import (
	"context"
	"errors"
	"fmt"
	"github.com/ledger-secrets/ledger/engines"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
)

// HAOptions turn on high availability: this node campaigns for the active-node lease and,
// while it does not hold it, appends nothing and runs no side effects.
type HAOptions struct {
	Node    string
	APIAddr string
	TTL     time.Duration // lease TTL; default ledger.DefaultLeaseTTL
}

// ErrStandby is returned for a write on a node that is not active; the HTTP edge forwards the
// request to the active node or answers with Vault's message when there is none.
var ErrStandby = ledger.ErrNotActive

// haState is the Core's part of HA: the elector and the side effects of the current term.
type haState struct {
	el *ledger.Elector

	mu          sync.Mutex
	campaigning bool
	activeSince time.Time
	stopDuties  func() // ends the side effects of the current term and waits for them
	term        uint64 // the epoch this node holds the lease in (0: none)

	// ready is the epoch whose beginning (beginTerm) is complete: the views have applied
	// everything stored before the term. Until then the node holds the lease but decides
	// nothing as the active node (IsStandby).
	ready atomic.Uint64
}

// termCatchUp bounds how long a newly elected node may take to apply the log up to where its
// term begins; past it, it steps down so that another node can take over. Each request for the
// stream's end within it is bounded by one second more than the one before, up to
// beginTermAttempt: a request the stream drops while it has no leader is asked again soon
// after a successor is elected, and a slow answer on a loaded machine still gets its time.
const (
	termCatchUp      = 30 * time.Second
	beginTermAttempt = 3 * time.Second
)

// stillTerm reports whether this node still holds the lease in epoch.
func (c *Core) stillTerm(epoch uint64) bool {
	c.ha.mu.Lock()
	defer c.ha.mu.Unlock()
	return c.ha.term == epoch
}

// startHA creates the elector. Campaigning starts when the node can serve writes (haReconcile).
func (c *Core) startHA(ctx context.Context) error {
	if c.opts.HA == nil {
		return nil
	}
	el, err := c.log.NewElector(ctx, ledger.ElectorOptions{Node: c.opts.HA.Node, APIAddr: c.opts.HA.APIAddr, TTL: c.opts.HA.TTL,
		Logger: c.logger, OnChange: c.haChanged, Eligible: func() bool { return c.Unsealed() || !c.Initialized() }})
	if err != nil {
		return err
	}
	c.ha = &haState{el: el}
	c.haReconcile()
	return nil
}

// haReconcile campaigns while this node could serve as active: unsealed, or (so that
// `operator init` works on any node of a new cluster) not yet initialized. A sealed node of an
// initialized cluster resigns, as Vault's sealed nodes leave the HA set.
func (c *Core) haReconcile() {
	if c.ha == nil {
		return
	}
	want := c.Unsealed() || !c.Initialized()
	c.ha.mu.Lock()
	was := c.ha.campaigning
	c.ha.campaigning = want
	c.ha.mu.Unlock()
	switch {
	case want && !was:
		c.ha.el.Start()
	case !want && was:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.ha.el.Stop(ctx)
	}
}

// haChanged runs on the elector's goroutine when this node gains or loses the lease.
func (c *Core) haChanged(active bool, epoch uint64) {
	c.ha.mu.Lock()
	stop := c.ha.stopDuties
	c.ha.stopDuties = nil
	c.ha.term = 0
	if active {
		c.ha.activeSince = time.Now().UTC()
		c.ha.term = epoch
	}
	c.ha.mu.Unlock()
	if stop != nil {
		stop() // a demotion (or a new term) ends the old term's side effects first
	}
	if active {
		// Not on the elector's goroutine: catching up may take longer than a renewal period.
		go c.beginTerm(epoch)
	}
}

// beginTerm makes this node the active one of epoch. Until now another node may have been
// appending, and this node's views may lag the log (or its follower may have lost the feed):
// the log writer takes up the chain where the stream ends, the views apply everything up to
// there, and only then does the node decide anything as the active node (IsStandby turns
// false) and start its side effects. A node that cannot catch up within termCatchUp steps down.
func (c *Core) beginTerm(epoch uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), termCatchUp)
	defer cancel()
	began := time.Now()
	// The stream may have lost its leader with the old active node (it is often the same
	// server): its first answers time out while JetStream elects another. Ask again, briefly
	// each time, until the catch-up deadline.
	var last uint64
	var err error
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, min(time.Duration(attempt)*time.Second, beginTermAttempt))
		last, err = c.log.BeginTerm(actx, epoch)
		acancel()
		if err == nil || ctx.Err() != nil || !c.stillTerm(epoch) {
			break
		}
		c.logger.Warn("ha: elected; the log does not answer yet, asking again", "epoch", epoch, "err", err)
		time.Sleep(100 * time.Millisecond)
	}
	c.mu.RLock()
	st := c.st
	c.mu.RUnlock()
	if err == nil && st != nil {
		err = st.runner.WaitFor(ctx, last)
	}
	c.ha.mu.Lock()
	defer c.ha.mu.Unlock()
	if c.ha.term != epoch {
		return // demoted (or a newer term began) meanwhile
	}
	if err != nil {
		c.logger.Error("ha: elected, but could not apply the log up to where the term begins; stepping down",
			"epoch", epoch, "term_begins_at", last, "err", err)
		go func() {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			if err := c.StepDown(sctx); err != nil {
				c.logger.Warn("ha: step-down after a failed catch-up", "err", err)
			}
		}()
		return
	}
	c.ha.ready.Store(epoch)
	c.mu.RLock()
	current := c.st == st
	c.mu.RUnlock()
	if st == nil || !current || c.ha.stopDuties != nil {
		return // sealed (or initializing): duties start when the node unseals
	}
	c.ha.stopDuties = c.dutiesStopper(st, epoch)
	c.logger.Info("ha: active; side effects started", "epoch", epoch, "applied_seq", st.runner.Applied(),
		"caught_up_in", time.Since(began).Round(time.Millisecond))
}

// startDutiesLocked starts the side effects of the active node for st and records how to
// stop them.
func (c *Core) startDutiesLocked(st *unsealed) {
	stop := c.dutiesStopper(st, 0)
	if c.ha == nil {
		st.stopDuties = stop
		return
	}
	c.ha.mu.Lock()
	c.ha.stopDuties = stop
	c.ha.mu.Unlock()
}

// dutiesStopper starts the side effects for st, in the leader term epoch (0 without HA; what
// they append is stored only in that term), and returns what stops them.
func (c *Core) dutiesStopper(st *unsealed, epoch uint64) func() {
	ctx, cancel := context.WithCancel(context.Background())
	if epoch != 0 {
		ctx = context.WithValue(ctx, termKey{}, epoch)
	}
	var wg sync.WaitGroup
	c.runDuties(ctx, st, &wg)
	stop := func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			c.logger.Warn("ha: side effects still stopping after 2s")
		}
	}
	return stop
}

// dutiesOnUnseal starts the side effects when this node may run them: always without HA, and
// only as the active node with it (a standby starts them on promotion).
func (c *Core) dutiesOnUnseal(st *unsealed) {
	if c.ha == nil {
		c.startDutiesLocked(st)
		return
	}
	if ok, epoch := c.ha.el.Active(); ok {
		// Elected while sealed: begin the term again now that there are views to catch up.
		c.ha.ready.Store(0)
		go c.beginTerm(epoch)
	}
	c.haReconcile()
}

// dutiesOnSeal stops the side effects of st (and, with HA, resigns the lease).
func (c *Core) dutiesOnSeal(st *unsealed) {
	if c.ha == nil {
		if st.stopDuties != nil {
			st.stopDuties()
		}
		return
	}
	c.ha.mu.Lock()
	stop := c.ha.stopDuties
	c.ha.stopDuties = nil
	c.ha.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// HAStatus is what sys/health, sys/leader and sys/ha-status report.
type HAStatus struct {
	Enabled     bool
	Active      bool // this node holds the lease
	Epoch       uint64
	ActiveSince time.Time
	Leader      ledger.LeaderInfo
	LeaderKnown bool
	Node        string
	APIAddr     string
}

// HAStatus reports this node's HA state; the leader is read from the lease bucket.
func (c *Core) HAStatus(ctx context.Context) HAStatus {
	if c.ha == nil {
		return HAStatus{}
	}
	s := HAStatus{Enabled: true, Node: c.opts.HA.Node, APIAddr: c.opts.HA.APIAddr}
	s.Active, s.Epoch = c.ha.el.Active()
	c.ha.mu.Lock()
	s.ActiveSince = c.ha.activeSince
	c.ha.mu.Unlock()
	li, ok, err := c.ha.el.Leader(ctx)
	if err == nil && ok {
		s.Leader, s.LeaderKnown = li, true
	}
	return s
}

// StepDown resigns the lease if this node holds it (sys/step-down), and keeps it from
// campaigning again for a while so another node takes over.
func (c *Core) StepDown(ctx context.Context) error {
	if c.ha == nil {
		return nil
	}
	ttl := c.opts.HA.TTL
	if ttl <= 0 {
		ttl = ledger.DefaultLeaseTTL
	}
	if err := c.ha.el.StepDown(ctx, 2*ttl); err != nil {
		return fmt.Errorf("step down: %w", err)
	}
	return nil
}

// Applied is the log position this node's views reflect (0 while sealed).
func (c *Core) Applied() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.st == nil {
		return 0
	}
	return c.st.runner.Applied()
}

// WaitApplied waits until this node's views reflect seq, or ctx ends.
func (c *Core) WaitApplied(ctx context.Context, seq uint64) error {
	c.mu.RLock()
	st := c.st
	c.mu.RUnlock()
	if st == nil {
		return ErrSealed
	}
	return st.runner.WaitFor(ctx, seq)
}

// ClusterPeers names the JetStream servers this node sees (embedded clusters).
func (c *Core) ClusterPeers() []string { return c.log.ClusterPeers() }

// IsStandby reports a node that must not handle writes itself.
func (c *Core) IsStandby() bool {
	_, standby := c.decisionTerm()
	return standby
}

// decisionTerm is the epoch in which this node decides as the active one (0 without HA), or
// standby when it must not decide writes.
func (c *Core) decisionTerm() (epoch uint64, standby bool) {
	if c.ha == nil {
		return 0, false
	}
	ok, epoch := c.ha.el.Active()
	if !ok || c.ha.ready.Load() != epoch {
		return 0, true
	}
	return epoch, false
}

// IsStandbyErr reports whether err means "not the active node".
func IsStandbyErr(err error) bool { return errors.Is(err, ledger.ErrNotActive) }

// HAMAC authenticates what one node tells another (the log position it reflects, a forwarded
// client's address) under the cluster's keyring; ok is false while sealed.
func (c *Core) HAMAC(domain, value string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.st == nil {
		return "", false
	}
	return c.st.keyring.Load().MAC("ha-"+domain, value), true
}

// HAMembers lists the nodes that announced themselves within the lease TTL.
func (c *Core) HAMembers(ctx context.Context) ([]ledger.Member, error) {
	if c.ha == nil {
		return nil, nil
	}
	return c.ha.el.Members(ctx)
}

// haStatusPath answers sys/ha-status with Vault's fields.
func (s *sysBackend) haStatusPath(ctx context.Context) (*engines.Response, error) {
	st := s.c.HAStatus(ctx)
	members, err := s.c.HAMembers(ctx)
	if err != nil {
		return nil, err
	}
	nodes := []any{}
	for _, m := range members {
		nodes = append(nodes, map[string]any{
			"hostname": m.Node, "api_address": m.APIAddr, "cluster_address": "",
			"active_node": st.LeaderKnown && st.Leader.Node == m.Node, "last_echo": m.LastSeen.Format(time.RFC3339Nano),
			"version": Version, "upgrade_version": Version, "redundancy_zone": "",
		})
	}
	return &engines.Response{Data: map[string]any{"nodes": nodes}}, nil
}
