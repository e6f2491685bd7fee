package hosttools

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// localKMSModule is the AWS KMS emulator the seal tests run; its version is the one go.mod
// pins with a tool directive, so the build is reproducible and cached.
const localKMSModule = "github.com/nsmithuk/local-kms"

var (
	localKMSOnce sync.Once
	localKMSBin  string
	localKMSErr  error
)

// LocalKMS is a real AWS KMS emulator process (nsmithuk/local-kms) on a fixed loopback port,
// with its key database in a temp dir, so it can be stopped and started again with its keys.
type LocalKMS struct {
	t    testing.TB
	Port int
	Dir  string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
}

// Endpoint is the emulator's URL, for a seal "awskms" endpoint.
func (k *LocalKMS) Endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", k.Port) }

func (k *LocalKMS) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.log.Write(p)
}

// Log is what the emulator printed.
func (k *LocalKMS) Log() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.log.String()
}

// localKMSBinary builds the emulator once per test binary, from the module the main module's
// go.mod pins (go build caches the compile; the link is a second or two).
func localKMSBinary(t testing.TB) string {
	localKMSOnce.Do(func() {
		gomod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			localKMSErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(gomod)))
		dir, err := os.MkdirTemp("", "local-kms-")
		if err != nil {
			localKMSErr = err
			return
		}
		localKMSBin = filepath.Join(dir, "local-kms")
		cmd := exec.Command("go", "build", "-o", localKMSBin, localKMSModule)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			localKMSErr = fmt.Errorf("go build %s: %v\n%s", localKMSModule, err, out)
		}
	})
	if localKMSErr != nil {
		t.Fatalf("hosttools: %v", localKMSErr)
	}
	return localKMSBin
}

// StartLocalKMS builds (once) and starts the emulator on a free loopback port. It is stopped
// when the test ends.
func StartLocalKMS(t testing.TB) *LocalKMS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	k := &LocalKMS{t: t, Port: port, Dir: t.TempDir()}
	k.Start()
	t.Cleanup(k.Stop)
	return k
}

// Start (re)starts the emulator on its port with its key database, and waits until it answers.
func (k *LocalKMS) Start() {
	k.t.Helper()
	bin := localKMSBinary(k.t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", k.Port), "KMS_DATA_PATH="+k.Dir,
		"KMS_SEED_PATH="+filepath.Join(k.Dir, "no-seed.yaml"), "KMS_REGION=us-east-1", "KMS_ACCOUNT_ID=111122223333")
	cmd.Stdout, cmd.Stderr = k, k
	if err := cmd.Start(); err != nil {
		k.t.Fatalf("hosttools: start local-kms: %v", err)
	}
	k.mu.Lock()
	k.cmd = cmd
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		// Any HTTP answer (405 for GET) means it is serving.
		resp, err := http.Get(k.Endpoint())
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-ctx.Done():
			k.t.Fatalf("hosttools: local-kms did not answer on port %d in 30s: %v\n%s", k.Port, err, k.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop kills the emulator (its key database stays for the next Start).
func (k *LocalKMS) Stop() {
	k.mu.Lock()
	cmd := k.cmd
	k.cmd = nil
	k.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}
