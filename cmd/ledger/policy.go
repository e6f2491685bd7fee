package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ledger-secrets/ledger/commands/acl"
)

func (a *app) policyCmd() *cobra.Command {
	return group("policy", "Manage ACL policies",
		a.policyWriteCmd(),
		a.policyReadCmd(),
		a.policyListCmd(),
		a.policyDeleteCmd(),
		a.policyFmtCmd(),
	)
}

// policyName normalises a name as Vault does: policy names are case-insensitive.
func policyName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// readFileOrStdin reads path, or stdin for "-".
func (a *app) readFileOrStdin(path string) ([]byte, error) {
	if path == "-" {
		if a.stdin == nil {
			return nil, fmt.Errorf("no input: stdin is closed")
		}
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	return os.ReadFile(path)
}

func (a *app) policyWriteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "write NAME FILE|-",
		Short: "Upload a policy (HCL or JSON) from a file or stdin",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := policyName(args[0])
			text, err := a.readFileOrStdin(args[1])
			if err != nil {
				return &cliError{op: "reading policy", err: err, code: 1}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Put(cmd.Context(), "sys/policies/acl/"+name, map[string]string{"policy": string(text)}); err != nil {
				return fail("uploading policy", err)
			}
			fmt.Fprintln(a.stdout, "Success! Uploaded policy: "+name)
			return nil
		},
	}
}

func (a *app) policyReadCmd() *cobra.Command {
	var pf pointFlags
	cmd := &cobra.Command{
		Use:   "read [flags] NAME",
		Short: "Print a policy (as it was with -at or -at-seq)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := policyName(args[0])
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			path, query, err := pf.apply(cmd, "sys/policies/acl/"+name, nil)
			if err != nil {
				return err
			}
			s, err := c.Get(cmd.Context(), path, query)
			if err != nil {
				return fail("reading policy "+name, err)
			}
			if s == nil {
				return &cliError{err: fmt.Errorf("No policy named: %s", name), code: 2}
			}
			text := stringOf(s.DataOrTop()["policy"])
			if p.format != formatTable {
				return p.Structured(map[string]string{"policy": text})
			}
			_, err = fmt.Fprintln(a.stdout, strings.TrimSpace(text))
			return err
		},
	}
	pf.register(cmd)
	return cmd
}

func (a *app) policyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the names of the policies",
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
			s, err := c.List(cmd.Context(), "sys/policies/acl")
			if err != nil {
				return fail("listing policies", err)
			}
			var keys []string
			if s != nil {
				keys = stringsOf(s.DataOrTop()["keys"])
			}
			return p.List(nonNil(keys), false)
		},
	}
}

func (a *app) policyDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy (tokens that name it lose its grants)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := policyName(args[0])
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Delete(cmd.Context(), "sys/policies/acl/"+name); err != nil {
				return fail("deleting "+name, err)
			}
			fmt.Fprintln(a.stdout, "Success! Deleted policy: "+name)
			return nil
		},
	}
}

func (a *app) policyFmtCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "fmt FILE|-",
		Short: "Format a policy file in place (\"-\": from stdin to stdout)",
		Long: `Format a policy file in its canonical HCL layout, in place. The policy must
parse; a JSON policy is rewritten as HCL. With "-", read stdin and print the
result instead.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			text, err := a.readFileOrStdin(path)
			if err != nil {
				return &cliError{op: "reading policy", err: err, code: 1}
			}
			out, err := acl.Format(string(text))
			if err != nil {
				return &cliError{op: "formatting policy", err: err, code: 1}
			}
			if path == "-" {
				_, err := io.WriteString(a.stdout, out)
				return err
			}
			info, err := os.Stat(path)
			if err != nil {
				return &cliError{op: "formatting policy", err: err, code: 1}
			}
			if err := os.WriteFile(path, []byte(out), info.Mode().Perm()); err != nil {
				return &cliError{op: "writing formatted policy", err: err, code: 1}
			}
			fmt.Fprintln(a.stdout, "Success! Formatted policy: "+path)
			return nil
		},
	}
}
