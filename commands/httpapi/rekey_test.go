package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/ledger"
)

// ceremonyServer is a real Ledger on a temp dir, initialised with a chosen split, that can be
// stopped and started again on the same log; its log output is kept to look for leaks.
type ceremonyServer struct {
	t      testing.TB
	dir    string
	logs   *syncBuffer
	l      *ledger.Log
	core   *commands.Core
	hs     *httptest.Server
	keys   []string // hex, as init gave them
	root   string
	closed bool
	seal   commands.SealOptions // zero: Shamir
}

func startCeremonyServerUninit(t testing.TB) *ceremonyServer {
	t.Helper()
	s := &ceremonyServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func startCeremonyServer(t testing.TB, shares, threshold int) *ceremonyServer {
	t.Helper()
	s := startCeremonyServerUninit(t)
	res, err := s.core.Init(context.Background(), commands.InitRequest{SecretShares: shares, SecretThreshold: threshold})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range res.Keys {
		s.keys = append(s.keys, hex.EncodeToString(k))
	}
	s.root = res.RootToken
	return s
}

func (s *ceremonyServer) start() {
	s.t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := ledger.Open(ctx, ledger.Options{Dir: s.dir, Logger: logger})
	if err != nil {
		s.t.Fatal(err)
	}
	core, err := commands.New(ctx, l, commands.Options{Logger: logger, Seal: s.seal})
	if err != nil {
		s.t.Fatal(err)
	}
	s.l, s.core, s.closed = l, core, false
	if s.seal.Wrapper != nil && core.Initialized() {
		if err := core.AutoUnseal(ctx); err != nil {
			s.t.Fatalf("auto-unseal: %v", err)
		}
	}
	s.hs = httptest.NewServer(httpapi.New(core, httpapi.Options{Logger: logger}))
}

func (s *ceremonyServer) stop() {
	if s.closed {
		return
	}
	s.closed = true
	s.hs.Close()
	s.core.Close()
	s.l.Close()
}

func (s *ceremonyServer) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

func (s *ceremonyServer) client(token string) *vault.Client {
	s.t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = s.hs.URL
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// unseal gives keys until the server opens; it fails the test if they do not open it.
func (s *ceremonyServer) unseal(keys ...string) {
	s.t.Helper()
	c := s.client("")
	for _, k := range keys {
		st, err := c.Sys().Unseal(k)
		if err != nil {
			s.t.Fatalf("unseal: %v", err)
		}
		if !st.Sealed {
			return
		}
	}
	s.t.Fatal("the keys given left the server sealed")
}

// unsealFails checks that keys reaching the threshold are refused and the server stays sealed.
func (s *ceremonyServer) unsealFails(keys ...string) {
	s.t.Helper()
	c := s.client("")
	var err error
	for _, k := range keys {
		if _, err = c.Sys().Unseal(k); err != nil {
			break
		}
	}
	respErr(s.t, err, 400, "do not reconstruct the root key")
	if st, _ := c.Sys().SealStatus(); !st.Sealed || st.Progress != 0 {
		s.t.Fatalf("after refused keys: %+v", st)
	}
}

// rekey runs a whole rekey with the given current keys and returns the update that completed.
func rekey(t testing.TB, c *vault.Client, init *vault.RekeyInitRequest, keys ...string) *vault.RekeyUpdateResponse {
	t.Helper()
	st, err := c.Sys().RekeyInit(init)
	if err != nil {
		t.Fatalf("rekey init: %v", err)
	}
	return rekeyWithNonce(t, c, st.Nonce, keys...)
}

// TestRekeyOldSharesStopWorking: a 3/2 split is rekeyed to 5/3 through the official client; the
// old keys then open nothing — sealed or after a restart — and the new ones unseal with every
// secret intact.
func TestRekeyOldSharesStopWorking(t *testing.T) {
	s := startCeremonyServer(t, 3, 2)
	old := s.keys
	s.unseal(old[0], old[1])
	root := s.client(s.root)
	if err := root.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Put(context.Background(), "app", map[string]any{"pw": "before-rekey"}); err != nil {
		t.Fatal(err)
	}
	c := s.client("")

	idle, err := c.Sys().RekeyStatus()
	if err != nil || idle.Started || idle.Required != 2 || idle.Nonce != "" {
		t.Fatalf("idle status: %+v %v", idle, err)
	}
	st, err := c.Sys().RekeyInit(&vault.RekeyInitRequest{SecretShares: 5, SecretThreshold: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Started || st.T != 3 || st.N != 5 || st.Required != 2 || st.Progress != 0 || st.Nonce == "" || st.VerificationRequired {
		t.Fatalf("started: %+v", st)
	}
	_, err = c.Sys().RekeyInit(&vault.RekeyInitRequest{SecretShares: 5, SecretThreshold: 3})
	respErr(t, err, 400, "rekey already in progress")
	_, err = c.Sys().RekeyUpdate(old[0], "not-the-nonce")
	respErr(t, err, 400, "incorrect nonce")
	up, err := c.Sys().RekeyUpdate(old[0], st.Nonce)
	if err != nil || up.Complete {
		t.Fatalf("first key: %+v %v", up, err)
	}
	if s2, _ := c.Sys().RekeyStatus(); s2.Progress != 1 {
		t.Fatalf("progress after one key: %+v", s2)
	}
	_, err = c.Sys().RekeyUpdate(old[0], st.Nonce)
	respErr(t, err, 400, "already been provided")
	b64, _ := hex.DecodeString(old[1])
	up, err = c.Sys().RekeyUpdate(base64.StdEncoding.EncodeToString(b64), st.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	if !up.Complete || len(up.Keys) != 5 || len(up.KeysB64) != 5 || up.Nonce != st.Nonce || up.VerificationRequired {
		t.Fatalf("complete: %+v", up)
	}
	if after, _ := c.Sys().RekeyStatus(); after.Started || after.Required != 3 {
		t.Fatalf("status after the rekey: %+v", after)
	}
	if ss, _ := c.Sys().SealStatus(); ss.T != 3 || ss.N != 5 {
		t.Fatalf("seal-status after the rekey: t=%d n=%d", ss.T, ss.N)
	}

	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	s.unsealFails(old...)
	s.unseal(up.Keys[4], up.KeysB64[0], up.Keys[2])
	if sec, err := root.KVv2("secret").Get(context.Background(), "app"); err != nil || sec.Data["pw"] != "before-rekey" {
		t.Fatalf("secret after rekey: %v %v", sec, err)
	}
	// The rekey is an event: a restart replays it.
	s.restart()
	s.unsealFails(old[1], old[2], old[0])
	s.unseal(up.Keys[1], up.Keys[3], up.Keys[0])
	root = s.client(s.root)
	if sec, err := root.KVv2("secret").Get(context.Background(), "app"); err != nil || sec.Data["pw"] != "before-rekey" {
		t.Fatalf("secret after restart: %v %v", sec, err)
	}
	// A rotation after the rekey wraps under the new root key: the new keys still open.
	if err := root.Sys().Rotate(); err != nil {
		t.Fatal(err)
	}
	s.restart()
	s.unseal(up.Keys[2], up.Keys[3], up.Keys[4])

	// Old keys in a new rekey: refused, the attempt stays, the current keys then complete it.
	c = s.client("")
	st, err = c.Sys().RekeyInit(&vault.RekeyInitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range old[:2] {
		if _, err = c.Sys().RekeyUpdate(k, st.Nonce); err != nil {
			break
		}
	}
	if _, err = c.Sys().RekeyUpdate(old[2], st.Nonce); err == nil {
		t.Fatal("three old keys completed a rekey")
	}
	respErr(t, err, 400, "do not reconstruct the current root key")
	if cur, _ := c.Sys().RekeyStatus(); !cur.Started || cur.Progress != 0 || cur.Nonce != st.Nonce {
		t.Fatalf("after old keys: %+v", cur)
	}
	last := rekeyWithNonce(t, c, st.Nonce, up.Keys[0], up.Keys[1], up.Keys[2])
	if len(last.Keys) != 1 {
		t.Fatalf("1/1 rekey gave %d keys", len(last.Keys))
	}
	s.restart()
	s.unsealFails(up.Keys[0], up.Keys[1], up.Keys[2])
	s.unseal(last.Keys[0])
	checkNoSecretsLogged(t, s.logs.String(), append(append(append([]string{}, old...), up.Keys...), last.Keys...)...)
}

func rekeyWithNonce(t testing.TB, c *vault.Client, nonce string, keys ...string) *vault.RekeyUpdateResponse {
	t.Helper()
	for i, k := range keys {
		up, err := c.Sys().RekeyUpdate(k, nonce)
		if err != nil {
			t.Fatalf("rekey update %d: %v", i, err)
		}
		if up.Complete {
			return up
		}
	}
	t.Fatal("rekey did not complete")
	return nil
}

// checkNoSecretsLogged looks for every key (hex and base64) in the server's log output.
func checkNoSecretsLogged(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	for _, k := range secrets {
		forms := []string{k}
		if b, err := hex.DecodeString(k); err == nil {
			forms = append(forms, base64.StdEncoding.EncodeToString(b))
		}
		for _, f := range forms {
			if f != "" && strings.Contains(logs, f) {
				t.Fatalf("the server log holds a key or token")
			}
		}
	}
}

// TestRekeyVerification: with require_verification the new keys are handed out but the old
// ones stay in force until a threshold of the new ones is given back to sys/rekey/verify.
func TestRekeyVerification(t *testing.T) {
	s := startCeremonyServer(t, 2, 2)
	old := s.keys
	s.unseal(old...)
	c := s.client("")
	_, err := c.Sys().RekeyVerificationStatus()
	respErr(t, err, 400, "no rekey verification in progress")
	up := rekey(t, c, &vault.RekeyInitRequest{SecretShares: 3, SecretThreshold: 2, RequireVerification: true}, old...)
	if !up.VerificationRequired || up.VerificationNonce == "" || len(up.Keys) != 3 {
		t.Fatalf("update: %+v", up)
	}
	if ss, _ := c.Sys().SealStatus(); ss.T != 2 || ss.N != 2 {
		t.Fatalf("the new split is in force before verification: t=%d n=%d", ss.T, ss.N)
	}
	st, err := c.Sys().RekeyStatus()
	if err != nil || !st.Started || !st.VerificationRequired || st.VerificationNonce != up.VerificationNonce {
		t.Fatalf("status while verifying: %+v %v", st, err)
	}
	_, err = c.Sys().RekeyUpdate(old[0], up.Nonce)
	respErr(t, err, 400, "await verification")
	vs, err := c.Sys().RekeyVerificationStatus()
	if err != nil || !vs.Started || vs.T != 2 || vs.N != 3 || vs.Nonce != up.VerificationNonce {
		t.Fatalf("verify status: %+v %v", vs, err)
	}
	_, err = c.Sys().RekeyVerificationUpdate(up.Keys[0], up.Nonce) // the rekey's nonce, not the verification's
	respErr(t, err, 400, "incorrect nonce")
	// Old keys do not verify: progress resets, nothing changes.
	if _, err := c.Sys().RekeyVerificationUpdate(old[0], up.VerificationNonce); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sys().RekeyVerificationUpdate(old[1], up.VerificationNonce)
	respErr(t, err, 400, "do not reconstruct the new root key")
	// Restarting verification changes its nonce.
	if err := c.Sys().RekeyVerificationCancel(); err != nil {
		t.Fatal(err)
	}
	vs, _ = c.Sys().RekeyVerificationStatus()
	if vs.Nonce == up.VerificationNonce || vs.Progress != 0 {
		t.Fatalf("after verification restart: %+v", vs)
	}
	if _, err := c.Sys().RekeyVerificationUpdate(up.Keys[2], vs.Nonce); err != nil {
		t.Fatal(err)
	}
	done, err := c.Sys().RekeyVerificationUpdate(up.Keys[0], vs.Nonce)
	if err != nil || !done.Complete || done.Nonce != vs.Nonce {
		t.Fatalf("verify: %+v %v", done, err)
	}
	if ss, _ := c.Sys().SealStatus(); ss.T != 2 || ss.N != 3 {
		t.Fatalf("after verification: t=%d n=%d", ss.T, ss.N)
	}
	if err := s.client(s.root).Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	s.unsealFails(old...)
	s.unseal(up.Keys[1], up.Keys[2])
}

func newPGPKey(t *testing.T, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@example.test", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return newPGPKeyFrom(t, e)
}

// newPGPKeyFrom returns e and the base64 of its public key, as Vault's pgp_keys take it.
func newPGPKeyFrom(t *testing.T, e *openpgp.Entity) (*openpgp.Entity, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return e, base64.StdEncoding.EncodeToString(buf.Bytes())
}

func pgpDecrypt(t *testing.T, e *openpgp.Entity, b64 string) string {
	t.Helper()
	ct, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	md, err := openpgp.ReadMessage(bytes.NewReader(ct), openpgp.EntityList{e}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(md.UnverifiedBody)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRekeyPGPAndBackup: new keys encrypted to each holder's PGP key, a backup readable with a
// sudo token; decrypted keys unseal.
func TestRekeyPGPAndBackup(t *testing.T) {
	s := startCeremonyServer(t, 1, 1)
	s.unseal(s.keys[0])
	alice, aliceKey := newPGPKey(t, "alice")
	bob, bobKey := newPGPKey(t, "bob")
	c := s.client("")
	up := rekey(t, c, &vault.RekeyInitRequest{SecretShares: 2, SecretThreshold: 2, PGPKeys: []string{aliceKey, bobKey}, Backup: true}, s.keys[0])
	if len(up.PGPFingerprints) != 2 || !up.Backup || len(up.KeysB64) != 2 {
		t.Fatalf("pgp rekey: %+v", up)
	}
	if up.PGPFingerprints[0] != hex.EncodeToString(alice.PrimaryKey.Fingerprint) {
		t.Fatalf("fingerprint %s", up.PGPFingerprints[0])
	}
	k0, k1 := pgpDecrypt(t, alice, up.KeysB64[0]), pgpDecrypt(t, bob, up.KeysB64[1])
	if len(k0) != 66 {
		t.Fatalf("a decrypted key is %d characters, want 66 hex", len(k0))
	}
	_, err := c.Sys().RekeyRetrieveBackup()
	respErr(t, err, 403, "permission denied")
	root := s.client(s.root)
	bk, err := root.Sys().RekeyRetrieveBackup()
	if err != nil || bk.Nonce != up.Nonce || len(bk.KeysB64[up.PGPFingerprints[1]]) != 1 {
		t.Fatalf("backup: %+v %v", bk, err)
	}
	if pgpDecrypt(t, bob, bk.KeysB64[up.PGPFingerprints[1]][0]) != k1 {
		t.Fatal("the backup does not hold bob's key")
	}
	if err := root.Sys().RekeyDeleteBackup(); err != nil {
		t.Fatal(err)
	}
	_, err = root.Sys().RekeyRetrieveBackup()
	respErr(t, err, 404, "no backed-up keys")
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	s.unsealFails(s.keys[0], k0) // the old key with a new one: no key at all
	s.unseal(k1, k0)
	checkNoSecretsLogged(t, s.logs.String(), k0, k1, s.keys[0])
}

// TestRekeyBadInput: each refused with a clear 400, nothing echoed, the server still usable.
func TestRekeyBadInput(t *testing.T) {
	s := startCeremonyServer(t, 2, 2)
	c := s.client("")
	_, err := c.Sys().RekeyInit(&vault.RekeyInitRequest{SecretShares: 3, SecretThreshold: 2})
	respErr(t, err, 503, "Vault is sealed")
	s.unseal(s.keys...)
	_, err = c.Sys().RekeyUpdate(s.keys[0], "no-attempt")
	respErr(t, err, 400, "no rekey in progress")
	_, keyB64 := newPGPKey(t, "carol")
	for _, tc := range []struct {
		name string
		req  vault.RekeyInitRequest
		want string
	}{
		{"threshold above shares", vault.RekeyInitRequest{SecretShares: 2, SecretThreshold: 3}, "cannot be greater than secret_shares"},
		{"too many shares", vault.RekeyInitRequest{SecretShares: 256, SecretThreshold: 3}, "between 1 and 255"},
		{"zero shares", vault.RekeyInitRequest{SecretShares: 0, SecretThreshold: 0}, "between 1 and 255"},
		{"threshold one of many", vault.RekeyInitRequest{SecretShares: 3, SecretThreshold: 1}, "at least 2"},
		{"invalid pgp key", vault.RekeyInitRequest{SecretShares: 1, SecretThreshold: 1, PGPKeys: []string{base64.StdEncoding.EncodeToString([]byte("not a key"))}}, "not a usable PGP public key"},
		{"pgp key not base64", vault.RekeyInitRequest{SecretShares: 1, SecretThreshold: 1, PGPKeys: []string{"@@@"}}, "base64 of a binary"},
		{"keybase", vault.RekeyInitRequest{SecretShares: 1, SecretThreshold: 1, PGPKeys: []string{"keybase:jefferai"}}, "keybase: names are not supported"},
		{"pgp count", vault.RekeyInitRequest{SecretShares: 2, SecretThreshold: 2, PGPKeys: []string{keyB64}}, "incorrect number of PGP keys"},
		{"backup without pgp", vault.RekeyInitRequest{SecretShares: 2, SecretThreshold: 2, Backup: true}, "without providing PGP keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Sys().RekeyInit(&tc.req)
			respErr(t, err, 400, tc.want)
			if st, _ := c.Sys().RekeyStatus(); st.Started {
				t.Fatal("a refused init started a rekey")
			}
		})
	}
	st, err := c.Sys().RekeyInit(&vault.RekeyInitRequest{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, key, want string }{
		{"not a key", "zz-not-hex", "valid hex or base64"},
		{"short key", hex.EncodeToString([]byte{1, 2, 3}), "want 33"},
		{"empty key", "", "'key' must be specified"},
	} {
		resp := raw(t, s.hs.URL, "PUT", "sys/rekey/update", strings.NewReader(`{"key":"`+tc.key+`","nonce":"`+st.Nonce+`"}`), nil)
		if resp.Status != 400 || !strings.Contains(strings.Join(resp.errs(t), " "), tc.want) {
			t.Fatalf("%s: %d %s", tc.name, resp.Status, resp.Body)
		}
		noLeak(t, tc.name, resp.Body, tc.key)
	}
	// Cancelled: its nonce is refused afterwards; the server is unchanged and usable.
	_, err = c.Sys().RekeyUpdate(s.keys[0], st.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Sys().RekeyCancelWithNonce("another"); err == nil {
		t.Fatal("cancel with a wrong nonce succeeded")
	}
	if err := c.Sys().RekeyCancelWithNonce(st.Nonce); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sys().RekeyUpdate(s.keys[1], st.Nonce)
	respErr(t, err, 400, "no rekey in progress")
	if ss, _ := c.Sys().SealStatus(); ss.Sealed || ss.T != 2 || ss.N != 2 {
		t.Fatalf("server after refusals: %+v", ss)
	}
	// Recovery keys do not exist with the Shamir seal.
	_, err = c.Sys().RekeyRecoveryKeyInit(&vault.RekeyInitRequest{SecretShares: 3, SecretThreshold: 2})
	respErr(t, err, 400, "no recovery keys")
	if _, err := s.client(s.root).Auth().Token().LookupSelf(); err != nil {
		t.Fatal(err)
	}
	checkNoSecretsLogged(t, s.logs.String(), s.keys...)
}
