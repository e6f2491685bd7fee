package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/config"
	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/ledger/autoseal"
	"github.com/ledger-secrets/ledger/replay"
)

// ledger replay verify (through the API: the keys live in the server) and ledger replay
// rebuild (offline, on a stopped node's data dir: it needs the root key, from the unseal keys
// or the configured auto-seal).

func (a *app) replayCmd() *cobra.Command {
	return group("replay", "Rebuild views from the log: verify the live ones, or rebuild a stopped node's",
		a.replayVerifyCmd(), a.replayRebuildCmd())
}

type verifyView struct {
	Name    string `json:"name"`
	Live    string `json:"live"`
	Rebuilt string `json:"rebuilt"`
	Match   bool   `json:"match"`
}

type verifyResult struct {
	OK           bool         `json:"ok"`
	Seq          uint64       `json:"seq"`
	From         string       `json:"from"`
	FromSeq      uint64       `json:"from_seq"`
	Events       uint64       `json:"events"`
	DurationNS   int64        `json:"duration_ns"`
	EventsPerSec float64      `json:"events_per_second"`
	Views        []verifyView `json:"views"`
	Snapshot     *struct {
		Name  string       `json:"name"`
		Seq   uint64       `json:"seq"`
		OK    bool         `json:"ok"`
		Error string       `json:"error"`
		Views []verifyView `json:"views"`
	} `json:"snapshot"`
	InvalidUTF8 []struct {
		View  string   `json:"view"`
		Count int      `json:"count"`
		Keys  []string `json:"keys"`
	} `json:"invalid_utf8"`
}

func (a *app) replayVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Rebuild every view from genesis beside the live ones and compare digests",
		Long: `Ask the server to rebuild every view from the start of its log (or from the
snapshot the log was restored from) beside the live views, up to the position
the live ones hold, and compare their digests; the newest automatic snapshot
plus the log after it is checked too. Nothing live is touched: replay never
revokes, rotates or calls anything. Needs a sudo token.

Exits 0 when everything matches, 2 when a view differs.`,
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
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			type outcome struct {
				res verifyResult
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				resp, err := c.rawRequest(ctx, http.MethodPost, "sys/ledger/replay/verify", strings.NewReader("{}"), 2)
				if err != nil {
					done <- outcome{err: err}
					return
				}
				defer resp.Body.Close()
				var env struct {
					Data verifyResult `json:"data"`
				}
				if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
					done <- outcome{err: fmt.Errorf("decode verify result: %w", err)}
					return
				}
				done <- outcome{res: env.Data}
			}()
			var m *meter
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			var out outcome
		wait:
			for {
				select {
				case out = <-done:
					break wait
				case <-tick.C:
					s, err := c.Get(ctx, "sys/ledger/replay/verify", nil)
					if err != nil || s == nil {
						continue
					}
					var st struct {
						Running  bool                `json:"running"`
						Progress replay.ProgressInfo `json:"progress"`
					}
					if decodeInto(s.DataOrTop(), &st) != nil || !st.Running || st.Progress.To == 0 {
						continue
					}
					pr := st.Progress
					if m == nil {
						m = a.newMeter("Replaying log", int64(pr.To-pr.From+1), false, "batches")
					}
					m.Set(int64(pr.Applied + 1 - pr.From))
				}
			}
			if m != nil {
				m.Finish(out.err == nil)
			}
			if out.err != nil {
				return fail("verifying replay", out.err)
			}
			r := out.res
			if p.format != formatTable {
				if err := p.Structured(r); err != nil {
					return err
				}
			} else {
				printVerify(a, r)
			}
			if !r.OK {
				return exitStatus(2)
			}
			return nil
		},
	}
}

func printVerify(a *app, r verifyResult) {
	rows := [][]string{
		{"Result", map[bool]string{true: "OK: rebuilt views equal the live ones", false: "MISMATCH"}[r.OK]},
		{"Log Position", fmt.Sprint(r.Seq)},
		{"Rebuilt From", rebuiltFrom(r.From, r.FromSeq)},
		{"Events Replayed", fmt.Sprint(r.Events)},
		{"Duration", time.Duration(r.DurationNS).Round(time.Millisecond).String()},
		{"Events/s", fmt.Sprintf("%.0f", r.EventsPerSec)},
	}
	fmt.Fprint(a.stdout, columns(rows))
	fmt.Fprintln(a.stdout)
	views := [][]string{{"View", "Match", "Live Digest", "Rebuilt Digest"}}
	for _, v := range r.Views {
		views = append(views, []string{v.Name, fmt.Sprint(v.Match), short(v.Live), short(v.Rebuilt)})
	}
	fmt.Fprint(a.stdout, columns(views))
	if s := r.Snapshot; s != nil {
		status := "OK"
		if !s.OK {
			status = "MISMATCH"
			if s.Error != "" {
				status += ": " + s.Error
			}
			for _, v := range s.Views {
				if !v.Match {
					status += " " + v.Name
				}
			}
		}
		fmt.Fprintf(a.stdout, "\nSnapshot %s (seq %d) + log after it: %s\n", s.Name, s.Seq, status)
	}
	for _, f := range r.InvalidUTF8 {
		fmt.Fprintf(a.stdout, "\nFinding: view %s holds %d key(s) written before paths had to be valid UTF-8 (values may not decrypt): %s\n"+
			"  Repair: see README.md, Paths (delete each with U+FFFD spelled %%EF%%BF%%BD, then write it again under a valid path)\n",
			f.View, f.Count, strings.Join(f.Keys, ", "))
	}
}

func rebuiltFrom(from string, seq uint64) string {
	if seq == 0 {
		return from
	}
	return fmt.Sprintf("%s (restored at seq %d)", from, seq)
}

func short(d string) string {
	if len(d) > 16 {
		return d[:16]
	}
	if d == "" {
		return "-"
	}
	return d
}

func (a *app) replayRebuildCmd() *cobra.Command {
	var (
		cfgPath, dataDir, natsURL string
		retain                    int
	)
	cmd := &cobra.Command{
		Use:   "rebuild (-config FILE | -data-dir DIR | -nats-url URL)",
		Short: "Rebuild a stopped node's views from its log and store them as a fresh snapshot",
		Long: `Rebuild every view of a stopped node from the start of its log (or from the
snapshot the log was restored from), checking the hash chain of every batch,
and store the result as a new automatic snapshot, so the node's next start
replays nothing before it. Use it on a cold node whose snapshots are missing,
stale or suspect. Older automatic snapshots beyond -retain are pruned.

It works offline on the node's storage — the server must be stopped — and
needs the root key. Under the Shamir seal it reads the unseal keys like
"operator unseal" does: without echo from a terminal, or one per line from
stdin. Under an auto-seal (awskms, transit, pkcs11) it asks for no keys: give
the server's config (-config), and the key service its seal stanza names
decrypts the root key, as auto-unseal does (VAULT_SEAL_TYPE and the seal's
environment variables serve when the config has no seal stanza). It has no side
effects: nothing is revoked, rotated or called, and nothing is appended to the
log.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			lo := ledger.Options{Dir: dataDir, URL: natsURL, Replicas: 1}
			cfg := &config.Config{}
			if cfgPath != "" {
				var err error
				if cfg, err = config.Load(cfgPath); err != nil {
					return &cliError{op: "reading config", err: err, code: 1}
				}
				if lo, err = storageOptions(cfg); err != nil {
					return &cliError{op: "reading config", err: err, code: 1}
				}
			}
			if lo.Dir == "" && lo.URL == "" {
				return usageErr(cmd, errors.New("say where the node's storage is: -config, -data-dir or -nats-url"))
			}
			if lo.Dir != "" {
				if _, err := os.Stat(lo.Dir); err != nil {
					return &cliError{op: "opening the data dir", err: err, code: 1}
				}
			}
			ctx := cmd.Context()
			lo.Logger = slog.New(slog.DiscardHandler)
			l, err := ledger.Open(ctx, lo)
			if err != nil {
				return &cliError{op: "opening the log", err: err, code: 1, hint: "Is the server still running on it? Stop it first."}
			}
			defer l.Close()
			// The config's seal stanzas (or VAULT_SEAL_TYPE), opened as the server opens them: an
			// auto-sealed log's root key is decrypted by that seal's key.
			seals, err := sealOptions(ctx, cfg, func(k string) string { return a.env[k] }, slog.New(slog.DiscardHandler))
			if err != nil {
				return &cliError{op: "reading config", err: err, code: 1}
			}
			defer seals.Close()
			core, err := commands.New(ctx, l, commands.Options{Replicas: lo.Replicas, Logger: slog.New(slog.DiscardHandler), Seal: seals})
			if err != nil {
				return &cliError{op: "reading seal state", err: err, code: 1}
			}
			defer core.Close()
			st := core.SealStatus()
			if !st.Initialized {
				return &cliError{op: "rebuilding", err: errors.New("the log holds no initialised cluster"), code: 1}
			}
			var shares [][]byte
			keys := st.T
			if core.SealType() != autoseal.TypeShamir {
				keys = 0 // the seal's key decrypts the root key
			}
			for i := range keys {
				key, err := a.readHidden(fmt.Sprintf("Unseal Key %d of %d (will be hidden): ", i+1, st.T))
				if err != nil {
					return &cliError{op: "reading unseal key", err: err, code: 1}
				}
				share, err := commands.DecodeShare(key)
				if err != nil {
					return &cliError{op: "reading unseal key", err: err, code: 1}
				}
				shares = append(shares, share)
			}
			defer func() {
				for _, s := range shares {
					clear(s)
				}
			}()
			prog := &replay.Progress{}
			stop := make(chan struct{})
			finished := make(chan struct{})
			var m *meter
			go func() {
				defer close(finished)
				t := time.NewTicker(250 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					in := prog.Read()
					if in.To == 0 || in.Applied < in.From {
						continue
					}
					if m == nil {
						m = a.newMeter("Replaying log", int64(in.To-in.From+1), false, "batches")
					}
					m.Set(int64(in.Applied + 1 - in.From))
				}
			}()
			res, err := core.RebuildOffline(ctx, shares, prog, retain)
			close(stop)
			<-finished
			if m != nil {
				m.Finish(err == nil)
			}
			if err != nil {
				return &cliError{op: "rebuilding", err: err, code: 1}
			}
			if p.format != formatTable {
				return p.Structured(res)
			}
			rows := [][]string{
				{"Rebuilt From", res.From},
				{"Log Position", fmt.Sprint(res.Seq)},
				{"Events Replayed", fmt.Sprint(res.Events)},
				{"Duration", res.Duration.Round(time.Millisecond).String()},
				{"Events/s", fmt.Sprintf("%.0f", res.EventsPerSec)},
				{"Snapshot Stored", res.Snapshot},
			}
			if len(res.Pruned) > 0 {
				rows = append(rows, []string{"Pruned", strings.Join(res.Pruned, ", ")})
			}
			fmt.Fprint(a.stdout, "Success! Rebuilt the views and stored a fresh snapshot\n\n"+columns(rows))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "the stopped server's config file (its storage block says where the log is)")
	f.StringVar(&dataDir, "data-dir", "", "the stopped server's data dir (embedded JetStream)")
	f.StringVar(&natsURL, "nats-url", "", "an external NATS cluster holding the log")
	f.IntVar(&retain, "retain", 24, "automatic snapshots to keep")
	return cmd
}
