package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Helpers shared by the vaultapi_*_test.go files: the official client drives the API, and raw
// net/http covers what the client cannot express.

// denied asserts Vault's 403 for an ACL refusal.
func denied(t *testing.T, err error) {
	t.Helper()
	respErr(t, err, http.StatusForbidden, "permission denied")
}

// putPolicy writes an ACL policy as root.
func putPolicy(t *testing.T, root *vault.Client, name, text string) {
	t.Helper()
	if err := root.Sys().PutPolicy(name, text); err != nil {
		t.Fatalf("put policy %s: %v", name, err)
	}
}

// newToken creates a token through auth/token/create and returns its secret.
func newToken(t *testing.T, c *vault.Client, req *vault.TokenCreateRequest) *vault.SecretAuth {
	t.Helper()
	s, err := c.Auth().Token().Create(req)
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		t.Fatalf("token create: no auth block in %+v", s)
	}
	return s.Auth
}

// rawResp is an HTTP answer read whole.
type rawResp struct {
	Status int
	Header http.Header
	Body   []byte
}

// errs decodes Vault's {"errors":[…]} body.
func (r rawResp) errs(t *testing.T) []string {
	t.Helper()
	var b struct {
		Errors *[]string `json:"errors"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || b.Errors == nil {
		t.Fatalf("status %d: body is not {\"errors\":[…]}: %q", r.Status, trunc(r.Body))
	}
	return *b.Errors
}

// json decodes an envelope body.
func (r rawResp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("status %d: body is not a JSON object: %q", r.Status, trunc(r.Body))
	}
	return m
}

func trunc(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// raw sends one request to base+"/v1/"+path as written (no cleaning, no escaping).
func raw(t *testing.T, base, method, path string, body io.Reader, header map[string]string) rawResp {
	t.Helper()
	req, err := http.NewRequest(method, base+"/v1/"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResp{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// tokenHeader is the X-Vault-Token header.
func tokenHeader(tok string) map[string]string { return map[string]string{"X-Vault-Token": tok} }

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// strs turns a decoded JSON list into strings, sorted.
func strs(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	switch l := v.(type) {
	case []string:
		out = append(out, l...)
	case []any:
		for _, e := range l {
			s, ok := e.(string)
			if !ok {
				t.Fatalf("list element %#v is %T, want string", e, e)
			}
			out = append(out, s)
		}
	case nil:
	default:
		t.Fatalf("%#v is %T, want a list", v, v)
	}
	sort.Strings(out)
	return out
}

func sameStrings(got, want []string) bool {
	g, w := append([]string(nil), got...), append([]string(nil), want...)
	sort.Strings(g)
	sort.Strings(w)
	if len(g) == 0 && len(w) == 0 {
		return true
	}
	return reflect.DeepEqual(g, w)
}

// listKeys lists path with the client and returns the sorted keys; nil for Vault's 404.
func listKeys(t *testing.T, c *vault.Client, path string) []string {
	t.Helper()
	s, err := c.Logical().List(path)
	if err != nil {
		t.Fatalf("list %s: %v", path, err)
	}
	if s == nil {
		return nil
	}
	return strs(t, s.Data["keys"])
}

// isNotFound reports whether err wraps api.ErrSecretNotFound.
func isNotFound(err error) bool { return errors.Is(err, vault.ErrSecretNotFound) }

// num reads a json.Number (or float64) field as int64.
func num(t *testing.T, v any) int64 {
	t.Helper()
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			t.Fatalf("%q is not an integer", n)
		}
		return i
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	}
	t.Fatalf("%#v is %T, want a number", v, v)
	return 0
}

// noLeak asserts marker is nowhere in an error body.
func noLeak(t *testing.T, what string, body []byte, markers ...string) {
	t.Helper()
	for _, m := range markers {
		if m != "" && strings.Contains(string(body), m) {
			t.Errorf("%s: the response echoes a secret: %q", what, trunc(body))
		}
	}
}
