package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestServerAddressPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		flag string
		env  map[string]string
		want string
	}{
		{name: "default", env: map[string]string{}, want: "https://127.0.0.1:8200"},
		{name: "VAULT_ADDR", env: map[string]string{"VAULT_ADDR": "http://v:1"}, want: "http://v:1"},
		{name: "LEDGER_ADDR beats VAULT_ADDR", env: map[string]string{"VAULT_ADDR": "http://v:1", "LEDGER_ADDR": "http://l:1"}, want: "http://l:1"},
		{name: "flag beats env", flag: "http://f:1", env: map[string]string{"VAULT_ADDR": "http://v:1", "LEDGER_ADDR": "http://l:1"}, want: "http://f:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := &app{env: tt.env, address: tt.flag}
			if got := a.serverAddress(); got != tt.want {
				t.Errorf("serverAddress() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTokenPrecedence(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	if err := writeTokenFile(filepath.Join(home, tokenFileName), "from-file"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "token file", env: map[string]string{"HOME": home}, want: "from-file"},
		{name: "VAULT_TOKEN beats file", env: map[string]string{"HOME": home, "VAULT_TOKEN": "vault"}, want: "vault"},
		{name: "LEDGER_TOKEN beats VAULT_TOKEN", env: map[string]string{"HOME": home, "VAULT_TOKEN": "vault", "LEDGER_TOKEN": "ledger"}, want: "ledger"},
		{name: "no token anywhere", env: map[string]string{"HOME": t.TempDir()}, want: ""},
		{name: "no home", env: map[string]string{}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := (&app{env: tt.env}).token()
			if err != nil || got != tt.want {
				t.Errorf("token() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestFormatPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		flag string
		env  map[string]string
		want string
	}{
		{env: map[string]string{}, want: formatTable},
		{env: map[string]string{"VAULT_FORMAT": "json"}, want: formatJSON},
		{env: map[string]string{"VAULT_FORMAT": "json", "LEDGER_FORMAT": "yaml"}, want: formatYAML},
		{flag: "table", env: map[string]string{"VAULT_FORMAT": "json"}, want: formatTable},
	}
	for _, tt := range tests {
		p, err := (&app{env: tt.env, format: tt.flag}).printer()
		if err != nil || p.format != tt.want {
			t.Errorf("flag %q env %v: format %v, %v; want %q", tt.flag, tt.env, p, err, tt.want)
		}
	}
}

func TestClientConfigTLS(t *testing.T) {
	t.Parallel()
	cfg, err := (&app{env: map[string]string{"VAULT_SKIP_VERIFY": "true", "VAULT_CACERT": "/ca.pem"}}).clientConfig()
	if err != nil || !cfg.SkipVerify || cfg.CACert != "/ca.pem" {
		t.Errorf("clientConfig = %+v, %v", cfg, err)
	}
	cfg, err = (&app{env: map[string]string{"VAULT_CACERT": "/v.pem", "LEDGER_CACERT": "/l.pem"}, caCert: "/flag.pem"}).clientConfig()
	if err != nil || cfg.CACert != "/flag.pem" {
		t.Errorf("-ca-cert should win: %+v, %v", cfg, err)
	}
	if _, err := (&app{env: map[string]string{"VAULT_SKIP_VERIFY": "maybe"}}).clientConfig(); err == nil {
		t.Error("want an error for VAULT_SKIP_VERIFY=maybe")
	}
	_, err = (&app{env: map[string]string{}, caCert: filepath.Join(t.TempDir(), "none.pem")}).client()
	if err == nil || exitCode(err) != 1 {
		t.Errorf("missing CA file: err = %v, want a local error", err)
	}
}

func TestReadHiddenFromPipe(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.WriteString("key-1\nrest\n")
	w.Close()
	a := &app{stdin: r, stderr: os.Stderr}
	got, err := a.readHidden("Unseal Key (will be hidden): ")
	if err != nil || got != "key-1" {
		t.Errorf("readHidden = %q, %v; want key-1", got, err)
	}
}
