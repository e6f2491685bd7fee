package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// `ledger scan PATH…`: find values Ledger wrote in files, directories and git history, by
// asking the server which candidate strings match a keyed fingerprint
// (sys/ledger/fingerprints/match). Exit 1 when anything matches, 0 when clean, 2 on an error.

const scanBatch = 5000 // candidates per match request: the most the server takes

// scanFinding is one place a known value was found.
type scanFinding struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Commit string `json:"commit,omitempty"`
	matchResult
}

type scanSummary struct {
	Findings   []scanFinding `json:"findings"`
	Files      int           `json:"files_scanned"`
	Commits    int           `json:"commits_scanned"`
	Bytes      int64         `json:"bytes_scanned"`
	Candidates int           `json:"candidates"`
	Binary     int           `json:"binary_files_skipped"`
	Truncated  int           `json:"files_truncated"`
	Seconds    float64       `json:"seconds"`
}

func (a *app) scanCmd() *cobra.Command {
	var (
		history bool
		maxSize int64
	)
	cmd := &cobra.Command{
		Use:   "scan [flags] PATH...",
		Short: "Find values stored in Ledger in files, directories and git history",
		Long: `Scan files, directories and git repositories (every commit on every ref, with
"git log -p") for values Ledger wrote: KV fields, database passwords, AppRole
secret IDs. Candidate strings (quoted strings, key=value values, URL passwords,
words of password-like characters, ` + fmt.Sprint(scanMinLen) + ` bytes or more) are sent to the
server, which answers by keyed fingerprint; no value is ever returned or
printed. Binary files are skipped and huge files read up to -max-file-size.

Exit status: 1 when anything matches (so it can gate CI or a pre-commit hook),
0 when clean, 2 on an error. -format=table|json|sarif. The token needs sudo on
sys/ledger/fingerprints/match.`,
		Args: rangeArgs(1, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := a.leakFormat("table", "json", "sarif")
			if err != nil {
				return err
			}
			sum, err := a.scan(cmd.Context(), args, history, maxSize)
			if err != nil {
				return &cliError{op: "scanning", err: err, code: 2}
			}
			if err := a.printScan(format, sum); err != nil {
				return &cliError{op: "printing", err: err, code: 2}
			}
			if len(sum.Findings) > 0 {
				return exitStatus(1)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&history, "history", true, "for a git repository, scan every commit too (needs the git binary)")
	cmd.Flags().Int64Var(&maxSize, "max-file-size", 16<<20, "read at most this many bytes of a file (and of one file's lines in one commit)")
	return cmd
}

// leakFormat reads -format (or LEDGER_FORMAT / VAULT_FORMAT) against the formats a leak command
// knows; the first is the default.
func (a *app) leakFormat(allowed ...string) (string, error) {
	f := a.format
	if f == "" {
		f = a.firstEnv("LEDGER_FORMAT", "VAULT_FORMAT")
	}
	if f == "" {
		return allowed[0], nil
	}
	f = strings.ToLower(f)
	for _, x := range allowed {
		if f == x {
			return f, nil
		}
	}
	return "", &usageError{err: fmt.Errorf("invalid format %q: use %s", f, strings.Join(allowed, ", ")), useLine: "-format=" + strings.Join(allowed, "|"), cmdPath: "ledger"}
}

func (a *app) scan(ctx context.Context, paths []string, history bool, maxSize int64) (*scanSummary, error) {
	if maxSize <= 0 {
		return nil, errors.New("-max-file-size must be positive")
	}
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	cands := newCandidates()
	lastProgress := start
	cands.progress = func(cs *candidates) {
		if now := time.Now(); now.Sub(lastProgress) >= 2*time.Second {
			lastProgress = now
			fmt.Fprintf(a.stderr, "scan: %d files, %d commits, %.1f MB, %d candidates…\n", cs.files, cs.commits, float64(cs.bytes)/1e6, len(cs.order))
		}
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			if err := cands.scanFile(ctx, p, p, maxSize); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			continue
		}
		if err := cands.scanTree(ctx, p, maxSize); err != nil {
			return nil, err
		}
		if history && isGitRepo(p) {
			if err := cands.scanHistory(ctx, p, maxSize); err != nil {
				return nil, err
			}
		}
	}
	sum := &scanSummary{Files: cands.files, Commits: cands.commits, Bytes: cands.bytes, Candidates: len(cands.order),
		Binary: cands.binary, Truncated: cands.huge, Findings: []scanFinding{}}
	for i := 0; i < len(cands.order); i += scanBatch {
		batch := cands.order[i:min(i+scanBatch, len(cands.order))]
		matches, err := matchBatch(ctx, c, batch)
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			if m.Candidate < 0 || m.Candidate >= len(batch) {
				continue
			}
			for _, loc := range cands.where[batch[m.Candidate]] {
				sum.Findings = append(sum.Findings, scanFinding{File: loc.File, Line: loc.Line, Commit: loc.Commit, matchResult: m.matchResult})
			}
		}
		if time.Since(lastProgress) >= 2*time.Second {
			lastProgress = time.Now()
			fmt.Fprintf(a.stderr, "scan: matched %d of %d candidates…\n", i+len(batch), len(cands.order))
		}
	}
	sort.SliceStable(sum.Findings, func(i, j int) bool {
		x, y := sum.Findings[i], sum.Findings[j]
		if x.File != y.File {
			return x.File < y.File
		}
		if x.Line != y.Line {
			return x.Line < y.Line
		}
		return x.Commit < y.Commit
	})
	sum.Seconds = time.Since(start).Seconds()
	return sum, nil
}

// matchResult is one match the server reports: which candidate, and where its value lives.
type matchResult struct {
	SecretPath string `json:"secret_path"`
	Mount      string `json:"mount"`
	Path       string `json:"path"`
	Version    uint64 `json:"version"`
	Field      string `json:"field"`
	Kind       string `json:"kind"`
	State      string `json:"state"`
	Live       bool   `json:"live"`
}

// serverMatch is a match as sys/ledger/fingerprints/match answers it.
type serverMatch struct {
	Candidate int `json:"candidate"`
	matchResult
}

// matchBatch asks the server about one batch, waiting and retrying while it is rate-limited.
func matchBatch(ctx context.Context, c *Client, batch []string) ([]serverMatch, error) {
	wait := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		var out struct {
			Data struct {
				Matches []serverMatch `json:"matches"`
			} `json:"data"`
		}
		err := c.Call(ctx, http.MethodPost, "sys/ledger/fingerprints/match", map[string]any{"candidates": batch}, &out)
		var ae *APIError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusTooManyRequests && attempt < 50 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
			wait = min(wait*2, 2*time.Second)
			continue
		}
		if errors.As(err, &ae) && ae.StatusCode == http.StatusForbidden {
			return nil, fmt.Errorf("%w (the token needs sudo on sys/ledger/fingerprints/match)", err)
		}
		return out.Data.Matches, err
	}
}

func (a *app) printScan(format string, sum *scanSummary) error {
	switch format {
	case "json":
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	case "sarif":
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sarifOf(sum))
	}
	if len(sum.Findings) == 0 {
		fmt.Fprintf(a.stdout, "No stored secrets found (%d files, %d commits, %d candidates).\n", sum.Files, sum.Commits, sum.Candidates)
	} else {
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "Location\tCommit\tSecret\tVersion\tField\tState")
		fmt.Fprintln(tw, "--------\t------\t------\t-------\t-----\t-----")
		for _, f := range sum.Findings {
			commit := "-"
			if f.Commit != "" {
				commit = f.Commit[:min(12, len(f.Commit))]
			}
			fmt.Fprintf(tw, "%s:%d\t%s\t%s\t%d\t%s\t%s\n", f.File, f.Line, commit, f.SecretPath, f.Version, f.Field, f.State)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "\n%d finding(s). Rotate live ones now: ledger incident -path <secret> -contain\n", len(sum.Findings))
	}
	if sum.Binary > 0 || sum.Truncated > 0 {
		fmt.Fprintf(a.stderr, "scan: skipped %d binary file(s); read %d huge file(s) only up to -max-file-size\n", sum.Binary, sum.Truncated)
	}
	return nil
}

// --- SARIF 2.1.0 ---

const sarifSchema = "https://json.schemastore.org/sarif-2.1.0.json"

func sarifOf(sum *scanSummary) map[string]any {
	rules := []map[string]any{{
		"id":                   "ledger/stored-secret",
		"name":                 "StoredSecretInSource",
		"shortDescription":     map[string]any{"text": "A value stored in Ledger appears in source"},
		"fullDescription":      map[string]any{"text": "The string matches the keyed fingerprint of a secret value Ledger wrote (a KV field, a database password, an AppRole secret ID). Rotate it and remove it from the repository."},
		"helpUri":              "https://github.com/ledger-secrets/ledger#leak-response",
		"defaultConfiguration": map[string]any{"level": "error"},
	}}
	results := []map[string]any{}
	for _, f := range sum.Findings {
		uri := filepath.ToSlash(f.File)
		msg := fmt.Sprintf("Stored secret %s (version %d, field %q, %s) appears here", f.SecretPath, f.Version, f.Field, f.State)
		if f.Commit != "" {
			msg += " in commit " + f.Commit
		}
		level := "error"
		if !f.Live {
			level = "warning"
		}
		r := map[string]any{
			"ruleId": "ledger/stored-secret", "ruleIndex": 0, "level": level,
			"message": map[string]any{"text": msg},
			"locations": []map[string]any{{"physicalLocation": map[string]any{
				"artifactLocation": map[string]any{"uri": uri},
				"region":           map[string]any{"startLine": max(f.Line, 1)},
			}}},
			"properties": map[string]any{"secret_path": f.SecretPath, "version": f.Version, "field": f.Field, "state": f.State, "kind": f.Kind},
		}
		if f.Commit != "" {
			r["partialFingerprints"] = map[string]any{"commitSha": f.Commit}
		}
		results = append(results, r)
	}
	return map[string]any{
		"version": "2.1.0",
		"$schema": sarifSchema,
		"runs": []map[string]any{{
			"tool":    map[string]any{"driver": map[string]any{"name": "ledger scan", "informationUri": "https://github.com/ledger-secrets/ledger", "rules": rules}},
			"results": results,
		}},
	}
}
