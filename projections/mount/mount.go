// Package mount is the mount table view: which secret engines and auth methods are mounted
// where, with their UUIDs, accessors, options and lease tuning.
package mount

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

// Event types.
const (
	Enabled  = "mount.enabled.v1"
	Disabled = "mount.disabled.v1" // views keyed by the mount's UUID drop its data on this event
	Tuned    = "mount.tuned.v1"
	// Moved re-keys a mount to a new path (sys/remount). Views keyed by the mount's UUID keep
	// its data; the lease view renames the mount's lease IDs.
	Moved = "mount.moved.v1"
)

// MovedPayload moves the mount with UUID from path From to path To.
type MovedPayload struct {
	From        string    `json:"from"`
	To          string    `json:"to"`
	UUID        string    `json:"uuid"`
	MigrationID string    `json:"migration_id"`
	Time        time.Time `json:"time"`
}

// Entry is one mounted backend. Path has a trailing slash; auth mounts start with "auth/".
type Entry struct {
	Path            string            `json:"path"`
	Type            string            `json:"type"`
	Description     string            `json:"description"`
	UUID            string            `json:"uuid"`
	Accessor        string            `json:"accessor"`
	Options         map[string]string `json:"options,omitempty"`
	DefaultLeaseTTL time.Duration     `json:"default_lease_ttl"`
	MaxLeaseTTL     time.Duration     `json:"max_lease_ttl"`
	Local           bool              `json:"local"`
	SealWrap        bool              `json:"seal_wrap"`
	CreatedAt       time.Time         `json:"created_at"`
	// Vault's tunables that only shape answers and audit records: "" (default), "unauth" or
	// "hidden"; request and response keys audit devices record without HMAC.
	ListingVisibility        string   `json:"listing_visibility,omitempty"`
	AuditNonHMACRequestKeys  []string `json:"audit_non_hmac_request_keys,omitempty"`
	AuditNonHMACResponseKeys []string `json:"audit_non_hmac_response_keys,omitempty"`
}

// IsAuth reports whether the entry is an auth method.
func (e Entry) IsAuth() bool { return strings.HasPrefix(e.Path, "auth/") }

// DisabledPayload names the mount removed.
type DisabledPayload struct {
	Path string `json:"path"`
	UUID string `json:"uuid"`
}

// TunedPayload changes a mount's tunables. Nil fields are unchanged.
type TunedPayload struct {
	Path            string            `json:"path"`
	DefaultLeaseTTL *time.Duration    `json:"default_lease_ttl,omitempty"`
	MaxLeaseTTL     *time.Duration    `json:"max_lease_ttl,omitempty"`
	Description     *string           `json:"description,omitempty"`
	Options         map[string]string `json:"options,omitempty"`
	// Nil: unchanged; an empty list clears.
	ListingVisibility        *string   `json:"listing_visibility,omitempty"`
	AuditNonHMACRequestKeys  *[]string `json:"audit_non_hmac_request_keys,omitempty"`
	AuditNonHMACResponseKeys *[]string `json:"audit_non_hmac_response_keys,omitempty"`
}

// View is the mount table.
type View struct {
	mu     sync.RWMutex
	mounts map[string]Entry // by path
	sorted []string         // paths, longest first, for prefix routing
}

// New returns an empty mount table.
func New() *View { return &View{mounts: map[string]Entry{}} }

// Name implements projections.View.
func (v *View) Name() string { return "mount" }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch rec.Type {
	case Enabled:
		var e Entry
		if err := projections.Decode(rec, &e); err != nil {
			return err
		}
		v.mounts[e.Path] = e
	case Disabled:
		var p DisabledPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		delete(v.mounts, p.Path)
	case Tuned:
		var p TunedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		e, ok := v.mounts[p.Path]
		if !ok {
			return nil
		}
		if p.DefaultLeaseTTL != nil {
			e.DefaultLeaseTTL = *p.DefaultLeaseTTL
		}
		if p.MaxLeaseTTL != nil {
			e.MaxLeaseTTL = *p.MaxLeaseTTL
		}
		if p.Description != nil {
			e.Description = *p.Description
		}
		if p.ListingVisibility != nil {
			e.ListingVisibility = *p.ListingVisibility
		}
		if p.AuditNonHMACRequestKeys != nil {
			e.AuditNonHMACRequestKeys = append([]string(nil), *p.AuditNonHMACRequestKeys...)
		}
		if p.AuditNonHMACResponseKeys != nil {
			e.AuditNonHMACResponseKeys = append([]string(nil), *p.AuditNonHMACResponseKeys...)
		}
		if len(p.Options) > 0 {
			opts := map[string]string{}
			for k, val := range e.Options {
				opts[k] = val
			}
			for k, val := range p.Options {
				opts[k] = val
			}
			e.Options = opts
		}
		v.mounts[p.Path] = e
	case Moved:
		var p MovedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		e, ok := v.mounts[p.From]
		if _, taken := v.mounts[p.To]; !ok || e.UUID != p.UUID || taken {
			return nil // decided against a table that changed since: nothing to move
		}
		delete(v.mounts, p.From)
		e.Path = p.To
		v.mounts[p.To] = e
	default:
		return nil
	}
	v.resort()
	return nil
}

func (v *View) resort() {
	v.sorted = v.sorted[:0]
	for p := range v.mounts {
		v.sorted = append(v.sorted, p)
	}
	sort.Slice(v.sorted, func(i, j int) bool {
		if len(v.sorted[i]) != len(v.sorted[j]) {
			return len(v.sorted[i]) > len(v.sorted[j])
		}
		return v.sorted[i] < v.sorted[j]
	})
}

// Match finds the mount holding path (longest prefix). path has no leading slash.
func (v *View) Match(path string) (Entry, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, p := range v.sorted {
		if strings.HasPrefix(path, p) || path+"/" == p {
			return v.mounts[p], true
		}
	}
	return Entry{}, false
}

// Get returns the mount at exactly path (with trailing slash).
func (v *View) Get(path string) (Entry, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	e, ok := v.mounts[path]
	return e, ok
}

// List returns every mount, sorted by path.
func (v *View) List() []Entry {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]Entry, 0, len(v.mounts))
	for _, e := range v.mounts {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Snapshot implements projections.View; entries sorted by path, so equal tables encode equally.
func (v *View) Snapshot() ([]byte, error) { return json.Marshal(v.List()) }

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var list []Entry
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("restore mount view: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mounts = map[string]Entry{}
	for _, e := range list {
		v.mounts[e.Path] = e
	}
	v.resort()
	return nil
}
