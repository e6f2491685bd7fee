package commands

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync"
	"testing"
	"time"
	"weak"
)

func TestGCDefaults(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	oldFile := cgroupMemoryMax
	oldManaged := gcManaged.Load()
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
		cgroupMemoryMax = oldFile
		gcManaged.Store(oldManaged)
	})
	dir := t.TempDir()
	cgroupMemoryMax = filepath.Join(dir, "memory.max")
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	// No container limit ("max", or no cgroup file): GOGC only.
	for _, content := range []string{"max\n", ""} {
		if content != "" {
			if err := os.WriteFile(cgroupMemoryMax, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if p, l := GCDefaults(env(nil)); p != defaultGCPercent || l != 0 {
			t.Fatalf("memory.max %q: percent %d, limit %d", content, p, l)
		}
		if got := debug.SetGCPercent(100); got != defaultGCPercent {
			t.Fatalf("GOGC is %d, want %d", got, defaultGCPercent)
		}
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Fatalf("a memory limit %d was set without a container limit", got)
		}
	}

	// A 1 GiB container: a soft limit of 80% of it.
	if err := os.WriteFile(cgroupMemoryMax, []byte("1073741824\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gib := float64(1 << 30)
	want := int64(gib * cgroupLimitShare)
	if p, l := GCDefaults(env(nil)); p != defaultGCPercent || l != want {
		t.Fatalf("percent %d, limit %d, want %d", p, l, want)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != want {
		t.Fatalf("memory limit %d, want %d", got, want)
	}

	// The operator's GOGC and GOMEMLIMIT win: nothing is changed.
	debug.SetGCPercent(100)
	if p, l := GCDefaults(env(map[string]string{"GOGC": "200", "GOMEMLIMIT": "1GiB"})); p != 0 || l != 0 {
		t.Fatalf("overrode the operator: percent %d, limit %d", p, l)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC changed to %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("memory limit changed to %d", got)
	}

	// A malformed file is no limit.
	if err := os.WriteFile(cgroupMemoryMax, []byte("lots"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, l := GCDefaults(env(map[string]string{"GOGC": "100"})); l != 0 {
		t.Fatalf("limit %d from a malformed memory.max", l)
	}
}

// TestPauseGC: while unseal restores a checkpoint the collector is off (no cycle runs however
// much is allocated under the limit), under a soft memory limit of half the container's (or the
// machine's) memory, never above a limit already set; resume puts both back. Not when the
// operator chose GOGC.
func TestPauseGC(t *testing.T) {
	oldPercent := debug.SetGCPercent(defaultGCPercent)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	oldFile, oldManaged := cgroupMemoryMax, gcManaged.Load()
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
		cgroupMemoryMax = oldFile
		gcManaged.Store(oldManaged)
	})
	cgroupMemoryMax = filepath.Join(t.TempDir(), "memory.max")
	if err := os.WriteFile(cgroupMemoryMax, []byte("1073741824\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	settings := func() (int, int64) {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p, debug.SetMemoryLimit(-1)
	}

	gcManaged.Store(false) // the operator set GOGC
	resume := pauseGC()
	if p, l := settings(); p != defaultGCPercent || l != math.MaxInt64 {
		t.Fatalf("operator's GOGC: paused to %d, limit %d; want untouched", p, l)
	}
	resume()

	gcManaged.Store(true)
	for _, tc := range []struct {
		name       string
		prior, got int64
	}{
		{"no limit set", math.MaxInt64, 512 << 20},
		{"a lower limit set", 100 << 20, 100 << 20},
	} {
		debug.SetMemoryLimit(tc.prior)
		resume := pauseGC()
		if p, l := settings(); p != -1 || l != tc.got {
			t.Fatalf("%s: paused GOGC %d, limit %d; want off, %d", tc.name, p, l, tc.got)
		}
		if tc.prior == math.MaxInt64 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			var keep [][]byte
			for i := range 64 << 10 { // 64 MiB in 1 KiB pieces, dropped as it goes
				b := make([]byte, 1024)
				if i%4096 == 0 {
					keep = append(keep[:0], b)
				}
			}
			runtime.ReadMemStats(&after)
			if after.NumGC != before.NumGC {
				t.Fatalf("%d collections while paused", after.NumGC-before.NumGC)
			}
			_ = keep
		}
		resume()
		if p, l := settings(); p != defaultGCPercent || l != tc.prior {
			t.Fatalf("%s: resumed to GOGC %d, limit %d; want %d, %d", tc.name, p, l, defaultGCPercent, tc.prior)
		}
	}

	// No container: half the machine's memory.
	os.Remove(cgroupMemoryMax)
	debug.SetMemoryLimit(math.MaxInt64)
	resume = pauseGC()
	_, l := settings()
	resume()
	if total := physicalMemory(); total <= 0 || l != total/2 {
		t.Fatalf("no container: limit %d, machine %d", l, total)
	}

	// A pause nobody ends ends by itself after maxGCPause; the late resume is then a no-op.
	old := maxGCPause
	maxGCPause = 50 * time.Millisecond
	t.Cleanup(func() { maxGCPause = old })
	resume = pauseGC()
	if p, _ := settings(); p != -1 {
		t.Fatalf("paused GOGC %d", p)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if p, l := settings(); p == defaultGCPercent && l == math.MaxInt64 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pause did not end after maxGCPause")
		}
	}
	debug.SetGCPercent(75) // set meanwhile by someone else: the late resume leaves it
	resume()
	if p, _ := settings(); p != 75 {
		t.Fatalf("a late resume set GOGC to %d", p)
	}
	debug.SetGCPercent(defaultGCPercent)
}

func TestIdleWatch(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	w := &idleWatch{stages: []time.Duration{4 * time.Second, 10 * time.Second}, perTick: 1000}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	allocs := uint64(0)
	step := func(s int, alloc uint64) bool { allocs += alloc; return w.tick(at(s), allocs) }

	// The first sample only starts the count.
	if step(0, 0) {
		t.Fatal("released on the first sample")
	}
	// Busy: every tick allocates more than the threshold.
	for s := 2; s <= 30; s += 2 {
		if step(s, 5000) {
			t.Fatalf("released at %ds while busy", s)
		}
	}
	// Quiet from 32 s (a little allocation below the threshold does not count as busy):
	// released at 4 s and at 10 s of quiet, and not again in the same spell.
	var released []int
	for s := 32; s <= 70; s += 2 {
		if step(s, 10) {
			released = append(released, s)
		}
	}
	if !slices.Equal(released, []int{34, 40}) {
		t.Fatalf("released at %v, want at 34 and 40 s (4 and 10 s after the last busy tick)", released)
	}
	if q := w.quietFor(at(70)); q != 40*time.Second { // since the last busy tick (30 s)
		t.Fatalf("quiet for %v at 70 s, want 40 s", q)
	}
	// Busy again, then quiet: the next spell releases again.
	step(72, 1<<20)
	if q := w.quietFor(at(72)); q != 0 {
		t.Fatalf("quiet for %v right after a busy tick", q)
	}
	released = released[:0]
	for s := 74; s <= 100; s += 2 {
		if step(s, 0) {
			released = append(released, s)
		}
	}
	if !slices.Equal(released, []int{76, 82}) {
		t.Fatalf("second spell released at %v, want at 76 and 82 s", released)
	}
	// Busy after a spell's first stage: the count starts over, and a late tick (a stalled
	// process) that passes both stages at once releases once.
	step(84, 1<<20)
	released = released[:0]
	for _, s := range []int{86, 96, 98, 110} {
		if step(s, 0) {
			released = append(released, s)
		}
	}
	if !slices.Equal(released, []int{96}) {
		t.Fatalf("third spell released at %v, want once at 96 s", released)
	}
}

// TestReleaseMemoryFreesPooledBuffers mimics JetStream's block caches: a buffer whose holder,
// once unreachable, hands it to a sync.Pool from a cleanup. After releaseMemory the buffer is
// gone (one collection, or FreeOSMemory alone, leaves it in the pool), and the heap's free
// pages are back with the OS.
func TestReleaseMemoryFreesPooledBuffers(t *testing.T) {
	const size = 8 << 20
	var pool sync.Pool
	holder := &struct{ buf []byte }{buf: make([]byte, size)}
	arr := (*[size]byte)(holder.buf)
	gone := weak.Make(arr)
	runtime.AddCleanup(holder, func(b []byte) { pool.Put((*[size]byte)(b)) }, holder.buf)
	holder, arr = nil, nil
	_ = holder

	releaseMemory()
	if gone.Value() != nil {
		t.Fatal("the pooled buffer survived releaseMemory")
	}
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	if free := s[0].Value.Uint64(); free >= size {
		t.Fatalf("%d bytes of free heap still resident after releaseMemory", free)
	}
}
