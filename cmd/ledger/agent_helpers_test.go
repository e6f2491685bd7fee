package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/ledger"
)

// envRunMain makes the test binary run the ledger command line instead of
// the tests: the agent tests start the agent as a real, separate process
// (signals, exit codes, its own consul-template globals) without a build.
const envRunMain = "LEDGER_TEST_RUN_MAIN"

// runMainIfAsked is called first thing in TestMain.
func runMainIfAsked() {
	if os.Getenv(envRunMain) == "1" {
		os.Exit(run(os.Args[1:], environ(os.Environ()), os.Stdin, os.Stdout, os.Stderr))
	}
}

// restartable is a real (non-dev) server on a fixed loopback address and
// data directory, so a test can stop it and start it again, sealed, as an
// operator's restart does.
type restartable struct {
	t         testing.TB
	dir, addr string
	root      string
	key       []byte
	mu        sync.Mutex
	srv       *server
}

func startRestartable(t testing.TB) *restartable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &restartable{t: t, dir: t.TempDir(), addr: ln.Addr().String()}
	ctx := context.Background()
	s, err := startServer(ctx, newLogger(io.Discard, "error"), ledger.Options{Dir: r.dir}, commands.Options{}, "", []listenerSpec{{alreadyListening: ln}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.core.Init(ctx, commands.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.core.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	r.root, r.key, r.srv = res.RootToken, res.Keys[0], s
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) url() string { return "http://" + r.addr }

func (r *restartable) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		r.srv.close(context.Background())
		r.srv = nil
	}
}

// restart stops the server, keeps it down for down, starts it on the same
// address and directory, and unseals it.
func (r *restartable) restart(down time.Duration) {
	r.t.Helper()
	r.stop()
	time.Sleep(down)
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("listen again on %s: %v", r.addr, err)
	}
	ctx := context.Background()
	s, err := startServer(ctx, newLogger(io.Discard, "error"), ledger.Options{Dir: r.dir}, commands.Options{}, "", []listenerSpec{{alreadyListening: ln}})
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := s.core.Unseal(ctx, r.key); err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.srv = s
	r.mu.Unlock()
}

func (r *restartable) cli(t *testing.T) *cli {
	return &cli{t: t, addr: r.url(), token: r.root, home: t.TempDir()}
}

// agentProc is a `ledger agent` process.
type agentProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	code int
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAgent runs `ledger agent` with args in its own process.
func startAgent(t testing.TB, env []string, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"agent"}, args...)...)
	cmd.Env = append(append(os.Environ(), envRunMain+"=1", "VAULT_TOKEN=", "LEDGER_TOKEN="), env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{t: t, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() || os.Getenv("LEDGER_AGENT_TEST_LOG") != "" {
			t.Logf("agent output:\n%s", out.String())
		}
	})
	return p
}

func (p *agentProc) signal(s os.Signal) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(s)
	}
}

// wait returns the agent's exit code, failing the test after d.
func (p *agentProc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		p.t.Fatalf("agent still running after %s; output:\n%s", d, p.out.String())
		return 0
	}
}

// eventually polls cond every 50 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, d)
}

// envFile parses KEY=VALUE lines.
func envFile(path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			out[k] = v
		}
	}
	return out
}

// writeFile writes a file in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// approleFor sets up an AppRole whose tokens carry policy, and writes its
// role ID and a secret ID to files in dir.
func approleFor(t *testing.T, c *cli, dir, role, policy string, extra ...string) (roleIDFile, secretIDFile string) {
	t.Helper()
	if !strings.Contains(c.ok("auth", "list"), "approle/") {
		c.ok("auth", "enable", "approle")
	}
	polFile := writeFile(t, dir, role+"-policy.hcl", policy, 0o600)
	c.ok("policy", "write", role, polFile)
	c.ok(append([]string{"write", "auth/approle/role/" + role, "token_policies=" + role}, extra...)...)
	roleID := strings.TrimSpace(c.ok("read", "-field=role_id", "auth/approle/role/"+role+"/role-id"))
	secretID := strings.TrimSpace(c.ok("write", "-f", "-field=secret_id", "auth/approle/role/"+role+"/secret-id"))
	return writeFile(t, dir, role+"-role-id", roleID, 0o600), writeFile(t, dir, role+"-secret-id", secretID, 0o600)
}

// agentHealth reads the agent's health endpoint.
func agentHealth(addr string) (int, map[string]any) {
	resp, err := http.Get("http://" + addr + "/agent/v1/health")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// needTool makes sure a command-line tool the test uses is installed,
// installing its Debian package when missing (as root, idempotently).
func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	if out, err := exec.Command("apt-get", "install", "-y", "-q", pkg).CombinedOutput(); err != nil {
		t.Fatalf("%s is missing and installing %s failed: %v\n%s", tool, pkg, err, out)
	}
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatal(fmt.Errorf("%s still missing after installing %s", tool, pkg))
	}
}
