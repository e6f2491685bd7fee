package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledger-secrets/ledger/ledger"
)

// Problem is one break in a stream's hash chain.
type Problem struct {
	Seq    uint64 `json:"seq"`
	Kind   string `json:"kind"` // missing, altered, unchained
	Detail string `json:"detail"`
}

// Report is the outcome of Verify.
type Report struct {
	Stream   string `json:"stream"`
	OK       bool   `json:"ok"`
	From     uint64 `json:"from"`
	To       uint64 `json:"to"`
	FirstSeq uint64 `json:"first_seq"`
	Batches  uint64 `json:"batches"`
	Events   uint64 `json:"events"`
	// Checkpoints is how many checkpoints the recomputed chain was compared against.
	Checkpoints int    `json:"checkpoints_checked"`
	HeadHash    string `json:"head_hash,omitempty"`
	// FirstBad is the first missing or altered sequence (0 when OK).
	FirstBad uint64    `json:"first_bad_seq,omitempty"`
	Problems []Problem `json:"problems,omitempty"`
	// Trusted is the checkpoint that vouched for the starting point of a verification --from.
	Trusted *Checkpoint `json:"trusted_checkpoint,omitempty"`
}

// ErrUnvouched: a verification cannot start at the sequence asked, because no checkpoint
// vouches for the hash it would have to trust.
var ErrUnvouched = errors.New("no checkpoint vouches for the starting point")

// VerifyOptions direct Verify.
type VerifyOptions struct {
	// From is the first sequence to check (0 or 1: the whole stream). Above 1, the batch at
	// From is trusted to chain to From-1 only if a checkpoint vouches for From-1's hash.
	From uint64
	// Keyring, when set, also authenticates every event (a changed payload or header fails).
	Keyring *ledger.Keyring
	// Checkpoints are compared with the recomputed hashes; Vouched looks one up by sequence.
	Checkpoints []Checkpoint
	// HeadSeq and HeadHash are what this node applied and hashed as the log came in; the
	// recomputed hash at HeadSeq must still be the same.
	HeadSeq  uint64
	HeadHash [32]byte
	// Retained marks a stream with retention limits: its first message may have aged out, and
	// the oldest retained batch starts the chain.
	Retained bool
	// MaxProblems caps the problems listed (default 100).
	MaxProblems int
	// ChainPerSubject: each batch chains to the previous batch on its own subject, not to the
	// stream's previous message (the audit stream, which each node of a cluster writes on its
	// own subject). Sequences must still run without a gap across the whole stream.
	ChainPerSubject bool
}

// Verify recomputes the hash chain of a stream over its raw messages — each batch must carry
// the SHA-256 of its predecessor, every sequence must be present, every event must open, and
// every checkpoint must match — and reports the first missing or altered sequence.
func Verify(ctx context.Context, js jetstream.JetStream, stream string, o VerifyOptions) (Report, error) {
	rep := Report{Stream: stream}
	if o.MaxProblems <= 0 {
		o.MaxProblems = 100
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return rep, fmt.Errorf("verify %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return rep, fmt.Errorf("verify %s: %w", stream, err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	rep.FirstSeq, rep.To = first, last
	from := max(o.From, 1)
	var prev [32]byte
	known := true
	switch {
	case o.Retained && from <= first:
		from, known = max(first, 1), false
	case from > 1:
		if from > last {
			return rep, fmt.Errorf("verify %s from %d: the stream ends at %d", stream, from, last)
		}
		m, err := s.GetMsg(ctx, from)
		if err != nil {
			return rep, fmt.Errorf("verify %s from %d: %w", stream, from, err)
		}
		b, err := ledger.DecodeBatch(from, m.Data)
		if err != nil {
			return rep, fmt.Errorf("verify %s from %d: %w", stream, from, err)
		}
		cp, ok := findCheckpoint(o.Checkpoints, from-1)
		if !ok || cp.Hash != HashHex(b.Prev) {
			return rep, fmt.Errorf("%w: seq %d's link to seq %d is vouched by no checkpoint%s", ErrUnvouched, from, from-1, checkpointHint(o.Checkpoints))
		}
		prev, rep.Trusted = b.Prev, &cp
	}
	if o.ChainPerSubject && from > max(first, 1) {
		// A checkpoint vouches for one message's hash, not for every subject's chain head.
		return rep, fmt.Errorf("verify %s from %d: a stream chained per subject is verified whole (from its first retained message)", stream, from)
	}
	rep.From = from
	cps := map[uint64]string{}
	for _, c := range o.Checkpoints {
		cps[c.Seq] = c.Hash
	}
	problem := func(p Problem) {
		if rep.FirstBad == 0 {
			rep.FirstBad = p.Seq
		}
		if len(rep.Problems) < o.MaxProblems {
			rep.Problems = append(rep.Problems, p)
		}
	}
	if last == 0 || from > last {
		rep.OK = true
		return rep, nil
	}
	// Where each batch hash was seen, to recognise a copy re-published at the end.
	seen := map[[32]byte]uint64{}
	expected := from
	// Per subject: the previous batch's hash and sequence, once known. A subject first met is
	// known to start from zero only when the whole stream is read from 1; after a gap no
	// subject's head is known (the missing batch may have been any subject's).
	type head struct {
		hash [32]byte
		seq  uint64
	}
	heads := map[string]head{}
	startKnown := known
	err = scanMsgs(ctx, js, stream, from, last, func(seq uint64, subject string, data []byte) error {
		if seq != expected {
			problem(Problem{Seq: expected, Kind: "missing", Detail: gap(expected, seq-1)})
			known = false
			clear(heads)
			startKnown = false
		}
		prevSeq := seq - 1
		if o.ChainPerSubject {
			h, ok := heads[subject]
			switch {
			case ok:
				prev, known, prevSeq = h.hash, true, h.seq
			case startKnown:
				prev, known, prevSeq = [32]byte{}, true, 0
			default:
				known = false
			}
		}
		expected = seq + 1
		rep.Batches++
		b, err := ledger.DecodeBatch(seq, data)
		if err != nil {
			problem(Problem{Seq: seq, Kind: "altered", Detail: fmt.Sprintf("seq %d does not decode as a batch: %v", seq, err)})
			known = false
			return nil
		}
		h := sha256.Sum256(data)
		if known && b.Prev != prev {
			d := fmt.Sprintf("seq %d does not chain to seq %d: the batch at %d is not the one %d was written after (one of them was altered)", seq, prevSeq, prevSeq, seq)
			if prevSeq == 0 {
				d = fmt.Sprintf("seq %d does not start its chain (%s): it names a predecessor that is not there", seq, subject)
			}
			if at, ok := seen[b.Prev]; ok {
				d = fmt.Sprintf("seq %d chains to seq %d, not to seq %d: a batch re-published out of place", seq, at, prevSeq)
			}
			problem(Problem{Seq: seq, Kind: "unchained", Detail: d})
		}
		if o.Keyring != nil {
			for i, se := range b.Events {
				if _, err := se.Open(o.Keyring, ledger.Position{Seq: seq, Index: uint32(i)}); err != nil {
					problem(Problem{Seq: seq, Kind: "altered", Detail: fmt.Sprintf("seq %d: event %d (%s) does not authenticate: its payload or header was changed", seq, i, se.Type())})
					break
				}
			}
		}
		rep.Events += uint64(len(b.Events))
		if want, ok := cps[seq]; ok {
			rep.Checkpoints++
			if want != HashHex(h) {
				problem(Problem{Seq: seq, Kind: "altered", Detail: fmt.Sprintf("seq %d hashes to %s but a checkpoint recorded %s", seq, HashHex(h)[:16], want[:min(16, len(want))])})
			}
		}
		if o.HeadSeq == seq && o.HeadHash != h {
			problem(Problem{Seq: seq, Kind: "altered", Detail: fmt.Sprintf("seq %d is not the batch this node applied", seq)})
		}
		if len(seen) < maxSeen {
			seen[h] = seq
		}
		prev, known = h, true
		heads[subject] = head{hash: h, seq: seq}
		rep.HeadHash = HashHex(h)
		return nil
	})
	if err != nil {
		return rep, err
	}
	if expected <= last {
		problem(Problem{Seq: expected, Kind: "missing", Detail: gap(expected, last)})
	}
	rep.OK = rep.FirstBad == 0
	return rep, nil
}

// maxSeen bounds the memory spent recognising re-published batches (~100 MB).
const maxSeen = 1 << 20

func gap(from, to uint64) string {
	if from == to {
		return fmt.Sprintf("seq %d is missing (deleted)", from)
	}
	return fmt.Sprintf("seqs %d to %d are missing (deleted)", from, to)
}

func findCheckpoint(cps []Checkpoint, seq uint64) (Checkpoint, bool) {
	for i := len(cps) - 1; i >= 0; i-- {
		if cps[i].Seq == seq {
			return cps[i], true
		}
	}
	return Checkpoint{}, false
}

func checkpointHint(cps []Checkpoint) string {
	if len(cps) == 0 {
		return "; there are no checkpoints yet: verify from 1"
	}
	n := len(cps)
	hint := "; start at 1 or right after a checkpointed sequence, e.g. --from "
	for i := max(0, n-3); i < n; i++ {
		if i > max(0, n-3) {
			hint += ", "
		}
		hint += fmt.Sprint(cps[i].Seq + 1)
	}
	return hint
}

// scan delivers the raw messages of stream with sequences in [from, to], in order, and returns
// when it has delivered the last one present (gaps are the caller's to see).
func scan(ctx context.Context, js jetstream.JetStream, stream string, from, to uint64, fn func(seq uint64, stored time.Time, data []byte) error) error {
	if to < from {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	return scanWith(ctx, js, stream, cfg, to, fn)
}

// scanMsgs is scan with each message's subject.
func scanMsgs(ctx context.Context, js jetstream.JetStream, stream string, from, to uint64, fn func(seq uint64, subject string, data []byte) error) error {
	if to < from {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	return scanEach(ctx, js, stream, cfg, to, func(seq uint64, subject string, _ time.Time, data []byte) error {
		return fn(seq, subject, data)
	})
}

func scanWith(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig, to uint64, fn func(seq uint64, stored time.Time, data []byte) error) error {
	return scanEach(ctx, js, stream, cfg, to, func(seq uint64, _ string, stored time.Time, data []byte) error {
		return fn(seq, stored, data)
	})
}

func scanEach(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig, to uint64, fn func(seq uint64, subject string, stored time.Time, data []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	// An empty range has nothing to wait for.
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read %s: %w", stream, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: metadata: %w", stream, err)
		}
		if md.Sequence.Stream > to {
			return nil
		}
		if err := fn(md.Sequence.Stream, m.Subject(), md.Timestamp, m.Data()); err != nil {
			return err
		}
		if md.Sequence.Stream >= to || md.NumPending == 0 {
			return nil
		}
	}
}
