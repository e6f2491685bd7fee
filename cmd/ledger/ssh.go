package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// sshCmd is Vault's `vault ssh` in CA mode: sign the local public key with the SSH secrets
// engine, then run the real ssh client with the certificate.
func (a *app) sshCmd() *cobra.Command {
	var mode, role, mountPoint, pubPath, privPath, principals, strict, knownHosts, sshBin string
	cmd := &cobra.Command{
		Use:   "ssh [flags] [USER@]HOST [SSH ARGS...]",
		Short: "Sign your SSH key with a Ledger CA and connect with the certificate",
		Long: `Sign the local public key with the SSH secrets engine (MOUNT/sign/ROLE) and run
ssh with the signed certificate, as "vault ssh -mode=ca" does. The certificate lives in a
temporary file that is removed when ssh exits; the private key never leaves this machine.

  ledger ssh -mode=ca -role=dev-user alice@db.example.com
  ledger ssh -role=dev-user -private-key-path=~/.ssh/work alice@db -p 2222 uptime

Arguments after the host go to ssh unchanged. Only -mode=ca is supported: for one-time
passwords write MOUNT/creds/ROLE ip=HOST and type the key at the password prompt.`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mode != "ca" {
				return usageErr(cmd, fmt.Errorf("-mode=%q is not supported: use -mode=ca (for OTP, write %screds/ROLE ip=HOST)", mode, mountPoint))
			}
			if role == "" {
				return usageErr(cmd, errors.New("-role is required: the SSH role that signs your key (list them with: ledger list "+strings.TrimSuffix(mountPoint, "/")+"/roles)"))
			}
			target := args[0]
			user, _, hasUser := strings.Cut(target, "@")
			if !hasUser {
				user = a.env["USER"]
				if user == "" {
					return usageErr(cmd, errors.New("give the login as USER@HOST ($USER is not set)"))
				}
				target = user + "@" + target
			}
			home := a.env["HOME"]
			expand := func(p string) string {
				if rest, ok := strings.CutPrefix(p, "~/"); ok && home != "" {
					return filepath.Join(home, rest)
				}
				return p
			}
			if privPath == "" {
				privPath = "~/.ssh/id_ed25519"
				if _, err := os.Stat(expand(privPath)); err != nil {
					privPath = "~/.ssh/id_rsa"
				}
			}
			privPath = expand(privPath)
			if pubPath == "" {
				pubPath = privPath + ".pub"
			}
			pubPath = expand(pubPath)
			pub, err := os.ReadFile(pubPath)
			if err != nil {
				return &cliError{op: "reading the public key", err: fmt.Errorf("%w (set -public-key-path, or create a key with ssh-keygen -t ed25519)", err), code: 1}
			}
			if principals == "" {
				principals = user
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			path := strings.TrimSuffix(mountPoint, "/") + "/sign/" + role
			s, err := c.Put(cmd.Context(), path, map[string]any{"public_key": string(pub), "valid_principals": principals, "cert_type": "user"})
			if err != nil {
				return fail("signing the public key at "+path, err)
			}
			signed, _ := s.Data["signed_key"].(string)
			if signed == "" {
				return fail("signing the public key at "+path, errors.New("the answer has no signed_key"))
			}
			f, err := os.CreateTemp("", "ledger-ssh-*-cert.pub")
			if err != nil {
				return fail("storing the certificate", err)
			}
			defer os.Remove(f.Name())
			if _, err := f.WriteString(signed); err != nil {
				f.Close()
				return fail("storing the certificate", err)
			}
			f.Close()
			sshArgs := []string{"-i", privPath, "-o", "CertificateFile=" + f.Name(), "-o", "IdentitiesOnly=yes"}
			if strict != "" {
				sshArgs = append(sshArgs, "-o", "StrictHostKeyChecking="+strict)
			}
			if knownHosts != "" {
				sshArgs = append(sshArgs, "-o", "UserKnownHostsFile="+expand(knownHosts))
			}
			sshArgs = append(sshArgs, target)
			sshArgs = append(sshArgs, args[1:]...)
			run := exec.CommandContext(cmd.Context(), sshBin, sshArgs...)
			run.Stdin, run.Stdout, run.Stderr = a.stdin, a.stdout, a.stderr
			if err := run.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return exitStatus(ee.ExitCode())
				}
				return &cliError{op: "running " + sshBin, err: fmt.Errorf("%w (is OpenSSH's client installed? set -ssh-executable)", err), code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	// Everything after the host belongs to ssh, as with vault ssh.
	f.SetInterspersed(false)
	f.StringVar(&mode, "mode", "ca", "authentication mode; only ca is supported")
	f.StringVar(&role, "role", "", "the SSH role that signs the key (required)")
	f.StringVar(&mountPoint, "mount-point", "ssh/", "where the SSH secrets engine is mounted")
	f.StringVar(&pubPath, "public-key-path", "", "public key to sign (default: the private key's path + .pub)")
	f.StringVar(&privPath, "private-key-path", "", "private key for ssh (default ~/.ssh/id_ed25519, else ~/.ssh/id_rsa)")
	f.StringVar(&principals, "valid-principals", "", "principals to request (default: the login user)")
	f.StringVar(&strict, "strict-host-key-checking", "", "ssh's StrictHostKeyChecking (yes, no, accept-new)")
	f.StringVar(&knownHosts, "user-known-hosts-file", "", "ssh's UserKnownHostsFile")
	f.StringVar(&sshBin, "ssh-executable", "ssh", "the ssh client to run")
	return cmd
}
