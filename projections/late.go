package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/ledger-secrets/ledger/ledger"
)

// Deferred views let a node answer before its slowest views are loaded. At unseal, the views a
// request path needs are restored from the checkpoint and caught up with the log first; the
// ones only a few endpoints read (the fingerprint and history indexes) are restored afterwards,
// in the background. Meanwhile the runner keeps, in log order, every record meant for a
// deferred view instead of applying it; Ready folds them in, between two batches, once the
// view holds its checkpoint state. A deferred view is never read, snapshotted or digested
// before that: Hold waits for it, and readers wait with WaitReady.

// lateRec is one record kept for a deferred view, with what Prepare returned for it.
type lateRec struct {
	rec      ledger.Record
	prep     any
	prepared bool // prep came from Prepare (ApplyPrepared); otherwise Apply
}

// lateView is one deferred view's kept records.
type lateView struct{ recs []lateRec }

// Defer holds views back from the runner: records for them are kept, in order, until Ready.
// Call before CatchUp or Run, with the views in the state the kept records follow on from.
func (r *Runner) Defer(views ...View) {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range views {
		for i, v := range r.views {
			if v != d {
				continue
			}
			if r.late == nil {
				r.late = make([]*lateView, len(r.views))
				r.lateDone = make(chan struct{})
			}
			if r.late[i] == nil {
				r.late[i] = &lateView{}
				r.lateN++
				if r.lateAt == nil {
					r.lateAt = map[string]uint64{}
				}
				r.lateAt[v.Name()] = r.applied
			}
		}
	}
}

// keep records rec for view i when it is deferred, and reports whether it did. Called with
// applyMu held.
func (r *Runner) keep(i int, rec ledger.Record, prep any, prepared bool) bool {
	if i >= len(r.late) || r.late[i] == nil {
		return false
	}
	r.late[i].recs = append(r.late[i].recs, lateRec{rec: rec, prep: prep, prepared: prepared})
	return true
}

// Ready ends v's deferral: v now holds the state it was deferred at (restoreErr is why it
// could not be given it). Between two batches, the records kept for it are folded in and it
// is applied to like every other view from then on. On an error (restoreErr, or a kept
// record v refuses) the runner serves nothing from the deferred views: WaitReady and Hold
// report the error, and the caller should seal.
func (r *Runner) Ready(v View, restoreErr error) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	if err := r.lateFailed(); err != nil {
		return err
	}
	i := -1
	for j, w := range r.views {
		if w == v && r.late != nil && r.late[j] != nil {
			i = j
		}
	}
	if i < 0 {
		return fmt.Errorf("view %s is not deferred", v.Name())
	}
	kept := r.late[i].recs
	r.late[i] = nil
	err := restoreErr
	if err != nil {
		err = fmt.Errorf("restore view %s: %w", v.Name(), err)
	}
	for k := 0; err == nil && k < len(kept); k++ {
		lr := kept[k]
		if pv, ok := v.(Preparer); ok && lr.prepared {
			err = pv.ApplyPrepared(lr.rec, lr.prep)
		} else {
			err = v.Apply(lr.rec)
		}
		if err != nil {
			err = fmt.Errorf("view %s at %s (%s): %w", v.Name(), lr.rec.Pos, lr.rec.Type, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.lateAt, v.Name())
	}
	if err != nil && r.lateErr == nil {
		r.lateErr = err
	}
	r.lateN--
	if r.lateErr != nil {
		r.late, r.lateN = nil, 0 // nothing more is kept for views that will never be served
	}
	if r.lateN == 0 {
		r.late = nil
		close(r.lateDone)
	}
	return err
}

func (r *Runner) lateFailed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lateErr != nil {
		return fmt.Errorf("%w: %w", ErrDeferred, r.lateErr)
	}
	return nil
}

// ErrDeferred wraps why deferred views could not be loaded.
var ErrDeferred = errors.New("projections: a deferred view could not be loaded")

// WaitReady blocks until no view is deferred (nil), a deferred view failed (its error), or ctx
// ends.
func (r *Runner) WaitReady(ctx context.Context) error {
	r.mu.Lock()
	done := r.lateDone
	r.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.lateFailed()
}

// AppliedBy is the last sequence applied to the view named name: Applied, or for a deferred
// view the position it was deferred at.
func (r *Runner) AppliedBy(name string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.lateAt[name]; ok {
		return at
	}
	return r.applied
}

// Deferred reports whether some view is still waiting for Ready.
func (r *Runner) Deferred() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lateN > 0
}
