package httpapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// wrapping returns a copy of c that asks for every response wrapped with ttl.
func wrapping(t *testing.T, c *vault.Client, ttl string) *vault.Client {
	t.Helper()
	w, err := c.Clone()
	if err != nil {
		t.Fatal(err)
	}
	w.SetToken(c.Token())
	w.SetWrappingLookupFunc(func(string, string) string { return ttl })
	return w
}

func wmarker(t *testing.T, what string) string {
	var b [12]byte
	rand.Read(b[:])
	return what + "-" + hex.EncodeToString(b[:])
}

// onlyWrapInfo asserts a wrapped answer: wrap_info and nothing of the response.
func onlyWrapInfo(t *testing.T, s *vault.Secret, err error, path string, ttl int) *vault.SecretWrapInfo {
	t.Helper()
	if err != nil {
		t.Fatalf("wrapped %s: %v", path, err)
	}
	if s == nil || s.WrapInfo == nil {
		t.Fatalf("wrapped %s: no wrap_info in %+v", path, s)
	}
	if s.Data != nil || s.Auth != nil || s.LeaseID != "" {
		t.Fatalf("wrapped %s: the answer carries more than wrap_info: %+v", path, s)
	}
	w := s.WrapInfo
	if w.Token == "" || w.Accessor == "" || w.TTL != ttl || w.CreationPath != path || w.CreationTime.IsZero() {
		t.Fatalf("wrapped %s: wrap_info %+v", path, w)
	}
	return w
}

// cubbyholeKeys counts the live cubbyhole data keys.
func cubbyholeKeys(t *testing.T, s *testServer) int {
	t.Helper()
	ids, err := s.Core.DataKeyIDs(context.Background(), "cubbyhole")
	if err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

// grepDir fails when any file under dir holds one of needles.
func grepDir(t *testing.T, dir string, needles ...string) {
	t.Helper()
	for _, f := range dataDirFiles(t, dir) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s holds %q in clear", f, n)
			}
		}
	}
}

// TestVaultAPIWrapping: a KV read, a token create and an AppRole secret-id asked for wrapped
// answer only with wrap_info; unwrap gives the original once; the second unwrap is a 400 and is
// audited as a possible interception; nothing of the wrapped values is on disk in clear.
func TestVaultAPIWrapping(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	ctx := context.Background()
	auditLog := filepath.Join(t.TempDir(), "audit.log")
	if err := root.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": auditLog}}); err != nil {
		t.Fatal(err)
	}
	secret := wmarker(t, "wrapped-kv")
	if _, err := root.KVv2("secret").Put(ctx, "app/config", map[string]any{"password": secret}); err != nil {
		t.Fatal(err)
	}
	wroot := wrapping(t, root, "5m")
	var tokensSeen []string

	t.Run("kv read", func(t *testing.T) {
		s1, err := wroot.Logical().Read("secret/data/app/config")
		w := onlyWrapInfo(t, s1, err, "secret/data/app/config", 300)
		if w.WrappedAccessor != "" {
			t.Errorf("wrapped_accessor %q for a non-token response", w.WrappedAccessor)
		}
		// On the wire: data, auth null; wrap_info the only content.
		r := raw(t, s.URL, http.MethodGet, "secret/data/app/config", nil, map[string]string{"X-Vault-Token": s.RootToken, "X-Vault-Wrap-TTL": "90s"})
		body := r.json(t)
		if r.Status != 200 || body["data"] != nil || body["auth"] != nil || body["wrap_info"] == nil || strings.Contains(string(r.Body), secret) {
			t.Fatalf("raw wrapped read: %d %s", r.Status, r.Body)
		}
		if num(t, body["wrap_info"].(map[string]any)["ttl"]) != 90 {
			t.Fatalf("raw wrapped read ttl: %s", r.Body)
		}
		if _, err := s.Client(t, "").Logical().Unwrap(body["wrap_info"].(map[string]any)["token"].(string)); err != nil {
			t.Fatal(err)
		}
		// lookup is unauthenticated and does not spend the token.
		lk, err := s.Client(t, "").Logical().Write("sys/wrapping/lookup", map[string]any{"token": w.Token})
		if err != nil {
			t.Fatalf("lookup: %v", err)
		}
		if lk.Data["creation_path"] != "secret/data/app/config" || num(t, lk.Data["creation_ttl"]) != 300 || lk.Data["creation_time"] == "" {
			t.Fatalf("lookup: %v", lk.Data)
		}
		// The wrapping token is no token for anything else.
		denied(t, func() error { _, err := s.Client(t, w.Token).Logical().Read("secret/data/app/config"); return err }())
		denied(t, func() error { _, err := s.Client(t, w.Token).Logical().Read("cubbyhole/response"); return err }())
		denied(t, func() error { _, err := s.Client(t, w.Token).Auth().Token().LookupSelf(); return err }())
		// A token lookup (by someone allowed) shows what it is.
		tl, err := root.Auth().Token().Lookup(w.Token)
		if err != nil {
			t.Fatalf("token lookup of a wrapping token: %v", err)
		}
		if pols, _ := tl.TokenPolicies(); strings.Join(pols, ",") != "response-wrapping" || num(t, tl.Data["num_uses"]) != 1 || tl.Data["path"] != "secret/data/app/config" {
			t.Fatalf("token lookup of a wrapping token: %v", tl.Data)
		}

		un, err := s.Client(t, "").Logical().Unwrap(w.Token)
		if err != nil {
			t.Fatalf("unwrap: %v", err)
		}
		if d, _ := un.Data["data"].(map[string]any); d == nil || d["password"] != secret {
			t.Fatalf("unwrap: %v", un.Data)
		}
		_, err = s.Client(t, "").Logical().Unwrap(w.Token)
		respErr(t, err, http.StatusBadRequest, "wrapping token is not valid or does not exist")
		// With the token in the body and the caller's own token in the header, the same.
		_, err = root.Logical().Unwrap(w.Token)
		respErr(t, err, http.StatusBadRequest, "wrapping token is not valid or does not exist")
		_, err = s.Client(t, "").Logical().Write("sys/wrapping/lookup", map[string]any{"token": w.Token})
		respErr(t, err, http.StatusBadRequest, "wrapping token is not valid or does not exist")
		waitForLines(t, auditLog, 10*time.Second, "the second unwrap audited as a possible interception", func(ls []auditLine) bool {
			for _, l := range find(ls, "response", "update", "sys/wrapping/unwrap") {
				if strings.Contains(l.Error, "possible interception") {
					return true
				}
			}
			return false
		})
		tokensSeen = append(tokensSeen, w.Token)
	})

	t.Run("token create", func(t *testing.T) {
		s1, err := wroot.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"})
		w := onlyWrapInfo(t, s1, err, "auth/token/create", 300)
		if w.WrappedAccessor == "" {
			t.Fatal("no wrapped_accessor for a wrapped token")
		}
		un, err := s.Client(t, "").Logical().Unwrap(w.Token)
		if err != nil {
			t.Fatalf("unwrap: %v", err)
		}
		if un.Auth == nil || un.Auth.ClientToken == "" || un.Auth.Accessor != w.WrappedAccessor {
			t.Fatalf("unwrapped token: %+v", un.Auth)
		}
		if _, err := s.Client(t, un.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
			t.Fatalf("the unwrapped token does not work: %v", err)
		}
		tokensSeen = append(tokensSeen, w.Token, un.Auth.ClientToken)
	})

	t.Run("approle secret-id", func(t *testing.T) {
		if err := root.Sys().EnableAuthWithOptions("approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Logical().Write("auth/approle/role/ci", map[string]any{"token_policies": "default"}); err != nil {
			t.Fatal(err)
		}
		rid, err := root.Logical().Read("auth/approle/role/ci/role-id")
		if err != nil {
			t.Fatal(err)
		}
		s1, err := wroot.Logical().Write("auth/approle/role/ci/secret-id", nil)
		w := onlyWrapInfo(t, s1, err, "auth/approle/role/ci/secret-id", 300)
		// The orchestrator pattern: the app unwraps with the approle helper.
		login, err := approle.NewAppRoleAuth(rid.Data["role_id"].(string), &approle.SecretID{FromString: w.Token}, approle.WithWrappingToken())
		if err != nil {
			t.Fatal(err)
		}
		app := s.Client(t, "")
		if _, err := app.Auth().Login(ctx, login); err != nil {
			t.Fatalf("login with a wrapped secret-id: %v", err)
		}
		// A middleman that unwraps first leaves the app a 400, not the secret.
		s2, err := wroot.Logical().Write("auth/approle/role/ci/secret-id", nil)
		w2 := onlyWrapInfo(t, s2, err, "auth/approle/role/ci/secret-id", 300)
		if _, err := s.Client(t, "").Logical().Unwrap(w2.Token); err != nil {
			t.Fatal(err)
		}
		login2, _ := approle.NewAppRoleAuth(rid.Data["role_id"].(string), &approle.SecretID{FromString: w2.Token}, approle.WithWrappingToken())
		if _, err := s.Client(t, "").Auth().Login(ctx, login2); err == nil || !strings.Contains(err.Error(), "wrapping token is not valid") {
			t.Fatalf("login with an intercepted wrapped secret-id: %v", err)
		}
		tokensSeen = append(tokensSeen, w.Token, w2.Token)
	})

	t.Run("wrap and rewrap", func(t *testing.T) {
		payload := wmarker(t, "wrapped-data")
		// The official client always asks for 5m on sys/wrapping/wrap; without the header, a 400.
		nw := raw(t, s.URL, http.MethodPost, "sys/wrapping/wrap", strings.NewReader(`{"note":"x"}`), tokenHeader(s.RootToken))
		if nw.Status != http.StatusBadRequest || !strings.Contains(strings.Join(nw.errs(t), " "), "needs a wrap TTL") {
			t.Fatalf("wrap without a TTL: %d %s", nw.Status, nw.Body)
		}
		s1, err := wroot.Logical().Write("sys/wrapping/wrap", map[string]any{"note": payload})
		w := onlyWrapInfo(t, s1, err, "sys/wrapping/wrap", 300)
		_, err = wroot.Logical().Write("sys/wrapping/wrap", nil)
		respErr(t, err, http.StatusBadRequest, "no data")
		r1, err := s.Client(t, "").Logical().Write("sys/wrapping/rewrap", map[string]any{"token": w.Token})
		if err == nil {
			t.Fatal("rewrap without any client token succeeded")
		}
		r1, err = root.Logical().Write("sys/wrapping/rewrap", map[string]any{"token": w.Token})
		if err != nil || r1.WrapInfo == nil || r1.WrapInfo.Token == w.Token || r1.WrapInfo.TTL != 300 || r1.WrapInfo.CreationPath != "sys/wrapping/wrap" {
			t.Fatalf("rewrap: %v %+v", err, r1)
		}
		_, err = s.Client(t, "").Logical().Unwrap(w.Token)
		respErr(t, err, http.StatusBadRequest, "wrapping token is not valid or does not exist")
		un, err := s.Client(t, "").Logical().Unwrap(r1.WrapInfo.Token)
		if err != nil || un.Data["note"] != payload {
			t.Fatalf("unwrap of the rewrapped token: %v %v", err, un)
		}
		_, err = s.Client(t, "").Logical().Write("sys/wrapping/lookup", map[string]any{"token": "hvs.not-a-token"})
		respErr(t, err, http.StatusBadRequest, "wrapping token is not valid or does not exist")
		_, err = s.Client(t, "").Logical().Write("sys/wrapping/lookup", nil)
		respErr(t, err, http.StatusBadRequest, "wrapping token is not valid or does not exist")
		// A normal token is no wrapping token.
		_, err = s.Client(t, "").Logical().Unwrap(s.RootToken)
		respErr(t, err, http.StatusBadRequest, "wrapping token is not valid or does not exist")
		_, err = root.Logical().Write("sys/wrapping/unwrap", map[string]any{"token": 42, "extra": 1})
		respErr(t, err, http.StatusBadRequest, "wrapping token is not valid or does not exist")
		s2, err := wroot.Logical().Write("sys/wrapping/wrap", map[string]any{"k": "v"})
		w2 := onlyWrapInfo(t, s2, err, "sys/wrapping/wrap", 300)
		lk, err := s.Client(t, "").Logical().Write("sys/wrapping/lookup", map[string]any{"token": w2.Token, "extra": 1})
		if err != nil || len(lk.Warnings) != 1 || !strings.Contains(lk.Warnings[0], "extra") {
			t.Fatalf("lookup with an unknown field: %v %+v", err, lk)
		}
		if un, err := s.Client(t, "").Logical().Unwrap(w2.Token); err != nil || un.Data["k"] != "v" {
			t.Fatalf("unwrap: %v %v", err, un)
		}
		tokensSeen = append(tokensSeen, payload)
	})

	t.Run("expiry", func(t *testing.T) {
		s1, err := wrapping(t, root, "1").Logical().Read("secret/data/app/config")
		w := onlyWrapInfo(t, s1, err, "secret/data/app/config", 1)
		eventually(t, 10*time.Second, "the expired wrapping token's cubbyhole shredded", func() bool { return cubbyholeKeys(t, s) == 0 })
		_, err = s.Client(t, "").Logical().Unwrap(w.Token)
		respErr(t, err, http.StatusBadRequest, "wrapping token is not valid or does not exist")
	})

	if n := cubbyholeKeys(t, s); n != 0 {
		t.Errorf("%d cubbyhole data keys left after every wrapped response was unwrapped or expired", n)
	}
	grepDir(t, s.Dir, append(tokensSeen, secret)...)
}

// TestVaultAPIWrapTTLRefused: a malformed, zero, negative or huge wrap TTL, or one outside the
// policy's bounds, is refused before anything happens; never answered in the clear.
func TestVaultAPIWrapTTLRefused(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	secret := wmarker(t, "bounded")
	if _, err := root.KVv2("secret").Put(context.Background(), "bounded/x", map[string]any{"v": secret}); err != nil {
		t.Fatal(err)
	}
	accessors := func() int {
		l, err := root.Logical().List("auth/token/accessors")
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Data["keys"].([]any))
	}
	before := accessors()
	for _, ttl := range []string{"0", "0s", "-5m", "-1", "abc", "5 minutes", "100000h", "99999999999999999999", "500ms"} {
		for _, rq := range []struct{ method, path, body string }{
			{http.MethodGet, "secret/data/bounded/x", ""},
			{http.MethodPost, "auth/token/create", `{"ttl":"1h"}`},
			{http.MethodPost, "secret/data/bounded/y", `{"data":{"v":"w"}}`},
		} {
			r := raw(t, s.URL, rq.method, rq.path, strings.NewReader(rq.body), map[string]string{"X-Vault-Token": s.RootToken, "X-Vault-Wrap-TTL": ttl})
			if r.Status != http.StatusBadRequest || !strings.Contains(strings.Join(r.errs(t), " "), "invalid wrap TTL") {
				t.Errorf("wrap TTL %q on %s %s: %d %s", ttl, rq.method, rq.path, r.Status, r.Body)
			}
			noLeak(t, "refused wrap", r.Body, secret)
		}
	}
	if after := accessors(); after != before {
		t.Errorf("refused wrapped token creates made %d tokens", after-before)
	}
	if _, err := root.KVv2("secret").Get(context.Background(), "bounded/y"); err == nil {
		t.Error("a refused wrapped write was written")
	}

	putPolicy(t, root, "must-wrap", `
path "secret/data/bounded/*" {
  capabilities = ["read"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = "10m"
}
path "secret/data/open/*" { capabilities = ["read"] }`)
	tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"must-wrap"}})
	c := s.Client(t, tok.ClientToken)
	_, err := c.Logical().Read("secret/data/bounded/x")
	respErr(t, err, http.StatusForbidden, "requires this request to be response-wrapped")
	for ttl, want := range map[string]string{"30s": "below the policy's min_wrapping_ttl", "1h": "exceeds the policy's max_wrapping_ttl"} {
		_, err := wrapping(t, c, ttl).Logical().Read("secret/data/bounded/x")
		respErr(t, err, http.StatusForbidden, want)
	}
	s1, err := wrapping(t, c, "5m").Logical().Read("secret/data/bounded/x")
	w := onlyWrapInfo(t, s1, err, "secret/data/bounded/x", 300)
	un, err := s.Client(t, "").Logical().Unwrap(w.Token)
	if err != nil || un.Data["data"].(map[string]any)["v"] != secret {
		t.Fatalf("unwrap within the bounds: %v %v", err, un)
	}
	// The policy's own unbounded paths need no wrapping.
	if _, err := c.Logical().Read("secret/data/open/x"); err != nil {
		t.Fatal(err)
	}
	// A policy whose bounds cross does not parse.
	err = root.Sys().PutPolicy("crossed", "path \"x/*\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"10m\"\n max_wrapping_ttl = \"1m\"\n}")
	respErr(t, err, http.StatusBadRequest, "max_wrapping_ttl")
}
