package config

import (
	"errors"
	"strings"
	"testing"
)

const srBase = `
storage "jetstream" { path = "/data" }
listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}
`

func TestServiceRegistrationStanza(t *testing.T) {
	cases := []struct {
		name     string
		src      string
		want     *ServiceRegistration
		warnings []string
	}{
		{"absent", srBase, nil, nil},
		{"named in the file", srBase + `service_registration "kubernetes" {
  namespace = "ledger"
  pod_name  = "ledger-0"
}`, &ServiceRegistration{Type: "kubernetes", Namespace: "ledger", PodName: "ledger-0"}, nil},
		// Vault's form for the downward API: the block says "register", the environment says who.
		{"empty block", srBase + `service_registration "kubernetes" {}`, &ServiceRegistration{Type: "kubernetes"}, nil},
		{"consul is ignored with a warning", srBase + `service_registration "consul" { address = "127.0.0.1:8500" }`, nil,
			[]string{`t.hcl:7: service_registration "consul" is not supported; only "kubernetes" is (ignored)`}},
		{"unknown key warns", srBase + `service_registration "kubernetes" { pod_nmae = "x" }`, &ServiceRegistration{Type: "kubernetes"},
			[]string{`t.hcl:7: unknown key "pod_nmae" in service_registration "kubernetes" (ignored)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.src), "t.hcl")
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == nil && cfg.ServiceRegistration != nil:
				t.Errorf("ServiceRegistration = %+v, want none", cfg.ServiceRegistration)
			case tc.want != nil && (cfg.ServiceRegistration == nil || *cfg.ServiceRegistration != *tc.want):
				t.Errorf("ServiceRegistration = %+v, want %+v", cfg.ServiceRegistration, tc.want)
			}
			if strings.Join(cfg.Warnings, "\n") != strings.Join(tc.warnings, "\n") {
				t.Errorf("warnings = %q, want %q", cfg.Warnings, tc.warnings)
			}
		})
	}
}

func TestServiceRegistrationErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"two blocks", srBase + "service_registration \"kubernetes\" {}\nservice_registration \"kubernetes\" {}",
			"t.hcl:8: only one service_registration block is allowed; the first is at line 7"},
		{"empty pod name", srBase + `service_registration "kubernetes" { pod_name = "" }`, "t.hcl:7: pod_name must not be empty"},
		{"namespace not a string", srBase + `service_registration "kubernetes" { namespace = ["a"] }`, "t.hcl:7: namespace must be a string"},
		{"no label", srBase + `service_registration {}`, "t.hcl:7: Missing type for service_registration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), "t.hcl")
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
