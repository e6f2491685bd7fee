package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// marker is a stand-in secret: it must never come back in an error body.
const marker = "MARKER-s3cr3t-7f3a9c"

// TestVaultAPIConventions covers the HTTP conventions and bad input with raw net/http, where
// the client cannot express the request.
func TestVaultAPIConventions(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	ctx := context.Background()
	rootH := tokenHeader(s.RootToken)
	if _, err := root.KVv2("secret").Put(ctx, "app/x", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}

	t.Run("bad bodies", func(t *testing.T) {
		cases := []struct {
			name, method, path, body string
			status                   int
			contains                 string // in the error message
		}{
			{"malformed JSON", http.MethodPost, "secret/data/bad", `{"data":{"password":"` + marker + `"`, 400, "JSON"},
			{"malformed JSON on sys", http.MethodPut, "sys/policies/acl/bad", `{"policy": "` + marker, 400, "JSON"},
			{"JSON array", http.MethodPost, "secret/data/bad", `[{"data":{"password":"` + marker + `"}}]`, 400, ""},
			{"JSON string", http.MethodPost, "secret/data/bad", `"` + marker + `"`, 400, ""},
			{"trailing garbage", http.MethodPost, "secret/data/bad", `{"data":{"a":"b"}} {"x":"` + marker + `"}`, 400, ""},
			{"max_versions of the wrong type", http.MethodPost, "secret/metadata/bad", `{"max_versions":"ten"}`, 400, "max_versions"},
			{"data not an object", http.MethodPost, "secret/data/bad", `{"data":"` + marker + `"}`, 400, "data"},
			{"cas not a number", http.MethodPost, "secret/data/bad", `{"data":{"p":"` + marker + `"},"options":{"cas":"x"}}`, 400, ""},
			{"token create with a bad ttl", http.MethodPost, "auth/token/create", `{"ttl":"forever"}`, 400, "ttl"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := raw(t, s.URL, tc.method, tc.path, strings.NewReader(tc.body), rootH)
				if r.Status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.Status, tc.status, trunc(r.Body))
				}
				msgs := r.errs(t)
				if len(msgs) == 0 || !strings.Contains(strings.Join(msgs, " "), tc.contains) {
					t.Fatalf("errors %q, want a message containing %q", msgs, tc.contains)
				}
				noLeak(t, tc.name, r.Body, marker)
			})
		}
		// None of them wrote anything.
		for _, p := range []string{"bad"} {
			if _, err := root.KVv2("secret").GetMetadata(ctx, p); !isNotFound(err) {
				t.Errorf("secret/%s exists after refused writes: %v", p, err)
			}
		}
		if txt, _ := root.Sys().GetPolicy("bad"); txt != "" {
			t.Errorf("policy bad exists after a refused write")
		}
	})

	t.Run("40 MB body", func(t *testing.T) {
		var b bytes.Buffer
		b.WriteString(`{"data":{"big":"`)
		chunk := strings.Repeat(marker, 1024)
		for b.Len() < 40<<20 {
			b.WriteString(chunk)
		}
		b.WriteString(`"}}`)
		r := raw(t, s.URL, http.MethodPost, "secret/data/huge", &b, rootH)
		if r.Status != http.StatusRequestEntityTooLarge && (r.Status < 400 || r.Status >= 500) {
			t.Fatalf("status %d, want 413 (or another 4xx): %s", r.Status, trunc(r.Body))
		}
		if r.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, Vault answers 413", r.Status)
		}
		if msgs := r.errs(t); len(msgs) == 0 || msgs[0] == "" {
			t.Fatalf("no message: %s", r.Body)
		}
		noLeak(t, "40 MB body", r.Body, marker)
		if _, err := root.KVv2("secret").GetMetadata(ctx, "huge"); !isNotFound(err) {
			t.Fatalf("the oversized write left something: %v", err)
		}
		// The server is still fine.
		if _, err := root.KVv2("secret").Get(ctx, "app/x"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bad paths", func(t *testing.T) {
		cases := []struct {
			name, method, path string
			status             int
		}{
			{"dot-dot read", http.MethodGet, "secret/data/../data/app/x", 400},
			{"dot-dot write", http.MethodPost, "secret/data/a/../../metadata/app/x", 400},
			{"encoded dot-dot", http.MethodGet, "secret/data/%2e%2e/data/app/x", 400},
			{"dot segment", http.MethodGet, "secret/data/./app/x", 400},
			{"NUL", http.MethodGet, "secret/data/app/x%00", 400},
			{"NUL write", http.MethodPost, "secret/data/app%00x", 400},
			{"trailing space", http.MethodGet, "secret/data/app/x%20", 400},
			{"trailing space write", http.MethodPost, "secret/data/app/y%20", 400},
			{"unknown mount", http.MethodGet, "nomount/x", 404},
			{"unknown sys path", http.MethodGet, "sys/no-such-endpoint", 404},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var body io.Reader
				if tc.method == http.MethodPost {
					body = strings.NewReader(`{"data":{"k":"` + marker + `"}}`)
				}
				r := raw(t, s.URL, tc.method, tc.path, body, rootH)
				if r.Status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.Status, tc.status, trunc(r.Body))
				}
				r.errs(t)
				noLeak(t, tc.name, r.Body, marker)
			})
		}
		// Nothing was written under a bad path.
		keys := listKeys(t, root, "secret/metadata/app/")
		if !sameStrings(keys, []string{"x"}) {
			t.Fatalf("app/ after bad-path writes = %q", keys)
		}
		if md, err := root.KVv2("secret").GetMetadata(ctx, "app/x"); err != nil || md.CurrentVersion != 1 {
			t.Fatalf("app/x after bad-path writes: %+v %v", md, err)
		}
		if top := listKeys(t, root, "secret/metadata/"); !sameStrings(top, []string{"app/"}) {
			t.Errorf("secret/ after bad-path writes = %q", top)
		}
	})

	t.Run("kv v2 path outside data/ metadata/", func(t *testing.T) {
		// vault-plugin-secrets-kv: 404 with a warning, no errors.
		r := raw(t, s.URL, http.MethodGet, "secret/nosuchprefix/x", nil, rootH)
		if r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), "Invalid path for a versioned K/V secrets engine") {
			t.Fatalf("status %d: %s", r.Status, trunc(r.Body))
		}
	})

	t.Run("percent-encoding is decoded as Vault does", func(t *testing.T) {
		// Vault routes on r.URL.Path (decoded): "enc%2Fkey" is the key "enc/key", whatever
		// escaping the client chose.
		r := raw(t, s.URL, http.MethodPost, "secret/data/enc%2Fkey", strings.NewReader(`{"data":{"k":"v"}}`), rootH)
		if r.Status != http.StatusOK {
			t.Fatalf("write: %d %s", r.Status, trunc(r.Body))
		}
		if keys := listKeys(t, root, "secret/metadata/"); contains(keys, "enc%2Fkey") || !contains(keys, "enc/") {
			t.Errorf("keys after writing enc%%2Fkey = %q, want enc/ (the key enc/key)", keys)
		}
		if sec, err := root.KVv2("secret").Get(ctx, "enc/key"); err != nil || sec.Data["k"] != "v" {
			t.Errorf("read enc/key = %+v %v", sec, err)
		}
		root.KVv2("secret").DeleteMetadata(ctx, "enc/key")
		raw(t, s.URL, http.MethodDelete, "secret/metadata/enc%2Fkey", nil, rootH)
	})

	t.Run("LIST and GET list=true", func(t *testing.T) {
		for _, p := range []string{"l/a", "l/b/c"} {
			if _, err := root.KVv2("secret").Put(ctx, p, map[string]any{"k": "v"}); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct{ name, method, path string }{
			{"LIST", "LIST", "secret/metadata/l/"},
			{"LIST without slash", "LIST", "secret/metadata/l"},
			{"GET ?list=true", http.MethodGet, "secret/metadata/l/?list=true"},
			{"GET ?list=true without slash", http.MethodGet, "secret/metadata/l?list=true"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := raw(t, s.URL, tc.method, tc.path, nil, rootH)
				if r.Status != http.StatusOK {
					t.Fatalf("status %d: %s", r.Status, r.Body)
				}
				data, _ := r.json(t)["data"].(map[string]any)
				if keys := strs(t, data["keys"]); !sameStrings(keys, []string{"a", "b/"}) {
					t.Fatalf("keys = %v", keys)
				}
			})
		}
		// Vault parses list= with strconv.ParseBool: "t", "1", "TRUE" list; anything else is 400.
		for _, v := range []string{"t", "1", "TRUE"} {
			r := raw(t, s.URL, http.MethodGet, "secret/metadata/l/?list="+v, nil, rootH)
			if data, _ := r.json(t)["data"].(map[string]any); r.Status != http.StatusOK || !sameStrings(strs(t, data["keys"]), []string{"a", "b/"}) {
				t.Errorf("?list=%s: %d %s", v, r.Status, trunc(r.Body))
			}
		}
		if r := raw(t, s.URL, http.MethodGet, "secret/metadata/l/?list=maybe", nil, rootH); r.Status != http.StatusBadRequest {
			t.Errorf("?list=maybe: %d %s, want 400", r.Status, trunc(r.Body))
		}
		for _, m := range []string{"LIST", http.MethodGet + "?"} {
			path := "secret/metadata/nothing-here/"
			method := m
			if m != "LIST" {
				method, path = http.MethodGet, path+"?list=true"
			}
			r := raw(t, s.URL, method, path, nil, rootH)
			if r.Status != http.StatusNotFound || strings.TrimSpace(string(r.Body)) != `{"errors":[]}` {
				t.Fatalf("%s of an empty folder: %d %q, want 404 {\"errors\":[]}", m, r.Status, r.Body)
			}
		}
	})

	t.Run("204 when there is nothing to say", func(t *testing.T) {
		if err := root.Sys().Mount("kv1", &vault.MountInput{Type: "kv"}); err != nil {
			t.Fatal(err)
		}
		cases := []struct{ name, method, path, body string }{
			{"policy write", http.MethodPut, "sys/policies/acl/p204", `{"policy":"path \"x/*\" { capabilities = [\"read\"] }"}`},
			{"kv v1 write", http.MethodPost, "kv1/a", `{"k":"v"}`},
			{"kv v1 delete", http.MethodDelete, "kv1/a", ``},
			{"kv v2 delete", http.MethodDelete, "secret/data/l/a", ``},
			{"kv v2 metadata write", http.MethodPost, "secret/metadata/l/a", `{"max_versions":3}`},
			{"policy delete", http.MethodDelete, "sys/policies/acl/p204", ``},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := raw(t, s.URL, tc.method, tc.path, strings.NewReader(tc.body), rootH)
				if r.Status != http.StatusNoContent || len(r.Body) != 0 {
					t.Fatalf("status %d body %q, want 204 and no body", r.Status, r.Body)
				}
			})
		}
	})

	t.Run("token headers", func(t *testing.T) {
		revoked := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}})
		if err := root.Auth().Token().RevokeTree(revoked.ClientToken); err != nil {
			t.Fatal(err)
		}
		expiring := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}, TTL: "1s"})
		cases := []struct {
			name   string
			header map[string]string
			status int
		}{
			{"X-Vault-Token", map[string]string{"X-Vault-Token": s.RootToken}, 200},
			{"Authorization: Bearer", map[string]string{"Authorization": "Bearer " + s.RootToken}, 200},
			{"X-Vault-Request tolerated", map[string]string{"X-Vault-Token": s.RootToken, "X-Vault-Request": "true"}, 200},
			{"missing token", nil, 403},
			{"malformed token", map[string]string{"X-Vault-Token": "not a token " + marker}, 403},
			{"unknown well-formed token", map[string]string{"X-Vault-Token": "hvs.CAESIJ" + marker}, 403},
			{"bearer with a bad token", map[string]string{"Authorization": "Bearer " + marker}, 403},
			{"basic auth is not a token", map[string]string{"Authorization": "Basic " + marker}, 403},
			{"revoked token", tokenHeader(revoked.ClientToken), 403},
			{"huge token", map[string]string{"X-Vault-Token": strings.Repeat("A", 8000)}, 403},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := raw(t, s.URL, http.MethodGet, "secret/data/app/x", nil, tc.header)
				if r.Status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.Status, tc.status, trunc(r.Body))
				}
				if tc.status == 403 {
					if msgs := r.errs(t); !strings.Contains(strings.Join(msgs, " "), "permission denied") {
						t.Fatalf("errors %q", msgs)
					}
					noLeak(t, tc.name, r.Body, marker, revoked.ClientToken, s.RootToken)
				}
			})
		}
		t.Run("expired token", func(t *testing.T) {
			eventually(t, 5*time.Second, "1s token expires", func() bool {
				return raw(t, s.URL, http.MethodGet, "auth/token/lookup-self", nil, tokenHeader(expiring.ClientToken)).Status == 403
			})
			r := raw(t, s.URL, http.MethodGet, "secret/data/app/x", nil, tokenHeader(expiring.ClientToken))
			if r.Status != 403 || !strings.Contains(strings.Join(r.errs(t), " "), "permission denied") {
				t.Fatalf("expired token: %d %s", r.Status, r.Body)
			}
			noLeak(t, "expired token", r.Body, expiring.ClientToken)
		})
	})

	t.Run("secrets never in error bodies", func(t *testing.T) {
		// A value that is stored, then every kind of failing request around it.
		if _, err := root.KVv2("secret").Put(ctx, "leak/x", map[string]any{"password": marker}); err != nil {
			t.Fatal(err)
		}
		user := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}})
		cases := []struct {
			name, method, path, body string
			header                   map[string]string
		}{
			{"cas mismatch", http.MethodPost, "secret/data/leak/x", `{"data":{"password":"` + marker + `"},"options":{"cas":9}}`, rootH},
			{"forbidden read", http.MethodGet, "secret/data/leak/x", ``, tokenHeader(user.ClientToken)},
			{"forbidden write", http.MethodPost, "secret/data/leak/x", `{"data":{"password":"` + marker + `"}}`, tokenHeader(user.ClientToken)},
			{"patch of a missing key", http.MethodPatch, "secret/data/leak/none", `{"data":{"password":"` + marker + `"}}`, map[string]string{"X-Vault-Token": s.RootToken, "Content-Type": "application/merge-patch+json"}},
			{"bad policy text", http.MethodPut, "sys/policies/acl/leak", `{"policy":"path \"` + marker + `\" { capabilities = [\"` + marker + `\"] "}`, rootH},
			{"capabilities for a bad token", http.MethodPost, "sys/capabilities", `{"token":"` + marker + `","paths":["secret/"]}`, rootH},
			{"lookup of a bad token", http.MethodPost, "auth/token/lookup", `{"token":"` + marker + `"}`, rootH},
			{"renew of a bad token", http.MethodPost, "auth/token/renew", `{"token":"` + marker + `"}`, rootH},
			{"revoke-self with a bad token", http.MethodPost, "auth/token/revoke-self", ``, tokenHeader(marker)},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := raw(t, s.URL, tc.method, tc.path, strings.NewReader(tc.body), tc.header)
				if r.Status < 400 || r.Status >= 500 {
					t.Fatalf("status %d, want a 4xx: %s", r.Status, trunc(r.Body))
				}
				r.errs(t)
				noLeak(t, tc.name, r.Body, marker, user.ClientToken, s.RootToken)
			})
		}
		if sec, err := root.KVv2("secret").Get(ctx, "leak/x"); err != nil || sec.VersionMetadata.Version != 1 {
			t.Fatalf("leak/x after the failing requests: %+v %v", sec, err)
		}
	})

	t.Run("unsupported operation", func(t *testing.T) {
		// Vault: an operation a path does not implement is 405 "unsupported operation".
		r := raw(t, s.URL, http.MethodDelete, "auth/token/lookup-self", nil, rootH)
		if r.Status != http.StatusMethodNotAllowed {
			t.Fatalf("DELETE lookup-self: %d %s, want 405", r.Status, r.Body)
		}
	})

	// Last: sealed, every non-sys path is 503 "Vault is sealed" (clients match on the text).
	t.Run("sealed", func(t *testing.T) {
		s.Core.Seal()
		for _, p := range []string{"secret/data/app/x", "auth/token/lookup-self", "nomount/x", "sys/mounts", "sys/policies/acl/default"} {
			r := raw(t, s.URL, http.MethodGet, p, nil, rootH)
			if r.Status != http.StatusServiceUnavailable || !strings.Contains(strings.Join(r.errs(t), " "), "Vault is sealed") {
				t.Errorf("%s sealed: %d %s", p, r.Status, r.Body)
			}
		}
		_, err := root.KVv2("secret").Get(ctx, "app/x")
		respErr(t, err, http.StatusServiceUnavailable, "Vault is sealed")
		st, err := root.Sys().SealStatus()
		if err != nil || !st.Sealed {
			t.Fatalf("seal-status while sealed: %+v %v", st, err)
		}
	})
}
