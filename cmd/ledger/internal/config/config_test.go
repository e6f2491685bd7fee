package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// plainListener is the listener most cases use: defaults plus tls_disable.
var plainListener = Listener{Type: "tcp", Address: DefaultAddress, TLSDisable: true, MaxRequestSize: DefaultMaxRequestSize, Limits: DefaultListenerLimits()}

func embedded(path string) Storage {
	return Storage{Type: "jetstream", Path: path, Replicas: DefaultStreamReplicas}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Config
	}{
		{
			name: "brief example",
			src: `
storage "jetstream" {
  path = "/var/lib/ledger"
  stream_replicas = 3
  cluster {
    listen = "10.0.0.1:6222"
    routes = ["nats://10.0.0.1:6222", "nats://10.0.0.2:6222", "nats://10.0.0.3:6222"]
  }
}
listener "tcp" {
  address       = "127.0.0.1:8200"
  tls_disable   = true
  tls_cert_file = "/path/cert.pem"
  tls_key_file  = "/path/key.pem"
  max_request_size = 33554432
}
api_addr     = "http://127.0.0.1:8200"
cluster_name = "ledger-cluster"
log_level    = "info"
ui = true
disable_mlock = true
`,
			want: Config{
				Storage: Storage{Type: "jetstream", Path: "/var/lib/ledger", Replicas: 3, Cluster: &StorageCluster{
					Name: DefaultJetStreamCluster, Listen: "10.0.0.1:6222",
					Routes: []string{"nats://10.0.0.1:6222", "nats://10.0.0.2:6222", "nats://10.0.0.3:6222"},
				}},
				Listeners: []Listener{{
					Type: "tcp", Address: "127.0.0.1:8200", TLSDisable: true,
					TLSCertFile: "/path/cert.pem", TLSKeyFile: "/path/key.pem", MaxRequestSize: 33554432, Limits: DefaultListenerLimits(),
				}},
				APIAddr: "http://127.0.0.1:8200", ClusterName: "ledger-cluster", LogLevel: "info",
			},
		},
		{
			name: "minimal gets defaults",
			src: `
storage "jetstream" { path = "/data" }
listener "tcp" { tls_disable = true }
`,
			want: Config{
				Storage:     embedded("/data"),
				Listeners:   []Listener{plainListener},
				ClusterName: DefaultClusterName, LogLevel: DefaultLogLevel,
			},
		},
		{
			name: "external NATS with credentials",
			src: `
storage "jetstream" {
  url         = "nats://10.0.0.1:4222,nats://10.0.0.2:4222"
  creds_file  = "/etc/ledger/nats.creds"
  tls_ca_file = "/etc/ledger/ca.pem"
  stream_replicas = 5
}
listener "tcp" { tls_disable = true }
`,
			want: Config{
				Storage: Storage{
					Type: "jetstream", URL: "nats://10.0.0.1:4222,nats://10.0.0.2:4222",
					CredsFile: "/etc/ledger/nats.creds", TLSCAFile: "/etc/ledger/ca.pem", Replicas: 5,
				},
				Listeners:   []Listener{plainListener},
				ClusterName: DefaultClusterName, LogLevel: DefaultLogLevel,
			},
		},
		{
			name: "TLS listener",
			src: `
storage "jetstream" { path = "/data" }
listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/tls/cert.pem"
  tls_key_file  = "/tls/key.pem"
}
`,
			want: Config{
				Storage: embedded("/data"),
				Listeners: []Listener{{
					Type: "tcp", Address: "0.0.0.0:8200",
					TLSCertFile: "/tls/cert.pem", TLSKeyFile: "/tls/key.pem", MaxRequestSize: DefaultMaxRequestSize, Limits: DefaultListenerLimits(),
				}},
				ClusterName: DefaultClusterName, LogLevel: DefaultLogLevel,
			},
		},
		{
			name: "several listeners and Vault-style string values",
			src: `
storage "jetstream" { path = "/data" }
listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = "true"
  max_request_size = "1048576"
}
listener "tcp" {
  address     = "[::1]:8201"
  tls_disable = "1"
}
listener "tcp" {
  address     = "127.0.0.1:8202"
  tls_disable = 1
  max_request_size = 0
}
listener "tcp" {
  address     = "127.0.0.1:8203"
  tls_disable = "false"
  tls_cert_file = "c"
  tls_key_file  = "k"
}
log_level    = " WARNING "
cluster_name = ""
api_addr     = "https://vault.example.com"
`,
			want: Config{
				Storage: embedded("/data"),
				Listeners: []Listener{
					{Type: "tcp", Address: "127.0.0.1:8200", TLSDisable: true, MaxRequestSize: 1 << 20, Limits: DefaultListenerLimits()},
					{Type: "tcp", Address: "[::1]:8201", TLSDisable: true, MaxRequestSize: DefaultMaxRequestSize, Limits: DefaultListenerLimits()},
					{Type: "tcp", Address: "127.0.0.1:8202", TLSDisable: true, MaxRequestSize: DefaultMaxRequestSize, Limits: DefaultListenerLimits()},
					{Type: "tcp", Address: "127.0.0.1:8203", TLSCertFile: "c", TLSKeyFile: "k", MaxRequestSize: DefaultMaxRequestSize, Limits: DefaultListenerLimits()},
				},
				APIAddr: "https://vault.example.com", ClusterName: DefaultClusterName, LogLevel: "warn",
			},
		},
		{
			name: "tls_disable 0 with certificates",
			src: `
storage "jetstream" { path = "/data" }
listener "tcp" {
  tls_disable   = 0
  tls_cert_file = "c"
  tls_key_file  = "k"
}
`,
			want: Config{
				Storage:     embedded("/data"),
				Listeners:   []Listener{{Type: "tcp", Address: DefaultAddress, TLSCertFile: "c", TLSKeyFile: "k", MaxRequestSize: DefaultMaxRequestSize, Limits: DefaultListenerLimits()}},
				ClusterName: DefaultClusterName, LogLevel: DefaultLogLevel,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.src), "ledger.hcl")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got.Warnings) != 0 {
				t.Errorf("unexpected warnings: %q", got.Warnings)
			}
			got.Warnings = nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}
}

func TestParseLogLevels(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{in: "trace", want: "trace"},
		{in: "DEBUG", want: "debug"},
		{in: "info", want: "info"},
		{in: "notice", want: "info"},
		{in: "", want: "info"},
		{in: "warn", want: "warn"},
		{in: "warning", want: "warn"},
		{in: "error", want: "error"},
		{in: "err", want: "error"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			src := `storage "jetstream" { path = "/d" }
listener "tcp" { tls_disable = true }
log_level = "` + tt.in + `"`
			cfg, err := Parse([]byte(src), "ledger.hcl")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if cfg.LogLevel != tt.want {
				t.Errorf("LogLevel = %q, want %q", cfg.LogLevel, tt.want)
			}
		})
	}
}

// okStorage and okListener complete a config so a case can break one thing.
const (
	okStorage  = `storage "jetstream" { path = "/data" }` + "\n"
	okListener = `listener "tcp" { tls_disable = true }` + "\n"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		// want lists substrings of the error, one per expected problem, each
		// starting with its position.
		want []string
	}{
		{
			name: "syntax error",
			src:  okStorage + okListener + "api_addr = \n",
			want: []string{"ledger.hcl:3:"},
		},
		{
			name: "unclosed block",
			src:  okListener + "storage \"jetstream\" {\n  path = \"/d\"\n",
			want: []string{"ledger.hcl:2:"},
		},
		{
			name: "no storage",
			src:  okListener,
			want: []string{"ledger.hcl: no storage block"},
		},
		{
			name: "two storage blocks",
			src:  okStorage + okListener + `storage "jetstream" { path = "/other" }`,
			want: []string{"ledger.hcl:3: only one storage block is allowed; the first is at line 1"},
		},
		{
			name: "unsupported storage type",
			src:  okListener + "\n" + `storage "raft" { path = "/data" }`,
			want: []string{`ledger.hcl:3: storage type "raft" is not supported; only "jetstream" is`},
		},
		{
			name: "storage without label",
			src:  okListener + "storage {\n path = \"/d\"\n}\n",
			want: []string{"ledger.hcl:2:", "ledger.hcl: no storage block"},
		},
		{
			name: "neither path nor url",
			src:  okListener + "storage \"jetstream\" {\n  stream_replicas = 1\n}\n",
			want: []string{`ledger.hcl:2: storage "jetstream" needs path (embedded JetStream data directory) or url`},
		},
		{
			name: "both path and url",
			src:  okListener + "storage \"jetstream\" {\n  path = \"/d\"\n  url = \"nats://x:4222\"\n}\n",
			want: []string{`ledger.hcl:4: storage "jetstream" sets both path and url`},
		},
		{
			name: "empty path",
			src:  okListener + "storage \"jetstream\" {\n  path = \"\"\n}\n",
			want: []string{"ledger.hcl:3: path must not be empty"},
		},
		{
			name: "path not a string",
			src:  okListener + "storage \"jetstream\" {\n  path = 5\n}\n",
			want: []string{"ledger.hcl:3: path must be a string, got number"},
		},
		{
			name: "path is a variable",
			src:  okListener + "storage \"jetstream\" {\n  path = var.dir\n}\n",
			want: []string{"ledger.hcl:3: Variables not allowed"},
		},
		{
			name: "path set twice",
			src:  okListener + "storage \"jetstream\" {\n  path = \"/a\"\n  path = \"/b\"\n}\n",
			want: []string{"ledger.hcl:4: Attribute redefined"},
		},
		{
			name: "credentials with embedded storage",
			src:  okListener + "storage \"jetstream\" {\n  path = \"/d\"\n  creds_file = \"/c\"\n  tls_ca_file = \"/ca\"\n}\n",
			want: []string{
				"ledger.hcl:4: creds_file applies only to an external NATS server",
				"ledger.hcl:5: tls_ca_file applies only to an external NATS server",
			},
		},
		{
			name: "zero replicas",
			src:  okListener + "storage \"jetstream\" {\n  path = \"/d\"\n  stream_replicas = 0\n}\n",
			want: []string{"ledger.hcl:4: stream_replicas must be between 1 and 5, got 0"},
		},
		{
			name: "too many replicas",
			src:  okListener + "storage \"jetstream\" {\n  path = \"/d\"\n  stream_replicas = 7\n}\n",
			want: []string{"ledger.hcl:4: stream_replicas must be between 1 and 5, got 7"},
		},
		{
			name: "fractional replicas",
			src:  okListener + "storage \"jetstream\" {\n  path = \"/d\"\n  stream_replicas = 1.5\n}\n",
			want: []string{"ledger.hcl:4: stream_replicas must be a whole number"},
		},
		{
			name: "no listener",
			src:  okStorage,
			want: []string{`ledger.hcl: no listener block`},
		},
		{
			name: "unsupported listener type",
			src:  okStorage + "\n" + `listener "unix" { address = "/run/ledger.sock" }`,
			want: []string{`ledger.hcl:3: listener type "unix" is not supported; only "tcp" is`},
		},
		{
			name: "TLS without certificate or key",
			src:  okStorage + "listener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n}\n",
			want: []string{`ledger.hcl:2: listener "tcp" needs tls_cert_file and tls_key_file, or tls_disable = true`},
		},
		{
			name: "TLS explicitly enabled without files",
			src:  okStorage + "\n\nlistener \"tcp\" {\n  tls_disable = false\n}\n",
			want: []string{`ledger.hcl:4: listener "tcp" needs tls_cert_file and tls_key_file`},
		},
		{
			name: "certificate without key",
			src:  okStorage + "listener \"tcp\" {\n  tls_cert_file = \"/c\"\n}\n",
			want: []string{`ledger.hcl:2: listener "tcp" has tls_cert_file but no tls_key_file`},
		},
		{
			name: "key without certificate",
			src:  okStorage + "listener \"tcp\" {\n  tls_key_file = \"/k\"\n}\n",
			want: []string{`ledger.hcl:2: listener "tcp" has tls_key_file but no tls_cert_file`},
		},
		{
			name: "tls_disable word",
			src:  okStorage + "listener \"tcp\" {\n  tls_disable = \"maybe\"\n}\n",
			want: []string{"ledger.hcl:3: tls_disable must be true or false"},
		},
		{
			name: "tls_disable number other than 0 or 1",
			src:  okStorage + "listener \"tcp\" {\n  tls_disable = 2\n}\n",
			want: []string{"ledger.hcl:3: tls_disable must be true or false"},
		},
		{
			name: "certificate path not a string",
			src:  okStorage + "listener \"tcp\" {\n  tls_cert_file = true\n  tls_key_file = \"/k\"\n}\n",
			want: []string{"ledger.hcl:3: tls_cert_file must be a string, got bool"},
		},
		{
			name: "address without port",
			src:  okStorage + "listener \"tcp\" {\n  tls_disable = true\n  address = \"localhost\"\n}\n",
			want: []string{`ledger.hcl:4: address "localhost" must be host:port`},
		},
		{
			name: "negative max_request_size",
			src:  okStorage + "listener \"tcp\" {\n  tls_disable = true\n  max_request_size = -1\n}\n",
			want: []string{"ledger.hcl:4: max_request_size must be positive"},
		},
		{
			name: "max_request_size not a number",
			src:  okStorage + "listener \"tcp\" {\n  tls_disable = true\n  max_request_size = \"32MB\"\n}\n",
			want: []string{"ledger.hcl:4: max_request_size must be a whole number"},
		},
		{
			name: "duplicate listener address",
			src:  okStorage + okListener + "listener \"tcp\" {\n  tls_disable = true\n  address = \"127.0.0.1:8200\"\n}\n",
			want: []string{"ledger.hcl:3: listener address 127.0.0.1:8200 is already used by the listener at line 2"},
		},
		{
			name: "invalid log level",
			src:  okStorage + okListener + `log_level = "verbose"`,
			want: []string{`ledger.hcl:3: log_level "verbose" is not one of trace, debug, info, warn, error`},
		},
		{
			name: "api_addr without scheme",
			src:  okStorage + okListener + `api_addr = "127.0.0.1:8200"`,
			want: []string{`ledger.hcl:3: api_addr "127.0.0.1:8200" must be an http:// or https:// URL`},
		},
		{
			name: "null value",
			src:  okStorage + okListener + `cluster_name = null`,
			want: []string{"ledger.hcl:3: cluster_name must not be null"},
		},
		{
			name: "every problem reported at once",
			src: `storage "jetstream" {
  stream_replicas = 9
}
listener "tcp" {}
log_level = "loud"
`,
			want: []string{
				`ledger.hcl:1: storage "jetstream" needs path`,
				"ledger.hcl:2: stream_replicas must be between 1 and 5",
				`ledger.hcl:4: listener "tcp" needs tls_cert_file and tls_key_file`,
				`ledger.hcl:5: log_level "loud"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.src), "ledger.hcl")
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with its error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			// One problem per line, no follow-on noise.
			if lines := strings.Split(msg, "\n"); len(lines) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(lines), len(tt.want), msg)
			}
		})
	}
}

func TestParseWarnings(t *testing.T) {
	src := `storage "jetstream" {
  path = "/data"
  retry_join {
    leader_api_addr = "http://10.0.0.2:8200"
  }
}
listener "tcp" {
  tls_disable = true
  tls_min_version = "tls12"
}
seal "transit" {
  colour = "https://vault:8200"
}
foo = "bar"
ui = true
disable_mlock = true
`
	cfg, err := Parse([]byte(src), "ledger.hcl")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []string{
		`ledger.hcl:3: unknown key "retry_join" in storage "jetstream" (ignored)`,
		`ledger.hcl:9: unknown key "tls_min_version" in listener "tcp" (ignored)`,
		`ledger.hcl:12: unknown key "colour" in seal "transit" (ignored)`,
		`ledger.hcl:14: unknown key "foo" (ignored)`,
	}
	if !reflect.DeepEqual(cfg.Warnings, want) {
		t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(cfg.Warnings, "\n"), strings.Join(want, "\n"))
	}
	if cfg.Storage.Path != "/data" || len(cfg.Listeners) != 1 {
		t.Errorf("known keys not decoded alongside unknown ones: %+v", cfg)
	}
}

func TestParseJSON(t *testing.T) {
	t.Run("vault shape", func(t *testing.T) {
		src := `{
  "storage": {
    "jetstream": {
      "url": "nats://127.0.0.1:4222",
      "creds_file": "/c"
    }
  },
  "listener": [
    {"tcp": {"address": "127.0.0.1:8200", "tls_disable": "1"}},
    {"tcp": {"address": "127.0.0.1:8201", "tls_cert_file": "/cert", "tls_key_file": "/key", "max_request_size": 1024}}
  ],
  "api_addr": "http://127.0.0.1:8200",
  "log_level": "debug",
  "ui": true,
  "telemetry": {"statsite_address": "x"}
}`
		cfg, err := Parse([]byte(src), "ledger.json")
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		want := Config{
			Storage: Storage{Type: "jetstream", URL: "nats://127.0.0.1:4222", CredsFile: "/c", Replicas: 1},
			Listeners: []Listener{
				{Type: "tcp", Address: "127.0.0.1:8200", TLSDisable: true, MaxRequestSize: DefaultMaxRequestSize, Limits: DefaultListenerLimits()},
				{Type: "tcp", Address: "127.0.0.1:8201", TLSCertFile: "/cert", TLSKeyFile: "/key", MaxRequestSize: 1024, Limits: DefaultListenerLimits()},
			},
			APIAddr: "http://127.0.0.1:8200", ClusterName: DefaultClusterName, LogLevel: "debug",
			Warnings: []string{`ledger.json:15: unknown key "statsite_address" in telemetry (ignored)`},
		}
		if !reflect.DeepEqual(*cfg, want) {
			t.Errorf("Parse =\n%+v\nwant\n%+v", *cfg, want)
		}
	})

	tests := []struct {
		name     string
		filename string
		src      string
		want     string
	}{
		{
			name:     "unsupported storage",
			filename: "ledger.json",
			src:      "{\n\"listener\": {\"tcp\": {\"tls_disable\": true}},\n\"storage\": {\"consul\": {}}\n}",
			want:     `ledger.json:3: storage type "consul" is not supported`,
		},
		{
			name:     "missing TLS files",
			filename: "ledger.json",
			src:      "{\n\"storage\": {\"jetstream\": {\"path\": \"/d\"}},\n\"listener\": {\"tcp\": {\n\"address\": \"127.0.0.1:8200\"}}\n}",
			want:     `listener "tcp" needs tls_cert_file and tls_key_file`,
		},
		{
			name:     "syntax error",
			filename: "ledger.json",
			src:      "{\n\"storage\": {\n\"jetstream\": {\"path\": \"/d\",}\n}\n}",
			want:     "ledger.json:3:",
		},
		{
			name:     "extension is case-insensitive",
			filename: "LEDGER.JSON",
			src:      `{"storage": {"jetstream": {"path": 1}}, "listener": {"tcp": {"tls_disable": true}}}`,
			want:     "LEDGER.JSON:1: path must be a string",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), tt.filename)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("hcl", func(t *testing.T) {
		cfg, err := Load(write("ledger.hcl", okStorage+okListener))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if cfg.Storage.Path != "/data" {
			t.Errorf("Storage.Path = %q, want /data", cfg.Storage.Path)
		}
	})

	t.Run("json by extension", func(t *testing.T) {
		cfg, err := Load(write("ledger.json", `{"storage": {"jetstream": {"path": "/j"}}, "listener": {"tcp": {"tls_disable": true}}}`))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if cfg.Storage.Path != "/j" {
			t.Errorf("Storage.Path = %q, want /j", cfg.Storage.Path)
		}
	})

	t.Run("error names the path and line", func(t *testing.T) {
		path := write("bad.hcl", okStorage+okListener+`log_level = "loud"`)
		_, err := Load(path)
		if want := path + ":3: "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("Load error = %v, want prefix %q", err, want)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(dir, "absent.hcl")
		_, err := Load(path)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load error = %v, want fs.ErrNotExist", err)
		}
		if errors.Is(err, ErrInvalid) {
			t.Error("a missing file is not an invalid config")
		}
		for _, want := range []string{path, "-config"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Load error %q does not mention %q", err, want)
			}
		}
	})
}
