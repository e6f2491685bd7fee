package identity

import (
	"github.com/ledger-secrets/ledger/engines"
	identityview "github.com/ledger-secrets/ledger/projections/identity"
)

// lookupCriteria reads Vault's lookup fields; exactly one criterion (alias_name and
// alias_mount_accessor count as one) must be given.
func lookupCriteria(r *request) (name, id, aliasID, aliasName, aliasAccessor string, err error) {
	for key, dst := range map[string]*string{"name": &name, "id": &id, "alias_id": &aliasID, "alias_name": &aliasName, "alias_mount_accessor": &aliasAccessor} {
		if *dst, err = engines.String(r.data, key, ""); err != nil {
			return
		}
	}
	n := 0
	for _, s := range []string{name, id, aliasID} {
		if s != "" {
			n++
		}
	}
	if aliasName != "" || aliasAccessor != "" {
		if aliasName == "" || aliasAccessor == "" {
			err = engines.BadRequest("both 'alias_name' and 'alias_mount_accessor' needs to be set")
			return
		}
		n++
	}
	switch {
	case n == 0:
		err = engines.BadRequest("one of 'id', 'name', 'alias_id' or 'alias_name' and 'alias_mount_accessor' needs to be set")
	case n > 1:
		err = engines.BadRequest("only one of 'id', 'name', 'alias_id' or 'alias_name' and 'alias_mount_accessor' can be set")
	}
	return
}

// lookupEntity is POST lookup/entity: the entity, or 204 when none matches.
func (b *Backend) lookupEntity(r *request) (*engines.Response, error) {
	name, id, aliasID, aliasName, aliasAccessor, err := lookupCriteria(r)
	if err != nil {
		return nil, err
	}
	var (
		e  identityview.Entity
		ok bool
	)
	switch {
	case name != "":
		e, ok = b.view.EntityByName(name)
	case id != "":
		e, ok = b.view.Entity(id)
	case aliasID != "":
		if a, found := b.view.Alias(aliasID); found {
			e, ok = b.view.Entity(a.CanonicalID)
		}
	default:
		if a, found := b.view.AliasByName(aliasAccessor, aliasName); found {
			e, ok = b.view.Entity(a.CanonicalID)
		}
	}
	if !ok {
		return &engines.Response{}, nil
	}
	return &engines.Response{Data: b.entityData(e)}, nil
}

// lookupGroup is POST lookup/group.
func (b *Backend) lookupGroup(r *request) (*engines.Response, error) {
	name, id, aliasID, aliasName, aliasAccessor, err := lookupCriteria(r)
	if err != nil {
		return nil, err
	}
	var (
		g  identityview.Group
		ok bool
	)
	switch {
	case name != "":
		g, ok = b.view.GroupByName(name)
	case id != "":
		g, ok = b.view.Group(id)
	case aliasID != "":
		g, ok = b.view.GroupAlias(aliasID)
	default:
		g, ok = b.view.GroupByAlias(aliasAccessor, aliasName)
	}
	if !ok {
		return &engines.Response{}, nil
	}
	return &engines.Response{Data: b.groupData(g)}, nil
}
