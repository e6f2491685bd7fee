package httpapi_test

import (
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
)

// generateRoot runs a whole attempt with the given keys and returns the completed status.
func generateRoot(t testing.TB, c *vault.Client, nonce string, keys ...string) *vault.GenerateRootStatusResponse {
	t.Helper()
	for i, k := range keys {
		st, err := c.Sys().GenerateRootUpdate(k, nonce)
		if err != nil {
			t.Fatalf("generate-root update %d: %v", i, err)
		}
		if st.Complete {
			return st
		}
		if st.Progress != i+1 {
			t.Fatalf("progress %d after %d keys", st.Progress, i+1)
		}
	}
	t.Fatal("generate-root did not complete")
	return nil
}

// TestGenerateRootOTP: after the root token is revoked, three key holders make a new one; it
// comes back XORed with the server's OTP, decodes, and works as root with the official client.
func TestGenerateRootOTP(t *testing.T) {
	s := startCeremonyServer(t, 5, 3)
	c := s.client("")
	// Not yet unsealed: a clear 400, nothing started.
	_, err := c.Sys().GenerateRootInit("", "")
	respErr(t, err, 400, "generate-root needs an unsealed server")
	s.unseal(s.keys[0], s.keys[1], s.keys[2])
	old := s.client(s.root)
	if err := old.Auth().Token().RevokeSelf(""); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Auth().Token().LookupSelf(); err == nil {
		t.Fatal("the revoked root token still works")
	}

	idle, err := c.Sys().GenerateRootStatus()
	if err != nil || idle.Started || idle.Required != 3 || idle.OTPLength != commands.OTPLength || idle.Nonce != "" {
		t.Fatalf("idle: %+v %v", idle, err)
	}
	st, err := c.Sys().GenerateRootInit("", "")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Started || st.Nonce == "" || len(st.OTP) != 28 || st.OTPLength != 28 || st.Required != 3 {
		t.Fatalf("init: %+v", st)
	}
	if again, _ := c.Sys().GenerateRootStatus(); again.OTP != "" || again.Nonce != st.Nonce {
		t.Fatalf("the OTP is shown again, or the nonce changed: %+v", again)
	}
	_, err = c.Sys().GenerateRootInit("", "")
	respErr(t, err, 400, "root generation already in progress")
	_, err = c.Sys().GenerateRootUpdate(s.keys[3], "wrong")
	respErr(t, err, 400, "incorrect nonce")
	done := generateRoot(t, c, st.Nonce, s.keys[3], s.keys[4], s.keys[0])
	if done.EncodedToken == "" || done.EncodedToken != done.EncodedRootToken || done.Progress != 3 {
		t.Fatalf("complete: %+v", done)
	}
	token, err := commands.DecodeRootToken(done.EncodedRootToken, st.OTP)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, "hvs.") {
		t.Fatal("the decoded token is not a Ledger token")
	}
	root := s.client(token)
	self, err := root.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	if pol, _ := self.TokenPolicies(); len(pol) != 1 || pol[0] != "root" {
		t.Fatalf("policies %v", pol)
	}
	if err := root.Sys().Mount("kv", &vault.MountInput{Type: "kv"}); err != nil {
		t.Fatalf("the new root token cannot mount: %v", err)
	}
	if after, _ := c.Sys().GenerateRootStatus(); after.Started {
		t.Fatalf("the attempt outlived its completion: %+v", after)
	}
	// Every step is audited, with the keys and the encoded token HMACed.
	for _, path := range []string{"sys/generate-root/attempt", "sys/generate-root/update"} {
		resp := raw(t, s.hs.URL, "GET", "sys/ledger/audit/query?path="+path, nil, tokenHeader(token))
		recs, _ := resp.json(t)["data"].(map[string]any)["records"].([]any)
		if resp.Status != 200 || len(recs) < 2 {
			t.Fatalf("audit records of %s: %d %s", path, resp.Status, trunc(resp.Body))
		}
		noLeak(t, "audit of "+path, resp.Body, append([]string{st.OTP, done.EncodedRootToken, token}, s.keys...)...)
	}
	// The token is an event: it survives a restart.
	s.restart()
	s.unseal(s.keys[1], s.keys[2], s.keys[3])
	if _, err := s.client(token).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the generated token after a restart: %v", err)
	}
	checkNoSecretsLogged(t, s.logs.String(), append([]string{token, st.OTP}, s.keys...)...)
}

// TestGenerateRootPGPAndBadInput: a token encrypted to a PGP key; and every refusal a clear 400
// that leaves the server usable.
func TestGenerateRootPGPAndBadInput(t *testing.T) {
	s := startCeremonyServer(t, 2, 2)
	c := s.client("")
	// Not initialised.
	fresh := startCeremonyServerUninit(t)
	_, err := fresh.client("").Sys().GenerateRootInit("", "")
	respErr(t, err, 400, "not initialized")
	_, err = fresh.client("").Sys().RekeyStatus()
	respErr(t, err, 400, "not initialized")

	s.unseal(s.keys...)
	_, keyB64 := newPGPKey(t, "dave")
	for _, tc := range []struct{ name, otp, pgp, want string }{
		{"short otp", "abc", "", "OTP string is wrong length"},
		{"both", strings.Repeat("a", 28), keyB64, "either otp or pgp_key"},
		{"keybase", "", "keybase:someone", "keybase: names are not supported"},
		{"bad pgp", "", "bm90IGEga2V5", "not a usable PGP public key"},
	} {
		_, err := c.Sys().GenerateRootInit(tc.otp, tc.pgp)
		respErr(t, err, 400, tc.want)
	}
	if st, _ := c.Sys().GenerateRootStatus(); st.Started {
		t.Fatal("a refused init started an attempt")
	}
	_, err = c.Sys().GenerateRootUpdate(s.keys[0], "nothing")
	respErr(t, err, 400, "no root generation in progress")

	// A cancelled attempt's nonce is refused.
	st, err := c.Sys().GenerateRootInit(strings.Repeat("Z", 28), "")
	if err != nil || st.OTP != "" {
		t.Fatalf("init with a given OTP: %+v %v", st, err)
	}
	if _, err := c.Sys().GenerateRootUpdate(s.keys[0], st.Nonce); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sys().GenerateRootUpdate(s.keys[0], st.Nonce)
	respErr(t, err, 400, "already been provided")
	if err := c.Sys().GenerateRootCancel(); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sys().GenerateRootUpdate(s.keys[1], st.Nonce)
	respErr(t, err, 400, "no root generation in progress")

	// Keys of another server do not make a token.
	other := startCeremonyServer(t, 2, 2)
	st, err = c.Sys().GenerateRootInit("", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sys().GenerateRootUpdate(other.keys[0], st.Nonce); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sys().GenerateRootUpdate(other.keys[1], st.Nonce)
	respErr(t, err, 400, "do not reconstruct the current root key")
	if err := c.Sys().GenerateRootCancel(); err != nil {
		t.Fatal(err)
	}

	// PGP.
	ent, entB64 := newPGPKey(t, "erin")
	st, err = c.Sys().GenerateRootInit("", entB64)
	if err != nil || st.PGPFingerprint == "" || st.OTP != "" {
		t.Fatalf("pgp init: %+v %v", st, err)
	}
	done := generateRoot(t, c, st.Nonce, s.keys...)
	token := pgpDecrypt(t, ent, done.EncodedRootToken)
	if _, err := s.client(token).Sys().ListMounts(); err != nil {
		t.Fatalf("the PGP-delivered token: %v", err)
	}
	if _, err := s.client(s.root).Auth().Token().LookupSelf(); err != nil {
		t.Fatal(err)
	}
	checkNoSecretsLogged(t, s.logs.String(), append([]string{token}, s.keys...)...)
}
