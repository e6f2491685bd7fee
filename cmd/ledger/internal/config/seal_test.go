package config

import (
	"errors"
	"strings"
	"testing"
)

const sealBase = "storage \"jetstream\" { path = \"/data\" }\nlistener \"tcp\" { tls_disable = true }\n"

func TestParseSeals(t *testing.T) {
	cfg, err := Parse([]byte(sealBase+`
seal "awskms" {
  region     = "us-east-1"
  kms_key_id = "alias/vault-unseal-key"
  disabled   = "true"
}
seal "pkcs11" {
  lib          = "/usr/lib/softhsm/libsofthsm2.so"
  slot         = 0
  pin          = "1234"
  key_label    = "ledger"
  generate_key = true
}
`), "ledger.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Seals) != 2 {
		t.Fatalf("seals: %+v", cfg.Seals)
	}
	kms, hsm := cfg.Seals[0], cfg.Seals[1]
	if kms.Type != "awskms" || !kms.Disabled || kms.Params["kms_key_id"] != "alias/vault-unseal-key" || kms.Params["region"] != "us-east-1" {
		t.Errorf("awskms stanza: %+v", kms)
	}
	if _, ok := kms.Params["disabled"]; ok {
		t.Error("disabled kept as a parameter")
	}
	if hsm.Type != "pkcs11" || hsm.Disabled || hsm.Params["slot"] != "0" || hsm.Params["generate_key"] != "true" {
		t.Errorf("pkcs11 stanza: %+v", hsm)
	}
}

func TestParseSealErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"two enabled", `seal "awskms" { kms_key_id = "a" }
seal "transit" { key_name = "k" }`, "two seals are enabled"},
		{"two disabled", `seal "awskms" {
  kms_key_id = "a"
  disabled = true
}
seal "transit" {
  key_name = "k"
  disabled = true
}`, "two seals are disabled"},
		{"same type twice", `seal "awskms" { kms_key_id = "a" }
seal "awskms" {
  kms_key_id = "b"
  disabled = "true"
}`, "migrating between two keys of one seal type"},
		{"unknown type", `seal "gcpckms" { project = "p" }`, `seal type "gcpckms" is not one of`},
		{"shamir stanza", `seal "shamir" {}`, "needs no stanza"},
		{"bad disabled", `seal "awskms" { disabled = "maybe" }`, "disabled must be true or false"},
		{"list value", `seal "awskms" { kms_key_id = ["a"] }`, "kms_key_id must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(sealBase+tc.src+"\n"), "ledger.hcl")
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
