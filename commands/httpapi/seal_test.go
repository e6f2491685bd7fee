package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

func respErr(t testing.TB, err error, status int, contains string) {
	t.Helper()
	var re *vault.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want an API error %d", err, status)
	}
	if re.StatusCode != status || !strings.Contains(strings.Join(re.Errors, " "), contains) {
		t.Fatalf("got %d %q, want %d containing %q", re.StatusCode, re.Errors, status, contains)
	}
}

// TestSealCeremonyAcrossKill9 walks issue 2's ceremony: 501 before init, 5/3 init, 503, any 3
// keys unseal (hex or base64), SIGKILL, sealed again, a different 3 keys unseal and the root
// token still works; nothing secret is on disk in clear.
func TestSealCeremonyAcrossKill9(t *testing.T) {
	dir := t.TempDir()
	srv := startChild(t, dir)
	if code := healthCode(t, srv.url(), ""); code != http.StatusNotImplemented {
		t.Fatalf("health before init = %d, want 501", code)
	}
	c := srv.client("")
	// Bad input before init.
	_, err := c.Sys().Unseal(hex.EncodeToString(make([]byte, 33)))
	respErr(t, err, 400, "not initialized")
	_, err = c.Sys().Init(&vault.InitRequest{SecretShares: 5, SecretThreshold: 1})
	respErr(t, err, 400, "threshold")
	_, err = c.Sys().Init(&vault.InitRequest{SecretShares: 2, SecretThreshold: 3})
	respErr(t, err, 400, "secret_threshold")

	init, err := c.Sys().Init(&vault.InitRequest{SecretShares: 5, SecretThreshold: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(init.Keys) != 5 || len(init.KeysB64) != 5 || !strings.HasPrefix(init.RootToken, "hvs.") {
		t.Fatalf("init answer: %d keys, %d base64, token prefix %q", len(init.Keys), len(init.KeysB64), init.RootToken[:4])
	}
	_, err = c.Sys().Init(&vault.InitRequest{SecretShares: 5, SecretThreshold: 3})
	respErr(t, err, 400, "Vault is already initialized")
	if code := healthCode(t, srv.url(), ""); code != http.StatusServiceUnavailable {
		t.Fatalf("health after init = %d, want 503", code)
	}
	if code := healthCode(t, srv.url(), "?sealedcode=299"); code != 299 {
		t.Fatalf("health ?sealedcode=299 = %d", code)
	}
	if code := healthCode(t, srv.url(), "?sealedcode=abc"); code != 400 {
		t.Fatalf("health ?sealedcode=abc = %d, want 400", code)
	}
	// Sealed: every non-sys path is 503 with Vault's text.
	_, err = srv.client(init.RootToken).Logical().Read("auth/token/lookup-self")
	respErr(t, err, 503, "Vault is sealed")

	// Not a share.
	_, err = c.Sys().Unseal("this is not a key")
	respErr(t, err, 400, "hex or base64")
	// The wrong shares reaching the threshold: refused, progress reset, still sealed.
	wrong := make([]byte, 33)
	wrong[32] = 9
	for i, k := range []string{init.Keys[0], init.Keys[1], hex.EncodeToString(wrong)} {
		st, err := c.Sys().Unseal(k)
		if i < 2 {
			if err != nil || st.Progress != i+1 || !st.Sealed {
				t.Fatalf("share %d: %+v %v", i, st, err)
			}
			continue
		}
		respErr(t, err, 400, "reset")
	}
	st, err := c.Sys().SealStatus()
	if err != nil || !st.Sealed || st.Progress != 0 {
		t.Fatalf("after wrong shares: %+v %v", st, err)
	}

	// Any 3 keys, hex and base64 mixed.
	for i, k := range []string{init.Keys[0], init.KeysB64[2], init.Keys[4]} {
		st, err := c.Sys().Unseal(k)
		if err != nil {
			t.Fatalf("unseal %d: %v", i, err)
		}
		if i == 2 && st.Sealed {
			t.Fatal("still sealed after the threshold")
		}
	}
	if code := healthCode(t, srv.url(), ""); code != http.StatusOK {
		t.Fatalf("health unsealed = %d", code)
	}
	lookupRoot := func() {
		t.Helper()
		s, err := srv.client(init.RootToken).Auth().Token().LookupSelf()
		if err != nil {
			t.Fatalf("lookup-self: %v", err)
		}
		pols, _ := s.TokenPolicies()
		if len(pols) != 1 || pols[0] != "root" {
			t.Fatalf("root token policies %v", pols)
		}
	}
	lookupRoot()

	srv.kill9()
	srv.start()
	if code := healthCode(t, srv.url(), ""); code != http.StatusServiceUnavailable {
		t.Fatalf("health after kill -9 = %d, want 503", code)
	}
	for _, k := range []string{init.KeysB64[1], init.Keys[3], init.KeysB64[2]} {
		if _, err := c.Sys().Unseal(k); err != nil {
			t.Fatal(err)
		}
	}
	if code := healthCode(t, srv.url(), ""); code != http.StatusOK {
		t.Fatalf("health after second ceremony = %d", code)
	}
	lookupRoot()

	// Nothing secret on disk in clear: shares in every encoding, the raw root token.
	needles := [][]byte{[]byte(init.RootToken)}
	for i := range init.Keys {
		raw, _ := hex.DecodeString(init.Keys[i])
		needles = append(needles, raw[:32], []byte(init.Keys[i]), []byte(init.KeysB64[i]), []byte(base64.RawStdEncoding.EncodeToString(raw)))
	}
	files := dataDirFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("no files in the data dir")
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Fatalf("%s holds a share or the root token in clear", f)
			}
		}
	}
}

// TestRotateSurvivesRestart: after sys/rotate the term moves, and after a restart every event
// (written under both terms) still opens.
func TestRotateSurvivesRestart(t *testing.T) {
	srv := startChild(t, t.TempDir())
	c := srv.client("")
	init, root := srv.initUnseal()
	before, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Rotate(); err != nil {
		t.Fatal(err)
	}
	ks, err := root.Sys().KeyStatus()
	if err != nil || ks.Term != 2 {
		t.Fatalf("key-status after rotate: %+v %v", ks, err)
	}
	after, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	// A non-root token may not rotate.
	err = srv.client(after.Auth.ClientToken).Sys().Rotate()
	respErr(t, err, 403, "permission denied")

	srv.kill9()
	srv.start()
	if _, err := c.Sys().Unseal(init.Keys[0]); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"term 1": before.Auth.ClientToken, "term 2": after.Auth.ClientToken} {
		if _, err := srv.client(tok).Auth().Token().LookupSelf(); err != nil {
			t.Fatalf("token created under %s: %v", name, err)
		}
	}
	ks, err = root.Sys().KeyStatus()
	if err != nil || ks.Term != 2 {
		t.Fatalf("key-status after restart: %+v %v", ks, err)
	}
	// Seal through the API, then everything but sys is 503.
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	_, err = root.Auth().Token().LookupSelf()
	respErr(t, err, 503, "Vault is sealed")
}
