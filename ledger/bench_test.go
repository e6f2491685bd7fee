package ledger

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const benchWindow = 3 * time.Second

// BenchmarkAppend measures, in one run on one disk: the raw rate of fsync'd JetStream
// publishes (one message per event, SyncAlways, sequential — the per-message fsync ceiling),
// and durable group-commit appends of 512-byte events at 1, 16 and 64 concurrent appenders.
// The ratio appends/s ÷ raw msgs/s is the figure that matters. Run with -benchtime 1x.
func BenchmarkAppend(b *testing.B) {
	payload := make([]byte, 512)
	raw := rawPublishRate(b, payload)
	b.ReportMetric(raw, "raw-fsync-msgs/s")
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("appenders=%d", conc), func(b *testing.B) {
			rate, p50, p99 := appendRate(b, conc, payload)
			b.ReportMetric(rate, "appends/s")
			b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
			b.ReportMetric(rate/raw, "x-raw-fsync")
		})
	}
}

func rawPublishRate(b *testing.B, payload []byte) float64 {
	l := openTest(b, b.TempDir())
	js := l.JetStream()
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	n := 0
	start := time.Now()
	for time.Since(start) < benchWindow {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "raw", Data: payload}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

func appendRate(b *testing.B, conc int, payload []byte) (float64, time.Duration, time.Duration) {
	l := openTest(b, b.TempDir())
	l.SetKeyring(testKeyring(b))
	var wg sync.WaitGroup
	var total atomic.Int64
	lat := make([][]time.Duration, conc)
	deadline := time.Now().Add(benchWindow)
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if _, err := l.Append(context.Background(), []Event{{Type: "bench.v1", Subject: "bench.x", Payload: payload}}); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		b.Fatal("no appends completed")
	}
	return float64(total.Load()) / elapsed.Seconds(), all[len(all)/2], all[len(all)*99/100]
}
