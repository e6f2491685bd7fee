package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig configures a Stream.
type StreamConfig struct {
	// Name of the JetStream stream, e.g. "LEDGER_AUDIT".
	Name        string
	Description string
	// Subject is the subject this node's writer appends on; it must not overlap the log's.
	Subject string
	// Subjects are the stream's subjects (default: Subject alone); they must include Subject.
	Subjects []string
	// ChainPerSubject: batches chain to the last batch on their own subject, and are fenced
	// with Nats-Expected-Last-Subject-Sequence. Each node of a cluster then writes its own
	// subject, and no node's batch can be refused because another node's landed first.
	ChainPerSubject bool
	// MaxAge and MaxBytes bound retention (0: unbounded). Old batches go first.
	MaxAge   time.Duration
	MaxBytes int64
	Replicas int
	Logger   *slog.Logger
	// AsyncPersist lets JetStream acknowledge a batch once the server holds it and write it to
	// disk right after, instead of after its fsync. A hard crash can then lose the last few
	// milliseconds of records that were already acknowledged. For the audit records of reads
	// this is the durability Vault's own file device gives (a write without fsync), and it keeps
	// a read from costing an fsync; records of writes travel in the log's own fsync'd batches.
	// Ignored when Replicas > 1: JetStream does not offer it on replicated streams.
	AsyncPersist bool
	// Gather lets the writer of an unreplicated stream hold a batch back for up to this long
	// while the batch before it is unacknowledged, to carry more records per message, and keeps
	// at most two batches in flight (0: launch at once, up to eight in flight). At low load
	// nothing is in flight, so nothing waits. For streams whose appenders are many and each
	// small: the audit records of reads.
	Gather time.Duration
	// Spool is a directory of this node's own where an unreplicated, asynchronously persisted
	// stream keeps its batches until JetStream holds them (see spool). An append then returns
	// once its batch is written there, and JetStream receives many batches per message, off
	// the appender's path. Streams that are replicated, chained per subject or persisted
	// synchronously append directly; their Spool is only emptied of what an earlier run left.
	Spool string
	// Direct appends directly even on a stream that could spool; Spool is then only emptied of
	// what an earlier run left.
	Direct bool
}

// Stream is a second append-only stream beside the log, for records that change no state (the
// audit records of reads and denials). It keeps the log's guarantees — one group-commit writer
// per node, nothing acknowledged before it is durable, payloads sealed under the keyring,
// batches chained by the hash of their predecessor — but not its fencing contract: nothing is
// decided from a stream's contents, so when another writer interleaves, the writer takes up the
// chain after it and stores the batch again instead of returning ErrConflict.
type Stream struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	cfg     StreamConfig
	log     *slog.Logger
	keyring func() *Keyring
	maxMsg  int

	w *batcher // the pipelined group-commit writer: launch and settle run on it

	// The chain head: the last message's sequence, hash and message id. While batches are in
	// flight it is the head they will make once stored (predicted); settle puts it back to
	// the stream's real head when a batch fails.
	mu       sync.Mutex
	drained  *sync.Cond // signalled when a broken pipeline has emptied
	lastSeq  uint64
	prevHash [32]byte
	lastID   string
	inflight int  // launched, not yet settled
	broken   bool // a batch failed: no launches until the in-flight ones have settled
	failed   error
	ackedSeq uint64 // the last sequence a batch of ours was acknowledged at

	// halt ends the retries of a publish: closed when the stream is closed.
	halt chan struct{}
	// sp, when set, is where appends go; the shipper (done closes shipDone) stores them.
	sp        *spool
	shipDone  chan struct{}
	closeOnce sync.Once
	shipBuf   []byte // encode's buffer for a spooled stream
}

// spoolCloseDrain bounds how long Close waits for the shipper to empty the spool.
var spoolCloseDrain = 10 * time.Second

// OpenStream creates (or updates the limits of) the stream and starts its writer. keyring
// returns the keyring that seals payloads at the time of each append (nil: ErrSealed).
func OpenStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig, keyring func() *Keyring) (*Stream, error) {
	if cfg.Name == "" || cfg.Subject == "" {
		return nil, errors.New("ledger: a stream needs a name and a subject")
	}
	s := &Stream{js: js, cfg: cfg, log: cfg.Logger, keyring: keyring}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.maxMsg = maxMessageBytes - 4096
	if nc := js.Conn(); nc != nil && nc.MaxPayload() > 0 {
		s.maxMsg = int(nc.MaxPayload()) - 4096
	}
	subjects := cfg.Subjects
	if len(subjects) == 0 {
		subjects = []string{cfg.Subject}
	}
	var err error
	s.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: cfg.Description,
		Subjects:    subjects,
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    max(cfg.MaxBytes, 0),
		Replicas:    max(cfg.Replicas, 1),
		Duplicates:  fencedDedupe,
		DenyDelete:  true,
		DenyPurge:   true,
		// JetStream refuses async persistence on a replicated stream (there an ack already
		// waits for a quorum to hold the batch), so AsyncPersist applies to R1 only.
		PersistMode: persistMode(cfg.AsyncPersist && max(cfg.Replicas, 1) == 1),
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	if err := s.resync(ctx); err != nil {
		return nil, err
	}
	s.drained = sync.NewCond(&s.mu)
	unknown := fmt.Sprintf("append to %s: outcome unknown", cfg.Name)
	direct := cfg.Direct || max(cfg.Replicas, 1) > 1 || cfg.ChainPerSubject || !cfg.AsyncPersist
	if cfg.Spool != "" && spoolSupported && (!direct || dirExists(cfg.Spool)) {
		sp, err := openSpool(cfg.Spool)
		if err != nil {
			return nil, err
		}
		if err := sp.dropShipped(s.lastID); err != nil {
			// No segment to write to (the file system cannot map or reserve one): append
			// directly, which waits for JetStream, after storing what the spool holds.
			s.log.Warn("the spool cannot take appends; appending directly", "stream", cfg.Name, "dir", cfg.Spool, "err", err)
			direct = true
		}
		s.sp = sp
	}
	switch {
	case s.sp != nil && !direct:
		s.halt, s.shipDone = make(chan struct{}), make(chan struct{})
		go s.ship()
		return s, nil
	case s.sp != nil:
		// This stream appends directly now; what an earlier, spooled run left is stored first.
		s.halt = make(chan struct{})
		err := s.shipLeftovers()
		s.sp = nil
		if err != nil {
			return nil, err
		}
	}
	if max(cfg.Replicas, 1) > 1 || cfg.ChainPerSubject {
		// A replicated stream is one that every node of a cluster appends to (standbys write
		// the records of the reads they answer): a pipeline of batches fenced on predicted
		// positions breaks on nearly every batch another node lands first. One batch at a
		// time, re-chained after the other writer's on a refusal, keeps group commit and lets
		// every writer make progress.
		s.w = newBatcher(s.maxMsg, unknown, func(batch []*appendReq, count int) (uint64, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.publish(batchEvents(batch, count))
		})
	} else {
		s.w = newPipelinedBatcher(s.maxMsg, unknown, s.launch)
		if cfg.Gather > 0 {
			s.w.gather, s.w.flights = cfg.Gather, make(chan flight)
		}
	}
	s.halt = s.w.quit
	go s.w.run()
	return s, nil
}

// ship stores the spool's groups in JetStream, as many as fit in one message, one message at a
// time, until the spool is closed and empty (or Close gives up: halt). A failed message is
// tried again with the same id: the fence and the id keep it from being stored twice.
func (s *Stream) ship() {
	defer close(s.shipDone)
	backoff := 50 * time.Millisecond
	var evs []StoredEvent
	for {
		var ok bool
		var err error
		if evs, ok, err = s.shipNext(evs); !ok {
			return
		}
		if err != nil {
			if s.sp.setRefused(err) {
				s.log.Error("JetStream does not store the spooled records; appends are refused until it does (retrying)",
					"stream", s.cfg.Name, "backlog", s.sp.backlog(), "err", err)
			}
			select {
			case <-time.After(backoff):
			case <-s.halt:
				return
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if s.sp.setRefused(nil) {
			s.log.Info("JetStream stores the spooled records again; appends accepted", "stream", s.cfg.Name)
		}
	}
}

// shipNext stores the next message's worth of queued groups (their events in evs's room) and
// records the acknowledgement. ok is false once the spool is closed and empty.
func (s *Stream) shipNext(evs []StoredEvent) (_ []StoredEvent, ok bool, err error) {
	evs, last, ok := s.sp.take(evs, s.maxMsg)
	if !ok {
		return evs, false, nil
	}
	s.mu.Lock()
	_, err = s.publishAs(evs, s.sp.msgID(last))
	s.mu.Unlock()
	if err == nil {
		s.sp.acknowledged(last)
	}
	return evs, true, err
}

// shipLeftovers stores, synchronously, the groups an earlier run left in the spool.
func (s *Stream) shipLeftovers() error {
	n := s.sp.backlog()
	s.sp.close()
	defer s.sp.release()
	var evs []StoredEvent
	for ok := true; ok; {
		var err error
		if evs, ok, err = s.shipNext(evs); err != nil {
			return fmt.Errorf("store the records an earlier run left in %s: %w", s.sp.dir, err)
		}
	}
	if n > 0 {
		s.log.Info("stored the records an earlier run left in the spool", "stream", s.cfg.Name, "groups", n)
	}
	return nil
}

func dirExists(dir string) bool {
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}

// Backlog is the number of spooled groups of records not yet stored in JetStream (0 for a
// stream that appends directly).
func (s *Stream) Backlog() int {
	if s.sp == nil {
		return 0
	}
	return s.sp.backlog()
}

// Flush waits (at most timeout) until JetStream holds every group of records spooled before
// the call, so that a reader of the stream sees them, and returns how many it does not hold
// yet (0 for a stream that appends directly: its appends are stored when they return).
func (s *Stream) Flush(timeout time.Duration) int {
	if s.sp == nil {
		return 0
	}
	return s.sp.flushed(timeout)
}

// Name is the JetStream stream's name.
func (s *Stream) Name() string { return s.cfg.Name }

// Close stops admitting appends, lets the writer commit what it holds, and returns. The
// JetStream connection belongs to the caller.
func (s *Stream) Close() error {
	if s.sp == nil {
		s.w.close()
		return nil
	}
	s.closeOnce.Do(func() {
		// No more appends; give the shipper a moment to store what is spooled. What it cannot
		// store in time stays in the spool for the next open.
		s.sp.close()
		if !s.sp.drained(spoolCloseDrain) {
			s.log.Warn("closing with records still in the spool; they are stored when the stream is next opened",
				"stream", s.cfg.Name, "backlog", s.sp.backlog())
		}
		close(s.halt)
		<-s.shipDone
		s.sp.release()
	})
	return nil
}

// LastSeq asks the stream for its last sequence.
func (s *Stream) LastSeq(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", s.cfg.Name, err)
	}
	return info.State.LastSeq, nil
}

// Append seals the events and stores them durably, in order, in one batch, and returns their
// positions (nil for a spooled stream: its batches have no position until shipped). Errors:
// ErrSealed without a keyring, ErrTooLarge, ErrClosed, or ctx's error (the outcome is then
// unknown). Raw events are refused: a stream holds nothing a sealed node reads.
func (s *Stream) Append(ctx context.Context, evs []Event) ([]Position, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	kr := s.keyring()
	if kr == nil {
		return nil, ErrSealed
	}
	r := &appendReq{keyring: kr, done: make(chan appendResult, 1), events: make([]StoredEvent, len(evs)),
		bufs: make([]*[]byte, 0, len(evs))}
	now := time.Now()
	for i := range evs {
		e := evs[i]
		if e.Raw {
			return nil, fmt.Errorf("append %s to %s: raw events belong in the log", e.Type, s.cfg.Name)
		}
		if e.ID == "" {
			e.ID = newID()
		}
		if e.Time.IsZero() {
			e.Time = now
		}
		bp := streamBuffers.Get().(*[]byte)
		r.bufs = append(r.bufs, bp)
		se, err := sealEventInto(*bp, &e, kr)
		if err != nil {
			releaseBuffers(r.bufs)
			return nil, err
		}
		r.events[i] = se
		r.size += len(se.rawHdr) + len(se.payload) + 20
	}
	if r.size > s.maxMsg {
		releaseBuffers(r.bufs)
		return nil, fmt.Errorf("append %d bytes to %s (limit %d): %w", r.size, s.cfg.Name, s.maxMsg, ErrTooLarge)
	}
	if s.sp != nil {
		if err := ctx.Err(); err != nil {
			releaseBuffers(r.bufs)
			return nil, err
		}
		err := s.sp.append(r.events)
		releaseBuffers(r.bufs) // copied into the spool
		return nil, err
	}
	return s.w.submit(ctx, r)
}

// launch sends one batch without waiting for its acknowledgement, fenced twice on its
// predecessor: the stream's last sequence must be the predicted one and its last message id
// that of the batch launched before it. So a batch is stored only right after the one before
// it: what is stored of the pipeline is always a prefix of it, in launch order, chained.
func (s *Stream) launch(batch []*appendReq, count int) func() (uint64, error) {
	evs := batchEvents(batch, count)
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.broken {
		s.drained.Wait()
	}
	bp := streamBuffers.Get().(*[]byte)
	data := encodeBatchInto(*bp, s.prevHash, evs)
	*bp = data
	msgID := newID()
	msg := &nats.Msg{Subject: s.cfg.Subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	msg.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(s.lastSeq, 10))
	if s.lastID != "" {
		msg.Header.Set(jetstream.ExpectedLastMsgIDHeader, s.lastID)
	}
	fut, err := s.js.PublishMsgAsync(msg)
	s.inflight++
	if err == nil {
		s.lastSeq, s.prevHash, s.lastID = s.lastSeq+1, sha256.Sum256(data), msgID
	}
	return func() (uint64, error) {
		seq, serr, answered := s.settle(fut, err, evs, msgID)
		// The events' bytes are done with: stored, or failed for good. The message's bytes are
		// done with once JetStream has answered; one it did not answer in time may still be
		// published again by the client (a retry), so its buffer is left to the collector.
		for _, r := range batch {
			releaseBuffers(r.bufs)
			r.bufs = nil
		}
		if answered {
			releaseBuffers([]*[]byte{bp})
		}
		return seq, serr
	}
}

// streamBuffers holds the buffers a Stream seals events and encodes batches into; the audit
// record of every read passes through two of them. Each is reused once its batch has settled.
var streamBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxPooledStreamBuffer: a buffer grown past this by an unusually large batch is dropped.
const maxPooledStreamBuffer = 1 << 20

func releaseBuffers(bufs []*[]byte) {
	for _, bp := range bufs {
		if cap(*bp) <= maxPooledStreamBuffer {
			*bp = (*bp)[:0]
			streamBuffers.Put(bp)
		}
	}
}

// settle waits for a launched batch's acknowledgement. A batch that was refused or not
// acknowledged in time breaks the pipeline: no more launches until every batch in flight has
// settled, and each failed one is looked for in the stream (its ack may be what was lost) or
// else stored again, synchronously, chained after the stream's real head (another writer may
// have appended). If that fails too, the batch and every batch after it in flight fail: none is
// acknowledged after one that was not.
func (s *Stream) settle(fut jetstream.PubAckFuture, err error, evs []StoredEvent, msgID string) (seq uint64, serr error, answered bool) {
	var ack *jetstream.PubAck
	if err == nil {
		t := time.NewTimer(publishTimeout)
		select {
		case ack = <-fut.Ok():
			answered = true
		case err = <-fut.Err():
			answered = true
		case <-t.C:
			err = errors.New("no acknowledgement in time")
		}
		t.Stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		s.inflight--
		if s.inflight == 0 && s.broken {
			// Take up the stream's real head before launching again; if it cannot be read,
			// the next batch's fence fails and it comes back here.
			if rerr := s.resync(context.Background()); rerr != nil {
				s.log.Warn("stream resync", "stream", s.cfg.Name, "err", rerr)
			}
			s.broken, s.failed = false, nil
			s.drained.Broadcast()
		}
	}()
	if s.failed != nil {
		return 0, s.failed, answered
	}
	if ack != nil {
		s.ackedSeq = max(s.ackedSeq, ack.Sequence)
		return ack.Sequence, nil, answered
	}
	if !s.broken {
		s.log.Warn("stream pipeline broken; storing in order", "stream", s.cfg.Name, "err", err)
	}
	s.broken = true
	seq, err = s.recover(evs, msgID, refusedByFence(err))
	if err != nil {
		s.failed = err
		return 0, err, answered
	}
	s.ackedSeq = seq
	return seq, nil, answered
}

// recover finds a batch whose acknowledgement was lost among the messages stored after our
// last acknowledged one, or stores it again with the synchronous, re-chaining publish. A batch
// the stream refused on its fence (refused) was not stored: no search. That is the common case
// when several nodes append to one stream (a cluster's audit records), and searching for every
// refused batch of a pipeline costs dozens of reads each time another node's batch lands first.
func (s *Stream) recover(evs []StoredEvent, msgID string, refused bool) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if refused {
		if err := s.resync(ctx); err != nil {
			s.log.Warn("stream resync", "stream", s.cfg.Name, "err", err)
		}
		return s.publish(evs)
	}
	if err := s.resync(ctx); err == nil {
		for seq := s.lastSeq; seq > s.ackedSeq && seq+pipelineDepth*4 > s.lastSeq; seq-- {
			m, err := s.stream.GetMsg(ctx, seq)
			if err != nil {
				break
			}
			if m.Header.Get(jetstream.MsgIDHeader) == msgID {
				return seq, nil
			}
		}
	}
	return s.publish(evs)
}

// publish stores one batch exactly once, chained to the stream's last message. A lost ack is
// retried with the same Nats-Msg-Id; a fence failure either finds the batch already stored or
// re-chains it after the other writer's message and tries again.
func (s *Stream) publish(evs []StoredEvent) (uint64, error) { return s.publishAs(evs, "") }

// publishAs is publish under the message id msgID, kept when the batch is re-chained (a
// spool's message ids say which of its groups the stream holds); "" draws a new id each time.
func (s *Stream) publishAs(evs []StoredEvent, fixedID string) (uint64, error) {
	deadline := time.Now().Add(commitDeadline)
	backoff := 20 * time.Millisecond
	msgID := fixedID
	if msgID == "" {
		msgID = newID()
	}
	data := s.encode(evs)
	for {
		msg := &nats.Msg{Subject: s.cfg.Subject, Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
		if s.cfg.ChainPerSubject {
			msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(s.lastSeq, 10))
		} else {
			msg.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(s.lastSeq, 10))
		}
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		ack, err := s.js.PublishMsg(ctx, msg)
		cancel()
		if err == nil {
			s.lastSeq, s.prevHash, s.lastID = ack.Sequence, sha256.Sum256(data), msgID
			return ack.Sequence, nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) {
			apiErr = nil
		}
		fence := apiErr != nil && refusedByFence(err)
		if fence {
			ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
			seq, stored, rerr := s.storedPastFence(ctx, msgID)
			cancel()
			switch {
			case rerr == nil && stored:
				return seq, nil // an earlier attempt was stored; its ack was lost
			case rerr == nil:
				// Another writer appended: chain after it, under a new message id (a
				// spooled batch keeps its own: it names the groups the message holds).
				data = s.encode(evs)
				if fixedID == "" {
					msgID = newID()
				}
			default:
				err, fence, apiErr = rerr, false, nil // retry: the stream did not refuse the batch
			}
		}
		if apiErr != nil && !fence {
			// JetStream answered, and said no (the stream is sealed, gone, over a limit):
			// waiting will not change its mind, and the appenders are requests.
			return 0, fmt.Errorf("append to %s: %w", s.cfg.Name, err)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("append to %s: no acknowledgement from JetStream within %s: %w", s.cfg.Name, commitDeadline, err)
		}
		if !fence {
			s.log.Warn("stream append retry", "stream", s.cfg.Name, "err", err)
			select {
			case <-time.After(backoff):
			case <-s.halt:
				return 0, fmt.Errorf("append to %s: stream closed: %w", s.cfg.Name, err)
			}
			backoff = min(backoff*2, time.Second)
		}
	}
}

// encode encodes a batch chained to the stream's head; under s.mu. A spooled stream's batches
// (one shipper, one message at a time) reuse one buffer: the client has copied a message when
// its publish returns.
func (s *Stream) encode(evs []StoredEvent) []byte {
	if s.sp == nil {
		return encodeBatch(s.prevHash, evs)
	}
	s.shipBuf = encodeBatchInto(s.shipBuf, s.prevHash, evs)
	return s.shipBuf
}

// jsErrCodeStreamWrongLastMsgID is JetStream's refusal of a message whose expected last
// message id is not the stream's (nats.go names no constant for it).
const jsErrCodeStreamWrongLastMsgID jetstream.ErrorCode = 10070

// refusedByFence reports an error that is JetStream refusing a batch on its expected-last
// fence: the batch was not stored.
func refusedByFence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant, jsErrCodeStreamWrongLastMsgID:
		return true
	}
	return false
}

// storedPastFence re-reads the stream's last message into the writer's chain position and
// reports whether the batch with id msgID, fenced on the position the writer had before, was
// stored, and at which sequence. With ChainPerSubject only this writer appends to its subject,
// so a stored attempt is the subject's last message; otherwise the fence admits it only at the
// sequence after the one it names, whatever other writers appended after it.
func (s *Stream) storedPastFence(ctx context.Context, msgID string) (uint64, bool, error) {
	fence := s.lastSeq
	if err := s.resync(ctx); err != nil {
		return 0, false, err
	}
	switch {
	case s.lastSeq == 0:
		return 0, false, nil
	case s.lastID == msgID:
		return s.lastSeq, true, nil
	case s.cfg.ChainPerSubject || s.lastSeq <= fence+1:
		return 0, false, nil
	}
	found, err := isStoredAt(ctx, s.stream, fence+1, msgID)
	if err != nil || !found {
		return 0, false, err
	}
	return fence + 1, true, nil
}

// resync takes the chain position from the stream's last message (with ChainPerSubject, the
// last message on the writer's subject). On error the position is left as it was, so a stale
// batch can only fail its fence, never break the chain.
func (s *Stream) resync(ctx context.Context) error {
	if s.cfg.ChainPerSubject {
		m, err := s.stream.GetLastMsgForSubject(ctx, s.cfg.Subject)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// Nothing on this subject yet (or it aged out): the chain starts from zero.
			s.lastSeq, s.prevHash, s.lastID = 0, [32]byte{}, ""
			return nil
		case err != nil:
			return fmt.Errorf("read %s's last message on %s: %w", s.cfg.Name, s.cfg.Subject, err)
		}
		s.lastSeq, s.prevHash, s.lastID = m.Sequence, sha256.Sum256(m.Data), m.Header.Get(jetstream.MsgIDHeader)
		return nil
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s info: %w", s.cfg.Name, err)
	}
	last, prev, id := info.State.LastSeq, [32]byte{}, ""
	if last > 0 && info.State.Msgs > 0 {
		m, err := s.stream.GetMsg(ctx, last)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// The last message aged out: the chain restarts from zero.
		case err != nil:
			return fmt.Errorf("read %s seq %d: %w", s.cfg.Name, last, err)
		default:
			prev, id = sha256.Sum256(m.Data), m.Header.Get(jetstream.MsgIDHeader)
		}
	}
	s.lastSeq, s.prevHash, s.lastID = last, prev, id
	return nil
}

func persistMode(async bool) jetstream.PersistModeType {
	if async {
		return jetstream.AsyncPersistMode
	}
	return jetstream.DefaultPersistMode
}
