package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// printWrapped prints a wrapped answer (wrap_info only), or one of its fields.
func printWrapped(p *printer, s *Secret, field string) error {
	if field != "" {
		return p.Field(rawField(s, field), field)
	}
	return p.Secret(s)
}

func (a *app) unwrapCmd() *cobra.Command {
	var field string
	cmd := &cobra.Command{
		Use:   "unwrap [flags] [TOKEN]",
		Short: "Open a response-wrapping token, once",
		Long: `Unwrap returns the response held by a wrapping token (from -wrap-ttl or
sys/wrapping/wrap). A wrapping token opens exactly once: if unwrapping fails
for a token nobody else should have seen, someone may have opened it first;
the server audits such attempts. Without TOKEN, the client's own token
(VAULT_TOKEN) is taken as the wrapping token.`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			wt := ""
			if len(args) == 1 {
				wt = strings.TrimSpace(args[0])
			}
			var body any
			switch {
			case wt == "" && !c.HasToken():
				return usageErr(cmd, fmt.Errorf("no wrapping token: give it as an argument, or set VAULT_TOKEN to it"))
			case wt != "" && !c.HasToken():
				c = c.WithToken(wt)
			case wt != "" && wt != c.token:
				body = map[string]any{"token": wt}
			}
			s, err := c.Put(cmd.Context(), "sys/wrapping/unwrap", body)
			if err != nil {
				return &cliError{op: "unwrapping", err: err,
					hint: "a wrapping token opens once and only before its TTL ends; if you did not open it, someone else may have: treat what it held as exposed"}
			}
			if s == nil {
				return &cliError{err: fmt.Errorf("the wrapping token held an empty response"), code: 2}
			}
			if field != "" {
				return p.Field(rawField(s, field), field)
			}
			return p.Secret(s)
		},
	}
	cmd.Flags().StringVar(&field, "field", "", "print only this field, with no decoration")
	return cmd
}

// moveCmd is "secrets move" (auth false) and "auth move": sys/remount, then its status.
func (a *app) moveCmd(auth bool) *cobra.Command {
	what, example := "secrets engine", "ledger secrets move transit/ transit2/"
	if auth {
		what, example = "auth method", "ledger auth move auth/approle/ auth/ci/"
	}
	return &cobra.Command{
		Use:     "move [flags] SOURCE DESTINATION",
		Short:   "Move a " + what + " to another path, with everything it holds",
		Long:    "Move a " + what + " to another path with its data and leases (lease IDs take the new\nprefix); policies are not changed, so update those that name the old path.",
		Example: "  " + example,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, to := ensureTrailingSlash(sanitizePath(args[0])), ensureTrailingSlash(sanitizePath(args[1]))
			if auth {
				for _, p := range []*string{&from, &to} {
					if !strings.HasPrefix(*p, "auth/") {
						*p = "auth/" + *p
					}
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.Post(cmd.Context(), "sys/remount", map[string]any{"from": from, "to": to})
			if err != nil {
				return fail(fmt.Sprintf("moving %s %s to %s", what, from, to), err)
			}
			id := ""
			if s != nil {
				id, _ = s.Data["migration_id"].(string)
			}
			st, err := c.Get(cmd.Context(), "sys/remount/status/"+id, nil)
			if err != nil || st == nil {
				return fail("reading the move's status (migration "+id+")", err)
			}
			info, _ := st.Data["migration_info"].(map[string]any)
			if status, _ := info["status"].(string); status != "success" {
				return &cliError{err: fmt.Errorf("moving %s %s to %s: status %q (migration %s)", what, from, to, status, id), code: 2}
			}
			fmt.Fprintf(a.stdout, "Success! Finished moving %s %s to %s, with migration ID %s\n", what, from, to, id)
			return nil
		},
	}
}
