// Package identity is the view of Vault's identity store: entities (who someone is, across
// auth methods), entity aliases (an entity's name at one auth mount, created at first login),
// and groups — internal ones with member entities and subgroups, external ones whose members
// come from an identity provider's groups through a group alias. Events carry each object's
// whole state, so the log (and `ledger history`) shows every membership change.
//
// Apply folds exactly what the events say, with times from the events.
package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

// Event types. Subjects are ledger.SubjectFor("identity", kind, id).
const (
	EntityWritten = "identity.entity.written.v1"
	EntityDeleted = "identity.entity.deleted.v1" // with its aliases
	AliasWritten  = "identity.alias.written.v1"
	AliasDeleted  = "identity.alias.deleted.v1"
	GroupWritten  = "identity.group.written.v1" // with its alias, for external groups
	GroupDeleted  = "identity.group.deleted.v1"
)

// Entity is a person or workload.
type Entity struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Policies []string          `json:"policies,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Disabled bool              `json:"disabled,omitempty"`
	// MergedIDs are the entities merged into this one.
	MergedIDs []string  `json:"merged_entity_ids,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
}

// Alias is an entity's (or, inside a Group, a group's) name at one auth mount.
type Alias struct {
	ID             string            `json:"id"`
	CanonicalID    string            `json:"canonical_id"`
	MountAccessor  string            `json:"mount_accessor"`
	MountPath      string            `json:"mount_path,omitempty"`
	MountType      string            `json:"mount_type,omitempty"`
	Name           string            `json:"name"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	CustomMetadata map[string]string `json:"custom_metadata,omitempty"`
	Created        time.Time         `json:"created"`
	Updated        time.Time         `json:"updated"`
}

// Group is a set of entities and subgroups sharing policies.
type Group struct {
	ID              string            `json:"id"`
	Name            string            `json:"name"`
	Type            string            `json:"type"` // "internal" or "external"
	Policies        []string          `json:"policies,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	MemberEntityIDs []string          `json:"member_entity_ids,omitempty"` // sorted
	MemberGroupIDs  []string          `json:"member_group_ids,omitempty"`  // sorted
	Alias           *Alias            `json:"alias,omitempty"`
	Created         time.Time         `json:"created"`
	Updated         time.Time         `json:"updated"`
}

// IDPayload names the object an event deletes.
type IDPayload struct {
	ID string `json:"id"`
}

// View is the identity view. Returned objects are copies of the view's, except for slices and
// maps, which are shared and must be treated as read-only (Apply replaces, never mutates).
type View struct {
	mu       sync.RWMutex
	entities map[string]*Entity
	aliases  map[string]*Alias
	groups   map[string]*Group

	entityByName map[string]string
	aliasByKey   map[string]string // accessor \x00 name → alias ID
	groupByName  map[string]string
	groupByAlias map[string]string // accessor \x00 name → group ID
	gen          uint64            // bumped by every change; not part of the state
}

// New returns an empty view.
func New() *View {
	v := &View{}
	v.reset()
	return v
}

func (v *View) reset() {
	v.entities, v.aliases, v.groups = map[string]*Entity{}, map[string]*Alias{}, map[string]*Group{}
	v.entityByName, v.aliasByKey, v.groupByName, v.groupByAlias = map[string]string{}, map[string]string{}, map[string]string{}, map[string]string{}
}

// Name implements projections.View.
func (v *View) Name() string { return "identity" }

var errMalformed = errors.New("malformed identity event")

func decode(rec ledger.Record, p any) error { return projections.DecodeMarked(rec, p, errMalformed) }

func aliasKey(accessor, name string) string { return accessor + "\x00" + name }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case EntityWritten:
		var e Entity
		if err := decode(rec, &e); err != nil {
			return err
		}
		if e.ID == "" || e.Name == "" {
			return fmt.Errorf("%s without id or name: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.putEntity(&e)
	case EntityDeleted:
		var p IDPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.deleteEntity(p.ID)
	case AliasWritten:
		var a Alias
		if err := decode(rec, &a); err != nil {
			return err
		}
		if a.ID == "" || a.CanonicalID == "" || a.MountAccessor == "" || a.Name == "" {
			return fmt.Errorf("%s without id, canonical_id, mount_accessor or name: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.putAlias(&a)
	case AliasDeleted:
		var p IDPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.deleteAlias(p.ID)
	case GroupWritten:
		var g Group
		if err := decode(rec, &g); err != nil {
			return err
		}
		if g.ID == "" || g.Name == "" || (g.Type != "internal" && g.Type != "external") {
			return fmt.Errorf("%s without id, name or type: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.putGroup(&g)
	case GroupDeleted:
		var p IDPayload
		if err := decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.deleteGroup(p.ID)
	default:
		return nil
	}
	return nil
}

func (v *View) putEntity(e *Entity) {
	if old := v.entities[e.ID]; old != nil && v.entityByName[old.Name] == e.ID {
		delete(v.entityByName, old.Name)
	}
	v.entities[e.ID] = e
	v.entityByName[e.Name] = e.ID
	v.gen++
}

func (v *View) deleteEntity(id string) {
	e := v.entities[id]
	if e == nil {
		return
	}
	for aid, a := range v.aliases {
		if a.CanonicalID == id {
			v.deleteAlias(aid)
		}
	}
	if v.entityByName[e.Name] == id {
		delete(v.entityByName, e.Name)
	}
	delete(v.entities, id)
	v.gen++
}

func (v *View) putAlias(a *Alias) {
	if old := v.aliases[a.ID]; old != nil {
		if k := aliasKey(old.MountAccessor, old.Name); v.aliasByKey[k] == a.ID {
			delete(v.aliasByKey, k)
		}
	}
	v.aliases[a.ID] = a
	v.aliasByKey[aliasKey(a.MountAccessor, a.Name)] = a.ID
	v.gen++
}

func (v *View) deleteAlias(id string) {
	a := v.aliases[id]
	if a == nil {
		return
	}
	if k := aliasKey(a.MountAccessor, a.Name); v.aliasByKey[k] == id {
		delete(v.aliasByKey, k)
	}
	delete(v.aliases, id)
	v.gen++
}

func (v *View) putGroup(g *Group) {
	if old := v.groups[g.ID]; old != nil {
		if v.groupByName[old.Name] == g.ID {
			delete(v.groupByName, old.Name)
		}
		if old.Alias != nil {
			if k := aliasKey(old.Alias.MountAccessor, old.Alias.Name); v.groupByAlias[k] == g.ID {
				delete(v.groupByAlias, k)
			}
		}
	}
	v.groups[g.ID] = g
	v.groupByName[g.Name] = g.ID
	if g.Alias != nil {
		v.groupByAlias[aliasKey(g.Alias.MountAccessor, g.Alias.Name)] = g.ID
	}
	v.gen++
}

func (v *View) deleteGroup(id string) {
	g := v.groups[id]
	if g == nil {
		return
	}
	if v.groupByName[g.Name] == id {
		delete(v.groupByName, g.Name)
	}
	if g.Alias != nil {
		if k := aliasKey(g.Alias.MountAccessor, g.Alias.Name); v.groupByAlias[k] == id {
			delete(v.groupByAlias, k)
		}
	}
	delete(v.groups, id)
	v.gen++
}

// Generation changes whenever the view does; ACL caches key on it.
func (v *View) Generation() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.gen
}

// Entity returns an entity by ID.
func (v *View) Entity(id string) (Entity, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if e := v.entities[id]; e != nil {
		return *e, true
	}
	return Entity{}, false
}

// EntityByName returns an entity by name.
func (v *View) EntityByName(name string) (Entity, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if e := v.entities[v.entityByName[name]]; e != nil {
		return *e, true
	}
	return Entity{}, false
}

// Alias returns an entity alias by ID.
func (v *View) Alias(id string) (Alias, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if a := v.aliases[id]; a != nil {
		return *a, true
	}
	return Alias{}, false
}

// AliasByName returns the entity alias called name at the mount with accessor.
func (v *View) AliasByName(accessor, name string) (Alias, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if a := v.aliases[v.aliasByKey[aliasKey(accessor, name)]]; a != nil {
		return *a, true
	}
	return Alias{}, false
}

// AliasesOf returns an entity's aliases, by ID.
func (v *View) AliasesOf(entityID string) []Alias {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []Alias
	for _, a := range v.aliases {
		if a.CanonicalID == entityID {
			out = append(out, *a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Group returns a group by ID.
func (v *View) Group(id string) (Group, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if g := v.groups[id]; g != nil {
		return *g, true
	}
	return Group{}, false
}

// GroupByName returns a group by name.
func (v *View) GroupByName(name string) (Group, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if g := v.groups[v.groupByName[name]]; g != nil {
		return *g, true
	}
	return Group{}, false
}

// GroupByAlias returns the external group whose alias is name at the mount with accessor.
func (v *View) GroupByAlias(accessor, name string) (Group, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if g := v.groups[v.groupByAlias[aliasKey(accessor, name)]]; g != nil {
		return *g, true
	}
	return Group{}, false
}

// GroupAlias returns the group holding the group alias with this ID.
func (v *View) GroupAlias(id string) (Group, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, g := range v.groups {
		if g.Alias != nil && g.Alias.ID == id {
			return *g, true
		}
	}
	return Group{}, false
}

// EntityIDs, AliasIDs and GroupIDs list what the view holds, sorted.
func (v *View) EntityIDs() []string {
	return v.keys(func() []string { return slices.Collect(maps.Keys(v.entities)) })
}

// AliasIDs lists entity alias IDs, sorted.
func (v *View) AliasIDs() []string {
	return v.keys(func() []string { return slices.Collect(maps.Keys(v.aliases)) })
}

// GroupIDs lists group IDs, sorted.
func (v *View) GroupIDs() []string {
	return v.keys(func() []string { return slices.Collect(maps.Keys(v.groups)) })
}

// EntityNames lists entity names, sorted.
func (v *View) EntityNames() []string {
	return v.keys(func() []string { return slices.Collect(maps.Keys(v.entityByName)) })
}

// GroupNames lists group names, sorted.
func (v *View) GroupNames() []string {
	return v.keys(func() []string { return slices.Collect(maps.Keys(v.groupByName)) })
}

// GroupAliasIDs lists the IDs of group aliases, sorted.
func (v *View) GroupAliasIDs() []string {
	return v.keys(func() []string {
		var out []string
		for _, g := range v.groups {
			if g.Alias != nil {
				out = append(out, g.Alias.ID)
			}
		}
		return out
	})
}

func (v *View) keys(f func() []string) []string {
	v.mu.RLock()
	out := f()
	v.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Groups returns the groups an entity belongs to: directly (as a member entity), and by
// inheritance (a group whose member groups include one it belongs to), each sorted by ID.
func (v *View) Groups(entityID string) (direct, inherited []Group) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	seen := map[string]bool{}
	var queue []string
	for id, g := range v.groups {
		if slices.Contains(g.MemberEntityIDs, entityID) {
			direct = append(direct, *g)
			seen[id] = true
			queue = append(queue, id)
		}
	}
	for len(queue) > 0 {
		child := queue[0]
		queue = queue[1:]
		for id, g := range v.groups {
			if !seen[id] && slices.Contains(g.MemberGroupIDs, child) {
				seen[id] = true
				inherited = append(inherited, *g)
				queue = append(queue, id)
			}
		}
	}
	sort.Slice(direct, func(i, j int) bool { return direct[i].ID < direct[j].ID })
	sort.Slice(inherited, func(i, j int) bool { return inherited[i].ID < inherited[j].ID })
	return direct, inherited
}

// ParentGroupIDs returns the groups having group id as a member group, sorted.
func (v *View) ParentGroupIDs(id string) []string {
	return v.keys(func() []string {
		var out []string
		for gid, g := range v.groups {
			if slices.Contains(g.MemberGroupIDs, id) {
				out = append(out, gid)
			}
		}
		return out
	})
}

// Policies are the identity policies of an entity, as Vault computes them: the entity's own
// and those of every group it belongs to directly or by inheritance; none for a disabled or
// unknown entity. Sorted, without duplicates.
func (v *View) Policies(entityID string) []string {
	e, ok := v.Entity(entityID)
	if !ok || e.Disabled {
		return nil
	}
	set := map[string]bool{}
	for _, p := range e.Policies {
		set[p] = true
	}
	direct, inherited := v.Groups(entityID)
	for _, g := range append(direct, inherited...) {
		for _, p := range g.Policies {
			set[p] = true
		}
	}
	out := slices.Collect(maps.Keys(set))
	sort.Strings(out)
	return out
}

type snapshot struct {
	Version  int      `json:"v"`
	Entities []Entity `json:"entities"`
	Aliases  []Alias  `json:"aliases"`
	Groups   []Group  `json:"groups"`
}

// Snapshot implements projections.View. Everything is sorted, so equal views encode equally.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	s := snapshot{Version: 1, Entities: []Entity{}, Aliases: []Alias{}, Groups: []Group{}}
	for _, e := range v.entities {
		s.Entities = append(s.Entities, *e)
	}
	for _, a := range v.aliases {
		s.Aliases = append(s.Aliases, *a)
	}
	for _, g := range v.groups {
		s.Groups = append(s.Groups, *g)
	}
	v.mu.RUnlock()
	sort.Slice(s.Entities, func(i, j int) bool { return s.Entities[i].ID < s.Entities[j].ID })
	sort.Slice(s.Aliases, func(i, j int) bool { return s.Aliases[i].ID < s.Aliases[j].ID })
	sort.Slice(s.Groups, func(i, j int) bool { return s.Groups[i].ID < s.Groups[j].ID })
	return json.Marshal(s)
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore identity view: %w", err)
	}
	if s.Version != 1 {
		return fmt.Errorf("restore identity view: unknown snapshot version %d", s.Version)
	}
	n := New()
	for i := range s.Entities {
		if s.Entities[i].ID == "" {
			return fmt.Errorf("restore identity view: entity without id: %w", errMalformed)
		}
		n.putEntity(&s.Entities[i])
	}
	for i := range s.Aliases {
		if s.Aliases[i].ID == "" {
			return fmt.Errorf("restore identity view: alias without id: %w", errMalformed)
		}
		n.putAlias(&s.Aliases[i])
	}
	for i := range s.Groups {
		if s.Groups[i].ID == "" {
			return fmt.Errorf("restore identity view: group without id: %w", errMalformed)
		}
		n.putGroup(&s.Groups[i])
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.entities, v.aliases, v.groups = n.entities, n.aliases, n.groups
	v.entityByName, v.aliasByKey, v.groupByName, v.groupByAlias = n.entityByName, n.aliasByKey, n.groupByName, n.groupByAlias
	v.gen++
	return nil
}
