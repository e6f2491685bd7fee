package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLessonFileVerbatim loads the lesson's Part 8 vault-agent.hcl exactly
// as printed (testdata holds a copy; when the lesson itself is beside the
// repository, the copy is checked against it).
func TestLessonFileVerbatim(t *testing.T) {
	src, err := os.ReadFile("testdata/lesson-vault-agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if seeds, _ := filepath.Glob("../../../../../../shared/seed/000_*.txt"); len(seeds) == 1 {
		lesson, err := os.ReadFile(seeds[0])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(lesson), string(src)) {
			t.Fatal("testdata/lesson-vault-agent.hcl is not the lesson's text")
		}
		tpl, _ := os.ReadFile("testdata/lesson-db.tpl")
		if !strings.Contains(string(lesson), string(tpl)) {
			t.Fatal("testdata/lesson-db.tpl is not the lesson's text")
		}
	}
	cfg, err := Parse(src, "vault-agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.AutoAuth.Method
	if m.Type != "kubernetes" || m.MountPath != "auth/kubernetes" || m.Role != "myapp" || m.JWTPath != DefaultKubernetesJWTPath {
		t.Errorf("method = %+v", m)
	}
	if m.LoginPath() != "auth/kubernetes/login" {
		t.Errorf("login path %q", m.LoginPath())
	}
	if len(cfg.AutoAuth.Sinks) != 1 || cfg.AutoAuth.Sinks[0].Path != "/tmp/vault-token" || cfg.AutoAuth.Sinks[0].Mode != 0o640 {
		t.Errorf("sinks = %+v", cfg.AutoAuth.Sinks)
	}
	if len(cfg.Templates) != 1 {
		t.Fatalf("templates = %+v", cfg.Templates)
	}
	tp := cfg.Templates[0]
	if tp.Source != "/etc/vault/templates/db.tpl" || tp.Destination != "/app/config/database.env" || tp.Perms != 0o600 {
		t.Errorf("template = %+v (perms %o)", tp, tp.Perms)
	}
	if len(tp.Command) != 1 || tp.Command[0] != "pkill -HUP myapp" {
		t.Errorf("command = %q", tp.Command)
	}
	if cfg.Vault.Address != "https://vault.example.com:8200" || cfg.Vault.NumRetries != 12 {
		t.Errorf("vault = %+v", cfg.Vault)
	}
	// /tmp is world-readable: the sink gets a warning, not an error.
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "vault-agent.hcl:11: sink path /tmp/vault-token is in the world-readable directory") {
		t.Errorf("warnings = %q", cfg.Warnings)
	}
}

func TestFullSyntax(t *testing.T) {
	src := `
pid_file = "/run/agent.pid"
exit_after_auth = false
log_level = "debug"
vault {
  address = "http://127.0.0.1:8200"
  tls_skip_verify = "true"
  retry { num_retries = -1 }
}
auto_auth {
  method "approle" {
    mount_path = "auth/approle-apps"
    min_backoff = "2s"
    max_backoff = 60
    config = {
      role_id_file_path = "/etc/agent/role-id"
      secret_id_file_path = "/etc/agent/secret-id"
      remove_secret_id_file_after_reading = false
    }
  }
  sink "file" { config = { path = "/run/a/token" mode = 0640 } }
  sink { type = "file" config { path = "/run/b/token" mode = "0600" } }
}
template_config {
  static_secret_render_interval = "10s"
  exit_on_retry_failure = true
  max_connections_per_host = 8
  lease_renewal_threshold = 0.5
}
template {
  contents = "{{ with secret \"secret/data/app\" }}{{ .Data.data.k }}{{ end }}"
  destination = "/run/app/kv.txt"
  error_on_missing_key = true
  left_delimiter = "[["
  right_delimiter = "]]"
  backup = true
  exec { command = ["systemctl", "reload", "app"] timeout = "5s" }
}
template {
  source = "db.tpl"
  destination = "db.env"
  command = "true"
  command_timeout = "3s"
}
env_template "DB_USER" { contents = "{{ with secret \"database/creds/ro\" }}{{ .Data.username }}{{ end }}" }
exec {
  command = ["./app", "-v"]
  restart_on_secret_changes = "never"
  restart_stop_signal = "SIGINT"
}
api_proxy { use_auto_auth_token = "force" }
listener "tcp" {
  address = "127.0.0.1:8100"
  tls_disable = true
}
cache {}
`
	cfg, err := Parse([]byte(src), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PidFile != "/run/agent.pid" || cfg.LogLevel != "debug" || !cfg.Vault.TLSSkipVerify || cfg.Vault.NumRetries != -1 {
		t.Errorf("top = %+v", cfg)
	}
	m := cfg.AutoAuth.Method
	if m.MountPath != "auth/approle-apps" || m.MinBackoff != 2*time.Second || m.MaxBackoff != time.Minute || m.RemoveSecretIDFile || m.SecretIDFile != "/etc/agent/secret-id" {
		t.Errorf("method = %+v", m)
	}
	if len(cfg.AutoAuth.Sinks) != 2 || cfg.AutoAuth.Sinks[1].Mode != 0o600 || cfg.AutoAuth.Sinks[0].Mode != 0o640 {
		t.Errorf("sinks = %+v", cfg.AutoAuth.Sinks)
	}
	tc := cfg.TemplateConfig
	if tc.StaticSecretRenderInt != 10*time.Second || !tc.ExitOnRetryFailure || tc.MaxConnectionsPerHost != 8 || tc.LeaseRenewalThreshold != 0.5 {
		t.Errorf("template_config = %+v", tc)
	}
	t0, t1 := cfg.Templates[0], cfg.Templates[1]
	if !t0.ErrorOnMissingKey || t0.LeftDelim != "[[" || !t0.Backup || len(t0.Command) != 3 || t0.CommandTimeout != 5*time.Second || t0.Perms != 0 {
		t.Errorf("template 0 = %+v", t0)
	}
	if t1.Command[0] != "true" || t1.CommandTimeout != 3*time.Second {
		t.Errorf("template 1 = %+v", t1)
	}
	if len(cfg.EnvTemplates) != 1 || cfg.EnvTemplates[0].Name != "DB_USER" {
		t.Errorf("env templates = %+v", cfg.EnvTemplates)
	}
	if cfg.Exec.RestartOnSecretChanges != "never" || cfg.Exec.RestartStopSignal != syscall.SIGINT || cfg.Exec.Command[1] != "-v" {
		t.Errorf("exec = %+v", cfg.Exec)
	}
	if !cfg.APIProxy.UseAutoAuthToken || !cfg.APIProxy.ForceAutoAuth || cfg.Cache == nil || len(cfg.Listeners) != 1 || !cfg.Listeners[0].TLSDisable {
		t.Errorf("proxy = %+v %+v %+v", cfg.APIProxy, cfg.Cache, cfg.Listeners)
	}
}

func TestJSONSyntax(t *testing.T) {
	src := `{
  "auto_auth": {"method": [{"type": "token_file", "config": {"token_file_path": "/t"}}],
                "sink": [{"type": "file", "config": {"path": "/run/x/tok"}}]},
  "template": [{"contents": "x", "destination": "/run/x/out"}]
}`
	cfg, err := Parse([]byte(src), "agent.json")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AutoAuth.Method.TokenFile != "/t" || len(cfg.Templates) != 1 || len(cfg.AutoAuth.Sinks) != 1 {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestBadInput(t *testing.T) {
	const approle = `auto_auth { method "approle" { config = { role_id_file_path = "/r" } } }` + "\n"
	cases := []struct {
		name, src string
		want      []string
	}{
		{"syntax", "auto_auth {\n  method \"approle\" {\n", []string{"agent.hcl:3:2: object expected closing RBRACE"}},
		{"unknown top-level block", approle + "telemetry {}\n", []string{`agent.hcl:2: unknown key "telemetry"`}},
		{"unknown key in template", approle + "template {\n destination = \"/x\"\n contents = \"y\"\n perm = 0600\n}\n", []string{`agent.hcl:5: unknown key "perm" in template`}},
		{"unknown method config key", "auto_auth {\n method \"approle\" {\n config = {\n role_id_file_path = \"/r\"\n secret_id = \"s\"\n }\n }\n}\n", []string{`agent.hcl:5: unknown key "secret_id" in method "approle" config`}},
		{"unsupported method", "auto_auth { method \"aws\" { config = {} } }\n", []string{`agent.hcl:1: auth method "aws" is not supported`}},
		{"missing role id", "auto_auth { method \"approle\" { config = {} } }\n", []string{`needs role_id_file_path`}},
		{"two methods", "auto_auth {\n method \"approle\" { config = { role_id_file_path = \"/r\" } }\n method \"token_file\" { config = { token_file_path = \"/t\" } }\n}\n", []string{"agent.hcl:3: auto_auth takes one method; the first is at line 2"}},
		{"sink type", approle + "auto_auth {}\n", []string{"auto_auth is set more than once"}},
		{"bad perms", approle + "template {\n contents = \"x\"\n destination = \"/x\"\n perms = \"rw\"\n}\n", []string{"agent.hcl:5: perms must be a file mode"}},
		{"source and contents", approle + "template {\n source = \"a\"\n contents = \"x\"\n destination = \"/x\"\n}\n", []string{"exactly one of source"}},
		{"no destination", approle + "template {\n contents = \"x\"\n}\n", []string{"agent.hcl:2: template needs destination"}},
		{"template without auth", "template {\n contents = \"x\"\n destination = \"/x\"\n}\n", []string{"template needs an auto_auth block"}},
		{"exec command string", approle + "exec {\n command = \"./app\"\n}\n", []string{"agent.hcl:3: exec command must be a list"}},
		{"restart signal", approle + "exec {\n command = [\"a\"]\n restart_stop_signal = \"SIGFOO\"\n}\n", []string{`agent.hcl:4: restart_stop_signal "SIGFOO"`}},
		{"proxy without listener", approle + "api_proxy { use_auto_auth_token = true }\n", []string{"need a listener"}},
		{"listener without tls", approle + "listener \"tcp\" { address = \"127.0.0.1:8100\" }\ncache {}\n", []string{"needs tls_cert_file"}},
		{"unix listener", approle + "listener \"unix\" { address = \"/s\" }\ncache {}\n", []string{`listener type "unix" is not supported`}},
		{"num retries", approle + "vault {\n retry { num_retries = -5 }\n}\n", []string{"agent.hcl:3: num_retries must be"}},
		{"wrapped sink", approle + "auto_auth {\n}\n", []string{"more than once"}},
		{"renewal threshold", approle + "template_config {\n lease_renewal_threshold = 2\n}\n", []string{"agent.hcl:3: lease_renewal_threshold must be a fraction"}},
		{"nothing to do", "vault { address = \"http://x:1\" }\n", []string{"nothing to do"}},
		{"vault address", approle + "vault {\n address = \"vault:8200\"\n}\n", []string{`agent.hcl:3: address "vault:8200" must be an http:// or https:// URL`}},
		{"env_template without exec", approle + "env_template \"A\" { contents = \"x\" }\n", []string{"env_template needs an exec block"}},
		{"userpass password twice", "auto_auth { method \"userpass\" { config = { username = \"u\" password = \"p\" password_file_path = \"/p\" } } }\n", []string{"exactly one of password"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.src), "agent.hcl")
			if err == nil {
				t.Fatal("parsed")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A sink's secret must not appear in an error: the userpass password is
// the one secret a config may carry inline.
func TestErrorsDoNotEchoPassword(t *testing.T) {
	src := "auto_auth { method \"userpass\" { config = { username = \"u\" password = \"hunter2-secret\" bogus = 1 } } }\n"
	_, err := Parse([]byte(src), "agent.hcl")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}
