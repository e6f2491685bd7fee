package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/ledger/autoseal"
	"github.com/ledger-secrets/ledger/ledger/shamir"
	"github.com/ledger-secrets/ledger/projections"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
	historyview "github.com/ledger-secrets/ledger/projections/history"
	"github.com/ledger-secrets/ledger/projections/seal"
	"github.com/ledger-secrets/ledger/replay"
)

// Snapshots and replay (DESIGN §7).
//
// Save: every view is cut at one sequence N (the runner holds between two batches), then
// sealed under the keyring with N, the batch hash at N, the digests, the cluster id, the seal
// configuration, the keyring wrapped under the root key and the live data keys (replay.Snapshot).
//
// Restore: the file is checked (framing, checksums; on an unsealed server of the same cluster
// also opened and loaded into scratch views) before anything changes. Then it is stored in the
// LEDGER_SNAPSHOTS object store and one raw snapshot.restored.v1 event is appended to the log:
// that append is the single atomic step. Until it, nothing changed (an object stored without its
// event is ignored and pruned later); after it, the seal view holds the snapshot's seal
// configuration and every unseal loads the snapshot and replays only the batches after the
// event's. A truncated, corrupted or foreign file never reaches the append.
//
// Where restore is allowed (Vault allows it only unsealed): on an uninitialised server without
// a token, like sys/init, so a fresh server can be rebuilt from a snapshot and opened with the
// snapshot's unseal keys; on an unsealed server with a sudo token — a snapshot of another
// cluster only through snapshot-force. A sealed, initialised server refuses (503): unseal it
// first, or restore into an empty data dir. After a restore of the same cluster the server
// stays unsealed (its root key opens the snapshot's keyring); otherwise it is left sealed and
// opens with the snapshot's unseal keys.
//
// Restore and replay have no side effects: they replace view state and append the one event,
// and never revoke, rotate or call a backend. After a restore, the expiration manager starts
// as after any unseal and revokes only what the restored lease view says has expired, by the
// restored state's own (possibly renewed) TTLs — never because of the restore (vault#22275).

// SnapshotOptions configure automatic snapshots, which keep unseal fast: it loads the newest
// and replays only the batches after it.
type SnapshotOptions struct {
	// Interval between automatic snapshots (default 1h; negative disables them). They are
	// taken by the active node only; until HA arrives every unsealed node is active.
	Interval time.Duration
	// Retain is how many automatic snapshots to keep (default 2).
	Retain int
}

const (
	defaultSnapshotInterval = time.Hour
	// Automatic snapshots exist to make unseal fast (and replay verify checks the newest): the
	// newest, and one older in case the newest cannot be used. No more: after a crash JetStream
	// reads every block of the bucket again (its state file is written every 2–2.5 minutes,
	// and checkpoints come every few seconds under writes), and with three kept the bucket
	// was 1.2 of the 3.6 GB a restart at a million secrets recovered.
	defaultSnapshotRetain = 2
	// localCheckpointDir, in the embedded server's data dir, holds this node's copies of the
	// checkpoints it stored (replay.Local).
	localCheckpointDir = "checkpoints"
	// prefetchKeep: how long a checkpoint read ahead of unseal (PrefetchCheckpoint) is kept for
	// an unseal that has not come.
	prefetchKeep = 2 * time.Minute
	// Checkpoints: a snapshot once checkpointBatches batches were applied since the last, at
	// most one per checkpointGap, looked for every checkpointPoll.
	checkpointBatches = 1_000
	checkpointGap     = 10 * time.Second
	checkpointPoll    = 2 * time.Second
	// And once the node has been quiet for checkpointQuiet — no batch applied, and the process
	// allocating next to nothing (idleWatch: no reads being served either, which the
	// checkpoint's CPU would slow) — with at least checkpointQuietBatches applied since the
	// last one: a burst of writes that stops short of checkpointBatches would otherwise leave
	// its tail to every later unseal (433 batches, 58 ms of a 0.5 s restart at 100k secrets).
	// A trickle of writes never looks quiet for long, or reaches the minimum slowly: it gets
	// at most one such checkpoint per checkpointQuietBatches batches.
	checkpointQuiet        = 4 * time.Second
	checkpointQuietBatches = 100
	// A tail longer than this at unseal makes the node take a snapshot at once, so the next
	// unseal does not replay it again.
	snapshotAfterBatches = 10_000
	// MaxSnapshotBytes bounds an uploaded snapshot, which is held in memory while checked.
	MaxSnapshotBytes = 2 << 30
)

// Errors of snapshot restore, mapped to 400 by httpapi.
var (
	ErrSnapshotCluster = errors.New("snapshot is from another cluster")
	ErrRestoreBusy     = errors.New("another restore or replay is running")
)

// snapshots is the snapshot state of an unsealed node.
type snapshots struct {
	store *replay.Store
	mu    sync.Mutex    // one snapshot write at a time
	last  atomic.Uint64 // sequence of the last automatic snapshot (written under mu)

	verifyMu  sync.Mutex // one verify at a time
	jobMu     sync.Mutex
	verifying *replay.Progress
	lastRun   *VerifyResult
}

type snapshotJobKey struct{}

// snapshotJob carries a binary snapshot request through the pipeline, which authenticates,
// authorises (sudo) and audits it like any sys request; the bytes travel beside the JSON.
type snapshotJob struct {
	body   io.Reader // restore: the upload
	data   []byte    // save: the file
	result RestoreResult
	err    error // restore: the outcome of the work done after the request let go of the state
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	Object      string    `json:"object"`
	Seq         uint64    `json:"restored_at_seq"` // this log's batch holding the restore
	SnapshotSeq uint64    `json:"snapshot_seq"`
	SnapshotAt  time.Time `json:"snapshot_time"`
	ClusterID   string    `json:"cluster_id"`
	Forced      bool      `json:"forced"`
	Sealed      bool      `json:"sealed"`
	Warnings    []string  `json:"warnings,omitempty"`
}

// SaveSnapshot takes a snapshot for download (GET sys/storage/raft/snapshot): sudo.
func (c *Core) SaveSnapshot(ctx context.Context, r *Request) ([]byte, error) {
	job := &snapshotJob{}
	r.Op, r.Path, r.Data = engines.OpRead, "sys/storage/raft/snapshot", nil
	if _, err := c.Handle(context.WithValue(ctx, snapshotJobKey{}, job), r); err != nil {
		return nil, err
	}
	if job.data == nil {
		return nil, errors.New("snapshot: no data produced")
	}
	return job.data, nil
}

// RestoreSnapshot restores an uploaded snapshot (POST sys/storage/raft/snapshot[-force]). On an
// uninitialised server it needs no token; otherwise a sudo token on an unsealed server. Errors:
// a bad file or a foreign cluster without force → engines.ErrBadRequest with what to do;
// ErrSealed on a sealed server.
func (c *Core) RestoreSnapshot(ctx context.Context, r *Request, body io.Reader, force bool) (RestoreResult, error) {
	if !c.Initialized() {
		data, f, err := readSnapshot(body)
		if err != nil {
			return RestoreResult{}, err
		}
		c.lifecycle.Lock()
		defer c.lifecycle.Unlock()
		if c.Initialized() {
			return RestoreResult{}, engines.BadRequest("the server was initialised while the snapshot was uploading; restore it with a sudo token of the new cluster and -force")
		}
		return c.installSnapshot(ctx, f, data, force, nil, nil)
	}
	job := &snapshotJob{body: body}
	r.Op, r.Path, r.Data = engines.OpUpdate, "sys/storage/raft/snapshot", nil
	if force {
		r.Path += "-force"
	}
	if _, err := c.Handle(context.WithValue(ctx, snapshotJobKey{}, job), r); err != nil {
		return RestoreResult{}, err
	}
	return job.result, job.err
}

func readSnapshot(body io.Reader) ([]byte, *replay.File, error) {
	if body == nil {
		return nil, nil, engines.BadRequest("the snapshot is empty: send the file as the request body; nothing was changed")
	}
	data, err := io.ReadAll(io.LimitReader(body, MaxSnapshotBytes+1))
	if err != nil {
		return nil, nil, engines.BadRequest("reading the snapshot: %s; nothing was changed", err.Error())
	}
	if len(data) > MaxSnapshotBytes {
		return nil, nil, engines.BadRequest("the snapshot is larger than %d bytes; nothing was changed", MaxSnapshotBytes)
	}
	if len(data) == 0 {
		return nil, nil, engines.BadRequest("the snapshot is empty: send the file as the request body; nothing was changed")
	}
	f, err := replay.Decode(data)
	if err != nil {
		return nil, nil, engines.BadRequest("%s; nothing was changed", err.Error())
	}
	return data, f, nil
}

// snapshotPaths serves sys/storage/raft/snapshot and snapshot-force once the pipeline has
// authenticated the sudo token. The bytes come and go through the request's snapshotJob.
func (s *sysBackend) snapshotPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	job, _ := ctx.Value(snapshotJobKey{}).(*snapshotJob)
	force := p == "storage/raft/snapshot-force"
	if p != "storage/raft/snapshot" && !force {
		return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: route entry not found", "sys/"+p)
	}
	if job == nil {
		return nil, engines.BadRequest("snapshots are binary: download with GET /v1/sys/storage/raft/snapshot and restore by POSTing the file to /v1/sys/storage/raft/snapshot[-force] (ledger operator raft snapshot save|restore)")
	}
	switch {
	case req.Op == engines.OpRead && !force:
		data, _, err := s.c.takeSnapshot(ctx, s.st, true)
		if err != nil {
			return nil, err
		}
		job.data = data
		return nil, nil
	case isWrite(req.Op):
		data, f, err := readSnapshot(job.body)
		if err != nil {
			return nil, err
		}
		cur := s.c.sealView.State()
		if f.Header.ClusterID != cur.ClusterID && !force {
			return nil, engines.BadRequest("%s: the snapshot was taken by cluster %s and this server belongs to cluster %s. Restoring it replaces all of this server's state, and the server then opens only with the snapshot's unseal keys. If that is what you want, restore with -force (POST sys/storage/raft/snapshot-force); nothing was changed",
				ErrSnapshotCluster, f.Header.ClusterID, cur.ClusterID)
		}
		// Open it now if this server's root key can, so a corrupt or altered file is refused
		// before anything changes, and the server can stay unsealed afterwards.
		var reopen []byte
		var warnings []string
		s.st.keyMu.Lock()
		root := append([]byte(nil), s.st.rootKey...)
		s.st.keyMu.Unlock()
		defer clear(root)
		if kr, err := f.Keyring(root); err == nil {
			snap, err := f.Open(kr)
			if err != nil {
				return nil, engines.BadRequest("%s; nothing was changed", err.Error())
			}
			scratch := s.c.newUnsealed(nil, kr)
			missing, err := snap.Restore(scratch.runner.Views(), replay.RestoreOptions{AllowMissing: true})
			if err != nil {
				return nil, engines.BadRequest("the snapshot does not load: %s; nothing was changed", err.Error())
			}
			if len(missing) > 0 {
				warnings = append(warnings, fmt.Sprintf("the snapshot lacks views %v; they start empty", missing))
			}
			reopen = append([]byte(nil), root...)
		} else if !errors.Is(err, ledger.ErrWrongRootKey) {
			return nil, engines.BadRequest("the snapshot's keyring does not decode: %s; nothing was changed", err.Error())
		} else if !force {
			return nil, engines.BadRequest("the snapshot's keyring does not open under this server's root key: it was sealed by another root key. Restore with -force to replace this server's state and open it with the snapshot's unseal keys; nothing was changed")
		}
		if !f.Header.HasDataKeys() {
			warnings = append(warnings, "the snapshot carries no data keys (an automatic snapshot?): values whose keys this server lacks will not open")
		}
		// Restoring seals the server, which waits for requests in flight, this one included:
		// the work runs once the pipeline let go of the state.
		s.after = func() {
			job.result, job.err = s.c.installSnapshot(context.WithoutCancel(ctx), f, data, force, reopen, warnings)
			clear(reopen)
		}
		return nil, nil
	}
	return nil, engines.ErrUnsupported
}

// installSnapshot stores the file and appends the restore event. reopen, when set, is the root
// key to unseal with afterwards (a snapshot of this cluster). Called with c.lifecycle free
// (it takes it) unless the server is uninitialised, when the caller holds it: the ordering is
// decided by whether there is state to seal.
func (c *Core) installSnapshot(ctx context.Context, f *replay.File, data []byte, force bool, reopen []byte, warnings []string) (RestoreResult, error) {
	initialised := c.Initialized()
	if initialised {
		c.lifecycle.Lock()
		defer c.lifecycle.Unlock()
		if !c.Unsealed() {
			return RestoreResult{}, fmt.Errorf("the server was sealed while the snapshot was checked; nothing was changed: %w", ErrSealed)
		}
	}
	prev := c.sealView.State()
	store, err := replay.OpenStore(ctx, c.log.JetStream(), c.opts.Replicas)
	if err != nil {
		return RestoreResult{}, err
	}
	name := replay.RestoreName(newUUID())
	if err := store.Put(ctx, name, data, f.Header.Seq); err != nil {
		return RestoreResult{}, fmt.Errorf("%w; nothing was changed", err)
	}
	// Seal first: the restore's batch is where the restored state starts, and anything else in
	// that batch would be superseded. Sealing waits for the requests in flight and stops the
	// background jobs, so nothing of this node shares the batch.
	c.sealLocked()
	h := f.Header
	payload, _ := json.Marshal(seal.RestoredPayload{Shares: h.Seal.Shares, Threshold: h.Seal.Threshold,
		Keyring: h.Seal.Keyring, Term: h.Seal.Term, ClusterID: h.ClusterID, InitTime: h.Seal.InitTime,
		Object: name, SHA256: fmt.Sprintf("%x", f.SHA256), SnapshotSeq: h.Seq, SnapshotHash: h.Hash,
		SnapshotTime: h.Created, PreviousClusterID: prev.ClusterID, Forced: force, AutoSeal: h.Seal.AutoSeal})
	pos, err := c.log.Append(ctx, []ledger.Event{{Type: seal.SnapshotRestored, Subject: ledger.SubjectFor("seal", "config"), Raw: true, Payload: payload}})
	if err != nil {
		if derr := store.Delete(context.WithoutCancel(ctx), name); derr != nil {
			c.logger.Warn("restore: unreferenced snapshot object left behind", "name", name, "err", derr)
		}
		return RestoreResult{}, fmt.Errorf("append restore event: %w; the server is sealed and unchanged, unseal it to go on", err)
	}
	if err := c.sealRunner.WaitFor(ctx, pos[0].Seq); err != nil {
		return RestoreResult{}, fmt.Errorf("apply restore event: %w", err)
	}
	res := RestoreResult{Object: name, Seq: pos[0].Seq, SnapshotSeq: h.Seq, SnapshotAt: h.Created, ClusterID: h.ClusterID,
		Forced: force, Sealed: true, Warnings: warnings}
	c.logger.Info("snapshot restored", "object", name, "at_seq", res.Seq, "snapshot_seq", h.Seq, "cluster_id", h.ClusterID, "forced", force)
	if reopen != nil {
		rootKey := append([]byte(nil), reopen...)
		kr, err := ledger.UnwrapKeyring(rootKey, h.Seal.Keyring)
		if err == nil {
			err = c.open(ctx, rootKey, kr) // takes rootKey; clears it on failure
		} else {
			clear(rootKey)
		}
		if err != nil {
			res.Warnings = append(res.Warnings, "the snapshot was restored but the server could not unseal with it: "+err.Error()+"; unseal it with the unseal keys")
			return res, nil
		}
		res.Sealed = false
	}
	return res, nil
}

// sealLocked is Seal for a caller already holding c.lifecycle.
func (c *Core) sealLocked() {
	c.mu.Lock()
	st := c.st
	c.st = nil
	c.mu.Unlock()
	if st == nil {
		return
	}
	c.log.SetKeyring(nil)
	st.close(c.logger)
	c.logger.Info("sealed")
}

// takeSnapshot cuts and seals the views (and, for a download, the data keys) into one buffer.
// The caller holds the unsealed state.
func (c *Core) takeSnapshot(ctx context.Context, st *unsealed, withDataKeys bool) ([]byte, replay.Cut, error) {
	snap, kr, cut, err := c.cutSnapshot(ctx, st, withDataKeys)
	if err != nil {
		return nil, cut, err
	}
	var buf bytes.Buffer
	size := len(snap.DataKeys)
	for _, p := range snap.Views {
		size += len(p.Data)
	}
	buf.Grow(size + size/16 + 64<<10) // sealing and framing add a little: no doubling copies
	if _, err := snap.Encode(&buf, kr); err != nil {
		return nil, cut, err
	}
	return buf.Bytes(), cut, nil
}

// storeSnapshot cuts the views and streams the sealed snapshot into the bucket as it is
// encoded, so a checkpoint holds the views' cut and one sealed chunk, not a second copy of the
// whole file (at 100k secrets that copy was most of the server's peak memory). It returns the
// snapshot's name.
func (c *Core) storeSnapshot(ctx context.Context, st *unsealed, store *replay.Store) (string, replay.Cut, error) {
	snap, kr, cut, err := c.cutSnapshot(ctx, st, false)
	if err != nil {
		return "", cut, err
	}
	name := replay.AutoName(cut.Seq)
	// The views restored after unseal go last: unseal reads the checkpoint up to them.
	var last []string
	for _, v := range st.lateViews() {
		last = append(last, v.Name())
	}
	err = store.PutFrom(ctx, name, cut.Seq, func(w io.Writer) error {
		_, err := snap.EncodeCheckpoint(w, kr, last...)
		return err
	})
	return name, cut, err
}

// cutSnapshot captures the views (and the data keys when asked) with the seal configuration
// and the keyring that seals them.
func (c *Core) cutSnapshot(ctx context.Context, st *unsealed, withDataKeys bool) (*replay.Snapshot, *ledger.Keyring, replay.Cut, error) {
	cut, err := replay.Capture(st.runner, true)
	if err != nil {
		return nil, nil, cut, err
	}
	snap := &replay.Snapshot{ClusterName: c.opts.ClusterName, Seq: cut.Seq, Hash: cut.Hash, Created: time.Now().UTC(), Views: cut.Views}
	if withDataKeys {
		// After the views: a key shredded in between is absent (its value is gone anyway), a
		// key created in between is unused.
		if snap.DataKeys, err = st.datakeys.Snapshot(ctx); err != nil {
			return nil, nil, cut, fmt.Errorf("snapshot data keys: %w", err)
		}
	}
	st.keyMu.Lock()
	kr := st.keyring.Load()
	err = c.rootKeyCurrent(st)
	var wrapped []byte
	if err == nil {
		wrapped, err = kr.Wrap(st.rootKey)
	}
	st.keyMu.Unlock()
	if err != nil {
		return nil, nil, cut, err
	}
	s := c.sealView.State()
	snap.ClusterID = s.ClusterID
	snap.Seal = replay.SealConfig{Shares: s.Shares, Threshold: s.Threshold, Term: kr.Term(), InitTime: s.InitTime, Keyring: wrapped, AutoSeal: s.AutoSeal}
	return snap, kr, cut, nil
}

// loadBase restores st's views from the newest usable snapshot (see replay.LoadBase) and
// positions the runner after it; nil means the views start empty, at genesis. Called by open.
func (c *Core) loadBase(ctx context.Context, st *unsealed, later []projections.View) (*replay.Base, error) {
	// Creating or binding the bucket asks the meta leader: on a node unsealed just after a
	// failover it may not be elected yet, and the request is dropped until it is.
	var store *replay.Store
	err := ledger.RetryJS(ctx, c.logger, "open the snapshot bucket", termCatchUp, func(actx context.Context) error {
		var err error
		store, err = replay.OpenStore(actx, c.log.JetStream(), c.opts.Replicas)
		return err
	})
	if err != nil {
		return nil, err
	}
	if dir := c.log.LocalDir(); dir != "" {
		// This node's copies of the checkpoints it stores, read first at unseal (replay.Local).
		if local, err := replay.OpenLocal(filepath.Join(dir, localCheckpointDir)); err != nil {
			c.logger.Warn("checkpoints are read from the bucket only", "err", err)
		} else {
			store.UseLocal(ctx, local)
			// Read ahead while the log started (first unseal only); released once loaded.
			if p := c.opts.Prefetch; p != nil {
				c.opts.Prefetch = nil
				store.UsePrefetched(p)
				defer p.Close()
			}
		}
	}
	st.snaps = &snapshots{store: store}
	// A checkpoint's restore allocates the views, which stay, and its sections, which die at
	// its end: the collector pauses meanwhile (pauseGC). The tail after it is replayed with
	// the collector running (from genesis that is the whole log's garbage).
	resume := pauseGC()
	base, err := replay.LoadBase(ctx, c.log.JetStream(), store, c.sealView.State(), st.keyring.Load(), st.runner.Views(), replay.BaseOptions{Logger: c.logger, Later: later})
	resume()
	if err != nil || base == nil {
		return nil, err
	}
	st.runner.StartAt(base.Seq, base.Hash)
	if base.Restored && base.Snapshot.DataKeys != nil {
		// First unseal after a restore: the data keys become the snapshot's (loadDataKeys). The
		// ones in the stream belong to the state the restore replaced — another cluster's, or
		// sealed under key terms the restored keyring lacks — and would not open; the values
		// they protect are not part of the restored state. A crash before loadDataKeys finishes
		// brings us here again, which is harmless.
		if err := ledger.DeleteDataKeyStreams(ctx, c.log.JetStream()); err != nil {
			return nil, fmt.Errorf("replace the data keys with the restored snapshot's: %w", err)
		}
	}
	if !base.Restored {
		st.snaps.last.Store(base.Seq)
	}
	from := "bucket"
	if base.Took.Local {
		from = "local copy"
	}
	c.logger.Info("views loaded from snapshot", "name", base.Name, "seq", base.Seq, "restored", base.Restored, "from", from,
		"list", base.Took.List.Round(time.Millisecond), "read", base.Took.Read.Round(time.Millisecond), "read_bytes", base.Took.Bytes,
		"open", base.Took.Open.Round(time.Millisecond), "restore", base.Took.Restore.Round(time.Millisecond))
	return base, nil
}

// loadDataKeys loads the data keys; after a restore, first the snapshot's. The restored file
// is then stored again without them, so the bucket keeps no copy of a key that a later destroy
// shreds, and a later unseal does not bring such a key back.
func (c *Core) loadDataKeys(ctx context.Context, st *unsealed, dk *ledger.DataKeys, base *replay.Base) error {
	kr := st.keyring.Load()
	if base == nil || !base.Restored || base.Snapshot.DataKeys == nil {
		return dk.Load(ctx, kr)
	}
	if err := dk.Restore(ctx, kr, base.Snapshot.DataKeys); err != nil {
		return fmt.Errorf("install the restored snapshot's data keys: %w", err)
	}
	stripped := *base.Snapshot
	stripped.DataKeys = nil
	var buf bytes.Buffer
	if _, err := stripped.Encode(&buf, kr); err != nil {
		return err
	}
	if err := st.snaps.store.Put(ctx, base.Name, buf.Bytes(), base.Header.Seq); err != nil {
		return fmt.Errorf("store the restored snapshot without its data keys (unseal again to retry): %w", err)
	}
	return nil
}

// snapshotLoop takes automatic snapshots while unsealed: every Interval, and as a checkpoint
// whenever checkpointBatches batches were applied since the last one (at most one per
// checkpointGap), so a restart replays a short tail whatever the write rate, and when writes
// stop with a shorter tail (checkpointQuiet). It starts with one when the unseal replayed a
// long tail or loaded a restored snapshot.
func (c *Core) snapshotLoop(ctx context.Context, st *unsealed, base *replay.Base) {
	every, keep := c.opts.Snapshots.Interval, c.opts.Snapshots.Retain
	if every == 0 {
		every = defaultSnapshotInterval
	}
	if keep <= 0 {
		keep = defaultSnapshotRetain
	}
	if every < 0 {
		return
	}
	var from uint64
	if base != nil {
		from = base.Seq
	}
	next := time.Now().Add(every)
	if (base != nil && base.Restored) || st.runner.Applied()-from >= snapshotAfterBatches {
		next = time.Now()
	}
	var taken time.Time
	poll := min(every, checkpointPoll)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	seen, moved := st.runner.Applied(), time.Now() // the log's position and when it last moved
	idle := &idleWatch{perTick: max(1, uint64(float64(idleAllocs)*poll.Seconds()/idleTick.Seconds()))}
	for {
		now := time.Now()
		idle.tick(now, allocatedBytes())
		applied := st.runner.Applied()
		if applied != seen {
			seen, moved = applied, now
		}
		grown := applied - st.snaps.last.Load()
		quiet := grown >= checkpointQuietBatches && now.Sub(moved) >= checkpointQuiet && idle.quietFor(now) >= checkpointQuiet
		if !now.Before(next) || ((grown >= checkpointBatches || quiet) && now.Sub(taken) >= checkpointGap) {
			if name, err := c.autoSnapshot(ctx, st, keep); err != nil && ctx.Err() == nil {
				c.logger.Error("automatic snapshot", "err", err)
			} else if name != "" {
				c.logger.Info("automatic snapshot stored", "name", name)
				// The checkpoint's transient (the views' cut: tens of megabytes at 100k
				// secrets) is garbage now. Hand it back to the OS at once rather than keep it
				// resident until the scavenger gets to it; a checkpoint is at most one per
				// checkpointGap, so the extra collections are cheap beside the cut itself.
				// Two: buffers parked in sync.Pools (JetStream's 8 MiB block caches among
				// them) survive one collection in the pools' victim caches.
				runtime.GC()
				debug.FreeOSMemory()
			}
			taken, next = time.Now(), time.Now().Add(every)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// autoSnapshot stores a views-only snapshot at the current position and prunes old ones. It
// returns "" when nothing changed since the last one.
func (c *Core) autoSnapshot(ctx context.Context, st *unsealed, keep int) (string, error) {
	st.snaps.mu.Lock()
	defer st.snaps.mu.Unlock()
	if st.runner.Applied() == st.snaps.last.Load() {
		return "", nil
	}
	name, cut, err := c.storeSnapshot(ctx, st, st.snaps.store)
	if err != nil {
		return "", err
	}
	st.snaps.last.Store(cut.Seq)
	keepRestore := ""
	if r := c.sealView.State().Restore; r != nil {
		keepRestore = r.Object
	}
	if _, err := st.snaps.store.Prune(ctx, keep, keepRestore); err != nil {
		return name, fmt.Errorf("prune snapshots: %w", err)
	}
	return name, nil
}

// VerifyResult is the answer of sys/ledger/replay/verify.
type VerifyResult struct {
	OK           bool                `json:"ok"`
	Seq          uint64              `json:"seq"`
	From         string              `json:"from"` // "genesis" or the restored snapshot's name
	FromSeq      uint64              `json:"from_seq"`
	Events       uint64              `json:"events"`
	Duration     time.Duration       `json:"duration_ns"`
	EventsPerSec float64             `json:"events_per_second"`
	Views        []replay.ViewResult `json:"views"`
	// Snapshot compares the newest automatic snapshot plus the tail after it with the live
	// views too, since unseal starts from it.
	Snapshot *SnapshotCheck `json:"snapshot,omitempty"`
	// InvalidUTF8 lists keys written before paths had to be valid UTF-8 (README: Paths). They
	// do not make the replay fail: the log is intact, the keys want a repair.
	InvalidUTF8 []InvalidUTF8Finding `json:"invalid_utf8,omitempty"`
}

// SnapshotCheck is the result of checking an automatic snapshot.
type SnapshotCheck struct {
	Name  string              `json:"name"`
	Seq   uint64              `json:"seq"`
	OK    bool                `json:"ok"`
	Error string              `json:"error,omitempty"`
	Views []replay.ViewResult `json:"views,omitempty"`
}

// replayPaths serves sys/ledger/replay/: POST verify rebuilds every view from genesis (or the
// restored snapshot the log starts from) beside the live ones and compares digests; GET verify
// reports the progress of the running verify, or the last result.
func (s *sysBackend) replayPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	if p != "verify" {
		return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: route entry not found", "sys/ledger/replay/"+p)
	}
	if req.Caller == nil || !s.c.aclForCaller(s.st, req.Caller).Allowed(aclOp(req.Op), "sys/ledger/replay/verify", nil).Sudo && !req.Caller.Root {
		return nil, engines.Errorf(engines.ErrPermissionDenied, "permission denied")
	}
	sn := s.st.snaps
	switch {
	case req.Op == engines.OpRead:
		sn.jobMu.Lock()
		defer sn.jobMu.Unlock()
		data := map[string]any{"running": sn.verifying != nil}
		if sn.verifying != nil {
			data["progress"] = sn.verifying.Read()
		}
		if sn.lastRun != nil {
			data["last"] = sn.lastRun
		}
		return &engines.Response{Data: data}, nil
	case isWrite(req.Op):
		if !sn.verifyMu.TryLock() {
			return nil, engines.BadRequest("%s: a replay verify is running; follow it with GET sys/ledger/replay/verify", ErrRestoreBusy)
		}
		defer sn.verifyMu.Unlock()
		prog := &replay.Progress{}
		sn.jobMu.Lock()
		sn.verifying = prog
		sn.jobMu.Unlock()
		res, err := s.c.verify(ctx, s.st, prog)
		sn.jobMu.Lock()
		sn.verifying = nil
		if err == nil {
			sn.lastRun = &res
		}
		sn.jobMu.Unlock()
		if err != nil {
			return nil, err
		}
		var data map[string]any
		b, _ := json.Marshal(res)
		_ = json.Unmarshal(b, &data)
		return &engines.Response{Data: data}, nil
	}
	return nil, engines.ErrUnsupported
}

// verify rebuilds every view beside the live ones, up to the position the live ones hold at
// the start, and compares digests. It holds the live runner only to read their digests.
func (c *Core) verify(ctx context.Context, st *unsealed, prog *replay.Progress) (VerifyResult, error) {
	kr := st.keyring.Load()
	live, err := replay.Capture(st.runner, false)
	if err != nil {
		return VerifyResult{}, err
	}
	sealState := c.sealView.State()
	js := c.log.JetStream()
	scratch := c.newUnsealed(nil, kr)
	views := scratch.runner.Views()
	base, err := replay.LoadBase(ctx, js, st.snaps.store, sealState, kr, views, replay.BaseOptions{SkipAuto: true, Logger: c.logger})
	if err != nil {
		return VerifyResult{}, err
	}
	res := VerifyResult{Seq: live.Seq, From: "genesis"}
	var startSeq uint64
	var startHash [32]byte
	if base != nil {
		res.From, res.FromSeq, startSeq, startHash = base.Name, base.Seq, base.Seq, base.Hash
	}
	stats, err := replay.Replay(ctx, c.log, kr, views, startSeq, startHash, live.Seq, prog)
	if err != nil {
		return VerifyResult{}, err
	}
	res.Events, res.Duration, res.EventsPerSec = stats.Events, stats.Duration, stats.Rate()
	rebuilt := replay.Digests(views)

	// The seal view, rebuilt from its raw events up to the same position. The live one follows
	// seal batches only; compare when it stands at the same seal batch.
	sealRebuilt := seal.New()
	sr := projections.NewRunner(c.log, nil, sealRebuilt)
	if err := sr.CatchUpTo(ctx, live.Seq); err != nil {
		return VerifyResult{}, fmt.Errorf("rebuild seal view: %w", err)
	}
	if c.sealRunner.Applied() < sr.Applied() {
		if err := c.sealRunner.WaitFor(ctx, sr.Applied()); err != nil {
			return VerifyResult{}, err
		}
	}
	liveParts := live.Views
	if c.sealRunner.Applied() == sr.Applied() {
		liveParts = append(liveParts, replay.Part{Name: "seal", Digest: c.sealView.Digest()})
		rebuilt = append(rebuilt, replay.Part{Name: "seal", Digest: sealRebuilt.Digest()})
	}
	res.Views = replay.Compare(liveParts, rebuilt)
	res.OK = true
	for _, v := range res.Views {
		res.OK = res.OK && v.Match
	}
	res.Snapshot = c.checkAutoSnapshot(ctx, st, sealState, kr, live)
	if res.InvalidUTF8, err = invalidUTF8Keys(st.runner.Views()); err != nil {
		return VerifyResult{}, err
	}
	if res.Snapshot != nil {
		res.OK = res.OK && res.Snapshot.OK
	}
	return res, nil
}

// checkAutoSnapshot loads the newest automatic snapshot that unseal would use into scratch
// views, replays the tail up to live's position and compares. nil when there is none.
func (c *Core) checkAutoSnapshot(ctx context.Context, st *unsealed, sealState seal.State, kr *ledger.Keyring, live replay.Cut) *SnapshotCheck {
	scratch := c.newUnsealed(nil, kr)
	views := scratch.runner.Views()
	base, err := replay.LoadBase(ctx, c.log.JetStream(), st.snaps.store, sealState, kr, views, replay.BaseOptions{Logger: c.logger})
	if err != nil || base == nil || base.Restored || base.Seq > live.Seq {
		return nil
	}
	chk := &SnapshotCheck{Name: base.Name, Seq: base.Seq}
	if _, err := replay.Replay(ctx, c.log, kr, views, base.Seq, base.Hash, live.Seq, nil); err != nil {
		chk.Error = err.Error()
		return chk
	}
	chk.Views = replay.Compare(live.Views, replay.Digests(views))
	chk.OK = true
	for _, v := range chk.Views {
		chk.OK = chk.OK && v.Match
	}
	return chk
}

// RebuildResult says what an offline rebuild did.
type RebuildResult struct {
	Seq          uint64        `json:"seq"`
	From         string        `json:"from"`
	Events       uint64        `json:"events"`
	Duration     time.Duration `json:"duration_ns"`
	EventsPerSec float64       `json:"events_per_second"`
	Snapshot     string        `json:"snapshot"`
	Pruned       []string      `json:"pruned,omitempty"`
}

// offlineKeyring opens the keyring of a stopped node's log: with the unseal keys under the
// Shamir seal; under an auto-seal with the configured seal (Options.Seal: the enabled one, or
// the disabled one of a pending migration), as auto-unseal does, and no keys. The caller
// clears the root key.
func (c *Core) offlineKeyring(ctx context.Context, s seal.State, shares [][]byte) ([]byte, *ledger.Keyring, error) {
	var rootKey []byte
	if typ := s.SealType(); typ == autoseal.TypeShamir {
		if len(shares) < s.Threshold {
			return nil, nil, fmt.Errorf("rebuild needs %d unseal keys, got %d: %w", s.Threshold, len(shares), ErrBadShare)
		}
		var err error
		if rootKey, err = shamir.Combine(shares); err != nil {
			return nil, nil, fmt.Errorf("the keys given do not reconstruct the root key: %w", ErrBadShare)
		}
	} else {
		var w autoseal.Wrapper
		for _, cand := range []autoseal.Wrapper{c.opts.Seal.Wrapper, c.opts.Seal.Disabled} {
			if cand != nil && cand.Type() == typ {
				w = cand
				break
			}
		}
		if w == nil {
			return nil, nil, sealModef("the log is sealed by the %s seal, and the root key is decrypted by that seal's key, not by "+
				"unseal keys: give the stopped server's config (-config), whose seal %q stanza reaches the key", typ, typ)
		}
		cctx, cancel := c.callCtx(ctx)
		var err error
		rootKey, err = w.Decrypt(cctx, s.WrappedRoot)
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("the %s seal (key %s) could not decrypt the root key: %w", typ, w.KeyID(), err)
		}
	}
	kr, err := ledger.UnwrapKeyring(rootKey, s.Keyring)
	if err != nil {
		clear(rootKey)
		switch {
		case errors.Is(err, ledger.ErrWrongRootKey) && s.SealType() == autoseal.TypeShamir:
			return nil, nil, fmt.Errorf("the keys given do not reconstruct the root key: %w", ErrBadShare)
		case errors.Is(err, ledger.ErrWrongRootKey):
			return nil, nil, fmt.Errorf("the %s seal's key decrypted the root key, but it does not open the keyring: %w", s.SealType(), err)
		}
		return nil, nil, err
	}
	return rootKey, kr, nil
}

// RebuildOffline rebuilds every view from genesis (or from the restored snapshot the log starts
// from) on a node no server is running on, and stores the result as a fresh automatic
// snapshot, so the next start replays nothing before it. The views hold sealed state, so it
// needs the root key: from the unseal keys (threshold many) under the Shamir seal, from the
// configured auto-seal otherwise (shares are then not used; see offlineKeyring). The Core must
// be sealed and is left sealed: nothing live starts — no expiration, no following, no backend
// — so the rebuild has no side effects.
func (c *Core) RebuildOffline(ctx context.Context, shares [][]byte, prog *replay.Progress, keep int) (RebuildResult, error) {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if c.Unsealed() {
		return RebuildResult{}, errors.New("rebuild: the node is unsealed; rebuild works on a stopped node's log")
	}
	s := c.sealView.State()
	if !s.Initialized {
		return RebuildResult{}, ErrNotInitialized
	}
	rootKey, kr, err := c.offlineKeyring(ctx, s, shares)
	if err != nil {
		return RebuildResult{}, err
	}
	defer clear(rootKey)
	js := c.log.JetStream()
	store, err := replay.OpenStore(ctx, js, c.opts.Replicas)
	if err != nil {
		return RebuildResult{}, err
	}
	st := c.newUnsealed(rootKey, kr)
	st.snaps = &snapshots{store: store}
	base, err := replay.LoadBase(ctx, js, store, s, kr, st.runner.Views(), replay.BaseOptions{SkipAuto: true, Logger: c.logger})
	if err != nil {
		return RebuildResult{}, err
	}
	if base != nil && base.Restored && base.Snapshot.DataKeys != nil {
		// Its data keys are installed by the first unseal after the restore; a snapshot taken
		// now would let unseal skip that.
		return RebuildResult{}, errors.New("rebuild: the node has not been unsealed since its snapshot was restored; unseal it once (that installs the snapshot's data keys), stop it, then rebuild")
	}
	res := RebuildResult{From: "genesis"}
	var startSeq uint64
	var startHash [32]byte
	if base != nil {
		res.From, startSeq, startHash = base.Name, base.Seq, base.Hash
	}
	to, err := c.log.LastSeq(ctx)
	if err != nil {
		return RebuildResult{}, err
	}
	stats, err := replay.Replay(ctx, c.log, kr, st.runner.Views(), startSeq, startHash, to, prog)
	if err != nil {
		return RebuildResult{}, err
	}
	res.Seq, res.Events, res.Duration, res.EventsPerSec = to, stats.Events, stats.Duration, stats.Rate()
	hash, err := replay.BatchHash(ctx, js, to)
	if err != nil {
		return RebuildResult{}, err
	}
	// The views were fed by the replay's own runner; put theirs at the same place to cut them.
	st.runner.StartAt(to, hash)
	if res.Snapshot, _, err = c.storeSnapshot(ctx, st, store); err != nil {
		return RebuildResult{}, err
	}
	keepRestore := ""
	if s.Restore != nil {
		keepRestore = s.Restore.Object
	}
	if keep <= 0 {
		keep = defaultSnapshotRetain
	}
	res.Pruned, err = store.Prune(ctx, keep, keepRestore)
	return res, err
}

// PrefetchCheckpoint starts reading this node's newest checkpoint copy under dataDir (the
// embedded server's data dir) up to the sections unseal restores after it answers, for
// Options.Prefetch: a server calls it before it opens its log, whose start (JetStream
// rebuilding its streams after a crash) leaves a core free meanwhile. nil when there is no
// copy. The bytes stay sealed; an unseal that does not come within prefetchKeep finds them
// released and reads the copy itself.
func PrefetchCheckpoint(dataDir string) *replay.Prefetch {
	if dataDir == "" {
		return nil
	}
	var late []string
	for _, v := range (&unsealed{fingerprints: fpview.New(), history: historyview.New()}).lateViews() {
		late = append(late, v.Name())
	}
	return replay.PrefetchLocal(filepath.Join(dataDir, localCheckpointDir), func(view string) bool {
		return slices.Contains(late, view)
	}, prefetchKeep)
}
