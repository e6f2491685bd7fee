package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/engines/database/dbtest"
	"github.com/ledger-secrets/ledger/ledger"
)

// childEnv, when set to "DIR|ADDR", turns the test binary into a bare Ledger server on DIR
// listening on ADDR, so tests can kill it with SIGKILL and start it again.
const childEnv = "LEDGER_TEST_CHILD_SERVER"

// childSnapshotEnv sets the child server's automatic snapshot interval (a Go duration).
const childSnapshotEnv = "LEDGER_TEST_CHILD_SNAPSHOT_EVERY"

// childInfoEnv, when set, makes the child server log at info level (benchmarks: unseal phases).
const childInfoEnv = "LEDGER_TEST_CHILD_INFO"

// childProfileEnv, when set to a path, makes the child server write a CPU profile of its first
// 12 seconds (or childProfileForEnv, a Go duration) to path.<pid>.
const (
	childProfileEnv    = "LEDGER_TEST_CHILD_CPUPROFILE"
	childProfileForEnv = "LEDGER_TEST_CHILD_CPUPROFILE_FOR"
)

// childProfileFor is how long the child's CPU profile lasts.
func childProfileFor() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(childProfileForEnv)); err == nil && d > 0 {
		return d
	}
	return 12 * time.Second
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		dir, addr, _ := strings.Cut(spec, "|")
		if err := serveChild(dir, addr); err != nil {
			fmt.Fprintln(os.Stderr, "child server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dbtest.Main(m) // runs the tests, then stops the private PostgreSQL if one was started
}

func serveChild(dir, addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	commands.GCDefaults(os.Getenv) // as `ledger server` does
	go commands.ReleaseWhenIdle(ctx)
	if file := os.Getenv(childProfileEnv); file != "" {
		// The first seconds of the process: start, unseal, first reads (benchmarks).
		f, err := os.Create(fmt.Sprintf("%s.%d", file, os.Getpid()))
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		time.AfterFunc(childProfileFor(), func() { pprof.StopCPUProfile(); f.Close() })
	}
	level := slog.LevelWarn
	if os.Getenv(childInfoEnv) != "" {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	started := time.Now()
	prefetch := commands.PrefetchCheckpoint(dir) // as `ledger server` does
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir, Logger: logger})
	if err != nil {
		return err
	}
	opened := time.Since(started)
	opts := commands.Options{Logger: logger, Prefetch: prefetch}
	if every := os.Getenv(childSnapshotEnv); every != "" {
		d, err := time.ParseDuration(every)
		if err != nil {
			return err
		}
		opts.Snapshots.Interval = d
	}
	core, err := commands.New(ctx, l, opts)
	if err != nil {
		return err
	}
	// Listen before saying ready, and say so with this process's pid: a port picked free by the
	// parent may have been taken by another test's server meanwhile, and the parent must never
	// mistake that server for this one.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if err := os.WriteFile(readyFile(dir), []byte(fmt.Sprint(os.Getpid())), 0o600); err != nil {
		return err
	}
	logger.Info("child server listening", "log_open", opened.Round(time.Millisecond),
		"core", (time.Since(started) - opened).Round(time.Millisecond))
	srv := &http.Server{Handler: httpapi.New(core, httpapi.Options{Logger: logger})}
	go srv.Serve(ln)
	<-ctx.Done()
	srv.Shutdown(context.Background())
	core.Close()
	return l.Close()
}

// child is a Ledger server in its own process.
type child struct {
	t    testing.TB
	dir  string
	addr string
	cmd  *exec.Cmd
	// exited is closed when cmd has been waited for.
	exited chan struct{}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startChild(t testing.TB, dir string) *child {
	t.Helper()
	c := &child{t: t, dir: dir, addr: freeAddr(t)}
	c.start()
	t.Cleanup(func() { c.kill() })
	return c
}

// readyFile is where a child server writes its pid once it listens (beside its data dir, not
// in it: tests inspect the data dir).
func readyFile(dir string) string { return filepath.Clean(dir) + ".child-ready" }

func (c *child) start() {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		os.Remove(readyFile(c.dir))
		c.cmd = exec.Command(os.Args[0], "-test.run=^$")
		c.cmd.Env = append(os.Environ(), childEnv+"="+c.dir+"|"+c.addr)
		c.cmd.Stderr = os.Stderr
		if err := c.cmd.Start(); err != nil {
			c.t.Fatal(err)
		}
		exited := make(chan struct{})
		c.exited = exited
		go func(cmd *exec.Cmd) { cmd.Wait(); close(exited) }(c.cmd)
		want := fmt.Sprint(c.cmd.Process.Pid)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				// Most likely the port was taken since it was picked: take another.
				if attempt >= 5 {
					c.t.Fatalf("child server exited before listening on %s, %d times", c.addr, attempt+1)
				}
				c.addr = freeAddr(c.t)
				goto retry
			default:
			}
			if b, err := os.ReadFile(readyFile(c.dir)); err == nil && string(b) == want {
				return
			}
			time.Sleep(2 * time.Millisecond) // benchmarks time the start with this
		}
		c.t.Fatal("child server did not come up within 30s")
	retry:
	}
}

// kill9 stops the server the hard way: no drain, no flush.
func (c *child) kill9() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

func (c *child) kill() {
	if c.cmd == nil {
		return
	}
	select {
	case <-c.exited:
	default:
		c.kill9()
	}
}

func (c *child) url() string { return "http://" + c.addr }

func (c *child) client(token string) *vault.Client {
	c.t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = c.url()
	cfg.MaxRetries = 0
	cl, err := vault.NewClient(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	cl.SetToken(token)
	return cl
}

func healthCode(t *testing.T, base, query string) int {
	t.Helper()
	resp, err := http.Get(base + "/v1/sys/health" + query)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func dataDirFiles(t *testing.T, dir string) []string {
	var files []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

// initUnseal initialises the child with one unseal key, unseals it, and returns the init
// answer and a client holding the root token.
func (c *child) initUnseal() (*vault.InitResponse, *vault.Client) {
	c.t.Helper()
	init, err := c.client("").Sys().Init(&vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.client("").Sys().Unseal(init.Keys[0]); err != nil {
		c.t.Fatal(err)
	}
	return init, c.client(init.RootToken)
}
