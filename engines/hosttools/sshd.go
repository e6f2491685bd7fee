package hosttools

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// SSHDConfig is what a test sshd trusts and presents.
type SSHDConfig struct {
	TrustedUserCAKeys string // authorized_keys line(s) of the user CA
	HostKey           []byte // OpenSSH private key (PEM)
	HostCertificate   string // optional: the host key's certificate line
}

// SSHD is a real OpenSSH server on a random loopback port, started for one test.
type SSHD struct {
	Port int
	Dir  string
	mu   sync.Mutex
	log  bytes.Buffer
}

// Log is what sshd wrote so far (-e: to stderr), for failure messages.
func (s *SSHD) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *SSHD) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

// StartSSHD runs /usr/sbin/sshd -D -e with a private config in a temp dir: HostKey there,
// TrustedUserCAKeys from cfg, StrictModes no, no passwords, no authorized_keys — so only
// certificates signed by the CA whose principal is the login user get in. It is stopped when the
// test ends.
func StartSSHD(t testing.TB, cfg SSHDConfig) *SSHD {
	t.Helper()
	bin := Need(t, "/usr/sbin/sshd", "openssh-server")
	if os.Geteuid() == 0 {
		// sshd's privilege separation needs this directory; Debian creates it at service
		// start, which a test never runs.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("hosttools: create /run/sshd: %v", err)
		}
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hostKey := write("host_key", cfg.HostKey)
	ca := write("user_ca.pub", []byte(cfg.TrustedUserCAKeys+"\n"))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
TrustedUserCAKeys %s
PidFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile none
PermitRootLogin prohibit-password
LogLevel VERBOSE
`, port, hostKey, ca, filepath.Join(dir, "sshd.pid"))
	if cfg.HostCertificate != "" {
		conf += "HostCertificate " + write("host_key-cert.pub", []byte(cfg.HostCertificate)) + "\n"
	}
	confFile := write("sshd_config", []byte(conf))
	s := &SSHD{Port: port, Dir: dir}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-D", "-e", "-f", confFile)
	cmd.Stdout, cmd.Stderr = s, s
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("hosttools: start sshd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel() // kills the sshd this test started, and only it
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case <-done:
			t.Fatalf("hosttools: sshd exited: %s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hosttools: sshd not listening on %d: %s", port, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SSH runs the real ssh client against the server as user, authenticating with the private key
// file and its certificate file, trusting host keys per knownHosts (a known_hosts file) under
// the name hostAlias, and running command. It returns ssh's combined output.
func (s *SSHD) SSH(t testing.TB, user, keyFile, certFile, knownHosts, hostAlias string, command ...string) (string, error) {
	t.Helper()
	bin := Need(t, "ssh", "openssh-client")
	args := []string{"-F", "/dev/null", "-p", strconv.Itoa(s.Port), "-i", keyFile,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
		"-o", "UserKnownHostsFile=" + knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=" + hostAlias, "-o", "ConnectTimeout=10"}
	if certFile != "" {
		args = append(args, "-o", "CertificateFile="+certFile)
	}
	args = append(args, user+"@127.0.0.1")
	args = append(args, command...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}
