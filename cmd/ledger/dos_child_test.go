package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this file run a real `ledger server` binary, built without the race detector,
// in its own process: what they measure (the server's peak memory, what its data directory
// holds, when it closes a connection) belongs to that process alone.

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// ledgerBinary builds cmd/ledger once per test run.
func ledgerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ledger-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "ledger")
		cmd := exec.Command("go", "build", "-o", builtBin, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// childServer is a configured (not dev) ledger server process, initialised and unsealed, with
// KV v2 at secret/.
type childServer struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string // http://host:port
	dataDir string
	root    string
	stderr  *syncBuffer
}

// startChildServer writes a config with the extra listener lines and starts the binary on it.
func startChildServer(t *testing.T, listenerExtra string) *childServer {
	t.Helper()
	bin := ledgerBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostPort := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ledger.hcl")
	data := filepath.Join(dir, "data")
	src := fmt.Sprintf("storage \"jetstream\" { path = %q }\nlistener \"tcp\" {\n  address = %q\n  tls_disable = true\n%s\n}\nlog_level = \"warn\"\n",
		data, hostPort, listenerExtra)
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &childServer{t: t, addr: "http://" + hostPort, dataDir: data, stderr: &syncBuffer{}}
	s.cmd = exec.Command(bin, "server", "-config", cfg)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		if t.Failed() {
			t.Logf("server stderr:\n%s", s.stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.addr + "/v1/sys/seal-status")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up in 30s: %v\n%s", err, s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var init struct {
		Keys      []string `json:"keys_base64"`
		RootToken string   `json:"root_token"`
	}
	s.call(http.MethodPut, "sys/init", "", `{"secret_shares":1,"secret_threshold":1}`, &init)
	s.call(http.MethodPut, "sys/unseal", "", `{"key":"`+init.Keys[0]+`"}`, nil)
	s.root = init.RootToken
	s.call(http.MethodPost, "sys/mounts/secret", s.root, `{"type":"kv","options":{"version":"2"}}`, nil)
	return s
}

// call makes a request that must succeed.
func (s *childServer) call(method, path, token, body string, out any) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.addr+"/v1/"+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// peakRSS is the server process's VmHWM in bytes.
func (s *childServer) peakRSS() int64 {
	s.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				s.t.Fatal(err)
			}
			return kb << 10
		}
	}
	s.t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// streamBytes is what the named JetStream stream's message blocks hold on disk.
func (s *childServer) streamBytes(name string) int64 {
	var n int64
	filepath.Walk(s.dataDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.HasSuffix(p, ".blk") && strings.Contains(p, string(filepath.Separator)+name+string(filepath.Separator)) {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// manyKeys is a KV write body of n keys: {"data":{"k0":"v",…}}.
func manyKeys(n int) []byte {
	var b bytes.Buffer
	b.Grow(n * 16)
	b.WriteString(`{"data":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":"v"`, i)
	}
	b.WriteString(`}}`)
	return b.Bytes()
}
