package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/ledger-secrets/ledger/engines"
)

// Telemetry: sys/metrics in Vault's two shapes, from one Prometheus registry per Core.
//
// Names. Where Vault has a metric for the same thing, Ledger uses Vault's name and unit
// (vault_core_handle_request in milliseconds, vault_token_count, vault_expire_num_leases,
// vault_core_unsealed, vault_runtime_*), so dashboards and alerts written for Vault work
// unchanged. What only Ledger has is under ledger_ (group commit, views, data keys, audit
// devices). Prometheus names are the dotted Vault keys with dots as underscores; the JSON
// shape uses the dotted keys, as Vault's in-memory sink does. Go's and the process's standard
// collectors (go_*, process_*) are in the Prometheus output too.

// TelemetryOptions are the server config's telemetry stanza.
type TelemetryOptions struct {
	// PrometheusRetention: how long a request-latency sample counts in the summaries'
	// quantiles. 0 means Vault's default, 24h; negative turns format=prometheus off (Vault
	// answers "prometheus is not enabled" when prometheus_retention_time is 0).
	PrometheusRetention time.Duration
	// DisableHostname: Vault prefixes gauges with the host name unless this is set.
	DisableHostname bool
}

// Telemetry holds the metrics of one Core.
type Telemetry struct {
	c       *Core
	reg     *prometheus.Registry
	opts    TelemetryOptions
	started time.Time
	namesMu sync.Mutex
	names   map[string]string // Prometheus name → Vault's dotted key (JSON shape)

	handle, login            *sampled
	commitEvents, commitSecs prometheus.Histogram
}

// sampled is a Vault "sample" (a go-metrics timer): a Prometheus summary for format=prometheus
// and the count, sum, min, max and spread Vault's JSON shape reports.
type sampled struct {
	key string
	sum prometheus.Summary
	mu  sync.Mutex
	n   int
	s   float64
	ss  float64
	min float64
	max float64
}

func (s *sampled) observe(v float64) {
	s.sum.Observe(v)
	s.mu.Lock()
	if s.n == 0 || v < s.min {
		s.min = v
	}
	s.max = max(s.max, v)
	s.n++
	s.s += v
	s.ss += v * v
	s.mu.Unlock()
}

func newTelemetry(c *Core, o TelemetryOptions) *Telemetry {
	if o.PrometheusRetention == 0 {
		o.PrometheusRetention = 24 * time.Hour
	}
	t := &Telemetry{c: c, reg: prometheus.NewRegistry(), opts: o, started: time.Now(), names: map[string]string{}}
	maxAge := max(o.PrometheusRetention, time.Minute)
	summary := func(key, help string) *sampled {
		s := &sampled{key: key, sum: prometheus.NewSummary(prometheus.SummaryOpts{Name: t.promName(key, false), Help: help,
			Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}, MaxAge: maxAge})}
		t.reg.MustRegister(s.sum)
		return s
	}
	t.handle = summary("vault.core.handle_request", "Time to handle a request other than a login, in milliseconds (as Vault).")
	t.login = summary("vault.core.handle_login_request", "Time to handle a login request, in milliseconds (as Vault).")
	t.commitEvents = prometheus.NewHistogram(prometheus.HistogramOpts{Name: t.promName("ledger.log.commit_events", false),
		Help: "Events per group-commit batch (one JetStream message, one fsync).", Buckets: prometheus.ExponentialBuckets(1, 2, 12)})
	t.commitSecs = prometheus.NewHistogram(prometheus.HistogramOpts{Name: t.promName("ledger.log.commit_seconds", false),
		Help: "Time to store one group-commit batch, in seconds.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14)})
	t.reg.MustRegister(t.commitEvents, t.commitSecs, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), stateCollector{t})
	c.log.ObserveCommits(func(events int, d time.Duration) {
		t.commitEvents.Observe(float64(events))
		t.commitSecs.Observe(d.Seconds())
	})
	return t
}

// promName registers Vault's dotted key and returns the Prometheus name. Gauges carry the host
// name after the first element unless DisableHostname, as Vault's go-metrics does.
func (t *Telemetry) promName(key string, gauge bool) string {
	if gauge && !t.opts.DisableHostname && strings.HasPrefix(key, "vault.") {
		key = "vault." + hostLabel() + strings.TrimPrefix(key, "vault")
	}
	n := strings.ReplaceAll(key, ".", "_")
	t.namesMu.Lock()
	t.names[n] = key
	t.namesMu.Unlock()
	return n
}

func hostLabel() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, h)
}

// ObserveRequest records one HTTP request's handling time (the HTTP edge calls it).
func (t *Telemetry) ObserveRequest(login bool, d time.Duration) {
	ms := float64(d) / float64(time.Millisecond)
	if login {
		t.login.observe(ms)
		return
	}
	t.handle.observe(ms)
}

// Telemetry returns the Core's metrics.
func (c *Core) Telemetry() *Telemetry {
	c.telemetryOnce.Do(func() { c.telemetry = newTelemetry(c, c.opts.Telemetry) })
	return c.telemetry
}

// stateCollector reads gauges from the Core's state at scrape time: nothing on the request
// path pays for them.
type stateCollector struct{ t *Telemetry }

func (stateCollector) Describe(chan<- *prometheus.Desc) {} // unchecked: the set depends on state

func (s stateCollector) Collect(ch chan<- prometheus.Metric) {
	t := s.t
	gauge := func(key, help string, v float64, labels ...string) {
		var names []string
		for i := 0; i+1 < len(labels); i += 2 {
			names = append(names, labels[i])
		}
		var values []string
		for i := 1; i < len(labels); i += 2 {
			values = append(values, labels[i])
		}
		d := prometheus.NewDesc(t.promName(key, true), help, names, nil)
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, values...)
	}
	counter := func(key, help string, v float64) {
		d := prometheus.NewDesc(t.promName(key, false), help, nil, nil)
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gauge("vault.runtime.alloc_bytes", "Bytes of allocated heap objects.", float64(ms.Alloc))
	gauge("vault.runtime.sys_bytes", "Bytes obtained from the OS.", float64(ms.Sys))
	gauge("vault.runtime.heap_objects", "Allocated heap objects.", float64(ms.HeapObjects))
	gauge("vault.runtime.num_goroutines", "Goroutines.", float64(runtime.NumGoroutine()))
	gauge("vault.runtime.total_gc_pause_ns", "Total GC pause, nanoseconds.", float64(ms.PauseTotalNs))
	gauge("vault.runtime.total_gc_runs", "Completed GC cycles.", float64(ms.NumGC))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if head, err := t.c.log.LastSeq(ctx); err == nil {
		gauge("ledger.log.head_seq", "Sequence of the last message in the log stream.", float64(head))
	}
	c := t.c
	// A scrape through the API already holds c.mu for reading; TryRLock does not queue behind
	// a seal waiting for the write lock (which would deadlock that scrape), it skips.
	if !c.mu.TryRLock() {
		return
	}
	defer c.mu.RUnlock()
	st := c.st
	unsealed := 0.0
	if st != nil {
		unsealed = 1
	}
	gauge("vault.core.unsealed", "1 if this node is unsealed.", unsealed)
	if checked, ok, _, _ := c.SealKeyHealth(); !checked.IsZero() {
		healthy := 0.0
		if ok {
			healthy = 1
		}
		gauge("ledger.seal.key_healthy", "1 if the auto-seal key last proved it decrypts the root key and is enabled; 0 if not (disabled, scheduled for deletion, unreachable).", healthy)
		gauge("ledger.seal.key_checked_unix", "When the auto-seal key was last checked, Unix seconds.", float64(checked.Unix()))
	}
	if st == nil {
		return
	}
	gauge("vault.token.count", "Tokens (service tokens, as Vault counts them), all namespaces.", float64(st.tokens.Len()))
	gauge("vault.expire.num_leases", "Leases the expiration manager tracks.", float64(st.leases.Len()))
	for _, v := range st.runner.Views() {
		gauge("ledger.view.applied_seq", "Log sequence each view has applied (one runner feeds them all; a view loaded after unseal stays at its checkpoint until then).",
			float64(st.runner.AppliedBy(v.Name())), "view", v.Name())
	}
	if st.snaps != nil {
		gauge("ledger.checkpoint.seq", "Log sequence of the newest automatic snapshot (checkpoint) this node stored or loaded; a restart replays the log after it.", float64(st.snaps.last.Load()))
	}
	if st.datakeys != nil {
		ds, n := st.datakeys.Stats()
		gauge("ledger.datakeys.count", "Live data keys (one per KV version).", float64(n))
		gauge("ledger.datakeys.shred_backlog", "Data keys waiting to be erased from disk: shreds queued, and trims inside ledger.ShredDeadline.", float64(ds.ShredBacklog))
		counter("ledger.datakeys.flushes_total", "Data-key flushes (each one message, one fsync; plus a root write when shelves change).", float64(ds.Flushes))
		counter("ledger.datakeys.created_total", "Data keys created.", float64(ds.Created))
		counter("ledger.datakeys.shredded_total", "Data keys erased.", float64(ds.Shredded))
		counter("ledger.datakeys.root_writes_total", "Root tables written (each followed by a 32 KB erase of the previous).", float64(ds.RootWrites))
		counter("ledger.datakeys.rewrapped_total", "Keys re-wrapped by shreds (bounded by 126 per shred).", float64(ds.Rewrapped))
		counter("ledger.datakeys.compacted_total", "Wraps stored again by compaction: full groups gathered from the small messages of their flushes into a few.", float64(ds.Compacted))
	}
	if st.audit != nil && st.audit.stream != nil {
		gauge("ledger.audit.spool_backlog", "Appends of read and denial records written to this node's audit spool and not yet stored in JetStream.", float64(st.audit.stream.Backlog()))
	}
	if st.audit != nil && st.audit.devices != nil {
		for _, d := range st.audit.devices.Status(ctx) {
			gauge("ledger.audit.device_lag", "Log and audit-stream messages an audit device has not delivered yet.", float64(d.Pending), "device", d.Path)
		}
	}
}

// errPrometheusOff is Vault's answer to format=prometheus with prometheus_retention_time 0.
var errPrometheusOff = engines.Errorf(engines.ErrBadRequest, "prometheus is not enabled")

// Render gathers the metrics in Vault's shape for format: "prometheus" (text exposition) or ""
// (Vault's JSON: Timestamp, Gauges, Counters, Samples, Points).
func (t *Telemetry) Render(format string) (body []byte, contentType string, err error) {
	switch format {
	case "", "json":
	case "prometheus":
		if t.opts.PrometheusRetention < 0 {
			return nil, "", errPrometheusOff
		}
	default:
		return nil, "", engines.Errorf(engines.ErrBadRequest, "unsupported metrics format %q: use format=prometheus, or no format for JSON", format)
	}
	mfs, err := t.reg.Gather()
	if err != nil {
		return nil, "", fmt.Errorf("gather metrics: %w", err)
	}
	if format == "prometheus" {
		var buf bytes.Buffer
		enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				return nil, "", fmt.Errorf("encode metrics: %w", err)
			}
		}
		return buf.Bytes(), string(expfmt.NewFormat(expfmt.TypeTextPlain)), nil
	}
	b, err := json.Marshal(t.vaultJSON(mfs))
	return b, "application/json", err
}

type vaultGauge struct {
	Name   string            `json:"Name"`
	Value  float64           `json:"Value"`
	Labels map[string]string `json:"Labels"`
}

type vaultSample struct {
	Name   string            `json:"Name"`
	Count  int               `json:"Count"`
	Rate   float64           `json:"Rate"`
	Sum    float64           `json:"Sum"`
	Min    float64           `json:"Min"`
	Max    float64           `json:"Max"`
	Mean   float64           `json:"Mean"`
	Stddev float64           `json:"Stddev"`
	Labels map[string]string `json:"Labels"`
}

type vaultMetrics struct {
	Timestamp string        `json:"Timestamp"`
	Gauges    []vaultGauge  `json:"Gauges"`
	Points    []any         `json:"Points"`
	Counters  []vaultSample `json:"Counters"`
	Samples   []vaultSample `json:"Samples"`
}

// vaultJSON is the shape of Vault's in-memory sink. Differences: values are since the server
// started, not for the last 10-second interval, so Rate is per second since the start.
func (t *Telemetry) vaultJSON(mfs []*dto.MetricFamily) vaultMetrics {
	out := vaultMetrics{Timestamp: time.Now().UTC().Truncate(10 * time.Second).Format("2006-01-02 15:04:05 -0700 MST"),
		Gauges: []vaultGauge{}, Points: []any{}, Counters: []vaultSample{}, Samples: []vaultSample{}}
	up := max(time.Since(t.started).Seconds(), 1)
	t.namesMu.Lock()
	names := maps.Clone(t.names)
	t.namesMu.Unlock()
	for _, mf := range mfs {
		key, ours := names[mf.GetName()]
		if !ours {
			continue // go_* and process_*: Prometheus conventions, Vault's runtime gauges cover them
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				out.Gauges = append(out.Gauges, vaultGauge{Name: key, Value: m.GetGauge().GetValue(), Labels: labels})
			case dto.MetricType_COUNTER:
				v := m.GetCounter().GetValue()
				out.Counters = append(out.Counters, vaultSample{Name: key, Count: int(v), Sum: v, Rate: v / up, Min: 1, Max: 1, Mean: 1, Labels: labels})
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				n := int(h.GetSampleCount())
				s := vaultSample{Name: key, Count: n, Sum: h.GetSampleSum(), Rate: h.GetSampleSum() / up, Labels: labels}
				if n > 0 {
					s.Mean = s.Sum / float64(n)
				}
				out.Samples = append(out.Samples, s)
			}
		}
	}
	for _, s := range []*sampled{t.handle, t.login} {
		s.mu.Lock()
		v := vaultSample{Name: s.key, Count: s.n, Sum: s.s, Min: s.min, Max: s.max, Rate: s.s / up, Labels: map[string]string{}}
		if s.n > 0 {
			v.Mean = s.s / float64(s.n)
			v.Stddev = math.Sqrt(max(s.ss/float64(s.n)-v.Mean*v.Mean, 0))
		}
		s.mu.Unlock()
		out.Samples = append(out.Samples, v)
	}
	slices.SortFunc(out.Gauges, func(a, b vaultGauge) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// metricsPath answers sys/metrics (read; a token with read on sys/metrics, as Vault).
func (s *sysBackend) metricsPath(req *engines.Request) (*engines.Response, error) {
	if req.Op != engines.OpRead {
		return nil, engines.ErrUnsupported
	}
	format, _ := req.Data["format"].(string)
	body, ctype, err := s.c.Telemetry().Render(format)
	if err != nil {
		return nil, err
	}
	return &engines.Response{Data: map[string]any{RawBody: body, RawContentType: ctype, RawStatusCode: 200}}, nil
}
