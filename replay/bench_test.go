package replay_test

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/projections"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/seal"
	"github.com/ledger-secrets/ledger/replay"
)

// Benchmarks run once each (-benchtime 1x): they build a fixed log, then time one replay,
// save, restore or startup over it, and report rates as metrics. Sizes are bounded;
// LEDGER_BENCH_EVENTS raises the event count of the replay and startup benchmarks (default
// 200k; 1M takes about a minute to build on 2 cores).
//
//	go test -run '^$' -bench . -benchtime 1x ./replay/

func benchEvents() int {
	if n, err := strconv.Atoi(os.Getenv("LEDGER_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 200_000
}

// kvLog builds a log holding a KV mount and n KV writes, appended concurrently in appends of
// per events so the writer group-commits them as it does under load.
func kvLog(b *testing.B, n, per int) *env {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	e := newEnv(b)
	e.append(b, mountEvent(b, "secret/", mountUUID))
	e.fillKV(b, mountUUID, n, per, 4)
	return e
}

// BenchmarkReplay: events/s of a full replay from genesis, decryption included, into the views.
func BenchmarkReplay(b *testing.B) {
	for _, tc := range []struct {
		name string
		per  int
	}{{"appends=256", 256}, {"appends=8", 8}} {
		b.Run(tc.name, func(b *testing.B) {
			n := benchEvents()
			if tc.per < 64 {
				n = min(n, 200_000)
			}
			e := kvLog(b, n, tc.per)
			head, err := e.log.LastSeq(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var st replay.Stats
			cpu0 := cpuTime()
			for range b.N {
				st, err = replay.Replay(context.Background(), e.log, e.kr, newViews(), 0, [32]byte{}, head, nil)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(st.Rate(), "events/s")
			b.ReportMetric(float64(st.Events)*float64(b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
			b.ReportMetric(float64(st.Events), "events")
			b.ReportMetric(float64(head), "batches")
		})
	}
}

// BenchmarkSnapshot: save (cut + seal + encode) and restore (decode + open + load + digest
// check) of the views holding 100k secrets.
func BenchmarkSnapshot(b *testing.B) {
	const secrets = 100_000
	e := kvLog(b, secrets, 512)
	live := projections.NewRunner(e.log, e.kr, newViews()...)
	b.StopTimer()
	if err := live.CatchUp(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	b.Run("save", func(b *testing.B) {
		var data []byte
		for range b.N {
			data, _ = e.snapshotOf(b, live, nil)
		}
		b.ReportMetric(float64(len(data))/(1<<20), "MiB")
		b.ReportMetric(secrets, "secrets")
	})
	data, _ := e.snapshotOf(b, live, nil)
	b.Run("restore", func(b *testing.B) {
		for range b.N {
			f, err := replay.Decode(data)
			if err != nil {
				b.Fatal(err)
			}
			s, err := f.Open(e.kr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Restore(newViews(), replay.RestoreOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(secrets, "secrets")
	})
}

// BenchmarkStartup: from opening views to the first read, over a log of LEDGER_BENCH_EVENTS
// KV writes, replayed from genesis or loaded from a snapshot taken 1,000 events before the end
// plus the tail. Two shapes: every write a new secret (state as large as history: the worst
// case for a snapshot), and 10 writes per secret keeping 3 versions (history 3x the state).
func BenchmarkStartup(b *testing.B) {
	ctx := context.Background()
	n := benchEvents()
	for _, shape := range []string{"new-secrets", "churn"} {
		b.Run(shape, func(b *testing.B) {
			b.StopTimer()
			e := newEnv(b)
			e.append(b, mountEvent(b, "secret/", mountUUID))
			if shape == "churn" {
				e.fillChurn(b, mountUUID, (n-1000)/10, 10, 3)
			} else {
				e.fillKV(b, mountUUID, n-1000, 512, 4)
			}
			store, err := replay.OpenStore(ctx, e.log.JetStream(), 1)
			if err != nil {
				b.Fatal(err)
			}
			live := projections.NewRunner(e.log, e.kr, newViews()...)
			if err := live.CatchUp(ctx); err != nil {
				b.Fatal(err)
			}
			data, cut := e.snapshotOf(b, live, nil)
			if err := store.Put(ctx, replay.AutoName(cut.Seq), data, cut.Seq); err != nil {
				b.Fatal(err)
			}
			for i := range 1000 {
				e.append(b, kvEvent(mountUUID, n+i, 1))
			}
			head, _ := e.log.LastSeq(ctx)
			b.StartTimer()
			for _, tc := range []struct {
				name     string
				skipAuto bool
			}{{"genesis", true}, {"snapshot", false}} {
				b.Run(tc.name, func(b *testing.B) {
					var took time.Duration
					for range b.N {
						t0 := time.Now()
						views := newViews()
						base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, views, replay.BaseOptions{SkipAuto: tc.skipAuto})
						if err != nil {
							b.Fatal(err)
						}
						var from uint64
						var hash [32]byte
						if base != nil {
							from, hash = base.Seq, base.Hash
						}
						if _, err := replay.Replay(ctx, e.log, e.kr, views, from, hash, head, nil); err != nil {
							b.Fatal(err)
						}
						if _, ok := views[2].(*kvview.View).Secret(mountUUID, "app/000007"); !ok {
							b.Fatal("first read found nothing")
						}
						took = time.Since(t0)
					}
					b.ReportMetric(took.Seconds(), "s-to-first-read")
					b.ReportMetric(float64(n), "events")
					b.ReportMetric(float64(len(data))/(1<<20), "snapshot-MiB")
				})
			}
		})
	}
}

// cpuTime is the process's user+system CPU time. The machine is shared: wall-clock rates
// depend on what else runs, so the benchmarks also report per CPU-second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
