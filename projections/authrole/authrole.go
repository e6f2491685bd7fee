// Package authrole is the view of the auth methods whose whole state is one configuration and
// a set of named roles: Kubernetes and JWT/OIDC. Per mount (keyed by the mount's UUID) it keeps
// the configuration and the roles as the engine encoded them; the engine owns their shape and
// decodes them, the view only folds, indexes and snapshots them. Secrets inside them (a
// client secret, a reviewer JWT) travel only inside sealed events and snapshots.
//
// Apply folds exactly what the events say, so every replay builds the same state.
package authrole

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
)

// Event types. Subjects are ledger.SubjectFor("authrole", mountUUID, name).
const (
	ConfigWritten = "authrole.config.written.v1" // the mount's whole configuration
	RoleWritten   = "authrole.role.written.v1"   // one role's whole state
	RoleDeleted   = "authrole.role.deleted.v1"
)

// ConfigWrittenPayload replaces a mount's configuration.
type ConfigWrittenPayload struct {
	Mount  string          `json:"mount"`
	Config json.RawMessage `json:"config"`
}

// RoleWrittenPayload replaces (or creates) one role.
type RoleWrittenPayload struct {
	Mount string          `json:"mount"`
	Name  string          `json:"name"`
	Role  json.RawMessage `json:"role"`
}

// RoleDeletedPayload removes one role.
type RoleDeletedPayload struct {
	Mount string `json:"mount"`
	Name  string `json:"name"`
}

type mountState struct {
	config json.RawMessage
	roles  map[string]json.RawMessage
}

// View is the authrole view. Returned raw messages are shared with the view and must be
// treated as read-only (Apply replaces them, never changes them in place).
type View struct {
	mu       sync.RWMutex
	mounts   map[string]*mountState
	disabled map[string]bool
}

// New returns an empty view.
func New() *View { return &View{mounts: map[string]*mountState{}, disabled: map[string]bool{}} }

// Name implements projections.View.
func (v *View) Name() string { return "authrole" }

var errMalformed = errors.New("malformed authrole event")

func decode(rec ledger.Record, p any) error { return projections.DecodeMarked(rec, p, errMalformed) }

// compact makes equal documents byte-equal, so digests do not depend on whitespace.
func compact(raw json.RawMessage) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (v *View) state(m string) *mountState {
	s := v.mounts[m]
	if s == nil {
		s = &mountState{roles: map[string]json.RawMessage{}}
		v.mounts[m] = s
	}
	return s
}

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case ConfigWritten:
		var p ConfigWrittenPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		cfg, err := compact(p.Config)
		if p.Mount == "" || err != nil || string(cfg) == "null" {
			return fmt.Errorf("%s without mount or config: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if !v.disabled[p.Mount] {
			v.state(p.Mount).config = cfg
		}
	case RoleWritten:
		var p RoleWrittenPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		role, err := compact(p.Role)
		if p.Mount == "" || p.Name == "" || err != nil || string(role) == "null" {
			return fmt.Errorf("%s without mount, name or role: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if !v.disabled[p.Mount] {
			v.state(p.Mount).roles[p.Name] = role
		}
	case RoleDeleted:
		var p RoleDeletedPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.mounts[p.Mount]; s != nil {
			delete(s.roles, p.Name)
		}
	case mount.Disabled:
		var p mount.DisabledPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		projections.DisableMount(v.mounts, v.disabled, p.UUID)
	}
	return nil
}

// Config returns a mount's configuration, if it has one.
func (v *View) Config(mountUUID string) (json.RawMessage, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s := v.mounts[mountUUID]; s != nil && s.config != nil {
		return s.config, true
	}
	return nil, false
}

// Role returns one role of a mount.
func (v *View) Role(mountUUID, name string) (json.RawMessage, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s := v.mounts[mountUUID]; s != nil {
		r, ok := s.roles[name]
		return r, ok
	}
	return nil, false
}

// Roles lists the role names of a mount, sorted.
func (v *View) Roles(mountUUID string) []string {
	v.mu.RLock()
	var out []string
	if s := v.mounts[mountUUID]; s != nil {
		for n := range s.roles {
			out = append(out, n)
		}
	}
	v.mu.RUnlock()
	sort.Strings(out)
	return out
}

type snapRole struct {
	Name string          `json:"name"`
	Role json.RawMessage `json:"role"`
}

type snapMount struct {
	UUID   string          `json:"uuid"`
	Config json.RawMessage `json:"config,omitempty"`
	Roles  []snapRole      `json:"roles"`
}

type snapshot struct {
	Version  int         `json:"v"`
	Mounts   []snapMount `json:"mounts"`
	Disabled []string    `json:"disabled"`
}

// Snapshot implements projections.View. Everything is sorted, so equal views encode equally.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	s := snapshot{Version: 1, Mounts: []snapMount{}}
	for uuid, st := range v.mounts {
		sm := snapMount{UUID: uuid, Config: st.config, Roles: []snapRole{}}
		for n, r := range st.roles {
			sm.Roles = append(sm.Roles, snapRole{Name: n, Role: r})
		}
		sort.Slice(sm.Roles, func(i, j int) bool { return sm.Roles[i].Name < sm.Roles[j].Name })
		s.Mounts = append(s.Mounts, sm)
	}
	s.Disabled = projections.SortedKeys(v.disabled)
	v.mu.RUnlock()
	sort.Slice(s.Mounts, func(i, j int) bool { return s.Mounts[i].UUID < s.Mounts[j].UUID })
	return json.Marshal(s)
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore authrole view: %w", err)
	}
	if s.Version != 1 {
		return fmt.Errorf("restore authrole view: unknown snapshot version %d", s.Version)
	}
	mounts := make(map[string]*mountState, len(s.Mounts))
	for _, sm := range s.Mounts {
		if sm.UUID == "" || mounts[sm.UUID] != nil {
			return fmt.Errorf("restore authrole view: missing or duplicate mount: %w", errMalformed)
		}
		st := &mountState{config: sm.Config, roles: make(map[string]json.RawMessage, len(sm.Roles))}
		for _, r := range sm.Roles {
			if r.Name == "" || st.roles[r.Name] != nil {
				return fmt.Errorf("restore authrole view: missing or duplicate role: %w", errMalformed)
			}
			st.roles[r.Name] = r.Role
		}
		mounts[sm.UUID] = st
	}
	disabled := projections.SetOf(s.Disabled)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mounts, v.disabled = mounts, disabled
	return nil
}
