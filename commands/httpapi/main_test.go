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
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir, Logger: logger})
	if err != nil {
		return err
	}
	core, err := commands.New(ctx, l, commands.Options{Logger: logger})
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: httpapi.New(core, httpapi.Options{Logger: logger})}
	go srv.ListenAndServe()
	<-ctx.Done()
	srv.Shutdown(context.Background())
	core.Close()
	return l.Close()
}

// child is a Ledger server in its own process.
type child struct {
	t    *testing.T
	dir  string
	addr string
	cmd  *exec.Cmd
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startChild(t *testing.T, dir string) *child {
	t.Helper()
	c := &child{t: t, dir: dir, addr: freeAddr(t)}
	c.start()
	t.Cleanup(func() { c.kill() })
	return c
}

func (c *child) start() {
	c.t.Helper()
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), childEnv+"="+c.dir+"|"+c.addr)
	c.cmd.Stderr = os.Stderr
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(c.url() + "/v1/sys/seal-status")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("child server did not come up within 30s")
}

// kill9 stops the server the hard way: no drain, no flush.
func (c *child) kill9() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

func (c *child) kill() {
	if c.cmd != nil && c.cmd.ProcessState == nil {
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
