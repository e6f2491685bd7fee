package commands

import (
	"context"
	"fmt"
	"github.com/ledger-secrets/ledger/replay"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ledger-secrets/ledger/commands/acl"
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	approleview "github.com/ledger-secrets/ledger/projections/approle"
	"github.com/ledger-secrets/ledger/projections/authrole"
	cubbyview "github.com/ledger-secrets/ledger/projections/cubbyhole"
	dbview "github.com/ledger-secrets/ledger/projections/database"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
	historyview "github.com/ledger-secrets/ledger/projections/history"
	identityview "github.com/ledger-secrets/ledger/projections/identity"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/lease"
	"github.com/ledger-secrets/ledger/projections/mount"
	pkiview "github.com/ledger-secrets/ledger/projections/pki"
	"github.com/ledger-secrets/ledger/projections/policy"
	sshview "github.com/ledger-secrets/ledger/projections/ssh"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
	transitview "github.com/ledger-secrets/ledger/projections/transit"
	userpassview "github.com/ledger-secrets/ledger/projections/userpass"
)

// unsealed is everything that exists only while the keyring is open. Sealing drops it whole.
type unsealed struct {
	// opened: when this unseal began, before it could answer any request. Every data key a
	// request of this unseal stores is younger (reconcileDataKeys' first pass relies on it).
	opened     time.Time
	base       *replay.Base // the snapshot the views were built from (automatic snapshots)
	stopDuties func()       // ends the side effects started for this unseal (no HA; ha.go)
	// keyMu guards rootKey: a rekey replaces it, rotations and snapshots wrap under it.
	keyMu     sync.Mutex
	rootKey   []byte
	rootGen   int         // the seal state's Rekeys that rootKey belongs to
	ceremony  *ceremonies // rekey and generate-root attempts (rekey.go)
	keyring   atomic.Pointer[ledger.Keyring]
	runner    *projections.Runner
	cancel    context.CancelFunc
	done      chan struct{}
	mounts    *mount.View
	policies  *policy.View
	tokens    *tokenview.View
	kv        *kvview.View
	leases    *lease.View
	approle   *approleview.View
	userpass  *userpassview.View
	authroles *authrole.View
	identity  *identityview.View
	database  *dbview.View
	transit   *transitview.View
	cubby     *cubbyview.View
	datakeys  *ledger.DataKeys
	expire    *expiration
	snaps     *snapshots
	audit     *auditState

	pki *pkiview.View // separate group: other lanes add views above
	ssh *sshview.View

	// restoreSeq is the batch of the last snapshot restore the seal state held when these views
	// were built: a later one (restored through another node) rebuilds them (raft_restore.go).
	restoreSeq uint64

	fingerprints *fpview.View // value fingerprints (issue 16)
	fpMatch      *matchLimiter
	history      *historyview.View // where each aggregate's events are in the log

	migrations sync.Map // sys/remount migration id → remountStatus (remount.go)

	backendsMu sync.Mutex
	backends   map[string]engines.Backend // by mount UUID

	acls  aclCache
	locks keyLocks

	sysv sysViews // views of the small sys endpoints (sys_misc.go)
}

// newUnsealed builds the (empty) views and their runner. Every view is made here, so a replay
// beside the live views (replay verify) builds the very same set.
func (c *Core) newUnsealed(rootKey []byte, kr *ledger.Keyring) *unsealed {
	st := &unsealed{
		opened:    time.Now(),
		rootKey:   rootKey,
		rootGen:   c.sealView.State().Rekeys,
		ceremony:  &ceremonies{},
		mounts:    mount.New(),
		policies:  policy.New(),
		tokens:    tokenview.New(),
		kv:        kvview.New(),
		leases:    lease.New(),
		approle:   approleview.New(),
		userpass:  userpassview.New(),
		authroles: authrole.New(),
		identity:  identityview.New(),
		database:  dbview.New(),
		transit:   transitview.New(),
		cubby:     cubbyview.New(),
		backends:  map[string]engines.Backend{},
		done:      make(chan struct{}),

		pki: pkiview.New(),
		ssh: sshview.New(),

		fingerprints: fpview.New(),
		fpMatch:      newMatchLimiter(),
		history:      historyview.New("kv", "policy", "identity"),
	}
	st.keyring.Store(kr)
	st.restoreSeq = restoreSeqOf(c.sealView.State())
	st.acls.m = map[string]*acl.ACL{}
	st.audit = newAuditState()
	st.runner = projections.NewRunner(c.log, kr, st.mounts, st.policies, st.tokens, st.kv, st.leases, st.approle, st.userpass, st.authroles, st.identity, st.database, st.transit, st.pki, st.history, st.audit.view)
	st.sysv = newSysViews()
	st.runner.Add(st.sysv.views()...)
	st.runner.Add(st.cubby)
	st.runner.Add(st.ssh)
	st.runner.Add(st.fingerprints)
	st.expire = newExpiration(c, st)
	return st
}

// open builds the views — from the newest snapshot and the log after it — with the keyring and
// starts following the log. Called with c.lifecycle held.
func (c *Core) open(ctx context.Context, rootKey []byte, kr *ledger.Keyring) error {
	st := c.newUnsealed(rootKey, kr)
	started := time.Now()
	// Without a restored snapshot in the seal state, no restore can be the base and the data
	// keys do not depend on it: they load beside the views (each a few hundred milliseconds at
	// 100k secrets). After a restore they are the snapshot's, installed once the base is known.
	var early chan openedDataKeys
	if c.sealView.State().Restore == nil {
		early = make(chan openedDataKeys, 1)
		go func() { early <- c.openDataKeys(ctx, st, nil) }()
	}
	var base *replay.Base
	fail := func(what string, err error) error {
		base.Close()
		if early != nil {
			if r := <-early; r.dk != nil {
				r.dk.Close()
			}
		}
		clear(rootKey)
		return fmt.Errorf("%s: %w", what, err)
	}
	// The indexes only sys/ledger/* endpoints read load after the node answers (lateViews).
	// Their sections are the checkpoint's last, read after the node answers too.
	late := st.lateViews()
	base, err := c.loadBase(ctx, st, late)
	if err != nil {
		return fail("load snapshot", err)
	}
	deferred := base != nil && base.Snapshot != nil
	if deferred {
		st.runner.Defer(late...)
	}
	loaded := time.Since(started)
	if err := st.runner.CatchUp(ctx); err != nil {
		return fail("rebuild views", err)
	}
	caughtUp := time.Since(started)
	var r openedDataKeys
	if early != nil {
		r = <-early
	} else {
		r = c.openDataKeys(ctx, st, base)
	}
	if r.err != nil {
		base.Close()
		clear(rootKey)
		return fmt.Errorf("data keys: %w", r.err)
	}
	dk := r.dk
	st.datakeys = dk
	if base != nil && base.Snapshot != nil {
		// The views hold copies of what they need: keeping the sections' bytes for as long as
		// the node is unsealed held 42 MB at 200k secrets.
		base.Snapshot.Views = nil
	}
	c.log.SetKeyring(kr)
	if err := c.startAudit(ctx, st); err != nil {
		c.log.SetKeyring(nil)
		base.Close()
		clear(rootKey)
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	st.runner.OnFollowRetry = func(err error) {
		c.logger.Warn("log follower lost the log's feed; following again", "applied_seq", st.runner.Applied(), "err", err)
	}
	go func() {
		defer close(st.done)
		if err := st.runner.Run(rctx); err != nil {
			c.logger.Error("log follower stopped; sealing", "err", err)
			go c.Seal()
		}
	}()
	c.mu.Lock()
	c.st = st
	c.mu.Unlock()
	st.base = base
	if c.ha != nil {
		go c.followRestores(rctx, st)
	}
	if deferred {
		go c.restoreLate(rctx, st, late, base)
	}
	c.dutiesOnUnseal(st)
	go c.reportInvalidUTF8Keys(st)
	c.logger.Info("unsealed", "applied_seq", st.runner.Applied(), "rebuild", time.Since(started).Round(time.Millisecond),
		"snapshot_load", loaded.Round(time.Millisecond), "tail", (caughtUp - loaded).Round(time.Millisecond),
		"data_keys_and_audit", (time.Since(started) - caughtUp).Round(time.Millisecond))
	return nil
}

// lateViews are the views restored after unseal returns: indexes that only sys/ledger/*
// endpoints and background duties read (fingerprint matching and incidents, history), which
// wait for them (Runner.WaitReady). At 100k secrets they are a third of a checkpoint's restore.
func (st *unsealed) lateViews() []projections.View {
	return []projections.View{st.fingerprints, st.history}
}

// restoreLate gives the deferred views their checkpoint state and lets the runner fold in what
// it kept for them. A view that cannot be restored seals the node: its section opened under the
// keyring, so that is a build that cannot read its own checkpoint, and nothing may be served
// from a view that skipped history. A checkpoint whose late sections cannot be read or do not
// authenticate (damaged after the others were read) is not trusted for them: they are rebuilt
// from the log instead, unless the log holds a restore (its history before the restore is not
// this one), which seals. ctx ends when the node seals.
func (c *Core) restoreLate(ctx context.Context, st *unsealed, views []projections.View, base *replay.Base) {
	if !afterGrace(ctx) {
		for _, v := range views {
			st.runner.Ready(v, ctx.Err()) // sealed meanwhile: whoever waits for them hears so
		}
		return
	}
	// One after the other, on one goroutine: the node is answering meanwhile, and on two
	// cores a restore per core left the first requests after unseal waiting for a core.
	started := time.Now()
	kr := st.keyring.Load()
	parts, err := base.LaterParts(kr, views)
	if err != nil {
		if c.sealView.State().Restore != nil {
			c.lateFailed(st, views, fmt.Errorf("the checkpoint's deferred views: %w", err))
			return
		}
		c.logger.Warn("the checkpoint's deferred views are unreadable; rebuilding them from the log", "name", base.Name, "seq", base.Seq, "err", err)
		if _, rerr := replay.Replay(ctx, c.log, kr, views, 0, [32]byte{}, base.Seq, nil); rerr != nil {
			c.lateFailed(st, views, fmt.Errorf("rebuild the deferred views from the log: %w (the checkpoint: %w)", rerr, err))
			return
		}
		parts = make([]replay.Part, len(views)) // rebuilt: nothing to restore
	}
	for i, v := range views {
		var err error
		if parts[i].Data != nil {
			err = v.Restore(parts[i].Data)
		}
		parts[i].Data = nil
		if err := st.runner.Ready(v, err); err != nil {
			c.logger.Error("a view loaded after unseal failed; sealing", "view", v.Name(), "err", err)
			go c.Seal()
			return
		}
	}
	c.logger.Info("deferred views loaded", "took", time.Since(started).Round(time.Millisecond))
}

// postUnsealGrace is how long after unseal the node answers requests before its heavier
// housekeeping starts: restoring the deferred views, reconciling data keys with the KV views,
// backfilling fingerprints. Started at once, those three kept both cores of a small machine
// busy, and the first read after a restart with 100k secrets waited 7–34 ms for a core (Go
// preempts a busy goroutine only every 10 ms) where it otherwise takes about one.
const postUnsealGrace = 500 * time.Millisecond

// afterGrace waits out postUnsealGrace; false when ctx ended first (the node sealed).
func afterGrace(ctx context.Context) bool {
	t := time.NewTimer(postUnsealGrace)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// lateFailed ends the deferral of views that could not be given their state, and seals.
func (c *Core) lateFailed(st *unsealed, views []projections.View, err error) {
	for _, v := range views {
		if rerr := st.runner.Ready(v, err); rerr != nil {
			err = rerr
			break
		}
	}
	c.logger.Error("views loaded after unseal failed; sealing", "err", err)
	go c.Seal()
}

// openedDataKeys is openDataKeys' result.
type openedDataKeys struct {
	dk  *ledger.DataKeys
	err error
}

// openDataKeys opens the data-key store and loads its keys (after a restore, base's).
func (c *Core) openDataKeys(ctx context.Context, st *unsealed, base *replay.Base) openedDataKeys {
	var dk *ledger.DataKeys
	err := ledger.RetryJS(ctx, c.logger, "open the data-key streams", termCatchUp, func(actx context.Context) error {
		var err error
		dk, err = ledger.OpenDataKeys(actx, c.log.JetStream(), max(c.opts.Replicas, 1))
		return err
	})
	if err != nil {
		return openedDataKeys{err: err}
	}
	dk.SetLogger(c.logger)
	started := time.Now()
	if err := c.loadDataKeys(ctx, st, dk, base); err != nil {
		dk.Close()
		return openedDataKeys{err: err}
	}
	c.logger.Info("data keys loaded", "keys", dk.Len(), "took", time.Since(started).Round(time.Millisecond))
	return openedDataKeys{dk: dk}
}

// runDuties starts what touches the outside world or appends on its own schedule: the
// expiration manager, tidies and rotations, reconcilers, automatic snapshots and audit device
// delivery. Only the active node runs them (ha.go); they end with ctx.
func (c *Core) runDuties(ctx context.Context, st *unsealed, wg *sync.WaitGroup) {
	// What the views held when this term's duties began: every change this node commits comes
	// after it, so a publisher that starts from here skips none of them.
	from := st.runner.Applied()
	graced := func(f func(context.Context, *unsealed)) func() {
		return func() {
			if afterGrace(ctx) {
				f(ctx, st)
			}
		}
	}
	for _, f := range []func(){
		func() { c.expireTokens(ctx, st) },
		func() { st.expire.run(ctx) },
		func() { c.tidyAppRoles(ctx, st) },
		func() { c.rotateStaticRoles(ctx, st) },
		func() { c.rotateTransitKeys(ctx, st) },
		func() { c.autoTidyPKI(ctx, st) },
		func() { c.reportOrphans(ctx, st) },
		graced(c.reconcileDataKeys),
		func() { c.reconcileCubbyholes(ctx, st) },
		func() { c.snapshotLoop(ctx, st, st.base) },
		graced(c.backfillFingerprints),
		func() { c.deliverAudit(ctx, st) },
		func() { c.publishEvents(ctx, st, from) },
	} {
		wg.Go(f)
	}
}

func (st *unsealed) close(logger *slog.Logger) {
	st.cancel()
	waitStopped(logger, "log follower", st.done)
	st.backendsMu.Lock()
	for _, b := range st.backends {
		if cl, ok := b.(interface{ Close() }); ok {
			cl.Close() // connection pools to databases
		}
	}
	st.backendsMu.Unlock()
	st.audit.stop()
	st.datakeys.Close()
	st.ceremony.clear()
	st.keyMu.Lock()
	clear(st.rootKey)
	st.keyMu.Unlock()
}

// backend returns the backend of a mount, building it on first use.
func (c *Core) backend(st *unsealed, m mount.Entry) (engines.Backend, error) {
	st.backendsMu.Lock()
	defer st.backendsMu.Unlock()
	if b, ok := st.backends[m.UUID]; ok {
		return b, nil
	}
	b, err := c.buildBackend(st, m)
	if err != nil {
		return nil, err
	}
	st.backends[m.UUID] = b
	return b, nil
}

func (st *unsealed) dropBackend(uuid string) {
	st.backendsMu.Lock()
	delete(st.backends, uuid)
	st.backendsMu.Unlock()
}

// aclCache keeps parsed ACLs keyed by the policies' names and versions, so a policy write takes
// effect on the next request of every token carrying it, without re-parsing on every request.
type aclCache struct {
	mu sync.RWMutex
	m  map[string]*acl.ACL
}

// keyLocks serialises writes to one aggregate (striped, so memory stays bounded).
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

// keyLock is one key's mutex, shared by the requests waiting for it and dropped with the last.
type keyLock struct {
	sync.Mutex
	refs int
}

// lock holds key until the returned func is called. Locks are per key, not striped: a request
// that holds two keys (a limited-use token's and its aggregate's, a login's and the identity
// store's) can never find the second one held by itself, and requests on other keys never wait
// on it. Requests take keys in one order (token use → aggregate → identity/wrapping), so there
// is no cycle.
func (k *keyLocks) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
