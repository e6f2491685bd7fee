package importer

import (
	"context"
	"fmt"
	"sort"
)

// importIdentity copies entities (by name), their aliases (onto the same auth mount here) and
// groups (by name, members mapped to the entities and groups here). IDs are Ledger's own:
// Vault gives no way to choose an entity's ID, so items are matched by name.
func (im *importer) importIdentity(ctx context.Context) {
	if !im.mountWanted("identity/") {
		return
	}
	ids := im.listed(ctx, KindEntity, "identity/entity/id")
	srcEntityName := map[string]string{} // source entity ID → name
	for _, id := range ids {
		src, err := read(ctx, im.src, "identity/entity/id/"+id)
		if err != nil || src == nil {
			im.add(Item{Kind: KindEntity, Path: "identity/entity/id/" + id, Status: Unreadable, Reason: reasonOrGone(err)})
			continue
		}
		name, _ := src["name"].(string)
		srcEntityName[id] = name
		p := "identity/entity/name/" + name
		if !im.wanted(p) {
			continue
		}
		im.add(im.copyObject(ctx, copySpec{kind: KindEntity, path: p, srcPath: "identity/entity/id/" + id, dstPath: p,
			body: func(s map[string]any) map[string]any {
				return map[string]any{"policies": s["policies"], "metadata": s["metadata"], "disabled": s["disabled"]}
			}}))
		aliases, _ := src["aliases"].([]any)
		for _, raw := range aliases {
			a, _ := raw.(map[string]any)
			im.add(im.importAlias(ctx, name, a))
		}
	}

	gids := im.listed(ctx, KindGroup, "identity/group/id")
	srcGroupName := map[string]string{}
	groups := map[string]map[string]any{}
	for _, id := range gids {
		src, err := read(ctx, im.src, "identity/group/id/"+id)
		if err != nil || src == nil {
			im.add(Item{Kind: KindGroup, Path: "identity/group/id/" + id, Status: Unreadable, Reason: reasonOrGone(err)})
			continue
		}
		name, _ := src["name"].(string)
		srcGroupName[id] = name
		groups[name] = src
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	// A group is imported once the groups it contains are: member IDs must exist here.
	done := map[string]bool{}
	for progress := true; progress; {
		progress = false
		for _, name := range names {
			if done[name] {
				continue
			}
			src := groups[name]
			ready := true
			for _, r := range asList(src["member_group_ids"]) {
				if sub := srcGroupName[r]; sub != "" && !done[sub] && sub != name {
					ready = false
				}
			}
			if !ready {
				continue
			}
			done[name], progress = true, true
			im.importGroup(ctx, name, src, srcEntityName, srcGroupName)
		}
	}
	for _, name := range names {
		if !done[name] { // a cycle of groups: imported without the members not yet here
			im.importGroup(ctx, name, groups[name], srcEntityName, srcGroupName)
		}
	}
}

func asList(raw any) []string {
	l, _ := raw.([]any)
	out := make([]string, 0, len(l))
	for _, r := range l {
		if s, ok := r.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func (im *importer) importGroup(ctx context.Context, name string, src map[string]any, entityNames, groupNames map[string]string) {
	p := "identity/group/name/" + name
	if !im.wanted(p) {
		return
	}
	body := map[string]any{"type": src["type"], "policies": src["policies"], "metadata": src["metadata"]}
	if src["type"] != "external" {
		body["member_entity_ids"] = im.mapIDs(ctx, src["member_entity_ids"], entityNames, "identity/entity/name/")
		body["member_group_ids"] = im.mapIDs(ctx, src["member_group_ids"], groupNames, "identity/group/name/")
	}
	it := im.copyObject(ctx, copySpec{kind: KindGroup, path: p, srcPath: "identity/group/id/" + fmt.Sprint(src["id"]), dstPath: p,
		body: func(map[string]any) map[string]any { return body }})
	im.add(it)
	// An external group's alias is what ties it to the identity provider's group (an OIDC or
	// JWT groups claim): without it the group grants nothing.
	if a, _ := src["alias"].(map[string]any); src["type"] == "external" && a != nil && a["name"] != nil && a["name"] != "" {
		im.add(im.importGroupAlias(ctx, name, a))
	}
}

// aliasItem starts the report item of an alias of the entity or group at owner: its name, the
// accessor of the same auth mount here, and done when the item is already decided (that
// mount was not imported; a dry run).
func (im *importer) aliasItem(kind, owner string, a map[string]any) (it Item, name, dstAcc string, done bool) {
	name, _ = a["name"].(string)
	acc, _ := a["mount_accessor"].(string)
	mountPath := im.srcAccessors[acc]
	it = Item{Kind: kind, Path: fmt.Sprintf("%s/alias/%s%s", owner, mountPath, name)}
	im.mu.Lock()
	dstAcc = im.dstAccessors[mountPath]
	im.mu.Unlock()
	switch {
	case mountPath == "" || dstAcc == "":
		it.Status, it.Reason = NotMovable, "its auth mount was not imported"
		return it, name, dstAcc, true
	case im.opt.DryRun:
		it.Status = WouldImport
		return it, name, dstAcc, true
	}
	return it, name, dstAcc, false
}

// importGroupAlias gives the external group name here the source's alias: same name, on the
// same auth mount here. A group holds one alias; a different one here is a conflict.
func (im *importer) importGroupAlias(ctx context.Context, group string, a map[string]any) Item {
	it, name, dstAcc, done := im.aliasItem(KindGroupAlias, "identity/group/name/"+group, a)
	if done {
		return it
	}
	g, err := read(ctx, im.dst, "identity/group/name/"+group)
	if err != nil || g == nil {
		it.Status, it.Reason = Failed, "its group is not in Ledger"
		return it
	}
	if have, _ := g["alias"].(map[string]any); have != nil && have["name"] != nil && have["name"] != "" {
		if have["name"] == name && have["mount_accessor"] == dstAcc {
			it.Status = Unchanged
			return it
		}
		it.Status = Conflict
		it.Reason = fmt.Sprintf("the group here already has the alias %v on another mount or under another name; a group holds one", have["name"])
		return it
	}
	if _, err := write(ctx, im.dst, "identity/group-alias", map[string]any{"name": name, "canonical_id": g["id"], "mount_accessor": dstAcc}); err != nil {
		it.Status, it.Reason = Failed, reason("write", err)
		return it
	}
	it.Status = Imported
	return it
}

// mapIDs turns source IDs into the IDs of the same-named items here.
func (im *importer) mapIDs(ctx context.Context, raw any, names map[string]string, prefix string) []string {
	list, _ := raw.([]any)
	out := []string{}
	for _, r := range list {
		id, _ := r.(string)
		name, ok := names[id]
		if !ok {
			continue
		}
		if d, err := read(ctx, im.dst, prefix+name); err == nil && d != nil {
			if nid, ok := d["id"].(string); ok {
				out = append(out, nid)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (im *importer) importAlias(ctx context.Context, entity string, a map[string]any) Item {
	it, name, dstAcc, done := im.aliasItem(KindEntityAlias, "identity/entity/name/"+entity, a)
	if done {
		return it
	}
	ent, err := read(ctx, im.dst, "identity/entity/name/"+entity)
	if err != nil || ent == nil {
		it.Status, it.Reason = Failed, "its entity is not in Ledger"
		return it
	}
	have, _ := ent["aliases"].([]any)
	for _, raw := range have {
		h, _ := raw.(map[string]any)
		if h["name"] == name && h["mount_accessor"] == dstAcc {
			it.Status = Unchanged
			return it
		}
	}
	if _, err := write(ctx, im.dst, "identity/entity-alias", map[string]any{"name": name, "canonical_id": ent["id"], "mount_accessor": dstAcc, "metadata": a["metadata"]}); err != nil {
		it.Status, it.Reason = Failed, reason("write", err)
		return it
	}
	it.Status = Imported
	return it
}
