// Package database is the view of the database secrets engine: per mount, the connection
// configurations, the dynamic roles and the static roles, by name. Configurations and static
// roles hold their current password (the admin's, the static account's): the events that carry
// them are sealed in the log, and the engine never returns an admin password to a client.
//
// The view forgets a mount when it is disabled. Static role rotations carry a generation that
// only grows, and the view keeps the highest: two rotations of one role appended out of the order
// in which they reached the database still leave the password the database has.
package database

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
)

// Event types. Subjects are ledger.SubjectFor("database", mountUUID, path), with path
// "config/<name>", "roles/<name>" or "static-roles/<name>".
const (
	ConfigWritten     = "database.config.written.v1"
	ConfigDeleted     = "database.config.deleted.v1"
	RootRotated       = "database.root.rotated.v1"
	RoleWritten       = "database.role.written.v1"
	RoleDeleted       = "database.role.deleted.v1"
	StaticRoleWritten = "database.static_role.written.v1"
	StaticRoleRotated = "database.static_role.rotated.v1"
	StaticRoleDeleted = "database.static_role.deleted.v1"
)

// Config is a connection configuration (config/:name).
type Config struct {
	PluginName             string        `json:"plugin_name"`
	ConnectionURL          string        `json:"connection_url"` // with {{username}}/{{password}}
	Username               string        `json:"username,omitempty"`
	Password               string        `json:"password,omitempty"`
	AllowedRoles           []string      `json:"allowed_roles,omitempty"`
	VerifyConnection       bool          `json:"verify_connection"`
	RootRotationStatements []string      `json:"root_rotation_statements,omitempty"`
	PasswordPolicy         string        `json:"password_policy,omitempty"`
	UsernameTemplate       string        `json:"username_template,omitempty"`
	MaxOpenConnections     int           `json:"max_open_connections,omitempty"`
	MaxIdleConnections     int           `json:"max_idle_connections,omitempty"`
	MaxConnectionLifetime  time.Duration `json:"max_connection_lifetime,omitempty"`
}

// Role is a dynamic role (roles/:name).
type Role struct {
	DBName               string        `json:"db_name"`
	CreationStatements   []string      `json:"creation_statements,omitempty"`
	RevocationStatements []string      `json:"revocation_statements,omitempty"`
	RollbackStatements   []string      `json:"rollback_statements,omitempty"`
	RenewStatements      []string      `json:"renew_statements,omitempty"`
	DefaultTTL           time.Duration `json:"default_ttl,omitempty"`
	MaxTTL               time.Duration `json:"max_ttl,omitempty"`
}

// StaticRole is a static role (static-roles/:name): one existing account whose password Ledger
// rotates.
type StaticRole struct {
	DBName             string        `json:"db_name"`
	Username           string        `json:"username"`
	RotationPeriod     time.Duration `json:"rotation_period"`
	RotationStatements []string      `json:"rotation_statements,omitempty"`
	Password           string        `json:"password"`
	LastRotation       time.Time     `json:"last_rotation"`
	Generation         uint64        `json:"generation"` // grows with every rotation
}

// ConfigPayload writes a configuration, replacing the previous one.
type ConfigPayload struct {
	Mount  string `json:"mount"`
	Name   string `json:"name"`
	Config Config `json:"config"`
}

// RootRotatedPayload records the admin password that rotate-root set in the database.
type RootRotatedPayload struct {
	Mount    string `json:"mount"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

// RolePayload writes a dynamic role.
type RolePayload struct {
	Mount string `json:"mount"`
	Name  string `json:"name"`
	Role  Role   `json:"role"`
}

// StaticRolePayload writes a static role. Its password, last rotation and generation replace
// the view's only when the generation is higher than the one held (or the role is new): an
// update that did not rotate carries the generation it read.
type StaticRolePayload struct {
	Mount string     `json:"mount"`
	Name  string     `json:"name"`
	Role  StaticRole `json:"role"`
}

// StaticRotatedPayload records a password the engine set in the database.
type StaticRotatedPayload struct {
	Mount      string    `json:"mount"`
	Name       string    `json:"name"`
	Password   string    `json:"password"`
	Time       time.Time `json:"time"`
	Generation uint64    `json:"generation"`
}

// DeletedPayload removes a configuration, a role or a static role.
type DeletedPayload struct {
	Mount string `json:"mount"`
	Name  string `json:"name"`
}

type mountState struct {
	Configs     map[string]Config     `json:"configs,omitempty"`
	Roles       map[string]Role       `json:"roles,omitempty"`
	StaticRoles map[string]StaticRole `json:"static_roles,omitempty"`
}

func newMountState() *mountState {
	return &mountState{Configs: map[string]Config{}, Roles: map[string]Role{}, StaticRoles: map[string]StaticRole{}}
}

// View is the database engine's view.
type View struct {
	mu       sync.RWMutex
	mounts   map[string]*mountState // by mount UUID
	disabled map[string]bool        // disabled mounts: late events for them are ignored
}

// New returns an empty view.
func New() *View { return &View{mounts: map[string]*mountState{}, disabled: map[string]bool{}} }

// Name implements projections.View.
func (v *View) Name() string { return "database" }

// mount returns the state of a mount, created on first use; nil for a disabled mount.
func (v *View) mount(uuid string) *mountState {
	return projections.MountState(v.mounts, v.disabled, uuid, newMountState)
}

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case ConfigWritten:
		var p ConfigPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if ms := v.mount(p.Mount); ms != nil {
			ms.Configs[p.Name] = p.Config
		}
	case RootRotated:
		var p RootRotatedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if ms := v.mount(p.Mount); ms != nil {
			if c, ok := ms.Configs[p.Name]; ok {
				c.Password = p.Password
				ms.Configs[p.Name] = c
			}
		}
	case RoleWritten:
		var p RolePayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if ms := v.mount(p.Mount); ms != nil {
			ms.Roles[p.Name] = p.Role
		}
	case StaticRoleWritten:
		var p StaticRolePayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		ms := v.mount(p.Mount)
		if ms == nil {
			return nil
		}
		next := p.Role
		next.LastRotation = next.LastRotation.UTC()
		if cur, ok := ms.StaticRoles[p.Name]; ok && p.Role.Generation <= cur.Generation {
			next.Password, next.LastRotation, next.Generation = cur.Password, cur.LastRotation, cur.Generation
		}
		ms.StaticRoles[p.Name] = next
	case StaticRoleRotated:
		var p StaticRotatedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if ms := v.mount(p.Mount); ms != nil {
			if cur, ok := ms.StaticRoles[p.Name]; ok && p.Generation > cur.Generation {
				cur.Password, cur.LastRotation, cur.Generation = p.Password, p.Time.UTC(), p.Generation
				ms.StaticRoles[p.Name] = cur
			}
		}
	case ConfigDeleted, RoleDeleted, StaticRoleDeleted:
		var p DeletedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if ms := v.mount(p.Mount); ms != nil {
			switch rec.Type {
			case ConfigDeleted:
				delete(ms.Configs, p.Name)
			case RoleDeleted:
				delete(ms.Roles, p.Name)
			case StaticRoleDeleted:
				delete(ms.StaticRoles, p.Name)
			}
		}
	case mount.Disabled:
		var p mount.DisabledPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		delete(v.mounts, p.UUID)
		v.disabled[p.UUID] = true
	}
	return nil
}

// Config returns a connection configuration.
func (v *View) Config(mountUUID, name string) (Config, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ms := v.mounts[mountUUID]
	if ms == nil {
		return Config{}, false
	}
	c, ok := ms.Configs[name]
	return c, ok
}

// Role returns a dynamic role.
func (v *View) Role(mountUUID, name string) (Role, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ms := v.mounts[mountUUID]
	if ms == nil {
		return Role{}, false
	}
	r, ok := ms.Roles[name]
	return r, ok
}

// StaticRole returns a static role.
func (v *View) StaticRole(mountUUID, name string) (StaticRole, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ms := v.mounts[mountUUID]
	if ms == nil {
		return StaticRole{}, false
	}
	r, ok := ms.StaticRoles[name]
	return r, ok
}

// Configs lists the configuration names of a mount, sorted.
func (v *View) Configs(mountUUID string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if ms := v.mounts[mountUUID]; ms != nil {
		return projections.SortedKeys(ms.Configs)
	}
	return nil
}

// Roles lists the dynamic role names of a mount, sorted.
func (v *View) Roles(mountUUID string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if ms := v.mounts[mountUUID]; ms != nil {
		return projections.SortedKeys(ms.Roles)
	}
	return nil
}

// StaticRoles lists the static role names of a mount, sorted.
func (v *View) StaticRoles(mountUUID string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if ms := v.mounts[mountUUID]; ms != nil {
		return projections.SortedKeys(ms.StaticRoles)
	}
	return nil
}

type snapshot struct {
	Mounts   map[string]*mountState `json:"mounts"`
	Disabled []string               `json:"disabled,omitempty"`
}

// Snapshot implements projections.View. Maps encode with sorted keys, so equal states encode
// equally.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := snapshot{Mounts: map[string]*mountState{}, Disabled: projections.SortedKeys(v.disabled)}
	for uuid, ms := range v.mounts {
		if len(ms.Configs)+len(ms.Roles)+len(ms.StaticRoles) > 0 {
			s.Mounts[uuid] = ms
		}
	}
	return json.Marshal(s)
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore database view: %w", err)
	}
	if s.Mounts == nil {
		return fmt.Errorf("restore database view: no mounts")
	}
	mounts := map[string]*mountState{}
	for uuid, ms := range s.Mounts {
		n := newMountState()
		if ms != nil {
			for k, c := range ms.Configs {
				n.Configs[k] = c
			}
			for k, r := range ms.Roles {
				n.Roles[k] = r
			}
			for k, r := range ms.StaticRoles {
				r.LastRotation = r.LastRotation.UTC()
				n.StaticRoles[k] = r
			}
		}
		mounts[uuid] = n
	}
	disabled := projections.SetOf(s.Disabled)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mounts, v.disabled = mounts, disabled
	return nil
}

// Mounts lists the UUIDs of mounts with any state, sorted.
func (v *View) Mounts() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := projections.SortedKeys(v.mounts)
	return slices.DeleteFunc(out, func(u string) bool {
		ms := v.mounts[u]
		return len(ms.Configs)+len(ms.Roles)+len(ms.StaticRoles) == 0
	})
}
