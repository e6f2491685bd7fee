package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// TestReservedMountPaths: sys/, cubbyhole/, identity/ and auth/token/ cannot be mounted at or
// disabled (Vault answers 400 to each), and nothing changes.
func TestReservedMountPaths(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	rootH := tokenHeader(s.RootToken)
	before, err := root.Sys().ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ method, path, body string }{
		{http.MethodPost, "sys/mounts/cubbyhole", `{"type":"kv"}`},
		{http.MethodPost, "sys/mounts/identity", `{"type":"kv"}`},
		{http.MethodPost, "sys/mounts/sys", `{"type":"kv"}`},
		{http.MethodPost, "sys/mounts/sys/x", `{"type":"kv"}`},
		{http.MethodPost, "sys/mounts/cubbyhole/sub", `{"type":"kv"}`},
		{http.MethodPost, "sys/auth/token", `{"type":"userpass"}`},
		{http.MethodDelete, "sys/mounts/sys", ""},
		{http.MethodDelete, "sys/mounts/cubbyhole", ""},
		{http.MethodDelete, "sys/mounts/identity", ""},
		{http.MethodDelete, "sys/auth/token", ""},
	}
	for _, tc := range cases {
		r := raw(t, s.URL, tc.method, tc.path, strings.NewReader(tc.body), rootH)
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s %s: status %d, want 400: %s", tc.method, tc.path, r.Status, trunc(r.Body))
			continue
		}
		if msgs := strings.Join(r.errs(t), " "); !strings.Contains(msgs, "reserved") {
			t.Errorf("%s %s: message %q does not say the path is reserved", tc.method, tc.path, msgs)
		}
	}
	after, err := root.Sys().ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("mounts changed: %d before, %d after", len(before), len(after))
	}
	// Ordinary paths still mount.
	if err := root.Sys().Mount("cubby-like", &vault.MountInput{Type: "kv"}); err != nil {
		t.Fatal(err)
	}
}

// TestUIMountsFiltered: sys/internal/ui/mounts lists only the mounts the token can touch
// something under, as Vault does; root sees them all.
func TestUIMountsFiltered(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	for _, m := range []string{"team-a", "team-b"} {
		if err := root.Sys().Mount(m, &vault.MountInput{Type: "kv", Description: "private " + m}); err != nil {
			t.Fatal(err)
		}
	}
	if err := root.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	putPolicy(t, root, "team-a", `path "team-a/*" { capabilities = ["read"] }`)
	mounts := func(token string) (secret, auth []string) {
		t.Helper()
		r := raw(t, s.URL, http.MethodGet, "sys/internal/ui/mounts", nil, tokenHeader(token))
		if r.Status != 200 {
			t.Fatalf("status %d: %s", r.Status, trunc(r.Body))
		}
		data, _ := r.json(t)["data"].(map[string]any)
		for k := range data["secret"].(map[string]any) {
			secret = append(secret, k)
		}
		for k := range data["auth"].(map[string]any) {
			auth = append(auth, k)
		}
		return secret, auth
	}
	def := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}}).ClientToken
	sec, auth := mounts(def)
	for _, m := range sec {
		if m == "team-a/" || m == "team-b/" || m == "secret/" {
			t.Errorf("a default-policy token sees mount %s", m)
		}
	}
	for _, m := range auth {
		if m == "userpass/" {
			t.Errorf("a default-policy token sees auth mount %s", m)
		}
	}
	a := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"team-a"}}).ClientToken
	sec, _ = mounts(a)
	if !sameStrings(filter(sec, "team-"), []string{"team-a/"}) {
		t.Errorf("a team-a token sees %q, want team-a/ only of the team mounts", sec)
	}
	sec, auth = mounts(s.RootToken)
	if !sameStrings(filter(sec, "team-"), []string{"team-a/", "team-b/"}) || len(auth) < 2 {
		t.Errorf("root sees secret %q auth %q", sec, auth)
	}
}

func filter(xs []string, prefix string) []string {
	var out []string
	for _, x := range xs {
		if strings.HasPrefix(x, prefix) {
			out = append(out, x)
		}
	}
	return out
}
