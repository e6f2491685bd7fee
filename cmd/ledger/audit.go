package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) auditCmd() *cobra.Command {
	return group("audit", "Enable, list and disable audit devices; verify, tail and query the audit trail",
		a.auditEnableCmd(),
		a.auditDisableCmd(),
		a.auditListCmd(),
		a.auditVerifyCmd(),
		a.auditTailCmd(),
		a.auditQueryCmd(),
	)
}

func (a *app) auditEnableCmd() *cobra.Command {
	var (
		path, description string
		local             bool
	)
	cmd := &cobra.Command{
		Use:   "enable [flags] TYPE [K=V...]",
		Short: "Enable an audit device (file, syslog, socket, http, nats, rabbitmq, mqtt) with K=V options",
		Long: `Enable an audit device. K=V pairs are the device's options, for example:

  ledger audit enable file file_path=/var/log/ledger/audit.log`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			typ := strings.TrimSpace(args[0])
			if path == "" {
				path = typ
			}
			path = ensureTrailingSlash(sanitizePath(path))
			options, err := parseStringMap(args[1:])
			if err != nil {
				return usageErr(cmd, err)
			}
			body := map[string]any{"type": typ, "description": description, "local": local}
			if options != nil {
				body["options"] = options
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Put(cmd.Context(), "sys/audit/"+sanitizePath(path), body); err != nil {
				return fail("enabling audit device", err)
			}
			fmt.Fprintf(a.stdout, "Success! Enabled the %s audit device at: %s\n", typ, path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&path, "path", "", "where to enable the device (default: its type)")
	f.StringVar(&description, "description", "", "human-friendly description")
	f.BoolVar(&local, "local", false, "do not replicate this device to other clusters")
	return cmd
}

func (a *app) auditDisableCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "disable PATH",
		Short: "Disable an audit device",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := ensureTrailingSlash(sanitizePath(args[0]))
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Delete(cmd.Context(), "sys/audit/"+sanitizePath(path)); err != nil {
				return fail("disabling audit device at "+path, err)
			}
			fmt.Fprintln(a.stdout, "Success! Disabled audit device (if it was enabled) at: "+path)
			return nil
		},
	}
}

func (a *app) auditListCmd() *cobra.Command {
	var detailed bool
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List the enabled audit devices",
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
			s, err := c.Get(cmd.Context(), "sys/audit", nil)
			if err != nil {
				return fail("listing audit devices", err)
			}
			devices := mountsOf(s)
			if p.format != formatTable {
				return p.Structured(devices)
			}
			if len(devices) == 0 {
				fmt.Fprintln(a.stdout, "No audit devices are enabled.")
				return nil
			}
			paths := make([]string, 0, len(devices))
			for k := range devices {
				paths = append(paths, k)
			}
			sort.Strings(paths)
			var rows [][]string
			for _, path := range paths {
				d := devices[path]
				row := []string{path, stringOf(d["type"]), stringOf(d["description"])}
				if detailed {
					replication := "replicated"
					if boolOf(d["local"]) {
						replication = "local"
					}
					row = append(row, replication, optionsString(d["options"]))
				}
				rows = append(rows, row)
			}
			header := []string{"Path", "Type", "Description"}
			if detailed {
				header = append(header, "Replication", "Options")
			}
			return p.Table(header, rows)
		},
	}
	cmd.Flags().BoolVar(&detailed, "detailed", false, "show replication and options")
	return cmd
}
