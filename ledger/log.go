package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// StreamName is the JetStream stream that holds the log.
	StreamName = "LEDGER"
	// SubjectData carries batches of ordinary events; SubjectSeal carries batches that hold at
	// least one seal-state event, so a sealed node can read its seal state without the keys.
	SubjectData = "ledger.batch.data"
	SubjectSeal = "ledger.batch.seal"

	maxMessageBytes = 8 << 20 // embedded server's max_payload
	targetBatch     = 1 << 20 // flush once a batch reaches this size
	maxBatchEvents  = 4096
	publishTimeout  = 10 * time.Second
	commitDeadline  = 60 * time.Second
	// dedupeWindow is how long JetStream remembers a message id (Nats-Msg-Id) on the data-key
	// streams, whose writes are not fenced: a retry after a lost ack must be recognised by its
	// id, or a second copy of the wrapped keys would be stored (and outlive a shred). Every
	// publish retries under one id for at most commitDeadline plus one attempt, so a window a
	// little longer catches every retry of a stored message. No longer than that: a restarted
	// server reloads each message inside the window to rebuild it (with 2 minutes, 0.26 s of
	// CPU in one profile of a restart a minute after 100k writes).
	dedupeWindow = commitDeadline + publishTimeout + 20*time.Second
	// fencedDedupe is the window of the log and of the audit streams: JetStream's least.
	// Their every publish is fenced on the stream's last sequence, so a retry of a stored batch
	// is refused by the fence and then found by its id at the one sequence the fence let it
	// take (isStoredAt, Stream.storedPastFence, Stream.recover), however long the retries took
	// and whatever was appended after it; a window settles that only while it lasts. A wide
	// one cost every restart a reload of each message inside it: with 90 s, the whole log of
	// a benchmark killed a minute after its writes, 0.12–0.15 s of CPU before JetStream was up.
	fencedDedupe = 100 * time.Millisecond
)

// Options configure Open.
type Options struct {
	// Dir is the data directory of the embedded JetStream server. Ignored when URL is set.
	Dir string
	// Listen makes the embedded server also accept NATS clients on host:port (tools, debugging).
	// Empty: it listens nowhere and Ledger connects in-process.
	Listen string
	// URL of an external NATS cluster with JetStream. Its servers must run with
	// sync_interval: always (single node) or the stream must be replicated.
	URL string
	// NATSOptions are extra connection options (credentials, TLS) for URL.
	NATSOptions []nats.Option
	// Replicas of the stream (default 1). Above 1 needs Cluster or a clustered URL.
	Replicas int
	Logger   *slog.Logger
	// NodeName names this node: its embedded NATS server's name in the cluster.
	NodeName string
	// Cluster makes the embedded server join a JetStream cluster (nil: standalone).
	Cluster *ClusterOptions
	// FormTimeout bounds the wait for the cluster to provide Replicas peers at Open
	// (default DefaultFormTimeout).
	FormTimeout time.Duration
}

// Log is the append-only event log. All appends on a node go through one writer that packs
// concurrent appends into one JetStream message per flush (group commit), fenced by
// Nats-Expected-Last-Sequence so no other writer can interleave unseen.
type Log struct {
	ns     *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	log    *slog.Logger

	keyring atomic.Pointer[Keyring]
	maxMsg  int

	w *batcher // the group-commit writer; store runs on it

	// writer state: the writer goroutine's, and BeginTerm's under chainMu
	chainMu  sync.Mutex
	lastSeq  uint64
	prevHash [32]byte
	acked    atomic.Uint64 // last sequence this writer committed
	// floor is the stream's last sequence when the writer last took up the chain from the
	// stream (resync): every batch up to it may be another writer's, so a decision made on
	// views that have not applied it may be stale (Floor).
	floor atomic.Uint64

	replicas int
	// dir is the embedded server's data directory ("" on an external NATS): LocalDir.
	dir string
	// gate, when set (by an Elector), is asked before every publish: the leader epoch to stamp
	// on the batch, or ErrNotActive.
	gate atomic.Pointer[func() (uint64, error)]
	// held, when set (by an Elector), is asked after a batch is stored: whether the lease of
	// epoch was certainly still this node's. Unlike gate it stays true while a resigning node
	// lets its batches in flight finish (the lease key is deleted only after them).
	held       atomic.Pointer[func(epoch uint64) bool]
	wroteEpoch uint64 // writer goroutine: the epoch of its last batch
	// stores counts the batches whose store began, stored those whose store ended: a batch is
	// being stored while they differ (waitIdle, Settled).
	stores, stored atomic.Uint64
}

// Settled waits until every batch whose store had begun when it was called has ended — stored
// or failed — and returns the last sequence this writer committed: what a read must see once
// other nodes may have read it from the stream (a batch is there before its writer hears so).
// It returns at once when nothing is being stored.
func (l *Log) Settled(ctx context.Context) (uint64, error) {
	if want := l.stores.Load(); l.stored.Load() < want {
		wait := 50 * time.Microsecond
		for l.stored.Load() < want {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return 0, ctx.Err()
			case <-t.C:
			}
			wait = min(2*wait, 5*time.Millisecond)
		}
	}
	return l.acked.Load(), nil
}

// waitIdle waits until no batch is being stored, or until deadline.
func (l *Log) waitIdle(deadline time.Time) {
	for l.stored.Load() < l.stores.Load() && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
}

// leaseHeld reports whether the lease of epoch is still certainly this node's (true without
// an elector).
func (l *Log) leaseHeld(epoch uint64) bool {
	if h := l.held.Load(); h != nil {
		return (*h)(epoch)
	}
	if g := l.gate.Load(); g != nil {
		cur, err := (*g)()
		return err == nil && cur == epoch
	}
	return true
}

// LocalDir is the data directory of the embedded JetStream server, where this node may keep
// files of its own beside the streams; "" when the log is on an external NATS.
func (l *Log) LocalDir() string { return l.dir }

// Open starts (or connects to) JetStream, ensures the stream exists and starts the writer.
func Open(ctx context.Context, o Options) (*Log, error) {
	l := &Log{log: o.Logger}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if o.URL != "" {
		l.nc, err = nats.Connect(o.URL, append([]nats.Option{nats.Name("ledger"), nats.MaxReconnects(-1)}, o.NATSOptions...)...)
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", o.URL, err)
		}
	} else {
		if o.Dir == "" {
			return nil, errors.New("ledger: a data dir or a NATS url is required")
		}
		if err := checkFormat(o.Dir); err != nil {
			return nil, err
		}
		if err := checkClusterStamp(o.Dir, o.Cluster); err != nil {
			return nil, err
		}
		l.dir = o.Dir
		var token string
		if l.ns, token, err = startEmbedded(o); err != nil {
			return nil, err
		}
		copts := []nats.Option{nats.InProcessServer(l.ns), nats.Name("ledger")}
		if token != "" {
			copts = append(copts, nats.Token(token))
		}
		l.nc, err = nats.Connect("", copts...)
		if err != nil {
			l.ns.Shutdown()
			return nil, fmt.Errorf("connect in-process: %w", err)
		}
	}
	l.maxMsg = int(l.nc.MaxPayload()) - 4096
	if l.js, err = jetstream.New(l.nc); err != nil {
		l.shutdownConn()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	replicas := max(o.Replicas, 1)
	l.replicas = replicas
	l.stream, err = l.createStream(ctx, o, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Ledger event log (encrypted batches)",
		Subjects:    []string{"ledger.batch.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    replicas,
		Duplicates:  fencedDedupe,
		DenyDelete:  true,
		DenyPurge:   true,
	})
	if err != nil {
		l.shutdownConn()
		return nil, err
	}
	// A replicated stream that has just been placed may time out its first answers while its
	// replicas settle: retry within the formation timeout.
	for deadline := time.Now().Add(max(o.FormTimeout, DefaultFormTimeout)); ; {
		err := l.resync(ctx)
		if err == nil {
			break
		}
		if replicas == 1 || time.Now().After(deadline) || ctx.Err() != nil {
			l.shutdownConn()
			return nil, err
		}
		time.Sleep(250 * time.Millisecond)
	}
	l.w = newBatcher(l.maxMsg, "append outcome unknown", l.store)
	go l.w.run()
	return l, nil
}

func (l *Log) shutdownConn() {
	if l.nc != nil {
		l.nc.Close()
	}
	if l.ns != nil {
		l.ns.Shutdown()
		l.ns.WaitForShutdown()
	}
}

// Close stops admitting appends, lets the writer commit what it already holds, and shuts down.
func (l *Log) Close() error {
	if l.w.close() {
		l.shutdownConn()
	}
	return nil
}

// JetStream exposes the connection for packages that keep their own streams or buckets
// (audit stream, snapshot object store).
func (l *Log) JetStream() jetstream.JetStream { return l.js }

// SetKeyring installs the keyring used to seal payloads (nil when sealing).
func (l *Log) SetKeyring(k *Keyring) { l.keyring.Store(k) }

// Keyring returns the installed keyring, or nil while sealed.
func (l *Log) Keyring() *Keyring { return l.keyring.Load() }

// LastCommitted is the sequence of the last batch this node's writer committed.
func (l *Log) LastCommitted() uint64 { return l.acked.Load() }

// LastSeq asks the stream for its last sequence (all writers).
func (l *Log) LastSeq(ctx context.Context) (uint64, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// AppendOption adjusts one Append.
type AppendOption func(*appendReq)

// InTerm says the events were decided while this node was the active one in epoch: they are
// stored only in that term. A batch holding events of an earlier term fails with ErrConflict,
// nothing stored (the node lost the lease and won it again meanwhile: others may have
// written, and the decision may rest on views without their batches).
func InTerm(epoch uint64) AppendOption { return func(r *appendReq) { r.term = epoch } }

// WithKeyring seals this append's payloads with k instead of the installed keyring; init uses
// it to write the first events under a keyring the node does not yet hold.
func WithKeyring(k *Keyring) AppendOption { return func(r *appendReq) { r.keyring = k } }

// Append seals the events and appends them durably, in order, in one batch. It returns each
// event's position once the batch is on disk (or replicated). Errors: ErrSealed without a
// keyring, ErrTooLarge, ErrConflict when another writer interleaved, ErrClosed, or ctx's error —
// after which the outcome is unknown and readers decide (the events carry unique IDs).
func (l *Log) Append(ctx context.Context, evs []Event, opts ...AppendOption) ([]Position, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	r := &appendReq{done: make(chan appendResult, 1)}
	for _, o := range opts {
		o(r)
	}
	if r.keyring == nil {
		r.keyring = l.keyring.Load()
	}
	r.events = make([]StoredEvent, len(evs))
	now := time.Now()
	for i := range evs {
		e := evs[i]
		if e.ID == "" {
			e.ID = newID()
		}
		if e.Time.IsZero() {
			e.Time = now
		}
		se, err := sealEvent(&e, r.keyring)
		if err != nil {
			return nil, err
		}
		r.events[i] = se
		r.seal = r.seal || e.Raw
		r.size += len(se.rawHdr) + len(se.payload) + 20
	}
	if r.size > l.maxMsg {
		return nil, fmt.Errorf("append %d bytes (limit %d): %w", r.size, l.maxMsg, ErrTooLarge)
	}
	return l.w.submit(ctx, r)
}

// store publishes one batch, fenced on the writer's chain position, and advances the position.
func (l *Log) store(batch []*appendReq, count int) (uint64, error) {
	l.stores.Add(1)
	defer l.stored.Add(1)
	l.chainMu.Lock()
	defer l.chainMu.Unlock()
	seal := false
	for _, r := range batch {
		seal = seal || r.seal
	}
	subject := SubjectData
	if seal {
		subject = SubjectSeal
	}
	var epoch uint64
	if g := l.gate.Load(); g != nil {
		var err error
		if epoch, err = (*g)(); err != nil {
			return 0, err
		}
		for _, r := range batch {
			if r.term != 0 && r.term != epoch {
				return 0, fmt.Errorf("append: decided in term %d, stored in term %d: %w", r.term, epoch, ErrConflict)
			}
		}
		if epoch != l.wroteEpoch {
			// A term that was not begun with BeginTerm. Others may have appended since this
			// node last wrote, and this batch was decided on views that may not hold their
			// batches: take up the chain where the stream is, and refuse this batch (nothing
			// stored; the caller decides again) unless nobody else appended meanwhile.
			before := l.lastSeq
			ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
			err := l.resync(ctx)
			cancel()
			if err != nil {
				return 0, err
			}
			l.wroteEpoch = epoch
			if l.lastSeq != before {
				return 0, fmt.Errorf("append: a new term began after another writer appended at %d: %w", l.lastSeq, ErrConflict)
			}
		}
	}
	data := encodeBatch(l.prevHash, batchEvents(batch, count))
	seq, err := l.publish(subject, data, epoch)
	if seq != 0 {
		// Stored, even when the answer is an error (the lease ended while it was in flight):
		// the chain goes on after it.
		l.lastSeq, l.prevHash = seq, sha256.Sum256(data)
		l.acked.Store(seq)
	}
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// publish stores one batch exactly once. A timeout does not mean the batch was lost: the
// retry carries the same Nats-Msg-Id (the server deduplicates) and the same expected last
// sequence, and a fence failure is resolved by looking at what the stream actually holds.
//
// With a write gate each attempt asks it again: a node demoted while retrying stops at once
// (ErrNotActive), and the batch carries the epoch it was written under.
func (l *Log) publish(subject string, data []byte, epoch uint64) (uint64, error) {
	return l.publishAs(subject, data, epoch, newID())
}

// publishAs is publish under the message id msgID.
func (l *Log) publishAs(subject string, data []byte, epoch uint64, msgID string) (uint64, error) {
	expect := l.lastSeq
	deadline := time.Now().Add(commitDeadline)
	backoff := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
		msg.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(expect, 10))
		if g := l.gate.Load(); g != nil {
			cur, err := (*g)()
			if err == nil && cur != epoch {
				err = ErrNotActive
			}
			if err != nil && attempt > 0 && l.leaseHeld(epoch) {
				err = nil // resigning, with this batch in flight: the lease is still ours
			}
			if err != nil && attempt > 0 {
				// An earlier attempt may have been stored with its answer lost: ErrNotActive would
				// tell the caller nothing was written (and a retry elsewhere would write it twice).
				ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
				found, rerr := isStoredAt(ctx, l.stream, expect+1, msgID)
				cancel()
				if rerr == nil && found {
					// Stored, but perhaps after the lease ended: not acknowledged.
					return expect + 1, fmt.Errorf("append outcome unknown: stored at %d, but this node lost the lease while retrying (%v)", expect+1, err)
				}
				return 0, fmt.Errorf("append outcome unknown: this node lost the lease while retrying (%v)", err)
			}
			if err != nil {
				return 0, fmt.Errorf("append: this node lost the lease: %w", err)
			}
			msg.Header.Set(EpochHeader, strconv.FormatUint(epoch, 10))
		}
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		ack, err := l.js.PublishMsg(ctx, msg)
		cancel()
		if err == nil {
			// The gate was open when the batch left; ask again now that it is stored. A node
			// paused (SIGSTOP, a VM freeze) or starved between the two may have lost the lease
			// meanwhile, and a successor may already be active: the batch is in the log, in
			// order and fenced, but this node cannot vouch that it was stored while it was the
			// active node, so it does not acknowledge it — the outcome is reported unknown.
			if l.gate.Load() != nil && !l.leaseHeld(epoch) {
				return ack.Sequence, fmt.Errorf("append outcome unknown: stored at %d, but this node's lease ended while the batch was in flight", ack.Sequence)
			}
			return ack.Sequence, nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
			found, rerr := isStoredAt(ctx, l.stream, expect+1, msgID)
			cancel()
			if rerr != nil {
				// Whether an earlier attempt was stored cannot be told: neither acknowledge the
				// batch nor let the caller decide it again (that could store it twice).
				return 0, fmt.Errorf("append outcome unknown: the stream moved past this batch's fence, and %w", rerr)
			}
			if found {
				return expect + 1, nil // an earlier attempt was stored; its ack was lost
			}
			// Another writer appended: take up the chain after it and let callers re-decide.
			rctx, rcancel := context.WithTimeout(context.Background(), publishTimeout)
			if serr := l.resync(rctx); serr != nil {
				l.log.Error("ledger writer resync", "err", serr)
			}
			rcancel()
			return 0, fmt.Errorf("append: another writer appended at %d: %w", l.lastSeq, ErrConflict)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("append: no acknowledgement from JetStream within %s: %w", commitDeadline, err)
		}
		l.log.Warn("ledger append retry", "err", err)
		select {
		case <-time.After(backoff):
		case <-l.w.quit:
			// Keep trying until the deadline even while closing: callers are waiting on this batch.
		}
		backoff = min(backoff*2, time.Second)
	}
}

// isStoredAt says whether the message at seq is the one with id msgID. A batch fenced on the
// stream's last sequence being seq-1 can only have been stored at seq, so this settles a retry
// whose earlier attempt may have been stored with its ack lost, however long ago, and whatever
// other writers appended after it. JetStream's duplicate window would settle it only within the
// window, and a wide window is reloaded on every restart; the fenced streams keep the least.
func isStoredAt(ctx context.Context, st jetstream.Stream, seq uint64, msgID string) (bool, error) {
	m, err := st.GetMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read seq %d: %w", seq, err)
	}
	return m.Header.Get(jetstream.MsgIDHeader) == msgID, nil
}

// BeginTerm starts this node's term of epoch as the only writer: the writer takes up the chain
// where the stream ends, and that position is returned. Every batch up to it may be another
// node's, so the caller decides nothing on views that have not applied it. Batches of the term
// are then fenced on this chain: a deposed writer's batch landing after it makes the next
// append fail with ErrConflict (nothing stored) instead of being built upon unseen.
func (l *Log) BeginTerm(ctx context.Context, epoch uint64) (uint64, error) {
	l.chainMu.Lock()
	defer l.chainMu.Unlock()
	if err := l.resync(ctx); err != nil {
		return 0, err
	}
	l.wroteEpoch = epoch
	return l.lastSeq, nil
}

// Floor is the stream's last sequence when the writer last took up the chain from the stream
// (at open, BeginTerm, and after a fence failure). Batches at or below it may be other
// writers'; views that decide what this node appends must have applied it.
func (l *Log) Floor() uint64 { return l.floor.Load() }

// resync takes the writer's chain position from the stream's last message. Called at open,
// BeginTerm and after a fence failure, never while a batch is being committed.
func (l *Log) resync(ctx context.Context) error {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream info: %w", err)
	}
	l.lastSeq, l.prevHash = info.State.LastSeq, [32]byte{}
	if l.lastSeq > 0 {
		m, err := l.stream.GetMsg(ctx, l.lastSeq)
		if err != nil {
			return fmt.Errorf("read seq %d: %w", l.lastSeq, err)
		}
		l.prevHash = sha256.Sum256(m.Data)
	}
	l.acked.Store(l.lastSeq)
	l.floor.Store(l.lastSeq)
	return nil
}

// errStop ends a Follow from inside its callback without an error.
var errStop = errors.New("stop")

// Follow delivers batches in order starting at sequence from (1 = genesis), until ctx ends or
// fn returns an error. With sealOnly it delivers only batches holding seal-state events, which
// a sealed node can use without keys. A batch that does not decode is an error naming its
// sequence. Follow returns nil when ctx is cancelled.
func (l *Log) Follow(ctx context.Context, from uint64, sealOnly bool, fn func(Batch) error) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from
	}
	if sealOnly {
		cfg.FilterSubjects = []string{SubjectSeal}
	}
	cons, err := l.js.OrderedConsumer(ctx, StreamName, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("follow from %d: %w: %w", from, ErrFollowLost, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return fmt.Errorf("follow from %d: %w: %w", from, ErrFollowLost, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	// The watchdog: an ordered consumer placed while a replicated stream's leader moves can sit
	// silent with the stream growing (seen: a standby's views stuck at sequence 1 for the whole
	// life of a test cluster, and that node then elected). When nothing arrived for
	// followStall and the stream holds more than was delivered, the feed is lost.
	fctx, fcancel := context.WithCancelCause(ctx)
	defer fcancel(nil)
	var delivered atomic.Uint64
	var lastAt atomic.Int64
	delivered.Store(from - 1)
	lastAt.Store(time.Now().UnixNano())
	go l.watchFollow(fctx, fcancel, sealOnly, &delivered, &lastAt)
	// A batch appended under an older epoch than one already seen is a deposed leader's, and is
	// skipped by every follower alike. The writer's fence (a new leader resyncs and appends after
	// the old one's last batch) keeps this from happening; this is the second lock on the door.
	var maxEpoch uint64
	for {
		// Next watches ctx itself: Stop alone does not wake an ordered consumer that is busy
		// resetting (seen after the stream was rebuilt under it).
		m, err := it.Next(jetstream.NextContext(fctx))
		if err != nil {
			if cause := context.Cause(fctx); ctx.Err() == nil && errors.Is(cause, errFollowStalled) {
				return fmt.Errorf("follow: %w: %w", ErrFollowLost, cause)
			}
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("follow: %w: %w", ErrFollowLost, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("follow: metadata: %w", err)
		}
		delivered.Store(md.Sequence.Stream)
		lastAt.Store(time.Now().UnixNano())
		b, err := DecodeBatch(md.Sequence.Stream, m.Data())
		if err != nil {
			return err
		}
		if h := m.Headers().Get(EpochHeader); h != "" {
			b.Epoch, _ = strconv.ParseUint(h, 10, 64)
		}
		if b.Epoch < maxEpoch {
			l.log.Warn("ledger: skipping a batch from a deposed leader", "seq", b.Seq, "epoch", b.Epoch, "current_epoch", maxEpoch)
			continue
		}
		maxEpoch = b.Epoch
		lastAt.Store(0) // applying: a slow apply (a checkpoint holding the views) is not a stall
		err = fn(b)
		lastAt.Store(time.Now().UnixNano())
		if err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
}

// followStall is how long a follower waits with nothing delivered before it asks the stream
// whether it is behind.
const followStall = 3 * time.Second

var errFollowStalled = errors.New("nothing delivered while the stream holds more")

// watchFollow ends a Follow (cancel with errFollowStalled) whose feed went silent while the
// stream holds batches past the last one delivered.
func (l *Log) watchFollow(ctx context.Context, cancel context.CancelCauseFunc, sealOnly bool, delivered *atomic.Uint64, lastAt *atomic.Int64) {
	t := time.NewTicker(followStall / 3)
	defer t.Stop()
	var checked time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if at := lastAt.Load(); at == 0 || time.Since(time.Unix(0, at)) < followStall || time.Since(checked) < followStall {
			continue
		}
		checked = time.Now() // an idle follower asks once per followStall
		// What this node's writer already knows the stream holds (a new term begins at the
		// stream's end) needs no question: on a failover the stream's leader is often gone
		// with the consumer's server, and the question would wait for its successor.
		last := l.floor.Load()
		if sealOnly || last <= delivered.Load() {
			// Bounded like any request to a stream that may have no leader: ask again on the
			// next tick rather than wait.
			qctx, qcancel := context.WithTimeout(ctx, jsAttempt)
			var err error
			last, err = l.lastFor(qctx, sealOnly)
			qcancel()
			if err != nil {
				checked = time.Time{}
				continue // the stream cannot answer either: the consumer's own errors will tell
			}
		}
		if at := lastAt.Load(); last > delivered.Load() && at != 0 && time.Since(time.Unix(0, at)) >= followStall {
			cancel(fmt.Errorf("%w (delivered up to %d, the stream ends at %d)", errFollowStalled, delivered.Load(), last))
			return
		}
	}
}

// lastFor is the stream's last sequence, or with sealOnly its last seal batch's.
func (l *Log) lastFor(ctx context.Context, sealOnly bool) (uint64, error) {
	if !sealOnly {
		return l.LastSeq(ctx)
	}
	m, err := l.stream.GetLastMsgForSubject(ctx, SubjectSeal)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// ReadRange delivers the batches with sequences in [from, to] and returns. With to == 0 it reads
// up to the last sequence at the time of the call.
func (l *Log) ReadRange(ctx context.Context, from, to uint64, sealOnly bool, fn func(Batch) error) error {
	if to == 0 {
		var err error
		if to, err = l.LastSeq(ctx); err != nil {
			return err
		}
	}
	if to == 0 || from > to {
		return nil
	}
	// A filtered read may have no message at `to`; find the last matching one.
	if sealOnly {
		m, err := l.stream.GetLastMsgForSubject(ctx, SubjectSeal)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("last seal batch: %w", err)
		}
		if m.Sequence < from {
			return nil
		}
		to = min(to, m.Sequence)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := false
	next := from
	// A lost feed (a consumer placed while a replicated stream's leader moves, or one the
	// watchdog found silent) is read again from the next batch: up to readRangeRetries times
	// in a row without progress.
	backoff := 100 * time.Millisecond
	for lost := 0; ; {
		err := l.Follow(ctx, next, sealOnly, func(b Batch) error {
			if b.Seq > to {
				done = true
				return errStop
			}
			if err := fn(b); err != nil {
				return err
			}
			next, lost, backoff = b.Seq+1, 0, 100*time.Millisecond
			if b.Seq >= to {
				done = true
				return errStop
			}
			return nil
		})
		if errors.Is(err, ErrFollowLost) && !done && ctx.Err() == nil && lost < readRangeRetries {
			lost++
			l.log.Warn("ledger: reading the log again after a lost feed", "from", next, "to", to, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		if err == nil && !done && ctx.Err() == nil {
			return errors.New("read range: stream ended early")
		}
		return err
	}
}

// readRangeRetries bounds the lost feeds in a row that ReadRange reads again after.
const readRangeRetries = 10

// ObserveCommits sets fn to hear every group commit of the log: the events it stored and the
// time the store took (telemetry). fn runs on the writer goroutine and must be quick.
func (l *Log) ObserveCommits(fn func(events int, d time.Duration)) { l.w.observe.Store(&fn) }
