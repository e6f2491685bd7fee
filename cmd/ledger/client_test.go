package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recorded is one request as the server saw it.
type recorded struct {
	method, path, query, token, vaultRequest, contentType, body string
}

// apiServer is a real HTTP server on a loopback port that records requests
// and answers from a table: the client is tested over the wire, with the
// exact bytes it sends and receives.
func apiServer(t *testing.T, answers map[string]func(w http.ResponseWriter)) (*httptest.Server, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var reqs []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Vault-Token"),
			r.Header.Get("X-Vault-Request"), r.Header.Get("Content-Type"), string(body)})
		mu.Unlock()
		if answer, ok := answers[r.Method+" "+r.URL.Path]; ok {
			answer(w)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"errors":[]}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), reqs...)
	}
}

func jsonAnswer(status int, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestClientRequests(t *testing.T) {
	t.Parallel()
	srv, requests := apiServer(t, map[string]func(http.ResponseWriter){
		"GET /v1/secret/data/x":       jsonAnswer(200, `{"request_id":"r","data":{"data":{"n":12345678901234567890}}}`),
		"LIST /v1/secret/metadata/":   jsonAnswer(200, `{"data":{"keys":["a","b/"]}}`),
		"PUT /v1/secret/data/x":       jsonAnswer(204, ``),
		"PATCH /v1/secret/data/x":     jsonAnswer(200, `{"data":{"version":2}}`),
		"DELETE /v1/secret/data/x":    jsonAnswer(204, ``),
		"GET /v1/secret/data/deleted": jsonAnswer(404, `{"data":{"data":null,"metadata":{"deletion_time":"2024-01-01T00:00:00Z"}}}`),
	})
	c, err := newClient(clientConfig{Address: srv.URL, Token: "hvs.secret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	s, err := c.Get(ctx, "secret/data/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := mapOf(s.Data["data"])["n"]; n != json.Number("12345678901234567890") {
		t.Errorf("large number decoded as %v (%T), want it exact", n, n)
	}
	if s, err := c.List(ctx, "secret/metadata/"); err != nil || len(stringsOf(s.Data["keys"])) != 2 {
		t.Errorf("List = %+v, %v", s, err)
	}
	if s, err := c.Put(ctx, "secret/data/x", map[string]any{"data": map[string]any{"a": "b"}}); err != nil || s != nil {
		t.Errorf("Put (204) = %+v, %v; want nil, nil", s, err)
	}
	if _, err := c.Patch(ctx, "secret/data/x", map[string]any{"data": map[string]any{"a": nil}}); err != nil {
		t.Error(err)
	}
	if _, err := c.Delete(ctx, "secret/data/x"); err != nil {
		t.Error(err)
	}
	if s, err := c.Get(ctx, "secret/data/missing", nil); err != nil || s != nil {
		t.Errorf("Get of a 404 = %+v, %v; want nil, nil", s, err)
	}
	if s, err := c.Get(ctx, "secret/data/deleted", nil); err != nil || s == nil || mapOf(s.Data["metadata"]) == nil {
		t.Errorf("Get of a deleted version = %+v, %v; want its metadata", s, err)
	}
	if s, err := c.WithToken("").List(ctx, "secret/metadata/none"); err != nil || s != nil {
		t.Errorf("List of nothing = %+v, %v; want nil, nil", s, err)
	}

	reqs := requests()
	wantMethods := []string{"GET", "LIST", "PUT", "PATCH", "DELETE", "GET", "GET", "LIST"}
	for i, r := range reqs {
		if r.method != wantMethods[i] {
			t.Errorf("request %d: method %s, want %s", i, r.method, wantMethods[i])
		}
		if r.vaultRequest != "true" {
			t.Errorf("request %d: X-Vault-Request = %q, want true", i, r.vaultRequest)
		}
		wantToken := "hvs.secret"
		if i == len(reqs)-1 {
			wantToken = ""
		}
		if r.token != wantToken {
			t.Errorf("request %d: X-Vault-Token = %q, want %q", i, r.token, wantToken)
		}
	}
	if reqs[2].contentType != "application/json" || reqs[2].body != `{"data":{"a":"b"}}` {
		t.Errorf("PUT sent %q with %q", reqs[2].body, reqs[2].contentType)
	}
	if reqs[3].contentType != "application/merge-patch+json" || reqs[3].body != `{"data":{"a":null}}` {
		t.Errorf("PATCH sent %q with %q", reqs[3].body, reqs[3].contentType)
	}
}

func TestClientAPIError(t *testing.T) {
	t.Parallel()
	srv, _ := apiServer(t, map[string]func(http.ResponseWriter){
		"PUT /v1/secret/data/x": jsonAnswer(400, `{"errors":["check-and-set parameter did not match the current version"]}`),
		"GET /v1/sys/echo":      jsonAnswer(403, `{"errors":["permission denied for token hvs.secret"]}`),
		"GET /v1/sys/proxy":     jsonAnswer(502, `<html>bad gateway</html>`),
	})
	c, err := newClient(clientConfig{Address: srv.URL + "/", Token: "hvs.secret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = c.Put(ctx, "secret/data/x", map[string]any{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
		t.Fatalf("err = %v, want an APIError with status 400", err)
	}
	want := "Error making API request.\n\nURL: PUT " + srv.URL + "/v1/secret/data/x\nCode: 400. Errors:\n\n* check-and-set parameter did not match the current version"
	if err.Error() != want {
		t.Errorf("error text:\n%s\nwant:\n%s", err, want)
	}

	_, err = c.Get(ctx, "sys/echo", nil)
	if err == nil || strings.Contains(err.Error(), "hvs.secret") {
		t.Errorf("the token leaked into an error: %v", err)
	}

	_, err = c.Get(ctx, "sys/proxy", nil)
	if err == nil || !strings.Contains(err.Error(), "Code: 502. Raw Message:\n\n<html>bad gateway</html>") {
		t.Errorf("non-JSON error body: %v", err)
	}
}

func TestParseAddress(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"127.0.0.1:8200", "ftp://x", "http://"} {
		if _, err := parseAddress(bad); err == nil {
			t.Errorf("parseAddress(%q) accepted it", bad)
		}
	}
	u, err := parseAddress("https://vault.example.com:8200/prefix/")
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{base: u}
	if got := c.url("secret/data/a b", nil).String(); got != "https://vault.example.com:8200/prefix/v1/secret/data/a%20b" {
		t.Errorf("url = %s", got)
	}
}
