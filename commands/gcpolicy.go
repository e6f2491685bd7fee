package commands

import (
	"context"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The server's garbage-collector defaults. A server's heap is mostly its views, which live as
// long as it is unsealed, plus short bursts (a checkpoint being written, a large response): Go's
// default (GOGC=100) lets the heap reach twice what is live before collecting, which at 100,000
// secrets was hundreds of megabytes of garbage held as RSS. So, unless the operator set GOGC or
// GOMEMLIMIT (which always win):
//
//   - GOGC=50: the heap grows to 1.5× what is live, for a little more CPU spent collecting;
//   - a soft memory limit of 80% of the container's (cgroup v2 memory.max), when there is one,
//     so the collector works harder near the limit instead of the kernel killing the process.
const (
	defaultGCPercent = 50
	cgroupLimitShare = 0.8
)

// cgroupMemoryMax is the cgroup v2 memory limit file of the process's cgroup.
var cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// GCDefaults applies the defaults above unless getenv names GOGC or GOMEMLIMIT, and returns
// what it set (0 for what it left alone), for the start-up log.
func GCDefaults(getenv func(string) string) (percent int, limit int64) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
		percent = defaultGCPercent
		gcManaged.Store(true)
	}
	if getenv("GOMEMLIMIT") == "" {
		if max := containerMemory(); max > 0 {
			limit = int64(float64(max) * cgroupLimitShare)
			debug.SetMemoryLimit(limit)
		}
	}
	return percent, limit
}

// gcManaged: GCDefaults set GOGC (the operator did not), so unseal may pause the collector.
var gcManaged atomic.Bool

// unsealMemoryShare is the share of the machine's (or container's) memory that the heap may
// reach while the collector is paused for a checkpoint's restore (pauseGC).
const unsealMemoryShare = 0.5

// pauseGC stops the collector while unseal restores the views from a checkpoint and returns
// what starts it again. What a restore allocates is nearly all live (the views) plus the
// checkpoint's sections, which die together at its end; collecting meanwhile marks the
// growing views again and again (GOGC=50: a cycle every time the heap grows by half), and on
// two cores that competed with the restore itself. At 1M secrets, restarts of the same data
// alternated: the restore 0.78–1.24 s paused against 1.36–1.70 s (BENCHMARKS.md, session 22).
// The pause keeps a soft memory limit of unsealMemoryShare of the memory there is (never above
// a limit already set), under which the runtime collects anyway; it applies only when the
// server chose the collector's settings (GCDefaults), never against an operator's GOGC.
func pauseGC() (resume func()) {
	if !gcManaged.Load() {
		return func() {}
	}
	total := containerMemory()
	if total == 0 {
		total = physicalMemory()
	}
	if total == 0 {
		return func() {}
	}
	prevLimit := debug.SetMemoryLimit(-1)
	debug.SetMemoryLimit(min(prevLimit, int64(float64(total)*unsealMemoryShare)))
	prevPercent := debug.SetGCPercent(-1)
	var once sync.Once
	resume = func() {
		once.Do(func() {
			debug.SetGCPercent(prevPercent)
			debug.SetMemoryLimit(prevLimit)
		})
	}
	// A restore takes seconds; a load that waits on JetStream far longer (a cluster electing
	// its leader) must not leave the whole process, the embedded server included, without a
	// collector until then.
	time.AfterFunc(maxGCPause, resume)
	return resume
}

// maxGCPause bounds a pauseGC (a variable for tests).
var maxGCPause = time.Minute

// physicalMemory is the machine's memory in bytes (/proc/meminfo), or 0 when unknown.
func physicalMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil || kb <= 0 {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// containerMemory is the cgroup v2 memory limit in bytes, or 0 when there is none ("max") or it
// cannot be read.
func containerMemory() int64 {
	b, err := os.ReadFile(cgroupMemoryMax)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n == math.MaxInt64 {
		return 0
	}
	return n
}

// When the server goes quiet its heap still holds what the last burst left: garbage up to
// GOGC's share above what is live (the collector only runs when allocation pushes it there,
// or every two minutes), and JetStream's 8 MiB block caches, which expire 10 s after their
// block was last used and then sit in sync.Pools until two more collections. All of it stays
// resident. ReleaseWhenIdle hands it back to the OS once the process has allocated almost
// nothing for a while, in two steps per quiet spell: after idleEarly the garbage (at 100k
// secrets the heap sat ~90 MiB above its idle size for the 14 s the single release used to
// wait), and after idleQuiet, past the block caches' expiry, those too. A busy server never
// pays either; an idle one pays two collections' CPU once per spell.
const (
	idleTick  = 2 * time.Second
	idleEarly = 4 * time.Second
	idleQuiet = 14 * time.Second // longer than JetStream's block cache expiry (10 s)
	// idleAllocs is the allocation per tick below which the process counts as quiet: an
	// unsealed idle server allocates tens of kilobytes a second (timers, heartbeats).
	idleAllocs = 1 << 20
)

// idleWatch decides, from the process's cumulative allocation sampled once per tick, when a
// quiet spell has lasted long enough to release memory: once per stage (quiet durations, in
// increasing order) per spell.
type idleWatch struct {
	stages     []time.Duration
	perTick    uint64
	last       uint64
	quietSince time.Time
	done       int // stages released in this spell
}

// tick records a sample and reports whether to release now.
func (w *idleWatch) tick(now time.Time, allocs uint64) bool {
	busy := allocs-w.last >= w.perTick
	w.last = allocs
	if busy || w.quietSince.IsZero() {
		w.quietSince, w.done = now, 0
		return false
	}
	quiet, released := now.Sub(w.quietSince), false
	for w.done < len(w.stages) && quiet >= w.stages[w.done] {
		w.done++ // a late tick that passes two stages releases once
		released = true
	}
	return released
}

// quietFor is how long the process has been quiet as of the last tick (0 if that tick was busy).
func (w *idleWatch) quietFor(now time.Time) time.Duration {
	if w.quietSince.IsZero() {
		return 0
	}
	return now.Sub(w.quietSince)
}

// ReleaseWhenIdle runs until ctx ends, releasing memory to the OS at the stages of each quiet
// spell (see above).
func ReleaseWhenIdle(ctx context.Context) {
	w := &idleWatch{stages: []time.Duration{idleEarly, idleQuiet}, perTick: idleAllocs}
	t := time.NewTicker(idleTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if w.tick(now, allocatedBytes()) {
				releaseMemory()
				// The collections allocate a little themselves: start the next spell's
				// count from here.
				w.last = allocatedBytes()
			}
		}
	}
}

// allocatedBytes is the process's cumulative heap allocation.
func allocatedBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// releaseMemory collects three times and returns the free pages to the OS: the first
// collection frees the expired block caches' holders, whose cleanups put the buffers in
// their pools; the second moves the pools to their victim caches; the third (FreeOSMemory's)
// frees them and scavenges.
func releaseMemory() {
	runtime.GC()
	time.Sleep(100 * time.Millisecond) // let the cleanups that recycle the buffers run
	runtime.GC()
	debug.FreeOSMemory()
}
