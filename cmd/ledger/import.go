package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/vault/api"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/importer"
)

// `ledger operator import`: move a running Vault or OpenBao (or another Ledger) into this
// Ledger over both servers' HTTP APIs. The work is internal/importer's; this file reads flags,
// builds the two official-client connections, and prints the report.

type importFlags struct {
	fromAddress, fromToken, fromCACert string
	include, exclude                   []string
	dryRun, overwrite, skipUnsupported bool
	workers                            int
	dbPasswords                        []string
	dbPasswordsFile                    string
	authSecrets                        []string
	authSecretsFile                    string
}

func (a *app) operatorImportCmd() *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "import -from-address=URL [flags]",
		Short: "Import mounts, policies, secrets with their history, keys and roles from a running Vault or OpenBao",
		Long: `Import a running Vault or OpenBao server (or another Ledger) into this Ledger
through both servers' HTTP APIs. Every item is written through Ledger's API, so
each is an ordinary, audited event.

It moves: secret engine and auth method mounts with their tuning; ACL policies
(text unchanged) and password policies; KV v1 values; every KV v2 version the
source still has, in order, with its created_time (shown by "ledger history"),
deletion and destruction state and the secret's metadata; transit keys the
source lets leave (exportable and allow_plaintext_backup); AppRole roles with
their role_id; userpass users; database connections and roles; Kubernetes,
JWT and OIDC configurations and roles; identity entities, aliases, groups and
external groups' aliases. What cannot be read from the source (secret_ids,
passwords, non-exportable keys, the values of deleted KV versions) is listed to
be re-issued by hand. Connection passwords and auth configurations' secrets
(OIDC client secrets, Kubernetes reviewer JWTs) can be given: -database-password,
-auth-secret, their -…-file variants, or a prompt on a terminal.

A second run imports only what changed; a run that was stopped resumes. A
conflict with something already in Ledger is reported and left alone unless
-overwrite. Nothing read from the source is ever printed.

The source token needs read and list on what is imported (sys/mounts, sys/auth,
sys/policies, the KV metadata trees, …); the Ledger token needs sudo on
<mount>/import/* for KV v2 (root, or a policy granting sudo there).

The source token is read from -from-token, else $LEDGER_IMPORT_FROM_TOKEN.

Exit codes: 0 everything importable was imported; 2 some items conflicted or
failed (see the report); 1 the import could not run.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runImport(cmd, f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.fromAddress, "from-address", "", "address of the source server (required), e.g. https://vault.example.com:8200")
	fs.StringVar(&f.fromToken, "from-token", "", "token on the source (default $LEDGER_IMPORT_FROM_TOKEN)")
	fs.StringVar(&f.fromCACert, "from-ca-cert", "", "PEM file of the CA that signed the source's certificate")
	fs.StringSliceVar(&f.include, "include", nil, "import only paths matching these globs (repeat or comma-separate; * matches anything, / included), e.g. secret/app/*")
	fs.StringSliceVar(&f.exclude, "exclude", nil, "leave out paths matching these globs")
	fs.BoolVar(&f.dryRun, "dry-run", false, "read both servers and report what would be imported; write nothing")
	fs.BoolVar(&f.overwrite, "overwrite", false, "replace what Ledger already holds where it differs from the source")
	fs.BoolVar(&f.skipUnsupported, "skip-unsupported", false, "import the rest when the source has mounts of types Ledger does not serve")
	fs.IntVar(&f.workers, "workers", 8, "items imported at once")
	fs.StringArrayVar(&f.dbPasswords, "database-password", nil, "password of a database connection, as MOUNT/NAME=PASSWORD (e.g. database/pg=…); repeatable")
	fs.StringVar(&f.dbPasswordsFile, "database-passwords-file", "", `JSON file {"MOUNT/NAME": "password", …} of database connection passwords`)
	fs.StringArrayVar(&f.authSecrets, "auth-secret", nil, "the secret of an auth method's configuration (OIDC/JWT oidc_client_secret, Kubernetes token_reviewer_jwt), as auth/MOUNT=SECRET (e.g. auth/oidc=…); repeatable")
	fs.StringVar(&f.authSecretsFile, "auth-secrets-file", "", `JSON file {"auth/MOUNT": "secret", …} of auth method configuration secrets`)
	return cmd
}

func (a *app) runImport(cmd *cobra.Command, f importFlags) error {
	ctx := cmd.Context()
	if f.fromAddress == "" {
		return usageErr(cmd, errors.New("-from-address is required: the address of the Vault or OpenBao server to import from"))
	}
	if f.workers < 1 || f.workers > 256 {
		return usageErr(cmd, fmt.Errorf("-workers=%d: give 1 to 256", f.workers))
	}
	p, err := a.printer()
	if err != nil {
		return err
	}
	if f.fromToken == "" {
		f.fromToken = strings.TrimSpace(a.env["LEDGER_IMPORT_FROM_TOKEN"])
	}
	if f.fromToken == "" {
		return usageErr(cmd, errors.New("no source token: give -from-token or set LEDGER_IMPORT_FROM_TOKEN"))
	}
	passwords, err := readSecretPairs("database-password", f.dbPasswords, f.dbPasswordsFile, "MOUNT/NAME", "PASSWORD", "database/pg")
	if err != nil {
		return usageErr(cmd, err)
	}
	authSecrets, err := readSecretPairs("auth-secret", f.authSecrets, f.authSecretsFile, "auth/MOUNT", "SECRET", "auth/oidc")
	if err != nil {
		return usageErr(cmd, err)
	}
	src, err := vaultClient(f.fromAddress, f.fromToken, f.fromCACert, false, f.workers)
	if err != nil {
		return &cliError{op: "configuring the source client", err: err, code: 1, hint: "Check -from-address and -from-ca-cert."}
	}
	cfg, err := a.clientConfig()
	if err != nil {
		return &cliError{op: "configuring the client", err: err, code: 1}
	}
	dst, err := vaultClient(cfg.Address, cfg.Token, cfg.CACert, cfg.SkipVerify, f.workers)
	if err != nil {
		return &cliError{op: "configuring the client", err: err, code: 1}
	}
	a.usedAddress, a.sentToken = cfg.Address, cfg.Token != ""

	opt := importer.Options{
		Include: f.include, Exclude: f.exclude, DryRun: f.dryRun, Overwrite: f.overwrite,
		SkipUnsupported: f.skipUnsupported, Workers: f.workers, Progress: a.stderr,
		DatabasePassword: a.dbPasswordSource(passwords),
		AuthSecret:       a.authSecretSource(authSecrets),
	}
	rep, err := importer.Run(ctx, src, dst, opt)
	if err != nil && rep == nil {
		return importError(err, f.fromAddress)
	}
	if p.format != formatTable {
		if perr := p.Structured(rep); perr != nil {
			return perr
		}
	} else {
		printImportReport(p, rep)
	}
	if err != nil {
		return importError(err, f.fromAddress)
	}
	if rep.Counts[importer.Conflict] > 0 || rep.Counts[importer.Failed] > 0 {
		return exitStatus(2)
	}
	return nil
}

// importError says what went wrong before (or instead of) importing, and what to do.
func importError(err error, from string) error {
	ce := &cliError{op: "importing", err: err, code: 1}
	var unknownCA x509.UnknownAuthorityError
	msg := err.Error()
	switch {
	case errors.Is(err, importer.ErrSourceSealed):
		ce.hint = "Unseal the source (vault operator unseal) and run the import again."
	case errors.Is(err, importer.ErrTargetSealed):
		ce.hint = "Unseal Ledger with `ledger operator unseal` and run the import again."
	case errors.Is(err, importer.ErrUnsupportedMounts):
		ce.hint = "Nothing was imported."
	case errors.As(err, &unknownCA) || strings.Contains(msg, "certificate signed by unknown authority") || strings.Contains(msg, "x509:"):
		if strings.Contains(msg, strings.TrimSuffix(from, "/")) {
			ce.hint = "The source's TLS certificate is signed by a CA this machine does not trust: give it with -from-ca-cert=FILE."
		} else {
			ce.hint = "Set -ca-cert or VAULT_CACERT to the CA that signed Ledger's certificate."
		}
	case errors.Is(err, syscall.ECONNREFUSED) || isNetError(err):
		if strings.Contains(msg, strings.TrimSuffix(from, "/")) {
			ce.hint = "Cannot reach the source at " + from + ": check -from-address and that the server is running."
		} else {
			ce.hint = "Cannot reach Ledger: check -address or VAULT_ADDR."
		}
	case errors.Is(err, context.Canceled):
		ce.hint = "The import was interrupted: run it again to resume; what was imported stays."
	}
	return ce
}

func isNetError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &oe) || errors.As(err, &ne)
}

// vaultClient is the official client for one server, configured from these arguments only
// (not from VAULT_* variables of the process).
func vaultClient(addr, token, caCert string, skipVerify bool, workers int) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = addr
	cfg.MaxRetries = 2
	if caCert != "" || skipVerify {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: caCert, Insecure: skipVerify}); err != nil {
			return nil, err
		}
	}
	if tr, ok := cfg.HttpClient.Transport.(*http.Transport); ok {
		tr.MaxIdleConnsPerHost = workers * 2 // keep a connection per worker alive
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.ClearNamespace()
	c.SetToken(token)
	return c, nil
}

// readSecretPairs reads a repeatable KEY=VALUE flag (-NAME) and its JSON file variant
// (-NAMEs-file) into KEY → value. A key must have the form shown (a slash in it).
func readSecretPairs(name string, pairs []string, file, form, value, example string) (map[string]string, error) {
	out := map[string]string{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("-%ss-file: %w", name, err)
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("-%ss-file %s: expected a JSON object of \"%s\": \"%s\"", name, file, form, strings.ToLower(value))
		}
	}
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.Contains(strings.Trim(k, "/"), "/") {
			return nil, fmt.Errorf("-%s: expected %s=%s, e.g. %s=…", name, form, value, example)
		}
		out[strings.Trim(k, "/")] = v
	}
	return out, nil
}

// dbPasswordSource answers the importer's question for a connection's password: from the
// flags, else by asking on the terminal (one question at a time), else none.
func (a *app) dbPasswordSource(given map[string]string) func(ctx context.Context, mount, name string) (string, bool, error) {
	ask := a.secretSource(given)
	return func(_ context.Context, mount, name string) (string, bool, error) {
		key := strings.Trim(mount, "/") + "/" + name
		return ask(key, "Password of database connection "+key)
	}
}

// authSecretSource answers the importer's question for an auth method configuration's secret,
// keyed auth/MOUNT, the same way.
func (a *app) authSecretSource(given map[string]string) func(ctx context.Context, mount, field string) (string, bool, error) {
	ask := a.secretSource(given)
	return func(_ context.Context, mount, field string) (string, bool, error) {
		key := strings.Trim(mount, "/")
		return ask(key, field+" of "+key+"/config")
	}
}

// secretSource looks a key up in what the flags gave, else asks on the terminal (one
// question at a time; an empty answer is none), else answers none.
func (a *app) secretSource(given map[string]string) func(key, what string) (string, bool, error) {
	var mu sync.Mutex
	return func(key, what string) (string, bool, error) {
		if s, ok := given[key]; ok {
			return s, true, nil
		}
		f, ok := a.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return "", false, nil
		}
		mu.Lock()
		defer mu.Unlock()
		s, err := a.readHidden(what + " (empty: import without it): ")
		if err != nil {
			return "", false, err
		}
		return s, s != "", nil
	}
}

// printImportReport prints the counts, then every item that was not simply moved.
func printImportReport(p *printer, rep *importer.Report) {
	title := "Import from " + rep.Source
	if rep.DryRun {
		title += " (dry run: nothing was written)"
	}
	fmt.Fprintf(p.out, "%s — %s, %d KV paths, %d KV versions written\n\n", title, rep.Duration, rep.KVPaths, rep.KVVersions)
	statuses := make([]string, 0, len(rep.Counts))
	for s := range rep.Counts {
		statuses = append(statuses, string(s))
	}
	sort.Strings(statuses)
	rows := make([][]string, 0, len(statuses))
	for _, s := range statuses {
		rows = append(rows, []string{s, fmt.Sprint(rep.Counts[importer.Status(s)])})
	}
	_ = p.Table([]string{"Status", "Items"}, rows)
	var detail [][]string
	for _, it := range rep.Items {
		if it.Reason == "" && !it.Changed {
			continue
		}
		r := it.Reason
		if it.Changed && r == "" {
			r = "the source changed during the import: re-read and reconciled"
		}
		detail = append(detail, []string{it.Kind, it.Path, string(it.Status), r})
	}
	if len(detail) > 0 {
		fmt.Fprintln(p.out)
		_ = p.Table([]string{"Kind", "Path", "Status", "Reason"}, detail)
	}
}
