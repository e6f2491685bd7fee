package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAuditSIGHUPReopensFiles: after logrotate moves the audit file away and sends SIGHUP, the
// device writes to a new file at the configured path.
func TestAuditSIGHUPReopensFiles(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	d, err := startDev(context.Background(), &logs, devOptions{Listener: ln, LogLevel: "info"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reopenAuditOnSIGHUP(ctx, d.core, d.logger)

	c := &cli{t: t, addr: withScheme(d.Addr), token: d.RootToken, home: t.TempDir()}
	path := filepath.Join(t.TempDir(), "audit.log")
	c.ok("audit", "enable", "file", "file_path="+path)
	c.ok("kv", "put", "secret/rot/a", "k=v")
	waitFile := func(p, needle string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), needle) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never held %q", p, needle)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFile(path, "secret/data/rot/a")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "SIGHUP: reopening audit device files") {
		if time.Now().After(deadline) {
			t.Fatalf("no SIGHUP handling in the log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.ok("kv", "put", "secret/rot/b", "k=v")
	waitFile(path, "secret/data/rot/b")
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "secret/data/rot/a") {
		t.Fatal("the new file repeats what the rotated one holds")
	}
	if b, _ := os.ReadFile(path + ".1"); strings.Contains(string(b), "secret/data/rot/b") {
		t.Fatal("the device kept writing to the rotated file")
	}
}
