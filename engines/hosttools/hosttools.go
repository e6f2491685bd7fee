// Package hosttools gives tests the host programs they drive (openssl, ssh, sshd), installing
// the Debian package that provides one when it is missing. When a program cannot be had the
// test is skipped — unless CI=true, where a missing dependency is a broken environment and the
// test fails.
package hosttools

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

var installMu sync.Mutex

// Need returns the path of program (a name on PATH or an absolute path), running
// `apt-get install -y pkg` once when it is absent.
func Need(t testing.TB, program, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	installMu.Lock()
	defer installMu.Unlock()
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out []byte
	var err error
	if _, lerr := exec.LookPath("apt-get"); lerr == nil {
		t.Logf("hosttools: %s missing; installing Debian package %s", program, pkg)
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err = cmd.CombinedOutput()
	}
	if p, lerr := exec.LookPath(program); lerr == nil {
		return p
	}
	msg := "hosttools: " + program + " is not installed and installing " + pkg + " did not provide it"
	if err != nil {
		msg += ": " + err.Error() + ": " + string(tail(out))
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: it is required)", msg)
	}
	t.Skip(msg)
	return ""
}

func tail(b []byte) []byte {
	if len(b) > 500 {
		return b[len(b)-500:]
	}
	return b
}
