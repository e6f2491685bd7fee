package main

import (
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
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// sealServer is a configured `ledger server` process whose seal stanzas a test rewrites
// between restarts, on one data directory and one port, so restarts, kill -9 and migrations
// happen to a real process.
type sealServer struct {
	t       *testing.T
	dir     string
	addr    string // host:port
	env     []string
	cmd     *exec.Cmd
	stderr  *syncBuffer
	sealHCL string
}

func newSealServer(t *testing.T, sealHCL string, env ...string) *sealServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &sealServer{t: t, dir: t.TempDir(), addr: addr, sealHCL: sealHCL,
		env: append([]string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
			"AWS_EC2_METADATA_DISABLED=true", "LEDGER_SEAL_RETRY_MAX=1s", "LEDGER_SEAL_CALL_TIMEOUT=3s"}, env...)}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("server stderr:\n%s", s.stderr)
		}
	})
	return s
}

func (s *sealServer) writeConfig() {
	src := fmt.Sprintf("storage \"jetstream\" { path = %q }\nlistener \"tcp\" {\n  address = %q\n  tls_disable = true\n}\nlog_level = \"info\"\n%s\n",
		filepath.Join(s.dir, "data"), s.addr, s.sealHCL)
	if err := os.WriteFile(filepath.Join(s.dir, "ledger.hcl"), []byte(src), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// start runs the server and waits until it answers sys/seal-status.
func (s *sealServer) start() {
	s.t.Helper()
	s.writeConfig()
	if s.stderr == nil {
		s.stderr = &syncBuffer{}
	}
	cmd := exec.Command(ledgerBinary(s.t), "server", "-config", filepath.Join(s.dir, "ledger.hcl"))
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stderr, cmd.Stdout = s.stderr, io.Discard
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + s.addr + "/v1/sys/seal-status")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server did not come up in 60s: %v\n%s", err, s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run starts the server expecting it to exit at once (a config it refuses); it returns stderr.
func (s *sealServer) runExpectingExit() string {
	s.t.Helper()
	s.writeConfig()
	cmd := exec.Command(ledgerBinary(s.t), "server", "-config", filepath.Join(s.dir, "ledger.hcl"))
	cmd.Env = append(os.Environ(), s.env...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		s.t.Fatalf("server with a bad config kept running:\n%s", out)
	}
	if err == nil {
		s.t.Fatalf("server with a bad config exited 0:\n%s", out)
	}
	return string(out)
}

// stop ends the server with SIGTERM (a clean shutdown).
func (s *sealServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	s.cmd = nil
}

// kill ends the server with SIGKILL.
func (s *sealServer) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

func (s *sealServer) restart(sealHCL string) {
	s.t.Helper()
	s.stop()
	s.sealHCL = sealHCL
	s.start()
}

func (s *sealServer) client(token string) *vault.Client {
	s.t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = "http://" + s.addr
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// raw makes a request and returns the status and body.
func (s *sealServer) raw(method, path, token, body string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, "http://"+s.addr+"/v1/"+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type sealStatusBody struct {
	Type           string `json:"type"`
	Initialized    bool   `json:"initialized"`
	Sealed         bool   `json:"sealed"`
	T              int    `json:"t"`
	N              int    `json:"n"`
	Progress       int    `json:"progress"`
	Migration      bool   `json:"migration"`
	RecoverySeal   bool   `json:"recovery_seal"`
	RecoveryEscrow *bool  `json:"recovery_escrow"`
}

func (s *sealServer) status() sealStatusBody {
	s.t.Helper()
	code, body := s.raw(http.MethodGet, "sys/seal-status", "", "")
	if code != http.StatusOK {
		s.t.Fatalf("seal-status: %d %s", code, body)
	}
	var st sealStatusBody
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		s.t.Fatal(err)
	}
	return st
}

// waitSealed polls until the server reports sealed == want, or fails after d.
func (s *sealServer) waitSealed(want bool, d time.Duration) sealStatusBody {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := s.status()
		if st.Sealed == want {
			return st
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server sealed=%v after %s, want %v; status %+v\n%s", st.Sealed, d, want, st, s.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unsealWith posts keys to sys/unseal with extra flags ("migrate", "recovery"); it returns the
// last answer's status and body.
func (s *sealServer) unsealWith(keys []string, flags string) (int, string) {
	s.t.Helper()
	var code int
	var body string
	for _, k := range keys {
		code, body = s.raw(http.MethodPut, "sys/unseal", "", `{"key":"`+k+`"`+flags+`}`)
		if code != http.StatusOK {
			return code, body
		}
	}
	return code, body
}

// writeSecrets writes n KV v2 secrets (mounting secret/ first when asked) and returns them.
func writeSecrets(t *testing.T, c *vault.Client, mount bool, n int) map[string]string {
	t.Helper()
	ctx := context.Background()
	if mount {
		if err := c.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{}
	for i := range n {
		path, val := fmt.Sprintf("app/s%d", i), fmt.Sprintf("value-%d-%d", i, time.Now().UnixNano())
		if _, err := c.KVv2("secret").Put(ctx, path, map[string]any{"v": val}); err != nil {
			t.Fatal(err)
		}
		want[path] = val
	}
	return want
}

// checkSecrets reads every secret back.
func checkSecrets(t *testing.T, c *vault.Client, want map[string]string) {
	t.Helper()
	for path, val := range want {
		s, err := c.KVv2("secret").Get(context.Background(), path)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		if got := s.Data["v"]; got != val {
			t.Fatalf("read %s: got %v, want %s", path, got, val)
		}
	}
}

func mustJSON(t *testing.T, body string, out any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), out); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
}
