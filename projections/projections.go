// Package projections owns the read side: the Runner that folds the event log, in order, into
// in-memory views, and the contract every view follows. One sub-package per view.
//
// The contract: Apply is deterministic and does no I/O, so replaying the same events always
// builds the same state, on any node, at any time; Digest summarises that state so two builds
// can be compared; Snapshot and Restore carry it across restarts.
package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
)

// View is a projection of the log.
type View interface {
	// Name is stable: it keys the view inside snapshots.
	Name() string
	// Apply folds one event in. Events arrive in log order, each position once. Unknown event
	// types are ignored. An error means the log holds something the view cannot accept; the
	// runner stops rather than serve a view that skipped history.
	Apply(rec ledger.Record) error
	// Digest is a hash of the view's whole state, equal for equal states.
	Digest() [32]byte
	// Snapshot serialises the state; Restore replaces the state with a snapshot's.
	Snapshot() ([]byte, error)
	Restore(data []byte) error
}

// Preparer is an optional View extension that lets replay use a second core. Prepare does
// the part of applying a record that depends on the record alone — decoding its payload — and
// may run concurrently with Apply of earlier records; ApplyPrepared then folds the record in,
// in log order, given what Prepare returned (nil for records Prepare leaves to Apply). Both
// together must do exactly what Apply does.
type Preparer interface {
	Prepare(rec ledger.Record) (any, error)
	ApplyPrepared(rec ledger.Record, prepared any) error
}

// ErrStopped: the runner stopped (sealed, closed, or after an error) before reaching the
// awaited sequence.
var ErrStopped = errors.New("projections: runner stopped")

// Runner follows the log from a position and applies every event to its views.
type Runner struct {
	log      *ledger.Log
	keyring  atomic.Pointer[ledger.Keyring] // nil for a seal-only runner
	sealOnly bool
	views    []View

	// applyMu is held for the whole of one batch's application, so Hold sees every view at
	// the same position. Lock order: applyMu, then mu.
	applyMu  sync.Mutex
	mu       sync.Mutex
	applied  uint64 // last batch sequence applied to every view
	prevHash [32]byte
	chained  bool // prevHash is known, so the next batch's link can be checked
	changed  chan struct{}
	err      error
	stopped  bool

	// Deferred views (late.go): late is indexed like views, nil when none is deferred; it is
	// read and changed with applyMu held. lateN, lateDone and lateErr are guarded by mu.
	late     []*lateView
	lateN    int
	lateDone chan struct{} // closed when the last deferred view is ready, or one failed
	lateErr  error
	lateAt   map[string]uint64 // deferred view → the sequence it was deferred at

	// OnFollowRetry, when set before Run, hears each lost feed Run follows again after.
	OnFollowRetry func(error)
}

// NewRunner builds a runner over views. With a nil keyring it is seal-only: it reads only
// seal batches and applies only raw (seal-state) events, which needs no keys.
func NewRunner(log *ledger.Log, keyring *ledger.Keyring, views ...View) *Runner {
	r := &Runner{log: log, sealOnly: keyring == nil, views: views, changed: make(chan struct{})}
	r.keyring.Store(keyring)
	return r
}

// SetKeyring installs a rotated keyring. Install it here before the log seals anything under
// its new term, so the runner never meets a term it cannot open.
func (r *Runner) SetKeyring(k *ledger.Keyring) { r.keyring.Store(k) }

// StartAt positions a runner whose views were restored from a snapshot taken at seq, whose
// batch hashed to hash. Call before Run.
func (r *Runner) StartAt(seq uint64, hash [32]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied, r.prevHash, r.chained = seq, hash, true
}

// Views returns the runner's views.
func (r *Runner) Views() []View { return r.views }

// Applied is the last sequence applied to every view.
func (r *Runner) Applied() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

// Head is the applied sequence and the hash of the batch at it.
func (r *Runner) Head() (uint64, [32]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied, r.prevHash
}

// Err reports why the runner stopped, if it stopped on an error.
func (r *Runner) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// CatchUp applies everything in the log up to its current end, then returns.
func (r *Runner) CatchUp(ctx context.Context) error {
	return r.pipelined(ctx, 0)
}

// CatchUpTo applies the batches up to sequence to (not beyond), then returns. Replay tools use
// it to rebuild views at exactly the position of other views they compare with.
func (r *Runner) CatchUpTo(ctx context.Context, to uint64) error {
	if to <= r.Applied() {
		return nil
	}
	return r.pipelined(ctx, to)
}

// prepared is a batch whose events were opened (and prepared, for Preparer views) ahead of
// being applied. Slices are indexed like the batch's events.
type prepared struct {
	b    ledger.Batch
	recs []ledger.Record
	use  []bool  // false: skipped (a seal-only runner skips sealed events)
	prep [][]any // [event][view], nil unless a view is a Preparer that returned something
	err  error   // opening or preparing event `at` failed
	at   int
}

// pipelined reads batches up to `to` (0: the current end) and applies them in two stages: the
// reading goroutine opens each event (decrypts) and runs Prepare, while another applies the
// batches before it, in order. Replay is bound by one core otherwise. Live following (Run)
// applies batch by batch, for latency.
func (r *Runner) pipelined(ctx context.Context, to uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan *prepared, 8)
	var applyErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range ch {
			if applyErr != nil {
				continue
			}
			if applyErr = r.applyPrepared(p); applyErr != nil {
				cancel()
			}
		}
	}()
	readErr := r.log.ReadRange(ctx, r.Applied()+1, to, r.sealOnly, func(b ledger.Batch) error {
		p := r.prepare(b)
		select {
		case ch <- p:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(ch)
	<-done
	if applyErr != nil {
		return applyErr
	}
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		return readErr
	}
	return ctx.Err()
}

// prepareParallel is the batch size from which prepare splits a batch over two goroutines:
// decoding payloads costs more than applying them, so on two cores one preparing goroutine
// would hold the applying one back.
const prepareParallel = 64

func (r *Runner) prepare(b ledger.Batch) *prepared {
	n := len(b.Events)
	p := &prepared{b: b, recs: make([]ledger.Record, n), use: make([]bool, n), prep: make([][]any, n), at: -1}
	kr := r.keyring.Load()
	work := func(lo, hi int) (int, error) {
		for i := lo; i < hi; i++ {
			se := b.Events[i]
			if r.sealOnly && se.Term() != 0 {
				continue
			}
			rec, err := se.Open(kr, ledger.Position{Seq: b.Seq, Index: uint32(i)})
			if err != nil {
				return i, err
			}
			for vi, v := range r.views {
				pv, ok := v.(Preparer)
				if !ok {
					continue
				}
				x, err := pv.Prepare(rec)
				if err != nil {
					return i, fmt.Errorf("view %s at %s (%s): %w", v.Name(), rec.Pos, rec.Type, err)
				}
				if x != nil {
					if p.prep[i] == nil {
						p.prep[i] = make([]any, len(r.views))
					}
					p.prep[i][vi] = x
				}
			}
			p.recs[i], p.use[i] = rec, true
		}
		return -1, nil
	}
	if n < prepareParallel {
		p.at, p.err = work(0, n)
		return p
	}
	mid := n / 2
	var at2 int
	var err2 error
	done := make(chan struct{})
	go func() {
		defer close(done)
		at2, err2 = work(mid, n)
	}()
	p.at, p.err = work(0, mid)
	<-done
	if p.err == nil && err2 != nil {
		p.at, p.err = at2, err2
	}
	return p
}

// applyPrepared is applyBatch for a batch the reading stage opened and prepared.
func (r *Runner) applyPrepared(p *prepared) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	b := p.b
	r.mu.Lock()
	applied, prev, chained := r.applied, r.prevHash, r.chained
	r.mu.Unlock()
	if b.Seq <= applied {
		return nil
	}
	if !r.sealOnly && (chained || applied == 0) && b.Prev != prev {
		return fmt.Errorf("batch at seq %d does not chain to seq %d (missing or altered message): %w", b.Seq, applied, ledger.ErrCorrupt)
	}
	for i, rec := range p.recs {
		if p.err != nil && i == p.at {
			return p.err
		}
		if !p.use[i] {
			continue
		}
		for vi, v := range r.views {
			var err error
			if pv, ok := v.(Preparer); ok {
				var x any
				if p.prep[i] != nil {
					x = p.prep[i][vi]
				}
				if r.keep(vi, rec, x, true) {
					continue
				}
				err = pv.ApplyPrepared(rec, x)
			} else if r.keep(vi, rec, nil, false) {
				continue
			} else {
				err = v.Apply(rec)
			}
			if err != nil {
				return fmt.Errorf("view %s at %s (%s): %w", v.Name(), rec.Pos, rec.Type, err)
			}
		}
	}
	if p.err != nil {
		return p.err
	}
	r.mu.Lock()
	r.applied, r.prevHash, r.chained = b.Seq, b.Hash, true
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return nil
}

// followLostFor is how long Run keeps following again after a lost feed with no batch applied.
const followLostFor = 2 * time.Minute

// Hold runs fn between two batches: while it runs no view changes, and seq and hash are the
// position every view has applied (once no view is deferred). Snapshots use it to cut all views at one sequence. fn
// should be quick (serialise, don't do I/O): batches wait for it.
func (r *Runner) Hold(fn func(seq uint64, hash [32]byte) error) error {
	// Every view is cut whole: a deferred one first gets its state (late.go).
	if err := r.WaitReady(context.Background()); err != nil {
		return err
	}
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	seq, hash := r.Head()
	return fn(seq, hash)
}

// Run follows the log until ctx ends (nil) or a batch cannot be applied (the error, which also
// wakes every waiter). Run may be called after CatchUp.
//
// A lost feed (ledger.ErrFollowLost: on a cluster, the log stream's leader moving under a
// loaded machine) is followed again from the next sequence, with backoff, for as long as
// followLostFor passes without a batch applied; only then does Run give up.
func (r *Runner) Run(ctx context.Context) error {
	var err error
	backoff := 100 * time.Millisecond
	lastProgress, progressAt := r.Applied(), time.Now()
	for {
		err = r.log.Follow(ctx, r.Applied()+1, r.sealOnly, r.applyBatch)
		if err == nil || ctx.Err() != nil || !errors.Is(err, ledger.ErrFollowLost) {
			break
		}
		if a := r.Applied(); a != lastProgress {
			lastProgress, progressAt, backoff = a, time.Now(), 100*time.Millisecond
		}
		if time.Since(progressAt) > followLostFor {
			break
		}
		if r.OnFollowRetry != nil {
			r.OnFollowRetry(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	if ctx.Err() != nil {
		err = nil
	}
	r.mu.Lock()
	r.stopped = true
	if err != nil && r.err == nil {
		r.err = err
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return err
}

func (r *Runner) applyBatch(b ledger.Batch) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	applied, prev, chained := r.applied, r.prevHash, r.chained
	r.mu.Unlock()
	if b.Seq <= applied {
		return nil // delivered again after a consumer reset; already folded in
	}
	if !r.sealOnly {
		// A gap or an edited predecessor breaks the chain: refuse to build views on it.
		if (chained || applied == 0) && b.Prev != prev {
			return fmt.Errorf("batch at seq %d does not chain to seq %d (missing or altered message): %w", b.Seq, applied, ledger.ErrCorrupt)
		}
	}
	kr := r.keyring.Load()
	for i, se := range b.Events {
		if r.sealOnly && se.Term() != 0 {
			continue
		}
		rec, err := se.Open(kr, ledger.Position{Seq: b.Seq, Index: uint32(i)})
		if err != nil {
			return err
		}
		for vi, v := range r.views {
			if r.keep(vi, rec, nil, false) {
				continue
			}
			if err := v.Apply(rec); err != nil {
				return fmt.Errorf("view %s at %s (%s): %w", v.Name(), rec.Pos, rec.Type, err)
			}
		}
	}
	r.mu.Lock()
	r.applied, r.prevHash, r.chained = b.Seq, b.Hash, true
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return nil
}

// WaitFor blocks until every view has applied the batch at seq (read-your-writes), the runner
// stopped (ErrStopped, or its error) or ctx ended.
func (r *Runner) WaitFor(ctx context.Context, seq uint64) error {
	for {
		r.mu.Lock()
		if r.applied >= seq {
			r.mu.Unlock()
			return nil
		}
		if r.err != nil {
			err := r.err
			r.mu.Unlock()
			return err
		}
		if r.stopped {
			r.mu.Unlock()
			return ErrStopped
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
