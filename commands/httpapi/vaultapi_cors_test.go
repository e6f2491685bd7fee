package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// TestCORS: sys/config/cors through the official client, and CORS applied by the HTTP edge:
// allowed origins get Access-Control-Allow-Origin, others a 403, preflights are answered; bad
// configurations are 400s that change nothing; configuring needs sudo, as in Vault.
func TestCORS(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	st, err := c.Sys().CORSStatus()
	if err != nil || st.Enabled {
		t.Fatalf("default CORS = %+v %v", st, err)
	}
	req := func(method, path, origin string, extra map[string]string) rawResp {
		h := map[string]string{"X-Vault-Token": s.RootToken}
		if origin != "" {
			h["Origin"] = origin
		}
		for k, v := range extra {
			h[k] = v
		}
		return raw(t, s.URL, method, path, nil, h)
	}
	// Disabled: an Origin changes nothing.
	if r := req(http.MethodGet, "sys/mounts", "https://ui.example", nil); r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("disabled CORS: %d %v", r.Status, r.Header)
	}

	if err := c.Sys().ConfigureCORS(&vault.CORSRequest{AllowedOrigins: []string{"https://ui.example"}, AllowedHeaders: []string{"X-Custom-Header"}}); err != nil {
		t.Fatal(err)
	}
	st, err = c.Sys().CORSStatus()
	if err != nil || !st.Enabled || !slices.Equal(st.AllowedOrigins, []string{"https://ui.example"}) ||
		!slices.Contains(st.AllowedHeaders, "X-Vault-Token") || !slices.Contains(st.AllowedHeaders, "X-Custom-Header") {
		t.Fatalf("CORS status = %+v %v", st, err)
	}

	r := req(http.MethodGet, "sys/mounts", "https://ui.example", nil)
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://ui.example" || r.Header.Get("Vary") != "Origin" {
		t.Fatalf("allowed origin: %d %v", r.Status, r.Header)
	}
	r = req(http.MethodGet, "sys/mounts", "https://evil.example", nil)
	if r.Status != 403 || r.errs(t)[0] != "origin not allowed" || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("disallowed origin: %d %s", r.Status, r.Body)
	}
	if r := req(http.MethodGet, "sys/mounts", "", nil); r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("no origin: %d %v", r.Status, r.Header)
	}
	// Preflight, answered without a token.
	r = raw(t, s.URL, http.MethodOptions, "secret/data/x", nil, map[string]string{"Origin": "https://ui.example", "Access-Control-Request-Method": "PUT"})
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://ui.example" || r.Header.Get("Access-Control-Max-Age") != "300" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "PUT") || !strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "X-Custom-Header") {
		t.Fatalf("preflight: %d %v", r.Status, r.Header)
	}
	if r := raw(t, s.URL, http.MethodOptions, "secret/data/x", nil, map[string]string{"Origin": "https://ui.example", "Access-Control-Request-Method": "TRACE"}); r.Status != 405 {
		t.Fatalf("preflight of a disallowed method: %d", r.Status)
	}
	if r := raw(t, s.URL, http.MethodOptions, "secret/data/x", nil, map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}); r.Status != 403 {
		t.Fatalf("preflight from a disallowed origin: %d", r.Status)
	}

	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{}, "at least one origin"},
		{map[string]any{"allowed_origins": []string{"*", "https://a.example"}}, "'*' must be the only value"},
		{map[string]any{"allowed_origins": "not an origin"}, "is not an origin"},
		{map[string]any{"allowed_origins": "https://a.example/path"}, "is not an origin"},
		{map[string]any{"allowed_origins": "https://a.example", "allowed_headers": "Bad: Header"}, "not a header name"},
	} {
		_, err := c.Logical().Write("sys/config/cors", tc.body)
		respErr(t, err, 400, tc.want)
	}
	if st, _ := c.Sys().CORSStatus(); !slices.Equal(st.AllowedOrigins, []string{"https://ui.example"}) {
		t.Fatalf("refused writes changed CORS: %+v", st)
	}
	// Configuring CORS needs sudo.
	putPolicy(t, c, "cors-admin", `path "sys/config/cors" { capabilities = ["read", "update", "delete"] }`)
	tok := newToken(t, c, &vault.TokenCreateRequest{Policies: []string{"cors-admin"}})
	denied(t, s.Client(t, tok.ClientToken).Sys().ConfigureCORS(&vault.CORSRequest{AllowedOrigins: []string{"*"}}))

	// The wildcard allows any origin; disabling removes the headers again.
	if err := c.Sys().ConfigureCORS(&vault.CORSRequest{AllowedOrigins: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	if r := req(http.MethodGet, "sys/mounts", "https://any.example", nil); r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://any.example" {
		t.Fatalf("wildcard: %d %v", r.Status, r.Header)
	}
	if err := c.Sys().DisableCORS(); err != nil {
		t.Fatal(err)
	}
	if r := req(http.MethodGet, "sys/mounts", "https://any.example", nil); r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("after disable: %d %v", r.Status, r.Header)
	}
	if st, _ := c.Sys().CORSStatus(); st.Enabled {
		t.Fatalf("after disable: %+v", st)
	}
}
