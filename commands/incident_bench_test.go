package commands

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/audit"
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
)

// BenchmarkIncidentReport: sys/ledger/incident over an audit trail of LEDGER_BENCH_AUDIT_RECORDS
// read records (default 100,000 so `make bench` stays short; issue 16's figure is
// LEDGER_BENCH_AUDIT_RECORDS=1000000), appended to LEDGER_AUDIT in
// the shape the pipeline writes (500 accessors reading 2,000 KV paths), 0.1% of them reads of
// the leaked value. Reports the report's time and audit records folded per second.
func BenchmarkIncidentReport(b *testing.B) {
	n := 100000
	if v := os.Getenv("LEDGER_BENCH_AUDIT_RECORDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("LEDGER_BENCH_AUDIT_RECORDS=%q: want a number >= 1000", v)
		}
	}
	ctx := context.Background()
	c, res := newTestCore(b)
	do := func(op engines.Operation, path string, data map[string]any) *engines.Response {
		b.Helper()
		r, err := c.Handle(ctx, &Request{Op: op, Path: path, Data: data, Token: res.RootToken})
		if err != nil {
			b.Fatalf("%s %s: %v", op, path, err)
		}
		return r
	}
	const leaked = "prod-db-2024!-leaked"
	do(engines.OpUpdate, "sys/mounts/secret", map[string]any{"type": "kv", "options": map[string]any{"version": "2"}})
	do(engines.OpUpdate, "secret/data/myapp/db", map[string]any{"data": map[string]any{"password": leaked}})
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	kr := st.keyring.Load()
	hit := audit.HMAC(kr, leaked)
	other := make([]string, 64)
	for i := range other {
		other[i] = audit.HMAC(kr, fmt.Sprintf("other-value-%d", i))
	}
	start := time.Now()
	const chunk = 1000
	hits := 0
	for base := 0; base < n; base += chunk {
		evs := make([]ledger.Event, 0, chunk)
		for i := base; i < min(base+chunk, n); i++ {
			acc := fmt.Sprintf("acc-%03d", i%500)
			path, val := fmt.Sprintf("secret/data/app%d/db", i%2000), other[i%len(other)]
			if i%1000 == 7 {
				path, val = "secret/data/myapp/db", hit
				hits++
			}
			rec := audit.Record{Time: time.Now().UTC(),
				Auth: &audit.Auth{Accessor: acc, DisplayName: "token", Policies: []string{"default", "app"}, TokenPolicies: []string{"default", "app"}, EntityID: "ent-" + acc},
				Request: &audit.Request{ID: fmt.Sprintf("req-%d", i), Operation: "read", Path: path, MountPoint: "secret/", MountType: "kv",
					ClientTokenAccessor: acc, RemoteAddress: "10.0.0.1", Namespace: &audit.Namespace{ID: "root"}},
				Response: &audit.Response{MountPoint: "secret/", MountType: "kv", Data: map[string]any{
					"data": map[string]any{"password": val}, "metadata": map[string]any{"version": 1}}},
			}
			ev, err := rec.Event()
			if err != nil {
				b.Fatal(err)
			}
			evs = append(evs, ev)
		}
		if _, err := st.audit.stream.Append(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("appended %d audit records in %s", n, time.Since(start).Round(time.Millisecond))
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		cpu0 := cpuSeconds(b)
		r := do(engines.OpUpdate, "sys/ledger/incident", map[string]any{"value": leaked})
		el := time.Since(t0).Seconds()
		b.ReportMetric(cpuSeconds(b)-cpu0, "cpu-s")
		evs, _ := r.Data["events"].([]IncidentEvent)
		reads := 0
		for _, e := range evs {
			if e.Kind == "read" {
				reads++
			}
		}
		if reads != hits || r.Data["scanned_records"].(int) < n {
			b.Fatalf("report found %d reads (want %d) over %v records", reads, hits, r.Data["scanned_records"])
		}
		b.ReportMetric(el, "s/report")
		b.ReportMetric(float64(n)/el, "records/s")
		b.ReportMetric(float64(n), "records")
	}
}

// cpuSeconds is the process's user+system CPU time: a figure the machine's load (other
// processes) does not stretch, unlike wall time.
func cpuSeconds(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
