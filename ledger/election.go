package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Leader election. One node of a cluster is active: it holds the lease, a key in a JetStream
// KV bucket whose TTL drops it unless renewed. Renewals happen every TTL/6; a node treats
// itself as active only until half the TTL after it *sent* its last successful renewal (its own
// monotonic clock), so it stops appending before the key can have expired on the server, whose
// clock started later — clock skew between nodes plays no part. Any failed renewal demotes at
// once. The lease's epoch is the KV revision of its creation: it only grows.

const (
	// HABucket is the KV bucket holding the lease.
	HABucket = "LEDGER_HA"
	haKey    = "active"
	// DefaultLeaseTTL is the lease's lifetime without renewal.
	DefaultLeaseTTL = 6 * time.Second
	// EpochHeader carries the appending leader's epoch on every batch.
	EpochHeader = "Ledger-Epoch"
)

// LeaderInfo is what the lease key holds: who is active, where it answers, since when.
type LeaderInfo struct {
	Node    string    `json:"node"`
	APIAddr string    `json:"api_addr"`
	Epoch   uint64    `json:"epoch"`
	Since   time.Time `json:"since"`
}

// ElectorOptions configure an Elector.
type ElectorOptions struct {
	Node    string
	APIAddr string
	TTL     time.Duration // default DefaultLeaseTTL
	// OnChange is called (on the elector's goroutine) after this node became active or stopped
	// being active. It must not block long: demotion waits for it.
	OnChange func(active bool, epoch uint64)
	// Eligible, when set, says whether this node may hold the lease now (a sealed node may
	// not): an ineligible node does not campaign, and resigns if it holds the lease.
	Eligible func() bool
	Logger   *slog.Logger
}

// Elector campaigns for the lease and, while it holds it, opens the log's writer.
type Elector struct {
	log *Log
	kv  jetstream.KeyValue
	o   ElectorOptions

	// opMu orders the lease's own requests: a renewal in flight and a resignation never
	// overlap, so a step-down deletes the revision the last renewal wrote (a delete fenced on
	// the revision before it would fail and leave the lease held for a whole TTL).
	opMu      sync.Mutex
	mu        sync.Mutex
	active    bool
	epoch     uint64
	rev       uint64    // revision of our last write of the key
	validTill time.Time // monotonic: we may append until then
	// draining: resigning, the gate closed, the lease key not yet deleted while the batches
	// in flight finish; they are acknowledged if stored before drainTill (the old validTill).
	draining  bool
	drainTill time.Time
	holdOff   time.Time // after a step-down, do not campaign before this
	cancel    context.CancelFunc
	done      chan struct{}
	wake      chan struct{}
}

// NewElector opens (or creates) the lease bucket with the log's replicas and installs the
// elector as the log's write gate: from now on the log appends only while this node is active.
func (l *Log) NewElector(ctx context.Context, o ElectorOptions) (*Elector, error) {
	if o.TTL <= 0 {
		o.TTL = DefaultLeaseTTL
	}
	if o.Logger == nil {
		o.Logger = l.log
	}
	// A cluster that has just formed may still be placing its first streams: retry the
	// transient errors for a while, as the log's stream creation does.
	var kv jetstream.KeyValue
	var err error
	deadline := time.Now().Add(DefaultFormTimeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		kv, err = l.js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{
			Bucket: HABucket, Description: "Ledger active-node lease", History: 1, TTL: o.TTL,
			Storage: jetstream.FileStorage, Replicas: l.replicas,
		})
		cancel()
		if err == nil {
			break
		}
		if !retryableCreate(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("lease bucket: %w", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	e := &Elector{log: l, kv: kv, o: o, wake: make(chan struct{}, 1)}
	gate := e.gate
	l.gate.Store(&gate)
	held := e.held
	l.held.Store(&held)
	return e, nil
}

// gate is the log writer's question before each publish: the epoch to stamp, or ErrNotActive.
func (e *Elector) gate() (uint64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.active || !time.Now().Before(e.validTill) {
		return 0, ErrNotActive
	}
	return e.epoch, nil
}

// held reports whether the lease of epoch is certainly still this node's: active in that
// term, or resigning from it with its batches in flight, and within the lease's validity.
func (e *Elector) held(epoch uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if e.epoch != epoch {
		return false
	}
	return (e.active && now.Before(e.validTill)) || (e.draining && now.Before(e.drainTill))
}

// Start campaigns until Stop. Safe to call again after Stop.
func (e *Elector) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go e.run(ctx, e.done)
}

// Stop stops campaigning and resigns if active (graceful: a standby takes over at once rather
// than after the TTL).
func (e *Elector) Stop(ctx context.Context) {
	e.mu.Lock()
	cancel, done := e.cancel, e.done
	e.cancel = nil
	e.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	e.opMu.Lock()
	defer e.opMu.Unlock()
	e.resign(ctx)
}

// StepDown resigns the lease and keeps this node from campaigning for hold (Vault's
// sys/step-down: another node should take over). It is a no-op on a standby.
func (e *Elector) StepDown(ctx context.Context, hold time.Duration) error {
	e.mu.Lock()
	e.holdOff = time.Now().Add(hold)
	wasActive := e.active
	e.mu.Unlock()
	if !wasActive {
		return nil
	}
	e.opMu.Lock()
	defer e.opMu.Unlock()
	return e.resign(ctx)
}

// Active reports whether this node holds the lease now, and its epoch.
func (e *Elector) Active() (bool, uint64) {
	epoch, err := e.gate()
	return err == nil, epoch
}

// Leader reads who holds the lease now (from the bucket; ok false when nobody does).
func (e *Elector) Leader(ctx context.Context) (LeaderInfo, bool, error) {
	ent, err := e.kv.Get(ctx, haKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return LeaderInfo{}, false, nil
	}
	if err != nil {
		return LeaderInfo{}, false, fmt.Errorf("read lease: %w", err)
	}
	var li LeaderInfo
	if err := json.Unmarshal(ent.Value(), &li); err != nil {
		return LeaderInfo{}, false, fmt.Errorf("read lease: %w", err)
	}
	return li, true, nil
}

func (e *Elector) renewEvery() time.Duration { return e.o.TTL / 6 }

func (e *Elector) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(e.renewEvery())
	defer t.Stop()
	for {
		e.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.wake:
		}
	}
}

func (e *Elector) tick(ctx context.Context) {
	// The heartbeat goes after the lease's own request, so a slow one never delays a renewal.
	defer e.heartbeat(ctx)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	e.mu.Lock()
	active, rev, epoch, holdOff := e.active, e.rev, e.epoch, e.holdOff
	e.mu.Unlock()
	eligible := e.o.Eligible == nil || e.o.Eligible()
	if active && !eligible {
		if err := e.resign(ctx); err != nil {
			e.o.Logger.Warn("ha: resign", "err", err)
		}
		return
	}
	sent := time.Now()
	cctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
	defer cancel()
	if active {
		li := LeaderInfo{Node: e.o.Node, APIAddr: e.o.APIAddr, Epoch: epoch}
		b, _ := json.Marshal(li)
		newRev, err := e.kv.Update(cctx, haKey, b, rev)
		if err != nil {
			e.demote("renewal failed", err)
			return
		}
		e.mu.Lock()
		if e.active && e.epoch == epoch {
			e.rev, e.validTill = newRev, sent.Add(e.o.TTL/2)
		}
		e.mu.Unlock()
		return
	}
	if time.Now().Before(holdOff) || !eligible {
		return
	}
	li := LeaderInfo{Node: e.o.Node, APIAddr: e.o.APIAddr, Since: time.Now().UTC()}
	b, _ := json.Marshal(li)
	newRev, err := e.kv.Create(cctx, haKey, b)
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		// A create that timed out may still have been stored: the lease would then be held in
		// this node's name while it does not know, and nobody would be active until it
		// expired — under load, again and again. Adopt it if it is this very campaign's.
		newRev, err = e.adopt(ctx, b)
	}
	if err != nil {
		e.o.Logger.Debug("ha: campaign", "node", e.o.Node, "err", err)
		return // someone holds it, or the cluster has no quorum: stay standby
	}
	// The epoch is the creation revision; write it into the value for readers.
	li.Epoch = newRev
	b, _ = json.Marshal(li)
	if r, err := e.kv.Update(cctx, haKey, b, newRev); err == nil {
		newRev = r
	} else {
		e.o.Logger.Warn("ha: could not record epoch in the lease", "err", err)
	}
	e.mu.Lock()
	e.active, e.epoch, e.rev, e.validTill = true, li.Epoch, newRev, sent.Add(e.o.TTL/2)
	e.mu.Unlock()
	e.o.Logger.Info("ha: this node is now active", "node", e.o.Node, "epoch", li.Epoch)
	if e.o.OnChange != nil {
		e.o.OnChange(true, li.Epoch)
	}
}

// requestTimeout bounds each lease request. A renewal answered later than TTL/2 after it was
// sent leaves the node inactive anyway (validTill is counted from the send), so waiting longer
// than that is useless; shorter would fail renewals and campaigns on a loaded machine.
func (e *Elector) requestTimeout() time.Duration { return e.o.TTL / 3 }

// adopt reads the lease after a create whose answer was lost, and returns its revision if it
// holds exactly the value this campaign wrote (its start time is the nonce).
func (e *Elector) adopt(ctx context.Context, want []byte) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
	defer cancel()
	ent, err := e.kv.Get(cctx, haKey)
	if err != nil {
		return 0, fmt.Errorf("campaign outcome unknown, lease unreadable: %w", err)
	}
	if ent.Operation() != jetstream.KeyValuePut || string(ent.Value()) != string(want) {
		return 0, errors.New("campaign lost: the lease is someone else's")
	}
	return ent.Revision(), nil
}

// demote closes the write gate at once and tells the owner.
func (e *Elector) demote(why string, err error) {
	e.mu.Lock()
	was, epoch := e.active, e.epoch
	e.active = false
	e.validTill = time.Time{}
	e.mu.Unlock()
	if !was {
		return
	}
	e.o.Logger.Warn("ha: this node is no longer active", "node", e.o.Node, "epoch", epoch, "reason", why, "err", err)
	if e.o.OnChange != nil {
		e.o.OnChange(false, epoch)
	}
}

// resign demotes and deletes the lease key if it is still ours. The caller holds opMu.
func (e *Elector) resign(ctx context.Context) error {
	e.mu.Lock()
	was, rev, till := e.active, e.rev, e.validTill
	if was {
		e.draining, e.drainTill = true, till
	}
	e.mu.Unlock()
	if !was {
		return nil
	}
	// Close the gate to new batches, let the one in flight finish (it is acknowledged: nobody
	// can take the lease before the key is deleted, or expires after till), then let go.
	e.demote("resigned", nil)
	deadline := time.Now().Add(2 * time.Second)
	if till.Before(deadline) {
		deadline = till
	}
	e.log.waitIdle(deadline)
	e.mu.Lock()
	e.draining = false
	e.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := e.kv.Delete(cctx, haKey, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("resign lease: %w (a standby takes over when it expires)", err)
	}
	return nil
}

// Member is one node that announced itself in the lease bucket within the TTL.
type Member struct {
	Node     string    `json:"node"`
	APIAddr  string    `json:"api_addr"`
	LastSeen time.Time `json:"last_seen"`
}

const memberPrefix = "member."

// heartbeat announces this node (it expires with the bucket's TTL when the node stops).
func (e *Elector) heartbeat(ctx context.Context) {
	b, _ := json.Marshal(Member{Node: e.o.Node, APIAddr: e.o.APIAddr, LastSeen: time.Now().UTC()})
	cctx, cancel := context.WithTimeout(ctx, e.renewEvery())
	defer cancel()
	if _, err := e.kv.Put(cctx, memberPrefix+e.o.Node, b); err != nil && ctx.Err() == nil {
		e.o.Logger.Debug("ha: heartbeat", "err", err)
	}
}

// Members lists the nodes seen within the lease TTL, sorted by name.
func (e *Elector) Members(ctx context.Context) ([]Member, error) {
	keys, err := e.kv.ListKeysFiltered(ctx, memberPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	var out []Member
	for k := range keys.Keys() {
		ent, err := e.kv.Get(ctx, k)
		if err != nil {
			continue // expired between list and get
		}
		var m Member
		if json.Unmarshal(ent.Value(), &m) == nil {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}
