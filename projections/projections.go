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

// ErrStopped: the runner stopped (sealed, closed, or after an error) before reaching the
// awaited sequence.
var ErrStopped = errors.New("projections: runner stopped")

// Runner follows the log from a position and applies every event to its views.
type Runner struct {
	log      *ledger.Log
	keyring  atomic.Pointer[ledger.Keyring] // nil for a seal-only runner
	sealOnly bool
	views    []View

	mu       sync.Mutex
	applied  uint64 // last batch sequence applied to every view
	prevHash [32]byte
	chained  bool // prevHash is known, so the next batch's link can be checked
	changed  chan struct{}
	err      error
	stopped  bool
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
	return r.log.ReadRange(ctx, r.Applied()+1, 0, r.sealOnly, r.applyBatch)
}

// Run follows the log until ctx ends (nil) or a batch cannot be applied (the error, which also
// wakes every waiter). Run may be called after CatchUp.
func (r *Runner) Run(ctx context.Context) error {
	err := r.log.Follow(ctx, r.Applied()+1, r.sealOnly, r.applyBatch)
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
		for _, v := range r.views {
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
