package config

import (
	"strings"
	"testing"
	"time"
)

func TestTelemetryStanza(t *testing.T) {
	src := `
storage "jetstream" { path = "/data" }
listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
  telemetry { unauthenticated_metrics_access = true }
}
listener "tcp" {
  address     = "127.0.0.1:8201"
  tls_disable = true
}
telemetry {
  prometheus_retention_time = "30s"
  disable_hostname          = true
  statsite_address          = "statsite:8125"
}
`
	cfg, err := Parse([]byte(src), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Telemetry.PrometheusRetention != 30*time.Second || !cfg.Telemetry.DisableHostname {
		t.Fatalf("telemetry = %+v", cfg.Telemetry)
	}
	if !cfg.Listeners[0].UnauthenticatedMetricsAccess || cfg.Listeners[1].UnauthenticatedMetricsAccess {
		t.Fatalf("listeners = %+v", cfg.Listeners)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "statsite_address") {
		t.Fatalf("warnings = %v, want one for the push sink", cfg.Warnings)
	}

	off, err := Parse([]byte(`storage "jetstream" { path = "/d" }
listener "tcp" { tls_disable = true }
telemetry { prometheus_retention_time = 0 }`), "t.hcl")
	if err != nil || off.Telemetry.PrometheusRetention >= 0 {
		t.Fatalf("retention 0 = %+v, %v; want prometheus off (negative)", off.Telemetry, err)
	}
	for _, bad := range []string{
		`telemetry { prometheus_retention_time = "soon" }`,
		`telemetry { disable_hostname = "maybe" }`,
		`listener "tcp" { address = "127.0.0.1:1" tls_disable = true telemetry { unauthenticated_metrics_access = 3 } }`,
	} {
		src := "storage \"jetstream\" { path = \"/d\" }\nlistener \"tcp\" { tls_disable = true }\n" + bad
		if _, err := Parse([]byte(src), "t.hcl"); err == nil {
			t.Fatalf("accepted: %s", bad)
		}
	}
}
