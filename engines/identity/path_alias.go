package identity

import (
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	identityview "github.com/ledger-secrets/ledger/projections/identity"
)

// aliasPaths routes entity-alias, entity-alias/id and entity-alias/id/<id>.
func (b *Backend) aliasPaths(r *request, rest string) (*engines.Response, error) {
	switch {
	case rest == "":
		if !isWrite(r.Op) {
			return nil, errUnsupportedOp
		}
		id, _ := engines.String(r.data, "id", "")
		if id != "" {
			a, ok := b.view.Alias(id)
			if !ok {
				return nil, engines.BadRequest("invalid alias ID provided")
			}
			return b.writeAlias(r, &a)
		}
		return b.writeAlias(r, nil)
	case rest == "id":
		if r.Op != engines.OpList {
			return nil, errUnsupportedOp
		}
		ids := b.view.AliasIDs()
		info := map[string]any{}
		for _, id := range ids {
			if a, ok := b.view.Alias(id); ok {
				d := b.aliasData(a)
				info[id] = map[string]any{"canonical_id": a.CanonicalID, "mount_accessor": a.MountAccessor,
					"mount_path": d["mount_path"], "mount_type": d["mount_type"], "name": a.Name}
			}
		}
		return list(ids, info)
	case strings.HasPrefix(rest, "id/"):
		a, ok := b.view.Alias(strings.TrimPrefix(rest, "id/"))
		switch {
		case r.Op == engines.OpRead:
			if !ok {
				return nil, engines.ErrNotFound
			}
			return &engines.Response{Data: b.aliasData(a)}, nil
		case isWrite(r.Op):
			if !ok {
				return nil, engines.BadRequest("invalid alias ID provided")
			}
			return b.writeAlias(r, &a)
		case r.Op == engines.OpDelete:
			if !ok {
				return &engines.Response{}, nil
			}
			return &engines.Response{Events: []ledger.Event{b.event(r, identityview.AliasDeleted, "alias", a.ID, identityview.IDPayload{ID: a.ID})}}, nil
		}
		return nil, errUnsupportedOp
	}
	return nil, errUnsupportedPath
}

// writeAlias creates (old nil) or updates an entity alias, with Vault's checks: the mount
// exists, the entity exists, one alias per mount per entity, one alias per name per mount.
func (b *Backend) writeAlias(r *request, old *identityview.Alias) (*engines.Response, error) {
	var a identityview.Alias
	if old != nil {
		a = *old
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
	if engines.Has(r.data, "custom_metadata") {
		if a.CustomMetadata, err = engines.StringMap(r.data, "custom_metadata"); err != nil {
			return nil, err
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
	if _, ok := b.view.Entity(a.CanonicalID); !ok {
		return nil, engines.BadRequest("invalid canonical ID")
	}
	if other, ok := b.view.AliasByName(a.MountAccessor, a.Name); ok && other.ID != a.ID {
		return nil, engines.BadRequest("alias with combination of mount accessor and name already exists for entity %q", other.CanonicalID)
	}
	for _, other := range b.view.AliasesOf(a.CanonicalID) {
		if other.ID != a.ID && other.MountAccessor == a.MountAccessor {
			return nil, engines.BadRequest("mount accessor %q already in use by alias %q on entity %q", a.MountAccessor, other.ID, a.CanonicalID)
		}
	}
	a.Updated = r.now
	ev := b.event(r, identityview.AliasWritten, "alias", a.ID, a)
	return &engines.Response{Data: map[string]any{"id": a.ID, "canonical_id": a.CanonicalID}, Events: []ledger.Event{ev}}, nil
}
