// Package userpass is the view of the userpass auth method: per mount (keyed by the mount's
// UUID) its users, each with the argon2id hash of its password and the shape of the tokens its
// logins get. A password never reaches the view, the log or a snapshot in clear: the engine
// hashes it when it decides the write, and the hash travels in the (sealed) event.
//
// Apply folds exactly what the events say, with times from the events, so every replay builds
// the same state.
package userpass

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

// Event types. Subjects are ledger.SubjectFor("userpass", mountUUID, username).
const (
	UserWritten = "userpass.user.written.v1" // a user created or changed (password, policies, …): its whole state
	UserDeleted = "userpass.user.deleted.v1"
)

// User is one userpass user.
type User struct {
	Name string `json:"name"` // lower-cased
	// PasswordHash is a PHC string, "$argon2id$v=19$m=…,t=…,p=…$salt$hash": the parameters
	// travel with the hash, so they can change without breaking older users.
	PasswordHash string           `json:"password_hash"`
	Token        tokenview.Params `json:"token"`
	// The deprecated fields as last written, which Vault still shows on read.
	LegacyPolicies   []string      `json:"legacy_policies,omitempty"`
	LegacyTTL        time.Duration `json:"legacy_ttl,omitempty"`
	LegacyMaxTTL     time.Duration `json:"legacy_max_ttl,omitempty"`
	LegacyBoundCIDRs []string      `json:"legacy_bound_cidrs,omitempty"`
	Created          time.Time     `json:"created"`
	Updated          time.Time     `json:"updated"`
}

// UserWrittenPayload is a user's whole state after a write.
type UserWrittenPayload struct {
	Mount string `json:"mount"`
	User  User   `json:"user"`
}

// UserDeletedPayload removes a user.
type UserDeletedPayload struct {
	Mount string `json:"mount"`
	Name  string `json:"name"`
}

// View is the userpass view. Users are returned by value; their slices are shared with the
// view and must be treated as read-only (Apply never changes them in place).
type View struct {
	mu       sync.RWMutex
	mounts   map[string]map[string]*User // mount UUID → name → user
	disabled map[string]bool             // mounts disabled: late events for them are ignored
}

// New returns an empty view.
func New() *View { return &View{mounts: map[string]map[string]*User{}, disabled: map[string]bool{}} }

// Name implements projections.View.
func (v *View) Name() string { return "userpass" }

var errMalformed = errors.New("malformed userpass event")

func decode(rec ledger.Record, p any) error { return projections.DecodeMarked(rec, p, errMalformed) }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case UserWritten:
		var p UserWrittenPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		if p.Mount == "" || p.User.Name == "" || p.User.PasswordHash == "" {
			return fmt.Errorf("%s without mount, name or password hash: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.disabled[p.Mount] {
			return nil
		}
		users := v.mounts[p.Mount]
		if users == nil {
			users = map[string]*User{}
			v.mounts[p.Mount] = users
		}
		u := p.User
		users[u.Name] = &u
	case UserDeleted:
		var p UserDeletedPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if users := v.mounts[p.Mount]; users != nil {
			delete(users, p.Name)
			if len(users) == 0 {
				delete(v.mounts, p.Mount)
			}
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

// User returns the user called name (lower-cased by the engine).
func (v *View) User(mountUUID, name string) (User, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if u, ok := v.mounts[mountUUID][name]; ok {
		return *u, true
	}
	return User{}, false
}

// Users lists the user names of a mount, sorted.
func (v *View) Users(mountUUID string) []string {
	v.mu.RLock()
	users := v.mounts[mountUUID]
	out := make([]string, 0, len(users))
	for n := range users {
		out = append(out, n)
	}
	v.mu.RUnlock()
	sort.Strings(out)
	return out
}

type snapMount struct {
	UUID  string `json:"uuid"`
	Users []User `json:"users"` // by name
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
	for uuid, users := range v.mounts {
		sm := snapMount{UUID: uuid, Users: make([]User, 0, len(users))}
		for _, u := range users {
			sm.Users = append(sm.Users, *u)
		}
		sort.Slice(sm.Users, func(i, j int) bool { return sm.Users[i].Name < sm.Users[j].Name })
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
		return fmt.Errorf("restore userpass view: %w", err)
	}
	if s.Version != 1 {
		return fmt.Errorf("restore userpass view: unknown snapshot version %d", s.Version)
	}
	mounts := make(map[string]map[string]*User, len(s.Mounts))
	for _, sm := range s.Mounts {
		if sm.UUID == "" || mounts[sm.UUID] != nil {
			return fmt.Errorf("restore userpass view: missing or duplicate mount: %w", errMalformed)
		}
		users := make(map[string]*User, len(sm.Users))
		for i := range sm.Users {
			u := sm.Users[i]
			if u.Name == "" || users[u.Name] != nil {
				return fmt.Errorf("restore userpass view: missing or duplicate user: %w", errMalformed)
			}
			users[u.Name] = &u
		}
		mounts[sm.UUID] = users
	}
	disabled := projections.SetOf(s.Disabled)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mounts, v.disabled = mounts, disabled
	return nil
}
