package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// ?help=1 answers the path's help and OpenAPI from the route descriptions, never the data;
// sys/internal/specs/openapi is generated from the same descriptions.
func TestHelpNeverData(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	const marker = "help-must-not-show-this-7731"
	if _, err := root.Logical().Write("secret/data/app", map[string]any{"data": map[string]any{"password": marker}}); err != nil {
		t.Fatal(err)
	}
	h := tokenHeader(s.RootToken)
	for _, tc := range []struct{ method, path, route string }{
		{"GET", "secret/data/app?help=1", "data/{path}"},
		{"GET", "secret/data/app?help=true", "data/{path}"},
		{"HELP", "secret/data/app", "data/{path}"},
		{"POST", "secret/data/app?help=1", "data/{path}"},
		{"GET", "secret/metadata/app?help=1&list=true", "metadata/{path}"},
		{"GET", "auth/token/create?help=1", "create"},
		{"GET", "sys/mounts/secret?help=1", "mounts/{path}"},
		{"GET", "sys/mounts/secret/tune?help=1", "mounts/{path}/tune"},
		{"GET", "cubbyhole/anything?help=1", "{path}"},
		{"GET", "sys/tools/random/32?help=1", "tools/random/{urlbytes}"},
	} {
		r := raw(t, s.URL, tc.method, tc.path, strings.NewReader(`{"data":{"password":"x"}}`), h)
		if r.Status != http.StatusOK {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), marker) {
			t.Fatalf("%s %s returned the secret: %s", tc.method, tc.path, r.Body)
		}
		var body struct {
			Help    string         `json:"help"`
			OpenAPI map[string]any `json:"openapi"`
			Data    any            `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Data != nil || !strings.Contains(body.Help, "Matching Route: "+tc.route) || body.OpenAPI["openapi"] != "3.0.2" {
			t.Fatalf("%s %s: help %q data %v", tc.method, tc.path, body.Help, body.Data)
		}
		if paths, _ := body.OpenAPI["paths"].(map[string]any); len(paths) == 0 {
			t.Fatalf("%s %s: no paths in openapi", tc.method, tc.path)
		}
	}
	// A write with help=1 is not a write.
	r := raw(t, s.URL, "POST", "secret/data/other?help=1", strings.NewReader(`{"data":{"k":"v"}}`), h)
	if r.Status != http.StatusOK {
		t.Fatalf("POST help: %d", r.Status)
	}
	if _, err := root.Logical().Read("secret/data/other"); err != nil {
		t.Fatal(err)
	}
	if sec, _ := root.Logical().Read("secret/data/other"); sec != nil {
		t.Fatal("a POST with help=1 wrote the secret")
	}

	t.Run("the official client's Help", func(t *testing.T) {
		hp, err := root.Help("secret/data/app")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(hp.Help, "## PARAMETERS") || !strings.Contains(hp.Help, "data (object)") || strings.Contains(hp.Help, marker) {
			t.Fatalf("help text:\n%s", hp.Help)
		}
		if paths, _ := hp.OpenAPI["paths"].(map[string]any); paths["/secret/data/{path}"] == nil {
			t.Fatalf("openapi paths: %v", hp.OpenAPI["paths"])
		}
		mountHelp, err := root.Help("transit")
		if err == nil || mountHelp != nil {
			// transit is not mounted here: a 404 like any unknown path
			t.Fatalf("help on an unmounted path: %v %v", mountHelp, err)
		}
	})

	t.Run("bad help requests", func(t *testing.T) {
		if r := raw(t, s.URL, "GET", "secret/data/app?help=1", nil, nil); r.Status != http.StatusForbidden {
			t.Fatalf("help without a token: %d %s", r.Status, r.Body)
		}
		if r := raw(t, s.URL, "GET", "secret/nowhere?help=1", nil, h); r.Status != http.StatusNotFound {
			t.Fatalf("help on an unknown kv path: %d %s", r.Status, r.Body)
		}
		// A token with no capability on the path still gets help (Vault allows help always),
		// and still no data.
		putPolicy(t, root, "nothing", `path "nothing/*" { capabilities = ["read"] }`)
		tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"nothing"}, TTL: "1h"})
		r := raw(t, s.URL, "GET", "secret/data/app?help=1", nil, tokenHeader(tok.ClientToken))
		if r.Status != http.StatusOK || strings.Contains(string(r.Body), marker) {
			t.Fatalf("help for an unprivileged token: %d %s", r.Status, r.Body)
		}
	})
}

// sys/internal/specs/openapi: the OpenAPI document, as Vault serves it (no envelope), with
// every mount the token can touch, built from the same routes as help.
func TestOpenAPIDocument(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	if err := root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().EnableAuthWithOptions("approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	r := raw(t, s.URL, "GET", "sys/internal/specs/openapi", nil, tokenHeader(s.RootToken))
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	var doc struct {
		OpenAPI    string                    `json:"openapi"`
		Info       map[string]any            `json:"info"`
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
		Data any `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.2" || doc.Data != nil || doc.Info["version"] == "" {
		t.Fatalf("document head: %s %v", doc.OpenAPI, doc.Info)
	}
	for _, p := range []string{"/secret/data/{path}", "/secret/metadata/{path}/", "/transit/encrypt/{name}", "/auth/approle/login",
		"/auth/token/roles/{role_name}", "/sys/mounts/{path}", "/sys/internal/specs/openapi"} {
		if doc.Paths[p] == nil {
			t.Errorf("missing path %s", p)
		}
	}
	enc := doc.Paths["/transit/encrypt/{name}"]["post"].(map[string]any)
	ref := enc["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)["$ref"].(string)
	schema := doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
	if props, _ := schema["properties"].(map[string]any); props["plaintext"] == nil || props["batch_input"] == nil {
		t.Fatalf("encrypt schema %v", schema)
	}
	if doc.Paths["/auth/approle/login"]["x-vault-unauthenticated"] != true {
		t.Error("approle login not marked unauthenticated")
	}

	// A token sees only the mounts it can touch (it needs read on the document's path).
	putPolicy(t, root, "transit-only", `path "transit/*" { capabilities = ["update"] }
path "sys/internal/specs/openapi" { capabilities = ["read"] }`)
	tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"transit-only"}, TTL: "1h"})
	r = raw(t, s.URL, "GET", "sys/internal/specs/openapi", nil, tokenHeader(tok.ClientToken))
	if r.Status != http.StatusOK {
		t.Fatalf("openapi for a restricted token: %d %s", r.Status, r.Body)
	}
	var d2 struct {
		Paths map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(r.Body, &d2); err != nil {
		t.Fatal(err)
	}
	if d2.Paths["/transit/encrypt/{name}"] == nil || d2.Paths["/secret/data/{path}"] != nil || d2.Paths["/auth/approle/login"] != nil {
		t.Fatalf("filtered document has the wrong mounts")
	}
	if r := raw(t, s.URL, "GET", "sys/internal/specs/openapi", nil, nil); r.Status != http.StatusForbidden {
		t.Fatalf("openapi without a token: %d", r.Status)
	}
}
