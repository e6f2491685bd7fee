package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	vault "github.com/hashicorp/vault/api"
)

// BenchmarkMemoryRestart is issue 10's point 3, on a server in its own process (so the load
// generator's memory is not counted): write new KV v2 secrets at c=16 over loopback HTTP, read
// the server's RSS, then kill -9 it, start it again, unseal, and time the first read. Sizes
// are LEDGER_BENCH_SECRETS (comma-separated cumulative totals, default "100000"); the 1M run
// ("100000,1000000") takes 10–20 minutes on 2 cores and is left to be asked for. The slope
// between two sizes is the memory per additional secret. The kill comes once the server is
// idle, when its checkpoint policy has written a checkpoint (the log quiet, the tail past 100
// batches); a kill right after a burst replays up to 10 s of writes more. RSS is read 15 s after the writes and again once the
// server is idle: no checkpoint due (waitCheckpoint), no background work (waitIdle), and
// idleSettle more, when it has handed its garbage back; likewise after the restart. LEDGER_BENCH_PROFILE_DIR keeps the server's heap
// profile at each size. Run with -benchtime 1x.
func BenchmarkMemoryRestart(b *testing.B) {
	sizes := []int{100_000}
	if env := os.Getenv("LEDGER_BENCH_SECRETS"); env != "" {
		sizes = sizes[:0]
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("LEDGER_BENCH_SECRETS=%q: want comma-separated positive totals", env)
			}
			sizes = append(sizes, n)
		}
	}
	const conc = 16
	dir, keep := b.TempDir(), os.Getenv("LEDGER_BENCH_KEEP")
	if keep != "" {
		dir = keep
	}
	srv := startChild(b, dir)
	c := srv.client("")
	init, root := srv.initUnseal()
	tok := init.RootToken
	if keep != "" {
		// Opt-in only: this throwaway benchmark server's key and root token, kept beside its
		// data (mode 0600) so that BenchmarkUnsealKept can unseal a copy. Never a real key.
		if err := os.WriteFile(dir+".unseal", []byte(init.Keys[0]+"\n"+tok+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	if err := root.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}
	value := []byte(`{"data":{"username":"app","password":"` + strings.Repeat("p", 32) + `"}}`)
	path := func(i int) string { return fmt.Sprintf("%s/v1/secret/data/mem/%07d", srv.url(), i) }
	written, prevRSS := 0, 0.0
	for _, total := range sizes {
		if total <= written {
			continue
		}
		b.Run(fmt.Sprintf("secrets=%d", total), func(b *testing.B) {
			t0 := time.Now()
			from := written
			if err := hammerN(b, conc, total-from, func(i int) error { return do(client, "POST", path(from+i), tok, value) }); err != nil {
				b.Fatal(err)
			}
			written = total
			b.ReportMetric(float64(total-from)/time.Since(t0).Seconds(), "writes/s")
			// Let the background work of the writes settle: the server writes a checkpoint
			// once 1,000 batches were applied since the last, at most one per 10 s, so 15 s
			// after the last write the log's tail past the newest checkpoint is short.
			// LEDGER_BENCH_RSS_TRACE=1 logs the server's RSS once a second while it settles.
			for i := range 15 {
				time.Sleep(time.Second)
				if os.Getenv("LEDGER_BENCH_RSS_TRACE") != "" {
					b.Logf("%2d s after the writes: RSS %.0f MiB", i+1, processRSS(b, srv.cmd.Process.Pid)/(1<<20))
				}
			}
			rss := processRSS(b, srv.cmd.Process.Pid)
			b.ReportMetric(rss/(1<<20), "RSS-MiB")
			if prevRSS > 0 {
				b.ReportMetric((rss-prevRSS)/float64(total-from), "bytes-per-added-secret")
			}
			prevRSS = rss
			// And once the server is idle: its checkpoint policy has nothing left to take
			// (fewer than 100 log sequences past the newest checkpoint; at 1M one takes
			// tens of seconds) and it has had time to hand back what the burst left
			// (commands.ReleaseWhenIdle: 14 s of quiet).
			waitCheckpoint(b, srv.url(), tok, 10*time.Minute)
			waitIdle(b, srv.cmd.Process.Pid, 10*time.Minute)
			time.Sleep(idleSettle)
			b.ReportMetric(processRSS(b, srv.cmd.Process.Pid)/(1<<20), "RSS-idle-MiB")
			if dir := os.Getenv("LEDGER_BENCH_PROFILE_DIR"); dir != "" {
				saveHeapProfile(b, client, srv.url(), tok, "gc=1", fmt.Sprintf("%s/heap-%d.prof", dir, total))
				// The text form ends with the runtime's MemStats: heap, stacks and GC metadata.
				saveHeapProfile(b, client, srv.url(), tok, "debug=1", fmt.Sprintf("%s/heap-%d.txt", dir, total))
			}

			// LEDGER_BENCH_KILL_AFTER (a Go duration) waits that much longer before the kill:
			// past JetStream's first save of its stream state (2:00–2:30 after the server
			// started), a restart no longer re-reads every block written since.
			if d, err := time.ParseDuration(os.Getenv("LEDGER_BENCH_KILL_AFTER")); err == nil && d > 0 {
				time.Sleep(d)
			}
			// How much of JetStream's files the page cache still holds: a restart that finds
			// its log's state file stale re-reads every block (from the disk when evicted).
			b.ReportMetric(100*pageCacheShare(b, filepath.Join(dir, "jetstream")), "jetstream-cached-%")
			// kill -9, start, unseal, first read.
			srv.kill9()
			start := time.Now()
			srv.start()
			up := time.Since(start)
			cpu0 := processCPU(b, srv.cmd.Process.Pid)
			if _, err := c.Sys().Unseal(init.Keys[0]); err != nil {
				b.Fatal(err)
			}
			unsealed := time.Since(start)
			first := waitFirstRead(b, client, path(total/2), tok, start)
			b.ReportMetric((processCPU(b, srv.cmd.Process.Pid) - cpu0).Seconds(), "cpu-s-unseal-to-first-read")
			b.ReportMetric(up.Seconds(), "s-process-up")
			b.ReportMetric((unsealed - up).Seconds(), "s-unseal")
			b.ReportMetric(first.Seconds(), "s-restart-to-first-read")
			b.ReportMetric((first - up).Seconds(), "s-unseal-to-first-read")
			time.Sleep(2 * time.Second)
			b.ReportMetric(processRSS(b, srv.cmd.Process.Pid)/(1<<20), "RSS-after-restart-MiB")
			// Every secret is there after the restart (sampled: reading 1M takes minutes).
			for i := 0; i < total; i += max(1, total/1000) {
				if err := do(client, "GET", path(i), tok, nil); err != nil {
					b.Fatalf("after the restart: %v", err)
				}
			}
			waitCheckpoint(b, srv.url(), tok, 10*time.Minute)
			waitIdle(b, srv.cmd.Process.Pid, 10*time.Minute)
			time.Sleep(idleSettle)
			b.ReportMetric(processRSS(b, srv.cmd.Process.Pid)/(1<<20), "RSS-after-restart-idle-MiB")
		})
	}
}

// BenchmarkUnsealKept times a restart of the data a BenchmarkMemoryRestart run kept
// (LEDGER_BENCH_KEEP=dir keeps the server's data dir there and its unseal key in dir.unseal):
// LEDGER_BENCH_KEPT=dir copies it (as the benchmark's last kill -9 left it, after the
// restarted server had run: not the first kill's state, and restarts of it have been faster
// than the benchmark's own, for reasons not found — BENCHMARKS.md, session 23), starts a
// server on the copy, unseals and reads one secret, so a large restart can be studied again
// and again (with LEDGER_TEST_CHILD_CPUPROFILE, LEDGER_TEST_CHILD_INFO) without writing a
// million secrets each time. Skipped without LEDGER_BENCH_KEPT.
func BenchmarkUnsealKept(b *testing.B) {
	kept := os.Getenv("LEDGER_BENCH_KEPT")
	if kept == "" {
		b.Skip("LEDGER_BENCH_KEPT is not set")
	}
	keyFile, err := os.ReadFile(kept + ".unseal")
	if err != nil {
		b.Fatal(err)
	}
	key, tok, _ := strings.Cut(strings.TrimSpace(string(keyFile)), "\n")
	dir := filepath.Join(b.TempDir(), "data")
	if err := os.CopyFS(dir, os.DirFS(kept)); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{}
	b.ReportMetric(100*pageCacheShare(b, filepath.Join(dir, "jetstream")), "jetstream-cached-%")
	start := time.Now()
	srv := startChild(b, dir)
	up := time.Since(start)
	if _, err := srv.client("").Sys().Unseal(key); err != nil {
		b.Fatal(err)
	}
	unsealed := time.Since(start)
	first := waitFirstRead(b, client, srv.url()+"/v1/secret/data/mem/0000000", tok, start)
	b.ReportMetric(float64(processMinorFaults(b, srv.cmd.Process.Pid)), "minor-faults-to-first-read")
	b.ReportMetric(processCPU(b, srv.cmd.Process.Pid).Seconds(), "cpu-s-to-first-read")
	if os.Getenv(childProfileEnv) != "" {
		time.Sleep(time.Until(start.Add(childProfileFor() + time.Second))) // the child writes its profile then
	}
	b.ReportMetric(up.Seconds(), "s-process-up")
	b.ReportMetric((unsealed - up).Seconds(), "s-unseal")
	b.ReportMetric(first.Seconds(), "s-restart-to-first-read")
}

// waitFirstRead reads url until it answers (every millisecond, for at most 5 minutes after
// start) and returns how long after start it did.
func waitFirstRead(b *testing.B, client *http.Client, url, token string, start time.Time) time.Duration {
	b.Helper()
	for {
		err := do(client, "GET", url, token, nil)
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("no first read 5 minutes after the restart: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

// idleSettle is how long the memory benchmark waits, once the server is idle (no checkpoint due,
// no background work), for it to release memory: its quiet spell (14 s) and a tick or two.
const idleSettle = 20 * time.Second

// waitCheckpoint waits until the server's newest checkpoint is within 100 log sequences of
// what its views applied, so its checkpoint policy takes no more once the log is quiet
// (ledger_checkpoint_seq in sys/metrics).
func waitCheckpoint(tb testing.TB, base, token string, limit time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		cp, applied := checkpointSeqs(tb, base, token)
		if applied-cp < 100 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no checkpoint near the applied position after %s: checkpoint %v, applied %v", limit, cp, applied)
		}
		// Not more often: a scrape allocates most of a megabyte, and the server writes its
		// quiet checkpoint only once it allocates next to nothing.
		time.Sleep(5 * time.Second)
	}
}

// waitIdle waits until process pid has used under 5% of a core for 5 s: its background work
// after the writes or a restart (a checkpoint, the fingerprint backfill, the data-key
// reconciliation: tens of seconds at 1M secrets) is done.
func waitIdle(tb testing.TB, pid int, limit time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		c0 := processCPU(tb, pid)
		time.Sleep(5 * time.Second)
		used := processCPU(tb, pid) - c0
		if used < 250*time.Millisecond {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the server is still busy %s after the writes (%s of CPU in the last 5 s)", limit, used)
		}
	}
}

// saveHeapProfile stores the server's heap profile (sys/pprof/heap?query) in file.
func saveHeapProfile(tb testing.TB, client *http.Client, base, token, query, file string) {
	tb.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/sys/pprof/heap?"+query, nil)
	req.Header.Set("X-Vault-Token", token)
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		tb.Fatal(err)
	}
}

// processCPU is the user+system CPU time process pid has used (/proc/pid/stat), which the
// machine's load does not change the way it changes wall time.
func processCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	f := procStat(tb, pid)
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// processMinorFaults is how many minor page faults process pid has taken (each a first touch
// of memory: on this VM ~12 µs apiece, BENCHMARKS.md session 21).
func processMinorFaults(tb testing.TB, pid int) int64 {
	tb.Helper()
	n, _ := strconv.ParseInt(procStat(tb, pid)[7], 10, 64)
	return n
}

// procStat is /proc/pid/stat's fields after the command name (which is in parentheses and
// may hold spaces): the process state is [0].
func procStat(tb testing.TB, pid int) []string {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
}

// pageCacheShare is the share of the pages of the files under dir that sit in the page cache
// (mincore(2) on a read-only mapping of each), 0 when there are none.
func pageCacheShare(tb testing.TB, dir string) float64 {
	tb.Helper()
	page := int64(os.Getpagesize())
	var resident, total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil // a file removed meanwhile, a directory
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || fi.Size() == 0 {
			return nil
		}
		m, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			return err
		}
		defer syscall.Munmap(m)
		vec := make([]byte, (fi.Size()+page-1)/page)
		if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
			return fmt.Errorf("mincore %s: %w", path, errno)
		}
		for _, v := range vec {
			resident += int64(v & 1)
		}
		total += int64(len(vec))
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if total == 0 {
		return 0
	}
	return float64(resident) / float64(total)
}

// processRSS is the resident set of process pid, in bytes (VmRSS of /proc/pid/status).
func processRSS(tb testing.TB, pid int) float64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb * 1024
		}
	}
	tb.Fatal("no VmRSS in /proc/pid/status")
	return 0
}
