package projections

// Add appends views to a runner that has not started yet (before CatchUp, CatchUpTo or Run).
// It lets a set of views be built apart from the rest and joined to the same runner, so they
// are folded, snapshotted, digested and replayed like every other.
func (r *Runner) Add(views ...View) {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.views = append(r.views, views...)
}
