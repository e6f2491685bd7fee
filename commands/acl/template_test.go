package acl

import "testing"

func TestTemplated(t *testing.T) {
	p, err := Parse("users", `
path "secret/data/users/{{identity.entity.name}}/*" { capabilities = ["create", "read", "update"] }
path "secret/data/byid/{{ identity.entity.id }}" { capabilities = ["read"] }
path "secret/data/team/{{identity.entity.metadata.team}}/*" { capabilities = ["read"] }
path "secret/data/alias/{{identity.entity.aliases.auth_userpass_1.name}}" { capabilities = ["read"] }
path "secret/data/group/{{identity.groups.names.eng.id}}" { capabilities = ["read"] }
path "secret/data/group-meta/{{identity.groups.ids.g1.metadata.site}}" { capabilities = ["read"] }
path "secret/data/shared" { capabilities = ["read"] }
`)
	if err != nil {
		t.Fatal(err)
	}
	alice := &Identity{EntityID: "e1", EntityName: "alice", EntityMeta: map[string]string{"team": "red"},
		Aliases: map[string]IdentityObject{"auth_userpass_1": {ID: "a1", Name: "alice-up"}},
		Groups:  []IdentityObject{{ID: "g1", Name: "eng", Metadata: map[string]string{"site": "ber"}}}}
	bob := &Identity{EntityID: "e2", EntityName: "bob"}
	a, b := New(p.Templated(alice)), New(p.Templated(bob))
	for _, c := range []struct {
		acl  *ACL
		path string
		want bool
	}{
		{a, "secret/data/users/alice/notes", true},
		{a, "secret/data/users/bob/notes", false},
		{b, "secret/data/users/bob/notes", true},
		{b, "secret/data/users/alice/notes", false},
		{a, "secret/data/byid/e1", true},
		{a, "secret/data/team/red/x", true},
		{b, "secret/data/team//x", false},
		{a, "secret/data/alias/alice-up", true},
		{a, "secret/data/group/g1", true},
		{a, "secret/data/group-meta/ber", true},
		{b, "secret/data/shared", true},
		{New(p.Templated(&Identity{EntityID: "e3", EntityName: "*"})), "secret/data/users/x/y", false},
		{New(p.Templated(nil)), "secret/data/users/alice/x", false},
	} {
		if got := c.acl.Allowed(Read, c.path, nil).Allowed; got != c.want {
			t.Errorf("%s: allowed %v, want %v", c.path, got, c.want)
		}
	}
}
