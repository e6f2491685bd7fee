package commands

import (
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
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
	}
	if getenv("GOMEMLIMIT") == "" {
		if max := containerMemory(); max > 0 {
			limit = int64(float64(max) * cgroupLimitShare)
			debug.SetMemoryLimit(limit)
		}
	}
	return percent, limit
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
