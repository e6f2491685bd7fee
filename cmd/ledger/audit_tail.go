package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// auditFilterFlags are the record filters tail and query share.
type auditFilterFlags struct {
	path, accessor string
	errorsOnly     bool
}

func (f *auditFilterFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.path, "path", "", "only requests whose path starts with this")
	fl.StringVar(&f.accessor, "accessor", "", "only requests made with (or creating) the token with this accessor")
	fl.BoolVar(&f.errorsOnly, "errors-only", false, "only requests that failed or were denied")
}

func (f *auditFilterFlags) query() url.Values {
	q := url.Values{}
	if f.path != "" {
		q.Set("path", f.path)
	}
	if f.accessor != "" {
		q.Set("accessor", f.accessor)
	}
	if f.errorsOnly {
		q.Set("errors_only", "true")
	}
	return q
}

// printRecords writes each record as one line of JSON.
func (a *app) printRecords(s *Secret) error {
	// A node that could not yet store its own spooled records says so: the answer lacks them.
	for _, w := range s.Warnings {
		fmt.Fprintln(a.stderr, "WARNING! "+w)
	}
	recs, _ := s.Data["records"].([]any)
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode record: %w", err)
		}
		fmt.Fprintln(a.stdout, string(b))
	}
	return nil
}

func (a *app) auditTailCmd() *cobra.Command {
	var (
		n        int
		follow   bool
		interval time.Duration
		filter   auditFilterFlags
	)
	cmd := &cobra.Command{
		Use:   "tail [flags]",
		Short: "Print the latest audit records as JSON lines (with -f, keep following)",
		Long: `Print the latest audit records — writes from the log, reads and denials from the
LEDGER_AUDIT stream — as JSON lines, in Vault's audit format, without any audit device. With
-f, keep polling for new records until interrupted. Needs sudo.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			q := filter.query()
			q.Set("n", strconv.Itoa(n))
			if follow {
				// Each poll is itself a request with a record; a follower does not show its own.
				q.Set("exclude_path", "sys/ledger/audit/")
			}
			s, err := c.Get(cmd.Context(), "sys/ledger/audit/tail", q)
			if err != nil {
				return fail("reading the audit records", err)
			}
			if s == nil {
				return nil
			}
			if err := a.printRecords(s); err != nil {
				return err
			}
			if !follow {
				return nil
			}
			q.Del("n")
			for {
				q.Set("cursor", stringOf(s.Data["cursor"]))
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(interval):
				}
				next, err := c.Get(cmd.Context(), "sys/ledger/audit/tail", q)
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil
					}
					return fail("following the audit records", err)
				}
				if next == nil {
					continue
				}
				s = next
				if err := a.printRecords(s); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().IntVarP(&n, "lines", "n", 20, "how many of the latest records to print first")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records as they come")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "how often -f polls")
	filter.register(cmd)
	return cmd
}

func (a *app) auditQueryCmd() *cobra.Command {
	var (
		since, until string
		limit        int
		filter       auditFilterFlags
	)
	cmd := &cobra.Command{
		Use:   "query [flags]",
		Short: "Search the audit records (log and LEDGER_AUDIT) and print them as JSON lines",
		Long: `Search the audit records without any audit device and print the matches as JSON lines,
oldest first. -since and -until take an RFC 3339 time, unix seconds, or a duration meaning that
long ago ("15m", "7d"). Needs sudo.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			q := filter.query()
			if since != "" {
				q.Set("since", since)
			}
			if until != "" {
				q.Set("until", until)
			}
			q.Set("limit", strconv.Itoa(limit))
			s, err := c.Get(cmd.Context(), "sys/ledger/audit/query", q)
			if err != nil {
				return fail("querying the audit records", err)
			}
			if s == nil {
				return nil
			}
			if err := a.printRecords(s); err != nil {
				return err
			}
			if boolOf(s.Data["truncated"]) {
				fmt.Fprintf(a.stderr, "WARNING! More records match; only the first %d are shown (raise -limit or narrow the query).\n", limit)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "only records at or after this time")
	f.StringVar(&until, "until", "", "only records at or before this time")
	f.IntVar(&limit, "limit", 1000, "the most records to print (up to 10000)")
	filter.register(cmd)
	return cmd
}
