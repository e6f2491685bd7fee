package httpapi_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// auditRecords calls a sys/ledger/audit endpoint that answers records.
func auditRecords(t *testing.T, s *testServer, path string, q url.Values) ([]auditLine, map[string]any) {
	t.Helper()
	r := raw(t, s.URL, "GET", "sys/ledger/audit/"+path+"?"+q.Encode(), nil, tokenHeader(s.RootToken))
	if r.Status != 200 {
		t.Fatalf("%s?%s: %d %s", path, q.Encode(), r.Status, trunc(r.Body))
	}
	data := r.json(t)["data"].(map[string]any)
	var b strings.Builder
	recs, _ := data["records"].([]any)
	for _, rec := range recs {
		j, _ := jsonMarshal(rec)
		b.Write(j)
		b.WriteByte('\n')
	}
	return parseAuditLines(t, []byte(b.String())), data
}

// TestAuditTailAndQuery: with no device at all, the records of writes (in the log) and of reads
// and denials (in LEDGER_AUDIT) can be tailed, followed and queried.
func TestAuditTailAndQuery(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	start := time.Now().Add(-time.Second)
	putPolicy(t, root, "q-only", `path "secret/data/q/*" { capabilities = ["read"] }`)
	tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"q-only"}})
	user := s.Client(t, tok.ClientToken)
	for i := range 3 {
		if _, err := root.KVv2("secret").Put(t.Context(), fmt.Sprintf("q/%d", i), map[string]any{"v": "value"}); err != nil {
			t.Fatal(err)
		}
		if _, err := user.KVv2("secret").Get(t.Context(), fmt.Sprintf("q/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := user.KVv2("secret").Get(t.Context(), "other/x")
	denied(t, err)

	lines, data := auditRecords(t, s, "tail", url.Values{"n": {"5"}})
	if len(lines) != 5 {
		t.Fatalf("tail n=5: %d records", len(lines))
	}
	last := lines[len(lines)-1]
	if last.Request.Path != "secret/data/other/x" || last.Error != "permission denied" {
		t.Fatalf("tail: last record is %s", last.Raw)
	}
	for i := 1; i < len(lines); i++ {
		if lines[i].Time < lines[i-1].Time {
			t.Fatalf("tail not in time order: %s after %s", lines[i].Time, lines[i-1].Time)
		}
	}
	cursor := data["cursor"].(string)

	// Follow from the cursor: only what came after.
	if _, err := root.KVv2("secret").Put(t.Context(), "q/late", map[string]any{"v": "x"}); err != nil {
		t.Fatal(err)
	}
	lines, data = auditRecords(t, s, "tail", url.Values{"cursor": {cursor}, "exclude_path": {"sys/ledger/audit/"}})
	if len(lines) != 1 || lines[0].Request.Path != "secret/data/q/late" {
		t.Fatalf("follow after the cursor: %d records %v", len(lines), lines)
	}
	lines, _ = auditRecords(t, s, "tail", url.Values{"cursor": {data["cursor"].(string)}, "exclude_path": {"sys/ledger/audit/"}})
	if len(lines) != 0 {
		t.Fatalf("follow again: %d records, want none", len(lines))
	}

	// Query: by path prefix, by accessor, errors only, by time.
	lines, _ = auditRecords(t, s, "query", url.Values{"path": {"secret/data/q/"}})
	if n := len(lines); n != 7 { // 3 puts, 3 reads, the late put
		t.Fatalf("query path=secret/data/q/: %d records", n)
	}
	lines, _ = auditRecords(t, s, "query", url.Values{"accessor": {tok.Accessor}})
	if n := len(lines); n != 5 || lines[0].Request.Path != "auth/token/create" {
		t.Fatalf("query accessor: %d records, want the token's creation, its 3 reads and its denial", n)
	}
	for _, l := range lines {
		if a, _ := l.Auth["accessor"].(string); !strings.HasPrefix(a, "hmac-sha256:") {
			t.Fatalf("query shows the accessor %q", a)
		}
	}
	lines, _ = auditRecords(t, s, "query", url.Values{"errors_only": {"true"}, "since": {start.Format(time.RFC3339Nano)}})
	if len(lines) != 1 || lines[0].Request.Path != "secret/data/other/x" {
		t.Fatalf("query errors_only: %v", lines)
	}
	lines, _ = auditRecords(t, s, "query", url.Values{"until": {start.Format(time.RFC3339Nano)}})
	if len(lines) != 0 {
		t.Fatalf("query until before anything: %d records", len(lines))
	}
	lines, data = auditRecords(t, s, "query", url.Values{"path": {"secret/"}, "limit": {"2"}})
	if len(lines) != 2 || data["truncated"] != true {
		t.Fatalf("query limit=2: %d records, truncated %v", len(lines), data["truncated"])
	}
	if r := raw(t, s.URL, "GET", "sys/ledger/audit/query?since=yesterday", nil, tokenHeader(s.RootToken)); r.Status != 400 {
		t.Fatalf("query since=yesterday: %d", r.Status)
	}
	if r := raw(t, s.URL, "GET", "sys/ledger/audit/query", nil, tokenHeader(tok.ClientToken)); r.Status != 403 {
		t.Fatalf("query without sudo: %d", r.Status)
	}
	raw := strings.Join(func() []string {
		all, _ := auditRecords(t, s, "query", url.Values{})
		var out []string
		for _, l := range all {
			out = append(out, l.Raw)
		}
		return out
	}(), "\n")
	if leak := containsAny(raw, tok.ClientToken, s.RootToken, "value"); leak != "" && leak != "value" {
		t.Fatalf("query output holds %q", leak)
	}
	if strings.Contains(raw, `"value"`) {
		t.Fatal("query output holds a secret value in clear")
	}
}
