package main

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
)

func (a *app) auditVerifyCmd() *cobra.Command {
	var from uint64
	cmd := &cobra.Command{
		Use:   "verify [flags]",
		Short: "Recompute the log's hash chain and name the first missing or altered sequence",
		Long: `Recompute the hash chain over the raw messages of the log (and of the LEDGER_AUDIT
stream of read records): every batch must carry the hash of the one before it, no sequence may
be missing, every event must authenticate and every checkpoint must match. Needs sudo.

With -from SEQ, start at SEQ instead of the beginning; its link to SEQ-1 is trusted only if a
checkpoint vouches for SEQ-1 (see 'ledger read sys/ledger/audit/checkpoints').

Exit code 0: intact; 2: a sequence is missing or altered (or the server refused).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if from > 0 {
				q.Set("from", strconv.FormatUint(from, 10))
			}
			s, err := c.Get(cmd.Context(), "sys/ledger/audit/verify", q)
			if err != nil {
				return fail("verifying the audit chain", err)
			}
			if s == nil {
				return fail("verifying the audit chain", errors.New("the server answered nothing"))
			}
			ok := boolOf(s.Data["ok"])
			if p.format != formatTable {
				if err := p.Structured(s.Data); err != nil {
					return err
				}
			} else {
				for _, part := range []struct{ key, title string }{{"log", "Log"}, {"audit_stream", "Audit stream"}} {
					rep, _ := s.Data[part.key].(map[string]any)
					printVerifyReport(a, part.title, rep)
				}
			}
			if !ok {
				logRep, _ := s.Data["log"].(map[string]any)
				bad := stringOf(logRep["first_bad_seq"])
				where := "the log"
				if bad == "" {
					auditRep, _ := s.Data["audit_stream"].(map[string]any)
					bad, where = stringOf(auditRep["first_bad_seq"]), "the audit stream"
				}
				return &cliError{op: "verifying the audit chain", err: fmt.Errorf("the first missing or altered sequence of %s is %s", where, bad), code: 2}
			}
			if p.format == formatTable {
				fmt.Fprintln(a.stdout, "Success! The hash chain is intact.")
			}
			return nil
		},
	}
	cmd.Flags().Uint64Var(&from, "from", 0, "first sequence to verify (its predecessor must be vouched for by a checkpoint)")
	return cmd
}

func printVerifyReport(a *app, title string, rep map[string]any) {
	if rep == nil {
		return
	}
	stream := stringOf(rep["stream"])
	if boolOf(rep["ok"]) {
		fmt.Fprintf(a.stdout, "%s %s: seqs %s to %s intact (%s batches, %s events, %s checkpoints matched)\n", title, stream,
			stringOf(rep["from"]), stringOf(rep["to"]), stringOf(rep["batches"]), stringOf(rep["events"]), stringOf(rep["checkpoints_checked"]))
		return
	}
	fmt.Fprintf(a.stdout, "%s %s: FAILED: first missing or altered sequence: %s\n", title, stream, stringOf(rep["first_bad_seq"]))
	probs, _ := rep["problems"].([]any)
	for _, pr := range probs {
		m, _ := pr.(map[string]any)
		fmt.Fprintf(a.stdout, "  seq %s (%s): %s\n", stringOf(m["seq"]), stringOf(m["kind"]), stringOf(m["detail"]))
	}
}
