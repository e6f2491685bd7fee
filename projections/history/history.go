// Package history is the index of the log by aggregate: for each event subject (a secret, a
// policy), the positions of its events in log order. It holds positions only — no header, no
// payload — so it stays small (about 16 bytes an event) while "what happened to this secret?"
// and "what did it hold at T?" need not scan the log: the events are read back from the log at
// the positions it lists.
//
// Subjects of a disabled mount stay in the index (subjects are hashes: the view cannot tell
// which mount they belong to); nothing can reach them any more, as lookups go through the
// current mount's UUID.
package history

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

// View is the subject → positions index.
type View struct {
	kinds map[string]bool // aggregate kinds indexed; nil: every kind

	mu       sync.RWMutex
	subjects map[string][]ledger.Position
}

// New returns an empty index of the subjects of the given aggregate kinds ("kv", "policy": the
// part of ledger.SubjectFor's result before the dot), or of every subject when none is given.
func New(kinds ...string) *View {
	v := &View{subjects: map[string][]ledger.Position{}}
	if len(kinds) > 0 {
		v.kinds = make(map[string]bool, len(kinds))
		for _, k := range kinds {
			v.kinds[k] = true
		}
	}
	return v
}

// Name implements projections.View.
func (v *View) Name() string { return "history" }

func (v *View) indexed(subject string) bool {
	if subject == "" {
		return false
	}
	if v.kinds == nil {
		return true
	}
	kind, _, _ := strings.Cut(subject, ".")
	return v.kinds[kind]
}

// Apply implements projections.View. A position at or before the subject's last one is
// ignored, so applying an event twice changes nothing.
func (v *View) Apply(rec ledger.Record) error {
	if !v.indexed(rec.Subject) {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	ps := v.subjects[rec.Subject]
	if n := len(ps); n > 0 && !ps[n-1].Less(rec.Pos) {
		return nil
	}
	v.subjects[rec.Subject] = append(ps, rec.Pos)
	return nil
}

// Positions returns the positions of subject's events in log order, nil when it has none.
func (v *View) Positions(subject string) []ledger.Position {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return append([]ledger.Position(nil), v.subjects[subject]...)
}

// The index has an entry per event subject (one per secret: a million is ordinary), and unseal
// loads it before the first read, so its snapshot is binary (decoding the JSON of earlier
// builds took a tenth of a second per 100,000 secrets).
//
// Format 2 (this build writes it; format 1, the JSON below, still restores):
//
//	0x02, uvarint n, n × subject sorted by name
//	subject  = string name, uvarint m, m × position in log order
//	position = uvarint seq - previous seq (the first: seq), uvarint index
//	string   = uvarint length, the bytes
//
// Sorted, so equal indexes encode to equal bytes and the digest is the hash of it.
const snapshotBinary = 2

var errSnapshot = errors.New("restore history view: truncated or malformed snapshot")

// snapshot is format 1: each position as [seq, index].
type snapshot struct {
	Version  int                    `json:"v"`
	Subjects map[string][][2]uint64 `json:"subjects"`
}

// Snapshot implements projections.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	names := projections.SortedKeys(v.subjects)
	size := 1 + projections.UvarintLen(uint64(len(names)))
	for _, subj := range names {
		ps := v.subjects[subj]
		size += projections.StringLen(subj) + projections.UvarintLen(uint64(len(ps)))
		prev := uint64(0)
		for _, p := range ps {
			size += projections.UvarintLen(p.Seq-prev) + projections.UvarintLen(uint64(p.Index))
			prev = p.Seq
		}
	}
	b := make([]byte, 0, size)
	b = append(b, snapshotBinary)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, subj := range names {
		ps := v.subjects[subj]
		b = projections.AppendString(b, subj)
		b = binary.AppendUvarint(b, uint64(len(ps)))
		prev := uint64(0)
		for _, p := range ps {
			b = binary.AppendUvarint(b, p.Seq-prev)
			b = binary.AppendUvarint(b, uint64(p.Index))
			prev = p.Seq
		}
	}
	return b, nil
}

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var subjects map[string][]ledger.Position
	var err error
	if len(data) > 0 && data[0] == snapshotBinary {
		subjects, err = decodeBinary(data[1:])
	} else {
		subjects, err = decodeJSON(data)
	}
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.subjects = subjects
	return nil
}

func decodeBinary(data []byte) (map[string][]ledger.Position, error) {
	r := projections.NewReader(data, errSnapshot)
	n := r.Count()
	subjects := make(map[string][]ledger.Position, n)
	last := ""
	for i := 0; i < n && r.Err == nil; i++ {
		subj := r.String()
		if i > 0 && subj <= last {
			return nil, fmt.Errorf("restore history view: subjects out of order or repeated at %q", subj)
		}
		last = subj
		m := r.Count()
		ps := make([]ledger.Position, m)
		seq := uint64(0)
		for j := range ps {
			d := r.Uvarint()
			if seq+d < seq {
				r.Fail()
			}
			seq += d
			idx := r.Uvarint()
			if idx > uint64(^uint32(0)) {
				return nil, fmt.Errorf("restore history view: subject %s: index %d out of range", subj, idx)
			}
			ps[j] = ledger.Position{Seq: seq, Index: uint32(idx)}
			if j > 0 && !ps[j-1].Less(ps[j]) && r.Err == nil {
				return nil, fmt.Errorf("restore history view: subject %s: positions out of order", subj)
			}
		}
		subjects[subj] = ps
	}
	if r.Err == nil && r.Rest() != 0 {
		r.Fail()
	}
	if r.Err != nil {
		return nil, r.Err
	}
	return subjects, nil
}

func decodeJSON(data []byte) (map[string][]ledger.Position, error) {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("restore history view: %w", err)
	}
	if s.Version != 1 || s.Subjects == nil {
		return nil, fmt.Errorf("restore history view: unknown snapshot version %d", s.Version)
	}
	subjects := make(map[string][]ledger.Position, len(s.Subjects))
	for subj, enc := range s.Subjects {
		ps := make([]ledger.Position, len(enc))
		for i, e := range enc {
			if e[1] > uint64(^uint32(0)) {
				return nil, fmt.Errorf("restore history view: subject %s: index %d out of range", subj, e[1])
			}
			ps[i] = ledger.Position{Seq: e[0], Index: uint32(e[1])}
			if i > 0 && !ps[i-1].Less(ps[i]) {
				return nil, fmt.Errorf("restore history view: subject %s: positions out of order", subj)
			}
		}
		subjects[subj] = ps
	}
	return subjects, nil
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }
