package identity

import (
	"slices"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	identityview "github.com/ledger-secrets/ledger/projections/identity"
)

func (b *Backend) groupPaths(r *request, rest string) (*engines.Response, error) {
	switch {
	case rest == "":
		if !isWrite(r.Op) {
			return nil, errUnsupportedOp
		}
		id, _ := engines.String(r.data, "id", "")
		if id != "" {
			g, ok := b.view.Group(id)
			if !ok {
				return nil, engines.BadRequest("group not found from id")
			}
			return b.writeGroup(r, &g)
		}
		name, _ := engines.String(r.data, "name", "")
		if g, ok := b.view.GroupByName(name); ok && name != "" {
			return b.writeGroup(r, &g)
		}
		return b.writeGroup(r, nil)
	case rest == "id" || rest == "name":
		if r.Op != engines.OpList {
			return nil, errUnsupportedOp
		}
		if rest == "name" {
			return list(b.view.GroupNames(), nil)
		}
		ids := b.view.GroupIDs()
		info := map[string]any{}
		for _, id := range ids {
			if g, ok := b.view.Group(id); ok {
				info[id] = map[string]any{"name": g.Name, "num_member_entities": len(g.MemberEntityIDs), "num_parent_groups": len(b.view.ParentGroupIDs(id))}
			}
		}
		return list(ids, info)
	case strings.HasPrefix(rest, "id/"), strings.HasPrefix(rest, "name/"):
		by, key, _ := strings.Cut(rest, "/")
		var (
			g  identityview.Group
			ok bool
		)
		if by == "id" {
			g, ok = b.view.Group(key)
		} else {
			g, ok = b.view.GroupByName(key)
		}
		switch {
		case r.Op == engines.OpRead:
			if !ok {
				return nil, engines.ErrNotFound
			}
			return &engines.Response{Data: b.groupData(g)}, nil
		case isWrite(r.Op):
			if !ok {
				if by == "id" {
					return nil, engines.BadRequest("group not found from id")
				}
				r.data["name"] = key
				return b.writeGroup(r, nil)
			}
			return b.writeGroup(r, &g)
		case r.Op == engines.OpDelete:
			if !ok {
				return &engines.Response{}, nil
			}
			return &engines.Response{Events: []ledger.Event{b.event(r, identityview.GroupDeleted, "group", g.ID, identityview.IDPayload{ID: g.ID})}}, nil
		}
		return nil, errUnsupportedOp
	}
	return nil, errUnsupportedPath
}

var groupFields = []string{"name", "id", "type", "metadata", "policies", "member_group_ids", "member_entity_ids"}

// writeGroup creates (old nil) or updates a group, following Vault's pathGroupRegister.
func (b *Backend) writeGroup(r *request, old *identityview.Group) (*engines.Response, error) {
	var g identityview.Group
	if old != nil {
		g = *old
	} else {
		g = identityview.Group{ID: newUUID(), Type: "internal", Created: r.now}
	}
	var err error
	if engines.Has(r.data, "type") {
		typ, err := engines.String(r.data, "type", "")
		if err != nil {
			return nil, err
		}
		switch {
		case typ == "":
		case typ != "internal" && typ != "external":
			return nil, engines.BadRequest("invalid group type %q", typ)
		case old != nil && typ != old.Type:
			return nil, engines.BadRequest("group type cannot be changed")
		default:
			g.Type = typ
		}
	}
	if engines.Has(r.data, "name") {
		name, err := engines.String(r.data, "name", "")
		if err != nil {
			return nil, err
		}
		if name != "" && name != g.Name {
			if other, ok := b.view.GroupByName(name); ok && other.ID != g.ID {
				return nil, engines.BadRequest("group name is already in use")
			}
			g.Name = name
		}
	}
	if g.Name == "" {
		g.Name = "group_" + strings.Split(g.ID, "-")[0]
	}
	if engines.Has(r.data, "metadata") {
		if g.Metadata, err = engines.StringMap(r.data, "metadata"); err != nil {
			return nil, err
		}
	}
	if engines.Has(r.data, "policies") {
		p, err := engines.Strings(r.data, "policies")
		if err != nil {
			return nil, err
		}
		g.Policies = sortedUnique(p)
		if slices.Contains(g.Policies, "root") {
			return nil, engines.BadRequest("policies cannot contain root")
		}
	}
	if engines.Has(r.data, "member_entity_ids") {
		if g.Type == "external" {
			return nil, engines.BadRequest("member entities can't be set manually for external groups")
		}
		ids, err := engines.Strings(r.data, "member_entity_ids")
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if _, ok := b.view.Entity(id); !ok {
				return nil, engines.BadRequest("invalid entity ID %q", id)
			}
		}
		g.MemberEntityIDs = sortedUnique(ids)
	}
	if engines.Has(r.data, "member_group_ids") {
		if g.Type == "external" {
			return nil, engines.BadRequest("member groups can't be set for external groups")
		}
		ids, err := engines.Strings(r.data, "member_group_ids")
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if id == g.ID {
				return nil, engines.BadRequest("member group ID %q is the group itself", id)
			}
			if _, ok := b.view.Group(id); !ok {
				return nil, engines.BadRequest("invalid member group ID %q", id)
			}
			if b.reaches(id, g.ID) {
				return nil, engines.BadRequest("member group ID %q already has group %q as a member: cycles are not allowed", id, g.ID)
			}
		}
		g.MemberGroupIDs = sortedUnique(ids)
	}
	g.Updated = r.now
	var warnings []string
	if unknown := engines.Unknown(r.data, groupFields...); len(unknown) > 0 {
		warnings = append(warnings, "Endpoint ignored these unrecognized parameters: "+strings.Join(unknown, ", "))
	}
	ev := b.event(r, identityview.GroupWritten, "group", g.ID, g)
	return &engines.Response{Data: map[string]any{"id": g.ID, "name": g.Name}, Warnings: warnings, Events: []ledger.Event{ev}}, nil
}

// reaches reports whether group `to` is among from's member groups, transitively.
func (b *Backend) reaches(from, to string) bool {
	seen := map[string]bool{}
	queue := []string{from}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if id == to {
			return true
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		if g, ok := b.view.Group(id); ok {
			queue = append(queue, g.MemberGroupIDs...)
		}
	}
	return false
}

func (b *Backend) groupAliasData(a identityview.Alias) map[string]any {
	d := b.aliasData(a)
	delete(d, "custom_metadata")
	delete(d, "local")
	return d
}

// groupData is Vault's group read.
func (b *Backend) groupData(g identityview.Group) map[string]any {
	alias := map[string]any{}
	if g.Alias != nil {
		alias = b.groupAliasData(*g.Alias)
	}
	return map[string]any{
		"alias": alias, "creation_time": stamp(g.Created), "id": g.ID, "last_update_time": stamp(g.Updated),
		"member_entity_ids": strs(g.MemberEntityIDs), "member_group_ids": strs(g.MemberGroupIDs),
		"metadata": meta(g.Metadata), "modify_index": 0, "name": g.Name, "namespace_id": "root",
		"parent_group_ids": b.view.ParentGroupIDs(g.ID), "policies": strs(g.Policies), "type": g.Type,
	}
}

// groupAliasPaths routes group-alias, group-alias/id and group-alias/id/<id>.
func (b *Backend) groupAliasPaths(r *request, rest string) (*engines.Response, error) {
	switch {
	case rest == "":
		if !isWrite(r.Op) {
			return nil, errUnsupportedOp
		}
		id, _ := engines.String(r.data, "id", "")
		if id != "" {
			g, ok := b.view.GroupAlias(id)
			if !ok {
				return nil, engines.BadRequest("invalid group alias ID")
			}
			return b.writeGroupAlias(r, &g)
		}
		return b.writeGroupAlias(r, nil)
	case rest == "id":
		if r.Op != engines.OpList {
			return nil, errUnsupportedOp
		}
		ids := b.view.GroupAliasIDs()
		info := map[string]any{}
		for _, id := range ids {
			if g, ok := b.view.GroupAlias(id); ok {
				info[id] = map[string]any{"canonical_id": g.ID, "mount_accessor": g.Alias.MountAccessor, "name": g.Alias.Name}
			}
		}
		return list(ids, info)
	case strings.HasPrefix(rest, "id/"):
		g, ok := b.view.GroupAlias(strings.TrimPrefix(rest, "id/"))
		switch {
		case r.Op == engines.OpRead:
			if !ok {
				return nil, engines.ErrNotFound
			}
			return &engines.Response{Data: b.groupAliasData(*g.Alias)}, nil
		case isWrite(r.Op):
			if !ok {
				return nil, engines.BadRequest("invalid group alias ID")
			}
			return b.writeGroupAlias(r, &g)
		case r.Op == engines.OpDelete:
			if !ok {
				return &engines.Response{}, nil
			}
			g.Alias, g.Updated = nil, r.now
			return &engines.Response{Events: []ledger.Event{b.event(r, identityview.GroupWritten, "group", g.ID, g)}}, nil
		}
		return nil, errUnsupportedOp
	}
	return nil, errUnsupportedPath
}

// writeGroupAlias creates or updates the alias of an external group (holder: the group now
// holding the alias being updated).
func (b *Backend) writeGroupAlias(r *request, holder *identityview.Group) (*engines.Response, error) {
	var a identityview.Alias
	if holder != nil {
		a = *holder.Alias
	} else {
		a = identityview.Alias{ID: newUUID(), Created: r.now}
	}
	var err error
	for key, dst := range map[string]*string{"name": &a.Name, "canonical_id": &a.CanonicalID, "mount_accessor": &a.MountAccessor} {
		if engines.Has(r.data, key) {
			if *dst, err = engines.String(r.data, key, ""); err != nil {
				return nil, err
			}
		}
	}
	switch {
	case a.Name == "":
		return nil, engines.BadRequest("missing alias name")
	case a.MountAccessor == "":
		return nil, engines.BadRequest("missing mount_accessor")
	case a.CanonicalID == "":
		return nil, engines.BadRequest("missing canonical_id")
	}
	mi, ok := b.mounts(a.MountAccessor)
	if !ok {
		return nil, engines.BadRequest("invalid mount accessor %q", a.MountAccessor)
	}
	a.MountPath, a.MountType = mi.Path, mi.Type
	g, ok := b.view.Group(a.CanonicalID)
	if !ok {
		return nil, engines.BadRequest("invalid group ID given in 'canonical_id'")
	}
	if g.Type != "external" {
		return nil, engines.BadRequest("alias can't be set on an internal group")
	}
	if g.Alias != nil && g.Alias.ID != a.ID {
		return nil, engines.BadRequest("group %q already has an alias", g.ID)
	}
	if other, ok := b.view.GroupByAlias(a.MountAccessor, a.Name); ok && other.ID != g.ID {
		return nil, engines.BadRequest("combination of mount and group alias name is already in use")
	}
	a.Updated = r.now
	var events []ledger.Event
	if holder != nil && holder.ID != g.ID {
		h := *holder
		h.Alias, h.Updated = nil, r.now
		events = append(events, b.event(r, identityview.GroupWritten, "group", h.ID, h))
	}
	g.Alias, g.Updated = &a, r.now
	events = append(events, b.event(r, identityview.GroupWritten, "group", g.ID, g))
	return &engines.Response{Data: map[string]any{"id": a.ID, "canonical_id": g.ID}, Events: events}, nil
}
