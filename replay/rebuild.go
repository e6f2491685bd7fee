package replay

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

// Progress of a replay, safe to read while it runs.
type Progress struct {
	from, to, applied, events atomic.Uint64
	started                   atomic.Int64 // unix nanos
}

// ProgressInfo is a reading of Progress.
type ProgressInfo struct {
	From    uint64        `json:"from"`    // first sequence to apply
	To      uint64        `json:"to"`      // last sequence to apply
	Applied uint64        `json:"applied"` // last sequence applied
	Events  uint64        `json:"events"`
	Elapsed time.Duration `json:"elapsed"`
}

// Read returns the current progress.
func (p *Progress) Read() ProgressInfo {
	in := ProgressInfo{From: p.from.Load(), To: p.to.Load(), Applied: p.applied.Load(), Events: p.events.Load()}
	if s := p.started.Load(); s != 0 {
		in.Elapsed = time.Since(time.Unix(0, s))
	}
	return in
}

// Stats is what a replay did.
type Stats struct {
	From     uint64        `json:"from"`
	To       uint64        `json:"to"`
	Events   uint64        `json:"events"`
	Duration time.Duration `json:"duration"`
}

// Rate is events per second.
func (s Stats) Rate() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Events) / s.Duration.Seconds()
}

// counter is a view that counts what the runner applies, for progress and rates.
type counter struct{ p *Progress }

func (c counter) Name() string { return "replay.counter" }
func (c counter) Apply(rec ledger.Record) error {
	c.p.events.Add(1)
	c.p.applied.Store(rec.Pos.Seq)
	return nil
}
func (c counter) Digest() [32]byte          { return [32]byte{} }
func (c counter) Snapshot() ([]byte, error) { return nil, nil }
func (c counter) Restore([]byte) error      { return nil }

// Replay applies the log's batches after (startSeq, startHash) up to and including to, to
// views, opening payloads with kr. startSeq 0 is genesis. The batch chain is checked all the
// way, so a missing or altered batch stops the replay with ledger.ErrCorrupt. p may be nil.
func Replay(ctx context.Context, log *ledger.Log, kr *ledger.Keyring, views []projections.View, startSeq uint64, startHash [32]byte, to uint64, p *Progress) (Stats, error) {
	if p == nil {
		p = &Progress{}
	}
	p.from.Store(startSeq + 1)
	p.to.Store(to)
	p.applied.Store(startSeq)
	started := time.Now()
	p.started.Store(started.UnixNano())
	r := projections.NewRunner(log, kr, append(append([]projections.View(nil), views...), counter{p})...)
	if startSeq > 0 {
		r.StartAt(startSeq, startHash)
	}
	err := r.CatchUpTo(ctx, to)
	st := Stats{From: startSeq + 1, To: to, Events: p.events.Load(), Duration: time.Since(started)}
	if err != nil {
		return st, fmt.Errorf("replay %d..%d: %w", startSeq+1, to, err)
	}
	if got := r.Applied(); got < to {
		return st, fmt.Errorf("replay %d..%d: the log ended at %d", startSeq+1, to, got)
	}
	p.applied.Store(to)
	return st, nil
}
