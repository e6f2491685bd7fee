// Package approle is the view of the AppRole auth method: per mount (keyed by the mount's
// UUID) its roles, the index from role_id to role, and the live secret IDs of every role.
//
// A secret ID string never reaches the view, the log or a snapshot: the engine stores it as
// keyring.MAC("approle-secret-id", role key + ":" + secret ID), and the view knows it only by
// that MAC and by its random accessor. The role key is random per role incarnation, so a
// secret ID is bound to the role it was issued for and dies with it.
//
// Apply folds exactly what the events say. Times come from the events, never from the clock,
// so every replay builds the same state; expiry is judged by readers against their own now.
package approle

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// Event types. Every event of a role and of its secret IDs has the role's subject,
// ledger.SubjectFor("approle", mountUUID, roleName).
const (
	RoleWritten       = "approle.role.written.v1"        // a role created or changed: its whole state
	RoleDeleted       = "approle.role.deleted.v1"        // the role and every secret ID of it
	SecretIDCreated   = "approle.secret_id.created.v1"   // generated or custom
	SecretIDUsed      = "approle.secret_id.used.v1"      // one login with a limited-use secret ID
	SecretIDDestroyed = "approle.secret_id.destroyed.v1" // destroyed, or tidied once expired
)

// Reasons carried by SecretIDDestroyedPayload.
const (
	ReasonDestroyed = "destroyed"
	ReasonExpired   = "expired"
)

// Role is one AppRole.
type Role struct {
	Name string `json:"name"` // lower-cased
	// Key is random per role incarnation (Vault's per-role HMAC key): secret-ID MACs include it,
	// so a secret ID works for no other role, and none survives its role's deletion.
	Key                string           `json:"key"`
	RoleID             string           `json:"role_id"`
	BindSecretID       bool             `json:"bind_secret_id"`
	SecretIDBoundCIDRs []string         `json:"secret_id_bound_cidrs,omitempty"`
	SecretIDNumUses    int              `json:"secret_id_num_uses,omitempty"`
	SecretIDTTL        time.Duration    `json:"secret_id_ttl,omitempty"`
	LocalSecretIDs     bool             `json:"local_secret_ids,omitempty"`
	Token              tokenview.Params `json:"token"`
	// The deprecated "policies" and "period" as last written, which Vault still shows on read.
	LegacyPolicies []string      `json:"legacy_policies,omitempty"`
	LegacyPeriod   time.Duration `json:"legacy_period,omitempty"`
	Created        time.Time     `json:"created"`
	Updated        time.Time     `json:"updated"`
}

// SecretID is one live secret ID, known by its MAC.
type SecretID struct {
	MAC      string `json:"mac"`
	Accessor string `json:"accessor"`
	Role     string `json:"role"`     // role name
	RoleKey  string `json:"role_key"` // Role.Key of the incarnation it was issued for
	// NumUses is the number of logins left; 0 means unlimited. A limited secret ID leaves the
	// view at its last use.
	NumUses         int               `json:"num_uses,omitempty"`
	TTL             time.Duration     `json:"ttl,omitempty"`
	CreationTime    time.Time         `json:"creation_time"`
	ExpirationTime  time.Time         `json:"expiration_time,omitzero"` // zero: never expires
	LastUpdatedTime time.Time         `json:"last_updated_time"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	CIDRList        []string          `json:"cidr_list,omitempty"`
	TokenBoundCIDRs []string          `json:"token_bound_cidrs,omitempty"`
}

// Expired reports whether the secret ID's expiration is at or before now. It stays in the view
// until a tidy destroys it; logins refuse it from the exact instant.
func (s SecretID) Expired(now time.Time) bool {
	return !s.ExpirationTime.IsZero() && !now.Before(s.ExpirationTime)
}

// RoleWrittenPayload is a role's whole state after a write.
type RoleWrittenPayload struct {
	Mount string `json:"mount"`
	Role  Role   `json:"role"`
}

// RoleDeletedPayload removes a role and its secret IDs.
type RoleDeletedPayload struct {
	Mount string `json:"mount"`
	Name  string `json:"name"`
}

// SecretIDCreatedPayload adds a secret ID. The view ignores it when the role it names (by name
// and key) is gone: a secret ID decided just before its role's deletion never becomes valid.
type SecretIDCreatedPayload struct {
	Mount    string   `json:"mount"`
	SecretID SecretID `json:"secret_id"`
}

// SecretIDUsedPayload spends one use of a limited-use secret ID at Time.
type SecretIDUsedPayload struct {
	Mount string    `json:"mount"`
	MAC   string    `json:"mac"`
	Time  time.Time `json:"time"`
}

// SecretIDDestroyedPayload removes a secret ID.
type SecretIDDestroyedPayload struct {
	Mount  string `json:"mount"`
	MAC    string `json:"mac"`
	Reason string `json:"reason"`
}

type mountState struct {
	roles     map[string]*Role
	roleIDs   map[string]string // role_id → role name
	secrets   map[string]*SecretID
	accessors map[string]string              // accessor → MAC
	byRole    map[string]map[string]struct{} // role name → MACs
}

func newMountState() *mountState {
	return &mountState{
		roles: map[string]*Role{}, roleIDs: map[string]string{}, secrets: map[string]*SecretID{},
		accessors: map[string]string{}, byRole: map[string]map[string]struct{}{},
	}
}

// View is the AppRole view. Roles and secret IDs are returned by value; their slices and maps
// are shared with the view and must be treated as read-only (Apply never changes them in place).
type View struct {
	mu       sync.RWMutex
	mounts   map[string]*mountState
	disabled map[string]bool // mounts disabled: late events for them are ignored
}

// New returns an empty view.
func New() *View { return &View{mounts: map[string]*mountState{}, disabled: map[string]bool{}} }

// Name implements projections.View.
func (v *View) Name() string { return "approle" }

var errMalformed = errors.New("malformed approle event")

func decode(rec ledger.Record, p any) error { return projections.DecodeMarked(rec, p, errMalformed) }

// mount returns the state of a mount, creating it; nil for a disabled mount. Callers hold mu.
func (v *View) mount(uuid string) *mountState {
	return projections.MountState(v.mounts, v.disabled, uuid, newMountState)
}

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case RoleWritten:
		var p RoleWrittenPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		if p.Mount == "" || p.Role.Name == "" || p.Role.Key == "" || p.Role.RoleID == "" {
			return fmt.Errorf("%s without mount, name, key or role_id: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if m := v.mount(p.Mount); m != nil {
			m.writeRole(p.Role)
		}
	case RoleDeleted:
		var p RoleDeletedPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if m := v.mounts[p.Mount]; m != nil {
			m.deleteRole(p.Name)
		}
	case SecretIDCreated:
		var p SecretIDCreatedPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		s := p.SecretID
		if p.Mount == "" || s.MAC == "" || s.Accessor == "" || s.Role == "" {
			return fmt.Errorf("%s without mount, mac, accessor or role: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if m := v.mounts[p.Mount]; m != nil {
			m.addSecret(s)
		}
	case SecretIDUsed:
		var p SecretIDUsedPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if m := v.mounts[p.Mount]; m != nil {
			m.useSecret(p.MAC, p.Time)
		}
	case SecretIDDestroyed:
		var p SecretIDDestroyedPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if m := v.mounts[p.Mount]; m != nil {
			m.removeSecret(p.MAC)
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

func (m *mountState) writeRole(r Role) {
	if old, ok := m.roles[r.Name]; ok {
		if old.Key != r.Key {
			m.deleteRole(r.Name) // another incarnation: its secret IDs are not this role's
		} else if old.RoleID != r.RoleID && m.roleIDs[old.RoleID] == r.Name {
			delete(m.roleIDs, old.RoleID)
		}
	}
	m.roles[r.Name] = &r
	// The engine refuses a role_id held by another role; should two nodes race, the last write
	// takes the index, the same way on every replay.
	m.roleIDs[r.RoleID] = r.Name
}

func (m *mountState) deleteRole(name string) {
	r, ok := m.roles[name]
	if !ok {
		return
	}
	delete(m.roles, name)
	if m.roleIDs[r.RoleID] == name {
		delete(m.roleIDs, r.RoleID)
	}
	for mac := range m.byRole[name] {
		if s, ok := m.secrets[mac]; ok {
			delete(m.secrets, mac)
			if m.accessors[s.Accessor] == mac {
				delete(m.accessors, s.Accessor)
			}
		}
	}
	delete(m.byRole, name)
}

func (m *mountState) addSecret(s SecretID) {
	r, ok := m.roles[s.Role]
	if !ok || r.Key != s.RoleKey {
		return // the role was deleted (or replaced) before this secret ID landed
	}
	if _, ok := m.secrets[s.MAC]; ok {
		m.removeSecret(s.MAC)
	}
	m.secrets[s.MAC] = &s
	m.accessors[s.Accessor] = s.MAC
	set := m.byRole[s.Role]
	if set == nil {
		set = map[string]struct{}{}
		m.byRole[s.Role] = set
	}
	set[s.MAC] = struct{}{}
}

func (m *mountState) useSecret(mac string, at time.Time) {
	old, ok := m.secrets[mac]
	if !ok || old.NumUses == 0 {
		return // gone already, or unlimited: nothing to count
	}
	if old.NumUses <= 1 {
		m.removeSecret(mac)
		return
	}
	s := *old // copy-on-write: values handed out earlier do not change
	s.NumUses--
	s.LastUpdatedTime = at
	m.secrets[mac] = &s
}

func (m *mountState) removeSecret(mac string) {
	s, ok := m.secrets[mac]
	if !ok {
		return
	}
	delete(m.secrets, mac)
	if m.accessors[s.Accessor] == mac {
		delete(m.accessors, s.Accessor)
	}
	if set := m.byRole[s.Role]; set != nil {
		delete(set, mac)
		if len(set) == 0 {
			delete(m.byRole, s.Role)
		}
	}
}

// --- reads ---

// Role returns the role called name (lower-cased by the engine).
func (v *View) Role(mountUUID, name string) (Role, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if m := v.mounts[mountUUID]; m != nil {
		if r, ok := m.roles[name]; ok {
			return *r, true
		}
	}
	return Role{}, false
}

// RoleByRoleID returns the role whose role_id is roleID.
func (v *View) RoleByRoleID(mountUUID, roleID string) (Role, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	m := v.mounts[mountUUID]
	if m == nil {
		return Role{}, false
	}
	name, ok := m.roleIDs[roleID]
	if !ok {
		return Role{}, false
	}
	r, ok := m.roles[name]
	if !ok {
		return Role{}, false
	}
	return *r, true
}

// Roles lists the role names of a mount, sorted.
func (v *View) Roles(mountUUID string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	m := v.mounts[mountUUID]
	if m == nil {
		return nil
	}
	out := make([]string, 0, len(m.roles))
	for n := range m.roles {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// SecretID returns the secret ID with this MAC, expired or not (see SecretID.Expired).
func (v *View) SecretID(mountUUID, mac string) (SecretID, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if m := v.mounts[mountUUID]; m != nil {
		if s, ok := m.secrets[mac]; ok {
			return *s, true
		}
	}
	return SecretID{}, false
}

// SecretIDByAccessor returns the secret ID with this accessor.
func (v *View) SecretIDByAccessor(mountUUID, accessor string) (SecretID, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	m := v.mounts[mountUUID]
	if m == nil {
		return SecretID{}, false
	}
	mac, ok := m.accessors[accessor]
	if !ok {
		return SecretID{}, false
	}
	s, ok := m.secrets[mac]
	if !ok {
		return SecretID{}, false
	}
	return *s, true
}

// Accessors lists the accessors of a role's secret IDs, sorted.
func (v *View) Accessors(mountUUID, role string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	m := v.mounts[mountUUID]
	if m == nil {
		return nil
	}
	out := make([]string, 0, len(m.byRole[role]))
	for mac := range m.byRole[role] {
		out = append(out, m.secrets[mac].Accessor)
	}
	sort.Strings(out)
	return out
}

// Expired returns up to limit secret IDs of the mount that are expired at now, earliest
// expiration first (ties by MAC); limit ≤ 0 means all. It scans the mount's secret IDs, which
// suits its only caller, the periodic tidy.
func (v *View) Expired(mountUUID string, now time.Time, limit int) []SecretID {
	v.mu.RLock()
	var out []SecretID
	if m := v.mounts[mountUUID]; m != nil {
		for _, s := range m.secrets {
			if s.Expired(now) {
				out = append(out, *s)
			}
		}
	}
	v.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].ExpirationTime.Equal(out[j].ExpirationTime) {
			return out[i].ExpirationTime.Before(out[j].ExpirationTime)
		}
		return out[i].MAC < out[j].MAC
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// --- snapshot ---

type snapMount struct {
	UUID    string            `json:"uuid"`
	Roles   []Role            `json:"roles"`    // by name
	RoleIDs map[string]string `json:"role_ids"` // kept, not derived: it records which write won
	Secrets []SecretID        `json:"secrets"`  // by MAC
}

type snapshot struct {
	Version  int         `json:"v"`
	Mounts   []snapMount `json:"mounts"`   // by UUID
	Disabled []string    `json:"disabled"` // sorted
}

// Snapshot implements projections.View. Everything is sorted, so equal views encode equally.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	s := snapshot{Version: 1, Mounts: []snapMount{}}
	for uuid, m := range v.mounts {
		sm := snapMount{UUID: uuid, Roles: []Role{}, RoleIDs: map[string]string{}, Secrets: []SecretID{}}
		for _, r := range m.roles {
			sm.Roles = append(sm.Roles, *r)
		}
		for id, n := range m.roleIDs {
			sm.RoleIDs[id] = n
		}
		for _, sec := range m.secrets {
			sm.Secrets = append(sm.Secrets, *sec)
		}
		sort.Slice(sm.Roles, func(i, j int) bool { return sm.Roles[i].Name < sm.Roles[j].Name })
		sort.Slice(sm.Secrets, func(i, j int) bool { return sm.Secrets[i].MAC < sm.Secrets[j].MAC })
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
		return fmt.Errorf("restore approle view: %w", err)
	}
	if s.Version != 1 {
		return fmt.Errorf("restore approle view: unknown snapshot version %d", s.Version)
	}
	mounts := make(map[string]*mountState, len(s.Mounts))
	for _, sm := range s.Mounts {
		if sm.UUID == "" || mounts[sm.UUID] != nil {
			return fmt.Errorf("restore approle view: missing or duplicate mount: %w", errMalformed)
		}
		m := newMountState()
		for i := range sm.Roles {
			r := sm.Roles[i]
			if r.Name == "" || m.roles[r.Name] != nil {
				return fmt.Errorf("restore approle view: missing or duplicate role: %w", errMalformed)
			}
			m.roles[r.Name] = &r
		}
		for id, n := range sm.RoleIDs {
			m.roleIDs[id] = n
		}
		for i := range sm.Secrets {
			sec := sm.Secrets[i]
			if sec.MAC == "" || m.secrets[sec.MAC] != nil {
				return fmt.Errorf("restore approle view: missing or duplicate secret id: %w", errMalformed)
			}
			m.addSecretRestored(sec)
		}
		mounts[sm.UUID] = m
	}
	disabled := projections.SetOf(s.Disabled)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mounts, v.disabled = mounts, disabled
	return nil
}

// addSecretRestored indexes a secret ID from a snapshot, where its role was checked when it
// was first applied.
func (m *mountState) addSecretRestored(s SecretID) {
	m.secrets[s.MAC] = &s
	m.accessors[s.Accessor] = s.MAC
	set := m.byRole[s.Role]
	if set == nil {
		set = map[string]struct{}{}
		m.byRole[s.Role] = set
	}
	set[s.MAC] = struct{}{}
}
