package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkScan: `ledger scan` over a generated tree of LEDGER_BENCH_SCAN_FILES files (default
// 10,000 so `make bench` stays short; issue 16's figure is LEDGER_BENCH_SCAN_FILES=100000;
// ~1.3 KB each, config-like lines), 1% of which hold one of 200
// values stored in a KV mount of an in-process dev server. Reports MB/s of source scanned,
// candidates matched per second on the server, and known values found per second.
func BenchmarkScan(b *testing.B) {
	files := 10000
	if v := os.Getenv("LEDGER_BENCH_SCAN_FILES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			b.Fatalf("LEDGER_BENCH_SCAN_FILES=%q: want a number >= 100", v)
		}
		files = n
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	d, err := startDev(context.Background(), io.Discard, devOptions{Listener: ln, LogLevel: "error"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.close(context.Background()) })
	env := map[string]string{"VAULT_ADDR": withScheme(d.Addr), "VAULT_TOKEN": d.RootToken, "HOME": b.TempDir()}
	cli := func(args ...string) (string, string, int) {
		var out, errOut strings.Builder
		code := run(args, env, strings.NewReader(""), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	const secrets = 200
	stored := make([]string, secrets)
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		const cs = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!"
		var s strings.Builder
		for range n {
			s.WriteByte(cs[rng.IntN(len(cs))])
		}
		return s.String()
	}
	for i := range stored {
		stored[i] = "pw-" + word(20)
		if _, e, code := cli("kv", "put", fmt.Sprintf("secret/app%d/db", i), "password="+stored[i]); code != 0 {
			b.Fatalf("kv put: %s", e)
		}
	}
	// A pool of ordinary tokens, so files share most candidates as real trees do.
	pool := make([]string, 20000)
	for i := range pool {
		pool[i] = word(8 + rng.IntN(16))
	}
	dir := b.TempDir()
	var size int64
	planted := 0
	for i := range files {
		sub := filepath.Join(dir, fmt.Sprintf("d%03d", i%1000))
		if i < 1000 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		var s strings.Builder
		for l := 0; l < 30; l++ {
			fmt.Fprintf(&s, "key_%d = %q # %s\n", l, pool[rng.IntN(len(pool))], pool[rng.IntN(len(pool))])
		}
		if i%100 == 0 {
			fmt.Fprintf(&s, "DB_PASSWORD=%s\n", stored[planted%secrets])
			planted++
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d.conf", i)), []byte(s.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		size += int64(s.Len())
	}
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		cpu0 := cpuSeconds(b)
		out, errOut, code := cli("scan", "-format=json", dir)
		el := time.Since(start).Seconds()
		b.ReportMetric(cpuSeconds(b)-cpu0, "cpu-s")
		if code != 1 {
			b.Fatalf("scan: exit %d: %s", code, errOut)
		}
		var sum scanSummary
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			b.Fatal(err)
		}
		if len(sum.Findings) != planted || sum.Files != files {
			b.Fatalf("found %d of %d planted values in %d files", len(sum.Findings), planted, sum.Files)
		}
		b.ReportMetric(float64(size)/1e6/el, "MB/s")
		b.ReportMetric(float64(sum.Candidates)/el, "candidates/s")
		b.ReportMetric(float64(len(sum.Findings))/el, "matches/s")
		b.ReportMetric(float64(files), "files")
		b.ReportMetric(el, "s/scan")
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
