package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// Path variants real clients send (issue 19): vault-client-go escapes the path and appends "/"
// to a LIST, Vault's UI lists a mount's root as "path//", node-vault and the Go client send
// the plain forms. They all name the same list; no variant makes two secrets one.
func TestClientPathVariants(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	for _, p := range []string{"secret/data/vcg/one", "secret/data/vcg/sub/two", "secret/data/top"} {
		if _, err := c.Logical().Write(p, map[string]any{"data": map[string]any{"k": "v"}}); err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
	}
	root := []string{"top", "vcg/"}
	vcg := []string{"one", "sub/"}
	h := tokenHeader(s.RootToken)
	for _, tc := range []struct {
		name, method, path string
		want               []string
	}{
		{"root empty", "GET", "secret/metadata?list=true", root},
		{"root slash", "GET", "secret/metadata/?list=true", root},
		{"root double slash (Vault UI)", "GET", "secret/metadata//?list=true", root},
		{"root LIST double slash", "LIST", "secret/metadata//", root},
		{"root escaped slash (vault-client-go)", "GET", "secret/metadata/%2F?list=true", root},
		{"prefix plain", "LIST", "secret/metadata/vcg", vcg},
		{"prefix escaped + slash (vault-client-go)", "GET", "secret/metadata/vcg%2F/?list=true", vcg},
		{"prefix double slash", "GET", "secret/metadata/vcg//?list=true", vcg},
		{"prefix triple slash", "LIST", "secret/metadata/vcg///", vcg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := raw(t, s.URL, tc.method, tc.path, nil, h)
			if r.Status != http.StatusOK {
				t.Fatalf("%s %s: status %d %s", tc.method, tc.path, r.Status, r.Body)
			}
			m := r.json(t)
			data, _ := m["data"].(map[string]any)
			if got := strs(t, data["keys"]); !sameStrings(got, tc.want) {
				t.Fatalf("%s %s: keys %v, want %v", tc.method, tc.path, got, tc.want)
			}
			if m["mount_type"] != "kv" {
				t.Fatalf("mount_type %v, want kv", m["mount_type"])
			}
		})
	}

	t.Run("list of a missing prefix is 404 with empty errors", func(t *testing.T) {
		for _, p := range []string{"secret/metadata/nope?list=true", "secret/metadata/nope%2F/?list=true", "secret/metadata/nope//?list=true"} {
			r := raw(t, s.URL, "GET", p, nil, h)
			if r.Status != http.StatusNotFound || len(r.errs(t)) != 0 {
				t.Fatalf("GET %s: %d %s, want 404 {\"errors\":[]}", p, r.Status, r.Body)
			}
		}
	})

	t.Run("bad paths", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{"GET", "/"}, {"GET", "//?list=true"}, {"LIST", "%2F%2F"},
			{"GET", "secret/data/vcg//one"}, {"GET", "secret/data/vcg%2F%2Fone"},
			{"POST", "secret/data/a%2F%2Fb"}, {"GET", "/secret/data/top"},
		} {
			r := raw(t, s.URL, tc.method, tc.path, nil, h)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("%s %s: status %d %s, want 400", tc.method, tc.path, r.Status, r.Body)
			}
			if e := r.errs(t); len(e) != 1 || e[0] == "" {
				t.Fatalf("%s %s: errors %v, want one message", tc.method, tc.path, e)
			}
		}
		// Nothing was written under a doubled slash: the listing is unchanged.
		if got := listKeys(t, c, "secret/metadata"); !sameStrings(got, root) {
			t.Fatalf("after bad writes: keys %v, want %v", got, root)
		}
	})

	t.Run("a read with a trailing double slash is the read with one", func(t *testing.T) {
		r := raw(t, s.URL, "GET", "sys/mounts//", nil, h)
		if r.Status != http.StatusOK {
			t.Fatalf("GET sys/mounts//: %d %s", r.Status, r.Body)
		}
		if mt := r.json(t)["mount_type"]; mt != "system" {
			t.Fatalf("sys mount_type %v, want system", mt)
		}
		// A KV secret path cannot end in "/", in any number of them.
		r = raw(t, s.URL, "GET", "secret/data/top//", nil, h)
		if r.Status != http.StatusBadRequest {
			t.Fatalf("GET secret/data/top//: %d %s, want 400", r.Status, r.Body)
		}
	})
}

// mount_type names the engine that answered, on every response from a mount.
func TestMountTypeInEnvelope(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	if err := c.Sys().Mount("kv1", &vault.MountInput{Type: "kv"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	h := tokenHeader(s.RootToken)
	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "secret/data/x", `{"data":{"a":"b"}}`, "kv"},
		{"GET", "secret/data/x", "", "kv"},
		{"POST", "kv1/y", `{"a":"b"}`, ""}, // 204: no body
		{"GET", "kv1/y", "", "kv"},
		{"GET", "auth/token/lookup-self", "", "token"},
		{"POST", "transit/keys/k", "", ""},
		{"GET", "transit/keys/k", "", "transit"},
		{"GET", "sys/mounts", "", "system"},
	} {
		r := raw(t, s.URL, tc.method, tc.path, strings.NewReader(tc.body), h)
		if r.Status >= 300 {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, r.Status, r.Body)
		}
		if tc.want == "" {
			continue
		}
		if mt := r.json(t)["mount_type"]; mt != tc.want {
			t.Fatalf("%s %s: mount_type %v, want %q", tc.method, tc.path, mt, tc.want)
		}
	}
}
