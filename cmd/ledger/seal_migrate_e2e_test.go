package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/hosttools"
)

// transitSealServer is a second, real Ledger with a transit key for a seal "transit" stanza.
func transitSealServer(t *testing.T) (addr, token string) {
	t.Helper()
	addr, token = startTestServer(t)
	cfg := vault.DefaultConfig()
	cfg.Address = addr
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	if err := c.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("transit/keys/autounseal", nil); err != nil {
		t.Fatal(err)
	}
	return addr, token
}

func transitStanza(addr, token string, disabled bool) string {
	d := ""
	if disabled {
		d = "  disabled   = \"true\"\n"
	}
	return fmt.Sprintf("seal \"transit\" {\n  address    = %q\n  token      = %q\n  key_name   = \"autounseal\"\n  mount_path = \"transit/\"\n%s}\n", addr, token, d)
}

func disabledStanza(stanza string) string {
	return strings.Replace(stanza, "{\n", "{\n  disabled = \"true\"\n", 1)
}

// TestSealMigrations: Shamir → awskms → transit → Shamir, each with `operator unseal
// -migrate` as Vault documents it, each preserving every secret, each surviving a restart.
// The first migration is also interrupted by kill -9 right as its last key goes in: after the
// restart the migration has either happened or not, and either way finishes without loss.
func TestSealMigrations(t *testing.T) {
	emu := hosttools.StartLocalKMS(t)
	kc := kmsClient(emu.Endpoint())
	keyID := createKMSKey(t, kc, "", types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt)
	tAddr, tToken := transitSealServer(t)
	kmsHCL := awskmsStanza(emu.Endpoint(), keyID)
	transitHCL := transitStanza(tAddr, tToken, false)

	s := newSealServer(t, "")
	s.start()
	res, err := s.client("").Sys().Init(&vault.InitRequest{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	keys := res.KeysB64
	if code, body := s.unsealWith(keys[:2], ""); code != http.StatusOK {
		t.Fatalf("unseal: %d %s", code, body)
	}
	c := s.client(res.RootToken)
	want := writeSecrets(t, c, true, 5)

	// -migrate with no migration pending: a clear 400, nothing changes.
	s.stop()
	s.start()
	if code, body := s.unsealWith(keys[:1], `,"migrate":true`); code != http.StatusBadRequest || !strings.Contains(body, "no seal migration is pending") {
		t.Fatalf("-migrate without a migration: %d %s", code, body)
	}
	if code, body := s.unsealWith(keys[:2], ""); code != http.StatusOK || !strings.Contains(body, `"sealed":false`) {
		t.Fatalf("unseal after refused -migrate: %d %s", code, body)
	}

	// Shamir → awskms (Vault's flow: only the new stanza), interrupted by kill -9.
	s.restart(kmsHCL)
	st := s.status()
	if !st.Sealed || !st.Migration || st.Type != "shamir" {
		t.Fatalf("migration not pending: %+v", st)
	}
	// Without -migrate, the unseal keys are refused with advice.
	if code, body := s.unsealWith(keys[:1], ""); code != http.StatusBadRequest || !strings.Contains(body, "-migrate") {
		t.Fatalf("unseal during a pending migration: %d %s", code, body)
	}
	if code, body := s.unsealWith(keys[:1], `,"migrate":true`); code != http.StatusOK || !strings.Contains(body, `"progress":1`) {
		t.Fatalf("first migrate key: %d %s", code, body)
	}
	go func() {
		// The answer may never come: the server is killed under it.
		req, _ := http.NewRequest(http.MethodPut, "http://"+s.addr+"/v1/sys/unseal", strings.NewReader(`{"key":"`+keys[1]+`","migrate":true}`))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(20 * time.Millisecond)
	s.kill()
	s.start()
	if st := s.status(); st.Migration {
		t.Logf("kill -9 landed before the migration event: finishing it")
		if code, body := s.unsealWith(keys[:2], `,"migrate":true`); code != http.StatusOK {
			t.Fatalf("migrate after kill -9: %d %s", code, body)
		}
	} else {
		t.Logf("kill -9 landed after the migration event: the new seal unseals by itself")
	}
	st = s.waitSealed(false, 20*time.Second)
	if st.Type != "awskms" || st.Migration || st.RecoveryEscrow == nil || !*st.RecoveryEscrow {
		t.Fatalf("after Shamir → awskms: %+v", st)
	}
	checkSecrets(t, c, want)
	s.restart(kmsHCL)
	s.waitSealed(false, 20*time.Second)
	checkSecrets(t, c, want)

	// awskms → transit: the old stanza disabled beside the new one; the recovery keys (the
	// former unseal keys) authorise it.
	s.restart(disabledStanza(kmsHCL) + transitHCL)
	if st := s.status(); !st.Sealed || !st.Migration || st.Type != "awskms" {
		t.Fatalf("awskms → transit not pending: %+v", st)
	}
	if code, body := s.unsealWith(keys[:2], `,"migrate":true`); code != http.StatusOK || !strings.Contains(body, `"sealed":false`) {
		t.Fatalf("migrate to transit: %d %s", code, body)
	}
	if st := s.status(); st.Type != "transit" {
		t.Fatalf("after awskms → transit: %+v", st)
	}
	checkSecrets(t, c, want)
	s.restart(transitHCL)
	s.waitSealed(false, 20*time.Second)
	checkSecrets(t, c, want)

	// transit → Shamir: only the old stanza, disabled; the recovery keys become unseal keys.
	s.restart(transitStanza(tAddr, tToken, true))
	if st := s.status(); !st.Migration || st.Type != "transit" {
		t.Fatalf("transit → shamir not pending: %+v", st)
	}
	if code, body := s.unsealWith(keys[:2], `,"migrate":true`); code != http.StatusOK || !strings.Contains(body, `"sealed":false`) {
		t.Fatalf("migrate to shamir: %d %s", code, body)
	}
	checkSecrets(t, c, want)
	s.restart("")
	if st := s.status(); !st.Sealed || st.Type != "shamir" || st.RecoverySeal || st.Migration {
		t.Fatalf("after transit → shamir restart: %+v", st)
	}
	if code, body := s.unsealWith(keys[:2], ""); code != http.StatusOK || !strings.Contains(body, `"sealed":false`) {
		t.Fatalf("unseal with Shamir again: %d %s", code, body)
	}
	checkSecrets(t, c, want)
}
