package identity

import (
	"maps"
	"slices"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	identityview "github.com/ledger-secrets/ledger/projections/identity"
)

// LoginInput is a successful login as the identity store sees it.
type LoginInput struct {
	RequestID    string
	Mount        engines.Mount // the auth mount
	Alias        engines.Alias
	GroupAliases []engines.Alias
	Now          time.Time
}

// LoginEvents decides what a login changes in the store, as Vault's core does after an auth
// method answered: the entity behind the alias (created with the alias at a first login), the
// alias's metadata brought up to date, and the entity's membership of the external groups whose
// alias lives on this mount synced with the login's group aliases (groups are never created
// here). It returns the entity's ID and the events; none when nothing changes.
func (b *Backend) LoginEvents(in LoginInput) (string, []ledger.Event) {
	var events []ledger.Event
	ev := func(typ, kind, id string, p any) {
		events = append(events, newEvent(in.RequestID, nil, in.Now, typ, kind, id, p))
	}
	acc := in.Mount.Accessor
	a, ok := b.view.AliasByName(acc, in.Alias.Name)
	entityID := a.CanonicalID
	if _, found := b.view.Entity(entityID); !ok || !found {
		id := newUUID()
		e := identityview.Entity{ID: id, Name: "entity_" + id[:8], Created: in.Now, Updated: in.Now}
		ev(identityview.EntityWritten, "entity", id, e)
		entityID = id
		if !ok {
			a = identityview.Alias{ID: newUUID(), Created: in.Now, MountAccessor: acc, Name: in.Alias.Name}
		}
		ok = false
	}
	if !ok || !maps.Equal(a.Metadata, in.Alias.Metadata) || a.MountPath != in.Mount.Path {
		a.CanonicalID, a.MountPath, a.MountType, a.Updated = entityID, in.Mount.Path, in.Mount.Type, in.Now
		a.Metadata = maps.Clone(in.Alias.Metadata)
		if len(a.Metadata) == 0 {
			a.Metadata = nil
		}
		ev(identityview.AliasWritten, "alias", a.ID, a)
	}

	want := map[string]bool{}
	for _, ga := range in.GroupAliases {
		if g, ok := b.view.GroupByAlias(acc, ga.Name); ok && g.Type == "external" {
			want[g.ID] = true
		}
	}
	for _, id := range b.view.GroupIDs() {
		g, ok := b.view.Group(id)
		if !ok || g.Type != "external" || g.Alias == nil || g.Alias.MountAccessor != acc {
			continue
		}
		member := slices.Contains(g.MemberEntityIDs, entityID)
		switch {
		case want[id] && !member:
			g.MemberEntityIDs = sortedUnique(append(append([]string{}, g.MemberEntityIDs...), entityID))
		case !want[id] && member:
			g.MemberEntityIDs = slices.DeleteFunc(append([]string{}, g.MemberEntityIDs...), func(s string) bool { return s == entityID })
		default:
			continue
		}
		g.Updated = in.Now
		ev(identityview.GroupWritten, "group", g.ID, g)
	}
	return entityID, events
}

// Policies are an entity's identity policies (see the view's Policies).
func (b *Backend) Policies(entityID string) []string { return b.view.Policies(entityID) }
