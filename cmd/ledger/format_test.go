package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{768 * time.Hour, "768h"},
		{time.Hour + 30*time.Minute, "1h30m"},
		{90 * time.Second, "1m30s"},
		{time.Hour + 5*time.Second, "1h5s"},
		{45 * time.Second, "45s"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.in); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "90", want: 90 * time.Second},
		{in: "1h", want: time.Hour},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "", want: 0},
		{in: "soon", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestColumns(t *testing.T) {
	t.Parallel()
	got := columns([][]string{{"Key", "Value"}, {"---", "-----"}, {"lease_duration", "768h"}, {"empty", ""}, {"a", " padded "}})
	want := "Key               Value\n" +
		"---               -----\n" +
		"lease_duration    768h\n" +
		"empty             n/a\n" +
		"a                 padded\n"
	if got != want {
		t.Errorf("columns:\n%s\nwant:\n%s", got, want)
	}
}

func newTestPrinter(format string) (*printer, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return &printer{out: &out, errOut: &errOut, format: format}, &out, &errOut
}

func dynamicSecret() *Secret {
	return &Secret{
		RequestID:     "req-1",
		LeaseID:       "database/creds/app/abc",
		LeaseDuration: 2764800,
		Renewable:     true,
		Data:          map[string]any{"username": "v-app-1", "password": "pw", "ttl": json.Number("3600")},
		Warnings:      []string{"careful"},
	}
}

func TestPrinterSecretTable(t *testing.T) {
	t.Parallel()
	p, out, errOut := newTestPrinter(formatTable)
	if err := p.Secret(dynamicSecret()); err != nil {
		t.Fatal(err)
	}
	want := "Key                Value\n" +
		"---                -----\n" +
		"lease_id           database/creds/app/abc\n" +
		"lease_duration     768h\n" +
		"lease_renewable    true\n" +
		"password           pw\n" +
		"ttl                1h\n" +
		"username           v-app-1\n"
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out, want)
	}
	if !strings.Contains(errOut.String(), "* careful") {
		t.Errorf("warnings on stderr = %q, want the warning", errOut)
	}
}

func TestPrinterAuthTable(t *testing.T) {
	t.Parallel()
	p, out, _ := newTestPrinter(formatTable)
	s := &Secret{Auth: &SecretAuth{
		ClientToken: "hvs.x", Accessor: "acc", TokenPolicies: []string{"default", "web"},
		Policies: []string{"default", "web"}, LeaseDuration: 3600, Renewable: true,
		Metadata: map[string]string{"user": "alice"},
	}}
	if err := p.Secret(s); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"token                hvs.x",
		"token_accessor       acc",
		"token_duration       1h",
		"token_renewable      true",
		`token_policies       ["default" "web"]`,
		"identity_policies    []",
		`policies             ["default" "web"]`,
		"token_meta_user      alice",
	} {
		if !strings.Contains(out.String(), line+"\n") {
			t.Errorf("auth table lacks %q:\n%s", line, out)
		}
	}
	p, out, _ = newTestPrinter(formatTable)
	p.Secret(&Secret{Auth: &SecretAuth{ClientToken: "root"}})
	if !strings.Contains(out.String(), "token_duration       ∞") {
		t.Errorf("root token duration should print ∞:\n%s", out)
	}
}

func TestPrinterSecretJSON(t *testing.T) {
	t.Parallel()
	p, out, errOut := newTestPrinter(formatJSON)
	if err := p.Secret(dynamicSecret()); err != nil {
		t.Fatal(err)
	}
	want := `{
  "request_id": "req-1",
  "lease_id": "database/creds/app/abc",
  "lease_duration": 2764800,
  "renewable": true,
  "data": {
    "password": "pw",
    "ttl": 3600,
    "username": "v-app-1"
  },
  "warnings": [
    "careful"
  ]
}
`
	if out.String() != want {
		t.Errorf("json:\n%s\nwant:\n%s", out, want)
	}
	if errOut.Len() != 0 {
		t.Errorf("JSON output must not print warnings separately, got %q", errOut)
	}
}

func TestPrinterSecretYAML(t *testing.T) {
	t.Parallel()
	p, out, _ := newTestPrinter(formatYAML)
	if err := p.Secret(dynamicSecret()); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"lease_duration: 2764800\n", "  ttl: 3600\n", "  username: v-app-1\n", "renewable: true\n", "request_id: req-1\n"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("yaml lacks %q:\n%s", line, out)
		}
	}
}

func TestPrinterField(t *testing.T) {
	t.Parallel()
	s := dynamicSecret()
	tests := []struct {
		format, field, want string
	}{
		{formatTable, "username", "v-app-1\n"},
		{formatTable, "lease_id", "database/creds/app/abc\n"},
		{formatTable, "lease_duration", "2764800\n"},
		{formatTable, "ttl", "3600\n"},
		{formatJSON, "username", "\"v-app-1\"\n"},
		{formatYAML, "username", "v-app-1\n"},
	}
	for _, tt := range tests {
		p, out, _ := newTestPrinter(tt.format)
		if err := p.Field(rawField(s, tt.field), tt.field); err != nil {
			t.Fatal(err)
		}
		if out.String() != tt.want {
			t.Errorf("-format=%s -field=%s printed %q, want %q", tt.format, tt.field, out, tt.want)
		}
	}
	p, _, _ := newTestPrinter(formatTable)
	err := p.Field(rawField(s, "nope"), "nope")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), `Field "nope" not present`) {
		t.Errorf("missing field: err = %v (exit %d), want a local error", err, exitCode(err))
	}
}

func TestRawFieldAuth(t *testing.T) {
	t.Parallel()
	s := &Secret{Auth: &SecretAuth{ClientToken: "tok", Accessor: "acc", Policies: []string{"a"}}}
	if got := rawField(s, "token"); got != "tok" {
		t.Errorf("token = %v", got)
	}
	if got := rawField(s, "token_accessor"); got != "acc" {
		t.Errorf("token_accessor = %v", got)
	}
}

func TestPrinterList(t *testing.T) {
	t.Parallel()
	p, out, _ := newTestPrinter(formatTable)
	if err := p.List([]string{"b/", "a"}, true); err != nil {
		t.Fatal(err)
	}
	if want := "Keys\n----\na\nb/\n"; out.String() != want {
		t.Errorf("list = %q, want %q", out, want)
	}
	p, out, _ = newTestPrinter(formatJSON)
	p.List([]string{"b/", "a"}, true)
	if want := "[\n  \"a\",\n  \"b/\"\n]\n"; out.String() != want {
		t.Errorf("json list = %q, want %q", out, want)
	}
}

func TestPrinterPrintlnOnlyInTable(t *testing.T) {
	t.Parallel()
	p, out, _ := newTestPrinter(formatJSON)
	p.Println("Success! Data written to: secret/x")
	if out.Len() != 0 {
		t.Errorf("success text leaked into JSON output: %q", out)
	}
}

func TestSealStatusRows(t *testing.T) {
	t.Parallel()
	sealed := statusOutput{sealStatus: sealStatus{Type: "shamir", Initialized: true, Sealed: true, T: 3, N: 5, Progress: 1, Version: "0.1.0", StorageType: "jetstream"}}
	p, out, _ := newTestPrinter(formatTable)
	p.KeyValue(sealStatusRows(sealed))
	for _, line := range []string{"Seal Type          shamir", "Initialized        true", "Sealed             true", "Total Shares       5", "Threshold          3", "Unseal Progress    1/3", "Unseal Nonce       n/a", "Version            0.1.0", "Storage Type       jetstream", "HA Enabled         false"} {
		if !strings.Contains(out.String(), line+"\n") {
			t.Errorf("status table lacks %q:\n%s", line, out)
		}
	}
	unsealed := statusOutput{sealStatus: sealStatus{Type: "shamir", Initialized: true, T: 1, N: 1}}
	p, out, _ = newTestPrinter(formatTable)
	p.KeyValue(sealStatusRows(unsealed))
	if strings.Contains(out.String(), "Unseal Progress") {
		t.Errorf("unsealed status shows unseal progress:\n%s", out)
	}
}

func TestInitOutputJSON(t *testing.T) {
	t.Parallel()
	p, out, _ := newTestPrinter(formatJSON)
	p.Structured(initOutput{UnsealKeysB64: []string{"a"}, UnsealKeysHex: []string{"0a"}, UnsealShares: 1, UnsealThreshold: 1,
		RecoveryKeysB64: []string{}, RecoveryKeysHex: []string{}, RootToken: "root"})
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"unseal_keys_b64", "unseal_keys_hex", "unseal_shares", "unseal_threshold", "recovery_keys_b64", "recovery_keys_hex", "recovery_keys_shares", "recovery_keys_threshold", "root_token"} {
		if _, ok := got[k]; !ok {
			t.Errorf("init JSON lacks %q: %s", k, out)
		}
	}
	text := initText(initOutput{UnsealKeysB64: []string{"k1", "k2"}, UnsealShares: 2, UnsealThreshold: 2, RootToken: "root"})
	for _, line := range []string{"Unseal Key 1: k1\n", "Unseal Key 2: k2\n", "Initial Root Token: root\n"} {
		if !strings.Contains(text, line) {
			t.Errorf("init text lacks %q:\n%s", line, text)
		}
	}
}
