package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	vault "github.com/hashicorp/vault/api"
)

// wsEvent is the part of an event the tests look at.
type wsEvent struct {
	Raw             string
	ID              string `json:"id"`
	Source          string `json:"source"`
	SpecVersion     string `json:"specversion"`
	Type            string `json:"type"`
	DataContentType string `json:"datacontentype"`
	Time            string `json:"time"`
	LedgerPos       string `json:"ledgerpos"`
	Data            struct {
		Event struct {
			ID       string            `json:"id"`
			Metadata map[string]string `json:"metadata"`
		} `json:"event"`
		EventType  string            `json:"event_type"`
		PluginInfo map[string]string `json:"plugin_info"`
	} `json:"data"`
}

// subscribe opens sys/events/subscribe/pattern over a real WebSocket.
func subscribe(t *testing.T, s *testServer, token, pattern string, q url.Values) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	if q == nil {
		q = url.Values{}
	}
	q.Set("json", "true")
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/v1/sys/events/subscribe/" + pattern + "?" + q.Encode()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"X-Vault-Token": {token}}})
	if err == nil {
		t.Cleanup(func() { conn.CloseNow() })
	}
	return conn, resp, err
}

func mustSubscribe(t *testing.T, s *testServer, token, pattern string, q url.Values) *websocket.Conn {
	t.Helper()
	conn, resp, err := subscribe(t, s, token, pattern, q)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("subscribe %s: %v (status %d)", pattern, err, status)
	}
	return conn
}

// next reads one event, failing the test after the deadline.
func next(t *testing.T, conn *websocket.Conn) wsEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	typ, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	if typ != websocket.MessageText || !strings.HasSuffix(string(b), "\n") {
		t.Fatalf("event frame: type %v, %q: want a text message ending in a newline", typ, b)
	}
	var ev wsEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("event is not JSON: %v: %s", err, b)
	}
	ev.Raw = string(b)
	return ev
}

func kvPut(t *testing.T, c *vault.Client, p string) {
	t.Helper()
	if _, err := c.KVv2("secret").Put(t.Context(), p, map[string]any{"v": "x"}); err != nil {
		t.Fatalf("put %s: %v", p, err)
	}
}

// TestEventsSubscribeACL: a subscriber receives kv-v2/data-write for the paths its policy lets
// it read and subscribe to, and nothing — not even the name — of the others. Every stream is
// ordered, so once an event written after the forbidden ones arrives, they would have come
// before it.
func TestEventsSubscribeACL(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	putPolicy(t, root, "team-a", `
path "sys/events/subscribe/*" { capabilities = ["read"] }
path "secret/data/a/*" { capabilities = ["read", "subscribe"] }
`)
	putPolicy(t, root, "no-subscribe", `
path "sys/events/subscribe/*" { capabilities = ["read"] }
path "secret/data/a/*" { capabilities = ["read"] }
path "secret/data/marker" { capabilities = ["read", "subscribe"] }
`)
	putPolicy(t, root, "types-limited", `
path "sys/events/subscribe/*" { capabilities = ["read"] }
path "secret/data/a/*" {
  capabilities = ["list", "subscribe"]
  subscribe_event_types = ["kv-v2/data-delete"]
}
path "secret/data/marker" { capabilities = ["read", "subscribe"] }
`)
	putPolicy(t, root, "reader-only", `path "secret/data/*" { capabilities = ["read", "subscribe"] }`)
	tokA := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"team-a"}}).ClientToken
	tokNoSub := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"no-subscribe"}}).ClientToken
	tokTypes := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"types-limited"}}).ClientToken
	tokReader := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"reader-only"}}).ClientToken

	connA := mustSubscribe(t, s, tokA, "kv-v2/data-write", nil)
	connAll := mustSubscribe(t, s, tokA, "*", nil)
	connNoSub := mustSubscribe(t, s, tokNoSub, "kv*", nil)
	connTypes := mustSubscribe(t, s, tokTypes, "*", nil)
	connRoot := mustSubscribe(t, s, s.RootToken, "kv-v2/data-write", nil)

	// Not allowed to subscribe at all: 403 before any upgrade.
	if _, resp, err := subscribe(t, s, tokReader, "kv-v2/data-write", nil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("subscribe without read on sys/events/subscribe: err %v, resp %v; want 403", err, resp)
	}

	kvPut(t, root, "a/one")
	kvPut(t, root, "b/hidden-team-b-name")
	kvPut(t, root, "a/two")
	kvPut(t, root, "marker")

	var accessor string
	if m, err := root.Sys().ListMounts(); err == nil {
		accessor = m["secret/"].Accessor
	}
	for i, want := range []string{"a/one", "a/two"} {
		ev := next(t, connA)
		if got := ev.Data.Event.Metadata["data_path"]; got != "secret/data/"+want {
			t.Fatalf("event %d: data_path %q, want secret/data/%s (%s)", i, got, want, ev.Raw)
		}
		if strings.Contains(ev.Raw, "hidden-team-b-name") {
			t.Fatalf("team A saw team B's path: %s", ev.Raw)
		}
		md := ev.Data.Event.Metadata
		switch {
		case ev.SpecVersion != "1.0", ev.Source == "", ev.ID == "", ev.ID != ev.Data.Event.ID,
			ev.Type != "kv-v2/data-write", ev.DataContentType != "application/cloudevents", ev.LedgerPos == "",
			ev.Data.EventType != "kv-v2/data-write", md["operation"] != "data-write", md["modified"] != "true",
			md["current_version"] != "1", md["oldest_version"] != "0", md["path"] != "secret/data/"+want,
			ev.Data.PluginInfo["mount_path"] != "secret/", ev.Data.PluginInfo["plugin"] != "kv",
			ev.Data.PluginInfo["mount_class"] != "secret", ev.Data.PluginInfo["mount_accessor"] != accessor:
			t.Fatalf("event %d does not have Vault's shape: %s", i, ev.Raw)
		}
		if _, err := time.Parse(time.RFC3339Nano, ev.Time); err != nil {
			t.Fatalf("time %q: %v", ev.Time, err)
		}
	}
	// The glob subscription of the same token: the same two events, typed with the pattern.
	for _, want := range []string{"a/one", "a/two"} {
		if ev := next(t, connAll); ev.Data.Event.Metadata["data_path"] != "secret/data/"+want || ev.Type != "*" {
			t.Fatalf("glob subscription: %s, want %s with type *", ev.Raw, want)
		}
	}
	// Read without subscribe, and subscribe limited to other event types: nothing but the marker.
	for name, conn := range map[string]*websocket.Conn{"no subscribe capability": connNoSub, "subscribe_event_types": connTypes} {
		if ev := next(t, conn); ev.Data.Event.Metadata["data_path"] != "secret/data/marker" {
			t.Fatalf("%s: first event %s, want only the marker", name, ev.Raw)
		}
	}
	// Root sees everything, in log order.
	for _, want := range []string{"a/one", "b/hidden-team-b-name", "a/two", "marker"} {
		if ev := next(t, connRoot); ev.Data.Event.Metadata["data_path"] != "secret/data/"+want {
			t.Fatalf("root: %s, want %s", ev.Raw, want)
		}
	}

	// The token revoked: its stream ends with a policy-violation close, not another event.
	if err := root.Auth().Token().RevokeTree(tokA); err != nil {
		t.Fatal(err)
	}
	kvPut(t, root, "a/three")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, b, err := connA.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("after revocation: read %q, %v; want close status policy violation", b, err)
	}
}

// TestEventsResume: a subscriber that disconnects and comes back with after=<the last
// ledgerpos it saw> gets every event after it, once, in order — including the ones committed
// while it was away; from_index starts at a log sequence.
func TestEventsResume(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	conn := mustSubscribe(t, s, s.RootToken, "kv-v2/data-write", nil)
	for i := range 5 {
		kvPut(t, root, fmt.Sprintf("r/%02d", i))
	}
	var seen []wsEvent
	for range 3 {
		seen = append(seen, next(t, conn))
	}
	conn.Close(websocket.StatusNormalClosure, "")
	for i := 5; i < 10; i++ {
		kvPut(t, root, fmt.Sprintf("r/%02d", i))
	}
	conn = mustSubscribe(t, s, s.RootToken, "kv-v2/data-write", url.Values{"after": {seen[2].LedgerPos}})
	ids := map[string]bool{}
	for _, e := range seen {
		ids[e.ID] = true
	}
	for i := 3; i < 10; i++ {
		ev := next(t, conn)
		if want := fmt.Sprintf("secret/data/r/%02d", i); ev.Data.Event.Metadata["data_path"] != want {
			t.Fatalf("resumed event: %s, want %s", ev.Raw, want)
		}
		if ids[ev.ID] {
			t.Fatalf("duplicate event after resume: %s", ev.Raw)
		}
		ids[ev.ID] = true
	}

	// from_index at the first event's sequence replays from there, with the same ids.
	seq, _, _ := strings.Cut(seen[0].LedgerPos, ".")
	conn = mustSubscribe(t, s, s.RootToken, "kv-v2/data-write", url.Values{"from_index": {seq}})
	if ev := next(t, conn); ev.ID != seen[0].ID || ev.LedgerPos != seen[0].LedgerPos {
		t.Fatalf("from_index %s: first event %s, want id %s", seq, ev.Raw, seen[0].ID)
	}
}

// TestEventsTypes: each KV operation yields the event type Vault names it by.
func TestEventsTypes(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	if err := root.Sys().Mount("kv1", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	conn := mustSubscribe(t, s, s.RootToken, "*", nil)
	kv := root.KVv2("secret")
	ctx := t.Context()
	steps := []struct {
		typ, path string
		do        func() error
	}{
		{"kv-v2/data-write", "secret/data/t", func() error { _, err := kv.Put(ctx, "t", map[string]any{"a": "1"}); return err }},
		{"kv-v2/data-patch", "secret/data/t", func() error { _, err := kv.Patch(ctx, "t", map[string]any{"b": "2"}); return err }},
		{"kv-v2/data-delete", "secret/data/t", func() error { return kv.Delete(ctx, "t") }},
		{"kv-v2/undelete", "secret/undelete/t", func() error { return kv.Undelete(ctx, "t", []int{2}) }},
		{"kv-v2/delete", "secret/delete/t", func() error { return kv.DeleteVersions(ctx, "t", []int{1}) }},
		{"kv-v2/destroy", "secret/destroy/t", func() error { return kv.Destroy(ctx, "t", []int{1}) }},
		{"kv-v2/metadata-write", "secret/metadata/t", func() error {
			return kv.PutMetadata(ctx, "t", vault.KVMetadataPutInput{MaxVersions: 5})
		}},
		{"kv-v2/metadata-patch", "secret/metadata/t", func() error {
			return kv.PatchMetadata(ctx, "t", vault.KVMetadataPatchInput{CustomMetadata: map[string]any{"o": "x"}})
		}},
		{"kv-v2/metadata-delete", "secret/metadata/t", func() error { return kv.DeleteMetadata(ctx, "t") }},
		{"kv-v1/write", "kv1/t", func() error { _, err := root.Logical().Write("kv1/t", map[string]any{"a": "1"}); return err }},
		{"kv-v1/delete", "kv1/t", func() error { _, err := root.Logical().Delete("kv1/t"); return err }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.typ, err)
		}
		ev := next(t, conn)
		if ev.Data.EventType != st.typ || ev.Data.Event.Metadata["path"] != st.path || ev.Data.Event.Metadata["operation"] != st.typ[strings.IndexByte(st.typ, '/')+1:] {
			t.Fatalf("%s: got %s", st.typ, ev.Raw)
		}
	}
}

// TestEventsFilter: a go-bexpr filter, as Vault's -filter, narrows a subscription to the events
// whose event_type, operation, data_path or source mount match. The stream is ordered, so once
// a later matching event arrives, the ones skipped before it were not sent.
func TestEventsFilter(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	byPath := mustSubscribe(t, s, s.RootToken, "kv*", url.Values{"filter": {`data_path == "secret/data/b" or operation == "data-delete"`}})
	// A long filter within the bounds is taken (200 terms, under 4 KiB).
	long := strings.Repeat(`operation == "x" or `, 180) + `data_path == "secret/data/b"`
	mustSubscribe(t, s, s.RootToken, "kv*", url.Values{"filter": {long}})
	byMount := mustSubscribe(t, s, s.RootToken, "*", url.Values{"filter": {`source_plugin_mount == "secret/" and event_type == "kv-v2/data-delete"`}})
	none := mustSubscribe(t, s, s.RootToken, "*", url.Values{"filter": {`namespace != ""`}}) // the root namespace is ""

	kvPut(t, root, "a")
	kvPut(t, root, "b")
	if err := root.KVv2("secret").Delete(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}
	kvPut(t, root, "c")
	kvPut(t, root, "b")

	for i, want := range []struct{ typ, dataPath string }{
		{"kv-v2/data-write", "secret/data/b"}, {"kv-v2/data-delete", "secret/data/b"}, {"kv-v2/data-write", "secret/data/b"},
	} {
		ev := next(t, byPath)
		if ev.Data.EventType != want.typ || ev.Data.Event.Metadata["data_path"] != want.dataPath {
			t.Fatalf("filtered by path, event %d: got %s, want %s at %q", i, ev.Raw, want.typ, want.dataPath)
		}
	}
	if ev := next(t, byMount); ev.Data.EventType != "kv-v2/data-delete" || ev.Data.PluginInfo["mount_path"] != "secret/" {
		t.Fatalf("filtered by mount and type: got %s", ev.Raw)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, b, err := none.Read(ctx); err == nil {
		t.Fatalf("a filter no event matches let one through: %s", b)
	}
}

// TestEventsBadInput: every refusal is a 4xx in Vault's envelope before any upgrade, and names
// what to change.
func TestEventsBadInput(t *testing.T) {
	s := startServer(t)
	cases := []struct {
		name, pattern, token string
		q                    url.Values
		status               int
		msg                  string
	}{
		{"no token", "kv-v2/data-write", "", nil, 403, "permission denied"},
		{"bad token", "kv-v2/data-write", "hvs.nope", nil, 403, "permission denied"},
		{"pattern with bad characters", "kv%20v2", s.RootToken, nil, 400, "only letters"},
		{"dot-dot pattern", "kv/../x", s.RootToken, nil, 400, "pattern"},
		{"filter that does not parse", "kv*", s.RootToken, url.Values{"filter": {`data_path ==`}}, 400, "filter:"},
		{"filter with an unknown selector", "kv*", s.RootToken, url.Values{"filter": {`colour == "red"`}}, 400, "selectors: event_type"},
		{"filter too long", "kv*", s.RootToken, url.Values{"filter": {`data_path == "` + strings.Repeat("x", 5000) + `"`}}, 400, "at most 4096"},
		{"filter nested past the parser's bound", "kv*", s.RootToken, url.Values{"filter": {strings.Repeat("(", 1500) + strings.Repeat(")", 1500)}}, 400, "max number of expressions"},
		{"json=false", "kv*", s.RootToken, url.Values{"json": {"false"}}, 400, "json=true"},
		{"json not a bool", "kv*", s.RootToken, url.Values{"json": {"maybe"}}, 400, "invalid parameter for JSON"},
		{"after not a position", "kv*", s.RootToken, url.Values{"after": {"abc"}}, 400, "after"},
		{"after and from_index", "kv*", s.RootToken, url.Values{"after": {"3.1"}, "from_index": {"2"}}, 400, "not both"},
		{"from_index with index", "kv*", s.RootToken, url.Values{"from_index": {"2.1"}}, 400, "from_index"},
		{"namespaces", "kv*", s.RootToken, url.Values{"namespaces": {"ns1"}}, 400, "root namespace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if q == nil || q.Get("json") == "" {
				if q == nil {
					q = url.Values{}
				}
				q.Set("json", "true")
			}
			r := raw(t, s.URL, "GET", "sys/events/subscribe/"+tc.pattern+"?"+q.Encode(), nil, tokenHeader(tc.token))
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if msg := strings.Join(r.errs(t), " "); !strings.Contains(msg, tc.msg) {
				t.Fatalf("message %q does not say %q", msg, tc.msg)
			}
		})
	}
	// A plain GET (no upgrade) from an allowed token: told to use a WebSocket client.
	r := raw(t, s.URL, "GET", "sys/events/subscribe/kv*?json=true", nil, tokenHeader(s.RootToken))
	if r.Status != 400 || !strings.Contains(string(r.Body), "WebSocket") {
		t.Fatalf("plain GET: %d %s", r.Status, r.Body)
	}
}

// TestEventsSubscribeAudited: a subscription is on the record like any request — allowed,
// refused for want of the capability, refused for a bad token or a bad option — with the
// caller's accessor HMACed and never the token.
func TestEventsSubscribeAudited(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	putPolicy(t, root, "reader-only", `path "secret/data/*" { capabilities = ["read", "subscribe"] }`)
	reader := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"reader-only"}})

	mustSubscribe(t, s, s.RootToken, "kv-v2/data-write", nil)
	if _, resp, err := subscribe(t, s, reader.ClientToken, "kv*", nil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("subscribe without read on sys/events/subscribe: %v", err)
	}
	if _, resp, err := subscribe(t, s, "not-a-token", "*", nil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("subscribe with a bad token: %v", err)
	}
	if _, resp, err := subscribe(t, s, s.RootToken, "kv*", url.Values{"filter": {"x == 1"}}); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("subscribe with a filter: %v", err)
	}

	// A single node keeps the records of reads and denials in its audit spool and ships them
	// to LEDGER_AUDIT, which the query reads, a moment later; the query waits up to 2 s for
	// what is spooled, and a loaded machine gets a few more tries.
	var lines []auditLine
	eventually(t, 10*time.Second, "the four subscriptions' audit records", func() bool {
		lines, _ = auditRecords(t, s, "query", url.Values{"path": {"sys/events/subscribe/"}})
		return len(lines) >= 4
	})
	if len(lines) != 4 {
		t.Fatalf("%d audit records of subscriptions, want 4: %v", len(lines), lines)
	}
	ok, denied, badToken, badOption := lines[0], lines[1], lines[2], lines[3]
	if ok.Request.Path != "sys/events/subscribe/kv-v2/data-write" || ok.Request.Operation != "read" || ok.Error != "" {
		t.Fatalf("allowed subscription recorded as %s", ok.Raw)
	}
	if a, _ := ok.Auth["accessor"].(string); !strings.HasPrefix(a, "hmac-sha256:") {
		t.Fatalf("allowed subscription: accessor %q, want it HMACed", a)
	}
	if denied.Request.Path != "sys/events/subscribe/kv*" || !strings.Contains(denied.Error, "permission denied") {
		t.Fatalf("refused subscription recorded as %s", denied.Raw)
	}
	if a, _ := denied.Auth["accessor"].(string); !strings.HasPrefix(a, "hmac-sha256:") {
		t.Fatalf("refused subscription: accessor %q, want the caller's, HMACed", a)
	}
	if badToken.Request.Path != "sys/events/subscribe/*" || badToken.Error == "" {
		t.Fatalf("bad-token subscription recorded as %s", badToken.Raw)
	}
	if !strings.Contains(badOption.Error, "filter:") {
		t.Fatalf("bad-option subscription recorded as %s", badOption.Raw)
	}
	for _, l := range lines {
		for _, secret := range []string{s.RootToken, reader.ClientToken, "not-a-token"} {
			if strings.Contains(l.Raw, secret) {
				t.Fatalf("an audit record shows a token: %s", l.Raw)
			}
		}
	}
}
