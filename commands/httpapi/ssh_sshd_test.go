package httpapi_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"io"
	"net/http"
	"os/user"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	gossh "golang.org/x/crypto/ssh"

	"github.com/ledger-secrets/ledger/engines/hosttools"
)

// sshKeyPair returns a fresh ed25519 key: its OpenSSH private key PEM and authorized_keys line.
func sshKeyPair(t *testing.T) ([]byte, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := gossh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(blk), string(gossh.MarshalAuthorizedKey(pub))
}

func localUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// sshCA mounts ssh/ with a generated ed25519 CA, a user role and a host role, and returns the
// CA's public key as served unauthenticated at ssh/public_key.
func sshCA(t *testing.T, s *testServer, c *vault.Client, login string) string {
	t.Helper()
	if err := c.Sys().Mount("ssh", &vault.MountInput{Type: "ssh"}); err != nil {
		t.Fatal(err)
	}
	ca := pkiWrite(t, c, "ssh/config/ca", map[string]any{"generate_signing_key": true, "key_type": "ssh-ed25519"})
	resp, err := http.Get(s.URL + "/v1/ssh/public_key")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != ca.Data["public_key"] {
		t.Fatalf("public_key (unauthenticated): %d %q", resp.StatusCode, b)
	}
	if _, err := c.Logical().Write("ssh/roles/user", map[string]any{"key_type": "ca", "allow_user_certificates": true,
		"allowed_users": login + ",alice", "default_extensions": map[string]any{"permit-pty": ""},
		"allowed_extensions": "permit-pty,permit-port-forwarding", "allowed_critical_options": "force-command",
		"ttl": "5m", "max_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("ssh/roles/host", map[string]any{"key_type": "ca", "allow_host_certificates": true,
		"allowed_domains": "example.com", "allow_subdomains": true, "ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestSSHCertificatesWithRealSSHD: a user key Ledger signed for the login user logs in to a real
// sshd that trusts ssh/public_key; a certificate for another principal and an expired one are
// refused; the sshd's host certificate, signed by Ledger, is accepted by a client that trusts the
// CA with @cert-authority (and refused by one that trusts another CA).
func TestSSHCertificatesWithRealSSHD(t *testing.T) {
	hosttools.Need(t, "ssh", "openssh-client")
	hosttools.Need(t, "/usr/sbin/sshd", "openssh-server")
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	login := localUser(t)
	caPub := sshCA(t, s, c, login)

	hostPriv, hostPub := sshKeyPair(t)
	hostCert := pkiWrite(t, c, "ssh/sign/host", map[string]any{"public_key": hostPub, "cert_type": "host", "valid_principals": "sshd.example.com"})
	sshd := hosttools.StartSSHD(t, hosttools.SSHDConfig{TrustedUserCAKeys: caPub, HostKey: hostPriv, HostCertificate: str(t, hostCert, "signed_key")})
	dir := t.TempDir()
	knownHosts := writeFile(t, dir, "known_hosts", "@cert-authority *.example.com "+caPub+"\n")

	userPriv, userPub := sshKeyPair(t)
	keyFile := writeFile(t, dir, "id_ed25519", string(userPriv))
	signAs := func(name string, data map[string]any) string {
		r := pkiWrite(t, c, "ssh/sign/user", data)
		signed := str(t, r, "signed_key")
		if !strings.HasPrefix(signed, "ssh-ed25519-cert-v01@openssh.com ") || str(t, r, "serial_number") == "" {
			t.Fatalf("sign answer %v", r.Data)
		}
		return writeFile(t, dir, name, signed)
	}

	good := signAs("good-cert.pub", map[string]any{"public_key": userPub, "valid_principals": login})
	out, err := sshd.SSH(t, login, keyFile, good, knownHosts, "sshd.example.com", "echo", "ledger-ok")
	if err != nil || !strings.Contains(out, "ledger-ok") {
		t.Fatalf("login with a Ledger-signed certificate failed: %v: %s\nsshd: %s", err, out, sshd.Log())
	}

	wrong := signAs("wrong-cert.pub", map[string]any{"public_key": userPub, "valid_principals": "alice"})
	if out, err := sshd.SSH(t, login, keyFile, wrong, knownHosts, "sshd.example.com", "true"); err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("certificate for principal alice logged in as %s: %v: %s", login, err, out)
	}

	expired := signAs("expired-cert.pub", map[string]any{"public_key": userPub, "valid_principals": login, "ttl": "1s"})
	time.Sleep(2100 * time.Millisecond)
	if out, err := sshd.SSH(t, login, keyFile, expired, knownHosts, "sshd.example.com", "true"); err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("expired certificate logged in: %v: %s", err, out)
	}
	if !strings.Contains(sshd.Log(), "expired") && !strings.Contains(sshd.Log(), "not yet valid") {
		t.Logf("sshd did not log the expiry reason: %s", sshd.Log())
	}

	// A client trusting another CA refuses the host certificate.
	_, otherCA := sshKeyPair(t)
	otherKnown := writeFile(t, dir, "other_known_hosts", "@cert-authority *.example.com "+strings.TrimSpace(otherCA)+"\n")
	if out, err := sshd.SSH(t, login, keyFile, good, otherKnown, "sshd.example.com", "true"); err == nil || !strings.Contains(out, "Host key verification failed") {
		t.Fatalf("host certificate accepted by a client that does not trust the CA: %v: %s", err, out)
	}

	// issue/:role: a key pair generated by Ledger logs in too; its private key is returned once.
	iss := pkiWrite(t, c, "ssh/issue/user", map[string]any{"key_type": "ed25519", "valid_principals": login})
	issKey := writeFile(t, dir, "issued", str(t, iss, "private_key"))
	issCert := writeFile(t, dir, "issued-cert.pub", str(t, iss, "signed_key"))
	if out, err := sshd.SSH(t, login, issKey, issCert, knownHosts, "sshd.example.com", "true"); err != nil {
		t.Fatalf("login with an issued key pair: %v: %s", err, out)
	}
}

// TestSSHBadInput: every refused request is a clear 4xx, and nothing is signed.
func TestSSHBadInput(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	login := localUser(t)
	sshCA(t, s, c, login)
	mustWrite(t, c, "ssh/roles/rsa-only", map[string]any{"key_type": "ca", "allow_user_certificates": true, "allowed_users": "*",
		"allowed_user_key_lengths": map[string]any{"rsa": []any{3072, 4096}}})
	_, pub := sshKeyPair(t)
	for _, tc := range []struct {
		name, path string
		data       map[string]any
		want       string
	}{
		{"principal not in allowed_users", "ssh/sign/user", map[string]any{"public_key": pub, "valid_principals": "mallory"}, "mallory is not a valid value for valid_principals"},
		{"one bad principal among good", "ssh/sign/user", map[string]any{"public_key": pub, "valid_principals": login + ",mallory"}, "mallory is not a valid value"},
		{"no principals and no default_user", "ssh/sign/user", map[string]any{"public_key": pub}, "empty valid principals not allowed by role"},
		{"key type not allowed", "ssh/sign/rsa-only", map[string]any{"public_key": pub, "valid_principals": "x"}, "key type ssh-ed25519 is not allowed"},
		{"critical option not allowed", "ssh/sign/user", map[string]any{"public_key": pub, "valid_principals": login, "critical_options": map[string]any{"source-address": "10.0.0.0/8"}}, "critical options not on allowed list: source-address"},
		{"extension not allowed", "ssh/sign/user", map[string]any{"public_key": pub, "valid_principals": login, "extensions": map[string]any{"permit-agent-forwarding": ""}}, "extensions not on allowed list: permit-agent-forwarding"},
		{"host certificate from a user role", "ssh/sign/user", map[string]any{"public_key": pub, "cert_type": "host", "valid_principals": "a.example.com"}, "cert_type 'host' is not allowed by role"},
		{"host principal outside allowed_domains", "ssh/sign/host", map[string]any{"public_key": pub, "cert_type": "host", "valid_principals": "evil.org"}, "evil.org is not a valid value for valid_principals"},
		{"unknown cert_type", "ssh/sign/user", map[string]any{"public_key": pub, "cert_type": "both", "valid_principals": login}, "cert_type must be either 'user' or 'host'"},
		{"malformed public key", "ssh/sign/user", map[string]any{"public_key": "ssh-ed25519 not-base64", "valid_principals": login}, "failed to parse public_key"},
		{"missing public key", "ssh/sign/user", map[string]any{"valid_principals": login}, "missing public_key"},
		{"key_id when the role forbids it", "ssh/sign/user", map[string]any{"public_key": pub, "valid_principals": login, "key_id": "me"}, "setting key_id is not allowed by role"},
		{"unknown role", "ssh/sign/nope", map[string]any{"public_key": pub}, "unknown role: nope"},
		{"CA configured twice", "ssh/config/ca", map[string]any{"generate_signing_key": true}, "keys are already configured"},
		{"role without key_type", "ssh/roles/bad", map[string]any{"allowed_users": "*"}, "missing key_type"},
		{"role with an unknown signer", "ssh/roles/bad", map[string]any{"key_type": "ca", "algorithm_signer": "md5"}, "unknown algorithm_signer"},
		{"role with bad key lengths", "ssh/roles/bad", map[string]any{"key_type": "ca", "allowed_user_key_lengths": map[string]any{"dsa": 1024}}, "unknown key type \"dsa\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Logical().Write(tc.path, tc.data)
			respErr(t, err, http.StatusBadRequest, tc.want)
		})
	}
	// A TTL above the role's max is capped, with a warning.
	r := pkiWrite(t, c, "ssh/sign/user", map[string]any{"public_key": pub, "valid_principals": login, "ttl": "100h"})
	pk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(str(t, r, "signed_key")))
	if err != nil {
		t.Fatal(err)
	}
	cert := pk.(*gossh.Certificate)
	if time.Until(time.Unix(int64(cert.ValidBefore), 0)) > time.Hour+time.Minute || len(r.Warnings) == 0 {
		t.Fatalf("ttl not capped to max_ttl 1h: valid before %v, warnings %v", time.Unix(int64(cert.ValidBefore), 0), r.Warnings)
	}
	if _, ok := cert.Extensions["permit-pty"]; !ok {
		t.Fatalf("default extensions missing: %v", cert.Extensions)
	}
	// Signing needs a token; the public key does not.
	if _, err := s.Client(t, "").Logical().Write("ssh/sign/user", map[string]any{"public_key": pub, "valid_principals": login}); err == nil {
		t.Fatal("signed without a token")
	}
}

// TestSSHOTP: creds/:role hands out a one-time password that verify accepts exactly once.
func TestSSHOTP(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	if err := c.Sys().Mount("ssh", &vault.MountInput{Type: "ssh"}); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, c, "ssh/roles/otp", map[string]any{"key_type": "otp", "default_user": "ubuntu", "cidr_list": "10.0.0.0/8", "exclude_cidr_list": "10.9.0.0/16"})
	cr := pkiWrite(t, c, "ssh/creds/otp", map[string]any{"ip": "10.1.2.3"})
	otp := str(t, cr, "key")
	if cr.Data["key_type"] != "otp" || cr.Data["username"] != "ubuntu" {
		t.Fatalf("creds: %v", cr.Data)
	}
	anon := s.Client(t, "")
	v, err := anon.Logical().Write("ssh/verify", map[string]any{"otp": otp})
	if err != nil || v.Data["username"] != "ubuntu" || v.Data["ip"] != "10.1.2.3" || v.Data["role_name"] != "otp" {
		t.Fatalf("verify: %v %v", err, v)
	}
	_, err = anon.Logical().Write("ssh/verify", map[string]any{"otp": otp})
	respErr(t, err, http.StatusBadRequest, "OTP not found")
	_, err = c.Logical().Write("ssh/creds/otp", map[string]any{"ip": "192.168.1.1"})
	respErr(t, err, http.StatusBadRequest, "IP 192.168.1.1 does not belong to role")
	_, err = c.Logical().Write("ssh/creds/otp", map[string]any{"ip": "10.9.1.1"})
	respErr(t, err, http.StatusBadRequest, "does not belong to role")
	_, err = c.Logical().Write("ssh/creds/otp", map[string]any{"ip": "10.1.1.1", "username": "root"})
	respErr(t, err, http.StatusBadRequest, "username root is not allowed by role")
	verifyOK(t, c, "genesis")
}

func mustWrite(t *testing.T, c *vault.Client, path string, data map[string]any) {
	t.Helper()
	if _, err := c.Logical().Write(path, data); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
