//go:build unix

package main

import (
	"log/slog"
	"syscall"
)

// disableCoreDumps sets the process's core size limit to zero, soft and hard: a core dump of
// an unsealed server holds the keyring in clear. The server does it itself so that no unit
// file, container runtime or shell ulimit has to remember to.
func disableCoreDumps(logger *slog.Logger) {
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
		logger.Warn("could not disable core dumps (RLIMIT_CORE); set LimitCORE=0 or ulimit -c 0", "err", err)
	}
}
