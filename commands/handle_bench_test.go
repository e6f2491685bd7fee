package commands

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
)

// BenchmarkHandleRead measures a KV v2 read through Core.Handle — authentication, ACL, the
// engine, the audit record and its append to LEDGER_AUDIT — without HTTP, from 16 goroutines
// for a fixed window: reads/s, the process's CPU per read and bytes allocated per read. It
// separates the server's own cost of a read from the HTTP path and the load generator, which
// BenchmarkSteadyState (commands/httpapi) measures with them. Run with -benchtime 1x.
func BenchmarkHandleRead(b *testing.B) {
	const conc, window = 16, 3 * time.Second
	ctx := context.Background()
	c, res := newTestCore(b)
	if _, err := c.Handle(ctx, &Request{Op: engines.OpUpdate, Path: "sys/mounts/secret", Token: res.RootToken,
		Data: map[string]any{"type": "kv", "options": map[string]any{"version": "2"}}}); err != nil {
		b.Fatal(err)
	}
	for i := range 256 {
		if _, err := c.Handle(ctx, &Request{Op: engines.OpUpdate, Path: fmt.Sprintf("secret/data/read/%d", i), Token: res.RootToken,
			Data: map[string]any{"data": map[string]any{"username": "app", "password": "pppppppppppppppppppppppppppppppp"}}}); err != nil {
			b.Fatal(err)
		}
	}
	var ops atomic.Int64
	var failed atomic.Value
	var ms0, ms1 runtime.MemStats
	var ru0, ru1 syscall.Rusage
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	deadline := start.Add(window)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				req := &Request{ID: "5a2d0c1e-8f3b-4c6d-9e7a-1b2c3d4e5f60", Op: engines.OpRead, Token: res.RootToken,
					Path: fmt.Sprintf("secret/data/read/%d", (w*31+i)%256), RemoteAddr: "127.0.0.1:40000"}
				if _, err := c.Handle(ctx, req); err != nil {
					failed.Store(err)
					return
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	runtime.ReadMemStats(&ms1)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	n := float64(ops.Load())
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(n/elapsed.Seconds(), "reads/s")
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/read")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/n, "alloc-B/read")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/n, "allocs/read")
}
