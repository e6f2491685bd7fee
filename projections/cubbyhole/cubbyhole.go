// Package cubbyhole is the view of every token's cubbyhole: a private path → value store per
// token, keyed by the token's MAC, each value sealed under its own data key (see
// ledger.DataKeys) so it can be crypto-shredded. The view never holds plaintext or a data key.
// A token's whole cubbyhole leaves the view on Destroyed, which the pipeline appends once the
// token is revoked, expired or used up; response wrapping keeps the wrapped response at
// "response" in the wrapping token's cubbyhole.
//
// The view also remembers, until their original expiry, the wrapping tokens that were
// unwrapped, so that a second unwrap can be reported as a possible interception.
package cubbyhole

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

// Event types. Subjects are ledger.SubjectFor("cubbyhole", tokenMAC).
const (
	Written   = "cubbyhole.written.v1"
	Deleted   = "cubbyhole.deleted.v1"
	Destroyed = "cubbyhole.destroyed.v1" // the token's whole cubbyhole
	Unwrapped = "wrapping.unwrapped.v1"  // a wrapping token was unwrapped (its cubbyhole goes too)
)

// WrittenPayload replaces the value at Path in the cubbyhole of the token whose MAC is Token.
// Shred holds the key of the replaced value.
type WrittenPayload struct {
	Token  string    `json:"token"`
	Path   string    `json:"path"`
	Time   time.Time `json:"time"`
	KeyID  string    `json:"key_id"`
	Sealed []byte    `json:"sealed"`
	Shred  []string  `json:"shred,omitempty"`
}

// DeletedPayload removes one path.
type DeletedPayload struct {
	Token string   `json:"token"`
	Path  string   `json:"path"`
	Shred []string `json:"shred,omitempty"`
}

// DestroyedPayload removes a token's whole cubbyhole; Shred lists its keys.
type DestroyedPayload struct {
	Token string   `json:"token"`
	Shred []string `json:"shred,omitempty"`
}

// UnwrappedPayload records an unwrap; Until is the wrapping token's original expiry, after
// which the view forgets it.
type UnwrappedPayload struct {
	Token    string    `json:"token"`
	Accessor string    `json:"accessor"`
	Time     time.Time `json:"time"`
	Until    time.Time `json:"until"`
	Shred    []string  `json:"shred,omitempty"`
}

// Value is one sealed value.
type Value struct {
	Created time.Time `json:"created"`
	KeyID   string    `json:"key_id"`
	Sealed  []byte    `json:"sealed"`
}

// View is the cubbyhole view.
type View struct {
	mu        sync.RWMutex
	tokens    map[string]map[string]Value // token MAC → path → value
	unwrapped map[string]UnwrappedPayload // token MAC → its unwrap
}

// New returns an empty view.
func New() *View {
	return &View{tokens: map[string]map[string]Value{}, unwrapped: map[string]UnwrappedPayload{}}
}

// Name implements projections.View.
func (v *View) Name() string { return "cubbyhole" }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case Written:
		var p WrittenPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		m := v.tokens[p.Token]
		if m == nil {
			m = map[string]Value{}
			v.tokens[p.Token] = m
		}
		m[p.Path] = Value{Created: p.Time, KeyID: p.KeyID, Sealed: p.Sealed}
	case Deleted:
		var p DeletedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if m := v.tokens[p.Token]; m != nil {
			delete(m, p.Path)
			if len(m) == 0 {
				delete(v.tokens, p.Token)
			}
		}
	case Destroyed:
		var p DestroyedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		delete(v.tokens, p.Token)
	case Unwrapped:
		var p UnwrappedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		delete(v.tokens, p.Token)
		// Forget unwraps whose tokens would have expired by now: decided by the event's time,
		// so a rebuild forgets exactly the same ones.
		for mac, u := range v.unwrapped {
			if u.Until.Before(p.Time) {
				delete(v.unwrapped, mac)
			}
		}
		v.unwrapped[p.Token] = p
	}
	return nil
}

// Get returns the value at path in a token's cubbyhole.
func (v *View) Get(token, path string) (Value, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	val, ok := v.tokens[token][path]
	return val, ok
}

// List returns what is directly under prefix ("" or ending in "/"), folders with a trailing
// "/", sorted.
func (v *View) List(token, prefix string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	seen := map[string]bool{}
	for p := range v.tokens[token] {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		if i := strings.Index(rest, "/"); i >= 0 {
			rest = rest[:i+1]
		}
		seen[rest] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// KeyIDs returns the data keys of a token's cubbyhole, sorted; every key of every token for "".
func (v *View) KeyIDs(token string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []string
	for mac, m := range v.tokens {
		if token != "" && mac != token {
			continue
		}
		for _, val := range m {
			out = append(out, val.KeyID)
		}
	}
	sort.Strings(out)
	return out
}

// Has reports whether a token has anything in its cubbyhole.
func (v *View) Has(token string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.tokens[token]) > 0
}

// Tokens lists the MACs of the tokens with a non-empty cubbyhole, sorted.
func (v *View) Tokens() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]string, 0, len(v.tokens))
	for mac := range v.tokens {
		out = append(out, mac)
	}
	sort.Strings(out)
	return out
}

// WasUnwrapped returns the unwrap of a wrapping token, if it was unwrapped and would not have
// expired yet.
func (v *View) WasUnwrapped(token string) (UnwrappedPayload, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	u, ok := v.unwrapped[token]
	return u, ok
}

type state struct {
	Tokens    map[string]map[string]Value `json:"tokens"`
	Unwrapped map[string]UnwrappedPayload `json:"unwrapped"`
}

// Snapshot implements projections.View. encoding/json sorts map keys, so equal states encode
// equally.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return json.Marshal(state{Tokens: v.tokens, Unwrapped: v.unwrapped})
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore cubbyhole view: %w", err)
	}
	if s.Tokens == nil {
		s.Tokens = map[string]map[string]Value{}
	}
	if s.Unwrapped == nil {
		s.Unwrapped = map[string]UnwrappedPayload{}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tokens, v.unwrapped = s.Tokens, s.Unwrapped
	return nil
}
