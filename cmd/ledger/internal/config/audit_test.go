package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseAuditRetention(t *testing.T) {
	base := "storage \"jetstream\" { path = \"/data\" }\nlistener \"tcp\" { tls_disable = true }\n"
	for _, tc := range []struct {
		src    string
		age    time.Duration
		bytes  int64
		direct bool
		err    string
	}{
		{src: ``},
		{src: `audit_retention_age = "720h"`, age: 720 * time.Hour},
		{src: `audit_retention_age = "30d"`, age: 30 * 24 * time.Hour},
		{src: `audit_retention_age = 3600`, age: time.Hour},
		{src: `audit_retention_bytes = 10737418240`, bytes: 10 << 30},
		{src: `audit_retention_bytes = "1048576"`, bytes: 1 << 20},
		{src: "audit_retention_age = 0\naudit_retention_bytes = 0", age: -1, bytes: -1},
		{src: `audit_retention_age = "a month"`, err: "audit_retention_age must be a duration"},
		{src: `audit_retention_bytes = -1`, err: "audit_retention_bytes must be 0"},
		{src: `audit_read_spool = false`, direct: true},
		{src: `audit_read_spool = "true"`},
		{src: `audit_read_spool = 2`, err: "audit_read_spool"},
	} {
		cfg, err := Parse([]byte(base+tc.src+"\n"), "ledger.hcl")
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "ledger.hcl:3:") {
				t.Errorf("%s: err = %v, want %q at line 3", tc.src, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if cfg.AuditRetentionAge != tc.age || cfg.AuditRetentionBytes != tc.bytes || cfg.AuditDirectReads != tc.direct || len(cfg.Warnings) != 0 {
			t.Errorf("%s: age %v bytes %d warnings %v", tc.src, cfg.AuditRetentionAge, cfg.AuditRetentionBytes, cfg.Warnings)
		}
	}
}

func TestEventsNATSSettings(t *testing.T) {
	const base = "storage \"jetstream\" { path = \"/data\" }\nlistener \"tcp\" { tls_disable = true }\n"
	cfg, err := Parse([]byte(base+"events_nats_subject_prefix = \"ledger.events\"\nevents_nats_url = \"nats://127.0.0.1:4222\"\n"), "c.hcl")
	if err != nil || cfg.EventsNATSSubjectPrefix != "ledger.events" || cfg.EventsNATSURL != "nats://127.0.0.1:4222" {
		t.Fatalf("%+v %v", cfg, err)
	}
	for _, bad := range []string{`events_nats_subject_prefix = "a.*"`, `events_nats_subject_prefix = "a..b"`, `events_nats_url = "http://x"`} {
		if _, err := Parse([]byte(base+bad+"\n"), "c.hcl"); err == nil || !strings.Contains(err.Error(), "events_nats") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
