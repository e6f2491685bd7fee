package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/ledger-secrets/ledger/engines/hosttools"
)

func sshKey(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := gossh.NewPublicKey(priv.Public())
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".pub", gossh.MarshalAuthorizedKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub)))
}

// TestE2ESSHCAMode: `ledger ssh -mode=ca -role=… user@host` signs the local key and runs the
// real ssh client, which logs in to a real sshd trusting the Ledger CA.
func TestE2ESSHCAMode(t *testing.T) {
	hosttools.Need(t, "ssh", "openssh-client")
	hosttools.Need(t, "/usr/sbin/sshd", "openssh-server")
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	c.ok("secrets", "enable", "ssh")
	caPub := strings.TrimSpace(c.ok("write", "-field=public_key", "ssh/config/ca", "key_type=ssh-ed25519"))
	c.ok("write", "ssh/roles/dev", "key_type=ca", "allow_user_certificates=true", "allowed_users="+u.Username, "default_extensions=permit-pty=", "ttl=10m")
	c.ok("write", "ssh/roles/hosts", "key_type=ca", "allow_host_certificates=true", "allowed_domains=example.com", "allow_subdomains=true")
	dir := t.TempDir()
	hostKey, hostPub := sshKey(t, dir, "host")
	hostCert := c.ok("write", "-field=signed_key", "ssh/sign/hosts", "cert_type=host", "valid_principals=sshd.example.com", "public_key="+hostPub)
	hostPriv, _ := os.ReadFile(hostKey)
	sshd := hosttools.StartSSHD(t, hosttools.SSHDConfig{TrustedUserCAKeys: caPub, HostKey: hostPriv, HostCertificate: hostCert})
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte("@cert-authority *.example.com "+caPub+"\n"), 0o600)
	userKey, _ := sshKey(t, dir, "id_ed25519")

	r := c.run("ssh", "-mode=ca", "-role=dev", "-private-key-path="+userKey, "-user-known-hosts-file="+kh,
		"-strict-host-key-checking=yes", u.Username+"@127.0.0.1", "-F", "/dev/null", "-p", strconv.Itoa(sshd.Port),
		"-o", "HostKeyAlias=sshd.example.com", "-o", "BatchMode=yes", "echo", "via-ledger-cli")
	if r.code != 0 || !strings.Contains(r.stdout, "via-ledger-cli") {
		t.Fatalf("ledger ssh: %s\nsshd: %s", r, sshd.Log())
	}
	// A login the role does not allow: the signing is refused with the server's message.
	r = c.run("ssh", "-role=dev", "-private-key-path="+userKey, "mallory@127.0.0.1", "true")
	expect(t, r, 2, "mallory is not a valid value for valid_principals")
	expect(t, c.run("ssh", "-mode=otp", "-role=dev", "x@y"), 2, "-mode=\"otp\" is not supported")
	expect(t, c.run("ssh", "x@y"), 2, "-role is required")
}
