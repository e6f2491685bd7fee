package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// TestInvalidUTF8Paths: a path that is not valid UTF-8 is a 400 on every engine and auth
// method, with or without a token, and writes nothing; U+FFFD spelled validly is an ordinary
// key that reads back.
func TestInvalidUTF8Paths(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	ctx := context.Background()
	for path, typ := range map[string]string{"kv1": "kv", "transit": "transit", "database": "database"} {
		in := &vault.MountInput{Type: typ}
		if path == "kv1" {
			in.Options = map[string]string{"version": "1"}
		}
		if err := root.Sys().Mount(path, in); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"userpass", "approle"} {
		if err := root.Sys().EnableAuthWithOptions(m, &vault.EnableAuthOptions{Type: m}); err != nil {
			t.Fatal(err)
		}
	}
	rootH := tokenHeader(s.RootToken)
	paths := []struct{ method, path, body string }{
		{http.MethodPost, "secret/data/bad-%ff", `{"data":{"k":"v"}}`},
		{http.MethodGet, "secret/data/bad-%ff", ""},
		{http.MethodPost, "secret/metadata/bad-%fe", `{"max_versions":3}`},
		{"LIST", "secret/metadata/dir-%ff/", ""},
		{http.MethodDelete, "secret/data/bad-%ff", ""},
		{http.MethodPost, "kv1/bad-%ff", `{"k":"v"}`},
		{http.MethodGet, "kv1/bad-%c3", ""},
		{http.MethodPost, "transit/keys/bad-%ff", ``},
		{http.MethodPost, "transit/encrypt/bad-%ff", `{"plaintext":"aGk="}`},
		{http.MethodPost, "database/roles/bad-%ff", `{"db_name":"x"}`},
		{http.MethodPost, "auth/userpass/users/bad-%ff", `{"password":"long-enough-pw"}`},
		{http.MethodPost, "auth/userpass/login/bad-%ff", `{"password":"long-enough-pw"}`},
		{http.MethodPost, "auth/approle/role/bad-%ff", `{}`},
		{http.MethodPost, "auth/token/roles/bad-%ff", `{}`},
		{http.MethodPost, "sys/policies/acl/bad-%ff", `{"policy":"path \"x\" { capabilities = [\"read\"] }"}`},
		{http.MethodPost, "sys/mounts/bad-%ff", `{"type":"kv"}`},
		{http.MethodPost, "bad-%ff/x", `{}`},
		{http.MethodGet, "secret/data/overlong-%c0%af", ""},
		{http.MethodGet, "secret/data/surrogate-%ed%a0%80", ""},
	}
	for _, h := range []map[string]string{rootH, nil} {
		for _, p := range paths {
			var body *strings.Reader
			if p.body != "" {
				body = strings.NewReader(p.body)
			} else {
				body = strings.NewReader("")
			}
			r := raw(t, s.URL, p.method, p.path, body, h)
			if r.Status != http.StatusBadRequest {
				t.Errorf("%s %s (token %v): status %d, want 400: %s", p.method, p.path, h != nil, r.Status, trunc(r.Body))
				continue
			}
			if msgs := strings.Join(r.errs(t), " "); !strings.Contains(msgs, "UTF-8") {
				t.Errorf("%s %s: message %q does not say the path is not UTF-8", p.method, p.path, msgs)
			}
		}
	}
	// Nothing was written.
	if keys, err := root.Logical().List("secret/metadata/"); err != nil || keys != nil {
		t.Errorf("secret/ after refused writes: %v %v", keys, err)
	}
	if users, _ := root.Logical().List("auth/userpass/users"); users != nil {
		t.Errorf("userpass users after refused writes: %v", users.Data)
	}
	// A valid U+FFFD is an ordinary, distinct key.
	if r := raw(t, s.URL, http.MethodPost, "secret/data/ok-%EF%BF%BD", strings.NewReader(`{"data":{"k":"v"}}`), rootH); r.Status != 200 {
		t.Fatalf("write of a valid U+FFFD path: %d %s", r.Status, trunc(r.Body))
	}
	sec, err := root.KVv2("secret").Get(ctx, "ok-\uFFFD")
	if err != nil || sec.Data["k"] != "v" {
		t.Fatalf("read back: %v %v", sec, err)
	}
}
