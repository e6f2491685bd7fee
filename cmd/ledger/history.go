package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// History and time travel: `ledger history PATH` (sys/ledger/history/<path>) and the -at and
// -at-seq flags of `kv get`, `kv metadata get` and `policy read` (sys/ledger/at/<path>).

func (a *app) historyCmd() *cobra.Command {
	var (
		kf           kvFlags
		outputPolicy bool
	)
	cmd := &cobra.Command{
		Use:   "history [flags] PATH",
		Short: "Show every change to a secret or a policy: when, what, by whom (never a value)",
		Long: `Show every event recorded for a secret or a policy, oldest first: the time, the
operation, the version(s) it touched, the accessor of the token that caused it,
the request id (as in the audit log) and its log sequence — never a value.

PATH is a KV path (secret/app/db, or secret/data/app/db; with -mount=secret,
app/db) or a policy path (sys/policies/acl/NAME). A log sequence shown here can
be given to "kv get -at-seq=N" or "policy read -at-seq=N".

The token needs read on sys/ledger/history/<mount>/data/<path> for a KV v2
secret (<mount>/<path> for KV v1), or on
sys/ledger/history/sys/policies/acl/NAME for a policy.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client()
			if err != nil {
				return err
			}
			target, err := historyTarget(ctx, c, kf.mount, args[0])
			if err != nil {
				return err
			}
			path := "sys/ledger/history/" + target
			if outputPolicy {
				_, err := fmt.Fprint(a.stdout, policyFor(http.MethodGet, path))
				return err
			}
			p, err := a.printer()
			if err != nil {
				return err
			}
			// Not c.Get: a 404 here says why (no mount, never written) and should be shown.
			s, err := secretOf(c.do(ctx, http.MethodGet, path, nil, nil))
			if err != nil {
				return fail("reading the history of "+target, err)
			}
			if s == nil {
				return &cliError{err: fmt.Errorf("No history found at %s", target), code: 2}
			}
			if p.format != formatTable {
				return p.Secret(s)
			}
			p.Warnings(s.Warnings)
			return printHistory(p, s)
		},
	}
	kf.register(cmd)
	cmd.Flags().BoolVar(&outputPolicy, "output-policy", false, "print the policy this request needs instead of sending it")
	return cmd
}

// kvSubAPIs are the KV v2 sub-APIs a path given to history may start with; all name the secret
// whose canonical path is <mount>/data/<path>.
var kvSubAPIs = []string{"data/", "metadata/", "subkeys/", "delete/", "undelete/", "destroy/", "rollback/"}

// historyTarget turns what the user typed into the canonical path the server and policies
// use: <mount>/data/<path> for KV v2, <mount>/<path> for KV v1, sys/... as given. When the
// mount cannot be looked up (the token may read history yet not the mount), the path goes to
// the server as typed, which resolves it itself.
func historyTarget(ctx context.Context, c *Client, mountFlag, arg string) (string, error) {
	arg = sanitizePath(arg)
	if mountFlag == "" && (arg == "sys" || strings.HasPrefix(arg, "sys/")) {
		return arg, nil
	}
	probe := arg
	if mountFlag != "" {
		probe = sanitizePath(mountFlag)
	}
	mount, version, err := kvPreflight(ctx, c, probe)
	if err != nil {
		var apiErr *APIError
		if mountFlag == "" && errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusForbidden {
			return arg, nil
		}
		return "", &cliError{op: "finding the mount of " + probe, err: err}
	}
	m := sanitizePath(mount)
	rel := arg
	switch {
	case mountFlag != "":
		m = sanitizePath(mountFlag)
	case m == "":
		return arg, nil
	case arg == m:
		rel = ""
	case strings.HasPrefix(arg, m+"/"):
		rel = arg[len(m)+1:]
	}
	if version != 2 {
		return joinPath(m, rel), nil
	}
	for _, api := range kvSubAPIs {
		if rest, ok := strings.CutPrefix(rel, api); ok {
			rel = rest
			break
		}
	}
	return joinPath(m, "data", rel), nil
}

// printHistory prints the events as a table, oldest first.
func printHistory(p *printer, s *Secret) error {
	events, _ := s.Data["events"].([]any)
	rows := make([][]string, 0, len(events))
	for _, raw := range events {
		e := mapOf(raw)
		version := "-"
		switch {
		case e["version"] != nil:
			version = cellString(e["version"])
		case e["versions"] != nil:
			vs, _ := e["versions"].([]any)
			parts := make([]string, len(vs))
			for i, v := range vs {
				parts[i] = cellString(v)
			}
			version = strings.Join(parts, ",")
		}
		op := stringOf(e["operation"])
		if src := stringOf(e["source_created_time"]); src != "" {
			op += " (source created " + src + ")"
		}
		actor := stringOf(e["actor"])
		if actor == "" {
			actor = "-"
		}
		rows = append(rows, []string{cellString(e["sequence"]), stringOf(e["time"]), op,
			version, actor, stringOf(e["request_id"])})
	}
	fmt.Fprintf(p.out, "History of %s\n\n", stringOf(s.Data["path"]))
	return p.Table([]string{"Seq", "Time", "Operation", "Version", "Actor", "Request ID"}, rows)
}

// pointFlags are -at and -at-seq: a read as of a point in the log's past, which the server
// answers from sys/ledger/at/<path> by replaying that path's events up to the point. The token
// needs read on sys/ledger/at/<path> as well as on <path>.
type pointFlags struct {
	at  string
	seq uint64
}

func (f *pointFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.at, "at", "", "read as of this time (RFC 3339, e.g. 2026-01-02T15:04:05Z)")
	fs.Uint64Var(&f.seq, "at-seq", 0, "read as of this log sequence (see \"ledger history\")")
}

// apply turns the read of path into the read as of the point, when one was given: the path and
// query to send. A point given twice, or badly, is a usage error.
func (f *pointFlags) apply(cmd *cobra.Command, path string, query url.Values) (string, url.Values, error) {
	seqSet := cmd.Flags().Changed("at-seq")
	switch {
	case f.at == "" && !seqSet:
		return path, query, nil
	case f.at != "" && seqSet:
		return "", nil, usageErr(cmd, errors.New("give -at or -at-seq, not both"))
	case seqSet && f.seq == 0:
		return "", nil, usageErr(cmd, errors.New("-at-seq: log sequences start at 1"))
	}
	if f.at != "" {
		if _, err := time.Parse(time.RFC3339Nano, f.at); err != nil {
			return "", nil, usageErr(cmd, fmt.Errorf("-at=%q: expected an RFC 3339 time such as 2026-01-02T15:04:05Z", f.at))
		}
	}
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	if f.at != "" {
		q.Set("time", f.at)
	} else {
		q.Set("seq", strconv.FormatUint(f.seq, 10))
	}
	return "sys/ledger/at/" + path, q, nil
}

// policy is the -output-policy text for reading path, as of the point when one was given.
func (f *pointFlags) policy(cmd *cobra.Command, path string) string {
	if f.at == "" && !cmd.Flags().Changed("at-seq") {
		return policyFor(http.MethodGet, path)
	}
	return policyFor(http.MethodGet, "sys/ledger/at/"+path) + "\n" + policyFor(http.MethodGet, path)
}
