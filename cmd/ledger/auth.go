package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) authCmd() *cobra.Command {
	return group("auth", "Enable, list and disable auth methods",
		a.authEnableCmd(),
		a.authDisableCmd(),
		a.authListCmd(),
		a.moveCmd(true),
	)
}

func (a *app) authEnableCmd() *cobra.Command {
	var (
		mf   mountFlags
		path string
	)
	cmd := &cobra.Command{
		Use:   "enable [flags] TYPE",
		Short: "Enable an auth method (userpass, approle, kubernetes, jwt, ...)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			typ := strings.TrimSpace(args[0])
			if path == "" {
				path = typ
			}
			path = ensureTrailingSlash(sanitizePath(path))
			options, err := parseStringMap(mf.options)
			if err != nil {
				return usageErr(cmd, err)
			}
			body := map[string]any{"type": typ, "description": mf.description, "config": mf.config(), "local": mf.local}
			if options != nil {
				body["options"] = options
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Post(cmd.Context(), "sys/auth/"+sanitizePath(path), body); err != nil {
				return fail("enabling "+typ+" auth", err)
			}
			fmt.Fprintf(a.stdout, "Success! Enabled %s auth method at: %s\n", typ, path)
			return nil
		},
	}
	mf.register(cmd, true)
	cmd.Flags().StringVar(&path, "path", "", "where to mount the method (default: its type)")
	return cmd
}

func (a *app) authDisableCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "disable PATH",
		Short: "Disable an auth method, revoking the tokens it issued",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := ensureTrailingSlash(sanitizePath(args[0]))
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Delete(cmd.Context(), "sys/auth/"+sanitizePath(path)); err != nil {
				return fail("disabling auth method at "+path, err)
			}
			fmt.Fprintln(a.stdout, "Success! Disabled the auth method (if it existed) at: "+path)
			return nil
		},
	}
}

func (a *app) authListCmd() *cobra.Command {
	var detailed bool
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List the enabled auth methods",
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
			s, err := c.Get(cmd.Context(), "sys/auth", nil)
			if err != nil {
				return fail("listing auth methods", err)
			}
			return printMounts(p, mountsOf(s), detailed, true)
		},
	}
	cmd.Flags().BoolVar(&detailed, "detailed", false, "show TTLs, options, replication and more")
	return cmd
}
