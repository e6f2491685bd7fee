// Command ledger is Ledger's one binary: the server and a command-line
// client that mirrors Vault's CLI (same commands, flags, output and exit
// codes), so that Vault habits and scripts carry over.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], environ(os.Environ()), os.Stdin, os.Stdout, os.Stderr))
}

// run executes one CLI invocation and returns its exit code: 0 success,
// 1 local error, 2 usage error or an error answer from the server. It
// touches no process state (environment, working streams, exit) so tests
// can run it in-process and in parallel.
func run(args []string, env map[string]string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, env, stdin, stdout, stderr)
}

func runContext(ctx context.Context, args []string, env map[string]string, stdin io.Reader, stdout, stderr io.Writer) int {
	if env == nil {
		env = map[string]string{}
	}
	a := &app{env: env, stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	// A non-nil slice: cobra reads os.Args when given nil.
	root.SetArgs(append([]string{}, normaliseArgs(args)...))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	return a.report(err)
}

func environ(kvs []string) map[string]string {
	env := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// normaliseArgs accepts Vault's single-dash long flags (-field=x, -dev) by
// rewriting them to the double-dash form cobra parses. Single-letter flags
// (-f, -h), a lone "-" (stdin), anything after "--", and anything not
// starting with a dash are left alone. The name must start with a letter,
// so negative numbers given as separate values (-cas -1) survive.
func normaliseArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i, arg := range args {
		if arg == "--" {
			out = append(out, args[i:]...)
			break
		}
		if len(arg) > 2 && arg[0] == '-' && arg[1] != '-' {
			name, _, _ := strings.Cut(arg[1:], "=")
			if len(name) >= 2 && isLetter(name[0]) {
				arg = "-" + arg
			}
		}
		out = append(out, arg)
	}
	return out
}

func isLetter(b byte) bool { return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') }

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "ledger",
		Short: "Ledger is a secrets manager that speaks HashiCorp Vault's API",
		Long: `Ledger is a secrets manager that speaks HashiCorp Vault's HTTP API.

Its command-line client mirrors Vault's: the same commands, flags (single-dash
long flags such as -field=value work), output formats and exit codes.

Environment: LEDGER_ADDR or VAULT_ADDR (server address), LEDGER_TOKEN or
VAULT_TOKEN (token; otherwise the one stored by "ledger login"),
LEDGER_FORMAT or VAULT_FORMAT, LEDGER_CACERT or VAULT_CACERT, VAULT_SKIP_VERIFY.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		RunE:              groupRun,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageErr(c, err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.address, "address", "", "server address (default $LEDGER_ADDR, $VAULT_ADDR or "+defaultAddress+")")
	pf.StringVar(&a.caCert, "ca-cert", "", "PEM file of the CA that signed the server's certificate (default $LEDGER_CACERT or $VAULT_CACERT)")
	pf.BoolVar(&a.tlsSkipVerify, "tls-skip-verify", false, "do not verify the server's TLS certificate (insecure; default $VAULT_SKIP_VERIFY)")
	pf.StringVar(&a.wrapTTL, "wrap-ttl", "", "ask for the response wrapped: a single-use token valid this long (e.g. 5m) instead of the answer; open it with \"ledger unwrap\" (default $VAULT_WRAP_TTL)")
	pf.StringVar(&a.format, "format", "", "output format: table, json or yaml (default $LEDGER_FORMAT, $VAULT_FORMAT or table)")

	root.AddCommand(
		newServerCmd(),
		a.statusCmd(),
		a.operatorCmd(),
		a.loginCmd(),
		a.readCmd(),
		a.writeCmd(),
		a.listCmd(),
		a.deleteCmd(),
		a.kvCmd(),
		a.policyCmd(),
		a.tokenCmd(),
		a.secretsCmd(),
		a.authCmd(),
		a.leaseCmd(),
		a.auditCmd(),
		a.eventsCmd(),
		a.historyCmd(),
		a.scanCmd(),
		a.incidentCmd(),
		a.replayCmd(),
		a.agentCmd(),
		a.sshCmd(),
		a.pathHelpCmd(),
		a.unwrapCmd(),
		a.debugCmd(),
	)
	return root
}

// groupRun serves commands that only hold subcommands: bare, they print
// help; with an unknown subcommand, they fail as a usage error (cobra would
// otherwise print help and succeed).
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr(cmd, fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()))
	}
	return cmd.Help()
}

func group(use, short string, children ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, RunE: groupRun}
	c.AddCommand(children...)
	return c
}

func exactArgs(n int) cobra.PositionalArgs { return rangeArgs(n, n) }

func rangeArgs(minN, maxN int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < minN:
			return usageErr(cmd, fmt.Errorf("not enough arguments (expected %s, got %d)", expected(minN, maxN), len(args)))
		case maxN >= 0 && len(args) > maxN:
			return usageErr(cmd, fmt.Errorf("too many arguments (expected %s, got %d)", expected(minN, maxN), len(args)))
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs { return rangeArgs(n, -1) }

func expected(minN, maxN int) string {
	switch {
	case minN == maxN:
		return fmt.Sprint(minN)
	case maxN < 0:
		return fmt.Sprintf("at least %d", minN)
	}
	return fmt.Sprintf("%d to %d", minN, maxN)
}

// cliError is a failure reported as "Error <op>: <err>" (or err alone when
// op is empty), with an optional hint on what to do next and an exit code
// (0 means: derived from err).
type cliError struct {
	op   string
	err  error
	code int
	hint string
}

func (e *cliError) Error() string {
	if e.op == "" {
		return e.err.Error()
	}
	return "Error " + e.op + ": " + e.err.Error()
}

func (e *cliError) Unwrap() error { return e.err }

// fail wraps err with what the command was doing.
func fail(op string, err error) error { return &cliError{op: op, err: err} }

// usageError is a mistake in how the command was called; it exits 2.
type usageError struct {
	err     error
	useLine string
	cmdPath string
}

func usageErr(cmd *cobra.Command, err error) error {
	return &usageError{err: err, useLine: cmd.UseLine(), cmdPath: cmd.CommandPath()}
}

func (e *usageError) Error() string {
	return fmt.Sprintf("Error parsing arguments: %s\n\nUsage: %s\nRun \"%s -h\" for details.", e.err, e.useLine, e.cmdPath)
}

func (e *usageError) Unwrap() error { return e.err }

// exitStatus ends the command with a code and no message, as `status` does
// for a sealed server.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exitCode maps an error to Vault's exit codes: 2 for usage errors and
// error answers from the server, 1 for everything local.
func exitCode(err error) int {
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	var ce *cliError
	if errors.As(err, &ce) && ce.code != 0 {
		return ce.code
	}
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		return 2
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return 2
	}
	return 1
}

// isCobraUsageError recognises the untyped errors cobra itself returns for
// bad invocations.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "required flag", "if any flags in the group", "at least one of the flags", "invalid argument"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// report prints err to stderr, with a hint when one applies, and returns
// the exit code.
func (a *app) report(err error) int {
	code := exitCode(err)
	var st exitStatus
	if errors.As(err, &st) {
		return code
	}
	msg := err.Error()
	var ce *cliError
	var ue *usageError
	if !errors.As(err, &ce) && !errors.As(err, &ue) {
		msg = "Error: " + msg
	}
	if hint := a.hint(err); hint != "" {
		msg += "\n\n" + hint
	}
	fmt.Fprintln(a.stderr, msg)
	return code
}
