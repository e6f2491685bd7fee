package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/userpass"

	"github.com/ledger-secrets/ledger/engines/kubernetes/k8stest"
)

func authAccessor(t *testing.T, root *vault.Client, path string) string {
	t.Helper()
	auths, err := root.Sys().ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	return auths[path].Accessor
}

func userpassLogin(t *testing.T, s *testServer, name, pw string) (*vault.Client, *vault.Secret) {
	t.Helper()
	c := s.Client(t, "")
	auth, err := userpass.NewUserpassAuth(name, &userpass.Password{FromString: pw})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := c.Auth().Login(context.Background(), auth)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return c, sec
}

// TestIdentityLoginCreatesEntity: every auth method's first login creates one entity with one
// alias on that mount; later logins reuse it; tokens carry entity_id; lookups show the
// identity policies, which a group grants and the ACL honours.
func TestIdentityLoginCreatesEntity(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	if err := root.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().EnableAuthWithOptions("approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/alice", map[string]any{"password": "pw-alice"}); err != nil {
		t.Fatal(err)
	}
	_, first := userpassLogin(t, s, "alice", "pw-alice")
	eid := first.Auth.EntityID
	if eid == "" {
		t.Fatal("login token without entity_id")
	}
	_, second := userpassLogin(t, s, "alice", "pw-alice")
	if second.Auth.EntityID != eid {
		t.Fatalf("second login got entity %q, want %q", second.Auth.EntityID, eid)
	}
	ent, err := root.Logical().Read("identity/entity/id/" + eid)
	if err != nil || ent == nil {
		t.Fatalf("read entity: %v", err)
	}
	aliases := ent.Data["aliases"].([]any)
	upAcc := authAccessor(t, root, "userpass/")
	if len(aliases) != 1 || aliases[0].(map[string]any)["name"] != "alice" || aliases[0].(map[string]any)["mount_accessor"] != upAcc ||
		aliases[0].(map[string]any)["mount_type"] != "userpass" || !strings.HasPrefix(ent.Data["name"].(string), "entity_") {
		t.Fatalf("entity %v", ent.Data)
	}
	if keys := listKeys(t, root, "identity/entity/id"); len(keys) != 1 {
		t.Fatalf("entities %v", keys)
	}

	// AppRole logins make their own entity, aliased by role_id.
	if _, err := root.Logical().Write("auth/approle/role/ci", map[string]any{"token_policies": "default"}); err != nil {
		t.Fatal(err)
	}
	rid, _ := root.Logical().Read("auth/approle/role/ci/role-id")
	sid, _ := root.Logical().Write("auth/approle/role/ci/secret-id", nil)
	ar, _ := approle.NewAppRoleAuth(rid.Data["role_id"].(string), &approle.SecretID{FromString: sid.Data["secret_id"].(string)})
	arSec, err := s.Client(t, "").Auth().Login(context.Background(), ar)
	if err != nil || arSec.Auth.EntityID == "" || arSec.Auth.EntityID == eid {
		t.Fatalf("approle login: %v %+v", err, arSec)
	}
	look, err := root.Logical().Write("identity/lookup/entity", map[string]any{"alias_name": rid.Data["role_id"], "alias_mount_accessor": authAccessor(t, root, "approle/")})
	if err != nil || look == nil || look.Data["id"] != arSec.Auth.EntityID {
		t.Fatalf("lookup by alias: %v %v", look, err)
	}

	// An internal group grants its policy to alice's entity: token lookup and the ACL agree.
	putPolicy(t, root, "eng-read", `path "secret/data/eng/*" { capabilities = ["read"] }`)
	if _, err := root.KVv2("secret").Put(context.Background(), "eng/doc", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	alice := s.Client(t, second.Auth.ClientToken)
	if _, err := alice.KVv2("secret").Get(context.Background(), "eng/doc"); err == nil {
		t.Fatal("read before the group granted it")
	}
	g, err := root.Logical().Write("identity/group", map[string]any{"name": "eng", "policies": "eng-read", "member_entity_ids": eid})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.KVv2("secret").Get(context.Background(), "eng/doc"); err != nil {
		t.Fatalf("read through the group: %v", err)
	}
	self, err := alice.Auth().Token().LookupSelf()
	if err != nil || self.Data["entity_id"] != eid || !sameStrings(strs(t, self.Data["identity_policies"]), []string{"eng-read"}) {
		t.Fatalf("lookup-self: %v %v", self.Data, err)
	}
	_, third := userpassLogin(t, s, "alice", "pw-alice")
	if !sameStrings(third.Auth.IdentityPolicies, []string{"eng-read"}) || !sameStrings(third.Auth.Policies, []string{"default", "eng-read"}) {
		t.Fatalf("login auth: identity %v policies %v", third.Auth.IdentityPolicies, third.Auth.Policies)
	}
	grp, err := root.Logical().Read("identity/group/id/" + g.Data["id"].(string))
	if err != nil || grp.Data["name"] != "eng" || grp.Data["type"] != "internal" || !sameStrings(strs(t, grp.Data["member_entity_ids"]), []string{eid}) {
		t.Fatalf("group read %v %v", grp, err)
	}
	// Disabling the entity takes every token of it out of service.
	if _, err := root.Logical().Write("identity/entity/id/"+eid, map[string]any{"disabled": true}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.KVv2("secret").Get(context.Background(), "eng/doc"); err == nil {
		t.Fatal("a disabled entity's token still reads")
	}
}

// TestIdentityTemplatedPolicy: one templated policy gives alice and bob each their own
// secret/data/users/<name>/* and nothing of the other's.
func TestIdentityTemplatedPolicy(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	if err := root.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	acc := authAccessor(t, root, "userpass/")
	putPolicy(t, root, "own-subtree", `
path "secret/data/users/{{identity.entity.aliases.`+acc+`.name}}/*" { capabilities = ["create", "read", "update"] }
path "secret/data/by-entity/{{identity.entity.name}}" { capabilities = ["read"] }
`)
	clients := map[string]*vault.Client{}
	for _, u := range []string{"alice", "bob"} {
		if _, err := root.Logical().Write("auth/userpass/users/"+u, map[string]any{"password": "pw-" + u, "token_policies": "own-subtree"}); err != nil {
			t.Fatal(err)
		}
		c, sec := userpassLogin(t, s, u, "pw-"+u)
		clients[u] = c
		// Name the entity after the user, so the entity-name template is exercised too.
		if _, err := root.Logical().Write("identity/entity/id/"+sec.Auth.EntityID, map[string]any{"name": u}); err != nil {
			t.Fatal(err)
		}
	}
	for u, c := range clients {
		if _, err := c.KVv2("secret").Put(context.Background(), "users/"+u+"/notes", map[string]any{"mine": u}); err != nil {
			t.Fatalf("%s writes own subtree: %v", u, err)
		}
		if got, err := c.KVv2("secret").Get(context.Background(), "users/"+u+"/notes"); err != nil || got.Data["mine"] != u {
			t.Fatalf("%s reads own subtree: %v", u, err)
		}
		if _, err := root.KVv2("secret").Put(context.Background(), "by-entity/"+u, map[string]any{"x": u}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.KVv2("secret").Get(context.Background(), "by-entity/"+u); err != nil {
			t.Fatalf("%s reads by entity name: %v", u, err)
		}
	}
	for u, c := range clients {
		other := map[string]string{"alice": "bob", "bob": "alice"}[u]
		if _, err := c.KVv2("secret").Get(context.Background(), "users/"+other+"/notes"); err == nil {
			t.Fatalf("%s read %s's subtree", u, other)
		}
		if _, err := c.KVv2("secret").Put(context.Background(), "users/"+other+"/evil", map[string]any{"x": 1}); err == nil {
			t.Fatalf("%s wrote into %s's subtree", u, other)
		}
		if _, err := c.KVv2("secret").Get(context.Background(), "by-entity/"+other); err == nil {
			t.Fatalf("%s read %s's entity path", u, other)
		}
	}
}

// TestIdentityBadInput: the store refuses what Vault refuses, with 400s, and writes nothing.
func TestIdentityBadInput(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	e, err := root.Logical().Write("identity/entity", map[string]any{"name": "alice", "policies": "p1"})
	if err != nil || e.Data["name"] != "alice" || e.Data["id"] == "" {
		t.Fatalf("create entity: %v %v", e, err)
	}
	for name, c := range map[string]struct {
		path string
		body map[string]any
	}{
		"alias with unknown mount":   {"identity/entity-alias", map[string]any{"name": "x", "canonical_id": e.Data["id"], "mount_accessor": "auth_nope_1"}},
		"alias without name":         {"identity/entity-alias", map[string]any{"canonical_id": e.Data["id"], "mount_accessor": "auth_nope_1"}},
		"update of unknown entity":   {"identity/entity/id/00000000-0000-0000-0000-000000000000", map[string]any{"policies": "x"}},
		"root policy":                {"identity/entity", map[string]any{"name": "bob", "policies": "root"}},
		"bad group type":             {"identity/group", map[string]any{"name": "g", "type": "weird"}},
		"unknown member entity":      {"identity/group", map[string]any{"name": "g", "member_entity_ids": "nope"}},
		"lookup without criteria":    {"identity/lookup/entity", map[string]any{}},
		"lookup with two criteria":   {"identity/lookup/entity", map[string]any{"name": "alice", "id": "x"}},
		"merge into unknown":         {"identity/entity/merge", map[string]any{"to_entity_id": "nope", "from_entity_ids": e.Data["id"]}},
		"group alias on no group":    {"identity/group-alias", map[string]any{"name": "eng", "mount_accessor": "x", "canonical_id": "nope"}},
		"metadata of wrong type":     {"identity/entity", map[string]any{"name": "carol", "metadata": []any{1}}},
		"external group with member": {"identity/group", map[string]any{"name": "ext", "type": "external", "member_entity_ids": e.Data["id"]}},
	} {
		_, err := root.Logical().Write(c.path, c.body)
		wantStatus(t, name, err, http.StatusBadRequest)
	}
	if keys := listKeys(t, root, "identity/entity/name"); len(keys) != 1 || keys[0] != "alice" {
		t.Fatalf("entities after refusals: %v", keys)
	}
	if _, err := root.Logical().List("identity/group/id"); err != nil {
		t.Fatal(err)
	}
	// Subgroup cycles are refused.
	g1, _ := root.Logical().Write("identity/group", map[string]any{"name": "g1"})
	g2, _ := root.Logical().Write("identity/group", map[string]any{"name": "g2", "member_group_ids": g1.Data["id"]})
	_, err = root.Logical().Write("identity/group/id/"+g1.Data["id"].(string), map[string]any{"member_group_ids": g2.Data["id"]})
	wantStatus(t, "cycle", err, http.StatusBadRequest)
}

// TestIdentityKubernetesAlias: a Kubernetes login's entity is aliased by the service account's
// UID on the kubernetes mount.
func TestIdentityKubernetesAlias(t *testing.T) {
	s := startServer(t)
	root, cl := k8sLesson(t, s, nil)
	_, sec, err := k8sLogin(t, s, cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	look, err := root.Logical().Write("identity/lookup/entity", map[string]any{"alias_name": cl.UID("production", "myapp-sa"), "alias_mount_accessor": authAccessor(t, root, "kubernetes/")})
	if err != nil || look == nil || look.Data["id"] != sec.Auth.EntityID {
		t.Fatalf("lookup: %v %v", look, err)
	}
	al := look.Data["aliases"].([]any)[0].(map[string]any)
	if al["metadata"].(map[string]any)["service_account_namespace"] != "production" {
		t.Fatalf("alias metadata %v", al)
	}
}

// TestIdentityGroupHistory: group membership changes are events, and `ledger history` (the
// sys/ledger/history API) lists them with the members after each change.
func TestIdentityGroupHistory(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	a, _ := root.Logical().Write("identity/entity", map[string]any{"name": "alice"})
	b, _ := root.Logical().Write("identity/entity", map[string]any{"name": "bob"})
	g, err := root.Logical().Write("identity/group", map[string]any{"name": "eng", "member_entity_ids": a.Data["id"]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("identity/group/name/eng", map[string]any{"member_entity_ids": []any{a.Data["id"], b.Data["id"]}}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("identity/group/name/eng", map[string]any{"member_entity_ids": b.Data["id"]}); err != nil {
		t.Fatal(err)
	}
	h, err := root.Logical().Read("sys/ledger/history/identity/group/name/eng")
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	body := map[string]any{"data": h.Data}
	evs := body["data"].(map[string]any)["events"].([]any)
	if len(evs) != 3 {
		t.Fatalf("history events %v", evs)
	}
	last := evs[2].(map[string]any)
	if !sameStrings(strs(t, last["member_entity_ids"]), []string{b.Data["id"].(string)}) || last["type"] != "identity.group.written.v1" {
		t.Fatalf("last event %v", last)
	}
	if body["data"].(map[string]any)["path"] != "identity/group/id/"+g.Data["id"].(string) {
		t.Fatalf("path %v", body["data"])
	}
	// The identity and authrole views join replay: rebuilt from the log, they match.
	cl := k8stest.New(t)
	if err := root.Sys().EnableAuthWithOptions("kubernetes", &vault.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/kubernetes/config", map[string]any{"kubernetes_host": cl.URL}); err != nil {
		t.Fatal(err)
	}
	d := verifyOK(t, root, "genesis")
	seen := map[string]bool{}
	for _, v := range d["views"].([]any) {
		seen[v.(map[string]any)["name"].(string)] = true
	}
	for _, v := range []string{"identity", "authrole"} {
		if !seen[v] {
			t.Fatalf("replay verify did not compare view %s: %v", v, seen)
		}
	}
}

// TestIdentityMerge: entity/merge moves the aliases and group memberships of the merged
// entities to the target, unions their policies, and deletes them.
func TestIdentityMerge(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	if err := root.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/alice", map[string]any{"password": "pw"}); err != nil {
		t.Fatal(err)
	}
	_, sec := userpassLogin(t, s, "alice", "pw")
	from := sec.Auth.EntityID
	to, err := root.Logical().Write("identity/entity", map[string]any{"name": "alice-person", "policies": "p-to"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := root.Logical().Write("identity/entity", map[string]any{"name": "other", "policies": "p-other"})
	if _, err := root.Logical().Write("identity/group", map[string]any{"name": "g", "member_entity_ids": []any{from, other.Data["id"]}}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("identity/entity/merge", map[string]any{"to_entity_id": to.Data["id"], "from_entity_ids": []any{from, other.Data["id"]}}); err != nil {
		t.Fatal(err)
	}
	if e, _ := root.Logical().Read("identity/entity/id/" + from); e != nil {
		t.Fatal("the merged entity still exists")
	}
	e, err := root.Logical().Read("identity/entity/id/" + to.Data["id"].(string))
	if err != nil || len(e.Data["aliases"].([]any)) != 1 || !sameStrings(strs(t, e.Data["policies"]), []string{"p-other", "p-to"}) {
		t.Fatalf("target after merge: %v %v", e, err)
	}
	g, _ := root.Logical().Read("identity/group/name/g")
	if !sameStrings(strs(t, g.Data["member_entity_ids"]), []string{to.Data["id"].(string)}) {
		t.Fatalf("group members after merge: %v", g.Data["member_entity_ids"])
	}
	// alice's next login lands on the merged entity.
	if _, sec := userpassLogin(t, s, "alice", "pw"); sec.Auth.EntityID != to.Data["id"] {
		t.Fatalf("login after merge: entity %s", sec.Auth.EntityID)
	}
}

// TestIdentityListedAsMount: as in Vault, sys/mounts lists the built-in identity/ store (and
// `secrets list` shows it), and it cannot be disabled.
func TestIdentityListedAsMount(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	mounts, err := root.Sys().ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	m, ok := mounts["identity/"]
	if !ok || m.Type != "identity" || m.Accessor == "" || m.Description != "identity store" {
		t.Fatalf("identity/ in sys/mounts: %+v (present %v)", m, ok)
	}
	err = root.Sys().Unmount("identity")
	wantStatus(t, "disable identity/", err, http.StatusBadRequest)
}
