package commands

import (
	"log/slog"
	"slices"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
)

// LevelTrace is Vault's "trace", below slog's debug.
const LevelTrace = slog.LevelDebug - 4

// loggerNames are the loggers sys/loggers shows. Ledger logs through one logger, so there is one
// name; Vault's sub-loggers do not exist here and asking for them is a 400, not a silent no-op.
var loggerNames = []string{"core"}

// ParseLogLevel reads Vault's level names.
func ParseLogLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace":
		return LevelTrace, true
	case "debug":
		return slog.LevelDebug, true
	case "info", "notice":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error", "err":
		return slog.LevelError, true
	}
	return 0, false
}

// levelName is the inverse of ParseLogLevel.
func levelName(l slog.Level) string {
	switch {
	case l <= LevelTrace:
		return "trace"
	case l <= slog.LevelDebug:
		return "debug"
	case l <= slog.LevelInfo:
		return "info"
	case l <= slog.LevelWarn:
		return "warn"
	}
	return "error"
}

// loggers serves sys/loggers and sys/loggers/:name: read, change (not persisted, as in Vault)
// and revert to the configured level.
func (s *sysBackend) loggers(req *engines.Request, name string) (*engines.Response, error) {
	lv := s.c.opts.LogLevel
	if lv == nil {
		return nil, engines.BadRequest("this server's log level cannot be changed at run time (it was started without a level variable)")
	}
	m := &s.c.misc
	m.levelOnce.Do(func() { m.baseLevel = lv.Level() })
	if name != "" && !slices.Contains(loggerNames, name) {
		return nil, engines.BadRequest("logger %q not found: this server has the loggers %s", name, strings.Join(loggerNames, ", "))
	}
	switch req.Op {
	case engines.OpRead:
		data := map[string]any{}
		for _, n := range loggerNames {
			if name == "" || n == name {
				data[n] = levelName(lv.Level())
			}
		}
		return &engines.Response{Data: data}, nil
	case engines.OpCreate, engines.OpUpdate:
		raw, err := engines.String(req.Data, "level", "")
		if err != nil {
			return nil, err
		}
		if raw == "" {
			return nil, engines.BadRequest("level is required: one of trace, debug, info, warn, error")
		}
		l, ok := ParseLogLevel(raw)
		if !ok {
			return nil, engines.BadRequest("invalid level provided: %q; use trace, debug, info, warn or error", raw)
		}
		lv.Set(l)
		s.c.logger.Info("log level changed", "level", levelName(l))
		return nil, nil
	case engines.OpDelete:
		lv.Set(m.baseLevel)
		return nil, nil
	}
	return nil, engines.ErrUnsupported
}
