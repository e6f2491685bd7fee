package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ledger-secrets/ledger/commands"
)

// reopenAuditOnSIGHUP makes file audit devices reopen their files on SIGHUP, until ctx ends:
// logrotate moves the file away, signals, and the device starts a new one. (A device also
// notices on its own that its path no longer names the file it holds, at its next write.)
// The handler is installed before it returns, so a SIGHUP right after never kills the server.
func reopenAuditOnSIGHUP(ctx context.Context, core *commands.Core, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: reopening audit device files")
				core.ReopenAuditDevices()
			}
		}
	}()
}
