package commands

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestGCDefaults(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	oldFile := cgroupMemoryMax
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
		cgroupMemoryMax = oldFile
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
