package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ledger-secrets/ledger/commands"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
)

func (a *app) operatorGenerateRootCmd() *cobra.Command {
	var (
		initFlag, cancel, status, generateOTP bool
		otp, pgpKey, decode, nonce            string
	)
	cmd := &cobra.Command{
		Use:   "generate-root [KEY]",
		Short: "Make a new root token from a quorum of unseal keys",
		Long: `Make a new root token when none exists (the initial one should be revoked
once the server is set up). A quorum of unseal key holders authorises it.

  1. The operator starts:        ledger operator generate-root -init
                                 (prints a one-time password, OTP: keep it private)
  2. Each key holder enters:     ledger operator generate-root   (prompts without echo)
  3. The last entry prints the encoded token; only the OTP holder can read it:
                                 ledger operator generate-root -decode=ENCODED -otp=OTP

-generate-otp prints an OTP to pass to -init -otp=...; -pgp-key=FILE encrypts
the token to a PGP public key instead (decrypt with: base64 -d | gpg -d).
The attempt lives in the memory of the server it was started on: a restart or
a seal ends it.`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			if decode != "" {
				if otp == "" {
					return usageErr(cmd, fmt.Errorf("-decode needs -otp: the OTP of the attempt that produced the token"))
				}
				if decode == "-" {
					if decode, err = a.readHidden("Encoded token: "); err != nil {
						return &cliError{op: "reading the encoded token", err: err, code: 1}
					}
				}
				tok, err := commands.DecodeRootToken(decode, otp)
				if err != nil {
					return &cliError{op: "decoding the token", err: err, code: 1}
				}
				if p.format != formatTable {
					return p.Structured(map[string]string{"token": tok})
				}
				return p.KeyValue([][2]string{{"Token", tok}})
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			const path = "sys/generate-root/attempt"
			switch {
			case generateOTP:
				var st commands.GenerateRootStatus
				if err := c.Call(ctx, http.MethodGet, path, nil, &st); err != nil {
					return fail("reading the OTP length", err)
				}
				if st.OTPLength <= 0 {
					return &cliError{op: "generating an OTP", err: fmt.Errorf("the server reports no OTP length"), code: 2}
				}
				p.Println(enginetoken.RandomBase62(st.OTPLength))
				return nil
			case initFlag:
				if len(args) > 0 {
					return usageErr(cmd, fmt.Errorf("-init takes no key"))
				}
				body := map[string]string{}
				if otp != "" {
					body["otp"] = otp
				}
				if pgpKey != "" {
					keys, err := readPGPKeyFiles(pgpKey)
					if err != nil {
						return &cliError{op: "reading -pgp-key", err: err, code: 1}
					}
					if len(keys) != 1 {
						return usageErr(cmd, fmt.Errorf("-pgp-key takes one key file"))
					}
					body["pgp_key"] = keys[0]
				}
				var st commands.GenerateRootStatus
				if err := c.Call(ctx, http.MethodPut, path, body, &st); err != nil {
					return fail("starting root generation", err)
				}
				return printRootStatus(p, st)
			case cancel:
				if err := c.Call(ctx, http.MethodDelete, path, nil, nil); err != nil {
					return fail("cancelling root generation", err)
				}
				p.Println("Success! Root token generation canceled (if it was started)")
				return nil
			case status:
				var st commands.GenerateRootStatus
				if err := c.Call(ctx, http.MethodGet, path, nil, &st); err != nil {
					return fail("reading the root generation status", err)
				}
				return printRootStatus(p, st)
			}
			if nonce == "" {
				var st commands.GenerateRootStatus
				if err := c.Call(ctx, http.MethodGet, path, nil, &st); err != nil {
					return fail("reading the root generation status", err)
				}
				if !st.Started {
					return &cliError{op: "entering a key", err: fmt.Errorf("no root generation is in progress"), code: 2,
						hint: "start one with: ledger operator generate-root -init"}
				}
				nonce = st.Nonce
			}
			key, err := a.keyArg(args, "Unseal Key (will be hidden): ")
			if err != nil {
				return err
			}
			var st commands.GenerateRootStatus
			if err := c.Call(ctx, http.MethodPut, "sys/generate-root/update", map[string]string{"key": key, "nonce": nonce}, &st); err != nil {
				return fail("entering the key", err)
			}
			if err := printRootStatus(p, st); err != nil {
				return err
			}
			if st.Complete && p.format == formatTable {
				if st.PGPFingerprint != "" {
					p.Println("\nThe token is encrypted to the PGP key " + st.PGPFingerprint + ": echo ENCODED | base64 -d | gpg -d")
				} else {
					p.Println("\nDecode the token with: ledger operator generate-root -decode=" + st.EncodedRootToken + " -otp=<the OTP from -init>")
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&initFlag, "init", false, "start a root token generation (the server makes the OTP unless -otp or -pgp-key is given)")
	f.BoolVar(&cancel, "cancel", false, "cancel the root token generation in progress")
	f.BoolVar(&status, "status", false, "print the status of the attempt in progress")
	f.BoolVar(&generateOTP, "generate-otp", false, "print a one-time password for -init -otp")
	f.StringVar(&otp, "otp", "", "the OTP, with -init (to use your own) or with -decode")
	f.StringVar(&pgpKey, "pgp-key", "", "file with a PGP public key to encrypt the token to (binary, base64 or armored)")
	f.StringVar(&decode, "decode", "", "decode this encoded token with -otp (\"-\" reads it from stdin)")
	f.StringVar(&nonce, "nonce", "", "nonce of the attempt; read from the server when empty")
	return cmd
}

func printRootStatus(p *printer, st commands.GenerateRootStatus) error {
	if p.format != formatTable {
		return p.Structured(st)
	}
	rows := [][2]string{
		{"Nonce", st.Nonce},
		{"Started", fmt.Sprint(st.Started)},
		{"Progress", fmt.Sprintf("%d/%d", st.Progress, st.Required)},
		{"Complete", fmt.Sprint(st.Complete)},
	}
	if st.EncodedRootToken != "" {
		rows = append(rows, [2]string{"Encoded Token", st.EncodedRootToken})
	}
	if st.PGPFingerprint != "" {
		rows = append(rows, [2]string{"PGP Fingerprint", st.PGPFingerprint})
	}
	if st.OTP != "" {
		rows = append(rows, [2]string{"OTP", st.OTP})
	}
	rows = append(rows, [2]string{"OTP Length", fmt.Sprint(st.OTPLength)})
	if strings.TrimSpace(st.OTP) != "" {
		defer p.Println("\nKeep the OTP private: it is shown once, and with it alone the encoded token becomes the root token.")
	}
	return p.KeyValue(rows)
}
