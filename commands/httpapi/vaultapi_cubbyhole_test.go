package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// TestVaultAPICubbyhole: every token has its own cubbyhole/, which no other token (root
// included) sees, and which is shredded when the token is revoked.
func TestVaultAPICubbyhole(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	a := s.Client(t, newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}}).ClientToken)
	b := s.Client(t, newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}}).ClientToken)
	secret := wmarker(t, "cubby")

	if _, err := a.Logical().Write("cubbyhole/app/db", map[string]any{"password": secret}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Logical().Write("cubbyhole/top", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	got, err := a.Logical().Read("cubbyhole/app/db")
	if err != nil || got == nil || got.Data["password"] != secret {
		t.Fatalf("read own cubbyhole: %v %v", err, got)
	}
	if keys := listKeys(t, a, "cubbyhole/"); !sameStrings(keys, []string{"app/", "top"}) {
		t.Fatalf("list: %v", keys)
	}
	if keys := listKeys(t, a, "cubbyhole/app"); !sameStrings(keys, []string{"db"}) {
		t.Fatalf("list app: %v", keys)
	}
	for name, c := range map[string]*vault.Client{"another token": b, "root": root} {
		if got, err := c.Logical().Read("cubbyhole/app/db"); err != nil || got != nil {
			t.Fatalf("%s reads the cubbyhole of another: %v %v", name, err, got)
		}
		if keys := listKeys(t, c, "cubbyhole/"); keys != nil {
			t.Fatalf("%s lists the cubbyhole of another: %v", name, keys)
		}
	}
	// Bad input.
	_, err = a.Logical().Write("cubbyhole/empty", map[string]any{})
	respErr(t, err, http.StatusBadRequest, "missing data fields")
	if r := raw(t, s.URL, http.MethodPost, "cubbyhole/dir/", strings.NewReader(`{"k":"v"}`), tokenHeader(a.Token())); r.Status != http.StatusBadRequest {
		t.Fatalf("write to a folder: %d %s", r.Status, r.Body)
	}
	r := raw(t, s.URL, http.MethodPost, "cubbyhole/x", strings.NewReader(`{"k":`), tokenHeader(b.Token()))
	if r.Status != http.StatusBadRequest {
		t.Fatalf("bad JSON: %d %s", r.Status, r.Body)
	}
	_, err = s.Client(t, "").Logical().Read("cubbyhole/app/db")
	denied(t, err)
	// A token with no policy granting cubbyhole/ is refused there, as in Vault.
	bare := s.Client(t, newToken(t, root, &vault.TokenCreateRequest{NoDefaultPolicy: true, Policies: []string{"nothing"}}).ClientToken)
	_, err = bare.Logical().Write("cubbyhole/x", map[string]any{"k": "v"})
	denied(t, err)
	// Delete, then revoke: the rest is shredded.
	if _, err := a.Logical().Delete("cubbyhole/top"); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Logical().Read("cubbyhole/top"); got != nil {
		t.Fatal("deleted value still read")
	}
	mounts, err := root.Sys().ListMounts()
	if err != nil || mounts["cubbyhole/"] == nil || mounts["cubbyhole/"].Type != "cubbyhole" {
		t.Fatalf("sys/mounts has no cubbyhole/: %v", err)
	}
	if n := cubbyholeKeys(t, s); n != 1 {
		t.Fatalf("%d cubbyhole data keys, want 1 (the deleted value's shredded)", n)
	}
	if err := root.Auth().Token().RevokeTree(a.Token()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the revoked token's cubbyhole shredded", func() bool { return cubbyholeKeys(t, s) == 0 })
	grepDir(t, s.Dir, secret)
}
