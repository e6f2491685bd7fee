package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) leaseCmd() *cobra.Command {
	return group("lease", "Look up, renew and revoke the leases of dynamic secrets",
		a.leaseLookupCmd(),
		a.leaseRenewCmd(),
		a.leaseRevokeCmd(),
	)
}

func (a *app) leaseLookupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lookup LEASE_ID",
		Short: "Print a lease's issue and expiry times and TTL",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.Put(cmd.Context(), "sys/leases/lookup", map[string]string{"lease_id": args[0]})
			if err != nil {
				return fail("looking up lease", err)
			}
			return p.Secret(s)
		},
	}
}

func (a *app) leaseRenewCmd() *cobra.Command {
	var increment time.Duration
	cmd := &cobra.Command{
		Use:   "renew [flags] LEASE_ID",
		Short: "Extend a lease",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			body := map[string]any{"lease_id": args[0]}
			if increment > 0 {
				body["increment"] = int64(increment / time.Second)
			}
			s, err := c.Put(cmd.Context(), "sys/leases/renew", body)
			if err != nil {
				return fail("renewing lease", err)
			}
			return p.Secret(s)
		},
	}
	durationFlag(cmd.Flags(), &increment, "increment", "requested extension (the server may cap it)")
	return cmd
}

func (a *app) leaseRevokeCmd() *cobra.Command {
	var prefix, force, sync bool
	cmd := &cobra.Command{
		Use:   "revoke [flags] LEASE_ID",
		Short: "Revoke a lease (or, with -prefix, every lease under a prefix)",
		Long: `Revoke a lease: the engine undoes the secret (drops the database user, ...).
Revocation is queued unless -sync. -prefix revokes every lease under the
prefix. -force (with -prefix) forgets the leases even if the engine fails to
revoke them: the secrets may then outlive their leases.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if force && !prefix {
				return usageErr(cmd, fmt.Errorf("-force requires -prefix"))
			}
			id := args[0]
			c, err := a.client()
			if err != nil {
				return err
			}
			body := map[string]any{"sync": sync}
			var path, done string
			switch {
			case force:
				path = "sys/leases/revoke-force/" + sanitizePath(id)
				body = nil
				done = "Success! Force revoked any leases with prefix: " + id
				fmt.Fprintln(a.stderr, "WARNING! -force forgets leases whether or not their secrets could be revoked:\nthose secrets may stay valid with nothing left to revoke them.")
			case prefix:
				path = "sys/leases/revoke-prefix/" + sanitizePath(id)
				done = "Success! Revoked any leases with prefix: " + id
				if !sync {
					done = "All revocation operations queued successfully!"
				}
			default:
				path = "sys/leases/revoke"
				body["lease_id"] = id
				done = "Success! Revoked lease: " + id
				if !sync {
					done = "All revocation operations queued successfully!"
				}
			}
			if _, err := c.Put(cmd.Context(), path, body); err != nil {
				return fail("revoking lease "+id, err)
			}
			fmt.Fprintln(a.stdout, done)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&prefix, "prefix", false, "revoke every lease under LEASE_ID as a prefix")
	f.BoolVar(&force, "force", false, "with -prefix: forget leases even when revocation fails (dangerous)")
	f.BoolVar(&sync, "sync", false, "wait until revocation is done instead of queueing it")
	return cmd
}
