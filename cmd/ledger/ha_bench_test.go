package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// BenchmarkHA measures real `ledger server` processes on this machine (issue 11): the KV v2
// write rate of one node against the README's three-node R3 cluster (deploy/local, writes sent
// to the active node and through a standby), the reads each node serves, and the time from
// SIGKILL of the active process to a new active node and to the first accepted write, over
// haKills kills (each killed node restarted and unsealed before the next kill).
func BenchmarkHA(b *testing.B) {
	b.Run("one-node", func(b *testing.B) {
		c := startSoloNode(b)
		c.initUnseal()
		vc := c.client(0)
		mountKV(b, vc)
		b.ResetTimer()
		report(b, "writes/s", kvWriteRate(b, vc, "solo"))
		report(b, "reads/s", kvReadRate(b, vc))
	})
	b.Run("three-node-R3", func(b *testing.B) {
		c := startLocalCluster(b)
		c.initUnseal()
		act, _ := c.waitActive(c.all(), 60*time.Second)
		standby := (act + 1) % 3
		vc := c.client(act)
		mountKV(b, vc)
		b.ResetTimer()
		report(b, "writes/s-active", kvWriteRate(b, vc, "active"))
		report(b, "writes/s-via-standby", kvWriteRate(b, c.client(standby), "via-standby"))
		for _, i := range c.all() {
			role := "standby"
			if i == act {
				role = "active"
			}
			report(b, fmt.Sprintf("reads/s-node%d-%s", i+1, role), kvReadRate(b, c.client(i)))
		}
		// All three nodes read at once.
		rates := make([]rate, 3)
		var wg sync.WaitGroup
		for _, i := range c.all() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rates[i] = kvReadRate(b, c.client(i))
			}()
		}
		wg.Wait()
		for i, r := range rates {
			report(b, fmt.Sprintf("reads/s-all-three-node%d", i+1), r)
		}
	})
	b.Run("failover", func(b *testing.B) {
		c := startLocalCluster(b)
		c.initUnseal()
		act, _ := c.waitActive(c.all(), 60*time.Second)
		mountKV(b, c.client(act))
		var toActive, toWrite []time.Duration
		unsealRetries := 0
		for k := range haKills {
			c.kill(act)
			killedAt := time.Now()
			var rest []int
			for _, i := range c.all() {
				if i != act {
					rest = append(rest, i)
				}
			}
			next, d := c.waitActive(rest, 60*time.Second)
			toActive = append(toActive, d)
			vc := c.client(next)
			var errs []string
			dumped := make(chan struct{})
			if dir := os.Getenv("LEDGER_BENCH_SLOW_DIR"); dir != "" {
				go func(k, node int) {
					select {
					case <-dumped:
						return
					case <-time.After(15*time.Second - time.Since(killedAt)):
					}
					req, _ := http.NewRequest("GET", c.addrs[node]+"/v1/sys/pprof/goroutine?debug=2", nil)
					req.Header.Set("X-Vault-Token", c.root)
					resp, err := haHTTP.Do(req)
					if err != nil {
						fmt.Fprintf(os.Stderr, "kill %d: goroutine dump: %v\n", k+1, err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					os.WriteFile(filepath.Join(dir, fmt.Sprintf("kill%d-node%d.goroutines", k+1, node+1)), b, 0o600)
				}(k, next)
			}
			for {
				_, err := vc.KVv2("secret").Put(context.Background(), fmt.Sprintf("failover/%d", k), map[string]any{"v": "x"})
				if err == nil {
					break
				}
				if len(errs) == 0 || errs[len(errs)-1] != err.Error() {
					errs = append(errs, fmt.Sprintf("%.1fs %v", time.Since(killedAt).Seconds(), err))
				}
				if time.Since(killedAt) > 60*time.Second {
					if dir := os.Getenv("LEDGER_BENCH_SLOW_DIR"); dir != "" {
						for i := range c.logs {
							os.WriteFile(filepath.Join(dir, fmt.Sprintf("kill%d-node%d.log", k+1, i+1)), []byte(c.logs[i].String()), 0o600)
						}
					}
					b.Fatalf("kill %d: no write accepted on node%d: %v", k+1, next+1, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			close(dumped)
			toWrite = append(toWrite, time.Since(killedAt))
			if d := time.Since(killedAt); d > 10*time.Second {
				fmt.Fprintf(os.Stderr, "kill %d: first write on node%d after %v; refusals: %q\n", k+1, next+1, d, errs)
				if dir := os.Getenv("LEDGER_BENCH_SLOW_DIR"); dir != "" {
					for i := range c.logs {
						os.WriteFile(filepath.Join(dir, fmt.Sprintf("kill%d-node%d.log", k+1, i+1)), []byte(c.logs[i].String()), 0o600)
					}
				}
			}
			c.start(act)
			c.waitHealth("restarted, sealed", func(code int) bool { return code == 503 }, act)
			// An unseal refused under load (an operator would enter the keys again) is
			// counted, and the node is given the keys again, up to five times.
			for try := 0; ; try++ {
				err := c.tryUnseal(act)
				if err == nil {
					break
				}
				if try == 4 {
					b.Fatalf("kill %d: node%d does not unseal: %v", k+1, act+1, err)
				}
				unsealRetries++
				b.Logf("kill %d: node%d unseal refused: %v", k+1, act+1, err)
				if dir := os.Getenv("LEDGER_BENCH_SLOW_DIR"); dir != "" {
					os.WriteFile(filepath.Join(dir, fmt.Sprintf("kill%d-node%d-unseal.log", k+1, act+1)), []byte(c.logs[act].String()), 0o600)
				}
				c.waitHealth("sealed again", func(code int) bool { return code == 503 }, act)
			}
			c.waitHealth("restarted, unsealed", func(code int) bool { return code == 429 || code == 473 }, act)
			act = next
		}
		b.ReportMetric(float64(unsealRetries), "unseal-refusals")
		for _, s := range []struct {
			name string
			d    []time.Duration
		}{{"to-active", toActive}, {"to-write", toWrite}} {
			sort.Slice(s.d, func(i, j int) bool { return s.d[i] < s.d[j] })
			b.ReportMetric(s.d[0].Seconds(), "s-min-"+s.name)
			b.ReportMetric(s.d[len(s.d)/2].Seconds(), "s-p50-"+s.name)
			b.ReportMetric(s.d[len(s.d)-1].Seconds(), "s-max-"+s.name)
			// On stderr: the benchmark's own log is cut short when the unseal refusals are long.
			fmt.Fprintf(os.Stderr, "BenchmarkHA/failover: %s over %d kills (sorted): %v\n", s.name, len(s.d), s.d)
		}
	})
}

// tryUnseal is unseal that reports a refused key instead of failing.
func (c *localCluster) tryUnseal(i int) error {
	for _, k := range []int{0, 2, 4} {
		if _, err := c.tryCLI(i, c.keys[k]+"\n", "operator", "unseal"); err != nil {
			return err
		}
	}
	return nil
}

// rate is what haRate measured: completed requests per second and the share that failed.
type rate struct{ perSec, failedShare float64 }

// report records a rate and, when some requests failed, the failed share.
func report(b *testing.B, unit string, r rate) {
	b.ReportMetric(r.perSec, unit)
	if r.failedShare > 0 {
		b.ReportMetric(r.failedShare, "failed-share-"+unit)
	}
}

const (
	haWindow  = 5 * time.Second // each rate's measuring window
	haWorkers = 16              // concurrent clients per rate
)

// haKills is how many times the failover benchmark kills the active node: 10, or
// LEDGER_BENCH_HA_KILLS (to hunt a rare slow failover).
var haKills = func() int {
	if n, err := strconv.Atoi(os.Getenv("LEDGER_BENCH_HA_KILLS")); err == nil && n > 0 {
		return n
	}
	return 10
}()

// startSoloNode is one `ledger server` with embedded JetStream and no cluster block: the
// one-node baseline, started the way the quick start starts a node.
func startSoloNode(b testing.TB) *localCluster {
	b.Helper()
	c := &localCluster{t: b, bin: ledgerBinary(b), dir: b.TempDir(), began: time.Now()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c.addrs = []string{"http://" + addr}
	cfg := fmt.Sprintf("listener \"tcp\" {\n  address = %q\n  tls_disable = true\n}\nstorage \"jetstream\" {\n  path = \"data/node1\"\n}\n", addr)
	if err := os.WriteFile(filepath.Join(c.dir, "node1.hcl"), []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	c.run()
	return c
}

func mountKV(b testing.TB, vc *vault.Client) {
	b.Helper()
	if err := vc.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		b.Fatal(err)
	}
	if _, err := vc.KVv2("secret").Put(context.Background(), "bench/read", map[string]any{"v": "value"}); err != nil {
		b.Fatal(err)
	}
}

// kvWriteRate is KV v2 writes per second by haWorkers clients over haWindow, each to its own
// paths (no check-and-set conflicts).
func kvWriteRate(b testing.TB, vc *vault.Client, tag string) rate {
	return haRate(b, func(w, n int) error {
		_, err := vc.KVv2("secret").Put(context.Background(), fmt.Sprintf("bench/%s/w%d/%d", tag, w, n%64), map[string]any{"v": "value"})
		return err
	})
}

// kvReadRate is KV v2 reads per second of one secret by haWorkers clients over haWindow.
func kvReadRate(b testing.TB, vc *vault.Client) rate {
	return haRate(b, func(int, int) error {
		_, err := vc.KVv2("secret").Get(context.Background(), "bench/read")
		return err
	})
}

// haRate runs op from haWorkers goroutines for haWindow and returns completed ops per second.
// A failed op is counted, not fatal: an overloaded cluster refuses (503: the audit record was
// not stored in time) rather than answering unaudited, and that share is part of the figure.
func haRate(b testing.TB, op func(worker, n int) error) rate {
	b.Helper()
	var done, failed atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(haWindow)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range haWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(stop); n++ {
				if err := op(w, n); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Logf("%d of %d requests failed; the first: %v", f, f+done.Load(), firstErr.Load())
	}
	total := max(1, done.Load()+failed.Load())
	return rate{float64(done.Load()) / time.Since(start).Seconds(), float64(failed.Load()) / float64(total)}
}
