package ledger

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeBytes is what this process has written to the block layer so far (/proc/self/io
// write_bytes): with the embedded JetStream in process, the bytes a workload costs the disk.
func writeBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkDataKeysSteadyShred is the data-key half of a KV path that has reached max_versions:
// 1,000 paths hold 10 versions each, and every further write creates a key and shreds the
// path's oldest — waiting for the erase (Shred, as kv destroy does) or not (ShredLater, as a
// max_versions trim does). 16 writers, a fixed window; reports rotations/s, latency and the
// bytes the process wrote to disk per rotation. Run with -benchtime 1x.
func BenchmarkDataKeysSteadyShred(b *testing.B) {
	for _, later := range []bool{false, true} {
		name := "Shred"
		if later {
			name = "ShredLater"
		}
		b.Run(name, func(b *testing.B) { benchSteadyShred(b, later) })
	}
}

func benchSteadyShred(b *testing.B, later bool) {
	const (
		paths    = 1000
		versions = 10
		conc     = 16
		window   = 3 * time.Second
	)
	ctx := context.Background()
	l, err := Open(ctx, Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	k := testKeyring(b)
	d, err := OpenDataKeys(ctx, l.JetStream(), 1)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if err := d.Load(ctx, k); err != nil {
		b.Fatal(err)
	}
	// Fill: every path gets its versions, 16 writers, as a burst of new writes would.
	hist := make([][]string, paths)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for p := w; p < paths; p += conc {
				for v := range versions {
					id := fmt.Sprintf("kv.bench.p%d-v%d", p, v)
					if _, err := d.New(ctx, k, id); err != nil {
						b.Error(err)
						return
					}
					hist[p] = append(hist[p], id)
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	bytes0 := writeBytes()
	lat := make([][]time.Duration, conc)
	deadline := time.Now().Add(window)
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				p := (w + i*conc) % paths
				t0 := time.Now()
				id := fmt.Sprintf("kv.bench.p%d-v%d", p, versions+i)
				if _, err := d.New(ctx, k, id); err != nil {
					b.Error(err)
					return
				}
				oldest := hist[p][0]
				hist[p] = append(hist[p][1:], id)
				shred := func() error { return d.Shred(ctx, oldest) }
				if later {
					shred = func() error { return d.ShredLater([]string{oldest}) }
				}
				if err := shred(); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if later { // the erase is part of the cost: wait for the backlog
		for st, _ := d.Stats(); st.ShredBacklog > 0; st, _ = d.Stats() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	all := slices.Concat(lat...)
	if len(all) == 0 {
		b.Fatal("no rotations")
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "rotations/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(writeBytes()-bytes0)/float64(len(all)), "disk-B/rotation")
}

// BenchmarkDataKeysShredMount is a mount of 100,000 paths disabled at once (set
// LEDGER_BENCH_MOUNT_KEYS for another size): every key under the mount's prefix listed and
// shredded, 4,096 per flush, as kv.ShredMount does, while another mount's keys stay. Run with
// -benchtime 1x.
func BenchmarkDataKeysShredMount(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("LEDGER_BENCH_MOUNT_KEYS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	k := testKeyring(b)
	d := openDataKeys(b, openTest(b, b.TempDir()), k)
	createKeys(b, d, k, 64, n, func(i int) []string {
		if i%10 == 0 {
			return []string{fmt.Sprintf("kv.gone.p%d", i), fmt.Sprintf("kv.kept.p%d", i)}
		}
		return []string{fmt.Sprintf("kv.gone.p%d", i)}
	})
	if b.Failed() {
		return
	}
	bytes0 := writeBytes()
	start := time.Now()
	list, err := d.List(ctx, "kv.gone")
	if err != nil {
		b.Fatal(err)
	}
	for chunk := range slices.Chunk(list, 4096) {
		ids := make([]string, len(chunk))
		for i, c := range chunk {
			ids[i] = c.ID
		}
		if err := d.ShredMany(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	if left, _ := d.List(ctx, "kv.gone"); len(left) != 0 {
		b.Fatalf("%d keys left", len(left))
	}
	if kept, _ := d.List(ctx, "kv.kept"); len(kept) != (n+9)/10 {
		b.Fatalf("%d kept keys, want %d", len(kept), (n+9)/10)
	}
	b.ReportMetric(float64(n), "keys")
	b.ReportMetric(elapsed.Seconds(), "seconds")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "keys/s")
	b.ReportMetric(float64(writeBytes()-bytes0)/float64(n), "disk-B/key")
}

// BenchmarkDataKeysLoad is the data keys' part of an unseal: LEDGER_BENCH_LOAD_KEYS keys
// (default 100,000) created by 64 writers, then loaded into a fresh DataKeys b.N times.
func BenchmarkDataKeysLoad(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("LEDGER_BENCH_LOAD_KEYS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	k := testKeyring(b)
	l := openTest(b, b.TempDir())
	d := openDataKeys(b, l, k)
	createKeys(b, d, k, 64, n, func(i int) []string { return []string{fmt.Sprintf("kv.load.p%d", i)} })
	d.Close()
	if b.Failed() {
		return
	}
	b.ResetTimer()
	for range b.N {
		fresh, err := OpenDataKeys(ctx, l.JetStream(), 1)
		if err != nil {
			b.Fatal(err)
		}
		if err := fresh.Load(ctx, k); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, got := fresh.Stats(); got != n {
			b.Fatalf("loaded %d keys, want %d", got, n)
		}
		fresh.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n), "keys")
}
