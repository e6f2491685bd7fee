package main

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) operatorCmd() *cobra.Command {
	return group("operator", "Operate the server: initialize, unseal, seal, rotate the key",
		a.operatorInitCmd(),
		a.operatorUnsealCmd(),
		a.operatorSealCmd(),
		a.operatorStepDownCmd(), // operator_raft.go
		a.operatorRotateCmd(),
		a.operatorKeyStatusCmd(),
		a.operatorRaftCmd(),
		a.operatorSnapshotCmd(),
		a.operatorRekeyCmd(),        // operator_rekey.go
		a.operatorGenerateRootCmd(), // operator_generateroot.go
		a.operatorImportCmd(),       // import.go
	)
}

// initOutput is what `operator init -format=json` prints: Vault's CLI shape,
// which differs from the sys/init answer.
type initOutput struct {
	UnsealKeysB64         []string `json:"unseal_keys_b64"`
	UnsealKeysHex         []string `json:"unseal_keys_hex"`
	UnsealShares          int      `json:"unseal_shares"`
	UnsealThreshold       int      `json:"unseal_threshold"`
	RecoveryKeysB64       []string `json:"recovery_keys_b64"`
	RecoveryKeysHex       []string `json:"recovery_keys_hex"`
	RecoveryKeysShares    int      `json:"recovery_keys_shares"`
	RecoveryKeysThreshold int      `json:"recovery_keys_threshold"`
	RootToken             string   `json:"root_token"`
	// RecoveryEscrow is Ledger's: set with an auto-seal.
	RecoveryEscrow *bool `json:"recovery_escrow,omitempty"`
}

func (a *app) operatorInitCmd() *cobra.Command {
	var shares, threshold, recShares, recThreshold int
	var status, escrow bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize a new server and print its unseal keys and root token",
		Long: `Initialize a new server: generate the root key, split it into unseal key
shares with Shamir's Secret Sharing, and print the shares and the initial root
token. They are shown once and never stored by the server.

With an auto-seal (a seal stanza in the server's config) the root key is wrapped by the
seal's key instead, the server unseals itself, and what is printed are recovery keys
(-recovery-shares, -recovery-threshold): they authorise generate-root, recovery-key rekey and
seal migration, but do not unseal. -recovery-escrow also wraps the root key under the
recovery keys, so they can unseal ("operator unseal -recovery") if the seal's key is ever lost;
without it, losing that key loses every secret.

With -status, only check: exit 0 if initialized, 2 if not, 1 on error.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if status {
				var st struct {
					Initialized bool `json:"initialized"`
				}
				if err := c.Call(ctx, http.MethodGet, "sys/init", nil, &st); err != nil {
					return &cliError{op: "checking initialization status", err: err, code: 1}
				}
				if st.Initialized {
					p.Println("Ledger is initialized")
					return nil
				}
				p.Println("Ledger is not initialized")
				return exitStatus(2)
			}
			req := map[string]any{"secret_shares": shares, "secret_threshold": threshold,
				"recovery_shares": recShares, "recovery_threshold": recThreshold}
			if escrow {
				req["recovery_escrow"] = true
			}
			var resp struct {
				Keys           []string `json:"keys"`
				KeysB64        []string `json:"keys_base64"`
				RecoveryKeys   []string `json:"recovery_keys"`
				RecoveryB64    []string `json:"recovery_keys_base64"`
				RecoveryEscrow bool     `json:"recovery_escrow"`
				RootToken      string   `json:"root_token"`
			}
			if err := c.Call(ctx, http.MethodPut, "sys/init", req, &resp); err != nil {
				return fail("initializing", err)
			}
			out := initOutput{
				UnsealKeysB64:   nonNil(resp.KeysB64),
				UnsealKeysHex:   nonNil(resp.Keys),
				UnsealShares:    shares,
				UnsealThreshold: threshold,
				RecoveryKeysB64: nonNil(resp.RecoveryB64),
				RecoveryKeysHex: nonNil(resp.RecoveryKeys),
				RootToken:       resp.RootToken,
			}
			if len(resp.RecoveryKeys) > 0 {
				out.UnsealShares, out.UnsealThreshold = 0, 0
				out.RecoveryKeysShares, out.RecoveryKeysThreshold = recShares, recThreshold
				out.RecoveryEscrow = &resp.RecoveryEscrow
			}
			if p.format != formatTable {
				return p.Structured(out)
			}
			fmt.Fprint(a.stdout, initText(out))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&shares, "key-shares", 5, "number of unseal key shares to generate")
	f.IntVar(&threshold, "key-threshold", 3, "number of shares needed to unseal")
	f.IntVar(&recShares, "recovery-shares", 5, "with an auto-seal: number of recovery key shares to generate")
	f.IntVar(&recThreshold, "recovery-threshold", 3, "with an auto-seal: number of recovery shares needed to authorise an operation")
	f.BoolVar(&escrow, "recovery-escrow", false, "with an auto-seal: also wrap the root key under the recovery keys, so they can unseal if the seal's key is lost")
	f.BoolVar(&status, "status", false, "only report whether the server is initialized (exit 0 yes, 2 no)")
	return cmd
}

func initText(out initOutput) string {
	if len(out.RecoveryKeysHex) > 0 {
		return recoveryInitText(out)
	}
	keys := out.UnsealKeysB64
	if len(keys) == 0 {
		keys = out.UnsealKeysHex
	}
	var b strings.Builder
	for i, k := range keys {
		fmt.Fprintf(&b, "Unseal Key %d: %s\n", i+1, k)
	}
	fmt.Fprintf(&b, "\nInitial Root Token: %s\n\n", out.RootToken)
	fmt.Fprintf(&b, `Ledger is initialized with %d key shares and a threshold of %d. These keys and
the root token are shown only this once: the server does not keep them.

Give each key share to a different trusted person and store them apart. Every
time the server starts (or is sealed) it needs %d of these shares, entered with
"ledger operator unseal", before it will serve requests. With fewer than %d
shares the data can never be decrypted again.

Use the root token to set up policies and auth methods, then revoke it
("ledger token revoke -self") and work with narrower tokens.
`, out.UnsealShares, out.UnsealThreshold, out.UnsealThreshold, out.UnsealThreshold)
	return b.String()
}

func recoveryInitText(out initOutput) string {
	var b strings.Builder
	for i, k := range out.RecoveryKeysB64 {
		fmt.Fprintf(&b, "Recovery Key %d: %s\n", i+1, k)
	}
	fmt.Fprintf(&b, "\nInitial Root Token: %s\n\n", out.RootToken)
	fmt.Fprintf(&b, `Success! Ledger is initialized and unsealed by its auto-seal.

Recovery key initialized with %d key shares and a key threshold of %d. Recovery
keys do not unseal the server; %d of them authorise generate-root, recovery-key
rekey and seal migration. They are shown only this once.
`, out.RecoveryKeysShares, out.RecoveryKeysThreshold, out.RecoveryKeysThreshold)
	if out.RecoveryEscrow != nil && *out.RecoveryEscrow {
		b.WriteString(`
Recovery escrow is ON: the root key is also wrapped under the recovery keys, so
if the seal's key is ever lost, "ledger operator unseal -recovery" with these
keys brings the data back. Guard them like unseal keys.
`)
	} else {
		b.WriteString(`
Recovery escrow is OFF: if the seal's key is deleted or lost, every secret is
lost for good; the recovery keys cannot decrypt anything. Back up the key (or
re-initialize with -recovery-escrow) and test recovery before you need it.
`)
	}
	return b.String()
}

func (a *app) operatorUnsealCmd() *cobra.Command {
	var reset, migrate, recovery bool
	cmd := &cobra.Command{
		Use:   "unseal [KEY]",
		Short: "Provide one unseal key share",
		Long: `Provide one unseal key share; once enough shares are in, the server unseals.

Without KEY, the key is read without echo from the terminal (or as one line
from stdin when it is not a terminal), so it stays out of shell history.
-reset discards the shares entered so far.

-migrate gives a key for a seal migration (the config has the new seal stanza and the
old one with disabled = "true"): unseal keys when migrating from Shamir, recovery
keys otherwise. -recovery gives a recovery key to unseal an auto-sealed server whose
seal key is lost, when recovery escrow was enabled at init.`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			var body any
			switch {
			case reset:
				if len(args) > 0 {
					return usageErr(cmd, fmt.Errorf("-reset takes no key"))
				}
				body = map[string]bool{"reset": true}
			default:
				var key string
				if len(args) == 1 {
					key = strings.TrimSpace(args[0])
				} else {
					key, err = a.readHidden("Unseal Key (will be hidden): ")
					if err != nil {
						return &cliError{op: "reading unseal key", err: err, code: 1}
					}
				}
				if key == "" {
					return &cliError{op: "reading unseal key", err: fmt.Errorf("the key is empty"), code: 1}
				}
				m := map[string]any{"key": key}
				if migrate {
					m["migrate"] = true
				}
				if recovery {
					m["recovery"] = true
				}
				body = m
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var st sealStatus
			if err := c.Call(ctx, http.MethodPut, "sys/unseal", body, &st); err != nil {
				return fail("unsealing", err)
			}
			if st.Type == "" {
				// The unseal answer may carry only progress; show the full picture.
				if err := c.Call(ctx, http.MethodGet, "sys/seal-status", nil, &st); err != nil {
					return fail("checking seal status", err)
				}
			}
			return printSealStatus(ctx, c, p, st)
		},
	}
	cmd.Flags().BoolVar(&reset, "reset", false, "discard the unseal key shares entered so far")
	cmd.Flags().BoolVar(&migrate, "migrate", false, "the key is for a seal migration")
	cmd.Flags().BoolVar(&recovery, "recovery", false, "the key is a recovery key, to unseal through the recovery escrow")
	return cmd
}

func (a *app) operatorSealCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "seal",
		Short: "Seal the server: drop keys from memory and refuse requests until unsealed",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Put(cmd.Context(), "sys/seal", nil); err != nil {
				return fail("sealing", err)
			}
			fmt.Fprintln(a.stdout, "Success! Ledger is sealed.")
			return nil
		},
	}
}

// keyStatus is the answer of sys/key-status.
type keyStatus struct {
	Term        int       `json:"term"`
	InstallTime time.Time `json:"install_time"`
	Encryptions int64     `json:"encryptions"`
}

func (a *app) getKeyStatus(cmd *cobra.Command, c *Client) (keyStatus, error) {
	var ks keyStatus
	s, err := c.Get(cmd.Context(), "sys/key-status", nil)
	if err != nil {
		return ks, err
	}
	if s == nil {
		return ks, fmt.Errorf("the server returned no key status")
	}
	if err := decodeInto(s.DataOrTop(), &ks); err != nil {
		return ks, fmt.Errorf("decode key status: %w", err)
	}
	return ks, nil
}

func keyStatusRows(ks keyStatus) [][]string {
	return [][]string{
		{"Key Term", fmt.Sprint(ks.Term)},
		{"Install Time", ks.InstallTime.UTC().Format(time.RFC822)},
		{"Encryption Count", fmt.Sprint(ks.Encryptions)},
	}
}

func (a *app) operatorRotateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Rotate the encryption key: new data uses a new key term, old data stays readable",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Put(cmd.Context(), "sys/rotate", nil); err != nil {
				return fail("rotating key", err)
			}
			ks, err := a.getKeyStatus(cmd, c)
			if err != nil {
				return fail("reading key status", err)
			}
			if p.format != formatTable {
				return p.Structured(ks)
			}
			fmt.Fprint(a.stdout, "Success! Rotated key\n\n"+columns(keyStatusRows(ks)))
			return nil
		},
	}
}

func (a *app) operatorKeyStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "key-status",
		Short: "Print the current encryption key term and when it was installed",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ks, err := a.getKeyStatus(cmd, c)
			if err != nil {
				return fail("reading key status", err)
			}
			if p.format != formatTable {
				return p.Structured(ks)
			}
			fmt.Fprint(a.stdout, columns(keyStatusRows(ks)))
			return nil
		},
	}
}
