package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
)

// scrape GETs path with token and returns the status and body.
func scrape(t testing.TB, base, token, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// promMetrics parses the Prometheus text exposition with Prometheus's own parser.
func promMetrics(t testing.TB, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the Prometheus parser rejects sys/metrics: %v\n%s", err, body)
	}
	return mfs
}

func gaugeValue(t testing.TB, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("metric %s missing", name)
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s%v missing", name, labels)
	return 0
}

// checkpointSeqs reads the newest checkpoint's log sequence and the KV view's applied one from
// sys/metrics.
func checkpointSeqs(tb testing.TB, base, token string) (checkpoint, applied float64) {
	tb.Helper()
	code, body := scrape(tb, base, token, "/v1/sys/metrics?format=prometheus")
	if code != http.StatusOK {
		tb.Fatalf("sys/metrics: %d %s", code, body)
	}
	mfs := promMetrics(tb, body)
	return gaugeValue(tb, mfs, "ledger_checkpoint_seq"), gaugeValue(tb, mfs, "ledger_view_applied_seq", "view", "kv")
}

// TestCheckpointMetric: ledger_checkpoint_seq follows the automatic snapshots, so an operator
// (and the memory benchmark) can see how much log a restart would replay.
func TestCheckpointMetric(t *testing.T) {
	s := startServerWith(t, commands.Options{Snapshots: commands.SnapshotOptions{Interval: 100 * time.Millisecond}})
	root := s.Client(t, s.RootToken)
	seqs := func() (checkpoint, applied float64) { return checkpointSeqs(t, s.URL, s.RootToken) }
	for i := range 3 {
		if _, err := root.KVv2("secret").Put(t.Context(), "c/k", map[string]any{"v": i}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cp, applied := seqs()
		if cp > 0 && cp == applied {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledger_checkpoint_seq = %v, applied %v: no checkpoint at the applied position", cp, applied)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A write moves the log on; the next checkpoint catches up with it.
	_, before := seqs()
	if _, err := root.KVv2("secret").Put(t.Context(), "c/k", map[string]any{"v": "later"}); err != nil {
		t.Fatal(err)
	}
	for {
		cp, applied := seqs()
		if applied > before && cp == applied {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledger_checkpoint_seq = %v after the write (applied %v, before %v)", cp, applied, before)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestQuietCheckpoint: writes that stop short of the checkpoint threshold leave no long tail
// for the next unseal: once the node has been quiet a few seconds with at least 100 batches
// past the newest checkpoint, one is written. Fewer than that are left to the tail. Not
// parallel: the node's quiet is the process's (little allocation), and it scrapes its metrics
// (most of a megabyte each) every few seconds only.
func TestQuietCheckpoint(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	seqs := func() (checkpoint, applied float64) { return checkpointSeqs(t, s.URL, s.RootToken) }
	put := func(n int) {
		for i := range n {
			if _, err := root.KVv2("secret").Put(t.Context(), fmt.Sprintf("quiet/%d", i), map[string]any{"v": i}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cp0, _ := seqs()
	put(30)
	time.Sleep(7 * time.Second) // quiet (4 s) and a poll (2 s) past it
	if cp, applied := seqs(); cp != cp0 {
		t.Fatalf("a checkpoint at %v (applied %v) after 30 batches: the quiet minimum is 100", cp, applied)
	}
	put(100)
	time.Sleep(6 * time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cp, applied := seqs()
		if cp == applied && cp > cp0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledger_checkpoint_seq = %v, applied %v: no checkpoint once the log went quiet", cp, applied)
		}
		time.Sleep(3 * time.Second)
	}
}

// TestSysMetrics: sys/metrics answers Prometheus text that Prometheus's parser reads, with
// Vault's names where Vault has the metric and Ledger's own beside them; Vault's JSON shape
// otherwise; a token is needed unless the listener allows unauthenticated access.
func TestSysMetrics(t *testing.T) {
	s := startServerWith(t, commands.Options{Telemetry: commands.TelemetryOptions{DisableHostname: true}})
	root := s.Client(t, s.RootToken)
	if err := root.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file",
		Options: map[string]string{"file_path": filepath.Join(t.TempDir(), "audit.log")}}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := root.KVv2("secret").Put(t.Context(), "m/k", map[string]any{"v": i}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.KVv2("secret").Get(t.Context(), "m/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}}); err != nil {
		t.Fatal(err)
	}

	code, body := scrape(t, s.URL, s.RootToken, "/v1/sys/metrics?format=prometheus")
	if code != 200 {
		t.Fatalf("format=prometheus: %d %s", code, body)
	}
	mfs := promMetrics(t, body)
	if mf := mfs["vault_core_handle_request"]; mf == nil || mf.GetType() != dto.MetricType_SUMMARY || mf.GetMetric()[0].GetSummary().GetSampleCount() < 7 {
		t.Fatalf("vault_core_handle_request: %v", mf)
	}
	if v := gaugeValue(t, mfs, "vault_token_count"); v < 2 {
		t.Fatalf("vault_token_count = %v, want the root token and the new one", v)
	}
	gaugeValue(t, mfs, "vault_expire_num_leases")
	if v := gaugeValue(t, mfs, "vault_core_unsealed"); v != 1 {
		t.Fatalf("vault_core_unsealed = %v", v)
	}
	if v := gaugeValue(t, mfs, "ledger_datakeys_count"); v != 5 {
		t.Fatalf("ledger_datakeys_count = %v, want 5 versions", v)
	}
	gaugeValue(t, mfs, "ledger_datakeys_shred_backlog")
	if v := gaugeValue(t, mfs, "ledger_view_applied_seq", "view", "kv"); v < 1 {
		t.Fatalf("ledger_view_applied_seq{view=kv} = %v", v)
	}
	gaugeValue(t, mfs, "ledger_audit_device_lag", "device", "file/")
	if v := gaugeValue(t, mfs, "ledger_audit_spool_backlog"); v < 0 || v > 1000 {
		t.Fatalf("ledger_audit_spool_backlog = %v", v)
	}
	if mf := mfs["ledger_log_commit_events"]; mf == nil || mf.GetMetric()[0].GetHistogram().GetSampleCount() == 0 {
		t.Fatalf("ledger_log_commit_events: %v", mf)
	}
	for _, name := range []string{"ledger_log_commit_seconds", "vault_runtime_alloc_bytes", "go_goroutines", "process_resident_memory_bytes"} {
		if mfs[name] == nil {
			t.Fatalf("%s missing", name)
		}
	}

	// Vault's JSON shape.
	code, body = scrape(t, s.URL, s.RootToken, "/v1/sys/metrics")
	var js struct {
		Timestamp string
		Gauges    []struct {
			Name   string
			Value  float64
			Labels map[string]string
		}
		Counters, Samples []struct {
			Name  string
			Count int
			Sum   float64
		}
		Points []any
	}
	if err := json.Unmarshal(body, &js); code != 200 || err != nil || js.Timestamp == "" || js.Points == nil {
		t.Fatalf("JSON: %d %v %s", code, err, body)
	}
	names := map[string]bool{}
	for _, g := range js.Gauges {
		names[g.Name] = true
	}
	for _, s := range js.Samples {
		names[s.Name] = s.Count > 0
	}
	for _, want := range []string{"vault.core.unsealed", "vault.token.count", "vault.core.handle_request", "ledger.datakeys.count"} {
		if !names[want] {
			t.Fatalf("JSON lacks %s: %s", want, body)
		}
	}

	// Bad input and access.
	if code, body := scrape(t, s.URL, s.RootToken, "/v1/sys/metrics?format=xml"); code != 400 || !strings.Contains(string(body), "format") {
		t.Fatalf("format=xml: %d %s", code, body)
	}
	if code, _ := scrape(t, s.URL, "", "/v1/sys/metrics?format=prometheus"); code != 403 {
		t.Fatalf("no token: %d, want 403", code)
	}
	open := httptest.NewServer(httpapi.New(s.Core, httpapi.Options{UnauthenticatedMetrics: true}))
	defer open.Close()
	if code, body := scrape(t, open.URL, "", "/v1/sys/metrics?format=prometheus"); code != 200 || promMetrics(t, body)["vault_token_count"] == nil {
		t.Fatalf("unauthenticated listener: %d", code)
	}
	if code, _ := scrape(t, open.URL, "", "/v1/secret/data/m/k"); code != 403 {
		t.Fatalf("the unauthenticated metrics listener opened more than metrics: %d", code)
	}
}

// TestSysPprof: the runtime's profiles under sys/pprof, for sudo only.
func TestSysPprof(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	putPolicy(t, root, "reader", `path "sys/*" { capabilities = ["read"] }`)
	reader := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"reader"}})
	if code, _ := scrape(t, s.URL, reader.ClientToken, "/v1/sys/pprof/heap"); code != 403 {
		t.Fatalf("pprof without sudo: %d", code)
	}
	code, body := scrape(t, s.URL, s.RootToken, "/v1/sys/pprof/goroutine?debug=1")
	if code != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("goroutine profile: %d %.200s", code, body)
	}
	if code, body := scrape(t, s.URL, s.RootToken, "/v1/sys/pprof/heap"); code != 200 || len(body) < 20 || body[0] != 0x1f {
		t.Fatalf("heap profile (gzipped protobuf): %d %d bytes", code, len(body))
	}
	if code, body := scrape(t, s.URL, s.RootToken, "/v1/sys/pprof/profile?seconds=1"); code != 200 || len(body) == 0 {
		t.Fatalf("cpu profile: %d", code)
	}
	if code, body := scrape(t, s.URL, s.RootToken, "/v1/sys/pprof/"); code != 200 || !strings.Contains(string(body), "heap") {
		t.Fatalf("index: %d %s", code, body)
	}
	for path, want := range map[string]int{"/v1/sys/pprof/nosuch": 404, "/v1/sys/pprof/profile?seconds=9999": 400, "/v1/sys/pprof/heap?debug=x": 400} {
		if code, body := scrape(t, s.URL, s.RootToken, path); code != want {
			t.Fatalf("%s: %d %s, want %d", path, code, body, want)
		}
	}
}
