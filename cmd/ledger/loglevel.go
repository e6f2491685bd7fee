package main

import (
	"io"
	"log/slog"

	"github.com/ledger-secrets/ledger/commands"
)

// leveledHandler is the server's log handler with its level in a LevelVar, so sys/loggers can
// change the level of a running server.
type leveledHandler struct {
	*slog.TextHandler
	level *slog.LevelVar
}

// newLogger returns the server's logger at level (Vault's names; info when unknown).
func newLogger(w io.Writer, level string) *slog.Logger {
	lv := new(slog.LevelVar)
	l, ok := commands.ParseLogLevel(level)
	if !ok {
		l = slog.LevelInfo
	}
	lv.Set(l)
	return slog.New(leveledHandler{TextHandler: slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv}), level: lv})
}

// levelOf is the LevelVar of a logger made by newLogger (nil for any other).
func levelOf(l *slog.Logger) *slog.LevelVar {
	if h, ok := l.Handler().(leveledHandler); ok {
		return h.level
	}
	return nil
}
