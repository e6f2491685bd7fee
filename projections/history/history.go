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
	"encoding/json"
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

// snapshot encodes each position as [seq, index]; subjects sort by key, so equal indexes
// encode equally.
type snapshot struct {
	Version  int                    `json:"v"`
	Subjects map[string][][2]uint64 `json:"subjects"`
}

// Snapshot implements projections.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := snapshot{Version: 1, Subjects: make(map[string][][2]uint64, len(v.subjects))}
	for subj, ps := range v.subjects {
		enc := make([][2]uint64, len(ps))
		for i, p := range ps {
			enc[i] = [2]uint64{p.Seq, uint64(p.Index)}
		}
		s.Subjects[subj] = enc
	}
	return json.Marshal(s)
}

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore history view: %w", err)
	}
	if s.Version != 1 || s.Subjects == nil {
		return fmt.Errorf("restore history view: unknown snapshot version %d", s.Version)
	}
	subjects := make(map[string][]ledger.Position, len(s.Subjects))
	for subj, enc := range s.Subjects {
		ps := make([]ledger.Position, len(enc))
		for i, e := range enc {
			if e[1] > uint64(^uint32(0)) {
				return fmt.Errorf("restore history view: subject %s: index %d out of range", subj, e[1])
			}
			ps[i] = ledger.Position{Seq: e[0], Index: uint32(e[1])}
			if i > 0 && !ps[i-1].Less(ps[i]) {
				return fmt.Errorf("restore history view: subject %s: positions out of order", subj)
			}
		}
		subjects[subj] = ps
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.subjects = subjects
	return nil
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }
