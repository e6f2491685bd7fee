package commands

import (
	"context"
	"time"

	"github.com/ledger-secrets/ledger/audit"
)

// Default retention of LEDGER_AUDIT (read and denial records), used when the options leave it
// unset: a month, or 1 GiB, whichever comes first. Set -1 for no limit.
const (
	DefaultAuditRetentionAge   = 30 * 24 * time.Hour
	DefaultAuditRetentionBytes = 1 << 30
)

// auditRetention resolves the configured limits: 0 takes the default, a negative value means
// no limit (JetStream's 0).
func auditRetention(o AuditOptions) (time.Duration, int64) {
	age, bytes := o.RetentionAge, o.RetentionBytes
	switch {
	case age == 0:
		age = DefaultAuditRetentionAge
	case age < 0:
		age = 0
	}
	switch {
	case bytes == 0:
		bytes = DefaultAuditRetentionBytes
	case bytes < 0:
		bytes = 0
	}
	return age, bytes
}

// retentionWarnFraction: above this share of audit_retention_bytes, with a device still behind,
// the next records pushed out may be ones that device has not delivered.
const retentionWarnFraction = 0.8

// watchAuditRetention warns, once a minute while it holds, when LEDGER_AUDIT is close to its
// byte limit or holds records near its age limit while some audit device has not delivered
// everything: JetStream will drop the oldest records to stay within the limits, and an
// undelivered record must not go without a word.
func (c *Core) watchAuditRetention(ctx context.Context, st *unsealed, maxAge time.Duration, maxBytes int64) {
	if maxAge == 0 && maxBytes == 0 {
		return
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s, err := c.log.JetStream().Stream(ctx, audit.StreamName)
		if err != nil {
			continue
		}
		info, err := s.Info(ctx)
		if err != nil {
			continue
		}
		var behind []string
		for _, d := range st.audit.devices.Status(ctx) {
			if d.Pending > 0 {
				behind = append(behind, d.Path)
			}
		}
		if len(behind) == 0 {
			continue
		}
		nearBytes := maxBytes > 0 && float64(info.State.Bytes) >= retentionWarnFraction*float64(maxBytes)
		nearAge := maxAge > 0 && !info.State.FirstTime.IsZero() && time.Since(info.State.FirstTime) >= time.Duration(retentionWarnFraction*float64(maxAge))
		if nearBytes || nearAge {
			c.logger.Warn("LEDGER_AUDIT is close to its retention limit while audit devices are behind: their oldest undelivered records will be dropped; bring the devices back or raise audit_retention_bytes / audit_retention_age",
				"stream_bytes", info.State.Bytes, "retention_bytes", maxBytes, "oldest", info.State.FirstTime, "retention_age", maxAge, "devices_behind", behind)
		}
	}
}
