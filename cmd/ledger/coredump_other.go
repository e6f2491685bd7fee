//go:build !unix

package main

import "log/slog"

// disableCoreDumps: this platform has no RLIMIT_CORE.
func disableCoreDumps(*slog.Logger) {}
