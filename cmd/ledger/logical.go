package main

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// read, write, list and delete address any API path directly, as Vault's
// generic commands do.

func (a *app) readCmd() *cobra.Command {
	var field string
	var outputPolicy bool
	cmd := &cobra.Command{
		Use:   "read [flags] PATH [K=V...]",
		Short: "Read data from any path (K=V pairs become query parameters)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := sanitizePath(args[0])
			if outputPolicy {
				_, err := fmt.Fprint(a.stdout, policyFor(http.MethodGet, path))
				return err
			}
			p, err := a.printer()
			if err != nil {
				return err
			}
			params, err := parseStringMap(args[1:])
			if err != nil {
				return usageErr(cmd, err)
			}
			query := url.Values{}
			for k, v := range params {
				query.Set(k, v)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.Get(cmd.Context(), path, query)
			if err != nil {
				return fail("reading "+path, err)
			}
			if s == nil {
				return noValue(path)
			}
			if field != "" {
				return p.Field(rawField(s, field), field)
			}
			return p.Secret(s)
		},
	}
	cmd.Flags().StringVar(&field, "field", "", "print only this field, with no decoration")
	cmd.Flags().BoolVar(&outputPolicy, "output-policy", false, "print the policy this request needs instead of sending it")
	return cmd
}

func (a *app) writeCmd() *cobra.Command {
	var field string
	var force, outputPolicy bool
	cmd := &cobra.Command{
		Use:   "write [flags] PATH [K=V... | -]",
		Short: "Write data to any path",
		Long: `Write data to any path. Data is given as K=V pairs: K=@FILE reads the value
from a file, K=- from stdin; a lone "-" reads a JSON object from stdin.
-force (-f) allows a write with no data.`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := sanitizePath(args[0])
			if outputPolicy {
				_, err := fmt.Fprint(a.stdout, policyFor(http.MethodPut, path))
				return err
			}
			p, err := a.printer()
			if err != nil {
				return err
			}
			data, err := parseData(args[1:], a.stdin)
			if err != nil {
				return &cliError{op: "parsing K=V data", err: err, code: 1}
			}
			if len(data) == 0 && !force {
				return &cliError{err: fmt.Errorf("Must supply data or use -force"), code: 1}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.Put(cmd.Context(), path, data)
			if err != nil {
				return fail("writing data to "+path, err)
			}
			if s == nil {
				p.Println("Success! Data written to: " + path)
				return nil
			}
			if field != "" {
				return p.Field(rawField(s, field), field)
			}
			return p.Secret(s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&field, "field", "", "print only this field of the answer")
	f.BoolVarP(&force, "force", "f", false, "allow the write with no data")
	f.BoolVar(&outputPolicy, "output-policy", false, "print the policy this request needs instead of sending it")
	return cmd
}

func (a *app) listCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list PATH",
		Short: "List the keys under a path",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := sanitizePath(args[0])
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.List(cmd.Context(), path)
			if err != nil {
				return fail("listing "+path, err)
			}
			return printKeys(p, s, path)
		},
	}
}

// printKeys prints the "keys" of a LIST answer; none is Vault's exit 2.
func printKeys(p *printer, s *Secret, path string) error {
	if s == nil {
		return noValue(path)
	}
	keys := stringsOf(s.DataOrTop()["keys"])
	if len(keys) == 0 {
		return noValue(path)
	}
	return p.List(keys, true)
}

func (a *app) deleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete PATH",
		Short: "Delete the data at a path",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := sanitizePath(args[0])
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.Delete(cmd.Context(), path)
			if err != nil {
				return fail("deleting "+path, err)
			}
			if s != nil && p.format != formatTable {
				return p.Secret(s)
			}
			p.Println("Success! Data deleted (if it existed) at: " + path)
			return nil
		},
	}
}

// noValue is Vault's answer to reading or listing nothing: exit 2.
func noValue(path string) error {
	return &cliError{err: fmt.Errorf("No value found at %s", path), code: 2}
}
