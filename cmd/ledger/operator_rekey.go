package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/spf13/cobra"

	"github.com/ledger-secrets/ledger/commands"
)

// rekeyUpdateOut is sys/rekey/update's answer; Complete tells which shape it is.
type rekeyUpdateOut struct {
	commands.RekeyStatus
	Complete bool     `json:"complete"`
	Keys     []string `json:"keys"`
	KeysB64  []string `json:"keys_base64"`
}

type rekeyVerifyOut struct {
	commands.RekeyVerifyStatus
	Complete bool `json:"complete"`
}

func (a *app) operatorRekeyCmd() *cobra.Command {
	var (
		initFlag, cancel, status, verify, backup, backupRetrieve, backupDelete bool
		shares, threshold                                                      int
		pgpKeys, nonce, target                                                 string
	)
	cmd := &cobra.Command{
		Use:   "rekey [KEY]",
		Short: "Generate new unseal keys (or recovery keys) from a quorum of the current ones",
		Long: `Generate a new set of unseal keys, optionally with a new number of shares and
threshold. The server stays unsealed; the old keys stop working once the new
ones are in force.

  1. One holder starts:           ledger operator rekey -init -key-shares=5 -key-threshold=3
  2. Each current holder enters:  ledger operator rekey      (prompts without echo)
  3. With the threshold reached the new keys are printed once: hand them out.

-verify with -init holds the new keys back until a threshold of them is entered
again with "ledger operator rekey -verify". -pgp-keys encrypts each new key to
its holder's PGP public key (comma-separated files: binary, base64 or armored);
-backup also keeps those ciphertexts on the server (-backup-retrieve,
-backup-delete). -target=recovery rekeys the recovery keys of an auto-sealed
server instead.`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			base := "sys/rekey"
			switch target {
			case "barrier", "":
			case "recovery":
				base = "sys/rekey-recovery-key"
			default:
				return usageErr(cmd, fmt.Errorf("-target must be barrier or recovery, got %q", target))
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			switch {
			case backupRetrieve || backupDelete:
				path := "sys/rekey/backup"
				if target == "recovery" {
					path = "sys/rekey/recovery-key-backup"
				}
				if backupDelete {
					if _, err := c.Delete(ctx, path); err != nil {
						return fail("deleting the rekey backup", err)
					}
					p.Println("Success! Deleted the backed-up keys (if there were any).")
					return nil
				}
				s, err := c.Get(ctx, path, nil)
				if err != nil {
					return fail("reading the rekey backup", err)
				}
				if s == nil {
					return &cliError{op: "reading the rekey backup", err: fmt.Errorf("no backed-up keys"), code: 2}
				}
				return p.Secret(s)
			case initFlag:
				if len(args) > 0 {
					return usageErr(cmd, fmt.Errorf("-init takes no key"))
				}
				keys, err := readPGPKeyFiles(pgpKeys)
				if err != nil {
					return &cliError{op: "reading -pgp-keys", err: err, code: 1}
				}
				body := map[string]any{"secret_shares": shares, "secret_threshold": threshold,
					"pgp_keys": keys, "backup": backup, "require_verification": verify}
				var st commands.RekeyStatus
				if err := c.Call(ctx, http.MethodPut, base+"/init", body, &st); err != nil {
					return fail("starting the rekey", err)
				}
				return printRekeyStatus(p, st)
			case cancel:
				path := base + "/init"
				if verify {
					path = base + "/verify"
				}
				if err := c.Call(ctx, http.MethodDelete, path, nil, nil); err != nil {
					return fail("cancelling the rekey", err)
				}
				if verify {
					p.Println("Success! Rekey verification canceled: enter the new keys again with the new verification nonce (ledger operator rekey -verify -status).")
				} else {
					p.Println("Success! Canceled rekeying (if it was started)")
				}
				return nil
			case status && verify:
				var st rekeyVerifyOut
				if err := c.Call(ctx, http.MethodGet, base+"/verify", nil, &st); err != nil {
					return fail("reading the rekey verification status", err)
				}
				return printVerifyStatus(p, st)
			case status:
				var st commands.RekeyStatus
				if err := c.Call(ctx, http.MethodGet, base+"/init", nil, &st); err != nil {
					return fail("reading the rekey status", err)
				}
				return printRekeyStatus(p, st)
			}
			// Entering one key: read the attempt first, so a missing one is said plainly
			// before anyone types a key (and the nonce need not be typed).
			var started commands.RekeyStatus
			if verify && nonce == "" {
				var st rekeyVerifyOut
				if err := c.Call(ctx, http.MethodGet, base+"/verify", nil, &st); err != nil {
					return fail("reading the rekey verification status", err)
				}
				nonce = st.Nonce
			} else if !verify {
				if err := c.Call(ctx, http.MethodGet, base+"/init", nil, &started); err != nil {
					return fail("reading the rekey status", err)
				}
				if !started.Started {
					return &cliError{op: "entering a key", err: fmt.Errorf("no rekey is in progress"), code: 2,
						hint: "start one with: ledger operator rekey -init -key-shares=N -key-threshold=T"}
				}
				if nonce == "" {
					nonce = started.Nonce
				}
			}
			key, err := a.keyArg(args, "Key (will be hidden): ")
			if err != nil {
				return err
			}
			body := map[string]string{"key": key, "nonce": nonce}
			if verify {
				var st rekeyVerifyOut
				if err := c.Call(ctx, http.MethodPut, base+"/verify", body, &st); err != nil {
					return fail("verifying the new key", err)
				}
				if !st.Complete {
					return printVerifyStatus(p, st)
				}
				p.Println("Success! Rekey verification was successful. The rekey operation is complete and the new keys are now active.")
				return nil
			}
			var up rekeyUpdateOut
			if err := c.Call(ctx, http.MethodPut, base+"/update", body, &up); err != nil {
				return fail("entering the key", err)
			}
			if !up.Complete {
				return printRekeyStatus(p, up.RekeyStatus)
			}
			// The final answer carries no split; the attempt said it.
			up.N, up.T = len(up.KeysB64), started.T
			if p.format != formatTable {
				return p.Structured(up)
			}
			fmt.Fprint(a.stdout, rekeyKeysText(up, target == "recovery"))
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&initFlag, "init", false, "start a rekey (with -key-shares, -key-threshold, -pgp-keys, -backup, -verify)")
	f.BoolVar(&cancel, "cancel", false, "cancel the rekey in progress (with -verify: restart the verification only)")
	f.BoolVar(&status, "status", false, "print the status of the rekey in progress")
	f.BoolVar(&verify, "verify", false, "with -init: require verification of the new keys; otherwise enter a new key to verify it")
	f.BoolVar(&backup, "backup", false, "with -init and -pgp-keys: keep the encrypted new keys on the server")
	f.BoolVar(&backupRetrieve, "backup-retrieve", false, "print the backed-up encrypted keys (needs a sudo token)")
	f.BoolVar(&backupDelete, "backup-delete", false, "delete the backed-up encrypted keys (needs a sudo token)")
	f.IntVar(&shares, "key-shares", 5, "number of new key shares")
	f.IntVar(&threshold, "key-threshold", 3, "number of new shares needed to unseal")
	f.StringVar(&pgpKeys, "pgp-keys", "", "comma-separated files with PGP public keys, one per new share, in order")
	f.StringVar(&nonce, "nonce", "", "nonce of the rekey (or verification) attempt; read from the server when empty")
	f.StringVar(&target, "target", "barrier", "barrier (unseal keys) or recovery (recovery keys of an auto-seal)")
	return cmd
}

// keyArg is the key given as the argument ("-" reads stdin) or typed without echo.
func (a *app) keyArg(args []string, prompt string) (string, error) {
	var key string
	var err error
	if len(args) == 1 && args[0] != "-" {
		key = strings.TrimSpace(args[0])
	} else if key, err = a.readHidden(prompt); err != nil {
		return "", &cliError{op: "reading the key", err: err, code: 1}
	}
	if key == "" {
		return "", &cliError{op: "reading the key", err: fmt.Errorf("the key is empty"), code: 1}
	}
	return key, nil
}

func printRekeyStatus(p *printer, st commands.RekeyStatus) error {
	if p.format != formatTable {
		return p.Structured(st)
	}
	rows := [][2]string{
		{"Nonce", st.Nonce},
		{"Started", fmt.Sprint(st.Started)},
		{"Rekey Progress", fmt.Sprintf("%d/%d", st.Progress, st.Required)},
		{"New Shares", fmt.Sprint(st.N)},
		{"New Threshold", fmt.Sprint(st.T)},
		{"Verification Required", fmt.Sprint(st.VerificationRequired)},
	}
	if st.VerificationNonce != "" {
		rows = append(rows, [2]string{"Verification Nonce", st.VerificationNonce})
	}
	if len(st.PGPFingerprints) > 0 {
		rows = append(rows, [2]string{"PGP Fingerprints", strings.Join(st.PGPFingerprints, ", ")}, [2]string{"Backup", fmt.Sprint(st.Backup)})
	}
	return p.KeyValue(rows)
}

func printVerifyStatus(p *printer, st rekeyVerifyOut) error {
	if p.format != formatTable {
		return p.Structured(st)
	}
	return p.KeyValue([][2]string{
		{"Started", fmt.Sprint(st.Started)},
		{"New Shares", fmt.Sprint(st.N)},
		{"New Threshold", fmt.Sprint(st.T)},
		{"Verification Nonce", st.Nonce},
		{"Verification Progress", fmt.Sprintf("%d/%d", st.Progress, st.T)},
	})
}

func rekeyKeysText(up rekeyUpdateOut, recovery bool) string {
	kind := "unseal"
	if recovery {
		kind = "recovery"
	}
	var b strings.Builder
	for i, k := range up.KeysB64 {
		if len(up.PGPFingerprints) == len(up.KeysB64) {
			fmt.Fprintf(&b, "Key %d fingerprint: %s; value: %s\n", i+1, up.PGPFingerprints[i], k)
		} else {
			fmt.Fprintf(&b, "Key %d: %s\n", i+1, k)
		}
	}
	fmt.Fprintf(&b, "\nOperation nonce: %s\n\n", up.Nonce)
	switch {
	case up.VerificationRequired:
		fmt.Fprintf(&b, `The new %s keys are NOT in force yet: the old ones still are. Hand the keys
out, then have %d of their holders enter them with:

    ledger operator rekey -verify -nonce=%s

The rekey completes when %d new keys verify. Cancelling (ledger operator rekey
-cancel) throws the new keys away.
`, kind, up.T, up.VerificationNonce, up.T)
	default:
		fmt.Fprintf(&b, `Ledger %s keys rekeyed with %d key shares and a key threshold of %d. The
old keys no longer work. Give each key above to a different holder: when the
server is sealed, restarted or stopped, %d of these keys unseal it.
`, kind, up.N, up.T, up.T)
	}
	if up.Backup {
		b.WriteString("\nThe encrypted keys are also backed up on the server: ledger operator rekey -backup-retrieve.\n")
	}
	return b.String()
}

// readPGPKeyFiles reads -pgp-keys: comma-separated files holding a public key as binary,
// base64 or ASCII armor; each is sent as the base64 of its binary form, as Vault's API takes
// it. keybase: entries are passed on for the server to refuse with its explanation.
func readPGPKeyFiles(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if strings.HasPrefix(name, "keybase:") {
			out = append(out, name)
			continue
		}
		k, err := readPGPKeyFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func readPGPKeyFile(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	text := bytes.TrimSpace(b)
	if blk, err := armor.Decode(bytes.NewReader(text)); err == nil {
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(blk.Body); err != nil {
			return "", fmt.Errorf("%s: armored key: %w", name, err)
		}
		return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
	}
	if _, err := base64.StdEncoding.DecodeString(string(text)); err == nil {
		return string(text), nil
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
