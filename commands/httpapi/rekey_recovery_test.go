package httpapi_test

import (
	"context"
	"encoding/hex"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/ledger/autoseal"
)

// startTransitSealed starts a Ledger auto-sealed by the transit engine of another, real Ledger
// (recovery keys 3/2), and returns it with its recovery keys in hex.
func startTransitSealed(t *testing.T) (*ceremonyServer, []string) {
	t.Helper()
	provider := startServer(t)
	pc := provider.Client(t, provider.RootToken)
	if err := pc.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Logical().Write("transit/keys/autounseal", nil); err != nil {
		t.Fatal(err)
	}
	w, err := autoseal.Open(context.Background(), autoseal.Config{Type: autoseal.TypeTransit, Params: map[string]string{
		"address": provider.URL, "token": provider.RootToken, "key_name": "autounseal", "mount_path": "transit"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &ceremonyServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, seal: commands.SealOptions{Wrapper: w}}
	s.start()
	t.Cleanup(s.stop)
	res, err := s.core.Init(context.Background(), commands.InitRequest{RecoveryShares: 3, RecoveryThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	s.root = res.RootToken
	var rec []string
	for _, k := range res.RecoveryKeys {
		rec = append(rec, hex.EncodeToString(k))
	}
	if !s.core.Unsealed() {
		t.Fatal("an auto-sealed server is sealed after init")
	}
	return s, rec
}

// TestRecoveryKeysAuthoriseCeremonies: with an auto-seal, sys/rekey refuses (no unseal keys),
// sys/rekey-recovery-key rekeys the recovery keys (old ones then authorise nothing, also after a
// restart), and generate-root is authorised by recovery keys.
func TestRecoveryKeysAuthoriseCeremonies(t *testing.T) {
	s, rec := startTransitSealed(t)
	c := s.client("")
	_, err := c.Sys().RekeyInit(&vault.RekeyInitRequest{SecretShares: 3, SecretThreshold: 2})
	respErr(t, err, 400, "rekey the recovery keys with sys/rekey-recovery-key")
	st, err := c.Sys().RekeyRecoveryKeyStatus()
	if err != nil || st.Started || st.Required != 2 {
		t.Fatalf("recovery rekey status: %+v %v", st, err)
	}
	_, err = c.Sys().RekeyRecoveryKeyInit(&vault.RekeyInitRequest{SecretShares: 4, SecretThreshold: 3, Backup: true, PGPKeys: []string{}})
	respErr(t, err, 400, "without providing PGP keys")
	st, err = c.Sys().RekeyRecoveryKeyInit(&vault.RekeyInitRequest{SecretShares: 4, SecretThreshold: 3})
	if err != nil || !st.Started || st.N != 4 || st.T != 3 || st.Required != 2 {
		t.Fatalf("recovery rekey init: %+v %v", st, err)
	}
	if _, err := c.Sys().RekeyRecoveryKeyUpdate(rec[0], st.Nonce); err != nil {
		t.Fatal(err)
	}
	up, err := c.Sys().RekeyRecoveryKeyUpdate(rec[2], st.Nonce)
	if err != nil || !up.Complete || len(up.Keys) != 4 {
		t.Fatalf("recovery rekey: %+v %v", up, err)
	}
	if n, tt, _ := s.core.RecoverySharesConfig(); n != 4 || tt != 3 {
		t.Fatalf("recovery split after rekey: %d/%d", n, tt)
	}
	s.restart()

	// Generate-root: the old recovery keys fail, the new ones make a working root token.
	c = s.client("")
	g, err := c.Sys().GenerateRootInit("", "")
	if err != nil || g.Required != 3 {
		t.Fatalf("generate-root init: %+v %v", g, err)
	}
	for _, k := range rec[:2] {
		if _, err = c.Sys().GenerateRootUpdate(k, g.Nonce); err != nil {
			break
		}
	}
	if err == nil {
		_, err = c.Sys().GenerateRootUpdate(rec[2], g.Nonce)
	}
	respErr(t, err, 400, "do not reconstruct the recovery key")
	done := generateRoot(t, c, g.Nonce, up.Keys[3], up.Keys[0], up.Keys[1])
	tok, err := commands.DecodeRootToken(done.EncodedRootToken, g.OTP)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.client(tok).Sys().Mount("kv", &vault.MountInput{Type: "kv"}); err != nil {
		t.Fatalf("the token made with recovery keys: %v", err)
	}
	checkNoSecretsLogged(t, s.logs.String(), append(append([]string{tok}, rec...), up.Keys...)...)
}
