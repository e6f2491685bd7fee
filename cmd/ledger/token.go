package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) tokenCmd() *cobra.Command {
	return group("token", "Create, inspect, renew and revoke tokens",
		a.tokenCreateCmd(),
		a.tokenLookupCmd(),
		a.tokenRenewCmd(),
		a.tokenRevokeCmd(),
		a.tokenCapabilitiesCmd(),
	)
}

// tokenCreateRequest is the body of auth/token/create.
type tokenCreateRequest struct {
	ID              string            `json:"id,omitempty"`
	Policies        []string          `json:"policies,omitempty"`
	Metadata        map[string]string `json:"meta,omitempty"`
	NoParent        bool              `json:"no_parent,omitempty"`
	NoDefaultPolicy bool              `json:"no_default_policy,omitempty"`
	TTL             string            `json:"ttl,omitempty"`
	ExplicitMaxTTL  string            `json:"explicit_max_ttl,omitempty"`
	Period          string            `json:"period,omitempty"`
	DisplayName     string            `json:"display_name,omitempty"`
	NumUses         int               `json:"num_uses,omitempty"`
	Renewable       *bool             `json:"renewable,omitempty"`
	Type            string            `json:"type,omitempty"`
	EntityAlias     string            `json:"entity_alias,omitempty"`
}

func (a *app) tokenCreateCmd() *cobra.Command {
	var (
		req                      tokenCreateRequest
		ttl, explicitMax, period time.Duration
		renewable                bool
		metadata                 []string
		role, field              string
	)
	cmd := &cobra.Command{
		Use:   "create [flags]",
		Short: "Create a token (a child of the current one unless -orphan)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			meta, err := parseStringMap(metadata)
			if err != nil {
				return usageErr(cmd, err)
			}
			body := req
			body.Metadata = meta
			if ttl > 0 {
				body.TTL = durationParam(ttl)
			}
			if explicitMax > 0 {
				body.ExplicitMaxTTL = durationParam(explicitMax)
			}
			if period > 0 {
				body.Period = durationParam(period)
			}
			body.Renewable = &renewable
			path := "auth/token/create"
			if role != "" {
				path += "/" + role
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.Post(cmd.Context(), path, body)
			if err != nil {
				return fail("creating token", err)
			}
			if field != "" {
				return p.Field(rawField(s, field), field)
			}
			return p.Secret(s)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&req.Policies, "policy", nil, "policy to attach (repeatable or comma-separated)")
	durationFlag(f, &ttl, "ttl", "initial TTL (e.g. 1h, 30m, 3600); default: the mount's")
	durationFlag(f, &explicitMax, "explicit-max-ttl", "hard limit on the token's life, renewals included")
	durationFlag(f, &period, "period", "make a periodic token, renewable forever by this period")
	f.IntVar(&req.NumUses, "use-limit", 0, "number of uses before the token is revoked (0: unlimited)")
	f.BoolVar(&renewable, "renewable", true, "allow the token to be renewed")
	f.BoolVar(&req.NoParent, "orphan", false, "create a token with no parent: it outlives its creator")
	f.BoolVar(&req.NoDefaultPolicy, "no-default-policy", false, "do not attach the \"default\" policy")
	f.StringVar(&req.DisplayName, "display-name", "", "name shown in audit logs")
	f.StringArrayVar(&metadata, "metadata", nil, "K=V metadata for audit logs (repeatable)")
	f.StringVar(&req.ID, "id", "", "the token value itself (root only; default: random)")
	f.StringVar(&req.Type, "type", "", "token type: service or batch")
	f.StringVar(&role, "role", "", "create the token against this token role")
	f.StringVar(&req.EntityAlias, "entity-alias", "", "entity alias to attach (with -role)")
	f.StringVar(&field, "field", "", "print only this field (e.g. -field=token)")
	return cmd
}

func (a *app) tokenLookupCmd() *cobra.Command {
	var accessor bool
	var field string
	cmd := &cobra.Command{
		Use:   "lookup [flags] [TOKEN]",
		Short: "Print a token's properties (default: the current token)",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var s *Secret
			switch {
			case accessor && len(args) == 0:
				return usageErr(cmd, fmt.Errorf("-accessor needs the ACCESSOR argument"))
			case accessor:
				s, err = c.Post(ctx, "auth/token/lookup-accessor", map[string]string{"accessor": args[0]})
			case len(args) == 1:
				s, err = c.Post(ctx, "auth/token/lookup", map[string]string{"token": args[0]})
			default:
				s, err = c.Get(ctx, "auth/token/lookup-self", nil)
			}
			if err != nil {
				return fail("looking up token", err)
			}
			if s == nil {
				return &cliError{op: "looking up token", err: fmt.Errorf("the server returned no data"), code: 2}
			}
			if field != "" {
				return p.Field(rawField(s, field), field)
			}
			return p.Secret(s)
		},
	}
	cmd.Flags().BoolVar(&accessor, "accessor", false, "the argument is an accessor, not a token")
	cmd.Flags().StringVar(&field, "field", "", "print only this field")
	return cmd
}

func (a *app) tokenRenewCmd() *cobra.Command {
	var increment time.Duration
	var accessor bool
	var field string
	cmd := &cobra.Command{
		Use:   "renew [flags] [TOKEN]",
		Short: "Extend a token's TTL (default: the current token)",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			body := map[string]any{}
			if increment > 0 {
				body["increment"] = int64(increment / time.Second)
			}
			var path string
			switch {
			case accessor && len(args) == 0:
				return usageErr(cmd, fmt.Errorf("-accessor needs the ACCESSOR argument"))
			case accessor:
				path, body["accessor"] = "auth/token/renew-accessor", args[0]
			case len(args) == 1:
				path, body["token"] = "auth/token/renew", args[0]
			default:
				path = "auth/token/renew-self"
			}
			s, err := c.Put(cmd.Context(), path, body)
			if err != nil {
				return fail("renewing token", err)
			}
			if field != "" {
				return p.Field(rawField(s, field), field)
			}
			return p.Secret(s)
		},
	}
	durationFlag(cmd.Flags(), &increment, "increment", "requested TTL extension (the server may cap it)")
	cmd.Flags().BoolVar(&accessor, "accessor", false, "the argument is an accessor, not a token")
	cmd.Flags().StringVar(&field, "field", "", "print only this field")
	return cmd
}

func (a *app) tokenRevokeCmd() *cobra.Command {
	var accessor, self bool
	var mode string
	cmd := &cobra.Command{
		Use:   "revoke [flags] [TOKEN | -self]",
		Short: "Revoke a token and, unless -mode=orphan, its children and their leases",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case self && len(args) > 0:
				return usageErr(cmd, fmt.Errorf("-self takes no argument"))
			case !self && len(args) == 0:
				return usageErr(cmd, fmt.Errorf("not enough arguments (expected 1, got 0): give a token, or -self"))
			case self && accessor:
				return usageErr(cmd, fmt.Errorf("-self and -accessor cannot be combined"))
			case mode != "" && mode != "orphan":
				return usageErr(cmd, fmt.Errorf("invalid -mode %q: the only mode is \"orphan\"", mode))
			case mode == "orphan" && (self || accessor):
				return usageErr(cmd, fmt.Errorf("-mode=orphan works only with a token argument"))
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			switch {
			case self:
				_, err = c.Put(ctx, "auth/token/revoke-self", nil)
			case accessor:
				_, err = c.Put(ctx, "auth/token/revoke-accessor", map[string]string{"accessor": args[0]})
			case mode == "orphan":
				_, err = c.Put(ctx, "auth/token/revoke-orphan", map[string]string{"token": args[0]})
			default:
				_, err = c.Put(ctx, "auth/token/revoke", map[string]string{"token": args[0]})
			}
			if err != nil {
				return fail("revoking token", err)
			}
			fmt.Fprintln(a.stdout, "Success! Revoked token (if it existed)")
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&accessor, "accessor", false, "the argument is an accessor, not a token")
	f.BoolVar(&self, "self", false, "revoke the current token")
	f.StringVar(&mode, "mode", "", "\"orphan\": revoke only this token, keeping its children (as orphans)")
	return cmd
}

func (a *app) tokenCapabilitiesCmd() *cobra.Command {
	var accessor bool
	cmd := &cobra.Command{
		Use:   "capabilities [flags] [TOKEN] PATH",
		Short: "Print what a token (default: the current one) may do on a path",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			path := sanitizePath(args[len(args)-1])
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var s *Secret
			switch {
			case len(args) == 2 && accessor:
				s, err = c.Post(ctx, "sys/capabilities-accessor", map[string]any{"accessor": args[0], "paths": []string{path}})
			case len(args) == 2:
				s, err = c.Post(ctx, "sys/capabilities", map[string]any{"token": args[0], "paths": []string{path}})
			case accessor:
				return usageErr(cmd, fmt.Errorf("-accessor needs the ACCESSOR argument before PATH"))
			default:
				s, err = c.Post(ctx, "sys/capabilities-self", map[string]any{"paths": []string{path}})
			}
			if err != nil {
				return fail("listing capabilities", err)
			}
			caps := capabilitiesOf(s, path)
			if p.format != formatTable {
				return p.Structured(caps)
			}
			_, err = fmt.Fprintln(a.stdout, strings.Join(caps, ", "))
			return err
		},
	}
	cmd.Flags().BoolVar(&accessor, "accessor", false, "the first argument is an accessor, not a token")
	return cmd
}

// capabilitiesOf reads the answer of sys/capabilities*: the path's own
// entry, else the "capabilities" entry; nothing means deny.
func capabilitiesOf(s *Secret, path string) []string {
	d := s.DataOrTop()
	caps := stringsOf(d[path])
	if len(caps) == 0 {
		caps = stringsOf(d["capabilities"])
	}
	if len(caps) == 0 {
		caps = []string{"deny"}
	}
	sort.Strings(caps)
	return caps
}
