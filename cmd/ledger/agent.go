package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/agent"
	agentconfig "github.com/ledger-secrets/ledger/cmd/ledger/internal/agent/config"
)

func (a *app) agentCmd() *cobra.Command {
	var (
		cfgPath    string
		logLevel   string
		leaseCheck time.Duration
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the agent: auto-auth, templates, lease renewal, exec, API proxy",
		Long: `Run the agent with a Vault Agent configuration file, unchanged.

The agent logs in with its auto_auth method (approle, token_file, userpass,
kubernetes, jwt) and writes the token to its file sinks; keeps the token
alive (renewal, re-authentication with backoff); renders its templates
(consul-template syntax) and re-renders them when a secret changes — leases
are renewed, re-fetched before they end, and replaced within seconds when
revoked; runs "command" after a change; supervises an exec child with
env_template variables; and serves an API proxy with a lease cache on its
listeners, plus GET /agent/v1/health.

The server address comes from -address, then LEDGER_ADDR or VAULT_ADDR,
then vault { address } in the file. SIGINT or SIGTERM stops the agent; with
exec, signals go to the child and the agent exits with the child's code.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return usageErr(cmd, errors.New("a config file is required: ledger agent -config=agent.hcl"))
			}
			cfg, err := agentconfig.Load(cfgPath)
			if err != nil {
				return err
			}
			level := logLevel
			if level == "" {
				level = cfg.LogLevel
			}
			logOut := a.stderr
			if cfg.LogFile != "" {
				f, err := os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
				if err != nil {
					return fmt.Errorf("log_file: %w", err)
				}
				defer f.Close()
				logOut = f
			}
			logger := newLogger(logOut, level)
			for _, w := range cfg.Warnings {
				logger.Warn("agent config: " + w)
			}
			address := a.address
			if address == "" {
				address = a.firstEnv("LEDGER_ADDR", "VAULT_ADDR")
			}
			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
			defer signal.Stop(sigs)
			err = agent.Run(cmd.Context(), cfg, agent.Options{
				Address: address, Logger: logger, LogWriter: logOut, LogLevel: level,
				Stdout: a.stdout, Stderr: a.stderr, Signals: sigs, LeaseCheckInterval: leaseCheck,
			})
			var exit *agent.ExitError
			if errors.As(err, &exit) {
				return exitStatus(exit.Code)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "path to the agent's HCL or JSON config file (Vault Agent's syntax)")
	f.StringVar(&logLevel, "log-level", "", "log level: trace, debug, info, warn, error (default: the file's log_level, else info)")
	f.DurationVar(&leaseCheck, "lease-check-interval", agent.DefaultLeaseCheckInterval, "how often to ask the server whether held leases were revoked")
	return cmd
}
