package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// pathHelpCmd is `ledger path-help PATH`, as `vault path-help`: the server's description of a
// path (GET PATH?help=1) — what it does and which fields it takes — generated from the same
// route definitions as sys/internal/specs/openapi. It never shows the path's data.
func (a *app) pathHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "path-help PATH",
		Short: "Show what a path does and which fields it takes (never its data)",
		Long: "Show the help of an API path: the matching route, its parameters with their types, and its operations.\n" +
			"With -format=json the answer also holds the path's OpenAPI document. A mount's root (\"secret/\") lists every path of the mount.",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			resp, err := c.do(cmd.Context(), http.MethodGet, strings.TrimLeft(args[0], "/"), url.Values{"help": {"1"}}, nil)
			if err != nil {
				return fail("reading help for "+args[0], err)
			}
			var body map[string]any
			if err := json.Unmarshal(resp.body, &body); err != nil {
				return fail("reading help for "+args[0], fmt.Errorf("the server's answer is not JSON: %w", err))
			}
			if p.format != formatTable {
				return p.Structured(body)
			}
			text, _ := body["help"].(string)
			p.Println(strings.TrimRight(text, "\n"))
			return nil
		},
	}
}
