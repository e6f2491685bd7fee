package main

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) kvMetadataCmd() *cobra.Command {
	return group("metadata", "Read and change a secret's metadata and version settings (KV v2)",
		a.kvMetadataGetCmd(),
		a.kvMetadataPutCmd(),
		a.kvMetadataDeleteCmd(),
	)
}

func (a *app) kvMetadataGetCmd() *cobra.Command {
	var (
		kf kvFlags
		pf pointFlags
	)
	cmd := &cobra.Command{
		Use:   "get [flags] PATH",
		Short: "Print a secret's metadata and the state of each version (as it was with -at or -at-seq)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, t, err := a.kvTarget(ctx, kf, args[0], false)
			if err != nil {
				return err
			}
			if t.version != 2 {
				return &cliError{err: errors.New("K/V engine mount must be version 2 for metadata support"), code: 2}
			}
			path := t.path("metadata")
			readPath, query, err := pf.apply(cmd, path, nil)
			if err != nil {
				return err
			}
			s, err := c.Get(ctx, readPath, query)
			if err != nil {
				return fail("reading "+path, err)
			}
			if s == nil {
				return noValue(path)
			}
			if p.format != formatTable {
				return p.Secret(s)
			}
			p.Warnings(s.Warnings)
			printPathBanner(p, "Metadata Path", path)
			top := make(map[string]any, len(s.Data))
			for k, v := range s.Data {
				if k != "versions" {
					top[k] = v
				}
			}
			if err := printSection(p, "Metadata", top); err != nil {
				return err
			}
			versions := mapOf(s.Data["versions"])
			ids := make([]string, 0, len(versions))
			for id := range versions {
				ids = append(ids, id)
			}
			sort.Slice(ids, func(i, j int) bool {
				a, _ := strconv.Atoi(ids[i])
				b, _ := strconv.Atoi(ids[j])
				return a < b
			})
			for _, id := range ids {
				fmt.Fprintln(p.out)
				if err := printSection(p, "Version "+id, mapOf(versions[id])); err != nil {
					return err
				}
			}
			return nil
		},
	}
	kf.register(cmd)
	pf.register(cmd)
	return cmd
}

func (a *app) kvMetadataPutCmd() *cobra.Command {
	var (
		kf                 kvFlags
		maxVersions        int
		casRequired        bool
		deleteVersionAfter time.Duration
		custom             []string
	)
	cmd := &cobra.Command{
		Use:   "put [flags] PATH",
		Short: "Change a secret's version settings and custom metadata",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			body := map[string]any{}
			f := cmd.Flags()
			if f.Changed("max-versions") {
				body["max_versions"] = maxVersions
			}
			if f.Changed("cas-required") {
				body["cas_required"] = casRequired
			}
			if f.Changed("delete-version-after") {
				body["delete_version_after"] = durationParam(deleteVersionAfter)
			}
			if len(custom) > 0 {
				m, err := parseStringMap(custom)
				if err != nil {
					return usageErr(cmd, err)
				}
				body["custom_metadata"] = m
			}
			c, t, err := a.kvTarget(ctx, kf, args[0], false)
			if err != nil {
				return err
			}
			if t.version != 2 {
				return &cliError{err: errors.New("K/V engine mount must be version 2 for metadata support"), code: 2}
			}
			path := t.path("metadata")
			if _, err := c.Post(ctx, path, body); err != nil {
				return fail("writing metadata to "+path, err)
			}
			fmt.Fprintln(a.stdout, "Success! Data written to: "+path)
			return nil
		},
	}
	kf.register(cmd)
	f := cmd.Flags()
	f.IntVar(&maxVersions, "max-versions", 0, "versions to keep (0: the mount's setting)")
	f.BoolVar(&casRequired, "cas-required", false, "require -cas on every write")
	durationFlag(f, &deleteVersionAfter, "delete-version-after", "delete versions this long after they are written (0: never)")
	f.StringArrayVar(&custom, "custom-metadata", nil, "K=V custom metadata (repeatable)")
	return cmd
}

func (a *app) kvMetadataDeleteCmd() *cobra.Command {
	var kf kvFlags
	cmd := &cobra.Command{
		Use:   "delete [flags] PATH",
		Short: "Delete a secret with all its versions and metadata, permanently",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, t, err := a.kvTarget(ctx, kf, args[0], false)
			if err != nil {
				return err
			}
			if t.version != 2 {
				return &cliError{err: errors.New("K/V engine mount must be version 2 for metadata support"), code: 2}
			}
			path := t.path("metadata")
			if _, err := c.Delete(ctx, path); err != nil {
				return fail("deleting "+path, err)
			}
			fmt.Fprintln(a.stdout, "Success! Data deleted (if it existed) at: "+path)
			return nil
		},
	}
	kf.register(cmd)
	return cmd
}
