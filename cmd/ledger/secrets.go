package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) secretsCmd() *cobra.Command {
	return group("secrets", "Enable, tune, list and disable secrets engines",
		a.secretsEnableCmd(),
		a.secretsDisableCmd(),
		a.secretsListCmd(),
		a.secretsTuneCmd(),
		a.moveCmd(false),
	)
}

// mountFlags are the settings shared by secrets/auth enable and tune.
type mountFlags struct {
	description             string
	defaultLeaseTTL, maxTTL time.Duration
	options                 []string
	local                   bool
}

func (m *mountFlags) register(cmd *cobra.Command, withLocal bool) {
	f := cmd.Flags()
	f.StringVar(&m.description, "description", "", "human-friendly description")
	durationFlag(f, &m.defaultLeaseTTL, "default-lease-ttl", "default lease TTL (default: the system's)")
	durationFlag(f, &m.maxTTL, "max-lease-ttl", "maximum lease TTL (default: the system's)")
	f.StringArrayVar(&m.options, "options", nil, "K=V option for the engine (repeatable)")
	if withLocal {
		f.BoolVar(&m.local, "local", false, "do not replicate this mount to other clusters")
	}
}

// config is the mount's "config" block: only the TTLs that were set.
func (m *mountFlags) config() map[string]any {
	cfg := map[string]any{}
	if m.defaultLeaseTTL > 0 {
		cfg["default_lease_ttl"] = durationParam(m.defaultLeaseTTL)
	}
	if m.maxTTL > 0 {
		cfg["max_lease_ttl"] = durationParam(m.maxTTL)
	}
	return cfg
}

func (a *app) secretsEnableCmd() *cobra.Command {
	var (
		mf      mountFlags
		path    string
		version int
	)
	cmd := &cobra.Command{
		Use:   "enable [flags] TYPE",
		Short: "Mount a secrets engine (kv, kv-v2, transit, database, pki, ...)",
		Long: `Mount a secrets engine at -path (default: its type). "kv-v2" is the kv engine
with versioning (-version=2).`,
		Args: exactArgs(1),
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
			engine := typ
			if typ == "kv-v2" {
				engine, version = "kv", 2
			}
			if version > 0 {
				if options == nil {
					options = map[string]string{}
				}
				options["version"] = fmt.Sprint(version)
			}
			body := map[string]any{"type": engine, "description": mf.description, "config": mf.config(), "local": mf.local}
			if options != nil {
				body["options"] = options
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Post(cmd.Context(), "sys/mounts/"+sanitizePath(path), body); err != nil {
				return fail("enabling", err)
			}
			fmt.Fprintf(a.stdout, "Success! Enabled the %s secrets engine at: %s\n", typ, path)
			return nil
		},
	}
	mf.register(cmd, true)
	cmd.Flags().StringVar(&path, "path", "", "where to mount the engine (default: its type)")
	cmd.Flags().IntVar(&version, "version", 0, "engine version (kv: 1 or 2)")
	return cmd
}

func (a *app) secretsDisableCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "disable PATH",
		Short: "Unmount a secrets engine, revoking its leases and deleting its data",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := ensureTrailingSlash(sanitizePath(args[0]))
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Delete(cmd.Context(), "sys/mounts/"+sanitizePath(path)); err != nil {
				return fail("disabling secrets engine at "+path, err)
			}
			fmt.Fprintln(a.stdout, "Success! Disabled the secrets engine (if it existed) at: "+path)
			return nil
		},
	}
}

func (a *app) secretsTuneCmd() *cobra.Command {
	var mf mountFlags
	cmd := &cobra.Command{
		Use:   "tune [flags] PATH",
		Short: "Change a secrets engine's TTLs, description or options",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := ensureTrailingSlash(sanitizePath(args[0]))
			body := mf.config()
			if cmd.Flags().Changed("description") {
				body["description"] = mf.description
			}
			options, err := parseStringMap(mf.options)
			if err != nil {
				return usageErr(cmd, err)
			}
			if options != nil {
				body["options"] = options
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.Post(cmd.Context(), "sys/mounts/"+sanitizePath(path)+"/tune", body); err != nil {
				return fail("tuning secrets engine "+path, err)
			}
			fmt.Fprintln(a.stdout, "Success! Tuned the secrets engine at: "+path)
			return nil
		},
	}
	mf.register(cmd, false)
	return cmd
}

func (a *app) secretsListCmd() *cobra.Command {
	var detailed bool
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List the mounted secrets engines",
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
			s, err := c.Get(cmd.Context(), "sys/mounts", nil)
			if err != nil {
				return fail("listing secrets engines", err)
			}
			return printMounts(p, mountsOf(s), detailed, false)
		},
	}
	cmd.Flags().BoolVar(&detailed, "detailed", false, "show TTLs, options, replication and more")
	return cmd
}

// mountsOf extracts path → mount entries from a sys/mounts or sys/auth
// answer, skipping any envelope fields a server put at the top level.
func mountsOf(s *Secret) map[string]map[string]any {
	out := map[string]map[string]any{}
	if s == nil {
		return out
	}
	for k, v := range s.DataOrTop() {
		if m := mapOf(v); m != nil && m["type"] != nil {
			out[k] = m
		}
	}
	return out
}

// printMounts prints secrets engines or auth methods as Vault does.
func printMounts(p *printer, mounts map[string]map[string]any, detailed, auth bool) error {
	if p.format != formatTable {
		return p.Structured(mounts)
	}
	paths := make([]string, 0, len(mounts))
	for k := range mounts {
		paths = append(paths, k)
	}
	sort.Strings(paths)
	var rows [][]string
	for _, path := range paths {
		m := mounts[path]
		if !detailed {
			rows = append(rows, []string{path, stringOf(m["type"]), stringOf(m["accessor"]), stringOf(m["description"])})
			continue
		}
		cfg := mapOf(m["config"])
		replication := "replicated"
		if boolOf(m["local"]) {
			replication = "local"
		}
		row := []string{path, stringOf(m["type"]), stringOf(m["accessor"]),
			ttlOrSystem(cfg["default_lease_ttl"]), ttlOrSystem(cfg["max_lease_ttl"])}
		if auth {
			row = append(row, stringOf(cfg["token_type"]))
		} else {
			row = append(row, fmt.Sprint(boolOf(cfg["force_no_cache"])))
		}
		row = append(row, replication, fmt.Sprint(boolOf(m["seal_wrap"])), optionsString(m["options"]),
			stringOf(m["description"]), stringOf(m["uuid"]))
		rows = append(rows, row)
	}
	header := []string{"Path", "Type", "Accessor", "Description"}
	if detailed {
		header = []string{"Path", "Plugin", "Accessor", "Default TTL", "Max TTL", "Force No Cache", "Replication", "Seal Wrap", "Options", "Description", "UUID"}
		if auth {
			header[5] = "Token Type"
		}
	}
	return p.Table(header, rows)
}

func ttlOrSystem(v any) string {
	if intOf(v) == 0 {
		return "system"
	}
	return stringOf(humanDurationValue(v))
}

func optionsString(v any) string {
	m := mapOf(v)
	if len(m) == 0 {
		return ""
	}
	return fmt.Sprintf("%v", m)
}
