package ledger

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

type appendResult struct {
	positions []Position
	err       error
}

type appendReq struct {
	keyring *Keyring
	events  []StoredEvent
	seal    bool
	size    int
	done    chan appendResult
	term    uint64 // the leader epoch the events were decided in (0: not said)
	// bufs hold the events' encoded bytes (a Stream's pooled buffers), to be reused once the
	// batch carrying them has settled.
	bufs []*[]byte
}

// batcher is the group-commit writer shared by Log and Stream: one goroutine that packs the
// appends queued while the previous batch was being stored into one message, so batch size
// grows with load and appenders share one fsync. What "store" means — fenced or re-chained —
// belongs to its owner.
type batcher struct {
	maxMsg int
	// unknown prefixes the error of an append whose ctx ended after it was queued.
	unknown string
	// store writes one batch of count events and returns its sequence. It runs on the writer
	// goroutine only, so it may own the chain position without a lock.
	store func(batch []*appendReq, count int) (uint64, error)
	// launch, when set, replaces store with a pipeline: it starts storing a batch and returns a
	// wait for its sequence. Waits run on a second goroutine in launch order, so up to
	// pipelineDepth batches are in flight while appenders are still answered in order.
	launch  func(batch []*appendReq, count int) (wait func() (uint64, error))
	flights chan flight
	// gather, when set on a pipelined batcher, is how long the writer may wait for more
	// appends before launching while an earlier batch is still unacknowledged (see run).
	gather  time.Duration
	pending atomic.Int32 // launched batches not yet answered

	// observe, when set, hears each stored batch: its events and how long the store took.
	observe atomic.Pointer[func(events int, d time.Duration)]

	reqs     chan *appendReq
	quit     chan struct{}
	done     chan struct{}
	closeMu  sync.Mutex
	closed   bool
	inflight sync.WaitGroup // appends between admission and reply
}

func newBatcher(maxMsg int, unknown string, store func([]*appendReq, int) (uint64, error)) *batcher {
	return &batcher{maxMsg: maxMsg, unknown: unknown, store: store,
		reqs: make(chan *appendReq, 1024), quit: make(chan struct{}), done: make(chan struct{})}
}

// pipelineDepth bounds the batches a pipelined batcher has launched and not yet answered.
const pipelineDepth = 8

// flight is a launched batch waiting for its outcome.
type flight struct {
	batch []*appendReq
	count int
	wait  func() (uint64, error)
	start time.Time
}

// newPipelinedBatcher is a batcher whose batches are launched by launch and answered, in
// launch order, by a second goroutine: the next batch goes out while earlier ones wait for
// their acknowledgement.
func newPipelinedBatcher(maxMsg int, unknown string, launch func([]*appendReq, int) func() (uint64, error)) *batcher {
	b := newBatcher(maxMsg, unknown, nil)
	b.launch = launch
	b.flights = make(chan flight, pipelineDepth-1)
	return b
}

// complete answers launched batches in launch order until the writer stops launching.
func (b *batcher) complete(finished chan<- struct{}) {
	defer close(finished)
	for f := range b.flights {
		seq, err := f.wait()
		b.answer(f.batch, seq, err)
		b.pending.Add(-1)
		if obs := b.observe.Load(); obs != nil {
			(*obs)(f.count, time.Since(f.start))
		}
	}
}

// submit queues r and waits for its batch. Errors: ErrClosed, the store's error, or ctx's error —
// wrapped with b.unknown once r is queued, since the batch may still be stored.
func (b *batcher) submit(ctx context.Context, r *appendReq) ([]Position, error) {
	b.closeMu.Lock()
	if b.closed {
		b.closeMu.Unlock()
		return nil, ErrClosed
	}
	b.inflight.Add(1)
	b.closeMu.Unlock()
	defer b.inflight.Done()
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.positions, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", b.unknown, ctx.Err())
	}
}

// close stops admitting appends, lets the writer commit what it already holds, and waits for it
// to stop. It reports false when the batcher was already closed.
func (b *batcher) close() bool {
	b.closeMu.Lock()
	if b.closed {
		b.closeMu.Unlock()
		return false
	}
	b.closed = true
	b.closeMu.Unlock()
	b.inflight.Wait()
	close(b.quit)
	<-b.done
	return true
}

// run is the one goroutine that stores. It takes whatever appends queued up while the
// previous batch was being stored, so batch size grows with load and fsyncs are shared.
//
// Appenders whose batch was just acknowledged need a moment to submit their next append; if
// the writer flushed at once it would catch only the few that were already queued, and batch
// sizes would alternate between large and tiny. So it lingers — like PostgreSQL's
// commit_delay — until about as many appends as last time have arrived, but never longer than
// a quarter of the last store's duration (capped at 500µs): at low load it never waits.
func (b *batcher) run() {
	defer close(b.done)
	if b.launch != nil {
		finished := make(chan struct{})
		go b.complete(finished)
		defer func() { close(b.flights); <-finished }()
	}
	var carry *appendReq
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	lastReqs, lastStore := 0, time.Duration(0)
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-b.reqs:
			case <-b.quit:
				return
			}
		}
		batch := []*appendReq{first}
		size, count := first.size, len(first.events)
		wait := min(lastStore/4, 500*time.Microsecond)
		if b.gather > 0 && b.pending.Load() > 0 {
			// Pipelined, under load: a batch is already on its way, so this one can wait a
			// little for company. Each JetStream message costs the same whether it carries one
			// record or ten, and with small batches that cost was a third of a read's CPU. At
			// low load nothing is in flight and nothing waits.
			wait = b.gather
		}
		lingering := false
	collect:
		for size < targetBatch && count < maxBatchEvents {
			var r *appendReq
			select {
			case r = <-b.reqs:
			default:
				if len(batch) >= lastReqs || wait <= 0 {
					break collect
				}
				if !lingering {
					linger.Reset(wait)
					lingering = true
				}
				select {
				case r = <-b.reqs:
				case <-linger.C:
					lingering = false
					break collect
				}
			}
			if size+r.size > b.maxMsg {
				carry = r
				break collect
			}
			batch = append(batch, r)
			size += r.size
			count += len(r.events)
		}
		if lingering && !linger.Stop() {
			<-linger.C
		}
		t0 := time.Now()
		if b.launch != nil {
			b.pending.Add(1)
			b.flights <- flight{batch: batch, count: count, wait: b.launch(batch, count), start: t0}
			if b.gather > 0 {
				// Gather about as many as this batch's appends, and more, next time.
				lastReqs = 4 * len(batch)
			}
			continue
		}
		b.commit(batch, count)
		lastReqs, lastStore = len(batch), time.Since(t0)
		if f := b.observe.Load(); f != nil {
			(*f)(count, lastStore)
		}
	}
}

// commit stores one batch and answers each of its appends: all with the store's error, or each
// with the positions of its own events in the stored message.
func (b *batcher) commit(batch []*appendReq, count int) {
	seq, err := b.store(batch, count)
	b.answer(batch, seq, err)
}

// answer replies to each append of a batch: all with err, or each with the positions of its
// own events in the message stored at seq.
func (b *batcher) answer(batch []*appendReq, seq uint64, err error) {
	if err != nil {
		for _, r := range batch {
			r.done <- appendResult{err: err}
		}
		return
	}
	idx := uint32(0)
	for _, r := range batch {
		pos := make([]Position, len(r.events))
		for i := range pos {
			pos[i] = Position{Seq: seq, Index: idx}
			idx++
		}
		r.done <- appendResult{positions: pos}
	}
}

// batchEvents concatenates the batch's events in order.
func batchEvents(batch []*appendReq, count int) []StoredEvent {
	evs := make([]StoredEvent, 0, count)
	for _, r := range batch {
		evs = append(evs, r.events...)
	}
	return evs
}
