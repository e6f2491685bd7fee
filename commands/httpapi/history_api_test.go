package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Issue 5, history and time travel: GET sys/ledger/history/<path> lists every event on a secret
// or policy without a value; GET sys/ledger/at/<path>?time=|seq= answers the normal read as of
// that point. Driven with the official client where it can say it, raw HTTP where a 404's
// message or the exact body matters.

// histGet sends GET /v1/<path>?<query> with token.
func histGet(t *testing.T, s *testServer, token, path string, query url.Values) rawResp {
	t.Helper()
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	return raw(t, s.URL, http.MethodGet, path, nil, tokenHeader(token))
}

// histEvents reads sys/ledger/history/<path> as token, which must answer 200, and returns the
// events; the body must not hold any of the secrets.
func histEvents(t *testing.T, s *testServer, token, path string, secrets ...string) []map[string]any {
	t.Helper()
	r := histGet(t, s, token, "sys/ledger/history/"+path, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("history of %s: %d %s", path, r.Status, r.Body)
	}
	noLeak(t, "history of "+path, r.Body, secrets...)
	data, _ := r.json(t)["data"].(map[string]any)
	list, _ := data["events"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("history of %s: event %#v is not an object", path, e)
		}
		out = append(out, m)
	}
	return out
}

// histStatus asserts a raw answer's status and that its error message contains want.
func histStatus(t *testing.T, r rawResp, status int, want string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if want != "" && !strings.Contains(strings.Join(r.errs(t), " "), want) {
		t.Fatalf("errors %q, want one containing %q", r.errs(t), want)
	}
}

func accessorOf(t *testing.T, c *vault.Client) string {
	t.Helper()
	s, err := c.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	acc, _ := s.Data["accessor"].(string)
	if acc == "" {
		t.Fatalf("lookup-self has no accessor: %v", s.Data)
	}
	return acc
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func TestHistoryOfASecret(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	ctx := context.Background()
	putPolicy(t, root, "writer", `path "secret/data/*" { capabilities = ["create", "update", "read"] }`)
	w := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"writer"}})
	rootAccessor := accessorOf(t, root)

	v1, err := root.KVv2("secret").Put(ctx, "app/db", map[string]any{"pass": "marker-one"})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.Client(t, w.ClientToken).KVv2("secret").Put(ctx, "app/db", map[string]any{"pass": "marker-two"})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.KVv2("secret").Delete(ctx, "app/db"); err != nil {
		t.Fatal(err)
	}
	if err := root.KVv2("secret").Destroy(ctx, "app/db", []int{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Put(ctx, "app/other", map[string]any{"pass": "marker-other"}); err != nil {
		t.Fatal(err)
	}

	type want struct {
		operation, actor string
		version          int64
		versions         []int64
	}
	wants := []want{
		{"version written", rootAccessor, 1, nil},
		{"version written", w.Accessor, 2, nil},
		{"versions deleted", rootAccessor, 0, []int64{2}},
		{"versions destroyed", rootAccessor, 0, []int64{1}},
	}
	// Every spelling of the secret's path names the same history, shown under the canonical one.
	for _, path := range []string{"secret/data/app/db", "secret/app/db", "secret/metadata/app/db"} {
		t.Run(path, func(t *testing.T) {
			r := histGet(t, s, s.RootToken, "sys/ledger/history/"+path, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			if p := r.json(t)["data"].(map[string]any)["path"]; p != "secret/data/app/db" {
				t.Fatalf("path = %v, want the canonical secret/data/app/db", p)
			}
			events := histEvents(t, s, s.RootToken, path, "marker-one", "marker-two", "marker-other")
			if len(events) != len(wants) {
				t.Fatalf("%d events, want %d: %v", len(events), len(wants), events)
			}
			var lastSeq int64
			for i, e := range events {
				wt := wants[i]
				if e["operation"] != wt.operation || e["actor"] != wt.actor {
					t.Errorf("event %d: operation %v actor %v, want %q by %q", i, e["operation"], e["actor"], wt.operation, wt.actor)
				}
				if wt.version != 0 && num(t, e["version"]) != wt.version {
					t.Errorf("event %d: version %v, want %d", i, e["version"], wt.version)
				}
				if wt.versions != nil {
					got, _ := e["versions"].([]any)
					if len(got) != len(wt.versions) || num(t, got[0]) != wt.versions[0] {
						t.Errorf("event %d: versions %v, want %v", i, e["versions"], wt.versions)
					}
				}
				if _, err := time.Parse(time.RFC3339Nano, e["time"].(string)); err != nil {
					t.Errorf("event %d: time %v: %v", i, e["time"], err)
				}
				seq := num(t, e["sequence"])
				if seq <= lastSeq {
					t.Errorf("event %d: sequence %d after %d", i, seq, lastSeq)
				}
				lastSeq = seq
				if e["request_id"] == "" || e["type"] == "" {
					t.Errorf("event %d: no request id or type: %v", i, e)
				}
			}
			// The write's answer and its event carry the same request id and time.
			if events[0]["request_id"] != v1.Raw.RequestID || events[1]["request_id"] != v2.Raw.RequestID {
				t.Errorf("request ids %v %v, want %s %s", events[0]["request_id"], events[1]["request_id"], v1.Raw.RequestID, v2.Raw.RequestID)
			}
			if got, _ := time.Parse(time.RFC3339Nano, events[0]["time"].(string)); !got.Equal(v1.VersionMetadata.CreatedTime) {
				t.Errorf("event time %v, version 1 created %v", got, v1.VersionMetadata.CreatedTime)
			}
		})
	}

	t.Run("bad input", func(t *testing.T) {
		tests := []struct {
			name, path string
			status     int
			want       string
		}{
			{"never written", "sys/ledger/history/secret/data/app/none", 404, "no history"},
			{"no mount", "sys/ledger/history/nomount/app/db", 404, "no mount"},
			{"mount only", "sys/ledger/history/secret/data", 400, "missing secret path"},
			{"a sys path", "sys/ledger/history/sys/mounts/secret", 400, "KV secrets"},
			{"no path", "sys/ledger/history", 400, "missing path"},
			{"unknown ledger route", "sys/ledger/nothing/here", 404, "no handler"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				histStatus(t, histGet(t, s, s.RootToken, tt.path, nil), tt.status, tt.want)
			})
		}
		r := raw(t, s.URL, http.MethodPost, "sys/ledger/history/secret/data/app/db", strings.NewReader(`{}`), tokenHeader(s.RootToken))
		histStatus(t, r, http.StatusMethodNotAllowed, "")
	})
}

func TestPointInTimeKV(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	kv := root.KVv2("secret")
	ctx := context.Background()

	beforeSecret := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	if _, err := kv.Put(ctx, "app/db", map[string]any{"pass": "old"}); err != nil {
		t.Fatal(err)
	}
	between := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	if _, err := kv.Put(ctx, "app/db", map[string]any{"pass": "new"}); err != nil {
		t.Fatal(err)
	}
	at := func(t *testing.T, path string, q url.Values) *vault.Secret {
		t.Helper()
		sec, err := root.Logical().ReadWithData("sys/ledger/at/"+path, q)
		if err != nil {
			t.Fatalf("at %s %v: %v", path, q, err)
		}
		if sec == nil {
			t.Fatalf("at %s %v: nothing", path, q)
		}
		return sec
	}
	pass := func(sec *vault.Secret) any { d, _ := sec.Data["data"].(map[string]any); return d["pass"] }

	firstSeq := fmt.Sprint(num(t, histEvents(t, s, s.RootToken, "secret/data/app/db")[0]["sequence"]))
	tests := []struct {
		name, path string
		query      url.Values
		want       string
	}{
		{"time between the writes", "secret/data/app/db", url.Values{"time": {rfc3339(between)}}, "old"},
		{"bare path resolved through the mount", "secret/app/db", url.Values{"time": {rfc3339(between)}}, "old"},
		{"sequence of the first write", "secret/data/app/db", url.Values{"seq": {firstSeq}}, "old"},
		{"now", "secret/data/app/db", url.Values{"time": {rfc3339(time.Now())}}, "new"},
		{"an explicit version as of now", "secret/data/app/db", url.Values{"time": {rfc3339(time.Now())}, "version": {"1"}}, "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pass(at(t, tt.path, tt.query)); got != tt.want {
				t.Fatalf("pass = %v, want %s", got, tt.want)
			}
		})
	}
	t.Run("metadata as of then", func(t *testing.T) {
		md := at(t, "secret/metadata/app/db", url.Values{"time": {rfc3339(between)}})
		if num(t, md.Data["current_version"]) != 1 {
			t.Fatalf("current_version as of then = %v, want 1", md.Data["current_version"])
		}
	})

	t.Run("bad input", func(t *testing.T) {
		tests := []struct {
			name, path string
			query      url.Values
			status     int
			want       string
		}{
			{"before genesis", "secret/data/app/db", url.Values{"time": {"2001-01-01T00:00:00Z"}}, 400, "before the log's first event"},
			{"in the future", "secret/data/app/db", url.Values{"time": {rfc3339(time.Now().Add(time.Hour))}}, 400, "in the future"},
			{"sequence in the future", "secret/data/app/db", url.Values{"seq": {"999999"}}, 400, "in the future"},
			{"sequence 0", "secret/data/app/db", url.Values{"seq": {"0"}}, 400, "before the log's first batch"},
			{"not a time", "secret/data/app/db", url.Values{"time": {"yesterday"}}, 400, "RFC 3339"},
			{"not a sequence", "secret/data/app/db", url.Values{"seq": {"-1"}}, 400, "log sequence"},
			{"neither", "secret/data/app/db", nil, 400, "missing point in time"},
			{"both", "secret/data/app/db", url.Values{"time": {rfc3339(between)}, "seq": {"1"}}, 400, "not both"},
			{"before the secret existed", "secret/data/app/db", url.Values{"time": {rfc3339(beforeSecret)}}, 404, "nothing at"},
			{"unknown path", "secret/data/app/none", url.Values{"time": {rfc3339(between)}}, 404, ""},
			{"no mount", "nomount/app/db", url.Values{"time": {rfc3339(between)}}, 404, "no mount"},
			{"not a read of a secret", "secret/destroy/app/db", url.Values{"time": {rfc3339(between)}}, 400, "data, metadata and subkeys"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				histStatus(t, histGet(t, s, s.RootToken, "sys/ledger/at/"+tt.path, tt.query), tt.status, tt.want)
			})
		}
	})

	// A version deleted as of the point reads like a normal read of a deleted version: 404 with
	// its metadata. A version destroyed since is gone: its data key was shredded.
	t.Run("deleted then, destroyed since", func(t *testing.T) {
		if err := kv.Delete(ctx, "app/db"); err != nil {
			t.Fatal(err)
		}
		afterDelete := time.Now().UTC()
		r := histGet(t, s, s.RootToken, "sys/ledger/at/secret/data/app/db", url.Values{"time": {rfc3339(afterDelete)}})
		if r.Status != http.StatusNotFound {
			t.Fatalf("deleted version as of then: %d %s", r.Status, r.Body)
		}
		md, _ := r.json(t)["data"].(map[string]any)["metadata"].(map[string]any)
		if md["deletion_time"] == "" || num(t, md["version"]) != 2 {
			t.Fatalf("deleted version as of then: metadata %v", md)
		}

		if err := kv.Destroy(ctx, "app/db", []int{1}); err != nil {
			t.Fatal(err)
		}
		r = histGet(t, s, s.RootToken, "sys/ledger/at/secret/data/app/db", url.Values{"time": {rfc3339(between)}})
		histStatus(t, r, http.StatusBadRequest, "version 1 of secret/data/app/db as of "+rfc3339(between)+" can no longer be read")
		noLeak(t, "destroyed value", r.Body, "old")
	})
}

func TestHistoryAndPointInTimeOfAPolicy(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	first := `path "secret/data/first/*" { capabilities = ["read"] }`
	putPolicy(t, root, "web", first)
	between := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	putPolicy(t, root, "web", `path "secret/data/second/*" { capabilities = ["read"] }`)
	if err := root.Sys().DeletePolicy("web"); err != nil {
		t.Fatal(err)
	}

	events := histEvents(t, s, s.RootToken, "sys/policies/acl/web", "secret/data/first", "secret/data/second")
	ops := make([]string, len(events))
	for i, e := range events {
		ops[i], _ = e["operation"].(string)
	}
	if strings.Join(ops, ",") != "policy written,policy written,policy deleted" {
		t.Fatalf("policy history operations %v", ops)
	}
	if legacy := histEvents(t, s, s.RootToken, "sys/policy/WEB"); len(legacy) != 3 {
		t.Fatalf("history through sys/policy/: %d events", len(legacy))
	}

	sec, err := root.Logical().ReadWithData("sys/ledger/at/sys/policies/acl/web", url.Values{"time": {rfc3339(between)}})
	if err != nil || sec == nil || sec.Data["policy"] != first || sec.Data["name"] != "web" {
		t.Fatalf("policy as of then: %v, %v", sec, err)
	}
	sec, err = root.Logical().ReadWithData("sys/ledger/at/sys/policy/web", url.Values{"time": {rfc3339(between)}})
	if err != nil || sec == nil || sec.Data["rules"] != first {
		t.Fatalf("legacy policy as of then: %v, %v", sec, err)
	}
	histStatus(t, histGet(t, s, s.RootToken, "sys/ledger/at/sys/policies/acl/web", url.Values{"time": {rfc3339(time.Now())}}), 404, "did not exist")
	histStatus(t, histGet(t, s, s.RootToken, "sys/ledger/history/sys/policies/acl/never", nil), 404, "no history")
}

func TestHistoryACL(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	ctx := context.Background()
	if err := root.Sys().Mount("team", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"secret", "team"} {
		if _, err := root.KVv2(m).Put(ctx, "app/db", map[string]any{"pass": "in-" + m}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.KVv2("secret").Put(ctx, "other/x", map[string]any{"pass": "p"}); err != nil {
		t.Fatal(err)
	}
	now := url.Values{"time": {rfc3339(time.Now())}}
	token := func(t *testing.T, name, policy string) string {
		t.Helper()
		putPolicy(t, root, name, policy)
		return newToken(t, root, &vault.TokenCreateRequest{Policies: []string{name}}).ClientToken
	}
	reader := token(t, "reader", `path "secret/data/app/*" { capabilities = ["read"] }`)
	historian := token(t, "historian", `path "sys/ledger/history/secret/data/app/*" { capabilities = ["read"] }`)
	sideDoor := token(t, "side-door", `path "sys/ledger/history/secret/metadata/*" { capabilities = ["read"] }
path "sys/ledger/at/secret/metadata/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read"] }`)
	atOnly := token(t, "at-only", `path "sys/ledger/at/secret/data/app/*" { capabilities = ["read"] }`)
	traveller := token(t, "traveller", `path "sys/ledger/at/secret/data/app/*" { capabilities = ["read"] }
path "secret/data/app/*" { capabilities = ["read"] }`)

	tests := []struct {
		name, token, path string
		query             url.Values
		status            int
	}{
		{"read on the secret is not read on its history", reader, "sys/ledger/history/secret/data/app/db", nil, 403},
		{"read on the secret is not time travel", reader, "sys/ledger/at/secret/data/app/db", now, 403},
		{"history granted", historian, "sys/ledger/history/secret/data/app/db", nil, 200},
		{"history of a path outside the grant", historian, "sys/ledger/history/secret/data/other/x", nil, 403},
		{"history of the same path in another mount", historian, "sys/ledger/history/team/data/app/db", nil, 403},
		{"history is not time travel", historian, "sys/ledger/at/secret/data/app/db", now, 403},
		{"another spelling needs the canonical grant too", sideDoor, "sys/ledger/history/secret/metadata/app/db", nil, 403},
		{"metadata as of then with read on metadata", sideDoor, "sys/ledger/at/secret/metadata/app/db", now, 200},
		{"time travel without read on the secret", atOnly, "sys/ledger/at/secret/data/app/db", now, 403},
		{"time travel with read on the secret", traveller, "sys/ledger/at/secret/data/app/db", now, 200},
		{"time travel via the bare path needs its own grant", traveller, "sys/ledger/at/secret/app/db", now, 403},
		{"time travel outside the grant", traveller, "sys/ledger/at/secret/data/other/x", now, 403},
		{"no token", "", "sys/ledger/history/secret/data/app/db", nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := histGet(t, s, tt.token, tt.path, tt.query)
			if r.Status != tt.status {
				t.Fatalf("%s: %d, want %d: %s", tt.path, r.Status, tt.status, r.Body)
			}
			if tt.status == 403 {
				histStatus(t, r, 403, "permission denied")
				noLeak(t, tt.name, r.Body, "in-secret", "in-team")
			}
		})
	}

	// Each mount's secret has its own history, even at the same path.
	for _, m := range []string{"secret", "team"} {
		if ev := histEvents(t, s, s.RootToken, m+"/data/app/db"); len(ev) != 1 {
			t.Fatalf("history of %s/data/app/db: %d events, want 1", m, len(ev))
		}
	}
	sec, err := s.Client(t, traveller).Logical().ReadWithData("sys/ledger/at/secret/data/app/db", now)
	if err != nil || sec.Data["data"].(map[string]any)["pass"] != "in-secret" {
		t.Fatalf("as of now in secret/: %v %v", sec, err)
	}
	// A new mount at the same path does not inherit the old one's history.
	if err := root.Sys().Unmount("team"); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Mount("team", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	histStatus(t, histGet(t, s, s.RootToken, "sys/ledger/history/team/data/app/db", nil), 404, "no history")
	histStatus(t, histGet(t, s, s.RootToken, "sys/ledger/at/team/data/app/db", now), 404, "")
}

// KV v1 keeps one value per path and shreds the old value's key on every overwrite: its history
// lists the writes, and a point in time before the last write finds the value gone.
func TestHistoryOfAKVv1Value(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	if err := root.Sys().Mount("kv1", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("kv1/app/db", map[string]any{"pass": "marker-old"}); err != nil {
		t.Fatal(err)
	}
	between := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	if _, err := root.Logical().Write("kv1/app/db", map[string]any{"pass": "marker-new"}); err != nil {
		t.Fatal(err)
	}
	events := histEvents(t, s, s.RootToken, "kv1/app/db", "marker-old", "marker-new")
	if len(events) != 2 || events[0]["operation"] != "value written" || events[1]["operation"] != "value written" {
		t.Fatalf("KV v1 history: %v", events)
	}
	if _, has := events[0]["version"]; has {
		t.Fatalf("a KV v1 event shows a version: %v", events[0])
	}
	sec, err := root.Logical().ReadWithData("sys/ledger/at/kv1/app/db", url.Values{"time": {rfc3339(time.Now())}})
	if err != nil || sec == nil || sec.Data["pass"] != "marker-new" {
		t.Fatalf("KV v1 as of now: %v %v", sec, err)
	}
	r := histGet(t, s, s.RootToken, "sys/ledger/at/kv1/app/db", url.Values{"time": {rfc3339(between)}})
	histStatus(t, r, http.StatusBadRequest, "was overwritten or deleted since")
	noLeak(t, "overwritten KV v1 value", r.Body, "marker-old")
}
