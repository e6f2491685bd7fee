package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// TestCreateOnlyRace: a token with only "create" on a path cannot update by racing. Thirty
// concurrent writes to a path that exists: none succeeds; to a new path: exactly one does.
// For every engine where Vault tells create from update.
func TestCreateOnlyRace(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	ctx := context.Background()
	if err := root.Sys().Mount("kv1", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"userpass", "approle"} {
		if err := root.Sys().EnableAuthWithOptions(m, &vault.EnableAuthOptions{Type: m}); err != nil {
			t.Fatal(err)
		}
	}
	putPolicy(t, root, "create-only", `
path "secret/data/co/*"           { capabilities = ["create"] }
path "kv1/co/*"                   { capabilities = ["create"] }
path "auth/userpass/users/*"      { capabilities = ["create"] }
path "auth/approle/role/*"        { capabilities = ["create"] }
path "transit/encrypt/*"          { capabilities = ["create"] }
`)
	tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"create-only"}}).ClientToken

	cases := []struct {
		name   string
		path   func(string) string // the write's path for a name
		body   func(int) string    // the i-th writer's body
		seed   func(t *testing.T, name string)
		verify func(t *testing.T, name string, successes int) // what the log says afterwards
	}{
		{
			name: "kv v2",
			path: func(n string) string { return "secret/data/co/" + n },
			body: func(i int) string { return fmt.Sprintf(`{"data":{"w":"%d"}}`, i) },
			seed: func(t *testing.T, n string) {
				if _, err := root.KVv2("secret").Put(ctx, "co/"+n, map[string]any{"w": "seed"}); err != nil {
					t.Fatal(err)
				}
			},
			verify: func(t *testing.T, n string, successes int) {
				md, err := root.KVv2("secret").GetMetadata(ctx, "co/"+n)
				if err != nil {
					t.Fatal(err)
				}
				if md.CurrentVersion != 1 {
					t.Errorf("current_version %d after the race, want 1", md.CurrentVersion)
				}
			},
		},
		{
			name: "kv v1",
			path: func(n string) string { return "kv1/co/" + n },
			body: func(i int) string { return fmt.Sprintf(`{"w":"%d"}`, i) },
			seed: func(t *testing.T, n string) {
				if _, err := root.Logical().Write("kv1/co/"+n, map[string]any{"w": "seed"}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "userpass user",
			path: func(n string) string { return "auth/userpass/users/" + n },
			body: func(i int) string { return fmt.Sprintf(`{"password":"pw-%d-long-enough"}`, i) },
			seed: func(t *testing.T, n string) {
				if _, err := root.Logical().Write("auth/userpass/users/"+n, map[string]any{"password": "seed-password"}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "approle role",
			path: func(n string) string { return "auth/approle/role/" + n },
			body: func(i int) string { return fmt.Sprintf(`{"token_ttl":"%dm"}`, i+1) },
			seed: func(t *testing.T, n string) {
				if _, err := root.Logical().Write("auth/approle/role/"+n, map[string]any{"token_ttl": "1h"}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "transit encrypt (upserts the key)",
			path: func(n string) string { return "transit/encrypt/" + n },
			body: func(int) string { return `{"plaintext":"aGVsbG8="}` },
			seed: func(t *testing.T, n string) {
				if _, err := root.Logical().Write("transit/keys/"+n, nil); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	race := func(t *testing.T, path string, body func(int) string) (ok, denied int) {
		const n = 30
		statuses := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/"+path, strings.NewReader(body(i)))
				req.Header.Set("X-Vault-Token", tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}()
		}
		close(start)
		wg.Wait()
		for _, st := range statuses {
			switch {
			case st == http.StatusOK || st == http.StatusNoContent:
				ok++
			case st == http.StatusForbidden:
				denied++
			default:
				t.Errorf("unexpected status %d", st)
			}
		}
		return ok, denied
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.seed(t, "existing")
			if ok, denied := race(t, tc.path("existing"), tc.body); ok != 0 || denied != 30 {
				t.Errorf("existing path: %d writes succeeded and %d were denied; want 0 and 30", ok, denied)
			}
			if tc.verify != nil {
				tc.verify(t, "existing", 0)
			}
			if ok, denied := race(t, tc.path("new"), tc.body); ok != 1 || denied != 29 {
				t.Errorf("new path: %d writes succeeded and %d were denied; want 1 and 29", ok, denied)
			}
			if tc.verify != nil {
				tc.verify(t, "new", 1)
			}
		})
	}
}
