package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ledger-secrets/ledger/ledger"
)

const httpBenchWindow = 2 * time.Second

type benchResult struct {
	rate     float64
	p50, p99 time.Duration
	cpuPerOp time.Duration // the whole process's CPU time over the window, per operation
}

// hammer runs op from conc workers for the window; op gets the worker number and its count.
func hammer(b *testing.B, conc int, op func(w, i int) error) benchResult {
	b.Helper()
	return hammerAs(b, "", conc, op)
}

// hammerAs is hammer for one of several windows in one benchmark, named name in a profile.
func hammerAs(b *testing.B, name string, conc int, op func(w, i int) error) benchResult {
	b.Helper()
	return hammerFor(b, name, conc, httpBenchWindow, op).result()
}

// hammerCharged is hammerAs for a workload that leaves work behind (writes: data-key
// compaction, deferred shreds, the garbage collection of what they allocated): after the window
// it waits until the process is idle again (under settleBusy of CPU per settleSlice, for at most
// settleMax) and charges that time and CPU to the window. Without it that work fell on whatever
// window ran next — the overwrites paid for the new-key writes' compaction before them.
func hammerCharged(b *testing.B, name string, conc int, op func(w, i int) error) benchResult {
	b.Helper()
	w := hammerFor(b, name, conc, httpBenchWindow, op)
	end, endCPU := time.Now(), selfCPU()
	// The time and CPU up to the last busy slice; the quiet slice that ends the wait is not
	// charged, neither its time nor its CPU.
	busyUntil, busyCPU := end, endCPU
	for deadline := end.Add(settleMax); time.Now().Before(deadline); {
		time.Sleep(settleSlice)
		now, c := time.Now(), selfCPU()
		if c-busyCPU < settleBusy {
			break
		}
		busyUntil, busyCPU = now, c
	}
	w.elapsed += busyUntil.Sub(end)
	w.cpu += busyCPU - endCPU
	return w.result()
}

// A process is settled when it used less than settleBusy of CPU in a settleSlice (10 % of a
// core), or after settleMax.
const (
	settleSlice = 50 * time.Millisecond
	settleBusy  = 5 * time.Millisecond
	settleMax   = 5 * time.Second
)

// hammerInterleaved runs the workloads ops (named names) for httpBenchWindow each, not one
// after the other but in slices: each gets slices windows of httpBenchWindow/slices, in an
// order that rotates from slice to slice. Workloads whose rates are compared then share the
// machine's changes of speed and the server's background work (a checkpoint, compaction after
// earlier writes) instead of one of them taking all of it.
func hammerInterleaved(b *testing.B, names []string, conc, slices int, ops ...func(w, i int) error) []benchResult {
	b.Helper()
	acc := make([]window, len(ops))
	for sl := range slices {
		for k := range ops {
			j := (k + sl) % len(ops)
			acc[j].add(hammerFor(b, fmt.Sprintf("%s-s%d", names[j], sl), conc, httpBenchWindow/time.Duration(slices), ops[j]))
		}
	}
	out := make([]benchResult, len(ops))
	for j := range acc {
		out[j] = acc[j].result()
	}
	return out
}

// window is what one or more timed windows of a workload measured.
type window struct {
	ops     int64
	elapsed time.Duration
	cpu     time.Duration
	lat     []time.Duration
}

func (w *window) add(o window) {
	w.ops += o.ops
	w.elapsed += o.elapsed
	w.cpu += o.cpu
	w.lat = append(w.lat, o.lat...)
}

func (w window) result() benchResult {
	slices.Sort(w.lat)
	return benchResult{rate: float64(w.ops) / w.elapsed.Seconds(), p50: w.lat[len(w.lat)/2], p99: w.lat[len(w.lat)*99/100],
		cpuPerOp: w.cpu / time.Duration(max(w.ops, 1))}
}

// hammerFor runs op from conc workers for d.
func hammerFor(b *testing.B, name string, conc int, d time.Duration, op func(w, i int) error) window {
	b.Helper()
	var wg sync.WaitGroup
	var total atomic.Int64
	lat := make([][]time.Duration, conc)
	var failed atomic.Value
	if dir := os.Getenv("LEDGER_BENCH_PROFILE_DIR"); dir != "" {
		// A CPU profile of this window alone (the benchmark's name, slashes as dashes).
		file := strings.ReplaceAll(b.Name(), "/", "-")
		if name != "" {
			file += "-" + name
		}
		f, err := os.Create(filepath.Join(dir, file+".cpu.pprof"))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	deadline := time.Now().Add(d)
	start := time.Now()
	cpu0 := selfCPU()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if err := op(w, i); err != nil {
					failed.Store(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return window{ops: total.Load(), elapsed: time.Since(start), cpu: selfCPU() - cpu0, lat: slices.Concat(lat...)}
}

// selfCPU is the user+system CPU time this process (server and clients together) has used:
// per operation it is steadier than a rate on a machine whose load comes and goes.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func report(b *testing.B, r benchResult, unit string) {
	b.ReportMetric(r.rate, unit)
	b.ReportMetric(float64(r.p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(r.p99.Microseconds()), "p99-µs")
	if r.cpuPerOp > 0 {
		b.ReportMetric(float64(r.cpuPerOp.Nanoseconds())/1e3, "cpu-µs/op")
	}
}

func do(c *http.Client, method, url, token string, body []byte) error {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d", method, url, resp.StatusCode)
	}
	return nil
}

// durableCeiling is the log's own group-commit rate at conc appenders of 512-byte events,
// measured beside the HTTP figures so the ratio compares like with like.
func durableCeiling(b *testing.B, conc int) float64 {
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	kr, _ := ledger.NewKeyring(time.Now())
	l.SetKeyring(kr)
	payload := make([]byte, 512)
	return hammer(b, conc, func(int, int) error {
		_, err := l.Append(context.Background(), []ledger.Event{{Type: "bench.v1", Payload: payload}})
		return err
	}).rate
}

// BenchmarkHTTP measures the API over real loopback HTTP at 1, 16 and 64 concurrent clients:
// a bare echo handler returning 200 bytes of JSON (the HTTP ceiling), sys/health, KV read of
// existing keys (as a fraction of the bare handler), KV write (as a fraction of the log's
// durable ceiling) and token create. Run with -benchtime 1x.
func BenchmarkHTTP(b *testing.B) {
	bare := echo.New()
	body := map[string]string{"data": strings.Repeat("x", 180)}
	bare.GET("/v1/bare", func(c echo.Context) error { return c.JSON(http.StatusOK, body) })
	bareSrv := httptest.NewServer(bare)
	defer bareSrv.Close()

	s := startServer(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}
	root := s.RootToken
	value := []byte(`{"data":{"username":"app","password":"` + strings.Repeat("p", 32) + `"}}`)
	for i := range 256 {
		if err := do(client, "POST", fmt.Sprintf("%s/v1/secret/data/read/%d", s.URL, i), root, value); err != nil {
			b.Fatal(err)
		}
	}
	for _, conc := range []int{1, 16, 64} {
		var bareRate, ceiling float64
		b.Run(fmt.Sprintf("bare-echo/c=%d", conc), func(b *testing.B) {
			r := hammer(b, conc, func(int, int) error { return do(client, "GET", bareSrv.URL+"/v1/bare", "", nil) })
			bareRate = r.rate
			report(b, r, "ops/s")
		})
		b.Run(fmt.Sprintf("health/c=%d", conc), func(b *testing.B) {
			report(b, hammer(b, conc, func(int, int) error { return do(client, "GET", s.URL+"/v1/sys/health", "", nil) }), "ops/s")
		})
		b.Run(fmt.Sprintf("kv-read/c=%d", conc), func(b *testing.B) {
			r := hammer(b, conc, func(w, i int) error {
				return do(client, "GET", fmt.Sprintf("%s/v1/secret/data/read/%d", s.URL, (w*31+i)%256), root, nil)
			})
			report(b, r, "ops/s")
			b.ReportMetric(r.rate/bareRate, "x-bare-echo")
		})
		b.Run(fmt.Sprintf("log-ceiling/c=%d", conc), func(b *testing.B) {
			ceiling = durableCeiling(b, conc)
			b.ReportMetric(ceiling, "appends/s")
		})
		b.Run(fmt.Sprintf("kv-write/c=%d", conc), func(b *testing.B) {
			r := hammer(b, conc, func(w, i int) error {
				return do(client, "POST", fmt.Sprintf("%s/v1/secret/data/write/c%d/w%d/%d", s.URL, conc, w, i), root, value)
			})
			report(b, r, "ops/s")
			b.ReportMetric(r.rate/ceiling, "x-log-ceiling")
		})
		b.Run(fmt.Sprintf("token-create/c=%d", conc), func(b *testing.B) {
			req := []byte(`{"policies":["default"],"ttl":"1h"}`)
			report(b, hammer(b, conc, func(int, int) error { return do(client, "POST", s.URL+"/v1/auth/token/create", root, req) }), "ops/s")
		})
	}
}
