package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/config"
	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
)

func newServerCmd() *cobra.Command {
	var (
		cfgPath     string
		dev         bool
		devRootID   string
		devListen   string
		devLogLevel string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Start a Ledger server",
		Long: `Start a Ledger server.

With -config, the server reads a Vault-shaped HCL file (storage "jetstream", listener "tcp").
It starts sealed: unseal it with 'ledger operator unseal' (or initialise it first with
'ledger operator init').

With -dev, it runs in memory-light development mode: a temporary data directory, one unseal
key, already unsealed, KV v2 at secret/, listening on http://127.0.0.1:8200. Never for real
secrets: the data directory is deleted on exit and the root token is printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// The server's GC defaults (commands/gcpolicy.go); GOGC and GOMEMLIMIT win.
			commands.GCDefaults(os.Getenv)
			go commands.ReleaseWhenIdle(ctx)
			out := cmd.OutOrStdout()
			if dev {
				return runDev(ctx, out, devOptions{Listen: devListen, RootToken: devRootID, LogLevel: devLogLevel})
			}
			if cfgPath == "" {
				return usageErr(cmd, errors.New("a config file is required: ledger server -config=ledger.hcl (or -dev for a development server)"))
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			return runConfigured(ctx, out, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "path to the server's HCL or JSON config file")
	f.BoolVar(&dev, "dev", false, "run a development server: in a temp dir, unsealed, KV v2 at secret/")
	f.StringVar(&devRootID, "dev-root-token-id", "", "root token to use in dev mode (random when empty)")
	f.StringVar(&devListen, "dev-listen-address", "127.0.0.1:8200", "address the dev server listens on")
	f.StringVar(&devLogLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	return cmd
}

// server is a running Ledger: log, core and HTTP listeners.
type server struct {
	log    *ledger.Log
	core   *commands.Core
	https  []*http.Server
	lns    []net.Listener
	logger *slog.Logger
	tmpDir string // removed on close (dev mode)
}

type listenerSpec struct {
	addr             string
	tlsCert, tlsKey  string
	maxRequestBytes  int64
	limits           config.ListenerLimits // zero: the defaults
	alreadyListening net.Listener
	// unauthMetrics: telemetry { unauthenticated_metrics_access = true } in the listener block.
	unauthMetrics bool
}

func startServer(ctx context.Context, logger *slog.Logger, lo ledger.Options, co commands.Options, apiAddr string, specs []listenerSpec) (*server, error) {
	lo.Logger, co.Logger = logger, logger
	if co.LogLevel == nil {
		co.LogLevel = levelOf(logger)
	}
	if lo.URL == "" {
		// Read this node's newest checkpoint copy (still sealed) while JetStream starts.
		co.Prefetch = commands.PrefetchCheckpoint(lo.Dir)
	}
	l, err := ledger.Open(ctx, lo)
	if err != nil {
		co.Prefetch.Close()
		return nil, err
	}
	core, err := commands.New(ctx, l, co)
	if err != nil {
		co.Prefetch.Close()
		l.Close()
		return nil, err
	}
	s := &server{log: l, core: core, logger: logger}
	for _, sp := range specs {
		lim := sp.limits
		if lim == (config.ListenerLimits{}) {
			lim = config.DefaultListenerLimits()
		}
		h := httpapi.New(core, httpapi.Options{MaxRequestBytes: sp.maxRequestBytes, APIAddr: apiAddr, Logger: logger,
			UnauthenticatedMetrics: sp.unauthMetrics, Limits: httpLimits(lim)})
		ln := sp.alreadyListening
		if ln == nil {
			if ln, err = net.Listen("tcp", sp.addr); err != nil {
				s.close(context.Background())
				return nil, fmt.Errorf("listen on %s: %w (is another server using it? set listener address)", sp.addr, err)
			}
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: lim.ReadHeaderTimeout, ReadTimeout: lim.ReadTimeout,
			WriteTimeout: lim.WriteTimeout, IdleTimeout: lim.IdleTimeout, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
		if sp.tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(sp.tlsCert, sp.tlsKey)
			if err != nil {
				ln.Close()
				s.close(context.Background())
				return nil, fmt.Errorf("listener %s: load TLS certificate: %w", sp.addr, err)
			}
			hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			ln = tls.NewListener(ln, hs.TLSConfig)
		}
		s.https = append(s.https, hs)
		s.lns = append(s.lns, ln)
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("http listener stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	return s, nil
}

// close drains in-flight requests, seals, and flushes the log's writer.
func (s *server) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, hs := range s.https {
		hs.Shutdown(ctx)
	}
	s.core.Close()
	s.log.Close()
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
	}
}

func runConfigured(ctx context.Context, out io.Writer, cfg *config.Config) error {
	logger := newLogger(os.Stderr, cfg.LogLevel)
	disableCoreDumps(logger)
	for _, w := range cfg.Warnings {
		logger.Warn("config: " + w)
	}
	lo, err := storageOptions(cfg)
	if err != nil {
		return err
	}
	lo.Logger = logger
	var specs []listenerSpec
	for _, l := range cfg.Listeners {
		sp := listenerSpec{addr: l.Address, maxRequestBytes: l.MaxRequestSize, unauthMetrics: l.UnauthenticatedMetricsAccess,
			limits: l.Limits}
		if !l.TLSDisable {
			sp.tlsCert, sp.tlsKey = l.TLSCertFile, l.TLSKeyFile
		}
		specs = append(specs, sp)
	}
	sealOpts, err := sealOptions(ctx, cfg, os.Getenv, logger)
	if err != nil {
		return err
	}
	var ha *commands.HAOptions
	if cfg.Storage.Cluster != nil || (cfg.Storage.URL != "" && cfg.Storage.Replicas > 1) {
		// A cluster: one active node, standbys that serve reads and forward writes to api_addr.
		ha = &commands.HAOptions{Node: lo.NodeName, APIAddr: cfg.APIAddr}
	}
	s, err := startServer(ctx, logger, lo, commands.Options{ClusterName: cfg.ClusterName, Replicas: cfg.Storage.Replicas, Seal: sealOpts, HA: ha,
		Audit:     commands.AuditOptions{RetentionAge: cfg.AuditRetentionAge, RetentionBytes: cfg.AuditRetentionBytes, DirectReads: cfg.AuditDirectReads},
		Telemetry: commands.TelemetryOptions{PrometheusRetention: cfg.Telemetry.PrometheusRetention, DisableHostname: cfg.Telemetry.DisableHostname},
		Events:    commands.EventsOptions{NATSPrefix: cfg.EventsNATSSubjectPrefix, NATSURL: cfg.EventsNATSURL}},
		cfg.APIAddr, specs)
	if err != nil {
		return err
	}
	reopenAuditOnSIGHUP(ctx, s.core, logger)
	startAutoUnseal(ctx, s.core, logger)
	fmt.Fprintf(out, "==> Ledger server started. Log data will stream in below.\n\n")
	for i, ln := range s.lns {
		scheme := "https"
		if cfg.Listeners[i].TLSDisable {
			scheme = "http"
		}
		fmt.Fprintf(out, "    Listener %d: %s://%s\n", i+1, scheme, ln.Addr())
	}
	fmt.Fprintf(out, "    Storage: jetstream (%s)\n    Sealed: %v, initialized: %v\n\n", storageDesc(cfg.Storage), !s.core.Unsealed(), s.core.Initialized())
	err = runLifecycle(ctx, logger, s, cfg)
	s.close(context.Background())
	return err
}

func storageDesc(st config.Storage) string {
	if st.URL != "" {
		return "external " + st.URL
	}
	return "embedded, " + st.Path
}

type devOptions struct {
	Listen    string
	RootToken string
	LogLevel  string
	Listener  net.Listener // tests pass a listener on a random port
	Quiet     bool
}

type devServer struct {
	*server
	Addr      string
	RootToken string
	UnsealKey string
}

// startDev starts an unsealed development server with KV v2 at secret/.
func startDev(ctx context.Context, logOut io.Writer, o devOptions) (*devServer, error) {
	dir, err := os.MkdirTemp("", "ledger-dev-")
	if err != nil {
		return nil, err
	}
	logger := newLogger(logOut, o.LogLevel)
	s, err := startServer(ctx, logger, ledger.Options{Dir: dir}, commands.Options{ClusterName: "ledger-dev"}, "",
		[]listenerSpec{{addr: o.Listen, alreadyListening: o.Listener}})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.tmpDir = dir
	fail := func(err error) (*devServer, error) {
		s.close(context.Background())
		return nil, err
	}
	res, err := s.core.Init(ctx, commands.InitRequest{SecretShares: 1, SecretThreshold: 1, RootToken: o.RootToken})
	if err != nil {
		return fail(err)
	}
	if _, err := s.core.Unseal(ctx, res.Keys[0]); err != nil {
		return fail(err)
	}
	_, err = s.core.Handle(ctx, &commands.Request{ID: "dev-mount", Op: engines.OpUpdate, Path: "sys/mounts/secret", Token: res.RootToken,
		Data: map[string]any{"type": "kv", "options": map[string]any{"version": "2"}, "description": "key/value secret storage"}})
	if err != nil {
		return fail(fmt.Errorf("mount secret/: %w", err))
	}
	return &devServer{server: s, Addr: "http://" + s.lns[0].Addr().String(), RootToken: res.RootToken,
		UnsealKey: base64.StdEncoding.EncodeToString(res.Keys[0])}, nil
}

func runDev(ctx context.Context, out io.Writer, o devOptions) error {
	d, err := startDev(ctx, os.Stderr, o)
	if err != nil {
		return err
	}
	reopenAuditOnSIGHUP(ctx, d.core, d.logger)
	fmt.Fprintf(out, `==> Ledger server started in DEV mode. Log data will stream in below.

WARNING! Dev mode is enabled. The server runs unsealed, in a temporary directory that is
deleted when it stops, over plain HTTP. Do not put real secrets in it.

You may need to set the following environment variables:

    $ export VAULT_ADDR='%[1]s'
    $ export LEDGER_ADDR='%[1]s'

The unseal key and root token are shown below in case you want to seal/unseal the server or
re-authenticate.

Unseal Key: %[2]s
Root Token: %[3]s

`, d.Addr, d.UnsealKey, d.RootToken)
	<-ctx.Done()
	d.close(context.Background())
	return nil
}
