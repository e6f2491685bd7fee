// Package passwordpolicy is the view of password policies (sys/policies/password): each policy's
// text by name, as accepted by the writer (which validated that it generates). Parsing and
// generation live in engines/passwordpolicy; this view only stores what was accepted.
package passwordpolicy

import (
	"sort"
	"sync"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

// Event types.
const (
	Written = "password_policy.written.v1"
	Deleted = "password_policy.deleted.v1"
)

// WrittenPayload stores a policy.
type WrittenPayload struct {
	Name   string `json:"name"`
	Policy string `json:"policy"`
}

// DeletedPayload removes a policy.
type DeletedPayload struct {
	Name string `json:"name"`
}

// Entry is a stored policy.
type Entry struct {
	Name    string          `json:"name"`
	Policy  string          `json:"policy"`
	Version ledger.Position `json:"version"` // position of the write, so parsed forms can be cached
}

// View holds the password policies.
type View struct {
	mu       sync.RWMutex
	policies map[string]Entry
}

// New returns an empty view.
func New() *View { return &View{policies: map[string]Entry{}} }

// Name implements projections.View.
func (v *View) Name() string { return "password_policy" }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case Written:
		var p WrittenPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		v.policies[p.Name] = Entry{Name: p.Name, Policy: p.Policy, Version: rec.Pos}
		v.mu.Unlock()
	case Deleted:
		var p DeletedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		delete(v.policies, p.Name)
		v.mu.Unlock()
	}
	return nil
}

// Get returns the policy called name.
func (v *View) Get(name string) (Entry, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	e, ok := v.policies[name]
	return e, ok
}

// Names returns every policy name, sorted.
func (v *View) Names() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]string, 0, len(v.policies))
	for n := range v.policies {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Snapshot implements projections.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return projections.EncodeList(v.policies)
}

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	m, err := projections.DecodeList("password policy", data, func(e Entry) string { return e.Name })
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.policies = m
	v.mu.Unlock()
	return nil
}
