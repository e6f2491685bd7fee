package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/hosttools"
)

func pkcs11Stanza(hsm *hosttools.SoftHSM, pin string) string {
	return fmt.Sprintf("seal \"pkcs11\" {\n  lib          = %q\n  token_label  = %q\n  pin          = %q\n  key_label    = \"ledger-root\"\n  mechanism    = \"0x1087\"\n  generate_key = \"true\"\n}\n",
		hsm.Lib, hsm.TokenLabel, pin)
}

// TestAutoSealPKCS11: a seal "pkcs11" on a real SoftHSM2 token unseals itself after a restart;
// a wrong PIN leaves the server sealed with a clear message and is not retried (an HSM locks
// the user out after a few failures); the right PIN again unseals.
func TestAutoSealPKCS11(t *testing.T) {
	hsm := hosttools.StartSoftHSM(t, "ledger", "1234")
	s := newSealServer(t, pkcs11Stanza(hsm, hsm.PIN), "SOFTHSM2_CONF="+hsm.Conf)
	s.start()
	res, err := s.client("").Sys().Init(&vault.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if st := s.waitSealed(false, 10*time.Second); st.Type != "pkcs11" {
		t.Fatalf("after init: %+v", st)
	}
	c := s.client(res.RootToken)
	want := writeSecrets(t, c, true, 3)

	s.restart(s.sealHCL)
	s.waitSealed(false, 20*time.Second)
	checkSecrets(t, c, want)

	// Wrong PIN: sealed, one clear error, no retry loop.
	good := s.sealHCL
	s.restart(pkcs11Stanza(hsm, "9999"))
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.stderr.String(), "PIN was refused") {
		if time.Now().After(deadline) {
			t.Fatalf("wrong PIN not reported:\n%s", s.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // LEDGER_SEAL_RETRY_MAX is 1s: a retry loop would show by now
	if n := strings.Count(s.stderr.String(), "PIN was refused"); n > 2 {
		t.Errorf("the wrong PIN was tried %d times", n)
	}
	if st := s.status(); !st.Sealed {
		t.Fatal("unsealed with a wrong PIN")
	}
	if code, body := s.raw(http.MethodGet, "sys/health", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "PIN") {
		t.Errorf("health with a wrong PIN: %d %s", code, body)
	}
	s.restart(good)
	s.waitSealed(false, 20*time.Second)
	checkSecrets(t, c, want)

	// The same seal from the environment alone, with Vault's names and Ledger's.
	s.env = append(s.env, "LEDGER_SEAL_TYPE=pkcs11", "VAULT_HSM_LIB="+hsm.Lib, "VAULT_HSM_TOKEN_LABEL="+hsm.TokenLabel,
		"LEDGER_HSM_PIN="+hsm.PIN, "VAULT_HSM_KEY_LABEL=ledger-root")
	s.restart("")
	s.waitSealed(false, 20*time.Second)
	checkSecrets(t, c, want)
}
