package httpapi_test

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// BenchmarkSteadyState is issue 10's comparison, all in one run on one server, 16 clients over
// real loopback HTTP: sys/health (the path's ceiling), KV write of new keys, KV overwrites of
// 1,000 keys that already hold max_versions (10) versions — every write trims one — KV read,
// transit encrypt and token create. Ratios are to the same run's figures, since absolute
// rates on this shared machine move by 2× between runs; the compared workloads run in
// LEDGER_BENCH_ROUNDS rounds (default 3). Run with -benchtime 1x.
func BenchmarkSteadyState(b *testing.B) {
	const conc = 16
	s := startServer(b)
	root := s.Client(b, s.RootToken)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}
	tok := s.RootToken
	value := []byte(`{"data":{"username":"app","password":"` + strings.Repeat("p", 32) + `"}}`)
	if err := root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		b.Fatal(err)
	}
	if _, err := root.Logical().Write("transit/keys/bench", nil); err != nil {
		b.Fatal(err)
	}
	// 1,000 paths, each filled to max_versions (10), by 16 clients.
	fill := hammerN(b, conc, 1000*10, func(n int) error {
		return do(client, "POST", fmt.Sprintf("%s/v1/secret/data/steady/%d", s.URL, n%1000), tok, value)
	})
	if fill != nil {
		b.Fatal(fill)
	}
	// The VM this runs on changes speed between (and within) seconds, so one window per
	// workload made the ratios swing by ±25 % between identical runs. The workloads that are
	// compared run in rounds instead — health, read, transit; new-key write, overwrite — and each
	// ratio is the median of the rounds' ratios, with the lowest and highest beside it. Within a
	// round health, read and transit are interleaved in slices; the two writes are not: an
	// overwrite's deferred work (compaction of the groups its trims retire) would then be
	// charged partly to the new-key writes beside it. Each write window is charged the work it
	// leaves behind instead (hammerCharged: its clock and CPU run on until the process is idle),
	// so neither pays for the other's — the new-key writes' compaction used to land on the
	// overwrites after them.
	rounds := benchRounds(b)
	body := []byte(`{"plaintext":"` + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s", 64))) + `"}`)
	var health, read, transit, fresh, over []benchResult
	for r := range rounds {
		round := fmt.Sprintf("r%d", r)
		// Health, read and transit are compared with each other: interleaved (see
		// hammerInterleaved), so that what the round's writes left running — a checkpoint,
		// compaction — falls on all three alike.
		hrt := hammerInterleaved(b, []string{"health-" + round, "kv-read-" + round, "transit-encrypt-" + round}, conc, interleaveSlices,
			func(int, int) error { return do(client, "GET", s.URL+"/v1/sys/health", "", nil) },
			func(w, i int) error {
				return do(client, "GET", fmt.Sprintf("%s/v1/secret/data/steady/%d", s.URL, (w*61+i)%1000), tok, nil)
			},
			func(int, int) error { return do(client, "POST", s.URL+"/v1/transit/encrypt/bench", tok, body) })
		health, read, transit = append(health, hrt[0]), append(read, hrt[1]), append(transit, hrt[2])
		fresh = append(fresh, hammerCharged(b, "kv-write-new-"+round, conc, func(w, i int) error {
			return do(client, "POST", fmt.Sprintf("%s/v1/secret/data/new/%s/w%d/%d", s.URL, round, w, i), tok, value)
		}))
		over = append(over, hammerCharged(b, "kv-overwrite-past-max-versions-"+round, conc, func(w, i int) error {
			return do(client, "POST", fmt.Sprintf("%s/v1/secret/data/steady/%d", s.URL, (w*1000/conc+i)%1000), tok, value)
		}))
	}
	b.Run("health", func(b *testing.B) { reportRounds(b, health, nil, "") })
	b.Run("kv-write-new", func(b *testing.B) { reportRounds(b, fresh, nil, "") })
	b.Run("kv-overwrite-past-max-versions", func(b *testing.B) { reportRounds(b, over, fresh, "x-new-key-write") })
	b.Run("kv-read", func(b *testing.B) { reportRounds(b, read, health, "x-health") })
	b.Run("transit-encrypt", func(b *testing.B) { reportRounds(b, transit, health, "x-health") })
	b.Run("token-create", func(b *testing.B) {
		req := []byte(`{"policies":["default"],"ttl":"1h"}`)
		report(b, hammer(b, conc, func(int, int) error { return do(client, "POST", s.URL+"/v1/auth/token/create", tok, req) }), "ops/s")
	})
}

// interleaveSlices is how many slices hammerInterleaved cuts each workload's window into.
const interleaveSlices = 4

// hammerN runs op n times (argument 0..n-1) from conc workers.
func hammerN(_ testing.TB, conc, n int, op func(int) error) error {
	errs := make(chan error, conc)
	next := make(chan int)
	go func() {
		for i := range n {
			next <- i
		}
		close(next)
	}()
	for range conc {
		go func() {
			var err error
			for i := range next {
				if err == nil {
					err = op(i)
				}
			}
			errs <- err
		}()
	}
	var first error
	for range conc {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// benchRounds is LEDGER_BENCH_ROUNDS, default 3.
func benchRounds(b *testing.B) int {
	env := os.Getenv("LEDGER_BENCH_ROUNDS")
	if env == "" {
		return 3
	}
	n, err := strconv.Atoi(env)
	if err != nil || n < 1 {
		b.Fatalf("LEDGER_BENCH_ROUNDS=%q: want a positive count", env)
	}
	return n
}

// reportRounds reports the median round of rs (by rate) and, when base is given, the median,
// lowest and highest of the rounds' ratios rs[i]/base[i] under unit.
func reportRounds(b *testing.B, rs, base []benchResult, unit string) {
	byRate := slices.Clone(rs)
	slices.SortFunc(byRate, func(x, y benchResult) int { return cmp.Compare(x.rate, y.rate) })
	report(b, byRate[len(byRate)/2], "ops/s")
	cpus := make([]time.Duration, len(rs))
	for i, r := range rs {
		cpus[i] = r.cpuPerOp
	}
	slices.Sort(cpus)
	b.ReportMetric(float64(cpus[len(cpus)/2].Nanoseconds())/1e3, "cpu-µs/op")
	if base == nil {
		return
	}
	ratios := make([]float64, len(rs))
	for i := range rs {
		ratios[i] = rs[i].rate / base[i].rate
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], unit)
	b.ReportMetric(ratios[0], unit+"-min")
	b.ReportMetric(ratios[len(ratios)-1], unit+"-max")
}
