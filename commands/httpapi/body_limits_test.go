package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands/httpapi"
)

// TestBodyLimits: bodies over the listener's limits are refused with a message naming the
// limit, before anything is written; a body is not decoded for a request that will be denied.
func TestBodyLimits(t *testing.T) {
	s := startServer(t)
	hs := httptest.NewServer(httpapi.New(s.Core, httpapi.Options{MaxRequestBytes: 1 << 20, Limits: httpapi.Limits{
		MaxDepth: 5, MaxObjectEntries: 50, MaxArrayElements: 50, MaxStringLength: 1000, MaxFields: 100}}))
	t.Cleanup(hs.Close)
	root := s.Client(t, s.RootToken)
	rootH := tokenHeader(s.RootToken)

	keys := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"k` + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + strings.Repeat("y", i/26) + `":"v"`)
		}
		return b.String()
	}
	arr := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat(`1,`, n), ",") + "]" }
	cases := []struct {
		name, body string
		status     int
		contains   string
	}{
		{"too deep", `{"data":{"a":{"b":{"c":{"d":{"e":1}}}}}}`, 400, "max_json_depth"},
		{"object too wide", `{"data":{` + keys(51) + `}}`, 400, "max_json_object_entry_count"},
		{"array too long", `{"data":{"a":` + arr(51) + `}}`, 400, "max_json_array_element_count"},
		{"too many fields", `{"data":{"a":{` + keys(40) + `},"b":{` + keys(40) + `},"c":{` + keys(40) + `}}}`, 400, "max_request_fields"},
		{"string too long", `{"data":{"a":"` + strings.Repeat("s", 1001) + `"}}`, 400, "max_json_string_value_length"},
		{"key too long", `{"data":{"` + strings.Repeat("s", 1001) + `":"v"}}`, 400, "max_json_string_value_length"},
		{"body too large", `{"data":{"a":"` + strings.Repeat("s", 2<<20) + `"}}`, 413, "max_request_size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := raw(t, hs.URL, http.MethodPost, "secret/data/limits", strings.NewReader(tc.body), rootH)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, trunc(r.Body))
			}
			if msgs := r.errs(t); !strings.Contains(strings.Join(msgs, " "), tc.contains) {
				t.Fatalf("errors %q, want one naming %s", msgs, tc.contains)
			}
		})
	}
	if _, err := root.KVv2("secret").GetMetadata(context.Background(), "limits"); !isNotFound(err) {
		t.Fatalf("a refused body wrote something: %v", err)
	}
	// Within the limits all is well.
	if r := raw(t, hs.URL, http.MethodPost, "secret/data/limits", strings.NewReader(`{"data":{`+keys(50)+`}}`), rootH); r.Status != 200 {
		t.Fatalf("a body within the limits: %d %s", r.Status, trunc(r.Body))
	}

	// Denied requests are answered 403 before their body is looked at: even a malformed body.
	putPolicy(t, root, "ro", `path "secret/data/*" { capabilities = ["read"] }`)
	ro := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"ro"}})
	for name, h := range map[string]map[string]string{"no token": nil, "bad token": tokenHeader("hvs.nope"), "read-only token": tokenHeader(ro.ClientToken)} {
		t.Run("denied with "+name, func(t *testing.T) {
			for _, body := range []string{`{"data":`, `{"data":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}`, `{"data":{"a":"` + strings.Repeat("s", 2<<20) + `"}}`} {
				if r := raw(t, hs.URL, http.MethodPost, "secret/data/denied", strings.NewReader(body), h); r.Status != http.StatusForbidden {
					t.Fatalf("status %d, want 403: %s", r.Status, trunc(r.Body))
				}
			}
		})
	}
}
