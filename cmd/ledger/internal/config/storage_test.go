package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const haListener = "listener \"tcp\" {\n  tls_disable = true\n}\n"

func TestParseHACluster(t *testing.T) {
	src := `node_id  = "node1"
api_addr = "http://127.0.0.1:8201"
storage "jetstream" {
  path     = "data/node1"
  replicas = 3
  cluster {
    name   = "ledger"
    listen = "127.0.0.1:6221"
    routes = ["nats://127.0.0.1:6221", "nats://127.0.0.1:6222", "nats://127.0.0.1:6223"]
    advertise = ""
  }
}
` + haListener
	cfg, err := Parse([]byte(src), "node1.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := Storage{Type: "jetstream", Path: "data/node1", Replicas: 3, Cluster: &StorageCluster{
		Name: "ledger", Listen: "127.0.0.1:6221",
		Routes: []string{"nats://127.0.0.1:6221", "nats://127.0.0.1:6222", "nats://127.0.0.1:6223"},
	}}
	if !reflect.DeepEqual(cfg.Storage, want) {
		t.Errorf("storage = %+v (cluster %+v), want %+v", cfg.Storage, cfg.Storage.Cluster, want)
	}
	if cfg.NodeID != "node1" || cfg.APIAddr != "http://127.0.0.1:8201" {
		t.Errorf("node_id %q api_addr %q", cfg.NodeID, cfg.APIAddr)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %q", cfg.Warnings)
	}
}

func TestParseExternalNATSOptions(t *testing.T) {
	src := `storage "jetstream" {
  url              = "nats://n1:4222,nats://n2:4222"
  replicas         = 3
  nkey_seed_file   = "/etc/ledger/nkey.seed"
  tls_ca_file      = "/etc/ledger/ca.pem"
  tls_cert_file    = "/etc/ledger/client.pem"
  tls_key_file     = "/etc/ledger/client-key.pem"
}
` + haListener
	cfg, err := Parse([]byte(src), "ledger.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := Storage{Type: "jetstream", URL: "nats://n1:4222,nats://n2:4222", Replicas: 3, NKeySeedFile: "/etc/ledger/nkey.seed",
		TLSCAFile: "/etc/ledger/ca.pem", TLSCertFile: "/etc/ledger/client.pem", TLSKeyFile: "/etc/ledger/client-key.pem"}
	if !reflect.DeepEqual(cfg.Storage, want) {
		t.Errorf("storage = %+v, want %+v", cfg.Storage, want)
	}
	cfg, err = Parse([]byte("storage \"jetstream\" {\n  url = \"nats://n1:4222\"\n  credentials_file = \"/c.creds\"\n}\n"+haListener), "ledger.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.CredsFile != "/c.creds" {
		t.Errorf("credentials_file = %q", cfg.Storage.CredsFile)
	}
}

func TestParseHABadInput(t *testing.T) {
	cluster := "  cluster {\n    listen = \"127.0.0.1:6221\"\n    routes = [\"nats://127.0.0.1:6221\"]\n  }\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"cluster with url", "storage \"jetstream\" {\n  url = \"nats://n:4222\"\n" + cluster + "}\n",
			[]string{"ledger.hcl:3: storage \"jetstream\" has a cluster block and url"}},
		{"cluster without path", "storage \"jetstream\" {\n" + cluster + "}\n",
			[]string{"ledger.hcl:1: storage \"jetstream\" needs path", "ledger.hcl:2: storage \"jetstream\" has a cluster block but no path"}},
		{"two clusters", "storage \"jetstream\" {\n  path = \"d\"\n" + cluster + cluster + "}\n",
			[]string{"ledger.hcl:7: only one cluster block is allowed in storage \"jetstream\"; the first is at line 3"}},
		{"two storage stanzas", "storage \"jetstream\" {\n  path = \"d\"\n}\nstorage \"jetstream\" {\n  url = \"nats://n:4222\"\n}\n",
			[]string{"ledger.hcl:4: only one storage block is allowed; the first is at line 1"}},
		{"path and url", "storage \"jetstream\" {\n  path = \"d\"\n  url = \"nats://n:4222\"\n}\n",
			[]string{"ledger.hcl:3: storage \"jetstream\" sets both path and url"}},
		{"replicas without cluster", "storage \"jetstream\" {\n  path = \"d\"\n  replicas = 3\n}\n",
			[]string{"ledger.hcl:3: replicas = 3 needs a cluster block"}},
		{"replicas and stream_replicas", "storage \"jetstream\" {\n  path = \"d\"\n  replicas = 1\n  stream_replicas = 1\n}\n",
			[]string{"ledger.hcl:4: stream_replicas and replicas are the same setting"}},
		{"cluster without listen", "storage \"jetstream\" {\n  path = \"d\"\n  cluster {\n    routes = [\"nats://a:1\"]\n  }\n}\n",
			[]string{"ledger.hcl:3: storage \"jetstream\" cluster needs listen"}},
		{"cluster without routes", "storage \"jetstream\" {\n  path = \"d\"\n  cluster {\n    listen = \"a:1\"\n  }\n}\n",
			[]string{"ledger.hcl:3: storage \"jetstream\" cluster needs routes"}},
		{"route not a URL", "storage \"jetstream\" {\n  path = \"d\"\n  cluster {\n    listen = \"a:1\"\n    routes = [\"127.0.0.1:6222\"]\n  }\n}\n",
			[]string{"ledger.hcl:5: route \"127.0.0.1:6222\" must be nats://host:port"}},
		{"routes a string", "storage \"jetstream\" {\n  path = \"d\"\n  cluster {\n    listen = \"a:1\"\n    routes = \"nats://a:1\"\n  }\n}\n",
			[]string{"ledger.hcl:5: routes must be a list of nats:// URLs, got string"}},
		{"listen without port", "storage \"jetstream\" {\n  path = \"d\"\n  cluster {\n    listen = \"a\"\n    routes = [\"nats://a:1\"]\n  }\n}\n",
			[]string{"ledger.hcl:4: listen \"a\" must be host:port"}},
		{"cluster name with space", "storage \"jetstream\" {\n  path = \"d\"\n  cluster {\n    name = \"my cluster\"\n    listen = \"a:1\"\n    routes = [\"nats://a:1\"]\n  }\n}\n",
			[]string{"ledger.hcl:4: cluster name \"my cluster\" must not contain spaces"}},
		{"credentials with path", "storage \"jetstream\" {\n  path = \"d\"\n  credentials_file = \"/c\"\n}\n",
			[]string{"ledger.hcl:3: credentials_file applies only to an external NATS server"}},
		{"creds and nkey", "storage \"jetstream\" {\n  url = \"nats://n:4222\"\n  credentials_file = \"/c\"\n  nkey_seed_file = \"/n\"\n}\n",
			[]string{"ledger.hcl:4: storage \"jetstream\" sets both a credentials file and nkey_seed_file"}},
		{"cert without key", "storage \"jetstream\" {\n  url = \"nats://n:4222\"\n  tls_cert_file = \"/c\"\n}\n",
			[]string{"ledger.hcl:1: storage \"jetstream\" needs tls_cert_file and tls_key_file together"}},
		{"bad url", "storage \"jetstream\" {\n  url = \"http://n:4222\"\n}\n",
			[]string{"ledger.hcl:2: url \"http://n:4222\": scheme \"http\""}},
		{"bad node_id", "node_id = \"node 1\"\nstorage \"jetstream\" {\n  path = \"d\"\n}\n",
			[]string{"ledger.hcl:1: node_id \"node 1\" must be 1 to 63 letters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.src+haListener), "ledger.hcl")
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", cfg)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%s", w, err)
				}
			}
		})
	}
}
