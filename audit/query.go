package audit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledger-secrets/ledger/ledger"
)

// Reader reads audit records straight from the log and LEDGER_AUDIT, without any device: what
// `ledger audit tail` and `ledger audit query` show. Each record is one line: its response
// entry, which carries the request, the response or error, and the auth block.
type Reader struct {
	JS      jetstream.JetStream
	Keyring *ledger.Keyring
}

// Filter selects records.
type Filter struct {
	Path        string // request path prefix
	Accessor    string // the token accessor (as issued, not HMACed)
	Since       time.Time
	Until       time.Time
	ErrorsOnly  bool
	ExcludePath string // request path prefix to leave out (a tail -f leaves out its own polls)
}

func (f Filter) match(r Record) bool {
	p := r.Request.Path
	switch {
	case f.Path != "" && !strings.HasPrefix(p, strings.TrimPrefix(f.Path, "/")):
		return false
	case f.ExcludePath != "" && strings.HasPrefix(p, f.ExcludePath):
		return false
	case f.ErrorsOnly && r.Error == "":
		return false
	case !f.Since.IsZero() && r.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && r.Time.After(f.Until):
		return false
	}
	if f.Accessor != "" {
		a := r.Request.ClientTokenAccessor
		if r.Auth != nil && r.Auth.Accessor != "" {
			a = r.Auth.Accessor
		}
		respAcc := ""
		if r.Response != nil && r.Response.Auth != nil {
			respAcc = r.Response.Auth.Accessor
		}
		if a != f.Accessor && respAcc != f.Accessor {
			return false
		}
	}
	return true
}

// Cursor is where a tail stopped: the last sequence read in the log and in LEDGER_AUDIT.
type Cursor struct {
	Log, Audit uint64
}

func (c Cursor) String() string { return fmt.Sprintf("%d:%d", c.Log, c.Audit) }

// ParseCursor reads a Cursor's String.
func ParseCursor(s string) (Cursor, error) {
	l, a, ok := strings.Cut(s, ":")
	if !ok {
		return Cursor{}, fmt.Errorf("cursor %q: expected LOGSEQ:AUDITSEQ", s)
	}
	ls, err1 := strconv.ParseUint(l, 10, 64)
	as, err2 := strconv.ParseUint(a, 10, 64)
	if err1 != nil || err2 != nil {
		return Cursor{}, fmt.Errorf("cursor %q: expected LOGSEQ:AUDITSEQ", s)
	}
	return Cursor{Log: ls, Audit: as}, nil
}

type found struct {
	pos Position
	rec Record
}

// streams of records, in the order they are read.
var recordStreams = []string{ledger.StreamName, StreamName}

// Tail returns the last n records matching f, oldest first, and the cursor to follow on from.
func (r Reader) Tail(ctx context.Context, n int, f Filter) ([]Entry, Cursor, error) {
	var all []found
	var cur Cursor
	for _, name := range recordStreams {
		s, err := r.JS.Stream(ctx, name)
		if err != nil {
			return nil, cur, fmt.Errorf("tail %s: %w", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, cur, fmt.Errorf("tail %s: %w", name, err)
		}
		last := info.State.LastSeq
		if name == ledger.StreamName {
			cur.Log = last
		} else {
			cur.Audit = last
		}
		var got []found
		const maxReads = 5000
		for seq, reads := last, 0; seq >= max(info.State.FirstSeq, 1) && seq > 0 && len(got) < n && reads < maxReads; seq, reads = seq-1, reads+1 {
			m, err := s.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return nil, cur, fmt.Errorf("tail %s seq %d: %w", name, seq, err)
			}
			var batch []found
			if err := r.records(name, seq, m.Data, func(p Position, rec Record) {
				if f.match(rec) {
					batch = append(batch, found{p, rec})
				}
			}); err != nil {
				return nil, cur, err
			}
			got = append(batch, got...)
		}
		all = append(all, got...)
	}
	sortFound(all)
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return r.entries(all), cur, nil
}

// Follow returns the records after cursor c matching f, oldest first (at most about max per
// stream), and the cursor to continue from.
func (r Reader) Follow(ctx context.Context, c Cursor, f Filter, maxPerStream int) ([]Entry, Cursor, error) {
	var all []found
	next := c
	for _, name := range recordStreams {
		from := c.Audit + 1
		if name == ledger.StreamName {
			from = c.Log + 1
		}
		s, err := r.JS.Stream(ctx, name)
		if err != nil {
			return nil, c, fmt.Errorf("follow %s: %w", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, c, fmt.Errorf("follow %s: %w", name, err)
		}
		to := info.State.LastSeq
		n := 0
		errFull := errors.New("full")
		err = scan(ctx, r.JS, name, from, to, func(seq uint64, _ time.Time, data []byte) error {
			if err := r.records(name, seq, data, func(p Position, rec Record) {
				if f.match(rec) {
					all = append(all, found{p, rec})
					n++
				}
			}); err != nil {
				return err
			}
			if name == ledger.StreamName {
				next.Log = seq
			} else {
				next.Audit = seq
			}
			if n >= maxPerStream {
				return errFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errFull) {
			return nil, c, err
		}
		if err == nil {
			if name == ledger.StreamName {
				next.Log = max(next.Log, to)
			} else {
				next.Audit = max(next.Audit, to)
			}
		}
	}
	sortFound(all)
	return r.entries(all), next, nil
}

// Query returns the records matching f, oldest first, at most limit; truncated says more
// matched.
func (r Reader) Query(ctx context.Context, f Filter, limit int) ([]Entry, bool, error) {
	var all []found
	truncated := false
	for _, name := range recordStreams {
		s, err := r.JS.Stream(ctx, name)
		if err != nil {
			return nil, false, fmt.Errorf("query %s: %w", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("query %s: %w", name, err)
		}
		if info.State.Msgs == 0 {
			continue
		}
		cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
		if !f.Since.IsZero() {
			// A record is stored after its request began: messages stored before Since hold
			// nothing newer.
			t := f.Since
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
		}
		// A record reaches the stream at most the commit deadline after its request began.
		var until time.Time
		if !f.Until.IsZero() {
			until = f.Until.Add(2 * time.Minute)
		}
		n := 0
		errFull := errors.New("full")
		err = scanWith(ctx, r.JS, name, cfg, info.State.LastSeq, func(seq uint64, stored time.Time, data []byte) error {
			if err := r.records(name, seq, data, func(p Position, rec Record) {
				if f.match(rec) {
					all = append(all, found{p, rec})
					n++
				}
			}); err != nil {
				return err
			}
			if n > limit {
				return errFull
			}
			if !until.IsZero() && stored.After(until) {
				return errFull
			}
			return nil
		})
		if errors.Is(err, errFull) {
			err = nil
		}
		if err != nil {
			return nil, false, err
		}
	}
	sortFound(all)
	if len(all) > limit {
		all, truncated = all[:limit], true
	}
	return r.entries(all), truncated, nil
}

// records decodes the audit records of one batch.
func (r Reader) records(stream string, seq uint64, data []byte, fn func(Position, Record)) error {
	b, err := ledger.DecodeBatch(seq, data)
	if err != nil {
		return err
	}
	for i, se := range b.Events {
		if se.Type() != Recorded {
			continue
		}
		rec, err := se.Open(r.Keyring, ledger.Position{Seq: seq, Index: uint32(i)})
		if err != nil {
			return err
		}
		ar, err := Decode(rec.Payload)
		if err != nil {
			return fmt.Errorf("%s seq %d.%d: %w", stream, seq, i, err)
		}
		fn(Position{Stream: stream, Seq: seq, Index: uint32(i)}, ar)
	}
	return nil
}

func (r Reader) entries(fs []found) []Entry {
	out := make([]Entry, 0, len(fs))
	for _, f := range fs {
		p := f.pos
		es := f.rec.Entries(r.Keyring, DefaultFormat, &p)
		out = append(out, es[len(es)-1])
	}
	return out
}

func sortFound(fs []found) {
	sort.SliceStable(fs, func(i, j int) bool {
		if !fs[i].rec.Time.Equal(fs[j].rec.Time) {
			return fs[i].rec.Time.Before(fs[j].rec.Time)
		}
		if fs[i].pos.Stream != fs[j].pos.Stream {
			return fs[i].pos.Stream < fs[j].pos.Stream
		}
		return fs[i].pos.Seq < fs[j].pos.Seq || (fs[i].pos.Seq == fs[j].pos.Seq && fs[i].pos.Index < fs[j].pos.Index)
	})
}
