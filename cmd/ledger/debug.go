package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/config"
)

// debugTargets are what `ledger debug` can collect, as vault debug's -target names them.
var debugTargets = []string{"config", "host", "metrics", "pprof", "server-status", "log"}

func (a *app) debugCmd() *cobra.Command {
	var (
		duration, interval time.Duration
		output, cfgPath    string
		logFile            string
		targets            []string
	)
	cmd := &cobra.Command{
		Use:   "debug",
		Short: "Collect metrics, profiles, status, redacted config and logs into a tar.gz for support",
		Long: `Collect what is needed to diagnose a server into one archive, as vault debug does:
every -interval for -duration it captures sys/metrics (Prometheus and JSON), sys/seal-status
and sys/health, and the Go profiles (goroutine, heap, and a CPU profile of up to the
interval) from sys/pprof; once, sys/host-info. With -config, the server's config file is added
with credential paths and addresses of secrets redacted; with -log-file, the last 10 MB of the
server's log. Needs a token with sudo on sys/pprof (the root token, or a policy granting it).

  ledger debug -duration=2m -interval=30s -output=ledger-debug.tar.gz

Targets (-target, repeatable; default all): ` + strings.Join(debugTargets, ", ") + `.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, t := range targets {
				if !slices.Contains(debugTargets, t) {
					return usageErr(cmd, fmt.Errorf("unknown -target %q; known: %s", t, strings.Join(debugTargets, ", ")))
				}
			}
			if len(targets) == 0 {
				targets = debugTargets
			}
			if interval <= 0 || duration < interval {
				return usageErr(cmd, fmt.Errorf("-interval must be positive and at most -duration (got %s and %s)", interval, duration))
			}
			if output == "" {
				output = "ledger-debug-" + time.Now().UTC().Format("2006-01-02T15-04-05Z") + ".tar.gz"
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			f, err := os.OpenFile(output, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return &cliError{op: "creating the archive", err: fmt.Errorf("%w (choose another -output)", err), code: 1}
			}
			d := &debugRun{c: c, gz: gzip.NewWriter(f), out: cmd.ErrOrStderr(), index: map[string]any{}}
			d.tw = tar.NewWriter(d.gz)
			err = d.run(cmd.Context(), targets, duration, interval, cfgPath, logFile)
			if cerr := d.close(); err == nil {
				err = cerr
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return &cliError{op: "collecting debug data", err: err, code: 1}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Debug archive written to %s\n", output)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&duration, "duration", 2*time.Minute, "how long to collect")
	fl.DurationVar(&interval, "interval", 30*time.Second, "how often to capture metrics, status and profiles")
	fl.StringVar(&output, "output", "", "archive to write (default ledger-debug-<time>.tar.gz; never overwritten)")
	fl.StringVar(&cfgPath, "config", "", "the server's config file, added redacted")
	fl.StringVar(&logFile, "log-file", "", "the server's log file; its last 10 MB are added")
	fl.StringSliceVar(&targets, "target", nil, "what to collect (repeatable; default all)")
	return cmd
}

type debugRun struct {
	c      *Client
	gz     *gzip.Writer
	tw     *tar.Writer
	out    io.Writer
	index  map[string]any
	errors []string
}

func (d *debugRun) add(name string, data []byte) error {
	if err := d.tw.WriteHeader(&tar.Header{Name: "ledger-debug/" + name, Mode: 0o600, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
		return err
	}
	_, err := d.tw.Write(data)
	return err
}

// get fetches one API path raw; a failure is recorded in the index, not fatal: a sealed server
// still yields its status.
func (d *debugRun) get(ctx context.Context, name, path string) error {
	p, rawQuery, _ := strings.Cut(path, "?")
	q, _ := url.ParseQuery(rawQuery)
	u := d.c.url(p, q)
	resp, err := func() (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Vault-Request", "true")
		if d.c.token != "" {
			req.Header.Set("X-Vault-Token", d.c.token)
		}
		hc := *d.c.http
		hc.Timeout = 0 // a CPU profile takes its seconds
		resp, err := hc.Do(req)
		if err != nil {
			return nil, d.c.redact(err)
		}
		if resp.StatusCode >= 400 {
			defer resp.Body.Close()
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			return nil, d.c.apiError(http.MethodGet, u, resp.StatusCode, data)
		}
		return resp, nil
	}()
	if err != nil {
		d.errors = append(d.errors, fmt.Sprintf("%s: %v", name, err))
		return nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		d.errors = append(d.errors, fmt.Sprintf("%s: %v", name, err))
		return nil
	}
	return d.add(name, data)
}

func (d *debugRun) run(ctx context.Context, targets []string, duration, interval time.Duration, cfgPath, logFile string) error {
	has := func(t string) bool { return slices.Contains(targets, t) }
	start := time.Now()
	d.index["version"] = 1
	d.index["server"] = d.c.Address()
	d.index["started"] = start.UTC().Format(time.RFC3339)
	d.index["duration"], d.index["interval"], d.index["targets"] = duration.String(), interval.String(), targets
	if has("host") {
		if err := d.get(ctx, "host-info.json", "sys/host-info"); err != nil {
			return err
		}
	}
	if has("config") && cfgPath != "" {
		if err := d.addConfig(cfgPath); err != nil {
			return err
		}
	}
	rounds := int(duration / interval)
	for i := 0; i < rounds; i++ {
		t0 := time.Now()
		fmt.Fprintf(d.out, "capture %d of %d\n", i+1, rounds)
		dir := fmt.Sprintf("%s/", t0.UTC().Format("2006-01-02T15-04-05Z"))
		steps := []struct{ target, name, path string }{
			{"server-status", "seal-status.json", "sys/seal-status"},
			{"server-status", "health.json", "sys/health"},
			{"metrics", "metrics.prom", "sys/metrics?format=prometheus"},
			{"metrics", "metrics.json", "sys/metrics"},
			{"pprof", "goroutine.prof", "sys/pprof/goroutine"},
			{"pprof", "heap.prof", "sys/pprof/heap"},
		}
		for _, s := range steps {
			if has(s.target) {
				if err := d.get(ctx, dir+s.name, s.path); err != nil {
					return err
				}
			}
		}
		if has("pprof") {
			secs := max(int(min(interval, 30*time.Second)/time.Second)-1, 1)
			if err := d.get(ctx, dir+"profile.prof", fmt.Sprintf("sys/pprof/profile?seconds=%d", secs)); err != nil {
				return err
			}
		}
		if i < rounds-1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Until(t0.Add(interval))):
			}
		}
	}
	if has("log") && logFile != "" {
		if err := d.addLog(logFile); err != nil {
			return err
		}
	}
	d.index["finished"] = time.Now().UTC().Format(time.RFC3339)
	d.index["errors"] = d.errors
	return nil
}

// addConfig adds the config file parsed and re-encoded with what could help an attacker
// redacted: credential and key file paths and the external NATS URL's user information.
func (d *debugRun) addConfig(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		d.errors = append(d.errors, fmt.Sprintf("config: %v", err))
		return nil
	}
	const redacted = "redacted"
	for _, f := range []*string{&cfg.Storage.CredsFile, &cfg.Storage.NKeySeedFile, &cfg.Storage.TLSKeyFile} {
		if *f != "" {
			*f = redacted
		}
	}
	if i := strings.Index(cfg.Storage.URL, "@"); i >= 0 {
		if j := strings.Index(cfg.Storage.URL, "://"); j >= 0 && j < i {
			cfg.Storage.URL = cfg.Storage.URL[:j+3] + redacted + cfg.Storage.URL[i:]
		}
	}
	for i := range cfg.Listeners {
		if cfg.Listeners[i].TLSKeyFile != "" {
			cfg.Listeners[i].TLSKeyFile = redacted
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return d.add("config.json", b)
}

// addLog adds the tail of the server's log file.
func (d *debugRun) addLog(path string) error {
	f, err := os.Open(path)
	if err != nil {
		d.errors = append(d.errors, fmt.Sprintf("log: %v", err))
		return nil
	}
	defer f.Close()
	const tail = 10 << 20
	if st, err := f.Stat(); err == nil && st.Size() > tail {
		if _, err := f.Seek(-tail, io.SeekEnd); err != nil {
			return err
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	return d.add("server.log"+filepath.Ext(path), b)
}

func (d *debugRun) close() error {
	idx, _ := json.MarshalIndent(d.index, "", "  ")
	err := d.add("index.json", idx)
	if cerr := d.tw.Close(); err == nil {
		err = cerr
	}
	if cerr := d.gz.Close(); err == nil {
		err = cerr
	}
	return err
}
