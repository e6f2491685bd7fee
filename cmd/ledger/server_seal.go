package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/config"
	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/ledger/autoseal"
)

// sealOptions opens the configured seals: the seal stanzas, else VAULT_SEAL_TYPE (or
// LEDGER_SEAL_TYPE). A stanza that is incomplete stops the server; a seal that cannot be
// opened for another reason (a wrong PIN, a missing HSM library) leaves it running sealed,
// saying why in the log, sys/health and every unseal answer.
func sealOptions(ctx context.Context, cfg *config.Config, getenv autoseal.Getenv, logger *slog.Logger) (commands.SealOptions, error) {
	var o commands.SealOptions
	seals := cfg.Seals
	if len(seals) == 0 {
		if sc, ok := autoseal.FromEnv(getenv); ok {
			seals = []autoseal.Config{sc}
		}
	}
	for _, sc := range seals {
		w, err := autoseal.Open(ctx, sc, getenv)
		switch {
		case errors.Is(err, autoseal.ErrConfig):
			o.Close()
			return commands.SealOptions{}, fmt.Errorf("seal %q: %w", sc.Type, err)
		case err != nil:
			logger.Error("cannot open the seal; the server stays sealed until the cause is fixed and it is restarted",
				"seal", sc.Type, "err", err)
			w = autoseal.Failed(sc.Type, err)
		}
		if sc.Disabled {
			o.Disabled = w
		} else {
			o.Wrapper = w
		}
	}
	for _, v := range []struct {
		name string
		dst  *time.Duration
	}{{"LEDGER_SEAL_RETRY_MAX", &o.RetryMax}, {"LEDGER_SEAL_CALL_TIMEOUT", &o.CallTimeout}, {"LEDGER_SEAL_CHECK_INTERVAL", &o.CheckInterval}} {
		if s := getenv(v.name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				o.Close()
				return commands.SealOptions{}, fmt.Errorf("%s=%q is not a positive duration such as 30s", v.name, s)
			}
			*v.dst = d
		}
	}
	return o, nil
}

// startAutoUnseal runs the auto-unseal loop for the server's life.
func startAutoUnseal(ctx context.Context, core *commands.Core, logger *slog.Logger) {
	go func() {
		if err := core.AutoUnseal(ctx); err != nil && ctx.Err() == nil {
			logger.Debug("auto-unseal loop ended", "err", err)
		}
	}()
}
