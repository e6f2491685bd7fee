package commands

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ledger-secrets/ledger/commands/acl"
	"github.com/ledger-secrets/ledger/engines"
	engineidentity "github.com/ledger-secrets/ledger/engines/identity"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/mount"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// The identity store is built in, as in Vault: identity/ is always there, without a mount.
var identityMount = mount.Entry{Path: "identity/", Type: "identity", UUID: "identity", Accessor: "identity_builtin",
	Description: "identity store"}

func isIdentityPath(path string) bool {
	return path == "identity" || strings.HasPrefix(path, "identity/")
}

func (c *Core) identityRoute(st *unsealed, path string) (route, error) {
	b, err := c.backend(st, identityMount)
	if err != nil {
		return route{}, err
	}
	return route{mount: identityMount, backend: b, rel: strings.TrimPrefix(strings.TrimPrefix(path, "identity"), "/")}, nil
}

func (c *Core) identityBackend(st *unsealed) *engineidentity.Backend {
	return engineidentity.New(st.identity, func(accessor string) (engineidentity.MountInfo, bool) {
		for _, m := range st.mounts.List() {
			if m.Accessor == accessor && strings.HasPrefix(m.Path, "auth/") {
				return engineidentity.MountInfo{Path: m.Path, Type: m.Type}, true
			}
		}
		return engineidentity.MountInfo{}, false
	})
}

// loginIdentity ties a successful login to the identity store: the identity events (a first
// login's entity and alias, external group memberships) join the login's events, the token
// is stamped with the entity, and after the events are applied finish adds the identity
// policies to the answer. unlock must be called once the events are applied (or failed).
type loginIdentity struct {
	unlock func()
	entity string
}

func (c *Core) bindIdentity(st *unsealed, req *engines.Request, rt route, resp *engines.Response) (loginIdentity, error) {
	m := rt.mount
	li := loginIdentity{unlock: func() {}}
	au := resp.Auth
	if au == nil || au.Alias == nil || !strings.HasPrefix(m.Path, "auth/") {
		return li, nil
	}
	ib := c.identityBackend(st)
	in := engineidentity.LoginInput{RequestID: req.ID, Mount: req.Mount, Alias: *au.Alias, GroupAliases: au.GroupAliases, Now: req.Now}
	entityID, events := ib.LoginEvents(in)
	if len(events) > 0 {
		// Decide again under the store's lock: a concurrent first login of the same alias
		// must find the entity the other created, not create a second one.
		// The pipeline may already hold the backend's lock for this login (AppRole locks the
		// secret ID); when that is this very key it is held already.
		key := identityMount.UUID + "\x00" + engineidentity.LockAll
		held := ""
		if lk, ok := rt.backend.(engines.Locker); ok {
			if k := lk.LockKey(req); k != "" {
				held = m.UUID + "\x00" + k
			}
		}
		if held != key {
			li.unlock = st.locks.lock(key)
		}
		entityID, events = ib.LoginEvents(in)
	}
	for i, ev := range resp.Events {
		if ev.Type != tokenview.Created {
			continue
		}
		var p tokenview.CreatedPayload
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			li.unlock()
			return loginIdentity{}, fmt.Errorf("stamp token with entity: %w", err)
		}
		p.EntityID = entityID
		nev := enginetoken.CreatedEvent(p, ev.Actor)
		nev.Request, nev.Time = ev.Request, ev.Time
		resp.Events[i] = nev
	}
	resp.Events = append(events, resp.Events...)
	au.EntityID, li.entity = entityID, entityID
	return li, nil
}

// finish adds the entity's identity policies to the login's answer, as Vault shows them.
func (li loginIdentity) finish(st *unsealed, resp *engines.Response) {
	if li.entity == "" || resp == nil || resp.Auth == nil {
		return
	}
	ip := st.identity.Policies(li.entity)
	if len(ip) == 0 {
		return
	}
	resp.Auth.IdentityPolicies = ip
	all := append(append([]string{}, resp.Auth.TokenPolicies...), ip...)
	sort.Strings(all)
	resp.Auth.Policies = slices.Compact(all)
}

// aclForToken is the ACL of a token: its own policies plus, when it carries an entity, the
// entity's and its groups' (Vault's identity policies), with identity templates filled in for
// that entity. A disabled entity's tokens are refused everything.
func (c *Core) aclForToken(st *unsealed, e tokenview.Entry) *acl.ACL {
	return c.aclForIdentity(st, e.Policies, e.EntityID)
}

// aclForIdentity is aclForToken for a token's policies and entity.
func (c *Core) aclForIdentity(st *unsealed, policies []string, entityID string) *acl.ACL {
	if entityID == "" {
		return c.aclFor(st, policies)
	}
	e := struct {
		Policies []string
		EntityID string
	}{policies, entityID}
	ent, ok := st.identity.Entity(e.EntityID)
	if ok && ent.Disabled {
		return acl.New()
	}
	names := append(append([]string{}, e.Policies...), st.identity.Policies(e.EntityID)...)
	sort.Strings(names)
	names = slices.Compact(names)
	templated := false
	for _, n := range names {
		if p, ok := st.policies.Get(n); ok && acl.HasTemplates(p.Text) {
			templated = true
			break
		}
	}
	if !templated {
		return c.aclFor(st, names)
	}
	// Templated ACLs are per entity; the key holds the identity view's generation, so any
	// change to the entity, its aliases or its groups rebuilds it.
	var key strings.Builder
	fmt.Fprintf(&key, "entity\x00%s\x00%d\x00", e.EntityID, st.identity.Generation())
	for _, n := range names {
		key.WriteString(n)
		if p, ok := st.policies.Get(n); ok {
			fmt.Fprintf(&key, "@%s", p.Version)
		}
		key.WriteByte(0)
	}
	k := key.String()
	st.acls.mu.RLock()
	a, ok := st.acls.m[k]
	st.acls.mu.RUnlock()
	if ok {
		return a
	}
	id := c.templateIdentity(st, e.EntityID)
	var pols []*acl.Policy
	for _, n := range names {
		p, ok := st.policies.Get(n)
		if !ok || n == "root" {
			continue
		}
		parsed, err := acl.Parse(n, p.Text)
		if err != nil {
			c.logger.Error("stored policy does not parse; ignoring it", "policy", n, "err", err)
			continue
		}
		pols = append(pols, parsed.Templated(id))
	}
	a = acl.New(pols...)
	st.acls.mu.Lock()
	if len(st.acls.m) > 10000 {
		st.acls.m = map[string]*acl.ACL{}
	}
	st.acls.m[k] = a
	st.acls.mu.Unlock()
	return a
}

func (c *Core) templateIdentity(st *unsealed, entityID string) *acl.Identity {
	ent, ok := st.identity.Entity(entityID)
	if !ok {
		return nil
	}
	id := &acl.Identity{EntityID: ent.ID, EntityName: ent.Name, EntityMeta: ent.Metadata, Aliases: map[string]acl.IdentityObject{}}
	for _, a := range st.identity.AliasesOf(entityID) {
		id.Aliases[a.MountAccessor] = acl.IdentityObject{ID: a.ID, Name: a.Name, Metadata: a.Metadata}
	}
	direct, inherited := st.identity.Groups(entityID)
	for _, g := range append(direct, inherited...) {
		id.Groups = append(id.Groups, acl.IdentityObject{ID: g.ID, Name: g.Name, Metadata: g.Metadata})
	}
	return id
}

// groupAggregate resolves identity/group/id/<id> and identity/group/name/<name> for
// `ledger history`: a group's events show every membership change.
func (s *sysBackend) groupAggregate(p string) (aggregate, bool, error) {
	rest, ok := strings.CutPrefix(p, "identity/group/")
	if !ok {
		return aggregate{}, false, nil
	}
	by, key, _ := strings.Cut(rest, "/")
	var id string
	switch by {
	case "id":
		id = key
	case "name":
		g, ok := s.st.identity.GroupByName(key)
		if !ok {
			return aggregate{}, true, engines.Errorf(engines.ErrNotFound, "no group is called %q", key)
		}
		id = g.ID
	}
	if id == "" {
		return aggregate{}, true, engines.BadRequest("history of a group is at identity/group/id/<id> or identity/group/name/<name>")
	}
	return aggregate{canon: "identity/group/id/" + id, subject: ledger.SubjectFor("identity", "group", id), group: id}, true, nil
}

// aclForCaller is aclForToken for an authenticated caller.
func (c *Core) aclForCaller(st *unsealed, caller *engines.Caller) *acl.ACL {
	if caller == nil {
		return acl.New()
	}
	return c.aclForIdentity(st, caller.Policies, caller.EntityID)
}
