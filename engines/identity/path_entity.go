package identity

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	identityview "github.com/ledger-secrets/ledger/projections/identity"
)

func sortStrings(s []string) { sort.Strings(s) }

var entityFields = []string{"name", "id", "metadata", "policies", "disabled", "mfa_secrets"}

func (b *Backend) entityPaths(r *request, rest string) (*engines.Response, error) {
	switch {
	case rest == "":
		if !isWrite(r.Op) {
			return nil, errUnsupportedOp
		}
		id, _ := engines.String(r.data, "id", "")
		if id != "" {
			e, ok := b.view.Entity(id)
			if !ok {
				return nil, engines.BadRequest("entity not found from id")
			}
			return b.writeEntity(r, &e)
		}
		name, _ := engines.String(r.data, "name", "")
		if e, ok := b.view.EntityByName(name); ok && name != "" {
			return b.writeEntity(r, &e)
		}
		return b.writeEntity(r, nil)
	case rest == "merge":
		if !isWrite(r.Op) {
			return nil, errUnsupportedOp
		}
		return b.mergeEntities(r)
	case rest == "id" || rest == "name":
		if r.Op != engines.OpList {
			return nil, errUnsupportedOp
		}
		if rest == "name" {
			return list(b.view.EntityNames(), nil)
		}
		ids := b.view.EntityIDs()
		info := map[string]any{}
		for _, id := range ids {
			if e, ok := b.view.Entity(id); ok {
				info[id] = map[string]any{"name": e.Name}
			}
		}
		return list(ids, info)
	case strings.HasPrefix(rest, "id/"), strings.HasPrefix(rest, "name/"):
		by, key, _ := strings.Cut(rest, "/")
		var (
			e  identityview.Entity
			ok bool
		)
		if by == "id" {
			e, ok = b.view.Entity(key)
		} else {
			e, ok = b.view.EntityByName(key)
		}
		switch {
		case r.Op == engines.OpRead:
			if !ok {
				return nil, engines.ErrNotFound
			}
			return &engines.Response{Data: b.entityData(e)}, nil
		case isWrite(r.Op):
			if !ok {
				if by == "id" {
					return nil, engines.BadRequest("entity not found from id")
				}
				r.data["name"] = key
				return b.writeEntity(r, nil)
			}
			return b.writeEntity(r, &e)
		case r.Op == engines.OpDelete:
			if !ok {
				return &engines.Response{}, nil
			}
			return &engines.Response{Events: []ledger.Event{b.event(r, identityview.EntityDeleted, "entity", e.ID, identityview.IDPayload{ID: e.ID})}}, nil
		}
		return nil, errUnsupportedOp
	}
	return nil, errUnsupportedPath
}

// writeEntity creates an entity (old nil) or updates one, following Vault's
// handleEntityUpdateCommon.
func (b *Backend) writeEntity(r *request, old *identityview.Entity) (*engines.Response, error) {
	var e identityview.Entity
	if old != nil {
		e = *old
	} else {
		e = identityview.Entity{ID: newUUID(), Created: r.now}
	}
	if engines.Has(r.data, "name") {
		name, err := engines.String(r.data, "name", "")
		if err != nil {
			return nil, err
		}
		if name != "" && name != e.Name {
			if other, ok := b.view.EntityByName(name); ok && other.ID != e.ID {
				return nil, engines.BadRequest("entity name is already in use")
			}
			e.Name = name
		}
	}
	if e.Name == "" {
		e.Name = "entity_" + strings.Split(e.ID, "-")[0]
	}
	if engines.Has(r.data, "metadata") {
		m, err := engines.StringMap(r.data, "metadata")
		if err != nil {
			return nil, err
		}
		e.Metadata = m
	}
	if engines.Has(r.data, "policies") {
		p, err := engines.Strings(r.data, "policies")
		if err != nil {
			return nil, err
		}
		e.Policies = sortedUnique(p)
		if slices.Contains(e.Policies, "root") {
			return nil, engines.BadRequest("policies cannot contain root")
		}
	}
	if engines.Has(r.data, "disabled") {
		d, err := engines.Bool(r.data, "disabled", false)
		if err != nil {
			return nil, err
		}
		e.Disabled = d
	}
	e.Updated = r.now
	var warnings []string
	if unknown := engines.Unknown(r.data, entityFields...); len(unknown) > 0 {
		warnings = append(warnings, fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown))
	}
	ev := b.event(r, identityview.EntityWritten, "entity", e.ID, e)
	d := map[string]any{"id": e.ID, "name": e.Name}
	if old == nil {
		d["aliases"] = nil
	}
	return &engines.Response{Data: d, Warnings: warnings, Events: []ledger.Event{ev}}, nil
}

func (b *Backend) aliasData(a identityview.Alias) map[string]any {
	path, typ := a.MountPath, a.MountType
	if mi, ok := b.mounts(a.MountAccessor); ok {
		path, typ = mi.Path, mi.Type
	}
	return map[string]any{
		"canonical_id": a.CanonicalID, "creation_time": stamp(a.Created), "custom_metadata": meta(a.CustomMetadata),
		"id": a.ID, "last_update_time": stamp(a.Updated), "local": false, "merged_from_canonical_ids": nil,
		"metadata": meta(a.Metadata), "mount_accessor": a.MountAccessor, "mount_path": path, "mount_type": typ,
		"name": a.Name, "namespace_id": "root",
	}
}

// entityData is Vault's entity read.
func (b *Backend) entityData(e identityview.Entity) map[string]any {
	aliases := []any{}
	for _, a := range b.view.AliasesOf(e.ID) {
		aliases = append(aliases, b.aliasData(a))
	}
	direct, inherited := b.view.Groups(e.ID)
	ids := func(gs []identityview.Group) []string {
		out := []string{}
		for _, g := range gs {
			out = append(out, g.ID)
		}
		return out
	}
	all := append(ids(direct), ids(inherited)...)
	sort.Strings(all)
	var merged any
	if len(e.MergedIDs) > 0 {
		merged = strs(e.MergedIDs)
	}
	return map[string]any{
		"aliases": aliases, "creation_time": stamp(e.Created), "direct_group_ids": ids(direct), "disabled": e.Disabled,
		"group_ids": all, "id": e.ID, "inherited_group_ids": ids(inherited), "last_update_time": stamp(e.Updated),
		"merged_entity_ids": merged, "metadata": meta(e.Metadata), "mfa_secrets": map[string]any{}, "name": e.Name,
		"namespace_id": "root", "policies": strs(e.Policies),
	}
}

// mergeEntities is POST entity/merge: the aliases of from_entity_ids move to to_entity_id,
// their policies and group memberships join it, and the merged entities are deleted.
func (b *Backend) mergeEntities(r *request) (*engines.Response, error) {
	to, err := engines.String(r.data, "to_entity_id", "")
	if err != nil {
		return nil, err
	}
	if to == "" {
		return nil, engines.BadRequest("missing entity id to merge to")
	}
	from, err := engines.Strings(r.data, "from_entity_ids")
	if err != nil {
		return nil, err
	}
	if len(from) == 0 {
		return nil, engines.BadRequest("missing entity ids to merge from")
	}
	target, ok := b.view.Entity(to)
	if !ok {
		return nil, engines.BadRequest("entity id to merge to is invalid")
	}
	accessors := map[string]string{}
	for _, a := range b.view.AliasesOf(to) {
		accessors[a.MountAccessor] = a.ID
	}
	var events []ledger.Event
	pols := append([]string{}, target.Policies...)
	groups := map[string]identityview.Group{} // groups whose members change, once each
	var order []string
	for _, id := range from {
		if id == to {
			return nil, engines.BadRequest("to_entity_id should not be present in from_entity_ids")
		}
		src, ok := b.view.Entity(id)
		if !ok {
			return nil, engines.BadRequest("entity id to merge from is invalid: %q", id)
		}
		for _, a := range b.view.AliasesOf(id) {
			if other, dup := accessors[a.MountAccessor]; dup {
				return nil, engines.BadRequest("conflicting mount accessors in following alias IDs: %s, %s", other, a.ID)
			}
			accessors[a.MountAccessor] = a.ID
			a.CanonicalID, a.Updated = to, r.now
			events = append(events, b.event(r, identityview.AliasWritten, "alias", a.ID, a))
		}
		pols = append(pols, src.Policies...)
		direct, _ := b.view.Groups(id)
		for _, g := range direct {
			if cur, ok := groups[g.ID]; ok {
				g = cur // already changed by an earlier entity of this merge
			} else {
				order = append(order, g.ID)
			}
			g.MemberEntityIDs = replaceMember(g.MemberEntityIDs, id, to)
			g.Updated = r.now
			groups[g.ID] = g
		}
		target.MergedIDs = append(target.MergedIDs, id)
		events = append(events, b.event(r, identityview.EntityDeleted, "entity", id, identityview.IDPayload{ID: id}))
	}
	for _, id := range order {
		events = append(events, b.event(r, identityview.GroupWritten, "group", id, groups[id]))
	}
	target.Policies = sortedUnique(pols)
	target.Updated = r.now
	events = append(events, b.event(r, identityview.EntityWritten, "entity", to, target))
	return &engines.Response{Events: events}, nil
}

func replaceMember(ids []string, from, to string) []string {
	out := []string{}
	for _, id := range ids {
		if id == from {
			id = to
		}
		out = append(out, id)
	}
	return sortedUnique(out)
}
